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
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{is_json, Authenticated};
use super::measures::{accepted, append, lookup_error};
use super::measures_body::{measures_error, MeasureList, Measures};
use super::metric::metric_target;
use super::openapi as doc;
use super::query::QueryParams;
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

#[derive(Debug, Clone, Copy)]
struct MetricMeasuresSeed {
    now: i64,
}

impl<'de> DeserializeSeed<'de> for MetricMeasuresSeed {
    type Value = MetricMeasures;

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<MetricMeasures, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MetricMeasuresSeed {
    type Value = MetricMeasures;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of measures or {\"measures\": [...]}")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<MetricMeasures, A::Error> {
        Ok(MetricMeasures {
            measures: MeasureList { now: self.now }.visit_seq(seq)?,
            ..MetricMeasures::default()
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MetricMeasures, A::Error> {
        let mut out = MetricMeasures::default();
        let mut seen_measures = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "measures" => {
                    out.measures = map.next_value_seed(MeasureList { now: self.now })?;
                    seen_measures = true;
                }
                "archive_policy_name" => out.archive_policy_name = Some(map.next_value()?),
                "unit" => out.unit = Some(map.next_value()?),
                other => {
                    return Err(de::Error::custom(format!(
                        "extra keys not allowed @ data['{other}']"
                    )))
                }
            }
        }
        if !seen_measures {
            return Err(de::Error::custom(
                "required key not provided @ data['measures']",
            ));
        }
        Ok(out)
    }
}

/// `{key: value-from-seed, ...}` keeping the keys' order.
#[derive(Debug, Clone, Copy)]
struct MapOf<S> {
    seed: S,
}

impl<'de, S> DeserializeSeed<'de> for MapOf<S>
where
    S: DeserializeSeed<'de> + Copy,
{
    type Value = Vec<(String, S::Value)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, S> Visitor<'de> for MapOf<S>
where
    S: DeserializeSeed<'de> + Copy,
{
    type Value = Vec<(String, S::Value)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a dictionary")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            entries.push((key, map.next_value_seed(self.seed)?));
        }
        Ok(entries)
    }
}

fn parse<'de, S: DeserializeSeed<'de>>(body: &'de [u8], seed: S) -> Result<S::Value, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    seed.deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value))
        .map_err(measures_error)
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
    let entries = parse(
        &body,
        MapOf {
            seed: MetricMeasuresSeed { now: now() },
        },
    )?;
    let mut ids = Vec::with_capacity(entries.len());
    for (key, _) in &entries {
        let id = Uuid::parse_str(key).map_err(|_| {
            ApiError::bad_request(json!({
                "cause": "Invalid input",
                "reason": format!("not a valid value for dictionary value @ data['{key}']"),
                "detail": [key],
            }))
        })?;
        ids.push(id);
    }
    let mut batches = Vec::with_capacity(entries.len());
    let mut unknown = Vec::new();
    for ((_, measures), id) in entries.into_iter().zip(ids) {
        match state.metrics.by_id(id).await {
            Ok(entry) => {
                caller.enforce(&state, "post measures", &metric_target(&entry.metric))?;
                batches.push(MeasureBatch {
                    metric: entry.metric.compact_id,
                    timestamps: measures.measures.timestamps,
                    values: measures.measures.values,
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
    let create_metrics = QueryParams::parse(raw.as_deref()).flag("create_metrics")?;
    let seed = MapOf {
        seed: MetricMeasuresSeed { now: now() },
    };
    let entries = parse(&body, MapOf { seed })?;
    let creator = caller.0.creator();
    let mut unknown_resources = Vec::new();
    let mut unknown_metrics = Vec::new();
    let mut batches = Vec::new();
    for (original_id, by_name) in entries {
        let resource_id = indexer::resource_uuid(&original_id, &creator).map_err(|err| {
            ApiError::bad_request(json!({
                "cause": "Invalid input",
                "reason": err.to_string(),
                "detail": [original_id],
            }))
        })?;
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
