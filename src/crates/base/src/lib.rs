//! What every crowdwall crate shares and nothing else: the pipeline's time (microseconds
//! since the epoch, taken from the log entry), durations as people write them, networks as
//! the allowlist and the kernel sets see them, one durable atomic write, hex, random bytes
//! and SHA-256.
//!
//! The wall clock and the OS's random bytes sit behind the features `clock` and `random`:
//! the pure engine depends on this crate without them, so "the engine reads no clock" is
//! checked by the compiler (`cargo check -p crowdwall-engine`).

#[cfg(feature = "clock")]
pub mod clock;
pub mod fsutil;
pub mod hash;
#[cfg(feature = "logging")]
pub mod logging;
pub mod net;
pub mod section;
pub mod time;

pub use net::{canonical_ip, parse_ip, parse_net, value_text, Net, NetError};
pub use section::{Section, SectionError};
pub use time::{Dur, DurationError, Micros, SECOND};
