//! Timespans (granularities, archive timespans) as text, the way Gnocchi reads
//! and writes them.
//!
//! Input follows Gnocchi's `utils.to_timespan`: a plain number is seconds
//! (`"60"`, `"0.5"`), anything else goes through pytimeparse's grammar
//! (`"5m"`, `"1 hour"`, `"1 day, 0:00:00"`, `"0:01:00"`, `"1w"`, ...). Output
//! is Python's `str(datetime.timedelta)` (`"0:01:00"`, `"1 day, 0:00:00"`,
//! `"0:00:03.600000"`), which is what Gnocchi's API returns for granularities
//! and timespans.
//!
//! Decimal input is converted exactly (Gnocchi multiplies a float by `10e8`
//! and truncates, which can lose a nanosecond on values such as `0.29`; we
//! keep the intended value).

use crate::timestamp::{NS_PER_DAY, NS_PER_HOUR, NS_PER_MIN, NS_PER_SEC};

/// Why a timespan was refused; the texts are Gnocchi's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimespanError {
    /// Neither a number nor a duration pytimeparse understands.
    #[error("Unable to parse timespan")]
    Unparsable,
    /// Zero or negative where a positive span is required.
    #[error("Timespan must be positive")]
    NotPositive,
    /// Does not fit in `i64` nanoseconds (about 292 years).
    #[error("Timespan is out of range")]
    OutOfRange,
}

/// Parses a strictly positive timespan (granularity, archive timespan), in
/// nanoseconds.
pub fn parse_timespan(text: &str) -> Result<i64, TimespanError> {
    let ns = parse_signed_timespan(text)?;
    if ns <= 0 {
        return Err(TimespanError::NotPositive);
    }
    Ok(ns)
}

/// Parses a timespan that may be zero or negative (`"-2 days"`), in
/// nanoseconds.
pub fn parse_signed_timespan(text: &str) -> Result<i64, TimespanError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(TimespanError::Unparsable);
    }
    if let Some(ns) = parse_plain_seconds(text)? {
        return Ok(ns);
    }
    let (negative, rest) = match text.as_bytes()[0] {
        b'-' => (true, text[1..].trim_start()),
        b'+' => (false, text[1..].trim_start()),
        _ => (false, text),
    };
    let ns = parse_pytimeparse(rest)?;
    let ns = if negative { -ns } else { ns };
    i64::try_from(ns).map_err(|_| TimespanError::OutOfRange)
}

/// Seconds given as a bare number, as Python's `float()` accepts them.
/// `Ok(None)` means "not a number, try the duration grammar".
fn parse_plain_seconds(text: &str) -> Result<Option<i64>, TimespanError> {
    let (negative, digits) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if let Some(ns) = decimal_times(digits, NS_PER_SEC) {
        let ns = ns.ok_or(TimespanError::OutOfRange)?;
        let ns = if negative { -ns } else { ns };
        return i64::try_from(ns)
            .map(Some)
            .map_err(|_| TimespanError::OutOfRange);
    }
    // Exponent forms ("1e3"); Python's float() takes them too.
    let lower = text.to_ascii_lowercase();
    if lower.contains("inf") || lower.contains("nan") {
        return Err(TimespanError::Unparsable);
    }
    match text.parse::<f64>() {
        Ok(seconds) => {
            let ns = (seconds * 1e9).trunc();
            if !ns.is_finite() || ns >= i64::MAX as f64 || ns < i64::MIN as f64 {
                return Err(TimespanError::OutOfRange);
            }
            Ok(Some(ns as i64))
        }
        Err(_) => Ok(None),
    }
}

