//! sshd parser: OpenSSH messages (Debian 12's 9.2 and the newer `sshd-session` wording) in,
//! [`Event`]s out.
//!
//! # Attempts, not lines
//!
//! One failed password writes up to three lines with the same sshd pid (`Invalid user`, the
//! pam_unix failure, `Failed password`), and the connection ends with a summary (`Connection
//! closed by invalid user ... [preauth]`, `PAM N more authentication failures`, `maximum
//! authentication attempts exceeded`). Counting lines makes a single-password prober look like
//! a brute-forcer, so this parser counts ATTEMPTS with a small per-pid connection table:
//!
//! - `pam`: pam_unix `authentication failure` lines; `pam_err`: `error: PAM: ...` lines;
//! - `pw`: `Failed password` and `Failed keyboard-interactive/pam` lines (both go through PAM and
//!   pair with a pam_unix line, so they are counted together, not added);
//! - `other`: other failed methods (publickey, hostbased, gssapi, plain keyboard-interactive);
//! - `root`: `ROOT LOGIN REFUSED` lines (old sshd logs one per attempt, next to `Failed ...`);
//! - `lower`: the lower bound summary lines imply (`PAM N more` => N+1; `maximum ... exceeded`,
//!   `Too many authentication failures`, `Connection closed|reset by / Disconnected from
//!   (authenticating|invalid) user ... [preauth]`, `Failed none` => 1).
//!
//! After every line: `implied = max(max(pam, pam_err, pw) + other, root, lower)`; the parser
//! emits one `AuthFail` with `count = implied - emitted` when that is positive, and remembers
//! `emitted`. A prober trying one password thus yields exactly one attempt from its 4-5 lines.
//!
//! `Failed none`: OpenSSH logs it (for invalid users) when a client probes the `none` method,
//! which every client does before trying a password. Counting it as an attempt would
//! double-count each password that follows, so it only raises the connection's lower bound to 1
//! (a connection that probed `none` and gave up still counts once). Without a pid it counts
//! nothing.
//!
//! Entries without a pid cannot be correlated: each `Failed ...` line (not `none`) and each
//! `ROOT LOGIN REFUSED` counts one attempt, pam_unix and summary lines count nothing.
//!
//! A pid whose stored address differs from the line's was reused: its state is reset. Lines
//! that could carry client-controlled text after the address (`Disconnecting ...: %.100s`,
//! whose truncation lets a client choose how the line ends) never set or reset a pid's address:
//! they only count when the pid is already known with the same address.
//!
//! # Hostile input
//!
//! Every regex is anchored at both ends. The address is taken either from a fixed position
//! right after a literal prefix (before any client-controlled text), or from the position sshd
//! appends at the END of the message, with the user name matched greedily (`.*`) before it, so
//! a user name such as `x from 6.6.6.6 port 22` can never move it. `Failed ...` lines for valid
//! users take the account name as one token (system accounts have no spaces), so the address is
//! at a fixed position. For invalid (client-chosen) names, where client-controlled text may
//! also follow the address (`Failed publickey` with a certificate ID, `Failed hostbased` with
//! the client's user and host, or a tail like `ssh2: from 6.6.6.6 port 1 ssh2`), the line is
//! taken on its own only when it is unambiguous: the LAST address followed by a bare key type
//! and fingerprint (or nothing) must also be the FIRST address that could end the line. Any
//! other `Failed` line is only counted against the address the pid is already known by (one
//! pid is one connection, one client). Messages longer than
//! [`MAX_MESSAGE_LEN`] or containing control characters are rejected before matching.
//!
//! Host names where an address should be (UseDNS) give `Parsed::Matched` with no event.

use std::net::IpAddr;
use std::num::NonZeroUsize;

use lru::LruCache;
use regex::{CaptureLocations, Regex};

use super::{parse_ip, Event, EventKind, Parsed, MAX_MESSAGE_LEN};
use crate::time::{Micros, SECOND};
use crate::LogEntry;

/// Most connections tracked at once (least recently used ones are dropped beyond it).
pub const MAX_CONNECTIONS: usize = 65_536;
/// Connections idle for longer than this (event time) are forgotten by [`SshdParser::expire`].
pub const CONNECTION_IDLE: Micros = 600 * SECOND;
/// Pids waiting for the address of a `kex_exchange_identification` error.
const MAX_KEX_PENDING: usize = 4096;

const SERVICE: &str = "sshd";

// Pattern names, as returned in `Parsed::Matched` and listed by `pattern_names()`.
const P_FAILED: &str = "failed";
const P_FAILED_UNVERIFIED: &str = "failed_untrusted_tail";
const P_INVALID_USER: &str = "invalid_user";
const P_NOT_ALLOWED: &str = "user_not_allowed";
const P_PAM_UNIX: &str = "pam_unix_auth_failure";
const P_PAM_ERROR: &str = "pam_error";
const P_PAM_MORE: &str = "pam_more_failures";
const P_MAX_EXCEEDED: &str = "max_auth_attempts_exceeded";
const P_TOO_MANY: &str = "too_many_auth_failures";
const P_CLOSED_USER: &str = "preauth_close_user";
const P_CLOSED_ADDR: &str = "connection_closed_addr";
const P_CONNECTION_FROM: &str = "connection_from";
const P_ROOT_REFUSED: &str = "root_login_refused";
const P_NO_IDENT: &str = "no_identification";
const P_BANNER: &str = "banner_exchange";
const P_NEGOTIATE: &str = "unable_to_negotiate";
const P_BAD_PROTOCOL: &str = "bad_protocol_version";
const P_DISPATCH: &str = "dispatch_fatal";
const P_AUTH_TIMEOUT: &str = "auth_timeout";
const P_PROTOCOL_DIFFER: &str = "protocol_major_differ";
const P_KEX: &str = "kex_exchange_identification";
const P_NEGOTIATE_NO_ADDR: &str = "negotiation_failed_no_addr";
const P_RECEIVED_DISCONNECT: &str = "received_disconnect";
const P_ACCEPTED: &str = "accepted";
const P_LOCKED: &str = "account_locked";
const P_REFUSED_CONNECT: &str = "tcpwrappers_refused";
const P_SSH_SERVER: &str = "ssh_server_ltype";
const P_READ_RESET: &str = "read_socket_reset";
const P_PENALTY: &str = "drop_connection_penalty";

