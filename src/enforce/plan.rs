//! Decisions to disjoint kernel elements, and the delta between two plans. Pure.
//!
//! Interval sets refuse overlapping elements (EEXIST aborts the whole transaction), yet bans
//! overlap: a /24 and an address inside it, each with its own expiry. The plan splits the
//! covered space into disjoint pieces, each expiring with the longest ban that covers it, and
//! joins adjacent pieces that expire together.

use std::collections::{BinaryHeap, HashMap};

use super::{Element, Family, Interval};
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::Interval;

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
}
