//! The write path of one metric ([`AggregateStore::apply_measures`]) and
//! the measures read ([`AggregateStore::read_aggregates`]).
//!
//! Applying a batch follows carbonara's recipe (see the `carbonara` crate
//! docs): merge into the tail, recompute every `(granularity, method)` from
//! the earliest accepted measure on, write the update into the splits it
//! touches, drop splits wholly before the one holding `last - timespan`,
//! truncate the tail. Objects are written in an order that makes a crash at
//! any point harmless: splits first, then expired splits are deleted, the
//! tail last, with a [`AggregateStore::sync`] between the splits and the tail
//! so that the order holds on disk too. [`AggregateStore::stage_measures`]
//! and [`AggregateStore::commit_tails`] are the two halves, so that metricd
//! can stage a whole sack's metrics and pay for one sync on each side of
//! their tails. Until the tail is written the previous tail is still in place,
//! so applying the same batch again recomputes the same splits; after it is
//! written, applying the batch again replaces measures by themselves (the
//! batch wins over the tail on equal timestamps) and recomputes the same
//! values. Either way the stored aggregates end up identical.

use carbonara::aggregated::AggregatedSeries;
use carbonara::aggregation::{Method, Scratch};
use carbonara::archive_policy::{ArchivePolicy, ArchivePolicyItem};
use carbonara::codec::TailBlock;
use carbonara::split::{AggregatedSplit, SplitKey};
use carbonara::timestamp::floor;
use carbonara::unaggregated::UnaggregatedTail;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use std::sync::Arc;

use uuid::Uuid;

use super::{keys, AggregateStore, StorageError};

/// Metrics staged at once on stores with network round trips.
const STAGED_IN_FLIGHT: usize = 16;

/// What [`AggregateStore::apply_measures`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApplyOutcome {
    /// Distinct timestamps taken from the batch (new or replacing).
    pub accepted: usize,
    /// Measures refused because older than the back window. Re-applying a
    /// batch may count more here than the first time (its own newest
    /// measures may have moved the window), with the same stored result.
    pub dropped: usize,
    /// Split objects written.
    pub splits_written: usize,
    /// Split objects deleted because wholly past the timespan.
    pub splits_deleted: usize,
}

/// Start of the oldest split to keep for an archive whose latest measure is
/// at `last`: the split holding `floor(last, g) - timespan`. Reads truncate
/// to points after that instant, all of which lie in this split or later.
fn keep_from(last: i64, granularity: i64, timespan: i64) -> i64 {
    let cutoff = floor(last, granularity).saturating_sub(timespan);
    SplitKey::containing(cutoff, granularity).map_or(i64::MIN, |k| k.start())
}

/// Starts of the splits holding the `timestamps` (sorted) at or after
/// `from`.
fn touched_splits(timestamps: &[i64], from: i64, granularity: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut i = timestamps.partition_point(|&t| t < from);
    while i < timestamps.len() {
        let Ok(key) = SplitKey::containing(timestamps[i], granularity) else {
            break;
        };
        out.push(key.start());
        let end = key.end();
        i += timestamps[i..].partition_point(|&t| t < end).max(1);
    }
    out
}

/// The first half of an apply ([`AggregateStore::stage_measures`]): the
/// splits are written (not necessarily durable yet), the new tail is held
/// here until [`AggregateStore::commit_tails`] writes it.
#[derive(Debug)]
#[must_use = "the tail must be committed, or the measures applied again"]
pub struct StagedTail {
    metric: Uuid,
    /// `None` when the batch changed nothing (all measures dropped).
    tail: Option<TailBlock>,
    outcome: ApplyOutcome,
}

impl StagedTail {
    /// What the apply did.
    pub fn outcome(&self) -> ApplyOutcome {
        self.outcome
    }
}

/// One metric's batch for [`AggregateStore::stage_many`].
#[derive(Debug)]
pub struct StageJob {
    pub metric: Uuid,
    pub policy: Arc<ArchivePolicy>,
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
}

struct ArchivePlan {
    granularity: i64,
    updates: Vec<AggregatedSeries>,
    affected: Vec<i64>,
    /// Delete splits ending at or before this start.
    expire_before: Option<i64>,
}

