//! Gnocchi's InfluxDB compatibility layer: `/v1/influxdb/ping`,
//! `/v1/influxdb/query` (only `CREATE DATABASE`, which creates a resource
//! type) and `/v1/influxdb/write` (line protocol; see
//! [`crate::ingest::line_protocol`]).
//!
//! Also home of [`resource_metrics`], the get-or-create of a resource and its
//! named metrics that the Prometheus endpoint shares.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::head;
use indexer::{AttributeSchema, IndexerError, NewResource, ResourceMetric, ResourceUpdate};
use serde_json::{json, Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::Authenticated;
use super::measures::lookup_error;
use super::metric::metric_target;
use super::openapi as doc;
use super::query::QueryParams;
use super::resource::resource_target;
use super::root::GNOCCHI_API_BUILD;
use super::ApiError;
use crate::app::AppState;
use crate::auth::Target;
use crate::incoming::MeasureBatch;
use crate::ingest::line_protocol::{self, LineProtocolError};
use crate::ingest::MetricSeries;
use crate::time::now;

/// The tag naming the resource when the client sends no
/// `X-Gnocchi-InfluxDB-Tag-Resource-ID`.
const DEFAULT_RESOURCE_TAG: &str = "host";

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(ping))
        // Gnocchi (Pecan) answers HEAD on ping with 405; so do we.
        .route("/v1/influxdb/ping", head(head_not_allowed))
        .routes(routes!(query))
        .routes(routes!(write))
}

#[utoipa::path(
    get,
    path = "/v1/influxdb/ping",
    tag = "ingest",
    security(()),
    responses(
        (status = 204, description = "Up; `X-Influxdb-Version` names the Gnocchi build")
    )
)]
async fn ping() -> Response {
    let version = format!("Gnocchi {GNOCCHI_API_BUILD}");
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&version) {
        response.headers_mut().insert("x-influxdb-version", value);
    }
    response
}

async fn head_not_allowed() -> Response {
    ApiError::method_not_allowed("GET")
}

