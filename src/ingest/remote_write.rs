//! Prometheus remote write 1.0, as Gnocchi's `/v1/prometheus/write` reads it.
//!
//! The body is a snappy block (not framed) holding a protobuf `WriteRequest`:
//!
//! ```text
//! message WriteRequest { repeated TimeSeries timeseries = 1; … }
//! message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; … }
//! message Label        { string name = 1; string value = 2; }
//! message Sample       { double value = 1; int64 timestamp = 2; }   // milliseconds
//! ```
//!
//! A small hand-written decoder reads just these messages, skipping unknown
//! fields (metadata, exemplars, histograms). [`group`] maps series to Gnocchi's
//! model: the resource is `(job, instance)` (`"none"` when absent), the metric
//! is the `__name__` label alone, so series differing in other labels collide
//! and the last one wins, exactly as in Gnocchi.

use std::collections::HashMap;

use super::{MetricSeries, Series};

/// The largest decompressed body accepted: a bound on what a small, hostile
/// body can make us allocate.
pub const MAX_DECOMPRESSED: usize = 64 << 20;

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteWriteError {
    #[error("Unable to decompress snappy body: {0}")]
    Snappy(String),
    #[error("Decompressed body is larger than {MAX_DECOMPRESSED} bytes")]
    TooLarge,
    #[error("Unable to decode protobuf WriteRequest: {0}")]
    Protobuf(&'static str),
    #[error("Time series without a __name__ label")]
    MissingName,
    #[error("Sample timestamp {0} is out of range")]
    Timestamp(i64),
}

/// A decoded `WriteRequest`, borrowing label text from the decompressed body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteRequest<'a> {
    pub timeseries: Vec<TimeSeries<'a>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimeSeries<'a> {
    pub labels: Vec<Label<'a>>,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Label<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    pub value: f64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
}

impl TimeSeries<'_> {
    /// The value of label `name` (the last one, if repeated).
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .rev()
            .find(|label| label.name == name)
            .map(|label| label.value)
    }
}

/// Undoes the snappy block compression, refusing bodies that would
/// decompress to more than [`MAX_DECOMPRESSED`] bytes.
pub fn decompress(body: &[u8]) -> Result<Vec<u8>, RemoteWriteError> {
    let len =
        snap::raw::decompress_len(body).map_err(|e| RemoteWriteError::Snappy(e.to_string()))?;
    if len > MAX_DECOMPRESSED {
        return Err(RemoteWriteError::TooLarge);
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| RemoteWriteError::Snappy(e.to_string()))
}

/// Decodes a `WriteRequest` message.
pub fn decode(buf: &[u8]) -> Result<WriteRequest<'_>, RemoteWriteError> {
    let mut reader = Reader { buf, pos: 0 };
    let mut request = WriteRequest::default();
    while let Some((field, wire)) = reader.key()? {
        match (field, wire) {
            (1, LEN) => request.timeseries.push(decode_series(reader.bytes()?)?),
            (1, _) => return Err(wrong_type()),
            _ => reader.skip(wire)?,
        }
    }
    Ok(request)
}

fn decode_series(buf: &[u8]) -> Result<TimeSeries<'_>, RemoteWriteError> {
    let mut reader = Reader { buf, pos: 0 };
    let mut series = TimeSeries::default();
    while let Some((field, wire)) = reader.key()? {
        match (field, wire) {
            (1, LEN) => series.labels.push(decode_label(reader.bytes()?)?),
            (2, LEN) => series.samples.push(decode_sample(reader.bytes()?)?),
            (1 | 2, _) => return Err(wrong_type()),
            _ => reader.skip(wire)?,
        }
    }
    Ok(series)
}

fn decode_label(buf: &[u8]) -> Result<Label<'_>, RemoteWriteError> {
    let mut reader = Reader { buf, pos: 0 };
    let mut label = Label::default();
    while let Some((field, wire)) = reader.key()? {
        match (field, wire) {
            (1, LEN) => label.name = utf8(reader.bytes()?)?,
            (2, LEN) => label.value = utf8(reader.bytes()?)?,
            (1 | 2, _) => return Err(wrong_type()),
            _ => reader.skip(wire)?,
        }
    }
    Ok(label)
}

fn decode_sample(buf: &[u8]) -> Result<Sample, RemoteWriteError> {
    let mut reader = Reader { buf, pos: 0 };
    let mut sample = Sample::default();
    while let Some((field, wire)) = reader.key()? {
        match (field, wire) {
            (1, I64) => sample.value = f64::from_bits(reader.fixed64()?),
            // int64 is two's complement in a varint: the cast is the decoding.
            (2, VARINT) => sample.timestamp = reader.varint()? as i64,
            (1 | 2, _) => return Err(wrong_type()),
            _ => reader.skip(wire)?,
        }
    }
    Ok(sample)
}

