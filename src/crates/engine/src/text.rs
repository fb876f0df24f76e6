//! Text inputs for replay: syslog lines and `journalctl -o json` lines.
//!
//! Everything here is pure: no clock, no time zone database. Two syslog header forms are read:
//!
//! - RFC 3339 / ISO 8601, Debian 12's rsyslog default:
//!   `2026-11-28T02:33:01.123456+01:00 host tag[pid]: msg` (fraction optional, any length,
//!   truncated to microseconds; offset `Z` or `±hh:mm`; converted to UTC).
//! - RFC 3164 (BSD): `Jan  2 00:00:00 host tag[pid]: msg`. It has no year and no zone. The
//!   time is taken as **UTC** (there is no zone database here; replay a host that logged in
//!   local time with a RFC 3339 format instead). The year comes from [`SyslogContext`]: the
//!   year passed in, else the year of the first RFC 3339 line seen (each RFC 3339 line
//!   updates it); when the month goes backwards by more than six months (Dec -> Jan) the year
//!   is incremented.
//!
//! - RFC 5424 (rsyslog's `RSYSLOG_SyslogProtocol23Format`, syslog-ng's `syslog()` driver):
//!   `<38>1 2019-07-08T17:40:16.954167-04:00 host sshd 57915 - [sd@1 a="b"] msg`. APP-NAME is the
//!   tag, PROCID the pid (`-`: none); MSGID and STRUCTURED-DATA are skipped (quoted values may
//!   hold `]` and escaped quotes); a UTF-8 BOM before the message is dropped.
//!
//! The tag is `tag[pid]:` or `tag:`; the tag may contain `/`, `-`, `.` (`postfix/smtpd[5473]:`,
//! `sshd-session[12]:`). Without `[pid]` the entry's pid is `None`.

use std::io::BufRead;

use serde::Deserialize;

use crate::time::Micros;
use crate::LogEntry;

/// Lines longer than this are reported as errors and skipped, without being held in memory.
pub const MAX_LINE: usize = 64 * 1024;

