use super::*;

/// Deterministic xorshift, so encoded sizes (asserted below) never move with
/// a dependency's RNG.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

const SLOTS: u32 = 3600;

fn full_present(slots: u32) -> Vec<u64> {
    let mut p = vec![u64::MAX; (slots as usize).div_ceil(64)];
    if slots % 64 != 0 {
        *p.last_mut().unwrap() = (1 << (slots % 64)) - 1;
    }
    p
}

fn single(values: Vec<f64>) -> SplitBlock {
    SplitBlock {
        start: 1_700_000_000_000_000_000,
        granularity: 60_000_000_000,
        slots: SLOTS,
        present: full_present(SLOTS),
        columns: vec![Column {
            method: "mean".into(),
            values,
        }],
    }
}

fn constant() -> Vec<f64> {
    vec![42.17; SLOTS as usize]
}

/// Starts at 100.00, each step adds a uniform multiple of 0.01 in [-1, 1].
fn random_walk_2dp() -> Vec<f64> {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut cents = 10_000i64;
    (0..SLOTS)
        .map(|_| {
            cents += rng.range(-100, 100);
            cents as f64 / 100.0
        })
        .collect()
}

/// Integers increasing by 0..=20 per slot.
fn counter() -> Vec<f64> {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let mut v = 123_456_789i64;
    (0..SLOTS)
        .map(|_| {
            v += rng.range(0, 20);
            v as f64
        })
        .collect()
}

fn bytes_per_point(values: Vec<f64>) -> f64 {
    let block = single(values);
    let bytes = encode_split(&block);
    assert_eq!(decode_split(&bytes).unwrap(), block);
    bytes.len() as f64 / block.present_count() as f64
}

#[test]
fn size_targets_per_point() {
    let a = bytes_per_point(constant());
    let b = bytes_per_point(random_walk_2dp());
    let c = bytes_per_point(counter());
    eprintln!("bytes/point: constant {a:.4}, random walk 2dp {b:.4}, counter {c:.4}");
    assert!(a <= 0.2, "constant: {a}");
    assert!(b <= 2.0, "random walk: {b}");
    assert!(c <= 1.0, "counter: {c}");
}

#[test]
fn multi_column_partial_split_round_trips() {
    let mut rng = Rng(7);
    let slots = 1000u32;
    let mut present = vec![0u64; 16];
    for i in 0..slots as usize {
        if rng.next() % 3 != 0 {
            present[i / 64] |= 1 << (i % 64);
        }
    }
    let block0 = SplitBlock {
        start: -5,
        granularity: 1,
        slots,
        present: present.clone(),
        columns: Vec::new(),
    };
    let n = block0.present_count();
    let mut block = block0.clone();
    block.columns = vec![
        Column {
            method: "count".into(),
            values: (0..n).map(|_| rng.range(1, 4) as f64).collect(),
        },
        Column {
            method: "std".into(),
            values: (0..n)
                .map(|i| {
                    if i % 5 == 0 {
                        f64::NAN
                    } else {
                        f64::from_bits(rng.next() >> 2)
                    }
                })
                .collect(),
        },
        Column {
            method: "rate:95pct".into(),
            values: vec![-0.0; n],
        },
    ];
    let bytes = encode_split(&block);
    assert_eq!(decode_split(&bytes).unwrap(), block);

    // Reuse: decode a bigger block into a smaller one and back.
    let mut reused = single(constant());
    decode_split_into(&bytes, &mut reused).unwrap();
    assert_eq!(reused, block);
    decode_split_into(&encode_split(&single(counter())), &mut reused).unwrap();
    assert_eq!(reused, single(counter()));

    // No columns, no slots.
    assert_eq!(decode_split(&encode_split(&block0)).unwrap(), block0);
    let empty = SplitBlock::default();
    assert_eq!(decode_split(&encode_split(&empty)).unwrap(), empty);
}

