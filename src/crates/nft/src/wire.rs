//! Netlink wire format: reading messages and attributes out of a receive buffer, writing
//! attributes and plain nfnetlink requests. Public so that the other netlink user of the
//! house, the NFLOG source in the daemon crate, can read its datagrams with the same code.
//!
//! Nothing here trusts its input: every reader returns `None` or stops at the first header
//! whose length does not fit, so a truncated or hostile datagram never panics. Integers in
//! netlink headers and in most attributes are in host order (`ne_*`); nfnetlink payload
//! values (nf_tables attributes, NFLOG packet fields) are big-endian (`be_*`).

pub use crate::consts::{
    NFGENMSG_LEN, NFNETLINK_V0, NLA_F_NESTED, NLA_F_NET_BYTEORDER, NLA_TYPE_MASK, NLMSG_DONE,
    NLMSG_ERROR, NLMSG_HDRLEN, NLM_F_ACK, NLM_F_REQUEST,
};

/// What cannot be written: netlink lengths are 16 bits per attribute and 32 per message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("attribute {ty} of {len} bytes does not fit netlink's 16-bit length")]
    AttrTooLong { ty: u16, len: usize },
    #[error("netlink message of {0} bytes does not fit its 32-bit length")]
    MessageTooLong(usize),
}

impl From<WireError> for crowdwall_engine::enforce::EnforceError {
    fn from(e: WireError) -> Self {
        crowdwall_engine::enforce::EnforceError::Protocol(e.to_string())
    }
}

/// `n` rounded up to netlink's 4-byte alignment (saturating, so it cannot overflow).
pub const fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

fn bytes<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Host-order u16 at `at`; `None` when `b` is too short.
pub fn ne_u16(b: &[u8], at: usize) -> Option<u16> {
    bytes(b, at).map(u16::from_ne_bytes)
}

/// Host-order u32 at `at`; `None` when `b` is too short.
pub fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    bytes(b, at).map(u32::from_ne_bytes)
}

/// Host-order i32 at `at` (an nlmsgerr's error, an NLMSG_DONE's status).
pub fn ne_i32(b: &[u8], at: usize) -> Option<i32> {
    bytes(b, at).map(i32::from_ne_bytes)
}

/// Big-endian u16 at `at`; `None` when `b` is too short.
pub fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    bytes(b, at).map(u16::from_be_bytes)
}

/// Big-endian u32 at `at`; `None` when `b` is too short.
pub fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    bytes(b, at).map(u32::from_be_bytes)
}

/// Big-endian u64 at `at`; `None` when `b` is too short.
pub fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    bytes(b, at).map(u64::from_be_bytes)
}

/// A string attribute's bytes up to its first NUL (all of it when there is none).
pub fn until_nul(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |n| &b[..n])
}

// ---------------------------------------------------------------------------------------------
// Messages

/// One netlink message of a receive buffer: its header fields and what follows the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// `nlmsg_type`; for nfnetlink `(subsystem << 8) | message`.
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    /// Sender's port id: 0 for the kernel's replies, the maker's for nftables events.
    pub portid: u32,
    /// Everything after the 16-byte header, up to `nlmsg_len`.
    pub payload: &'a [u8],
}

impl<'a> Message<'a> {
    /// nfnetlink subsystem (high byte of the type).
    pub fn subsys(&self) -> u16 {
        self.ty >> 8
    }

    /// nfnetlink message kind within its subsystem (low byte of the type).
    pub fn kind(&self) -> u16 {
        self.ty & 0xff
    }

    /// The payload after the nfgenmsg header, where an nfnetlink message's attributes are.
    pub fn body(&self) -> &'a [u8] {
        self.payload.get(NFGENMSG_LEN..).unwrap_or(&[])
    }

    /// The attributes of an nfnetlink message ([`Self::body`]).
    pub fn attrs(&self) -> Attrs<'a> {
        Attrs::new(self.body())
    }

    /// For an NLMSG_ERROR: the error it reports as a positive errno, 0 for a plain ack.
    /// `None` for other types or a payload too short to hold the error.
    pub fn ack_errno(&self) -> Option<i32> {
        if self.ty != NLMSG_ERROR {
            return None;
        }
        ne_i32(self.payload, 0).map(i32::saturating_neg)
    }
}

