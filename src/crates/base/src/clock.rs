//! The wall clock, for the edges only (sources, store, daemon loop, CLI). The engine takes
//! every time as an argument, so replays are deterministic.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::time::Micros;

/// Microseconds since the Unix epoch (UTC) now; 0 if the clock is before 1970.
pub fn now() -> Micros {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as Micros)
        .unwrap_or(0)
}
