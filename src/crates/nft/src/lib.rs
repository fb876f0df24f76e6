//! nftables through netlink: the production [`Firewall`].
//!
//! Everything lives in one `inet` table of our own: an `input` base chain with two rules
//! (`ip saddr @v4 drop`, `ip6 saddr @v6 drop`) and two interval sets with per-element
//! timeouts, so bans keep expiring in the kernel when the daemon is gone.
//!
//! # Transport, and why it looks the way it does
//!
//! See `notes/netlink-nftables.md`. In short: every call is one nfnetlink batch built into one
//! contiguous buffer and sent with one `sendmsg` (a batch split over several sends is seen by
//! the kernel as a batch without END and silently aborted). The kernel runs the whole batch
//! inside `sendmsg`, so all acks are queued when it returns: we drain the socket and match
//! every `nlmsgerr` to its sequence number, never stopping at the first one. Element messages
//! carry as many elements as fit one 64 KiB netlink attribute, so 100k bans are ~50 messages
//! and ~50 acks, far from the receive buffer's limit.
//!
//! # Kernel behaviour relied on (checked by `tests/netlink.rs` on 6.18)
//!
//! - A range ending at the family's last address is sent as a start element alone (its end
//!   would be one past the last address); the kernel accepts it, matches it open-ended, and
//!   deletes it by its start. `nft` shows it as the expected prefix.
//! - Adjacent ranges are fine: the end of one and the start of the next share a key and are
//!   told apart by the INTERVAL_END flag.
//! - BEGIN/END carry no NLM_F_ACK: only kernels >= 6.10 would ack them (6.18 does when asked).
//! - Every other message is acked whether the batch commits or aborts; on abort the errors name
//!   the failing message, and with NETLINK_EXT_ACK the offset of the failing element.
//! - 100k single IPv4 bans are 200k rbtree elements: the kernel spends ~0.4 s inside
//!   `sendmsg` on them (userspace builds the 5 MB batch in ~50 ms). Dumping them back takes
//!   ~1 s, most of it in the kernel, whose rbtree dump resumes each 32 KiB part by walking
//!   from the first element.
//!
//! Objects (table, chain, sets, rules) are serialised by the `nftnl` crate; element messages
//! by `libnftnl` through `nftnl-sys`, because the safe crate has no element timeouts or flags
//! and adds with `NLM_F_EXCL`. Replies are parsed by hand: they are a few plain attributes.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io::{self, IoSlice};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, RawFd};
use std::os::raw::{c_char, c_int};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use nftnl::expr::{
    Cmp, CmpOp, Expression, IcmpCode, Ipv4HeaderField, Ipv6HeaderField, Lookup, NetworkHeaderField,
    Payload, RejectionType, Verdict as NftVerdict,
};
use nftnl::set::Set;
use nftnl::{nft_expr, Chain, ChainType, Hook, MsgType, NlMsg, Policy, ProtoFamily, Rule, Table};
use nftnl_sys as sys;
use nix::errno::Errno;
use nix::sys::socket::{recv, sendmsg, MsgFlags, NetlinkAddr};

use crowdwall_base::{clock, time::Micros};
use crowdwall_engine::decide::Origin;
use crowdwall_engine::enforce::{
    Drift, DropCounter, Element, EnforceError, Family, Firewall, Interval, KernelElement, Layout,
    SetChange, SetDef, SetIx,
};

pub mod spec;
pub use spec::{FirewallHook, FirewallSection, FirewallSpec, Mode, TableFamily, Verdict};

/// Elements per transaction above which we leave the event group while it runs: our own
/// notifications would otherwise cost the kernel an skb per element and overflow the
/// listener. Foreign changes in that window are caught by the intact check that follows.
const QUIET_ABOVE: usize = 256;
/// Listener buffer for netlink events.
const EVENT_RCVBUF: usize = 4 << 20;

/// Bytes of element attributes per message. The elements nest's length is a u16, and
/// libnftnl writes without bounds checks into a buffer of `nft_nlmsg_maxsize()` (64 KiB + a
/// page), so this must stay below 65,535 minus the nest header, with room to spare.
const ELEM_BUDGET: usize = 65_000;
/// Large enough that the acks and dump replies of any batch we send never overflow it.
const RCVBUF: usize = 8 << 20;
/// Receive buffer for one datagram; dump skbs are at most 32 KiB + headers.
const RECV_CHUNK: usize = 256 << 10;
/// Acks are queued before `sendmsg` returns; this only covers a slow scheduler.
const ACK_WAIT: Duration = Duration::from_millis(500);
/// A dump is produced as we read it; each part comes at once, this bounds a stuck kernel.
const DUMP_WAIT: Duration = Duration::from_secs(5);
const DUMP_ATTEMPTS: usize = 3;
/// A ban of less than a second is not worth a kernel element (and 0 would mean "no timeout"
/// to some kernels).
const MIN_TIMEOUT_MS: u64 = 1_000;
/// About 100 years: "permanent" bans expressed as far-future expiries stay well inside the
/// kernel's jiffies range (`nf_msecs_to_jiffies64` returns ERANGE beyond it).
const MAX_TIMEOUT_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

// Netlink / nf_tables UAPI numbers (linux/netlink.h, linux/netfilter/nf_tables.h): stable ABI,
// spelled out because not every libc version exports them.
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSGERR_ATTR_OFFS: u16 = 2;
const SOL_NETLINK: c_int = 270;
const NETLINK_CAP_ACK: c_int = 10;
const NETLINK_EXT_ACK: c_int = 11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_GETSET: u16 = 10;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_DELRULE: u16 = 8;
const NFT_MSG_DELSET: u16 = 11;
const NFT_MSG_NEWOBJ: u16 = 18;
const NFT_MSG_GETOBJ: u16 = 19;
const NFT_MSG_DELOBJ: u16 = 20;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_OBJ_TABLE: u16 = 1;
const NFTA_OBJ_NAME: u16 = 2;
const NFTA_OBJ_TYPE: u16 = 3;
const NFTA_OBJ_DATA: u16 = 4;
const NFTA_COUNTER_BYTES: u16 = 1;
const NFTA_COUNTER_PACKETS: u16 = 2;
const NFT_OBJECT_COUNTER: u32 = 1;
const NETLINK_ADD_MEMBERSHIP: c_int = 1;
const NETLINK_DROP_MEMBERSHIP: c_int = 2;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
const NFTA_SET_ELEM_EXPIRATION: u16 = 5;
const NFTA_DATA_VALUE: u16 = 1;
const NFT_SET_INTERVAL: u32 = 0x4;
const NFT_SET_TIMEOUT: u32 = 0x10;
const NFT_SET_ELEM_INTERVAL_END: u32 = 0x1;
/// Strips NLA_F_NESTED / NLA_F_NET_BYTEORDER from an attribute type.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// The nftables backend: one netlink socket for transactions and read-backs, one subscribed
/// to nftables events to notice when someone else changes our objects.
pub struct NftFirewall {
    spec: FirewallSpec,
    table: CString,
    layout: Layout,
    /// Set names, indexed like the layout.
    set_names: Vec<CString>,
    sock: mnl::Socket,
    portid: u32,
    seq: u32,
    /// What SO_SNDBUF was last set to; only ever raised.
    sndbuf: usize,
    rbuf: Vec<u8>,
    events: Option<Events>,
}

// SAFETY: `mnl::Socket` is a heap struct holding an fd and a sockaddr, with no thread affinity
// and no shared state; we own it exclusively and only touch it through `&mut self`.
unsafe impl Send for NftFirewall {}

impl NftFirewall {
    /// Opens NETLINK_NETFILTER sockets in the calling thread's network namespace. In set-only
    /// mode the admin's sets must exist: their flags decide what they can hold.
    pub fn open(spec: FirewallSpec) -> Result<Self, EnforceError> {
        let table =
            CString::new(spec.table.clone()).map_err(|_| invalid("table name contains NUL"))?;
        // NFT_NAME_MAXLEN is 256 with the NUL; the element message budget assumes it too.
        if spec.table.is_empty() || spec.table.len() > 255 {
            return Err(invalid("table name must be 1..=255 bytes"));
        }
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
        let events = match Events::open() {
            Ok(e) => Some(e),
            Err(e) => {
                log::warn!("nftables events unavailable ({e}); drift is found by polling only");
                None
            }
        };
        let mut fw = NftFirewall {
            spec,
            table,
            layout: Layout::own(),
            set_names: Vec::new(),
            sock,
            portid,
            seq: 0,
            sndbuf: 0,
            rbuf: vec![0; RECV_CHUNK],
            events,
        };
        if fw.spec.mode == Mode::Sets {
            fw.layout = fw.probe_admin_sets()?;
        }
        fw.set_names = fw
            .layout
            .sets
            .iter()
            .map(|d| CString::new(d.name.clone()).map_err(|_| invalid("set name contains NUL")))
            .collect::<Result<_, _>>()?;
        Ok(fw)
    }

