//! Reading measures from a request body straight into columns.
//!
//! This is the hot path of every write: bodies of 10,000 measures arrive many
//! times a second. serde visits the JSON once, timestamps are parsed in place
//! (borrowed, no `String` per measure) and values land in a `Vec<f64>`; no
//! `serde_json::Value` tree is ever built.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::validate::Invalid;
use super::ApiError;
use crate::time::{RawTimestamp, TimestampError, TimestampForm};

/// Measures of one metric, in the order they were sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Measures {
    pub(crate) timestamps: Vec<i64>,
    pub(crate) values: Vec<f64>,
}

/// Why a list of measures is refused, in Gnocchi's words. Its
/// `MeasuresListSchema` reads every item's timestamp, then converts all the
/// timestamps, then all the values, so a bad shape anywhere outranks a bad
/// timestamp anywhere, which outranks a bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MeasuresInvalid {
    #[error("unexpected measures format")]
    Format,
    #[error("unexpected timestamp '{0}'")]
    Timestamp(TimestampError),
    #[error("unexpected measures value")]
    Value,
}

impl MeasuresInvalid {
    /// Gnocchi's order of checks: the higher is found first. A timestamp
    /// that cannot be read stops the conversion; one before the epoch is
    /// found only once all are converted.
    fn rank(&self) -> u8 {
        match self {
            Self::Value => 0,
            Self::Timestamp(TimestampError::BeforeEpoch) => 1,
            Self::Timestamp(TimestampError::Unparsable) => 2,
            Self::Format => 3,
        }
    }

    /// Whether timestamps after this failure still need reading.
    fn converting(worst: Option<&Self>) -> bool {
        worst.is_none_or(|worst| worst.rank() < 2)
    }

    fn worse(worst: Option<Self>, found: Self) -> Option<Self> {
        match worst {
            Some(worst) if worst.rank() >= found.rank() => Some(worst),
            _ => Some(found),
        }
    }
}

/// Parses `[{"timestamp": …, "value": …}, …]`; `now` anchors relative
/// timestamps.
pub(crate) fn parse_measures(body: &[u8], now: i64) -> Result<Measures, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    MeasureList { now }
        .deserialize(&mut deserializer)
        .and_then(|measures| deserializer.end().map(|()| measures))
        .map_err(undecodable)?
        .map_err(|invalid| Invalid::value(&[], invalid.to_string()).into())
}

/// A body that is not JSON at all.
pub(crate) fn undecodable(error: serde_json::Error) -> ApiError {
    ApiError::bad_request(format!("Unable to decode body: {error}"))
}

/// Seed for a list of measures. Its value is the verdict rather than a
/// serde error, so that the rest of the body is still read (a syntax error
/// later on outranks it, as Gnocchi decodes the whole body first).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MeasureList {
    pub(crate) now: i64,
}

impl<'de> DeserializeSeed<'de> for MeasureList {
    type Value = Result<Measures, MeasuresInvalid>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MeasureList {
    type Value = Result<Measures, MeasuresInvalid>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of measures")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let capacity = seq.size_hint().unwrap_or(0).min(1 << 20);
        let mut measures = Measures {
            timestamps: Vec::with_capacity(capacity),
            values: Vec::with_capacity(capacity),
        };
        let mut worst: Option<MeasuresInvalid> = None;
        let mut form = None;
        while let Some(item) = seq.next_element::<Item<'de>>()? {
            let Item::Measure { timestamp, value } = item else {
                worst = Some(MeasuresInvalid::Format);
                continue;
            };
            if MeasuresInvalid::converting(worst.as_ref()) {
                let timestamp = timestamp.as_raw();
                let form = *form.get_or_insert_with(|| TimestampForm::of(timestamp));
                match form.parse(timestamp, self.now) {
                    Ok(nanos) => measures.timestamps.push(nanos),
                    Err(error) => {
                        worst = MeasuresInvalid::worse(worst, MeasuresInvalid::Timestamp(error));
                    }
                }
            }
            match value {
                Some(value) => measures.values.push(value),
                None => worst = MeasuresInvalid::worse(worst, MeasuresInvalid::Value),
            }
        }
        Ok(worst.map_or(Ok(measures), Err))
    }

    /// Gnocchi iterates an object's keys as if they were measures: an
    /// empty one is an empty list, any key a bad item.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut empty = true;
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
            empty = false;
        }
        Ok(if empty {
            Ok(Measures::default())
        } else {
            Err(MeasuresInvalid::Format)
        })
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err(MeasuresInvalid::Format))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err(MeasuresInvalid::Format))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err(MeasuresInvalid::Format))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err(MeasuresInvalid::Format))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err(MeasuresInvalid::Format))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Err(MeasuresInvalid::Format))
    }
}

