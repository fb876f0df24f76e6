//! Packets the admin's own firewall rules log to an NFLOG group (`nft ... log group 5 drop`),
//! read over netlink (NETLINK_NETFILTER, subsystem ULOG) on a thread of its own.
//!
//! Each packet becomes a [`LogEntry`] with identifier `kernel` and a message written the way
//! the kernel's own packet log writes it (`PREFIX IN=eth0 OUT= SRC=... DST=... LEN=... ...
//! PROTO=TCP SPT=... DPT=... ...`), so the parser of kernel log lines serves both ways a host
//! can log its drops (`log prefix` to the kernel log, or `log group` to NFLOG) and a port scan
//! is one scenario whichever is used. The packet's own addresses and ports are formatted from
//! their binary fields: nothing in a packet is copied into the line as text, so a packet
//! cannot inject an address.
//!
//! Only the first [`COPY_RANGE`] bytes of each packet are asked for (IP and transport
//! headers). The parsing ([`parse_message`], [`parse_packet`]) is pure.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use serde::Deserialize;
use tokio::sync::mpsc::Sender;

use crowdwall_nft::wire;

use super::{Batch, LogEntry, SourceError};
use crate::time::{self, Micros};

/// Bytes of each packet copied to us: enough for an IPv6 header with a few extension headers
/// and a TCP header.
pub const COPY_RANGE: u32 = 160;

const NETLINK_NETFILTER: libc::c_int = 12;
const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;
const NFULA_PACKET_HDR: u16 = 1;
const NFULA_TIMESTAMP: u16 = 3;
const NFULA_IFINDEX_INDEV: u16 = 4;
const NFULA_IFINDEX_OUTDEV: u16 = 5;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_PREFIX: u16 = 10;

/// `[nflog]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NflogSection {
    pub enabled: bool,
    /// The group the admin's rules log to (`log group N`).
    pub group: u16,
}

impl Default for NflogSection {
    fn default() -> Self {
        NflogSection {
            enabled: false,
            group: 5,
        }
    }
}

impl crowdwall_base::Section for NflogSection {
    const NAME: &'static str = "nflog";
    fn check(&self) -> Result<(), crowdwall_base::SectionError> {
        Ok(())
    }
}

/// Counters for status.
#[derive(Debug, Default)]
pub struct NflogStats {
    pub packets: AtomicU64,
    pub entries: AtomicU64,
    pub malformed: AtomicU64,
    /// The kernel dropped messages because we did not read fast enough (ENOBUFS).
    pub overruns: AtomicU64,
}

impl NflogStats {
    pub fn json(&self, group: u16) -> serde_json::Value {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "name": "nflog",
            "group": group,
            "packets": g(&self.packets),
            "entries_read": g(&self.entries),
            "skipped_malformed": g(&self.malformed),
            "overruns": g(&self.overruns),
        })
    }
}

/// What one logged packet says, from its binary headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub prefix: String,
    pub indev: Option<u32>,
    pub outdev: Option<u32>,
    /// Seconds and microseconds, when the kernel time-stamped it.
    pub time: Option<Micros>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub len: u16,
    pub ttl: u8,
    pub proto: Proto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
        window: u16,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    Icmp {
        v6: bool,
        kind: u8,
        code: u8,
    },
    Other(u8),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NflogError {
    #[error("truncated netlink message")]
    Truncated,
    #[error("no payload attribute")]
    NoPayload,
    #[error("payload is not IPv4 or IPv6")]
    NotIp,
}