/// `CREATE DATABASE <name>` (case-insensitive) → the database name.
fn create_database(q: &str) -> Option<&str> {
    let mut words = q.split_whitespace();
    let create = words.next()?;
    let database = words.next()?;
    let name = words.next()?;
    if !create.eq_ignore_ascii_case("create")
        || !database.eq_ignore_ascii_case("database")
        || words.next().is_some()
    {
        return None;
    }
    let name = match name.strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"')?,
        None => name,
    };
    let mut chars = name.chars();
    let first = chars.next()?;
    ((first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_'))
    .then_some(name)
}

#[utoipa::path(
    post,
    path = "/v1/influxdb/query",
    tag = "ingest",
    params(
        ("q" = Option<String>, Query, description = "Only `CREATE DATABASE <name>` is understood")
    ),
    responses(
        (status = 204, description = "Done"),
        (status = 501, description = "Any other query", body = doc::ErrorBody)
    )
)]
async fn query(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(raw.as_deref());
    if let Some(q) = params.get("q") {
        let Some(name) = create_database(q) else {
            return Err(ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                json!({
                    "cause": "Not implemented error",
                    "detail": "q",
                    "reason": "Query not implemented",
                }),
            ));
        };
        caller.enforce(
            &state,
            "create resource type",
            &Target::new().with("name", Some(name)),
        )?;
        match state
            .indexer
            .create_resource_type(name, &BTreeMap::new())
            .await
        {
            Ok(_) | Err(IndexerError::ResourceTypeAlreadyExists(_)) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    post,
    path = "/v1/influxdb/write",
    tag = "ingest",
    params(
        ("db" = Option<String>, Query, description = "Database: the resource type of created resources (default `influxdb`)"),
        ("precision" = Option<String>, Query, description = "Timestamp unit: `n` (default), `u`, `ms`, `s`, `m`, `h`")
    ),
    request_body(content = String, content_type = "text/plain", description = "InfluxDB line protocol; the `X-Gnocchi-InfluxDB-Tag-Resource-ID` header names the tag identifying the resource (default `host`)"),
    responses(
        (status = 204, description = "Accepted and durable"),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody)
    )
)]
async fn write(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(raw.as_deref());
    let db = params.get("db").unwrap_or("influxdb").to_owned();
    let tag = headers
        .get("x-gnocchi-influxdb-tag-resource-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(DEFAULT_RESOURCE_TAG);
    let grouped = line_protocol::group(&body, tag, now()).map_err(|err| match err {
        LineProtocolError::Parse { .. } => ApiError::bad_request(json!({
            "cause": "Value error",
            "detail": "line",
            "reason": err.to_string(),
        })),
        LineProtocolError::MissingTag { .. } => ApiError::bad_request(json!({
            "cause": "Value error",
            "detail": "key",
            "reason": err.to_string(),
        })),
    })?;
    let creator = caller.0.creator();
    let mut resources: Vec<(String, MetricSeries)> = grouped.into_iter().collect();
    resources.sort_by(|a, b| a.0.cmp(&b.0));
    let mut batches = Vec::new();
    for (original_id, metrics) in resources {
        let wanted = AutoResource {
            type_name: &db,
            original_id: &original_id,
            attributes: Map::new(),
            type_attributes: None,
        };
        let ids = resource_metrics(&state, &caller, &creator, &wanted, metrics.keys()).await?;
        push_batches(&state, &caller, &ids, metrics, &mut batches).await?;
    }
    super::measures::append(&state, batches).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A resource that ingestion creates on first sight.
#[derive(Debug)]
pub(super) struct AutoResource<'a> {
    pub(super) type_name: &'a str,
    /// The id as the protocol gives it; the resource's UUID derives from it.
    pub(super) original_id: &'a str,
    /// Type-specific attributes set on creation.
    pub(super) attributes: Map<String, Value>,
    /// When given, the type is created with these attributes if missing;
    /// otherwise a missing type is a 404.
    pub(super) type_attributes: Option<&'a BTreeMap<String, AttributeSchema>>,
}

/// How many times a get-or-create is retried when it races another writer.
const ATTEMPTS: usize = 5;

/// The resource's metrics by name, after creating the resource (and its type,
/// when allowed) or appending the `names` it lacks: Gnocchi's
/// `get_or_create_resource_and_metrics`.
pub(super) async fn resource_metrics<'n>(
    state: &AppState,
    caller: &Authenticated,
    creator: &str,
    wanted: &AutoResource<'_>,
    names: impl Iterator<Item = &'n String> + Clone,
) -> Result<BTreeMap<String, Uuid>, ApiError> {
    let id = indexer::resource_uuid(wanted.original_id, creator)?;
    let new_metric = || ResourceMetric::New {
        archive_policy_name: None,
        unit: None,
    };
    for _ in 0..ATTEMPTS {
        match state.indexer.get_resource(wanted.type_name, id).await {
            Ok(resource) => {
                caller.enforce(state, "update resource", &resource_target(&resource))?;
                let missing: BTreeMap<String, ResourceMetric> = names
                    .clone()
                    .filter(|name| !resource.metrics.contains_key(name.as_str()))
                    .map(|name| (name.clone(), new_metric()))
                    .collect();
                if missing.is_empty() {
                    return Ok(resource.metrics);
                }
                let update = ResourceUpdate {
                    metrics: Some(missing),
                    append_metrics: true,
                    ..ResourceUpdate::default()
                };
                match state
                    .indexer
                    .update_resource(wanted.type_name, id, &update)
                    .await
                {
                    Ok(resource) => return Ok(resource.metrics),
                    Err(
                        IndexerError::NamedMetricAlreadyExists { .. }
                        | IndexerError::NoSuchResource(_),
                    ) => continue,
                    Err(err) => return Err(err.into()),
                }
            }
            Err(IndexerError::NoSuchResourceType(name)) => {
                let Some(attributes) = wanted.type_attributes else {
                    return Err(IndexerError::NoSuchResourceType(name).into());
                };
                caller.enforce(
                    state,
                    "create resource type",
                    &Target::new().with("name", Some(wanted.type_name)),
                )?;
                match state
                    .indexer
                    .create_resource_type(wanted.type_name, attributes)
                    .await
                {
                    Ok(_) | Err(IndexerError::ResourceTypeAlreadyExists(_)) => continue,
                    Err(err) => return Err(err.into()),
                }
            }
            Err(IndexerError::NoSuchResource(_)) => {
                let id_text = id.to_string();
                let target = Target::new()
                    .with("id", Some(&id_text))
                    .with("resource_type", Some(wanted.type_name))
                    .with("creator", Some(creator))
                    .with("original_resource_id", Some(wanted.original_id));
                caller.enforce(state, "create resource", &target)?;
                let new = NewResource {
                    id,
                    original_resource_id: wanted.original_id.to_owned(),
                    creator: creator.to_owned(),
                    user_id: None,
                    project_id: None,
                    started_at: None,
                    ended_at: None,
                    attributes: wanted.attributes.clone(),
                    metrics: names
                        .clone()
                        .map(|name| (name.clone(), new_metric()))
                        .collect(),
                };
                match state.indexer.create_resource(wanted.type_name, &new).await {
                    Ok(resource) => return Ok(resource.metrics),
                    Err(IndexerError::ResourceAlreadyExists(_)) => {
                        // Another type holds this id, or a racing writer won.
                        let existing = state.indexer.get_resource("generic", id).await;
                        if existing.is_ok_and(|r| r.resource_type != wanted.type_name) {
                            return Err(ApiError::new(
                                StatusCode::CONFLICT,
                                json!({
                                    "cause": "Resource already exists",
                                    "detail": id_text,
                                }),
                            ));
                        }
                        continue;
                    }
                    Err(IndexerError::InvalidAttribute { attribute, reason }) => {
                        return Err(ApiError::bad_request(format!(
                            "Invalid input: {reason} for dictionary value @ data['{attribute}']"
                        )))
                    }
                    Err(err) => return Err(err.into()),
                }
            }
            Err(err) => return Err(err.into()),
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        format!("Resource {id} changed concurrently, try again"),
    ))
}

/// Turns measures by metric name into batches for the metrics in `ids`,
/// checking the caller may post to each.
pub(super) async fn push_batches(
    state: &AppState,
    caller: &Authenticated,
    ids: &BTreeMap<String, Uuid>,
    metrics: MetricSeries,
    batches: &mut Vec<MeasureBatch>,
) -> Result<(), ApiError> {
    for (name, series) in metrics {
        let Some(&metric_id) = ids.get(&name) else {
            continue;
        };
        if series.values.is_empty() {
            continue;
        }
        let entry = state.metrics.by_id(metric_id).await.map_err(lookup_error)?;
        caller.enforce(state, "post measures", &metric_target(&entry.metric))?;
        batches.push(MeasureBatch {
            metric: entry.metric.compact_id,
            timestamps: series.timestamps,
            values: series.values,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::create_database;

    #[test]
    fn only_create_database_is_understood() {
        assert_eq!(
            create_database("create database influxdbtest"),
            Some("influxdbtest")
        );
        assert_eq!(create_database("CREATE  DATABASE \"my_db\""), Some("my_db"));
        assert_eq!(create_database("select metrics plz"), None);
        assert_eq!(create_database("create database"), None);
        assert_eq!(create_database("create database a b"), None);
        assert_eq!(create_database("create database a/b"), None);
    }
}
