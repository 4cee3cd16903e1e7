//! The unaggregated tail of a metric (Gnocchi's `BoundTimeSerie`).
//!
//! The tail keeps raw measures, sorted with unique timestamps, from the start
//! of the block `back_window` blocks before the latest one, a block being the
//! policy's coarsest granularity. That is exactly what is needed to recompute
//! any bucket that a new measure can still land in.
//!
//! Merging a batch follows Gnocchi:
//!
//! - inside one batch, the first value received for a timestamp wins
//!   (Gnocchi dedupes with `numpy.unique(..., return_index=True)`);
//! - against the tail, the batch wins: a new measure replaces the stored one
//!   at the same timestamp (`combine_timeseries(new, existing)`);
//! - measures older than [`UnaggregatedTail::first_block_timestamp`] of the
//!   tail *before* the merge are dropped and counted.
//!
//! Truncation is a separate step ([`UnaggregatedTail::truncate`]) because
//! Gnocchi computes the aggregates of the merged tail *before* truncating it:
//! a batch that moves the latest block forward must still see the measures of
//! the block it leaves behind.

use crate::aggregated::AggregatedSeries;
use crate::aggregation::{Method, Scratch};
use crate::archive_policy::ArchivePolicy;
use crate::timestamp::floor;

/// Malformed input to the tail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TailError {
    /// The block size (coarsest granularity) is zero or negative.
    #[error("block size must be positive, got {0}")]
    BlockSize(i64),
    /// Different numbers of timestamps and values.
    #[error("{timestamps} timestamps but {values} values")]
    LengthMismatch {
        /// Number of timestamps given.
        timestamps: usize,
        /// Number of values given.
        values: usize,
    },
    /// Stored tail timestamps not strictly increasing.
    #[error("tail timestamps are not strictly increasing")]
    Unsorted,
}

/// What a merge did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeOutcome {
    /// Distinct timestamps taken from the batch (new or replacing).
    pub accepted: usize,
    /// Measures refused because older than the back window.
    pub dropped: usize,
    /// Earliest accepted timestamp: every bucket at or after it (per
    /// granularity, `floor(recompute_from, granularity)`) must be recomputed.
    /// `None` if nothing was accepted.
    pub recompute_from: Option<i64>,
}

/// Raw measures kept for the back window; see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct UnaggregatedTail {
    block_size: i64,
    back_window: u32,
    timestamps: Vec<i64>,
    values: Vec<f64>,
}

impl UnaggregatedTail {
    /// An empty tail with blocks of `block_size` ns.
    pub fn new(block_size: i64, back_window: u32) -> Result<UnaggregatedTail, TailError> {
        UnaggregatedTail::from_parts(block_size, back_window, Vec::new(), Vec::new())
    }

    /// An empty tail for a metric of `policy`.
    pub fn for_policy(policy: &ArchivePolicy) -> UnaggregatedTail {
        UnaggregatedTail {
            block_size: policy.block_size().max(1),
            back_window: policy.back_window(),
            timestamps: Vec::new(),
            values: Vec::new(),
        }
    }

    /// A tail from stored parts (a decoded `TailBlock`), checked.
    pub fn from_parts(
        block_size: i64,
        back_window: u32,
        timestamps: Vec<i64>,
        values: Vec<f64>,
    ) -> Result<UnaggregatedTail, TailError> {
        if block_size <= 0 {
            return Err(TailError::BlockSize(block_size));
        }
        if timestamps.len() != values.len() {
            return Err(TailError::LengthMismatch {
                timestamps: timestamps.len(),
                values: values.len(),
            });
        }
        if timestamps.windows(2).any(|w| w[0] >= w[1]) {
            return Err(TailError::Unsorted);
        }
        Ok(UnaggregatedTail {
            block_size,
            back_window,
            timestamps,
            values,
        })
    }

    /// Sorted, unique timestamps.
    pub fn timestamps(&self) -> &[i64] {
        &self.timestamps
    }

    /// Values, one per timestamp.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Number of measures held.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// True when no measure is held.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// The block size (coarsest granularity), ns.
    pub fn block_size(&self) -> i64 {
        self.block_size
    }