impl AggregateStore {
    /// Applies one batch of measures (any order, duplicates allowed: the
    /// first of a timestamp in the batch wins, and the batch wins over stored
    /// measures) to the metric's aggregates under `policy`.
    ///
    /// Reads the tail and only the splits the batch changes (through the
    /// cache), writes back those splits and the tail, and deletes the splits
    /// that fell wholly out of each archive's timespan. Measures older than
    /// the back window are dropped and counted. Durable when it returns.
    ///
    /// Idempotent: applying the same batch again, after a crash anywhere in
    /// this call or after it, leaves the same stored aggregates (see the
    /// module docs). The caller must not run two applies on one metric at
    /// once (metricd holds the metric's sack).
    pub async fn apply_measures(
        &self,
        metric: Uuid,
        policy: &ArchivePolicy,
        timestamps: &[i64],
        values: &[f64],
    ) -> Result<ApplyOutcome, StorageError> {
        let staged = self
            .stage_measures(metric, policy, timestamps, values)
            .await?;
        let outcome = staged.outcome;
        self.commit_tails(vec![staged]).await?;
        Ok(outcome)
    }

    /// [`AggregateStore::apply_measures`] up to, not including, the tail:
    /// the affected splits are written and the expired ones deleted.
    /// Nothing is durable until [`AggregateStore::commit_tails`] returns;
    /// until then, and after a crash, the batch must be applied again.
    pub async fn stage_measures(
        &self,
        metric: Uuid,
        policy: &ArchivePolicy,
        timestamps: &[i64],
        values: &[f64],
    ) -> Result<StagedTail, StorageError> {
        let tail_key = keys::tail(metric);
        let stored_tail = self.read_tail(metric).await?;
        // A metric without a tail has had no apply committed: any split it
        // has was staged from measures that are all still pending and in
        // this batch, so it is rebuilt from scratch rather than read.
        let fresh = stored_tail.is_none();
        let mut tail = match stored_tail {
            Some(block) => UnaggregatedTail::from_parts(
                policy.block_size().max(1),
                policy.back_window(),
                block.timestamps,
                block.values,
            )
            .map_err(|e| StorageError::corrupt(&tail_key, e))?,
            None => UnaggregatedTail::for_policy(policy),
        };
        let previous_last = tail.timestamps().last().copied();
        let merged = tail
            .merge(timestamps, values)
            .map_err(StorageError::InvalidMeasures)?;
        let mut outcome = ApplyOutcome {
            accepted: merged.accepted,
            dropped: merged.dropped,
            ..ApplyOutcome::default()
        };
        let (Some(from), Some(&last)) = (merged.recompute_from, tail.timestamps().last()) else {
            return Ok(StagedTail {
                metric,
                tail: None,
                outcome,
            });
        };

        let mut scratch = Scratch::new();
        let mut plans = Vec::with_capacity(policy.definition().len());
        for item in policy.definition() {
            let g = item.granularity();
            let keep = item.timespan().map(|span| keep_from(last, g, span));
            let mut affected = touched_splits(tail.timestamps(), floor(from, g), g);
            let passed_keep = affected.iter().any(|&s| keep.is_some_and(|k| s < k));
            affected.retain(|&s| keep.is_none_or(|k| s >= k));
            let updates = if affected.is_empty() {
                Vec::new()
            } else {
                policy
                    .aggregation_methods()
                    .iter()
                    .map(|&m| tail.aggregate_from(from, g, m, &mut scratch))
                    .collect()
            };
            // The keep line only moves when the latest measure does; list
            // and delete only then (once per split span of progress).
            let expire_before = match (keep, previous_last, item.timespan()) {
                (Some(k), Some(prev), Some(span)) if keep_from(prev, g, span) < k => Some(k),
                // No committed split yet, but a pass killed before its commit
                // may have staged some from these measures where the keep
                // line (moved by measures that arrived since) has passed.
                (Some(k), None, _) if fresh && passed_keep => Some(k),
                _ => None,
            };
            plans.push(ArchivePlan {
                granularity: g,
                updates,
                affected,
                expire_before,
            });
        }

        // Read every affected split at once (bounded), then apply in memory.
        let wanted: Vec<(usize, i64)> = plans
            .iter()
            .enumerate()
            .flat_map(|(p, plan)| plan.affected.iter().map(move |&s| (p, s)))
            .collect();
        let stored: Vec<Option<AggregatedSplit>> = if fresh {
            vec![None; wanted.len()]
        } else {
            stream::iter(wanted.iter().copied())
                .map(|(p, s)| self.take_split_for_update(metric, plans[p].granularity, s))
                .buffered(self.concurrency)
                .try_collect()
                .await?
        };
        let mut rewritten = Vec::with_capacity(wanted.len());
        for (&(p, start), existing) in wanted.iter().zip(stored) {
            let plan = &plans[p];
            let key = keys::split(metric, plan.granularity, start);
            let mut split = match existing {
                Some(s) => s,
                None => AggregatedSplit::new(
                    SplitKey::new(start, plan.granularity)
                        .map_err(|e| StorageError::corrupt(&key, e))?,
                ),
            };
            for update in &plan.updates {
                split
                    .apply(update, from)
                    .map_err(|e| StorageError::corrupt(&key, e))?;
            }
            rewritten.push(split);
        }
        outcome.splits_written = rewritten.len();
        self.write_splits(metric, rewritten).await?;

        for plan in &plans {
            if let Some(before) = plan.expire_before {
                outcome.splits_deleted += self
                    .delete_splits_before(metric, plan.granularity, before)
                    .await?;
            }
        }

        tail.truncate();
        let (timestamps, values) = tail.into_parts();
        Ok(StagedTail {
            metric,
            tail: Some(TailBlock { timestamps, values }),
            outcome,
        })
    }