const PATTERN_NAMES: &[&str] = &[
    P_FAILED,
    P_FAILED_UNVERIFIED,
    P_INVALID_USER,
    P_NOT_ALLOWED,
    P_PAM_UNIX,
    P_PAM_ERROR,
    P_PAM_MORE,
    P_MAX_EXCEEDED,
    P_TOO_MANY,
    P_CLOSED_USER,
    P_CLOSED_ADDR,
    P_CONNECTION_FROM,
    P_ROOT_REFUSED,
    P_NO_IDENT,
    P_BANNER,
    P_NEGOTIATE,
    P_BAD_PROTOCOL,
    P_DISPATCH,
    P_AUTH_TIMEOUT,
    P_PROTOCOL_DIFFER,
    P_KEX,
    P_NEGOTIATE_NO_ADDR,
    P_RECEIVED_DISCONNECT,
    P_ACCEPTED,
    P_LOCKED,
    P_REFUSED_CONNECT,
    P_SSH_SERVER,
    P_READ_RESET,
    P_PENALTY,
];

// A fingerprint as sshd prints it after `ssh2: KEYTYPE `: SHA256 base64 or MD5 hex pairs.
// Neither contains a space or a quote, so a tail ending in client-controlled text cannot
// pass for one.
const KEY_TAIL: &str =
    r"(?:: [A-Z0-9-]+ (?:SHA256:\S+|MD5:[0-9a-f:]+|[0-9a-f]{2}(?::[0-9a-f]{2})+))?";
const PAM_FIELDS: &str =
    r"logname=\S* uid=\d* euid=\d* tty=\S* ruser=(\S*) rhost=(\S*)(?: +user=(.*))?";

/// One compiled pattern with its reusable capture slots (no allocation per match).
struct Rx {
    re: Regex,
    locs: CaptureLocations,
}

impl Rx {
    fn new(pattern: &str) -> Rx {
        // Only literal patterns reach here; `patterns_compile` tests them all.
        let re = Regex::new(pattern).expect("literal sshd pattern");
        let locs = re.capture_locations();
        Rx { re, locs }
    }

    /// Runs the pattern; on a match returns capture groups 1..=5 (None where they did not take part).
    fn run<'t>(&mut self, s: &'t str) -> Option<[Option<&'t str>; 5]> {
        self.re.captures_read(&mut self.locs, s)?;
        let mut g = [None; 5];
        for (i, slot) in g.iter_mut().enumerate() {
            *slot = self.locs.get(i + 1).map(|(a, b)| &s[a..b]);
        }
        Some(g)
    }
}

struct Patterns {
    failed_valid: Rx,
    failed_greedy: Rx,
    failed_lazy: Rx,
    failed_loose: Rx,
    invalid_user: Rx,
    not_allowed: Rx,
    pam_unix: Rx,
    pam_error: Rx,
    pam_more: Rx,
    max_exceeded: Rx,
    disconnecting_user: Rx,
    disconnecting_bare: Rx,
    closed_user: Rx,
    closed_addr: Rx,
    connection_from: Rx,
    received_disconnect: Rx,
    root_refused: Rx,
    no_ident: Rx,
    banner: Rx,
    negotiate: Rx,
    bad_protocol: Rx,
    dispatch: Rx,
    auth_timeout: Rx,
    protocol_differ: Rx,
    accepted: Rx,
    locked: Rx,
    refused_connect: Rx,
    ssh_server: Rx,
    penalty: Rx,
}

