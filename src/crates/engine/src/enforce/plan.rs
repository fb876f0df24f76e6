//! Decisions to disjoint kernel elements, and the delta between two plans. Pure.
//!
//! Interval sets refuse overlapping elements (EEXIST aborts the whole transaction), yet bans
//! overlap: a /24 and an address inside it, each with its own expiry. The plan splits the
//! covered space into disjoint pieces, each expiring with the longest ban that covers it, and
//! joins adjacent pieces that expire together.

use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};

use ipnet::IpNet;

use super::{Element, Family, Interval, KernelElement, Layout, Ports, SetChange, SetIx};
use crate::decide::Origin;
use crate::time::Micros;

/// Disjoint elements for `bans` (range, expiry), leaving out those expired at `now`. Sorted
/// by family and start.
pub fn elements<I>(bans: I, now: Micros) -> Vec<Element>
where
    I: IntoIterator<Item = (Interval, Micros)>,
{
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for (iv, until) in bans {
        if until <= now || iv.first > iv.last {
            continue;
        }
        match iv.family {
            Family::V4 => v4.push((iv, until)),
            Family::V6 => v6.push((iv, until)),
        }
    }
    let mut out = partition(Family::V4, v4);
    out.extend(partition(Family::V6, v6));
    out
}

fn partition(family: Family, mut bans: Vec<(Interval, Micros)>) -> Vec<Element> {
    if bans.is_empty() {
        return Vec::new();
    }
    bans.sort_by_key(|(iv, _)| iv.first);
    // Boundaries where coverage can change: every start, and every end + 1.
    let mut cuts: Vec<u128> = Vec::with_capacity(bans.len() * 2);
    for (iv, _) in &bans {
        cuts.push(iv.first);
        if let Some(next) = iv.last.checked_add(1) {
            if next <= Interval::family_max(family) {
                cuts.push(next);
            }
        }
    }
    cuts.sort_unstable();
    cuts.dedup();

    // Max-heap of (until, last) for bans started so far; ones that ended are dropped lazily
    // when they surface, which is all that matters since only the top is read.
    let mut heap: BinaryHeap<(Micros, u128)> = BinaryHeap::new();
    let mut next_ban = 0;
    let mut out: Vec<Element> = Vec::new();
    for (i, &start) in cuts.iter().enumerate() {
        while next_ban < bans.len() && bans[next_ban].0.first <= start {
            heap.push((bans[next_ban].1, bans[next_ban].0.last));
            next_ban += 1;
        }
        while heap.peek().is_some_and(|&(_, last)| last < start) {
            heap.pop();
        }
        let Some(&(until, _)) = heap.peek() else {
            continue;
        };
        let end = match cuts.get(i + 1) {
            Some(&n) => n - 1,
            // Past the last cut, a ban still running has no end cut: it reaches the top.
            None => Interval::family_max(family),
        };
        match out.last_mut() {
            Some(prev)
                if prev.expires == until && prev.range.last.checked_add(1) == Some(start) =>
            {
                prev.range.last = end;
            }
            _ => out.push(Element {
                range: Interval {
                    family,
                    first: start,
                    last: end,
                },
                expires: until,
            }),
        }
    }
    out
}

/// What turns the kernel's `applied` elements into `desired`: intervals to remove and
/// elements to add. An interval whose expiry changed is in both (the backend refreshes it).
/// Applied elements that lapse within `margin` of `now` are left to the kernel's own timeout:
/// deleting one the kernel has just expired would fail the transaction with ENOENT.
pub fn diff(
    applied: &HashMap<Interval, Micros>,
    desired: &[Element],
    now: Micros,
    margin: Micros,
) -> (Vec<Interval>, Vec<Element>) {
    let mut remove = Vec::new();
    let mut add = Vec::new();
    let mut wanted: HashMap<Interval, Micros> = HashMap::with_capacity(desired.len());
    for e in desired {
        wanted.insert(e.range, e.expires);
        match applied.get(&e.range) {
            Some(&old) if old == e.expires => {}
            Some(&old) => {
                if old > now + margin {
                    remove.push(e.range);
                }
                add.push(*e);
            }
            None => add.push(*e),
        }
    }
    for (iv, &old) in applied {
        if !wanted.contains_key(iv) && old > now + margin {
            remove.push(*iv);
        }
    }
    remove.sort();
    (remove, add)
}

fn change(per_set: &mut HashMap<SetIx, SetChange>, ix: SetIx) -> &mut SetChange {
    per_set.entry(ix).or_insert_with(|| SetChange {
        set: ix,
        ..Default::default()
    })
}

