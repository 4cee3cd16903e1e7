//! `use_history=true` with `groupby`: each measure counts in the group of the
//! attributes its resource had when the measure was collected.
//!
//! Gnocchi's rule, kept here: every revision of a resource covers a window of
//! the asked time range (the first revision found also covers everything
//! before it, since the measures predate no attribute change we know of); a
//! bucket that straddles a revision change is split between the revisions in
//! proportion to the time each covers, and the portions one resource has in
//! one group are summed. The values are scaled, not re-aggregated, which is
//! why the documentation warns that re-aggregation over history is only
//! approximate.

use std::collections::HashMap;
use std::hash::Hash;

/// The part of the asked time range during which one revision was current,
/// in nanoseconds since the epoch; an open end is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub start: Option<i64>,
    pub stop: Option<i64>,
}

impl Window {
    /// Whether the window can hold a bucket at all.
    pub fn is_empty(&self) -> bool {
        matches!((self.start, self.stop), (Some(start), Some(stop)) if start >= stop)
    }

    /// The share of the bucket `[t, t + granularity)` inside the window.
    pub fn coefficient(&self, t: i64, granularity: i64) -> f64 {
        let end = t + granularity;
        let from = self.start.map_or(t, |s| s.clamp(t, end));
        let to = self.stop.map_or(end, |s| s.clamp(t, end));
        (to - from).max(0) as f64 / granularity as f64
    }
}

/// One revision as the windows need it: the resource it belongs to and when
/// it was current (`end` is `None` for the current revision).
#[derive(Debug, Clone, Copy)]
pub struct Revision<K> {
    pub resource: K,
    pub start: i64,
    pub end: Option<i64>,
}

/// Whether a revision was current at some time in `[start, stop)`; Gnocchi
/// narrows the history search this way only when both ends are given.
pub fn overlaps<K>(revision: &Revision<K>, start: Option<i64>, stop: Option<i64>) -> bool {
    match (start, stop) {
        (Some(start), Some(stop)) => {
            revision.start < stop && revision.end.is_none_or(|e| e >= start)
        }
        _ => true,
    }
}

/// The window of each revision (in the order given) within `[start, stop)`.
pub fn windows<K: Eq + Hash + Copy>(
    revisions: &[Revision<K>],
    start: Option<i64>,
    stop: Option<i64>,
) -> Vec<Window> {
    let mut first: HashMap<K, (i64, usize)> = HashMap::new();
    for (i, revision) in revisions.iter().enumerate() {
        let earliest = first
            .entry(revision.resource)
            .or_insert((revision.start, i));
        if revision.start < earliest.0 {
            *earliest = (revision.start, i);
        }
    }
    revisions
        .iter()
        .enumerate()
        .map(|(i, revision)| {
            let is_first = first[&revision.resource].1 == i;
            Window {
                start: if is_first {
                    start
                } else {
                    Some(start.map_or(revision.start, |s| s.max(revision.start)))
                },
                stop: match (revision.end, stop) {
                    (Some(end), Some(stop)) => Some(end.min(stop)),
                    (end, stop) => end.or(stop),
                },
            }
        })
        .collect()
}

/// Scales each window's points by the share of their bucket the window
/// covers and sums the points that fall on the same timestamp.
pub fn sum_portions(
    granularity: i64,
    parts: impl IntoIterator<Item = (Window, Vec<i64>, Vec<f64>)>,
) -> (Vec<i64>, Vec<f64>) {
    let mut points: Vec<(i64, f64)> = Vec::new();
    for (window, timestamps, values) in parts {
        points.extend(
            timestamps
                .into_iter()
                .zip(values)
                .map(|(t, v)| (t, v * window.coefficient(t, granularity))),
        );
    }
    points.sort_by_key(|&(t, _)| t);
    let mut timestamps: Vec<i64> = Vec::with_capacity(points.len());
    let mut values: Vec<f64> = Vec::with_capacity(points.len());
    for (t, v) in points {
        if timestamps.last() == Some(&t) {
            *values.last_mut().expect("same length") += v;
        } else {
            timestamps.push(t);
            values.push(v);
        }
    }
    (timestamps, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: i64 = 60;

    fn rev(resource: u8, start: i64, end: Option<i64>) -> Revision<u8> {
        Revision {
            resource,
            start,
            end,
        }
    }

    #[test]
    fn the_first_revision_covers_everything_before_it() {
        let revisions = [rev(1, 100, Some(200)), rev(1, 200, None), rev(2, 150, None)];
        let w = windows(&revisions, None, None);
        assert_eq!(
            w,
            vec![
                Window {
                    start: None,
                    stop: Some(200)
                },
                Window {
                    start: Some(200),
                    stop: None
                },
                Window {
                    start: None,
                    stop: None
                },
            ]
        );
    }

    #[test]
    fn windows_are_clipped_to_the_asked_range() {
        let revisions = [rev(1, 200, None), rev(1, 100, Some(200))];
        let w = windows(&revisions, Some(150), Some(180));
        // The later revision starts at 200, past the asked stop: empty.
        assert!(w[0].is_empty());
        assert_eq!(
            w[1],
            Window {
                start: Some(150),
                stop: Some(180)
            }
        );
        let w = windows(&revisions, Some(50), Some(500));
        assert_eq!(
            w[0],
            Window {
                start: Some(200),
                stop: Some(500)
            }
        );
        assert_eq!(
            w[1],
            Window {
                start: Some(50),
                stop: Some(200)
            }
        );
    }

    #[test]
    fn coefficients_measure_the_covered_share_of_a_bucket() {
        let all = Window {
            start: None,
            stop: None,
        };
        assert_eq!(all.coefficient(0, G), 1.0);
        let late = Window {
            start: Some(45),
            stop: None,
        };
        assert_eq!(late.coefficient(0, G), 0.25);
        assert_eq!(late.coefficient(60, G), 1.0);
        let early = Window {
            start: None,
            stop: Some(15),
        };
        assert_eq!(early.coefficient(0, G), 0.25);
        assert_eq!(early.coefficient(60, G), 0.0);
    }

    #[test]
    fn a_straddling_bucket_is_split_and_summed() {
        // The attribute changed at 30 s: the bucket at 0 is half each.
        let before = Window {
            start: None,
            stop: Some(30),
        };
        let after = Window {
            start: Some(30),
            stop: None,
        };
        let (t, v) = sum_portions(
            G,
            [
                (before, vec![-60, 0], vec![1.0, 10.0]),
                (after, vec![0, 60], vec![10.0, 4.0]),
            ],
        );
        assert_eq!(t, vec![-60, 0, 60]);
        assert_eq!(v, vec![1.0, 10.0, 4.0]);
        // Only one side in the group: half the bucket's value.
        let (t, v) = sum_portions(G, [(after, vec![0, 60], vec![10.0, 4.0])]);
        assert_eq!(t, vec![0, 60]);
        assert_eq!(v, vec![5.0, 4.0]);
    }

    #[test]
    fn the_period_filter_needs_both_ends() {
        let old = rev(1, 0, Some(100));
        assert!(overlaps(&old, Some(100), Some(200)));
        assert!(!overlaps(&old, Some(101), Some(200)));
        assert!(overlaps(&old, Some(101), None));
        assert!(!overlaps(&rev(1, 200, None), Some(0), Some(200)));
    }
}
