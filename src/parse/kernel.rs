//! Port probes from the kernel log: lines the admin's own firewall rules write (iptables
//! `-j LOG`, nftables `log prefix "..."`), read from the journal (transport kernel,
//! identifier `kernel`) or syslog.
//!
//! `[ 123.456] PREFIX IN=eth0 OUT= MAC=... SRC=ADDR DST=ADDR ... PROTO=TCP SPT=N DPT=N ...`
//!
//! Every field is written by the kernel from packet headers; the prefix is the admin's. Only
//! packets coming in (`IN=` set) with a source and destination port count, and TCP packets
//! with ACK set are left out (stray replies of closed connections, not probes). Log only
//! what you drop: every logged packet is a `port_probe`.

use super::{parse_ip, precheck, Event, EventKind, Parsed, ServiceParser, MAX_MESSAGE_LEN};
use crate::source::LogEntry;

pub const SERVICE: &str = "firewall";

/// Reads the `KEY=value` fields from `IN=` on (the admin's prefix before it is skipped), one
/// pass over space-separated tokens: no regex, so a line costs its length.
#[derive(Default)]
pub struct KernelParser;

impl KernelParser {
    pub fn new() -> KernelParser {
        KernelParser
    }
}

const PROTOS: &[&str] = &["TCP", "UDP", "UDPLITE", "SCTP", "DCCP"];

impl ServiceParser for KernelParser {
    fn parse(&mut self, entry: &LogEntry, out: &mut Vec<Event>) -> Parsed {
        let m = entry.message.as_str();
        // Cheap pre-check: most kernel messages are not netfilter log lines.
        if !m.contains(" SRC=") || !m.contains(" DPT=") {
            return Parsed::Unmatched;
        }
        if let Some(why) = precheck(m, MAX_MESSAGE_LEN) {
            return Parsed::Rejected(why);
        }
        let Some(i) = m
            .find("IN=")
            .filter(|&i| i == 0 || m.as_bytes()[i - 1] == b' ')
        else {
            return Parsed::Unmatched;
        };
        let (mut iface, mut src, mut proto, mut dpt, mut spt, mut ack, mut seen_out) =
            (None, None, None, None, None, false, false);
        for tok in m[i..].split(' ') {
            match tok.split_once('=') {
                Some(("IN", v)) if iface.is_none() => iface = Some(v),
                Some(("OUT", _)) => seen_out = true,
                Some(("SRC", v)) if src.is_none() => src = Some(v),
                Some(("PROTO", v)) if proto.is_none() => proto = Some(v),
                Some(("SPT", v)) if spt.is_none() => spt = Some(v),
                Some(("DPT", v)) if dpt.is_none() => dpt = Some(v),
                None if tok == "ACK" => ack = true,
                _ => {}
            }
        }
        let (Some(iface), Some(src), Some(proto), Some(_), Some(dpt)) =
            (iface, src, proto, spt, dpt)
        else {
            return Parsed::Unmatched;
        };
        if !seen_out || !PROTOS.contains(&proto) {
            return Parsed::Unmatched;
        }
        if iface.is_empty() {
            // Outgoing packets (OUTPUT chain) are not probes of this host.
            return Parsed::Matched("netfilter_log_outgoing");
        }
        if proto == "TCP" && ack {
            return Parsed::Matched("tcp_ack");
        }
        let (Some(ip), Ok(port)) = (parse_ip(src), dpt.parse::<u16>()) else {
            return Parsed::Matched("netfilter_log");
        };
        let mut ev = Event::new(entry.time, SERVICE, EventKind::PortProbe, ip);
        ev.port = Some(port);
        out.push(ev);
        Parsed::Matched("netfilter_log")
    }
}
