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
use crate::LogEntry;

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
        // The first `IN=` field: at the start or after a space (a prefix may end in `IN=`).
        let Some(i) = m
            .match_indices("IN=")
            .map(|(i, _)| i)
            .find(|&i| i == 0 || m.as_bytes()[i - 1] == b' ')
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

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(m: &str) -> Option<(std::net::IpAddr, u16)> {
        let e = LogEntry {
            time: 0,
            identifier: "kernel".into(),
            pid: None,
            message: m.into(),
        };
        let mut out = vec![];
        KernelParser::new().parse(&e, &mut out);
        out.first().map(|e| (e.ip, e.port.unwrap_or(0)))
    }

    #[test]
    fn kernel_log_and_nflog_lines() {
        let ip: std::net::IpAddr = "203.0.113.9".parse().unwrap();
        // as the NFLOG source writes them
        assert_eq!(
            probe("portscan: IN=eth7 OUT= SRC=203.0.113.9 DST=192.0.2.1 LEN=60 TTL=64 PROTO=TCP SPT=40000 DPT=8080 WINDOW=64240 RES=0x00 SYN URGP=0"),
            Some((ip, 8080))
        );
        assert_eq!(
            probe("a?SRC=1.1.1.1 IN=eth0 OUT= SRC=203.0.113.9 DST=192.0.2.1 LEN=28 PROTO=UDP SPT=1 DPT=53 LEN=8"),
            Some((ip, 53))
        );
        assert_eq!(
            probe("DROP-IN= IN=eth0 OUT= MAC=00 SRC=203.0.113.9 DST=192.0.2.1 LEN=40 PROTO=TCP SPT=1 DPT=22 WINDOW=1 RES=0x00 SYN URGP=0"),
            Some((ip, 22))
        );
        // outgoing, ACK, ICMP: no probe
        assert_eq!(probe("x IN= OUT=eth0 SRC=203.0.113.9 DST=192.0.2.1 LEN=40 PROTO=TCP SPT=1 DPT=22 SYN URGP=0"), None);
        assert_eq!(probe("x IN=eth0 OUT= SRC=203.0.113.9 DST=192.0.2.1 LEN=40 PROTO=TCP SPT=1 DPT=22 ACK URGP=0"), None);
        assert_eq!(probe("x IN=eth0 OUT= SRC=203.0.113.9 DST=192.0.2.1 LEN=84 PROTO=ICMP TYPE=8 CODE=0 ID=1 SEQ=1"), None);
    }
}
