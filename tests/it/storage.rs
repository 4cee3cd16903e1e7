//! Aggregate storage suite: every case runs on each backend (memory, a
//! temporary directory, S3), expanded by `storage_suite!` into
//! `storage::<backend>::<case>`.
//!
//! S3 is a local S3-compatible server: `bash .ci/s3` starts one (moto) on
//! 127.0.0.1:19000; `GNOCCHID_TEST_S3_ENDPOINT` points elsewhere. Each S3 test
//! creates its own bucket and deletes it; an unreachable endpoint fails the
//! test.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use carbonara::aggregated::AggregatedSeries;
use carbonara::aggregation::{Method, Scratch};
use carbonara::archive_policy::{ArchivePolicy, ArchivePolicyItem};
use carbonara::codec::{encode_split, TailBlock};
use carbonara::split::{split_series, AggregatedSplit};
use futures_util::{StreamExt, TryStreamExt};
use gnocchid::storage::keys;
use gnocchid::storage::{AggregateStore, Coherence, StorageError};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

const S: i64 = 1_000_000_000;
/// 2015-03-06T14:00:00Z, the date of Gnocchi's examples.
const T0: i64 = 1_425_650_400 * S;

#[derive(Debug, Clone, Copy)]
enum Backend {
    Memory,
    LocalFs,
    S3,
}

/// A store on one backend, and what to clean up after.
struct TestStore {
    store: AggregateStore,
    _dir: Option<tempfile::TempDir>,
    bucket: Option<(String, String)>,
}

pub(crate) fn s3_endpoint() -> String {
    std::env::var("GNOCCHID_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:19000".into())
}

/// One unauthenticated request to the S3 server (bucket creation and
/// removal, which object_store does not do); returns the status code.
pub(crate) async fn s3_request(endpoint: &str, method: &str, path: &str) -> u16 {
    let url = url::Url::parse(endpoint).expect("GNOCCHID_TEST_S3_ENDPOINT is a URL");
    let host = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port_or_known_default().unwrap_or(80)
    );
    let mut conn = tokio::net::TcpStream::connect(&host)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "S3 test endpoint {endpoint} is unreachable ({e}): start it with `bash .ci/s3` \
             or set GNOCCHID_TEST_S3_ENDPOINT"
            )
        });
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(request.as_bytes())
        .await
        .expect("send to S3");
    let mut response = Vec::new();
    conn.read_to_end(&mut response).await.expect("read from S3");
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad answer from S3 at {endpoint}: {text}"))
}

impl TestStore {
    async fn new(backend: Backend) -> TestStore {
        match backend {
            Backend::Memory => TestStore {
                store: AggregateStore::open("memory://").unwrap(),
                _dir: None,
                bucket: None,
            },
            Backend::LocalFs => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("storage");
                TestStore {
                    store: AggregateStore::open(path.to_str().unwrap()).unwrap(),
                    _dir: Some(dir),
                    bucket: None,
                }
            }
            Backend::S3 => {
                static N: AtomicU32 = AtomicU32::new(0);
                let endpoint = s3_endpoint();
                let bucket = format!(
                    "gnocchid-test-{}-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .subsec_nanos()
                );
                let status = s3_request(&endpoint, "PUT", &format!("/{bucket}")).await;
                assert_eq!(status, 200, "creating bucket {bucket} at {endpoint}");
                let store = AggregateStore::open(&format!(
                    "s3://{bucket}?endpoint={endpoint}&region=us-east-1&access_key_id=test\
                     &secret_access_key=test&allow_http=true"
                ))
                .unwrap();
                TestStore {
                    store,
                    _dir: None,
                    bucket: Some((endpoint, bucket)),
                }
            }
        }
    }

    /// Removes the S3 bucket (the temporary directory goes with `self`).
    async fn finish(self) {
        if let Some((endpoint, bucket)) = &self.bucket {
            let os = self.store.object_store().clone();
            let paths = os.list(None).map_ok(|m| m.location).boxed();
            let deleted: Vec<_> = os.delete_stream(paths).collect().await;
            assert!(deleted.iter().all(Result::is_ok), "emptying {bucket}");
            let status = s3_request(endpoint, "DELETE", &format!("/{bucket}")).await;
            assert_eq!(status, 204, "deleting bucket {bucket}");
        }
    }
}

