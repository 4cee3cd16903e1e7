//! Conformance suite for the incoming buffer (`gnocchid::incoming`): every
//! case runs against every backend, one test per (backend, case). Redis tests
//! use `GNOCCHID_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), a key
//! prefix of their own, and delete their keys at the end; an unreachable Redis
//! fails the test.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gnocchid::incoming::{
    open, sack_of, Incoming, IncomingError, LocalLogIncoming, MeasureBatch, Measures, MetricSeq,
    RedisIncoming, RoaringBitmap, Sack,
};

const SACKS: u32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    LocalLog,
    Redis,
}

fn redis_url() -> String {
    std::env::var("GNOCCHID_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn redis_url_with_prefix(prefix: &str) -> String {
    let base = redis_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}prefix={prefix}")
}

/// A store under test plus what it takes to reopen and clean it up.
#[derive(Debug)]
struct Fixture {
    kind: Kind,
    store: Arc<dyn Incoming>,
    dir: Option<tempfile::TempDir>,
    prefix: String,
}

fn url_of(kind: Kind, dir: Option<&tempfile::TempDir>, prefix: &str) -> String {
    match kind {
        Kind::LocalLog => format!(
            "file://{}",
            dir.expect("local log fixture").path().display()
        ),
        Kind::Redis => redis_url_with_prefix(prefix),
    }
}

async fn open_store(kind: Kind, url: &str) -> Arc<dyn Incoming> {
    match open(url, SACKS).await {
        Ok(store) => store,
        Err(e) if kind == Kind::Redis => panic!(
            "cannot use Redis at {}: {e}; start Redis or set GNOCCHID_TEST_REDIS_URL to a reachable one",
            redis_url()
        ),
        Err(e) => panic!("open failed: {e}"),
    }
}

impl Fixture {
    async fn new(kind: Kind, case: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let prefix = format!("gnocchid-test-{case}-{}-{nanos}", std::process::id());
        let dir = match kind {
            Kind::LocalLog => Some(
                tempfile::Builder::new()
                    .prefix("gnocchid-incoming-")
                    .tempdir()
                    .unwrap(),
            ),
            Kind::Redis => None,
        };
        let store = open_store(kind, &url_of(kind, dir.as_ref(), &prefix)).await;
        Self {
            kind,
            store,
            dir,
            prefix,
        }
    }

    fn url(&self) -> String {
        url_of(self.kind, self.dir.as_ref(), &self.prefix)
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().expect("local log fixture").path()
    }

    /// Drops the store (the local log's writer stops) and opens it again.
    async fn reopen(self) -> Self {
        let url = self.url();
        let Fixture {
            kind,
            store,
            dir,
            prefix,
        } = self;
        assert_eq!(
            Arc::strong_count(&store),
            1,
            "the fixture holds the only handle"
        );
        drop(store);
        let store = open_store(kind, &url).await;
        Self {
            kind,
            store,
            dir,
            prefix,
        }
    }
}

