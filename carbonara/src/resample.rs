//! Resampling an aggregated series to another granularity at read time
//! (`?resample=` and the aggregates API's `resample` operation).
//!
//! As in Gnocchi (`AggregatedTimeSerie.resample`), the points of the stored
//! series are grouped into buckets of the new granularity and reduced with a
//! method; a `rate:` method differentiates the *aggregated* values first.
//! The result is only as accurate as the stored aggregates allow (a mean of
//! means is not the mean of the measures).

use crate::aggregated::{AggregatedSeries, SeriesError};
use crate::aggregation::{Method, Scratch};

impl AggregatedSeries {
    /// The series regrouped into buckets of `granularity` with `method`.
    pub fn resample(
        &self,
        granularity: i64,
        method: Method,
        scratch: &mut Scratch,
    ) -> Result<AggregatedSeries, SeriesError> {
        AggregatedSeries::compute(
            self.timestamps(),
            self.values(),
            granularity,
            method,
            scratch,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn m(name: &str) -> Method {
        name.parse().unwrap()
    }

    /// metric.yaml "get measurements from metric and resample": the 1 s mean
    /// archive resampled to 60 s with mean.
    #[test]
    fn metric_gabbit_resample() {
        let base = 1_425_652_380 * S;
        let ts: Vec<i64> = [57, 72, 75, 132, 135]
            .iter()
            .map(|s| base + s * S)
            .collect();
        let one = AggregatedSeries::from_parts(S, m("mean"), ts, vec![43.1, 12.0, 16.0, 9.0, 11.0])
            .unwrap();
        let mut scratch = Scratch::new();
        let r = one.resample(60 * S, m("mean"), &mut scratch).unwrap();
        assert_eq!(r.granularity(), 60 * S);
        assert_eq!(r.timestamps(), &[base, base + 60 * S, base + 120 * S]);
        assert_eq!(r.values(), &[43.1, 14.0, 10.0]);
        let r = one.resample(60 * S, m("count"), &mut scratch).unwrap();
        assert_eq!(r.values(), &[1.0, 2.0, 2.0]);
        let r = one.resample(60 * S, m("rate:last"), &mut scratch).unwrap();
        assert_eq!(r.timestamps(), &[base + 60 * S, base + 120 * S]);
        assert_eq!(r.values(), &[4.0, 2.0]);
        assert!(one.resample(0, m("mean"), &mut scratch).is_err());
    }
}
