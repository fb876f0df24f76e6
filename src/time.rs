//! Time as the pipeline sees it: microseconds since the Unix epoch, taken from the log entry
//! itself. Only the daemon's edges read the wall clock, so replays are deterministic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (UTC).
pub type Micros = i64;

pub const SECOND: Micros = 1_000_000;

/// The wall clock, for the daemon's edges only (never called by parse/detect/decide).
pub fn now() -> Micros {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as Micros)
        .unwrap_or(0)
}

pub fn from_duration(d: Duration) -> Micros {
    d.as_micros().min(i64::MAX as u128) as Micros
}

pub fn to_duration(m: Micros) -> Duration {
    Duration::from_micros(m.max(0) as u64)
}

/// Parses durations such as `90s`, `10m`, `4h`, `7d`, `1h30m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(n) = s.parse::<u64>() {
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
                return Err(format!(
                    "bad unit '{c}' in duration '{s}' (use s, m, h, d, w)"
                ))
            }
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("missing number before '{c}' in duration '{s}'"))?;
        total = total
            .checked_add(n.checked_mul(unit).ok_or("duration too large")?)
            .ok_or("duration too large")?;
        num.clear();
    }
    if !num.is_empty() {
        return Err(format!("trailing number without unit in duration '{s}'"));
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
    }
}
