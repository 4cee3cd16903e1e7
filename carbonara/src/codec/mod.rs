//! Bytes of the stored objects: aggregated splits and unaggregated tails.
//!
//! # Brief overview
//!
//! A [`SplitBlock`] is every method of one `(metric, granularity, split)`:
//! a presence bitmap over the split's slots plus one [`Column`] of values per
//! method, so one update writes one object. A [`TailBlock`] is a metric's raw
//! measures kept for the back window. [`encode_split`]/[`decode_split`] and
//! [`encode_tail`]/[`decode_tail`] turn them into bytes and back, bit-exactly
//! (NaN payloads, `-0.0` and infinities included).
//!
//! Decoding treats its input as hostile: any truncation or corruption is a
//! [`DecodeError`], never a panic, and no allocation is sized from a length
//! field beyond what [`MAX_SLOTS`], [`MAX_COLUMNS`], [`MAX_DECODED_VALUES`],
//! [`MAX_TAIL_POINTS`] and the remaining input allow.
//!
//! # Byte layout (version 1)
//!
//! `varint` is unsigned LEB128 (at most 10 bytes), `ivarint` a zigzag varint,
//! `u64le` 8 little-endian bytes. Bit-packed data is LSB-first.
//!
//! ```text
//! split   = "CBSP" version:u8=1 start:ivarint granularity:ivarint slots:varint
//!           presence ncols:varint column*ncols
//! tail    = "CBTL" version:u8=1 n:varint [ints(timestamps) values(n)]   (the [] only if n > 0)
//!
//! presence = 0x00                                 all slots present
//!          | 0x01 nruns:varint len:varint*nruns   alternating absent/present run
//!                                                 lengths, starting absent (may be 0),
//!                                                 summing to slots
//!          | 0x02 bytes[ceil(slots/8)]            bit i = slot i (LSB-first)
//!
//! column   = name_len:varint name:utf8 payload_len:varint values(present count)
//!                                                 (payload_len lets a reader skip a method)
//! values(n)= 0x00                                 n == 0
//!          | 0x01 bits:u64le                      all n values have these bits
//!          | 0x02 k:u8 ints(n) [res:ints(n)] nexc:varint exc*nexc
//!                                                 value = int / 10^(k & 0x7f) (at most
//!                                                 10^6); if k & 0x80, its bits plus res
//!                                                 (as i64, wrapping); except at listed
//!                                                 positions, which hold raw bits
//!          | 0x03 first:u64le xblock*ceil(n/128)  Gorilla-style XOR with the previous
//!                                                 value's bits
//!          | 0x04 ints(n) nexc:varint exc*nexc   value bits = ordered(int), the map
//!                                                 x ^ ((x >> 63) & i64::MAX) that sorts
//!                                                 like the floats (NaNs are exceptions)
//!          | 0x05 num:varint den:varint nexc:varint exc*nexc
//!                                                 value = column[num] / column[den], two
//!                                                 other columns of this split that are not
//!                                                 0x05 themselves (see derived.rs), except
//!                                                 at listed positions
//! exc      = head:varint [bits:u64le]             position = previous position + 1
//!                                                 + (head >> 1); if head & 1 the bits
//!                                                 repeat the previous exception's
//!                                                 (initially f64::NAN's,
//!                                                 0x7ff8000000000000) and are omitted
//! xblock   = 0x00                                 all XORs zero (repeat the value)
//!          | w:u8 shift:u8 packed(w)              xor = packed << shift, w + shift <= 64
//!
//! ints(n)  = order:u8 [acc:ivarint if order >= 1] [delta:ivarint if order == 2]
//!            iblock*ceil(n/128)
//! iblock   = w:u8 min:ivarint packed(w)           d[i] = min + packed[i]
//!     order 0: value[i] = d[i]
//!     order 1: acc += d[i]; value[i] = acc
//!     order 2: delta += d[i]; acc += delta; value[i] = acc      (all i64 wrapping)
//! packed(w)= ceil(m*w/8) bytes holding the block's m values of w bits each
//! ```
//!
//! A reader that sees another version returns [`DecodeError::UnknownVersion`],
//! so a version 2 can be introduced beside this one and read by dispatch on
//! the version byte.
//!
//! # Why this shape
//!
//! Gnocchi values are mostly decimals as sent by clients (`12.34`) and
//! counters. Such a column is stored as integers scaled by `10^k`,
//! delta-coded, frame-of-reference bit-packed in blocks of 128: a random walk
//! in steps of 0.01 costs about 1.03 bytes per point, a counter growing by
//! 0..=20 a step 0.65, a constant series nine bytes in all. Sums and means of decimals are off by a
//! few ULPs from the short decimal (float rounding), so a second stream of
//! ULP residuals fixes them up at a few bits each. Values that do not survive
//! the scaling (NaN, `-0.0`, ...) ride along as exceptions. Columns that are
//! not decimal at all (standard deviations, means of odd counts) are coded
//! as order-preserving integers of their bits, difference coded: values of
//! similar magnitude share their high bits even across a power of two, where
//! Gorilla's XOR loses everything; XOR remains for what that does not fit.
//! A column that is the quotient of two others (a mean: sum / count) is
//! stored as that relation, which makes the costliest column nearly free.
//! Block decoding is one monomorphized unpack per bit width and one
//! branch-free loop, which keeps decoding above 1 GB/s of `f64` output.
//! There is no checksum: the object stores below verify their own.

