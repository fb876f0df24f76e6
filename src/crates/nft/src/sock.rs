//! The transaction socket: one NETLINK_NETFILTER socket per handle for batches, plain
//! requests and dumps, with every ack matched to its message by sequence number.

use std::collections::{HashMap, HashSet};
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, RawFd};
use std::os::raw::c_int;
use std::time::{Duration, Instant};

use crowdwall_engine::enforce::EnforceError;
use nix::errno::Errno;
use nix::sys::socket::{recv, sendmsg, MsgFlags, NetlinkAddr};

use crate::batch::Batch;
use crate::consts::*;
use crate::wire::{self, align4, Message};

/// Large enough that the acks and dump replies of any batch we send never overflow it.
const RCVBUF: usize = 8 << 20;
/// Receive buffer for one datagram; dump skbs are at most 32 KiB + headers.
pub(crate) const RECV_CHUNK: usize = 256 << 10;
/// Acks are queued before `sendmsg` returns; this only covers a slow scheduler.
pub(crate) const ACK_WAIT: Duration = Duration::from_millis(500);

/// Sequence numbers of our messages on one socket.
#[derive(Debug, Default)]
pub(crate) struct Seq(u32);

impl Seq {
    pub(crate) fn next(&mut self) -> u32 {
        // 0 is avoided: nftnl uses it for "no sequence check".
        self.0 = self.0.wrapping_add(1).max(1);
        self.0
    }
}

pub(crate) struct Sock {
    sock: mnl::Socket,
    portid: u32,
    pub(crate) seq: Seq,
    /// What SO_SNDBUF was last set to; only ever raised.
    sndbuf: usize,
    rbuf: Vec<u8>,
}

// SAFETY: `mnl::Socket` is a heap struct holding an fd and a sockaddr, with no thread affinity
// and no shared state; we own it exclusively and only touch it through `&mut self`.
unsafe impl Send for Sock {}

impl Sock {
    /// Opens a socket in the calling thread's network namespace.
    pub(crate) fn open() -> Result<Sock, EnforceError> {
        let sock = mnl::Socket::new(mnl::Bus::Netfilter).map_err(|e| io_err("open socket", e))?;
        let portid = sock.portid();
        let fd = sock.as_raw_fd();
        set_buf_opt(fd, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, RCVBUF)
            .map_err(|e| io_err("set SO_RCVBUF", e))?;
        // CAP_ACK: error acks must not echo our 64 KiB element messages back.
        set_int_opt(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1)
            .map_err(|e| io_err("set NETLINK_CAP_ACK", e))?;
        // EXT_ACK only adds detail (it names the offending element); kernels before 4.12
        // lack it and still work.
        if let Err(e) = set_int_opt(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1) {
            log::debug!("NETLINK_EXT_ACK unavailable: {e}");
        }
        Ok(Sock {
            sock,
            portid,
            seq: Seq::default(),
            sndbuf: 0,
            rbuf: vec![0; RECV_CHUNK],
        })
    }

    pub(crate) fn portid(&self) -> u32 {
        self.portid
    }

    pub(crate) fn next_seq(&mut self) -> u32 {
        self.seq.next()
    }

    /// Sends a finished batch and waits for its verdict.
    pub(crate) fn transact(&mut self, b: &Batch) -> Result<(), EnforceError> {
        self.drain_stale()?;
        self.send(b.bytes())?;
        let acked: Vec<u32> = b
            .msgs()
            .iter()
            .filter(|m| m.wants_ack())
            .map(|m| m.seq)
            .collect();
        let quiet: Vec<u32> = b
            .msgs()
            .iter()
            .filter(|m| !m.wants_ack())
            .map(|m| m.seq)
            .collect();
        let acks = self.wait_acks(&acked, &quiet, true)?;
        // The first failing message (in batch order) is the cause; later ones often fail
        // only because of it.
        let failed = b
            .msgs()
            .iter()
            .enumerate()
            .find_map(|(i, m)| acks.get(&m.seq).filter(|a| a.errno != 0).map(|a| (i, a)));
        if let Some((i, ack)) = failed {
            return Err(kernel_error(b.describe(i, ack.offset), ack));
        }
        let missing = acked.iter().filter(|s| !acks.contains_key(s)).count();
        if missing > 0 {
            return Err(EnforceError::Protocol(format!(
                "{missing} of {} acks never came; the transaction's outcome is unknown",
                acked.len()
            )));
        }
        Ok(())
    }

