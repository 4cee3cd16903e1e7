//! Batches of measures for many metrics in one request:
//! `/v1/batch/metrics/measures` (by metric id) and
//! `/v1/batch/resources/metrics/measures` (by resource and metric name,
//! optionally creating missing metrics from archive policy rules).
//!
//! Either every batch is accepted or none is: all lookups and checks happen
//! before one append to the incoming store.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use indexer::{IndexerError, MetricFilter, NewMetric};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{is_json, Authenticated};
use super::measures::{accepted, append, lookup_error};
use super::measures_body::{undecodable, MeasureList, Measures, MeasuresInvalid};
use super::metric::metric_target;
use super::openapi as doc;
use super::query::QueryParams;
use super::validate::Invalid;
use super::ApiError;
use crate::app::AppState;
use crate::incoming::MeasureBatch;
use crate::time::now;

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(by_metric))
        .routes(routes!(by_resource))
}

/// Measures for one metric, in the list form or the object form that may
/// also name the archive policy and unit of a metric to create.
#[derive(Debug, Default)]
struct MetricMeasures {
    measures: Measures,
    archive_policy_name: Option<String>,
    unit: Option<String>,
}

/// A body, or part of one, that must be an object: its entries are read by
/// a [`MapVisit`], anything else is read through and refused by it.
struct Object<V>(V);

/// What reads the entries of an [`Object`].
trait MapVisit<'de>: Sized {
    type Value;
    fn visit<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error>;
    /// The verdict on a value that is not an object.
    fn not_an_object(self) -> Self::Value;
}

impl<'de, V: MapVisit<'de>> DeserializeSeed<'de> for Object<V> {
    type Value = V::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, V: MapVisit<'de>> Visitor<'de> for Object<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a dictionary")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<V::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(self.0.not_an_object())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<V::Value, E> {
        Ok(self.0.not_an_object())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<V::Value, E> {
        Ok(self.0.not_an_object())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<V::Value, E> {
        Ok(self.0.not_an_object())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<V::Value, E> {
        Ok(self.0.not_an_object())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<V::Value, E> {
        Ok(self.0.not_an_object())
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        Ok(self.0.not_an_object())
    }
}

/// Reads the entries of an object, each by `entry`, keeping the first
/// failure: once one is found the rest is only read through, so that a
/// syntax error further on still wins, as Gnocchi decodes before it checks.
fn entries<'de, A, T>(
    mut map: A,
    mut entry: impl FnMut(String, &mut A) -> Result<Result<T, Invalid>, A::Error>,
) -> Result<Result<Vec<T>, Invalid>, A::Error>
where
    A: MapAccess<'de>,
{
    let mut out = Vec::new();
    let mut invalid = None;
    while let Some(key) = map.next_key::<String>()? {
        if invalid.is_some() {
            map.next_value::<IgnoredAny>()?;
            continue;
        }
        match entry(key, &mut map)? {
            Ok(value) => out.push(value),
            Err(found) => invalid = Some(found),
        }
    }
    Ok(invalid.map_or(Ok(out), Err))
}

/// `{metric id: [measures]}`, checked as Gnocchi's `{UUID: MeasuresListSchema}`.
struct MetricsBody {
    now: i64,
}

impl<'de> MapVisit<'de> for MetricsBody {
    type Value = Result<Vec<(Uuid, Measures)>, Invalid>;

    fn visit<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        entries(map, |key, map| {
            let Ok(id) = Uuid::parse_str(&key) else {
                map.next_value::<IgnoredAny>()?;
                return Ok(Err(Invalid::key(vec![key], "not a valid value")));
            };
            Ok(match map.next_value_seed(MeasureList { now: self.now })? {
                Ok(measures) => Ok((id, measures)),
                Err(invalid) => Err(Invalid::value(&[key], invalid.to_string())),
            })
        })
    }

    fn not_an_object(self) -> Self::Value {
        Err(Invalid::value(&[], "expected a dictionary"))
    }
}

/// One resource's measures by metric name.
struct ByName {
    original_id: String,
    resource_id: Uuid,
    metrics: Vec<(String, MetricMeasures)>,
}

/// `{resource id: {metric name: measures}}`, checked as Gnocchi's
/// `{ResourceID: {str: BackwardCompatibleMeasuresList}}`.
struct ResourcesBody<'a> {
    now: i64,
    creator: &'a str,
}

impl<'de> MapVisit<'de> for ResourcesBody<'_> {
    type Value = Result<Vec<ByName>, Invalid>;

    fn visit<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        entries(map, |original_id, map| {
            let resource_id = match indexer::resource_uuid(&original_id, self.creator) {
                Ok(id) => id,
                Err(err) => {
                    map.next_value::<IgnoredAny>()?;
                    let message = match err {
                        IndexerError::InvalidResourceId(message) => message,
                        other => other.to_string(),
                    };
                    return Ok(Err(Invalid::key(vec![original_id], &message)));
                }
            };
            let metrics = map.next_value_seed(Object(MetricsOfResource {
                now: self.now,
                resource: &original_id,
            }))?;
            Ok(metrics.map(|metrics| ByName {
                original_id,
                resource_id,
                metrics,
            }))
        })
    }

    fn not_an_object(self) -> Self::Value {
        Err(Invalid::value(&[], "expected a dictionary"))
    }
}