/// Every case, on every backend.
macro_rules! storage_suite {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Backend::Memory).await
                }
            )*
        }
        mod local_fs {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Backend::LocalFs).await
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Backend::S3).await
                }
            )*
        }
    };
}

storage_suite!(
    tail_round_trip,
    split_write_read_list,
    apply_matches_reference,
    reapply_is_idempotent,
    truncation_deletes_old_splits,
    killed_fresh_pass_leaves_no_expired_split,
    delete_metric_removes_everything,
    corrupt_object_is_an_error,
    cache_matches_uncached,
    cache_sees_other_writers,
);

fn m(name: &str) -> Method {
    name.parse().unwrap()
}

fn methods(names: &[&str]) -> BTreeSet<Method> {
    names.iter().map(|n| m(n)).collect()
}

/// Deterministic xorshift.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Raw bytes of every object of a metric, by key.
async fn snapshot(store: &AggregateStore, metric: Uuid) -> BTreeMap<String, Vec<u8>> {
    let os = store.object_store();
    let metas: Vec<_> = os
        .list(Some(&keys::metric_prefix(metric)))
        .try_collect()
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for meta in metas {
        let bytes = os.get(&meta.location).await.unwrap().bytes().await.unwrap();
        out.insert(meta.location.to_string(), bytes.to_vec());
    }
    out
}

async fn tail_round_trip(backend: Backend) {
    let t = TestStore::new(backend).await;
    let store = &t.store;
    let metric = Uuid::new_v4();
    assert_eq!(store.read_tail(metric).await.unwrap(), None);
    let block = TailBlock {
        timestamps: vec![T0, T0 + S, T0 + 5 * S, T0 + 3600 * S],
        values: vec![1.5, -0.0, f64::MAX, 12.25],
    };
    store.write_tail(metric, &block).await.unwrap();
    assert_eq!(store.read_tail(metric).await.unwrap(), Some(block));
    let replaced = TailBlock {
        timestamps: vec![-S, 0],
        values: vec![f64::NAN, 3.0],
    };
    store.write_tail(metric, &replaced).await.unwrap();
    assert_eq!(store.read_tail(metric).await.unwrap(), Some(replaced));
    store
        .write_tail(metric, &TailBlock::default())
        .await
        .unwrap();
    assert_eq!(
        store.read_tail(metric).await.unwrap(),
        Some(TailBlock::default())
    );
    t.finish().await;
}

/// Splits of mean and max over `n` measures a second apart from `start`.
fn make_splits(start: i64, n: i64, granularity: i64) -> Vec<AggregatedSplit> {
    let ts: Vec<i64> = (0..n).map(|i| start + i * S).collect();
    let vs: Vec<f64> = (0..n).map(|i| (i % 97) as f64 * 0.5).collect();
    let mut scratch = Scratch::new();
    let series: Vec<AggregatedSeries> = ["mean", "max"]
        .iter()
        .map(|name| {
            AggregatedSeries::compute(&ts, &vs, granularity, m(name), &mut scratch).unwrap()
        })
        .collect();
    split_series(&series).unwrap()
}