/// The IP packet (from its first byte) -> addresses, length, protocol and ports.
pub fn parse_packet(p: &[u8]) -> Result<(IpAddr, IpAddr, u16, u8, Proto), NflogError> {
    let version = p.first().ok_or(NflogError::NotIp)? >> 4;
    match version {
        4 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            if ihl < 20 || p.len() < 20 {
                return Err(NflogError::NotIp);
            }
            let len = wire::be_u16(p, 2).ok_or(NflogError::Truncated)?;
            let frag_off = wire::be_u16(p, 6).ok_or(NflogError::Truncated)? & 0x1fff;
            let ttl = p[8];
            let proto = p[9];
            let src: [u8; 4] = p[12..16].try_into().map_err(|_| NflogError::Truncated)?;
            let dst: [u8; 4] = p[16..20].try_into().map_err(|_| NflogError::Truncated)?;
            // A later fragment carries no transport header.
            let l4 = if frag_off == 0 {
                p.get(ihl..).unwrap_or(&[])
            } else {
                &[]
            };
            Ok((
                IpAddr::from(src),
                IpAddr::from(dst),
                len,
                ttl,
                transport(proto, l4, false),
            ))
        }
        6 => {
            if p.len() < 40 {
                return Err(NflogError::NotIp);
            }
            let len = wire::be_u16(p, 4)
                .ok_or(NflogError::Truncated)?
                .saturating_add(40);
            let mut next = p[6];
            let hop = p[7];
            let src: [u8; 16] = p[8..24].try_into().map_err(|_| NflogError::Truncated)?;
            let dst: [u8; 16] = p[24..40].try_into().map_err(|_| NflogError::Truncated)?;
            let mut at = 40;
            // Skip hop-by-hop, routing, destination options; stop at a fragment that is not
            // the first.
            let mut l4: &[u8] = &[];
            for _ in 0..8 {
                match next {
                    0 | 43 | 60 => {
                        let (Some(&nh), Some(&l)) = (p.get(at), p.get(at + 1)) else {
                            break;
                        };
                        next = nh;
                        at += (usize::from(l) + 1) * 8;
                    }
                    44 => {
                        let (Some(&nh), Some(off)) = (p.get(at), wire::be_u16(p, at + 2)) else {
                            break;
                        };
                        next = nh;
                        at += 8;
                        if off & 0xfff8 != 0 {
                            break;
                        }
                    }
                    _ => {
                        l4 = p.get(at..).unwrap_or(&[]);
                        break;
                    }
                }
            }
            Ok((
                IpAddr::from(src),
                IpAddr::from(dst),
                len,
                hop,
                transport(next, l4, true),
            ))
        }
        _ => Err(NflogError::NotIp),
    }
}

fn transport(proto: u8, l4: &[u8], v6: bool) -> Proto {
    match proto {
        6 if l4.len() >= 16 => Proto::Tcp {
            sport: wire::be_u16(l4, 0).unwrap_or(0),
            dport: wire::be_u16(l4, 2).unwrap_or(0),
            flags: l4[13],
            window: wire::be_u16(l4, 14).unwrap_or(0),
        },
        17 if l4.len() >= 4 => Proto::Udp {
            sport: wire::be_u16(l4, 0).unwrap_or(0),
            dport: wire::be_u16(l4, 2).unwrap_or(0),
        },
        1 | 58 if l4.len() >= 2 => Proto::Icmp {
            v6,
            kind: l4[0],
            code: l4[1],
        },
        p => Proto::Other(p),
    }
}

/// The attributes of one NFULNL_MSG_PACKET message (after the nlmsghdr).
pub fn parse_message(body: &[u8]) -> Result<Packet, NflogError> {
    // nfgenmsg (family, version, res_id), then the attributes
    let mut attrs = wire::Attrs::new(body.get(4..).ok_or(NflogError::Truncated)?);
    let (mut prefix, mut indev, mut outdev, mut ts, mut payload) =
        (String::new(), None, None, None, None);
    for a in attrs.by_ref() {
        let v = a.payload;
        match a.ty {
            NFULA_PREFIX => {
                let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
                // The admin's rule text; printable ASCII only, so it cannot break the line.
                prefix = v[..end]
                    .iter()
                    .map(|&b| {
                        if b.is_ascii_graphic() || b == b' ' {
                            b as char
                        } else {
                            '?'
                        }
                    })
                    .collect();
            }
            NFULA_IFINDEX_INDEV => indev = wire::be_u32(v, 0),
            NFULA_IFINDEX_OUTDEV => outdev = wire::be_u32(v, 0),
            NFULA_TIMESTAMP => {
                if let (Some(sec), Some(usec)) = (wire::be_u64(v, 0), wire::be_u64(v, 8)) {
                    ts = Some((sec as Micros) * 1_000_000 + usec as Micros);
                }
            }
            NFULA_PAYLOAD => payload = Some(v),
            NFULA_PACKET_HDR => {}
            _ => {}
        }
    }
    // A bad attribute header stopped the walk (1-3 bytes of padding are no attribute).
    if attrs.remainder().len() >= 4 {
        return Err(NflogError::Truncated);
    }
    let payload = payload.ok_or(NflogError::NoPayload)?;
    let (src, dst, len, ttl, proto) = parse_packet(payload)?;
    Ok(Packet {
        prefix,
        indev,
        outdev,
        time: ts,
        src,
        dst,
        len,
        ttl,
        proto,
    })
}