#[test]
fn nan_compares_by_bits() {
    let a = Column {
        method: "m".into(),
        values: vec![f64::NAN, 0.0],
    };
    let mut b = a.clone();
    assert_eq!(a, b);
    b.values[1] = -0.0;
    assert_ne!(a, b);
}

#[test]
fn header_errors() {
    let good = encode_split(&single(random_walk_2dp()));
    assert_eq!(
        decode_split(b"nope, not a split"),
        Err(DecodeError::BadMagic { expected: "split" })
    );
    assert_eq!(
        decode_split(&[]),
        Err(DecodeError::BadMagic { expected: "split" })
    );
    let mut v2 = good.clone();
    v2[4] = 2;
    assert_eq!(decode_split(&v2), Err(DecodeError::UnknownVersion(2)));
    let tail = encode_tail(&TailBlock::default());
    assert_eq!(
        decode_split(&tail),
        Err(DecodeError::BadMagic { expected: "split" })
    );
    assert_eq!(
        decode_tail(&good),
        Err(DecodeError::BadMagic { expected: "tail" })
    );
}

#[test]
fn every_truncation_is_an_error() {
    let mut block = single(random_walk_2dp());
    block.columns.push(Column {
        method: "std".into(),
        values: (0..SLOTS).map(|i| f64::from(i).sqrt()).collect(),
    });
    let good = encode_split(&block);
    for len in 0..good.len() {
        assert!(
            decode_split(&good[..len]).is_err(),
            "prefix of {len} bytes decoded"
        );
    }
    let mut long = good.clone();
    long.push(0);
    assert!(matches!(
        decode_split(&long),
        Err(DecodeError::Corrupt { .. })
    ));

    let tail = encode_tail(&TailBlock {
        timestamps: (0..500).map(|i| i * 1_000_000_000 + i % 3).collect(),
        values: (0..500).map(|i| f64::from(i) * 0.5).collect(),
    });
    for len in 0..tail.len() {
        assert!(
            decode_tail(&tail[..len]).is_err(),
            "prefix of {len} bytes decoded"
        );
    }
}

#[test]
fn lying_lengths_are_capped() {
    // slots far above the limit
    let mut b = SPLIT_MAGIC.to_vec();
    b.push(VERSION);
    b.extend([0, 2]); // start 0, granularity 1
    b.extend([0xff, 0xff, 0xff, 0xff, 0x0f]); // slots = u32::MAX
    b.push(0);
    assert!(matches!(
        decode_split(&b),
        Err(DecodeError::LimitExceeded { what: "slots", .. })
    ));

    // a column count the input cannot hold
    let mut b = SPLIT_MAGIC.to_vec();
    b.push(VERSION);
    b.extend([0, 2, 0x90, 0x1c, 0]); // 3600 slots, all present
    b.extend([0xff, 0xff, 0x03]); // 65535 columns
    assert!(matches!(
        decode_split(&b),
        Err(DecodeError::LimitExceeded {
            what: "columns",
            ..
        })
    ));

    // a tail claiming a billion points in a few bytes
    let mut b = TAIL_MAGIC.to_vec();
    b.push(VERSION);
    b.extend([0x80, 0x94, 0xeb, 0xdc, 0x03, 0, 0]);
    assert!(matches!(
        decode_tail(&b),
        Err(DecodeError::LimitExceeded {
            what: "tail points",
            ..
        })
    ));
}

#[test]
fn unsorted_tail_is_corrupt() {
    // Hand-built: 2 points, order 0 stream with one block of width 1: [5, 4]
    let mut b = TAIL_MAGIC.to_vec();
    b.push(VERSION);
    b.push(2); // n
    b.push(0); // order 0
    b.push(1); // width 1
    b.push(8); // min = zigzag(4)
    b.push(0b01); // offsets 1, 0
    b.push(1); // const values
    b.extend(1.5f64.to_bits().to_le_bytes());
    assert!(matches!(decode_tail(&b), Err(DecodeError::Corrupt { .. })));
    b[9] = 0b10; // offsets 0, 1: timestamps 4, 5
    let t = decode_tail(&b).unwrap();
    assert_eq!(t.timestamps, vec![4, 5]);
    assert_eq!(encode_tail(&t), b);
}

