//! Aggregated series: the values of one `(granularity, method)` archive.
//!
//! An [`AggregatedSeries`] holds sorted bucket starts (multiples of the
//! granularity) and one finite value per bucket; buckets without a value
//! (no measure, or `std` of a single measure) are absent, as in Gnocchi.
//!
//! Updates are incremental: after merging a batch into the tail, only the
//! buckets from `floor(recompute_from, granularity)` on are recomputed
//! ([`AggregatedSeries::compute_from`]) and replace the stored ones
//! ([`AggregatedSeries::merge`]). Truncation keeps Gnocchi's rule: points
//! strictly after `last - timespan`.

use crate::aggregation::{aggregate_grouped, Method, Scratch};
use crate::split::AggregatedSplit;
use crate::timestamp::floor;

/// Malformed stored parts of a series.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeriesError {
    /// Granularity zero or negative.
    #[error("granularity must be positive, got {0}")]
    Granularity(i64),
    /// Different numbers of timestamps and values.
    #[error("{timestamps} timestamps but {values} values")]
    LengthMismatch {
        /// Number of timestamps.
        timestamps: usize,
        /// Number of values.
        values: usize,
    },
    /// Timestamps not strictly increasing or not multiples of the
    /// granularity.
    #[error("timestamps are not increasing multiples of the granularity")]
    Unaligned,
    /// Two series of different granularity or method combined.
    #[error("series of granularity {expected} expected, got {got}")]
    GranularityMismatch {
        /// Granularity of the receiver.
        expected: i64,
        /// Granularity of the argument.
        got: i64,
    },
}

/// The aggregates of one `(granularity, method)`; see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregatedSeries {
    granularity: i64,
    method: Method,
    timestamps: Vec<i64>,
    values: Vec<f64>,
}

impl AggregatedSeries {
    /// An empty series.
    pub fn new(granularity: i64, method: Method) -> Result<AggregatedSeries, SeriesError> {
        AggregatedSeries::from_parts(granularity, method, Vec::new(), Vec::new())
    }

    /// A series from stored parts, checked (aligned, increasing, same length).
    pub fn from_parts(
        granularity: i64,
        method: Method,
        timestamps: Vec<i64>,
        values: Vec<f64>,
    ) -> Result<AggregatedSeries, SeriesError> {
        if granularity <= 0 {
            return Err(SeriesError::Granularity(granularity));
        }
        if timestamps.len() != values.len() {
            return Err(SeriesError::LengthMismatch {
                timestamps: timestamps.len(),
                values: values.len(),
            });
        }
        if timestamps.windows(2).any(|w| w[0] >= w[1])
            || timestamps.iter().any(|&t| t.rem_euclid(granularity) != 0)
        {
            return Err(SeriesError::Unaligned);
        }
        Ok(AggregatedSeries {
            granularity,
            method,
            timestamps,
            values,
        })
    }

    /// Built by trusted code that already guarantees the invariants.
    pub(crate) fn from_parts_unchecked(
        granularity: i64,
        method: Method,
        timestamps: Vec<i64>,
        values: Vec<f64>,
    ) -> AggregatedSeries {
        debug_assert!(AggregatedSeries::from_parts(
            granularity,
            method,
            timestamps.clone(),
            values.clone()
        )
        .is_ok());
        AggregatedSeries {
            granularity,
            method,
            timestamps,
            values,
        }
    }

    /// Aggregates a whole sorted, unique measure series.
    pub fn compute(
        timestamps: &[i64],
        values: &[f64],
        granularity: i64,
        method: Method,
        scratch: &mut Scratch,
    ) -> Result<AggregatedSeries, SeriesError> {
        if granularity <= 0 {
            return Err(SeriesError::Granularity(granularity));
        }
        Ok(AggregatedSeries::compute_from(
            timestamps,
            values,
            i64::MIN,
            granularity,
            method,
            scratch,
        ))
    }

    /// Aggregates the buckets at or after `floor(from, granularity)` of a
    /// sorted, unique measure series. For rates, the measure just before that
    /// bucket (if present) provides the first difference, so the result
    /// equals the same buckets of [`AggregatedSeries::compute`].
    ///
    /// Gnocchi 4.x only looks one granularity back for that previous
    /// measure (`_ts_for_derive`), so after a gap longer than a bucket its
    /// incremental result lacks the first rate its full recomputation has;
    /// we always give the full-recomputation answer, which does not depend on
    /// how measures were batched.
    ///
    /// A non-positive granularity yields an empty series.
    pub fn compute_from(
        timestamps: &[i64],
        values: &[f64],
        from: i64,
        granularity: i64,
        method: Method,
        scratch: &mut Scratch,
    ) -> AggregatedSeries {
        let mut out = AggregatedSeries {
            granularity: granularity.max(1),
            method,
            timestamps: Vec::new(),
            values: Vec::new(),
        };
        if granularity <= 0 {
            return out;
        }
        let n = timestamps.len().min(values.len());
        let start = floor(from, granularity);
        let first = timestamps[..n].partition_point(|&t| t < start);
        let previous = first.checked_sub(1).map(|i| values[i]);
        aggregate_grouped(
            method,
            &timestamps[first..n],
            &values[first..n],
            previous,
            granularity,
            scratch,
            &mut out.timestamps,
            &mut out.values,
        );
        out
    }

