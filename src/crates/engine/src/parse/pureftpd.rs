//! Pure-FTPd: `(?@ADDR) [WARNING] Authentication failed for user [NAME]`.
//!
//! The address comes first, in the `(account@ADDR)` field the server writes; the user name
//! the client chose comes last.

use super::template::{Hit, Rule, Rules};
use super::{precheck, Event, EventKind, Parsed, ServiceParser, MAX_MESSAGE_LEN};
use crate::LogEntry;

pub const SERVICE: &str = "ftp";

pub struct PureFtpdParser {
    rules: Rules,
}

impl Default for PureFtpdParser {
    fn default() -> Self {
        Self::new()
    }
}

impl PureFtpdParser {
    pub fn new() -> PureFtpdParser {
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
        PureFtpdParser {
            rules: Rules::new(rules),
        }
    }
}

impl ServiceParser for PureFtpdParser {
    fn parse(&mut self, entry: &LogEntry, out: &mut Vec<Event>) -> Parsed {
        let mut msg = entry.message.trim_end_matches(' ');
        // syslog lines fed raw from a file: `pure-ftpd: (...)`.
        if let Some(r) = msg.strip_prefix("pure-ftpd: ") {
            msg = r;
        }
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