/// Runs a case, then removes the Redis keys even when the case panicked.
async fn run<F, Fut>(kind: Kind, name: &str, case: F)
where
    F: FnOnce(Fixture) -> Fut,
    Fut: Future<Output = Fixture> + Send + 'static,
{
    let fixture = Fixture::new(kind, name).await;
    let prefix = fixture.prefix.clone();
    let outcome = tokio::spawn(case(fixture)).await;
    if kind == Kind::Redis {
        let cleaner = RedisIncoming::connect(&redis_url_with_prefix(&prefix), SACKS)
            .await
            .expect("reconnect to Redis for cleanup");
        cleaner
            .destroy()
            .await
            .expect("delete the test's Redis keys");
    }
    match outcome {
        Ok(fixture) => drop(fixture),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

fn batch(metric: MetricSeq, points: &[(i64, f64)]) -> MeasureBatch {
    MeasureBatch {
        metric,
        timestamps: points.iter().map(|p| p.0).collect(),
        values: points.iter().map(|p| p.1).collect(),
    }
}

fn measures(points: &[(i64, f64)]) -> Measures {
    Measures {
        timestamps: points.iter().map(|p| p.0).collect(),
        values: points.iter().map(|p| p.1).collect(),
    }
}

fn bitmap(ids: &[MetricSeq]) -> RoaringBitmap {
    ids.iter().copied().collect()
}

fn all_metrics() -> RoaringBitmap {
    let mut all = RoaringBitmap::new();
    all.insert_range(..);
    all
}

/// Reads and acknowledges every sack; returns what was pending, per metric.
async fn drain(store: &dyn Incoming) -> BTreeMap<MetricSeq, Measures> {
    let mut out = BTreeMap::new();
    for sack in 0..store.sack_count() {
        let pending = store.pending(Sack(sack)).await.unwrap();
        let mut read = store.read(Sack(sack), &pending).await.unwrap();
        out.extend(read.take_measures());
        store.acknowledge(read).await.unwrap();
    }
    out
}

mod cases {
    use super::*;

    pub(super) async fn round_trip(fx: Fixture) -> Fixture {
        let store = &fx.store;
        assert_eq!(store.sack_count(), SACKS);
        assert_eq!(sack_of(5, SACKS), Sack(1));
        store
            .append(vec![
                batch(1, &[(10, 1.0), (20, 2.0)]),
                batch(2, &[(10, 3.0)]),
                batch(5, &[(30, 4.5)]),
            ])
            .await
            .unwrap();
        assert_eq!(store.pending(Sack(1)).await.unwrap(), bitmap(&[1, 5]));
        assert_eq!(store.pending(Sack(2)).await.unwrap(), bitmap(&[2]));
        assert!(store.pending(Sack(0)).await.unwrap().is_empty());

        // Read only metric 1 of sack 1 (and a metric of another sack, ignored).
        let read = store.read(Sack(1), &bitmap(&[1, 2])).await.unwrap();
        assert_eq!(read.sack(), Sack(1));
        assert_eq!(read.measures().len(), 1);
        assert_eq!(read.get(1), Some(&measures(&[(10, 1.0), (20, 2.0)])));
        assert_eq!(read.measure_count(), 2);
        // Reading removes nothing.
        assert_eq!(store.pending(Sack(1)).await.unwrap(), bitmap(&[1, 5]));
        store.acknowledge(read).await.unwrap();
        assert_eq!(store.pending(Sack(1)).await.unwrap(), bitmap(&[5]));

        let read = store.read(Sack(1), &all_metrics()).await.unwrap();
        assert_eq!(read.get(5), Some(&measures(&[(30, 4.5)])));
        assert!(read.get(1).is_none());
        store.acknowledge(read).await.unwrap();
        assert!(store.pending(Sack(1)).await.unwrap().is_empty());
        assert!(store
            .read(Sack(1), &all_metrics())
            .await
            .unwrap()
            .is_empty());
        assert_eq!(store.pending(Sack(2)).await.unwrap(), bitmap(&[2]));

        assert!(matches!(
            store.pending(Sack(SACKS)).await,
            Err(IncomingError::NoSuchSack { .. })
        ));
        // A malformed batch fails the whole call; nothing of it is kept.
        let bad = MeasureBatch {
            metric: 3,
            timestamps: vec![1, 2],
            values: vec![1.0],
        };
        let err = store
            .append(vec![batch(7, &[(1, 1.0)]), bad])
            .await
            .unwrap_err();
        assert!(
            matches!(err, IncomingError::MismatchedBatch { metric: 3, .. }),
            "{err}"
        );
        assert!(store.pending(Sack(3)).await.unwrap().is_empty());
        // Empty batches are ignored.
        store
            .append(vec![batch(11, &[]), MeasureBatch::default()])
            .await
            .unwrap();
        assert!(store.pending(Sack(3)).await.unwrap().is_empty());
        assert!(store.pending(Sack(0)).await.unwrap().is_empty());
        fx
    }

    pub(super) async fn appends_during_read_stay_pending(fx: Fixture) -> Fixture {
        let store = &fx.store;
        store.append(vec![batch(3, &[(1, 1.0)])]).await.unwrap();
        let read = store.read(Sack(3), &bitmap(&[3])).await.unwrap();
        assert_eq!(read.get(3), Some(&measures(&[(1, 1.0)])));
        store
            .append(vec![batch(3, &[(2, 2.0)]), batch(7, &[(5, 5.0)])])
            .await
            .unwrap();
        store.acknowledge(read).await.unwrap();
        assert_eq!(store.pending(Sack(3)).await.unwrap(), bitmap(&[3, 7]));
        let read = store.read(Sack(3), &all_metrics()).await.unwrap();
        assert_eq!(read.get(3), Some(&measures(&[(2, 2.0)])));
        assert_eq!(read.get(7), Some(&measures(&[(5, 5.0)])));
        // Retained metrics only are acknowledged.
        let mut read = read;
        read.retain_metrics(|m| m == 3);
        store.acknowledge(read).await.unwrap();
        assert_eq!(store.pending(Sack(3)).await.unwrap(), bitmap(&[7]));
        fx
    }

    pub(super) async fn order_is_preserved_per_metric(fx: Fixture) -> Fixture {
        let store = &fx.store;
        let mut expected = Vec::new();
        for i in 0..40i64 {
            // Timestamps deliberately not sorted: arrival order is what counts.
            let points = [(1000 - i, i as f64), (i, -(i as f64))];
            expected.extend_from_slice(&points);
            if i % 2 == 0 {
                store.append(vec![batch(6, &points)]).await.unwrap();
            } else {
                // Two batches of one metric in one call keep their order too.
                store
                    .append(vec![
                        batch(6, &points[..1]),
                        batch(2, &[(0, 0.0)]),
                        batch(6, &points[1..]),
                    ])
                    .await
                    .unwrap();
            }
        }
        let read = store.read(Sack(2), &bitmap(&[6])).await.unwrap();
        assert_eq!(read.get(6), Some(&measures(&expected)));
        fx
    }

    pub(super) async fn backlog_counts(fx: Fixture) -> Fixture {
        let store = &fx.store;
        let empty = store.backlog(true).await.unwrap();
        assert_eq!((empty.metrics, empty.measures), (0, 0));
        store
            .append(vec![
                batch(1, &[(1, 1.0), (2, 1.0), (3, 1.0)]),
                batch(2, &[(1, 1.0), (2, 1.0)]),
                batch(9, &[(1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0)]),
            ])
            .await
            .unwrap();
        store.append(vec![batch(1, &[(4, 1.0)])]).await.unwrap();
        let backlog = store.backlog(false).await.unwrap();
        assert_eq!(
            (backlog.metrics, backlog.measures, backlog.per_metric),
            (3, 10, None)
        );
        let backlog = store.backlog(true).await.unwrap();
        assert_eq!(
            backlog.per_metric,
            Some(BTreeMap::from([(1, 4), (2, 2), (9, 4)]))
        );
        // Sack 1 holds metrics 1 and 9.
        let read = store.read(Sack(1), &all_metrics()).await.unwrap();
        assert_eq!(read.measure_count(), 8);
        store.acknowledge(read).await.unwrap();
        let backlog = store.backlog(true).await.unwrap();
        assert_eq!((backlog.metrics, backlog.measures), (1, 2));
        assert_eq!(backlog.per_metric, Some(BTreeMap::from([(2, 2)])));
        fx
    }

    pub(super) async fn forget_drops_a_metric(fx: Fixture) -> Fixture {
        let store = &fx.store;
        store
            .append(vec![batch(1, &[(1, 1.0), (2, 2.0)]), batch(5, &[(1, 1.0)])])
            .await
            .unwrap();
        store.forget(1).await.unwrap();
        assert_eq!(store.pending(Sack(1)).await.unwrap(), bitmap(&[5]));
        let backlog = store.backlog(true).await.unwrap();
        assert_eq!((backlog.metrics, backlog.measures), (1, 1));
        assert!(store.read(Sack(1), &bitmap(&[1])).await.unwrap().is_empty());
        // Idempotent, and a forgotten metric can receive measures again.
        store.forget(1).await.unwrap();
        store.forget(12345).await.unwrap();
        store.append(vec![batch(1, &[(3, 3.0)])]).await.unwrap();
        let read = store.read(Sack(1), &all_metrics()).await.unwrap();
        assert_eq!(read.get(1), Some(&measures(&[(3, 3.0)])));
        assert_eq!(read.get(5), Some(&measures(&[(1, 1.0)])));
        fx
    }

    pub(super) async fn concurrent_appenders_all_land(fx: Fixture) -> Fixture {
        const TASKS: i64 = 16;
        const CALLS: i64 = 25;
        const METRICS: u32 = 10;
        let mut handles = Vec::new();
        for task in 0..TASKS {
            let store = fx.store.clone();
            handles.push(tokio::spawn(async move {
                for call in 0..CALLS {
                    let batches = (0..METRICS)
                        .map(|m| {
                            let ts = task * 1_000_000 + call * 10;
                            batch(m, &[(ts, m as f64), (ts + 1, call as f64)])
                        })
                        .collect();
                    store.append(batches).await.unwrap();
                }
            }));
        }
        for handle in handles {
            handle.await.unwrap();
        }
        let backlog = fx.store.backlog(false).await.unwrap();
        assert_eq!(backlog.metrics, u64::from(METRICS));
        assert_eq!(
            backlog.measures,
            (TASKS * CALLS * 2) as u64 * u64::from(METRICS)
        );
        let all = drain(fx.store.as_ref()).await;
        assert_eq!(all.len(), METRICS as usize);
        for (metric, got) in &all {
            assert_eq!(got.len(), (TASKS * CALLS * 2) as usize);
            // Each task's measures arrive in the order it appended them.
            for task in 0..TASKS {
                let mine: Vec<i64> = got
                    .timestamps
                    .iter()
                    .copied()
                    .filter(|t| t / 1_000_000 == task)
                    .collect();
                let expected: Vec<i64> = (0..CALLS)
                    .flat_map(|c| {
                        let ts = task * 1_000_000 + c * 10;
                        [ts, ts + 1]
                    })
                    .collect();
                assert_eq!(mine, expected, "metric {metric} task {task}");
            }
        }
        let backlog = fx.store.backlog(false).await.unwrap();
        assert_eq!((backlog.metrics, backlog.measures), (0, 0));
        fx
    }

    pub(super) async fn reopen_keeps_pending_drops_acknowledged(fx: Fixture) -> Fixture {
        fx.store
            .append(vec![batch(1, &[(1, 1.0)]), batch(2, &[(2, 2.0)])])
            .await
            .unwrap();
        let read = fx.store.read(Sack(1), &all_metrics()).await.unwrap();
        fx.store.append(vec![batch(1, &[(3, 3.0)])]).await.unwrap();
        fx.store.acknowledge(read).await.unwrap();
        fx.store.append(vec![batch(3, &[(4, 4.0)])]).await.unwrap();
        fx.store.forget(3).await.unwrap();
        fx.store.append(vec![batch(3, &[(5, 5.0)])]).await.unwrap();

        let fx = fx.reopen().await;
        let backlog = fx.store.backlog(true).await.unwrap();
        assert_eq!(
            backlog.per_metric,
            Some(BTreeMap::from([(1, 1), (2, 1), (3, 1)]))
        );
        let all = drain(fx.store.as_ref()).await;
        assert_eq!(
            all,
            BTreeMap::from([
                (1, measures(&[(3, 3.0)])),
                (2, measures(&[(2, 2.0)])),
                (3, measures(&[(5, 5.0)])),
            ])
        );
        // And the acknowledgements of the drain survive another reopen.
        let fx = fx.reopen().await;
        let backlog = fx.store.backlog(false).await.unwrap();
        assert_eq!((backlog.metrics, backlog.measures), (0, 0));
        fx.store.append(vec![batch(2, &[(6, 6.0)])]).await.unwrap();
        assert_eq!(fx.store.pending(Sack(2)).await.unwrap(), bitmap(&[2]));
        fx
    }

    pub(super) async fn subscribe_wakes_on_append(fx: Fixture) -> Fixture {
        let mut wakeup = fx.store.subscribe();
        // Nothing happened yet: no wake-up.
        assert!(
            tokio::time::timeout(Duration::from_millis(100), wakeup.changed())
                .await
                .is_err()
        );
        let store = fx.store.clone();
        let appender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            store.append(vec![batch(4, &[(1, 1.0)])]).await.unwrap();
        });
        tokio::time::timeout(Duration::from_secs(5), wakeup.changed())
            .await
            .expect("woken within 5 s")
            .unwrap();
        appender.await.unwrap();
        // An append while nobody waits is remembered until the next wait.
        fx.store.append(vec![batch(4, &[(2, 1.0)])]).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), wakeup.changed())
            .await
            .expect("woken within 5 s")
            .unwrap();
        fx
    }
}

