//! Measures of one metric: `POST` (202 once durable) and `GET` (aggregates),
//! by metric id or by resource and metric name.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use carbonara::aggregated::retain_range;
use carbonara::aggregation::{Method, Scratch};
use carbonara::calendar::{resample_calendar, CalendarGrouping};
use carbonara::split::{SplitError, SplitKey};
use carbonara::timespan::{format_seconds, parse_timespan};
use carbonara::timestamp::floor;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{is_json, Authenticated};
use super::json::MeasureRows;
use super::measures_body::parse_measures;
use super::metric::metric_target;
use super::openapi as doc;
use super::query::QueryParams;
use super::ApiError;
use crate::app::AppState;
use crate::incoming::MeasureBatch;
use crate::metric_cache::CachedMetric;
use crate::time::{now, parse_timestamp, RawTimestamp};

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(add_by_id, get_by_id))
        .routes(routes!(add_by_name, get_by_name))
}

/// The metric a measures route names, checked against `action`.
async fn metric_by_id(
    state: &AppState,
    caller: &Authenticated,
    id: &str,
    action: &str,
) -> Result<Arc<CachedMetric>, ApiError> {
    let uuid = super::metric::metric_id(id)?;
    let entry = state.metrics.by_id(uuid).await.map_err(lookup_error)?;
    caller.enforce(state, action, &metric_target(&entry.metric))?;
    Ok(entry)
}

async fn metric_by_name(
    state: &AppState,
    caller: &Authenticated,
    resource: &str,
    name: &str,
    action: &str,
) -> Result<Arc<CachedMetric>, ApiError> {
    let resource_id = indexer::resource_uuid(resource, &caller.0.creator())
        .map_err(|_| ApiError::not_found(format!("Resource {resource} does not exist")))?;
    let Some(metric) = state.indexer.get_resource_metric(resource_id, name).await? else {
        // Gnocchi names the resource when that is what is missing.
        state.indexer.get_resource("generic", resource_id).await?;
        return Err(ApiError::not_found(format!("Metric {name} does not exist")));
    };
    metric_by_id(state, caller, &metric.id.to_string(), action).await
}

pub(super) fn lookup_error(error: crate::metric_cache::LookupError) -> ApiError {
    match error {
        crate::metric_cache::LookupError::Indexer(err) => err.into(),
        other => ApiError::internal(other),
    }
}

#[utoipa::path(
    post,
    path = "/v1/metric/{id}/measures",
    tag = "metric",
    params(("id" = String, Path, description = "Metric UUID")),
    request_body = Vec<doc::Measure>,
    responses(
        (status = 202, description = "Accepted and durable; aggregated in the background"),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such metric", body = doc::ErrorBody),
        (status = 415, description = "The body is not JSON", body = doc::ErrorBody)
    )
)]
async fn add_by_id(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let entry = metric_by_id(&state, &caller, &id, "post measures").await?;
    add(&state, &entry, &headers, &body).await
}