impl Packet {
    /// The line the kernel's packet log would write for this packet (the fields a parser
    /// needs; no MAC, no IP ID/TOS, which NFLOG does not need to carry).
    pub fn kernel_line(&self, ifname: &dyn Fn(u32) -> String) -> String {
        use std::fmt::Write;
        let mut s = String::with_capacity(160);
        s.push_str(&self.prefix);
        let dev = |d: Option<u32>| d.map(ifname).unwrap_or_default();
        let _ = write!(
            s,
            "IN={} OUT={} SRC={} DST={} LEN={} ",
            dev(self.indev),
            dev(self.outdev),
            self.src,
            self.dst,
            self.len
        );
        let _ = match self.src {
            IpAddr::V4(_) => write!(s, "TTL={} ", self.ttl),
            IpAddr::V6(_) => write!(s, "HOPLIMIT={} ", self.ttl),
        };
        let _ = match self.proto {
            Proto::Tcp {
                sport,
                dport,
                flags,
                window,
            } => {
                let mut f = String::new();
                for (bit, name) in [
                    (0x20, "URG "),
                    (0x10, "ACK "),
                    (0x08, "PSH "),
                    (0x04, "RST "),
                    (0x02, "SYN "),
                    (0x01, "FIN "),
                ] {
                    if flags & bit != 0 {
                        f.push_str(name);
                    }
                }
                write!(
                    s,
                    "PROTO=TCP SPT={sport} DPT={dport} WINDOW={window} RES=0x00 {f}URGP=0"
                )
            }
            Proto::Udp { sport, dport } => {
                write!(s, "PROTO=UDP SPT={sport} DPT={dport} LEN={}", self.len)
            }
            Proto::Icmp { v6, kind, code } => write!(
                s,
                "PROTO={} TYPE={kind} CODE={code}",
                if v6 { "ICMPv6" } else { "ICMP" }
            ),
            Proto::Other(p) => write!(s, "PROTO={p}"),
        };
        s
    }
}

fn if_name(index: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return format!("if{index}");
    }
    // SAFETY: on success buf holds a NUL-terminated name.
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// A bound NFLOG netlink socket.
pub struct NflogSocket {
    fd: std::os::fd::OwnedFd,
}

fn os_err(what: &str, group: u16) -> SourceError {
    SourceError::Thread(format!(
        "nflog group {group}: {what}: {}",
        std::io::Error::last_os_error()
    ))
}