    /// Blocks kept before the latest one.
    pub fn back_window(&self) -> u32 {
        self.back_window
    }

    /// Gives the parts back, e.g. to build a `TailBlock` without copying.
    pub fn into_parts(self) -> (Vec<i64>, Vec<f64>) {
        (self.timestamps, self.values)
    }

    /// Oldest timestamp still accepted:
    /// `floor(last, block_size) - back_window × block_size`, or `None` for
    /// an empty tail (which accepts anything).
    pub fn first_block_timestamp(&self) -> Option<i64> {
        let last = *self.timestamps.last()?;
        let back = i64::from(self.back_window).saturating_mul(self.block_size);
        Some(floor(last, self.block_size).saturating_sub(back))
    }

    /// Merges a batch (any order, duplicates allowed); see the module
    /// documentation for who wins. Does not truncate.
    pub fn merge(&mut self, timestamps: &[i64], values: &[f64]) -> Result<MergeOutcome, TailError> {
        if timestamps.len() != values.len() {
            return Err(TailError::LengthMismatch {
                timestamps: timestamps.len(),
                values: values.len(),
            });
        }
        let cutoff = self.first_block_timestamp().unwrap_or(i64::MIN);
        // Stable order by timestamp, so the first received stays first.
        let mut order: Vec<u32> = Vec::new();
        let sorted = timestamps.windows(2).all(|w| w[0] <= w[1]);
        if !sorted {
            order = (0..timestamps.len() as u32).collect();
            order.sort_by_key(|&i| timestamps[i as usize]);
        }
        let at = |k: usize| if sorted { k } else { order[k] as usize };
        let mut batch_ts: Vec<i64> = Vec::with_capacity(timestamps.len());
        let mut batch_vs: Vec<f64> = Vec::with_capacity(timestamps.len());
        let mut dropped = 0;
        for k in 0..timestamps.len() {
            let i = at(k);
            let t = timestamps[i];
            if t < cutoff {
                dropped += 1;
            } else if batch_ts.last() != Some(&t) {
                batch_ts.push(t);
                batch_vs.push(values[i]);
            }
        }
        let outcome = MergeOutcome {
            accepted: batch_ts.len(),
            dropped,
            recompute_from: batch_ts.first().copied(),
        };
        if batch_ts.is_empty() {
            return Ok(outcome);
        }
        match self.timestamps.last() {
            Some(&last) if last >= batch_ts[0] => {
                let (ts, vs) = merge_sorted(&self.timestamps, &self.values, &batch_ts, &batch_vs);
                self.timestamps = ts;
                self.values = vs;
            }
            _ => {
                // Common case: everything is newer than the tail.
                self.timestamps.extend_from_slice(&batch_ts);
                self.values.extend_from_slice(&batch_vs);
            }
        }
        Ok(outcome)
    }

    /// Drops measures older than [`UnaggregatedTail::first_block_timestamp`],
    /// except the latest of them.
    ///
    /// That one measure is kept so the first measure of the window still has
    /// a previous value for `rate:*` methods. Gnocchi drops it, which makes
    /// its rates depend on how measures were batched; keeping it gives every
    /// batching the answer of a one-shot computation. It cannot be
    /// overwritten (it is older than the window, so a measure at its
    /// timestamp is dropped) and only enters a non-rate bucket when a
    /// granularity does not divide the block size, where it also belongs.
    pub fn truncate(&mut self) {
        if let Some(cutoff) = self.first_block_timestamp() {
            let keep_from = self
                .timestamps
                .partition_point(|&t| t < cutoff)
                .saturating_sub(1);
            self.timestamps.drain(..keep_from);
            self.values.drain(..keep_from);
        }
    }

    /// Aggregates the buckets at or after `floor(from, granularity)` with
    /// `method`: the update to merge into stored aggregates after a merge
    /// returned `recompute_from = Some(from)`. Rates use the measure just
    /// before the range when the tail still holds it.
    pub fn aggregate_from(
        &self,
        from: i64,
        granularity: i64,
        method: Method,
        scratch: &mut Scratch,
    ) -> AggregatedSeries {
        AggregatedSeries::compute_from(
            &self.timestamps,
            &self.values,
            from,
            granularity,
            method,
            scratch,
        )
    }
}