/// `digits` as an unsigned decimal (`"12"`, `"1.5"`, `".5"`, `"5."`) times
/// `unit`, truncated to an integer. `None` if not such a decimal,
/// `Some(None)` on overflow.
fn decimal_times(digits: &str, unit: i64) -> Option<Option<i128>> {
    let (int_part, frac_part) = match digits.split_once('.') {
        Some((i, f)) => (i, f),
        None => (digits, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut int_value: i128 = 0;
    for b in int_part.bytes() {
        int_value = match int_value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(b - b'0')))
        {
            Some(v) if v <= i128::from(i64::MAX) => v,
            _ => return Some(None),
        };
    }
    // Digits past the 18th cannot change a nanosecond result for any unit
    // we know (the largest is a year, ~3.2e16 ns).
    let frac = &frac_part[..frac_part.len().min(18)];
    let mut frac_value: i128 = 0;
    let mut scale: i128 = 1;
    for b in frac.bytes() {
        frac_value = frac_value * 10 + i128::from(b - b'0');
        scale *= 10;
    }
    let unit = i128::from(unit);
    Some(
        int_value
            .checked_mul(unit)
            .and_then(|v| v.checked_add(frac_value * unit / scale)),
    )
}

/// pytimeparse units, coarsest first; the rank enforces its fixed order.
const UNITS: &[(&[&str], i64, u8)] = &[
    (
        &["y", "ys", "yr", "yrs", "year", "years"],
        365 * NS_PER_DAY,
        0,
    ),
    (
        &["mo", "mos", "mth", "mths", "month", "months"],
        30 * NS_PER_DAY,
        1,
    ),
    (&["w", "wk", "wks", "week", "weeks"], 7 * NS_PER_DAY, 2),
    (&["d", "dy", "dys", "day", "days"], NS_PER_DAY, 3),
    (&["h", "hr", "hrs", "hour", "hours"], NS_PER_HOUR, 4),
    (&["m", "min", "mins", "minute", "minutes"], NS_PER_MIN, 5),
    (&["s", "sec", "secs", "second", "seconds"], NS_PER_SEC, 6),
];

/// Rank of days: an `H:MM:SS` clock may only follow weeks and days.
const DAYS_RANK: u8 = 3;

/// The unsigned part of pytimeparse's grammar: unit components in
/// decreasing order, each at most once, optionally separated by `,` or `/`,
/// or one of the clock forms (`M:SS`, `[weeks] [days] H:MM:SS`,
/// `D:HH:MM:SS`, `:SS`).
fn parse_pytimeparse(text: &str) -> Result<i128, TimespanError> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut total: i128 = 0;
    let mut last_rank: Option<u8> = None;
    let mut components = 0;
    loop {
        while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if pos == bytes.len() {
            break;
        }
        let number_start = pos;
        while pos < bytes.len() && (bytes[pos].is_ascii_digit() || bytes[pos] == b'.') {
            pos += 1;
        }
        if pos < bytes.len() && bytes[pos] == b':' {
            // A clock ends the expression.
            let clock = parse_clock(&text[number_start..], components, last_rank)?;
            total = total.checked_add(clock).ok_or(TimespanError::OutOfRange)?;
            components += 1;
            break;
        }
        if pos == number_start {
            return Err(TimespanError::Unparsable);
        }
        let number = &text[number_start..pos];
        while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        let unit_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_alphabetic() {
            pos += 1;
        }
        let unit = text[unit_start..pos].to_ascii_lowercase();
        let &(_, unit_ns, rank) = UNITS
            .iter()
            .find(|(names, _, _)| names.contains(&unit.as_str()))
            .ok_or(TimespanError::Unparsable)?;
        if last_rank.is_some_and(|last| rank <= last) {
            return Err(TimespanError::Unparsable);
        }
        last_rank = Some(rank);
        let value = decimal_times(number, unit_ns)
            .ok_or(TimespanError::Unparsable)?
            .ok_or(TimespanError::OutOfRange)?;
        total = total.checked_add(value).ok_or(TimespanError::OutOfRange)?;
        components += 1;
        while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if pos < bytes.len() && (bytes[pos] == b',' || bytes[pos] == b'/') {
            pos += 1;
        }
    }
    if components == 0 {
        return Err(TimespanError::Unparsable);
    }
    Ok(total)
}

