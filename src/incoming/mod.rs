//! The incoming buffer: measures accepted but not yet aggregated.
//!
//! # Brief overview
//!
//! The write path ends here: an HTTP handler (or statsd, line protocol, remote
//! write) calls [`Incoming::append`], and answers `202 Accepted` only once that
//! returns, because `append` returns only when the measures would survive a
//! crash. metricd later takes a [`Sack`] (under a lock, so one worker per sack),
//! asks which metrics have pending measures ([`Incoming::pending`], a roaring
//! bitmap of [`MetricSeq`]s kept in memory or in a Redis set), reads them
//! ([`Incoming::read`] returns a [`Pending`]), merges them into the aggregates
//! and finally calls [`Incoming::acknowledge`], which deletes exactly what was
//! read. [`Incoming::subscribe`] gives metricd a [`Wakeup`] so it sleeps until
//! measures arrive instead of polling every sack.
//!
//! Drivers, chosen by URL in [`open`]:
//!
//! - [`LocalLogIncoming`] (embedded default, `file:///path` or a plain path):
//!   append-only segment files with group commit (one `fdatasync` for all the
//!   callers waiting at that moment) and an in-memory index rebuilt on open.
//! - [`RedisIncoming`] (scale-out, `redis://host:port/db?prefix=…`): a Redis
//!   list per metric, a set per sack and backlog counters in a hash.
//!
//! # Sacks
//!
//! A metric's sack is `metric_seq % sack_count` ([`sack_of`]). Every process
//! sharing an incoming store must use the same sack count (the index stores
//! it). The local log stores only metric ids, so it re-derives sacks on open
//! and a changed sack count is harmless there.
//!
//! # At-least-once processing
//!
//! Nothing is removed before `acknowledge`, so a crash between metricd's
//! storage write and its acknowledgement makes the next `read` return the same
//! batches again. metricd's merge must therefore be idempotent for measures it
//! has already applied (Gnocchi has the same property: the unaggregated tail
//! deduplicates by timestamp, last write wins).

mod codec;
pub mod local_log;
pub mod redis_incoming;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
pub use roaring::RoaringBitmap;
use tokio::sync::watch;

pub use local_log::LocalLogIncoming;
pub use redis_incoming::RedisIncoming;

/// A metric's compact integer id from the indexer (fits roaring bitmaps).
pub type MetricSeq = u32;

/// A partition of the incoming buffer; metricd locks and processes one sack at
/// a time. See [`sack_of`] for the mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sack(pub u32);

impl std::fmt::Display for Sack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sack {}", self.0)
    }
}

/// The sack holding `metric`'s pending measures: `metric % sack_count`.
///
/// Compact ids are handed out sequentially by the indexer, so the modulo
/// spreads metrics evenly. `sack_count` must be at least 1.
pub fn sack_of(metric: MetricSeq, sack_count: u32) -> Sack {
    Sack(metric % sack_count.max(1))
}

/// Measures for one metric, in arrival order: `timestamps[i]` goes with
/// `values[i]`. Timestamps are UTC nanoseconds; they need not be sorted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeasureBatch {
    /// The metric the measures belong to.
    pub metric: MetricSeq,
    /// UTC nanoseconds since the epoch.
    pub timestamps: Vec<i64>,
    /// One value per timestamp.
    pub values: Vec<f64>,
}

impl MeasureBatch {
    /// Number of measures in the batch.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// True when the batch holds no measure.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }
}

/// The pending measures of one metric, concatenated in arrival order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measures {
    /// UTC nanoseconds since the epoch.
    pub timestamps: Vec<i64>,
    /// One value per timestamp.
    pub values: Vec<f64>,
}

impl Measures {
    /// Number of measures.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// True when there is no measure.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }
}

/// What [`Incoming::read`] returned: the measures per metric plus an opaque
/// receipt naming exactly the stored batches they came from, so that
/// [`Incoming::acknowledge`] deletes those and nothing appended later.
///
/// A `Pending` must be acknowledged by the store that produced it.
#[derive(Debug)]
pub struct Pending {
    sack: Sack,
    measures: BTreeMap<MetricSeq, Measures>,
    receipt: Receipt,
}

/// Backend-specific record of what a `read` returned.
#[derive(Debug)]
pub(crate) enum Receipt {
    /// Per metric, the position of the last log record read.
    LocalLog(BTreeMap<MetricSeq, local_log::Position>),
    /// Per metric, (list entries read, measures in them).
    Redis(BTreeMap<MetricSeq, (u64, u64)>),
}

impl Receipt {
    fn retain(&mut self, mut keep: impl FnMut(MetricSeq) -> bool) {
        match self {
            Receipt::LocalLog(m) => m.retain(|k, _| keep(*k)),
            Receipt::Redis(m) => m.retain(|k, _| keep(*k)),
        }
    }
}

impl Pending {
    pub(crate) fn new(
        sack: Sack,
        measures: BTreeMap<MetricSeq, Measures>,
        receipt: Receipt,
    ) -> Self {
        Self {
            sack,
            measures,
            receipt,
        }
    }

