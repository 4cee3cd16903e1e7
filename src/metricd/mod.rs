//! metricd: turns pending measures into aggregates, and the janitor that
//! removes deleted metrics.
//!
//! # How work flows
//!
//! Writers append measures to a sack of [`Incoming`] and the store wakes
//! [`Metricd::run`]; nothing polls while the system is idle. On a wake-up the
//! sacks with pending metrics are split into groups that workers process
//! concurrently, each sack under its own lock, so no metric's data is ever
//! in two workers at once. Processing a group ([`Metricd::process_sacks`])
//! reads the pending batches, applies each metric's measures to its stored
//! splits ([`AggregateStore::stage_measures`]), commits every tail of the
//! group at once ([`AggregateStore::commit_tails`]), and only then
//! acknowledges the batches: a crash in between re-reads them, and re-applying is harmless
//! because a measure at an existing timestamp overwrites it with the same
//! value.
//!
//! `?refresh=true` reads call [`Metricd::process_metric`], which takes the
//! same sack lock and processes just that metric. The locks are a
//! [`SackLocks`]: a mutex per sack embedded, a shared service scaled out.

mod locks;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use indexer::Indexer;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::incoming::{sack_of, Incoming, IncomingError, RoaringBitmap, Sack};
use crate::metric_cache::{LookupError, MetricCache};
use crate::storage::{AggregateStore, StageJob, StorageError};

pub use locks::{InProcessLocks, LockError, SackGuard, SackLocks};

/// How often the index's planner statistics are refreshed (also once at start).
const STATISTICS_PERIOD: Duration = Duration::from_secs(3600);

/// How often the janitor looks for deleted metrics.
const JANITOR_PERIOD: Duration = Duration::from_secs(30);

/// How many busy sacks one pass of a worker takes: enough that a backlog
/// pays for few storage syncs, few enough that each worker still has several
/// groups to alternate between staging (CPU) and syncing (disk), and at most
/// [`MAX_GROUP`] so a long backlog is not held in memory at once.
fn group_size(busy: usize, workers: usize) -> usize {
    busy.div_ceil(workers * 4).clamp(1, MAX_GROUP)
}

/// The most sacks processed under one commit.
const MAX_GROUP: usize = 16;