async fn split_write_read_list(backend: Backend) {
    let t = TestStore::new(backend).await;
    let store = &t.store;
    let metric = Uuid::new_v4();
    let hour = 3600 * S;
    // Three hours at 1 s (three splits), and the same at 60 s (one split).
    let fine = make_splits(T0 - 1800 * S, 3 * 3600, S);
    let coarse = make_splits(T0 - 1800 * S, 3 * 3600, 60 * S);
    assert_eq!(fine.len(), 4);
    assert_eq!(coarse.len(), 1);
    assert!(store.list_splits(metric, S).await.unwrap().is_empty());
    assert!(store.read_split(metric, S, T0).await.unwrap().is_none());
    let mut all = fine.clone();
    all.extend(coarse.iter().cloned());
    store.write_splits(metric, all).await.unwrap();

    let starts: Vec<i64> = fine.iter().map(|s| s.key().start()).collect();
    assert_eq!(starts, vec![T0 - hour, T0, T0 + hour, T0 + 2 * hour]);
    assert_eq!(store.list_splits(metric, S).await.unwrap(), starts);
    assert_eq!(
        store.list_splits(metric, 60 * S).await.unwrap(),
        vec![coarse[0].key().start()]
    );
    assert_eq!(store.granularities(metric).await.unwrap(), vec![S, 60 * S]);
    for split in &fine {
        let read = store
            .read_split(metric, S, split.key().start())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(*read, *split);
    }
    // Ranges select overlapping splits; stop is exclusive.
    let range = |a: Option<i64>, b: Option<i64>| {
        let store = store.clone();
        async move {
            store
                .read_splits(metric, S, a, b)
                .await
                .unwrap()
                .iter()
                .map(|s| s.key().start())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(range(None, None).await, starts);
    assert_eq!(range(Some(T0 + 1), None).await, starts[1..]);
    assert_eq!(range(Some(T0), Some(T0 + hour)).await, vec![T0]);
    assert_eq!(range(Some(T0 - 1), Some(T0 + hour + 1)).await, starts[..3]);
    assert_eq!(range(None, Some(T0 - hour)).await, Vec::<i64>::new());
    assert_eq!(range(Some(T0 + 10 * hour), None).await, Vec::<i64>::new());
    let read = store
        .read_splits(metric, S, Some(T0), Some(T0 + 2 * hour))
        .await
        .unwrap();
    assert_eq!(*read[0], fine[1]);
    assert_eq!(*read[1], fine[2]);

    // Deleting some, then everything before a cutoff.
    store.delete_splits(metric, S, &[T0 + hour]).await.unwrap();
    assert_eq!(
        store.list_splits(metric, S).await.unwrap(),
        vec![T0 - hour, T0, T0 + 2 * hour]
    );
    assert!(store
        .read_split(metric, S, T0 + hour)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store
            .delete_splits_before(metric, S, T0 + 30 * S)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.list_splits(metric, S).await.unwrap(),
        vec![T0, T0 + 2 * hour]
    );
    // The other granularity is untouched.
    assert_eq!(store.list_splits(metric, 60 * S).await.unwrap().len(), 1);
    t.finish().await;
}

/// A policy with two archives, back window 2 blocks of 60 s.
fn test_policy() -> ArchivePolicy {
    ArchivePolicy::new(
        "storage-test",
        2,
        vec![
            ArchivePolicyItem::new(Some(S), Some(5400), None).unwrap(),
            ArchivePolicyItem::new(Some(60 * S), Some(100), None).unwrap(),
        ],
        methods(&[
            "mean",
            "sum",
            "min",
            "max",
            "count",
            "std",
            "last",
            "first",
            "rate:mean",
        ]),
    )
    .unwrap()
}

/// Batches of irregular measures over about five hours, with out-of-order
/// measures inside batches and late batches (some within the back window,
/// some too old).
fn test_batches(seed: u64) -> Vec<(Vec<i64>, Vec<f64>)> {
    let mut rng = Rng(seed);
    let mut batches = Vec::new();
    let mut t = T0;
    let mut held: Vec<(i64, f64)> = Vec::new();
    while t < T0 + 5 * 3600 * S {
        let n = 1 + rng.below(600) as usize;
        let mut batch: Vec<(i64, f64)> = Vec::with_capacity(n + 2);
        if !batches.is_empty() && rng.below(2) == 0 {
            // Late, but within the back window: replaces or fills a slot.
            batch.push((t - 30 * S, 7.0));
        }
        for _ in 0..n {
            t += (1 + rng.below(3) as i64) * S;
            let v = (rng.below(10_000) as f64) / 10.0;
            if rng.below(20) == 0 {
                held.push((t, v));
            } else {
                batch.push((t, v));
            }
        }
        // Shuffle a little: swap random pairs.
        for _ in 0..batch.len() / 4 {
            let a = rng.below(batch.len() as u64) as usize;
            let b = rng.below(batch.len() as u64) as usize;
            batch.swap(a, b);
        }
        // A duplicate timestamp with another value (the first one wins).
        if let Some(&(dt, _)) = batch.first() {
            batch.push((dt, -1.0));
        }
        batches.push(batch);
        // Sometimes release held-back measures as a late batch.
        if rng.below(3) == 0 && !held.is_empty() {
            batches.push(std::mem::take(&mut held));
        }
    }
    batches.into_iter().map(|b| b.into_iter().unzip()).collect()
}

/// What the store should hold: one-shot aggregates over every accepted
/// measure, with Gnocchi's acceptance rule replayed here.
struct Reference {
    measures: BTreeMap<i64, f64>,
    last: Option<i64>,
    block: i64,
    back_window: i64,
}

impl Reference {
    fn new(policy: &ArchivePolicy) -> Reference {
        Reference {
            measures: BTreeMap::new(),
            last: None,
            block: policy.block_size(),
            back_window: i64::from(policy.back_window()),
        }
    }

    /// Returns (accepted distinct timestamps, dropped).
    fn apply(&mut self, ts: &[i64], vs: &[f64]) -> (usize, usize) {
        let cutoff = self.last.map_or(i64::MIN, |l| {
            l.div_euclid(self.block) * self.block - self.back_window * self.block
        });
        let mut seen = BTreeSet::new();
        let mut dropped = 0;
        for (&t, &v) in ts.iter().zip(vs) {
            if t < cutoff {
                dropped += 1;
            } else if seen.insert(t) {
                self.measures.insert(t, v);
                self.last = Some(self.last.map_or(t, |l| l.max(t)));
            }
        }
        (seen.len(), dropped)
    }

    fn expected(&self, granularity: i64, timespan: i64, method: Method) -> AggregatedSeries {
        let ts: Vec<i64> = self.measures.keys().copied().collect();
        let vs: Vec<f64> = self.measures.values().copied().collect();
        let mut series =
            AggregatedSeries::compute(&ts, &vs, granularity, method, &mut Scratch::new()).unwrap();
        series.truncate(timespan);
        series
    }
}

fn assert_series_eq(got: &AggregatedSeries, want_ts: &[i64], want_vs: &[f64], what: &str) {
    assert_eq!(got.timestamps(), want_ts, "{what}: timestamps");
    for (i, (a, b)) in got.values().iter().zip(want_vs).enumerate() {
        assert!(
            (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
            "{what}: value {i} at {}: {a} vs {b}",
            want_ts[i]
        );
    }
}

/// Reads every (granularity, method) and compares with the reference, whole
/// and over a few ranges.
async fn check_against_reference(
    store: &AggregateStore,
    metric: Uuid,
    policy: &ArchivePolicy,
    reference: &Reference,
) {
    for &method in policy.aggregation_methods() {
        let all = store
            .read_aggregates(metric, policy, method, None, None, None)
            .await
            .unwrap();
        // Coarsest granularity first.
        let grans: Vec<i64> = all.iter().map(AggregatedSeries::granularity).collect();
        let mut want_grans: Vec<i64> = policy
            .definition()
            .iter()
            .map(|i| i.granularity())
            .collect();
        want_grans.reverse();
        assert_eq!(grans, want_grans);
        for (series, item) in all.iter().zip(policy.definition().iter().rev()) {
            let g = item.granularity();
            let want = reference.expected(g, item.timespan().unwrap(), method);
            assert_series_eq(
                series,
                want.timestamps(),
                want.values(),
                &format!("{method} at {g}"),
            );
            let std_at_1s = method == m("std") && g == S;
            assert_eq!(series.is_empty(), std_at_1s, "{method} at {g}");
            assert!(series.len() as u64 <= item.points().unwrap());
            // Ranges: start rounded down to the granularity, stop exclusive.
            let last = reference.last.unwrap();
            for (start, stop) in [
                (Some(last - 3600 * S + 17 * S / 10), Some(last - 1800 * S)),
                (Some(last - 600 * S), None),
                (None, Some(last - 7200 * S)),
                (Some(T0 - 3600 * S), Some(T0)),
            ] {
                let got = store
                    .read_aggregates(metric, policy, method, Some(g), start, stop)
                    .await
                    .unwrap();
                assert_eq!(got.len(), 1);
                let (wts, wvs) = want.range(start.map(|s| s.div_euclid(g) * g), stop);
                assert_series_eq(
                    &got[0],
                    wts,
                    wvs,
                    &format!("{method} at {g} in {start:?}..{stop:?}"),
                );
            }
        }
    }
}

async fn apply_matches_reference(backend: Backend) {
    let t = TestStore::new(backend).await;
    let store = &t.store;
    let policy = test_policy();
    let metric = Uuid::new_v4();
    let mut reference = Reference::new(&policy);
    let (mut total_dropped, mut late_accepted) = (0, 0);
    for (ts, vs) in test_batches(0x5eed) {
        let outcome = store
            .apply_measures(metric, &policy, &ts, &vs)
            .await
            .unwrap();
        let prev_last = reference.last;
        let (accepted, dropped) = reference.apply(&ts, &vs);
        assert_eq!((outcome.accepted, outcome.dropped), (accepted, dropped));
        total_dropped += dropped;
        if ts.iter().any(|&x| prev_last.is_some_and(|l| x < l)) {
            late_accepted += accepted;
        }
    }
    assert!(
        total_dropped > 0,
        "the batches must exercise the back window"
    );
    assert!(late_accepted > 0, "the batches must include late measures");
    check_against_reference(store, metric, &policy, &reference).await;

    // The tail keeps only the back window (plus one measure before it).
    let tail = store.read_tail(metric).await.unwrap().unwrap();
    let last = reference.last.unwrap();
    let cutoff = last.div_euclid(60 * S) * 60 * S - 2 * 60 * S;
    assert_eq!(tail.timestamps.iter().filter(|&&x| x < cutoff).count(), 1);
    assert_eq!(*tail.timestamps.last().unwrap(), last);

    // Errors: unknown method or granularity, mismatched measures.
    let err = store
        .read_aggregates(metric, &policy, m("median"), None, None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::NoSuchAggregation { .. }),
        "{err}"
    );
    let err = store
        .read_aggregates(metric, &policy, m("mean"), Some(2 * S), None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::NoSuchAggregation { .. }),
        "{err}"
    );
    let err = store
        .apply_measures(metric, &policy, &[T0], &[])
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::InvalidMeasures(_)), "{err}");
    // An empty or entirely dropped batch writes nothing.
    let before = snapshot(store, metric).await;
    let outcome = store
        .apply_measures(metric, &policy, &[], &[])
        .await
        .unwrap();
    assert_eq!(outcome.accepted + outcome.splits_written, 0);
    let outcome = store
        .apply_measures(metric, &policy, &[T0], &[1.0])
        .await
        .unwrap();
    assert_eq!(
        (outcome.accepted, outcome.dropped, outcome.splits_written),
        (0, 1, 0)
    );
    assert_eq!(snapshot(store, metric).await, before);
    t.finish().await;
}