mod bitpack;
mod bytes;
mod column;
mod derived;
mod presence;

#[cfg(test)]
mod tests;

use bytes::{put_ivarint, put_varint, Reader};

/// Leading bytes of an encoded split.
const SPLIT_MAGIC: &[u8; 4] = b"CBSP";
/// Leading bytes of an encoded tail.
const TAIL_MAGIC: &[u8; 4] = b"CBTL";
/// The version this module writes (and the only one it reads so far).
const VERSION: u8 = 1;

/// Most slots a split may have: 18 times Gnocchi's 3600, small enough that a
/// lying header cannot make the decoder allocate more than a few MiB per column.
pub const MAX_SLOTS: u32 = 1 << 16;
/// Most methods (columns) in one split: every method with its `rate:` twin
/// and all 99 percentiles stays well below.
pub const MAX_COLUMNS: usize = 1024;
/// Most values (present slots times columns) one split may decode to: 32 MiB
/// of `f64`, bounding memory whatever the header claims.
pub const MAX_DECODED_VALUES: usize = 1 << 22;
/// Most points in one tail (64 MiB decoded).
pub const MAX_TAIL_POINTS: usize = 1 << 22;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input does not start with the magic of the expected object kind.
    #[error("bad magic: not a carbonara {expected} object")]
    BadMagic {
        /// `"split"` or `"tail"`.
        expected: &'static str,
    },
    /// Written by a newer (or unknown) format version.
    #[error("unknown format version {0}")]
    UnknownVersion(u8),
    /// The input ends before the structure it announces.
    #[error("truncated input")]
    Truncated,
    /// A count in the input exceeds what this reader accepts.
    #[error("{what} is {value}, above the limit of {limit}")]
    LimitExceeded {
        /// Which count.
        what: &'static str,
        /// The value read.
        value: u64,
        /// The largest value accepted there.
        limit: u64,
    },
    /// The input is structurally invalid.
    #[error("corrupt input: {reason}")]
    Corrupt {
        /// What was found wrong.
        reason: &'static str,
    },
}

/// Every method of one `(metric, granularity, split)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SplitBlock {
    /// Aligned start of the split, UTC nanoseconds.
    pub start: i64,
    /// Granularity in nanoseconds.
    pub granularity: i64,
    /// Capacity in slots (Gnocchi uses 3600); at most [`MAX_SLOTS`].
    pub slots: u32,
    /// Bitset, LSB-first words: bit `i` set means slot `i` holds a value.
    /// Length `ceil(slots / 64)`; bits at or beyond `slots` are clear.
    pub present: Vec<u64>,
    /// One column per method, each with one value per present slot.
    pub columns: Vec<Column>,
}

/// The values of one method across the present slots of a split.
///
/// Equality compares values by bit pattern, so `NaN == NaN` and
/// `0.0 != -0.0`: what round-tripping must preserve.
#[derive(Debug, Clone, Default)]
pub struct Column {
    /// The aggregation method, e.g. `"mean"` or `"rate:95pct"`.
    pub method: String,
    /// One value per present slot, in slot order; NaN means no value.
    pub values: Vec<f64>,
}

impl PartialEq for Column {
    fn eq(&self, other: &Self) -> bool {
        self.method == other.method && bits_eq(&self.values, &other.values)
    }
}

impl Eq for Column {}

/// A metric's unaggregated measures.
///
/// Equality compares values by bit pattern, like [`Column`].
#[derive(Debug, Clone, Default)]
pub struct TailBlock {
    /// UTC nanoseconds, strictly increasing.
    pub timestamps: Vec<i64>,
    /// One value per timestamp.
    pub values: Vec<f64>,
}