    /// [`AggregateStore::stage_measures`] for many metrics, results in
    /// the order of `jobs`. May stop after the first error (the caller
    /// retries the whole pass), so a shorter result with an error last is a
    /// failure of the whole call.
    pub async fn stage_many(&self, jobs: Vec<StageJob>) -> Vec<Result<StagedTail, StorageError>> {
        self.run_batch(jobs, STAGED_IN_FLIGHT, |store, job| async move {
            store.stage_job(&job).await
        })
        .await
    }

    /// Runs `work` on each item, results in the order of `items`, stopping
    /// at the first error on a local directory.
    ///
    /// On a local directory the items run one after the other on a thread
    /// of their own, outside the async runtime: object_store then does its
    /// file I/O inline instead of handing every call to the runtime's
    /// blocking pool, and those thread hand-offs cost more than the
    /// aggregation. Other stores keep `in_flight` items going so that their
    /// round trips overlap.
    async fn run_batch<I, T, F, Fut>(
        &self,
        items: Vec<I>,
        in_flight: usize,
        work: F,
    ) -> Vec<Result<T, StorageError>>
    where
        I: Send + 'static,
        T: Send + 'static,
        F: Fn(AggregateStore, I) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, StorageError>> + Send,
    {
        if items.is_empty() {
            return Vec::new();
        }
        if !self.inline_io() {
            return stream::iter(items)
                .map(|item| work(self.clone(), item))
                .buffered(in_flight)
                .collect()
                .await;
        }
        let store = self.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("storage-io".into())
            .spawn(move || {
                let done = futures::executor::block_on(async {
                    let mut out = Vec::with_capacity(items.len());
                    for item in items {
                        let result = work(store.clone(), item).await;
                        // The pass is retried whole: stop at the first failure.
                        let failed = result.is_err();
                        out.push(result);
                        if failed {
                            break;
                        }
                    }
                    out
                });
                let _ = tx.send(done);
            });
        let failed = |reason: String| vec![Err(StorageError::Worker(reason))];
        match spawned {
            Ok(_) => rx.await.unwrap_or_else(|_| failed("it panicked".into())),
            Err(e) => failed(format!("it cannot start: {e}")),
        }
    }

    async fn stage_job(&self, job: &StageJob) -> Result<StagedTail, StorageError> {
        self.stage_measures(job.metric, &job.policy, &job.timestamps, &job.values)
            .await
    }

    /// The second half of applies staged by
    /// [`AggregateStore::stage_measures`]: makes their splits durable, then
    /// writes their tails and makes those durable. When this returns the
    /// measures may be forgotten by the incoming store.
    pub async fn commit_tails(&self, staged: Vec<StagedTail>) -> Result<(), StorageError> {
        if staged.iter().all(|s| s.tail.is_none()) {
            // Nothing was merged, so nothing was written.
            return Ok(());
        }
        self.sync().await?;
        let tails: Vec<(Uuid, TailBlock)> = staged
            .into_iter()
            .filter_map(|s| s.tail.map(|tail| (s.metric, tail)))
            .collect();
        let in_flight = self.concurrency;
        self.run_batch(tails, in_flight, |store, (metric, tail)| async move {
            store.write_tail(metric, &tail).await
        })
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;
        self.sync().await
    }

