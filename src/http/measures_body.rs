//! Reading measures from a request body straight into columns.
//!
//! This is the hot path of every write: bodies of 10,000 measures arrive many
//! times a second. serde visits the JSON once, timestamps are parsed in place
//! (borrowed, no `String` per measure) and values land in a `Vec<f64>`; no
//! `serde_json::Value` tree is ever built.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::json;

use super::ApiError;
use crate::time::{RawTimestamp, TimestampError, TimestampForm};

/// Measures of one metric, in the order they were sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Measures {
    pub(crate) timestamps: Vec<i64>,
    pub(crate) values: Vec<f64>,
}

/// What went wrong, carried through serde's error type as text.
const UNEXPECTED_FORMAT: &str = "unexpected measures format";

/// Parses `[{"timestamp": …, "value": …}, …]`; `now` anchors relative
/// timestamps.
pub(crate) fn parse_measures(body: &[u8], now: i64) -> Result<Measures, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let measures = MeasureList { now }
        .deserialize(&mut deserializer)
        .and_then(|measures| deserializer.end().map(|()| measures))
        .map_err(measures_error)?;
    Ok(measures)
}

/// Turns a parse failure into Gnocchi's 400.
pub(crate) fn measures_error(error: serde_json::Error) -> ApiError {
    let text = error.to_string();
    let reason = text.split(" at line ").next().unwrap_or(&text).to_owned();
    if reason.starts_with(UNEXPECTED_FORMAT) {
        return ApiError::bad_request(json!({
            "cause": "Invalid input",
            "reason": UNEXPECTED_FORMAT,
            "detail": [],
        }));
    }
    if error.is_syntax() || error.is_eof() {
        return ApiError::bad_request(format!("Unable to decode body: {text}"));
    }
    for known in [TimestampError::BeforeEpoch, TimestampError::Unparsable] {
        if reason == known.to_string() {
            return ApiError::bad_request(json!({
                "cause": "Invalid input",
                "reason": reason,
                "detail": ["timestamp"],
            }));
        }
    }
    ApiError::bad_request(json!({
        "cause": "Invalid input",
        "reason": reason,
        "detail": [],
    }))
}

/// Seed for a list of measures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MeasureList {
    pub(crate) now: i64,
}

impl<'de> DeserializeSeed<'de> for MeasureList {
    type Value = Measures;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Measures, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MeasureList {
    type Value = Measures;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of measures")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Measures, A::Error> {
        let capacity = seq.size_hint().unwrap_or(0).min(1 << 20);
        let mut measures = Measures {
            timestamps: Vec::with_capacity(capacity),
            values: Vec::with_capacity(capacity),
        };
        let mut form = None;
        while let Some(raw) = seq.next_element::<RawMeasure<'de>>()? {
            let timestamp = raw.timestamp.as_raw();
            let form = *form.get_or_insert_with(|| TimestampForm::of(timestamp));
            let nanos = form
                .parse(timestamp, self.now)
                .map_err(|err| de::Error::custom(err.to_string()))?;
            measures.timestamps.push(nanos);
            measures.values.push(raw.value);
        }
        Ok(measures)
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

struct RawMeasure<'de> {
    timestamp: RawTime<'de>,
    value: f64,
}

impl<'de> de::Deserialize<'de> for RawMeasure<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MeasureVisitor)
    }
}

struct MeasureVisitor;

