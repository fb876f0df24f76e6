//! Set elements: bans as kernel elements (an interval is a start element and an exclusive end
//! element), their messages, and elements as dumped back, paired into intervals again.

use std::ffi::CStr;
use std::ptr::NonNull;

use crowdwall_base::time::Micros;
use crowdwall_engine::enforce::{EnforceError, Family, Interval, KernelElement, Layout, SetIx};
use nftnl_sys as sys;

use crate::batch::{Batch, What};
use crate::consts::*;
use crate::objects::Target;
use crate::sock::{nft_request, oom, Seq};
use crate::wire::{self, Attrs};

/// Bytes of element attributes per message. The elements nest's length is a u16, and
/// libnftnl writes without bounds checks into a buffer of `nft_nlmsg_maxsize()` (64 KiB + a
/// page), so this must stay below 65,535 minus the nest header, with room to spare.
pub(crate) const ELEM_BUDGET: usize = 65_000;
/// A ban of less than a second is not worth a kernel element (and 0 would mean "no timeout"
/// to some kernels).
const MIN_TIMEOUT_MS: u64 = 1_000;
/// About 100 years: "permanent" bans expressed as far-future expiries stay well inside the
/// kernel's jiffies range (`nf_msecs_to_jiffies64` returns ERANGE beyond it).
const MAX_TIMEOUT_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

// ---------------------------------------------------------------------------------------------
// Elements as sent

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ElemOp {
    New,
    Del,
}

