//! Typed object paths: the one place that knows how storage objects are named.
//!
//! Per metric (by UUID):
//!
//! ```text
//! <metric-uuid>/tail.v1                                   unaggregated tail
//! <metric-uuid>/agg/<granularity_ns>/<split_start>.v1     every method of one split
//! ```
//!
//! `<split_start>` is the split's aligned start in UTC nanoseconds, written so
//! that the lexicographic order of keys is the numeric order of starts (object
//! stores list and page in byte order, and a range read can start listing at
//! the first split it needs): 19 zero-padded digits for starts at or after the
//! epoch (`1425650400000000000` for 2015-03-06T14:00:00Z), and for earlier
//! starts `-` followed by the 19 digits of `start + 2^63` (`-` sorts before
//! every digit, and the offset keeps earlier starts first). `<granularity_ns>`
//! is a plain decimal: a granularity is always matched exactly, never ranged.
//!
//! The `.v1` suffix is the object layout version; the bytes themselves carry
//! the codec's own version header. A key with another version parses to
//! [`KeyError::UnknownVersion`] so a reader refuses it cleanly instead of
//! misreading an object written by a newer gnocchid.

use object_store::path::Path;
use uuid::Uuid;

/// Object layout version this module writes and reads.
pub const LAYOUT_VERSION: u32 = 1;

/// Why an object name is not a split key this version understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not shaped like `<start>.v<N>` with a valid start.
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

/// The metric's unaggregated tail object: `<uuid>/tail.v1`.
pub fn tail(metric: Uuid) -> Path {
    Path::from(format!("{}/tail.v{LAYOUT_VERSION}", metric.hyphenated()))
}

/// Prefix under which every split of one granularity lives:
/// `<uuid>/agg/<granularity_ns>`.
pub fn granularity_prefix(metric: Uuid, granularity: i64) -> Path {
    Path::from(format!("{}/agg/{granularity}", metric.hyphenated()))
}

/// The object of one split: `<uuid>/agg/<granularity_ns>/<start>.v1`.
pub fn split(metric: Uuid, granularity: i64, start: i64) -> Path {
    Path::from(format!(
        "{}/agg/{granularity}/{}.v{LAYOUT_VERSION}",
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

/// Parses the last segment of a split object's path (`<start>.v<N>`) into
/// its start.
pub fn parse_split_name(name: &str) -> Result<i64, KeyError> {
    let malformed = || KeyError::Malformed(name.chars().take(64).collect());
    let (stem, version) = name.rsplit_once(".v").ok_or_else(malformed)?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    let version: u32 = version.parse().map_err(|_| malformed())?;
    let start = decode_start(stem).ok_or_else(malformed)?;
    if version != LAYOUT_VERSION {
        return Err(KeyError::UnknownVersion {
            name: name.to_owned(),
            version,
        });
    }
    Ok(start)
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
    let metric: Uuid = parts
        .first()
        .and_then(|p| p.as_ref().parse().ok())
        .ok_or_else(malformed)?;
    match parts.as_slice() {
        [_, name] if name.as_ref() == format!("tail.v{LAYOUT_VERSION}") => {
            Ok((metric, ObjectKind::Tail))
        }
        [_, agg, granularity, name] if agg.as_ref() == "agg" => {
            let granularity: i64 = granularity
                .as_ref()
                .parse()
                .ok()
                .filter(|g| *g > 0)
                .ok_or_else(malformed)?;
            let start = parse_split_name(name.as_ref())?;
            Ok((metric, ObjectKind::Split { granularity, start }))
        }
        _ => Err(malformed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Uuid = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);

    #[test]
    fn layout() {
        assert_eq!(
            tail(M).as_ref(),
            "01234567-89ab-cdef-0123-456789abcdef/tail.v1"
        );
        assert_eq!(
            split(M, 1_000_000_000, 1_425_650_400_000_000_000).as_ref(),
            "01234567-89ab-cdef-0123-456789abcdef/agg/1000000000/1425650400000000000.v1"
        );
        assert_eq!(
            split(M, 60_000_000_000, 0).as_ref(),
            "01234567-89ab-cdef-0123-456789abcdef/agg/60000000000/0000000000000000000.v1"
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
            assert_eq!(parse_split_name(&format!("{t}.v1")), Ok(s));
        }
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "tail.v1",
            "123.v1",
            "1425650400000000000",
            "1425650400000000000.v",
            "1425650400000000000.vx",
            "9999999999999999999.v1",
            "-9999999999999999999.v1",
            "+425650400000000000.v1",
            "1425650400000000000.v1#12",
        ] {
            assert!(
                matches!(parse_split_name(bad), Err(KeyError::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(
            parse_split_name("1425650400000000000.v2"),
            Err(KeyError::UnknownVersion {
                name: "1425650400000000000.v2".into(),
                version: 2
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
        assert!(parse(&Path::from("x/tail.v1")).is_err());
        assert!(parse(&Path::from(format!("{M}/agg/0/0000000000000000000.v1"))).is_err());
        assert!(parse(&Path::from(format!("{M}/other"))).is_err());
    }
}