impl<'de> Visitor<'de> for MeasureVisitor {
    type Value = RawMeasure<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(UNEXPECTED_FORMAT)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawMeasure<'de>, A::Error> {
        let mut timestamp = None;
        let mut value = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "timestamp" => timestamp = Some(map.next_value::<TimeField<'de>>()?.0),
                "value" => value = Some(map.next_value::<ValueField>()?.0),
                other => {
                    return Err(de::Error::custom(format!(
                        "extra keys not allowed @ data['{other}']"
                    )))
                }
            }
        }
        let timestamp = timestamp
            .ok_or_else(|| de::Error::custom("required key not provided @ data['timestamp']"))?;
        let value =
            value.ok_or_else(|| de::Error::custom("required key not provided @ data['value']"))?;
        Ok(RawMeasure { timestamp, value })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<RawMeasure<'de>, A::Error> {
        Err(de::Error::custom(UNEXPECTED_FORMAT))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<RawMeasure<'de>, E> {
        Err(E::custom(UNEXPECTED_FORMAT))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawMeasure<'de>, E> {
        Err(E::custom(UNEXPECTED_FORMAT))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawMeasure<'de>, E> {
        Err(E::custom(UNEXPECTED_FORMAT))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawMeasure<'de>, E> {
        Err(E::custom(UNEXPECTED_FORMAT))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawMeasure<'de>, E> {
        Err(E::custom(UNEXPECTED_FORMAT))
    }

    fn visit_unit<E: de::Error>(self) -> Result<RawMeasure<'de>, E> {
        Err(E::custom(UNEXPECTED_FORMAT))
    }
}

struct TimeField<'de>(RawTime<'de>);

impl<'de> de::Deserialize<'de> for TimeField<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TimeField<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a timestamp")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(TimeField(RawTime::Text(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(TimeField(RawTime::Text(Cow::Owned(v.to_owned()))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(TimeField(RawTime::Number(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(TimeField(RawTime::Number(v as f64)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(TimeField(RawTime::Number(v as f64)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Err(E::custom(TimestampError::Unparsable))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Err(E::custom(TimestampError::Unparsable))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
                Err(de::Error::custom(TimestampError::Unparsable))
            }
            fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
                Err(de::Error::custom(TimestampError::Unparsable))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A measure's value: a number, or a string holding one (as Gnocchi's
/// float coercion allows).
struct ValueField(f64);

impl<'de> de::Deserialize<'de> for ValueField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ValueField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ValueField, E> {
                Ok(ValueField(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ValueField, E> {
                Ok(ValueField(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ValueField, E> {
                Ok(ValueField(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ValueField, E> {
                v.trim().parse::<f64>().map(ValueField).map_err(|_| {
                    E::custom(format!(
                        "expected float for dictionary value @ data['value'], got {v:?}"
                    ))
                })
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

    fn status_and_body(result: Result<Measures, ApiError>) -> (u16, String) {
        let err = result.unwrap_err();
        (err.status().as_u16(), format!("{err:?}"))
    }

    #[test]
    fn bad_bodies_are_400_with_gnocchis_words() {
        for (body, words) in [
            (&br#"[["2015-03-06T14:33:57", 43.1]]"#[..], "unexpected measures format"),
            (br#"1"#, "a list of measures"),
            (br#"[{"timestamp": "1915-03-06T14:33:57", "value": 1}]"#, "Timestamp must be after Epoch"),
            (br#"[{"timestamp": "1915-100-06T14:33:57", "value": 1}]"#, "Unable to convert timestamps"),
            (br#"[{"timestamp": 1478012832, "value": 1}, {"timestamp": "-5 minutes", "value": 1}]"#, "Unable to convert timestamps"),
            (br#"[{"timestamp": "2015-03-06T14:33:57", "value": "foobar"}]"#, "expected float"),
            (br#"[{"timestamp": "2015-03-06T14:33:57"}]"#, "required key not provided"),
            (br#"[{"timestamp": "2015-03-06T14:33:57", "value": 1, "x": 2}]"#, "extra keys not allowed"),
            (br#"[{"timestamp": "2015-03-06"#, "Unable to decode body"),
        ] {
            let (status, text) = status_and_body(parse_measures(body, NOW));
            assert_eq!(status, 400, "{}", String::from_utf8_lossy(body));
            assert!(text.contains(words), "{words:?} not in {text}");
        }
    }
}