impl Patterns {
    fn new() -> Patterns {
        Patterns {
            // Valid users are accounts of this system (no spaces): the address sits at a fixed
            // position, whatever follows it.
            failed_valid: Rx::new(
                r"^Failed (\S+) for (\S+) from (\S+)(?: port \d+)?(?: ssh\d?)?(?:: .*)?$",
            ),
            // Invalid (client-chosen) users: greedy name, address where sshd appends it, and
            // only a key-fingerprint tail.
            failed_greedy: Rx::new(&format!(
                r"^Failed (\S+) for (invalid user )?(.*) from (\S+)(?: port \d+)?(?: ssh\d?)?{KEY_TAIL}$"
            )),
            // The same with the FIRST plausible address and any tail: when it disagrees with the
            // greedy one, the line is ambiguous (a user name holding ` from X port N`).
            failed_lazy: Rx::new(
                r"^Failed (\S+) for (?:invalid user )?(.*?) from (\S+)(?: port \d+)?(?: ssh\d?)?(?:: .*)?$",
            ),
            failed_loose: Rx::new(r"^Failed (\S+) for .* ssh\d?: .*$"),
            invalid_user: Rx::new(r"^(?:Invalid|Illegal) user (.*) from (\S+)(?: port \d+)?$"),
            not_allowed: Rx::new(r"^User (.*) from (\S+) not allowed because .*$"),
            pam_unix: Rx::new(&format!(
                r"^pam_unix\(sshd:auth\): authentication failure; {PAM_FIELDS}$"
            )),
            pam_error: Rx::new(
                r"^PAM: (?:[Aa]uthentication (?:failure|error)|User not known to the underlying authentication module) for (illegal user )?(.*) from (\S+)(?: via \S+)?$",
            ),
            pam_more: Rx::new(&format!(
                r"^PAM (\d+) more authentication failures?; {PAM_FIELDS}$"
            )),
            max_exceeded: Rx::new(
                r"^maximum authentication attempts exceeded for (invalid user )?(.*) from (\S+) port \d+ ssh\d?$",
            ),
            disconnecting_user: Rx::new(
                r"^Disconnecting (?:authenticating|invalid) user (.*) (\S+) port \d+: (?:Too many authentication failures|Change of username or service not allowed: .*)$",
            ),
            disconnecting_bare: Rx::new(
                r"^Disconnecting: Too many authentication failures(?: for .*)?$",
            ),
            closed_user: Rx::new(
                r"^(?:Connection (?:closed|reset) by|Disconnected from) (?:authenticating|invalid) user (.*) (\S+) port \d+$",
            ),
            closed_addr: Rx::new(
                r"^(?:Connection (?:closed|reset) by|Disconnected from) (\S+)(?: port \d+)?$",
            ),
            connection_from: Rx::new(
                r"^Connection from (\S+) port \d+(?: on \S+ port \d+(?: rdomain .*)?)?$",
            ),
            // The reason after the code is the client's own text; the address comes first.
            received_disconnect: Rx::new(
                r"^Received disconnect from (\S+)(?: port \d+)?: ?(\d+): (.*)$",
            ),
            root_refused: Rx::new(r"^ROOT LOGIN REFUSED FROM (\S+)(?: port \d+)?$"),
            no_ident: Rx::new(r"^Did not receive identification string from (\S+)(?: port \d+)?$"),
            banner: Rx::new(r"^banner exchange: Connection from (\S+) port \d+: .*$"),
            negotiate: Rx::new(r"^Unable to negotiate with (\S+) port \d+: no matching .*$"),
            bad_protocol: Rx::new(
                r"^Bad protocol version identification '.*' from (\S+)(?: port \d+)?$",
            ),
            dispatch: Rx::new(
                r"^ssh_dispatch_run_fatal: Connection from (?:(?:authenticating |invalid )?user (.*) )?(\S+) port \d+: [^:]*$",
            ),
            auth_timeout: Rx::new(r"^Timeout before authentication for (\S+) port \d+$"),
            protocol_differ: Rx::new(
                r"^Protocol major versions differ for (\S+) port \d+(?:: .*)?$",
            ),
            // Accepted users authenticated as accounts of this system: fixed position.
            accepted: Rx::new(r"^Accepted (\S+) for (\S+) from (\S+) port \d+ ssh\d?(?:: .*)?$"),
            // An existing (system) account: the name is not the client's text.
            locked: Rx::new(r"^User (\S+) not allowed because account is locked$"),
            // tcpd: `refused connect from NAME (ADDR)`; a name holds no space or parenthesis.
            refused_connect: Rx::new(r"^refused connect from [^\s()]+ \(([^\s()]+)\)$"),
            // Old SunSSH/Solaris connection summaries: the address after a literal prefix.
            ssh_server: Rx::new(
                r"^SSH: Server;Ltype: (?:Version|Kex|Authname);Remote: ([0-9A-Fa-f:.]+)-\d+;.*$",
            ),
            // OpenSSH 9.8+ PerSourcePenalties / MaxStartups, logged by the listener.
            penalty: Rx::new(
                r"^drop connection #\d+ from \[([0-9A-Fa-f:.]+)\]:\d+ on \[[0-9A-Fa-f:.]+\]:\d+ .*$",
            ),
        }
    }
}

/// What the parser remembers of one sshd connection (keyed by pid).
#[derive(Debug, Clone)]
struct Conn {
    ip: IpAddr,
    last: Micros,
    user: Option<Box<str>>,
    pam: u32,
    pam_err: u32,
    pw: u32,
    other: u32,
    root: u32,
    lower: u32,
    /// Failed publickey of a valid account: deferred like `pam` (an agent offering several
    /// keys before the right one is no attacker).
    pk: u32,
    emitted: u32,
    invalid_user_sent: bool,
    /// `pam` and `pk` count: the connection ended (or went on) without a success that
    /// forgives them, or tried a second user name.
    confirmed: bool,
    /// Failures named more than one user (an intruder guessing several accounts).
    many_users: bool,
    /// Authenticated: its close is an ordinary end of session.
    succeeded: bool,
    /// `Received disconnect` seen: a second one is a new connection on a reused pid.
    disconnected: bool,
}

impl Conn {
    fn new(ip: IpAddr, now: Micros) -> Conn {
        Conn {
            ip,
            last: now,
            user: None,
            pam: 0,
            pam_err: 0,
            pw: 0,
            other: 0,
            root: 0,
            lower: 0,
            pk: 0,
            emitted: 0,
            invalid_user_sent: false,
            confirmed: false,
            many_users: false,
            succeeded: false,
            disconnected: false,
        }
    }

    /// Attempts this connection is known to have made so far.
    fn implied(&self) -> u32 {
        let (pam, pk) = if self.confirmed {
            (self.pam, self.pk)
        } else {
            (0, 0)
        };
        let pam_backed = pam.max(self.pam_err).max(self.pw);
        pam_backed
            .saturating_add(self.other)
            .saturating_add(pk)
            .max(self.root)
            .max(self.lower)
    }

    /// Attempts not yet emitted; marks them emitted.
    fn settle(&mut self) -> u32 {
        let implied = self.implied();
        let n = implied.saturating_sub(self.emitted);
        self.emitted = self.emitted.max(implied);
        n
    }

    fn note_user(&mut self, user: Option<&str>) {
        if let Some(u) = user.filter(|u| !u.is_empty()) {
            match self.user.as_deref() {
                Some(known) if known == u => {}
                Some(_) => {
                    self.user = Some(u.into());
                    self.many_users = true;
                    self.confirmed = true;
                }
                None => self.user = Some(u.into()),
            }
        }
    }
}

/// Which counter a line feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fail {
    /// pam_unix `authentication failure`.
    Pam,
    /// `error: PAM: Authentication failure for ...`.
    PamErr,
    /// `Failed password` / `Failed keyboard-interactive/pam`.
    Password,
    /// Other failed methods.
    Other,
    /// `Failed publickey` for a valid account: counts once the connection ends unforgiven.
    PublicKey,
    /// `Failed none`: lower bound 1 only.
    None,
    /// `ROOT LOGIN REFUSED`.
    Root,
    /// A summary line: the connection made at least this many attempts.
    AtLeast(u32),
}