    /// A second handle for read-backs on another thread: no event socket.
    pub fn open_reader(spec: FirewallSpec) -> Result<Self, EnforceError> {
        let mut fw = Self::open(spec)?;
        fw.events = None;
        Ok(fw)
    }

    /// Set-only mode: reads the admin's sets' flags and key sizes.
    fn probe_admin_sets(&mut self) -> Result<Layout, EnforceError> {
        let spec = self.spec.clone();
        let mut get =
            |name: &Option<String>, family: Family| -> Result<Option<SetDef>, EnforceError> {
                let Some(name) = name else { return Ok(None) };
                let (flags, key_len) = self.get_set(name)?;
                let want = match family {
                    Family::V4 => 4,
                    Family::V6 => 16,
                };
                let where_ = format!("set {} {name}", spec.table);
                if key_len != want {
                    return Err(EnforceError::Setup(format!(
                        "{where_}: key is {key_len} bytes, expected {want} ({})",
                        if want == 4 {
                            "type ipv4_addr"
                        } else {
                            "type ipv6_addr"
                        }
                    )));
                }
                if flags & NFT_SET_TIMEOUT == 0 {
                    return Err(EnforceError::Setup(format!(
                        "{where_} needs `flags timeout` (bans carry their own expiry)"
                    )));
                }
                Ok(Some(SetDef {
                    name: name.clone(),
                    family,
                    interval: flags & NFT_SET_INTERVAL != 0,
                }))
            };
        let v4 = get(&spec.set_v4, Family::V4)?;
        let v6 = get(&spec.set_v6, Family::V6)?;
        let v4n = get(&spec.set_v4_net, Family::V4)?;
        let v6n = get(&spec.set_v6_net, Family::V6)?;
        for (d, key) in [(&v4n, "set_v4_net"), (&v6n, "set_v6_net")] {
            if d.as_ref().is_some_and(|d| !d.interval) {
                return Err(EnforceError::Setup(format!(
                    "firewall.{key} must name a set with `flags interval, timeout`"
                )));
            }
        }
        Ok(Layout::shared(v4, v6, v4n, v6n))
    }

