//! Throughput of the aggregation kernels and of the write path's split update.
//!
//! Data is seeded (xorshift), so runs compare. Run with
//! `cargo bench -p carbonara --bench aggregation`.

use std::hint::black_box;
use std::time::Duration;

use carbonara::aggregated::AggregatedSeries;
use carbonara::aggregation::{aggregate_grouped, Method, Scratch};
use carbonara::split::{AggregatedSplit, SplitKey};
use carbonara::unaggregated::UnaggregatedTail;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const S: i64 = 1_000_000_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn value(&mut self) -> f64 {
        (self.next() % 1_000_000) as f64 / 100.0
    }
}

/// `n` measures one second apart from 2024-01-01, random values.
fn measures(n: usize, seed: u64) -> (Vec<i64>, Vec<f64>) {
    let mut rng = Rng(seed);
    let start = 1_704_067_200 * S;
    let ts = (0..n as i64).map(|i| start + i * S).collect();
    let vs = (0..n).map(|_| rng.value()).collect();
    (ts, vs)
}

const METHODS: &[&str] = &[
    "mean",
    "sum",
    "min",
    "max",
    "count",
    "first",
    "last",
    "std",
    "median",
    "95pct",
    "rate:mean",
];

fn grouped(c: &mut Criterion) {
    let n = 1 << 20;
    let (ts, vs) = measures(n, 42);
    let mut group = c.benchmark_group("grouped");
    group.throughput(Throughput::Elements(n as u64));
    for granularity in [S, 60 * S, 3600 * S] {
        for name in METHODS {
            let method: Method = name.parse().unwrap();
            let mut scratch = Scratch::new();
            let mut out_t = Vec::with_capacity(n);
            let mut out_v = Vec::with_capacity(n);
            let id = BenchmarkId::new(*name, format!("{}s", granularity / S));
            group.bench_with_input(id, &method, |b, &method| {
                b.iter(|| {
                    out_t.clear();
                    out_v.clear();
                    aggregate_grouped(
                        method,
                        black_box(&ts),
                        black_box(&vs),
                        None,
                        granularity,
                        &mut scratch,
                        &mut out_t,
                        &mut out_v,
                    );
                    black_box(out_v.len())
                })
            });
        }
    }
    group.finish();
}

fn split_update(c: &mut Criterion) {
    let methods: Vec<Method> = ["mean", "min", "max", "sum", "std", "count"]
        .iter()
        .map(|m| m.parse().unwrap())
        .collect();
    // A full 3600-slot split at 1 s, all six default methods.
    let (ts, vs) = measures(3600, 7);
    let key = SplitKey::containing(ts[0], S).unwrap();
    let mut scratch = Scratch::new();
    let mut full = AggregatedSplit::new(key);
    for &m in &methods {
        let series = AggregatedSeries::compute(&ts, &vs, S, m, &mut scratch).unwrap();
        full.apply(&series, ts[0]).unwrap();
    }
    // 100 fresh points overwriting the last 100 slots.
    let from = ts[3500];
    let (new_vs, _) = (measures(100, 9).1, ());
    let updates: Vec<AggregatedSeries> = methods
        .iter()
        .map(|&m| AggregatedSeries::compute(&ts[3500..], &new_vs, S, m, &mut scratch).unwrap())
        .collect();

    let mut group = c.benchmark_group("split_update");
    group.throughput(Throughput::Elements(100));
    group.bench_function("apply_100_points_6_methods", |b| {
        b.iter_batched_ref(
            || full.clone(),
            |split| {
                for u in &updates {
                    split.apply(black_box(u), from).unwrap();
                }
            },
            criterion::BatchSize::SmallInput,
        )
    });
    // The write path end to end for one granularity: merge 100 measures into
    // a one-hour tail, recompute the six methods, write them into the split.
    let tail = UnaggregatedTail::from_parts(3600 * S, 0, ts.clone(), vs.clone()).unwrap();
    let new_ts: Vec<i64> = (0..100).map(|i| ts[3599] + (i + 1) * S).collect();
    group.bench_function("tail_merge_compute_apply_100_points", |b| {
        b.iter_batched_ref(
            || (tail.clone(), full.clone()),
            |(tail, split)| {
                let from = tail
                    .merge(&new_ts, &new_vs)
                    .unwrap()
                    .recompute_from
                    .unwrap();
                for &m in &methods {
                    let update = tail.aggregate_from(from, S, m, &mut scratch);
                    split.apply(&update, from).unwrap();
                }
                tail.truncate();
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = grouped, split_update
}
criterion_main!(benches);
