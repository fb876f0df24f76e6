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

use regex::{CaptureLocations, Regex};

use super::{parse_ip, precheck, Event, EventKind, Parsed, ServiceParser, MAX_MESSAGE_LEN};
use crate::source::LogEntry;

pub const SERVICE: &str = "firewall";

pub struct KernelParser {
    re: Regex,
    locs: CaptureLocations,
}

impl Default for KernelParser {
    fn default() -> Self {
        Self::new()
    }
}

impl KernelParser {
    pub fn new() -> KernelParser {
        let re = Regex::new(
            r"^(?:\[ *[0-9]+\.[0-9]+\] )?.*?IN=(\S+) OUT=\S* (?:.* )?SRC=([0-9A-Fa-f:.]+) DST=[0-9A-Fa-f:.]+ (?:.* )?PROTO=(TCP|UDP|UDPLITE|SCTP|DCCP) SPT=[0-9]+ DPT=([0-9]+)((?: .*)?)$",
        );
        let re = match re {
            Ok(r) => r,
            Err(e) => panic!("kernel pattern: {e}"),
        };
        KernelParser {
            locs: re.capture_locations(),
            re,
        }
    }
}

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
        if self.re.captures_read(&mut self.locs, m).is_none() {
            return Parsed::Unmatched;
        }
        let g = |i: usize| self.locs.get(i).map(|(a, b)| &m[a..b]);
        let tail = g(5).unwrap_or("");
        if g(3) == Some("TCP") && tail.split(' ').any(|f| f == "ACK") {
            return Parsed::Matched("tcp_ack");
        }
        let (Some(ip), Some(port)) = (
            g(2).and_then(parse_ip),
            g(4).and_then(|p| p.parse::<u16>().ok()),
        ) else {
            return Parsed::Matched("netfilter_log");
        };
        let mut ev = Event::new(entry.time, SERVICE, EventKind::PortProbe, ip);
        ev.port = Some(port);
        out.push(ev);
        Parsed::Matched("netfilter_log")
    }
}
