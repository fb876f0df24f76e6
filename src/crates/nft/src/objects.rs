//! The objects of the own table (table, named counters, sets, verdict and base chains, their
//! rules), the two expressions the nftnl crate lacks, and what a handle works on.

use std::ffi::{CStr, CString};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ptr::NonNull;

use crowdwall_engine::decide::Origin;
use crowdwall_engine::enforce::{EnforceError, Family, Layout, Ports, SetDef, SetIx};
use nftnl::expr::{
    Cmp, CmpOp, Expression, IcmpCode, Ipv4HeaderField, Ipv6HeaderField, Lookup, NetworkHeaderField,
    Payload, RejectionType, Verdict as NftVerdict,
};
use nftnl::set::Set;
use nftnl::{nft_expr, Chain, ChainType, Hook, MsgType, Policy, ProtoFamily, Rule, Table};
use nftnl_sys as sys;

use crate::batch::{Batch, What};
use crate::consts::*;
use crate::sock::{invalid, oom, Seq};
use crate::spec::{FirewallSpec, TableFamily, Verdict};

/// The table and sets a handle works on, by the names the kernel knows them by.
pub(crate) struct Target {
    pub(crate) spec: FirewallSpec,
    pub(crate) table: CString,
    pub(crate) layout: Layout,
    /// Set names, indexed like the layout.
    pub(crate) set_names: Vec<CString>,
}

