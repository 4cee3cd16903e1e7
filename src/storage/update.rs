//! The write path of one metric ([`AggregateStore::apply_measures`]) and
//! the measures read ([`AggregateStore::read_aggregates`]).
//!
//! Applying a batch follows carbonara's recipe (see the `carbonara` crate
//! docs): merge into the tail, recompute every `(granularity, method)` from
//! the earliest accepted measure on, write the update into the splits it
//! touches, drop splits wholly before the one holding `last - timespan`,
//! truncate the tail. Objects are written in an order that makes a crash at
//! any point harmless: splits first, then expired splits are deleted, the
//! tail last. Until the tail is written the previous tail is still in place,
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
use uuid::Uuid;

use super::{keys, AggregateStore, StorageError};

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
        let tail_key = keys::tail(metric);
        let mut tail = match self.read_tail(metric).await? {
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
            return Ok(outcome);
        };

        let mut scratch = Scratch::new();
        let mut plans = Vec::with_capacity(policy.definition().len());
        for item in policy.definition() {
            let g = item.granularity();
            let keep = item.timespan().map(|span| keep_from(last, g, span));
            let mut affected = touched_splits(tail.timestamps(), floor(from, g), g);
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
        let stored: Vec<Option<AggregatedSplit>> = stream::iter(wanted.iter().copied())
            .map(|(p, s)| self.take_split_for_update(metric, plans[p].granularity, s))
            .buffered(self.concurrency)
            .try_collect()
            .await?;
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
        self.write_tail(metric, &TailBlock { timestamps, values })
            .await?;
        Ok(outcome)
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
        let prefix = keys::granularity_prefix(metric, g);
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
            // after `stop`: walk back from the latest split.
            let mut latest = None;
            for &s in listed[in_range..].iter().rev() {
                if let Some(split) = self.read_split(metric, g, s).await? {
                    if let Some(t) = split
                        .series(method)
                        .and_then(|ser| ser.timestamps().last().copied())
                    {
                        latest = Some(t);
                        break;
                    }
                }
            }
            if let Some(last) = latest.or_else(|| series.timestamps().last().copied()) {
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