macro_rules! incoming_suite {
    ($($backend:ident => $kind:expr),* $(,)?) => {
        $(
            mod $backend {
                use super::{cases, run, Kind};

                incoming_suite!(@cases $kind;
                    round_trip,
                    appends_during_read_stay_pending,
                    order_is_preserved_per_metric,
                    backlog_counts,
                    forget_drops_a_metric,
                    concurrent_appenders_all_land,
                    reopen_keeps_pending_drops_acknowledged,
                    subscribe_wakes_on_append,
                );
            }
        )*
    };
    (@cases $kind:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                run($kind, stringify!($case), cases::$case).await;
            }
        )*
    };
}

incoming_suite! {
    local_log => Kind::LocalLog,
    redis => Kind::Redis,
}

// ---- local log only: files on disk -------------------------------------

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

/// The newest segment that holds more than its 16-byte header.
fn written_segment(dir: &Path) -> PathBuf {
    segments(dir)
        .into_iter()
        .rev()
        .find(|p| std::fs::metadata(p).unwrap().len() > 16)
        .expect("a segment with records")
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_log_torn_tail_is_truncated() {
    run(Kind::LocalLog, "torn", |fx| async move {
        fx.store.append(vec![batch(1, &[(1, 1.0)])]).await.unwrap();
        fx.store
            .append(vec![batch(1, &[(2, 2.0), (3, 3.0)])])
            .await
            .unwrap();
        let dir = fx.path().to_path_buf();
        let fx = fx.reopen().await;
        // Garbage after the last record, as a crash mid-write leaves it.
        append_bytes(&written_segment(&dir), &[0x5a; 37]);
        let fx = fx.reopen().await;
        let read = fx.store.read(Sack(1), &bitmap(&[1])).await.unwrap();
        assert_eq!(
            read.get(1),
            Some(&measures(&[(1, 1.0), (2, 2.0), (3, 3.0)]))
        );
        // New appends after the truncation replay fine.
        fx.store.append(vec![batch(1, &[(4, 4.0)])]).await.unwrap();
        let fx = fx.reopen().await;
        let read = fx.store.read(Sack(1), &bitmap(&[1])).await.unwrap();
        assert_eq!(read.get(1).unwrap().timestamps, vec![1, 2, 3, 4]);
        fx
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_log_half_written_record_is_dropped() {
    run(Kind::LocalLog, "half", |fx| async move {
        fx.store.append(vec![batch(2, &[(1, 1.0)])]).await.unwrap();
        fx.store
            .append(vec![batch(2, &[(2, 2.0), (3, 3.0)])])
            .await
            .unwrap();
        let dir = fx.path().to_path_buf();
        let fx = fx.reopen().await;
        // Cut the last record in half: its checksum no longer matches.
        let path = written_segment(&dir);
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 20)
            .unwrap();
        let fx = fx.reopen().await;
        let read = fx.store.read(Sack(2), &bitmap(&[2])).await.unwrap();
        assert_eq!(read.get(2), Some(&measures(&[(1, 1.0)])));
        assert_eq!(fx.store.backlog(false).await.unwrap().measures, 1);
        fx
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_log_corruption_before_the_tail_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LocalLogIncoming::open(dir.path(), SACKS).unwrap();
        store
            .append(vec![batch(1, &[(1, 1.0), (2, 2.0)])])
            .await
            .unwrap();
    }
    let first = written_segment(dir.path());
    {
        // A newer segment with a record makes the first one not the tail.
        let store = LocalLogIncoming::open(dir.path(), SACKS).unwrap();
        store.append(vec![batch(2, &[(1, 1.0)])]).await.unwrap();
    }
    let mut bytes = std::fs::read(&first).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&first, bytes).unwrap();
    let err = LocalLogIncoming::open(dir.path(), SACKS).unwrap_err();
    assert!(matches!(err, IncomingError::Corrupt { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_log_acknowledged_segments_are_deleted() {
    run(Kind::LocalLog, "gc", |fx| async move {
        // More than the 1 MiB that lets an idle log rotate.
        let points: Vec<(i64, f64)> = (0..80_000).map(|i| (i, i as f64)).collect();
        fx.store.append(vec![batch(1, &points)]).await.unwrap();
        let first = written_segment(fx.path());
        let drained = drain(fx.store.as_ref()).await;
        assert_eq!(drained[&1].len(), 80_000);
        // Cleanup runs right after the acknowledgement's group commit.
        let mut gone = false;
        for _ in 0..100 {
            if !first.exists() {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone, "{} still exists", first.display());
        assert_eq!(segments(fx.path()).len(), 1);
        let fx = fx.reopen().await;
        assert_eq!(fx.store.backlog(false).await.unwrap().measures, 0);
        fx
    })
    .await;
}

#[tokio::test]
async fn open_rejects_unknown_urls() {
    for url in ["s3://bucket", "file://relative/path", ""] {
        let err = open(url, 8).await.unwrap_err();
        assert!(
            matches!(err, IncomingError::InvalidUrl { .. }),
            "{url}: {err}"
        );
    }
    let err = open("file:///tmp/x", 0).await.unwrap_err();
    assert!(matches!(err, IncomingError::InvalidUrl { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_wakeup_reaches_other_processes() {
    run(Kind::Redis, "wakeup", |fx| async move {
        // A second store on the same prefix stands for another process.
        let other = RedisIncoming::connect(&fx.url(), SACKS).await.unwrap();
        let mut wakeup = other.subscribe();
        fx.store.append(vec![batch(3, &[(1, 1.0)])]).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), wakeup.changed())
            .await
            .expect("woken through pub/sub within 5 s")
            .unwrap();
        assert_eq!(other.pending(Sack(3)).await.unwrap(), bitmap(&[3]));
        fx
    })
    .await;
}

#[test]
fn local_log_refuses_a_second_opener_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let first = LocalLogIncoming::open(dir.path(), SACKS).unwrap();
    match LocalLogIncoming::open(dir.path(), SACKS) {
        Err(IncomingError::InUse { dir: busy }) => assert_eq!(busy, dir.path()),
        other => panic!("a second open of one log must be refused, got {other:?}"),
    }
    drop(first);
    LocalLogIncoming::open(dir.path(), SACKS).expect("the lock goes with the first store");
}