    /// Replaces every point at or after `floor(from, granularity)` by the
    /// points of `update` (typically [`AggregatedSeries::compute_from`] with
    /// the same `from`). Points of `update` before that are ignored.
    pub fn merge(&mut self, update: &AggregatedSeries, from: i64) -> Result<(), SeriesError> {
        if update.granularity != self.granularity {
            return Err(SeriesError::GranularityMismatch {
                expected: self.granularity,
                got: update.granularity,
            });
        }
        let start = floor(from, self.granularity);
        let keep = self.timestamps.partition_point(|&t| t < start);
        self.timestamps.truncate(keep);
        self.values.truncate(keep);
        let skip = update.timestamps.partition_point(|&t| t < start);
        self.timestamps
            .extend_from_slice(&update.timestamps[skip..]);
        self.values.extend_from_slice(&update.values[skip..]);
        Ok(())
    }

    /// Drops points at or before `last - timespan` (Gnocchi's
    /// `AggregatedTimeSerie.truncate`): at most `timespan / granularity`
    /// points remain.
    pub fn truncate(&mut self, timespan: i64) {
        let Some(&last) = self.timestamps.last() else {
            return;
        };
        let cutoff = last.saturating_sub(timespan);
        let drop = self.timestamps.partition_point(|&t| t <= cutoff);
        self.timestamps.drain(..drop);
        self.values.drain(..drop);
    }

    /// Bucket width, ns.
    pub fn granularity(&self) -> i64 {
        self.granularity
    }

    /// The method these values were computed with.
    pub fn method(&self) -> Method {
        self.method
    }

    /// Bucket starts, increasing.
    pub fn timestamps(&self) -> &[i64] {
        &self.timestamps
    }

    /// One value per bucket.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// True without points.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// The points with `start <= t < stop` (either bound optional), as
    /// reads select them.
    pub fn range(&self, start: Option<i64>, stop: Option<i64>) -> (&[i64], &[f64]) {
        let lo = start.map_or(0, |s| self.timestamps.partition_point(|&t| t < s));
        let hi = stop.map_or(self.timestamps.len(), |s| {
            self.timestamps.partition_point(|&t| t < s)
        });
        let hi = hi.max(lo);
        (&self.timestamps[lo..hi], &self.values[lo..hi])
    }

    /// The points of `method` in `splits`, which must be sorted by start and
    /// of granularity `granularity` (a split's own points are aligned and
    /// increasing by construction, so only the order between splits is
    /// checked, not every timestamp as [`AggregatedSeries::from_parts`] does).
    pub fn from_splits(
        granularity: i64,
        method: Method,
        splits: &[impl std::ops::Deref<Target = AggregatedSplit>],
    ) -> Result<AggregatedSeries, SeriesError> {
        let mut series = AggregatedSeries::new(granularity, method)?;
        for split in splits {
            if split.key().granularity() != granularity {
                return Err(SeriesError::GranularityMismatch {
                    expected: granularity,
                    got: split.key().granularity(),
                });
            }
            let before = series.timestamps.len();
            split.append_points(
                method,
                i64::MIN,
                i64::MAX,
                &mut series.timestamps,
                &mut series.values,
            );
            if before > 0
                && series
                    .timestamps
                    .get(before)
                    .is_some_and(|&first| first <= series.timestamps[before - 1])
            {
                return Err(SeriesError::Unaligned);
            }
        }
        Ok(series)
    }

    /// Keeps only the points with `start <= t < stop`, in place.
    pub fn retain_range(&mut self, start: Option<i64>, stop: Option<i64>) {
        retain_range(&mut self.timestamps, &mut self.values, start, stop);
    }

    /// Gives the parts back.
    pub fn into_parts(self) -> (Vec<i64>, Vec<f64>) {
        (self.timestamps, self.values)
    }
}

