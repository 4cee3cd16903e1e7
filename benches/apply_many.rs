//! Apply-path harness (not a criterion bench): metricd's workload of many
//! metrics on the in-memory object store, reporting CPU µs per
//! `apply_measures` call and per measure. Nothing is asserted on time.
//!
//! 10,000 metrics (set `APPLY_METRICS`) × rounds (`APPLY_ROUNDS`, default 3)
//! of 100-point batches, points 60 s apart, policy like Gnocchi's medium
//! (1 min × 7 days, 1 h × 365 days) with mean, min, max, sum, std, count.
//! The split cache has its default size, so most split reads miss as in a
//! server with that many metrics.
//!
//! `APPLY_STORE=file` puts the aggregates in a temporary directory instead
//! and applies as metricd does: a sack's worth of metrics (`APPLY_SACK`,
//! default 78, i.e. 10,000 metrics over 128 sacks) staged together, then
//! their tails committed with the two syncs.
//!
//! `cargo test --release --bench apply_many -- --ignored --nocapture` (`cargo bench`
//! runs only benchmarks, and this harness is an ignored test)

use std::collections::BTreeSet;
use std::time::Instant;

use carbonara::aggregation::Method;
use carbonara::archive_policy::{ArchivePolicy, ArchivePolicyItem};
use std::sync::Arc;

use gnocchid::storage::{AggregateStore, StageJob};
use uuid::Uuid;

const S: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * S;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn medium() -> ArchivePolicy {
    let methods: BTreeSet<Method> = ["mean", "min", "max", "sum", "std", "count"]
        .iter()
        .map(|m| m.parse().unwrap())
        .collect();
    ArchivePolicy::new(
        "medium",
        0,
        vec![
            ArchivePolicyItem::new(Some(60 * S), Some(7 * 1440), None).unwrap(),
            ArchivePolicyItem::new(Some(3600 * S), Some(365 * 24), None).unwrap(),
        ],
        methods,
    )
    .unwrap()
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let tick = 100.0;
    let utime: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let stime: f64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (utime + stime) / tick
}

#[test]
#[ignore = "harness: run with --ignored --nocapture"]
fn apply_many_metrics() {
    let metrics = env("APPLY_METRICS", 10_000);
    let rounds = env("APPLY_ROUNDS", 3);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sack = env("APPLY_SACK", 78);
    let policy = Arc::new(medium());
    let dir = tempfile::tempdir().unwrap();
    let local = std::env::var("APPLY_STORE").is_ok_and(|v| v == "file");
    let store = if local {
        AggregateStore::open(dir.path().to_str().unwrap()).unwrap()
    } else {
        AggregateStore::open("memory://").unwrap()
    };
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut cents: Vec<i64> = vec![10_000; metrics];
    rt.block_on(async {
        for round in 0..rounds {
            let t = T0 + round as i64 * 100 * 60 * S;
            let ts: Vec<i64> = (0..100).map(|i| t + i * 60 * S).collect();
            let (c0, w0) = (cpu_seconds(), Instant::now());
            let mut jobs = Vec::with_capacity(sack);
            for (m, c) in cents.iter_mut().enumerate() {
                let mut vs = Vec::with_capacity(100);
                for _ in 0..100 {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    *c += (rng % 201) as i64 - 100;
                    vs.push(*c as f64 / 100.0);
                }
                jobs.push(StageJob {
                    metric: Uuid::from_u128(m as u128 + 1),
                    policy: policy.clone(),
                    timestamps: ts.clone(),
                    values: vs,
                });
                if jobs.len() == sack || m + 1 == metrics {
                    let staged = store.stage_many(std::mem::take(&mut jobs)).await;
                    let staged = staged.into_iter().collect::<Result<Vec<_>, _>>().unwrap();
                    store.commit_tails(staged).await.unwrap();
                }
            }
            let (cpu, wall) = (cpu_seconds() - c0, w0.elapsed().as_secs_f64());
            let calls = metrics as f64;
            eprintln!(
                "round {round}: {metrics} applies, cpu {:.1} µs/apply ({:.2} µs/measure), wall {:.1} µs/apply, cache {:?}",
                cpu * 1e6 / calls,
                cpu * 1e6 / (calls * 100.0),
                wall * 1e6 / calls,
                store.cache().stats(),
            );
        }
    });
}
