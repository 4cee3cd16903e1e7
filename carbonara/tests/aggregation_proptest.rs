//! Property tests of the aggregation core against a deliberately naive
//! reference: `BTreeMap` grouping, textbook formulas, full sorts.

use std::collections::BTreeMap;

use carbonara::aggregated::AggregatedSeries;
use carbonara::aggregation::{aggregate, BaseMethod, Method, Scratch};
use carbonara::codec::{decode_split, encode_split};
use carbonara::split::{join_splits, split_series, AggregatedSplit, SplitKey};
use carbonara::timespan::{format_timespan, parse_timespan};
use carbonara::unaggregated::UnaggregatedTail;
use proptest::prelude::*;

const S: i64 = 1_000_000_000;

// ---- naive reference ----------------------------------------------------

fn naive_reduce(base: BaseMethod, v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sorted = || {
        let mut s = v.to_vec();
        s.sort_by(|a, b| a.partial_cmp(b).unwrap());
        s
    };
    let pct = |q: f64| {
        let s = sorted();
        let rank = (s.len() - 1) as f64 * q / 100.0;
        let lo = rank.floor() as usize;
        let hi = rank.ceil() as usize;
        s[lo] + (s[hi] - s[lo]) * (rank - lo as f64)
    };
    match base {
        BaseMethod::Mean => mean,
        BaseMethod::Sum => v.iter().sum(),
        BaseMethod::Last => *v.last().unwrap(),
        BaseMethod::First => v[0],
        BaseMethod::Max => v.iter().cloned().fold(f64::MIN, f64::max),
        BaseMethod::Min => v.iter().cloned().fold(f64::MAX, f64::min),
        BaseMethod::Count => n,
        BaseMethod::Std => {
            if v.len() < 2 {
                f64::NAN
            } else {
                (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0)).sqrt()
            }
        }
        BaseMethod::Median => {
            let s = sorted();
            let k = s.len();
            if k % 2 == 1 {
                s[k / 2]
            } else {
                (s[k / 2 - 1] + s[k / 2]) / 2.0
            }
        }
        BaseMethod::Percentile(q) => pct(f64::from(q)),
    }
}

