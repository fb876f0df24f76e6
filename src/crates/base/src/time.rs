//! Time as the pipeline sees it: microseconds since the Unix epoch, taken from the log entry
//! itself, and durations as an administrator writes them (`4h`, `1h30m`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Microseconds since the Unix epoch (UTC).
pub type Micros = i64;

pub const SECOND: Micros = 1_000_000;

pub fn from_duration(d: Duration) -> Micros {
    d.as_micros().min(i64::MAX as u128) as Micros
}

pub fn to_duration(m: Micros) -> Duration {
    Duration::from_micros(m.max(0) as u64)
}

/// Why a duration does not read; the message quotes the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("'{text}' is not a duration: {} {HOW}", unit_word(.unit))]
    Unit { unit: char, text: String },
    #[error("'{text}' is not a duration: no number before '{unit}' {HOW}")]
    MissingNumber { unit: char, text: String },
    #[error("'{0}' is not a duration: the last number has no unit {HOW}")]
    TrailingNumber(String),
    #[error("'{0}' is too large: at most 100 years (36500d)")]
    TooLarge(String),
}

/// The longest duration anything takes: a ban, a window. Longer is a typo (`99999999999d`
/// used to overflow into the checks that follow and read "must be at least ban.duration").
pub const MAX_DURATION_SECS: u64 = 36_500 * 86_400;

/// How to write one, said by every duration error.
const HOW: &str =
    "(write a number and a unit, s, m, h, d or w, without spaces: 90s, 10m, 4h, 1h30m)";

fn unit_word(c: &char) -> String {
    match c {
        ' ' | '\t' => "spaces are not allowed".into(),
        c => format!("'{c}' is not a unit"),
    }
}

/// Parses durations such as `90s`, `10m`, `4h`, `7d`, `1h30m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let too_large = || DurationError::TooLarge(s.into());
    if let Ok(n) = s.parse::<u64>() {
        if n > MAX_DURATION_SECS {
            return Err(too_large());
        }
        return Ok(Duration::from_secs(n));
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 7 * 86400,
            _ => {
                return Err(DurationError::Unit {
                    unit: c,
                    text: s.into(),
                })
            }
        };
        let n: u64 = num.parse().map_err(|_| DurationError::MissingNumber {
            unit: c,
            text: s.into(),
        })?;
        total = total
            .checked_add(n.checked_mul(unit).ok_or_else(too_large)?)
            .ok_or_else(too_large)?;
        num.clear();
    }
    if !num.is_empty() {
        return Err(DurationError::TrailingNumber(s.into()));
    }
    if total > MAX_DURATION_SECS {
        return Err(too_large());
    }
    Ok(Duration::from_secs(total))
}

/// Formats a duration the way `parse_duration` reads it, largest units first (`4h`, `1h30m`).
pub fn format_duration(d: Duration) -> String {
    let mut s = d.as_secs();
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, name) in [(86400, 'd'), (3600, 'h'), (60, 'm'), (1, 's')] {
        if s >= unit {
            out.push_str(&format!("{}{}", s / unit, name));
            s %= unit;
        }
    }
    out
}

/// The same for a span of pipeline time (negative spans read as `0s`).
pub fn format_micros(m: Micros) -> String {
    format_duration(to_duration(m))
}

/// A duration written as text (`4h`) in a config file; parsed during deserialisation so a
/// bad one is reported at its line.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn secs(n: u64) -> Dur {
        Dur(Duration::from_secs(n))
    }

    pub fn micros(self) -> Micros {
        from_duration(self.0)
    }
}

impl fmt::Debug for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// RFC 3339 in UTC with second precision (`2026-11-28T02:33:01Z`), for output.
pub fn format_rfc3339(t: Micros) -> String {
    let secs = t.div_euclid(SECOND);
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for (text, secs) in [("4h", 14400), ("1h30m", 5400), ("90", 90), ("2d", 172800)] {
            let d = parse_duration(text).unwrap();
            assert_eq!(d.as_secs(), secs, "{text}");
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
        assert!(parse_duration("4x").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("5").is_ok());
        assert!(parse_duration("5m3").is_err());
        assert_eq!(
            parse_duration("4x").unwrap_err().to_string(),
            "'4x' is not a duration: 'x' is not a unit (write a number and a unit, s, m, h, d or w, without spaces: 90s, 10m, 4h, 1h30m)"
        );
        let e = parse_duration("4 hours").unwrap_err().to_string();
        assert!(
            e.starts_with("'4 hours' is not a duration: spaces are not allowed"),
            "{e}"
        );
        assert!(!e.contains("' '"), "{e}");
    }

    #[test]
    fn rfc3339() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339(1_795_833_181 * SECOND),
            "2026-11-28T02:33:01Z"
        );
        assert_eq!(format_rfc3339(951_782_400 * SECOND), "2000-02-29T00:00:00Z");
    }
}
