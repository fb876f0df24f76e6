//! vsftpd: PAM failures (`pam_unix(vsftpd:auth)` and the old `(pam_unix)` form) and
//! vsftpd's own `FAIL LOGIN` / `OK LOGIN` lines (its log file, or syslog with
//! `syslog_enable=YES`).
//!
//! In `[pid N] [USER] FAIL LOGIN: Client "ADDR"`, USER is the client's text; the address is
//! the last quoted one before an optional server-written reason (greedy user name), so a
//! user name holding `] FAIL LOGIN: Client "6.6.6.6` cannot move it.
//!
//! With PAM, one failure writes both a PAM line and a `FAIL LOGIN` line when both logs are
//! read: read one of them (the `FAIL LOGIN` lines cover every authentication back end).

use super::dovecot::PAM_BODY;
use super::template::{Hit, Rule, Rules};
use super::{precheck, Event, EventKind, Parsed, ServiceParser, MAX_MESSAGE_LEN};
use crate::LogEntry;

pub const SERVICE: &str = "ftp";

pub struct VsftpdParser {
    rules: Rules,
}

impl Default for VsftpdParser {
    fn default() -> Self {
        Self::new()
    }
}

impl VsftpdParser {
    pub fn new() -> VsftpdParser {
        use EventKind::*;
        let rules = vec![
            Rule::builtin(
                "fail_login",
                "] FAIL LOGIN: Client \"",
                AuthFail,
                r#"(?:\[pid [0-9]+\] )?\[<user>\] FAIL LOGIN: Client "<ip>"(?:, "[^"]*")?"#,
            ),
            Rule::builtin(
                "ok_login",
                "] OK LOGIN: Client \"",
                Success,
                r#"(?:\[pid [0-9]+\] )?\[<user>\] OK LOGIN: Client "<ip>"(?:, "[^"]*")?"#,
            ),
            Rule::builtin(
                "pam_unix_auth_failure",
                "authentication failure; ",
                AuthFail,
                &format!(r"(?:\(pam_unix\)|pam_unix\(vsftpd:auth\):) {PAM_BODY}"),
            ),
        ];
        VsftpdParser {
            rules: Rules::new(rules),
        }
    }
}

/// `Fri Jan 19 12:20:33 2007 ` (vsftpd's own log file) -> the rest.
fn strip_own_time(m: &str) -> &str {
    let b = m.as_bytes();
    if b.len() > 25
        && b[3] == b' '
        && b[7] == b' '
        && b[13] == b':'
        && b[16] == b':'
        && b[24] == b' '
    {
        &m[25..]
    } else {
        m
    }
}

impl ServiceParser for VsftpdParser {
    fn parse(&mut self, entry: &LogEntry, out: &mut Vec<Event>) -> Parsed {
        let msg = strip_own_time(entry.message.trim_end_matches(' '));
        if let Some(why) = precheck(msg, MAX_MESSAGE_LEN) {
            return Parsed::Rejected(why);
        }
        let Hit {
            rule: name,
            kind,
            ip,
            found: f,
        } = match self.rules.hit(msg) {
            Ok(h) => h,
            Err(p) => return p,
        };
        let user = f.user.filter(|u| !u.is_empty());
        out.push(Event::new(entry.time, SERVICE, kind, ip).with_user(user));
        Parsed::Matched(name)
    }
}
