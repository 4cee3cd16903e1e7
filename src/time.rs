//! Timestamps as clients send them and as Gnocchi writes them.
//!
//! In: ISO 8601 with or without a zone (no zone means UTC), epoch seconds as a
//! number or numeric string, `now`, and spans relative to now (`-5 minutes`).
//! Like Gnocchi, a batch is read in the form of its *first* timestamp: mixing
//! epoch numbers and relative spans in one batch is an error. Out: ISO 8601 in
//! UTC with an explicit `+00:00`, microseconds only when there are any.
//!
//! Both directions are hand-written because they sit on the hot paths: every
//! measure written is parsed here, every point read is formatted here.

use std::time::{SystemTime, UNIX_EPOCH};

use carbonara::calendar::{civil_from_days, days_from_civil};

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// A timestamp as it appears in a request body or query string.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RawTimestamp<'a> {
    Number(f64),
    Text(&'a str),
}

/// Why a timestamp was refused; the texts are Gnocchi's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("Unable to convert timestamps")]
    Unparsable,
    #[error("Timestamp must be after Epoch")]
    BeforeEpoch,
}

/// The form a batch's timestamps are read in, chosen from its first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampForm {
    /// Seconds since the epoch, as a number or a numeric string.
    Epoch,
    /// An ISO 8601 date and time, or `now`.
    Iso,
    /// A span added to now, such as `-5 minutes`.
    Relative,
}

/// The current time in UTC nanoseconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl TimestampForm {
    /// The form Gnocchi would pick for a batch starting with `first`.
    pub fn of(first: RawTimestamp<'_>) -> Self {
        match first {
            RawTimestamp::Number(_) => Self::Epoch,
            RawTimestamp::Text(text) => {
                let text = text.trim();
                if parse_decimal_seconds(text).is_some() {
                    Self::Epoch
                } else if text.eq_ignore_ascii_case("now") || parse_iso8601(text).is_some() {
                    Self::Iso
                } else {
                    Self::Relative
                }
            }
        }
    }

    /// Reads `raw` in this form, relative spans against `now`.
    pub fn parse(self, raw: RawTimestamp<'_>, now: i64) -> Result<i64, TimestampError> {
        let nanos = match (self, raw) {
            (Self::Epoch, RawTimestamp::Number(seconds)) => float_seconds(seconds)?,
            (Self::Epoch, RawTimestamp::Text(text)) => {
                parse_decimal_seconds(text.trim()).ok_or(TimestampError::Unparsable)?
            }
            (Self::Iso, RawTimestamp::Text(text)) => {
                let text = text.trim();
                if text.eq_ignore_ascii_case("now") {
                    now
                } else {
                    parse_iso8601(text).ok_or(TimestampError::Unparsable)?
                }
            }
            (Self::Relative, RawTimestamp::Text(text)) => {
                let span = carbonara::timespan::parse_signed_timespan(text.trim())
                    .map_err(|_| TimestampError::Unparsable)?;
                now.checked_add(span).ok_or(TimestampError::Unparsable)?
            }
            (Self::Iso | Self::Relative, RawTimestamp::Number(_)) => {
                return Err(TimestampError::Unparsable)
            }
        };
        if nanos < 0 {
            return Err(TimestampError::BeforeEpoch);
        }
        Ok(nanos)
    }
}

/// Reads one timestamp on its own (a `start` or `stop` parameter).
pub fn parse_timestamp(raw: RawTimestamp<'_>, now: i64) -> Result<i64, TimestampError> {
    TimestampForm::of(raw).parse(raw, now)
}

/// Whole and fractional seconds converted apart, so that `1425652437.25`
/// keeps its exact quarter second (a single multiplication would not).
fn float_seconds(seconds: f64) -> Result<i64, TimestampError> {
    if !seconds.is_finite() || seconds.abs() >= (i64::MAX / NANOS_PER_SECOND) as f64 {
        return Err(TimestampError::Unparsable);
    }
    let whole = seconds.trunc();
    let fraction = ((seconds - whole) * NANOS_PER_SECOND as f64).round() as i64;
    Ok(whole as i64 * NANOS_PER_SECOND + fraction)
}