/// One kernel set element: the start or the (exclusive) end of an interval.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KElem {
    pub(crate) range: Interval,
    pub(crate) key: u128,
    pub(crate) end: bool,
    pub(crate) timeout_ms: Option<u64>,
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
    pub(crate) fn wire_size(&self) -> usize {
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
pub(crate) fn interval_elems(range: Interval, timeout_ms: Option<u64>, out: &mut Vec<KElem>) {
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

pub(crate) fn timeout_ms(expires: Micros, now: Micros) -> u64 {
    let ms = (expires.saturating_sub(now) / 1000).max(0) as u64;
    ms.clamp(MIN_TIMEOUT_MS, MAX_TIMEOUT_MS)
}

/// The elements of `add`/`remove` for one set, as kernel elements.
pub(crate) fn kelems(
    layout: &Layout,
    set: SetIx,
    ranges: impl Iterator<Item = (Interval, Option<u64>)>,
) -> Result<Vec<KElem>, EnforceError> {
    let interval = layout.set(set).is_some_and(|d| d.interval);
    let mut out = Vec::new();
    for (range, timeout) in ranges {
        if interval {
            interval_elems(range, timeout, &mut out);
        } else if range.first != range.last {
            return Err(EnforceError::Protocol(format!(
                "range {range} cannot go into hash set {}",
                layout.set(set).map(|d| d.name.as_str()).unwrap_or("?")
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

/// Appends element messages for one set, packed up to [`ELEM_BUDGET`].
pub(crate) fn push_elems(
    b: &mut Batch,
    seq: &mut Seq,
    t: &Target,
    op: ElemOp,
    set: SetIx,
    elems: &[KElem],
) -> Result<(), EnforceError> {
    let (def, name) = t.set(set)?;
    let mut start = 0;
    while start < elems.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < elems.len() && bytes + elems[end].wire_size() <= ELEM_BUDGET {
            bytes += elems[end].wire_size();
            end += 1;
        }
        b.push_elems(
            seq.next(),
            &t.table,
            t.spec.family.nfproto(),
            (name, &def.name),
            op,
            &elems[start..end],
        )?;
        start = end;
    }
    Ok(())
}

/// Appends a flush of one set (DELSETELEM without elements).
pub(crate) fn push_flush(
    b: &mut Batch,
    seq: &mut Seq,
    t: &Target,
    set: SetIx,
) -> Result<(), EnforceError> {
    let seq = seq.next();
    let (_, name) = t.set(set)?;
    let msg = nft_request(
        NFT_MSG_DELSETELEM,
        NLM_F_ACK,
        seq,
        t.spec.family.nfproto(),
        &[
            (NFTA_SET_ELEM_LIST_TABLE, t.table.as_bytes_with_nul()),
            (NFTA_SET_ELEM_LIST_SET, name.to_bytes_with_nul()),
        ],
    )?;
    b.push_bytes(
        seq,
        What::Obj(format!("FLUSH SET {}", name.to_string_lossy())),
        &msg,
    );
    Ok(())
}

/// A libnftnl set used only as a container of elements to serialise.
pub(crate) struct ElemList(NonNull<sys::nftnl_set>);

impl ElemList {
    pub(crate) fn new(table: &CStr, set: &CStr) -> Result<Self, EnforceError> {
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

    pub(crate) fn add(&mut self, e: &KElem) -> Result<(), EnforceError> {
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

    /// The libnftnl set, for serialising; valid while `self` lives.
    pub(crate) fn as_ptr(&self) -> *mut sys::nftnl_set {
        self.0.as_ptr()
    }
}

impl Drop for ElemList {
    fn drop(&mut self) {
        // SAFETY: we own the set; this also frees its elements.
        unsafe { sys::nftnl_set_free(self.0.as_ptr()) };
    }
}

// ---------------------------------------------------------------------------------------------
// Elements as dumped

/// A set element as dumped by the kernel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawElem {
    pub(crate) key: u128,
    pub(crate) end: bool,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) expires_ms: Option<u64>,
}

/// The elements of one NEWSETELEM / DELSETELEM message (`body`: after the nfgenmsg).
pub(crate) fn parse_elems(
    body: &[u8],
    family: Family,
    out: &mut Vec<RawElem>,
) -> Result<(), EnforceError> {
    for list in Attrs::new(body) {
        if list.ty != NFTA_SET_ELEM_LIST_ELEMENTS {
            continue;
        }
        for elem in Attrs::new(list.payload) {
            let mut e = RawElem {
                key: 0,
                end: false,
                timeout_ms: None,
                expires_ms: None,
            };
            let mut key = None;
            for a in Attrs::new(elem.payload) {
                match a.ty {
                    NFTA_SET_ELEM_KEY => {
                        key = Attrs::new(a.payload)
                            .find(|v| v.ty == NFTA_DATA_VALUE)
                            .map(|v| v.payload);
                    }
                    NFTA_SET_ELEM_FLAGS => {
                        if let Some(f) = wire::be_u32(a.payload, 0) {
                            e.end = f & NFT_SET_ELEM_INTERVAL_END != 0;
                        }
                    }
                    NFTA_SET_ELEM_TIMEOUT => {
                        if let Some(t) = wire::be_u64(a.payload, 0) {
                            e.timeout_ms = Some(t);
                        }
                    }
                    NFTA_SET_ELEM_EXPIRATION => {
                        if let Some(t) = wire::be_u64(a.payload, 0) {
                            e.expires_ms = Some(t);
                        }
                    }
                    _ => {}
                }
            }
            // Elements without a key (catch-all) cannot come from us; skip them.
            let Some(key) = key else { continue };
            e.key = match (family, key.len()) {
                (Family::V4, 4) => wire::be_u32(key, 0).map(u128::from),
                (Family::V6, 16) => key.try_into().ok().map(u128::from_be_bytes),
                _ => None,
            }
            .ok_or_else(|| {
                EnforceError::Protocol(format!("set element key of {} bytes", key.len()))
            })?;
            out.push(e);
        }
    }
    Ok(())
}

/// Pairs start and end elements back into closed intervals. The kernel drops expired starts
/// from dumps before garbage collection removes their ends, so an end without a start is
/// skipped; a start without an end runs to the next start or to the family's last address.
pub(crate) fn merge(family: Family, mut raw: Vec<RawElem>) -> Vec<KernelElement> {
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

    /// One element as the kernel dumps it.
    fn dumped(key: &[u8], flags: Option<u32>, timeout: Option<u64>) -> Vec<u8> {
        let mut value = Vec::new();
        wire::push_attr(&mut value, NFTA_DATA_VALUE, key).unwrap();
        let mut elem = Vec::new();
        wire::push_attr(&mut elem, NFTA_SET_ELEM_KEY | NLA_F_NESTED, &value).unwrap();
        if let Some(f) = flags {
            wire::push_attr(&mut elem, NFTA_SET_ELEM_FLAGS, &f.to_be_bytes()).unwrap();
        }
        if let Some(t) = timeout {
            wire::push_attr(&mut elem, NFTA_SET_ELEM_TIMEOUT, &t.to_be_bytes()).unwrap();
            wire::push_attr(&mut elem, NFTA_SET_ELEM_EXPIRATION, &(t / 2).to_be_bytes()).unwrap();
        }
        let mut item = Vec::new();
        wire::push_attr(&mut item, 1 | NLA_F_NESTED, &elem).unwrap();
        item
    }

    #[test]
    fn dumped_elements_parse_and_bad_keys_are_refused() {
        let mut list = dumped(&[10, 0, 0, 1], None, Some(60_000));
        list.extend(dumped(
            &[10, 0, 0, 2],
            Some(NFT_SET_ELEM_INTERVAL_END),
            None,
        ));
        let mut body = Vec::new();
        wire::push_attr(&mut body, NFTA_SET_ELEM_LIST_TABLE, b"t\0").unwrap();
        wire::push_attr(&mut body, NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED, &list).unwrap();
        let mut out = Vec::new();
        parse_elems(&body, Family::V4, &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].key, out[0].end), (0x0a00_0001, false));
        assert_eq!(
            (out[0].timeout_ms, out[0].expires_ms),
            (Some(60_000), Some(30_000))
        );
        assert_eq!(
            (out[1].key, out[1].end, out[1].timeout_ms),
            (0x0a00_0002, true, None)
        );
        // A 4-byte key in an IPv6 set.
        assert!(parse_elems(&body, Family::V6, &mut Vec::new()).is_err());
        // Every truncation parses or fails, never panics.
        for cut in 0..body.len() {
            let _ = parse_elems(&body[..cut], Family::V4, &mut Vec::new());
        }
    }
}
