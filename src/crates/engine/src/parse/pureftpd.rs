//! Pure-FTPd: `(?@ADDR) [WARNING] Authentication failed for user [NAME]`.
//!
//! The address comes first, in the `(account@ADDR)` field the server writes; the user name
//! the client chose comes last.

use super::template::{emit_with_user, Rule, RuleParser};
use super::EventKind;

pub const SERVICE: &str = "ftp";

/// Pure-FTPd's parser: the rules below on the shared skeleton.
pub fn parser() -> RuleParser {
    let rules = vec![
        Rule::builtin(
            "auth_failed",
            "Authentication failed for user [",
            EventKind::AuthFail,
            r"\([^@\s()]*@<ip>\) \[WARNING\] Authentication failed for user \[<user>\]",
        ),
        Rule::builtin(
            "pam_unix_auth_failure",
            "authentication failure; ",
            EventKind::AuthFail,
            &format!(r"pam_unix\(pure-ftpd:auth\): {}", super::dovecot::PAM_BODY),
        ),
    ];
    RuleParser::new(SERVICE, rules, strip_tag, emit_with_user)
}

/// Syslog lines fed raw from a file: `pure-ftpd: (...)` -> `(...)`.
fn strip_tag(m: &str) -> &str {
    let m = m.trim_end_matches(' ');
    m.strip_prefix("pure-ftpd: ").unwrap_or(m)
}