/// Why a line could not be read. Messages name what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("no syslog header")]
    NoHeader,
    #[error("bad month '{0}'")]
    BadMonth(String),
    #[error("bad timestamp '{0}': {1}")]
    BadTimestamp(String, &'static str),
    #[error("no host after the timestamp")]
    NoHost,
    #[error("no 'tag:' or 'tag[pid]:' after the host")]
    NoTag,
    #[error("bad pid '{0}'")]
    BadPid(String),
    #[error(
        "year unknown for a RFC 3164 timestamp: pass a year (SyslogContext::with_year) or \
         start the file with a RFC 3339 line"
    )]
    YearUnknown,
    #[error("bad JSON: {0}")]
    Json(String),
    #[error("missing field {0}")]
    MissingField(&'static str),
    #[error("bad field {0}: {1}")]
    BadField(&'static str, String),
    #[error("bad RFC 5424 header: {0}")]
    Rfc5424(&'static str),
    #[error("line longer than {0} bytes, skipped")]
    TooLong(usize),
    #[error("read error: {0}")]
    Io(String),
    /// The same errors with the line number (1-based), as [`TextReader`] reports them.
    #[error("line {line}: {error}")]
    AtLine { line: u64, error: Box<TextError> },
}

/// What a RFC 3164 line needs but does not carry: the year. See the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyslogContext {
    year: Option<i32>,
    last_month: Option<u32>,
}

impl SyslogContext {
    /// No year yet: RFC 3164 lines fail with [`TextError::YearUnknown`] until a RFC 3339 line
    /// has been seen.
    pub fn new() -> Self {
        Self::default()
    }

    /// RFC 3164 lines start in `year` (e.g. the file's modification year, or the year of
    /// `crate::time::now()` chosen by the caller: this module never reads the clock).
    pub fn with_year(year: i32) -> Self {
        SyslogContext {
            year: Some(year),
            last_month: None,
        }
    }

    /// The year the next RFC 3164 line is assumed to be in.
    pub fn year(&self) -> Option<i32> {
        self.year
    }

    fn saw_month(&mut self, year: i32, month: u32) {
        self.year = Some(year);
        self.last_month = Some(month);
    }

    /// The year of a RFC 3164 line in `month`, rolling over when the month goes back a lot.
    fn year_for(&mut self, month: u32) -> Result<i32, TextError> {
        let mut year = self.year.ok_or(TextError::YearUnknown)?;
        if let Some(last) = self.last_month {
            // Small steps back are out-of-order lines; Dec -> Jan is a new year.
            if month < last && last - month > 6 {
                year += 1;
            }
        }
        self.saw_month(year, month);
        Ok(year)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400; // [0, 399]
    let m = i64::from(month);
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The (UTC) year of a timestamp, e.g. to build a [`SyslogContext`] from the clock.
pub fn year_of(t: Micros) -> i32 {
    // civil_from_days, year only.
    let z = t.div_euclid(86_400 * 1_000_000) + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(month <= 2);
    y as i32
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parses one syslog line (RFC 3164 or RFC 3339 header), see the module documentation.
pub fn parse_syslog_line(line: &str, ctx: &mut SyslogContext) -> Result<LogEntry, TextError> {
    let line = line.trim_end_matches(['\n', '\r']);
    let had_pri = line.starts_with('<');
    let line = strip_pri(line);
    if had_pri {
        if let Some(rest) = line.strip_prefix("1 ") {
            return parse_rfc5424(rest, ctx);
        }
    }
    let first = line
        .as_bytes()
        .first()
        .copied()
        .ok_or(TextError::NoHeader)?;
    let (time, rest) = if first.is_ascii_digit() {
        parse_rfc3339_header(line, ctx)?
    } else if first.is_ascii_alphabetic() {
        parse_rfc3164_header(line, ctx)?
    } else {
        return Err(TextError::NoHeader);
    };
    // Host: one token.
    let rest = rest.trim_start_matches(' ');
    let host_end = rest.find([' ', '\t']).ok_or(TextError::NoHost)?;
    if host_end == 0 {
        return Err(TextError::NoHost);
    }
    let rest = rest[host_end..].trim_start_matches([' ', '\t']);
    let (identifier, pid, message) = parse_tag(rest)?;
    Ok(LogEntry {
        time,
        identifier: identifier.to_string(),
        pid,
        message: message.to_string(),
    })
}

/// After `<PRI>1 `: `TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]`.
fn parse_rfc5424(line: &str, ctx: &mut SyslogContext) -> Result<LogEntry, TextError> {
    let (time, rest) = parse_rfc3339_header(line, ctx)?;
    let mut fields = rest
        .strip_prefix(' ')
        .ok_or(TextError::NoHost)?
        .splitn(5, ' ');
    let mut next = |what| {
        fields
            .next()
            .filter(|f| !f.is_empty())
            .ok_or(TextError::Rfc5424(what))
    };
    let _host = next("no HOSTNAME")?;
    let app = next("no APP-NAME")?;
    let procid = next("no PROCID")?;
    let _msgid = next("no MSGID")?;
    let sd_and_msg = next("no STRUCTURED-DATA")?;
    let message = skip_structured_data(sd_and_msg)?;
    let message = message.strip_prefix('\u{feff}').unwrap_or(message);
    let pid = match procid {
        "-" => None,
        p => Some(
            p.parse::<u32>()
                .map_err(|_| TextError::BadPid(p.chars().take(32).collect()))?,
        ),
    };
    if app == "-" {
        return Err(TextError::Rfc5424("no APP-NAME"));
    }
    Ok(LogEntry {
        time,
        identifier: app.to_string(),
        pid,
        message: message.to_string(),
    })
}

/// `-` or `[id k="v" ...]...`, then an optional space and the message. Inside quoted values
/// `\"`, `\\` and `\]` are escapes and `]` does not end the element.
fn skip_structured_data(s: &str) -> Result<&str, TextError> {
    let b = s.as_bytes();
    let end = if b.first() == Some(&b'-') {
        1
    } else {
        let mut i = 0;
        while b.get(i) == Some(&b'[') {
            let mut quoted = false;
            i += 1;
            loop {
                match b.get(i) {
                    None => return Err(TextError::Rfc5424("unterminated STRUCTURED-DATA")),
                    Some(b'\\') if quoted => i += 2,
                    Some(b'"') => {
                        quoted = !quoted;
                        i += 1;
                    }
                    Some(b']') if !quoted => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
        }
        if i == 0 {
            return Err(TextError::Rfc5424("STRUCTURED-DATA is neither - nor [...]"));
        }
        i
    };
    let rest = s.get(end..).unwrap_or("");
    match rest.strip_prefix(' ') {
        Some(msg) => Ok(msg),
        None if rest.is_empty() => Ok(rest),
        None => Err(TextError::Rfc5424("no space after STRUCTURED-DATA")),
    }
}

/// Drops a `<PRI>` prefix as some forwarders write it.
fn strip_pri(line: &str) -> &str {
    if let Some(rest) = line.strip_prefix('<') {
        if let Some(end) = rest.find('>') {
            if end <= 3 && rest[..end].bytes().all(|b| b.is_ascii_digit()) {
                return &rest[end + 1..];
            }
        }
    }
    line
}

/// `tag[pid]: msg` or `tag: msg` -> (tag, pid, msg).
fn parse_tag(s: &str) -> Result<(&str, Option<u32>, &str), TextError> {
    let end = s
        .find(|c: char| c == '[' || c == ':' || c.is_whitespace())
        .ok_or(TextError::NoTag)?;
    if end == 0 {
        return Err(TextError::NoTag);
    }
    let tag = &s[..end];
    let after = &s[end..];
    let (pid, after) = if let Some(p) = after.strip_prefix('[') {
        let close = p.find(']').ok_or(TextError::NoTag)?;
        let digits = &p[..close];
        let pid = digits
            .parse::<u32>()
            .map_err(|_| TextError::BadPid(digits.chars().take(32).collect()))?;
        (Some(pid), &p[close + 1..])
    } else {
        (None, after)
    };
    let msg = after.strip_prefix(':').ok_or(TextError::NoTag)?;
    let msg = msg.strip_prefix(' ').unwrap_or(msg);
    Ok((tag, pid, msg))
}

fn bad_ts(s: &str, why: &'static str) -> TextError {
    TextError::BadTimestamp(s.chars().take(40).collect(), why)
}

fn two_digits(b: &[u8], at: usize) -> Option<u32> {
    let hi = *b.get(at)?;
    let lo = *b.get(at + 1)?;
    if hi.is_ascii_digit() && lo.is_ascii_digit() {
        Some(u32::from(hi - b'0') * 10 + u32::from(lo - b'0'))
    } else {
        None
    }
}

fn to_micros(
    ts: &str,
    year: i64,
    month: u32,
    day: u32,
    h: u32,
    mi: u32,
    s: u32,
) -> Result<Micros, TextError> {
    if !(1..=12).contains(&month) {
        return Err(bad_ts(ts, "month out of range"));
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(bad_ts(ts, "no such day in that month"));
    }
    // 60 is a leap second; it is folded into the next minute.
    if h > 23 || mi > 59 || s > 60 {
        return Err(bad_ts(ts, "time of day out of range"));
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s);
    Ok(secs * 1_000_000)
}

/// `2026-11-28T02:33:01.123456+01:00 ` -> (UTC micros, rest after the timestamp).
fn parse_rfc3339_header<'a>(
    line: &'a str,
    ctx: &mut SyslogContext,
) -> Result<(Micros, &'a str), TextError> {
    let end = line.find(' ').unwrap_or(line.len());
    let ts = &line[..end];
    let b = ts.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't') {
        return Err(bad_ts(ts, "expected YYYY-MM-DDThh:mm:ss"));
    }
    if b[13] != b':' || b[16] != b':' {
        return Err(bad_ts(ts, "expected YYYY-MM-DDThh:mm:ss"));
    }
    let year: i64 = ts[..4].parse().map_err(|_| bad_ts(ts, "bad year"))?;
    let field = |at| two_digits(b, at).ok_or_else(|| bad_ts(ts, "expected two digits"));
    let (month, day, h, mi, s) = (field(5)?, field(8)?, field(11)?, field(14)?, field(17)?);
    let mut i = 19;
    let mut frac: i64 = 0;
    if b.get(i) == Some(&b'.') || b.get(i) == Some(&b',') {
        i += 1;
        let start = i;
        let mut scale = 100_000;
        while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            frac += i64::from(d - b'0') * scale;
            scale /= 10; // digits past microseconds add 0: truncated
            i += 1;
        }
        if i == start {
            return Err(bad_ts(ts, "empty fraction"));
        }
    }
    let offset_secs: i64 = match b.get(i) {
        Some(b'Z') | Some(b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = two_digits(b, i + 1).ok_or_else(|| bad_ts(ts, "bad offset"))?;
            let om = if b.get(i + 3) == Some(&b':') {
                i += 6;
                two_digits(b, i - 2)
            } else {
                i += 5;
                two_digits(b, i - 2)
            }
            .ok_or_else(|| bad_ts(ts, "bad offset"))?;
            if oh > 23 || om > 59 {
                return Err(bad_ts(ts, "bad offset"));
            }
            let o = i64::from(oh * 3600 + om * 60);
            if sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return Err(bad_ts(ts, "missing offset (Z or +hh:mm)")),
    };
    if i != b.len() {
        return Err(bad_ts(ts, "trailing characters"));
    }
    let local = to_micros(ts, year, month, day, h, mi, s)?;
    // The written date is the one RFC 3164 lines of the same host would show: keep its year.
    ctx.saw_month(year as i32, month);
    Ok((local - offset_secs * 1_000_000 + frac, &line[end..]))
}

/// `Jan  2 00:00:00 ` -> (UTC micros, rest after the timestamp).
fn parse_rfc3164_header<'a>(
    line: &'a str,
    ctx: &mut SyslogContext,
) -> Result<(Micros, &'a str), TextError> {
    // "Mmm dd": a word then a day number. A word that is not a month name but is followed by
    // a number is a bad month ("Foo  2", "January 2"); anything else has no header at all.
    let word_end = line.find(' ').ok_or(TextError::NoHeader)?;
    let word = &line[..word_end];
    let rest = &line[word_end..];
    if !rest
        .trim_start_matches(' ')
        .starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(TextError::NoHeader);
    }
    let month = MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(word))
        .map(|i| i as u32 + 1)
        .ok_or_else(|| TextError::BadMonth(word.chars().take(20).collect()))?;
    let rest = rest.trim_start_matches(' ');
    let day_end = rest.find(' ').ok_or(TextError::NoHeader)?;
    let day_s = &rest[..day_end];
    let day: u32 = day_s
        .parse()
        .map_err(|_| bad_ts(day_s, "bad day of month"))?;
    let rest = &rest[day_end + 1..];
    let tod = rest.get(..8).ok_or(TextError::NoHeader)?;
    let b = tod.as_bytes();
    if b[2] != b':' || b[5] != b':' {
        return Err(bad_ts(tod, "expected hh:mm:ss"));
    }
    let field = |at| two_digits(b, at).ok_or_else(|| bad_ts(tod, "expected hh:mm:ss"));
    let (h, mi, s) = (field(0)?, field(3)?, field(6)?);
    let rest = &rest[8..];
    let header = &line[..line.len() - rest.len()];
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return Err(bad_ts(tod, "expected hh:mm:ss"));
    }
    // Validate before touching the year state, so a bad line does not roll the year over.
    if h > 23 || mi > 59 || s > 60 || day == 0 || day > 31 {
        return Err(bad_ts(header, "out of range"));
    }
    let year = ctx.year_for(month)?;
    let t = to_micros(
        &line[..line.len().min(15)],
        i64::from(year),
        month,
        day,
        h,
        mi,
        s,
    )?;
    Ok((t, rest))
}