/// Whole-series aggregation the obvious way; rates from the whole series.
fn naive_aggregate(
    points: &BTreeMap<i64, f64>,
    granularity: i64,
    method: Method,
) -> Vec<(i64, f64)> {
    let mut input: Vec<(i64, f64)> = points.iter().map(|(&t, &v)| (t, v)).collect();
    if method.rate {
        input = input
            .windows(2)
            .map(|w| (w[1].0, w[1].1 - w[0].1))
            .collect();
    }
    let mut groups: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for (t, v) in input {
        groups
            .entry(t.div_euclid(granularity) * granularity)
            .or_default()
            .push(v);
    }
    groups
        .into_iter()
        .map(|(t, v)| (t, naive_reduce(method.base, &v)))
        .filter(|(_, v)| !v.is_nan())
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn assert_series_close(got: &AggregatedSeries, want: &[(i64, f64)]) -> Result<(), TestCaseError> {
    let got: Vec<(i64, f64)> = got
        .timestamps()
        .iter()
        .copied()
        .zip(got.values().iter().copied())
        .collect();
    prop_assert_eq!(got.len(), want.len(), "got {:?}\nwant {:?}", got, want);
    for (g, w) in got.iter().zip(want) {
        prop_assert_eq!(g.0, w.0);
        prop_assert!(close(g.1, w.1), "at {}: got {} want {}", g.0, g.1, w.1);
    }
    Ok(())
}

fn assert_same(a: &AggregatedSeries, b: &AggregatedSeries) -> Result<(), TestCaseError> {
    let want: Vec<(i64, f64)> = b
        .timestamps()
        .iter()
        .copied()
        .zip(b.values().iter().copied())
        .collect();
    assert_series_close(a, &want)
}

// ---- strategies -----------------------------------------------------------

fn method() -> impl Strategy<Value = Method> {
    (any::<bool>(), 0u8..108).prop_map(|(rate, i)| {
        let base = if i < 9 {
            BaseMethod::NAMED[usize::from(i)]
        } else {
            BaseMethod::Percentile(i - 9 + 1)
        };
        Method { rate, base }
    })
}

/// Unique timestamps over a few hours, possibly negative, with values.
fn measures() -> impl Strategy<Value = BTreeMap<i64, f64>> {
    prop::collection::btree_map(-7_200i64..14_400, -1000.0f64..1000.0, 0..300).prop_map(|m| {
        m.into_iter()
            .map(|(t, v)| (t * S + (t % 3) * 1_000, v))
            .collect()
    })
}

fn granularity() -> impl Strategy<Value = i64> {
    prop::sample::select(vec![S, 5 * S, 7 * S, 60 * S, 300 * S, 3600 * S])
}

fn split_vec(points: &BTreeMap<i64, f64>) -> (Vec<i64>, Vec<f64>) {
    (
        points.keys().copied().collect(),
        points.values().copied().collect(),
    )
}

// ---- properties -----------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn grouped_matches_naive(points in measures(), g in granularity(), m in method()) {
        let (ts, vs) = split_vec(&points);
        let got = AggregatedSeries::compute(&ts, &vs, g, m, &mut Scratch::new()).unwrap();
        assert_series_close(&got, &naive_aggregate(&points, g, m))?;
    }

    #[test]
    fn single_group_kernel_matches_naive(values in prop::collection::vec(-1e6f64..1e6, 1..200), m in method()) {
        let got = aggregate(m, &values);
        let input: Vec<f64> = if m.rate { values.windows(2).map(|w| w[1] - w[0]).collect() } else { values.clone() };
        let want = if input.is_empty() { f64::NAN } else { naive_reduce(m.base, &input) };
        prop_assert!(close(got, want) || (got.is_nan() && want.is_nan()), "got {} want {}", got, want);
    }

    /// Feeding the same measures in different batches, in any order, gives
    /// the aggregates of a one-shot computation (no measure is old enough
    /// to be dropped here).
    #[test]
    fn merge_order_independence(
        points in measures(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        seed in any::<u64>(),
        m in method(),
        g in granularity(),
    ) {
        let mut shuffled: Vec<(i64, f64)> = points.iter().map(|(&t, &v)| (t, v)).collect();
        // Deterministic shuffle from the seed.
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c.index(shuffled.len() + 1)).collect();
        bounds.push(0);
        bounds.push(shuffled.len());
        bounds.sort_unstable();
        let mut tail = UnaggregatedTail::new(3600 * S, 100).unwrap();
        let mut stored = AggregatedSeries::new(g, m).unwrap();
        let mut scratch = Scratch::new();
        for w in bounds.windows(2) {
            let batch = &shuffled[w[0]..w[1]];
            let ts: Vec<i64> = batch.iter().map(|p| p.0).collect();
            let vs: Vec<f64> = batch.iter().map(|p| p.1).collect();
            let outcome = tail.merge(&ts, &vs).unwrap();
            prop_assert_eq!(outcome.dropped, 0);
            if let Some(from) = outcome.recompute_from {
                let update = tail.aggregate_from(from, g, m, &mut scratch);
                stored.merge(&update, from).unwrap();
            }
            tail.truncate();
        }
        assert_series_close(&stored, &naive_aggregate(&points, g, m))?;
    }

    /// Chronological batches with back_window 0: the tail is truncated
    /// between batches, and incremental results still equal the one-shot
    /// computation for granularities dividing the block (rates included,
    /// thanks to the kept previous measure).
    #[test]
    fn truncated_tail_still_matches(
        points in measures(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        m in method(),
        g in prop::sample::select(vec![S, 5 * S, 60 * S, 300 * S]),
    ) {
        let all: Vec<(i64, f64)> = points.iter().map(|(&t, &v)| (t, v)).collect();
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c.index(all.len() + 1)).collect();
        bounds.push(0);
        bounds.push(all.len());
        bounds.sort_unstable();
        let mut tail = UnaggregatedTail::new(300 * S, 0).unwrap();
        let mut stored = AggregatedSeries::new(g, m).unwrap();
        let mut scratch = Scratch::new();
        for w in bounds.windows(2) {
            let ts: Vec<i64> = all[w[0]..w[1]].iter().map(|p| p.0).collect();
            let vs: Vec<f64> = all[w[0]..w[1]].iter().map(|p| p.1).collect();
            let outcome = tail.merge(&ts, &vs).unwrap();
            prop_assert_eq!(outcome.dropped, 0);
            if let Some(from) = outcome.recompute_from {
                stored.merge(&tail.aggregate_from(from, g, m, &mut scratch), from).unwrap();
            }
            tail.truncate();
            prop_assert!(tail.len() <= all.len());
        }
        assert_series_close(&stored, &naive_aggregate(&points, g, m))?;
    }

    /// Applying an update split by split equals merging series then cutting.
    #[test]
    fn split_apply_matches_series_merge(
        points in measures(),
        more in measures(),
        m in method(),
        g in prop::sample::select(vec![S, 2 * S, 5 * S]),
    ) {
        let mut scratch = Scratch::new();
        let mut tail = UnaggregatedTail::new(3600 * S, 1000).unwrap();
        let (ts, vs) = split_vec(&points);
        tail.merge(&ts, &vs).unwrap();
        let mut series = tail.aggregate_from(i64::MIN, g, m, &mut scratch);
        let mut splits: BTreeMap<SplitKey, AggregatedSplit> = split_series(std::slice::from_ref(&series))
            .unwrap()
            .into_iter()
            .map(|s| (s.key(), s))
            .collect();
        let (ts, vs) = split_vec(&more);
        if let Some(from) = tail.merge(&ts, &vs).unwrap().recompute_from {
            let update = tail.aggregate_from(from, g, m, &mut scratch);
            series.merge(&update, from).unwrap();
            // Every split from the one holding `from` on is affected: create
            // those the update reaches, then apply to all from `first` on.
            let first = SplitKey::containing(from, g).unwrap();
            if let Some(&last) = update.timestamps().last() {
                let last = SplitKey::containing(last, g).unwrap();
                let mut key = Some(first);
                while let Some(k) = key.filter(|k| *k <= last) {
                    splits.entry(k).or_insert_with(|| AggregatedSplit::new(k));
                    key = k.next();
                }
            }
            for (_, split) in splits.range_mut(first..) {
                split.apply(&update, from).unwrap();
            }
        }
        let splits: Vec<AggregatedSplit> = splits.into_values().collect();
        let joined = join_splits(&splits, g, m).unwrap();
        assert_same(&joined, &series)?;
    }

    /// Series -> splits -> codec bytes -> splits -> series is the identity.
    #[test]
    fn split_join_round_trip(points in measures(), g in granularity(), methods in prop::collection::btree_set(method(), 1..5)) {
        let (ts, vs) = split_vec(&points);
        let mut scratch = Scratch::new();
        let series: Vec<AggregatedSeries> = methods
            .iter()
            .map(|&m| AggregatedSeries::compute(&ts, &vs, g, m, &mut scratch).unwrap())
            .collect();
        let splits = split_series(&series).unwrap();
        for pair in splits.windows(2) {
            prop_assert!(pair[0].key() < pair[1].key());
        }
        let decoded: Vec<AggregatedSplit> = splits
            .iter()
            .map(|s| AggregatedSplit::from_block(&decode_split(&encode_split(&s.to_block())).unwrap()).unwrap())
            .collect();
        prop_assert_eq!(&decoded, &splits);
        for s in &series {
            let joined = join_splits(&decoded, g, s.method()).unwrap();
            prop_assert_eq!(&joined, s);
        }
    }

    /// A split's points in any window, appended in place, are the series'
    /// points in that window (bounds anywhere, aligned or not).
    #[test]
    fn append_points_matches_series_range(
        points in measures(),
        g in granularity(),
        m in method(),
        from in -10_000i64..16_000,
        len in 0i64..20_000,
    ) {
        let (ts, vs) = split_vec(&points);
        let mut scratch = Scratch::new();
        let series = AggregatedSeries::compute(&ts, &vs, g, m, &mut scratch).unwrap();
        let (from, until) = (from * S + 123, (from + len) * S);
        let (want_ts, want_vs) = series.range(Some(from), Some(until));
        let (mut got_ts, mut got_vs) = (Vec::new(), Vec::new());
        for split in split_series(std::slice::from_ref(&series)).unwrap() {
            split.append_points(m, from, until, &mut got_ts, &mut got_vs).unwrap();
        }
        prop_assert_eq!(&got_ts[..], want_ts);
        prop_assert_eq!(
            got_vs.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want_vs.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    /// Resampling an aggregated series equals naive regrouping of its points.
    #[test]
    fn resample_matches_naive(points in measures(), factor in 1i64..30, m in method(), agg in method()) {
        let (ts, vs) = split_vec(&points);
        let mut scratch = Scratch::new();
        let stored = AggregatedSeries::compute(&ts, &vs, S, agg, &mut scratch).unwrap();
        let resampled = stored.resample(factor * S, m, &mut scratch).unwrap();
        let as_map: BTreeMap<i64, f64> = stored.timestamps().iter().copied().zip(stored.values().iter().copied()).collect();
        assert_series_close(&resampled, &naive_aggregate(&as_map, factor * S, m))?;
    }

    /// Truncation keeps exactly the points after `last - timespan`.
    #[test]
    fn truncate_matches_naive(points in measures(), g in granularity(), keep in 1i64..50) {
        let (ts, vs) = split_vec(&points);
        let mut series = AggregatedSeries::compute(&ts, &vs, g, "mean".parse().unwrap(), &mut Scratch::new()).unwrap();
        let before: Vec<i64> = series.timestamps().to_vec();
        series.truncate(keep * g);
        let want: Vec<i64> = match before.last() {
            Some(&last) => before.iter().copied().filter(|&t| t > last - keep * g).collect(),
            None => vec![],
        };
        prop_assert_eq!(series.timestamps(), &want[..]);
        prop_assert!(series.len() as i64 <= keep);
    }

    #[test]
    fn timespan_round_trip(us in 1i64..10_000_000_000_000) {
        let ns = us * 1_000;
        prop_assert_eq!(parse_timespan(&format_timespan(ns)), Ok(ns));
    }

    #[test]
    fn timespan_parser_never_panics(text in "\\PC{0,24}") {
        let _ = parse_timespan(&text);
    }
}