/// What an address-less line becomes once a bare close gives the pid's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Probe,
    TooMany,
    /// `User X not allowed because account is locked`: one failed attempt.
    Locked,
}

/// How a line may use the pid table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// The address comes from a position the client cannot move: it may set or reset the pid.
    Establish,
    /// Only counts when the pid is already known with this address.
    Confirm,
}

/// The sshd parser. Pure: no I/O, no clock.
pub struct SshdParser {
    rx: Patterns,
    conns: LruCache<u32, Conn>,
    /// Pids that logged an address-less line (`kex_exchange_identification`, `Disconnecting:
    /// Too many authentication failures`) whose address only a later bare close will give.
    pending: LruCache<u32, (Micros, Pending)>,
}

impl Default for SshdParser {
    fn default() -> Self {
        Self::new()
    }
}

/// Rejects what no real sshd line contains: control characters (C0, DEL, C1) and line
/// separators.
pub(crate) fn has_control(s: &str) -> bool {
    if s.is_ascii() {
        s.bytes().any(|b| b < 0x20 || b == 0x7f)
    } else {
        // C1 controls, and the Unicode line and paragraph separators some viewers break on.
        s.chars()
            .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
    }
}

fn ev(time: Micros, kind: EventKind, ip: IpAddr, user: Option<&str>, count: u32) -> Event {
    Event::new(time, SERVICE, kind, ip)
        .with_user(user)
        .with_count(count)
}

impl SshdParser {
    pub fn new() -> Self {
        SshdParser {
            rx: Patterns::new(),
            conns: LruCache::new(NonZeroUsize::new(MAX_CONNECTIONS).unwrap_or(NonZeroUsize::MIN)),
            pending: LruCache::new(NonZeroUsize::new(MAX_KEX_PENDING).unwrap_or(NonZeroUsize::MIN)),
        }
    }

