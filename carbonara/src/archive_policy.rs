//! Archive policies: which granularities and methods a metric keeps, and for
//! how long.
//!
//! Values are validated on construction with Gnocchi's rules and messages
//! (`gnocchi/archive_policy.py`): any two of granularity, points and timespan
//! determine the third, everything positive, no granularity twice. The
//! `aggregation_methods` list understands Gnocchi's `+name`/`-name` edits of
//! the default list and `*` for every method.

use std::collections::BTreeSet;

use crate::aggregation::{BaseMethod, Method};
use crate::timespan::format_seconds;
use crate::timestamp::{NS_PER_DAY, NS_PER_HOUR, NS_PER_MIN, NS_PER_SEC};

/// Why a policy or one of its items was refused; texts are Gnocchi's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchivePolicyError {
    /// All three of granularity, points and timespan given, inconsistently.
    #[error("timespan ≠ granularity × points")]
    TimespanMismatch,
    /// Granularity zero or negative.
    #[error("Granularity should be > 0")]
    GranularityNotPositive,
    /// Points zero or negative.
    #[error("Number of points should be > 0")]
    PointsNotPositive,
    /// Timespan zero or negative.
    #[error("Timespan must be positive")]
    TimespanNotPositive,
    /// Fewer than two of the three given (granularity alone is allowed).
    #[error("At least two of granularity/points/timespan must be provided")]
    Underdetermined,
    /// Timespan shorter than the granularity.
    #[error("Calculated number of points is < 0")]
    NoPoints,
    /// Granularity times points does not fit in `i64` nanoseconds.
    #[error("Timespan is out of range")]
    OutOfRange,
    /// An empty definition list.
    #[error("length of value must be at least 1")]
    EmptyDefinition,
    /// Two items with the same granularity (nanoseconds).
    #[error("More than one archive policy uses granularity `{}'", format_seconds(*.0))]
    DuplicateGranularity(i64),
    /// An `aggregation_methods` entry that is not a method, `+method`,
    /// `-method` or `*`.
    #[error("Invalid aggregation method: {0}")]
    InvalidMethod(String),
}

/// One `(granularity, points, timespan)` line of a policy. `points` and
/// `timespan` are both absent when only a granularity was given: such an
/// archive is never truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArchivePolicyItem {
    granularity: i64,
    points: Option<u64>,
    timespan: Option<i64>,
}

impl ArchivePolicyItem {
    /// Completes and checks an item from whichever fields the client gave
    /// (nanoseconds for granularity and timespan).
    ///
    /// Derived values follow Gnocchi: `granularity = timespan / points`
    /// (truncated to the nanosecond), `points = timespan / granularity`
    /// (truncated), and the stored timespan is always
    /// `granularity × points` ("1 hour" at 7 s gives 514 points, 0:59:58).
    pub fn new(
        granularity: Option<i64>,
        points: Option<i64>,
        timespan: Option<i64>,
    ) -> Result<ArchivePolicyItem, ArchivePolicyError> {
        if let (Some(g), Some(p), Some(t)) = (granularity, points, timespan) {
            if g.checked_mul(p) != Some(t) {
                return Err(ArchivePolicyError::TimespanMismatch);
            }
        }
        if granularity.is_some_and(|g| g <= 0) {
            return Err(ArchivePolicyError::GranularityNotPositive);
        }
        if points.is_some_and(|p| p <= 0) {
            return Err(ArchivePolicyError::PointsNotPositive);
        }
        if timespan.is_some_and(|t| t <= 0) {
            return Err(ArchivePolicyError::TimespanNotPositive);
        }
        let granularity = match (granularity, points, timespan) {
            (Some(g), _, _) => g,
            (None, Some(p), Some(t)) => t / p,
            _ => return Err(ArchivePolicyError::Underdetermined),
        };
        if granularity <= 0 {
            // timespan / points rounded down to nothing.
            return Err(ArchivePolicyError::GranularityNotPositive);
        }
        let points = match (points, timespan) {
            (Some(p), _) => Some(p),
            (None, Some(t)) => {
                let p = t / granularity;
                if p <= 0 {
                    return Err(ArchivePolicyError::NoPoints);
                }
                Some(p)
            }
            (None, None) => None,
        };
        let timespan = match points {
            Some(p) => Some(
                granularity
                    .checked_mul(p)
                    .ok_or(ArchivePolicyError::OutOfRange)?,
            ),
            None => None,
        };
        Ok(ArchivePolicyItem {
            granularity,
            points: points.map(|p| p as u64),
            timespan,
        })
    }

