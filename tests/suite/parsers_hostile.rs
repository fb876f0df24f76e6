//! Hostile input against every parser (property-based, `proptest`): random lines never
//! panic, over-long lines are rejected, and client-controlled fields (user names, paths,
//! user agents, referrers, HELO names, addresses in mail headers) filled with random text
//! and injected addresses never make an event carry an address other than the real one.

use proptest::prelude::*;

use crowdwall_engine::parse::user::{RuleDef, UserParser};
use crowdwall_engine::parse::{EventKind, Parsed, Parsers};
use crowdwall_engine::LogEntry;

const REAL: &str = "192.0.2.1";
const INJECTED: &[&str] = &["6.6.6.6", "::ffff:6.6.6.6", "2001:db8::66"];

thread_local! {
    // Compiling every parser's patterns per case would dominate the run: one set per thread.
    // State carried between cases only ever involves the real address.
    static PARSERS: std::cell::RefCell<Parsers> = std::cell::RefCell::new(parsers());
}

fn parse(
    id: &str,
    pid: Option<u32>,
    msg: String,
) -> (Option<Parsed>, Vec<crowdwall_engine::parse::Event>) {
    PARSERS.with(|p| {
        let mut out = Vec::new();
        let r = p
            .borrow_mut()
            .parse(&entry(id, pid, msg), &mut out)
            .map(|x| x.1);
        (r, out)
    })
}

fn parsers() -> Parsers {
    let user = vec![UserParser::new(
        "myapp",
        None,
        &["myapp".into()],
        &[
            RuleDef {
                name: None,
                kind: EventKind::AuthFail,
                pattern: "Failed login for <user> from <ip> port <port>".into(),
            },
            RuleDef {
                name: None,
                kind: EventKind::Probe,
                pattern: "<any> from <ip> said <any>".into(),
            },
        ],
    )
    .unwrap()];
    Parsers::with_user(user)
}

fn entry(identifier: &str, pid: Option<u32>, msg: String) -> LogEntry {
    LogEntry {
        time: 1_000_000,
        identifier: identifier.into(),
        pid,
        message: msg,
    }
}

/// Client-controlled text: random pieces, separators that patterns use, and fragments that
/// imitate the tails where services write the real address.
fn field() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-zA-Z0-9 ._/-]{0,10}",
        any::<char>().prop_map(|c| c.to_string()),
        Just(" ".to_string()),
        Just("\"".to_string()),
        Just("]".to_string()),
        Just("[".to_string()),
        Just(">".to_string()),
        Just("<".to_string()),
        Just(")".to_string()),
        Just(", ".to_string()),
        Just(": ".to_string()),
        prop::sample::select(INJECTED).prop_map(str::to_string),
        prop::sample::select(INJECTED).prop_map(|ip| format!("[{ip}]")),
        prop::sample::select(INJECTED).prop_map(|ip| format!(
            "\", client: {ip}, server: x, request: \"GET / HTTP/1.1\", host: \"h\""
        )),
        prop::sample::select(INJECTED).prop_map(|ip| format!(", client: {ip}, server: x")),
        prop::sample::select(INJECTED).prop_map(|ip| format!(", rip={ip}, lip=10.0.0.1")),
        prop::sample::select(INJECTED).prop_map(|ip| format!("] FAIL LOGIN: Client \"{ip}\"")),
        prop::sample::select(INJECTED).prop_map(|ip| format!("from {ip} port 22")),
        prop::sample::select(INJECTED).prop_map(|ip| format!(" rhost={ip}  user=x")),
        prop::sample::select(INJECTED).prop_map(|ip| format!("x,{ip}): unknown user")),
        prop::sample::select(INJECTED).prop_map(|ip| format!("(h[{ip}]) - ")),
        prop::sample::select(INJECTED).prop_map(|ip| format!("@{ip}) [WARNING] ")),
        prop::sample::select(INJECTED).prop_map(|ip| format!("[client {ip}] ")),
        prop::sample::select(INJECTED).prop_map(|ip| format!(" from {ip} said ")),
        prop::sample::select(INJECTED).prop_map(|ip| format!(
            "{ip} - - [20/Jan/2015:19:53:28 +0100] \"GET / HTTP/1.1\" 404 1"
        )),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|v| v.concat())
}

/// A DNS host name as Postfix and ProFTPD log it (validated: no brackets or spaces).
fn hostname() -> impl Strategy<Value = String> {
    "[a-z0-9.-]{0,20}"
}

/// (identifier, message) of a real line of each service with its client fields filled in.
fn lines() -> impl Strategy<Value = (&'static str, String)> {
    (field(), field(), field(), field(), hostname())
        .prop_flat_map(|(u, p, r, a, h)| prop::sample::select(templates(&u, &p, &r, &a, &h)))
}