#[utoipa::path(
    post,
    path = "/v1/resource/{type}/{id}/metric/{name}/measures",
    tag = "metric",
    params(
        ("type" = String, Path, description = "Resource type name (`generic` reaches every type)"),
        ("id" = String, Path, description = "Resource id: a UUID or the original id the creator gave"),
        ("name" = String, Path, description = "Metric name on the resource")
    ),
    request_body = Vec<doc::Measure>,
    responses(
        (status = 202, description = "Accepted and durable; aggregated in the background"),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such resource or metric", body = doc::ErrorBody),
        (status = 415, description = "The body is not JSON", body = doc::ErrorBody)
    )
)]
async fn add_by_name(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path((_type, resource, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let entry = metric_by_name(&state, &caller, &resource, &name, "post measures").await?;
    add(&state, &entry, &headers, &body).await
}

async fn add(
    state: &AppState,
    entry: &CachedMetric,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    if !is_json(headers) {
        return Err(ApiError::unsupported_media_type());
    }
    let measures = parse_measures(body, now())?;
    append(
        state,
        vec![MeasureBatch {
            metric: entry.metric.compact_id,
            timestamps: measures.timestamps,
            values: measures.values,
        }],
    )
    .await?;
    Ok(accepted())
}

/// Appends checked batches to the incoming store; returns once durable.
pub(super) async fn append(state: &AppState, batches: Vec<MeasureBatch>) -> Result<(), ApiError> {
    if batches.is_empty() {
        return Ok(());
    }
    state
        .incoming
        .append(batches)
        .await
        .map_err(ApiError::internal)
}

/// `202 Accepted` with an empty body: the measures are durable.
pub(super) fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::CONTENT_LENGTH, HeaderValue::from_static("0"))],
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/v1/metric/{id}/measures",
    tag = "metric",
    params(("id" = String, Path, description = "Metric UUID"), doc::MeasuresParams),
    responses(
        (status = 200, description = "The points, oldest first, coarsest granularity first", body = Vec<doc::MeasureRow>),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such metric, or no such aggregation method or granularity in its policy", body = doc::ErrorBody)
    )
)]
async fn get_by_id(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let entry = metric_by_id(&state, &caller, &id, "get measures").await?;
    get(&state, &entry, &QueryParams::parse(raw.as_deref())).await
}