    /// Bucket width, nanoseconds.
    pub fn granularity(&self) -> i64 {
        self.granularity
    }

    /// Number of buckets kept, if bounded.
    pub fn points(&self) -> Option<u64> {
        self.points
    }

    /// `granularity × points`, nanoseconds, if bounded.
    pub fn timespan(&self) -> Option<i64> {
        self.timespan
    }
}

/// A named policy: its archives, back window and methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivePolicy {
    name: String,
    back_window: u32,
    definition: Vec<ArchivePolicyItem>,
    aggregation_methods: BTreeSet<Method>,
}

impl ArchivePolicy {
    /// Checks a policy. The definition is sorted by increasing granularity
    /// (the order every Gnocchi example and listing shows, and the one the
    /// write path iterates in).
    pub fn new(
        name: impl Into<String>,
        back_window: u32,
        mut definition: Vec<ArchivePolicyItem>,
        aggregation_methods: BTreeSet<Method>,
    ) -> Result<ArchivePolicy, ArchivePolicyError> {
        if definition.is_empty() {
            return Err(ArchivePolicyError::EmptyDefinition);
        }
        // Gnocchi reports the first duplicated granularity in input order.
        for (i, item) in definition.iter().enumerate() {
            if definition[..i]
                .iter()
                .any(|other| other.granularity == item.granularity)
            {
                return Err(ArchivePolicyError::DuplicateGranularity(item.granularity));
            }
        }
        definition.sort_by_key(|item| item.granularity);
        Ok(ArchivePolicy {
            name: name.into(),
            back_window,
            definition,
            aggregation_methods,
        })
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many blocks (of [`ArchivePolicy::block_size`]) before the latest
    /// one late measures are still accepted into.
    pub fn back_window(&self) -> u32 {
        self.back_window
    }

    /// Archives by increasing granularity.
    pub fn definition(&self) -> &[ArchivePolicyItem] {
        &self.definition
    }

    /// Methods computed for every archive.
    pub fn aggregation_methods(&self) -> &BTreeSet<Method> {
        &self.aggregation_methods
    }

    /// Every `(archive, method)` pair the write path computes, by increasing
    /// granularity then method.
    pub fn aggregations(&self) -> impl Iterator<Item = (ArchivePolicyItem, Method)> + '_ {
        self.definition.iter().flat_map(move |item| {
            self.aggregation_methods
                .iter()
                .map(move |&method| (*item, method))
        })
    }

    /// The coarsest granularity: the unaggregated tail keeps whole blocks of
    /// this size, so every archive's latest bucket can be recomputed.
    pub fn block_size(&self) -> i64 {
        self.definition
            .iter()
            .map(|item| item.granularity)
            .max()
            .unwrap_or(0)
    }

    /// Gnocchi's built-in `bool`, `low`, `medium` and `high` policies
    /// (`DEFAULT_ARCHIVE_POLICIES`), created by `gnocchi-upgrade`.
    pub fn builtin() -> Vec<ArchivePolicy> {
        let item = |g: i64, t: i64| {
            ArchivePolicyItem::new(Some(g), None, Some(t)).expect("built-in items are valid")
        };
        let year = 365 * NS_PER_DAY;
        let week = 7 * NS_PER_DAY;
        let defaults = default_aggregation_methods();
        let policy = |name: &str, back_window, definition, methods| {
            ArchivePolicy::new(name, back_window, definition, methods)
                .expect("built-in policies are valid")
        };
        vec![
            policy(
                "bool",
                3600,
                vec![item(NS_PER_SEC, year)],
                BTreeSet::from([Method::plain(BaseMethod::Last)]),
            ),
            policy(
                "low",
                0,
                vec![item(5 * NS_PER_MIN, 30 * NS_PER_DAY)],
                defaults.clone(),
            ),
            policy(
                "medium",
                0,
                vec![item(NS_PER_MIN, week), item(NS_PER_HOUR, year)],
                defaults.clone(),
            ),
            policy(
                "high",
                0,
                vec![
                    item(NS_PER_SEC, NS_PER_HOUR),
                    item(NS_PER_MIN, week),
                    item(NS_PER_HOUR, year),
                ],
                defaults,
            ),
        ]
    }
}

/// Gnocchi's `default_aggregation_methods`: mean, min, max, sum, std, count.
pub fn default_aggregation_methods() -> BTreeSet<Method> {
    [
        BaseMethod::Mean,
        BaseMethod::Min,
        BaseMethod::Max,
        BaseMethod::Sum,
        BaseMethod::Std,
        BaseMethod::Count,
    ]
    .into_iter()
    .map(Method::plain)
    .collect()
}