fn parse_clock(
    text: &str,
    components_before: u32,
    last_rank: Option<u8>,
) -> Result<i128, TimespanError> {
    let text = text.trim_end();
    let parts: Vec<&str> = text.split(':').collect();
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let seconds_ok = |s: &str| {
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (s, None),
        };
        whole.len() == 2 && all_digits(whole) && frac.is_none_or(all_digits)
    };
    let int = |s: &str| -> Result<i128, TimespanError> {
        s.parse::<i128>().map_err(|_| TimespanError::OutOfRange)
    };
    let secs = |s: &str| -> Result<i128, TimespanError> {
        decimal_times(s, NS_PER_SEC)
            .ok_or(TimespanError::Unparsable)?
            .ok_or(TimespanError::OutOfRange)
    };
    let alone = components_before == 0;
    let total = match parts.as_slice() {
        ["", s] if alone && seconds_ok(s) => secs(s)?,
        [m, s] if alone && all_digits(m) && m.len() <= 2 && seconds_ok(s) => {
            int(m)? * i128::from(NS_PER_MIN) + secs(s)?
        }
        [h, m, s]
            if last_rank.is_none_or(|r| r <= DAYS_RANK)
                && all_digits(h)
                && h.len() <= 12
                && all_digits(m)
                && m.len() == 2
                && seconds_ok(s) =>
        {
            int(h)? * i128::from(NS_PER_HOUR) + int(m)? * i128::from(NS_PER_MIN) + secs(s)?
        }
        [d, h, m, s]
            if alone
                && all_digits(d)
                && d.len() <= 12
                && all_digits(h)
                && h.len() == 2
                && all_digits(m)
                && m.len() == 2
                && seconds_ok(s) =>
        {
            int(d)? * i128::from(NS_PER_DAY)
                + int(h)? * i128::from(NS_PER_HOUR)
                + int(m)? * i128::from(NS_PER_MIN)
                + secs(s)?
        }
        _ => return Err(TimespanError::Unparsable),
    };
    Ok(total)
}

/// Formats nanoseconds as Python's `str(datetime.timedelta)`, at Python's
/// microsecond resolution (sub-microsecond parts are floored away).
pub fn format_timespan(ns: i64) -> String {
    const US_PER_DAY: i64 = 86_400_000_000;
    let us = ns.div_euclid(1_000);
    let days = us.div_euclid(US_PER_DAY);
    let rem = us.rem_euclid(US_PER_DAY);
    let micros = rem % 1_000_000;
    let secs = rem / 1_000_000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::with_capacity(24);
    if days != 0 {
        let plural = if days.abs() != 1 { "s" } else { "" };
        out.push_str(&format!("{days} day{plural}, "));
    }
    out.push_str(&format!("{h}:{m:02}:{s:02}"));
    if micros != 0 {
        out.push_str(&format!(".{micros:06}"));
    }
    out
}