async fn reapply_is_idempotent(backend: Backend) {
    let t = TestStore::new(backend).await;
    let store = &t.store;
    let policy = test_policy();
    let metric = Uuid::new_v4();
    let batches = test_batches(0xfeed);
    let mut reference = Reference::new(&policy);
    for (i, (ts, vs)) in batches.iter().enumerate() {
        let tail_before = store.read_tail(metric).await.unwrap();
        store.apply_measures(metric, &policy, ts, vs).await.unwrap();
        reference.apply(ts, vs);
        if i % 5 == 2 {
            // Crash after everything was written, before the incoming batch
            // was acknowledged: the batch comes again.
            let done = snapshot(store, metric).await;
            store.apply_measures(metric, &policy, ts, vs).await.unwrap();
            assert_eq!(snapshot(store, metric).await, done, "re-applying batch {i}");
        } else if i % 5 == 4 {
            // Crash after the splits were written, before the tail was: the
            // old tail is still there, and the batch comes again.
            let done = snapshot(store, metric).await;
            match &tail_before {
                Some(tail) => store.write_tail(metric, tail).await.unwrap(),
                None => {
                    store
                        .object_store()
                        .delete(&keys::tail(metric))
                        .await
                        .unwrap();
                }
            }
            store.apply_measures(metric, &policy, ts, vs).await.unwrap();
            assert_eq!(snapshot(store, metric).await, done, "replaying batch {i}");
        }
    }
    check_against_reference(store, metric, &policy, &reference).await;
    t.finish().await;
}