    /// Names of the patterns this parser knows, for `explain`.
    pub fn pattern_names() -> &'static [&'static str] {
        PATTERN_NAMES
    }

    /// Connections currently tracked.
    pub fn tracked_connections(&self) -> usize {
        self.conns.len()
    }

    /// Forgets connections idle (in event time) for more than [`CONNECTION_IDLE`].
    pub fn expire(&mut self, now: Micros) {
        let cutoff = now.saturating_sub(CONNECTION_IDLE);
        while let Some((_, c)) = self.conns.peek_lru() {
            if c.last >= cutoff {
                break;
            }
            self.conns.pop_lru();
        }
        while let Some((_, &(t, _))) = self.pending.peek_lru() {
            if t >= cutoff {
                break;
            }
            self.pending.pop_lru();
        }
    }

    /// Parses one entry; events are appended to `out`.
    pub fn parse(&mut self, entry: &LogEntry, out: &mut Vec<Event>) -> Parsed {
        let msg = entry.message.as_str();
        if msg.len() > MAX_MESSAGE_LEN {
            return Parsed::Rejected("too_long");
        }
        if has_control(msg) {
            return Parsed::Rejected("control_character");
        }
        // rsyslog's dedup wrapper: `message repeated N times: [ MSG]`.
        if let Some(rest) = msg.strip_prefix("message repeated ") {
            let Some((n, inner)) = rest.split_once(" times: [") else {
                return Parsed::Unmatched;
            };
            let Some(inner) = inner.strip_suffix(']') else {
                return Parsed::Unmatched;
            };
            let Ok(n) = n.parse::<u32>() else {
                return Parsed::Unmatched;
            };
            let inner = inner.strip_prefix(' ').unwrap_or(inner);
            if n == 0 || inner.starts_with("message repeated ") {
                return Parsed::Unmatched;
            }
            return self.parse_message(entry, inner, n, out);
        }
        self.parse_message(entry, msg, 1, out)
    }

    fn parse_message(
        &mut self,
        entry: &LogEntry,
        msg: &str,
        n: u32,
        out: &mut Vec<Event>,
    ) -> Parsed {
        let msg = strip_foreign_prefix(msg);
        let m = msg
            .strip_prefix("error: ")
            .or_else(|| msg.strip_prefix("fatal: "))
            .unwrap_or(msg);
        let m = m.trim_end_matches(' ');
        let (m, preauth) = match m.strip_suffix(" [preauth]") {
            Some(s) => (s, true),
            None => (m, false),
        };
        let t = entry.time;
        let pid = entry.pid;
        let rx = &mut self.rx;

        // Dispatch on a literal prefix; at most two regexes run per line.
        let Some(&first) = m.as_bytes().first() else {
            return Parsed::Unmatched;
        };
        match first {
            b'F' if m.starts_with("Failed ") => {
                let rest = &m["Failed ".len()..];
                let invalid_form = rest
                    .split_once(" for ")
                    .is_some_and(|(_, r)| r.starts_with("invalid user "));
                let fixed = if invalid_form {
                    None
                } else {
                    rx.failed_valid.run(m).map(|g| (g[0], g[1], g[2]))
                };
                let found = fixed.or_else(|| {
                    // Client-chosen name: accept only an unambiguous line, where the last
                    // address (strict tail) is also the first one.
                    let g = rx.failed_greedy.run(m)?;
                    let l = rx.failed_lazy.run(m)?;
                    (g[3] == l[2]).then_some((g[0], g[2], g[3]))
                });
                if let Some((Some(method), user, Some(ip))) = found {
                    let Some(ip) = parse_ip(ip) else {
                        return Parsed::Matched(P_FAILED);
                    };
                    let fail = match classify_method(method) {
                        Fail::Other if method == "publickey" && !invalid_form => Fail::PublicKey,
                        f => f,
                    };
                    let inv = if invalid_form { user } else { None };
                    self.fail(t, pid, ip, user, fail, n, Trust::Establish, inv, out);
                    return Parsed::Matched(P_FAILED);
                }
                if let Some(g) = rx.failed_loose.run(m).or_else(|| rx.failed_lazy.run(m)) {
                    // Ambiguous, or a tail carrying client text (certificate ID, hostbased
                    // client user and host): count for the pid's known address only.
                    let fail = classify_method(g[0].unwrap_or(""));
                    if let Some(ip) = pid.and_then(|p| self.conns.peek(&p)).map(|c| c.ip) {
                        self.fail(t, pid, ip, None, fail, n, Trust::Confirm, None, out);
                    }
                    return Parsed::Matched(P_FAILED_UNVERIFIED);
                }
                Parsed::Unmatched
            }
            b'I' if m.starts_with("Invalid user ") || m.starts_with("Illegal user ") => {
                let Some(g) = rx.invalid_user.run(m) else {
                    return Parsed::Unmatched;
                };
                if let (user, Some(ip)) = (g[0], g[1]) {
                    if let Some(ip) = parse_ip(ip) {
                        self.invalid_user(t, pid, ip, user, n, out);
                    }
                }
                Parsed::Matched(P_INVALID_USER)
            }
            b'U' if m.starts_with("User ")
                && m.ends_with(" not allowed because account is locked") =>
            {
                let Some(g) = rx.locked.run(m) else {
                    return Parsed::Unmatched;
                };
                let Some(p) = pid else {
                    return Parsed::Matched(P_LOCKED);
                };
                if let Some(ip) = self.conns.peek(&p).map(|c| c.ip) {
                    let fail = Fail::AtLeast(1);
                    self.fail(t, pid, ip, g[0], fail, 1, Trust::Confirm, None, out);
                } else {
                    self.pending.put(p, (t, Pending::Locked));
                }
                Parsed::Matched(P_LOCKED)
            }
            b'U' if m.starts_with("User ") => {
                let Some(g) = rx.not_allowed.run(m) else {
                    return Parsed::Unmatched;
                };
                if let (user, Some(ip)) = (g[0], g[1]) {
                    if let Some(ip) = parse_ip(ip) {
                        self.invalid_user(t, pid, ip, user, n, out);
                    }
                }
                Parsed::Matched(P_NOT_ALLOWED)
            }
            b'U' if m.starts_with("Unable to negotiate with ") => {
                self.probe(t, pid, m, n, out, |rx| &mut rx.negotiate, 0, P_NEGOTIATE)
            }
            b'p' if m.starts_with("pam_unix(sshd:auth): authentication failure; ") => {
                let Some(g) = rx.pam_unix.run(m) else {
                    return Parsed::Unmatched;
                };
                if let (ruser, Some(ip), user) = (g[0], g[1], g[2]) {
                    if let Some(ip) = parse_ip(ip) {
                        // `user=` is the account tried; some PAM stacks name it in `ruser=`.
                        let user = user
                            .filter(|u| !u.is_empty())
                            .or(ruser.filter(|u| !u.is_empty()));
                        self.fail(t, pid, ip, user, Fail::Pam, n, Trust::Establish, None, out);
                    }
                }
                Parsed::Matched(P_PAM_UNIX)
            }
            b'P' if m.starts_with("PAM: ") => {
                let Some(g) = rx.pam_error.run(m) else {
                    return Parsed::Unmatched;
                };
                if let (illegal, user, Some(ip)) = (g[0], g[1], g[2]) {
                    if let Some(ip) = parse_ip(ip) {
                        let inv = if illegal.is_some() { user } else { None };
                        self.fail(
                            t,
                            pid,
                            ip,
                            user,
                            Fail::PamErr,
                            n,
                            Trust::Establish,
                            inv,
                            out,
                        );
                    }
                }
                Parsed::Matched(P_PAM_ERROR)
            }
            b'P' if m.starts_with("PAM ") => {
                let Some(g) = rx.pam_more.run(m) else {
                    return Parsed::Unmatched;
                };
                if let (Some(k), Some(ip), user) = (g[0], g[2], g[3]) {
                    let k = k.parse::<u32>().unwrap_or(u32::MAX);
                    if let Some(ip) = parse_ip(ip) {
                        let user = user.filter(|u| !u.is_empty());
                        let fail = Fail::AtLeast(k.saturating_add(1));
                        self.fail(t, pid, ip, user, fail, 1, Trust::Establish, None, out);
                    }
                }
                Parsed::Matched(P_PAM_MORE)
            }
            b'P' if m.starts_with("Protocol major versions differ for ") => self.probe(
                t,
                pid,
                m,
                n,
                out,
                |rx| &mut rx.protocol_differ,
                0,
                P_PROTOCOL_DIFFER,
            ),
            b'm' if m.starts_with("maximum authentication attempts exceeded for ") => {
                let Some(g) = rx.max_exceeded.run(m) else {
                    return Parsed::Unmatched;
                };
                if let (inv, user, Some(ip)) = (g[0], g[1], g[2]) {
                    if let Some(ip) = parse_ip(ip) {
                        let inv = if inv.is_some() { user } else { None };
                        let fail = Fail::AtLeast(1);
                        self.fail(t, pid, ip, user, fail, 1, Trust::Establish, inv, out);
                    }
                }
                Parsed::Matched(P_MAX_EXCEEDED)
            }
            b'D' if m.starts_with("Disconnecting: Too many authentication failures") => {
                if rx.disconnecting_bare.run(m).is_none() {
                    return Parsed::Unmatched;
                }
                let Some(p) = pid else {
                    return Parsed::Matched(P_TOO_MANY);
                };
                if let Some(ip) = self.conns.peek(&p).map(|c| c.ip) {
                    let fail = Fail::AtLeast(1);
                    self.fail(t, pid, ip, None, fail, 1, Trust::Confirm, None, out);
                } else {
                    self.pending.put(p, (t, Pending::TooMany));
                }
                Parsed::Matched(P_TOO_MANY)
            }
            b'D' if m.starts_with("Disconnecting ") => {
                // `Disconnecting <who>: %.100s`: the client chooses how a truncated line ends,
                // so this line only confirms a pid already known with the same address.
                let Some(g) = rx.disconnecting_user.run(m) else {
                    return Parsed::Unmatched;
                };
                if let (user, Some(ip)) = (g[0], g[1]) {
                    if let Some(ip) = parse_ip(ip) {
                        let fail = Fail::AtLeast(1);
                        self.fail(t, pid, ip, user, fail, 1, Trust::Confirm, None, out);
                    }
                }
                Parsed::Matched(P_TOO_MANY)
            }
            b'D' if m.starts_with("Did not receive identification string from ") => {
                self.probe(t, pid, m, n, out, |rx| &mut rx.no_ident, 0, P_NO_IDENT)
            }
            b'D' | b'C'
                if m.starts_with("Disconnected from ")
                    || m.starts_with("Connection closed by ")
                    || m.starts_with("Connection reset by ") =>
            {
                if let Some(g) = rx.closed_user.run(m) {
                    if !preauth {
                        // After authentication: an ordinary end of session.
                        return Parsed::Unmatched;
                    }
                    if let (user, Some(ip)) = (g[0], g[1]) {
                        if let Some(ip) = parse_ip(ip) {
                            // The end of an unauthenticated connection: deferred failures
                            // count now. One that never tried a password is a probe.
                            let fail = Fail::AtLeast(0);
                            self.fail(t, pid, ip, user, fail, 1, Trust::Establish, None, out);
                            if self.untried(pid, ip) {
                                out.push(ev(t, EventKind::Probe, ip, None, n));
                            }
                        }
                    }
                    return Parsed::Matched(P_CLOSED_USER);
                }
                if !preauth && m.starts_with("Disconnected from ") {
                    // The end of an authenticated session (`Disconnected from user ...`).
                    return Parsed::Unmatched;
                }
                let Some(g) = rx.closed_addr.run(m) else {
                    return Parsed::Unmatched;
                };
                let Some(ip) = g[0].and_then(parse_ip) else {
                    return Parsed::Matched(P_CLOSED_ADDR);
                };
                let before = out.len();
                // A bare close (the address at a fixed position) ends a connection whose
                // address-less error is pending: that error counts now.
                if let Some(p) = pid {
                    self.resolve_pending(t, p, ip, n, out);
                    // A known connection's deferred failures count at its end.
                    let fail = Fail::AtLeast(0);
                    self.fail(t, pid, ip, None, fail, 1, Trust::Confirm, None, out);
                }
                // Closed before authentication and nothing else said: a probe (scanners,
                // banner grabbers, clients that give up at the host key).
                if preauth && out.len() == before {
                    out.push(ev(t, EventKind::Probe, ip, None, n));
                }
                Parsed::Matched(P_CLOSED_ADDR)
            }
            b'C' if m.starts_with("Connection from ") => {
                let Some(g) = rx.connection_from.run(m) else {
                    return Parsed::Unmatched;
                };
                // First line of a connection (LogLevel VERBOSE): a new pid state.
                if let (Some(p), Some(ip)) = (pid, g[0].and_then(parse_ip)) {
                    self.conns.put(p, Conn::new(ip, t));
                    self.pending.pop(&p);
                }
                Parsed::Matched(P_CONNECTION_FROM)
            }
            b'R' if m.starts_with("ROOT LOGIN REFUSED FROM ") => {
                let Some(g) = rx.root_refused.run(m) else {
                    return Parsed::Unmatched;
                };
                if let Some(ip) = g[0].and_then(parse_ip) {
                    let user = Some("root");
                    self.fail(t, pid, ip, user, Fail::Root, n, Trust::Establish, None, out);
                }
                Parsed::Matched(P_ROOT_REFUSED)
            }
            b'b' if m.starts_with("banner exchange: ") => {
                self.probe(t, pid, m, n, out, |rx| &mut rx.banner, 0, P_BANNER)
            }
            b'B' if m.starts_with("Bad protocol version identification ") => self.probe(
                t,
                pid,
                m,
                n,
                out,
                |rx| &mut rx.bad_protocol,
                0,
                P_BAD_PROTOCOL,
            ),
            b's' if m.starts_with("ssh_dispatch_run_fatal: ") => {
                self.probe(t, pid, m, n, out, |rx| &mut rx.dispatch, 1, P_DISPATCH)
            }
            b'T' if m.starts_with("Timeout before authentication for ") => self.probe(
                t,
                pid,
                m,
                n,
                out,
                |rx| &mut rx.auth_timeout,
                0,
                P_AUTH_TIMEOUT,
            ),
            b'k' if m.starts_with("kex_exchange_identification: ") => {
                self.probe_no_addr(t, pid, n, out);
                Parsed::Matched(P_KEX)
            }
            b'U' | b'n'
                if m.starts_with("Unable to negotiate a ") || m.starts_with("no matching ") =>
            {
                self.probe_no_addr(t, pid, n, out);
                Parsed::Matched(P_NEGOTIATE_NO_ADDR)
            }
            b'R' if m.starts_with("Received disconnect from ") => {
                let Some(g) = rx.received_disconnect.run(m) else {
                    return Parsed::Unmatched;
                };
                let (Some(ip), Some(code), Some(reason)) = (g[0], g[1], g[2]) else {
                    return Parsed::Unmatched;
                };
                let Some(ip) = parse_ip(ip) else {
                    return Parsed::Matched(P_RECEIVED_DISCONNECT);
                };
                if let Some(p) = pid {
                    // One disconnect per connection: a second one is a reused pid.
                    if self
                        .conns
                        .peek(&p)
                        .is_some_and(|c| c.disconnected && c.ip == ip)
                    {
                        self.conns.pop(&p);
                    }
                    self.resolve_pending(t, p, ip, n, out);
                }
                let lower = match code {
                    // SSH2_DISCONNECT_PROTOCOL_ERROR with "...: Auth fail" (JSch clients
                    // reporting their own failed authentication): at least one attempt.
                    "3" if reason.ends_with(": Auth fail") => 1,
                    _ => 0,
                };
                // Only an attempt may start a connection here: an ordinary goodbye ends one
                // that is known (its deferred failures count) and creates nothing.
                let trust = if lower > 0 {
                    Trust::Establish
                } else {
                    Trust::Confirm
                };
                self.fail(t, pid, ip, None, Fail::AtLeast(lower), 1, trust, None, out);
                if let Some(c) = pid.and_then(|p| self.conns.get_mut(&p)) {
                    c.disconnected = true;
                }
                match code {
                    "3" if lower == 1 => {}
                    // SSH2_DISCONNECT_BY_APPLICATION: the client's goodbye, which ends what
                    // an address-less line (a locked account) left pending.
                    "11" => {}
                    // SSH2_DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE: a client with nothing
                    // the server accepts (bots against key-only servers).
                    "14" if reason.starts_with("No ")
                        && reason.contains("authentication methods available") =>
                    {
                        out.push(ev(t, EventKind::Probe, ip, None, n));
                    }
                    _ => return Parsed::Unmatched,
                }
                Parsed::Matched(P_RECEIVED_DISCONNECT)
            }
            b'A' if m.starts_with("Accepted ") => {
                let Some(g) = rx.accepted.run(m) else {
                    return Parsed::Unmatched;
                };
                if let (Some(user), Some(ip)) = (g[1], g[2]) {
                    if let Some(ip) = parse_ip(ip) {
                        let Some(p) = pid else {
                            out.push(ev(t, EventKind::Success, ip, Some(user), n));
                            return Parsed::Matched(P_ACCEPTED);
                        };
                        let Some(c) = self.conn(p, ip, t, Trust::Establish) else {
                            return Parsed::Matched(P_ACCEPTED);
                        };
                        // Failures for other accounts on this connection are not forgiven
                        // by getting into one: they count, and nothing is cancelled.
                        let tainted = c.many_users || c.user.as_deref().is_some_and(|u| u != user);
                        if tainted {
                            c.confirmed = true;
                            let k = c.settle();
                            if k > 0 {
                                out.push(ev(t, EventKind::AuthFail, ip, Some(user), k));
                            }
                        } else {
                            // The same account's deferred failures (pam lines, keys an agent
                            // offered first) are forgiven.
                            c.pam = 0;
                            c.pk = 0;
                            c.succeeded = true;
                            out.push(ev(t, EventKind::Success, ip, Some(user), n));
                        }
                    }
                }
                Parsed::Matched(P_ACCEPTED)
            }
            b'r' if m.starts_with("refused connect from ") => {
                let Some(g) = rx.refused_connect.run(m) else {
                    return Parsed::Unmatched;
                };
                // tcp_wrappers refused the client by policy: one attempt, no correlation.
                if let Some(ip) = g[0].and_then(parse_ip) {
                    out.push(ev(t, EventKind::AuthFail, ip, None, n));
                }
                Parsed::Matched(P_REFUSED_CONNECT)
            }
            b'S' if m.starts_with("SSH: Server;Ltype: ") => {
                let Some(g) = rx.ssh_server.run(m) else {
                    return Parsed::Unmatched;
                };
                // Names the connection's address for later address-less lines; no event.
                if let (Some(p), Some(ip)) = (pid, g[0].and_then(parse_ip)) {
                    self.conn(p, ip, t, Trust::Establish);
                }
                Parsed::Matched(P_SSH_SERVER)
            }
            b'R' if m.starts_with("Read from socket failed: Connection reset by peer") => {
                self.probe_no_addr(t, pid, n, out);
                Parsed::Matched(P_READ_RESET)
            }
            b'd' if m.starts_with("drop connection #") => {
                self.probe(t, pid, m, n, out, |rx| &mut rx.penalty, 0, P_PENALTY)
            }
            _ => Parsed::Unmatched,
        }
    }

    /// A probe pattern whose address is capture group `ip_group` (0-based).
    #[allow(clippy::too_many_arguments)]
    fn probe(
        &mut self,
        t: Micros,
        pid: Option<u32>,
        m: &str,
        n: u32,
        out: &mut Vec<Event>,
        pick: fn(&mut Patterns) -> &mut Rx,
        ip_group: usize,
        name: &'static str,
    ) -> Parsed {
        let Some(g) = pick(&mut self.rx).run(m) else {
            return Parsed::Unmatched;
        };
        if let Some(ip) = g[ip_group].and_then(parse_ip) {
            if let Some(p) = pid {
                self.pending.pop(&p);
            }
            out.push(ev(t, EventKind::Probe, ip, None, n));
        }
        Parsed::Matched(name)
    }

    /// Whether the connection of `pid` (at `ip`) ended without any attempt or success.
    fn untried(&self, pid: Option<u32>, ip: IpAddr) -> bool {
        pid.and_then(|p| self.conns.peek(&p))
            .is_some_and(|c| c.ip == ip && c.implied() == 0 && !c.succeeded)
    }

    /// A line naming `ip` for `pid` ends what an address-less line left pending.
    fn resolve_pending(&mut self, t: Micros, p: u32, ip: IpAddr, n: u32, out: &mut Vec<Event>) {
        match self.pending.pop(&p) {
            Some((_, Pending::Probe)) => out.push(ev(t, EventKind::Probe, ip, None, n)),
            Some((_, Pending::TooMany | Pending::Locked)) => {
                let fail = Fail::AtLeast(1);
                self.fail(t, Some(p), ip, None, fail, 1, Trust::Establish, None, out);
            }
            None => {}
        }
    }

    /// A pre-authentication error that names no address: a probe for the pid's known address,
    /// or pending until a bare close names it.
    fn probe_no_addr(&mut self, t: Micros, pid: Option<u32>, n: u32, out: &mut Vec<Event>) {
        let Some(p) = pid else { return };
        if let Some(c) = self.conns.get_mut(&p) {
            c.last = c.last.max(t);
            out.push(ev(t, EventKind::Probe, c.ip, None, n));
        } else {
            self.pending.put(p, (t, Pending::Probe));
        }
    }

    /// The connection of `pid`, created or reset as `trust` allows.
    fn conn(&mut self, pid: u32, ip: IpAddr, now: Micros, trust: Trust) -> Option<&mut Conn> {
        let same = self.conns.peek(&pid).map(|c| c.ip == ip);
        match (same, trust) {
            (Some(true), _) => {}
            (_, Trust::Confirm) => return None,
            // Unknown pid, or a reused pid with a new address: a new connection.
            (_, Trust::Establish) => {
                self.conns.put(pid, Conn::new(ip, now));
            }
        }
        let c = self.conns.get_mut(&pid)?;
        c.last = c.last.max(now);
        Some(c)
    }

    fn invalid_user(
        &mut self,
        t: Micros,
        pid: Option<u32>,
        ip: IpAddr,
        user: Option<&str>,
        n: u32,
        out: &mut Vec<Event>,
    ) {
        match pid {
            None => out.push(ev(t, EventKind::InvalidUser, ip, user, n)),
            Some(p) => {
                if let Some(c) = self.conn(p, ip, t, Trust::Establish) {
                    c.note_user(user);
                    if !c.invalid_user_sent {
                        c.invalid_user_sent = true;
                        out.push(ev(t, EventKind::InvalidUser, ip, user, 1));
                    }
                }
            }
        }
    }

    /// Feeds one failure line; emits the attempts it newly implies.
    /// `invalid`: the user name when the line says it is an invalid user.
    #[allow(clippy::too_many_arguments)]
    fn fail(
        &mut self,
        t: Micros,
        pid: Option<u32>,
        ip: IpAddr,
        user: Option<&str>,
        fail: Fail,
        n: u32,
        trust: Trust,
        invalid: Option<&str>,
        out: &mut Vec<Event>,
    ) {
        let Some(p) = pid else {
            // Uncorrelated: each failed attempt line counts once; PAM and summaries nothing.
            if matches!(fail, Fail::Password | Fail::Other | Fail::Root) {
                out.push(ev(t, EventKind::AuthFail, ip, user, n));
            }
            return;
        };
        let Some(c) = self.conn(p, ip, t, trust) else {
            return;
        };
        c.note_user(user);
        match fail {
            Fail::Pam => c.pam = c.pam.saturating_add(n),
            Fail::PamErr => c.pam_err = c.pam_err.saturating_add(n),
            Fail::Password => c.pw = c.pw.saturating_add(n),
            Fail::Other => c.other = c.other.saturating_add(n),
            Fail::PublicKey => c.pk = c.pk.saturating_add(n),
            Fail::None => c.lower = c.lower.max(1),
            Fail::Root => c.root = c.root.saturating_add(n),
            Fail::AtLeast(k) => {
                // Summary and closing lines: the connection ended (or is ending) without a
                // success, so deferred failures count.
                c.confirmed = true;
                c.lower = c.lower.max(k);
            }
        }
        let send_invalid = invalid.is_some() && !c.invalid_user_sent;
        if send_invalid {
            c.invalid_user_sent = true;
        }
        let k = c.settle();
        let ip = c.ip;
        if send_invalid {
            out.push(ev(t, EventKind::InvalidUser, ip, invalid, 1));
        }
        if k > 0 {
            let u = user.or(c.user.as_deref());
            out.push(ev(t, EventKind::AuthFail, ip, u, k));
        }
    }
}

