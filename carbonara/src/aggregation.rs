//! Aggregation methods and their kernels over slices.
//!
//! A [`Method`] is one of Gnocchi's methods (`mean`, `sum`, `last`, `max`,
//! `min`, `std`, `median`, `first`, `count`, `Npct` for N in 1..=99),
//! optionally prefixed by `rate:`. A rate method first replaces each measure
//! by its difference with the previous measure of the *unaggregated* series
//! (the very first measure has no previous one, so no rate), then applies
//! the base method per bucket.
//!
//! Kernels follow numpy as Gnocchi uses it: `std` is the sample deviation
//! (`ddof = 1`), so a bucket holding a single value has none: Gnocchi's
//! `sqrt(sum / (count - 1))` yields NaN there and its aggregated series never
//! carries NaN, so such buckets are simply absent. Percentiles use numpy's
//! default linear interpolation, `median` the mean of the two middle values.
//!
//! The grouped entry point, [`aggregate_grouped`], walks a sorted timestamp
//! slice once and emits one value per non-empty bucket; scratch space lives in
//! a reusable [`Scratch`] so nothing is allocated per point or per bucket.

use std::fmt;
use std::str::FromStr;

use crate::timestamp::floor;

/// An aggregation method without its `rate:` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BaseMethod {
    /// Arithmetic mean.
    Mean,
    /// Sum.
    Sum,
    /// Value of the latest measure in the bucket.
    Last,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
    /// Sample standard deviation (`ddof = 1`); absent for single-value buckets.
    Std,
    /// Median (mean of the two middle values for an even count).
    Median,
    /// Value of the earliest measure in the bucket.
    First,
    /// Number of measures.
    Count,
    /// `N`th percentile, N in 1..=99, numpy's linear interpolation. Parsing
    /// only produces 1..=99; kernels clamp other values to 100 and their
    /// names do not parse back.
    Percentile(u8),
}

impl BaseMethod {
    /// The nine named methods, in Gnocchi's listing order.
    pub const NAMED: [BaseMethod; 9] = [
        BaseMethod::Mean,
        BaseMethod::Sum,
        BaseMethod::Last,
        BaseMethod::Max,
        BaseMethod::Min,
        BaseMethod::Std,
        BaseMethod::Median,
        BaseMethod::First,
        BaseMethod::Count,
    ];

    /// Iterates every base method: the nine named ones then 1pct..=99pct.
    pub fn all() -> impl Iterator<Item = BaseMethod> {
        Self::NAMED
            .into_iter()
            .chain((1..=99).map(BaseMethod::Percentile))
    }

    fn parse(name: &str) -> Option<BaseMethod> {
        Some(match name {
            "mean" => BaseMethod::Mean,
            "sum" => BaseMethod::Sum,
            "last" => BaseMethod::Last,
            "max" => BaseMethod::Max,
            "min" => BaseMethod::Min,
            "std" => BaseMethod::Std,
            "median" => BaseMethod::Median,
            "first" => BaseMethod::First,
            "count" => BaseMethod::Count,
            other => {
                let digits = other.strip_suffix("pct")?;
                // Gnocchi's list is str(i) + "pct": no leading zeros, no sign.
                if digits.is_empty() || digits.starts_with('0') || digits.len() > 2 {
                    return None;
                }
                if !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let n: u8 = digits.parse().ok()?;
                BaseMethod::Percentile(n)
            }
        })
    }
}

impl fmt::Display for BaseMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            BaseMethod::Mean => "mean",
            BaseMethod::Sum => "sum",
            BaseMethod::Last => "last",
            BaseMethod::Max => "max",
            BaseMethod::Min => "min",
            BaseMethod::Std => "std",
            BaseMethod::Median => "median",
            BaseMethod::First => "first",
            BaseMethod::Count => "count",
            BaseMethod::Percentile(n) => return write!(f, "{n}pct"),
        };
        f.write_str(name)
    }
}

/// An aggregation method as Gnocchi names it: `mean`, `95pct`, `rate:max`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Method {
    /// Applies the method to differences between consecutive measures.
    pub rate: bool,
    /// The per-bucket reduction.
    pub base: BaseMethod,
}