#[test]
fn regular_tail_is_compact() {
    let t = TailBlock {
        timestamps: (0..10_000)
            .map(|i| 1_700_000_000_000_000_000 + i * 10_000_000_000)
            .collect(),
        values: random_walk_2dp().into_iter().cycle().take(10_000).collect(),
    };
    let b = encode_tail(&t);
    assert_eq!(decode_tail(&b).unwrap(), t);
    let per_point = b.len() as f64 / 10_000.0;
    eprintln!("tail bytes/point: {per_point:.4}");
    assert!(per_point <= 1.5, "{per_point}");
}

#[test]
#[should_panic(expected = "values for")]
fn encode_rejects_mismatched_column() {
    let mut block = single(constant());
    block.columns[0].values.pop();
    encode_split(&block);
}

/// sum, count and mean = sum / count, with NaN where a slot has no value.
fn mean_sum_count() -> SplitBlock {
    let walk = random_walk_2dp();
    let mut rng = Rng(99);
    let count: Vec<f64> = (0..SLOTS).map(|_| rng.range(1, 6) as f64).collect();
    let mut sum: Vec<f64> = walk
        .iter()
        .zip(&count)
        .map(|(v, c)| v * c + 0.001)
        .collect();
    sum[17] = f64::NAN;
    let mut mean: Vec<f64> = sum.iter().zip(&count).map(|(s, c)| s / c).collect();
    mean[40] = 1.5;
    let mut block = single(mean);
    block.columns.push(Column {
        method: "sum".into(),
        values: sum,
    });
    block.columns.push(Column {
        method: "count".into(),
        values: count,
    });
    block
}

#[test]
fn quotient_columns_cost_almost_nothing() {
    let block = mean_sum_count();
    let bytes = encode_split(&block);
    assert_eq!(decode_split(&bytes).unwrap(), block);
    let without_mean = SplitBlock {
        columns: block.columns[1..].to_vec(),
        ..block.clone()
    };
    let extra = bytes.len() - encode_split(&without_mean).len();
    // name, lengths, tag, two references, two exceptions (NaN, 1.5)
    assert!(extra <= 5 + 3 + 3 + 3 + 9, "mean costs {extra} bytes");
}

#[test]
fn quotient_references_are_checked() {
    let block = mean_sum_count();
    let good = encode_split(&block);
    // mean is column 0: "mean" 4 bytes after its length; find its payload.
    let header = good.iter().position(|&b| b == b'm').unwrap() + 4;
    let payload_at = header + 1; // payload length varint (< 128 bytes)
    assert_eq!(good[payload_at], 5, "mean stored as a quotient");
    assert_eq!(&good[payload_at + 1..payload_at + 3], &[1, 2]);
    for (num, den) in [(0, 1), (1, 0), (2, 3), (9, 1)] {
        let mut bad = good.clone();
        bad[payload_at + 1] = num;
        bad[payload_at + 2] = den;
        assert!(decode_split(&bad).is_err(), "references {num}/{den}");
    }
}

#[test]
fn quotient_search_is_bounded_with_many_columns() {
    // 300 distinct non-constant columns: the search gives up early, and
    // everything still round-trips.
    let mut block = mean_sum_count();
    for c in 0..300 {
        block.columns.push(Column {
            method: format!("{c}pct"),
            values: (0..SLOTS)
                .map(|i| f64::from(i % 97) + f64::from(c))
                .collect(),
        });
    }
    let bytes = encode_split(&block);
    assert_eq!(decode_split(&bytes).unwrap(), block);
}