/// One address in a hash set: the decisions on it (usually one) and what the kernel holds.
#[derive(Debug, Clone, Default)]
struct Host {
    /// (decision id, until).
    decisions: Vec<(i64, Micros)>,
    /// Expiry the kernel element was last given, if it holds one.
    applied: Option<Micros>,
}

impl Host {
    fn wanted(&self, now: Micros) -> Option<Micros> {
        self.decisions
            .iter()
            .map(|&(_, u)| u)
            .filter(|&u| u > now)
            .max()
    }
}

/// The bans routed to one interval set and what the kernel holds there.
#[derive(Debug, Clone, Default)]
struct RangeSet {
    bans: HashMap<i64, (Interval, Micros)>,
    applied: HashMap<Interval, Micros>,
}

/// What the kernel should hold, kept up to date decision by decision so that a sync costs
/// in proportion to what changed: only the addresses and interval sets touched since the
/// last transaction are diffed. Pure: the caller passes `now`.
#[derive(Debug, Clone)]
pub struct Desired {
    layout: Layout,
    hosts: HashMap<(SetIx, u128), Host>,
    ranges: HashMap<SetIx, RangeSet>,
    dirty_hosts: HashSet<(SetIx, u128)>,
    dirty_ranges: BTreeSet<SetIx>,
    /// Elements found in the kernel that nothing wants (read-back): removed next sync.
    strays: Vec<(SetIx, Interval)>,
    /// Decisions no set can hold (a range with no interval set in set-only mode).
    pub unroutable: u64,
    /// Ports each origin's bans are limited to when a decision names none (`[ban] ports`),
    /// indexed like `Origin::ALL`.
    origin_ports: [Ports; 5],
    /// Bumped whenever what the kernel holds changes through us: a read-back taken at
    /// another generation is stale.
    generation: u64,
}

/// A computed transaction and what to record once the kernel accepted it.
#[derive(Debug, Default)]
pub struct Pending {
    pub changes: Vec<SetChange>,
    hosts: Vec<((SetIx, u128), Option<Micros>)>,
    ranges: Vec<(SetIx, HashMap<Interval, Micros>)>,
    strays: usize,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn elements(&self) -> usize {
        self.changes
            .iter()
            .map(|c| c.add.len() + c.remove.len())
            .sum()
    }
}

impl Desired {
    pub fn new(layout: Layout) -> Self {
        Desired {
            layout,
            hosts: HashMap::new(),
            ranges: HashMap::new(),
            dirty_hosts: HashSet::new(),
            dirty_ranges: BTreeSet::new(),
            strays: Vec::new(),
            unroutable: 0,
            origin_ports: Default::default(),
            generation: 0,
        }
    }

    /// Limits the bans of `origin` that name no ports of their own to `ports`. Set before
    /// the first insert: decisions already placed stay where they are.
    pub fn set_origin_ports(&mut self, origin: Origin, ports: Ports) {
        if let Some(i) = Origin::ALL.iter().position(|o| *o == origin) {
            self.origin_ports[i] = ports;
        }
    }

