//! Property tests of `carbonara::codec`: round trips of arbitrary blocks, and
//! fuzz-style decoding of arbitrary, mutated and truncated bytes, which must
//! return `Ok` or `Err` and never panic.

use carbonara::codec::{
    decode_split, decode_split_into, decode_tail, encode_split, encode_tail, Column, SplitBlock,
    TailBlock,
};
use proptest::prelude::*;

/// Values that exercise every encoding path: arbitrary bits (XOR), decimals,
/// specials that must become exceptions, subnormals.
fn any_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => any::<u64>().prop_map(f64::from_bits),
        3 => (-10_000_000i64..10_000_000, 0i32..=6).prop_map(|(i, k)| i as f64 / 10f64.powi(k)),
        1 => Just(f64::NAN),
        1 => any::<u64>().prop_map(|p| f64::from_bits(0x7ff0_0000_0000_0001 | p)),
        1 => Just(-0.0),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => (1u64..(1 << 52)).prop_map(f64::from_bits),
        1 => Just(f64::MAX),
    ]
}

/// A column of `n` values, shaped like one of the series kinds Gnocchi sees.
fn column_values(n: usize) -> impl Strategy<Value = Vec<f64>> {
    prop_oneof![
        // fully arbitrary
        prop::collection::vec(any_value(), n),
        // decimals at one scale, random walk, with rare specials
        (0i32..=7, -1_000_000i64..1_000_000, 1i64..2000, any::<u64>()).prop_map(
            move |(k, start, step, seed)| {
                let mut s = seed | 1;
                let mut x = start;
                (0..n)
                    .map(|_| {
                        s ^= s << 13;
                        s ^= s >> 7;
                        s ^= s << 17;
                        x += (s % (2 * step as u64 + 1)) as i64 - step;
                        match s % 97 {
                            0 => f64::NAN,
                            1 => -0.0,
                            _ => x as f64 / 10f64.powi(k),
                        }
                    })
                    .collect()
            }
        ),
        // constant, or constant with holes
        (any_value(), any::<bool>()).prop_map(move |(v, holes)| {
            (0..n)
                .map(|i| if holes && i % 7 == 3 { f64::NAN } else { v })
                .collect()
        }),
        // counters, including huge ones that overflow the exact-integer range
        (any::<i64>(), 0u64..1_000_000).prop_map(move |(start, max_step)| {
            let mut x = start / 2;
            (0..n)
                .map(|i| {
                    x = x.wrapping_add((i as u64 * 2_654_435_761 % (max_step + 1)) as i64);
                    x as f64
                })
                .collect()
        }),
    ]
}

fn presence(slots: u32, mode: u8, seed: u64) -> Vec<u64> {
    let slots = slots as usize;
    let mut p = vec![0u64; slots.div_ceil(64)];
    let mut s = seed | 1;
    let mut on = seed & 1 == 1;
    for i in 0..slots {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let bit = match mode {
            0 => true,
            1 => s % 4 != 0,
            2 => s % 8 == 0,
            _ => {
                if s % 50 == 0 {
                    on = !on;
                }
                on
            }
        };
        if bit {
            p[i / 64] |= 1 << (i % 64);
        }
    }
    p
}

fn split_block() -> impl Strategy<Value = SplitBlock> {
    (
        prop_oneof![4 => 0u32..300, 1 => Just(3600u32)],
        0u8..4,
        any::<u64>(),
        any::<i64>(),
        any::<i64>(),
    )
        .prop_flat_map(|(slots, mode, seed, start, granularity)| {
            let present = presence(slots, mode, seed);
            let n: usize = present.iter().map(|w| w.count_ones() as usize).sum();
            let column = ("[a-z:0-9]{0,12}", column_values(n))
                .prop_map(|(method, values)| Column { method, values });
            (prop::collection::vec(column, 0..5), 0usize..4, 1usize..50).prop_map(
                move |(mut columns, derive, every)| {
                    // Often add a quotient of two columns (as a mean is of sum
                    // and count), spoiled every `every` slots.
                    if derive > 0 && columns.len() >= 2 {
                        let (a, b) = (&columns[0].values, &columns[1].values);
                        let values = a
                            .iter()
                            .zip(b)
                            .enumerate()
                            .map(|(i, (x, y))| if i % every == 1 { x + 1.0 } else { x / y })
                            .collect();
                        columns.insert(
                            derive - 1,
                            Column {
                                method: "q".into(),
                                values,
                            },
                        );
                    }
                    SplitBlock {
                        start,
                        granularity,
                        slots,
                        present: present.clone(),
                        columns,
                    }
                },
            )
        })
}

fn tail_block() -> impl Strategy<Value = TailBlock> {
    (0usize..600, any::<i64>(), any::<u64>(), any::<bool>()).prop_flat_map(
        |(n, start, seed, regular)| {
            let mut s = seed | 1;
            let mut t = start / 2;
            let timestamps: Vec<i64> = (0..n)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    t += if regular {
                        1_000_000_000
                    } else {
                        1 + (s % 1_000_000_000_000) as i64
                    };
                    t
                })
                .collect();
            column_values(n).prop_map(move |values| TailBlock {
                timestamps: timestamps.clone(),
                values,
            })
        },
    )
}

/// Decoding must not panic; whatever decodes must re-encode and decode to
/// the same block.
fn decode_anything(bytes: &[u8]) {
    if let Ok(block) = decode_split(bytes) {
        let again = encode_split(&block);
        assert_eq!(decode_split(&again).unwrap(), block);
    }
    if let Ok(tail) = decode_tail(bytes) {
        let again = encode_tail(&tail);
        assert_eq!(decode_tail(&again).unwrap(), tail);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn split_round_trips(block in split_block()) {
        let bytes = encode_split(&block);
        prop_assert_eq!(&decode_split(&bytes).unwrap(), &block);
        // Reusing a block that held something else gives the same result.
        let mut reused = SplitBlock {
            slots: 64,
            present: vec![u64::MAX],
            columns: vec![Column { method: "x".repeat(40), values: vec![1.0; 64] }; 7],
            ..SplitBlock::default()
        };
        decode_split_into(&bytes, &mut reused).unwrap();
        prop_assert_eq!(reused, block);
    }

    #[test]
    fn tail_round_trips(tail in tail_block()) {
        let bytes = encode_tail(&tail);
        prop_assert_eq!(decode_tail(&bytes).unwrap(), tail);
    }

    #[test]
    fn random_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        header in 0u8..3,
    ) {
        // Without a valid header almost everything stops at the magic, so
        // most cases get one to reach the deeper decoding paths.
        let mut input = match header {
            0 => b"CBSP\x01".to_vec(),
            1 => b"CBTL\x01".to_vec(),
            _ => Vec::new(),
        };
        input.extend_from_slice(&bytes);
        decode_anything(&input);
    }

    #[test]
    fn mutated_splits_never_panic(
        block in split_block(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = encode_split(&block);
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        decode_anything(&bytes);
    }

    #[test]
    fn mutated_tails_never_panic(
        tail in tail_block(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = encode_tail(&tail);
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        decode_anything(&bytes);
    }

    #[test]
    fn truncated_splits_are_errors(block in split_block(), cut in any::<prop::sample::Index>()) {
        let bytes = encode_split(&block);
        let len = cut.index(bytes.len());
        prop_assert!(decode_split(&bytes[..len]).is_err());
    }
}
