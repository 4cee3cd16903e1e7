//! Compression of one column of `f64` and of `i64` streams.
//!
//! See the module documentation of [`super`] for the byte layout. The encoder
//! tries the applicable encodings and keeps the smallest; the decoder works a
//! block of [`BLOCK`] values at a time with no per-value branch on the path.

use super::bitpack::{pack, packed_len, unpack, width, BLOCK};
use super::bytes::{put_ivarint, put_varint, Reader};
use super::DecodeError;
use std::cell::RefCell;

const TAG_EMPTY: u8 = 0;
const TAG_CONST: u8 = 1;
const TAG_DECIMAL: u8 = 2;
const TAG_XOR: u8 = 3;
const TAG_ORDERED: u8 = 4;

/// Largest decimal exponent tried: values with up to 6 decimals (Gnocchi
/// clients rarely send more, and beyond that the integers lose their edge).
const MAX_SCALE: usize = 6;
const POW10: [f64; MAX_SCALE + 1] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6];

/// Set in the scale byte when a stream of ULP residuals follows the integers.
const RESIDUAL_FLAG: u8 = 0x80;

/// Largest residual, in ULPs, kept out of the exception list: a few ULPs is
/// float rounding in sums and means; more means the value is not a decimal
/// at this scale.
const MAX_RESIDUAL: u64 = 1 << 12;

/// Scaled magnitudes at or above this are not exactly representable as
/// consecutive integers in `f64`, so such values go to the exception list.
const EXACT_INT_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53

