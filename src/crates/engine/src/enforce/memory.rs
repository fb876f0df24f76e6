//! An in-memory [`Firewall`] for pure tests of the daemon's logic. It refuses what the kernel
//! refuses (overlapping adds in an interval set, deletes of absent elements), ignores a re-add
//! of an existing address as Debian 12's kernel does (no timeout refresh), and applies nothing
//! of a refused call, so tests see the same all-or-nothing behaviour.

use std::collections::HashMap;

use super::{
    DropCounter, Element, EnforceError, Firewall, Interval, KernelElement, Layout, SetChange, SetIx,
};
use crate::time::Micros;

// The kernel's errno values (Linux), as the netlink backend reports them: the engine links
// no libc.
const ENOENT: i32 = 2;
const EBUSY: i32 = 16;
const EEXIST: i32 = 17;
const EINVAL: i32 = 22;

/// A clock that stands still at the epoch, the default: element expiries are then only
/// compared with each other. Tests that need expiry or read-backs give the real clock or a
/// fake one ([`MemoryFirewall::with_clock`]).
fn epoch() -> Micros {
    0
}

#[derive(Debug)]
pub struct MemoryFirewall {
    layout: Layout,
    pub present: bool,
    /// (set, range) -> expiry.
    pub elements: HashMap<(SetIx, Interval), Micros>,
    pub transactions: u64,
    /// Refuse this many of the next `load`/`apply` calls (failure injection).
    pub fail_next: u32,
    /// "Now", for expiry (the engine reads no clock of its own).
    pub clock: fn() -> Micros,
}

impl Default for MemoryFirewall {
    fn default() -> Self {
        MemoryFirewall {
            layout: Layout::own(),
            present: false,
            elements: HashMap::new(),
            transactions: 0,
            fail_next: 0,
            clock: epoch,
        }
    }
}

impl MemoryFirewall {
    pub fn new() -> Self {
        Self::default()
    }

    /// With the layout of set-only mode, say.
    pub fn with_layout(layout: Layout) -> Self {
        MemoryFirewall {
            layout,
            ..Self::default()
        }
    }

    /// Expiry measured against `clock` (the daemon's tests pass the wall clock).
    pub fn with_clock(mut self, clock: fn() -> Micros) -> Self {
        self.clock = clock;
        self
    }

    /// The ranges held, whatever the set.
    pub fn ranges(&self) -> Vec<Interval> {
        let mut v: Vec<Interval> = self.elements.keys().map(|(_, r)| *r).collect();
        v.sort();
        v
    }

    fn refuse(what: String, errno: i32) -> EnforceError {
        EnforceError::Kernel {
            what,
            errno,
            errno_text: std::io::Error::from_raw_os_error(errno).to_string(),
            message: None,
        }
    }

    fn add_all(
        &self,
        set: &mut HashMap<(SetIx, Interval), Micros>,
        ix: SetIx,
        add: &[Element],
        at: Micros,
    ) -> Result<(), EnforceError> {
        let interval = self.layout.set(ix).is_some_and(|d| d.interval);
        for e in add.iter().filter(|e| e.expires > at) {
            if !interval && e.range.first != e.range.last {
                return Err(Self::refuse(
                    format!("add range {} to a hash set", e.range),
                    EINVAL,
                ));
            }
            if set.contains_key(&(ix, e.range)) {
                // Identical element, no NLM_F_EXCL: accepted, timeout untouched.
                continue;
            }
            if interval
                && set.keys().any(|(s, k)| {
                    *s == ix
                        && k.family == e.range.family
                        && k.first <= e.range.last
                        && e.range.first <= k.last
                })
            {
                return Err(Self::refuse(format!("add {}", e.range), EEXIST));
            }
            set.insert((ix, e.range), e.expires);
        }
        Ok(())
    }

    fn injected_failure(&mut self) -> Result<(), EnforceError> {
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return Err(Self::refuse("injected failure".into(), EBUSY));
        }
        Ok(())
    }
}

impl Firewall for MemoryFirewall {
    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn load(&mut self, sets: &[Vec<Element>]) -> Result<(), EnforceError> {
        self.injected_failure()?;
        let mut all = HashMap::new();
        let at = (self.clock)();
        for (ix, elems) in sets.iter().enumerate() {
            self.add_all(&mut all, ix as SetIx, elems, at)?;
        }
        self.elements = all;
        self.present = true;
        self.transactions += 1;
        Ok(())
    }

    fn apply(&mut self, changes: &[SetChange]) -> Result<(), EnforceError> {
        self.injected_failure()?;
        if !self.present {
            return Err(Self::refuse("apply: no table".into(), ENOENT));
        }
        let at = (self.clock)();
        let mut all = self.elements.clone();
        all.retain(|_, exp| *exp > at);
        for c in changes {
            for r in &c.remove {
                if all.remove(&(c.set, *r)).is_none() {
                    return Err(Self::refuse(format!("delete {r}"), ENOENT));
                }
            }
        }
        for c in changes {
            self.add_all(&mut all, c.set, &c.add, at)?;
        }
        self.elements = all;
        self.transactions += 1;
        Ok(())
    }

    fn is_intact(&mut self) -> Result<bool, EnforceError> {
        Ok(self.present)
    }

    fn list(&mut self, set: SetIx) -> Result<Vec<KernelElement>, EnforceError> {
        let at = (self.clock)();
        Ok(self
            .elements
            .iter()
            .filter(|((s, _), &e)| *s == set && e > at)
            .map(|((_, r), &e)| KernelElement {
                range: *r,
                timeout_ms: None,
                expires_ms: Some(((e - at) / 1000) as u64),
            })
            .collect())
    }

    fn counters(&mut self) -> Result<Vec<DropCounter>, EnforceError> {
        Ok(Vec::new())
    }

    fn remove(&mut self) -> Result<(), EnforceError> {
        self.present = false;
        self.elements.clear();
        Ok(())
    }
}
