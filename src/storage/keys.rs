//! Typed object paths: the one place that knows how storage objects are named.
//!
//! Per metric (by UUID), one flat directory-like prefix:
//!
//! ```text
//! <metric-uuid>/tail.v2                         unaggregated tail
//! <metric-uuid>/<granularity_ns>_<start>.v2     every method of one split
//! ```
//!
//! Flat because on a local file system every path segment is a directory
//! that a new metric must create, and creating inodes is what the embedded
//! write path spends most of its kernel time on; one directory per metric
//! keeps a metric's objects together without nesting.
//!
//! `<split_start>` is the split's aligned start in UTC nanoseconds, written so
//! that, within one granularity, the lexicographic order of keys is the
//! numeric order of starts (object stores list and page in byte order, and a
//! range read can start listing at the first split it needs): 19 zero-padded
//! digits for starts at or after the epoch (`1425650400000000000` for
//! 2015-03-06T14:00:00Z), and for earlier starts `-` followed by the 19 digits
//! of `start + 2^63` (`-` sorts before every digit, and the offset keeps
//! earlier starts first). `<granularity_ns>` is a plain decimal: a granularity
//! is always matched exactly, never ranged.
//!
//! The `.v2` suffix is the object layout version (version 1 nested splits
//! under `agg/<granularity_ns>/`); the bytes themselves carry the codec's own
//! version header. A key with another version parses to
//! [`KeyError::UnknownVersion`] so a reader refuses it cleanly instead of
//! misreading an object written by another gnocchid.

use object_store::path::Path;
use uuid::Uuid;

/// Object layout version this module writes and reads.
pub const LAYOUT_VERSION: u32 = 2;

/// Why an object name is not a split key this version understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not shaped like `<granularity>_<start>.v<N>` with valid numbers.
    #[error("not a split object name: {0:?}")]
    Malformed(String),
    /// Shaped like a split key, but of a layout version we do not know.
    #[error("split object {name:?} has unknown layout version {version}")]
    UnknownVersion {
        /// The object name (last path segment).
        name: String,
        /// The version found.
        version: u32,
    },
}

/// Prefix of every object of a metric: `<uuid>`.
pub fn metric_prefix(metric: Uuid) -> Path {
    Path::from(metric.hyphenated().to_string())
}

/// The metric's unaggregated tail object: `<uuid>/tail.v2`.
pub fn tail(metric: Uuid) -> Path {
    Path::from(format!("{}/tail.v{LAYOUT_VERSION}", metric.hyphenated()))
}

/// The object of one split: `<uuid>/<granularity_ns>_<start>.v2`.
pub fn split(metric: Uuid, granularity: i64, start: i64) -> Path {
    Path::from(format!(
        "{}/{granularity}_{}.v{LAYOUT_VERSION}",
        metric.hyphenated(),
        encode_start(start)
    ))
}

/// The listing offset just before the first split of `granularity` that
/// starts at or after `start`: `<uuid>/<granularity_ns>_<start>` sorts
/// right before `<uuid>/<granularity_ns>_<start>.v2`.
pub fn split_offset(metric: Uuid, granularity: i64, start: i64) -> Path {
    Path::from(format!(
        "{}/{granularity}_{}",
        metric.hyphenated(),
        encode_start(start)
    ))
}

/// Sortable text of a split start; see the module docs.
pub fn encode_start(start: i64) -> String {
    if start >= 0 {
        format!("{start:019}")
    } else {
        // start + 2^63 is in [0, 2^63): flip the sign bit.
        format!("-{:019}", (start as u64) ^ (1 << 63))
    }
}

/// Inverse of [`encode_start`]; `None` for anything it would not produce.
pub fn decode_start(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if digits.len() != 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    if negative {
        // Only offsets below 2^63 map to negative starts.
        (n < 1 << 63).then_some((n ^ (1 << 63)) as i64)
    } else {
        i64::try_from(n).ok()
    }
}

/// Parses the last segment of a split object's path
/// (`<granularity>_<start>.v<N>`) into its granularity and start.
pub fn parse_split_name(name: &str) -> Result<(i64, i64), KeyError> {
    let malformed = || KeyError::Malformed(name.chars().take(64).collect());
    let (stem, version) = name.rsplit_once(".v").ok_or_else(malformed)?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    let version: u32 = version.parse().map_err(|_| malformed())?;
    let (granularity, start) = stem.split_once('_').ok_or_else(malformed)?;
    let granularity: i64 = granularity
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| granularity.parse().ok())
        .flatten()
        .filter(|g| *g > 0)
        .ok_or_else(malformed)?;
    let start = decode_start(start).ok_or_else(malformed)?;
    if version != LAYOUT_VERSION {
        return Err(KeyError::UnknownVersion {
            name: name.to_owned(),
            version,
        });
    }
    Ok((granularity, start))
}