impl NflogSocket {
    /// Opens the socket and binds `group` in copy-packet mode. Fails when another program
    /// (ulogd, another crowdwall) holds the group.
    pub fn open(group: u16) -> Result<NflogSocket, SourceError> {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: plain syscall; the descriptor is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if fd < 0 {
            return Err(os_err("netlink socket", group));
        }
        // SAFETY: fd is fresh and ours.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        // SAFETY: zeroed sockaddr_nl is valid; family set below.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: sa is a valid sockaddr_nl of the given size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if r < 0 {
            return Err(os_err("bind", group));
        }
        // A big receive buffer: a scan is a burst of packets.
        let size: libc::c_int = 1 << 20;
        // SAFETY: valid option pointer and length.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                &size as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            );
        }
        // Wake up twice a second to notice `stop`.
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 500_000,
        };
        // SAFETY: valid option pointer and length.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            );
        }
        let s = NflogSocket { fd };
        s.config(group, NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND, 0, 0, 0], 1)?;
        let mut mode = Vec::with_capacity(8);
        mode.extend_from_slice(&COPY_RANGE.to_be_bytes());
        mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0, 0, 0]);
        s.config(group, NFULA_CFG_MODE, &mode, 2)?;
        Ok(s)
    }

    /// Sends one config message with one attribute and checks its ack.
    fn config(&self, group: u16, attr: u16, value: &[u8], seq: u32) -> Result<(), SourceError> {
        use std::os::fd::AsRawFd;
        // nfgenmsg: AF_UNSPEC, version 0, resource id = the group
        let m = wire::request(
            (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG,
            wire::NLM_F_ACK,
            seq,
            0,
            group,
            &[(attr, value)],
        )
        .map_err(|e| SourceError::Thread(format!("nflog group {group}: {e}")))?;
        // SAFETY: m is a valid buffer of its length.
        let r = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                m.as_ptr() as *const libc::c_void,
                m.len(),
                0,
            )
        };
        if r < 0 {
            return Err(os_err("send config", group));
        }
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: buf is valid for its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    0,
                )
            };
            if n < 0 {
                return Err(os_err("config ack", group));
            }
            let ack = wire::messages(&buf[..n as usize])
                .find(|m| m.ty == wire::NLMSG_ERROR && m.seq == seq)
                .and_then(|m| m.ack_errno());
            match ack {
                None => continue,
                Some(0) => return Ok(()),
                Some(errno) => {
                    let e = std::io::Error::from_raw_os_error(errno);
                    let hint = if errno == libc::EBUSY {
                        " (another program, ulogd or a second crowdwall, holds this group)"
                    } else {
                        ""
                    };
                    return Err(SourceError::Thread(format!(
                        "nflog group {group}: the kernel refused the binding: {e}{hint}"
                    )));
                }
            }
        }
    }

    /// Receives one datagram (several messages); `Ok(None)` on the periodic timeout.
    pub fn recv<'a>(&self, buf: &'a mut [u8]) -> std::io::Result<Option<&'a [u8]>> {
        use std::os::fd::AsRawFd;
        // SAFETY: buf is valid for its length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(&buf[..n as usize]))
    }
}