/// Keeps only the points with `start <= t < stop` of sorted `timestamps`
/// and their `values`, in place: [`AggregatedSeries::retain_range`] for
/// series held as parts (calendar groupings have no granularity).
pub fn retain_range(
    timestamps: &mut Vec<i64>,
    values: &mut Vec<f64>,
    start: Option<i64>,
    stop: Option<i64>,
) {
    let hi = stop.map_or(timestamps.len(), |s| timestamps.partition_point(|&t| t < s));
    timestamps.truncate(hi);
    values.truncate(hi);
    let lo = start.map_or(0, |s| timestamps.partition_point(|&t| t < s));
    timestamps.drain(..lo);
    values.drain(..lo);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unaggregated::UnaggregatedTail;

    const S: i64 = 1_000_000_000;

    fn m(name: &str) -> Method {
        name.parse().unwrap()
    }

    /// metric.yaml: measures at 14:33:57 (43.1), 14:34:12 (12), 14:34:15
    /// (16), 14:35:12 (9), 14:35:15 (11); 1 s archive then resample 60 s
    /// gives 43.1, 14.0, 10.0 (checked in resample's tests); 60 s mean
    /// directly gives the same here.
    #[test]
    fn metric_gabbit_numbers() {
        let base = 1_425_652_380 * S; // 2015-03-06T14:33:00Z
        let ts = [57, 72, 75, 132, 135].map(|s| base + s * S);
        let vs = [43.1, 12.0, 16.0, 9.0, 11.0];
        let mut scratch = Scratch::new();
        let one = AggregatedSeries::compute(&ts, &vs, S, m("mean"), &mut scratch).unwrap();
        assert_eq!(one.timestamps(), &ts);
        assert_eq!(one.values(), &vs);
        let minute = AggregatedSeries::compute(&ts, &vs, 60 * S, m("mean"), &mut scratch).unwrap();
        assert_eq!(minute.timestamps(), &[base, base + 60 * S, base + 120 * S]);
        assert_eq!(minute.values(), &[43.1, 14.0, 10.0]);
        let max = AggregatedSeries::compute(&ts, &vs, 60 * S, m("max"), &mut scratch).unwrap();
        assert_eq!(max.values(), &[43.1, 16.0, 11.0]);
        let rate =
            AggregatedSeries::compute(&ts, &vs, 60 * S, m("rate:sum"), &mut scratch).unwrap();
        // 12-43.1+16-12 = -27.1 in the second minute; 9-16+11-9 = -5.
        assert_eq!(rate.timestamps(), &[base + 60 * S, base + 120 * S]);
        assert!((rate.values()[0] + 27.1).abs() < 1e-9);
        assert!((rate.values()[1] + 5.0).abs() < 1e-9);
    }

    #[test]
    fn incremental_update_equals_full_computation() {
        let mut tail = UnaggregatedTail::new(3600 * S, 0).unwrap();
        let mut scratch = Scratch::new();
        let method = m("rate:mean");
        let first: Vec<i64> = (0..100).map(|i| i * 7 * S).collect();
        let vals: Vec<f64> = (0..100).map(|i| f64::from(i * i % 13)).collect();
        tail.merge(&first, &vals).unwrap();
        let mut stored = tail.aggregate_from(i64::MIN, 60 * S, method, &mut scratch);
        let more: Vec<i64> = (0..50).map(|i| 650 * S + i * 11 * S).collect();
        let more_vals: Vec<f64> = (0..50).map(|i| f64::from(i % 5)).collect();
        let from = tail
            .merge(&more, &more_vals)
            .unwrap()
            .recompute_from
            .unwrap();
        let update = tail.aggregate_from(from, 60 * S, method, &mut scratch);
        stored.merge(&update, from).unwrap();
        let full = AggregatedSeries::compute(
            tail.timestamps(),
            tail.values(),
            60 * S,
            method,
            &mut scratch,
        )
        .unwrap();
        assert_eq!(stored, full);
    }

    #[test]
    fn truncate_keeps_timespan() {
        let ts: Vec<i64> = (0..10).map(|i| i * 60).collect();
        let mut s = AggregatedSeries::from_parts(60, m("mean"), ts, vec![1.0; 10]).unwrap();
        s.truncate(5 * 60);
        assert_eq!(s.timestamps(), &[300, 360, 420, 480, 540]);
        s.truncate(60);
        assert_eq!(s.timestamps(), &[540]);
    }

    #[test]
    fn checks_parts_and_ranges() {
        assert!(AggregatedSeries::from_parts(60, m("mean"), vec![0, 30], vec![1.0, 2.0]).is_err());
        assert!(AggregatedSeries::from_parts(60, m("mean"), vec![60, 0], vec![1.0, 2.0]).is_err());
        assert!(AggregatedSeries::from_parts(0, m("mean"), vec![], vec![]).is_err());
        assert!(AggregatedSeries::from_parts(60, m("mean"), vec![0], vec![]).is_err());
        let s = AggregatedSeries::from_parts(60, m("mean"), vec![-60, 0, 60], vec![1.0, 2.0, 3.0])
            .unwrap();
        assert_eq!(s.range(Some(0), None).0, &[0, 60]);
        assert_eq!(s.range(None, Some(0)).0, &[-60]);
        assert_eq!(s.range(Some(100), Some(0)).0, &[] as &[i64]);
    }
}