/// The fields of a `journalctl -o json` line that are used; the others are skipped unparsed.
#[derive(Deserialize)]
struct JsonEntry {
    #[serde(rename = "__REALTIME_TIMESTAMP")]
    realtime: Option<serde_json::Value>,
    #[serde(rename = "SYSLOG_IDENTIFIER")]
    identifier: Option<serde_json::Value>,
    #[serde(rename = "_COMM")]
    comm: Option<serde_json::Value>,
    #[serde(rename = "_PID")]
    pid: Option<serde_json::Value>,
    #[serde(rename = "SYSLOG_PID")]
    syslog_pid: Option<serde_json::Value>,
    // `null` (a field journalctl could not read) must differ from absent.
    #[serde(rename = "MESSAGE", default, deserialize_with = "present")]
    message: Option<serde_json::Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// A journal field value as journalctl writes it: a string; an array of byte values when it is
/// not valid UTF-8 (converted lossily); an array of those when the field has several values
/// (the first is taken); `null` when it was too large to be read.
fn json_field_text(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(items) => {
            if items.iter().all(Value::is_number) {
                let bytes: Option<Vec<u8>> = items
                    .iter()
                    .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect();
                bytes.map(|b| String::from_utf8_lossy(&b).into_owned())
            } else {
                items.first().and_then(json_field_text)
            }
        }
        _ => None,
    }
}