impl PartialEq for TailBlock {
    fn eq(&self, other: &Self) -> bool {
        self.timestamps == other.timestamps && bits_eq(&self.values, &other.values)
    }
}

impl Eq for TailBlock {}

fn bits_eq(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

impl SplitBlock {
    /// Number of present slots (the length every column must have).
    pub fn present_count(&self) -> usize {
        self.present.iter().map(|w| w.count_ones() as usize).sum()
    }
}

fn check_header(
    r: &mut Reader<'_>,
    magic: &[u8; 4],
    expected: &'static str,
) -> Result<(), DecodeError> {
    if r.take(4).map_err(|_| DecodeError::BadMagic { expected })? != magic {
        return Err(DecodeError::BadMagic { expected });
    }
    match r.u8()? {
        VERSION => Ok(()),
        v => Err(DecodeError::UnknownVersion(v)),
    }
}

/// Serializes a split.
///
/// # Panics
///
/// If the block breaks its invariants, which are the caller's to keep:
/// `slots > MAX_SLOTS`, more than [`MAX_COLUMNS`] columns or
/// [`MAX_DECODED_VALUES`] values, `present` of the wrong length or with bits
/// beyond `slots`, or a column whose length differs from the present count.
/// Failing here beats writing an object no reader would accept.
pub fn encode_split(block: &SplitBlock) -> Vec<u8> {
    let slots = block.slots as usize;
    assert!(
        block.slots <= MAX_SLOTS,
        "split has {slots} slots, above {MAX_SLOTS}"
    );
    assert_eq!(
        block.present.len(),
        slots.div_ceil(64),
        "present bitset length"
    );
    if slots % 64 != 0 {
        if let Some(&last) = block.present.last() {
            assert_eq!(last >> (slots % 64), 0, "present bit beyond the last slot");
        }
    }
    let count = block.present_count();
    assert!(block.columns.len() <= MAX_COLUMNS, "too many columns");
    assert!(
        block.columns.len() * count <= MAX_DECODED_VALUES,
        "too many values in one split"
    );
    let mut out = Vec::with_capacity(64 + block.columns.len() * (16 + count * 2));
    out.extend_from_slice(SPLIT_MAGIC);
    out.push(VERSION);
    put_ivarint(&mut out, block.start);
    put_ivarint(&mut out, block.granularity);
    put_varint(&mut out, u64::from(block.slots));
    presence::encode(&mut out, &block.present, slots, count);
    put_varint(&mut out, block.columns.len() as u64);
    for c in &block.columns {
        assert_eq!(
            c.values.len(),
            count,
            "column {:?} has {} values for {count} present slots",
            c.method,
            c.values.len()
        );
    }
    let derived = derived::find(&block.columns);
    let mut payload = Vec::new();
    let mut plain = Vec::new();
    for (c, d) in block.columns.iter().zip(&derived) {
        put_varint(&mut out, c.method.len() as u64);
        out.extend_from_slice(c.method.as_bytes());
        payload.clear();
        match d {
            Some(q) => {
                derived::encode(&mut payload, q);
                // With exceptions, the plain encoding may still be smaller.
                if !q.exceptions.is_empty() {
                    plain.clear();
                    column::encode_column(&mut plain, &c.values);
                    if plain.len() < payload.len() {
                        std::mem::swap(&mut payload, &mut plain);
                    }
                }
            }
            None => column::encode_column(&mut payload, &c.values),
        }
        put_varint(&mut out, payload.len() as u64);
        out.extend_from_slice(&payload);
    }
    out
}

/// Deserializes a split written by [`encode_split`].
pub fn decode_split(bytes: &[u8]) -> Result<SplitBlock, DecodeError> {
    let mut block = SplitBlock::default();
    decode_split_into(bytes, &mut block)?;
    Ok(block)
}

/// Like [`decode_split`], reusing the allocations already in `block` (its
/// bitset, method names and value vectors), for readers decoding many splits.
/// On error `block` holds unspecified (but valid) contents.
pub fn decode_split_into(bytes: &[u8], block: &mut SplitBlock) -> Result<(), DecodeError> {
    let mut r = Reader::new(bytes);
    check_header(&mut r, SPLIT_MAGIC, "split")?;
    block.start = r.ivarint()?;
    block.granularity = r.ivarint()?;
    let slots = r.len("slots", MAX_SLOTS as usize)?;
    block.slots = slots as u32;
    let count = presence::decode(&mut r, slots, &mut block.present)?;
    // Each column takes at least three bytes: name length, payload length, tag.
    let ncols = r.len("columns", MAX_COLUMNS.min(r.remaining() / 3))?;
    if ncols * count > MAX_DECODED_VALUES {
        return Err(DecodeError::LimitExceeded {
            what: "decoded values",
            value: (ncols * count) as u64,
            limit: MAX_DECODED_VALUES as u64,
        });
    }
    block.columns.truncate(ncols);
    block.columns.resize_with(ncols, Column::default);
    // Pass 1: plain columns; derived ones are remembered (index, payload).
    let mut pending: Vec<(usize, Reader<'_>)> = Vec::new();
    for (j, c) in block.columns.iter_mut().enumerate() {
        let name_len = r.len("method name length", r.remaining())?;
        let name = std::str::from_utf8(r.take(name_len)?).map_err(|_| DecodeError::Corrupt {
            reason: "method name is not UTF-8",
        })?;
        c.method.clear();
        c.method.push_str(name);
        let payload_len = r.len("column length", r.remaining())?;
        let mut pr = Reader::new(r.take(payload_len)?);
        if count > 0 && pr.peek() == Some(derived::TAG_QUOTIENT) {
            pending.push((j, pr));
            continue;
        }
        column::decode_column(&mut pr, count, &mut c.values)?;
        if !pr.is_empty() {
            return Err(DecodeError::Corrupt {
                reason: "trailing bytes in a column",
            });
        }
    }
    // Pass 2: quotients of plain columns.
    let derived_columns: Vec<usize> = pending.iter().map(|(j, _)| *j).collect();
    for (j, mut pr) in pending {
        pr.u8()?;
        let (num, den) = derived::references(&mut pr, ncols)?;
        if [num, den].iter().any(|x| derived_columns.contains(x)) {
            return Err(DecodeError::Corrupt {
                reason: "quotient of a derived column",
            });
        }
        let mut values = std::mem::take(&mut block.columns[j].values);
        let decoded = derived::decode(
            &mut pr,
            &block.columns[num].values,
            &block.columns[den].values,
            &mut values,
        );
        block.columns[j].values = values;
        decoded?;
        if !pr.is_empty() {
            return Err(DecodeError::Corrupt {
                reason: "trailing bytes in a column",
            });
        }
    }
    if !r.is_empty() {
        return Err(DecodeError::Corrupt {
            reason: "trailing bytes after the last column",
        });
    }
    Ok(())
}

/// Serializes a tail.
///
/// # Panics
///
/// If `timestamps` and `values` differ in length, hold more than
/// [`MAX_TAIL_POINTS`] points, or the timestamps are not strictly increasing
/// (the decoder would reject the object).
pub fn encode_tail(block: &TailBlock) -> Vec<u8> {
    let n = block.timestamps.len();
    assert_eq!(
        n,
        block.values.len(),
        "tail timestamps and values differ in length"
    );
    assert!(
        n <= MAX_TAIL_POINTS,
        "tail has {n} points, above {MAX_TAIL_POINTS}"
    );
    assert!(
        block.timestamps.windows(2).all(|w| w[0] < w[1]),
        "tail timestamps not strictly increasing"
    );
    let mut out = Vec::with_capacity(16 + n * 3);
    out.extend_from_slice(TAIL_MAGIC);
    out.push(VERSION);
    put_varint(&mut out, n as u64);
    if n > 0 {
        column::encode_ints(&mut out, &block.timestamps);
        column::encode_column(&mut out, &block.values);
    }
    out
}

/// Deserializes a tail written by [`encode_tail`].
pub fn decode_tail(bytes: &[u8]) -> Result<TailBlock, DecodeError> {
    let mut r = Reader::new(bytes);
    check_header(&mut r, TAIL_MAGIC, "tail")?;
    // Every 128 timestamps take at least two bytes (width and minimum).
    let n = r.len("tail points", MAX_TAIL_POINTS.min(r.remaining() * 64))?;
    let mut block = TailBlock {
        timestamps: vec![0; n],
        values: Vec::new(),
    };
    if n > 0 {
        let ts = &mut block.timestamps;
        column::decode_ints(&mut r, n, |start, b| {
            ts[start..start + b.len()].copy_from_slice(b)
        })?;
        if !block.timestamps.windows(2).all(|w| w[0] < w[1]) {
            return Err(DecodeError::Corrupt {
                reason: "tail timestamps not strictly increasing",
            });
        }
        column::decode_column(&mut r, n, &mut block.values)?;
    }
    if !r.is_empty() {
        return Err(DecodeError::Corrupt {
            reason: "trailing bytes after the tail",
        });
    }
    Ok(block)
}
