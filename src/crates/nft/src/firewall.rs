//! [`NftFirewall`]: the handle, set-only mode's probing of the admin's sets, and the
//! [`Firewall`] operations, each one transaction.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::time::Instant;

use crowdwall_base::clock;
use crowdwall_engine::enforce::{
    Drift, DropCounter, Element, EnforceError, Family, Firewall, Interval, KernelElement, Layout,
    SetChange, SetDef, SetIx,
};
use nftnl::{MsgType, ProtoFamily, Table};

use crate::batch::Batch;
use crate::consts::*;
use crate::dump;
use crate::elem::{self, kelems, merge, timeout_ms, ElemOp};
use crate::events::Events;
use crate::objects::{family_name, push_skeleton, Target};
use crate::sock::{all_messages, invalid, kernel_error, nft_request, parse_ack, Sock, ACK_WAIT};
use crate::spec::{FirewallSpec, Mode};
use crate::wire;

/// Elements per transaction above which we leave the event group while it runs: our own
/// notifications would otherwise cost the kernel an skb per element and overflow the
/// listener. Foreign changes in that window are caught by the intact check that follows.
pub(crate) const QUIET_ABOVE: usize = 256;

/// The nftables backend: one netlink socket for transactions and read-backs, one subscribed
/// to nftables events to notice when someone else changes our objects.
pub struct NftFirewall {
    t: Target,
    sock: Sock,
    events: Option<Events>,
}

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
        let sock = Sock::open()?;
        let events = match Events::open() {
            Ok(e) => Some(e),
            Err(e) => {
                log::warn!("nftables events unavailable ({e}); drift is found by polling only");
                None
            }
        };
        let layout = Layout::own_with_ports(&spec.port_groups);
        let mut fw = NftFirewall {
            t: Target {
                spec,
                table,
                layout,
                set_names: Vec::new(),
            },
            sock,
            events,
        };
        if fw.t.spec.mode == Mode::Sets {
            fw.t.layout = fw.probe_admin_sets()?;
        }
        fw.t.set_names =
            fw.t.layout
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

    pub fn spec(&self) -> &FirewallSpec {
        &self.t.spec
    }

    /// Set-only mode: reads the admin's sets' flags and key sizes.
    fn probe_admin_sets(&mut self) -> Result<Layout, EnforceError> {
        let spec = self.t.spec.clone();
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
                    origin: None,
                    ports: Default::default(),
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
        let seq = self.sock.next_seq();
        let n = CString::new(name).map_err(|_| invalid("set name contains NUL"))?;
        let req = nft_request(
            NFT_MSG_GETSET,
            NLM_F_ACK,
            seq,
            self.t.spec.family.nfproto(),
            &[
                (NFTA_SET_TABLE, self.t.table.as_bytes_with_nul()),
                (NFTA_SET_NAME, n.as_bytes_with_nul()),
            ],
        )?;
        self.sock.drain_stale()?;
        self.sock.send(&req)?;
        let deadline = Instant::now() + ACK_WAIT;
        let mut found = None;
        loop {
            let Some(buf) = self.sock.recv_nowait()? else {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(EnforceError::Protocol(format!("GETSET {name}: no reply")));
                }
                self.sock.poll(left)?;
                continue;
            };
            for m in all_messages(buf)? {
                if m.seq != seq {
                    continue;
                }
                if m.ty == NLMSG_ERROR {
                    let ack = parse_ack(&m)?;
                    if ack.errno == libc::ENOENT {
                        let spec = &self.t.spec;
                        return Err(EnforceError::Setup(format!(
                            "set {} {name} does not exist: create it first (e.g. `nft add set {} {} {name} {{ type ipv4_addr; flags interval, timeout; }}`)",
                            spec.table,
                            family_name(spec.family),
                            spec.table
                        )));
                    }
                    if ack.errno != 0 {
                        return Err(kernel_error(format!("GETSET {name}"), &ack));
                    }
                    return found.ok_or_else(|| {
                        EnforceError::Protocol(format!("GETSET {name}: empty reply"))
                    });
                }
                let (mut flags, mut klen) = (0, 0);
                for a in m.attrs() {
                    match (a.ty, wire::be_u32(a.payload, 0)) {
                        (NFTA_SET_FLAGS, Some(v)) => flags = v,
                        (NFTA_SET_KEY_LEN, Some(v)) => klen = v,
                        _ => {}
                    }
                }
                found = Some((flags, klen));
            }
        }
    }

    /// Sends a batch, leaving the event group around big ones (see [`QUIET_ABOVE`]).
    fn transact_quiet(&mut self, b: Batch, elements: usize) -> Result<(), EnforceError> {
        let quiet = elements > QUIET_ABOVE;
        if quiet {
            if let Some(ev) = &mut self.events {
                ev.leave();
            }
        }
        let r = self.sock.transact(&b);
        if quiet {
            if let Some(ev) = &mut self.events {
                ev.rejoin();
            }
        }
        r
    }
}

impl Firewall for NftFirewall {
    fn layout(&self) -> &Layout {
        &self.t.layout
    }

