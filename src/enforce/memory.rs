//! An in-memory [`Firewall`] for pure tests of the daemon's logic. It refuses what the kernel
//! refuses (overlapping adds, deletes of absent elements) and applies nothing of a refused
//! call, so tests see the same all-or-nothing behaviour.

use std::collections::HashMap;

use super::{Element, EnforceError, Firewall, Interval, KernelElement};
use crate::time::{now, Micros};

#[derive(Debug, Default)]
pub struct MemoryFirewall {
    pub present: bool,
    pub elements: HashMap<Interval, Micros>,
    pub transactions: u64,
    /// Refuse this many of the next `load`/`apply` calls (failure injection).
    pub fail_next: u32,
}

impl MemoryFirewall {
    pub fn new() -> Self {
        Self::default()
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
        set: &mut HashMap<Interval, Micros>,
        add: &[Element],
        at: Micros,
    ) -> Result<(), EnforceError> {
        for e in add.iter().filter(|e| e.expires > at) {
            if set.keys().any(|k| {
                k.family == e.range.family && k.first <= e.range.last && e.range.first <= k.last
            }) {
                return Err(Self::refuse(format!("add {}", e.range), libc::EEXIST));
            }
            set.insert(e.range, e.expires);
        }
        Ok(())
    }
}

impl MemoryFirewall {
    fn injected_failure(&mut self) -> Result<(), EnforceError> {
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return Err(Self::refuse("injected failure".into(), libc::EBUSY));
        }
        Ok(())
    }
}

impl Firewall for MemoryFirewall {
    fn load(&mut self, elements: &[Element]) -> Result<(), EnforceError> {
        self.injected_failure()?;
        let mut set = HashMap::new();
        Self::add_all(&mut set, elements, now())?;
        self.elements = set;
        self.present = true;
        self.transactions += 1;
        Ok(())
    }

    fn apply(&mut self, remove: &[Interval], add: &[Element]) -> Result<(), EnforceError> {
        self.injected_failure()?;
        if !self.present {
            return Err(Self::refuse("apply: no table".into(), libc::ENOENT));
        }
        let at = now();
        let mut set = self.elements.clone();
        set.retain(|_, exp| *exp > at);
        for r in remove {
            if set.remove(r).is_none() {
                return Err(Self::refuse(format!("delete {r}"), libc::ENOENT));
            }
        }
        Self::add_all(&mut set, add, at)?;
        self.elements = set;
        self.transactions += 1;
        Ok(())
    }

    fn is_intact(&mut self) -> Result<bool, EnforceError> {
        Ok(self.present)
    }

    fn list(&mut self) -> Result<Vec<KernelElement>, EnforceError> {
        let at = now();
        Ok(self
            .elements
            .iter()
            .filter(|(_, &e)| e > at)
            .map(|(r, &e)| KernelElement {
                range: *r,
                timeout_ms: None,
                expires_ms: Some(((e - at) / 1000) as u64),
            })
            .collect())
    }

    fn remove(&mut self) -> Result<(), EnforceError> {
        self.present = false;
        self.elements.clear();
        Ok(())
    }
}
