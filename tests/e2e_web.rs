//! End to end on real parts: a real nginx in a server namespace logging to the real journald
//! (`access_log syslog:`), real HTTP probing with curl from an attacker namespace, a
//! bystander namespace, and the crowdwall daemon enforcing in the server namespace's kernel.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{prerequisites, tag, veth, wait_until, Daemon, Netns, Proc};

const SRV_ATK: &str = "198.51.100.1";
const ATK: &str = "198.51.100.2";
const SRV_BY: &str = "203.0.113.1";
const BY: &str = "203.0.113.2";

fn kernel_v4(ns: &Netns) -> String {
    let o = ns.exec(&["nft", "list", "set", "inet", "crowdwall", "v4"]);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn write_nginx_conf(dir: &Path) -> String {
    let d = dir.display();
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/index.html"), "hello\n").unwrap();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "user root;\ndaemon off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log syslog:server=unix:/dev/log,tag=nginx,nohostname warn;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log syslog:server=unix:/dev/log,tag=nginx,nohostname combined;\n\
               client_body_temp_path {d}/t1; proxy_temp_path {d}/t2; fastcgi_temp_path {d}/t3;\n\
               uwsgi_temp_path {d}/t4; scgi_temp_path {d}/t5;\n\
               server {{ listen {SRV_ATK}:80; listen {SRV_BY}:80; root {d}/www; }}\n}}\n"
        ),
    )
    .unwrap();
    conf.display().to_string()
}

/// HTTP status of a GET from the namespace (000 when unreachable).
fn get(ns: &Netns, host: &str, path: &str) -> String {
    let o = ns.exec(&[
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-m",
        "3",
        "-w",
        "%{http_code}",
        &format!("http://{host}{path}"),
    ]);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn http_probing_through_real_nginx_gets_the_prober_dropped() {
    if !prerequisites(&["ip", "nft", "curl", "nc", "nginx", "systemd-cat"], true) {
        return;
    }
    let t = tag();
    let srv = Netns::new(format!("cwpa{t}s"));
    let atk = Netns::new(format!("cwpa{t}a"));
    let by = Netns::new(format!("cwpa{t}b"));
    veth(&srv, &format!("{SRV_ATK}/24"), &atk, &format!("{ATK}/24"));
    veth(&srv, &format!("{SRV_BY}/24"), &by, &format!("{BY}/24"));

    let dir = tempfile::tempdir().unwrap();
    let conf = write_nginx_conf(dir.path());
    let _nginx = Proc(
        Command::new("ip")
            .args(["netns", "exec", &srv.name, "nginx", "-c", &conf])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx"),
    );
    assert!(
        wait_until(Duration::from_secs(10), || get(&by, SRV_BY, "/") == "200"),
        "nginx not serving"
    );

    let mut d = Daemon::new(
        &srv.name,
        dir.path(),
        "[journal]\nmatches = [\"SYSLOG_IDENTIFIER=nginx\"]\n",
    );
    d.start();

    // The bystander: a page, and the same broken link several times.
    for _ in 0..5 {
        assert_eq!(get(&by, SRV_BY, "/"), "200");
        assert_eq!(get(&by, SRV_BY, "/old-link"), "404");
    }
    // The prober: many missing pages in a few seconds (stops once dropped).
    for i in 0..30 {
        if get(&atk, SRV_ATK, &format!("/backup{i}.php")) == "000" {
            break;
        }
    }
    let banned = wait_until(Duration::from_secs(15), || kernel_v4(&srv).contains(ATK));
    assert!(
        banned,
        "prober not in the kernel set:\n{}\n{}",
        kernel_v4(&srv),
        d.log()
    );
    assert_eq!(
        get(&atk, SRV_ATK, "/"),
        "000",
        "prober still served while banned"
    );
    assert_eq!(
        get(&by, SRV_BY, "/"),
        "200",
        "bystander must not be affected"
    );
    assert!(!kernel_v4(&srv).contains(BY), "{}", kernel_v4(&srv));
    let ds = d.decisions();
    let mine: Vec<_> = ds.iter().filter(|x| x["value"] == ATK).collect();
    assert_eq!(mine.len(), 1, "{ds:?}");
    assert_eq!(mine[0]["scenario"], "http-probing", "{ds:?}");
    let (ok, status) = d.cli(&["status"]);
    assert!(ok && status.contains("parser nginx:"), "{status}");
}
