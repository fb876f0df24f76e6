//! sshd parser. OWNER: parser helper.

use super::{Event, Parsed};
use crate::source::LogEntry;
use crate::time::Micros;

pub struct SshdParser {}

impl Default for SshdParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SshdParser {
    pub fn new() -> Self {
        SshdParser {}
    }

    pub fn parse(&mut self, _entry: &LogEntry, _out: &mut Vec<Event>) -> Parsed {
        Parsed::Unmatched
    }

    pub fn expire(&mut self, _now: Micros) {}
}
