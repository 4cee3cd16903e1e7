//! JSON written as Gnocchi (Python's `json.dumps`) writes it: `", "` between
//! items, `": "` after keys, floats in Python's `repr` layout. Clients and
//! Gnocchi's tests match raw substrings such as `"name": "medium"`.
//!
//! serde_json turns non-finite floats into `null` before a formatter sees
//! them, so bodies that carry measures (where `NaN` and `Infinity` must appear
//! as bare tokens) are written with [`write_python_float`] directly.

use std::io;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::ser::Formatter;

use crate::time::{IsoWriter, ISO_MAX_LEN};

/// A body serialized with [`PythonFormatter`].
#[derive(Debug, Clone)]
pub(crate) struct Json<T>(pub(crate) T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match to_vec(&self.0) {
            Ok(body) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Err(err) => {
                tracing::error!(%err, "cannot serialize a response");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

/// Serializes `value` the way Python's `json.dumps` would.
pub(crate) fn to_vec<T: Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value.serialize(&mut serializer)?;
    Ok(out)
}

/// `json.dumps` separators and non-finite float tokens.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        write_python_float(writer, value)
    }
}

/// Rows `["<iso>", <granularity>, <value>]` of a measures answer, written
/// straight into the body: each row is assembled on the stack and appended
/// once (six small appends per row cost more than formatting it), and the
/// date part of the timestamps is formatted once per day.
pub(crate) struct MeasureRows {
    iso: IsoWriter,
    /// The granularity column, as JSON text.
    label: Vec<u8>,
    /// Whether a row was written: the next one needs a separator.
    any: bool,
}

/// Room for the longest row: `, ["` + timestamp + `", ` + label + `, ` +
/// value + `]` is under 100 bytes with a label of at most [`LABEL_MAX`].
const ROW_MAX: usize = 160;
const LABEL_MAX: usize = 40;

impl MeasureRows {
    /// Rows labelled with a granularity of `ns` nanoseconds (in seconds).
    pub(crate) fn seconds(ns: i64) -> MeasureRows {
        let mut label = Vec::with_capacity(24);
        let _ = write_python_float(&mut label, ns as f64 / 1e9);
        MeasureRows::labelled(label)
    }

    /// Rows labelled with a calendar grouping's letter (`"M"`), as Gnocchi
    /// passes the sampling through.
    pub(crate) fn calendar(grouping: impl std::fmt::Display) -> MeasureRows {
        MeasureRows::labelled(format!("\"{grouping}\"").into_bytes())
    }

    fn labelled(mut label: Vec<u8>) -> MeasureRows {
        label.truncate(LABEL_MAX);
        MeasureRows {
            iso: IsoWriter::new(),
            label,
            any: false,
        }
    }

    /// Continues after rows already in the body (`any`), or starts a list.
    pub(crate) fn after(mut self, any: bool) -> MeasureRows {
        self.any = any;
        self
    }

    /// Whether any row was written (by this writer or before it).
    pub(crate) fn any(&self) -> bool {
        self.any
    }

    /// Appends a row with a float value, Python-style.
    pub(crate) fn push(&mut self, out: &mut Vec<u8>, timestamp: i64, value: f64) {
        self.row(out, timestamp, |rest| {
            let _ = write_python_float(rest, value);
        });
    }

    fn row(&mut self, out: &mut Vec<u8>, timestamp: i64, value: impl FnOnce(&mut &mut [u8])) {
        let mut row = [0_u8; ROW_MAX];
        let mut text = [0_u8; ISO_MAX_LEN];
        let mut len = 0;
        let mut put = |row: &mut [u8; ROW_MAX], bytes: &[u8]| {
            row[len..len + bytes.len()].copy_from_slice(bytes);
            len += bytes.len();
        };
        if self.any {
            put(&mut row, b", ");
        }
        self.any = true;
        put(&mut row, b"[\"");
        let n = self.iso.write_into(&mut text, timestamp);
        put(&mut row, &text[..n]);
        put(&mut row, b"\", ");
        put(&mut row, &self.label);
        put(&mut row, b", ");
        let mut rest = &mut row[len..];
        value(&mut rest);
        len = ROW_MAX - rest.len();
        row[len] = b']';
        out.extend_from_slice(&row[..=len]);
    }
}

/// Magnitudes for which ryu's shortest form is already Python's `repr`:
/// both write fixed notation there (Python from 1e-4, ryu from 1e-5; both
/// up to 1e16) with the same digits and a `.0` on integers.
const RYU_FIXED_MIN: f64 = 1e-4;
const RYU_FIXED_MAX: f64 = 1e16;

/// A float as Python's `repr` writes it in JSON: shortest round-trip digits,
/// fixed notation for decimal exponents in [-4, 16), else `1e+22` style;
/// `NaN` and `Infinity` bare.
pub(crate) fn write_python_float<W: ?Sized + io::Write>(
    writer: &mut W,
    value: f64,
) -> io::Result<()> {
    if value.is_nan() {
        return writer.write_all(b"NaN");
    }
    if value.is_infinite() {
        return writer.write_all(if value > 0.0 {
            b"Infinity"
        } else {
            b"-Infinity"
        });
    }
    let mut buffer = ryu::Buffer::new();
    let shortest = buffer.format_finite(value);
    if (RYU_FIXED_MIN..RYU_FIXED_MAX).contains(&value.abs()) {
        // Where ryu and Python both use fixed notation their text is the same.
        return writer.write_all(shortest.as_bytes());
    }
    let mut out = [0_u8; 40];
    let len = python_repr(shortest.as_bytes(), &mut out);
    writer.write_all(&out[..len])
}