fn utf8(bytes: &[u8]) -> Result<&str, RemoteWriteError> {
    std::str::from_utf8(bytes).map_err(|_| RemoteWriteError::Protobuf("string is not UTF-8"))
}

fn wrong_type() -> RemoteWriteError {
    RemoteWriteError::Protobuf("unexpected wire type")
}

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

/// A cursor over one message's bytes.
#[derive(Debug)]
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, RemoteWriteError> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let &byte = self
                .buf
                .get(self.pos)
                .ok_or(RemoteWriteError::Protobuf("truncated varint"))?;
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(RemoteWriteError::Protobuf("varint overflows 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RemoteWriteError::Protobuf("varint overflows 64 bits"))
    }

    /// The next field's number and wire type, or `None` at the end.
    fn key(&mut self) -> Result<Option<(u64, u8)>, RemoteWriteError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 {
            return Err(RemoteWriteError::Protobuf("field number 0"));
        }
        Ok(Some((field, (key & 7) as u8)))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], RemoteWriteError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.buf.len())
            .ok_or(RemoteWriteError::Protobuf("truncated message"))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn bytes(&mut self) -> Result<&'a [u8], RemoteWriteError> {
        let len = self.varint()?;
        let len =
            usize::try_from(len).map_err(|_| RemoteWriteError::Protobuf("truncated message"))?;
        self.take(len)
    }

    fn fixed64(&mut self) -> Result<u64, RemoteWriteError> {
        let bytes = self.take(8)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(array))
    }

    fn skip(&mut self, wire: u8) -> Result<(), RemoteWriteError> {
        match wire {
            VARINT => self.varint().map(drop),
            I64 => self.take(8).map(drop),
            LEN => self.bytes().map(drop),
            I32 => self.take(4).map(drop),
            _ => Err(RemoteWriteError::Protobuf("unsupported wire type")),
        }
    }
}

/// Measures of a request by resource `(job, instance)` and metric name.
pub type Grouped = HashMap<(String, String), MetricSeries>;

