//! The CrowdSec-compatible bouncer API on real parts: the daemon in a network namespace,
//! requests from curl, pycrowdsec's StreamClient and Debian's crowdsec-firewall-bouncer
//! (unmodified, in a namespace of its own, enforcing in its own kernel tables).

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::nft;
use crate::common::proc::spawn;
use crate::common::{must, prerequisites, skip, tag, veth, wait_until, Daemon, Netns};

fn config(listen: &str, extra: &str) -> String {
    format!("[journal]\nenabled = false\n\n[api]\nenabled = true\nlisten = \"{listen}\"\n{extra}")
}

/// `crowdwall bouncers add NAME`: the key from its output.
fn add_bouncer(d: &Daemon, name: &str) -> String {
    let (ok, out) = d.cli(&["bouncers", "add", name]);
    assert!(ok, "{out}");
    out.lines()
        .map(str::trim)
        .find(|l| l.len() == 64 && l.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no key in: {out}"))
        .to_string()
}

/// An HTTP request from inside the namespace: (status, body).
fn http(ns: &Netns, method: &str, url: &str, key: Option<&str>, extra: &[&str]) -> (u16, String) {
    let mut args = vec!["curl", "-sS", "-w", "\n%{http_code}", "-X", method];
    if method == "HEAD" {
        args = vec![
            "curl",
            "-sS",
            "-I",
            "-o",
            "/dev/null",
            "-w",
            "\n%{http_code}",
        ];
    }
    let header;
    if let Some(k) = key {
        header = format!("X-Api-Key: {k}");
        args.extend(["-H", &header]);
    }
    args.extend_from_slice(extra);
    args.push(url);
    let out = ns.must(&args);
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn values(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| d["value"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn hms(d: &str) -> bool {
    let re = regex::Regex::new(r"^-?\d+h\d+m\d+s$").unwrap();
    re.is_match(d)
}

#[test]
fn api_speaks_the_crowdsec_bouncer_protocol() {
    if !prerequisites(&["ip", "nft", "curl"], false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::tagged("bo");
    let d = Daemon::started(&ns.name, dir.path(), &config("127.0.0.1:8080", ""));
    let base = "http://127.0.0.1:8080";
    let key = add_bouncer(&d, "b1");
    let (ok, out) = d.cli(&["bouncers", "add", "b1"]);
    assert!(!ok && out.contains("exists already"), "{out}");
    // Only the hash is stored.
    let db = std::fs::read(dir.path().join("state/crowdwall.db")).unwrap();
    let has = |s: &str| db.windows(s.len()).any(|w| w == s.as_bytes());
    let wal = std::fs::read(dir.path().join("state/crowdwall.db-wal")).unwrap_or_default();
    let wal_has = |s: &str| wal.windows(s.len()).any(|w| w == s.as_bytes());
    assert!(!has(&key) && !wal_has(&key), "the key itself is stored");
    let hash = crowdwall_daemon::api::key_hash(&key);
    assert!(has(&hash) || wal_has(&hash), "the key's hash is not stored");

    // Bad or missing key: 403 and nothing else.
    for k in [Some("0123"), None] {
        for path in [
            "/v1/decisions/stream?startup=true",
            "/v1/decisions?ip=192.0.2.7",
        ] {
            let (code, body) = http(&ns, "GET", &format!("{base}{path}"), k, &[]);
            assert_eq!(code, 403, "{path}: {body}");
            assert_eq!(body, r#"{"message":"access forbidden"}"#);
        }
        let (code, _) = http(&ns, "HEAD", &format!("{base}/v1/decisions/stream"), k, &[]);
        assert_eq!(code, 403);
    }

    assert!(
        d.cli(&["decisions", "add", "192.0.2.7", "--duration", "4h"])
            .0
    );
    assert!(
        d.cli(&["decisions", "add", "198.51.100.0/24", "--duration", "45s"])
            .0
    );

    let (code, body) = http(
        &ns,
        "GET",
        &format!("{base}/v1/decisions/stream?startup=true"),
        Some(&key),
        &[],
    );
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    assert_eq!(values(&v["new"]), ["192.0.2.7", "198.51.100.0/24"]);
    assert_eq!(v["deleted"], serde_json::json!([]));
    for dec in v["new"].as_array().unwrap() {
        let dur = dec["duration"].as_str().unwrap();
        assert!(hms(dur), "duration {dur} is not XhYmZs");
        assert_eq!(dec["type"], "ban");
        assert_eq!(dec["origin"], "cscli");
        let scope = if dec["value"] == "192.0.2.7" {
            "Ip"
        } else {
            "Range"
        };
        assert_eq!(dec["scope"], scope);
    }
    // Nothing changed: empty lists, not null.
    let (_, body) = http(
        &ns,
        "GET",
        &format!("{base}/v1/decisions/stream?startup=false"),
        Some(&key),
        &[],
    );
    assert_eq!(json(&body), serde_json::json!({"new": [], "deleted": []}));

    // A deletion and an addition reach the next delta; HEAD in between moves nothing.
    assert!(d.cli(&["decisions", "delete", "192.0.2.7"]).0);
    assert!(
        d.cli(&["decisions", "add", "203.0.113.9", "--duration", "1h"])
            .0
    );
    let (code, body) = http(
        &ns,
        "HEAD",
        &format!("{base}/v1/decisions/stream"),
        Some(&key),
        &[],
    );
    assert_eq!((code, body.as_str()), (200, ""));
    let (_, body) = http(
        &ns,
        "GET",
        &format!("{base}/v1/decisions/stream?startup=false"),
        Some(&key),
        &[],
    );
    let v = json(&body);
    assert_eq!(values(&v["new"]), ["203.0.113.9"], "{body}");
    assert_eq!(values(&v["deleted"]), ["192.0.2.7"], "{body}");

    // Filters.
    let (_, body) = http(
        &ns,
        "GET",
        &format!("{base}/v1/decisions/stream?startup=true&scopes=range"),
        Some(&key),
        &[],
    );
    assert_eq!(values(&json(&body)["new"]), ["198.51.100.0/24"]);
    let (_, body) = http(
        &ns,
        "GET",
        &format!("{base}/v1/decisions/stream?startup=true&origins=crowdsec"),
        Some(&key),
        &[],
    );
    assert_eq!(values(&json(&body)["new"]), Vec::<String>::new());
    let (_, body) = http(
        &ns,
        "GET",
        &format!("{base}/v1/decisions/stream?startup=true&scenarios_not_containing=manual"),
        Some(&key),
        &[],
    );
    assert_eq!(values(&json(&body)["new"]), Vec::<String>::new());

    // Look-ups: a covering range; the literal null when nothing matches.
    let (code, body) = http(
        &ns,
        "GET",
        &format!("{base}/v1/decisions?ip=198.51.100.9"),
        Some(&key),
        &[],
    );
    assert_eq!(code, 200);
    assert_eq!(values(&json(&body)), ["198.51.100.0/24"]);
    let (code, body) = http(
        &ns,
        "GET",
        &format!("{base}/v1/decisions?ip=192.0.2.7"),
        Some(&key),
        &[],
    );
    assert_eq!((code, body.as_str()), (200, "null"));
    let (code, body) = http(
        &ns,
        "GET",
        &format!("{base}/v1/decisions?scope=range&value=198.51.100.0/24"),
        Some(&key),
        &[],
    );
    assert_eq!(
        (code, values(&json(&body))),
        (200, vec!["198.51.100.0/24".to_string()])
    );
    let (code, _) = http(
        &ns,
        "GET",
        &format!("{base}/v1/decisions?ip=not-an-ip"),
        Some(&key),
        &[],
    );
    assert_eq!(code, 400);
    let (code, _) = http(
        &ns,
        "HEAD",
        &format!("{base}/v1/decisions"),
        Some(&key),
        &[],
    );
    assert_eq!(code, 200);
    let (code, _) = http(
        &ns,
        "POST",
        &format!("{base}/v1/usage-metrics"),
        Some(&key),
        &["-H", "Content-Type: application/json", "-d", "{}"],
    );
    assert_eq!(code, 201);

    let (ok, out) = d.cli(&["bouncers", "list", "--json"]);
    assert!(ok, "{out}");
    let l = json(&out);
    assert_eq!(l[0]["name"], "b1");
    assert!(l[0]["last_pull"].is_string(), "{out}");
    assert!(d.cli(&["bouncers", "delete", "b1"]).0);
    let (code, _) = http(
        &ns,
        "GET",
        &format!("{base}/v1/decisions/stream?startup=true"),
        Some(&key),
        &[],
    );
    assert_eq!(code, 403, "a deleted bouncer's key is refused");
}

#[test]
fn api_over_tls() {
    if !prerequisites(&["ip", "nft", "curl", "openssl"], false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    must(&[
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
    let ns = Netns::tagged("bo");
    let extra = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let d = Daemon::started(&ns.name, dir.path(), &config("127.0.0.1:8443", &extra));
    let k = add_bouncer(&d, "tls");
    assert!(
        d.cli(&["decisions", "add", "192.0.2.8", "--duration", "1h"])
            .0
    );
    let url = "https://127.0.0.1:8443/v1/decisions/stream?startup=true";
    let ca = ["--cacert", cert.to_str().unwrap()];
    let (code, body) = http(&ns, "GET", url, Some(&k), &ca);
    assert_eq!(code, 200, "{body}");
    assert_eq!(values(&json(&body)["new"]), ["192.0.2.8"]);
    assert_eq!(http(&ns, "GET", url, Some("bad"), &ca).0, 403);
    // plain HTTP on the TLS port gets no answer
    let o = ns.exec(&[
        "curl",
        "-sS",
        "-m",
        "3",
        "-H",
        &format!("X-Api-Key: {k}"),
        "http://127.0.0.1:8443/v1/decisions",
    ]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("192.0.2.8"));
}

#[test]
fn pycrowdsec_stream_client_gets_bans_and_their_deletions() {
    if !prerequisites(&["ip", "nft", "python3"], false) {
        return;
    }
    let has_pycrowdsec = Command::new("python3")
        .args(["-c", "import pycrowdsec.client"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_pycrowdsec {
        skip("needs pycrowdsec (tests/lab/deps.sh installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::tagged("bo");
    let d = Daemon::started(&ns.name, dir.path(), &config("127.0.0.1:8080", ""));
    let key = add_bouncer(&d, "pycrowdsec");
    assert!(
        d.cli(&["decisions", "add", "192.0.2.10", "--duration", "1h"])
            .0
    );
    // The client unmodified; the script only reports its cache to a file.
    let script = dir.path().join("client.py");
    let state = dir.path().join("state.json");
    std::fs::write(
        &script,
        "import json, os, sys, time\n\
         from pycrowdsec.client import StreamClient\n\
         c = StreamClient(api_key=sys.argv[1], lapi_url='http://127.0.0.1:8080/', interval=1)\n\
         c.run()\n\
         while True:\n\
         \x20   with open(sys.argv[2] + '.tmp', 'w') as f:\n\
         \x20       json.dump({'all': c.get_current_decisions(), 'in_range': c.get_action_for('198.51.100.77')}, f)\n\
         \x20   os.replace(sys.argv[2] + '.tmp', sys.argv[2])\n\
         \x20   time.sleep(0.2)\n",
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("client.log")).unwrap();
    let _client = spawn(
        ns.command("python3")
            .arg(&script)
            .arg(&key)
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(log),
        "pycrowdsec client",
    );
    let read = || -> Value {
        std::fs::read_to_string(&state)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(Value::Null)
    };
    let client_log = || std::fs::read_to_string(dir.path().join("client.log")).unwrap_or_default();
    let has = |v: &Value, k: &str| v["all"].get(k).is_some();
    assert!(
        wait_until(Duration::from_secs(20), || has(&read(), "192.0.2.10/32")),
        "startup did not reach the client: {:?}\n{}",
        read(),
        client_log()
    );
    // A delta: a new range, then the address's deletion.
    assert!(
        d.cli(&["decisions", "add", "198.51.100.0/24", "--duration", "1h"])
            .0
    );
    assert!(
        wait_until(Duration::from_secs(20), || read()["in_range"] == "ban"),
        "the range did not reach the client: {:?}",
        read()
    );
    assert!(d.cli(&["decisions", "delete", "192.0.2.10"]).0);
    assert!(
        wait_until(Duration::from_secs(20), || {
            let v = read();
            !has(&v, "192.0.2.10/32") && has(&v, "198.51.100.0/24")
        }),
        "the deletion did not reach the client: {:?}",
        read()
    );
    // An expiry is a deletion too.
    assert!(
        d.cli(&["decisions", "add", "192.0.2.11", "--duration", "2s"])
            .0
    );
    assert!(wait_until(Duration::from_secs(20), || has(
        &read(),
        "192.0.2.11/32"
    )));
    assert!(
        wait_until(Duration::from_secs(20), || !has(&read(), "192.0.2.11/32")),
        "the expiry did not reach the client: {:?}",
        read()
    );
}

/// Debian's crowdsec-firewall-bouncer, unmodified, in its own namespace, pulling from
/// crowdwall over a veth: its nftables sets receive crowdwall's bans and it drops the
/// banned address's traffic.
#[test]
fn debian_firewall_bouncer_enforces_crowdwall_decisions() {
    if !prerequisites(&["ip", "nft", "nc", "crowdsec-firewall-bouncer"], false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = tag();
    let srv = Netns::new(format!("bos{t}"));
    let fwb = Netns::new(format!("bof{t}"));
    let atk = Netns::new(format!("boa{t}"));
    veth(&srv, "10.77.1.1/24", &fwb, "10.77.1.2/24");
    veth(&fwb, "10.77.2.1/24", &atk, "10.77.2.2/24");
    let d = Daemon::started(&srv.name, dir.path(), &config("10.77.1.1:8080", ""));
    let key = add_bouncer(&d, "firewall");
    let conf = dir.path().join("bouncer.yaml");
    std::fs::write(
        &conf,
        format!(
            "mode: nftables\npid_dir: {dir}\nupdate_frequency: 1s\ndaemonize: false\n\
             log_mode: file\nlog_dir: {dir}\nlog_level: info\n\
             api_url: http://10.77.1.1:8080/\napi_key: {key}\ninsecure_skip_verify: false\n\
             disable_ipv6: false\ndeny_action: DROP\ndeny_log: false\n\
             supported_decisions_types:\n  - ban\n\
             blacklists_ipv4: crowdsec-blacklists\nblacklists_ipv6: crowdsec6-blacklists\n\
             nftables:\n  ipv4:\n    enabled: true\n    set-only: false\n    table: crowdsec\n    chain: crowdsec-chain\n\
             \x20 ipv6:\n    enabled: true\n    set-only: false\n    table: crowdsec6\n    chain: crowdsec6-chain\n\
             prometheus:\n  enabled: false\n  listen_addr: 127.0.0.1\n  listen_port: 60601\n",
            dir = dir.path().display()
        ),
    )
    .unwrap();
    let _bouncer = spawn(
        fwb.command("crowdsec-firewall-bouncer")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "crowdsec-firewall-bouncer",
    );
    let blog = || {
        std::fs::read_to_string(dir.path().join("crowdsec-firewall-bouncer.log"))
            .unwrap_or_default()
    };
    // A service in the bouncer's namespace, reachable from the attacker before the ban.
    let _service = fwb.listen_at("10.77.2.1", 8080);
    assert!(wait_until(Duration::from_secs(10), || atk
        .can_connect("10.77.2.1", 8080)));
    let set = || nft::list(&fwb, &["set", "ip", "crowdsec", "crowdsec-blacklists"]);
    assert!(
        wait_until(Duration::from_secs(30), || blog()
            .contains("Processing new and deleted decisions")
            || set().contains("crowdsec-blacklists")),
        "bouncer did not start:\n{}",
        blog()
    );
    assert!(
        d.cli(&["decisions", "add", "10.77.2.2", "--duration", "1h"])
            .0
    );
    assert!(
        wait_until(Duration::from_secs(30), || set().contains("10.77.2.2")),
        "the bouncer's set did not receive the ban: {}\n{}",
        set(),
        blog()
    );
    assert!(
        !atk.can_connect("10.77.2.1", 8080),
        "the bouncer did not drop the banned address"
    );
    // crowdwall's own kernel set holds it too (in its namespace).
    let own = srv.must(&["nft", "list", "table", "inet", "crowdwall"]);
    assert!(own.contains("10.77.2.2"), "{own}");
    assert!(d.cli(&["decisions", "delete", "10.77.2.2"]).0);
    assert!(
        wait_until(Duration::from_secs(30), || !set().contains("10.77.2.2")),
        "the deletion did not reach the bouncer: {}",
        set()
    );
    assert!(wait_until(Duration::from_secs(10), || atk
        .can_connect("10.77.2.1", 8080)));
}