/// Iterates the messages of one received datagram. Ends at the end of the buffer (trailing
/// bytes too few for a header are ignored) or at the first header whose length is below 16
/// or runs past the buffer: [`Messages::malformed`] then tells which.
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    buf: &'a [u8],
    pos: usize,
    bad: Option<u32>,
}

/// The messages of `buf`, one datagram as `recv` returned it.
pub fn messages(buf: &[u8]) -> Messages<'_> {
    Messages {
        buf,
        pos: 0,
        bad: None,
    }
}

impl Messages<'_> {
    /// The `nlmsg_len` of the header that stopped the iteration, if one did.
    pub fn malformed(&self) -> Option<u32> {
        self.bad
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Message<'a>;

    fn next(&mut self) -> Option<Message<'a>> {
        if self.bad.is_some() {
            return None;
        }
        let rest = self.buf.get(self.pos..)?;
        let h = rest.get(..NLMSG_HDRLEN)?;
        let len = ne_u32(h, 0)?;
        let Some(msg) = rest
            .get(..len as usize)
            .filter(|_| len as usize >= NLMSG_HDRLEN)
        else {
            self.bad = Some(len);
            return None;
        };
        self.pos = self.pos.saturating_add(align4(len as usize));
        Some(Message {
            ty: ne_u16(h, 4)?,
            flags: ne_u16(h, 6)?,
            seq: ne_u32(h, 8)?,
            portid: ne_u32(h, 12)?,
            payload: &msg[NLMSG_HDRLEN..],
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Attributes

/// One attribute: its type without NLA_F_NESTED / NLA_F_NET_BYTEORDER, its payload (without
/// padding), and the offset of its header in the buffer iterated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    pub ty: u16,
    pub payload: &'a [u8],
    pub offset: usize,
}

/// Iterates netlink attributes (a message body, or a nested attribute's payload). Stops at
/// the first malformed header (length below 4 or past the buffer); [`Attrs::remainder`] then
/// holds what was left unread.
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Attrs<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Attrs { buf, pos: 0 }
    }

    /// The bytes not consumed yet. Once the iterator has returned `None`, non-empty means a
    /// malformed or truncated attribute (or 1-3 stray bytes) stopped it.
    pub fn remainder(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Attr<'a>;

    fn next(&mut self) -> Option<Attr<'a>> {
        let h = self.buf.get(self.pos..self.pos.checked_add(4)?)?;
        let len = ne_u16(h, 0)? as usize;
        let ty = ne_u16(h, 2)? & NLA_TYPE_MASK;
        let payload = self
            .buf
            .get(self.pos + 4..self.pos.checked_add(len)?)
            .filter(|_| len >= 4)?;
        let offset = self.pos;
        self.pos = self.pos.saturating_add(align4(len));
        Some(Attr {
            ty,
            payload,
            offset,
        })
    }
}

/// Appends one attribute: length and type (host order), payload, zero padding to 4 bytes.
/// `ty` may carry NLA_F_NESTED / NLA_F_NET_BYTEORDER.
pub fn push_attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) -> Result<(), WireError> {
    let len = u16::try_from(4 + payload.len()).map_err(|_| WireError::AttrTooLong {
        ty,
        len: payload.len(),
    })?;
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(align4(buf.len()), 0);
    Ok(())
}