/// Parses one `journalctl -o json` line.
pub fn parse_journal_json(line: &str) -> Result<LogEntry, TextError> {
    let e: JsonEntry = serde_json::from_str(line).map_err(|e| TextError::Json(e.to_string()))?;
    let rt = e
        .realtime
        .as_ref()
        .ok_or(TextError::MissingField("__REALTIME_TIMESTAMP"))?;
    let rt_text = json_field_text(rt).unwrap_or_default();
    let time: Micros = rt_text.parse().map_err(|_| {
        TextError::BadField(
            "__REALTIME_TIMESTAMP",
            format!(
                "'{}' is not microseconds",
                rt_text.chars().take(40).collect::<String>()
            ),
        )
    })?;
    let message = match &e.message {
        None => return Err(TextError::MissingField("MESSAGE")),
        Some(serde_json::Value::Null) => {
            return Err(TextError::BadField(
                "MESSAGE",
                "null (journalctl could not read it; too large?)".into(),
            ))
        }
        Some(v) => json_field_text(v).ok_or_else(|| {
            TextError::BadField("MESSAGE", "neither text nor an array of bytes".into())
        })?,
    };
    let identifier = e
        .identifier
        .as_ref()
        .or(e.comm.as_ref())
        .and_then(json_field_text)
        .unwrap_or_default();
    // As the journal source does: _PID (set by journald), else SYSLOG_PID (from the
    // client's syslog header, may be anything); a value that is not a number is no pid.
    let parse_pid = |v: &Option<serde_json::Value>| {
        v.as_ref()
            .and_then(json_field_text)
            .and_then(|t| t.trim().parse::<u32>().ok())
    };
    let pid = parse_pid(&e.pid).or_else(|| parse_pid(&e.syslog_pid));
    Ok(LogEntry {
        time,
        identifier,
        pid,
        message,
    })
}

/// Parses one line of either format: `{` starts a JSON line, anything else is syslog.
pub fn parse_line(line: &str, ctx: &mut SyslogContext) -> Result<LogEntry, TextError> {
    if line.trim_start().starts_with('{') {
        parse_journal_json(line)
    } else {
        parse_syslog_line(line, ctx)
    }
}

