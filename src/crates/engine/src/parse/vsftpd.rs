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
use super::template::{emit_with_user, Rule, RuleParser};
use super::EventKind;

pub const SERVICE: &str = "ftp";

/// vsftpd's parser: the rules below on the shared skeleton.
pub fn parser() -> RuleParser {
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
    RuleParser::new(SERVICE, rules, strip_own_time, emit_with_user)
}

/// `Fri Jan 19 12:20:33 2007 ` (vsftpd's own log file) -> the rest.
fn strip_own_time(m: &str) -> &str {
    let m = m.trim_end_matches(' ');
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