impl Method {
    /// `base` without `rate:`.
    pub const fn plain(base: BaseMethod) -> Method {
        Method { rate: false, base }
    }

    /// `rate:` + `base`.
    pub const fn rate_of(base: BaseMethod) -> Method {
        Method { rate: true, base }
    }

    /// Every method Gnocchi accepts (216): what `"*"` expands to.
    pub fn all() -> impl Iterator<Item = Method> {
        BaseMethod::all()
            .map(Method::plain)
            .chain(BaseMethod::all().map(Method::rate_of))
    }
}

/// A method name Gnocchi does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid aggregation method: {0}")]
pub struct UnknownMethod(pub String);

impl FromStr for Method {
    type Err = UnknownMethod;

    fn from_str(name: &str) -> Result<Method, UnknownMethod> {
        let (rate, base) = match name.strip_prefix("rate:") {
            Some(base) => (true, base),
            None => (false, name),
        };
        BaseMethod::parse(base)
            .map(|base| Method { rate, base })
            .ok_or_else(|| UnknownMethod(name.chars().take(64).collect()))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rate {
            f.write_str("rate:")?;
        }
        self.base.fmt(f)
    }
}

/// Reusable buffers for the kernels that need them (rates, medians,
/// percentiles). Keep one per worker and pass it to every call.
#[derive(Debug, Default)]
pub struct Scratch {
    select: Vec<f64>,
    rates: Vec<f64>,
}

impl Scratch {
    /// Empty buffers; they grow to the largest input seen and stay.
    pub fn new() -> Scratch {
        Scratch::default()
    }
}

/// Applies `method` to one group of values in time order.
///
/// For a rate method the differences are taken inside `values` (the first
/// value has no rate). An empty input (or a rate over a single value) yields
/// NaN, except `count`, which yields 0. Rates, medians and percentiles
/// allocate a scratch buffer; loops should use [`aggregate_with`].
pub fn aggregate(method: Method, values: &[f64]) -> f64 {
    aggregate_with(method, values, &mut Scratch::new())
}

/// [`aggregate`] with caller-provided scratch space.
pub fn aggregate_with(method: Method, values: &[f64], scratch: &mut Scratch) -> f64 {
    if method.rate {
        let Scratch { select, rates } = scratch;
        rates.clear();
        rates.extend(values.windows(2).map(|w| w[1] - w[0]));
        reduce(method.base, rates, select)
    } else {
        reduce(method.base, values, &mut scratch.select)
    }
}

/// One base method over one non-rate group.
fn reduce(base: BaseMethod, values: &[f64], select: &mut Vec<f64>) -> f64 {
    if values.is_empty() {
        return if base == BaseMethod::Count {
            0.0
        } else {
            f64::NAN
        };
    }
    match base {
        BaseMethod::Mean => sum(values) / values.len() as f64,
        BaseMethod::Sum => sum(values),
        BaseMethod::Last => values[values.len() - 1],
        BaseMethod::First => values[0],
        BaseMethod::Max => max(values),
        BaseMethod::Min => min(values),
        BaseMethod::Count => values.len() as f64,
        BaseMethod::Std => std(values),
        BaseMethod::Median => median(values, select),
        BaseMethod::Percentile(n) => percentile(values, n, 0, select),
    }
}

/// Lanes of the `max`/`min` scans: wide enough for the compiler to keep 2
/// AVX registers busy. Only these exact reductions use lanes; sums keep
/// Gnocchi's order of additions.
const LANES: usize = 8;

/// Sums in order from `+0.0`, as Gnocchi's `numpy.bincount(weights=…)`
/// does: the same additions in the same order give the same last digit.
#[inline]
fn sum(values: &[f64]) -> f64 {
    values.iter().fold(0.0, |total, &v| total + v)
}