async fn truncation_deletes_old_splits(backend: Backend) {
    let t = TestStore::new(backend).await;
    let store = &t.store;
    // One hour at 1 s: one split span. Five hours of data leave two splits.
    let policy = ArchivePolicy::new(
        "hour",
        0,
        vec![
            ArchivePolicyItem::new(Some(S), Some(3600), None).unwrap(),
            ArchivePolicyItem::new(Some(60 * S), None, None).unwrap(),
        ],
        methods(&["mean", "count"]),
    )
    .unwrap();
    let metric = Uuid::new_v4();
    let mut reference = Reference::new(&policy);
    let mut deleted = 0;
    for hour in 0..5 {
        let ts: Vec<i64> = (0..3600)
            .step_by(7)
            .map(|i| T0 + (hour * 3600 + i) * S)
            .collect();
        let vs: Vec<f64> = ts.iter().map(|&x| ((x / S) % 100) as f64).collect();
        let outcome = store
            .apply_measures(metric, &policy, &ts, &vs)
            .await
            .unwrap();
        reference.apply(&ts, &vs);
        deleted += outcome.splits_deleted;
    }
    let last = reference.last.unwrap();
    let kept = store.list_splits(metric, S).await.unwrap();
    assert_eq!(kept, vec![T0 + 3 * 3600 * S, T0 + 4 * 3600 * S]);
    assert_eq!(deleted, 3);
    // The unbounded archive keeps everything (one 60 h split).
    assert_eq!(store.list_splits(metric, 60 * S).await.unwrap().len(), 1);
    let read = store
        .read_aggregates(metric, &policy, m("count"), Some(S), None, None)
        .await
        .unwrap();
    assert!(read[0].len() <= 3600);
    assert!(read[0].timestamps()[0] > last - 3600 * S);
    let want = reference.expected(S, 3600 * S, m("count"));
    assert_series_eq(&read[0], want.timestamps(), want.values(), "count at 1 s");
    // A read that stops early still truncates relative to the latest point.
    let early = store
        .read_aggregates(
            metric,
            &policy,
            m("count"),
            Some(S),
            None,
            Some(T0 + 4 * 3600 * S),
        )
        .await
        .unwrap();
    assert!(early[0].timestamps().iter().all(|&x| x > last - 3600 * S));
    let (wts, wvs) = want.range(None, Some(T0 + 4 * 3600 * S));
    assert_series_eq(&early[0], wts, wvs, "count at 1 s, early stop");
    t.finish().await;
}