/// Groups samples as Gnocchi does: by `(job, instance)` and `__name__`; a
/// later series with the same name replaces an earlier one, and series
/// without samples are ignored. Non-finite values (Prometheus' staleness
/// markers among them) are dropped, since JSON cannot represent them, but
/// their metric is still created, as in Gnocchi.
pub fn group(request: &WriteRequest<'_>) -> Result<Grouped, RemoteWriteError> {
    let mut grouped = Grouped::new();
    for series in &request.timeseries {
        let name = series
            .label("__name__")
            .ok_or(RemoteWriteError::MissingName)?;
        if series.samples.is_empty() {
            continue;
        }
        let job = series.label("job").unwrap_or("none");
        let instance = series.label("instance").unwrap_or("none");
        let mut out = Series::default();
        for sample in &series.samples {
            let nanos = sample
                .timestamp
                .checked_mul(1_000_000)
                .ok_or(RemoteWriteError::Timestamp(sample.timestamp))?;
            if sample.value.is_finite() {
                out.push(nanos, sample.value);
            }
        }
        grouped
            .entry((job.to_owned(), instance.to_owned()))
            .or_default()
            .insert(name.to_owned(), out);
    }
    Ok(grouped)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/conformance/gabbits/prometheus_fixtures"
    );

    fn fixture(name: &str) -> Option<Vec<u8>> {
        std::fs::read(format!("{FIXTURES}/{name}.dump")).ok()
    }

    /// Encodes a request the way Prometheus does, for round trips.
    /// Labels and `(value, timestamp)` samples of one series.
    type TestSeries<'a> = (&'a [(&'a str, &'a str)], &'a [(f64, i64)]);

    fn encode(series: &[TestSeries<'_>]) -> Vec<u8> {
        fn varint(out: &mut Vec<u8>, mut v: u64) {
            while v >= 0x80 {
                out.push((v as u8) | 0x80);
                v >>= 7;
            }
            out.push(v as u8);
        }
        fn field(out: &mut Vec<u8>, number: u64, body: &[u8]) {
            varint(out, number << 3 | 2);
            varint(out, body.len() as u64);
            out.extend_from_slice(body);
        }
        let mut request = Vec::new();
        for (labels, samples) in series {
            let mut ts = Vec::new();
            for (name, value) in *labels {
                let mut label = Vec::new();
                field(&mut label, 1, name.as_bytes());
                field(&mut label, 2, value.as_bytes());
                field(&mut ts, 1, &label);
            }
            for (value, timestamp) in *samples {
                let mut sample = vec![1 << 3 | 1];
                sample.extend_from_slice(&value.to_bits().to_le_bytes());
                sample.push(2 << 3);
                varint(&mut sample, *timestamp as u64);
                field(&mut ts, 2, &sample);
            }
            field(&mut request, 1, &ts);
        }
        snap::raw::Encoder::new().compress_vec(&request).unwrap()
    }

    #[test]
    fn decodes_the_gnocchi_fixtures() {
        let Some(body) = fixture("031b586e-ebe1-4737-812e-cf0ddf26f5ad") else {
            eprintln!("fixtures not found under {FIXTURES}; skipped");
            return;
        };
        let raw = decompress(&body).unwrap();
        let request = decode(&raw).unwrap();
        assert!(!request.timeseries.is_empty());
        let grouped = group(&request).unwrap();
        assert_eq!(grouped.len(), 1);
        let metrics = &grouped[&("prometheus".to_owned(), "localhost:9090".to_owned())];
        assert_eq!(metrics.len(), 56);
        let scraped = &metrics["scrape_samples_scraped"];
        assert_eq!(scraped.values, vec![558.0]);
        for other in [
            "a0c06674-a5ef-4621-883c-e94880a2de02",
            "1ea8f6f7-eebe-49d5-8276-ceb2d56c5ba4",
        ] {
            let body = fixture(other).unwrap();
            group(&decode(&decompress(&body).unwrap()).unwrap()).unwrap();
        }
    }

    #[test]
    fn round_trips_and_collides_like_gnocchi() {
        let body = encode(&[
            (
                &[
                    ("__name__", "up"),
                    ("job", "node"),
                    ("instance", "a:1"),
                    ("x", "1"),
                ],
                &[(1.0, 1_500_000_000_000), (f64::NAN, 1_500_000_001_000)],
            ),
            (
                &[
                    ("__name__", "up"),
                    ("job", "node"),
                    ("instance", "a:1"),
                    ("x", "2"),
                ],
                &[(0.0, 1_500_000_002_000)],
            ),
            (&[("__name__", "empty")], &[]),
            (&[("__name__", "lonely")], &[(-2.5, -1)]),
        ]);
        let raw = decompress(&body).unwrap();
        let request = decode(&raw).unwrap();
        assert_eq!(request.timeseries.len(), 4);
        assert_eq!(request.timeseries[3].samples[0].timestamp, -1);
        let grouped = group(&request).unwrap();
        let node = &grouped[&("node".to_owned(), "a:1".to_owned())];
        assert_eq!(
            node["up"],
            Series {
                timestamps: vec![1_500_000_002_000_000_000],
                values: vec![0.0]
            }
        );
        let none = &grouped[&("none".to_owned(), "none".to_owned())];
        assert_eq!(none["lonely"].timestamps, vec![-1_000_000]);
        assert!(!none.contains_key("empty"));
    }

    #[test]
    fn corrupt_bodies_are_errors() {
        assert!(matches!(
            decompress(b"\xff\xff\xff\xff\x0f"),
            Err(RemoteWriteError::TooLarge)
        ));
        assert!(matches!(
            decompress(b"\x05abc"),
            Err(RemoteWriteError::Snappy(_))
        ));
        assert!(decompress(b"").is_err());
        for bad in [
            &b"\x0a\x05\x0a"[..],                            // truncated series
            b"\x0a",                                         // missing length
            b"\x00",                                         // field 0
            b"\x0b",                                         // group wire type
            b"\x08\x01",                                     // timeseries as varint
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", // overlong varint
            b"\x0a\x04\x0a\x02\x0a\xff",                     // truncated label
            b"\x0a\x06\x0a\x04\x0a\x02\xc3\x28",             // label not UTF-8
            b"\x0a\x04\x12\x02\x08\x01",                     // sample value as varint
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        let no_name = encode(&[(&[("job", "x")], &[(1.0, 1)])]);
        let raw = decompress(&no_name).unwrap();
        assert_eq!(
            group(&decode(&raw).unwrap()),
            Err(RemoteWriteError::MissingName)
        );
        let far = encode(&[(&[("__name__", "x")], &[(1.0, i64::MAX)])]);
        let raw = decompress(&far).unwrap();
        assert!(matches!(
            group(&decode(&raw).unwrap()),
            Err(RemoteWriteError::Timestamp(_))
        ));
    }

    #[test]
    fn unknown_fields_are_skipped() {
        // metadata (field 3) on the request, a fixed32 and a varint on a series.
        let raw = b"\x1a\x02\x08\x01\x0a\x07\x25\x00\x00\x00\x00\x18\x05";
        let request = decode(raw).unwrap();
        assert_eq!(request.timeseries.len(), 1);
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            if let Ok(request) = decode(&body) {
                let _ = group(&request);
            }
            if let Ok(raw) = decompress(&body) {
                let _ = decode(&raw).map(|request| group(&request));
            }
        }
    }
}
