//! Query strings: every value of every parameter, Gnocchi's boolean spellings,
//! and pagination (`limit`, `marker`, `sort`) with its `Link` header.
//!
//! Unknown parameters are kept but never refused: clients such as Grafana send
//! extras that Pecan ignored.

use axum::http::{header, HeaderValue};
use axum::response::Response;
use indexer::{Pagination, SortKey};
use serde_json::{json, Map, Value};

use super::json::python_float;
use super::ApiError;

/// The decoded `name=value` pairs of a query string, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct QueryParams {
    pairs: Vec<(String, String)>,
}

impl QueryParams {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .map(|query| {
                form_urlencoded::parse(query.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Self { pairs }
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of `name`, in order.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The first of `names`, in query order, given more than once: Pecan
    /// hands such a parameter over as a list, which a schema expecting one
    /// string refuses.
    pub(crate) fn first_repeated(&self, names: &[&str]) -> Option<&str> {
        self.pairs
            .iter()
            .map(|(key, _)| key.as_str())
            .find(|key| names.contains(key) && self.all(key).nth(1).is_some())
    }

    /// A boolean parameter, spelled as oslo's `bool_from_string` accepts.
    pub(crate) fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(false),
            Some(value) => parse_bool(value).ok_or_else(|| unparsable_bool(name, value)),
        }
    }

    /// `limit`, `marker` and `sort` (repeated or comma-separated), with the
    /// limit clamped to `max_limit` and defaulting to it.
    pub(crate) fn pagination(
        &self,
        max_limit: u32,
        default_sort: &[&str],
    ) -> Result<Page, ApiError> {
        // Gnocchi's schema sees a repeated parameter as a list, and refuses it.
        if self.all("limit").nth(1).is_some() {
            return Err(argument_error(
                "expected int for dictionary value @ data['limit']".to_owned(),
            ));
        }
        if self.all("marker").nth(1).is_some() {
            return Err(argument_error(
                "expected str for dictionary value @ data['marker']".to_owned(),
            ));
        }
        let limit = match self.get("limit") {
            None => max_limit,
            Some(text) => {
                let limit: i64 = text.trim().parse().map_err(|_| {
                    argument_error("expected int for dictionary value @ data['limit']".to_owned())
                })?;
                if limit < 1 {
                    return Err(argument_error(
                        "value must be at least 1 for dictionary value @ data['limit']".to_owned(),
                    ));
                }
                limit.min(i64::from(max_limit)) as u32
            }
        };
        // No `sort` at all takes the default; an empty one (`sort=`) asks
        // for none, as Gnocchi's `arg_to_list` makes it `[]`: the index's
        // own order by id, and no `sort` in the next page's link.
        let sort_texts: Vec<String> = if self.get("sort").is_none() {
            default_sort.iter().map(|s| (*s).to_owned()).collect()
        } else {
            // Never split on commas: Gnocchi takes `a,b` as one (bad) key.
            self.all("sort")
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let mut sort = sort_texts
            .iter()
            .map(|text| SortKey::parse(text))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| ApiError::bad_request(err.to_string()))?;
        if sort.is_empty() {
            // The index has its own default; Gnocchi then orders by id alone.
            sort.push(SortKey::asc("id"));
        }
        Ok(Page {
            pagination: Pagination {
                limit: Some(u64::from(limit)),
                marker: self.get("marker").map(str::to_owned),
                sort,
            },
            limit,
            // The next page's link names the sort, defaulted or not, as
            // Gnocchi's does (`sort=id:asc` on metric listings).
            sort_texts,
        })
    }

    /// Adds the top-level keys of a JSON object body as parameters, as Pecan
    /// does for a JSON `POST`: Gnocchi's next-page link of a search repeats
    /// them, each value as Python's `urlencode(doseq=True)` writes it.
    pub(crate) fn fold_json_object(&mut self, object: &Map<String, Value>) {
        for (key, value) in object {
            let values = match value {
                Value::Array(items) => items.iter().map(python_str).collect(),
                Value::Object(inner) => inner.keys().cloned().collect(),
                other => vec![python_str(other)],
            };
            self.pairs
                .extend(values.into_iter().map(|value| (key.clone(), value)));
        }
    }

    /// The pairs other than the pagination ones, for the next page's link.
    fn without_pagination(&self) -> impl Iterator<Item = &(String, String)> {
        self.pairs
            .iter()
            .filter(|(key, _)| !matches!(key.as_str(), "limit" | "marker" | "sort"))
    }
}

/// oslo's `bool_from_string` in strict mode.
pub(crate) fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
        _ => None,
    }
}