/// A timestamp as sent: a number, or text borrowed from the body when it has
/// no escapes.
enum RawTime<'de> {
    Number(f64),
    Text(Cow<'de, str>),
}

impl RawTime<'_> {
    fn as_raw(&self) -> RawTimestamp<'_> {
        match self {
            RawTime::Number(n) => RawTimestamp::Number(*n),
            RawTime::Text(text) => RawTimestamp::Text(text),
        }
    }
}

/// One item of a list of measures. Keys other than `timestamp` and
/// `value` are ignored, as Gnocchi ignores them.
enum Item<'de> {
    /// A missing or unreadable `value` is `None`.
    Measure {
        timestamp: RawTime<'de>,
        value: Option<f64>,
    },
    /// Not an object, or one without a usable timestamp.
    Malformed,
}

impl<'de> de::Deserialize<'de> for Item<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ItemVisitor)
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Item<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a measure")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item<'de>, A::Error> {
        let mut timestamp = None;
        let mut value = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "timestamp" => timestamp = map.next_value::<TimeField<'de>>()?.0,
                "value" => value = map.next_value::<ValueField>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(match timestamp {
            Some(timestamp) => Item::Measure { timestamp, value },
            None => Item::Malformed,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Item::Malformed)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Item<'de>, E> {
        Ok(Item::Malformed)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Item<'de>, E> {
        Ok(Item::Malformed)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Item<'de>, E> {
        Ok(Item::Malformed)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Item<'de>, E> {
        Ok(Item::Malformed)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Item<'de>, E> {
        Ok(Item::Malformed)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Item<'de>, E> {
        Ok(Item::Malformed)
    }
}

/// A measure's timestamp; `None` for what Python's `float()` cannot even
/// be asked about (null, lists, objects). Booleans are numbers to Python.
struct TimeField<'de>(Option<RawTime<'de>>);

impl<'de> de::Deserialize<'de> for TimeField<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TimeField<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a timestamp")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(TimeField(Some(RawTime::Text(Cow::Borrowed(v)))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(TimeField(Some(RawTime::Text(Cow::Owned(v.to_owned())))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(TimeField(Some(RawTime::Number(v))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(TimeField(Some(RawTime::Number(v as f64))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(TimeField(Some(RawTime::Number(v as f64))))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(TimeField(Some(RawTime::Number(f64::from(u8::from(v))))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(TimeField(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(TimeField(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(TimeField(None))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A measure's value as Python's `float()` reads it: a number, a boolean,
/// or a string holding a number; `None` for anything else.
struct ValueField(Option<f64>);

