//! Built-in scenarios for the services beyond sshd (web, mail, FTP, port scans). Parameters
//! from CrowdSec's hub defaults where it has one (shared/notes/peers.md); every key can be
//! overridden in `[scenarios.NAME]`.

use std::time::Duration;

use super::{Field, ScenarioSpec};
use crate::parse::EventKind;
use crate::time::from_duration;

fn spec(
    name: &str,
    service: &str,
    kinds: &[EventKind],
    capacity: u32,
    leak_s: u64,
    distinct: Option<Field>,
    blackhole_s: u64,
) -> ScenarioSpec {
    let s = |n: u64| from_duration(Duration::from_secs(n));
    ScenarioSpec {
        name: name.into(),
        service: Some(service.into()),
        kinds: kinds.to_vec(),
        capacity,
        leak: s(leak_s),
        distinct,
        blackhole: s(blackhole_s),
        cancel_on: vec![],
        ban: None,
    }
}

/// The scenarios, in the order `status` lists them.
pub fn builtin() -> Vec<ScenarioSpec> {
    use EventKind::*;
    let mut v = vec![
        // 400/403/404 on non-static paths; distinct paths, so a broken link clicked ten
        // times is one value.
        spec(
            "http-probing",
            "http",
            &[HttpProbe],
            10,
            10,
            Some(Field::Path),
            300,
        ),
        spec(
            "http-sensitive-files",
            "http",
            &[HttpSensitive],
            4,
            5,
            Some(Field::Path),
            300,
        ),
        spec(
            "http-path-traversal",
            "http",
            &[HttpTraversal],
            3,
            10,
            Some(Field::Path),
            120,
        ),
        spec(
            "http-admin-probing",
            "http",
            &[HttpAdminProbe],
            2,
            10,
            Some(Field::Path),
            60,
        ),
        spec(
            "http-bad-user-agent",
            "http",
            &[HttpBadAgent],
            1,
            60,
            None,
            120,
        ),
        // Failed logins: basic/digest auth (error logs) and POST answered 401/403 (login
        // forms). Credential stuffing (one try per user name) is the same events, so the
        // fast and slow buckets catch it whatever the names.
        spec("http-bruteforce", "http", &[AuthFail], 5, 10, None, 60),
        spec(
            "http-slow-bruteforce",
            "http",
            &[AuthFail],
            10,
            60,
            None,
            60,
        ),
        spec("mail-bruteforce", "mail", &[AuthFail], 5, 10, None, 60),
        spec(
            "mail-slow-bruteforce",
            "mail",
            &[AuthFail],
            10,
            60,
            None,
            60,
        ),
        // Rejected RCPT/HELO/sender, pipelining, too many errors: spam bots and relay
        // probing. A legitimate server retries minutes apart and leaks out.
        spec("mail-probing", "mail", &[Probe], 5, 60, None, 60),
        spec("ftp-bruteforce", "ftp", &[AuthFail], 5, 10, None, 60),
        spec("ftp-slow-bruteforce", "ftp", &[AuthFail], 10, 60, None, 60),
        spec(
            "port-scan",
            "firewall",
            &[PortProbe],
            15,
            5,
            Some(Field::Port),
            60,
        ),
    ];
    for s in &mut v {
        if s.kinds == [AuthFail] {
            s.cancel_on = vec![Success];
        }
    }
    v
}