    /// (flags, key length) of a set in our table.
    fn get_set(&mut self, name: &str) -> Result<(u32, u32), EnforceError> {
        let seq = self.next_seq();
        let n = CString::new(name).map_err(|_| invalid("set name contains NUL"))?;
        let req = request(
            NFT_MSG_GETSET,
            NLM_F_ACK,
            seq,
            self.spec.family.nfproto(),
            &[
                (NFTA_SET_TABLE, self.table.as_bytes_with_nul()),
                (NFTA_SET_NAME, n.as_bytes_with_nul()),
            ],
        );
        self.drain_stale()?;
        self.send(&req)?;
        let deadline = Instant::now() + ACK_WAIT;
        let mut found = None;
        loop {
            let Some(len) = self.recv_nowait()? else {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(EnforceError::Protocol(format!("GETSET {name}: no reply")));
                }
                poll_readable(self.sock.as_raw_fd(), left).map_err(|e| io_err("poll", e))?;
                continue;
            };
            for m in messages(&self.rbuf[..len])? {
                if m.seq != seq {
                    continue;
                }
                if m.ty == NLMSG_ERROR {
                    let ack = parse_ack(&m)?;
                    if ack.errno == libc::ENOENT {
                        return Err(EnforceError::Setup(format!(
                            "set {} {name} does not exist: create it first (e.g. `nft add set {} {} {name} {{ type ipv4_addr; flags interval, timeout; }}`)",
                            self.spec.table,
                            family_name(self.spec.family),
                            self.spec.table
                        )));
                    }
                    if ack.errno != 0 {
                        return Err(kernel_error(format!("GETSET {name}"), &ack));
                    }
                    return found.ok_or_else(|| {
                        EnforceError::Protocol(format!("GETSET {name}: empty reply"))
                    });
                }
                let body = m.payload.get(NFGENMSG_LEN..).unwrap_or(&[]);
                let (mut flags, mut klen) = (0, 0);
                for (ty, data, _) in Attrs::new(body) {
                    match ty {
                        NFTA_SET_FLAGS if data.len() >= 4 => flags = be_u32(data),
                        NFTA_SET_KEY_LEN if data.len() >= 4 => klen = be_u32(data),
                        _ => {}
                    }
                }
                found = Some((flags, klen));
            }
        }
    }

    pub fn spec(&self) -> &FirewallSpec {
        &self.spec
    }

    fn next_seq(&mut self) -> u32 {
        // 0 is avoided: nftnl uses it for "no sequence check".
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Own-table mode. Emits add; delete; add of the table, then counters, sets, verdict
    /// chains and base chains. Deleting the table inside the transaction makes the result
    /// independent of what was there before, and the old table stays in force until the commit
    /// swaps in the new one.
    ///
    /// ```text
    /// table inet crowdwall {
    ///   counter local { }  ...one per origin
    ///   set local_v4 { type ipv4_addr; flags timeout; }           addresses
    ///   set local_v4_net { type ipv4_addr; flags interval, timeout; }  ranges
    ///   ...v6 likewise, and the same four for every origin
    ///   chain ban_local { counter name "local"; drop }  (or reject: tcp reset / icmpx admin-prohibited)
    ///   chain input { type filter hook input priority P;
    ///     ip saddr @local_v4 jump ban_local
    ///     ip6 saddr ::ffff:0:0/96 @nh,160,32 @local_v4 jump ban_local   (v4-mapped sources)
    ///     ... }
    ///   chain forward { likewise, when enabled }
    /// }
    /// ```
    fn push_skeleton(&mut self, b: &mut Batch) -> Result<(), EnforceError> {
        let tname = self.spec.table.clone();
        let table = Table::new(&self.table, ProtoFamily::Inet);
        for (ty, what) in [
            (MsgType::Add, "NEWTABLE"),
            (MsgType::Del, "DELTABLE"),
            (MsgType::Add, "NEWTABLE"),
        ] {
            b.push_obj(self.next_seq(), format!("{what} {tname}"), &table, ty)?;
        }
        for o in Origin::ALL {
            let seq = self.next_seq();
            b.push_counter(seq, &self.table, o.as_str())?;
        }
        // Sets, with transaction-local ids so the rules' lookups bind to them.
        let defs = self.layout.sets.clone();
        let mut lookups = Vec::with_capacity(defs.len());
        for (i, d) in defs.iter().enumerate() {
            let id = i as u32 + 1;
            let name = &self.set_names[i].clone();
            let flags = if d.interval {
                NFT_SET_INTERVAL | NFT_SET_TIMEOUT
            } else {
                NFT_SET_TIMEOUT
            };
            let what = format!("NEWSET {}", d.name);
            let seq = self.next_seq();
            match d.family {
                Family::V4 => {
                    let set = Set::<Ipv4Addr>::new_named(name, id, &table, ProtoFamily::Inet);
                    // SAFETY: the live nftnl_set owned by `set`.
                    unsafe {
                        sys::nftnl_set_set_u32(
                            set.as_ptr().as_ptr(),
                            sys::NFTNL_SET_FLAGS as u16,
                            flags,
                        )
                    };
                    b.push_obj(seq, what, &set, MsgType::Add)?;
                    lookups.push(Lookup::new(&set));
                }
                Family::V6 => {
                    let set = Set::<Ipv6Addr>::new_named(name, id, &table, ProtoFamily::Inet);
                    // SAFETY: as above.
                    unsafe {
                        sys::nftnl_set_set_u32(
                            set.as_ptr().as_ptr(),
                            sys::NFTNL_SET_FLAGS as u16,
                            flags,
                        )
                    };
                    b.push_obj(seq, what, &set, MsgType::Add)?;
                    lookups.push(Lookup::new(&set));
                }
            }
        }
        // One verdict chain per origin: its named counter, then the verdict.
        for o in Origin::ALL {
            let cname = CString::new(format!("ban_{o}")).map_err(|_| invalid("chain name"))?;
            let chain = Chain::new(&cname, &table);
            b.push_obj(
                self.next_seq(),
                format!("NEWCHAIN ban_{o}"),
                &chain,
                MsgType::Add,
            )?;
            let mut count = Rule::new(&chain);
            count.add_expr(&ObjRefCounter(
                CString::new(o.as_str()).map_err(|_| invalid("counter"))?,
            ));
            b.push_obj(
                self.next_seq(),
                format!("NEWRULE ban_{o} counter"),
                &count,
                MsgType::Add,
            )?;
            match self.spec.verdict {
                Verdict::Drop => {
                    let mut r = Rule::new(&chain);
                    r.add_expr(&nft_expr!(verdict drop));
                    b.push_obj(
                        self.next_seq(),
                        format!("NEWRULE ban_{o} drop"),
                        &r,
                        MsgType::Add,
                    )?;
                }
                Verdict::Reject => {
                    let mut tcp = Rule::new(&chain);
                    tcp.add_expr(&nft_expr!(meta l4proto));
                    tcp.add_expr(&nft_expr!(cmp == libc::IPPROTO_TCP as u8));
                    tcp.add_expr(&NftVerdict::Reject(RejectionType::TcpRst));
                    b.push_obj(
                        self.next_seq(),
                        format!("NEWRULE ban_{o} tcp reset"),
                        &tcp,
                        MsgType::Add,
                    )?;
                    let mut other = Rule::new(&chain);
                    other.add_expr(&NftVerdict::Reject(RejectionType::Icmp(
                        IcmpCode::AdminProhibited,
                    )));
                    b.push_obj(
                        self.next_seq(),
                        format!("NEWRULE ban_{o} reject"),
                        &other,
                        MsgType::Add,
                    )?;
                }
            }
        }
        let mut hooks = Vec::new();
        if self.spec.input {
            hooks.push((c"input", Hook::In));
        }
        if self.spec.forward {
            hooks.push((c"forward", Hook::Forward));
        }
        let v4_saddr = Payload::Network(NetworkHeaderField::Ipv4(Ipv4HeaderField::Saddr));
        let v6_saddr = Payload::Network(NetworkHeaderField::Ipv6(Ipv6HeaderField::Saddr));
        let mapped_prefix: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
        for (hname, hook) in hooks {
            let hn = hname.to_string_lossy();
            let mut chain = Chain::new(hname, &table);
            chain.set_hook(hook, self.spec.priority);
            chain.set_type(ChainType::Filter);
            chain.set_policy(Policy::Accept);
            b.push_obj(
                self.next_seq(),
                format!("NEWCHAIN {hn}"),
                &chain,
                MsgType::Add,
            )?;
            for (i, d) in defs.iter().enumerate() {
                let origin = Origin::ALL[i / 4];
                let jump = NftVerdict::Jump {
                    chain: CString::new(format!("ban_{origin}")).map_err(|_| invalid("chain"))?,
                };
                let mut r = Rule::new(&chain);
                match d.family {
                    Family::V4 => {
                        r.add_expr(&nft_expr!(meta nfproto));
                        r.add_expr(&nft_expr!(cmp == libc::NFPROTO_IPV4 as u8));
                        r.add_expr(&v4_saddr);
                    }
                    Family::V6 => {
                        r.add_expr(&nft_expr!(meta nfproto));
                        r.add_expr(&nft_expr!(cmp == libc::NFPROTO_IPV6 as u8));
                        r.add_expr(&v6_saddr);
                    }
                }
                r.add_expr(&lookups[i]);
                r.add_expr(&jump);
                b.push_obj(
                    self.next_seq(),
                    format!("NEWRULE {hn} saddr @{}", d.name),
                    &r,
                    MsgType::Add,
                )?;
                if d.family == Family::V4 {
                    // An IPv6 packet whose source is ::ffff:a.b.c.d is that IPv4 address: look
                    // its low 32 bits up in the IPv4 set, so mapped sources never slip past.
                    let mut m = Rule::new(&chain);
                    m.add_expr(&nft_expr!(meta nfproto));
                    m.add_expr(&nft_expr!(cmp == libc::NFPROTO_IPV6 as u8));
                    m.add_expr(&RawNetPayload { offset: 8, len: 12 });
                    m.add_expr(&Cmp::new(CmpOp::Eq, &mapped_prefix[..]));
                    m.add_expr(&RawNetPayload { offset: 20, len: 4 });
                    m.add_expr(&lookups[i]);
                    m.add_expr(&jump);
                    b.push_obj(
                        self.next_seq(),
                        format!("NEWRULE {hn} mapped @{}", d.name),
                        &m,
                        MsgType::Add,
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Appends element messages for one set, packed up to [`ELEM_BUDGET`].
    fn push_elems(
        &mut self,
        b: &mut Batch,
        op: ElemOp,
        set: SetIx,
        elems: &[KElem],
    ) -> Result<(), EnforceError> {
        let Some(def) = self.layout.set(set).cloned() else {
            return Err(EnforceError::Protocol(format!("no set #{set}")));
        };
        let name = self.set_names[set as usize].clone();
        let mut start = 0;
        while start < elems.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < elems.len() && bytes + elems[end].wire_size() <= ELEM_BUDGET {
                bytes += elems[end].wire_size();
                end += 1;
            }
            let seq = self.next_seq();
            b.push_elems(
                seq,
                &self.table,
                self.spec.family.nfproto(),
                (&name, &def.name),
                op,
                &elems[start..end],
            )?;
            start = end;
        }
        Ok(())
    }

    /// Appends a flush of one set (DELSETELEM without elements).
    fn push_flush(&mut self, b: &mut Batch, set: SetIx) -> Result<(), EnforceError> {
        let seq = self.next_seq();
        let name = self.set_names[set as usize].clone();
        let msg = request(
            NFT_MSG_DELSETELEM,
            NLM_F_ACK,
            seq,
            self.spec.family.nfproto(),
            &[
                (NFTA_SET_ELEM_LIST_TABLE, self.table.as_bytes_with_nul()),
                (NFTA_SET_ELEM_LIST_SET, name.as_bytes_with_nul()),
            ],
        );
        b.push_bytes(
            seq,
            What::Obj(format!("FLUSH SET {}", name.to_string_lossy())),
            &msg,
        );
        Ok(())
    }

    /// The elements of `add`/`remove` for one set, as kernel elements.
    fn kelems(
        &self,
        set: SetIx,
        ranges: impl Iterator<Item = (Interval, Option<u64>)>,
    ) -> Result<Vec<KElem>, EnforceError> {
        let interval = self.layout.set(set).is_some_and(|d| d.interval);
        let mut out = Vec::new();
        for (range, timeout) in ranges {
            if interval {
                interval_elems(range, timeout, &mut out);
            } else if range.first != range.last {
                return Err(EnforceError::Protocol(format!(
                    "range {range} cannot go into hash set {}",
                    self.layout.set(set).map(|d| d.name.as_str()).unwrap_or("?")
                )));
            } else {
                out.push(KElem {
                    range,
                    key: range.first,
                    end: false,
                    timeout_ms: timeout,
                });
            }
        }
        Ok(out)
    }

    /// Sends a batch, leaving the event group around big ones (see [`QUIET_ABOVE`]).
    fn transact_quiet(&mut self, b: Batch, elements: usize) -> Result<(), EnforceError> {
        let quiet = elements > QUIET_ABOVE;
        if quiet {
            if let Some(ev) = &mut self.events {
                ev.leave();
            }
        }
        let r = self.transact(b);
        if quiet {
            if let Some(ev) = &mut self.events {
                ev.join();
                // Anything someone else did while we were away shows in the intact check the
                // daemon runs next; make sure it does.
                ev.window = true;
            }
        }
        r
    }

    /// Sends a finished batch and waits for its verdict.
    fn transact(&mut self, b: Batch) -> Result<(), EnforceError> {
        self.drain_stale()?;
        self.send(&b.buf)?;
        let acked: Vec<u32> = b
            .msgs
            .iter()
            .filter(|m| m.wants_ack())
            .map(|m| m.seq)
            .collect();
        let quiet: Vec<u32> = b
            .msgs
            .iter()
            .filter(|m| !m.wants_ack())
            .map(|m| m.seq)
            .collect();
        let acks = self.wait_acks(&acked, &quiet, true)?;
        // The first failing message (in batch order) is the cause; later ones often fail
        // only because of it.
        let failed = b
            .msgs
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
    fn wait_acks(
        &mut self,
        acked: &[u32],
        quiet: &[u32],
        stop_on_error: bool,
    ) -> Result<HashMap<u32, Ack>, EnforceError> {
        let mut pending: std::collections::HashSet<u32> = acked.iter().copied().collect();
        let known: std::collections::HashSet<u32> = acked.iter().chain(quiet).copied().collect();
        let mut acks = HashMap::new();
        let mut failed = false;
        let mut deadline: Option<Instant> = None;
        loop {
            match self.recv_nowait()? {
                Some(n) => {
                    for m in messages(&self.rbuf[..n])? {
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
                    poll_readable(self.sock.as_raw_fd(), left).map_err(|e| io_err("poll", e))?;
                }
            }
        }
        Ok(acks)
    }

    /// Discards replies left over from an earlier call that returned early (an error, an
    /// interrupted dump), so they cannot be mistaken for this call's.
    fn drain_stale(&mut self) -> Result<(), EnforceError> {
        while self.recv_nowait()?.is_some() {}
        Ok(())
    }

    fn send(&mut self, buf: &[u8]) -> Result<(), EnforceError> {
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

    /// One datagram into `self.rbuf`, or None when the socket is empty.
    fn recv_nowait(&mut self) -> Result<Option<usize>, EnforceError> {
        loop {
            // MSG_TRUNC makes recv return the datagram's real length, so truncation is seen.
            match recv(self.sock.as_raw_fd(), &mut self.rbuf, MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC) {
                Ok(n) if n > self.rbuf.len() => {
                    return Err(EnforceError::Protocol(format!("reply of {n} bytes truncated")))
                }
                Ok(n) => return Ok(Some(n)),
                Err(Errno::EAGAIN) => return Ok(None),
                Err(Errno::EINTR) => continue,
                Err(Errno::ENOBUFS) => {
                    return Err(EnforceError::Protocol(
                        "receive buffer overflowed (ENOBUFS): replies were lost; the kernel state is unknown".into(),
                    ))
                }
                Err(e) => return Err(io_err("recv", e.into())),
            }
        }
    }

    /// Payloads of the data messages of a small dump (rules, counters).
    fn dump_small(
        &mut self,
        what: &str,
        ty: u16,
        attrs: &[Attr],
    ) -> Result<Vec<(u16, Vec<u8>)>, EnforceError> {
        for _ in 0..DUMP_ATTEMPTS {
            let seq = self.next_seq();
            let req = request(ty, NLM_F_DUMP, seq, self.spec.family.nfproto(), attrs);
            self.drain_stale()?;
            self.send(&req)?;
            let mut out = Vec::new();
            let mut interrupted = false;
            let mut done = false;
            while !done {
                let n = match self.recv_nowait()? {
                    Some(n) => n,
                    None => {
                        if !poll_readable(self.sock.as_raw_fd(), DUMP_WAIT)
                            .map_err(|e| io_err("poll", e))?
                        {
                            return Err(EnforceError::Protocol(format!("{what}: dump stalled")));
                        }
                        continue;
                    }
                };
                for m in messages(&self.rbuf[..n])? {
                    if m.seq != seq || m.portid != self.portid {
                        continue;
                    }
                    interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
                    match m.ty {
                        NLMSG_ERROR => {
                            let ack = parse_ack(&m)?;
                            if ack.errno != 0 {
                                return Err(kernel_error(what.to_string(), &ack));
                            }
                        }
                        NLMSG_DONE => {
                            let status = m.payload.get(..4).map(ne_i32).unwrap_or(0);
                            if status < 0 {
                                let ack = Ack {
                                    errno: -status,
                                    msg: None,
                                    offset: None,
                                };
                                return Err(kernel_error(what.to_string(), &ack));
                            }
                            done = true;
                        }
                        t => out.push((t & 0xff, m.payload.to_vec())),
                    }
                }
            }
            if !interrupted {
                return Ok(out);
            }
        }
        Err(EnforceError::Protocol(format!(
            "{what}: changed during {DUMP_ATTEMPTS} dumps"
        )))
    }

    /// Whether every chain of ours still has its rules (`nft flush table` empties chains
    /// but leaves them, and the sets, in place).
    fn rules_present(&mut self) -> Result<bool, EnforceError> {
        const NFT_MSG_GETRULE: u16 = 7;
        const NFTA_RULE_TABLE: u16 = 1;
        const NFTA_RULE_CHAIN: u16 = 2;
        let t = self.table.as_bytes_with_nul().to_vec();
        let msgs = match self.dump_small("GETRULE", NFT_MSG_GETRULE, &[(NFTA_RULE_TABLE, &t)]) {
            Err(EnforceError::Kernel { errno, .. }) if errno == libc::ENOENT => return Ok(false),
            r => r?,
        };
        let mut per_chain: HashMap<Vec<u8>, usize> = HashMap::new();
        for (_, payload) in &msgs {
            let body = payload.get(NFGENMSG_LEN..).unwrap_or(&[]);
            let mut table_ok = false;
            let mut chain = None;
            for (ty, data, _) in Attrs::new(body) {
                match ty {
                    NFTA_RULE_TABLE => {
                        table_ok = data.split(|&c| c == 0).next() == Some(self.table.to_bytes())
                    }
                    NFTA_RULE_CHAIN => chain = data.split(|&c| c == 0).next().map(|c| c.to_vec()),
                    _ => {}
                }
            }
            if let (true, Some(c)) = (table_ok, chain) {
                *per_chain.entry(c).or_default() += 1;
            }
        }
        let v4_sets = self
            .layout
            .sets
            .iter()
            .filter(|d| d.family == Family::V4)
            .count();
        let base_rules = self.layout.sets.len() + v4_sets;
        let verdict_rules = match self.spec.verdict {
            Verdict::Drop => 2,
            Verdict::Reject => 3,
        };
        let mut want: Vec<(String, usize)> = Origin::ALL
            .iter()
            .map(|o| (format!("ban_{o}"), verdict_rules))
            .collect();
        if self.spec.input {
            want.push(("input".into(), base_rules));
        }
        if self.spec.forward {
            want.push(("forward".into(), base_rules));
        }
        Ok(want
            .iter()
            .all(|(c, n)| per_chain.get(c.as_bytes()).copied().unwrap_or(0) == *n))
    }

    /// The per-origin named counters.
    fn dump_counters(&mut self) -> Result<Vec<DropCounter>, EnforceError> {
        let t = self.table.as_bytes_with_nul().to_vec();
        let ty = NFT_OBJECT_COUNTER.to_be_bytes();
        let msgs = self.dump_small(
            "GETOBJ counter",
            NFT_MSG_GETOBJ,
            &[(NFTA_OBJ_TABLE, &t), (NFTA_OBJ_TYPE, &ty)],
        )?;
        let mut out = Vec::new();
        for (_, payload) in &msgs {
            let body = payload.get(NFGENMSG_LEN..).unwrap_or(&[]);
            let mut name = None;
            let mut table_ok = false;
            let mut kind_ok = false;
            let (mut packets, mut bytes) = (0, 0);
            for (ty, data, _) in Attrs::new(body) {
                match ty {
                    NFTA_OBJ_TABLE => {
                        table_ok = data.split(|&c| c == 0).next() == Some(self.table.to_bytes())
                    }
                    NFTA_OBJ_NAME => {
                        name = data
                            .split(|&c| c == 0)
                            .next()
                            .map(|n| String::from_utf8_lossy(n).into_owned())
                    }
                    NFTA_OBJ_TYPE if data.len() >= 4 => {
                        kind_ok = be_u32(data) == NFT_OBJECT_COUNTER
                    }
                    NFTA_OBJ_DATA => {
                        for (t, d, _) in Attrs::new(data) {
                            match t {
                                NFTA_COUNTER_BYTES if d.len() >= 8 => bytes = be_u64(d),
                                NFTA_COUNTER_PACKETS if d.len() >= 8 => packets = be_u64(d),
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            if let (true, true, Some(origin)) = (table_ok, kind_ok, name) {
                out.push(DropCounter {
                    origin,
                    packets,
                    bytes,
                });
            }
        }
        out.sort_by_key(|c| {
            Origin::ALL
                .iter()
                .position(|o| o.as_str() == c.origin)
                .unwrap_or(usize::MAX)
        });
        Ok(out)
    }

    /// Dumps one set's elements, retrying when the set changed under the dump.
    fn dump_set(&mut self, set: SetIx) -> Result<Vec<RawElem>, EnforceError> {
        let family = self
            .layout
            .set(set)
            .map(|d| d.family)
            .ok_or_else(|| EnforceError::Protocol(format!("no set #{set}")))?;
        let name = self.set_names[set as usize].clone();
        let what = format!("GETSETELEM {}", name.to_string_lossy());
        for _ in 0..DUMP_ATTEMPTS {
            let seq = self.next_seq();
            let req = request(
                NFT_MSG_GETSETELEM,
                NLM_F_DUMP,
                seq,
                self.spec.family.nfproto(),
                &[
                    (NFTA_SET_ELEM_LIST_TABLE, self.table.as_bytes_with_nul()),
                    (NFTA_SET_ELEM_LIST_SET, name.as_bytes_with_nul()),
                ],
            );
            self.drain_stale()?;
            self.send(&req)?;
            let mut out = Vec::new();
            let mut interrupted = false;
            let mut done = false;
            while !done {
                let n = match self.recv_nowait()? {
                    Some(n) => n,
                    None => {
                        if !poll_readable(self.sock.as_raw_fd(), DUMP_WAIT)
                            .map_err(|e| io_err("poll", e))?
                        {
                            return Err(EnforceError::Protocol(format!("{what}: dump stalled")));
                        }
                        continue;
                    }
                };
                for m in messages(&self.rbuf[..n])? {
                    if m.seq != seq || m.portid != self.portid {
                        continue;
                    }
                    interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
                    match m.ty {
                        NLMSG_ERROR => {
                            let ack = parse_ack(&m)?;
                            if ack.errno != 0 {
                                return Err(kernel_error(what, &ack));
                            }
                        }
                        NLMSG_DONE => {
                            let status = m.payload.get(..4).map(ne_i32).unwrap_or(0);
                            if status < 0 {
                                let ack = Ack {
                                    errno: -status,
                                    msg: None,
                                    offset: None,
                                };
                                return Err(kernel_error(what, &ack));
                            }
                            done = true;
                        }
                        t if t == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM => {
                            parse_elems(m.payload, family, &mut out)?
                        }
                        _ => {}
                    }
                }
            }
            if !interrupted {
                return Ok(out);
            }
        }
        Err(EnforceError::Protocol(format!(
            "{what}: set changed during {DUMP_ATTEMPTS} dumps"
        )))
    }
}

impl Firewall for NftFirewall {
    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn load(&mut self, sets: &[Vec<Element>]) -> Result<(), EnforceError> {
        let now = clock::now();
        let mut b = Batch::new();
        b.begin(self.next_seq())?;
        match self.spec.mode {
            Mode::Table => self.push_skeleton(&mut b)?,
            // The admin's sets: emptied and refilled in the same transaction, so there is no
            // moment without the bans.
            Mode::Sets => {
                for ix in 0..self.layout.sets.len() {
                    self.push_flush(&mut b, ix as SetIx)?;
                }
            }
        }
        let mut n = 0;
        for (ix, elems) in sets.iter().enumerate() {
            let k = self.kelems(
                ix as SetIx,
                elems
                    .iter()
                    .filter(|e| e.expires > now)
                    .map(|e| (e.range, Some(timeout_ms(e.expires, now)))),
            )?;
            n += k.len();
            self.push_elems(&mut b, ElemOp::New, ix as SetIx, &k)?;
        }
        b.end(self.next_seq())?;
        self.transact_quiet(b, n)
    }

    fn apply(&mut self, changes: &[SetChange]) -> Result<(), EnforceError> {
        let now = clock::now();
        let mut b = Batch::new();
        b.begin(self.next_seq())?;
        let mut n = 0;
        // Deletes first: an element in both lists is thereby refreshed with its new timeout
        // (re-adding alone is ignored by kernels before 6.12).
        for c in changes {
            let k = self.kelems(c.set, c.remove.iter().map(|r| (*r, None)))?;
            n += k.len();
            self.push_elems(&mut b, ElemOp::Del, c.set, &k)?;
        }
        for c in changes {
            let k = self.kelems(
                c.set,
                c.add
                    .iter()
                    .filter(|e| e.expires > now)
                    .map(|e| (e.range, Some(timeout_ms(e.expires, now)))),
            )?;
            n += k.len();
            self.push_elems(&mut b, ElemOp::New, c.set, &k)?;
        }
        if n == 0 {
            return Ok(());
        }
        b.end(self.next_seq())?;
        self.transact_quiet(b, n)
    }

    fn is_intact(&mut self) -> Result<bool, EnforceError> {
        let t = self.table.as_bytes_with_nul().to_vec();
        type Query = (u16, String, Vec<(u16, Vec<u8>)>);
        let mut queries: Vec<Query> = Vec::new();
        if self.spec.mode == Mode::Table {
            queries.push((
                NFT_MSG_GETTABLE,
                "GETTABLE".into(),
                vec![(NFTA_TABLE_NAME, t.clone())],
            ));
            let mut chains: Vec<String> = Origin::ALL.iter().map(|o| format!("ban_{o}")).collect();
            if self.spec.input {
                chains.push("input".into());
            }
            if self.spec.forward {
                chains.push("forward".into());
            }
            for c in chains {
                let mut n = c.clone().into_bytes();
                n.push(0);
                queries.push((
                    NFT_MSG_GETCHAIN,
                    format!("GETCHAIN {c}"),
                    vec![(NFTA_CHAIN_TABLE, t.clone()), (NFTA_CHAIN_NAME, n)],
                ));
            }
        }
        for name in &self.set_names {
            queries.push((
                NFT_MSG_GETSET,
                format!("GETSET {}", name.to_string_lossy()),
                vec![
                    (NFTA_SET_TABLE, t.clone()),
                    (NFTA_SET_NAME, name.as_bytes_with_nul().to_vec()),
                ],
            ));
        }
        // Plain requests in one datagram: nfnetlink processes each in turn, replying with the
        // object and then an ack.
        let mut buf = Vec::new();
        let mut seqs = Vec::new();
        let fam = self.spec.family.nfproto();
        for (ty, _, attrs) in &queries {
            let seq = self.next_seq();
            let a: Vec<Attr> = attrs.iter().map(|(k, v)| (*k, &v[..])).collect();
            buf.extend(request(*ty, NLM_F_ACK, seq, fam, &a));
            seqs.push(seq);
        }
        self.drain_stale()?;
        self.send(&buf)?;
        let acks = self.wait_acks(&seqs, &[], false)?;
        let mut intact = true;
        for (seq, (_, what, _)) in seqs.iter().zip(&queries) {
            match acks.get(seq) {
                None => return Err(EnforceError::Protocol(format!("{what}: no reply"))),
                Some(a) if a.errno == 0 => {}
                Some(a) if a.errno == libc::ENOENT => intact = false,
                Some(a) => return Err(kernel_error(what.to_string(), a)),
            }
        }
        // A flushed table keeps its chains but loses their rules: count the input rules.
        if intact && self.spec.mode == Mode::Table {
            intact = self.rules_present()?;
        }
        Ok(intact)
    }

    fn list(&mut self, set: SetIx) -> Result<Vec<KernelElement>, EnforceError> {
        let family = self
            .layout
            .set(set)
            .map(|d| (d.family, d.interval))
            .ok_or_else(|| EnforceError::Protocol(format!("no set #{set}")))?;
        let raw = self.dump_set(set)?;
        Ok(match family {
            (f, true) => merge(f, raw),
            (f, false) => raw
                .into_iter()
                .filter(|e| !e.end)
                .map(|e| KernelElement {
                    range: Interval {
                        family: f,
                        first: e.key,
                        last: e.key,
                    },
                    timeout_ms: e.timeout_ms,
                    expires_ms: e.expires_ms,
                })
                .collect(),
        })
    }

    fn counters(&mut self) -> Result<Vec<DropCounter>, EnforceError> {
        if self.spec.mode != Mode::Table {
            return Ok(Vec::new());
        }
        self.dump_counters()
    }

    fn drift(&mut self) -> Result<Drift, EnforceError> {
        let Some(mut ev) = self.events.take() else {
            return Ok(Drift::default());
        };
        let r = ev.read(self.portid, &self.table, &self.layout, &self.set_names);
        self.events = Some(ev);
        r
    }

    fn event_fd(&self) -> Option<RawFd> {
        self.events.as_ref().map(|e| e.fd.as_raw_fd())
    }

    fn remove(&mut self) -> Result<(), EnforceError> {
        let mut b = Batch::new();
        b.begin(self.next_seq())?;
        match self.spec.mode {
            Mode::Table => {
                let table = Table::new(&self.table, ProtoFamily::Inet);
                b.push_obj(
                    self.next_seq(),
                    format!("DELTABLE {}", self.spec.table),
                    &table,
                    MsgType::Del,
                )?;
            }
            Mode::Sets => {
                for ix in 0..self.layout.sets.len() {
                    self.push_flush(&mut b, ix as SetIx)?;
                }
            }
        }
        b.end(self.next_seq())?;
        match self.transact(b) {
            Err(EnforceError::Kernel { errno, .. }) if errno == libc::ENOENT => Ok(()),
            r => r,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Elements as sent

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElemOp {
    New,
    Del,
}

/// One kernel set element: the start or the (exclusive) end of an interval.
#[derive(Debug, Clone, Copy)]
struct KElem {
    range: Interval,
    key: u128,
    end: bool,
    timeout_ms: Option<u64>,
}

impl KElem {
    fn key_bytes(&self) -> ([u8; 16], usize) {
        let mut out = [0u8; 16];
        match self.range.family {
            Family::V4 => {
                out[..4].copy_from_slice(&(self.key as u32).to_be_bytes());
                (out, 4)
            }
            Family::V6 => (self.key.to_be_bytes(), 16),
        }
    }

    /// Exactly what libnftnl emits for the element: list-elem nest, key nest, data value,
    /// optional timeout (u64) and flags (u32), each attribute 4-aligned.
    fn wire_size(&self) -> usize {
        let key = match self.range.family {
            Family::V4 => 4,
            Family::V6 => 16,
        };
        4 + 4
            + 4
            + key
            + if self.timeout_ms.is_some() { 12 } else { 0 }
            + if self.end { 8 } else { 0 }
    }
}

/// Start element, plus the end element unless the range reaches the family's last address
/// (the end would be one past it; the kernel treats an unterminated start as open-ended).
fn interval_elems(range: Interval, timeout_ms: Option<u64>, out: &mut Vec<KElem>) {
    out.push(KElem {
        range,
        key: range.first,
        end: false,
        timeout_ms,
    });
    if range.last < Interval::family_max(range.family) {
        // The end element must carry no timeout: the kernel rejects it (EINVAL).
        out.push(KElem {
            range,
            key: range.last + 1,
            end: true,
            timeout_ms: None,
        });
    }
}

fn timeout_ms(expires: Micros, now: Micros) -> u64 {
    let ms = (expires.saturating_sub(now) / 1000).max(0) as u64;
    ms.clamp(MIN_TIMEOUT_MS, MAX_TIMEOUT_MS)
}

/// A libnftnl set used only as a container of elements to serialise.
struct ElemList(NonNull<sys::nftnl_set>);

impl ElemList {
    fn new(table: &CStr, set: &CStr) -> Result<Self, EnforceError> {
        // SAFETY: plain allocation; null is handled.
        let ptr = NonNull::new(unsafe { sys::nftnl_set_alloc() }).ok_or_else(oom)?;
        let list = ElemList(ptr);
        // SAFETY: `ptr` is a valid set; libnftnl copies (strdup) both strings.
        let rc = unsafe {
            sys::nftnl_set_set_str(ptr.as_ptr(), sys::NFTNL_SET_TABLE as u16, table.as_ptr())
                | sys::nftnl_set_set_str(ptr.as_ptr(), sys::NFTNL_SET_NAME as u16, set.as_ptr())
        };
        if rc < 0 {
            return Err(oom());
        }
        Ok(list)
    }

    fn add(&mut self, e: &KElem) -> Result<(), EnforceError> {
        // SAFETY: plain allocation; null is handled.
        let elem = NonNull::new(unsafe { sys::nftnl_set_elem_alloc() }).ok_or_else(oom)?;
        let (key, len) = e.key_bytes();
        // SAFETY: `elem` is valid and not yet shared; the key (<= 16 bytes, below libnftnl's
        // 64-byte data limit) is copied. On failure we still own `elem` and free it.
        unsafe {
            let p = elem.as_ptr();
            if sys::nftnl_set_elem_set(
                p,
                sys::NFTNL_SET_ELEM_KEY as u16,
                key.as_ptr().cast(),
                len as u32,
            ) < 0
            {
                sys::nftnl_set_elem_free(p);
                return Err(oom());
            }
            if let Some(t) = e.timeout_ms {
                sys::nftnl_set_elem_set_u64(p, sys::NFTNL_SET_ELEM_TIMEOUT as u16, t);
            }
            if e.end {
                sys::nftnl_set_elem_set_u32(
                    p,
                    sys::NFTNL_SET_ELEM_FLAGS as u16,
                    NFT_SET_ELEM_INTERVAL_END,
                );
            }
            // The set takes ownership of the element (freed with the set).
            sys::nftnl_set_elem_add(self.0.as_ptr(), p);
        }
        Ok(())
    }
}

impl Drop for ElemList {
    fn drop(&mut self) {
        // SAFETY: we own the set; this also frees its elements.
        unsafe { sys::nftnl_set_free(self.0.as_ptr()) };
    }
}

// ---------------------------------------------------------------------------------------------
// The batch buffer

#[derive(Debug)]
enum What {
    Begin,
    End,
    Obj(String),
    Elems {
        op: ElemOp,
        set: String,
        ranges: Vec<Interval>,
    },
}

struct Sent {
    seq: u32,
    start: usize,
    len: usize,
    what: What,
}

impl Sent {
    fn wants_ack(&self) -> bool {
        !matches!(self.what, What::Begin | What::End)
    }
}

/// One nfnetlink batch in one contiguous buffer, plus what each message was, for errors.
struct Batch {
    buf: Vec<u8>,
    msgs: Vec<Sent>,
    /// Where libnftnl writes one message; u64 for the alignment nlmsghdr needs.
    scratch: Box<[u64]>,
}

impl Batch {
    fn new() -> Self {
        let max = nftnl::nft_nlmsg_maxsize() as usize;
        Batch {
            buf: Vec::new(),
            msgs: Vec::new(),
            scratch: vec![0u64; max.div_ceil(8)].into_boxed_slice(),
        }
    }

    /// Lets `write` serialise one message at the start of the scratch buffer and appends it.
    ///
    /// # Safety
    /// `write` must write one netlink message of at most `nft_nlmsg_maxsize()` bytes at the
    /// pointer it is given, and nothing beyond.
    unsafe fn push_raw(
        &mut self,
        seq: u32,
        what: What,
        write: impl FnOnce(*mut c_char),
    ) -> Result<(), EnforceError> {
        write(self.scratch.as_mut_ptr().cast());
        // SAFETY: the scratch is initialised u64 memory; viewing it as bytes is always valid.
        let bytes = unsafe {
            std::slice::from_raw_parts(self.scratch.as_ptr().cast::<u8>(), self.scratch.len() * 8)
        };
        let len = ne_u32(&bytes[..4]) as usize;
        if len < NLMSG_HDRLEN || len > bytes.len() {
            return Err(EnforceError::Protocol(format!(
                "built a message of bad length {len}"
            )));
        }
        let start = self.buf.len();
        self.buf.extend_from_slice(&bytes[..len]);
        self.buf.resize(start + align4(len), 0);
        self.msgs.push(Sent {
            seq,
            start,
            len,
            what,
        });
        Ok(())
    }

    fn begin(&mut self, seq: u32) -> Result<(), EnforceError> {
        // SAFETY: nftnl_batch_begin writes a fixed 20-byte header into the scratch buffer.
        unsafe {
            self.push_raw(seq, What::Begin, |buf| {
                sys::nftnl_batch_begin(buf, seq);
            })
        }
    }

    fn end(&mut self, seq: u32) -> Result<(), EnforceError> {
        // SAFETY: as for `begin`.
        unsafe {
            self.push_raw(seq, What::End, |buf| {
                sys::nftnl_batch_end(buf, seq);
            })
        }
    }

    /// Appends a message built by hand.
    fn push_bytes(&mut self, seq: u32, what: What, msg: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(msg);
        self.buf.resize(start + align4(msg.len()), 0);
        self.msgs.push(Sent {
            seq,
            start,
            len: msg.len(),
            what,
        });
    }

    /// A named counter object (NEWOBJ), through libnftnl's object API.
    fn push_counter(&mut self, seq: u32, table: &CStr, name: &str) -> Result<(), EnforceError> {
        let cname = CString::new(name).map_err(|_| invalid("counter name contains NUL"))?;
        // SAFETY: plain allocation; null is handled.
        let obj = NonNull::new(unsafe { sys::nftnl_obj_alloc() }).ok_or_else(oom)?;
        let p = obj.as_ptr();
        // SAFETY: `p` is a valid object we own; libnftnl copies the strings.
        unsafe {
            sys::nftnl_obj_set_str(p, sys::NFTNL_OBJ_TABLE as u16, table.as_ptr());
            sys::nftnl_obj_set_str(p, sys::NFTNL_OBJ_NAME as u16, cname.as_ptr());
            sys::nftnl_obj_set_u32(p, sys::NFTNL_OBJ_TYPE as u16, NFT_OBJECT_COUNTER);
            sys::nftnl_obj_set_u32(p, sys::NFTNL_OBJ_FAMILY as u16, libc::NFPROTO_INET as u32);
        }
        // SAFETY: a counter object message is a few dozen bytes, far below the scratch size.
        let r = unsafe {
            self.push_raw(seq, What::Obj(format!("NEWOBJ counter {name}")), |buf| {
                let nlh = sys::nftnl_nlmsg_build_hdr(
                    buf,
                    NFT_MSG_NEWOBJ,
                    libc::NFPROTO_INET as u16,
                    NLM_F_CREATE | NLM_F_ACK,
                    seq,
                );
                sys::nftnl_obj_nlmsg_build_payload(nlh, p);
            })
        };
        // SAFETY: we own `p` and nothing kept a reference to it.
        unsafe { sys::nftnl_obj_free(p) };
        r
    }

    fn push_obj<T: NlMsg>(
        &mut self,
        seq: u32,
        what: String,
        obj: &T,
        ty: MsgType,
    ) -> Result<(), EnforceError> {
        // SAFETY: the scratch buffer holds nft_nlmsg_maxsize() bytes, which is what
        // NlMsg::write requires; table/chain/set/rule messages are far smaller.
        unsafe { self.push_raw(seq, What::Obj(what), |buf| obj.write(buf.cast(), seq, ty)) }
    }

    fn push_elems(
        &mut self,
        seq: u32,
        table: &CStr,
        nfproto: u8,
        (set, set_name): (&CStr, &str),
        op: ElemOp,
        elems: &[KElem],
    ) -> Result<(), EnforceError> {
        let mut list = ElemList::new(table, set)?;
        for e in elems {
            list.add(e)?;
        }
        let (ty, flags) = match op {
            // No NLM_F_EXCL: re-adding an identical element is then a no-op instead of
            // failing the whole transaction with EEXIST. Overlaps still fail.
            ElemOp::New => (NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_ACK),
            ElemOp::Del => (NFT_MSG_DELSETELEM, NLM_F_ACK),
        };
        let what = What::Elems {
            op,
            set: set_name.to_string(),
            ranges: elems.iter().map(|e| e.range).collect(),
        };
        // SAFETY: the elements were packed to ELEM_BUDGET bytes and the table name is at most
        // 255 bytes, so the message stays well inside the scratch buffer (64 KiB + a page).
        unsafe {
            self.push_raw(seq, what, |buf| {
                let nlh = sys::nftnl_nlmsg_build_hdr(buf, ty, nfproto as u16, flags, seq);
                sys::nftnl_set_elems_nlmsg_build_payload(nlh, list.0.as_ptr());
            })?;
        }
        // Guard against a wrapped u16 nest length, which the kernel would misparse.
        let n = self
            .msgs
            .last()
            .map(|m| self.elem_offsets(m).len())
            .unwrap_or(0);
        if n != elems.len() {
            return Err(EnforceError::Protocol(format!(
                "element message holds {n} of {} elements",
                elems.len()
            )));
        }
        Ok(())
    }

    /// Offsets (from the message start) of each element nest in an element message.
    fn elem_offsets(&self, m: &Sent) -> Vec<usize> {
        let msg = &self.buf[m.start..m.start + m.len];
        let base = NLMSG_HDRLEN + NFGENMSG_LEN;
        let Some(body) = msg.get(base..) else {
            return Vec::new();
        };
        for (ty, _, pos) in Attrs::new(body) {
            if ty == NFTA_SET_ELEM_LIST_ELEMENTS {
                let nest = base + pos + 4;
                let end = base + pos + ne_u16(&msg[base + pos..]) as usize;
                let Some(inner) = msg.get(nest..end) else {
                    return Vec::new();
                };
                return Attrs::new(inner).map(|(_, _, p)| nest + p).collect();
            }
        }
        Vec::new()
    }

    /// Names message `i`, down to the element when the kernel's extended ack points at one.
    fn describe(&self, i: usize, offset: Option<u32>) -> String {
        let Some(m) = self.msgs.get(i) else {
            return "batch".into();
        };
        match &m.what {
            What::Begin | What::End => "batch".into(),
            What::Obj(s) => s.clone(),
            What::Elems { op, set, ranges } => {
                let op = match op {
                    ElemOp::New => "NEWSETELEM",
                    ElemOp::Del => "DELSETELEM",
                };
                if let Some(off) = offset {
                    if let Some(k) = self.elem_offsets(m).iter().position(|&p| p == off as usize) {
                        if let Some(r) = ranges.get(k) {
                            return format!("{op} {set} {r}");
                        }
                    }
                }
                match (ranges.first(), ranges.last()) {
                    (Some(a), Some(b)) => {
                        format!("{op} {set} ({} elements, {a} .. {b})", ranges.len())
                    }
                    _ => format!("{op} {set}"),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Replies

#[derive(Debug, Clone)]
struct Ack {
    errno: i32,
    msg: Option<String>,
    /// Extended ack: offset of the offending attribute from the start of our message.
    offset: Option<u32>,
}

struct NlView<'a> {
    ty: u16,
    flags: u16,
    seq: u32,
    portid: u32,
    payload: &'a [u8],
}

fn messages(buf: &[u8]) -> Result<Vec<NlView<'_>>, EnforceError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + NLMSG_HDRLEN <= buf.len() {
        let h = &buf[pos..];
        let len = ne_u32(h) as usize;
        if len < NLMSG_HDRLEN || pos + len > buf.len() {
            return Err(EnforceError::Protocol(format!(
                "malformed netlink message (length {len})"
            )));
        }
        out.push(NlView {
            ty: ne_u16(&h[4..]),
            flags: ne_u16(&h[6..]),
            seq: ne_u32(&h[8..]),
            portid: ne_u32(&h[12..]),
            payload: &h[NLMSG_HDRLEN..len],
        });
        pos += align4(len);
    }
    Ok(out)
}

fn parse_ack(m: &NlView<'_>) -> Result<Ack, EnforceError> {
    let p = m.payload;
    if p.len() < 4 + NLMSG_HDRLEN {
        return Err(EnforceError::Protocol("short nlmsgerr".into()));
    }
    let errno = -ne_i32(p);
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
            ne_u32(&p[4..]) as usize
        };
        if let Some(tlvs) = p.get(4 + align4(echoed)..) {
            for (ty, data, _) in Attrs::new(tlvs) {
                match ty {
                    NLMSGERR_ATTR_MSG => {
                        let s = data.split(|&c| c == 0).next().unwrap_or(data);
                        ack.msg = Some(String::from_utf8_lossy(s).into_owned());
                    }
                    NLMSGERR_ATTR_OFFS if data.len() >= 4 => ack.offset = Some(ne_u32(data)),
                    _ => {}
                }
            }
        }
    }
    Ok(ack)
}

/// A set element as dumped by the kernel.
#[derive(Debug, Clone, Copy)]
struct RawElem {
    key: u128,
    end: bool,
    timeout_ms: Option<u64>,
    expires_ms: Option<u64>,
}

fn parse_elems(payload: &[u8], family: Family, out: &mut Vec<RawElem>) -> Result<(), EnforceError> {
    let body = payload.get(NFGENMSG_LEN..).unwrap_or(&[]);
    for (ty, list, _) in Attrs::new(body) {
        if ty != NFTA_SET_ELEM_LIST_ELEMENTS {
            continue;
        }
        for (_, elem, _) in Attrs::new(list) {
            let mut e = RawElem {
                key: 0,
                end: false,
                timeout_ms: None,
                expires_ms: None,
            };
            let mut key = None;
            for (ty, data, _) in Attrs::new(elem) {
                match ty {
                    NFTA_SET_ELEM_KEY => {
                        key = Attrs::new(data)
                            .find(|a| a.0 == NFTA_DATA_VALUE)
                            .map(|a| a.1);
                    }
                    NFTA_SET_ELEM_FLAGS if data.len() >= 4 => {
                        e.end = be_u32(data) & NFT_SET_ELEM_INTERVAL_END != 0;
                    }
                    NFTA_SET_ELEM_TIMEOUT if data.len() >= 8 => e.timeout_ms = Some(be_u64(data)),
                    NFTA_SET_ELEM_EXPIRATION if data.len() >= 8 => {
                        e.expires_ms = Some(be_u64(data))
                    }
                    _ => {}
                }
            }
            // Elements without a key (catch-all) cannot come from us; skip them.
            let Some(key) = key else { continue };
            e.key = match (family, key.len()) {
                (Family::V4, 4) => u32::from_be_bytes([key[0], key[1], key[2], key[3]]) as u128,
                (Family::V6, 16) => {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(key);
                    u128::from_be_bytes(b)
                }
                (_, n) => {
                    return Err(EnforceError::Protocol(format!(
                        "set element key of {n} bytes"
                    )))
                }
            };
            out.push(e);
        }
    }
    Ok(())
}

/// Pairs start and end elements back into closed intervals. The kernel drops expired starts
/// from dumps before garbage collection removes their ends, so an end without a start is
/// skipped; a start without an end runs to the next start or to the family's last address.
fn merge(family: Family, mut raw: Vec<RawElem>) -> Vec<KernelElement> {
    // At one key an end (of the interval below) sorts before a start (of the one above).
    raw.sort_by_key(|e| (e.key, !e.end));
    let mut out = Vec::new();
    let mut open: Option<RawElem> = None;
    let close = |s: RawElem, last: u128, out: &mut Vec<KernelElement>| {
        out.push(KernelElement {
            range: Interval {
                family,
                first: s.key,
                last,
            },
            timeout_ms: s.timeout_ms,
            expires_ms: s.expires_ms,
        })
    };
    for e in raw {
        if e.end {
            if let Some(s) = open.take() {
                if e.key > s.key {
                    close(s, e.key - 1, &mut out);
                }
            }
        } else {
            if let Some(s) = open.take() {
                if e.key > s.key {
                    close(s, e.key - 1, &mut out);
                }
            }
            open = Some(e);
        }
    }
    if let Some(s) = open {
        close(s, Interval::family_max(family), &mut out);
    }
    out
}

/// Iterates netlink attributes: (type without flag bits, payload, offset of the header).
/// Stops at the first malformed header.
struct Attrs<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Attrs<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Attrs { buf, pos: 0 }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8], usize);

    fn next(&mut self) -> Option<Self::Item> {
        let h = self.buf.get(self.pos..self.pos + 4)?;
        let len = ne_u16(h) as usize;
        let ty = ne_u16(&h[2..]) & NLA_TYPE_MASK;
        let data = self
            .buf
            .get(self.pos + 4..self.pos.checked_add(len)?)
            .filter(|_| len >= 4)?;
        let at = self.pos;
        self.pos += align4(len);
        Some((ty, data, at))
    }
}

// ---------------------------------------------------------------------------------------------
// Expressions the nftnl crate does not have

/// `counter name "X"`: a reference to a named counter object.
struct ObjRefCounter(CString);

impl Expression for ObjRefCounter {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        // SAFETY: allocation checked; libnftnl copies the name.
        unsafe {
            let e = alloc_expr(c"objref");
            sys::nftnl_expr_set_u32(
                e.as_ptr(),
                sys::NFTNL_EXPR_OBJREF_IMM_TYPE as u16,
                NFT_OBJECT_COUNTER,
            );
            sys::nftnl_expr_set_str(
                e.as_ptr(),
                sys::NFTNL_EXPR_OBJREF_IMM_NAME as u16,
                self.0.as_ptr(),
            );
            e
        }
    }
}

/// `@nh,OFFSET*8,LEN*8`: raw bytes of the network header into register 1.
struct RawNetPayload {
    offset: u32,
    len: u32,
}

impl Expression for RawNetPayload {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        // SAFETY: allocation checked; plain integer attributes.
        unsafe {
            let e = alloc_expr(c"payload");
            let p = e.as_ptr();
            sys::nftnl_expr_set_u32(
                p,
                sys::NFTNL_EXPR_PAYLOAD_DREG as u16,
                libc::NFT_REG_1 as u32,
            );
            sys::nftnl_expr_set_u32(
                p,
                sys::NFTNL_EXPR_PAYLOAD_BASE as u16,
                libc::NFT_PAYLOAD_NETWORK_HEADER as u32,
            );
            sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_PAYLOAD_OFFSET as u16, self.offset);
            sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_PAYLOAD_LEN as u16, self.len);
            e
        }
    }
}

/// # Safety
/// `name` must be an expression type libnftnl knows.
unsafe fn alloc_expr(name: &CStr) -> NonNull<sys::nftnl_expr> {
    // The Expression trait cannot fail; out of memory here is out of memory everywhere
    // (the nftnl crate panics likewise).
    match NonNull::new(unsafe { sys::nftnl_expr_alloc(name.as_ptr()) }) {
        Some(e) => e,
        None => std::alloc::handle_alloc_error(std::alloc::Layout::new::<u64>()),
    }
}

// ---------------------------------------------------------------------------------------------
// Events

/// A NETLINK_NETFILTER socket subscribed to the nftables event group. The kernel sends every
/// committed change to it, tagged with the port id of whoever made it, so ours are told apart
/// from someone else's.
struct Events {
    fd: std::os::fd::OwnedFd,
    buf: Vec<u8>,
    joined: bool,
    /// We left the group for a while (see [`QUIET_ABOVE`]).
    window: bool,
}

impl Events {
    fn open() -> io::Result<Events> {
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
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
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

    fn leave(&mut self) {
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

    fn join(&mut self) {
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
    }

    /// Drains pending events into a [`Drift`]: only changes to our table by someone else.
    fn read(
        &mut self,
        our_portid: u32,
        table: &CStr,
        layout: &Layout,
        set_names: &[CString],
    ) -> Result<Drift, EnforceError> {
        let mut drift = Drift {
            check: std::mem::take(&mut self.window),
            ..Default::default()
        };
        let tname = table.to_bytes();
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
            let Ok(msgs) = messages(&self.buf[..n]) else {
                drift.lost = true;
                continue;
            };
            for m in msgs {
                if m.portid == our_portid || (m.ty >> 8) != NFNL_SUBSYS_NFTABLES {
                    continue;
                }
                let ty = m.ty & 0xff;
                let body = m.payload.get(NFGENMSG_LEN..).unwrap_or(&[]);
                // Attribute 1 is the table name in every message kind we care about.
                let ours = Attrs::new(body)
                    .find(|a| a.0 == 1)
                    .is_some_and(|a| a.1.split(|&c| c == 0).next() == Some(tname));
                if !ours {
                    continue;
                }
                match ty {
                    NFT_MSG_DELTABLE | NFT_MSG_DELCHAIN | NFT_MSG_DELRULE | NFT_MSG_DELSET
                    | NFT_MSG_DELOBJ | NFT_MSG_NEWTABLE => drift.rebuild = true,
                    NFT_MSG_DELSETELEM => {
                        let set = Attrs::new(body)
                            .find(|a| a.0 == NFTA_SET_ELEM_LIST_SET)
                            .and_then(|a| a.1.split(|&c| c == 0).next())
                            .and_then(|name| set_names.iter().position(|s| s.to_bytes() == name));
                        let Some(ix) = set else { continue };
                        let Some(def) = layout.set(ix as SetIx) else {
                            continue;
                        };
                        let mut raw = Vec::new();
                        if parse_elems(m.payload, def.family, &mut raw).is_err() {
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

fn family_name(f: TableFamily) -> &'static str {
    match f {
        TableFamily::Inet => "inet",
        TableFamily::Ip => "ip",
        TableFamily::Ip6 => "ip6",
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/// An attribute to send: type and payload.
type Attr<'a> = (u16, &'a [u8]);

/// A plain (non-batch) nf_tables request with string attributes.
fn request(ty: u16, flags: u16, seq: u32, nfproto: u8, attrs: &[Attr]) -> Vec<u8> {
    let mut m = Vec::with_capacity(128);
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | ty).to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[nfproto, libc::NFNETLINK_V0 as u8, 0, 0]);
    for (t, data) in attrs {
        m.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        m.extend_from_slice(&t.to_ne_bytes());
        m.extend_from_slice(data);
        m.resize(align4(m.len()), 0);
    }
    let len = m.len() as u32;
    m[..4].copy_from_slice(&len.to_ne_bytes());
    m
}

fn kernel_error(what: String, ack: &Ack) -> EnforceError {
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

fn io_err(op: &'static str, source: io::Error) -> EnforceError {
    EnforceError::Io { op, source }
}

fn invalid(msg: &str) -> EnforceError {
    io_err(
        "open",
        io::Error::new(io::ErrorKind::InvalidInput, msg.to_string()),
    )
}

fn oom() -> EnforceError {
    io_err(
        "libnftnl allocation",
        io::Error::from(io::ErrorKind::OutOfMemory),
    )
}

fn set_int_opt(fd: RawFd, level: c_int, name: c_int, val: c_int) -> io::Result<()> {
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
fn set_buf_opt(fd: RawFd, force: c_int, plain: c_int, size: usize) -> io::Result<()> {
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

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

// Callers guarantee the lengths (checked before every call), so indexing cannot fail.
fn ne_u16(b: &[u8]) -> u16 {
    u16::from_ne_bytes([b[0], b[1]])
}
fn ne_u32(b: &[u8]) -> u32 {
    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
}
fn ne_i32(b: &[u8]) -> i32 {
    i32::from_ne_bytes([b[0], b[1], b[2], b[3]])
}
fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn be_u64(b: &[u8]) -> u64 {
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(first: u32, last: u32) -> Interval {
        Interval {
            family: Family::V4,
            first: first as u128,
            last: last as u128,
        }
    }

    fn raw(key: u128, end: bool) -> RawElem {
        RawElem {
            key,
            end,
            timeout_ms: if end { None } else { Some(1000) },
            expires_ms: None,
        }
    }

    #[test]
    fn merge_pairs_adjacent_and_open_intervals() {
        let got = merge(
            Family::V4,
            vec![
                raw(20, true),
                raw(10, false),
                raw(20, false),
                raw(31, true),
                raw(u32::MAX as u128, false),
                raw(5, true),
            ],
        );
        let ranges: Vec<_> = got.iter().map(|k| k.range).collect();
        assert_eq!(ranges, vec![v4(10, 19), v4(20, 30), v4(u32::MAX, u32::MAX)]);
    }

    #[test]
    fn family_max_has_no_end_element() {
        let mut out = Vec::new();
        interval_elems(v4(7, u32::MAX), Some(5000), &mut out);
        assert_eq!(out.len(), 1);
        interval_elems(v4(7, 8), Some(5000), &mut out);
        assert_eq!(out.len(), 3);
        assert!(out[2].end && out[2].key == 9 && out[2].timeout_ms.is_none());
    }

    #[test]
    fn timeouts_are_clamped() {
        assert_eq!(timeout_ms(1_500_000, 1_000_000), 1000);
        assert_eq!(timeout_ms(61_000_000, 1_000_000), 60_000);
        assert_eq!(timeout_ms(i64::MAX, 0), MAX_TIMEOUT_MS);
    }

    #[test]
    fn request_is_well_formed() {
        let m = request(
            NFT_MSG_GETTABLE,
            NLM_F_ACK,
            7,
            libc::NFPROTO_INET as u8,
            &[(NFTA_TABLE_NAME, b"t\0")],
        );
        assert_eq!(ne_u32(&m) as usize, m.len());
        let v = messages(&m).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].seq, 7);
        let attrs: Vec<_> = Attrs::new(&v[0].payload[4..]).collect();
        assert_eq!(attrs, vec![(NFTA_TABLE_NAME, &b"t\0"[..], 0)]);
    }
}