/// Merges two sorted unique runs; `new` wins on equal timestamps.
fn merge_sorted(
    old_ts: &[i64],
    old_vs: &[f64],
    new_ts: &[i64],
    new_vs: &[f64],
) -> (Vec<i64>, Vec<f64>) {
    let mut ts = Vec::with_capacity(old_ts.len() + new_ts.len());
    let mut vs = Vec::with_capacity(old_ts.len() + new_ts.len());
    let (mut i, mut j) = (0, 0);
    while i < old_ts.len() && j < new_ts.len() {
        match old_ts[i].cmp(&new_ts[j]) {
            std::cmp::Ordering::Less => {
                ts.push(old_ts[i]);
                vs.push(old_vs[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                ts.push(new_ts[j]);
                vs.push(new_vs[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                ts.push(new_ts[j]);
                vs.push(new_vs[j]);
                i += 1;
                j += 1;
            }
        }
    }
    ts.extend_from_slice(&old_ts[i..]);
    vs.extend_from_slice(&old_vs[i..]);
    ts.extend_from_slice(&new_ts[j..]);
    vs.extend_from_slice(&new_vs[j..]);
    (ts, vs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn first_in_batch_wins_and_batch_overwrites_tail() {
        let mut tail = UnaggregatedTail::new(60 * S, 0).unwrap();
        let out = tail.merge(&[5 * S, S, 5 * S], &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(
            out,
            MergeOutcome {
                accepted: 2,
                dropped: 0,
                recompute_from: Some(S)
            }
        );
        assert_eq!(tail.timestamps(), &[S, 5 * S]);
        assert_eq!(tail.values(), &[2.0, 1.0]);
        tail.merge(&[5 * S, 7 * S], &[9.0, 4.0]).unwrap();
        assert_eq!(tail.timestamps(), &[S, 5 * S, 7 * S]);
        assert_eq!(tail.values(), &[2.0, 9.0, 4.0]);
    }

    #[test]
    fn back_window_drops_and_truncates() {
        // Block of one hour, back_window 0: last point at 14:34 accepts back
        // to 14:00 (rest.j2's example).
        let h = 3600 * S;
        let mut tail = UnaggregatedTail::new(h, 0).unwrap();
        tail.merge(&[14 * h + 34 * 60 * S], &[1.0]).unwrap();
        assert_eq!(tail.first_block_timestamp(), Some(14 * h));
        let out = tail
            .merge(&[13 * h + 59 * 60 * S, 14 * h], &[2.0, 3.0])
            .unwrap();
        assert_eq!(out.dropped, 1);
        assert_eq!(out.accepted, 1);
        assert_eq!(out.recompute_from, Some(14 * h));

        let mut tail = UnaggregatedTail::new(h, 2).unwrap();
        tail.merge(&[14 * h + 34 * 60 * S], &[1.0]).unwrap();
        let out = tail
            .merge(&[12 * h, 11 * h + 59 * 60 * S], &[2.0, 3.0])
            .unwrap();
        assert_eq!((out.accepted, out.dropped), (1, 1));
        // Moving forward two blocks keeps measures until truncate().
        tail.merge(&[16 * h + 1], &[4.0]).unwrap();
        assert_eq!(tail.len(), 3);
        tail.truncate();
        // 12:00 is kept as the previous measure of the window for rates.
        assert_eq!(
            tail.timestamps(),
            &[12 * h, 14 * h + 34 * 60 * S, 16 * h + 1]
        );
        tail.merge(&[17 * h], &[5.0]).unwrap();
        tail.truncate();
        assert_eq!(
            tail.timestamps(),
            &[14 * h + 34 * 60 * S, 16 * h + 1, 17 * h]
        );
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(
            UnaggregatedTail::new(0, 0).unwrap_err(),
            TailError::BlockSize(0)
        );
        let mut tail = UnaggregatedTail::new(1, 0).unwrap();
        assert!(tail.merge(&[1, 2], &[1.0]).is_err());
        assert_eq!(
            UnaggregatedTail::from_parts(1, 0, vec![2, 1], vec![0.0, 0.0]).unwrap_err(),
            TailError::Unsorted
        );
    }
}
