//! InfluxDB line protocol, as Gnocchi's `/v1/influxdb/write` reads it.
//!
//! A line is `measurement[,tag=value…] field=value[,field=value…] [timestamp]`.
//! Names and tag values are unquoted (`\ `, `\,` and `\=` escape the
//! separators) or double-quoted; field values are floats, integers with an
//! `i` (or `u`) suffix, quoted strings or booleans; the timestamp is in
//! nanoseconds (there is no `precision`). Strings and booleans are ignored,
//! as Gnocchi ignores non-numeric fields (Gnocchi rejects booleans outright;
//! we accept and drop them).
//!
//! [`group`] maps lines to Gnocchi's model: the resource is the value of one
//! tag (`host` by default), the metric is `<measurement>.<field>` followed by
//! `@k=v,…` for the remaining tags sorted by key, with `/` replaced by `_`.
//!
//! [`Parser`] reuses its buffers from line to line: parsing allocates only
//! for names that contain escapes, and [`group`] only for new resources,
//! new metric names and the measures themselves.

use std::borrow::Cow;
use std::collections::HashMap;

use super::{MetricSeries, Series};

/// Why a body was refused; `line` counts from 1, empty lines included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineProtocolError {
    #[error("Unable to parse line {line}")]
    Parse { line: usize },
    #[error("Unable to find key `{key}' in tags")]
    MissingTag { line: usize, key: String },
}

/// A field's value; only numbers become measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue {
    /// A float or an integer (`12i`, `12u`).
    Number(f64),
    /// A quoted string (its content is not kept).
    Text,
    Bool(bool),
}

/// One parsed line, borrowing the parser's buffers and the body.
#[derive(Debug)]
pub struct Line<'p, 'a> {
    /// 1-based line number.
    pub number: usize,
    pub measurement: &'p str,
    /// In the order written; a repeated key appears twice.
    pub tags: &'p [(Cow<'a, str>, Cow<'a, str>)],
    pub fields: &'p [(Cow<'a, str>, FieldValue)],
    /// Nanoseconds since the epoch, when given.
    pub timestamp: Option<i64>,
}

/// Iterates over the lines of a body, skipping blank ones.
#[derive(Debug)]
pub struct Parser<'a> {
    rest: Option<&'a [u8]>,
    number: usize,
    measurement: Cow<'a, str>,
    tags: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    fields: Vec<(Cow<'a, str>, FieldValue)>,
}

impl<'a> Parser<'a> {
    pub fn new(body: &'a [u8]) -> Self {
        Self {
            rest: Some(body),
            number: 0,
            measurement: Cow::Borrowed(""),
            tags: Vec::new(),
            fields: Vec::new(),
        }
    }

    /// The next non-blank line, or the error for the first malformed one.
    pub fn next_line(&mut self) -> Option<Result<Line<'_, 'a>, LineProtocolError>> {
        loop {
            let rest = self.rest?;
            let (raw, tail) = match rest.iter().position(|&b| b == b'\n') {
                Some(end) => (&rest[..end], Some(&rest[end + 1..])),
                None => (rest, None),
            };
            self.rest = tail;
            self.number += 1;
            let number = self.number;
            let Ok(text) = std::str::from_utf8(raw) else {
                self.rest = None;
                return Some(Err(LineProtocolError::Parse { line: number }));
            };
            let text = text.trim_end_matches([' ', '\t', '\r']);
            if text.is_empty() {
                continue;
            }
            self.tags.clear();
            self.fields.clear();
            let mut cursor = Cursor { text, pos: 0 };
            return match parse_line(
                &mut cursor,
                &mut self.measurement,
                &mut self.tags,
                &mut self.fields,
            ) {
                Some(timestamp) => Some(Ok(Line {
                    number,
                    measurement: &self.measurement,
                    tags: &self.tags,
                    fields: &self.fields,
                    timestamp,
                })),
                None => {
                    self.rest = None;
                    Some(Err(LineProtocolError::Parse { line: number }))
                }
            };
        }
    }
}