/// Gnocchi's `strtobool` refusal, naming where the value came from.
pub(crate) fn unparsable_bool(origin: &str, value: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Unable to parse `{origin}': Unrecognized value '{value}', acceptable values are: \
         '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"
    ))
}

fn argument_error(reason: String) -> ApiError {
    ApiError::bad_request(json!({"cause": "Argument value error", "reason": reason}))
}

/// A requested page.
#[derive(Debug, Clone)]
pub(crate) struct Page {
    pub(crate) pagination: Pagination,
    pub(crate) limit: u32,
    /// The `sort` values the client gave, repeated in the next page's link.
    sort_texts: Vec<String>,
}

impl Page {
    /// Adds `Link: <url>; rel="next"` when the page came back full, as Gnocchi
    /// does; the URL repeats the query with sorted keys and the new marker.
    pub(crate) fn link_next(
        &self,
        response: &mut Response,
        url: &str,
        query: &QueryParams,
        returned: usize,
        last_marker: Option<String>,
    ) {
        let Some(marker) = last_marker else { return };
        if returned < self.limit as usize {
            return;
        }
        let mut pairs: Vec<(String, String)> = query.without_pagination().cloned().collect();
        pairs.push(("limit".to_owned(), self.limit.to_string()));
        pairs.push(("marker".to_owned(), marker));
        pairs.extend(
            self.sort_texts
                .iter()
                .map(|s| ("sort".to_owned(), s.clone())),
        );
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let encoded = pairs
            .iter()
            .map(|(key, value)| format!("{}={}", quote_plus(key), quote_plus(value)))
            .collect::<Vec<_>>()
            .join("&");
        if let Ok(value) = HeaderValue::from_str(&format!("<{url}?{encoded}>; rel=\"next\"")) {
            response.headers_mut().append(header::LINK, value);
        }
    }
}

/// Python's `urllib.parse.quote_plus`, which Gnocchi's links are written with:
/// unlike the WHATWG form encoding it keeps `~` and escapes `*`.
fn quote_plus(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Python's `str()` of a decoded JSON value: a string is itself, anything
/// else its `repr()`.
fn python_str(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => python_repr(other),
    }
}

/// Python's `repr()` of a decoded JSON value (objects in key order, which
/// for a search filter's one-key objects is the body's order).
fn python_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(number) => match number.as_f64().filter(|_| number.is_f64()) {
            Some(float) => python_float(float),
            None => number.to_string(),
        },
        Value::String(text) => python_string_repr(text),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(python_repr).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(object) => {
            let entries: Vec<String> = object
                .iter()
                .map(|(key, value)| format!("{}: {}", python_string_repr(key), python_repr(value)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
    }
}

/// `repr(str)`: single quotes unless only double quotes avoid escaping,
/// and escapes for backslashes, that quote and unprintable characters.
fn python_string_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if printable(c) => out.push(c),
            c => match u32::from(c) {
                code @ 0..=0xff => out.push_str(&format!("\\x{code:02x}")),
                code @ 0x100..=0xffff => out.push_str(&format!("\\u{code:04x}")),
                code => out.push_str(&format!("\\U{code:08x}")),
            },
        }
    }
    out.push(quote);
    out
}

/// Python's `str.isprintable` for the characters a filter plausibly holds:
/// controls, format characters and separators other than the space are not.
fn printable(c: char) -> bool {
    !(c.is_control()
        || matches!(c, '\u{a0}' | '\u{ad}' | '\u{2000}'..='\u{200f}' | '\u{2028}'..='\u{202f}'
            | '\u{205f}'..='\u{206f}' | '\u{3000}' | '\u{feff}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folded(body: Value) -> Vec<(String, String)> {
        let mut query = QueryParams::default();
        query.fold_json_object(body.as_object().expect("an object"));
        query.pairs
    }

    #[test]
    fn a_json_body_folds_into_parameters_as_pecan_and_urlencode_write_it() {
        assert_eq!(
            folded(json!({"=": {"creator": "foo"}})),
            [("=".to_owned(), "creator".to_owned())]
        );
        assert_eq!(
            folded(json!({"and": [{"=": {"user_id": "a'b"}}, {">=": {"started_at": 1.0}}]})),
            [
                ("and".to_owned(), r#"{'=': {'user_id': "a'b"}}"#.to_owned()),
                ("and".to_owned(), "{'>=': {'started_at': 1.0}}".to_owned()),
            ]
        );
        assert_eq!(
            folded(json!({"in": [1, "x", null, true, [2.5e-7, 1e16]]})),
            [
                ("in".to_owned(), "1".to_owned()),
                ("in".to_owned(), "x".to_owned()),
                ("in".to_owned(), "None".to_owned()),
                ("in".to_owned(), "True".to_owned()),
                ("in".to_owned(), "[2.5e-07, 1e+16]".to_owned()),
            ]
        );
    }

    #[test]
    fn string_reprs_escape_as_python_does() {
        assert_eq!(python_string_repr("plain"), "'plain'");
        assert_eq!(python_string_repr(r#"both ' and ""#), r#"'both \' and "'"#);
        assert_eq!(python_string_repr("tab\there\\"), r"'tab\there\\'");
        assert_eq!(python_string_repr("\u{1}\u{a0}é"), r"'\x01\xa0é'");
    }

    #[test]
    fn quote_plus_keeps_what_python_keeps() {
        assert_eq!(quote_plus("a b~*:'{}"), "a+b~%2A%3A%27%7B%7D");
        assert_eq!(quote_plus("é"), "%C3%A9");
    }
}