/// Converts the messages of one datagram into entries (pure apart from interface names).
pub fn entries_of(
    datagram: &[u8],
    now: Micros,
    stats: &NflogStats,
    ifname: &dyn Fn(u32) -> String,
    out: &mut Vec<LogEntry>,
) {
    for m in wire::messages(datagram) {
        if m.ty != (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET {
            continue;
        }
        let body = m.payload;
        stats.packets.fetch_add(1, Ordering::Relaxed);
        match parse_message(body) {
            Ok(p) => {
                stats.entries.fetch_add(1, Ordering::Relaxed);
                out.push(LogEntry {
                    time: p.time.unwrap_or(now),
                    identifier: "kernel".into(),
                    pid: None,
                    message: p.kernel_line(ifname),
                });
            }
            Err(_) => {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Binds the group (errors returned here) and starts the reading thread.
pub fn spawn(
    group: u16,
    tx: Sender<Batch>,
    stop: Arc<AtomicBool>,
    stats: Arc<NflogStats>,
) -> Result<JoinHandle<()>, SourceError> {
    let sock = NflogSocket::open(group)?;
    std::thread::Builder::new()
        .name("crowdwall-nflog".into())
        .spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            let names = std::cell::RefCell::new(std::collections::HashMap::<u32, String>::new());
            let ifname = |i: u32| {
                names
                    .borrow_mut()
                    .entry(i)
                    .or_insert_with(|| if_name(i))
                    .clone()
            };
            loop {
                if stop.load(Ordering::Relaxed) || tx.is_closed() {
                    return;
                }
                match sock.recv(&mut buf) {
                    Ok(Some(d)) => {
                        let mut entries = Vec::new();
                        entries_of(d, time::now(), &stats, &ifname, &mut entries);
                        if !entries.is_empty()
                            && tx
                                .blocking_send(Batch {
                                    source: "nflog",
                                    warm: false,
                                    entries,
                                    commit: None,
                                })
                                .is_err()
                        {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        stats.overruns.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        log::error!("nflog group {group}: receive: {e}");
                        std::thread::sleep(std::time::Duration::from_millis(500));
                    }
                }
            }
        })
        .map_err(|e| SourceError::Thread(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, v: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(v);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    fn syn_v4(src: [u8; 4], dport: u16) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 60, 0, 1, 0x40, 0, 64, 6, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&[192, 0, 2, 1]);
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&dport.to_be_bytes());
        tcp[12] = 0x50;
        tcp[13] = 0x02;
        tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
        p.extend_from_slice(&tcp);
        p
    }

    fn message(payload: &[u8], prefix: &[u8]) -> Vec<u8> {
        let mut body = vec![2, 0, 0, 5];
        body.extend(attr(NFULA_PACKET_HDR, &[8, 0, 1, 0]));
        body.extend(attr(NFULA_PREFIX, prefix));
        body.extend(attr(NFULA_IFINDEX_INDEV, &7u32.to_be_bytes()));
        body.extend(attr(NFULA_PAYLOAD, payload));
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET).to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend(body);
        m
    }

    #[test]
    fn a_tcp_syn_becomes_a_kernel_log_line() {
        let d = message(&syn_v4([203, 0, 113, 9], 8080), b"portscan: \0");
        let stats = NflogStats::default();
        let mut out = Vec::new();
        entries_of(&d, 42, &stats, &|i| format!("eth{i}"), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].identifier, "kernel");
        assert_eq!(out[0].time, 42);
        assert_eq!(
            out[0].message,
            "portscan: IN=eth7 OUT= SRC=203.0.113.9 DST=192.0.2.1 LEN=60 TTL=64 PROTO=TCP SPT=40000 DPT=8080 WINDOW=64240 RES=0x00 SYN URGP=0"
        );
    }

    #[test]
    fn hostile_prefix_and_truncated_packets() {
        // a prefix with a newline cannot split the line
        let d = message(&syn_v4([203, 0, 113, 9], 22), b"a\nSRC=1.1.1.1 \0");
        let stats = NflogStats::default();
        let mut out = Vec::new();
        entries_of(&d, 0, &stats, &|_| String::new(), &mut out);
        assert!(out[0].message.starts_with("a?SRC=1.1.1.1 IN="));
        // truncated payloads and attributes never panic
        let full = message(&syn_v4([203, 0, 113, 9], 22), b"x\0");
        for cut in 0..full.len() {
            let mut m = full[..cut].to_vec();
            if m.len() >= 4 {
                m[0..4].copy_from_slice(&(cut as u32).to_ne_bytes());
            }
            let mut out = Vec::new();
            entries_of(&m, 0, &stats, &|_| String::new(), &mut out);
        }
        let pkt = syn_v4([1, 2, 3, 4], 1);
        for cut in 0..pkt.len() {
            let _ = parse_packet(&pkt[..cut]);
        }
    }

    #[test]
    fn ipv6_udp() {
        let mut p = vec![0x60, 0, 0, 0, 0, 8, 17, 55];
        p.extend_from_slice(
            &"2001:db8::9"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        p.extend_from_slice(
            &"2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        p.extend_from_slice(&[0x13, 0x88, 0x00, 0x35, 0, 8, 0, 0]);
        let (src, _, len, hop, proto) = parse_packet(&p).unwrap();
        assert_eq!(src.to_string(), "2001:db8::9");
        assert_eq!((len, hop), (48, 55));
        assert_eq!(
            proto,
            Proto::Udp {
                sport: 5000,
                dport: 53
            }
        );
    }
}