impl<'de> de::Deserialize<'de> for ValueField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ValueField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ValueField, E> {
                Ok(ValueField(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ValueField, E> {
                Ok(ValueField(Some(v as f64)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ValueField, E> {
                Ok(ValueField(Some(v as f64)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ValueField, E> {
                Ok(ValueField(Some(f64::from(u8::from(v)))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ValueField, E> {
                Ok(ValueField(v.trim().parse::<f64>().ok()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<ValueField, E> {
                Ok(ValueField(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ValueField, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ValueField(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ValueField, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(ValueField(None))
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_500_000_000_000_000_000;

    #[test]
    fn iso_and_epoch_bodies_parse_to_columns() {
        let measures = parse_measures(
            br#"[{"timestamp": "2015-03-06T14:33:57", "value": 43.1},
                 {"timestamp": "2015-03-06T14:34:12", "value": 12}]"#,
            NOW,
        )
        .unwrap();
        assert_eq!(
            measures.timestamps,
            [1_425_652_437_000_000_000, 1_425_652_452_000_000_000]
        );
        assert_eq!(measures.values, [43.1, 12.0]);
        let epoch =
            parse_measures(br#"[{"timestamp": 1425652437.0, "value": "4.5"}]"#, NOW).unwrap();
        assert_eq!(epoch.timestamps, [1_425_652_437_000_000_000]);
        assert_eq!(epoch.values, [4.5]);
    }

    #[test]
    fn relative_timestamps_count_from_now() {
        let measures =
            parse_measures(br#"[{"timestamp": "-5 minutes", "value": 1}]"#, NOW).unwrap();
        assert_eq!(measures.timestamps, [NOW - 300_000_000_000]);
    }

    fn refusal(body: &[u8]) -> String {
        let err = parse_measures(body, NOW).unwrap_err();
        assert_eq!(
            err.status().as_u16(),
            400,
            "{}",
            String::from_utf8_lossy(body)
        );
        format!("{err:?}")
    }

    #[test]
    fn bad_bodies_are_refused_in_gnocchis_words() {
        // Each as Gnocchi 4.7.1 answers it, seen side by side.
        for (body, words) in [
            (&br#"[["2015-03-06T14:33:57", 43.1]]"#[..], "unexpected measures format"),
            (br#"1"#, "unexpected measures format"),
            (br#""x""#, "unexpected measures format"),
            (br#"{"measures": []}"#, "unexpected measures format"),
            (br#"[{"timestamp": null, "value": 1}]"#, "unexpected measures format"),
            (br#"[{"timestamp": "1915-03-06T14:33:57", "value": 1}]"#, "unexpected timestamp 'Timestamp must be after Epoch'"),
            (br#"[{"timestamp": "1915-100-06T14:33:57", "value": 1}]"#, "unexpected timestamp 'Unable to convert timestamps'"),
            (br#"[{"timestamp": 1478012832, "value": 1}, {"timestamp": "-5 minutes", "value": 1}]"#, "unexpected timestamp 'Unable to convert timestamps'"),
            (br#"[{"timestamp": "2015-03-06T14:33:57", "value": "foobar"}]"#, "unexpected measures value"),
            (br#"[{"timestamp": "2015-03-06T14:33:57", "value": null}]"#, "unexpected measures value"),
            (br#"[{"timestamp": "2015-03-06T14:33:57"}]"#, "unexpected measures value"),
            (br#"[{"timestamp": "2015-03-06"#, "Unable to decode body"),
        ] {
            let text = refusal(body);
            assert!(text.contains(words), "{words:?} not in {text}");
        }
    }

    #[test]
    fn the_first_kind_of_check_to_fail_is_the_one_reported() {
        // A bad shape anywhere before a bad timestamp, before a bad value;
        // a timestamp that cannot be read before one before the epoch.
        let text = refusal(br#"[{"timestamp": "x", "value": "y"}, 5]"#);
        assert!(text.contains("unexpected measures format"), "{text}");
        let text = refusal(
            br#"[{"timestamp": "2015-03-06", "value": "y"}, {"timestamp": "x", "value": 1}]"#,
        );
        assert!(text.contains("Unable to convert timestamps"), "{text}");
        let text = refusal(
            br#"[{"timestamp": "1915-03-06", "value": 1}, {"timestamp": "x", "value": 1}]"#,
        );
        assert!(text.contains("Unable to convert timestamps"), "{text}");
        // A syntax error later on outranks them all.
        let text = refusal(br#"[5, {"timestamp": "#);
        assert!(text.contains("Unable to decode body"), "{text}");
    }

    #[test]
    fn what_python_accepts_is_accepted() {
        // Extra keys are ignored, booleans are numbers, an empty object is
        // an empty list.
        let measures = parse_measures(
            br#"[{"timestamp": "2015-03-06T14:33:57", "value": true, "unit": "%"}]"#,
            NOW,
        )
        .unwrap();
        assert_eq!(measures.values, [1.0]);
        let measures = parse_measures(br#"[{"timestamp": true, "value": 2}]"#, NOW).unwrap();
        assert_eq!(measures.timestamps, [1_000_000_000]);
        assert_eq!(parse_measures(b"{}", NOW).unwrap(), Measures::default());
    }
}