    /// Reads acks until every sequence in `acked` has one (or, with `stop_on_error`, one
    /// failed), or until [`ACK_WAIT`] passes after the socket first runs dry. Errors for
    /// `quiet` sequences (BEGIN/END, which are acked only on kernels >= 6.10) are collected
    /// but not waited for.
    pub(crate) fn wait_acks(
        &mut self,
        acked: &[u32],
        quiet: &[u32],
        stop_on_error: bool,
    ) -> Result<HashMap<u32, Ack>, EnforceError> {
        let mut pending: HashSet<u32> = acked.iter().copied().collect();
        let known: HashSet<u32> = acked.iter().chain(quiet).copied().collect();
        let mut acks = HashMap::new();
        let mut failed = false;
        let mut deadline: Option<Instant> = None;
        loop {
            match self.recv_nowait()? {
                Some(buf) => {
                    for m in all_messages(buf)? {
                        if m.ty != NLMSG_ERROR || !known.contains(&m.seq) {
                            continue;
                        }
                        let ack = parse_ack(&m)?;
                        pending.remove(&m.seq);
                        failed |= ack.errno != 0;
                        acks.entry(m.seq).or_insert(ack);
                    }
                }
                None => {
                    if pending.is_empty() || (stop_on_error && failed) {
                        break;
                    }
                    let d = *deadline.get_or_insert_with(|| Instant::now() + ACK_WAIT);
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    self.poll(left)?;
                }
            }
        }
        Ok(acks)
    }

    /// Discards replies left over from an earlier call that returned early (an error, an
    /// interrupted dump), so they cannot be mistaken for this call's.
    pub(crate) fn drain_stale(&mut self) -> Result<(), EnforceError> {
        while self.recv_nowait()?.is_some() {}
        Ok(())
    }

    /// Sends `buf` (a whole batch, or requests) in one `sendmsg`: a batch split over several
    /// sends is seen by the kernel as a batch without END and silently aborted, while its
    /// early messages are still acked as success.
    pub(crate) fn send(&mut self, buf: &[u8]) -> Result<(), EnforceError> {
        // netlink_sendmsg refuses (EMSGSIZE) a datagram larger than sk_sndbuf - 32; the
        // kernel doubles the value we set, the margin covers the rest.
        let want = buf.len() + 4096;
        if want > self.sndbuf {
            set_buf_opt(
                self.sock.as_raw_fd(),
                libc::SO_SNDBUFFORCE,
                libc::SO_SNDBUF,
                want,
            )
            .map_err(|e| io_err("set SO_SNDBUF", e))?;
            self.sndbuf = want;
        }
        let kernel = NetlinkAddr::new(0, 0);
        let sent = loop {
            match sendmsg(
                self.sock.as_raw_fd(),
                &[IoSlice::new(buf)],
                &[],
                MsgFlags::empty(),
                Some(&kernel),
            ) {
                Err(Errno::EINTR) => continue,
                r => break r,
            }
        }
        .map_err(|e| io_err("sendmsg", e.into()))?;
        if sent != buf.len() {
            return Err(EnforceError::Protocol(format!(
                "sendmsg sent {sent} of {} bytes",
                buf.len()
            )));
        }
        Ok(())
    }

    /// One datagram, or None when the socket is empty.
    pub(crate) fn recv_nowait(&mut self) -> Result<Option<&[u8]>, EnforceError> {
        // MSG_TRUNC makes recv return the datagram's real length, so truncation is seen.
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC;
        loop {
            match recv(self.sock.as_raw_fd(), &mut self.rbuf, flags) {
                Ok(n) if n > self.rbuf.len() => {
                    return Err(EnforceError::Protocol(format!(
                        "reply of {n} bytes truncated"
                    )))
                }
                Ok(n) => return Ok(Some(&self.rbuf[..n])),
                Err(Errno::EAGAIN) => return Ok(None),
                Err(Errno::EINTR) => continue,
                Err(Errno::ENOBUFS) => {
                    return Err(EnforceError::Protocol(
                        "receive buffer overflowed (ENOBUFS): replies were lost; the kernel \
                         state is unknown"
                            .into(),
                    ))
                }
                Err(e) => return Err(io_err("recv", e.into())),
            }
        }
    }

    /// Waits until a reply is readable; false on timeout.
    pub(crate) fn poll(&self, timeout: Duration) -> Result<bool, EnforceError> {
        poll_readable(self.sock.as_raw_fd(), timeout).map_err(|e| io_err("poll", e))
    }
}