impl super::ServiceParser for SshdParser {
    fn parse(&mut self, entry: &LogEntry, out: &mut Vec<Event>) -> Parsed {
        SshdParser::parse(self, entry, out)
    }
    fn expire(&mut self, now: Micros) {
        SshdParser::expire(self, now)
    }
}

/// Drops prefixes some systems put before sshd's own text: Solaris' `[ID 800047 auth.info] `
/// and a kernel-style `kernel: [  970.699396] ` timestamp.
fn strip_foreign_prefix(m: &str) -> &str {
    if let Some(rest) = m.strip_prefix("[ID ") {
        if let Some((id, tail)) = rest.split_once("] ") {
            let ok = id.split_once(' ').is_some_and(|(n, fac)| {
                !n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_digit())
                    && fac.contains('.')
                    && fac.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
            });
            if ok {
                return tail;
            }
        }
    }
    if let Some(rest) = m.strip_prefix("kernel:") {
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        if let Some(inner) = rest.strip_prefix('[') {
            if let Some((ts, tail)) = inner.split_once(']') {
                let ts = ts.trim_start_matches(' ');
                let ok = ts.split_once('.').is_some_and(|(a, b)| {
                    !a.is_empty()
                        && !b.is_empty()
                        && a.bytes().all(|c| c.is_ascii_digit())
                        && b.bytes().all(|c| c.is_ascii_digit())
                });
                if ok {
                    let tail = tail.strip_prefix(':').unwrap_or(tail);
                    return tail.strip_prefix(' ').unwrap_or(tail);
                }
            }
        }
    }
    m
}

