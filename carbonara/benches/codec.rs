//! Encode and decode of full 3600-slot splits, six methods each, for three
//! series kinds: constant, a 2-decimal random walk, and an integer counter.
//! Decode throughput is in bytes of `f64` produced. Also prints the encoded
//! bytes per stored point.
//!
//! `CARGO_TARGET_DIR=/var/tmp/t-carb-codec cargo bench -p carbonara --bench codec`

use carbonara::codec::{decode_split_into, encode_split, Column, SplitBlock};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::hint::black_box;
use std::time::Duration;

const SLOTS: usize = 3600;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Constant,
    RandomWalk,
    Counter,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Constant => "constant",
            Kind::RandomWalk => "random_walk_2dp",
            Kind::Counter => "counter",
        }
    }

    /// Raw points of each slot: the values the six methods aggregate.
    fn raw_points(self, rng: &mut StdRng) -> Vec<Vec<f64>> {
        let mut cents = 10_000i64;
        let mut counter = 1_000_000i64;
        (0..SLOTS)
            .map(|_| {
                let n = match self {
                    Kind::RandomWalk => rng.random_range(1..=6),
                    _ => 4,
                };
                (0..n)
                    .map(|_| match self {
                        Kind::Constant => 42.17,
                        Kind::RandomWalk => {
                            cents += rng.random_range(-100..=100);
                            cents as f64 / 100.0
                        }
                        Kind::Counter => {
                            counter += rng.random_range(0..=20);
                            counter as f64
                        }
                    })
                    .collect()
            })
            .collect()
    }
}

fn full_present() -> Vec<u64> {
    let mut p = vec![u64::MAX; SLOTS.div_ceil(64)];
    *p.last_mut().unwrap() = (1 << (SLOTS % 64)) - 1;
    p
}

fn block(columns: Vec<Column>) -> SplitBlock {
    SplitBlock {
        start: 1_700_000_000_000_000_000,
        granularity: 60_000_000_000,
        slots: SLOTS as u32,
        present: full_present(),
        columns,
    }
}

/// mean, min, max, sum, std (sample; NaN for one point) and count per slot.
fn six_columns(kind: Kind, seed: u64) -> SplitBlock {
    let raw = kind.raw_points(&mut StdRng::seed_from_u64(seed));
    let agg = |f: &dyn Fn(&[f64]) -> f64| raw.iter().map(|p| f(p)).collect::<Vec<f64>>();
    let mean = |p: &[f64]| p.iter().sum::<f64>() / p.len() as f64;
    let columns = vec![
        ("mean", agg(&mean)),
        (
            "min",
            agg(&|p| p.iter().copied().fold(f64::INFINITY, f64::min)),
        ),
        (
            "max",
            agg(&|p| p.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
        ),
        ("sum", agg(&|p| p.iter().sum())),
        (
            "std",
            agg(&|p| {
                let m = mean(p);
                (p.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (p.len() as f64 - 1.0)).sqrt()
            }),
        ),
        ("count", agg(&|p| p.len() as f64)),
    ];
    block(
        columns
            .into_iter()
            .map(|(m, values)| Column {
                method: m.to_owned(),
                values,
            })
            .collect(),
    )
}

/// The series itself as one column (the last raw point of each slot).
fn one_column(kind: Kind, seed: u64) -> SplitBlock {
    let raw = kind.raw_points(&mut StdRng::seed_from_u64(seed));
    block(vec![Column {
        method: "last".to_owned(),
        values: raw.iter().map(|p| *p.last().unwrap()).collect(),
    }])
}

const KINDS: [Kind; 3] = [Kind::Constant, Kind::RandomWalk, Kind::Counter];

fn report_sizes() {
    for kind in KINDS {
        let one = encode_split(&one_column(kind, 1)).len();
        let six = six_columns(kind, 1);
        let sizes: Vec<String> = six
            .columns
            .iter()
            .map(|c| {
                let b = encode_split(&block(vec![c.clone()])).len();
                format!("{} {:.3}", c.method, b as f64 / SLOTS as f64)
            })
            .collect();
        eprintln!(
            "{:>16}: 1 column {:.3} bytes/point; 6 columns {:.3} bytes/point/column ({})",
            kind.name(),
            one as f64 / SLOTS as f64,
            encode_split(&six).len() as f64 / (6 * SLOTS) as f64,
            sizes.join(", ")
        );
    }
}

fn bench(c: &mut Criterion) {
    report_sizes();
    for (label, make, ncols) in [
        ("split6", six_columns as fn(Kind, u64) -> SplitBlock, 6u64),
        ("split1", one_column, 1),
    ] {
        let mut enc = c.benchmark_group(format!("codec/encode/{label}"));
        for kind in KINDS {
            let b = make(kind, 1);
            enc.throughput(Throughput::Bytes(ncols * SLOTS as u64 * 8));
            enc.bench_with_input(BenchmarkId::from_parameter(kind.name()), &b, |bench, b| {
                bench.iter(|| encode_split(black_box(b)))
            });
        }
        enc.finish();
        let mut dec = c.benchmark_group(format!("codec/decode/{label}"));
        for kind in KINDS {
            let bytes = encode_split(&make(kind, 1));
            let mut out = SplitBlock::default();
            dec.throughput(Throughput::Bytes(ncols * SLOTS as u64 * 8));
            dec.bench_with_input(
                BenchmarkId::from_parameter(kind.name()),
                &bytes,
                |bench, b| bench.iter(|| decode_split_into(black_box(b), &mut out).unwrap()),
            );
        }
        dec.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