/// A plain (non-batch) nf_tables request.
pub(crate) fn nft_request(
    ty: u16,
    flags: u16,
    seq: u32,
    nfproto: u8,
    attrs: &[(u16, &[u8])],
) -> Result<Vec<u8>, EnforceError> {
    Ok(wire::request(
        (NFNL_SUBSYS_NFTABLES << 8) | ty,
        flags,
        seq,
        nfproto,
        0,
        attrs,
    )?)
}

/// Every message of one datagram, or an error when any header is malformed: a reply we
/// cannot frame says nothing reliable about the rest of the datagram.
pub(crate) fn all_messages(buf: &[u8]) -> Result<Vec<Message<'_>>, EnforceError> {
    let mut it = wire::messages(buf);
    let out: Vec<Message<'_>> = it.by_ref().collect();
    match it.malformed() {
        Some(len) => Err(EnforceError::Protocol(format!(
            "malformed netlink message (length {len})"
        ))),
        None => Ok(out),
    }
}

// ---------------------------------------------------------------------------------------------
// Acks

#[derive(Debug, Clone)]
pub(crate) struct Ack {
    pub(crate) errno: i32,
    pub(crate) msg: Option<String>,
    /// Extended ack: offset of the offending attribute from the start of our message.
    pub(crate) offset: Option<u32>,
}

