//! Append throughput of the embedded incoming log (`LocalLogIncoming`) on the
//! real filesystem under /var/tmp: 4 concurrent appenders, each appending
//! batches of 10,000 measures back to back, as 4 HTTP connections posting
//! 10,000-measure batches would. One iteration = one batch per appender
//! (40,000 measures), so criterion's `thrpt` is measures/s, fsync included.
//!
//! Shapes: `100x100` (100 metrics × 100 points per batch) and `10000x1`
//! (10,000 metrics × 1 point, the worst case: one record per measure).
//!
//! Run: `cargo bench -p gnocchid --bench incoming`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gnocchid::incoming::{Incoming, LocalLogIncoming, MeasureBatch};

const APPENDERS: u32 = 4;
const BATCH: usize = 10_000;
const SACKS: u32 = 128;

/// The batches one appender posts: `metrics` × `BATCH / metrics` points.
fn request(appender: u32, metrics: u32) -> Vec<MeasureBatch> {
    let points = BATCH / metrics as usize;
    let start = 1_700_000_000_000_000_000i64;
    (0..metrics)
        .map(|m| MeasureBatch {
            metric: appender * metrics + m,
            timestamps: (0..points)
                .map(|i| start + i as i64 * 1_000_000_000)
                .collect(),
            values: (0..points).map(|i| (i as f64).sin()).collect(),
        })
        .collect()
}

fn append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("incoming/local_log/append");
    group.throughput(Throughput::Elements(u64::from(APPENDERS) * BATCH as u64));
    for (name, metrics) in [("100x100", 100u32), ("10000x1", 10_000)] {
        let dir = tempfile::Builder::new()
            .prefix("gnocchid-bench-incoming-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let store = Arc::new(LocalLogIncoming::open(dir.path(), SACKS).unwrap());
        let requests: Vec<Arc<Vec<MeasureBatch>>> = (0..APPENDERS)
            .map(|a| Arc::new(request(a, metrics)))
            .collect();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    let tasks: Vec<_> = requests
                        .iter()
                        .map(|req| {
                            let store = store.clone();
                            let req = req.clone();
                            tokio::spawn(async move {
                                for _ in 0..iters {
                                    // The copy stands for the parsed HTTP body.
                                    store.append(req.as_ref().clone()).await.unwrap();
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
        drop(store);
        drop(dir);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    targets = append
}
criterion_main!(benches);