    /// The ports a decision's ban covers: its own, else its origin's, else every port; and
    /// every port when the table has no sets for that list (a stored decision whose scenario
    /// lost its `ports` before a restart). The plan routes by this and `decisions list`
    /// shows it, so the two cannot disagree.
    pub fn effective_ports<'a>(&'a self, origin: Origin, ports: &'a Ports) -> &'a Ports {
        static ALL: Ports = Ports::ALL;
        let wanted = if !ports.is_all() {
            ports
        } else {
            Origin::ALL
                .iter()
                .position(|o| *o == origin)
                .map_or(ports, |i| &self.origin_ports[i])
        };
        if self.layout.has_ports(wanted) {
            wanted
        } else {
            &ALL
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn target(
        &self,
        origin: Origin,
        ports: &Ports,
        net: &IpNet,
    ) -> Option<(SetIx, Interval, bool)> {
        let iv = Interval::from_net(net);
        let ix = self
            .layout
            .route_ports(origin, self.effective_ports(origin, ports), &iv)?;
        let interval = self.layout.set(ix)?.interval;
        Some((ix, iv, interval))
    }

    /// Adds a decision, its ban limited to `ports` (every port when empty). False when no
    /// set can hold it.
    pub fn insert(
        &mut self,
        id: i64,
        origin: Origin,
        ports: &Ports,
        net: &IpNet,
        until: Micros,
    ) -> bool {
        let Some((ix, iv, interval)) = self.target(origin, ports, net) else {
            self.unroutable += 1;
            return false;
        };
        if interval {
            self.ranges
                .entry(ix)
                .or_default()
                .bans
                .insert(id, (iv, until));
            self.dirty_ranges.insert(ix);
        } else {
            let key = (ix, iv.first);
            self.hosts
                .entry(key)
                .or_default()
                .decisions
                .push((id, until));
            self.dirty_hosts.insert(key);
        }
        true
    }

    /// Removes a decision (deleted, replaced): the same origin, ports and value it was
    /// inserted with find its set again.
    pub fn remove(&mut self, id: i64, origin: Origin, ports: &Ports, net: &IpNet) {
        let Some((ix, iv, interval)) = self.target(origin, ports, net) else {
            return;
        };
        if interval {
            if let Some(r) = self.ranges.get_mut(&ix) {
                if r.bans.remove(&id).is_some() {
                    self.dirty_ranges.insert(ix);
                }
            }
        } else {
            let key = (ix, iv.first);
            if let Some(h) = self.hosts.get_mut(&key) {
                h.decisions.retain(|&(d, _)| d != id);
                self.dirty_hosts.insert(key);
            }
        }
    }

    /// Number of addresses and ranges wanted at `now`, per family, for status.
    /// Addresses and ranges the plan holds, lapsed ones not yet swept included: O(sets), for
    /// the status line the daemon refreshes after every batch that bans (`sizes` walks every
    /// address).
    pub fn held(&self) -> usize {
        self.hosts.len() + self.ranges.values().map(|r| r.bans.len()).sum::<usize>()
    }

    pub fn sizes(&self, now: Micros) -> super::SetSizes {
        let mut s = super::SetSizes::default();
        let mut count = |f: Family| match f {
            Family::V4 => s.v4 += 1,
            Family::V6 => s.v6 += 1,
        };
        for ((ix, _), h) in &self.hosts {
            if h.wanted(now).is_some() {
                if let Some(d) = self.layout.set(*ix) {
                    count(d.family);
                }
            }
        }
        for (ix, r) in &self.ranges {
            if let Some(d) = self.layout.set(*ix) {
                let n = r.bans.values().filter(|(_, u)| *u > now).count();
                for _ in 0..n {
                    count(d.family);
                }
            }
        }
        s
    }

    /// The smallest transaction that brings the kernel from what it holds to what is wanted.
    /// Elements that lapse within `margin` are left to the kernel's own timeout (deleting one
    /// the kernel has just expired would fail the transaction with ENOENT); a refresh of such
    /// an element waits until it has lapsed.
    pub fn changes(&self, now: Micros, margin: Micros) -> Pending {
        let mut per_set: HashMap<SetIx, SetChange> = HashMap::new();
        let mut p = Pending::default();
        for key in &self.dirty_hosts {
            let Some(h) = self.hosts.get(key) else {
                continue;
            };
            let Some(def) = self.layout.set(key.0) else {
                continue;
            };
            let iv = Interval {
                family: def.family,
                first: key.1,
                last: key.1,
            };
            let want = h.wanted(now);
            let live = h.applied.filter(|&a| a > now);
            if want == live {
                p.hosts.push((*key, want));
                continue;
            }
            if live.is_some_and(|a| a <= now + margin) {
                // Lapsing: let the kernel finish it, then add afresh (stays dirty).
                continue;
            }
            let c = change(&mut per_set, key.0);
            if live.is_some() {
                c.remove.push(iv);
            }
            if let Some(until) = want {
                c.add.push(Element {
                    range: iv,
                    expires: until,
                });
            }
            p.hosts.push((*key, want));
        }
        for ix in &self.dirty_ranges {
            let Some(r) = self.ranges.get(ix) else {
                continue;
            };
            let desired = elements(r.bans.values().copied(), now);
            let (remove, add) = diff(&r.applied, &desired, now, margin);
            if !remove.is_empty() || !add.is_empty() {
                let c = change(&mut per_set, *ix);
                c.remove.extend(remove);
                c.add.extend(add);
            }
            p.ranges
                .push((*ix, desired.iter().map(|e| (e.range, e.expires)).collect()));
        }
        for (ix, iv) in &self.strays {
            let c = change(&mut per_set, *ix);
            if !c.remove.contains(iv) {
                c.remove.push(*iv);
            }
        }
        p.strays = self.strays.len();
        let mut changes: Vec<SetChange> = per_set
            .into_values()
            .filter(|c| !c.add.is_empty() || !c.remove.is_empty())
            .collect();
        changes.sort_by_key(|c| c.set);
        for c in &mut changes {
            c.remove.sort();
            c.add.sort_by_key(|e| e.range);
        }
        p.changes = changes;
        p
    }

    /// Whether there is anything to sync.
    pub fn is_dirty(&self) -> bool {
        !self.dirty_hosts.is_empty() || !self.dirty_ranges.is_empty() || !self.strays.is_empty()
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Records that the kernel accepted `p`.
    pub fn commit(&mut self, p: Pending) {
        if !p.changes.is_empty() {
            self.generation += 1;
        }
        for (key, applied) in p.hosts {
            self.dirty_hosts.remove(&key);
            match (applied, self.hosts.get_mut(&key)) {
                (None, Some(h)) if h.decisions.is_empty() => {
                    self.hosts.remove(&key);
                }
                (_, Some(h)) => h.applied = applied,
                (_, None) => {}
            }
        }
        for (ix, applied) in p.ranges {
            self.dirty_ranges.remove(&ix);
            if let Some(r) = self.ranges.get_mut(&ix) {
                r.applied = applied;
            }
        }
        self.strays.drain(..p.strays.min(self.strays.len()));
    }

    /// Everything wanted at `now`, per set (indexed like the layout), for a full load.
    pub fn full(&self, now: Micros) -> Vec<Vec<Element>> {
        let mut out = vec![Vec::new(); self.layout.sets.len()];
        for (&(ix, key), h) in &self.hosts {
            if let (Some(until), Some(def)) = (h.wanted(now), self.layout.set(ix)) {
                out[ix as usize].push(Element {
                    range: Interval {
                        family: def.family,
                        first: key,
                        last: key,
                    },
                    expires: until,
                });
            }
        }
        for (&ix, r) in &self.ranges {
            out[ix as usize] = elements(r.bans.values().copied(), now);
        }
        for set in &mut out {
            set.sort_by_key(|e| e.range);
        }
        out
    }

    /// Records that the kernel now holds exactly `full(now)`.
    pub fn commit_full(&mut self, now: Micros) {
        self.generation += 1;
        self.hosts.retain(|_, h| {
            h.decisions.retain(|&(_, u)| u > now);
            h.applied = h.wanted(now);
            !h.decisions.is_empty()
        });
        for r in self.ranges.values_mut() {
            r.bans.retain(|_, (_, u)| *u > now);
            r.applied = elements(r.bans.values().copied(), now)
                .into_iter()
                .map(|e| (e.range, e.expires))
                .collect();
        }
        self.dirty_hosts.clear();
        self.dirty_ranges.clear();
        self.strays.clear();
    }

    /// Drops expired decisions and forgets kernel elements that have lapsed (the kernel
    /// removed them itself). Linear in the number of bans; called from housekeeping.
    pub fn sweep(&mut self, now: Micros) {
        let dirty = &self.dirty_hosts;
        self.hosts.retain(|k, h| {
            h.decisions.retain(|&(_, u)| u > now);
            if h.applied.is_some_and(|a| a <= now) {
                h.applied = None;
            }
            !(h.decisions.is_empty() && h.applied.is_none() && !dirty.contains(k))
        });
        for r in self.ranges.values_mut() {
            r.bans.retain(|_, (_, u)| *u > now);
            r.applied.retain(|_, u| *u > now);
        }
    }

    /// The kernel lost these elements behind our back (netlink events): they are re-added
    /// next sync.
    pub fn forget(&mut self, set: SetIx, lost: &[Interval]) -> usize {
        let interval = self.layout.set(set).is_some_and(|d| d.interval);
        let mut n = 0;
        if interval {
            if let Some(r) = self.ranges.get_mut(&set) {
                for iv in lost {
                    // Any piece of an applied element gone: forget the element.
                    let hit: Vec<Interval> = r
                        .applied
                        .keys()
                        .filter(|a| a.first <= iv.last && iv.first <= a.last)
                        .copied()
                        .collect();
                    for a in hit {
                        r.applied.remove(&a);
                        n += 1;
                    }
                }
                self.dirty_ranges.insert(set);
            }
        } else {
            for iv in lost {
                let key = (set, iv.first);
                if let Some(h) = self.hosts.get_mut(&key) {
                    if h.applied.take().is_some() {
                        n += 1;
                    }
                    self.dirty_hosts.insert(key);
                }
            }
        }
        n
    }

    /// Compares one set as read back from the kernel with what was applied: elements missing
    /// or with a timeout that no longer matches are forgotten (re-added next sync), elements
    /// nobody wants are queued for removal. Returns (missing, stray). `slack` absorbs the
    /// time between the read and `now`.
    pub fn audit(
        &mut self,
        set: SetIx,
        kernel: &[KernelElement],
        now: Micros,
        slack: Micros,
    ) -> (usize, usize) {
        let Some(def) = self.layout.set(set).cloned() else {
            return (0, 0);
        };
        let left = |k: &KernelElement| k.expires_ms.map(|ms| now + ms as Micros * 1000);
        let close = |a: Micros, b: Option<Micros>| b.is_some_and(|b| (a - b).abs() <= slack);
        let mut missing = Vec::new();
        let mut stray = Vec::new();
        if def.interval {
            let applied = self
                .ranges
                .get(&set)
                .map(|r| r.applied.clone())
                .unwrap_or_default();
            let held: HashMap<Interval, Option<Micros>> =
                kernel.iter().map(|k| (k.range, left(k))).collect();
            for (iv, &until) in &applied {
                if until <= now + slack {
                    continue;
                }
                match held.get(iv) {
                    Some(&exp) if close(until, exp) => {}
                    _ => missing.push(*iv),
                }
            }
            for k in kernel {
                if !applied.contains_key(&k.range) {
                    stray.push(k.range);
                }
            }
        } else {
            let mut seen: HashSet<u128> = HashSet::with_capacity(kernel.len());
            for k in kernel {
                seen.insert(k.range.first);
                match self.hosts.get(&(set, k.range.first)) {
                    Some(h) if h.applied.is_some() => {
                        if let Some(a) = h.applied {
                            if a > now + slack && !close(a, left(k)) {
                                missing.push(k.range);
                            }
                        }
                    }
                    _ => stray.push(k.range),
                }
            }
            for (&(ix, key), h) in &self.hosts {
                if ix == set && h.applied.is_some_and(|a| a > now + slack) && !seen.contains(&key) {
                    missing.push(Interval {
                        family: def.family,
                        first: key,
                        last: key,
                    });
                }
            }
        }
        let n = self.forget(set, &missing);
        let strays = stray.len();
        self.strays.extend(stray.into_iter().map(|iv| (set, iv)));
        (n.max(missing.len()), strays)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::{Interval, SetDef};

    fn iv(s: &str) -> Interval {
        if s.contains('/') {
            Interval::from_net(&s.parse().unwrap())
        } else {
            Interval::single(s.parse().unwrap())
        }
    }

    fn show(els: &[Element]) -> Vec<(String, Micros)> {
        els.iter()
            .map(|e| (e.range.to_string(), e.expires))
            .collect()
    }

    #[test]
    fn disjoint_bans_pass_through() {
        let e = elements([(iv("192.0.2.1"), 10), (iv("2001:db8::/64"), 20)], 0);
        assert_eq!(
            show(&e),
            vec![
                ("192.0.2.1".into(), 10),
                ("2001:db8::-2001:db8::ffff:ffff:ffff:ffff".into(), 20)
            ]
        );
    }

    #[test]
    fn nested_longer_ban_splits_the_range() {
        let e = elements([(iv("192.0.2.0/24"), 10), (iv("192.0.2.7"), 50)], 0);
        assert_eq!(
            show(&e),
            vec![
                ("192.0.2.0-192.0.2.6".into(), 10),
                ("192.0.2.7".into(), 50),
                ("192.0.2.8-192.0.2.255".into(), 10)
            ]
        );
    }

    #[test]
    fn nested_shorter_ban_disappears_into_the_range() {
        let e = elements([(iv("192.0.2.0/24"), 50), (iv("192.0.2.7"), 10)], 0);
        assert_eq!(show(&e), vec![("192.0.2.0-192.0.2.255".into(), 50)]);
    }

    #[test]
    fn adjacent_equal_expiries_merge_and_overlaps_take_the_max() {
        let e = elements(
            [
                (iv("192.0.2.0/25"), 10),
                (iv("192.0.2.128/25"), 10),
                (iv("192.0.2.100"), 10),
            ],
            0,
        );
        assert_eq!(show(&e), vec![("192.0.2.0-192.0.2.255".into(), 10)]);
        let e = elements(
            [
                (iv("10.0.0.0/8"), 5),
                (iv("10.1.0.0/16"), 9),
                (iv("10.1.2.0/24"), 7),
            ],
            0,
        );
        assert_eq!(
            show(&e),
            vec![
                ("10.0.0.0-10.0.255.255".into(), 5),
                ("10.1.0.0-10.1.255.255".into(), 9),
                ("10.2.0.0-10.255.255.255".into(), 5)
            ]
        );
    }

    #[test]
    fn top_of_the_address_space() {
        let e = elements([(iv("255.255.255.255"), 5), (iv("255.255.255.0/24"), 3)], 0);
        assert_eq!(
            show(&e),
            vec![
                ("255.255.255.0-255.255.255.254".into(), 3),
                ("255.255.255.255".into(), 5)
            ]
        );
    }

    #[test]
    fn expired_bans_are_left_out() {
        assert!(elements([(iv("192.0.2.1"), 10)], 10).is_empty());
    }

    #[test]
    fn every_address_gets_the_longest_ban_covering_it() {
        // brute-force check on a small space against a direct computation.
        let bans: Vec<(Interval, Micros)> = (0u32..40)
            .map(|i| {
                let a = (i * 37) % 200;
                let len = (i * 13) % 30;
                (
                    Interval {
                        family: Family::V4,
                        first: a as u128,
                        last: (a + len) as u128,
                    },
                    1 + ((i * 7) % 11) as Micros,
                )
            })
            .collect();
        let els = elements(bans.clone(), 0);
        for w in els.windows(2) {
            assert!(w[0].range.last < w[1].range.first, "disjoint and sorted");
        }
        for x in 0u128..260 {
            let want = bans
                .iter()
                .filter(|(iv, _)| iv.first <= x && x <= iv.last)
                .map(|(_, u)| *u)
                .max();
            let got = els
                .iter()
                .find(|e| e.range.first <= x && x <= e.range.last)
                .map(|e| e.expires);
            assert_eq!(got, want, "address {x}");
        }
    }

    #[test]
    fn diff_adds_removes_and_refreshes() {
        let mut applied = HashMap::new();
        applied.insert(iv("192.0.2.1"), 100);
        applied.insert(iv("192.0.2.2"), 100);
        applied.insert(iv("192.0.2.3"), 5); // lapsing by itself
        let desired = vec![
            Element {
                range: iv("192.0.2.1"),
                expires: 100,
            },
            Element {
                range: iv("192.0.2.2"),
                expires: 200,
            },
            Element {
                range: iv("192.0.2.4"),
                expires: 100,
            },
        ];
        let (rm, add) = diff(&applied, &desired, 0, 10);
        assert_eq!(rm, vec![iv("192.0.2.2")]);
        assert_eq!(
            add,
            vec![
                Element {
                    range: iv("192.0.2.2"),
                    expires: 200
                },
                Element {
                    range: iv("192.0.2.4"),
                    expires: 100
                }
            ]
        );
    }

    fn layout() -> Layout {
        Layout::own()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn reban_with_a_longer_expiry_is_a_delete_and_add() {
        let mut d = Desired::new(layout());
        assert!(d.insert(1, Origin::Local, &Ports::all(), &net("192.0.2.1/32"), 100));
        let p = d.changes(0, 2);
        assert_eq!(p.changes.len(), 1);
        assert!(p.changes[0].remove.is_empty());
        assert_eq!(p.changes[0].add[0].expires, 100);
        d.commit(p);
        assert!(!d.is_dirty());
        d.insert(2, Origin::Local, &Ports::all(), &net("192.0.2.1/32"), 500);
        let p = d.changes(10, 2);
        assert_eq!(p.changes[0].remove, vec![iv("192.0.2.1")]);
        assert_eq!(p.changes[0].add[0].expires, 500);
        d.commit(p);
        // Removing the longer decision shrinks back to the remaining one.
        d.remove(2, Origin::Local, &Ports::all(), &net("192.0.2.1/32"));
        let p = d.changes(20, 2);
        assert_eq!(p.changes[0].add[0].expires, 100);
        d.commit(p);
        d.remove(1, Origin::Local, &Ports::all(), &net("192.0.2.1/32"));
        let p = d.changes(30, 2);
        assert_eq!(p.changes[0].remove, vec![iv("192.0.2.1")]);
        assert!(p.changes[0].add.is_empty());
        d.commit(p);
        assert_eq!(d.hosts.len(), 0);
    }

    #[test]
    fn origins_and_kinds_go_to_their_own_sets() {
        let l = layout();
        let mut d = Desired::new(l.clone());
        d.insert(1, Origin::Local, &Ports::all(), &net("192.0.2.1/32"), 100);
        d.insert(
            2,
            Origin::Community,
            &Ports::all(),
            &net("192.0.2.1/32"),
            100,
        );
        d.insert(
            3,
            Origin::Lists,
            &Ports::all(),
            &net("198.51.100.0/24"),
            100,
        );
        d.insert(4, Origin::Manual, &Ports::all(), &net("2001:db8::/64"), 100);
        let p = d.changes(0, 2);
        let names: Vec<&str> = p
            .changes
            .iter()
            .map(|c| l.set(c.set).unwrap().name.as_str())
            .collect();
        assert_eq!(
            names,
            ["local_v4", "manual_v6_net", "community_v4", "lists_v4_net"]
        );
        // the status line's count agrees with the full walk while nothing has lapsed
        let s = d.sizes(0);
        assert_eq!(d.held(), s.v4 + s.v6);
        assert_eq!(d.held(), 4);
    }

    #[test]
    fn a_refresh_of_a_lapsing_element_waits_for_it() {
        let mut d = Desired::new(layout());
        d.insert(1, Origin::Local, &Ports::all(), &net("192.0.2.1/32"), 100);
        let p = d.changes(0, 2);
        d.commit(p);
        d.insert(2, Origin::Local, &Ports::all(), &net("192.0.2.1/32"), 500);
        // At 99 the kernel may expire the element any moment: no delete is risked.
        let p = d.changes(99, 2);
        assert!(p.is_empty());
        d.commit(p);
        assert!(d.is_dirty());
        let p = d.changes(101, 2);
        assert!(p.changes[0].remove.is_empty());
        assert_eq!(p.changes[0].add[0].expires, 500);
    }

    #[test]
    fn forget_and_audit_bring_back_what_the_kernel_lost() {
        let l = layout();
        let mut d = Desired::new(l.clone());
        d.insert(
            1,
            Origin::Local,
            &Ports::all(),
            &net("192.0.2.1/32"),
            1_000_000_000,
        );
        d.insert(
            2,
            Origin::Local,
            &Ports::all(),
            &net("192.0.2.2/32"),
            1_000_000_000,
        );
        d.insert(
            3,
            Origin::Lists,
            &Ports::all(),
            &net("198.51.100.0/24"),
            1_000_000_000,
        );
        let full = d.full(0);
        d.commit_full(0);
        let v4 = l.index_of("local_v4").unwrap();
        let v4n = l.index_of("lists_v4_net").unwrap();
        assert_eq!(full[v4 as usize].len(), 2);
        // Someone deleted one address (event).
        assert_eq!(d.forget(v4, &[iv("192.0.2.1")]), 1);
        let p = d.changes(0, 2);
        assert_eq!(p.changes[0].add.len(), 1);
        assert!(p.changes[0].remove.is_empty());
        d.commit(p);
        // Read-back: the kernel holds one address of ours, a stray, and no range.
        let k = |s: &str| KernelElement {
            range: iv(s),
            timeout_ms: None,
            expires_ms: Some(1_000_000),
        };
        assert_eq!(
            d.audit(v4, &[k("192.0.2.1"), k("203.0.113.9")], 0, 5_000_000),
            (1, 1)
        );
        assert_eq!(d.audit(v4n, &[], 0, 5_000_000), (1, 0));
        let p = d.changes(0, 2);
        let v4c = p.changes.iter().find(|c| c.set == v4).unwrap();
        assert_eq!(v4c.remove, vec![iv("203.0.113.9")]);
        assert_eq!(v4c.add.len(), 1);
        let v4nc = p.changes.iter().find(|c| c.set == v4n).unwrap();
        assert_eq!(v4nc.add.len(), 1);
        d.commit(p);
        assert!(!d.is_dirty());
    }

    #[test]
    fn set_only_layout_merges_origins_and_refuses_ranges_without_interval() {
        let def = |n: &str, f, interval| SetDef {
            name: n.into(),
            family: f,
            interval,
            origin: None,
            ports: Ports::all(),
        };
        let l = Layout::shared(Some(def("bl4", Family::V4, false)), None, None, None);
        let mut d = Desired::new(l);
        assert!(d.insert(1, Origin::Local, &Ports::all(), &net("192.0.2.1/32"), 100));
        assert!(d.insert(
            2,
            Origin::Community,
            &Ports::all(),
            &net("192.0.2.1/32"),
            200
        ));
        assert!(!d.insert(
            3,
            Origin::Lists,
            &Ports::all(),
            &net("198.51.100.0/24"),
            100
        ));
        assert!(!d.insert(
            4,
            Origin::Local,
            &Ports::all(),
            &net("2001:db8::1/128"),
            100
        ));
        assert_eq!(d.unroutable, 2);
        let p = d.changes(0, 2);
        assert_eq!(p.changes.len(), 1);
        assert_eq!(p.changes[0].add[0].expires, 200);
        // An interval set takes both and partitions them.
        let l = Layout::shared(Some(def("bl4", Family::V4, true)), None, None, None);
        let mut d = Desired::new(l);
        d.insert(
            1,
            Origin::Local,
            &Ports::all(),
            &net("198.51.100.9/32"),
            500,
        );
        d.insert(
            2,
            Origin::Lists,
            &Ports::all(),
            &net("198.51.100.0/24"),
            100,
        );
        let full = d.full(0);
        assert_eq!(full[0].len(), 3);
    }

    #[test]
    fn port_limited_bans_have_sets_of_their_own_and_unknown_lists_cover_every_port() {
        let ssh = Ports::new(vec![22]).unwrap();
        let web = Ports::new(vec![443, 80, 80]).unwrap();
        assert_eq!(web.to_list(), "80,443");
        let l = Layout::own_with_ports(&[web.clone(), ssh.clone(), Ports::all(), ssh.clone()]);
        assert_eq!(l.port_groups, vec![ssh.clone(), web.clone()]);
        assert_eq!(l.sets.len(), 3 * 20);
        let mut d = Desired::new(l.clone());
        assert!(d.insert(1, Origin::Local, &ssh, &net("192.0.2.1/32"), 100));
        assert!(d.insert(2, Origin::Local, &Ports::all(), &net("192.0.2.2/32"), 100));
        // A list the table has no sets for: banned on every port, not on none.
        let odd = Ports::new(vec![2222]).unwrap();
        assert!(!l.has_ports(&odd));
        assert!(d.insert(3, Origin::Local, &odd, &net("192.0.2.3/32"), 100));
        // ... and that is what the view is told, not the list asked for.
        assert!(d.effective_ports(Origin::Local, &odd).is_all());
        assert_eq!(d.effective_ports(Origin::Local, &ssh), &ssh);
        // An origin's default list applies to its decisions that name none.
        d.set_origin_ports(Origin::Community, web.clone());
        assert_eq!(d.effective_ports(Origin::Community, &Ports::all()), &web);
        assert!(d.effective_ports(Origin::Local, &Ports::all()).is_all());
        assert!(d.insert(
            4,
            Origin::Community,
            &Ports::all(),
            &net("192.0.2.4/32"),
            100
        ));
        let p = d.changes(0, 2);
        let name = |ix: SetIx| l.set(ix).unwrap().name.clone();
        let mut got: Vec<(String, String)> = p
            .changes
            .iter()
            .flat_map(|c| {
                c.add
                    .iter()
                    .map(move |e| (name(c.set), e.range.to_string()))
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("community_p2_v4".to_string(), "192.0.2.4".to_string()),
                ("local_p1_v4".to_string(), "192.0.2.1".to_string()),
                ("local_v4".to_string(), "192.0.2.2".to_string()),
                ("local_v4".to_string(), "192.0.2.3".to_string()),
            ]
        );
        assert_eq!(
            l.set(l.index_of("local_p1_v4").unwrap()).unwrap().ports,
            ssh
        );
        d.commit(p);
        // Removal finds the port-limited set again.
        d.remove(1, Origin::Local, &ssh, &net("192.0.2.1/32"));
        d.remove(4, Origin::Community, &Ports::all(), &net("192.0.2.4/32"));
        let p = d.changes(0, 2);
        let removed: Vec<String> = p.changes.iter().map(|c| name(c.set)).collect();
        assert_eq!(removed, vec!["local_p1_v4", "community_p2_v4"]);
    }

    #[test]
    fn port_lists_are_checked_and_read_back() {
        assert!(Ports::new(vec![0]).is_err());
        assert!(Ports::new((1..=40).collect()).is_err());
        assert_eq!(Ports::parse("").unwrap(), Ports::all());
        assert_eq!(Ports::parse("2222, 22").unwrap().to_list(), "22,2222");
        assert!(Ports::parse("22,ssh").is_err());
        assert_eq!(Ports::all().to_string(), "all ports");
        assert_eq!(Ports::new(vec![22]).unwrap().to_string(), "port 22");
    }
}