    /// The sack that was read.
    pub fn sack(&self) -> Sack {
        self.sack
    }

    /// The metrics read and their measures in arrival order, by metric id.
    pub fn measures(&self) -> &BTreeMap<MetricSeq, Measures> {
        &self.measures
    }

    /// Moves the measures out (to process them without a copy); the receipt
    /// stays, so acknowledging afterwards still deletes what was read.
    pub fn take_measures(&mut self) -> BTreeMap<MetricSeq, Measures> {
        std::mem::take(&mut self.measures)
    }

    /// Measures for one metric, if it had any pending.
    pub fn get(&self, metric: MetricSeq) -> Option<&Measures> {
        self.measures.get(&metric)
    }

    /// Total number of measures read.
    pub fn measure_count(&self) -> u64 {
        self.measures.values().map(|m| m.len() as u64).sum()
    }

    /// True when nothing was pending for the requested metrics.
    pub fn is_empty(&self) -> bool {
        self.measures.is_empty()
    }

    /// Keeps only the metrics for which `keep` is true, in the measures and in
    /// the receipt: acknowledging then leaves the others pending (for example
    /// metrics whose processing failed).
    pub fn retain_metrics(&mut self, mut keep: impl FnMut(MetricSeq) -> bool) {
        self.measures.retain(|k, _| keep(*k));
        self.receipt.retain(keep);
    }
}

/// Backlog figures for `/v1/status`, from counters (no scan of measure data).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Metrics with at least one pending measure.
    pub metrics: u64,
    /// Pending measures over all metrics.
    pub measures: u64,
    /// Pending measures per metric, when asked for with `details = true`.
    pub per_metric: Option<BTreeMap<MetricSeq, u64>>,
}

/// Errors of the incoming buffer.
#[derive(Debug, thiserror::Error)]
pub enum IncomingError {
    /// A filesystem operation of the local log failed.
    #[error("incoming log i/o error on {path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// Shared so that one failed group commit can fail every waiting caller.
        #[source]
        source: Arc<io::Error>,
    },
    /// Another process (or another store in this one) has the local log
    /// open; only one may append to and acknowledge it.
    #[error("incoming log {dir} is in use by another gnocchid process")]
    InUse {
        /// The log directory.
        dir: PathBuf,
    },
    /// A Redis command failed or Redis is unreachable.
    #[error("incoming redis error: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// Stored data failed its checksum or does not parse.
    #[error("corrupt incoming data in {location} at offset {offset}: {reason}")]
    Corrupt {
        /// File path or Redis key.
        location: String,
        /// Byte offset (0 for Redis entries).
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The incoming URL is not one [`open`] understands.
    #[error("invalid incoming url: {reason}")]
    InvalidUrl {
        /// Why; the URL itself is not echoed (it may carry a password).
        reason: String,
    },
    /// A batch has a different number of timestamps and values.
    #[error("measure batch for metric {metric} has {timestamps} timestamps but {values} values")]
    MismatchedBatch {
        /// The metric of the batch.
        metric: MetricSeq,
        /// Number of timestamps.
        timestamps: usize,
        /// Number of values.
        values: usize,
    },
    /// A sack number at or above the sack count.
    #[error("{sack} does not exist (sack count {sack_count})")]
    NoSuchSack {
        /// The sack asked for.
        sack: Sack,
        /// The configured number of sacks.
        sack_count: u32,
    },
    /// A [`Pending`] produced by another kind of store was acknowledged.
    #[error("pending measures acknowledged on a store that did not read them")]
    ForeignReceipt,
    /// The store was shut down (its writer thread is gone).
    #[error("the incoming store is closed")]
    Closed,
}

impl IncomingError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        IncomingError::Io {
            path: path.into(),
            source: Arc::new(source),
        }
    }
}