/// `[-]digits[.digits]` as exact nanoseconds (no float rounding for the
/// common integer and microsecond cases).
fn parse_decimal_seconds(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut nanos = 0_i64;
    let mut scale = NANOS_PER_SECOND / 10;
    for digit in fraction.bytes().take(9) {
        nanos += i64::from(digit - b'0') * scale;
        scale /= 10;
    }
    let total = seconds.checked_mul(NANOS_PER_SECOND)?.checked_add(nanos)?;
    Some(if negative { -total } else { total })
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// A cursor over ASCII digits and separators.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, count: usize) -> Option<u32> {
        let slice = self.bytes.get(self.at..self.at + count)?;
        let mut value = 0_u32;
        for &byte in slice {
            if !byte.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u32::from(byte - b'0');
        }
        self.at += count;
        Some(value)
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.bytes.get(self.at) == Some(&byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn done(&self) -> bool {
        self.at == self.bytes.len()
    }
}

/// Parses `YYYY[-MM[-DD[(T| )HH[:MM[:SS[.fff…]]]]]][Z|±HH[[:]MM]]` to UTC
/// nanoseconds; `None` for anything else, including impossible dates.
pub fn parse_iso8601(text: &str) -> Option<i64> {
    let mut cursor = Cursor {
        bytes: text.as_bytes(),
        at: 0,
    };
    let year = i64::from(cursor.digits(4)?);
    let (mut month, mut day) = (1, 1);
    let (mut hour, mut minute, mut second, mut nanos) = (0, 0, 0, 0_i64);
    if cursor.eat(b'-') {
        month = cursor.digits(2)?;
        if cursor.eat(b'-') {
            day = cursor.digits(2)?;
            if cursor.eat(b'T') || cursor.eat(b't') || cursor.eat(b' ') {
                hour = cursor.digits(2)?;
                if cursor.eat(b':') {
                    minute = cursor.digits(2)?;
                    if cursor.eat(b':') {
                        second = cursor.digits(2)?;
                        if cursor.eat(b'.') || cursor.eat(b',') {
                            let mut scale = NANOS_PER_SECOND / 10;
                            let start = cursor.at;
                            while let Some(byte) = cursor.peek().filter(u8::is_ascii_digit) {
                                nanos += i64::from(byte - b'0') * scale;
                                scale /= 10;
                                cursor.at += 1;
                            }
                            if cursor.at == start {
                                return None;
                            }
                        }
                    }
                }
            }
        }
    }
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let offset_seconds = match cursor.peek() {
        None => 0,
        Some(b'Z' | b'z') => {
            cursor.at += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            cursor.at += 1;
            let hours = i64::from(cursor.digits(2)?);
            cursor.eat(b':');
            let minutes = if cursor.done() {
                0
            } else {
                i64::from(cursor.digits(2)?)
            };
            let offset = hours * 3600 + minutes * 60;
            if sign == b'+' {
                offset
            } else {
                -offset
            }
        }
        Some(_) => return None,
    };
    if !cursor.done() {
        return None;
    }
    let seconds = days_from_civil(year, i64::from(month), i64::from(day)) * SECONDS_PER_DAY
        + i64::from(hour) * 3600
        + i64::from(minute) * 60
        + i64::from(second)
        - offset_seconds;
    seconds.checked_mul(NANOS_PER_SECOND)?.checked_add(nanos)
}

/// Appends `nanos` as Gnocchi writes it: `2015-03-06T14:33:57+00:00`, with
/// `.ffffff` when the timestamp has sub-second microseconds.
pub fn write_iso8601(out: &mut Vec<u8>, nanos: i64) {
    IsoWriter::new().write(out, nanos);
}

/// Longest [`write_iso8601`] text: `2015-03-06T14:33:57.123456+00:00`.
pub const ISO_MAX_LEN: usize = 32;

/// [`write_iso8601`] for many timestamps in a row (a measures response):
/// the date part is computed once per day rather than once per point,
/// which was a third of the time spent formatting a day of 1 s points.
#[derive(Debug, Clone)]
pub struct IsoWriter {
    day: i64,
    date: [u8; 11],
}

impl Default for IsoWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl IsoWriter {
    pub fn new() -> IsoWriter {
        IsoWriter {
            day: i64::MIN,
            date: *b"0000-00-00T",
        }
    }

    /// Appends `nanos` formatted as [`write_iso8601`] does.
    pub fn write(&mut self, out: &mut Vec<u8>, nanos: i64) {
        let mut text = [0; ISO_MAX_LEN];
        let len = self.write_into(&mut text, nanos);
        out.extend_from_slice(&text[..len]);
    }

    /// Writes `nanos` at the start of `out`, returning the length: rows of
    /// a response are assembled on the stack and appended once.
    pub fn write_into(&mut self, out: &mut [u8; ISO_MAX_LEN], nanos: i64) -> usize {
        let seconds = nanos.div_euclid(NANOS_PER_SECOND);
        let micros = nanos.rem_euclid(NANOS_PER_SECOND) / 1000;
        let days = seconds.div_euclid(SECONDS_PER_DAY);
        let of_day = seconds.rem_euclid(SECONDS_PER_DAY);
        if days != self.day {
            let (year, month, day) = civil_from_days(days);
            put_digits(&mut self.date[0..4], year.clamp(0, 9999) as u32);
            put_digits(&mut self.date[5..7], month as u32);
            put_digits(&mut self.date[8..10], day as u32);
            self.day = days;
        }
        out[..11].copy_from_slice(&self.date);
        out[11..19].copy_from_slice(b"00:00:00");
        put_digits(&mut out[11..13], (of_day / 3600) as u32);
        put_digits(&mut out[14..16], (of_day / 60 % 60) as u32);
        put_digits(&mut out[17..19], (of_day % 60) as u32);
        let mut len = 19;
        if micros != 0 {
            out[19] = b'.';
            put_digits(&mut out[20..26], micros as u32);
            len = 26;
        }
        out[len..len + 6].copy_from_slice(b"+00:00");
        len + 6
    }
}

/// The [`write_iso8601`] form as a `String`, for JSON documents built with serde.
pub fn iso8601(nanos: i64) -> String {
    let mut out = Vec::with_capacity(32);
    write_iso8601(&mut out, nanos);
    String::from_utf8(out).unwrap_or_default()
}

fn put_digits(slot: &mut [u8], mut value: u32) {
    for byte in slot.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_425_652_437 * NANOS_PER_SECOND; // 2015-03-06T14:33:57Z

    #[test]
    fn iso_forms_agree() {
        assert_eq!(parse_iso8601("2015-03-06T14:33:57"), Some(T));
        assert_eq!(parse_iso8601("2015-03-06 14:33:57"), Some(T));
        assert_eq!(parse_iso8601("2015-03-06T14:33:57Z"), Some(T));
        assert_eq!(parse_iso8601("2015-03-06T16:33:57+02:00"), Some(T));
        assert_eq!(parse_iso8601("2015-03-06T13:33:57-0100"), Some(T));
        assert_eq!(
            parse_iso8601("2015-03-06T14:33:57.5"),
            Some(T + NANOS_PER_SECOND / 2)
        );
        assert_eq!(
            parse_iso8601("2015-03-06"),
            Some(T - (14 * 3600 + 33 * 60 + 57) * NANOS_PER_SECOND)
        );
        assert_eq!(parse_iso8601("1970-01-01T00:00:00"), Some(0));
    }

    #[test]
    fn impossible_dates_are_refused() {
        for bad in [
            "1915-100-06T14:33:57",
            "2015-02-29",
            "2015-13-01",
            "2015-03-06T24:00:00",
            "2015-03-06T14:33:57.",
            "2015-03-06Tfoo",
            "tomorrow",
            "",
        ] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
        assert!(parse_iso8601("2016-02-29").is_some());
    }

    #[test]
    fn forms_follow_the_first_timestamp() {
        let now = T;
        assert_eq!(
            TimestampForm::of(RawTimestamp::Number(1.0)),
            TimestampForm::Epoch
        );
        assert_eq!(
            TimestampForm::of(RawTimestamp::Text("1425652437.0")),
            TimestampForm::Epoch
        );
        assert_eq!(
            TimestampForm::of(RawTimestamp::Text("2015-03-06")),
            TimestampForm::Iso
        );
        assert_eq!(
            TimestampForm::of(RawTimestamp::Text("now")),
            TimestampForm::Iso
        );
        assert_eq!(
            TimestampForm::of(RawTimestamp::Text("-5 minutes")),
            TimestampForm::Relative
        );
        assert_eq!(
            parse_timestamp(RawTimestamp::Text("-5 minutes"), now),
            Ok(now - 300 * NANOS_PER_SECOND)
        );
        assert_eq!(
            TimestampForm::Epoch.parse(RawTimestamp::Text("-5 minutes"), now),
            Err(TimestampError::Unparsable)
        );
        assert_eq!(parse_timestamp(RawTimestamp::Text("now"), now), Ok(now));
        assert_eq!(
            parse_timestamp(RawTimestamp::Number(1_425_652_437.25), now),
            Ok(T + NANOS_PER_SECOND / 4)
        );
        assert_eq!(
            parse_timestamp(RawTimestamp::Text("1425652437.000001"), now),
            Ok(T + 1000)
        );
    }

    #[test]
    fn before_epoch_is_refused() {
        assert_eq!(
            parse_timestamp(RawTimestamp::Text("1915-03-06T14:33:57"), T),
            Err(TimestampError::BeforeEpoch)
        );
        assert_eq!(
            parse_timestamp(RawTimestamp::Number(-1.0), T),
            Err(TimestampError::BeforeEpoch)
        );
    }

    #[test]
    fn a_reused_writer_matches_a_fresh_one() {
        let mut writer = IsoWriter::new();
        let mut reused = Vec::new();
        let mut fresh = Vec::new();
        // Across days, months, a leap day, back in time and sub-seconds.
        let mut t = 1_330_473_600 * NANOS_PER_SECOND - 5 * NANOS_PER_SECOND;
        for step in [1, 86_399, 2, 86_400 * 31, -86_400 * 40, 1] {
            t += step * NANOS_PER_SECOND + step.rem_euclid(3) * 1_500;
            writer.write(&mut reused, t);
            write_iso8601(&mut fresh, t);
            reused.push(b' ');
            fresh.push(b' ');
        }
        assert_eq!(
            String::from_utf8(reused).unwrap(),
            String::from_utf8(fresh).unwrap()
        );
        let mut one = Vec::new();
        write_iso8601(&mut one, 1_330_473_600 * NANOS_PER_SECOND);
        assert_eq!(one, b"2012-02-29T00:00:00+00:00");
    }

    #[test]
    fn output_matches_gnocchi() {
        assert_eq!(iso8601(T), "2015-03-06T14:33:57+00:00");
        assert_eq!(iso8601(T + 500_000_000), "2015-03-06T14:33:57.500000+00:00");
        assert_eq!(iso8601(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(
            iso8601(951_782_400 * NANOS_PER_SECOND),
            "2000-02-29T00:00:00+00:00"
        );
    }
}
