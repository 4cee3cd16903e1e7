//! Query strings: every value of every parameter, Gnocchi's boolean spellings,
//! and pagination (`limit`, `marker`, `sort`) with its `Link` header.
//!
//! Unknown parameters are kept but never refused: clients such as Grafana send
//! extras that Pecan ignored.

use axum::http::{header, HeaderValue};
use axum::response::Response;
use indexer::{Pagination, SortKey};
use serde_json::json;

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

    /// A boolean parameter, spelled as oslo's `bool_from_string` accepts.
    pub(crate) fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(false),
            Some(value) => parse_bool(value).ok_or_else(|| {
                ApiError::bad_request(json!({
                    "cause": "Argument value error",
                    "reason": format!("Unrecognized value '{value}', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"),
                    "detail": name,
                }))
            }),
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
        let mut sort_texts: Vec<String> = self
            .all("sort")
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
            .collect();
        if sort_texts.is_empty() {
            sort_texts = default_sort.iter().map(|s| (*s).to_owned()).collect();
        }
        let sort = sort_texts
            .iter()
            .map(|text| SortKey::parse(text))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| ApiError::bad_request(err.to_string()))?;
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
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        if let Ok(value) = HeaderValue::from_str(&format!("<{url}?{encoded}>; rel=\"next\"")) {
            response.headers_mut().append(header::LINK, value);
        }
    }
}