#[inline]
fn max(values: &[f64]) -> f64 {
    if values.len() < LANES {
        return values
            .iter()
            .fold(f64::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    }
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    let mut acc = [f64::NEG_INFINITY; LANES];
    for chunk in chunks {
        for i in 0..LANES {
            acc[i] = if chunk[i] > acc[i] { chunk[i] } else { acc[i] };
        }
    }
    let mut best = acc.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    for &v in rest {
        best = if v > best { v } else { best };
    }
    best
}

#[inline]
fn min(values: &[f64]) -> f64 {
    if values.len() < LANES {
        return values
            .iter()
            .fold(f64::INFINITY, |m, &v| if v < m { v } else { m });
    }
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    let mut acc = [f64::INFINITY; LANES];
    for chunk in chunks {
        for i in 0..LANES {
            acc[i] = if chunk[i] < acc[i] { chunk[i] } else { acc[i] };
        }
    }
    let mut best = acc.iter().copied().fold(f64::INFINITY, f64::min);
    for &v in rest {
        best = if v < best { v } else { best };
    }
    best
}

/// Two-pass sample standard deviation, as Gnocchi's: the bucket mean, then
/// a bincount (an in-order sum) of squared deviations, over `count - 1`.
#[inline]
fn std(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 2 {
        return f64::NAN;
    }
    let mean = sum(values) / n as f64;
    let squares = values.iter().fold(0.0, |total, &v| {
        let d = v - mean;
        total + d * d
    });
    (squares / (n - 1) as f64).sqrt()
}

/// Gnocchi's median of a bucket: the middle value, or the mean of the
/// middle two, found with partial selections instead of a sort.
fn median(values: &[f64], select: &mut Vec<f64>) -> f64 {
    let n = values.len();
    select.clear();
    select.extend_from_slice(values);
    let mid = n / 2;
    let (lower_half, &mut upper, _) = select.select_nth_unstable_by(mid, f64::total_cmp);
    if n % 2 == 1 {
        return upper;
    }
    (max(lower_half) + upper) / 2.0
}

/// Gnocchi's `GroupedTimeSeries.quantile(q)`, to the last digit.
///
/// Gnocchi interpolates at a position in the whole grouped series, not in
/// the bucket: `offset + (count - 1) * q / 100`, `offset` being how many
/// values of the series come before the bucket, and weighs the two values
/// around it by the distances to that position. The rounding of that
/// absolute position is part of the answer, so `offset` is needed to give
/// Gnocchi's value.
fn percentile(values: &[f64], q: u8, offset: usize, select: &mut Vec<f64>) -> f64 {
    let n = values.len();
    let position = offset as f64 + (n - 1) as f64 * (f64::from(q) / 100.0);
    let (floor, ceil) = (position.floor(), position.ceil());
    // Parsing only yields 1..=99, so the local index stays in the bucket;
    // clamp what hand-built values might hold.
    let lo = (floor as usize).saturating_sub(offset).min(n - 1);
    select.clear();
    select.extend_from_slice(values);
    let (_, &mut a, right) = select.select_nth_unstable_by(lo, f64::total_cmp);
    if floor == ceil || right.is_empty() {
        return a;
    }
    let b = min(right);
    a * (ceil - position) + b * (position - floor)
}

/// Calls `emit(bucket_start, offset, values_of_bucket)` for each non-empty
/// bucket, `offset` being how many values come before the bucket's,
/// over sorted `timestamps`; `bounds(t, previous_end)` gives the
/// `[start, end)` of the bucket holding `t`, `previous_end` being the end of
/// the previous bucket (`i64::MIN` at first), a hint that spares a division
/// when buckets follow each other.
#[inline(always)]
fn for_each_bucket<B: Fn(i64, i64) -> (i64, i64), F: FnMut(i64, usize, &[f64])>(
    timestamps: &[i64],
    values: &[f64],
    bounds: B,
    mut emit: F,
) {
    let n = timestamps.len().min(values.len());
    let timestamps = &timestamps[..n];
    let values = &values[..n];
    let mut i = 0;
    let mut previous_end = i64::MIN;
    while i < n {
        let (start, end) = bounds(timestamps[i], previous_end);
        previous_end = end;
        // Gallop then bisect: one comparison for single-measure buckets,
        // O(log size) for large ones, so count/first/last need not touch
        // every timestamp. Everything before `lo` is known to be < end.
        let mut lo = i + 1;
        let mut hi = lo;
        let mut step = 1;
        while hi < n && timestamps[hi] < end {
            lo = hi + 1;
            hi = lo + step;
            step *= 2;
        }
        let hi = hi.min(n);
        let j = lo + timestamps[lo..hi].partition_point(|&t| t < end);
        emit(start, i, &values[i..j]);
        i = j;
    }
}

/// Aggregates sorted, unique `timestamps`/`values` into buckets of width
/// `granularity`, appending `(bucket_start, value)` to `out_timestamps` and
/// `out_values`. Buckets whose value is NaN (`std` of one value) are skipped.
///
/// For a rate method, `previous` is the value of the measure just before
/// `values[0]` in the unaggregated series, if any: with it the first measure
/// gets a rate too, so aggregating a range gives the same result as
/// aggregating the whole series and cutting the range out.
#[allow(clippy::too_many_arguments)]
pub fn aggregate_grouped(
    method: Method,
    timestamps: &[i64],
    values: &[f64],
    previous: Option<f64>,
    granularity: i64,
    scratch: &mut Scratch,
    out_timestamps: &mut Vec<i64>,
    out_values: &mut Vec<f64>,
) {
    let granularity = granularity.max(1);
    let bounds = move |t: i64, previous_end: i64| {
        // Consecutive buckets: no division needed.
        let start =
            if t >= previous_end && (t.wrapping_sub(previous_end) as u64) < granularity as u64 {
                previous_end
            } else {
                floor(t, granularity)
            };
        (start, start.saturating_add(granularity))
    };
    aggregate_grouped_by(
        method,
        timestamps,
        values,
        previous,
        bounds,
        scratch,
        out_timestamps,
        out_values,
    );
}

/// [`aggregate_grouped`] with arbitrary buckets (calendar periods):
/// `bounds(t, previous_end)` is the `[start, end)` of the bucket holding
/// `t` (see `for_each_bucket`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn aggregate_grouped_by<B: Fn(i64, i64) -> (i64, i64) + Copy>(
    method: Method,
    timestamps: &[i64],
    values: &[f64],
    previous: Option<f64>,
    bounds: B,
    scratch: &mut Scratch,
    out_timestamps: &mut Vec<i64>,
    out_values: &mut Vec<f64>,
) {
    let n = timestamps.len().min(values.len());
    let (timestamps, values) = (&timestamps[..n], &values[..n]);
    if !method.rate {
        grouped_base(
            method.base,
            timestamps,
            values,
            bounds,
            &mut scratch.select,
            out_timestamps,
            out_values,
        );
        return;
    }
    let Scratch { select, rates } = scratch;
    rates.clear();
    let rate_timestamps = match (previous, values.first()) {
        (Some(prev), Some(&first)) => {
            rates.push(first - prev);
            timestamps
        }
        _ if n == 0 => timestamps,
        _ => &timestamps[1..],
    };
    rates.extend(values.windows(2).map(|w| w[1] - w[0]));
    grouped_base(
        method.base,
        rate_timestamps,
        rates,
        bounds,
        select,
        out_timestamps,
        out_values,
    );
}