/// Total seconds as Python's `repr(float)`, as Gnocchi prints granularities
/// inside messages ("More than one archive policy uses granularity `1.0'").
pub fn format_seconds(ns: i64) -> String {
    let seconds = ns as f64 / 1e9;
    let debug = format!("{seconds:?}");
    // Rust and Python agree on digits and on when to switch to exponents;
    // Python writes the exponent with a sign and at least two digits.
    match debug.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => debug,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = NS_PER_SEC;

    #[test]
    fn parses_gnocchi_forms() {
        let cases: &[(&str, i64)] = &[
            ("1 minute", 60 * S),
            ("2 minutes", 120 * S),
            ("1 min", 60 * S),
            ("5m", 300 * S),
            ("1h", 3600 * S),
            ("1 hour", 3600 * S),
            ("2 hour", 7200 * S),
            ("1 day", 86400 * S),
            ("60", 60 * S),
            ("10", 10 * S),
            ("0.5", S / 2),
            ("1e3", 1000 * S),
            ("0:01:00", 60 * S),
            ("1:00:00", 3600 * S),
            ("1 day, 0:00:00", 86400 * S),
            ("2 days, 3:04:05.500000", 2 * 86400 * S + 11045 * S + S / 2),
            ("0:00:03.600000", 3600 * S / 1000),
            ("1 week", 7 * 86400 * S),
            ("1w", 7 * 86400 * S),
            ("1 second", S),
            ("1s", S),
            ("1 sec", S),
            ("7s", 7 * S),
            ("10s", 10 * S),
            ("30 seconds", 30 * S),
            ("300 seconds", 300 * S),
            ("60 second", 60 * S),
            ("1h30m", 5400 * S),
            ("1 hour, 30 minutes", 5400 * S),
            ("1.5h", 5400 * S),
            ("1:30", 90 * S),
            ("1:00:00:00", 86400 * S),
            (":30", 30 * S),
            ("  5 m ", 300 * S),
        ];
        for &(text, ns) in cases {
            assert_eq!(parse_timespan(text), Ok(ns), "{text}");
        }
    }

    #[test]
    fn refuses_bad_forms() {
        for text in [
            "",
            "foobar",
            "1 shenanigan",
            "m",
            "1 minute 1 hour",
            "1m 1m",
            "1:2:3:4:5",
            "inf",
            "nan",
            "1.2.3 s",
        ] {
            assert_eq!(
                parse_timespan(text),
                Err(TimespanError::Unparsable),
                "{text}"
            );
        }
        assert_eq!(parse_timespan("0"), Err(TimespanError::NotPositive));
        assert_eq!(parse_timespan("-2 days"), Err(TimespanError::NotPositive));
        assert_eq!(parse_signed_timespan("-2 days"), Ok(-2 * 86400 * S));
        assert_eq!(parse_signed_timespan("-60"), Ok(-60 * S));
        assert_eq!(
            parse_timespan("99999999999999 days"),
            Err(TimespanError::OutOfRange)
        );
        assert_eq!(
            TimespanError::Unparsable.to_string(),
            "Unable to parse timespan"
        );
        assert_eq!(
            TimespanError::NotPositive.to_string(),
            "Timespan must be positive"
        );
    }

    #[test]
    fn formats_like_python_timedelta() {
        assert_eq!(format_timespan(60 * S), "0:01:00");
        assert_eq!(format_timespan(S), "0:00:01");
        assert_eq!(format_timespan(20 * S), "0:00:20");
        assert_eq!(format_timespan(3600 * S), "1:00:00");
        assert_eq!(format_timespan(3598 * S), "0:59:58");
        assert_eq!(format_timespan(86400 * S), "1 day, 0:00:00");
        assert_eq!(format_timespan(2 * 86400 * S), "2 days, 0:00:00");
        assert_eq!(format_timespan(365 * 86400 * S), "365 days, 0:00:00");
        assert_eq!(format_timespan(S / 2), "0:00:00.500000");
        assert_eq!(format_timespan(3_600_000_000), "0:00:03.600000");
        assert_eq!(format_timespan(0), "0:00:00");
        assert_eq!(format_timespan(-S), "-1 day, 23:59:59");
    }

    #[test]
    fn round_trips() {
        for ns in [
            S,
            60 * S,
            S / 2,
            3_600_000_000,
            86400 * S,
            2 * 86400 * S + 11045 * S + S / 2,
            365 * 86400 * S,
            7 * 86400 * S + 1_000,
        ] {
            assert_eq!(parse_timespan(&format_timespan(ns)), Ok(ns), "{ns}");
        }
    }

    #[test]
    fn formats_seconds_like_python_repr() {
        assert_eq!(format_seconds(S), "1.0");
        assert_eq!(format_seconds(3_600_000_000), "3.6");
        assert_eq!(format_seconds(60 * S), "60.0");
        assert_eq!(format_seconds(10_000), "1e-05");
    }
}
