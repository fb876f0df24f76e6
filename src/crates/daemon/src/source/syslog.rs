//! A syslog listener for hosts and routers without journald: a unix datagram socket and/or
//! UDP on a configured address (OpenWrt's `logread -r HOST PORT` forwards to it; so do
//! rsyslog and busybox syslogd).
//!
//! One datagram is one message. Accepted forms, after an optional `<PRI>`:
//! - RFC 5424: `1 TIMESTAMP HOST APP PROCID MSGID [SD...] MSG` (`-` for any nil field);
//! - RFC 3339 header: `2026-11-28T02:33:01+01:00 host tag[pid]: msg`;
//! - RFC 3164: `Nov 28 02:33:01 host tag[pid]: msg`, also without the host (the local socket
//!   form that `logger -u` and glibc write).
//!
//! Time: a header with a zone (5424, 3339) gives the entry's time; a RFC 3164 header has no
//! zone (and the sender's is unknown), so those entries are timed when received. A nil 5424
//! timestamp is also the receive time.
//!
//! Bad input: a datagram over [`MAX_DATAGRAM`] bytes, not UTF-8, or without a parsable header
//! is counted and dropped; nothing a sender writes can stop the listener.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::mpsc::Sender;

use super::{Batch, LogEntry};
use crate::time::{self, Micros};
use crowdwall_engine::text::{parse_syslog_line, year_of, SyslogContext, TextError};

/// Longest datagram accepted. RFC 5424 receivers must take 480 bytes and should take 2048;
/// 8 KiB leaves room for long web log lines, and sshd messages are far shorter.
pub const MAX_DATAGRAM: usize = 8 * 1024;

/// `[syslog]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogSection {
    pub enabled: bool,
    /// A unix datagram socket to create (mode 0600: root only), e.g.
    /// `/run/crowdwall/syslog.sock`.
    pub unix: Option<PathBuf>,
    /// `address:port` to listen on over UDP, e.g. `127.0.0.1:5514` or a LAN address.
    pub udp: Option<String>,
}

impl SyslogSection {
    /// The UDP address, validated.
    pub(crate) fn udp_addr(&self) -> Result<Option<SocketAddr>, String> {
        match &self.udp {
            None => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|_| {
                format!("'{s}' is not address:port (e.g. 127.0.0.1:5514 or [::1]:5514)")
            }),
        }
    }

    fn validate(&self) -> Result<(), String> {
        self.udp_addr()?;
        if let Some(u) = &self.unix {
            if !u.is_absolute() {
                return Err(format!("unix: {} must be an absolute path", u.display()));
            }
        }
        if self.enabled && self.unix.is_none() && self.udp.is_none() {
            return Err("enabled, but neither `unix` nor `udp` is set".into());
        }
        Ok(())
    }
}

impl crowdwall_base::Section for SyslogSection {
    const NAME: &'static str = "syslog";
    fn check(&self) -> Result<(), crowdwall_base::SectionError> {
        self.validate()
            .map_err(|m| crowdwall_base::SectionError::new("", m))
    }
}

/// Counters for status.
#[derive(Debug, Default)]
pub struct SyslogStats {
    pub datagrams: AtomicU64,
    pub entries: AtomicU64,
    pub too_long: AtomicU64,
    pub invalid_utf8: AtomicU64,
    pub malformed: AtomicU64,
}

