//! Dumps: one routine that sends a dump request and feeds each reply to a callback, retrying
//! when the kernel flags the dump as interrupted; and what is read back with it (the rules of
//! our chains, the named counters, a set's elements).

use std::collections::HashMap;
use std::time::Duration;

use crowdwall_engine::decide::Origin;
use crowdwall_engine::enforce::{DropCounter, EnforceError, SetIx};

use crate::consts::*;
use crate::elem::{parse_elems, RawElem};
use crate::objects::Target;
use crate::sock::{all_messages, kernel_error, nft_request, parse_ack, Ack, Sock};
use crate::wire::{self, Attrs, Message};

/// A dump is produced as we read it; each part comes at once, this bounds a stuck kernel.
const DUMP_WAIT: Duration = Duration::from_secs(5);
const DUMP_ATTEMPTS: usize = 3;

/// Dumps `ty` (with `attrs` as the filter) and folds every data message of the reply into a
/// fresh `T` with `each`. When the objects changed during the dump (NLM_F_DUMP_INTR on any
/// part) the result is thrown away and the dump repeated, up to [`DUMP_ATTEMPTS`] times.
///
/// NLM_F_DUMP_INTR is all the kernel says: a hash set dumped while its table is still being
/// resized in the background (right after a large insert) can list an element twice and
/// miss another without the flag.
pub(crate) fn dump<T: Default>(
    sock: &mut Sock,
    what: &str,
    nfproto: u8,
    ty: u16,
    attrs: &[(u16, &[u8])],
    mut each: impl FnMut(&mut T, &Message<'_>) -> Result<(), EnforceError>,
) -> Result<T, EnforceError> {
    let portid = sock.portid();
    for _ in 0..DUMP_ATTEMPTS {
        let seq = sock.next_seq();
        let req = nft_request(ty, NLM_F_DUMP, seq, nfproto, attrs)?;
        sock.drain_stale()?;
        sock.send(&req)?;
        let mut out = T::default();
        let mut interrupted = false;
        let mut done = false;
        while !done {
            let Some(buf) = sock.recv_nowait()? else {
                if !sock.poll(DUMP_WAIT)? {
                    return Err(EnforceError::Protocol(format!("{what}: dump stalled")));
                }
                continue;
            };
            for m in all_messages(buf)? {
                if m.seq != seq || m.portid != portid {
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
                        let status = wire::ne_i32(m.payload, 0).unwrap_or(0);
                        if status < 0 {
                            let ack = Ack {
                                errno: status.saturating_neg(),
                                msg: None,
                                offset: None,
                            };
                            return Err(kernel_error(what.to_string(), &ack));
                        }
                        done = true;
                    }
                    _ => each(&mut out, &m)?,
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
pub(crate) fn rules_present(sock: &mut Sock, t: &Target) -> Result<bool, EnforceError> {
    let table = t.table.as_bytes_with_nul();
    let per_chain = dump(
        sock,
        "GETRULE",
        t.spec.family.nfproto(),
        NFT_MSG_GETRULE,
        &[(NFTA_RULE_TABLE, table)],
        |per_chain: &mut HashMap<Vec<u8>, usize>, m| {
            let mut table_ok = false;
            let mut chain = None;
            for a in m.attrs() {
                match a.ty {
                    NFTA_RULE_TABLE => table_ok = wire::until_nul(a.payload) == t.table.to_bytes(),
                    NFTA_RULE_CHAIN => chain = Some(wire::until_nul(a.payload).to_vec()),
                    _ => {}
                }
            }
            if let (true, Some(c)) = (table_ok, chain) {
                *per_chain.entry(c).or_default() += 1;
            }
            Ok(())
        },
    );
    let per_chain = match per_chain {
        Err(EnforceError::Kernel { errno, .. }) if errno == libc::ENOENT => return Ok(false),
        r => r?,
    };
    let want = crate::objects::chains(t);
    Ok(want
        .iter()
        .all(|(c, n)| per_chain.get(c.as_bytes()).copied().unwrap_or(0) == *n))
}

/// The per-origin named counters.
pub(crate) fn counters(sock: &mut Sock, t: &Target) -> Result<Vec<DropCounter>, EnforceError> {
    let kind = NFT_OBJECT_COUNTER.to_be_bytes();
    let mut out = dump(
        sock,
        "GETOBJ counter",
        t.spec.family.nfproto(),
        NFT_MSG_GETOBJ,
        &[
            (NFTA_OBJ_TABLE, t.table.as_bytes_with_nul()),
            (NFTA_OBJ_TYPE, &kind),
        ],
        |out: &mut Vec<DropCounter>, m| {
            let mut name = None;
            let mut table_ok = false;
            let mut kind_ok = false;
            let (mut packets, mut bytes) = (0, 0);
            for a in m.attrs() {
                match a.ty {
                    NFTA_OBJ_TABLE => table_ok = wire::until_nul(a.payload) == t.table.to_bytes(),
                    NFTA_OBJ_NAME => {
                        name =
                            Some(String::from_utf8_lossy(wire::until_nul(a.payload)).into_owned())
                    }
                    NFTA_OBJ_TYPE => {
                        if let Some(k) = wire::be_u32(a.payload, 0) {
                            kind_ok = k == NFT_OBJECT_COUNTER;
                        }
                    }
                    NFTA_OBJ_DATA => {
                        for c in Attrs::new(a.payload) {
                            match (c.ty, wire::be_u64(c.payload, 0)) {
                                (NFTA_COUNTER_BYTES, Some(v)) => bytes = v,
                                (NFTA_COUNTER_PACKETS, Some(v)) => packets = v,
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
            Ok(())
        },
    )?;
    out.sort_by_key(|c| {
        Origin::ALL
            .iter()
            .position(|o| o.as_str() == c.origin)
            .unwrap_or(usize::MAX)
    });
    Ok(out)
}

/// One set's elements as the kernel holds them.
pub(crate) fn set_elems(
    sock: &mut Sock,
    t: &Target,
    set: SetIx,
) -> Result<Vec<RawElem>, EnforceError> {
    let (def, name) = t.set(set)?;
    let family = def.family;
    dump(
        sock,
        &format!("GETSETELEM {}", name.to_string_lossy()),
        t.spec.family.nfproto(),
        NFT_MSG_GETSETELEM,
        &[
            (NFTA_SET_ELEM_LIST_TABLE, t.table.as_bytes_with_nul()),
            (NFTA_SET_ELEM_LIST_SET, name.to_bytes_with_nul()),
        ],
        |out: &mut Vec<RawElem>, m| {
            if m.subsys() == NFNL_SUBSYS_NFTABLES && m.kind() == NFT_MSG_NEWSETELEM {
                parse_elems(m.body(), family, out)?;
            }
            Ok(())
        },
    )
}