/// An NLMSG_ERROR: the errno, and the extended-ack message and offset when present.
pub(crate) fn parse_ack(m: &Message<'_>) -> Result<Ack, EnforceError> {
    let p = m.payload;
    let short = || EnforceError::Protocol("short nlmsgerr".into());
    if p.len() < 4 + NLMSG_HDRLEN {
        return Err(short());
    }
    let errno = wire::ne_i32(p, 0).ok_or_else(short)?.saturating_neg();
    let mut ack = Ack {
        errno,
        msg: None,
        offset: None,
    };
    if m.flags & NLM_F_ACK_TLVS != 0 {
        // Without CAP_ACK the kernel echoes our whole message before the TLVs.
        let echoed = if m.flags & NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            wire::ne_u32(p, 4).ok_or_else(short)? as usize
        };
        if let Some(tlvs) = align4(echoed).checked_add(4).and_then(|at| p.get(at..)) {
            for a in wire::Attrs::new(tlvs) {
                match a.ty {
                    NLMSGERR_ATTR_MSG => {
                        let s = wire::until_nul(a.payload);
                        ack.msg = Some(String::from_utf8_lossy(s).into_owned());
                    }
                    NLMSGERR_ATTR_OFFS => {
                        if let Some(off) = wire::ne_u32(a.payload, 0) {
                            ack.offset = Some(off);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(ack)
}

// ---------------------------------------------------------------------------------------------
// Errors

pub(crate) fn kernel_error(what: String, ack: &Ack) -> EnforceError {
    let msg = match (&ack.msg, ack.offset) {
        (Some(m), _) => Some(m.clone()),
        (None, Some(off)) => Some(format!("offending attribute at offset {off}")),
        (None, None) => None,
    };
    EnforceError::Kernel {
        what,
        errno: ack.errno,
        errno_text: Errno::from_raw(ack.errno).desc().to_string(),
        message: msg,
    }
}

pub(crate) fn io_err(op: &'static str, source: io::Error) -> EnforceError {
    EnforceError::Io { op, source }
}

pub(crate) fn invalid(msg: &str) -> EnforceError {
    io_err(
        "open",
        io::Error::new(io::ErrorKind::InvalidInput, msg.to_string()),
    )
}

pub(crate) fn oom() -> EnforceError {
    io_err(
        "libnftnl allocation",
        io::Error::from(io::ErrorKind::OutOfMemory),
    )
}

// ---------------------------------------------------------------------------------------------
// Socket options and polling

pub(crate) fn set_int_opt(fd: RawFd, level: c_int, name: c_int, val: c_int) -> io::Result<()> {
    // SAFETY: `val` lives across the call and its size is passed; the fd is ours.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&val as *const c_int).cast(),
            std::mem::size_of::<c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets a buffer size with the *FORCE option (ignores rmem_max/wmem_max; needs
/// CAP_NET_ADMIN, which nftables needs anyway), falling back to the capped option.
pub(crate) fn set_buf_opt(fd: RawFd, force: c_int, plain: c_int, size: usize) -> io::Result<()> {
    let size = c_int::try_from(size).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    match set_int_opt(fd, libc::SOL_SOCKET, force, size) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            log::warn!("socket buffer force failed ({e}); falling back to the capped size");
            set_int_opt(fd, libc::SOL_SOCKET, plain, size)
        }
        r => r,
    }
}

/// Waits until `fd` is readable; false on timeout.
fn poll_readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = c_int::try_from(timeout.as_millis().max(1)).unwrap_or(c_int::MAX);
    loop {
        // SAFETY: one valid pollfd, count 1.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(rc > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An NLMSG_ERROR for `seq` as the kernel writes it with CAP_ACK and EXT_ACK.
    fn error_msg(seq: u32, errno: i32, flags: u16, tlvs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&(-errno).to_ne_bytes());
        // The echoed request header (capped), claiming a long message.
        m.extend_from_slice(&4000u32.to_ne_bytes());
        m.extend_from_slice(&[0; 12]);
        for (t, d) in tlvs {
            wire::push_attr(&mut m, *t, d).unwrap();
        }
        let len = m.len() as u32;
        m[..4].copy_from_slice(&len.to_ne_bytes());
        m
    }

    #[test]
    fn ext_acks_name_message_and_offset() {
        let m = error_msg(
            9,
            libc::EEXIST,
            NLM_F_CAPPED | NLM_F_ACK_TLVS,
            &[
                (NLMSGERR_ATTR_MSG, b"overlap\0"),
                (NLMSGERR_ATTR_OFFS, &40u32.to_ne_bytes()),
            ],
        );
        let v = all_messages(&m).unwrap();
        let ack = parse_ack(&v[0]).unwrap();
        assert_eq!(ack.errno, libc::EEXIST);
        assert_eq!(ack.msg.as_deref(), Some("overlap"));
        assert_eq!(ack.offset, Some(40));
        match kernel_error("NEWSETELEM x".into(), &ack) {
            EnforceError::Kernel { errno, message, .. } => {
                assert_eq!(errno, libc::EEXIST);
                assert_eq!(message.as_deref(), Some("overlap"));
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn acks_with_odd_lengths_do_not_panic() {
        // Not capped: the echoed length (4000) points past the datagram, so no TLVs.
        let m = error_msg(
            1,
            libc::EINVAL,
            NLM_F_ACK_TLVS,
            &[(NLMSGERR_ATTR_OFFS, &[1])],
        );
        let ack = parse_ack(&all_messages(&m).unwrap()[0]).unwrap();
        assert_eq!((ack.errno, ack.offset), (libc::EINVAL, None));
        // A too-short offset attribute is ignored.
        let m = error_msg(
            1,
            0,
            NLM_F_CAPPED | NLM_F_ACK_TLVS,
            &[(NLMSGERR_ATTR_OFFS, &[1])],
        );
        let ack = parse_ack(&all_messages(&m).unwrap()[0]).unwrap();
        assert_eq!((ack.errno, ack.offset), (0, None));
        // An error whose echoed header is missing.
        let mut m = error_msg(1, 0, 0, &[]);
        m.truncate(NLMSG_HDRLEN + 8);
        m[..4].copy_from_slice(&((NLMSG_HDRLEN + 8) as u32).to_ne_bytes());
        assert!(parse_ack(&all_messages(&m).unwrap()[0]).is_err());
        // One malformed header fails the whole datagram.
        let mut two = error_msg(1, 0, 0, &[]);
        two.extend_from_slice(&3u32.to_ne_bytes());
        two.extend_from_slice(&[0; 12]);
        assert!(all_messages(&two).is_err());
    }

    #[test]
    fn nft_requests_carry_the_subsystem() {
        let m = nft_request(
            NFT_MSG_GETTABLE,
            NLM_F_ACK,
            7,
            libc::NFPROTO_INET as u8,
            &[(NFTA_TABLE_NAME, b"t\0")],
        )
        .unwrap();
        let v = all_messages(&m).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].subsys(), NFNL_SUBSYS_NFTABLES);
        assert_eq!(v[0].kind(), NFT_MSG_GETTABLE);
        assert_eq!(v[0].seq, 7);
        let attrs: Vec<_> = v[0].attrs().map(|a| (a.ty, a.payload, a.offset)).collect();
        assert_eq!(attrs, vec![(NFTA_TABLE_NAME, &b"t\0"[..], 0)]);
    }

    #[test]
    fn sequence_numbers_skip_zero() {
        let mut s = Seq(u32::MAX - 1);
        assert_eq!(s.next(), u32::MAX);
        assert_eq!(s.next(), 1);
    }
}