fn classify_method(method: &str) -> Fail {
    match method {
        "password" | "keyboard-interactive/pam" => Fail::Password,
        "none" => Fail::None,
        _ => Fail::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pid: Option<u32>, msg: &str) -> LogEntry {
        LogEntry {
            time: 1_000 * SECOND,
            identifier: "sshd".into(),
            pid,
            message: msg.into(),
        }
    }

    #[test]
    fn patterns_compile() {
        let _ = Patterns::new();
        assert_eq!(SshdParser::pattern_names().len(), PATTERN_NAMES.len());
    }

    #[test]
    fn control_characters() {
        assert!(has_control("a\nb"));
        assert!(has_control("a\u{85}b"));
        assert!(has_control("a\tb"));
        assert!(!has_control("plain é text"));
    }

    #[test]
    fn failed_none_is_lower_bound_only() {
        let mut p = SshdParser::new();
        let mut out = Vec::new();
        let ip = "192.0.2.9";
        for m in [
            format!("Failed none for invalid user x from {ip} port 5 ssh2"),
            format!("Failed password for invalid user x from {ip} port 5 ssh2"),
        ] {
            p.parse(&entry(Some(7), &m), &mut out);
        }
        let attempts: u32 = out
            .iter()
            .filter(|e| e.kind == EventKind::AuthFail)
            .map(|e| e.count)
            .sum();
        assert_eq!(attempts, 1);
    }
}