/// Why processing stopped short; the batches stay pending and are retried.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("incoming store: {0}")]
    Incoming(#[from] IncomingError),
    #[error("aggregate storage: {0}")]
    Storage(#[from] StorageError),
    #[error("index: {0}")]
    Lookup(#[from] LookupError),
    #[error("index: {0}")]
    Indexer(#[from] indexer::IndexerError),
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The processing task panicked or the runtime is shutting down.
    #[error("processing stopped: {0}")]
    Aborted(String),
}

/// Figures of one processing pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Processed {
    pub metrics: u64,
    pub measures: u64,
    /// Measures older than their metric's back window, dropped.
    pub dropped: u64,
}

/// The processing role: shared by the background loop and `refresh=true`.
#[derive(Debug)]
pub struct Metricd {
    incoming: Arc<dyn Incoming>,
    storage: AggregateStore,
    indexer: Indexer,
    metrics: Arc<MetricCache>,
    /// Who processes which sack.
    locks: Arc<dyn SackLocks>,
    workers: usize,
    totals: Totals,
}

/// Running totals since start, for `/v1/status`.
#[derive(Debug, Default)]
struct Totals {
    metrics: AtomicU64,
    measures: AtomicU64,
    dropped: AtomicU64,
    expunged: AtomicU64,
}

impl Metricd {
    pub fn new(
        incoming: Arc<dyn Incoming>,
        storage: AggregateStore,
        indexer: Indexer,
        metrics: Arc<MetricCache>,
    ) -> Self {
        let locks = Arc::new(InProcessLocks::new(incoming.sack_count()));
        // One more group in flight than cores: while a group waits for its
        // storage syncs, the others keep every core staging.
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .max(2)
            + 1;
        Self {
            incoming,
            storage,
            indexer,
            metrics,
            locks,
            workers,
            totals: Totals::default(),
        }
    }

    /// Totals since this process started, as `/v1/status` shows them.
    pub fn statistics(&self) -> serde_json::Value {
        serde_json::json!({
            "metrics processed": self.totals.metrics.load(Ordering::Relaxed),
            "measures processed": self.totals.measures.load(Ordering::Relaxed),
            "measures dropped (outside back window)": self.totals.dropped.load(Ordering::Relaxed),
            "metrics deleted": self.totals.expunged.load(Ordering::Relaxed),
        })
    }

    /// Processes whatever arrives until `shutdown` is cancelled.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut wakeup = self.incoming.subscribe();
        let mut janitor = tokio::time::interval(JANITOR_PERIOD);
        janitor.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut statistics = tokio::time::interval(STATISTICS_PERIOD);
        statistics.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Whatever was left pending before a restart is processed at once.
        self.process_all().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = wakeup.changed() => {
                    if changed.is_err() {
                        tracing::warn!("incoming store closed; metricd stops");
                        return;
                    }
                    self.process_all().await;
                }
                _ = janitor.tick() => {
                    if let Err(err) = self.expunge_deleted().await {
                        tracing::warn!(%err, "janitor pass failed");
                    }
                }
                _ = statistics.tick() => {
                    // Without fresh statistics SQLite picks poor indexes for
                    // multi-condition searches (8.7 ms instead of 0.22 ms at
                    // 20k resources).
                    if let Err(err) = self.indexer.optimize().await {
                        tracing::warn!(%err, "refreshing index statistics failed");
                    }
                }
            }
        }
    }

    /// Processes every sack with pending measures, `workers` groups of sacks
    /// at a time, until no sack has any left.
    pub async fn process_all(&self) -> Processed {
        let mut total = Processed::default();
        loop {
            let mut busy = Vec::new();
            for sack in 0..self.incoming.sack_count() {
                match self.incoming.pending(Sack(sack)).await {
                    Ok(pending) if !pending.is_empty() => busy.push(Sack(sack)),
                    Ok(_) => {}
                    Err(err) => tracing::warn!(%err, sack, "cannot list pending metrics"),
                }
            }
            if busy.is_empty() {
                return total;
            }
            let mut progress = false;
            let mut running = FuturesUnordered::new();
            let mut queue = busy.chunks(group_size(busy.len(), self.workers));
            loop {
                while running.len() < self.workers {
                    match queue.next() {
                        Some(group) => running.push(self.process_sacks(group, None)),
                        None => break,
                    }
                }
                let Some(result) = running.next().await else {
                    break;
                };
                match result {
                    Ok(done) => {
                        progress |= done.metrics > 0;
                        total.metrics += done.metrics;
                        total.measures += done.measures;
                        total.dropped += done.dropped;
                    }
                    Err(err) => tracing::warn!(%err, "processing sacks failed; will retry"),
                }
            }
            if !progress {
                // Failures only: wait for the next wake-up instead of spinning.
                return total;
            }
        }
    }

    /// Processes the pending measures of one metric now (`refresh=true`).
    ///
    /// The work runs as a task of its own that the caller only waits for: a
    /// request dropped halfway (client gone, request timeout) must not drop
    /// the sack lock while staging it started still writes splits, or a
    /// later pass could be overwritten by stale ones.
    pub async fn process_metric(self: &Arc<Self>, seq: u32) -> Result<Processed, ProcessError> {
        let sack = sack_of(seq, self.incoming.sack_count());
        let mut only = RoaringBitmap::new();
        only.insert(seq);
        let this = self.clone();
        tokio::spawn(async move { this.process_sacks(&[sack], Some(only)).await })
            .await
            .map_err(|join| ProcessError::Aborted(join.to_string()))?
    }

    /// Reads, aggregates and acknowledges the pending measures of `sacks`
    /// (of `only` these metrics, when given), holding their locks.
    ///
    /// Every metric's splits are staged, then all tails committed together:
    /// the group pays for two storage syncs, not two per sack or per metric.
    /// The locks are taken in the order given, which callers keep increasing.
    async fn process_sacks(
        &self,
        sacks: &[Sack],
        only: Option<RoaringBitmap>,
    ) -> Result<Processed, ProcessError> {
        let mut held = Vec::with_capacity(sacks.len());
        let mut reads = Vec::with_capacity(sacks.len());
        let mut jobs = Vec::new();
        for &sack in sacks {
            held.push(self.locks.lock(sack).await?);
            let mut metrics = self.incoming.pending(sack).await?;
            if let Some(only) = &only {
                metrics &= only;
            }
            if metrics.is_empty() {
                continue;
            }
            let mut pending = self.incoming.read(sack, &metrics).await?;
            for (seq, measures) in pending.take_measures() {
                // A metric deleted since its measures were accepted: nothing to keep.
                let Some(entry) = self.metrics.by_seq(seq).await? else {
                    tracing::debug!(
                        seq,
                        measures = measures.len(),
                        "dropping measures of a deleted metric"
                    );
                    continue;
                };
                jobs.push(StageJob {
                    metric: entry.metric.id,
                    policy: entry.policy.clone(),
                    timestamps: measures.timestamps,
                    values: measures.values,
                });
            }
            reads.push(pending);
        }
        if reads.is_empty() {
            return Ok(Processed::default());
        }
        let counts: Vec<u64> = jobs.iter().map(|j| j.timestamps.len() as u64).collect();
        let mut done = Processed::default();
        let mut staged = Vec::with_capacity(jobs.len());
        for (result, measures) in self.storage.stage_many(jobs).await.into_iter().zip(counts) {
            // Any failure leaves every read pending: re-applying what did
            // succeed is harmless.
            let tail = result?;
            done.metrics += 1;
            done.measures += measures;
            done.dropped += tail.outcome().dropped as u64;
            staged.push(tail);
        }
        self.storage.commit_tails(staged).await?;
        // Concurrent acknowledgements share the incoming store's syncs.
        futures::future::try_join_all(
            reads
                .into_iter()
                .map(|read| self.incoming.acknowledge(read)),
        )
        .await?;
        drop(held);
        tracing::debug!(
            sacks = sacks.len(),
            metrics = done.metrics,
            measures = done.measures,
            dropped = done.dropped,
            "processed"
        );
        self.totals
            .metrics
            .fetch_add(done.metrics, Ordering::Relaxed);
        self.totals
            .measures
            .fetch_add(done.measures, Ordering::Relaxed);
        self.totals
            .dropped
            .fetch_add(done.dropped, Ordering::Relaxed);
        Ok(done)
    }

    /// The janitor: removes the data of metrics marked for deletion, then the
    /// metrics themselves.
    pub async fn expunge_deleted(&self) -> Result<usize, ProcessError> {
        let doomed = self.indexer.list_metrics_to_delete().await?;
        for metric in &doomed {
            self.expunge(metric.id, metric.compact_id).await?;
        }
        Ok(doomed.len())
    }

    async fn expunge(&self, id: Uuid, seq: u32) -> Result<(), ProcessError> {
        let sack = sack_of(seq, self.incoming.sack_count());
        let _held = self.locks.lock(sack).await?;
        self.metrics.evict(id);
        self.incoming.forget(seq).await?;
        self.storage.delete_metric(id).await?;
        // The index row goes last: while it exists the janitor retries.
        self.storage.sync().await?;
        self.indexer.expunge_metric(id).await?;
        self.totals.expunged.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