impl SyslogStats {
    pub fn json(&self) -> serde_json::Value {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "name": "syslog",
            "datagrams": g(&self.datagrams),
            "entries_read": g(&self.entries),
            "skipped_too_long": g(&self.too_long),
            "skipped_invalid_utf8": g(&self.invalid_utf8),
            "skipped_malformed": g(&self.malformed),
        })
    }
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyslogError {
    #[error("datagram longer than {MAX_DATAGRAM} bytes")]
    TooLong,
    #[error("not UTF-8")]
    NotUtf8,
    #[error("RFC 5424: {0}")]
    Rfc5424(&'static str),
    #[error(transparent)]
    Text(#[from] TextError),
}

/// Parses one datagram received at `now`. Pure.
pub fn parse_datagram(
    bytes: &[u8],
    now: Micros,
    ctx: &mut SyslogContext,
) -> Result<LogEntry, SyslogError> {
    if bytes.len() > MAX_DATAGRAM {
        return Err(SyslogError::TooLong);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| SyslogError::NotUtf8)?;
    let text = text.trim_end_matches(['\n', '\r', '\0']);
    let body = strip_pri(text);
    if let Some(rest) = body.strip_prefix("1 ") {
        return parse_5424(rest, now);
    }
    let mut e = match parse_syslog_line(body, ctx) {
        Ok(e) => e,
        Err(first) => match without_host(body) {
            // `Nov 28 02:33:01 tag[pid]: msg` (no host, as local sockets get it).
            Some(with) => parse_syslog_line(&with, ctx).map_err(|_| first)?,
            None => return Err(first.into()),
        },
    };
    if body.starts_with(|c: char| c.is_ascii_alphabetic()) {
        e.time = now;
    }
    Ok(e)
}

fn strip_pri(s: &str) -> &str {
    if let Some(rest) = s.strip_prefix('<') {
        if let Some(end) = rest.find('>') {
            if (1..=3).contains(&end) && rest[..end].bytes().all(|b| b.is_ascii_digit()) {
                return &rest[end + 1..];
            }
        }
    }
    s
}

/// When the token after the timestamp ends with `:` it is the tag, not a host: returns the
/// line with `-` as host inserted.
fn without_host(body: &str) -> Option<String> {
    let ts_end = if body.starts_with(|c: char| c.is_ascii_alphabetic()) {
        // "Mmm dd hh:mm:ss"
        if body.len() < 16 || !body.is_char_boundary(15) {
            return None;
        }
        15
    } else {
        body.find(' ')?
    };
    let (ts, rest) = body.split_at(ts_end);
    let rest = rest.trim_start_matches(' ');
    let token = rest.split(' ').next()?;
    token.ends_with(':').then(|| format!("{ts} - {rest}"))
}

/// `TIMESTAMP HOST APP PROCID MSGID SD [MSG]` (after `1 `).
fn parse_5424(s: &str, now: Micros) -> Result<LogEntry, SyslogError> {
    let mut rest = s;
    let mut field = |what: &'static str| -> Result<&str, SyslogError> {
        let (f, r) = rest.split_once(' ').ok_or(SyslogError::Rfc5424(what))?;
        rest = r;
        if f.is_empty() {
            return Err(SyslogError::Rfc5424(what));
        }
        Ok(f)
    };
    let ts = field("no timestamp")?;
    let _host = field("no host")?;
    let app = field("no app-name")?;
    let procid = field("no procid")?;
    let _msgid = field("no msgid")?;
    let time = if ts == "-" {
        now
    } else {
        // Reuse the RFC 3339 header reader: it wants "TS host tag: m".
        let probe = format!("{ts} h t: m");
        parse_syslog_line(&probe, &mut SyslogContext::new())
            .map_err(|_| SyslogError::Rfc5424("bad timestamp"))?
            .time
    };
    let msg = skip_structured_data(rest)?;
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    let identifier = if app == "-" { "" } else { app };
    let pid = if procid == "-" {
        None
    } else {
        procid.parse::<u32>().ok()
    };
    Ok(LogEntry {
        time,
        identifier: identifier.to_string(),
        pid,
        message: msg.to_string(),
    })
}

/// Skips `-` or `[id k="v" ...][...]` (values may hold `\"`, `\]`, `\\`), then one space.
fn skip_structured_data(s: &str) -> Result<&str, SyslogError> {
    if let Some(r) = s.strip_prefix('-') {
        return Ok(r.strip_prefix(' ').unwrap_or(r));
    }
    let b = s.as_bytes();
    let mut i = 0;
    if b.first() != Some(&b'[') {
        return Err(SyslogError::Rfc5424("bad structured data"));
    }
    while b.get(i) == Some(&b'[') {
        i += 1;
        let mut in_quotes = false;
        loop {
            match b.get(i) {
                None => return Err(SyslogError::Rfc5424("unterminated structured data")),
                Some(b'\\') if in_quotes => i += 2,
                Some(b'"') => {
                    in_quotes = !in_quotes;
                    i += 1;
                }
                Some(b']') if !in_quotes => {
                    i += 1;
                    break;
                }
                Some(_) => i += 1,
            }
        }
    }
    let r = s
        .get(i..)
        .ok_or(SyslogError::Rfc5424("bad structured data"))?;
    Ok(r.strip_prefix(' ').unwrap_or(r))
}

/// The running listeners.
pub struct SyslogHandle {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub stats: Arc<SyslogStats>,
    unix: Option<PathBuf>,
}

impl SyslogHandle {
    /// Stops the listeners and waits until their sockets are closed.
    pub async fn stop_and_wait(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        self.stop();
    }

    pub fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some(p) = self.unix.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for SyslogHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds the configured sockets (errors name the address) and starts one task per socket on
/// the current tokio runtime.
pub(crate) fn start(cfg: &SyslogSection, tx: Sender<Batch>) -> Result<SyslogHandle, String> {
    let stats = Arc::new(SyslogStats::default());
    let mut handle = SyslogHandle {
        tasks: Vec::new(),
        stats: stats.clone(),
        unix: None,
    };
    if let Some(addr) = cfg.udp_addr()? {
        let std_sock = std::net::UdpSocket::bind(addr)
            .map_err(|e| format!("syslog: cannot listen on udp {addr}: {e}"))?;
        std_sock
            .set_nonblocking(true)
            .map_err(|e| format!("syslog: udp {addr}: {e}"))?;
        let sock = tokio::net::UdpSocket::from_std(std_sock)
            .map_err(|e| format!("syslog: udp {addr}: {e}"))?;
        let (tx, stats) = (tx.clone(), stats.clone());
        handle.tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM + 1];
            loop {
                match sock.recv_from(&mut buf).await {
                    Ok((n, _)) => {
                        if !deliver(&buf[..n], &stats, &tx).await {
                            return;
                        }
                    }
                    Err(e) => {
                        log::warn!("syslog: udp receive: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        }));
        log::info!("syslog: listening on udp {addr}");
    }
    if let Some(path) = &cfg.unix {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("syslog: stale socket {}: {e}", path.display())),
        }
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let sock = tokio::net::UnixDatagram::bind(path)
            .map_err(|e| format!("syslog: cannot bind {}: {e}", path.display()))?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        handle.unix = Some(path.clone());
        let (tx, stats) = (tx.clone(), stats.clone());
        handle.tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM + 1];
            loop {
                match sock.recv(&mut buf).await {
                    Ok(n) => {
                        if !deliver(&buf[..n], &stats, &tx).await {
                            return;
                        }
                    }
                    Err(e) => {
                        log::warn!("syslog: unix receive: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        }));
        log::info!("syslog: listening on {}", path.display());
    }
    Ok(handle)
}

/// Parses one datagram and sends its entry; false when the daemon is gone.
async fn deliver(bytes: &[u8], stats: &SyslogStats, tx: &Sender<Batch>) -> bool {
    stats.datagrams.fetch_add(1, Ordering::Relaxed);
    let now = time::now();
    let mut ctx = SyslogContext::with_year(year_of(now));
    match parse_datagram(bytes, now, &mut ctx) {
        Ok(e) => {
            stats.entries.fetch_add(1, Ordering::Relaxed);
            tx.send(Batch {
                source: "syslog",
                warm: false,
                entries: vec![e],
                commit: None,
            })
            .await
            .is_ok()
        }
        Err(SyslogError::TooLong) => {
            stats.too_long.fetch_add(1, Ordering::Relaxed);
            true
        }
        Err(SyslogError::NotUtf8) => {
            stats.invalid_utf8.fetch_add(1, Ordering::Relaxed);
            true
        }
        Err(_) => {
            stats.malformed.fetch_add(1, Ordering::Relaxed);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Micros = 1_800_000_000_000_000;

    fn p(s: &[u8]) -> Result<LogEntry, SyslogError> {
        parse_datagram(s, NOW, &mut SyslogContext::with_year(2026))
    }

    #[test]
    fn rfc5424_with_and_without_structured_data() {
        let e = p(b"<38>1 2026-11-28T02:33:01.5Z router sshd 1234 - - Failed password for root from 203.0.113.5 port 22 ssh2").unwrap();
        assert_eq!(e.identifier, "sshd");
        assert_eq!(e.pid, Some(1234));
        assert_eq!(
            e.message,
            "Failed password for root from 203.0.113.5 port 22 ssh2"
        );
        assert_eq!(e.time % 1_000_000, 500_000);
        let mut d = br#"<165>1 2026-11-28T02:33:01+01:00 h dropbear - ID47 [ex@32473 iut="3" a="x\"]y"][b c="d"] "#.to_vec();
        d.extend_from_slice(b"\xef\xbb\xbfhello");
        let e = p(&d).unwrap();
        assert_eq!(e.identifier, "dropbear");
        assert_eq!(e.pid, None);
        assert_eq!(e.message, "hello");
        let e = p(b"<13>1 - - app - - -").unwrap();
        assert_eq!((e.time, e.message.as_str()), (NOW, ""));
        assert!(p(b"<13>1 2026-11-28T02:33:01Z h app 1 - [unterminated").is_err());
        assert!(p(b"<13>1 garbage").is_err());
    }

    #[test]
    fn rfc3164_with_and_without_host_is_timed_on_receipt() {
        let e = p(b"<86>Nov 28 02:33:01 router sshd[77]: hello from 1.2.3.4").unwrap();
        assert_eq!(
            (e.identifier.as_str(), e.pid, e.message.as_str(), e.time),
            ("sshd", Some(77), "hello from 1.2.3.4", NOW)
        );
        let e = p(b"<13>Nov 28 02:33:01 sshd[77]: hi\n").unwrap();
        assert_eq!((e.identifier.as_str(), e.message.as_str()), ("sshd", "hi"));
        let e = p(b"<13>Nov  8 02:33:01 root: plain").unwrap();
        assert_eq!((e.identifier.as_str(), e.pid), ("root", None));
    }

    #[test]
    fn rfc3339_header_keeps_its_time() {
        let e = p(b"<13>2026-11-28T02:33:01Z host sshd[1]: x").unwrap();
        assert_ne!(e.time, NOW);
        assert_eq!(e.identifier, "sshd");
    }

    #[test]
    fn hostile_datagrams_are_refused() {
        assert_eq!(p(&vec![b'a'; MAX_DATAGRAM + 1]), Err(SyslogError::TooLong));
        assert_eq!(
            p(b"<13>Nov 28 02:33:01 h t: \xff"),
            Err(SyslogError::NotUtf8)
        );
        for bad in [
            &b""[..],
            b"<13>",
            b"hello",
            b"<999999>x",
            b"<13>1 ",
            b"<13>Nov",
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn section_validation() {
        let mut s = SyslogSection {
            enabled: true,
            ..Default::default()
        };
        assert!(s.validate().unwrap_err().contains("neither"));
        s.udp = Some("127.0.0.1".into());
        assert!(s.validate().unwrap_err().contains("address:port"));
        s.udp = Some("127.0.0.1:5514".into());
        assert!(s.validate().is_ok());
    }
}
