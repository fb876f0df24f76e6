//! End to end on real parts: a real nginx in a server namespace logging to the real journald
//! (`access_log syslog:`), real HTTP probing with curl from an attacker namespace, a
//! bystander namespace, and the crowdwall daemon enforcing in the server namespace's kernel.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::netns::{site, DOC};
use crate::common::nft::assert_not_in_table;
use crate::common::proc::spawn;
use crate::common::{prerequisites, wait_until, Daemon, Netns};

const SRV_ATK: &str = DOC.srv_atk;
const ATK: &str = DOC.atk;
const SRV_BY: &str = DOC.srv_by;
const BY: &str = DOC.by;

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
    let site = site("cwwb", &DOC);
    let (srv, atk, by) = (&site.srv, &site.atk, &site.by);

    let dir = tempfile::tempdir().unwrap();
    let conf = write_nginx_conf(dir.path());
    let _nginx = spawn(
        srv.command("nginx")
            .args(["-c", &conf])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "nginx",
    );
    assert!(
        wait_until(Duration::from_secs(10), || get(by, SRV_BY, "/") == "200"),
        "nginx not serving"
    );

    let d = Daemon::started(
        &srv.name,
        dir.path(),
        "[journal]\nmatches = [\"SYSLOG_IDENTIFIER=nginx\"]\n",
    );

    // The bystander: a page, and the same broken link several times.
    for _ in 0..5 {
        assert_eq!(get(by, SRV_BY, "/"), "200");
        assert_eq!(get(by, SRV_BY, "/old-link"), "404");
    }
    // The prober: many missing pages in a few seconds (stops once dropped).
    for i in 0..30 {
        if get(atk, SRV_ATK, &format!("/backup{i}.php")) == "000" {
            break;
        }
    }
    d.expect_in_kernel(srv, ATK, Duration::from_secs(15));
    assert_eq!(
        get(atk, SRV_ATK, "/"),
        "000",
        "prober still served while banned"
    );
    assert_eq!(
        get(by, SRV_BY, "/"),
        "200",
        "bystander must not be affected"
    );
    assert_not_in_table(srv, BY);
    let mine = d.one_decision_on(ATK);
    assert_eq!(mine["scenario"], "http-probing", "{mine}");
    let (ok, status) = d.cli(&["status"]);
    assert!(ok && status.contains("parser nginx:"), "{status}");
}