/// The metrics of one resource in a batch.
struct MetricsOfResource<'a> {
    now: i64,
    resource: &'a str,
}

impl<'de> MapVisit<'de> for MetricsOfResource<'_> {
    type Value = Result<Vec<(String, MetricMeasures)>, Invalid>;

    fn visit<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        entries(map, |name, map| {
            let measures = map.next_value_seed(MetricMeasuresSeed {
                now: self.now,
                resource: self.resource,
                name: &name,
            })?;
            Ok(measures.map(|measures| (name, measures)))
        })
    }

    fn not_an_object(self) -> Self::Value {
        Err(Invalid::value(
            &[self.resource.to_owned()],
            "expected a dictionary",
        ))
    }
}

/// Gnocchi's `BackwardCompatibleMeasuresList`: a list of measures, or
/// `{"measures": [...], "archive_policy_name"?: str, "unit"?: str}`.
/// Where it stands is only written out for a refusal: this is the write path.
struct MetricMeasuresSeed<'a> {
    now: i64,
    resource: &'a str,
    name: &'a str,
}

impl MetricMeasuresSeed<'_> {
    /// `[resource id, metric name]`.
    fn path(&self) -> Vec<String> {
        vec![self.resource.to_owned(), self.name.to_owned()]
    }

    fn path_of(&self, key: &str) -> Vec<String> {
        let mut path = self.path();
        path.push(key.to_owned());
        path
    }

    fn malformed(&self) -> Result<MetricMeasures, Invalid> {
        Err(Invalid::value(
            &self.path(),
            MeasuresInvalid::Format.to_string(),
        ))
    }
}

impl<'de> DeserializeSeed<'de> for MetricMeasuresSeed<'_> {
    type Value = Result<MetricMeasures, Invalid>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MetricMeasuresSeed<'_> {
    type Value = Result<MetricMeasures, Invalid>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of measures or {\"measures\": [...]}")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let list = MeasureList { now: self.now };
        Ok(match list.visit_seq(seq)? {
            Ok(measures) => Ok(MetricMeasures {
                measures,
                ..MetricMeasures::default()
            }),
            Err(invalid) => Err(Invalid::value(&self.path(), invalid.to_string())),
        })
    }

    /// The object form; an empty object passes as an empty list, as
    /// Gnocchi tries the list form first.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = MetricMeasures::default();
        let mut invalid = None;
        let mut keys = 0;
        let mut seen_measures = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            keys += 1;
            if invalid.is_some() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            match key.as_ref() {
                "measures" => {
                    seen_measures = true;
                    match map.next_value_seed(MeasureList { now: self.now })? {
                        Ok(measures) => out.measures = measures,
                        Err(found) => {
                            invalid = Some(Invalid::value(&self.path_of(&key), found.to_string()));
                        }
                    }
                }
                "archive_policy_name" | "unit" => match map.next_value::<serde_json::Value>()? {
                    serde_json::Value::String(text) if key == "unit" => out.unit = Some(text),
                    serde_json::Value::String(text) => out.archive_policy_name = Some(text),
                    _ => invalid = Some(Invalid::value(&self.path_of(&key), "expected str")),
                },
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    invalid = Some(Invalid::key(self.path_of(&key), "extra keys not allowed"));
                }
            }
        }
        if let Some(invalid) = invalid {
            return Ok(Err(invalid));
        }
        if keys > 0 && !seen_measures {
            return Ok(Err(Invalid::key(
                self.path_of("measures"),
                "required key not provided",
            )));
        }
        Ok(Ok(out))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(self.malformed())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(self.malformed())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(self.malformed())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(self.malformed())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(self.malformed())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.malformed())
    }
}

/// Reads a whole body through `seed`: not JSON is "Unable to decode body",
/// JSON the schema refuses is Gnocchi's "Invalid input".
fn parse<'de, S, T>(body: &'de [u8], seed: S) -> Result<T, ApiError>
where
    S: DeserializeSeed<'de, Value = Result<T, Invalid>>,
{
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let checked = seed
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value))
        .map_err(undecodable)?;
    Ok(checked?)
}