/// Parses one trimmed, non-empty line; `None` when malformed, otherwise the
/// optional timestamp.
fn parse_line<'a>(
    cursor: &mut Cursor<'a>,
    measurement: &mut Cow<'a, str>,
    tags: &mut Vec<(Cow<'a, str>, Cow<'a, str>)>,
    fields: &mut Vec<(Cow<'a, str>, FieldValue)>,
) -> Option<Option<i64>> {
    *measurement = cursor.string()?;
    if cursor.eat(b',') {
        loop {
            let key = cursor.string()?;
            cursor.expect(b'=')?;
            let value = cursor.string()?;
            tags.push((key, value));
            if !cursor.eat(b',') {
                break;
            }
        }
    }
    cursor.expect(b' ')?;
    loop {
        let key = cursor.string()?;
        cursor.expect(b'=')?;
        let value = cursor.field_value()?;
        fields.push((key, value));
        if !cursor.eat(b',') {
            break;
        }
    }
    let mut timestamp = None;
    if cursor.eat(b' ') {
        let digits = cursor.take_while(|b| b.is_ascii_digit());
        if digits.is_empty() {
            return None;
        }
        timestamp = Some(digits.parse::<i64>().ok()?);
    }
    cursor.at_end().then_some(timestamp)
}

/// A position in one line.
#[derive(Debug)]
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

