//! The event listener: what someone else changes in our table, as [`Drift`].

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crowdwall_engine::enforce::{Drift, EnforceError, Interval, SetIx};
use nix::errno::Errno;
use nix::sys::socket::{recv, MsgFlags};

use crate::consts::*;
use crate::elem::parse_elems;
use crate::objects::Target;
use crate::sock::{io_err, set_buf_opt, set_int_opt, RECV_CHUNK};
use crate::wire::{self, Message};

/// Listener buffer for netlink events.
const EVENT_RCVBUF: usize = 4 << 20;

/// A NETLINK_NETFILTER socket subscribed to the nftables event group. The kernel sends every
/// committed change to it, tagged with the port id of whoever made it, so ours are told apart
/// from someone else's.
pub(crate) struct Events {
    fd: OwnedFd,
    buf: Vec<u8>,
    joined: bool,
    /// We left the group for a while (see [`crate::firewall::QUIET_ABOVE`]).
    window: bool,
}

impl Events {
    pub(crate) fn open() -> io::Result<Events> {
        // SAFETY: plain socket(2); the fd is checked and owned below.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: a zeroed sockaddr_nl is valid; family set, port id left to the kernel.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: `sa` is a valid sockaddr_nl of the given size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        set_buf_opt(
            fd.as_raw_fd(),
            libc::SO_RCVBUFFORCE,
            libc::SO_RCVBUF,
            EVENT_RCVBUF,
        )?;
        let mut ev = Events {
            fd,
            buf: vec![0; RECV_CHUNK],
            joined: false,
            window: false,
        };
        set_int_opt(
            ev.fd.as_raw_fd(),
            SOL_NETLINK,
            NETLINK_ADD_MEMBERSHIP,
            libc::NFNLGRP_NFTABLES,
        )?;
        ev.joined = true;
        Ok(ev)
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub(crate) fn leave(&mut self) {
        if self.joined {
            let _ = set_int_opt(
                self.fd.as_raw_fd(),
                SOL_NETLINK,
                NETLINK_DROP_MEMBERSHIP,
                libc::NFNLGRP_NFTABLES,
            );
            self.joined = false;
        }
    }

    /// Joins the group again after [`Self::leave`].
    pub(crate) fn rejoin(&mut self) {
        if !self.joined {
            match set_int_opt(
                self.fd.as_raw_fd(),
                SOL_NETLINK,
                NETLINK_ADD_MEMBERSHIP,
                libc::NFNLGRP_NFTABLES,
            ) {
                Ok(()) => self.joined = true,
                Err(e) => log::warn!("cannot rejoin the nftables event group: {e}"),
            }
        }
        // Anything someone else did while we were away shows in the intact check the
        // daemon runs next; make sure it does.
        self.window = true;
    }

    /// Drains pending events into a [`Drift`]: only changes to our table by someone else.
    pub(crate) fn read(&mut self, our_portid: u32, t: &Target) -> Result<Drift, EnforceError> {
        let mut drift = Drift {
            check: std::mem::take(&mut self.window),
            ..Default::default()
        };
        let tname = t.table.to_bytes();
        loop {
            let n = match recv(
                self.fd.as_raw_fd(),
                &mut self.buf,
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
            ) {
                Ok(n) if n > self.buf.len() => {
                    drift.lost = true;
                    continue;
                }
                Ok(n) => n,
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(Errno::ENOBUFS) => {
                    // The kernel dropped events: what they said is unknown.
                    drift.lost = true;
                    continue;
                }
                Err(e) => return Err(io_err("recv events", e.into())),
            };
            // A datagram with a malformed header is dropped whole: the rest of it cannot be
            // trusted to be framed right.
            let mut it = wire::messages(&self.buf[..n]);
            let msgs: Vec<Message<'_>> = it.by_ref().collect();
            if it.malformed().is_some() {
                drift.lost = true;
                continue;
            }
            for m in msgs {
                if m.portid == our_portid || m.subsys() != NFNL_SUBSYS_NFTABLES {
                    continue;
                }
                // Attribute 1 is the table name in every message kind we care about.
                let ours = m
                    .attrs()
                    .find(|a| a.ty == 1)
                    .is_some_and(|a| wire::until_nul(a.payload) == tname);
                if !ours {
                    continue;
                }
                match m.kind() {
                    NFT_MSG_DELTABLE | NFT_MSG_DELCHAIN | NFT_MSG_DELRULE | NFT_MSG_DELSET
                    | NFT_MSG_DELOBJ | NFT_MSG_NEWTABLE => drift.rebuild = true,
                    NFT_MSG_DELSETELEM => {
                        let set = m
                            .attrs()
                            .find(|a| a.ty == NFTA_SET_ELEM_LIST_SET)
                            .map(|a| wire::until_nul(a.payload))
                            .and_then(|name| t.set_names.iter().position(|s| s.to_bytes() == name));
                        let Some(ix) = set else { continue };
                        let Some(def) = t.layout.set(ix as SetIx) else {
                            continue;
                        };
                        let mut raw = Vec::new();
                        if parse_elems(m.body(), def.family, &mut raw).is_err() {
                            drift.lost = true;
                            continue;
                        }
                        // Interval pieces come as separate start/end notifications; a start
                        // alone names the element well enough to find it.
                        let ranges: Vec<Interval> = raw
                            .iter()
                            .filter(|e| !e.end)
                            .map(|e| Interval {
                                family: def.family,
                                first: e.key,
                                last: e.key,
                            })
                            .collect();
                        if let Some(entry) =
                            drift.deleted.iter_mut().find(|(s, _)| *s == ix as SetIx)
                        {
                            entry.1.extend(ranges);
                        } else {
                            drift.deleted.push((ix as SetIx, ranges));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(drift)
    }
}