#[utoipa::path(
    post,
    path = "/v1/batch/metrics/measures",
    tag = "batch",
    request_body = doc::BatchMetricsMeasures,
    responses(
        (status = 202, description = "Accepted and durable"),
        (status = 400, description = "Invalid input, or `Unknown metrics: …`", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 415, description = "The body is not JSON", body = doc::ErrorBody)
    )
)]
async fn by_metric(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !is_json(&headers) {
        return Err(ApiError::unsupported_media_type());
    }
    let entries = parse(&body, Object(MetricsBody { now: now() }))?;
    let mut batches = Vec::with_capacity(entries.len());
    let mut unknown = Vec::new();
    for (id, measures) in entries {
        match state.metrics.by_id(id).await {
            Ok(entry) => {
                caller.enforce(&state, "post measures", &metric_target(&entry.metric))?;
                batches.push(MeasureBatch {
                    metric: entry.metric.compact_id,
                    timestamps: measures.timestamps,
                    values: measures.values,
                });
            }
            Err(crate::metric_cache::LookupError::Indexer(IndexerError::NoSuchMetric(_))) => {
                unknown.push(id.to_string())
            }
            Err(err) => return Err(lookup_error(err)),
        }
    }
    if !unknown.is_empty() {
        return Err(unknown_metrics(unknown));
    }
    append(&state, batches).await?;
    Ok(accepted())
}

#[utoipa::path(
    post,
    path = "/v1/batch/resources/metrics/measures",
    tag = "batch",
    params(
        ("create_metrics" = Option<bool>, Query, description = "Create missing metrics (by the given policy, or the matching rule)")
    ),
    request_body = doc::BatchResourcesMeasures,
    responses(
        (status = 202, description = "Accepted and durable"),
        (status = 400, description = "Invalid input, `Unknown metrics: …` or `Unknown resources`", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 415, description = "The body is not JSON", body = doc::ErrorBody)
    )
)]
async fn by_resource(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !is_json(&headers) {
        return Err(ApiError::unsupported_media_type());
    }
    let creator = caller.0.creator();
    let entries = parse(
        &body,
        Object(ResourcesBody {
            now: now(),
            creator: &creator,
        }),
    )?;
    // Gnocchi reads the flag only once some resource names a metric.
    let create_metrics = entries.iter().any(|entry| !entry.metrics.is_empty())
        && QueryParams::parse(raw.as_deref()).flag("create_metrics")?;
    let mut unknown_resources = Vec::new();
    let mut unknown_metrics = Vec::new();
    let mut batches = Vec::new();
    for ByName {
        original_id,
        resource_id,
        metrics: by_name,
    } in entries
    {
        let existing: HashMap<String, indexer::Metric> = state
            .indexer
            .list_metrics(
                &MetricFilter {
                    resource_id: Some(resource_id),
                    ..MetricFilter::default()
                },
                &indexer::Pagination::default(),
            )
            .await?
            .into_iter()
            .filter_map(|metric| metric.name.clone().map(|name| (name, metric)))
            .collect();
        let mut resource_missing = false;
        let mut named: BTreeMap<String, indexer::Metric> = BTreeMap::new();
        for (name, measures) in &by_name {
            if let Some(metric) = existing.get(name) {
                named.insert(name.clone(), metric.clone());
                continue;
            }
            if !create_metrics {
                unknown_metrics.push(format!("{resource_id}/{name}"));
                continue;
            }
            let new = NewMetric {
                id: None,
                name: Some(name.clone()),
                unit: measures.unit.clone(),
                archive_policy_name: measures.archive_policy_name.clone(),
                creator: creator.clone(),
                resource_id: Some(resource_id),
            };
            match state.indexer.create_metric(&new).await {
                Ok(metric) => {
                    let _ = state.metrics.insert(metric.clone());
                    named.insert(name.clone(), metric);
                }
                Err(IndexerError::NoSuchResource(_)) => {
                    resource_missing = true;
                    break;
                }
                Err(IndexerError::NamedMetricAlreadyExists { .. }) => {
                    // Created concurrently: use it.
                    if let Some(metric) =
                        state.indexer.get_resource_metric(resource_id, name).await?
                    {
                        named.insert(name.clone(), metric);
                    }
                }
                Err(err) => return Err(ApiError::bad_request(err.to_string())),
            }
        }
        if resource_missing {
            unknown_resources.push(json!({
                "resource_id": resource_id.to_string(),
                "original_resource_id": original_id,
            }));
            continue;
        }
        for (name, measures) in by_name {
            let Some(metric) = named.get(&name) else {
                continue;
            };
            caller.enforce(&state, "post measures", &metric_target(metric))?;
            batches.push(MeasureBatch {
                metric: metric.compact_id,
                timestamps: measures.measures.timestamps,
                values: measures.measures.values,
            });
        }
    }
    if !unknown_resources.is_empty() {
        return Err(ApiError::bad_request(json!({
            "cause": "Unknown resources",
            "detail": unknown_resources,
        })));
    }
    if !unknown_metrics.is_empty() {
        return Err(self::unknown_metrics(unknown_metrics));
    }
    append(&state, batches).await?;
    Ok(accepted())
}

/// Gnocchi's 400 for metrics a batch names but the index does not have.
fn unknown_metrics(mut names: Vec<String>) -> ApiError {
    names.sort();
    ApiError::bad_request(format!("Unknown metrics: {}", names.join(", ")))
}
