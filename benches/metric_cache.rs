//! Metric lookup by id through the write path's cache ([`MetricCache::by_id`]): every
//! measures POST, batch and line-protocol write pays one per metric before anything is
//! appended, so it bounds write throughput. Issue 3's target: ≥ 200,000 lookups/s.
//!
//! Fixture: an SQLite index with Gnocchi's default policies and 10,000 metrics on
//! `low`, all in the cache (a warm server). One iteration = 10,000 lookups in a fixed
//! pseudo-random order, so criterion's `thrpt` is lookups/s. Shapes: one task, and two
//! tasks at once (this machine's two cores, sharing the cache's lock).
//!
//! A cold lookup goes to the index (`Indexer::get_metric`): `cargo bench -p indexer`
//! measures that path.
//!
//! Run: `cargo bench -p gnocchid --bench metric_cache`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gnocchid::archive_policy::to_record;
use gnocchid::metric_cache::MetricCache;
use indexer::{Indexer, NewMetric, UpgradeOptions};
use uuid::Uuid;

const METRICS: usize = 10_000;
const LOOKUPS: usize = 10_000;

/// The fixture: a warm cache over `METRICS` metrics, and lookup orders (one per task).
fn fixture(rt: &tokio::runtime::Runtime, url: &str) -> (Arc<MetricCache>, Vec<Arc<Vec<Uuid>>>) {
    rt.block_on(async {
        let indexer = Indexer::connect(url).await.expect("connect");
        indexer
            .upgrade(&UpgradeOptions {
                default_policies: carbonara::archive_policy::ArchivePolicy::builtin()
                    .iter()
                    .map(to_record)
                    .collect(),
                create_default_rule: true,
                sacks: None,
            })
            .await
            .expect("upgrade");
        let mut ids = Vec::with_capacity(METRICS);
        for i in 0..METRICS {
            let metric = indexer
                .create_metric(&NewMetric {
                    name: Some(format!("m{i}")),
                    archive_policy_name: Some("low".into()),
                    creator: "bench:proj".into(),
                    ..Default::default()
                })
                .await
                .expect("create metric");
            ids.push(metric.id);
        }
        let cache = Arc::new(MetricCache::new(indexer));
        for id in &ids {
            cache.by_id(*id).await.expect("warm the cache");
        }
        // xorshift: a fixed, cache-unfriendly order, different per task.
        let orders = (0..2u64)
            .map(|task| {
                let mut state = 0x9E37_79B9_7F4A_7C15 ^ (task + 1);
                Arc::new(
                    (0..LOOKUPS)
                        .map(|_| {
                            state ^= state << 13;
                            state ^= state >> 7;
                            state ^= state << 17;
                            ids[(state % METRICS as u64) as usize]
                        })
                        .collect(),
                )
            })
            .collect();
        (cache, orders)
    })
}

async fn look_up(cache: &MetricCache, order: &[Uuid]) {
    for id in order {
        black_box(cache.by_id(*id).await.expect("cached"));
    }
}

fn by_id(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::Builder::new()
        .prefix("gnocchid-bench-metric-cache-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let url = format!("sqlite://{}", dir.path().join("index.sqlite").display());
    let (cache, orders) = fixture(&rt, &url);

    let mut group = c.benchmark_group("metric_cache/by_id");
    group.throughput(Throughput::Elements(LOOKUPS as u64));
    group.bench_function("1 task", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    look_up(&cache, &orders[0]).await;
                }
                start.elapsed()
            })
        })
    });
    group.throughput(Throughput::Elements(2 * LOOKUPS as u64));
    group.bench_function("2 tasks", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                let tasks: Vec<_> = orders
                    .iter()
                    .map(|order| {
                        let cache = cache.clone();
                        let order = order.clone();
                        tokio::spawn(async move {
                            for _ in 0..iters {
                                look_up(&cache, &order).await;
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    drop(cache);
    drop(dir);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = by_id
}
criterion_main!(benches);
