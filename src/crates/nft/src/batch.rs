//! One nfnetlink batch (BEGIN, messages, END) in one contiguous buffer, and what each message
//! was, so a kernel error can name the message and, with an extended ack, the element.

use std::ffi::CStr;
use std::os::raw::c_char;

use crowdwall_engine::enforce::{EnforceError, Interval};
use nftnl::{MsgType, NlMsg};
use nftnl_sys as sys;

use crate::consts::*;
use crate::elem::{ElemList, ElemOp, KElem};
use crate::wire::{self, align4, Attrs};

#[derive(Debug)]
pub(crate) enum What {
    Begin,
    End,
    Obj(String),
    Elems {
        op: ElemOp,
        set: String,
        ranges: Vec<Interval>,
    },
}

pub(crate) struct Sent {
    pub(crate) seq: u32,
    start: usize,
    len: usize,
    what: What,
}

impl Sent {
    pub(crate) fn wants_ack(&self) -> bool {
        !matches!(self.what, What::Begin | What::End)
    }
}

/// One nfnetlink batch in one contiguous buffer, plus what each message was, for errors.
pub(crate) struct Batch {
    buf: Vec<u8>,
    msgs: Vec<Sent>,
    /// Where libnftnl writes one message; u64 for the alignment nlmsghdr needs.
    scratch: Box<[u64]>,
}

impl Batch {
    pub(crate) fn new() -> Self {
        let max = nftnl::nft_nlmsg_maxsize() as usize;
        Batch {
            buf: Vec::new(),
            msgs: Vec::new(),
            scratch: vec![0u64; max.div_ceil(8)].into_boxed_slice(),
        }
    }

    /// The whole batch, to be sent in one `sendmsg`.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub(crate) fn msgs(&self) -> &[Sent] {
        &self.msgs
    }

    /// Lets `write` serialise one message at the start of the scratch buffer and appends it.
    ///
    /// # Safety
    /// `write` must write one netlink message of at most `nft_nlmsg_maxsize()` bytes at the
    /// pointer it is given, and nothing beyond.
    pub(crate) unsafe fn push_raw(
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
        let len = wire::ne_u32(bytes, 0).unwrap_or(0) as usize;
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

    pub(crate) fn begin(&mut self, seq: u32) -> Result<(), EnforceError> {
        // SAFETY: nftnl_batch_begin writes a fixed 20-byte header into the scratch buffer.
        unsafe {
            self.push_raw(seq, What::Begin, |buf| {
                sys::nftnl_batch_begin(buf, seq);
            })
        }
    }

    pub(crate) fn end(&mut self, seq: u32) -> Result<(), EnforceError> {
        // SAFETY: as for `begin`.
        unsafe {
            self.push_raw(seq, What::End, |buf| {
                sys::nftnl_batch_end(buf, seq);
            })
        }
    }

    /// Appends a message built by hand.
    pub(crate) fn push_bytes(&mut self, seq: u32, what: What, msg: &[u8]) {
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

    /// A table, chain, set or rule, serialised by the nftnl crate.
    pub(crate) fn push_obj<T: NlMsg>(
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

    /// One element message, serialised by libnftnl. `elems` must fit one message
    /// ([`crate::elem::ELEM_BUDGET`]).
    pub(crate) fn push_elems(
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
                sys::nftnl_set_elems_nlmsg_build_payload(nlh, list.as_ptr());
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
        let Some(msg) = self.buf.get(m.start..m.start + m.len) else {
            return Vec::new();
        };
        let base = NLMSG_HDRLEN + NFGENMSG_LEN;
        let Some(body) = msg.get(base..) else {
            return Vec::new();
        };
        for a in Attrs::new(body) {
            if a.ty == NFTA_SET_ELEM_LIST_ELEMENTS {
                let nest = base + a.offset + 4;
                let end = nest + a.payload.len();
                let Some(inner) = msg.get(nest..end) else {
                    return Vec::new();
                };
                return Attrs::new(inner).map(|e| nest + e.offset).collect();
            }
        }
        Vec::new()
    }

    /// Names message `i`, down to the element when the kernel's extended ack points at one.
    pub(crate) fn describe(&self, i: usize, offset: Option<u32>) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elem::{interval_elems, KElem};
    use crowdwall_engine::enforce::Family;

    fn v4(first: u32, last: u32) -> Interval {
        Interval {
            family: Family::V4,
            first: first as u128,
            last: last as u128,
        }
    }

    #[test]
    fn element_messages_match_their_size_estimate_and_name_their_elements() {
        let mut elems = Vec::new();
        interval_elems(v4(10, 19), Some(5000), &mut elems);
        interval_elems(v4(30, 30), Some(5000), &mut elems);
        elems.push(KElem {
            range: v4(40, 40),
            key: 40,
            end: false,
            timeout_ms: None,
        });
        let mut b = Batch::new();
        b.begin(1).unwrap();
        b.push_elems(
            2,
            c"t",
            libc::NFPROTO_INET as u8,
            (c"s", "s"),
            ElemOp::New,
            &elems,
        )
        .unwrap();
        b.end(3).unwrap();
        assert_eq!(b.msgs().len(), 3);
        assert!(!b.msgs()[0].wants_ack() && b.msgs()[1].wants_ack());
        let m = &b.msgs()[1];
        let offs = b.elem_offsets(m);
        assert_eq!(offs.len(), elems.len());
        // The packing estimate is exact: each nest is what KElem::wire_size says.
        let mut sizes: Vec<usize> = offs.windows(2).map(|w| w[1] - w[0]).collect();
        sizes.push(m.len - offs[offs.len() - 1]);
        let want: Vec<usize> = elems.iter().map(|e| e.wire_size()).collect();
        assert_eq!(sizes, want);
        assert_eq!(
            b.describe(1, Some(offs[2] as u32)),
            format!("NEWSETELEM s {}", v4(30, 30))
        );
        assert!(b
            .describe(1, None)
            .starts_with("NEWSETELEM s (5 elements, "));
        assert_eq!(b.describe(0, Some(0)), "batch");
        assert_eq!(b.describe(9, None), "batch");
    }
}
