//! Fixed-width bit packing of blocks of up to [`BLOCK`] unsigned integers.
//!
//! Values are packed LSB-first into a little-endian bit stream: value `i` of a
//! block of width `w` occupies bits `i*w .. (i+1)*w`. A block of `m` values
//! takes exactly `ceil(m*w/8)` bytes. Unpacking is monomorphized per width so
//! the inner loop has constant shifts and masks and no per-value branch.

/// Values per block: big enough to amortize the block header (1 width byte +
/// a varint), small enough for the frame of reference to adapt to the data.
pub(super) const BLOCK: usize = 128;

/// Words in the unpack scratch buffer: 128 values of 64 bits, plus one zero
/// word so the last value may read `word + 1` unconditionally.
const SCRATCH_WORDS: usize = BLOCK + 1;

/// Bytes that `m` values of width `w` occupy.
#[inline]
pub(super) fn packed_len(m: usize, w: u32) -> usize {
    (m * w as usize).div_ceil(8)
}

/// Bits needed to represent `v` (0 for 0).
#[inline]
pub(super) fn width(v: u64) -> u32 {
    64 - v.leading_zeros()
}

/// Appends `vals` packed at width `w`; every value must fit in `w` bits.
pub(super) fn pack(out: &mut Vec<u8>, vals: &[u64], w: u32) {
    debug_assert!(w <= 64);
    if w == 0 {
        return;
    }
    let mut acc: u128 = 0;
    let mut nbits: u32 = 0;
    for &v in vals {
        debug_assert!(w == 64 || v >> w == 0);
        acc |= u128::from(v) << nbits;
        nbits += w;
        if nbits >= 64 {
            out.extend_from_slice(&(acc as u64).to_le_bytes());
            acc >>= 64;
            nbits -= 64;
        }
    }
    let tail = nbits.div_ceil(8) as usize;
    out.extend_from_slice(&(acc as u64).to_le_bytes()[..tail]);
}

/// Unpacks `m <= BLOCK` values of width `w <= 64` from `src`, which must hold
/// exactly `packed_len(m, w)` bytes. Slots `m..BLOCK` of `out` are left
/// unspecified; callers read the first `m` only.
#[inline]
pub(super) fn unpack(src: &[u8], w: u32, out: &mut [u64; BLOCK]) {
    debug_assert!(w <= 64);
    let mut buf = [0u64; SCRATCH_WORDS];
    let mut chunks = src.chunks_exact(8);
    for (dst, c) in buf.iter_mut().zip(&mut chunks) {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        *dst = u64::from_le_bytes(a);
    }
    let rem = chunks.remainder();
    if !rem.is_empty() {
        let mut a = [0u8; 8];
        a[..rem.len()].copy_from_slice(rem);
        buf[src.len() / 8] = u64::from_le_bytes(a);
    }
    macro_rules! dispatch {
        ($($n:literal)*) => {
            match w {
                0 => out.fill(0),
                $($n => unpack_w::<$n>(&buf, out),)*
                _ => unpack_w::<64>(&buf, out),
            }
        };
    }
    dispatch!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30
        31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59
        60 61 62 63);
}

#[inline(always)]
fn unpack_w<const W: usize>(buf: &[u64; SCRATCH_WORDS], out: &mut [u64; BLOCK]) {
    let mask: u64 = if W == 64 { u64::MAX } else { (1u64 << W) - 1 };
    for (i, o) in out.iter_mut().enumerate() {
        let bit = i * W;
        let word = bit / 64;
        let shift = (bit % 64) as u32;
        let lo = buf[word] >> shift;
        // `(x << 1) << (63 - s)` is `x << (64 - s)` without the undefined
        // shift by 64 when `s == 0`.
        let hi = (buf[word + 1] << 1) << (63 - shift);
        *o = (lo | hi) & mask;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_unpack_all_widths_and_lengths() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for w in 0..=64u32 {
            for m in [0usize, 1, 7, 63, 64, 65, 127, 128] {
                let vals: Vec<u64> = (0..m)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        if w == 64 {
                            seed
                        } else if w == 0 {
                            0
                        } else {
                            seed & ((1u64 << w) - 1)
                        }
                    })
                    .collect();
                let mut bytes = Vec::new();
                pack(&mut bytes, &vals, w);
                assert_eq!(bytes.len(), packed_len(m, w), "w={w} m={m}");
                let mut out = [0u64; BLOCK];
                unpack(&bytes, w, &mut out);
                assert_eq!(&out[..m], &vals[..], "w={w} m={m}");
            }
        }
    }
}