/// [`write_python_float`] as a `String`, for messages and links.
pub(crate) fn python_float(value: f64) -> String {
    let mut text = Vec::with_capacity(24);
    // Writing to a Vec cannot fail, and the text is ASCII.
    let _ = write_python_float(&mut text, value);
    String::from_utf8_lossy(&text).into_owned()
}

/// Rewrites ryu's shortest form (`1e22`, `1.5e-5`, `0.001`) in Python's layout.
fn python_repr(shortest: &[u8], out: &mut [u8; 40]) -> usize {
    let (negative, text) = match shortest.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, shortest),
    };
    let (mantissa, exponent) = match text.iter().position(|&b| b == b'e') {
        Some(at) => (
            &text[..at],
            std::str::from_utf8(&text[at + 1..])
                .ok()
                .and_then(|e| e.parse::<i32>().ok())
                .unwrap_or(0),
        ),
        None => (text, 0),
    };
    // Significant digits and the position of the decimal point among them.
    let mut digits = [0_u8; 24];
    let mut count = 0;
    let mut point = None;
    for &byte in mantissa {
        if byte == b'.' {
            point = Some(count);
        } else if count < digits.len() {
            digits[count] = byte;
            count += 1;
        }
    }
    let mut point = point.unwrap_or(count) as i32 + exponent;
    let mut start = 0;
    while start < count && digits[start] == b'0' {
        start += 1;
        point -= 1;
    }
    let mut end = count;
    while end > start && digits[end - 1] == b'0' {
        end -= 1;
    }
    let mut len = 0;
    let mut push = |out: &mut [u8; 40], byte: u8| {
        out[len] = byte;
        len += 1;
    };
    if negative {
        push(out, b'-');
    }
    let significant = &digits[start..end];
    if significant.is_empty() {
        for &byte in b"0.0" {
            push(out, byte);
        }
        return len;
    }
    let exponent10 = point - 1;
    if (-4..16).contains(&exponent10) {
        if point <= 0 {
            push(out, b'0');
            push(out, b'.');
            for _ in 0..-point {
                push(out, b'0');
            }
            for &digit in significant {
                push(out, digit);
            }
        } else {
            let point = point as usize;
            for (i, &digit) in significant.iter().enumerate() {
                if i == point {
                    push(out, b'.');
                }
                push(out, digit);
            }
            if point >= significant.len() {
                for _ in significant.len()..point {
                    push(out, b'0');
                }
                push(out, b'.');
                push(out, b'0');
            }
        }
    } else {
        push(out, significant[0]);
        if significant.len() > 1 {
            push(out, b'.');
            for &digit in &significant[1..] {
                push(out, digit);
            }
        }
        push(out, b'e');
        push(out, if exponent10 < 0 { b'-' } else { b'+' });
        let magnitude = exponent10.unsigned_abs();
        if magnitude >= 100 {
            push(out, b'0' + (magnitude / 100) as u8);
        }
        push(out, b'0' + (magnitude / 10 % 10) as u8);
        push(out, b'0' + (magnitude % 10) as u8);
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dumps<T: Serialize>(value: &T) -> String {
        String::from_utf8(to_vec(value).unwrap()).unwrap()
    }

    #[test]
    fn separators_match_python() {
        assert_eq!(
            dumps(&json!({"name": "medium", "points": [1, 2.5, null]})),
            r#"{"name": "medium", "points": [1, 2.5, null]}"#
        );
    }

    #[test]
    fn measure_rows_join_series_and_label_them() {
        let t = 1_425_652_437_000_000_000; // 2015-03-06T14:33:57Z
        let mut out = b"[".to_vec();
        let mut rows = MeasureRows::seconds(60_000_000_000);
        rows.push(&mut out, t, 1.5);
        let mut more = MeasureRows::calendar("M").after(rows.any());
        more.push(&mut out, t + 1_000, 1.0);
        more.push(&mut out, t, f64::NAN);
        out.push(b']');
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[[\"2015-03-06T14:33:57+00:00\", 60.0, 1.5], \
             [\"2015-03-06T14:33:57.000001+00:00\", \"M\", 1.0], \
             [\"2015-03-06T14:33:57+00:00\", \"M\", NaN]]"
        );
    }

    #[test]
    fn ryus_fixed_range_is_pythons() {
        let check = |value: f64| {
            let mut buffer = ryu::Buffer::new();
            let shortest = buffer.format_finite(value);
            let mut out = [0_u8; 40];
            let len = python_repr(shortest.as_bytes(), &mut out);
            let mut fast = Vec::new();
            write_python_float(&mut fast, value).unwrap();
            assert_eq!(fast, &out[..len], "{value:e}");
        };
        let mut bits = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..200_000 {
            bits ^= bits << 13;
            bits ^= bits >> 7;
            bits ^= bits << 17;
            let value = f64::from_bits(bits);
            if value.is_finite() {
                check(value);
                // Magnitudes around the range, and short decimals.
                check(value.abs().fract() * 1e-3);
                check((bits % 2_000_000) as f64 / 100.0 - 10_000.0);
            }
        }
        for exponent in -8..20 {
            let p = 10f64.powi(exponent);
            for value in [p, p.next_up(), p.next_down(), -p, 1.5 * p, 9.99 * p] {
                check(value);
            }
        }
    }

    #[test]
    fn floats_match_python_repr() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (1234.2, "1234.2"),
            (1e22, "1e+22"),
            (1e16, "1e+16"),
            (123456789012345.0, "123456789012345.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (-2.5e300, "-2.5e+300"),
            (5e-324, "5e-324"),
            (43.1, "43.1"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (value, python) in cases {
            let mut out = Vec::new();
            write_python_float(&mut out, *value).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), *python, "{value:e}");
            if value.is_finite() {
                assert_eq!(dumps(value), *python, "{value:e}");
            }
        }
    }
}
