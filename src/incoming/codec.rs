//! Binary encoding shared by the drivers. Everything is little-endian.
//!
//! A *measures body* (a Redis list entry, or the body of a log record):
//!
//! ```text
//! 0  u8   kind = 1
//! 1  [u8; 3] zero
//! 4  u32  metric
//! 8  u32  count
//! 12 u32  zero
//! 16 i64 × count  timestamps (UTC ns)
//! .. f64 × count  values
//! ```
//!
//! An *ack body* (log only): `u8 kind = 2, [u8; 3] zero, u32 n`, then `n`
//! entries of `u32 metric, u32 segment, u64 offset`: every record of `metric`
//! that precedes the ack record in the log and sits at or before
//! `(segment, offset)` is acknowledged. `forget` writes `(u32::MAX, u64::MAX)`.
//!
//! A *log record* frames a body: `u32 body_len, u32 crc32(body), body`.

use super::{Measures, MetricSeq};

pub(crate) const KIND_MEASURES: u8 = 1;
pub(crate) const KIND_ACK: u8 = 2;
/// `len` + `crc`.
pub(crate) const RECORD_HEADER: usize = 8;
const MEASURES_HEAD: usize = 16;
const ACK_HEAD: usize = 8;
const ACK_ENTRY: usize = 16;
/// Bodies above this are treated as corrupt (a torn length field).
pub(crate) const MAX_BODY: usize = 1 << 30;

/// Size of the measures body for `count` measures.
pub(crate) fn measures_body_len(count: usize) -> usize {
    MEASURES_HEAD + 16 * count
}

/// Appends a measures body to `buf`. `timestamps` and `values` have equal length.
pub(crate) fn put_measures_body(
    buf: &mut Vec<u8>,
    metric: MetricSeq,
    timestamps: &[i64],
    values: &[f64],
) {
    debug_assert_eq!(timestamps.len(), values.len());
    let count = timestamps.len();
    let start = buf.len();
    buf.resize(start + measures_body_len(count), 0);
    let out = &mut buf[start..];
    out[0] = KIND_MEASURES;
    out[4..8].copy_from_slice(&metric.to_le_bytes());
    out[8..12].copy_from_slice(&(count as u32).to_le_bytes());
    let (ts_out, vs_out) = out[MEASURES_HEAD..].split_at_mut(8 * count);
    for (chunk, t) in ts_out.chunks_exact_mut(8).zip(timestamps) {
        chunk.copy_from_slice(&t.to_le_bytes());
    }
    for (chunk, v) in vs_out.chunks_exact_mut(8).zip(values) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
}

/// Appends an ack body to `buf`.
pub(crate) fn put_ack_body(buf: &mut Vec<u8>, entries: &[(MetricSeq, u32, u64)]) {
    buf.reserve(ACK_HEAD + ACK_ENTRY * entries.len());
    buf.extend_from_slice(&[KIND_ACK, 0, 0, 0]);
    buf.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (metric, segment, offset) in entries {
        buf.extend_from_slice(&metric.to_le_bytes());
        buf.extend_from_slice(&segment.to_le_bytes());
        buf.extend_from_slice(&offset.to_le_bytes());
    }
}

/// Appends a framed record whose body `body` writes; returns the record length.
pub(crate) fn put_record(buf: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; RECORD_HEADER]);
    body(buf);
    let body_len = buf.len() - start - RECORD_HEADER;
    let crc = crc32fast::hash(&buf[start + RECORD_HEADER..]);
    buf[start..start + 4].copy_from_slice(&(body_len as u32).to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    buf.len() - start
}

/// A record read back from a log.
#[derive(Debug)]
pub(crate) enum Frame<'a> {
    /// A whole record whose checksum matches: its body and total length.
    Record { body: &'a [u8], len: usize },
    /// Not enough bytes, a length out of range, or a checksum mismatch.
    Invalid(&'static str),
}

/// Reads the framed record at the start of `buf`.
pub(crate) fn frame(buf: &[u8]) -> Frame<'_> {
    if buf.len() < RECORD_HEADER {
        return Frame::Invalid("truncated record header");
    }
    let body_len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    if !(ACK_HEAD..=MAX_BODY).contains(&body_len) {
        return Frame::Invalid("record length out of range");
    }
    let Some(body) = buf.get(RECORD_HEADER..RECORD_HEADER + body_len) else {
        return Frame::Invalid("truncated record body");
    };
    if crc32fast::hash(body) != crc {
        return Frame::Invalid("record checksum mismatch");
    }
    Frame::Record {
        body,
        len: RECORD_HEADER + body_len,
    }
}

/// A decoded body.
#[derive(Debug)]
pub(crate) enum Body<'a> {
    Measures(MeasuresView<'a>),
    Ack(AckView<'a>),
}

/// Parses a body (already checksummed for log records).
pub(crate) fn body(bytes: &[u8]) -> Result<Body<'_>, &'static str> {
    match bytes.first() {
        Some(&KIND_MEASURES) => measures(bytes).map(Body::Measures),
        Some(&KIND_ACK) => {
            if bytes.len() < ACK_HEAD {
                return Err("truncated ack head");
            }
            let n = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize;
            let entries = &bytes[ACK_HEAD..];
            if entries.len() != n.checked_mul(ACK_ENTRY).ok_or("ack count overflow")? {
                return Err("ack length does not match its count");
            }
            Ok(Body::Ack(AckView { entries }))
        }
        _ => Err("unknown record kind"),
    }
}

/// Parses a measures body.
pub(crate) fn measures(bytes: &[u8]) -> Result<MeasuresView<'_>, &'static str> {
    if bytes.len() < MEASURES_HEAD || bytes[0] != KIND_MEASURES {
        return Err("not a measures body");
    }
    let metric = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let count = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    if bytes.len() != measures_body_len(count) {
        return Err("measures length does not match their count");
    }
    let (timestamps, values) = bytes[MEASURES_HEAD..].split_at(8 * count);
    Ok(MeasuresView {
        metric,
        count,
        timestamps,
        values,
    })
}

/// A measures body, not yet copied out.
#[derive(Debug)]
pub(crate) struct MeasuresView<'a> {
    pub(crate) metric: MetricSeq,
    pub(crate) count: usize,
    timestamps: &'a [u8],
    values: &'a [u8],
}

impl MeasuresView<'_> {
    /// Appends the measures to `out`.
    pub(crate) fn extend_into(&self, out: &mut Measures) {
        out.timestamps.reserve(self.count);
        out.values.reserve(self.count);
        out.timestamps.extend(
            self.timestamps
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))),
        );
        out.values.extend(
            self.values
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))),
        );
    }
}

/// An ack body's entries.
#[derive(Debug)]
pub(crate) struct AckView<'a> {
    entries: &'a [u8],
}

impl AckView<'_> {
    /// `(metric, segment, offset)` entries.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (MetricSeq, u32, u64)> + '_ {
        self.entries.chunks_exact(ACK_ENTRY).map(|e| {
            (
                u32::from_le_bytes(e[0..4].try_into().expect("4 bytes")),
                u32::from_le_bytes(e[4..8].try_into().expect("4 bytes")),
                u64::from_le_bytes(e[8..16].try_into().expect("8 bytes")),
            )
        })
    }
}
