//! Timestamps and their alignment on granularities.
//!
//! Timestamps are UTC nanoseconds since the Unix epoch in a plain `i64`, and
//! granularities, timespans and block sizes are `i64` nanoseconds too: the
//! codec, the storage keys and the HTTP layer all exchange bare integers, so a
//! newtype would only add conversions on the hot paths.
//!
//! Alignment floors towards negative infinity (`div_euclid`), so a timestamp
//! before the epoch lands in the bucket that *starts* before it, as numpy's
//! `datetime64` floor does in Gnocchi's `round_timestamp`.

/// UTC nanoseconds since 1970-01-01T00:00:00Z.
pub type Timestamp = i64;

/// Nanoseconds in one second.
pub const NS_PER_SEC: i64 = 1_000_000_000;
/// Nanoseconds in one minute.
pub const NS_PER_MIN: i64 = 60 * NS_PER_SEC;
/// Nanoseconds in one hour.
pub const NS_PER_HOUR: i64 = 60 * NS_PER_MIN;
/// Nanoseconds in one day.
pub const NS_PER_DAY: i64 = 24 * NS_PER_HOUR;

/// Start of the bucket of width `granularity` containing `ts`.
///
/// `granularity` must be positive (archive policies guarantee it); a
/// non-positive granularity returns `ts` unchanged rather than panicking. At
/// the very bottom of the `i64` range the result saturates to `i64::MIN`.
#[inline]
pub fn floor(ts: Timestamp, granularity: i64) -> Timestamp {
    if granularity <= 0 {
        return ts;
    }
    let rem = ts.rem_euclid(granularity);
    ts.checked_sub(rem).unwrap_or(i64::MIN)
}

/// Like [`floor`] but computed in `i128`, for widths (such as a split's span,
/// `granularity * 3600`) that may not fit in an `i64`. Saturates to the `i64`
/// range.
#[inline]
pub(crate) fn floor_wide(ts: Timestamp, width: i128) -> Timestamp {
    if width <= 0 {
        return ts;
    }
    let ts = ts as i128;
    let floored = ts - ts.rem_euclid(width);
    floored.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_positive_and_negative() {
        assert_eq!(floor(0, 60), 0);
        assert_eq!(floor(59, 60), 0);
        assert_eq!(floor(60, 60), 60);
        assert_eq!(floor(-1, 60), -60);
        assert_eq!(floor(-60, 60), -60);
        assert_eq!(floor(-61, 60), -120);
        assert_eq!(floor(i64::MIN, 7), i64::MIN);
        assert_eq!(floor(123, 0), 123);
    }

    #[test]
    fn floor_wide_handles_huge_widths() {
        let width = 365 * NS_PER_DAY as i128 * 3600;
        assert_eq!(floor_wide(1_700_000_000 * NS_PER_SEC, width), 0);
        assert_eq!(floor_wide(-1, width), i64::MIN);
        assert_eq!(floor_wide(125, 60), 120);
    }
}