/// Bytes that end an unquoted name or tag value.
fn is_special(b: u8) -> bool {
    matches!(b, b' ' | b',' | b'=' | b'\\')
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    /// Consumes ASCII bytes matching `keep`; always on a char boundary.
    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii() && keep(b)) {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    /// A quoted or unquoted string; an unquoted one must not start with a
    /// separator or a backslash (as in Gnocchi's grammar).
    fn string(&mut self) -> Option<Cow<'a, str>> {
        if self.peek() == Some(b'"') {
            return self.quoted();
        }
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let mut owned: Option<String> = None;
        let mut run_start = start;
        loop {
            // A run of ordinary bytes (multi-byte UTF-8 bytes are never special).
            let run = self.pos;
            while self.pos < bytes.len() && !is_special(bytes[self.pos]) {
                self.pos += 1;
            }
            if self.pos == run {
                break;
            }
            if self.peek() != Some(b'\\') {
                break;
            }
            // Escapes: `\ `, `\,`, `\=` stand for the character; a lone `\` is itself.
            while self.peek() == Some(b'\\') {
                let out = owned.get_or_insert_with(String::new);
                out.push_str(&self.text[run_start..self.pos]);
                match bytes.get(self.pos + 1) {
                    Some(&c @ (b' ' | b',' | b'=')) => {
                        out.push(c as char);
                        self.pos += 2;
                    }
                    _ => {
                        out.push('\\');
                        self.pos += 1;
                    }
                }
                run_start = self.pos;
            }
        }
        if self.pos == start {
            return None;
        }
        Some(match owned {
            None => Cow::Borrowed(&self.text[start..self.pos]),
            Some(mut out) => {
                out.push_str(&self.text[run_start..self.pos]);
                Cow::Owned(out)
            }
        })
    }

    /// `"…"` with `\x` escapes (`\t`, `\n`, `\r`, `\f` become whitespace).
    fn quoted(&mut self) -> Option<Cow<'a, str>> {
        let bytes = self.text.as_bytes();
        self.pos += 1;
        let start = self.pos;
        let mut owned: Option<String> = None;
        let mut run_start = start;
        loop {
            match bytes.get(self.pos)? {
                b'"' => {
                    let end = self.pos;
                    self.pos += 1;
                    return Some(match owned {
                        None => Cow::Borrowed(&self.text[start..end]),
                        Some(mut out) => {
                            out.push_str(&self.text[run_start..end]);
                            Cow::Owned(out)
                        }
                    });
                }
                b'\\' => {
                    let out = owned.get_or_insert_with(String::new);
                    out.push_str(&self.text[run_start..self.pos]);
                    let escaped = self.text[self.pos + 1..].chars().next()?;
                    out.push(match escaped {
                        't' => '\t',
                        'n' => '\n',
                        'r' => '\r',
                        'f' => '\x0c',
                        other => other,
                    });
                    self.pos += 1 + escaped.len_utf8();
                    run_start = self.pos;
                }
                _ => self.pos += 1,
            }
        }
    }

    fn field_value(&mut self) -> Option<FieldValue> {
        match self.peek()? {
            b'"' => {
                self.skip_quoted()?;
                Some(FieldValue::Text)
            }
            b'+' | b'-' | b'0'..=b'9' => self.number(),
            b't' | b'T' | b'f' | b'F' => {
                let word = self.take_while(|b| b.is_ascii_alphabetic());
                match word {
                    "t" | "T" | "true" | "True" | "TRUE" => Some(FieldValue::Bool(true)),
                    "f" | "F" | "false" | "False" | "FALSE" => Some(FieldValue::Bool(false)),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Skips a quoted string field without keeping its content.
    fn skip_quoted(&mut self) -> Option<()> {
        let bytes = self.text.as_bytes();
        self.pos += 1;
        loop {
            match bytes.get(self.pos)? {
                b'"' => {
                    self.pos += 1;
                    return Some(());
                }
                b'\\' => self.pos += 2,
                _ => self.pos += 1,
            }
        }
    }

    /// `[+-]digits[.digits][e[+-]digits]`, or an integer followed by `i`/`u`.
    fn number(&mut self) -> Option<FieldValue> {
        let start = self.pos;
        if matches!(self.peek(), Some(b'+' | b'-')) {
            self.pos += 1;
        }
        if self.take_while(|b| b.is_ascii_digit()).is_empty() {
            return None;
        }
        let mut integral = true;
        if self.eat(b'.') {
            integral = false;
            self.take_while(|b| b.is_ascii_digit());
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let mark = self.pos;
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.take_while(|b| b.is_ascii_digit()).is_empty() {
                self.pos = mark;
            } else {
                integral = false;
            }
        }
        let text = &self.text[start..self.pos];
        if matches!(self.peek(), Some(b'i' | b'u')) {
            if !integral || (self.peek() == Some(b'u') && text.starts_with('-')) {
                return None;
            }
            self.pos += 1;
        }
        text.parse::<f64>().ok().map(FieldValue::Number)
    }
}

/// Measures of a body by resource (the resource tag's value) and metric name.
pub type Grouped = HashMap<String, MetricSeries>;

/// Parses `body` and groups its numeric fields as Gnocchi does; lines without
/// a timestamp get `now` (nanoseconds).
pub fn group(body: &[u8], resource_tag: &str, now: i64) -> Result<Grouped, LineProtocolError> {
    let mut parser = Parser::new(body);
    let mut grouped = Grouped::new();
    let mut order: Vec<usize> = Vec::new();
    let mut suffix = String::new();
    let mut name = String::new();
    while let Some(line) = parser.next_line() {
        let line = line?;
        let Some(resource) = line
            .tags
            .iter()
            .rev()
            .find(|(key, _)| key == resource_tag)
            .map(|(_, value)| value.as_ref())
        else {
            return Err(LineProtocolError::MissingTag {
                line: line.number,
                key: resource_tag.to_owned(),
            });
        };
        if !line
            .fields
            .iter()
            .any(|(_, value)| matches!(value, FieldValue::Number(_)))
        {
            continue;
        }
        // The other tags sorted by key; of a repeated key, the last one wins.
        order.clear();
        order.extend((0..line.tags.len()).filter(|&i| line.tags[i].0 != resource_tag));
        order.sort_by(|&a, &b| line.tags[a].0.cmp(&line.tags[b].0).then(a.cmp(&b)));
        suffix.clear();
        for (n, &i) in order.iter().enumerate() {
            let (key, value) = &line.tags[i];
            if order
                .get(n + 1)
                .is_some_and(|&next| line.tags[next].0 == *key)
            {
                continue;
            }
            suffix.push(if suffix.is_empty() { '@' } else { ',' });
            push_replacing_slash(&mut suffix, key);
            suffix.push('=');
            push_replacing_slash(&mut suffix, value);
        }
        let timestamp = line.timestamp.unwrap_or(now);
        if !grouped.contains_key(resource) {
            grouped.insert(resource.to_owned(), MetricSeries::new());
        }
        let Some(metrics) = grouped.get_mut(resource) else {
            continue;
        };
        for (field, value) in line.fields {
            let FieldValue::Number(value) = *value else {
                continue;
            };
            name.clear();
            push_replacing_slash(&mut name, line.measurement);
            name.push('.');
            push_replacing_slash(&mut name, field);
            name.push_str(&suffix);
            match metrics.get_mut(name.as_str()) {
                Some(series) => series.push(timestamp, value),
                None => metrics
                    .entry(name.clone())
                    .or_insert_with(Series::default)
                    .push(timestamp, value),
            }
        }
    }
    Ok(grouped)
}

fn push_replacing_slash(out: &mut String, text: &str) {
    if text.contains('/') {
        out.extend(text.chars().map(|c| if c == '/' { '_' } else { c }));
    } else {
        out.push_str(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Measurement, tags, fields and timestamp of a one-line body.
    type Parsed = (
        String,
        Vec<(String, String)>,
        Vec<(String, FieldValue)>,
        Option<i64>,
    );

    fn one(line: &str) -> Parsed {
        let mut parser = Parser::new(line.as_bytes());
        let parsed = parser.next_line().expect("a line").expect("parses");
        let out = (
            parsed.measurement.to_owned(),
            parsed
                .tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            parsed
                .fields
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            parsed.timestamp,
        );
        assert!(parser.next_line().is_none());
        out
    }

    fn error(body: &str) -> LineProtocolError {
        let mut parser = Parser::new(body.as_bytes());
        loop {
            match parser.next_line() {
                Some(Ok(_)) => continue,
                Some(Err(err)) => return err,
                None => panic!("{body:?} parsed"),
            }
        }
    }

    #[test]
    fn parses_a_plain_line() {
        let (m, tags, fields, ts) =
            one("mymetric,host=foobar,mytag=myvalue field=123 1510581804179554816");
        assert_eq!(m, "mymetric");
        assert_eq!(
            tags,
            vec![
                ("host".into(), "foobar".into()),
                ("mytag".into(), "myvalue".into())
            ]
        );
        assert_eq!(fields, vec![("field".into(), FieldValue::Number(123.0))]);
        assert_eq!(ts, Some(1_510_581_804_179_554_816));
    }

    #[test]
    fn parses_value_kinds() {
        let (_, tags, fields, ts) =
            one(r#"cpu a=1.5,b=-43i,c="some \"text\", here",d=t,e=1e3,f=7u,g=FALSE,h=+2."#);
        assert!(tags.is_empty());
        assert_eq!(ts, None);
        assert_eq!(
            fields,
            vec![
                ("a".into(), FieldValue::Number(1.5)),
                ("b".into(), FieldValue::Number(-43.0)),
                ("c".into(), FieldValue::Text),
                ("d".into(), FieldValue::Bool(true)),
                ("e".into(), FieldValue::Number(1000.0)),
                ("f".into(), FieldValue::Number(7.0)),
                ("g".into(), FieldValue::Bool(false)),
                ("h".into(), FieldValue::Number(2.0)),
            ]
        );
    }

    #[test]
    fn unescapes_names() {
        let (m, tags, fields, _) = one(r"my\ cpu,ho\,st=a\=b\ c,x\y=z my\=field=1 5");
        assert_eq!(m, "my cpu");
        assert_eq!(
            tags,
            vec![
                ("ho,st".into(), "a=b c".into()),
                (r"x\y".into(), "z".into())
            ]
        );
        assert_eq!(fields, vec![("my=field".into(), FieldValue::Number(1.0))]);
        let (m, tags, _, _) = one(r#""quoted m",k="a b\"c" v=2"#);
        assert_eq!(m, "quoted m");
        assert_eq!(tags, vec![("k".into(), "a b\"c".into())]);
    }

    #[test]
    fn tolerates_crlf_and_blank_lines() {
        let body = "\n\r\ncpu,host=a v=1 10\r\n\ncpu,host=b v=2\n";
        let mut parser = Parser::new(body.as_bytes());
        let first = parser.next_line().unwrap().unwrap();
        assert_eq!((first.number, first.timestamp), (3, Some(10)));
        let second = parser.next_line().unwrap().unwrap();
        assert_eq!((second.number, second.timestamp), (5, None));
        assert!(parser.next_line().is_none());
    }

    #[test]
    fn malformed_lines_name_their_number() {
        for bad in [
            "cpu",
            "cpu ",
            "cpu,host=a",
            "cpu,host v=1",
            "cpu,=a v=1",
            "cpu v=",
            "cpu v=abc",
            "cpu v=1.5i",
            "cpu v=-1u",
            "cpu v=\"open",
            "cpu v=1 12x",
            "cpu v=1 -12",
            "cpu v=1 99999999999999999999",
            "cpu v=1 10 11",
            ",host=a v=1",
            "\\ cpu v=1",
            "cpu  v=1",
            "cpu v=1,",
        ] {
            assert_eq!(
                error(&format!("ok,host=a v=1\n\n{bad}\nok,host=b v=2")),
                LineProtocolError::Parse { line: 3 },
                "{bad:?}"
            );
        }
        assert_eq!(
            error("cpu v=1\n\u{0}\u{ff}"),
            LineProtocolError::Parse { line: 2 }
        );
        let invalid_utf8: &[u8] = b"cpu v=1\ncpu,host=\xff v=1";
        let mut parser = Parser::new(invalid_utf8);
        assert!(parser.next_line().unwrap().is_ok());
        assert_eq!(
            parser.next_line().unwrap().unwrap_err(),
            LineProtocolError::Parse { line: 2 }
        );
        assert_eq!(
            LineProtocolError::Parse { line: 7 }.to_string(),
            "Unable to parse line 7"
        );
    }

    #[test]
    fn groups_like_gnocchi() {
        let body = "mymetric,host=foobar,mytag=myvalue field=123 1510581804179554816\n\
                    cpu,path=/foobar,mytag=myvalue,host=h field=43i,s=\"x\",other=2 7\n\
                    cpu,mytag=myvalue,host=h,path=/foobar field=44i 8\n\
                    bare,host=foobar v=1";
        let grouped = group(body.as_bytes(), "host", 99).unwrap();
        assert_eq!(grouped.len(), 2);
        let foobar = &grouped["foobar"];
        assert_eq!(
            foobar["mymetric.field@mytag=myvalue"],
            Series {
                timestamps: vec![1_510_581_804_179_554_816],
                values: vec![123.0]
            }
        );
        assert_eq!(foobar["bare.v"].timestamps, vec![99]);
        let h = &grouped["h"];
        assert_eq!(
            h["cpu.field@mytag=myvalue,path=_foobar"],
            Series {
                timestamps: vec![7, 8],
                values: vec![43.0, 44.0]
            }
        );
        assert!(h.contains_key("cpu.other@mytag=myvalue,path=_foobar"));
        assert_eq!(h.len(), 2);

        let by_tag = group(body.as_bytes(), "mytag", 0);
        assert_eq!(
            by_tag.unwrap_err(),
            LineProtocolError::MissingTag {
                line: 4,
                key: "mytag".into()
            }
        );
        let by_tag = group(&body.as_bytes()[..body.rfind('\n').unwrap()], "mytag", 0).unwrap();
        assert!(by_tag["myvalue"].contains_key("mymetric.field@host=foobar"));
        assert!(by_tag["myvalue"].contains_key("cpu.field@host=h,path=_foobar"));
        assert_eq!(
            LineProtocolError::MissingTag {
                line: 1,
                key: "host".into()
            }
            .to_string(),
            "Unable to find key `host' in tags"
        );
    }

    #[test]
    fn repeated_tags_keep_the_last_value() {
        let grouped = group(b"m,host=a,k=1,k=2,host=b v=1 1", "host", 0).unwrap();
        assert_eq!(grouped.len(), 1);
        assert!(grouped["b"].contains_key("m.v@k=2"));
    }

    #[test]
    fn string_only_lines_create_nothing() {
        let grouped = group(b"m,host=a s=\"x\",b=true", "host", 0).unwrap();
        assert!(grouped.is_empty());
    }

    /// `cargo test --release -- --ignored --nocapture throughput`
    #[test]
    #[ignore = "timing, run by hand"]
    fn throughput() {
        let mut body = String::new();
        for i in 0..200_000 {
            body.push_str(&format!(
                "cpu,host=web{},cpu=cpu{} usage_idle={}.5,usage_user={}i,usage_system=0.25 {}\n",
                i % 50,
                i % 8,
                i % 100,
                i % 7,
                1_700_000_000_000_000_000_i64 + i
            ));
        }
        let start = std::time::Instant::now();
        let grouped = group(body.as_bytes(), "host", 0).unwrap();
        let elapsed = start.elapsed();
        assert_eq!(grouped.len(), 50);
        eprintln!(
            "{} lines, {:.1} MB in {elapsed:?}: {:.0} lines/s",
            200_000,
            body.len() as f64 / 1e6,
            200_000.0 / elapsed.as_secs_f64()
        );
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = group(&body, "host", 0);
        }

        #[test]
        fn random_protocol_text_never_panics(body in "[a-z ,=\\\\\"0-9.ieEtf+\\-\n\r]{0,120}") {
            let _ = group(body.as_bytes(), "host", 0);
        }
    }
}
