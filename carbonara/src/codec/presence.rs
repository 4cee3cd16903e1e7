//! The presence bitmap: which slots of a split hold a value.
//!
//! Three spellings, the encoder keeps the smallest: "all present" (one byte,
//! the common case of a full split), run lengths (small for contiguous data
//! and for sparse data alike: a lone present slot costs about two bytes) and
//! a plain bitset (`ceil(slots/8)` bytes, 450 for 3600 slots, the bound for
//! scattered data). A roaring bitmap was considered: for 3600 slots it is a
//! single container, so it degenerates to these same three (array, run,
//! bitmap) plus a container header, and would add a dependency.

use super::bytes::{put_varint, Reader};
use super::DecodeError;

const ALL: u8 = 0;
const RUNS: u8 = 1;
const BITSET: u8 = 2;

fn words_for(slots: usize) -> usize {
    slots.div_ceil(64)
}

/// Lengths of alternating absent/present runs, starting with absent (maybe 0).
/// Walks run boundaries a word at a time (`trailing_zeros`), not bit by bit.
fn runs(present: &[u64], slots: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut cur = false;
    let mut run_start = 0usize;
    let mut pos = 0usize;
    while pos < slots {
        let w = pos / 64;
        let off = pos % 64;
        // Bits equal to `cur` from `pos` on, within this word, read as ones.
        let word = if cur { present[w] } else { !present[w] };
        let same = (word >> off).trailing_ones() as usize;
        let end = (w * 64 + off + same).min(slots);
        if end == (w + 1) * 64 || end == slots {
            pos = end;
            continue;
        }
        out.push(end - run_start);
        run_start = end;
        pos = end;
        cur = !cur;
    }
    out.push(slots - run_start);
    out
}

/// Appends the presence bitmap of `slots` slots, `present_count` of them set.
pub(super) fn encode(out: &mut Vec<u8>, present: &[u64], slots: usize, present_count: usize) {
    if present_count == slots {
        out.push(ALL);
        return;
    }
    let bitset_len = slots.div_ceil(8);
    let mut runs_buf = Vec::new();
    let rl = runs(present, slots);
    put_varint(&mut runs_buf, rl.len() as u64);
    for &r in &rl {
        put_varint(&mut runs_buf, r as u64);
        if runs_buf.len() > bitset_len {
            break;
        }
    }
    if runs_buf.len() <= bitset_len {
        out.push(RUNS);
        out.extend_from_slice(&runs_buf);
    } else {
        out.push(BITSET);
        let bytes = present.iter().flat_map(|w| w.to_le_bytes());
        out.extend(bytes.take(bitset_len));
    }
}

/// Sets `words[start..end]` bits.
fn set_range(words: &mut [u64], start: usize, end: usize) {
    for i in start..end {
        words[i / 64] |= 1 << (i % 64);
    }
}

/// Decodes the bitmap of `slots` slots into `present` (resized to
/// `ceil(slots/64)` words) and returns how many slots are present.
pub(super) fn decode(
    r: &mut Reader<'_>,
    slots: usize,
    present: &mut Vec<u64>,
) -> Result<usize, DecodeError> {
    present.clear();
    present.resize(words_for(slots), 0);
    match r.u8()? {
        ALL => {
            present.fill(u64::MAX);
            if slots % 64 != 0 {
                if let Some(last) = present.last_mut() {
                    *last = (1u64 << (slots % 64)) - 1;
                }
            }
            Ok(slots)
        }
        RUNS => {
            let n = r.len("presence runs", slots + 1)?;
            let mut pos = 0usize;
            let mut count = 0usize;
            for i in 0..n {
                let len = r.len("presence run length", slots - pos)?;
                if i % 2 == 1 {
                    set_range(present, pos, pos + len);
                    count += len;
                }
                pos += len;
            }
            if pos != slots {
                return Err(DecodeError::Corrupt {
                    reason: "presence runs do not cover the slots",
                });
            }
            Ok(count)
        }
        BITSET => {
            let bytes = r.take(slots.div_ceil(8))?;
            for (w, chunk) in present.iter_mut().zip(bytes.chunks(8)) {
                let mut a = [0u8; 8];
                a[..chunk.len()].copy_from_slice(chunk);
                *w = u64::from_le_bytes(a);
            }
            if slots % 64 != 0 {
                if let Some(&last) = present.last() {
                    if last >> (slots % 64) != 0 {
                        return Err(DecodeError::Corrupt {
                            reason: "presence bit beyond the last slot",
                        });
                    }
                }
            }
            Ok(present.iter().map(|w| w.count_ones() as usize).sum())
        }
        _ => Err(DecodeError::Corrupt {
            reason: "unknown presence encoding",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(present: &[u64], slots: usize) -> Vec<u8> {
        let count = present.iter().map(|w| w.count_ones() as usize).sum();
        let mut buf = Vec::new();
        encode(&mut buf, present, slots, count);
        let mut r = Reader::new(&buf);
        let mut got = Vec::new();
        assert_eq!(decode(&mut r, slots, &mut got).unwrap(), count);
        assert!(r.is_empty());
        assert_eq!(got, present);
        buf
    }

    #[test]
    fn full_split_is_one_byte() {
        let mut p = vec![u64::MAX; 57];
        p[56] = (1 << (3600 % 64)) - 1;
        assert_eq!(round_trip(&p, 3600), vec![ALL]);
        assert_eq!(round_trip(&[], 0), vec![ALL]);
    }

    #[test]
    fn contiguous_prefix_uses_runs() {
        let mut p = vec![0u64; 57];
        set_range(&mut p, 0, 1000);
        let b = round_trip(&p, 3600);
        assert_eq!(b[0], RUNS);
        assert_eq!(b.len(), 7, "tag, 3 runs: 1 + 1 + 1 + 2 + 2");
    }

    #[test]
    fn word_wise_runs_match_bit_by_bit() {
        fn naive(present: &[u64], slots: usize) -> Vec<usize> {
            let mut out = Vec::new();
            let (mut cur, mut len) = (false, 0);
            for i in 0..slots {
                let bit = present[i / 64] >> (i % 64) & 1 == 1;
                if bit != cur {
                    out.push(len);
                    (len, cur) = (0, bit);
                }
                len += 1;
            }
            out.push(len);
            out
        }
        let mut seed = 12345u64;
        for slots in [0usize, 1, 63, 64, 65, 127, 128, 1000, 3600] {
            for density in [0u64, 1, 8, 32, 56, 63, 64] {
                let mut p = vec![0u64; slots.div_ceil(64)];
                for i in 0..slots {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    if seed % 64 < density {
                        p[i / 64] |= 1 << (i % 64);
                    }
                }
                assert_eq!(runs(&p, slots), naive(&p, slots), "{slots} {density}");
                round_trip(&p, slots);
            }
        }
    }

    #[test]
    fn scattered_uses_bitset() {
        let p: Vec<u64> = (0..57)
            .map(|i| {
                if i == 56 {
                    0x5555
                } else {
                    0x5555_5555_5555_5555
                }
            })
            .collect();
        let b = round_trip(&p, 3600);
        assert_eq!(b[0], BITSET);
        assert_eq!(b.len(), 451);
    }
}