/// A first pass staged splits and was killed before its tail; by the time
/// the batch comes again, newer measures moved the keep line past them: the
/// re-apply deletes them instead of leaking them.
async fn killed_fresh_pass_leaves_no_expired_split(backend: Backend) {
    let t = TestStore::new(backend).await;
    let store = &t.store;
    // One hour at 1 s: one split span.
    let policy = ArchivePolicy::new(
        "hour",
        0,
        vec![ArchivePolicyItem::new(Some(S), Some(3600), None).unwrap()],
        methods(&["mean", "count"]),
    )
    .unwrap();
    let metric = Uuid::new_v4();
    let first: Vec<i64> = (0..60).map(|i| T0 + i * S).collect();
    let ones = vec![1.0; first.len()];
    // Staged, never committed: the splits exist, the tail does not.
    let staged = store
        .stage_measures(metric, &policy, &first, &ones)
        .await
        .unwrap();
    assert!(staged.outcome().splits_written > 0);
    store.sync().await.unwrap();
    assert_eq!(store.list_splits(metric, S).await.unwrap(), vec![T0]);
    assert!(store.read_tail(metric).await.unwrap().is_none());
    // The same measures again, with three hours more.
    let mut ts = first.clone();
    ts.extend((0..10).map(|i| T0 + 3 * 3600 * S + i * S));
    let vs = vec![1.0; ts.len()];
    store
        .apply_measures(metric, &policy, &ts, &vs)
        .await
        .unwrap();
    assert_eq!(
        store.list_splits(metric, S).await.unwrap(),
        vec![T0 + 3 * 3600 * S]
    );
    t.finish().await;
}

