//! Blocklist feeds on real parts: the daemon in a network namespace fetches fixture lists
//! from a small HTTP server bound inside that namespace (ETag, 304), and from a local file;
//! versions that are absurd, allowlisted or oversize are refused and the previous one stays.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::nft::crowdwall_table;
use crate::common::{prerequisites, wait_until, Daemon, Netns};

/// What the fixture server serves, and what it saw.
#[derive(Default)]
struct Fixture {
    body: Vec<u8>,
    etag: String,
    /// Send no Content-Length (the body ends with the connection), to exercise the
    /// streaming size cap rather than the header check.
    no_length: bool,
    requests: usize,
    not_modified: usize,
}

/// A TCP listener inside the namespace: a socket belongs to the namespace of the thread
/// that created it.
fn listen_in(ns: &Netns) -> TcpListener {
    ns.enter(|| TcpListener::bind("127.0.0.1:0").expect("bind"))
}

fn serve(listener: TcpListener, fx: Arc<Mutex<Fixture>>) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let _ = answer(conn, &fx);
        }
    });
}

fn answer(mut conn: TcpStream, fx: &Mutex<Fixture>) -> std::io::Result<()> {
    let mut inm = None;
    let mut r = BufReader::new(conn.try_clone()?);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("if-none-match") {
                inm = Some(v.trim().to_string());
            }
        }
    }
    let mut f = fx.lock().unwrap();
    f.requests += 1;
    if inm.as_deref() == Some(f.etag.as_str()) {
        f.not_modified += 1;
        write!(
            conn,
            "HTTP/1.1 304 Not Modified\r\nETag: {}\r\nConnection: close\r\n\r\n",
            f.etag
        )?;
        return Ok(());
    }
    let length = if f.no_length {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", f.body.len())
    };
    write!(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: {}\r\n{length}Connection: close\r\n\r\n", f.etag)?;
    conn.write_all(&f.body)?;
    Ok(())
}

fn list_values(d: &Daemon, list: &str) -> Vec<String> {
    let mut v: Vec<String> = d
        .decisions()
        .iter()
        .filter(|x| x["origin"] == "lists" && x["scenario"] == list)
        .map(|x| x["value"].as_str().unwrap_or("").to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn feeds_fetch_update_and_refuse() {
    if !prerequisites(&["ip", "nft"], false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::tagged("fd");
    let listener = listen_in(&ns);
    let port = listener.local_addr().unwrap().port();
    let fx = Arc::new(Mutex::new(Fixture {
        body: b"; fixture DROP list\n198.18.0.0/24 ; SBL1\n203.0.113.9\n".to_vec(),
        etag: "\"v1\"".into(),
        ..Fixture::default()
    }));
    serve(listener, fx.clone());
    let file = dir.path().join("mine.txt");
    std::fs::write(&file, "# my list\n192.0.2.50\n").unwrap();
    let d = Daemon::started(
        &ns.name,
        dir.path(),
        &format!(
            "[journal]\nenabled = false\n\n[allowlist]\ncidrs = [\"10.99.0.0/16\"]\n\n\
             [feeds]\nmax_bytes = 4096\n\n\
             [feeds.lists.drop]\nurl = \"http://127.0.0.1:{port}/drop.txt\"\ninterval = \"1s\"\n\n\
             [feeds.lists.mine]\npath = \"{}\"\ninterval = \"1s\"\n",
            file.display()
        ),
    );

    // First fetch, and the local file.
    assert!(
        wait_until(Duration::from_secs(20), || list_values(&d, "drop")
            == ["198.18.0.0/24", "203.0.113.9"]),
        "{:?}\n{}",
        d.decisions(),
        d.log()
    );
    assert!(wait_until(Duration::from_secs(20), || list_values(
        &d, "mine"
    ) == ["192.0.2.50"]));
    let s = crowdwall_table(&ns);
    assert!(
        s.contains("198.18.0.0/24") && s.contains("203.0.113.9") && s.contains("192.0.2.50"),
        "{s}"
    );

    // Unchanged: the server answers 304 and nothing moves.
    assert!(
        wait_until(Duration::from_secs(20), || fx.lock().unwrap().not_modified
            >= 2),
        "no conditional request came"
    );
    assert_eq!(list_values(&d, "drop"), ["198.18.0.0/24", "203.0.113.9"]);

    // An update replaces the list's entries.
    {
        let mut f = fx.lock().unwrap();
        f.body = b"198.18.0.0/24\n198.51.100.0/24\n".to_vec();
        f.etag = "\"v2\"".into();
    }
    assert!(
        wait_until(Duration::from_secs(20), || list_values(&d, "drop")
            == ["198.18.0.0/24", "198.51.100.0/24"]),
        "{:?}",
        list_values(&d, "drop")
    );
    assert!(wait_until(Duration::from_secs(10), || !crowdwall_table(
        &ns
    )
    .contains("203.0.113.9")));
    std::fs::write(&file, "# my list\n192.0.2.51\n").unwrap();
    assert!(wait_until(Duration::from_secs(20), || list_values(
        &d, "mine"
    ) == ["192.0.2.51"]));

    // Refused versions: the previous one stays, and the log says why.
    let v2 = ["198.18.0.0/24", "198.51.100.0/24"];
    let refused = |body: &[u8], etag: &str, why: &str, no_length: bool| {
        {
            let mut f = fx.lock().unwrap();
            f.body = body.to_vec();
            f.etag = etag.into();
            f.no_length = no_length;
        }
        assert!(
            wait_until(Duration::from_secs(20), || d
                .log()
                .lines()
                .any(|l| l.contains("feed drop")
                    && l.contains("refused")
                    && l.contains(why))),
            "no refusal naming '{why}':\n{}",
            d.log()
        );
        assert_eq!(list_values(&d, "drop"), v2);
        let s = crowdwall_table(&ns);
        assert!(s.contains("198.51.100.0/24"), "{s}");
    };
    refused(b"198.18.0.0/24\n0.0.0.0/0\n", "\"v3\"", "0.0.0.0/0", false);
    refused(
        b"198.18.0.0/24\n10.99.1.0/24\n",
        "\"v4\"",
        "allowlisted",
        false,
    );
    let big: String = (0..400)
        .map(|i| format!("198.19.{}.{}\n", i / 250, i % 250))
        .collect();
    refused(big.as_bytes(), "\"v5\"", "max_bytes", true);
    refused(big.as_bytes(), "\"v6\"", "max_bytes", false);
    let (ok, out) = d.cli(&["status", "--json"]);
    assert!(ok, "{out}");
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    let err = st["ingest"]["feed drop"]["error"].as_str().unwrap_or("");
    assert!(
        err.contains("max_bytes"),
        "status does not show the refusal: {out}"
    );
    assert!(st["ingest"]["feed mine"]["error"].is_null(), "{out}");
    assert!(!crowdwall_table(&ns).contains("0.0.0.0/0"));
    assert!(!crowdwall_table(&ns).contains("10.99.1.0"));
}