/// Resolves a client's `aggregation_methods` list as Gnocchi does:
///
/// - the starting set is every method if `*` is present, else `defaults` if
///   every entry is `+name` or `-name` (an empty list included), else empty;
/// - then, in order, `-name` removes, `+name` and plain `name` add.
pub fn resolve_aggregation_methods<S: AsRef<str>>(
    entries: &[S],
    defaults: &BTreeSet<Method>,
) -> Result<BTreeSet<Method>, ArchivePolicyError> {
    let parse = |name: &str, entry: &str| {
        name.parse::<Method>()
            .map_err(|_| ArchivePolicyError::InvalidMethod(entry.chars().take(64).collect()))
    };
    let entries: Vec<&str> = entries.iter().map(AsRef::as_ref).collect();
    let mut methods = if entries.contains(&"*") {
        Method::all().collect()
    } else if entries
        .iter()
        .all(|e| e.starts_with('+') || e.starts_with('-'))
    {
        defaults.clone()
    } else {
        BTreeSet::new()
    };
    for entry in entries {
        if let Some(name) = entry.strip_prefix('-') {
            methods.remove(&parse(name, entry)?);
        } else if let Some(name) = entry.strip_prefix('+') {
            methods.insert(parse(name, entry)?);
        } else if entry != "*" {
            methods.insert(parse(entry, entry)?);
        }
    }
    Ok(methods)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timespan::{format_timespan, parse_timespan};

    fn ts(text: &str) -> Option<i64> {
        Some(parse_timespan(text).unwrap())
    }

    fn names(set: &BTreeSet<Method>) -> Vec<String> {
        let mut v: Vec<String> = set.iter().map(Method::to_string).collect();
        v.sort();
        v
    }

    #[test]
    fn items_follow_archive_gabbit() {
        // granularity + points
        let i = ArchivePolicyItem::new(ts("1 second"), Some(20), None).unwrap();
        assert_eq!(format_timespan(i.timespan().unwrap()), "0:00:20");
        // granularity alone
        let i = ArchivePolicyItem::new(ts("2 second"), None, None).unwrap();
        assert_eq!((i.points(), i.timespan()), (None, None));
        // timespan + points: float granularity
        let i = ArchivePolicyItem::new(None, Some(1000), ts("1 hour")).unwrap();
        assert_eq!(format_timespan(i.granularity()), "0:00:03.600000");
        assert_eq!(format_timespan(i.timespan().unwrap()), "1:00:00");
        // timespan + granularity: points truncated, timespan recomputed
        let i = ArchivePolicyItem::new(ts("7s"), None, ts("1 hour")).unwrap();
        assert_eq!(i.points(), Some(514));
        assert_eq!(format_timespan(i.timespan().unwrap()), "0:59:58");
        let i = ArchivePolicyItem::new(ts("10s"), Some(20), None).unwrap();
        assert_eq!(format_timespan(i.timespan().unwrap()), "0:03:20");
    }

    #[test]
    fn items_refused_with_gnocchi_messages() {
        let err = ArchivePolicyItem::new(ts("1 second"), Some(50), ts("1 hour")).unwrap_err();
        assert_eq!(err.to_string(), "timespan ≠ granularity × points");
        let err = ArchivePolicyItem::new(ts("1 second"), Some(60), ts("0:01:01")).unwrap_err();
        assert_eq!(err, ArchivePolicyError::TimespanMismatch);
        assert_eq!(
            ArchivePolicyItem::new(Some(0), Some(60), None).unwrap_err(),
            ArchivePolicyError::GranularityNotPositive
        );
        assert_eq!(
            ArchivePolicyItem::new(ts("10"), Some(0), None).unwrap_err(),
            ArchivePolicyError::PointsNotPositive
        );
        assert_eq!(
            ArchivePolicyItem::new(ts("2 hour"), None, ts("1 hour")).unwrap_err(),
            ArchivePolicyError::NoPoints
        );
        assert_eq!(
            ArchivePolicyItem::new(None, Some(3), None).unwrap_err(),
            ArchivePolicyError::Underdetermined
        );
        assert_eq!(
            ArchivePolicyItem::new(None, None, ts("1 hour")).unwrap_err(),
            ArchivePolicyError::Underdetermined
        );
        assert_eq!(
            ArchivePolicyItem::new(ts("1 day"), Some(i64::MAX), None).unwrap_err(),
            ArchivePolicyError::OutOfRange
        );
    }

    #[test]
    fn policies_refuse_duplicates_and_sort() {
        let a = ArchivePolicyItem::new(ts("1 second"), Some(60), None).unwrap();
        let b = ArchivePolicyItem::new(ts("1 second"), Some(120), None).unwrap();
        let err = ArchivePolicy::new("complex", 0, vec![a, b], default_aggregation_methods())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "More than one archive policy uses granularity `1.0'"
        );
        let hour = ArchivePolicyItem::new(ts("1 hour"), None, None).unwrap();
        let p = ArchivePolicy::new("x", 2, vec![hour, a], default_aggregation_methods()).unwrap();
        assert_eq!(p.definition()[0].granularity(), NS_PER_SEC);
        assert_eq!(p.block_size(), NS_PER_HOUR);
        assert_eq!(
            ArchivePolicy::new("x", 0, vec![], BTreeSet::new()).unwrap_err(),
            ArchivePolicyError::EmptyDefinition
        );
    }

    #[test]
    fn aggregation_methods_forms() {
        let d = default_aggregation_methods();
        assert_eq!(names(&d), ["count", "max", "mean", "min", "std", "sum"]);
        let r = resolve_aggregation_methods(&["mean", "max"], &d).unwrap();
        assert_eq!(names(&r), ["max", "mean"]);
        let r = resolve_aggregation_methods(&["+last", "-std", "-max"], &d).unwrap();
        assert_eq!(names(&r), ["count", "last", "mean", "min", "sum"]);
        let r = resolve_aggregation_methods(&["+mean", "-last"], &d).unwrap();
        assert_eq!(r, d);
        let r = resolve_aggregation_methods(&["rate:mean", "rate:last"], &d).unwrap();
        assert_eq!(names(&r), ["rate:last", "rate:mean"]);
        let r = resolve_aggregation_methods::<&str>(&[], &d).unwrap();
        assert_eq!(r, d);
        let r = resolve_aggregation_methods(&["*"], &d).unwrap();
        assert_eq!(r.len(), 216);
        let r = resolve_aggregation_methods(&["*", "-mean", "-rate:mean"], &d).unwrap();
        assert_eq!(r.len(), 214);
        // Plain names mixed with edits start from nothing.
        let r = resolve_aggregation_methods(&["last", "+max", "-last"], &d).unwrap();
        assert_eq!(names(&r), ["max"]);
        let err = resolve_aggregation_methods(&["wtf"], &d).unwrap_err();
        assert_eq!(err, ArchivePolicyError::InvalidMethod("wtf".into()));
        assert!(resolve_aggregation_methods(&["+wtf"], &d).is_err());
        assert!(resolve_aggregation_methods(&[""], &d).is_err());
    }

    #[test]
    fn builtin_policies() {
        let p = ArchivePolicy::builtin();
        let by_name = |n: &str| p.iter().find(|p| p.name() == n).unwrap();
        let desc = |p: &ArchivePolicy| -> Vec<(String, u64, String)> {
            p.definition()
                .iter()
                .map(|i| {
                    (
                        format_timespan(i.granularity()),
                        i.points().unwrap(),
                        format_timespan(i.timespan().unwrap()),
                    )
                })
                .collect()
        };
        let bool_ = by_name("bool");
        assert_eq!(bool_.back_window(), 3600);
        assert_eq!(names(bool_.aggregation_methods()), ["last"]);
        assert_eq!(
            desc(bool_),
            [("0:00:01".into(), 31_536_000, "365 days, 0:00:00".into())]
        );
        let low = by_name("low");
        assert_eq!(
            desc(low),
            [("0:05:00".into(), 8640, "30 days, 0:00:00".into())]
        );
        assert_eq!(low.aggregation_methods(), &default_aggregation_methods());
        let medium = by_name("medium");
        assert_eq!(
            desc(medium),
            [
                ("0:01:00".into(), 10080, "7 days, 0:00:00".into()),
                ("1:00:00".into(), 8760, "365 days, 0:00:00".into())
            ]
        );
        let high = by_name("high");
        assert_eq!(
            desc(high),
            [
                ("0:00:01".into(), 3600, "1:00:00".into()),
                ("0:01:00".into(), 10080, "7 days, 0:00:00".into()),
                ("1:00:00".into(), 8760, "365 days, 0:00:00".into())
            ]
        );
        assert!(p.iter().all(|p| p.back_window() == 0 || p.name() == "bool"));
        assert_eq!(high.aggregations().count(), 18);
        assert_eq!(
            high.aggregations().next().unwrap().0.granularity(),
            NS_PER_SEC
        );
    }
}