    fn load(&mut self, sets: &[Vec<Element>]) -> Result<(), EnforceError> {
        let now = clock::now();
        let (t, seq) = (&self.t, &mut self.sock.seq);
        let mut b = Batch::new();
        b.begin(seq.next())?;
        match t.spec.mode {
            Mode::Table => push_skeleton(&mut b, seq, t)?,
            // The admin's sets: emptied and refilled in the same transaction, so there is no
            // moment without the bans.
            Mode::Sets => {
                for ix in 0..t.layout.sets.len() {
                    elem::push_flush(&mut b, seq, t, ix as SetIx)?;
                }
            }
        }
        let mut n = 0;
        for (ix, elems) in sets.iter().enumerate() {
            let k = kelems(
                &t.layout,
                ix as SetIx,
                elems
                    .iter()
                    .filter(|e| e.expires > now)
                    .map(|e| (e.range, Some(timeout_ms(e.expires, now)))),
            )?;
            n += k.len();
            elem::push_elems(&mut b, seq, t, ElemOp::New, ix as SetIx, &k)?;
        }
        b.end(seq.next())?;
        self.transact_quiet(b, n)
    }

    fn apply(&mut self, changes: &[SetChange]) -> Result<(), EnforceError> {
        let now = clock::now();
        let (t, seq) = (&self.t, &mut self.sock.seq);
        let mut b = Batch::new();
        b.begin(seq.next())?;
        let mut n = 0;
        // Deletes first: an element in both lists is thereby refreshed with its new timeout
        // (re-adding alone is ignored by kernels before 6.12).
        for c in changes {
            let k = kelems(&t.layout, c.set, c.remove.iter().map(|r| (*r, None)))?;
            n += k.len();
            elem::push_elems(&mut b, seq, t, ElemOp::Del, c.set, &k)?;
        }
        for c in changes {
            let k = kelems(
                &t.layout,
                c.set,
                c.add
                    .iter()
                    .filter(|e| e.expires > now)
                    .map(|e| (e.range, Some(timeout_ms(e.expires, now)))),
            )?;
            n += k.len();
            elem::push_elems(&mut b, seq, t, ElemOp::New, c.set, &k)?;
        }
        if n == 0 {
            return Ok(());
        }
        b.end(seq.next())?;
        self.transact_quiet(b, n)
    }

    fn is_intact(&mut self) -> Result<bool, EnforceError> {
        let t = self.t.table.as_bytes_with_nul().to_vec();
        type Query = (u16, String, Vec<(u16, Vec<u8>)>);
        let mut queries: Vec<Query> = Vec::new();
        if self.t.spec.mode == Mode::Table {
            queries.push((
                NFT_MSG_GETTABLE,
                "GETTABLE".into(),
                vec![(NFTA_TABLE_NAME, t.clone())],
            ));
            for (c, _) in crate::objects::chains(&self.t) {
                let mut n = c.clone().into_bytes();
                n.push(0);
                queries.push((
                    NFT_MSG_GETCHAIN,
                    format!("GETCHAIN {c}"),
                    vec![(NFTA_CHAIN_TABLE, t.clone()), (NFTA_CHAIN_NAME, n)],
                ));
            }
        }
        for name in &self.t.set_names {
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
        let fam = self.t.spec.family.nfproto();
        for (ty, _, attrs) in &queries {
            let seq = self.sock.next_seq();
            let a: Vec<(u16, &[u8])> = attrs.iter().map(|(k, v)| (*k, &v[..])).collect();
            buf.extend(nft_request(*ty, NLM_F_ACK, seq, fam, &a)?);
            seqs.push(seq);
        }
        self.sock.drain_stale()?;
        self.sock.send(&buf)?;
        let acks = self.sock.wait_acks(&seqs, &[], false)?;
        let mut intact = true;
        for (seq, (_, what, _)) in seqs.iter().zip(&queries) {
            match acks.get(seq) {
                None => return Err(EnforceError::Protocol(format!("{what}: no reply"))),
                Some(a) if a.errno == 0 => {}
                Some(a) if a.errno == libc::ENOENT => intact = false,
                Some(a) => return Err(kernel_error(what.to_string(), a)),
            }
        }
        // A flushed table keeps its chains but loses their rules: count every chain's rules.
        if intact && self.t.spec.mode == Mode::Table {
            intact = dump::rules_present(&mut self.sock, &self.t)?;
        }
        Ok(intact)
    }

    fn list(&mut self, set: SetIx) -> Result<Vec<KernelElement>, EnforceError> {
        let family = self
            .t
            .layout
            .set(set)
            .map(|d| (d.family, d.interval))
            .ok_or_else(|| EnforceError::Protocol(format!("no set #{set}")))?;
        let raw = dump::set_elems(&mut self.sock, &self.t, set)?;
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
        if self.t.spec.mode != Mode::Table {
            return Ok(Vec::new());
        }
        dump::counters(&mut self.sock, &self.t)
    }

    fn drift(&mut self) -> Result<Drift, EnforceError> {
        match &mut self.events {
            None => Ok(Drift::default()),
            Some(ev) => ev.read(self.sock.portid(), &self.t),
        }
    }

    fn event_fd(&self) -> Option<RawFd> {
        self.events.as_ref().map(Events::fd)
    }

    fn remove(&mut self) -> Result<(), EnforceError> {
        let (t, seq) = (&self.t, &mut self.sock.seq);
        let mut b = Batch::new();
        b.begin(seq.next())?;
        match t.spec.mode {
            Mode::Table => {
                let table = Table::new(&t.table, ProtoFamily::Inet);
                b.push_obj(
                    seq.next(),
                    format!("DELTABLE {}", t.spec.table),
                    &table,
                    MsgType::Del,
                )?;
            }
            Mode::Sets => {
                for ix in 0..t.layout.sets.len() {
                    elem::push_flush(&mut b, seq, t, ix as SetIx)?;
                }
            }
        }
        b.end(seq.next())?;
        match self.sock.transact(&b) {
            Err(EnforceError::Kernel { errno, .. }) if errno == libc::ENOENT => Ok(()),
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_moves_between_threads() {
        fn send<T: Send>() {}
        send::<NftFirewall>();
    }
}
