//! Calendar grouping of aggregated series (`?resample=Y|H|Q|M|W`).
//!
//! Each group is keyed by its leading date at midnight UTC: January 1st for
//! a year, January or July 1st for a half, the first month of a quarter, the
//! 1st of a month, and the Sunday that starts a week (Gnocchi's
//! `calendar.GROUPINGS`). Dates use proleptic Gregorian civil arithmetic on
//! days since the epoch (Howard Hinnant's algorithms), so no time zone data
//! and no dependency are needed.

use std::fmt;
use std::str::FromStr;

use crate::aggregation::{aggregate_grouped_by, Method, Scratch};
use crate::timestamp::NS_PER_DAY;

/// A calendar period to group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CalendarGrouping {
    /// `Y`: calendar year.
    Year,
    /// `H`: half year, January–June and July–December.
    Half,
    /// `Q`: quarter.
    Quarter,
    /// `M`: month.
    Month,
    /// `W`: week starting on Sunday.
    Week,
}

/// Why a calendar grouping was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// Not one of `Y`, `H`, `Q`, `M`, `W`.
    #[error("Unknown calendar grouping: {0}")]
    Unknown(String),
    /// Rates need a fixed granularity (Gnocchi raises the same).
    #[error("Cannot derive aggregates using calendar grouping")]
    Rate,
}

impl FromStr for CalendarGrouping {
    type Err = CalendarError;

    fn from_str(s: &str) -> Result<CalendarGrouping, CalendarError> {
        Ok(match s {
            "Y" => CalendarGrouping::Year,
            "H" => CalendarGrouping::Half,
            "Q" => CalendarGrouping::Quarter,
            "M" => CalendarGrouping::Month,
            "W" => CalendarGrouping::Week,
            other => return Err(CalendarError::Unknown(other.chars().take(16).collect())),
        })
    }
}

impl fmt::Display for CalendarGrouping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CalendarGrouping::Year => "Y",
            CalendarGrouping::Half => "H",
            CalendarGrouping::Quarter => "Q",
            CalendarGrouping::Month => "M",
            CalendarGrouping::Week => "W",
        })
    }
}

impl CalendarGrouping {
    /// `[start, end)` of the period holding `ts`, UTC ns (saturating at the
    /// ends of the `i64` range).
    pub fn bounds(self, ts: i64) -> (i64, i64) {
        let day = ts.div_euclid(NS_PER_DAY);
        let (start_day, end_day) = match self {
            CalendarGrouping::Week => {
                // 1970-01-04 (day 3) was a Sunday.
                let start = day - (day - 3).rem_euclid(7);
                (start, start + 7)
            }
            _ => {
                let (y, m, _) = civil_from_days(day);
                let months = match self {
                    CalendarGrouping::Year => 12,
                    CalendarGrouping::Half => 6,
                    CalendarGrouping::Quarter => 3,
                    _ => 1,
                };
                let first = (m - 1) / months * months + 1;
                let (ny, nm) = if first + months > 12 {
                    (y + 1, first + months - 12)
                } else {
                    (y, first + months)
                };
                (days_from_civil(y, first, 1), days_from_civil(ny, nm, 1))
            }
        };
        (
            start_day.saturating_mul(NS_PER_DAY),
            end_day.saturating_mul(NS_PER_DAY),
        )
    }
}

/// Groups sorted points by `grouping` and reduces each group with `method`,
/// returning `(group starts, values)`. Rates are refused.
pub fn resample_calendar(
    timestamps: &[i64],
    values: &[f64],
    grouping: CalendarGrouping,
    method: Method,
    scratch: &mut Scratch,
) -> Result<(Vec<i64>, Vec<f64>), CalendarError> {
    if method.rate {
        return Err(CalendarError::Rate);
    }
    let mut out_ts = Vec::new();
    let mut out_vs = Vec::new();
    aggregate_grouped_by(
        method,
        timestamps,
        values,
        None,
        move |t, _| grouping.bounds(t),
        scratch,
        &mut out_ts,
        &mut out_vs,
    );
    Ok((out_ts, out_vs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm); the API layer parses and prints ISO 8601 dates with it too.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Proleptic Gregorian `(year, month, day)` of a day since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i64, m: i64, d: i64, h: i64) -> i64 {
        days_from_civil(y, m, d) * NS_PER_DAY + h * 3_600_000_000_000
    }

    #[test]
    fn civil_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        for day in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[test]
    fn group_starts() {
        let t = at(2015, 8, 13, 14);
        assert_eq!(
            CalendarGrouping::Year.bounds(t),
            (at(2015, 1, 1, 0), at(2016, 1, 1, 0))
        );
        assert_eq!(
            CalendarGrouping::Half.bounds(t),
            (at(2015, 7, 1, 0), at(2016, 1, 1, 0))
        );
        assert_eq!(
            CalendarGrouping::Quarter.bounds(t),
            (at(2015, 7, 1, 0), at(2015, 10, 1, 0))
        );
        assert_eq!(
            CalendarGrouping::Month.bounds(t),
            (at(2015, 8, 1, 0), at(2015, 9, 1, 0))
        );
        // 2015-08-13 was a Thursday; its week starts Sunday 2015-08-09.
        assert_eq!(
            CalendarGrouping::Week.bounds(t),
            (at(2015, 8, 9, 0), at(2015, 8, 16, 0))
        );
        // A Sunday starts its own week.
        assert_eq!(
            CalendarGrouping::Week.bounds(at(2015, 8, 9, 0)).0,
            at(2015, 8, 9, 0)
        );
        assert_eq!(
            CalendarGrouping::Week.bounds(at(2015, 8, 8, 23)).0,
            at(2015, 8, 2, 0)
        );
        assert_eq!(
            CalendarGrouping::Quarter.bounds(at(2015, 3, 31, 23)).0,
            at(2015, 1, 1, 0)
        );
        assert_eq!(
            CalendarGrouping::Half.bounds(at(1969, 6, 30, 0)).0,
            at(1969, 1, 1, 0)
        );
    }

    #[test]
    fn resamples_by_month() {
        let ts = [
            at(2015, 1, 31, 23),
            at(2015, 2, 1, 0),
            at(2015, 2, 28, 1),
            at(2015, 4, 2, 0),
        ];
        let vs = [1.0, 2.0, 4.0, 8.0];
        let mut scratch = Scratch::new();
        let (t, v) = resample_calendar(
            &ts,
            &vs,
            "M".parse().unwrap(),
            "sum".parse().unwrap(),
            &mut scratch,
        )
        .unwrap();
        assert_eq!(
            t,
            vec![at(2015, 1, 1, 0), at(2015, 2, 1, 0), at(2015, 4, 1, 0)]
        );
        assert_eq!(v, vec![1.0, 6.0, 8.0]);
        let (t, v) = resample_calendar(
            &ts,
            &vs,
            CalendarGrouping::Year,
            "mean".parse().unwrap(),
            &mut scratch,
        )
        .unwrap();
        assert_eq!((t, v), (vec![at(2015, 1, 1, 0)], vec![3.75]));
        assert_eq!(
            resample_calendar(
                &ts,
                &vs,
                CalendarGrouping::Week,
                "rate:sum".parse().unwrap(),
                &mut scratch
            ),
            Err(CalendarError::Rate)
        );
        assert!("D".parse::<CalendarGrouping>().is_err());
    }
}
