//! Event-time helpers: RFC 3339 parsing and formatting, and human durations ("5m").
//!
//! Event time is milliseconds since the Unix epoch (UTC) everywhere in Sentinel.

mod clock;

pub use clock::{Admission, ClockPolicy, EventClock};

/// Earliest accepted event time: 2000-01-01T00:00:00Z. Older stamps are almost always unit mistakes.
pub const MIN_EVENT_MS: u64 = 946_684_800_000;
/// Latest accepted event time: 2100-01-01T00:00:00Z.
pub const MAX_EVENT_MS: u64 = 4_102_444_800_000;

/// Parses an RFC 3339 / ISO 8601 timestamp such as `2024-05-01T12:00:00.123Z` or
/// `2024-05-01T12:00:00+02:00` into epoch milliseconds.
///
/// ```
/// use sentinel_dataflows::time::parse_rfc3339_ms;
/// assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.5Z"), Some(1500));
/// assert_eq!(parse_rfc3339_ms("2024-02-30T00:00:00Z"), None);
/// ```
pub fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let mut v = 0u64;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u64::from(c - b'0');
        }
        Some(v)
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0u64;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + u64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..3 {
            millis *= 10;
        }
    }
    let offset_ms: i64 = match b.get(i) {
        Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3)? as i64;
            let om = num(i + 4..i + 6)? as i64;
            if oh > 23 || om > 59 {
                return None;
            }
            let v = (oh * 60 + om) * 60_000;
            if sign == b'+' {
                v
            } else {
                -v
            }
        }
        None => 0,
        _ => return None,
    };
    let days = days_from_civil(year as i64, month as i64, day as i64);
    let ms = ((days * 86_400 + (hour * 3600 + minute * 60 + second.min(59)) as i64) * 1000 + millis as i64) - offset_ms;
    u64::try_from(ms).ok()
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
///
/// ```
/// use sentinel_dataflows::time::format_rfc3339_ms;
/// assert_eq!(format_rfc3339_ms(1500), "1970-01-01T00:00:01.500Z");
/// ```
pub fn format_rfc3339_ms(ms: u64) -> String {
    match rfc3339_ms_ascii(ms) {
        Some(text) => std::str::from_utf8(&text).unwrap_or_default().to_owned(),
        None => {
            let secs = ms / 1000;
            let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
            let (y, m, d) = civil_from_days(days);
            format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
                rem / 3600,
                (rem / 60) % 60,
                rem % 60,
                ms % 1000
            )
        }
    }
}

/// [`format_rfc3339_ms`] as ASCII bytes on the stack, for years 0 to 9999 (`None` past them).
/// Written digit by digit: this runs once per decision, and `format!` costs several times more.
pub fn rfc3339_ms_ascii(ms: u64) -> Option<[u8; 24]> {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return None;
    }
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, y as u64);
    put(5, 2, m as u64);
    put(8, 2, d as u64);
    put(11, 2, rem / 3600);
    put(14, 2, (rem / 60) % 60);
    put(17, 2, rem % 60);
    put(20, 3, ms % 1000);
    Some(out)
}

/// Parses a duration such as `250ms`, `30s`, `5m`, `1h` or `1d` into milliseconds.
///
/// ```
/// use sentinel_dataflows::time::parse_duration_ms;
/// assert_eq!(parse_duration_ms("5m"), Some(300_000));
/// assert_eq!(parse_duration_ms("5 parsecs"), None);
/// ```
pub fn parse_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult = match unit.trim() {
        "ms" => 1,
        "s" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Formats milliseconds as the shortest exact duration string (`300000` -> `5m`).
pub fn format_duration_ms(ms: u64) -> String {
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

fn is_leap(y: u64) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil-date algorithms.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_across_eras() {
        for ms in [0, 946_684_800_000, 1_709_164_800_123, 4_102_444_799_999] {
            assert_eq!(parse_rfc3339_ms(&format_rfc3339_ms(ms)), Some(ms));
        }
        assert_eq!(format_rfc3339_ms(1_709_164_800_123), "2024-02-29T00:00:00.123Z");
        assert_eq!(format_rfc3339_ms(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn honours_offsets_and_fractions() {
        let utc = parse_rfc3339_ms("2024-05-01T12:00:00Z").unwrap();
        assert_eq!(parse_rfc3339_ms("2024-05-01T14:00:00+02:00"), Some(utc));
        assert_eq!(parse_rfc3339_ms("2024-05-01T12:00:00.123456Z"), Some(utc + 123));
        assert_eq!(parse_rfc3339_ms("2024-05-01T12:00:00.1Z"), Some(utc + 100));
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2024-05-01T12:00:00Zjunk",
            "2024-05-01T25:00:00Z",
            "2024-05-01T12:00:00.",
        ] {
            assert_eq!(parse_rfc3339_ms(s), None, "{s}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("1h"), Some(3_600_000));
        assert_eq!(parse_duration_ms("250ms"), Some(250));
        assert_eq!(format_duration_ms(300_000), "5m");
        assert_eq!(format_duration_ms(1500), "1500ms");
    }
}