/// What a path under a metric's prefix names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// The unaggregated tail.
    Tail,
    /// A split of `granularity` starting at `start`.
    Split {
        /// Granularity, ns.
        granularity: i64,
        /// Aligned split start, ns.
        start: i64,
    },
}

/// Classifies a full path as one of a metric's objects, if it is one.
pub fn parse(path: &Path) -> Result<(Uuid, ObjectKind), KeyError> {
    let malformed = || KeyError::Malformed(path.as_ref().chars().take(128).collect());
    let parts: Vec<_> = path.parts().collect();
    let [metric, name] = parts.as_slice() else {
        return Err(malformed());
    };
    let metric: Uuid = metric.as_ref().parse().map_err(|_| malformed())?;
    if name.as_ref() == format!("tail.v{LAYOUT_VERSION}") {
        return Ok((metric, ObjectKind::Tail));
    }
    let (granularity, start) = parse_split_name(name.as_ref())?;
    Ok((metric, ObjectKind::Split { granularity, start }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Uuid = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);

    #[test]
    fn layout() {
        assert_eq!(
            tail(M).as_ref(),
            "01234567-89ab-cdef-0123-456789abcdef/tail.v2"
        );
        assert_eq!(
            split(M, 1_000_000_000, 1_425_650_400_000_000_000).as_ref(),
            "01234567-89ab-cdef-0123-456789abcdef/1000000000_1425650400000000000.v2"
        );
        assert_eq!(
            split(M, 60_000_000_000, 0).as_ref(),
            "01234567-89ab-cdef-0123-456789abcdef/60000000000_0000000000000000000.v2"
        );
    }

    #[test]
    fn starts_sort_like_numbers_and_round_trip() {
        let starts = [
            i64::MIN,
            i64::MIN + 1,
            -3_600_000_000_000,
            -1,
            0,
            1,
            3_600_000_000_000,
            1_425_650_400_000_000_000,
            i64::MAX,
        ];
        let texts: Vec<String> = starts.iter().map(|&s| encode_start(s)).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted);
        for (&s, t) in starts.iter().zip(&texts) {
            assert_eq!(decode_start(t), Some(s), "{t}");
            assert_eq!(parse_split_name(&format!("60_{t}.v2")), Ok((60, s)));
        }
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "tail.v2",
            "1_123.v2",
            "1_1425650400000000000",
            "1_1425650400000000000.v",
            "1_1425650400000000000.vx",
            "1_9999999999999999999.v2",
            "1_-9999999999999999999.v2",
            "1_+425650400000000000.v2",
            "1_1425650400000000000.v2#12",
            "1425650400000000000.v2",
            "0_1425650400000000000.v2",
            "+1_1425650400000000000.v2",
            "x_1425650400000000000.v2",
        ] {
            assert!(
                matches!(parse_split_name(bad), Err(KeyError::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(
            parse_split_name("1_1425650400000000000.v3"),
            Err(KeyError::UnknownVersion {
                name: "1_1425650400000000000.v3".into(),
                version: 3
            })
        );
    }

    #[test]
    fn parses_full_paths() {
        assert_eq!(parse(&tail(M)), Ok((M, ObjectKind::Tail)));
        assert_eq!(
            parse(&split(M, 5, -18_000)),
            Ok((
                M,
                ObjectKind::Split {
                    granularity: 5,
                    start: -18_000
                }
            ))
        );
        assert!(parse(&Path::from("x/tail.v2")).is_err());
        assert!(parse(&Path::from(format!("{M}/0_0000000000000000000.v2"))).is_err());
        assert!(parse(&Path::from(format!("{M}/agg/1/0000000000000000000.v2"))).is_err());
        assert!(parse(&Path::from(format!("{M}/other"))).is_err());
    }

    #[test]
    fn offsets_sort_just_before_their_split() {
        let offset = split_offset(M, 60, 120);
        let key = split(M, 60, 120);
        assert!(offset.as_ref() < key.as_ref());
        assert!(split(M, 60, 60).as_ref() < offset.as_ref());
    }
}