fn grouped_base<B: Fn(i64, i64) -> (i64, i64) + Copy>(
    base: BaseMethod,
    timestamps: &[i64],
    values: &[f64],
    bounds: B,
    select: &mut Vec<f64>,
    out_ts: &mut Vec<i64>,
    out_vals: &mut Vec<f64>,
) {
    // One monomorphized loop per method: the match stays out of the loop.
    // `run!(f)` reduces each bucket with `f(values)`; `run!(offset f)` with
    // `f(offset, values)`, for the methods whose answer depends on where the
    // bucket stands in the series.
    macro_rules! run {
        (offset $f:expr) => {
            for_each_bucket(timestamps, values, bounds, |start, offset, group| {
                let v: f64 = $f(offset, group);
                if !v.is_nan() {
                    out_ts.push(start);
                    out_vals.push(v);
                }
            })
        };
        ($f:expr) => {
            run!(offset | _, group | $f(group))
        };
    }
    match base {
        BaseMethod::Mean => run!(|g: &[f64]| sum(g) / g.len() as f64),
        BaseMethod::Sum => run!(sum),
        BaseMethod::Last => run!(|g: &[f64]| g[g.len() - 1]),
        BaseMethod::First => run!(|g: &[f64]| g[0]),
        BaseMethod::Max => run!(max),
        BaseMethod::Min => run!(min),
        BaseMethod::Count => run!(|g: &[f64]| g.len() as f64),
        BaseMethod::Std => run!(std),
        BaseMethod::Median => run!(|g: &[f64]| median(g, select)),
        BaseMethod::Percentile(q) => {
            run!(offset |offset, g: &[f64]| percentile(g, q, offset, select))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str) -> Method {
        name.parse().unwrap()
    }

    fn agg(name: &str, values: &[f64]) -> f64 {
        aggregate(m(name), values)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn parses_and_formats_names() {
        for name in [
            "mean", "sum", "last", "max", "min", "std", "median", "first", "count",
        ] {
            assert_eq!(m(name).to_string(), name);
            let rate = format!("rate:{name}");
            assert_eq!(m(&rate).to_string(), rate);
        }
        assert_eq!(m("95pct"), Method::plain(BaseMethod::Percentile(95)));
        assert_eq!(m("rate:95pct"), Method::rate_of(BaseMethod::Percentile(95)));
        assert_eq!(m("1pct").to_string(), "1pct");
        assert_eq!(m("99pct").to_string(), "99pct");
        for bad in [
            "",
            "wtf",
            "0pct",
            "100pct",
            "05pct",
            "pct",
            "rate:",
            "rate:rate:mean",
            "Mean",
            "-1pct",
            "+5pct",
        ] {
            assert!(bad.parse::<Method>().is_err(), "{bad}");
        }
        assert_eq!(Method::all().count(), 216);
        let names: std::collections::BTreeSet<String> =
            Method::all().map(|m| m.to_string()).collect();
        assert_eq!(names.len(), 216);
        assert!(names
            .iter()
            .all(|n| n.parse::<Method>().unwrap().to_string() == *n));
    }

    #[test]
    fn kernels_match_numpy() {
        let v = [3.0, 6.0, 5.0];
        assert_eq!(agg("mean", &v), 14.0 / 3.0);
        assert_eq!(agg("sum", &v), 14.0);
        assert_eq!(agg("min", &v), 3.0);
        assert_eq!(agg("max", &v), 6.0);
        assert_eq!(agg("first", &v), 3.0);
        assert_eq!(agg("last", &v), 5.0);
        assert_eq!(agg("count", &v), 3.0);
        assert_eq!(agg("median", &v), 5.0);
        // Gnocchi's test_aggregation_std_with_unique: std([3, 6, 5]).
        assert!(close(agg("std", &v), 1.5275252316519465));
        assert!(agg("std", &[3.0]).is_nan());
        assert_eq!(agg("median", &[1.0, 4.0, 2.0, 3.0]), 2.5);
        // numpy.percentile([1, 2, 3, 4], 95) == 3.85
        assert!(close(agg("95pct", &[4.0, 1.0, 3.0, 2.0]), 3.85));
        // numpy.percentile(range(1, 11), 90) == 9.1
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert!(close(agg("90pct", &ten), 9.1));
        assert!(close(agg("1pct", &ten), 1.09));
        assert_eq!(agg("50pct", &ten), 5.5);
        assert_eq!(agg("99pct", &[7.0]), 7.0);
        assert_eq!(agg("count", &[]), 0.0);
        assert!(agg("mean", &[]).is_nan());
        // rate: differences then the method.
        assert_eq!(agg("rate:sum", &[1.0, 4.0, 10.0]), 9.0);
        assert_eq!(agg("rate:max", &[1.0, 4.0, 10.0]), 6.0);
        assert!(agg("rate:last", &[1.0]).is_nan());
    }

    /// Values and answers of Gnocchi 4.7.1 (numpy 2.4) for two 10 s buckets
    /// of ten measures each, to the last digit.
    #[test]
    fn grouped_kernels_give_gnocchis_last_digit() {
        let vs = [
            -35.233, -69.83, 30.187, -85.513, 7.176, -26.862, -88.4, 1.487, -92.501, -13.271,
            -86.029, -81.857, -15.096, 65.37, -75.24, -55.352, 25.487, 89.542, 15.421, -20.664,
        ];
        let ts: Vec<i64> = (0..20).map(|s| s * 1_000_000_000i64).collect();
        let run = |method: &str| {
            let (mut out_t, mut out_v) = (Vec::new(), Vec::new());
            aggregate_grouped(
                m(method),
                &ts,
                &vs,
                None,
                10_000_000_000,
                &mut Scratch::new(),
                &mut out_t,
                &mut out_v,
            );
            out_v
        };
        // The second bucket's percentile is interpolated at position
        // 10 + 9 × 0.95 of the series, whose rounding shows in the result.
        assert_eq!(run("95pct"), vec![19.832049999999974, 78.66459999999994]);
        // In-order sums: lanes or pairwise sums would end in other digits.
        let bucket = [
            27.783, -25.52, 9.549, -87.442, -88.08, -58.808, 36.08, -14.482, -37.171, 17.112,
        ];
        assert_eq!(agg("sum", &bucket), -220.97899999999998);
        assert_eq!(agg("mean", &bucket), -22.0979);
    }

    #[test]
    fn grouped_matches_per_bucket() {
        // Gnocchi's test_aggregation_std_with_unique, second part.
        let ts = [0, 4, 9, 66].map(|s| s * 1_000_000_000i64);
        let vs = [3.0, 6.0, 5.0, 9.0];
        let mut out_t = Vec::new();
        let mut out_v = Vec::new();
        let mut scratch = Scratch::new();
        aggregate_grouped(
            m("std"),
            &ts,
            &vs,
            None,
            60_000_000_000,
            &mut scratch,
            &mut out_t,
            &mut out_v,
        );
        assert_eq!(out_t, vec![0]);
        assert!(close(out_v[0], 1.5275252316519465));

        out_t.clear();
        out_v.clear();
        aggregate_grouped(
            m("mean"),
            &ts,
            &vs,
            None,
            60_000_000_000,
            &mut scratch,
            &mut out_t,
            &mut out_v,
        );
        assert_eq!(out_t, vec![0, 60_000_000_000]);
        assert_eq!(out_v, vec![14.0 / 3.0, 9.0]);

        out_t.clear();
        out_v.clear();
        aggregate_grouped(
            m("rate:sum"),
            &ts,
            &vs,
            None,
            60_000_000_000,
            &mut scratch,
            &mut out_t,
            &mut out_v,
        );
        assert_eq!(out_t, vec![0, 60_000_000_000]);
        assert_eq!(out_v, vec![2.0, 4.0]);

        out_t.clear();
        out_v.clear();
        aggregate_grouped(
            m("rate:sum"),
            &ts,
            &vs,
            Some(1.0),
            60_000_000_000,
            &mut scratch,
            &mut out_t,
            &mut out_v,
        );
        assert_eq!(out_v, vec![4.0, 4.0]);
    }

    #[test]
    fn grouped_handles_negative_timestamps() {
        let ts = [-61, -60, -1, 0, 59];
        let vs = [1.0, 2.0, 3.0, 4.0, 5.0];
        let (mut t, mut v) = (Vec::new(), Vec::new());
        aggregate_grouped(
            m("sum"),
            &ts,
            &vs,
            None,
            60,
            &mut Scratch::new(),
            &mut t,
            &mut v,
        );
        assert_eq!(t, vec![-120, -60, 0]);
        assert_eq!(v, vec![1.0, 5.0, 9.0]);
    }
}