async fn delete_metric_removes_everything(backend: Backend) {
    let t = TestStore::new(backend).await;
    let store = &t.store;
    let policy = test_policy();
    let (doomed, kept) = (Uuid::new_v4(), Uuid::new_v4());
    let batches = test_batches(7);
    for (ts, vs) in batches.iter().take(4) {
        store.apply_measures(doomed, &policy, ts, vs).await.unwrap();
        store.apply_measures(kept, &policy, ts, vs).await.unwrap();
    }
    let kept_before = snapshot(store, kept).await;
    let n = snapshot(store, doomed).await.len();
    assert!(n > 2);
    // Warm the cache, then delete.
    store
        .read_aggregates(doomed, &policy, m("mean"), None, None, None)
        .await
        .unwrap();
    assert_eq!(store.delete_metric(doomed).await.unwrap(), n);
    assert!(snapshot(store, doomed).await.is_empty());
    assert_eq!(store.read_tail(doomed).await.unwrap(), None);
    assert!(store.list_splits(doomed, S).await.unwrap().is_empty());
    assert!(store.granularities(doomed).await.unwrap().is_empty());
    let read = store
        .read_aggregates(doomed, &policy, m("mean"), None, None, None)
        .await
        .unwrap();
    assert!(read.iter().all(AggregatedSeries::is_empty));
    assert_eq!(store.delete_metric(doomed).await.unwrap(), 0);
    assert_eq!(snapshot(store, kept).await, kept_before);
    t.finish().await;
}

async fn corrupt_object_is_an_error(backend: Backend) {
    let t = TestStore::new(backend).await;
    let store = &t.store;
    let os = store.object_store();
    let metric = Uuid::new_v4();
    let policy = test_policy();

    // Garbage split.
    let key = keys::split(metric, S, T0);
    os.put(&key, PutPayload::from(b"CBSP\x01garbage".to_vec()))
        .await
        .unwrap();
    let err = store.read_split(metric, S, T0).await.unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains(key.as_ref()), "{err}");
    let err = store
        .read_aggregates(metric, &policy, m("mean"), Some(S), None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");

    // A valid split under another split's key.
    let other = make_splits(T0 + 3600 * S, 10, S).remove(0);
    os.put(&key, PutPayload::from(encode_split(&other.to_block())))
        .await
        .unwrap();
    let err = store.read_split(metric, S, T0).await.unwrap_err();
    assert!(err.to_string().contains(key.as_ref()), "{err}");

    // Garbage tail: reading it and applying measures fail, naming it.
    let tail_key = keys::tail(metric);
    os.put(&tail_key, PutPayload::from(vec![0u8; 3]))
        .await
        .unwrap();
    let err = store.read_tail(metric).await.unwrap_err();
    assert!(err.to_string().contains(tail_key.as_ref()), "{err}");
    let err = store
        .apply_measures(metric, &policy, &[T0], &[1.0])
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");

    // A split of a future layout version is refused by listings; stray
    // objects are ignored.
    let m2 = Uuid::new_v4();
    let prefix = keys::metric_prefix(m2);
    os.put(
        &Path::from(format!("{prefix}/README")),
        PutPayload::from(vec![1u8]),
    )
    .await
    .unwrap();
    assert!(store.list_splits(m2, S).await.unwrap().is_empty());
    let future = Path::from(format!("{prefix}/{S}_{}.v3", keys::encode_start(T0)));
    os.put(&future, PutPayload::from(vec![1u8])).await.unwrap();
    let fresh = AggregateStore::new(os.clone()).with_cache_capacity(0);
    let err = fresh.list_splits(m2, S).await.unwrap_err();
    assert!(matches!(err, StorageError::UnknownLayout { .. }), "{err}");
    assert!(err.to_string().contains(future.as_ref()), "{err}");
    t.finish().await;
}