#[utoipa::path(
    get,
    path = "/v1/resource/{type}/{id}/metric/{name}/measures",
    tag = "metric",
    params(
        ("type" = String, Path, description = "Resource type name (`generic` reaches every type)"),
        ("id" = String, Path, description = "Resource id: a UUID or the original id the creator gave"),
        ("name" = String, Path, description = "Metric name on the resource"),
        doc::MeasuresParams
    ),
    responses(
        (status = 200, description = "The points, oldest first, coarsest granularity first", body = Vec<doc::MeasureRow>),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such resource, metric, aggregation method or granularity", body = doc::ErrorBody)
    )
)]
async fn get_by_name(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path((_type, resource, name)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let entry = metric_by_name(&state, &caller, &resource, &name, "get measures").await?;
    get(&state, &entry, &QueryParams::parse(raw.as_deref())).await
}

/// How a read regroups the stored points.
#[derive(Debug, Clone, Copy)]
enum Resample {
    Every(i64),
    Calendar(CalendarGrouping),
}

fn argument_error(reason: impl Into<String>, detail: &str) -> ApiError {
    ApiError::bad_request(json!({
        "cause": "Argument value error",
        "reason": reason.into(),
        "detail": detail,
    }))
}

/// Reads a `start`/`stop` parameter.
pub(super) fn time_param(query: &QueryParams, name: &str) -> Result<Option<i64>, ApiError> {
    query
        .get(name)
        .map(|text| {
            parse_timestamp(RawTimestamp::Text(text), now())
                .map_err(|_| argument_error("Must be a datetime or a timestamp", name))
        })
        .transpose()
}

async fn get(
    state: &AppState,
    entry: &CachedMetric,
    query: &QueryParams,
) -> Result<Response, ApiError> {
    let method_name = query.get("aggregation").unwrap_or("mean");
    let method: Method = method_name
        .parse()
        .map_err(|_| aggregation_missing(entry, method_name))?;
    if !entry.policy.aggregation_methods().contains(&method) {
        return Err(aggregation_missing(entry, method_name));
    }
    let granularity = query
        .get("granularity")
        .map(|text| {
            parse_timespan(text).map_err(|err| argument_error(err.to_string(), "granularity"))
        })
        .transpose()?;
    if let Some(granularity) = granularity {
        if !entry
            .policy
            .definition()
            .iter()
            .any(|item| item.granularity() == granularity)
        {
            return Err(ApiError::not_found(format!(
                "Aggregation method '{method_name}' at granularity '{}' for metric {} does not exist",
                format_seconds(granularity),
                entry.metric.id
            )));
        }
    }
    let resample = match query.get("resample") {
        None => None,
        Some(text) => {
            if granularity.is_none() {
                return Err(ApiError::bad_request(
                    "A granularity must be specified to resample",
                ));
            }
            Some(match text.parse::<CalendarGrouping>() {
                Ok(grouping) => Resample::Calendar(grouping),
                // Gnocchi answers these with the bare reason, not an argument error.
                Err(_) => Resample::Every(
                    parse_timespan(text).map_err(|err| ApiError::bad_request(err.to_string()))?,
                ),
            })
        }
    };
    let start = time_param(query, "start")?;
    let stop = time_param(query, "stop")?;
    if query.flag("refresh")? {
        state
            .metricd
            .process_metric(entry.metric.compact_id)
            .await
            .map_err(ApiError::internal)?;
    }
    // Gnocchi resamples the splits holding `start` and `stop` whole and
    // cuts only the resampled buckets: a bucket straddling either counts all
    // its points, and the first rate reaches back before `start`.
    let (read_start, read_stop) = match (resample, granularity) {
        (Some(_), Some(g)) => whole_splits(start, stop, g).map_err(ApiError::internal)?,
        _ => (start, stop),
    };
    let series = state
        .storage
        .read_aggregates(
            entry.metric.id,
            &entry.policy,
            method,
            granularity,
            read_start,
            read_stop,
        )
        .await
        .map_err(ApiError::internal)?;
    let mut body = Vec::with_capacity(64 + series.iter().map(|s| s.len() * 48).sum::<usize>());
    body.push(b'[');
    let mut any = false;
    let mut scratch = Scratch::new();
    for stored in &series {
        let (mut rows, regrouped) = match resample {
            None => (MeasureRows::seconds(stored.granularity()), None),
            Some(Resample::Every(every)) => {
                let mut regrouped = stored
                    .resample(every, method, &mut scratch)
                    .map_err(|err| ApiError::bad_request(err.to_string()))?;
                regrouped.retain_range(start.map(|s| floor(s, every)), stop);
                (MeasureRows::seconds(every), Some(regrouped.into_parts()))
            }
            Some(Resample::Calendar(grouping)) => {
                let (mut timestamps, mut values) = resample_calendar(
                    stored.timestamps(),
                    stored.values(),
                    grouping,
                    method,
                    &mut scratch,
                )
                .map_err(|err| ApiError::bad_request(err.to_string()))?;
                // Gnocchi fails on `start` with a calendar grouping; the
                // period holding it is what one asks for.
                let first = start.map(|s| grouping.bounds(s).0);
                retain_range(&mut timestamps, &mut values, first, stop);
                (MeasureRows::calendar(grouping), Some((timestamps, values)))
            }
        };
        let (timestamps, values) = match &regrouped {
            Some((ts, vs)) => (&ts[..], &vs[..]),
            None => (stored.timestamps(), stored.values()),
        };
        rows = rows.after(any);
        for (&timestamp, &value) in timestamps.iter().zip(values) {
            rows.push(&mut body, timestamp, value);
        }
        any = rows.any();
    }
    body.push(b']');
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// `[start, stop)` widened to the whole splits of `granularity` holding
/// `start` and `stop`.
fn whole_splits(
    start: Option<i64>,
    stop: Option<i64>,
    granularity: i64,
) -> Result<(Option<i64>, Option<i64>), SplitError> {
    let split = |t| SplitKey::containing(t, granularity);
    Ok((
        start.map(split).transpose()?.map(|key| key.start()),
        stop.map(split).transpose()?.map(|key| key.end()),
    ))
}

fn aggregation_missing(entry: &CachedMetric, method: &str) -> ApiError {
    ApiError::not_found(json!({
        "cause": "Aggregation method does not exist for this metric",
        "detail": {"metric": entry.metric.id.to_string(), "aggregation_method": method},
    }))
}