/// Durable buffer of measures not yet aggregated, partitioned into sacks.
///
/// Every method is safe to call concurrently. Per metric, measures keep the
/// order in which `append` calls completed (and, within a call, the order of
/// the batches).
#[async_trait]
pub trait Incoming: Debug + Send + Sync + 'static {
    /// Number of sacks; sacks are `0..sack_count`.
    fn sack_count(&self) -> u32;

    /// Appends the batches, each to its metric's sack.
    ///
    /// Returns once every batch would survive a crash (fsync of the local log,
    /// or Redis' reply to the transaction): this is what makes `202 Accepted`
    /// honest. Concurrent callers are grouped into one fsync. On error nothing
    /// of this call is acknowledged (for the local log nothing of it is kept;
    /// the caller may retry). Empty batches are ignored; a batch whose
    /// timestamps and values differ in length fails the whole call before
    /// anything is written.
    async fn append(&self, batches: Vec<MeasureBatch>) -> Result<(), IncomingError>;

    /// Compact ids of the metrics in `sack` that have pending measures. Cheap:
    /// kept in memory (local log) or in a Redis set; no measure data is read.
    async fn pending(&self, sack: Sack) -> Result<RoaringBitmap, IncomingError>;

    /// Reads everything pending for `metrics` in `sack` (metrics of other
    /// sacks, and metrics without pending measures, are skipped). Nothing is
    /// removed before [`Incoming::acknowledge`]. Measures of each metric are
    /// concatenated in arrival order.
    ///
    /// The caller must hold the sack (one reader per sack at a time).
    async fn read(&self, sack: Sack, metrics: &RoaringBitmap) -> Result<Pending, IncomingError>;

    /// Deletes exactly what the `read` that produced `done` returned; batches
    /// appended since then stay pending. Durable on return. If the process
    /// dies before this returns, the same batches are read again later
    /// (at-least-once; see the module documentation).
    async fn acknowledge(&self, done: Pending) -> Result<(), IncomingError>;

    /// Backlog for `/v1/status`: metrics with pending measures and pending
    /// measures, from counters (no scan of measure data); with `details`, also
    /// the count per metric.
    async fn backlog(&self, details: bool) -> Result<Backlog, IncomingError>;

    /// Drops everything pending for `metric` (the janitor, on metric
    /// deletion). Batches appended after this call started may stay.
    /// Idempotent: forgetting a metric with nothing pending is `Ok`.
    async fn forget(&self, metric: MetricSeq) -> Result<(), IncomingError>;

    /// A wake-up handle: [`Wakeup::changed`] resolves when measures may have
    /// arrived in some sack since the handle was created or last woke.
    /// Spurious wake-ups are possible; missed ones are not (while the store
    /// is reachable).
    fn subscribe(&self) -> Wakeup;
}

/// Resolves when new measures may be pending; see [`Incoming::subscribe`].
#[derive(Debug, Clone)]
pub struct Wakeup {
    rx: watch::Receiver<u64>,
}

impl Wakeup {
    pub(crate) fn new(rx: watch::Receiver<u64>) -> Self {
        Self { rx }
    }

    /// Waits for the next append (or returns at once if one happened since the
    /// last call). Fails with [`IncomingError::Closed`] once the store is gone.
    pub async fn changed(&mut self) -> Result<(), IncomingError> {
        self.rx.changed().await.map_err(|_| IncomingError::Closed)
    }
}

/// A cheap broadcast of "measures arrived"; a generation counter.
#[derive(Debug)]
pub(crate) struct Notifier {
    tx: watch::Sender<u64>,
}

impl Notifier {
    pub(crate) fn new() -> Self {
        Self {
            tx: watch::Sender::new(0),
        }
    }

    pub(crate) fn notify(&self) {
        self.tx
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> Wakeup {
        Wakeup::new(self.tx.subscribe())
    }
}

/// Opens the incoming store named by `url`:
///
/// - `file:///path/to/dir` or a plain path: [`LocalLogIncoming`];
/// - `redis://[user:password@]host[:port][/db][?prefix=name]`: [`RedisIncoming`]
///   (keys under `name:`, default `gnocchid`).
///
/// `sack_count` must be at least 1, and the same in every process sharing the
/// store.
pub async fn open(url: &str, sack_count: u32) -> Result<Arc<dyn Incoming>, IncomingError> {
    if sack_count == 0 {
        return Err(IncomingError::InvalidUrl {
            reason: "sack count must be at least 1".into(),
        });
    }
    if url.starts_with("redis://") || url.starts_with("redis+unix://") || url.starts_with("unix://")
    {
        let store = RedisIncoming::connect(url, sack_count).await?;
        return Ok(Arc::new(store));
    }
    let path = if let Some(rest) = url.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return Err(IncomingError::InvalidUrl {
                reason: "file URLs must be absolute: file:///path".into(),
            });
        }
        PathBuf::from(rest)
    } else if let Some((scheme, _)) = url.split_once("://") {
        return Err(IncomingError::InvalidUrl {
            reason: format!("unsupported scheme {scheme:?} (expected file:// or redis://)"),
        });
    } else if url.is_empty() {
        return Err(IncomingError::InvalidUrl {
            reason: "empty incoming url".into(),
        });
    } else {
        PathBuf::from(url)
    };
    let store = tokio::task::spawn_blocking(move || LocalLogIncoming::open(path, sack_count))
        .await
        .map_err(|_| IncomingError::Closed)??;
    Ok(Arc::new(store))
}

/// Checks batch shapes before anything is written.
pub(crate) fn validate(batches: &[MeasureBatch]) -> Result<(), IncomingError> {
    for b in batches {
        if b.timestamps.len() != b.values.len() {
            return Err(IncomingError::MismatchedBatch {
                metric: b.metric,
                timestamps: b.timestamps.len(),
                values: b.values.len(),
            });
        }
    }
    Ok(())
}

pub(crate) fn check_sack(sack: Sack, sack_count: u32) -> Result<(), IncomingError> {
    if sack.0 >= sack_count {
        return Err(IncomingError::NoSuchSack { sack, sack_count });
    }
    Ok(())
}