async fn cache_matches_uncached(backend: Backend) {
    let t = TestStore::new(backend).await;
    let store = &t.store;
    assert!(store.cache().is_enabled());
    let uncached = AggregateStore::new(store.object_store().clone()).with_cache_capacity(0);
    let policy = test_policy();
    let metric = Uuid::new_v4();
    for (i, (ts, vs)) in test_batches(99).iter().enumerate() {
        store.apply_measures(metric, &policy, ts, vs).await.unwrap();
        if i % 7 == 0 {
            // Reads interleaved with writes must see every write.
            for &method in policy.aggregation_methods() {
                let a = store
                    .read_aggregates(metric, &policy, method, None, None, None)
                    .await
                    .unwrap();
                let b = uncached
                    .read_aggregates(metric, &policy, method, None, None, None)
                    .await
                    .unwrap();
                assert_eq!(a, b, "{method} after batch {i}");
            }
        }
    }
    let before = store.cache().stats();
    for &method in policy.aggregation_methods() {
        let a = store
            .read_aggregates(metric, &policy, method, None, None, None)
            .await
            .unwrap();
        let b = uncached
            .read_aggregates(metric, &policy, method, None, None, None)
            .await
            .unwrap();
        assert_eq!(a, b, "{method}");
    }
    let after = store.cache().stats();
    assert!(after.hits > before.hits, "{before:?} {after:?}");
    assert!(after.splits > 0 && after.bytes > 0, "{after:?}");
    // One decode shared by readers.
    let start = store.list_splits(metric, S).await.unwrap()[0];
    let x = store.read_split(metric, S, start).await.unwrap().unwrap();
    let y = store.read_split(metric, S, start).await.unwrap().unwrap();
    assert!(Arc::ptr_eq(&x, &y));
    assert!(!Arc::ptr_eq(
        &x,
        &uncached
            .read_split(metric, S, start)
            .await
            .unwrap()
            .unwrap()
    ));
    t.finish().await;
}

async fn cache_sees_other_writers(backend: Backend) {
    let t = TestStore::new(backend).await;
    // Two processes over one storage: each revalidates its cache.
    let reader = t
        .store
        .clone()
        .with_cache_capacity(64 << 20)
        .with_coherence(Coherence::Revalidate);
    let writer = AggregateStore::new(t.store.object_store().clone());
    let policy = test_policy();
    let metric = Uuid::new_v4();
    let mut reference = Reference::new(&policy);
    for (i, (ts, vs)) in test_batches(3).iter().enumerate().take(12) {
        writer
            .apply_measures(metric, &policy, ts, vs)
            .await
            .unwrap();
        reference.apply(ts, vs);
        let got = reader
            .read_aggregates(metric, &policy, m("sum"), Some(S), None, None)
            .await
            .unwrap();
        let want = reference.expected(S, 5400 * S, m("sum"));
        assert_series_eq(
            &got[0],
            want.timestamps(),
            want.values(),
            &format!("after batch {i}"),
        );
    }
    let before = reader.cache().stats();
    reader
        .read_aggregates(metric, &policy, m("sum"), Some(S), None, None)
        .await
        .unwrap();
    assert!(
        reader.cache().stats().hits > before.hits,
        "unchanged splits revalidate"
    );
    writer.delete_metric(metric).await.unwrap();
    let got = reader
        .read_aggregates(metric, &policy, m("sum"), Some(S), None, None)
        .await
        .unwrap();
    assert!(got[0].is_empty());
    t.finish().await;
}

#[tokio::test]
async fn open_urls() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b");
    let url = format!("file://{}", nested.display());
    let store = AggregateStore::open(&url).unwrap();
    assert_eq!(store.coherence(), Coherence::Revalidate);
    store
        .write_tail(Uuid::nil(), &TailBlock::default())
        .await
        .unwrap();
    assert!(nested
        .join(Uuid::nil().to_string())
        .join("tail.v2.0")
        .is_file());
    AggregateStore::open(&format!("{url}?fsync=false")).unwrap();
    assert_eq!(
        AggregateStore::open("memory://").unwrap().coherence(),
        Coherence::Exclusive
    );
    for bad in [
        "ftp://x/y",
        "s3://?endpoint=http://127.0.0.1:1",
        "s3://b?no_such_option=1&secret_access_key=hunter2",
        "file:///tmp/x?fsync=maybe",
        "file:///tmp/x?other=1",
    ] {
        let err = AggregateStore::open(bad).unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidUrl { .. }),
            "{bad}: {err}"
        );
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