thread_local! {
    /// Encoder buffers of this thread, reused across columns and splits so
    /// that encoding a split allocates next to nothing. Each is borrowed by
    /// one function only, never re-entrantly.
    static INTS: RefCell<Vec<i64>> = const { RefCell::new(Vec::new()) };
    static RESIDUALS: RefCell<Vec<i64>> = const { RefCell::new(Vec::new()) };
    static DIFFS: RefCell<Vec<i64>> = const { RefCell::new(Vec::new()) };
    static CANDIDATE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn corrupt(reason: &'static str) -> DecodeError {
    DecodeError::Corrupt { reason }
}

// ---------------------------------------------------------------- i64 streams

/// Rewrites `vals` as the order-`order` differences the decoder prefix-sums
/// back, returning the header fields: the initial accumulator and (order 2)
/// the initial delta. Both are chosen so that `d[0]` (and for order 2 `d[1]`)
/// is zero, which keeps a large first value out of the first block's width.
fn differences(vals: &[i64], order: u8, d: &mut Vec<i64>) -> (i64, i64) {
    d.clear();
    match order {
        0 => {
            d.extend_from_slice(vals);
            (0, 0)
        }
        1 => {
            d.push(0);
            d.extend(vals.windows(2).map(|w| w[1].wrapping_sub(w[0])));
            (vals[0], 0)
        }
        _ => {
            let first_delta = vals.get(1).map_or(0, |v1| v1.wrapping_sub(vals[0]));
            d.push(0);
            let mut prev_delta = first_delta;
            for w in vals.windows(2) {
                let delta = w[1].wrapping_sub(w[0]);
                d.push(delta.wrapping_sub(prev_delta));
                prev_delta = delta;
            }
            (vals[0].wrapping_sub(first_delta), first_delta)
        }
    }
}

/// Frame of reference of one block: its minimum and the bit width of the
/// largest offset from it (offsets are computed wrapping, so any i64 range fits).
#[inline]
fn frame(block: &[i64]) -> (i64, u32) {
    let min = block.iter().copied().min().unwrap_or(0);
    let max = block.iter().copied().max().unwrap_or(0);
    (min, width(max.wrapping_sub(min) as u64))
}

fn varint_len(v: u64) -> usize {
    (width(v).max(1) as usize).div_ceil(7)
}

/// Packed sizes of the stream at orders 0, 1 and 2 (as [`differences`]
/// would write them), in one pass and without materializing the differences.
fn stream_sizes(vals: &[i64]) -> [usize; 3] {
    let first_delta = vals.get(1).map_or(0, |v1| v1.wrapping_sub(vals[0]));
    let base2 = vals[0].wrapping_sub(first_delta);
    let z = super::bytes::zigzag;
    let mut sizes = [
        0,
        varint_len(z(vals[0])),
        varint_len(z(base2)) + varint_len(z(first_delta)),
    ];
    let mut prev = vals[0];
    let mut prev_delta = 0i64;
    for (bi, b) in vals.chunks(BLOCK).enumerate() {
        let mut mn = [i64::MAX; 3];
        let mut mx = [i64::MIN; 3];
        for (j, &v) in b.iter().enumerate() {
            let delta = v.wrapping_sub(prev);
            let d = [v, delta, delta.wrapping_sub(prev_delta)];
            for o in 0..3 {
                mn[o] = mn[o].min(d[o]);
                mx[o] = mx[o].max(d[o]);
            }
            prev = v;
            // Order 2 starts from the first delta (so its d[1] is zero).
            prev_delta = if bi == 0 && j == 0 {
                first_delta
            } else {
                delta
            };
        }
        for o in 0..3 {
            let w = width(mx[o].wrapping_sub(mn[o]) as u64);
            sizes[o] += 1 + varint_len(z(mn[o])) + packed_len(b.len(), w);
        }
    }
    sizes
}

/// Appends `vals` (non-empty) as an integer stream, picking the difference
/// order (0 raw, 1 delta, 2 delta-of-delta) that packs smallest.
pub(super) fn encode_ints(out: &mut Vec<u8>, vals: &[i64]) {
    debug_assert!(!vals.is_empty());
    let sizes = stream_sizes(vals);
    let order = (0..=2u8).min_by_key(|&o| sizes[o as usize]).unwrap_or(0);
    DIFFS.with_borrow_mut(|d| {
        let (base, delta) = differences(vals, order, d);
        out.push(order);
        if order > 0 {
            put_ivarint(out, base);
        }
        if order > 1 {
            put_ivarint(out, delta);
        }
        let mut offs = [0u64; BLOCK];
        for b in d.chunks(BLOCK) {
            let (min, w) = frame(b);
            out.push(w as u8);
            put_ivarint(out, min);
            for (o, &v) in offs.iter_mut().zip(b) {
                *o = v.wrapping_sub(min) as u64;
            }
            pack(out, &offs[..b.len()], w);
        }
    });
}

/// Decodes an integer stream of `n` values, handing each decoded block to
/// `sink(start_index, values)`.
#[inline]
pub(super) fn decode_ints(
    r: &mut Reader<'_>,
    n: usize,
    mut sink: impl FnMut(usize, &[i64]),
) -> Result<(), DecodeError> {
    let order = r.u8()?;
    if order > 2 {
        return Err(corrupt("unknown difference order"));
    }
    let mut acc = if order > 0 { r.ivarint()? } else { 0 };
    let mut acc_delta = if order > 1 { r.ivarint()? } else { 0 };
    let mut offs = [0u64; BLOCK];
    let mut ints = [0i64; BLOCK];
    let mut start = 0;
    while start < n {
        let m = (n - start).min(BLOCK);
        let w = u32::from(r.u8()?);
        if w > 64 {
            return Err(corrupt("bit width above 64"));
        }
        let min = r.ivarint()?;
        unpack(r.take(packed_len(m, w))?, w, &mut offs);
        match order {
            0 => {
                for (x, &o) in ints.iter_mut().zip(&offs) {
                    *x = min.wrapping_add(o as i64);
                }
            }
            1 => {
                for (x, &o) in ints.iter_mut().zip(&offs[..m]) {
                    acc = acc.wrapping_add(min.wrapping_add(o as i64));
                    *x = acc;
                }
            }
            _ => {
                for (x, &o) in ints.iter_mut().zip(&offs[..m]) {
                    acc_delta = acc_delta.wrapping_add(min.wrapping_add(o as i64));
                    acc = acc.wrapping_add(acc_delta);
                    *x = acc;
                }
            }
        }
        sink(start, &ints[..m]);
        start += m;
    }
    Ok(())
}

// -------------------------------------------------------------- f64 columns

/// Appends the encoding of `vals` (tag byte first) to `out`.
pub(super) fn encode_column(out: &mut Vec<u8>, vals: &[f64]) {
    let Some(&first) = vals.first() else {
        out.push(TAG_EMPTY);
        return;
    };
    if is_constant(vals) {
        out.push(TAG_CONST);
        out.extend_from_slice(&first.to_bits().to_le_bytes());
        return;
    }
    // Decimals first: when they take under two bytes a value, neither float
    // coding can compete (both keep the noisy low mantissa bits), so skip them.
    // The best encoding so far is kept in place at `out[at..]`.
    let at = out.len();
    let mut best = None;
    if encode_decimal(out, vals) {
        let len = out.len() - at;
        if len < 2 * vals.len() {
            return;
        }
        best = Some(len);
    }
    CANDIDATE.with_borrow_mut(|candidate| {
        for encode in [encode_ordered, encode_xor] {
            candidate.clear();
            if encode(candidate, vals) && best.is_none_or(|len| candidate.len() < len) {
                out.truncate(at);
                out.extend_from_slice(candidate);
                best = Some(candidate.len());
            }
        }
    });
}

/// Whether every value has the bits of the first (true when empty). Written
/// as a branch-free fold so it vectorizes.
pub(super) fn is_constant(vals: &[f64]) -> bool {
    let first = vals.first().map_or(0, |v| v.to_bits());
    vals.iter().fold(0, |acc, v| acc | (v.to_bits() ^ first)) == 0
}

/// Smallest decimal exponent at which at most 1/16 of the values need an
/// exception (non-finite values always do), or `None`.
fn pick_scale(vals: &[f64]) -> Option<usize> {
    let budget = vals.len() / 16;
    let non_finite = vals.iter().filter(|v| !v.is_finite()).count();
    if non_finite == vals.len() {
        return None;
    }
    (0..=MAX_SCALE).find(|&k| {
        let mut misses = non_finite;
        for &v in vals.iter().filter(|v| v.is_finite()) {
            if scaled(v, k).is_none() {
                misses += 1;
                if misses > budget {
                    return false;
                }
            }
        }
        true
    })
}

/// `Some((i, r))` when `i / 10^k` gives back the bits of `v` give or take a
/// residual of `r` units in the last place (at most [`MAX_RESIDUAL`]): the
/// decoder computes exactly that expression and adds `r` to its bits. Sums
/// and means of decimals are within a few ULPs of a short decimal.
#[inline]
fn scaled(v: f64, k: usize) -> Option<(i64, i64)> {
    let s = v * POW10[k];
    if s.is_nan() || s.abs() >= EXACT_INT_LIMIT {
        return None;
    }
    // Rounds half away from zero without the libm call `f64::round` is on
    // baseline x86-64; a rare off-by-one here only costs an exception.
    let i = (s + 0.5f64.copysign(s)) as i64;
    let approx = (i as f64 / POW10[k]).to_bits() as i64;
    let r = (v.to_bits() as i64).wrapping_sub(approx);
    (r.unsigned_abs() <= MAX_RESIDUAL).then_some((i, r))
}

/// Writes the decimal encoding if a scale fits; returns false otherwise.
fn encode_decimal(out: &mut Vec<u8>, vals: &[f64]) -> bool {
    let Some(k) = pick_scale(vals) else {
        return false;
    };
    INTS.with_borrow_mut(|ints| {
        RESIDUALS.with_borrow_mut(|residuals| {
            ints.clear();
            residuals.clear();
            let mut exceptions = Vec::new();
            let mut prev = 0i64;
            for (i, &v) in vals.iter().enumerate() {
                let mut r = 0;
                match scaled(v, k) {
                    Some((x, res)) => (prev, r) = (x, res),
                    None => exceptions.push((i, v.to_bits())),
                }
                // An exception repeats the previous integer: a zero delta
                // packs best.
                ints.push(prev);
                residuals.push(r);
            }
            let with_residuals = residuals.iter().any(|&r| r != 0);
            out.push(TAG_DECIMAL);
            out.push(k as u8 | if with_residuals { RESIDUAL_FLAG } else { 0 });
            encode_ints(out, ints);
            if with_residuals {
                encode_ints(out, residuals);
            }
            put_exceptions(out, &exceptions);
        })
    });
    true
}

/// Appends the exception list: positions (ascending) and raw bits.
pub(super) fn put_exceptions(out: &mut Vec<u8>, exceptions: &[(usize, u64)]) {
    put_varint(out, exceptions.len() as u64);
    let mut next_pos = 0usize;
    let mut prev_bits = f64::NAN.to_bits();
    for &(pos, bits) in exceptions {
        let same = bits == prev_bits;
        put_varint(out, (((pos - next_pos) as u64) << 1) | u64::from(same));
        if !same {
            out.extend_from_slice(&bits.to_le_bytes());
        }
        next_pos = pos + 1;
        prev_bits = bits;
    }
}

/// Maps float bits to integers in the order of the floats (`-0.0` just below
/// `+0.0`), so nearby values of any magnitude have small differences, across
/// exponent boundaries too. The map is its own inverse.
#[inline]
fn ordered(x: i64) -> i64 {
    x ^ ((x >> 63) & i64::MAX)
}

/// Floats as order-preserving integers, difference coded; NaNs (whose bits
/// would widen a whole block) are exceptions.
fn encode_ordered(out: &mut Vec<u8>, vals: &[f64]) -> bool {
    // Leading NaNs repeat the first number.
    let Some(first) = vals.iter().find(|v| !v.is_nan()) else {
        return false;
    };
    INTS.with_borrow_mut(|ints| {
        ints.clear();
        let mut exceptions = Vec::new();
        let mut prev = ordered(first.to_bits() as i64);
        for (i, &v) in vals.iter().enumerate() {
            if v.is_nan() {
                exceptions.push((i, v.to_bits()));
            } else {
                prev = ordered(v.to_bits() as i64);
            }
            ints.push(prev);
        }
        out.push(TAG_ORDERED);
        encode_ints(out, ints);
        put_exceptions(out, &exceptions);
    });
    true
}

/// Gorilla-style XOR with the previous value, bit-packed per block after
/// dropping the block's common trailing zero bits.
fn encode_xor(out: &mut Vec<u8>, vals: &[f64]) -> bool {
    out.push(TAG_XOR);
    let first = vals[0].to_bits();
    out.extend_from_slice(&first.to_le_bytes());
    let mut prev = first;
    let mut xors = [0u64; BLOCK];
    let mut shifted = [0u64; BLOCK];
    for chunk in vals.chunks(BLOCK) {
        for (x, v) in xors.iter_mut().zip(chunk) {
            let bits = v.to_bits();
            *x = bits ^ prev;
            prev = bits;
        }
        let b = &xors[..chunk.len()];
        let all = b.iter().fold(0u64, |a, &x| a | x);
        if all == 0 {
            out.push(0);
            continue;
        }
        let shift = all.trailing_zeros();
        let w = width(all >> shift);
        out.push(w as u8);
        out.push(shift as u8);
        for (s, &x) in shifted.iter_mut().zip(b) {
            *s = x >> shift;
        }
        pack(out, &shifted[..b.len()], w);
    }
    true
}

/// Decodes `n` values into `out` (cleared first), reading exactly one column
/// encoding from `r`.
pub(super) fn decode_column(
    r: &mut Reader<'_>,
    n: usize,
    out: &mut Vec<f64>,
) -> Result<(), DecodeError> {
    out.clear();
    let tag = r.u8()?;
    if n == 0 {
        return if tag == TAG_EMPTY {
            Ok(())
        } else {
            Err(corrupt("values for an empty column"))
        };
    }
    match tag {
        TAG_CONST => {
            let v = f64::from_bits(r.u64_le()?);
            out.resize(n, v);
            Ok(())
        }
        TAG_DECIMAL => decode_decimal(r, n, out),
        TAG_XOR => decode_xor(r, n, out),
        TAG_ORDERED => decode_ordered(r, n, out),
        TAG_EMPTY => Err(corrupt("empty encoding for a non-empty column")),
        _ => Err(corrupt("unknown column encoding")),
    }
}

fn decode_decimal(r: &mut Reader<'_>, n: usize, out: &mut Vec<f64>) -> Result<(), DecodeError> {
    let scale_byte = r.u8()?;
    let k = usize::from(scale_byte & !RESIDUAL_FLAG);
    if k > MAX_SCALE {
        return Err(corrupt("decimal scale above 6"));
    }
    out.resize(n, 0.0);
    if k == 0 {
        decode_ints(r, n, |start, ints| {
            for (o, &i) in out[start..].iter_mut().zip(ints) {
                *o = i as f64;
            }
        })?;
    } else {
        let scale = POW10[k];
        decode_ints(r, n, |start, ints| {
            for (o, &i) in out[start..].iter_mut().zip(ints) {
                *o = i as f64 / scale;
            }
        })?;
    }
    if scale_byte & RESIDUAL_FLAG != 0 {
        decode_ints(r, n, |start, res| {
            for (o, &d) in out[start..].iter_mut().zip(res) {
                *o = f64::from_bits((o.to_bits() as i64).wrapping_add(d) as u64);
            }
        })?;
    }
    read_exceptions(r, out)
}

fn decode_ordered(r: &mut Reader<'_>, n: usize, out: &mut Vec<f64>) -> Result<(), DecodeError> {
    out.resize(n, 0.0);
    decode_ints(r, n, |start, ints| {
        for (o, &i) in out[start..].iter_mut().zip(ints) {
            *o = f64::from_bits(ordered(i) as u64);
        }
    })?;
    read_exceptions(r, out)
}

/// Reads the exception list and patches `out` with it.
pub(super) fn read_exceptions(r: &mut Reader<'_>, out: &mut [f64]) -> Result<(), DecodeError> {
    let n = out.len();
    let count = r.len("exceptions", n)?;
    let mut next_pos = 0u64;
    let mut prev_bits = f64::NAN.to_bits();
    for _ in 0..count {
        let head = r.varint()?;
        let pos = next_pos + (head >> 1);
        if pos >= n as u64 {
            return Err(corrupt("exception position out of range"));
        }
        if head & 1 == 0 {
            prev_bits = r.u64_le()?;
        }
        out[pos as usize] = f64::from_bits(prev_bits);
        next_pos = pos + 1;
    }
    Ok(())
}

fn decode_xor(r: &mut Reader<'_>, n: usize, out: &mut Vec<f64>) -> Result<(), DecodeError> {
    let mut prev = r.u64_le()?;
    out.resize(n, 0.0);
    let mut offs = [0u64; BLOCK];
    for chunk in out.chunks_mut(BLOCK) {
        let w = u32::from(r.u8()?);
        if w == 0 {
            chunk.fill(f64::from_bits(prev));
            continue;
        }
        let shift = u32::from(r.u8()?);
        if w + shift > 64 {
            return Err(corrupt("xor width and shift exceed 64 bits"));
        }
        unpack(r.take(packed_len(chunk.len(), w))?, w, &mut offs);
        for (o, &x) in chunk.iter_mut().zip(&offs) {
            prev ^= x << shift;
            *o = f64::from_bits(prev);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(vals: &[f64]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_column(&mut buf, vals);
        let mut r = Reader::new(&buf);
        let mut out = Vec::new();
        decode_column(&mut r, vals.len(), &mut out).unwrap();
        assert!(r.is_empty(), "trailing bytes");
        let a: Vec<u64> = vals.iter().map(|v| v.to_bits()).collect();
        let b: Vec<u64> = out.iter().map(|v| v.to_bits()).collect();
        assert_eq!(a, b);
        buf
    }

    #[test]
    fn empty_column() {
        assert_eq!(round_trip(&[]), vec![TAG_EMPTY]);
    }

    #[test]
    fn constant_column_is_nine_bytes() {
        let b = round_trip(&[42.5; 1000]);
        assert_eq!(b[0], TAG_CONST);
        assert_eq!(b.len(), 9);
        assert_eq!(round_trip(&[f64::NAN; 10])[0], TAG_CONST);
    }

    #[test]
    fn decimal_column_with_exceptions() {
        let mut vals: Vec<f64> = (0..500).map(|i| f64::from(i) * 0.25 - 10.0).collect();
        vals[3] = f64::NAN;
        vals[4] = f64::NAN;
        vals[100] = -0.0;
        vals[200] = f64::INFINITY;
        vals[201] = f64::NEG_INFINITY;
        vals[499] = 1e-310;
        let b = round_trip(&vals);
        assert_eq!(b[0], TAG_DECIMAL);
        assert_eq!(b[1], 2, "0.25 steps need two decimals");
    }

    #[test]
    fn float_sums_of_decimals_use_residuals() {
        let mut acc = 0.0f64;
        let vals: Vec<f64> = (0..1000)
            .map(|i| {
                acc += f64::from(i % 17) * 0.01 + 0.07;
                acc
            })
            .collect();
        assert!(vals
            .iter()
            .any(|&v| scaled(v, 2).is_some_and(|(_, r)| r != 0)));
        let b = round_trip(&vals);
        assert_eq!(&b[..2], &[TAG_DECIMAL, 2 | RESIDUAL_FLAG]);
        assert!(b.len() < 3 * vals.len(), "{} bytes", b.len());
    }

    #[test]
    fn integer_counter_picks_delta() {
        let mut v = 1_000_000i64;
        let vals: Vec<f64> = (0..1000)
            .map(|i| {
                v += 1 + (i * 7 % 5);
                v as f64
            })
            .collect();
        let b = round_trip(&vals);
        assert_eq!(&b[..3], &[TAG_DECIMAL, 0, 1], "scale 0, order 1");
    }

    #[test]
    fn arbitrary_floats_use_ordered_or_xor() {
        let vals: Vec<f64> = (1..300)
            .map(|i| (f64::from(i)).sqrt() * 1.000_000_1)
            .collect();
        assert_eq!(round_trip(&vals)[0], TAG_ORDERED);
        let mut seed = 99u64;
        let noise: Vec<f64> = (0..300)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                f64::from_bits(seed)
            })
            .collect();
        assert_eq!(round_trip(&noise)[0], TAG_XOR);
        let mut slow: Vec<f64> = (0..300)
            .map(|i| 1.0 / 3.0 + f64::from(i) * f64::EPSILON)
            .collect();
        slow[7] = f64::NAN;
        slow[0] = -f64::NAN;
        let b = round_trip(&slow);
        assert_eq!(b[0], TAG_ORDERED);
        let weird = [
            f64::MIN_POSITIVE,
            -0.0,
            f64::MAX,
            f64::MIN,
            f64::from_bits(1),
            f64::from_bits(0x7ff8_dead_beef_0001),
            0.1,
        ];
        round_trip(&weird);
    }

    fn int_stream(vals: &[i64]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_ints(&mut buf, vals);
        let mut got = vec![0; vals.len()];
        let mut r = Reader::new(&buf);
        decode_ints(&mut r, vals.len(), |s, b| {
            got[s..s + b.len()].copy_from_slice(b)
        })
        .unwrap();
        assert!(r.is_empty());
        assert_eq!(got, vals);
        buf
    }

    #[test]
    fn int_stream_picks_the_best_order() {
        let noise: Vec<i64> = (0..500).map(|i| (i * 7919) % 13).collect();
        assert_eq!(int_stream(&noise)[0], 0);
        let walk: Vec<i64> = noise
            .iter()
            .scan(1_000_000, |a, d| {
                *a += d - 6;
                Some(*a)
            })
            .collect();
        assert_eq!(int_stream(&walk)[0], 1);
        // Regular timestamps: every delta-of-delta is zero, so every block is
        // two bytes (width 0, min 0).
        let ts: Vec<i64> = (0..1280)
            .map(|i| 1_700_000_000_000_000_000 + i * 60_000_000_000)
            .collect();
        let b = int_stream(&ts);
        assert_eq!(b[0], 2);
        assert!(b.len() <= 1 + 10 + 6 + 2 * 10, "{} bytes", b.len());
    }

    #[test]
    fn int_stream_extremes_round_trip() {
        for vals in [
            vec![i64::MIN, i64::MAX, 0, -1, i64::MAX, i64::MIN],
            (0..777).map(|i| i * i * 1_000_000_007).collect(),
            vec![7],
        ] {
            let mut buf = Vec::new();
            encode_ints(&mut buf, &vals);
            let mut got = vec![0; vals.len()];
            let mut r = Reader::new(&buf);
            decode_ints(&mut r, vals.len(), |s, b| {
                got[s..s + b.len()].copy_from_slice(b)
            })
            .unwrap();
            assert!(r.is_empty());
            assert_eq!(got, vals);
        }
    }
}
