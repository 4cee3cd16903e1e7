//! Aggregate storage costs on the in-memory object store (so the figures are
//! this crate's work, not I/O):
//!
//! - `read_split/cache_hit`: one split served from the decoded-split cache
//!   ([`Coherence::Exclusive`]): a hash lookup and an `Arc` clone;
//! - `read_split/uncached`: the same split fetched and decoded (6 methods,
//!   3600 slots);
//! - `read_aggregates/hot`: `GET …/measures` for one method of a hot metric
//!   (policy "medium"-like: 1 min × 1 day, 1 h × 1 week; two days of data), all
//!   splits cached;
//! - `apply_measures/100`: metricd's step for one metric and a 100-point batch
//!   (one point per 10 s) with the same policy.
//!
//! Run: `cargo bench -p gnocchid --bench storage`.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::Instant;

use carbonara::aggregation::Method;
use carbonara::archive_policy::{ArchivePolicy, ArchivePolicyItem};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gnocchid::storage::{AggregateStore, Coherence};
use uuid::Uuid;

const S: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * S;

fn policy() -> ArchivePolicy {
    let methods: BTreeSet<Method> = ["mean", "min", "max", "sum", "std", "count"]
        .iter()
        .map(|m| m.parse().unwrap())
        .collect();
    ArchivePolicy::new(
        "bench",
        0,
        vec![
            ArchivePolicyItem::new(Some(60 * S), Some(1440), None).unwrap(),
            ArchivePolicyItem::new(Some(3600 * S), Some(168), None).unwrap(),
        ],
        methods,
    )
    .unwrap()
}

fn storage(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let policy = policy();
    let metric = Uuid::from_u128(1);
    let cached = AggregateStore::open("memory://").unwrap();
    assert_eq!(cached.coherence(), Coherence::Exclusive);
    let uncached = AggregateStore::new(cached.object_store().clone()).with_cache_capacity(0);
    // Two days of one point every 10 s, in 100-point batches.
    let mut t = T0;
    rt.block_on(async {
        while t < T0 + 2 * 86_400 * S {
            let ts: Vec<i64> = (0..100).map(|i| t + i * 10 * S).collect();
            let vs: Vec<f64> = ts.iter().map(|&x| ((x / S) % 1000) as f64 / 10.0).collect();
            cached
                .apply_measures(metric, &policy, &ts, &vs)
                .await
                .unwrap();
            t += 1000 * S;
        }
    });
    let start = rt.block_on(cached.list_splits(metric, 60 * S)).unwrap()[0];

    let mut group = c.benchmark_group("read_split");
    group.throughput(Throughput::Elements(1));
    group.bench_function("cache_hit", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let begin = Instant::now();
                for _ in 0..iters {
                    black_box(cached.read_split(metric, 60 * S, start).await.unwrap());
                }
                begin.elapsed()
            })
        })
    });
    group.bench_function("uncached", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let begin = Instant::now();
                for _ in 0..iters {
                    black_box(uncached.read_split(metric, 60 * S, start).await.unwrap());
                }
                begin.elapsed()
            })
        })
    });
    group.finish();

    let mean: Method = "mean".parse().unwrap();
    let mut group = c.benchmark_group("read_aggregates");
    group.bench_function("hot", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let begin = Instant::now();
                for _ in 0..iters {
                    black_box(
                        cached
                            .read_aggregates(metric, &policy, mean, None, None, None)
                            .await
                            .unwrap(),
                    );
                }
                begin.elapsed()
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("apply_measures");
    group.throughput(Throughput::Elements(100));
    group.bench_function("100", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let begin = Instant::now();
                for _ in 0..iters {
                    let ts: Vec<i64> = (0..100).map(|i| t + i * 10 * S).collect();
                    let vs: Vec<f64> = ts.iter().map(|&x| ((x / S) % 1000) as f64).collect();
                    black_box(
                        cached
                            .apply_measures(metric, &policy, &ts, &vs)
                            .await
                            .unwrap(),
                    );
                    t += 1000 * S;
                }
                begin.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, storage);
criterion_main!(benches);