/// Iterates the entries of a text file (syslog and/or `journalctl -o json` lines, detected per
/// line). Blank lines are skipped; errors carry the line number ([`TextError::AtLine`]) and do
/// not stop the iteration, except a read error, which ends it. Invalid UTF-8 is replaced
/// (lossy); a line longer than [`MAX_LINE`] is reported and skipped while holding at most
/// [`MAX_LINE`] bytes of it.
pub struct TextReader<R: BufRead> {
    reader: R,
    ctx: SyslogContext,
    line_no: u64,
    buf: Vec<u8>,
    done: bool,
}

impl<R: BufRead> TextReader<R> {
    /// RFC 3164 lines need a year: see [`SyslogContext`]; use [`Self::with_context`] to give
    /// one.
    pub fn new(reader: R) -> Self {
        Self::with_context(reader, SyslogContext::new())
    }

    pub fn with_context(reader: R, ctx: SyslogContext) -> Self {
        TextReader {
            reader,
            ctx,
            line_no: 0,
            buf: Vec::new(),
            done: false,
        }
    }

    /// Line number of the last line returned (1-based).
    pub fn line_number(&self) -> u64 {
        self.line_no
    }

    pub fn context(&self) -> &SyslogContext {
        &self.ctx
    }

    /// Reads the next line into `self.buf`, at most `MAX_LINE` bytes of it. Returns
    /// `Ok(None)` at end of input, `Ok(Some(too_long))` otherwise.
    fn read_line(&mut self) -> std::io::Result<Option<bool>> {
        self.buf.clear();
        let mut too_long = false;
        let mut any = false;
        loop {
            let chunk = match self.reader.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                return Ok(if any { Some(too_long) } else { None });
            }
            any = true;
            let (part, consumed, end) = match memchr_nl(chunk) {
                Some(i) => (&chunk[..i], i + 1, true),
                None => (chunk, chunk.len(), false),
            };
            if !too_long {
                let needed = self.buf.len() + part.len();
                if needed > MAX_LINE {
                    too_long = true;
                    self.buf.clear();
                } else {
                    if needed > self.buf.capacity() {
                        // Grow geometrically but never past MAX_LINE.
                        let target = needed.max(self.buf.capacity() * 2).min(MAX_LINE);
                        self.buf.reserve_exact(target - self.buf.len());
                    }
                    self.buf.extend_from_slice(part);
                }
            }
            self.reader.consume(consumed);
            if end {
                return Ok(Some(too_long));
            }
        }
    }
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