impl Target {
    /// A set of the layout and its name.
    pub(crate) fn set(&self, ix: SetIx) -> Result<(&SetDef, &CStr), EnforceError> {
        match (self.layout.set(ix), self.set_names.get(ix as usize)) {
            (Some(d), Some(n)) => Ok((d, n.as_c_str())),
            _ => Err(EnforceError::Protocol(format!("no set #{ix}"))),
        }
    }
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
///     ...
///     tcp dport 22 jump ports_p1   (and udp: one pair per port of each port list)
///   }
///   chain ports_p1 { ip saddr @local_p1_v4 jump ban_local ... }  the port list's own sets
///   chain forward { likewise, when enabled }
/// }
/// ```
pub(crate) fn push_skeleton(b: &mut Batch, seq: &mut Seq, t: &Target) -> Result<(), EnforceError> {
    let spec = &t.spec;
    let tname = spec.table.clone();
    let table = Table::new(&t.table, ProtoFamily::Inet);
    for (ty, what) in [
        (MsgType::Add, "NEWTABLE"),
        (MsgType::Del, "DELTABLE"),
        (MsgType::Add, "NEWTABLE"),
    ] {
        b.push_obj(seq.next(), format!("{what} {tname}"), &table, ty)?;
    }
    for o in Origin::ALL {
        push_counter(b, seq.next(), &t.table, o.as_str())?;
    }
    // Sets, with transaction-local ids so the rules' lookups bind to them.
    let defs = &t.layout.sets;
    let mut lookups = Vec::with_capacity(defs.len());
    for (i, d) in defs.iter().enumerate() {
        let id = i as u32 + 1;
        let name = t
            .set_names
            .get(i)
            .ok_or_else(|| EnforceError::Protocol(format!("no set #{i}")))?;
        let flags = if d.interval {
            NFT_SET_INTERVAL | NFT_SET_TIMEOUT
        } else {
            NFT_SET_TIMEOUT
        };
        let what = format!("NEWSET {}", d.name);
        let seq = seq.next();
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
            seq.next(),
            format!("NEWCHAIN ban_{o}"),
            &chain,
            MsgType::Add,
        )?;
        let mut count = Rule::new(&chain);
        count.add_expr(&ObjRefCounter(
            CString::new(o.as_str()).map_err(|_| invalid("counter"))?,
        ));
        b.push_obj(
            seq.next(),
            format!("NEWRULE ban_{o} counter"),
            &count,
            MsgType::Add,
        )?;
        match spec.verdict {
            Verdict::Drop => {
                let mut r = Rule::new(&chain);
                r.add_expr(&nft_expr!(verdict drop));
                b.push_obj(
                    seq.next(),
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
                    seq.next(),
                    format!("NEWRULE ban_{o} tcp reset"),
                    &tcp,
                    MsgType::Add,
                )?;
                let mut other = Rule::new(&chain);
                other.add_expr(&NftVerdict::Reject(RejectionType::Icmp(
                    IcmpCode::AdminProhibited,
                )));
                b.push_obj(
                    seq.next(),
                    format!("NEWRULE ban_{o} reject"),
                    &other,
                    MsgType::Add,
                )?;
            }
        }
    }
    // Port-limited bans: a chain per port list holding that list's lookups, which the base
    // chains jump to for TCP and UDP to those ports only.
    let mut groups = Vec::with_capacity(t.layout.port_groups.len());
    for (gi, ports) in t.layout.port_groups.iter().enumerate() {
        let name = group_chain(gi);
        let cname = CString::new(name.clone()).map_err(|_| invalid("chain name"))?;
        let chain = Chain::new(&cname, &table);
        b.push_obj(seq.next(), format!("NEWCHAIN {name}"), &chain, MsgType::Add)?;
        push_lookups(b, seq, &chain, &name, defs, &lookups, ports)?;
        groups.push((cname, ports));
    }
    let mut hooks = Vec::new();
    if spec.input {
        hooks.push((c"input", Hook::In));
    }
    if spec.forward {
        hooks.push((c"forward", Hook::Forward));
    }
    let all = Ports::all();
    for (hname, hook) in hooks {
        let hn = hname.to_string_lossy();
        let mut chain = Chain::new(hname, &table);
        chain.set_hook(hook, spec.priority);
        chain.set_type(ChainType::Filter);
        chain.set_policy(Policy::Accept);
        b.push_obj(seq.next(), format!("NEWCHAIN {hn}"), &chain, MsgType::Add)?;
        push_lookups(b, seq, &chain, &hn, defs, &lookups, &all)?;
        for (cname, ports) in &groups {
            for port in ports.as_slice() {
                for (proto, pname) in [(libc::IPPROTO_TCP, "tcp"), (libc::IPPROTO_UDP, "udp")] {
                    // `meta l4proto P th dport N jump ports_pG`: the transport header's
                    // destination port sits at offset 2 in TCP and UDP alike.
                    let mut r = Rule::new(&chain);
                    r.add_expr(&nft_expr!(meta l4proto));
                    r.add_expr(&nft_expr!(cmp == proto as u8));
                    r.add_expr(&RawTransportPayload { offset: 2, len: 2 });
                    r.add_expr(&Cmp::new(CmpOp::Eq, &port.to_be_bytes()[..]));
                    r.add_expr(&NftVerdict::Jump {
                        chain: cname.clone(),
                    });
                    b.push_obj(
                        seq.next(),
                        format!(
                            "NEWRULE {hn} {pname} dport {port} jump {}",
                            cname.to_string_lossy()
                        ),
                        &r,
                        MsgType::Add,
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// The chain of the `gi`-th port list (`ports_p1` for the first).
fn group_chain(gi: usize) -> String {
    format!("ports_p{}", gi + 1)
}

/// Every chain of the own table and how many rules it holds when intact: the read-back
/// that finds a flushed chain and the check that finds a deleted one both go by this list.
pub(crate) fn chains(t: &Target) -> Vec<(String, usize)> {
    // A set's lookups: one rule, and one more for v4-mapped IPv6 sources on IPv4 sets.
    let lookup_rules = |ports: &Ports| -> usize {
        t.layout
            .sets
            .iter()
            .filter(|d| d.ports == *ports)
            .map(|d| if d.family == Family::V4 { 2 } else { 1 })
            .sum()
    };
    let verdict_rules = match t.spec.verdict {
        Verdict::Drop => 2,
        Verdict::Reject => 3,
    };
    let mut out: Vec<(String, usize)> = Origin::ALL
        .iter()
        .map(|o| (format!("ban_{o}"), verdict_rules))
        .collect();
    let jumps: usize = t
        .layout
        .port_groups
        .iter()
        .map(|g| 2 * g.as_slice().len())
        .sum();
    let base = lookup_rules(&Ports::all()) + jumps;
    for (gi, g) in t.layout.port_groups.iter().enumerate() {
        out.push((group_chain(gi), lookup_rules(g)));
    }
    if t.spec.input {
        out.push(("input".into(), base));
    }
    if t.spec.forward {
        out.push(("forward".into(), base));
    }
    out
}

/// The source-address lookups of the sets limited to `ports` into `chain`: each jumps to
/// its origin's verdict chain.
fn push_lookups(
    b: &mut Batch,
    seq: &mut Seq,
    chain: &Chain,
    cn: &str,
    defs: &[SetDef],
    lookups: &[Lookup],
    ports: &Ports,
) -> Result<(), EnforceError> {
    let v4_saddr = Payload::Network(NetworkHeaderField::Ipv4(Ipv4HeaderField::Saddr));
    let v6_saddr = Payload::Network(NetworkHeaderField::Ipv6(Ipv6HeaderField::Saddr));
    let mapped_prefix: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
    for (d, lookup) in defs.iter().zip(lookups) {
        if d.ports != *ports {
            continue;
        }
        let origin = d
            .origin
            .ok_or_else(|| EnforceError::Protocol(format!("set {} has no origin", d.name)))?;
        let jump = NftVerdict::Jump {
            chain: CString::new(format!("ban_{origin}")).map_err(|_| invalid("chain"))?,
        };
        let mut r = Rule::new(chain);
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
        r.add_expr(lookup);
        r.add_expr(&jump);
        b.push_obj(
            seq.next(),
            format!("NEWRULE {cn} saddr @{}", d.name),
            &r,
            MsgType::Add,
        )?;
        if d.family == Family::V4 {
            // An IPv6 packet whose source is ::ffff:a.b.c.d is that IPv4 address: look
            // its low 32 bits up in the IPv4 set, so mapped sources never slip past.
            let mut m = Rule::new(chain);
            m.add_expr(&nft_expr!(meta nfproto));
            m.add_expr(&nft_expr!(cmp == libc::NFPROTO_IPV6 as u8));
            m.add_expr(&RawNetPayload { offset: 8, len: 12 });
            m.add_expr(&Cmp::new(CmpOp::Eq, &mapped_prefix[..]));
            m.add_expr(&RawNetPayload { offset: 20, len: 4 });
            m.add_expr(lookup);
            m.add_expr(&jump);
            b.push_obj(
                seq.next(),
                format!("NEWRULE {cn} mapped @{}", d.name),
                &m,
                MsgType::Add,
            )?;
        }
    }
    Ok(())
}

/// A named counter object (NEWOBJ), through libnftnl's object API.
fn push_counter(b: &mut Batch, seq: u32, table: &CStr, name: &str) -> Result<(), EnforceError> {
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
        b.push_raw(seq, What::Obj(format!("NEWOBJ counter {name}")), |buf| {
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

pub(crate) fn family_name(f: TableFamily) -> &'static str {
    match f {
        TableFamily::Inet => "inet",
        TableFamily::Ip => "ip",
        TableFamily::Ip6 => "ip6",
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

/// `@th,OFFSET*8,LEN*8`: raw bytes of the transport header into register 1 (`th dport`).
struct RawTransportPayload {
    offset: u32,
    len: u32,
}

impl Expression for RawNetPayload {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        raw_payload(
            libc::NFT_PAYLOAD_NETWORK_HEADER as u32,
            self.offset,
            self.len,
        )
    }
}

impl Expression for RawTransportPayload {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        raw_payload(
            libc::NFT_PAYLOAD_TRANSPORT_HEADER as u32,
            self.offset,
            self.len,
        )
    }
}

fn raw_payload(base: u32, offset: u32, len: u32) -> NonNull<sys::nftnl_expr> {
    // SAFETY: allocation checked; plain integer attributes.
    unsafe {
        let e = alloc_expr(c"payload");
        let p = e.as_ptr();
        sys::nftnl_expr_set_u32(
            p,
            sys::NFTNL_EXPR_PAYLOAD_DREG as u16,
            libc::NFT_REG_1 as u32,
        );
        sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_PAYLOAD_BASE as u16, base);
        sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_PAYLOAD_OFFSET as u16, offset);
        sys::nftnl_expr_set_u32(p, sys::NFTNL_EXPR_PAYLOAD_LEN as u16, len);
        e
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