    /// The aggregates of `method` for `GET /v1/metric/{id}/measures`: one
    /// series per archive of `policy` (only `granularity` when given), by
    /// decreasing granularity as Gnocchi lists them.
    ///
    /// Each series holds the points with `floor(start, granularity) <= t <
    /// stop` (Gnocchi rounds `start` down to the granularity; `stop` is
    /// exclusive), and, for archives with a timespan, only points after the
    /// archive's latest point minus its timespan (as if the archive had been
    /// truncated on write). Only the splits overlapping the range are read,
    /// plus, when `stop` is before the latest split, the latest split(s)
    /// needed to know that latest point.
    ///
    /// A method or granularity the policy does not have is
    /// [`StorageError::NoSuchAggregation`]; a metric without data gives
    /// empty series.
    pub async fn read_aggregates(
        &self,
        metric: Uuid,
        policy: &ArchivePolicy,
        method: Method,
        granularity: Option<i64>,
        start: Option<i64>,
        stop: Option<i64>,
    ) -> Result<Vec<AggregatedSeries>, StorageError> {
        let no_such = || StorageError::NoSuchAggregation {
            policy: policy.name().to_owned(),
            method,
            granularity,
        };
        if !policy.aggregation_methods().contains(&method) {
            return Err(no_such());
        }
        let items: Vec<ArchivePolicyItem> = policy
            .definition()
            .iter()
            .rev()
            .filter(|item| granularity.is_none_or(|g| item.granularity() == g))
            .copied()
            .collect();
        if items.is_empty() {
            return Err(no_such());
        }
        stream::iter(items)
            .map(|item| self.read_archive(metric, item, method, start, stop))
            .buffered(4)
            .try_collect()
            .await
    }

    async fn read_archive(
        &self,
        metric: Uuid,
        item: ArchivePolicyItem,
        method: Method,
        start: Option<i64>,
        stop: Option<i64>,
    ) -> Result<AggregatedSeries, StorageError> {
        let g = item.granularity();
        let prefix = keys::metric_prefix(metric);
        let corrupt = |e: carbonara::split::SplitError| StorageError::corrupt(&prefix, e);
        let from = start.map(|s| floor(s, g));
        // Every stored split from the one holding `from` on: the range, and
        // after it the latest splits.
        let listed = self.splits_in_range(metric, g, from, None).await?;
        let in_range = listed.partition_point(|&s| stop.is_none_or(|t| s < t));
        let splits = self.read_split_set(metric, g, &listed[..in_range]).await?;
        // Splits come sorted and disjoint: their points concatenate in order,
        // into one vector (no series per split, no per-point re-check).
        let mut series =
            AggregatedSeries::from_splits(g, method, &splits).map_err(|e| corrupt(e.into()))?;

        let mut lo = from.unwrap_or(i64::MIN);
        if let Some(span) = item.timespan() {
            // The archive's latest point for this method, which may lie
            // after `stop`: walk back from the latest split, else the last
            // one read.
            let last_of = |split: &AggregatedSplit| split.last_timestamp(method);
            let mut latest = None;
            for &s in listed[in_range..].iter().rev() {
                if let Some(split) = self.read_split(metric, g, s).await? {
                    latest = last_of(&split);
                    if latest.is_some() {
                        break;
                    }
                }
            }
            let latest = latest.or_else(|| series.timestamps().last().copied());
            if let Some(last) = latest {
                lo = lo.max(last.saturating_sub(span).saturating_add(1));
            }
        }
        series.retain_range(Some(lo), stop);
        Ok(series)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touched_splits_jumps_by_split() {
        let g = 1;
        let span = 3600;
        let ts = [0, 1, 3599, 3600, 10 * span + 5, i64::MAX];
        assert_eq!(
            touched_splits(&ts, 0, g),
            vec![
                0,
                span,
                10 * span,
                SplitKey::containing(i64::MAX, g).unwrap().start()
            ]
        );
        assert_eq!(touched_splits(&ts, 3600, g)[0], span);
        assert!(touched_splits(&ts[..2], 2, g).is_empty());
    }

    #[test]
    fn keep_from_is_the_split_holding_the_cutoff() {
        // 1 s archive of one hour and a bit: cutoff inside the previous split.
        assert_eq!(keep_from(7_300, 1, 3_700), 3_600);
        assert_eq!(keep_from(7_300, 1, 100), 7_200);
    }
}
