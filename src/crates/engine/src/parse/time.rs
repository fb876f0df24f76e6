//! Timestamps written inside log lines that are not syslog (web servers' own files), for
//! replaying such files: pure, no time zone database (a time without zone is taken as UTC).

use crate::text::days_from_civil;
use crate::time::Micros;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn month(s: &str) -> Option<u32> {
    MONTHS.iter().position(|m| *m == s).map(|i| i as u32 + 1)
}

fn num(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn micros(y: i64, mo: u32, d: i64, h: i64, mi: i64, s: i64, off_s: i64) -> Option<Micros> {
    if !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d as u32);
    Some((days * 86_400 + h * 3600 + mi * 60 + s - off_s) * 1_000_000)
}

/// The time a line carries, in the formats of the web servers' files:
/// access logs `[10/Oct/2000:13:55:36 -0700]`, nginx errors `2000/10/10 13:55:36`, Apache
/// errors `[Tue Oct 10 13:55:36(.123456) 2000]`. `None` when the line has none of them.
pub fn line_time(line: &str) -> Option<Micros> {
    let b = line.as_bytes();
    // nginx error log
    if b.len() >= 19 && b[4] == b'/' && b[7] == b'/' && b[10] == b' ' {
        let y = num(&line[0..4])?;
        let mo = num(&line[5..7])? as u32;
        if !(1..=12).contains(&mo) {
            return None;
        }
        return micros(
            y,
            mo,
            num(&line[8..10])?,
            num(&line[11..13])?,
            num(&line[14..16])?,
            num(&line[17..19])?,
            0,
        );
    }
    // Apache error log
    if line.starts_with('[') && b.len() > 25 && b[4] == b' ' && b[8] == b' ' {
        let inner = &line[1..line.find(']')?];
        let f: Vec<&str> = inner.split(' ').filter(|s| !s.is_empty()).collect();
        if f.len() == 5 {
            let mo = month(f[1])?;
            let hms: Vec<&str> = f[3].split(['.', ':']).collect();
            if hms.len() < 3 {
                return None;
            }
            return micros(
                num(f[4])?,
                mo,
                num(f[2])?,
                num(hms[0])?,
                num(hms[1])?,
                num(hms[2])?,
                0,
            );
        }
        return None;
    }
    // access log: the first `[dd/Mon/yyyy:hh:mm:ss +zzzz]`
    let start = line.find(" [")? + 2;
    let rest = &line[start..];
    let end = rest.find(']')?;
    let ts = &rest[..end];
    if ts.len() < 20 || ts.as_bytes()[2] != b'/' {
        return None;
    }
    let mo = month(&ts[3..6])?;
    let off = match ts.get(20..) {
        Some(z) if z.len() == 6 && (z.starts_with(" +") || z.starts_with(" -")) => {
            let v = num(&z[2..])?;
            let s = (v / 100) * 3600 + (v % 100) * 60;
            if z.starts_with(" -") {
                -s
            } else {
                s
            }
        }
        _ => 0,
    };
    micros(
        num(&ts[7..11])?,
        mo,
        num(&ts[0..2])?,
        num(&ts[12..14])?,
        num(&ts[15..17])?,
        num(&ts[18..20])?,
        off,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let a = line_time(r#"1.2.3.4 - - [20/Jan/2015:19:53:28 +0100] "GET / HTTP/1.1" 200 1"#);
        let b = line_time("2015/01/20 18:53:28 [error] 1#0: x");
        let c = line_time("[Tue Jan 20 18:53:28.123 2015] [core:error] x");
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(line_time("nothing here"), None);
    }
}