impl<R: BufRead> Iterator for TextReader<R> {
    type Item = Result<LogEntry, TextError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let too_long = match self.read_line() {
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Ok(Some(t)) => t,
                Err(e) => {
                    // A read error would likely repeat forever: report it once and stop.
                    self.done = true;
                    return Some(Err(TextError::AtLine {
                        line: self.line_no + 1,
                        error: Box::new(TextError::Io(e.to_string())),
                    }));
                }
            };
            self.line_no += 1;
            let at = |error| TextError::AtLine {
                line: self.line_no,
                error: Box::new(error),
            };
            if too_long {
                return Some(Err(at(TextError::TooLong(MAX_LINE))));
            }
            let text = String::from_utf8_lossy(&self.buf);
            let text = text.trim_end_matches('\r');
            if text.trim().is_empty() {
                continue;
            }
            return Some(parse_line(text, &mut self.ctx).map_err(at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Micros {
        to_micros("", y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn civil_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        // 2026-11-28T02:41:44Z as `date +%s` printed it on this machine.
        assert_eq!(utc(2026, 11, 28, 2, 41, 44), 1_795_833_704 * 1_000_000);
        assert_eq!(year_of(utc(2024, 12, 31, 23, 59, 59)), 2024);
        assert_eq!(year_of(utc(2025, 1, 1, 0, 0, 0)), 2025);
        assert_eq!(year_of(utc(2024, 2, 29, 12, 0, 0)), 2024);
        assert_eq!(year_of(-1), 1969);
    }

    #[test]
    fn rfc5424_headers() {
        let mut ctx = SyslogContext::new();
        let e = parse_syslog_line(
            "<38>1 2019-07-08T17:40:16.954167-04:00 hostname.example.com sshd 57915 - - Failed unknown for invalid user redmond from 192.0.2.1 port 59197 ssh2",
            &mut ctx,
        )
        .unwrap();
        assert_eq!(e.time, utc(2019, 7, 8, 21, 40, 16) + 954_167);
        assert_eq!((e.identifier.as_str(), e.pid), ("sshd", Some(57915)));
        assert!(e
            .message
            .starts_with("Failed unknown for invalid user redmond"));
        // Structured data with `]` inside a quoted value and an escaped quote; no PROCID.
        let e = parse_syslog_line(
            r#"<38>1 2019-07-08T17:40:17Z h sshd - ID47 [timeQuality tzKnown="1"][x@1 t="[b]" q="a\"]b"] msg here"#,
            &mut ctx,
        )
        .unwrap();
        assert_eq!((e.identifier.as_str(), e.pid), ("sshd", None));
        assert_eq!(e.message, "msg here");
        for bad in [
            "<38>1 2019-07-08T17:40:17Z h sshd 1 - [unterminated x",
            "<38>1 2019-07-08T17:40:17Z h sshd",
            "<38>1 2019-07-08T17:40:17Z h sshd x1 - - m",
        ] {
            assert!(parse_syslog_line(bad, &mut ctx).is_err(), "{bad}");
        }
    }

    #[test]
    fn rfc3339_with_fraction_and_offset() {
        let mut ctx = SyslogContext::new();
        let e = parse_syslog_line(
            "2026-11-28T02:33:01.123456+01:00 vm sshd[1234]: Failed password for root from 203.0.113.5 port 22 ssh2",
            &mut ctx,
        )
        .unwrap();
        assert_eq!(e.time, utc(2026, 11, 28, 1, 33, 1) + 123_456);
        assert_eq!(e.identifier, "sshd");
        assert_eq!(e.pid, Some(1234));
        assert_eq!(
            e.message,
            "Failed password for root from 203.0.113.5 port 22 ssh2"
        );
        assert_eq!(ctx.year(), Some(2026));

        let z = parse_syslog_line("2026-01-01T00:00:00Z h cron: x", &mut ctx).unwrap();
        assert_eq!(z.time, utc(2026, 1, 1, 0, 0, 0));
        assert_eq!(z.pid, None);
        let neg = parse_syslog_line("2026-01-01T00:00:00.5-05:30 h a: b", &mut ctx).unwrap();
        assert_eq!(neg.time, utc(2026, 1, 1, 5, 30, 0) + 500_000);
        // Nanoseconds are truncated to microseconds.
        let ns = parse_syslog_line("2026-01-01T00:00:00.123456789+00:00 h a: b", &mut ctx).unwrap();
        assert_eq!(ns.time, utc(2026, 1, 1, 0, 0, 0) + 123_456);
    }

    #[test]
    fn rfc3164_and_tags() {
        let mut ctx = SyslogContext::with_year(2025);
        let e = parse_syslog_line(
            "Jan  2 03:04:05 host sshd-session[12]: hello: world",
            &mut ctx,
        )
        .unwrap();
        assert_eq!(e.time, utc(2025, 1, 2, 3, 4, 5));
        assert_eq!(e.identifier, "sshd-session");
        assert_eq!(e.pid, Some(12));
        assert_eq!(e.message, "hello: world");

        let e =
            parse_syslog_line("Jan 12 03:04:05 mx postfix/smtpd[5473]: connect", &mut ctx).unwrap();
        assert_eq!(e.identifier, "postfix/smtpd");
        assert_eq!(e.pid, Some(5473));

        let e = parse_syslog_line("Jan 12 03:04:05 h kernel: [ 12.5] eth0: up", &mut ctx).unwrap();
        assert_eq!(e.identifier, "kernel");
        assert_eq!(e.pid, None);
        assert_eq!(e.message, "[ 12.5] eth0: up");

        let e = parse_syslog_line(
            "<38>Feb 29 00:00:00 h a[1]:",
            &mut SyslogContext::with_year(2024),
        )
        .unwrap();
        assert_eq!(e.message, "");
        assert_eq!(e.time, utc(2024, 2, 29, 0, 0, 0));
    }

    #[test]
    fn year_rolls_over_and_comes_from_rfc3339() {
        let mut ctx = SyslogContext::new();
        assert_eq!(
            parse_syslog_line("Dec 31 23:59:59 h a: b", &mut ctx),
            Err(TextError::YearUnknown)
        );
        parse_syslog_line("2024-12-30T10:00:00+00:00 h a: b", &mut ctx).unwrap();
        let dec = parse_syslog_line("Dec 31 23:59:59 h a: b", &mut ctx).unwrap();
        assert_eq!(dec.time, utc(2024, 12, 31, 23, 59, 59));
        // A line slightly out of order does not change the year...
        let nov = parse_syslog_line("Nov 30 00:00:00 h a: b", &mut ctx).unwrap();
        assert_eq!(nov.time, utc(2024, 11, 30, 0, 0, 0));
        // ...Dec -> Jan does.
        let jan = parse_syslog_line("Jan  1 00:00:01 h a: b", &mut ctx).unwrap();
        assert_eq!(jan.time, utc(2025, 1, 1, 0, 0, 1));
        assert_eq!(ctx.year(), Some(2025));
        let feb = parse_syslog_line("Feb  1 00:00:01 h a: b", &mut ctx).unwrap();
        assert_eq!(feb.time, utc(2025, 2, 1, 0, 0, 1));
    }

    #[test]
    fn bad_syslog_lines_say_what_is_wrong() {
        let mut ctx = SyslogContext::with_year(2025);
        let err = |l: &str| parse_syslog_line(l, &mut SyslogContext::with_year(2025)).unwrap_err();
        assert_eq!(
            err("Foo  2 00:00:00 h a: b"),
            TextError::BadMonth("Foo".into())
        );
        assert_eq!(
            err("January 2 00:00:00 h a: b"),
            TextError::BadMonth("January".into())
        );
        assert_eq!(err("   "), TextError::NoHeader);
        assert_eq!(err("garbage"), TextError::NoHeader);
        assert_eq!(err("last message repeated 2 times"), TextError::NoHeader);
        assert_eq!(err(""), TextError::NoHeader);
        assert_eq!(err("Jan  2 00:00:00 h no tag here"), TextError::NoTag);
        assert_eq!(err("Jan  2 00:00:00 h"), TextError::NoHost);
        assert_eq!(
            err("Jan  2 00:00:00 h a[x]: b"),
            TextError::BadPid("x".into())
        );
        assert!(matches!(
            err("Feb 30 00:00:00 h a: b"),
            TextError::BadTimestamp(..)
        ));
        assert!(matches!(
            err("Jan  2 25:00:00 h a: b"),
            TextError::BadTimestamp(..)
        ));
        assert!(matches!(
            err("2026-13-01T00:00:00Z h a: b"),
            TextError::BadTimestamp(..)
        ));
        assert!(matches!(
            err("2026-01-01T00:00:00 h a: b"),
            TextError::BadTimestamp(..)
        ));
        assert!(matches!(
            err("2026-01-01 00:00:00 h a: b"),
            TextError::BadTimestamp(..)
        ));
        assert_eq!(err("Foo  2 00:00:00 h a: b").to_string(), "bad month 'Foo'");
        // A rejected line does not disturb the year state.
        parse_syslog_line("Dec  2 00:00:00 h a: b", &mut ctx).unwrap();
        assert!(parse_syslog_line("Jan 99 00:00:00 h a: b", &mut ctx).is_err());
        let dec = parse_syslog_line("Dec  3 00:00:00 h a: b", &mut ctx).unwrap();
        assert_eq!(dec.time, utc(2025, 12, 3, 0, 0, 0));
    }

    #[test]
    fn mutated_lines_never_panic() {
        // Cheap fuzzing: byte-level mutations of valid lines, including multi-byte characters
        // at every offset, must give Ok or Err, never a panic (e.g. slicing inside a char).
        let seeds = [
            "Jan  2 03:04:05 host sshd-session[12]: hello",
            "Jan 2 03:04:05 h a: b",
            "2026-11-28T02:33:01.123456+01:00 vm sshd[1234]: Failed",
            r#"{"MESSAGE":[104,105],"__REALTIME_TIMESTAMP":"5","_PID":"3"}"#,
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for seed in seeds {
            for cut in 0..=seed.len() {
                for insert in ["é", "\u{fffd}", "[", ":", " ", "9", "{"] {
                    let mut s = seed.as_bytes()[..cut].to_vec();
                    s.extend_from_slice(insert.as_bytes());
                    s.extend_from_slice(&seed.as_bytes()[cut..]);
                    let line = String::from_utf8_lossy(&s);
                    let _ = parse_line(&line, &mut SyslogContext::with_year(2025));
                }
            }
            for _ in 0..2000 {
                let mut s = seed.as_bytes().to_vec();
                for _ in 0..3 {
                    let i = (rnd() as usize) % s.len();
                    s[i] = (rnd() & 0xff) as u8;
                }
                s.truncate((rnd() as usize) % (s.len() + 1));
                let line = String::from_utf8_lossy(&s);
                let _ = parse_line(&line, &mut SyslogContext::with_year(2025));
                let _ = parse_line(&line, &mut SyslogContext::new());
            }
        }
    }

    #[test]
    fn journal_json() {
        let e = parse_journal_json(
            r#"{"__CURSOR":"s=1;i=2","_COMM":"sshd","MESSAGE":"Invalid user x from 198.51.100.7 port 4","_PID":"6354","__REALTIME_TIMESTAMP":"1795833704240616","SYSLOG_IDENTIFIER":"sshd-session","_BOOT_ID":"b0"}"#,
        )
        .unwrap();
        assert_eq!(e.time, 1_795_833_704_240_616);
        assert_eq!(e.identifier, "sshd-session");
        assert_eq!(e.pid, Some(6354));
        assert_eq!(e.message, "Invalid user x from 198.51.100.7 port 4");

        // Fallbacks: _COMM, SYSLOG_PID; MESSAGE as bytes (invalid UTF-8 -> lossy).
        let e = parse_journal_json(
            r#"{"_COMM":"sshd","SYSLOG_PID":"7","MESSAGE":[104,105,255],"__REALTIME_TIMESTAMP":"5"}"#,
        )
        .unwrap();
        assert_eq!(e.identifier, "sshd");
        assert_eq!(e.pid, Some(7));
        assert_eq!(e.message, "hi\u{fffd}");
        // Several values: the first.
        let e = parse_journal_json(r#"{"MESSAGE":["a","b"],"__REALTIME_TIMESTAMP":"5"}"#).unwrap();
        assert_eq!(e.message, "a");
        assert_eq!(e.identifier, "");
        assert_eq!(e.pid, None);
        let e = parse_journal_json(
            r#"{"MESSAGE":"m","__REALTIME_TIMESTAMP":"5","_PID":"x","SYSLOG_PID":"9"}"#,
        )
        .unwrap();
        assert_eq!(e.pid, Some(9));
    }

    #[test]
    fn bad_journal_json() {
        assert_eq!(
            parse_journal_json(r#"{"__REALTIME_TIMESTAMP":"5"}"#),
            Err(TextError::MissingField("MESSAGE"))
        );
        assert_eq!(
            parse_journal_json(r#"{"MESSAGE":"x"}"#),
            Err(TextError::MissingField("__REALTIME_TIMESTAMP"))
        );
        assert!(matches!(
            parse_journal_json(r#"{"MESSAGE":null,"__REALTIME_TIMESTAMP":"5"}"#),
            Err(TextError::BadField("MESSAGE", _))
        ));
        assert!(matches!(
            parse_journal_json(r#"{"MESSAGE":"x","__REALTIME_TIMESTAMP":"soon"}"#),
            Err(TextError::BadField("__REALTIME_TIMESTAMP", _))
        ));
        assert!(matches!(
            parse_journal_json(r#"{"MESSAGE":"x","#),
            Err(TextError::Json(_))
        ));
    }

    #[test]
    fn reader_mixes_formats_and_reports_line_numbers() {
        let mut input = Vec::new();
        input.extend_from_slice(b"2025-12-31T23:00:00Z h sshd[1]: first\r\n");
        input.extend_from_slice(b"\n   \n");
        input.extend_from_slice(b"Jan  1 00:00:00 h sshd[2]: bad \xff byte\n");
        input.extend_from_slice(b"garbage\n");
        input.extend_from_slice(
            br#"{"MESSAGE":"json","__REALTIME_TIMESTAMP":"1","SYSLOG_IDENTIFIER":"sshd"}"#,
        );
        // No trailing newline on the last line.
        let r = TextReader::new(&input[..]);
        let out: Vec<_> = r.collect();
        assert_eq!(out.len(), 4);
        let first = out[0].as_ref().unwrap();
        assert_eq!(first.message, "first");
        let second = out[1].as_ref().unwrap();
        assert_eq!(second.message, "bad \u{fffd} byte");
        assert_eq!(second.time, utc(2026, 1, 1, 0, 0, 0));
        assert_eq!(
            out[2].as_ref().unwrap_err().to_string(),
            "line 5: no syslog header"
        );
        assert_eq!(out[3].as_ref().unwrap().message, "json");
    }

    #[test]
    fn reader_skips_overlong_lines_with_bounded_memory() {
        let mut input = b"Jan  1 00:00:00 h a: ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 3 * MAX_LINE));
        input.extend_from_slice(b"\nJan  1 00:00:01 h a: short\n");
        // A small BufReader capacity forces many chunks per line.
        let r = TextReader::with_context(
            std::io::BufReader::with_capacity(1000, &input[..]),
            SyslogContext::with_year(2025),
        );
        let mut r = r;
        let e = r.next().unwrap().unwrap_err();
        assert_eq!(
            e,
            TextError::AtLine {
                line: 1,
                error: Box::new(TextError::TooLong(MAX_LINE))
            }
        );
        assert!(r.buf.capacity() <= MAX_LINE);
        assert_eq!(r.next().unwrap().unwrap().message, "short");
        assert_eq!(r.line_number(), 2);
        assert!(r.next().is_none());

        // Exactly MAX_LINE bytes is still accepted.
        let mut exact = b"Jan  1 00:00:00 h a: ".to_vec();
        exact.resize(MAX_LINE, b'y');
        exact.push(b'\n');
        let mut r = TextReader::with_context(&exact[..], SyslogContext::with_year(2025));
        assert!(r.next().unwrap().is_ok());
    }

    #[test]
    fn reader_stops_after_a_read_error() {
        struct Failing;
        impl std::io::Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk on fire"))
            }
        }
        let mut r = TextReader::new(std::io::BufReader::new(Failing));
        let e = r.next().unwrap().unwrap_err();
        assert!(e.to_string().contains("disk on fire"), "{e}");
        assert!(r.next().is_none());
    }
}