/// A plain (non-batch) nfnetlink request: nlmsghdr (NLM_F_REQUEST added to `flags`, port id
/// 0), nfgenmsg (`family`, version 0, `res_id` big-endian), then `attrs` in order.
/// `ty` is the whole `nlmsg_type`, `(subsystem << 8) | message`.
pub fn request(
    ty: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    attrs: &[(u16, &[u8])],
) -> Result<Vec<u8>, WireError> {
    let mut m = Vec::with_capacity(128);
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[family, NFNETLINK_V0]);
    m.extend_from_slice(&res_id.to_be_bytes());
    for (t, data) in attrs {
        push_attr(&mut m, *t, data)?;
    }
    let len = u32::try_from(m.len()).map_err(|_| WireError::MessageTooLong(m.len()))?;
    m[..4].copy_from_slice(&len.to_ne_bytes());
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_attributes_come_back_through_the_iterator() {
        let mut b = Vec::new();
        push_attr(&mut b, 1, b"abc\0").unwrap();
        push_attr(&mut b, 7 | NLA_F_NESTED, &[1, 2, 3, 4, 5]).unwrap();
        push_attr(&mut b, 2 | NLA_F_NET_BYTEORDER, &[]).unwrap();
        assert_eq!(b.len(), 8 + 12 + 4, "each attribute padded to 4");
        let mut it = Attrs::new(&b);
        let got: Vec<_> = it.by_ref().collect();
        assert_eq!(
            got,
            vec![
                Attr {
                    ty: 1,
                    payload: b"abc\0",
                    offset: 0
                },
                Attr {
                    ty: 7,
                    payload: &[1, 2, 3, 4, 5],
                    offset: 8
                },
                Attr {
                    ty: 2,
                    payload: &[],
                    offset: 20
                },
            ]
        );
        assert!(it.remainder().is_empty());
        assert_eq!(until_nul(got[0].payload), b"abc");
        assert_eq!(until_nul(b"x"), b"x");
    }

    #[test]
    fn truncated_or_malformed_attributes_stop_without_panic() {
        let mut b = Vec::new();
        push_attr(&mut b, 1, &[9; 6]).unwrap();
        push_attr(&mut b, 2, &[8; 4]).unwrap();
        for cut in 0..b.len() {
            let mut it = Attrs::new(&b[..cut]);
            let n = it.by_ref().count();
            assert!(n <= 1, "cut {cut}");
            // Only the first attribute fits (its padding may be cut off), or nothing at all.
            let whole = cut == 0 || (10..=12).contains(&cut);
            assert_eq!(it.remainder().is_empty(), whole, "cut {cut}");
        }
        // A length below the header's own size.
        let mut bad = Vec::new();
        bad.extend_from_slice(&2u16.to_ne_bytes());
        bad.extend_from_slice(&1u16.to_ne_bytes());
        bad.extend_from_slice(&[0; 4]);
        let mut it = Attrs::new(&bad);
        assert_eq!(it.next(), None);
        assert_eq!(it.remainder().len(), bad.len());
        assert_eq!(it.next(), None, "stays stopped");
        // A length past the buffer.
        let mut long = Vec::new();
        long.extend_from_slice(&100u16.to_ne_bytes());
        long.extend_from_slice(&1u16.to_ne_bytes());
        long.extend_from_slice(&[0; 8]);
        assert_eq!(Attrs::new(&long).count(), 0);
    }

    #[test]
    fn an_attribute_too_long_for_its_length_is_refused() {
        let mut b = Vec::new();
        let big = vec![0u8; 65_532];
        assert_eq!(
            push_attr(&mut b, 3, &big),
            Err(WireError::AttrTooLong { ty: 3, len: 65_532 })
        );
        assert!(b.is_empty());
        push_attr(&mut b, 3, &big[..65_531]).unwrap();
        assert_eq!(Attrs::new(&b).next().map(|a| a.payload.len()), Some(65_531));
    }

    #[test]
    fn requests_are_well_formed() {
        let m = request(
            (10 << 8) | 1,
            NLM_F_ACK,
            7,
            1,
            0x0105,
            &[(1, b"t\0"), (2, &[1, 2, 3, 4])],
        )
        .unwrap();
        assert_eq!(ne_u32(&m, 0), Some(m.len() as u32));
        let mut it = messages(&m);
        let v: Vec<_> = it.by_ref().collect();
        assert_eq!(it.malformed(), None);
        assert_eq!(v.len(), 1);
        let msg = v[0];
        assert_eq!((msg.ty, msg.subsys(), msg.kind()), ((10 << 8) | 1, 10, 1));
        assert_eq!(msg.flags, NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!((msg.seq, msg.portid), (7, 0));
        assert_eq!(&msg.payload[..4], &[1, NFNETLINK_V0, 0x01, 0x05]);
        let attrs: Vec<_> = msg.attrs().map(|a| (a.ty, a.payload, a.offset)).collect();
        assert_eq!(attrs, vec![(1, &b"t\0"[..], 0), (2, &[1, 2, 3, 4][..], 8)]);
        assert_eq!(msg.ack_errno(), None);
    }

    fn ack(seq: u32, errno: i32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&36u32.to_ne_bytes());
        m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&(-errno).to_ne_bytes());
        m.extend_from_slice(&[0; 16]);
        m
    }

    #[test]
    fn several_messages_and_their_acks() {
        let mut buf = ack(1, 0);
        buf.extend(request(5, 0, 2, 0, 0, &[(1, b"x")]).unwrap());
        buf.extend(ack(3, libc::ENOENT));
        let v: Vec<_> = messages(&buf).collect();
        assert_eq!(v.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(v[0].ack_errno(), Some(0));
        assert_eq!(v[2].ack_errno(), Some(libc::ENOENT));
        // Trailing bytes too few for a header end the buffer; they are not an error.
        buf.extend_from_slice(&[0; 8]);
        let mut it = messages(&buf);
        assert_eq!(it.by_ref().count(), 3);
        assert_eq!(it.malformed(), None);
    }

    #[test]
    fn truncated_or_malformed_messages_stop_without_panic() {
        let mut buf = ack(1, 0);
        buf.extend(ack(2, libc::EINVAL));
        for cut in 0..buf.len() {
            let mut it = messages(&buf[..cut]);
            let n = it.by_ref().count();
            assert_eq!(n, usize::from(cut >= 36), "cut {cut}");
            // A cut inside a header leaves too few bytes to read one; a cut after it is a
            // message running past the buffer.
            let into_second = cut.checked_sub(36).unwrap_or(cut);
            assert_eq!(
                it.malformed().is_some(),
                into_second >= NLMSG_HDRLEN,
                "cut {cut}"
            );
        }
        for len in [0u32, 15, 1000] {
            let mut m = ack(1, 0);
            m[..4].copy_from_slice(&len.to_ne_bytes());
            let mut it = messages(&m);
            assert_eq!(it.next(), None);
            assert_eq!(it.malformed(), Some(len));
            assert_eq!(it.next(), None, "stays stopped");
        }
        // An error message too short to hold its error.
        let mut short = ack(1, 0);
        short.truncate(NLMSG_HDRLEN + 2);
        short[..4].copy_from_slice(&((NLMSG_HDRLEN + 2) as u32).to_ne_bytes());
        let m = messages(&short).next().unwrap();
        assert_eq!(m.ack_errno(), None);
        assert_eq!(m.attrs().count(), 0);
    }

    #[test]
    fn integer_readers_are_bounds_checked() {
        let b = [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0];
        assert_eq!(be_u16(&b, 0), Some(0x1234));
        assert_eq!(be_u32(&b, 4), Some(0x9abc_def0));
        assert_eq!(be_u64(&b, 0), Some(0x1234_5678_9abc_def0));
        assert_eq!(ne_u16(&b, 6), Some(u16::from_ne_bytes([0xde, 0xf0])));
        assert_eq!(
            ne_u32(&b, 0),
            Some(u32::from_ne_bytes([0x12, 0x34, 0x56, 0x78]))
        );
        assert_eq!(ne_i32(&(-5i32).to_ne_bytes(), 0), Some(-5));
        assert_eq!(be_u16(&b, 7), None);
        assert_eq!(be_u32(&b, 5), None);
        assert_eq!(be_u64(&b, 1), None);
        assert_eq!(ne_u32(&b, usize::MAX), None);
        assert_eq!(align4(0), 0);
        assert_eq!(align4(5), 8);
        assert_eq!(align4(8), 8);
        assert_eq!(align4(usize::MAX), usize::MAX & !3);
    }
}
