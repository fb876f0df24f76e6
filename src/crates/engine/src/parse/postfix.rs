//! Postfix (`postfix/smtpd`, `postfix/submission/smtpd`, `postfix/postscreen`, and other
//! `postfix*/...` instances): SASL authentication failures and rejected clients.
//!
//! The client is logged as `NAME[ADDR]` right after `from ` (or `warning: `), before the
//! HELO name, sender and recipient the client chose. NAME is the reverse DNS name Postfix
//! verified (or `unknown`), which holds no brackets or spaces, so the first `[ADDR]` is the
//! client's and cannot be moved by later text.

use super::template::{trim_end, Emit, Rule, RuleParser};
use super::{Event, EventKind, Parsed};

pub const SERVICE: &str = "mail";

const CLIENT: &str = r"<host>\[<ip>\](?::[0-9]{1,5})?";

/// Postfix's parser: the rules below on the shared skeleton.
pub fn parser() -> RuleParser {
    use EventKind::*;
    let rules = vec![
        Rule::builtin(
            "sasl_failed",
            "authentication failed",
            AuthFail,
            &format!(r"warning: {CLIENT}: SASL [A-Za-z0-9_-]+ authentication failed:(?: .*)?"),
        ),
        Rule::builtin(
            "reject",
            "reject: ",
            Probe,
            &format!(
                r"(?:NOQUEUE|[0-9A-Za-z]+): (?:milter-)?reject: (?:RCPT|EHLO|HELO|VRFY|EXPN|DATA|BDAT|MAIL|CONNECT|ETRN|END-OF-MESSAGE) from {CLIENT}: [245][0-9][0-9] .*"
            ),
        ),
        Rule::builtin(
            "improper_pipelining",
            "improper command pipelining after ",
            Probe,
            &format!(r"improper command pipelining after [A-Z-]+ from {CLIENT}:?(?: .*)?"),
        ),
        Rule::builtin(
            "too_many_errors",
            "too many errors after ",
            Probe,
            &format!(r"too many errors after [A-Z-]+(?: \([0-9]+ bytes\))? from {CLIENT}"),
        ),
    ];
    RuleParser::new(SERVICE, rules, trim_end, emit)
}

fn emit(e: &Emit<'_>, out: &mut Vec<Event>) -> Parsed {
    let (msg, kind) = (e.msg, e.hit.kind);
    // Not the client's doing: the SASL back end is down, or the client merely asked for a
    // mechanism the server does not offer.
    if kind == EventKind::AuthFail
        && (msg.ends_with("Connection lost to authentication server")
            || msg.ends_with("Invalid authentication mechanism"))
    {
        return Parsed::Matched("sasl_not_client");
    }
    // Greylisting defers every new legitimate sender once.
    if kind == EventKind::Probe && msg.contains("reylist") {
        return Parsed::Matched("greylisted");
    }
    out.push(Event::new(e.time, e.service, kind, e.hit.ip));
    Parsed::Matched(e.hit.rule)
}