/// A real line of each service, with the client-controlled fields given.
fn templates(u: &str, p: &str, r: &str, a: &str, h: &str) -> Vec<(&'static str, String)> {
    let r1 = REAL;
    vec![
            ("nginx", format!(r#"{r1} - {u} [20/Jan/2015:19:53:28 +0100] "GET /{p} HTTP/1.1" 404 1 "{r}" "{a}""#)),
            ("nginx", format!(r#"2012/04/09 11:53:29 [error] 2865#0: *1 user "{u}": password mismatch, client: {r1}, server: www, request: "GET /{p} HTTP/1.1", host: "{a}""#)),
            ("nginx", format!(r#"2012/04/09 11:53:29 [error] 2865#0: *1 user "{u}" was not found in "/etc/htpasswd", client: {r1}, server: www, request: "GET /{p} HTTP/1.1", host: "x", referrer: "{r}""#)),
            ("nginx", format!(r#"2015/01/21 10:56:10 [error] 2833#0: *1 open() "/var/www/{p}" failed (2: No such file or directory), client: {r1}, server: s, request: "GET /{p} HTTP/1.1", host: "{a}""#)),
            ("apache", format!(r#"{r1} - {u} [20/Jan/2015:19:53:28 +0100] "POST /{p} HTTP/1.1" 401 1 "{r}" "{a}""#)),
            ("apache", format!("[Sat Jun 01 02:17:42 2013] [error] [client {r1}] user {u} not found: /{p}, referer: {r}")),
            ("apache", format!("[Sat Jul 20 21:37:32.266605 2013] [auth_basic:error] [pid 1:tid 2] [client {r1}:51386] AH01617: user {u}: authentication failure for \"/{p}\": Password Mismatch")),
            ("apache", format!("[Mon Dec 23 09:49:10 2013] [error] [client {r1}] File does not exist: /var/www/{p}")),
            ("postfix/smtpd", format!("warning: {h}[{r1}]: SASL LOGIN authentication failed: {u}")),
            ("postfix/smtpd", format!("NOQUEUE: reject: RCPT from {h}[{r1}]: 554 5.7.1 <{u}>: Relay access denied; from=<{p}> to=<{u}> proto=ESMTP helo=<{a}>")),
            ("postfix/smtpd", format!("improper command pipelining after DATA from {h}[{r1}]: {u}")),
            ("dovecot", format!("imap-login: Disconnected (auth failed, 2 attempts in 3 secs): user=<{u}>, method=PLAIN, rip={r1}, lip=10.0.0.1, TLS, session=<abc>")),
            ("dovecot", format!("auth-worker(304): pam({u},{r1}): pam_authenticate() failed: Authentication failure (password mismatch?)")),
            ("dovecot", format!("auth: sql({u},{r1},<abc>): unknown user")),
            ("dovecot", format!("pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser={u} rhost={r1}  user={p}")),
            ("vsftpd", format!("[pid 27202] [{u}] FAIL LOGIN: Client \"{r1}\"")),
            ("vsftpd", format!("pam_unix(vsftpd:auth): authentication failure; logname= uid=0 euid=0 tty=ftp ruser={u} rhost={r1} user={p}")),
            ("proftpd", format!("srv ({h}[{r1}]) - USER {u} (Login failed): Incorrect password.")),
            ("proftpd", format!("srv ({h}[{r1}]): USER {u}: no such user found from {h} [{r1}] to 10.0.0.1:21")),
            ("pure-ftpd", format!("(?@{r1}) [WARNING] Authentication failed for user [{u}]")),
            ("kernel", format!("[ 12.3] {p} IN=eth0 OUT= MAC=00 SRC={r1} DST=10.0.0.1 LEN=44 PROTO=TCP SPT=1 DPT=22 WINDOW=1 RES=0x00 SYN URGP=0")),
            ("sshd", format!("Failed password for invalid user {u} from {r1} port 22 ssh2")),
            ("myapp", format!("Failed login for {u} from {r1} port 5")),
            ("myapp", format!("{u} from {r1} said {p}")),
    ]
}

const NAMES: &[&str] = &[
    "sshd",
    "nginx",
    "apache",
    "postfix",
    "dovecot",
    "vsftpd",
    "proftpd",
    "pure-ftpd",
    "kernel",
    "myapp",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn client_text_never_injects_an_address((id, msg) in lines()) {
        let (_, out) = parse(id, Some(7), msg.clone());
        for e in &out {
            prop_assert_eq!(e.ip.to_string(), REAL, "{} -> {:?}", msg, e);
        }
    }

    #[test]
    fn random_lines_never_panic(msg in ".{0,400}", which in 0..NAMES.len()) {
        let _ = parse(NAMES[which], None, msg);
    }

    #[test]
    fn random_bytes_as_text_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), which in 0..NAMES.len()) {
        // What a source hands over after lossy UTF-8 decoding of a hostile line.
        let msg = String::from_utf8_lossy(&bytes).into_owned();
        let _ = parse(NAMES[which], Some(1), msg);
    }
}

#[test]
fn clean_lines_yield_the_real_address() {
    // The templates above are real lines: with ordinary field values each one must yield an
    // event, or the injection property would hold vacuously.
    for (id, msg) in templates("bob", "index.php", "-", "Mozilla/5.0", "mail.example.com") {
        let (r, out) = parse(id, Some(9), msg.clone());
        assert!(
            out.iter().any(|e| e.ip.to_string() == REAL),
            "{id}: {msg} -> {r:?} {out:?}"
        );
    }
}

#[test]
fn lines_of_megabytes_are_rejected_by_every_parser() {
    let mut p = parsers();
    let huge = format!(
        "{REAL} - - [20/Jan/2015:19:53:28 +0100] \"GET /{} HTTP/1.1\" 404 1",
        "a".repeat(4 << 20)
    );
    for name in NAMES {
        let mut out = Vec::new();
        let r = p.parse(&entry(name, Some(1), huge.clone()), &mut out);
        assert!(out.is_empty(), "{name}");
        // The kernel parser's cheap pre-check finds no netfilter fields: unmatched, not
        // scanned.
        assert!(
            matches!(
                r,
                Some((_, Parsed::Rejected(_))) | Some((_, Parsed::Unmatched))
            ),
            "{name}: {r:?}"
        );
    }
}
