//! `/v1/resource`: create, list, show, change and delete resources, read
//! their history, and reach their metrics by name.
//!
//! A resource id in a path or a body may be any string: UUIDs are used as
//! they are, anything else maps to a UUID5 of the text and the caller (as
//! Gnocchi does), so the same name given by two users names two resources.
//! `GET` and `PATCH` answers carry `ETag` and `Last-Modified`, and the
//! conditional headers are honoured the way Gnocchi (through WebOb) does.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use indexer::{
    Filter, FilterValue, IndexerError, MetricFilter, MetricStatus, NewResource, Op, Pagination,
    Resource, ResourceMetric, ResourceType, ResourceUpdate, SearchOptions, SortKey,
};
use serde_json::{json, Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{Authenticated, BaseUrl};
use super::json::Json;
use super::metric::{metric_json, metric_target, MetricView};
use super::openapi as doc;
use super::query::{parse_bool, unparsable_bool, Page, QueryParams};
use super::validate::Invalid;
use super::{created, path_segment, ApiError};
use crate::app::AppState;
use crate::auth::Target;
use crate::config::AuthMode;
use crate::time::{iso8601, parse_timestamp, RawTimestamp};

/// Gnocchi's default order of resource listings and searches.
const DEFAULT_SORT: &[&str] = &["revision_start:asc", "started_at:asc"];

/// Longest unit Gnocchi stores for a metric.
const MAX_UNIT_LEN: usize = 31;

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(list, create, remove_many))
        .routes(routes!(show, update, remove))
        .routes(routes!(history))
        .routes(routes!(metrics, add_metrics))
        .routes(routes!(show_metric, remove_metric))
}

fn datetime(value: &DateTime<Utc>) -> Value {
    Value::String(iso8601(value.timestamp_nanos_opt().unwrap_or(i64::MAX)))
}

/// A resource's JSON: generic attributes, its type's attributes and its
/// metrics by name.
pub(super) fn resource_json(resource: &Resource) -> Value {
    let mut object = Map::new();
    object.insert("id".into(), Value::String(resource.id.to_string()));
    object.insert("type".into(), Value::String(resource.resource_type.clone()));
    object.insert(
        "original_resource_id".into(),
        Value::String(resource.original_resource_id.clone()),
    );
    object.insert("creator".into(), Value::String(resource.creator.clone()));
    object.insert(
        "created_by_user_id".into(),
        Value::String(resource.created_by_user_id.clone()),
    );
    object.insert(
        "created_by_project_id".into(),
        Value::String(resource.created_by_project_id.clone()),
    );
    object.insert("user_id".into(), resource.user_id.clone().into());
    object.insert("project_id".into(), resource.project_id.clone().into());
    object.insert("started_at".into(), datetime(&resource.started_at));
    object.insert(
        "ended_at".into(),
        resource.ended_at.as_ref().map_or(Value::Null, datetime),
    );
    object.insert("revision_start".into(), datetime(&resource.revision_start));
    object.insert(
        "revision_end".into(),
        resource.revision_end.as_ref().map_or(Value::Null, datetime),
    );
    object.insert(
        "metrics".into(),
        Value::Object(
            resource
                .metrics
                .iter()
                .map(|(name, id)| (name.clone(), Value::String(id.to_string())))
                .collect(),
        ),
    );
    for (name, value) in &resource.attributes {
        object.insert(name.clone(), value.clone());
    }
    Value::Object(object)
}

/// What the access rules look at on a resource.
pub(super) fn resource_target(resource: &Resource) -> Target {
    Target::new()
        .with("id", Some(&resource.id.to_string()))
        .with("resource_type", Some(&resource.resource_type))
        .with("type", Some(&resource.resource_type))
        .with("creator", Some(&resource.creator))
        .with("created_by_user_id", Some(&resource.created_by_user_id))
        .with(
            "created_by_project_id",
            Some(&resource.created_by_project_id),
        )
        .with("user_id", resource.user_id.as_deref())
        .with("project_id", resource.project_id.as_deref())
}

// ---------------------------------------------------------------------------
// Request reading shared with search and resource types.

/// A JSON body of one of the `accepted` media types, failing as Gnocchi's
/// `deserialize` does: 415 for another type, a structured 400 otherwise.
pub(super) fn read_json(
    headers: &HeaderMap,
    body: &Bytes,
    accepted: &[&str],
) -> Result<Value, ApiError> {
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    if !mime.is_some_and(|m| accepted.contains(&m.as_str())) {
        return Err(ApiError::unsupported_media_type());
    }
    serde_json::from_slice(body).map_err(|err| {
        let reason = if body.iter().all(u8::is_ascii_whitespace) {
            "Expected object or value".to_owned()
        } else {
            err.to_string()
        };
        ApiError::bad_request(json!({
            "cause": "Unable to decode body",
            "reason": reason,
            "detail": [],
        }))
    })
}

/// voluptuous' location text: `data['a'][0]`.
pub(super) fn location(path: &[String]) -> String {
    let mut text = String::from("data");
    for part in path {
        if part.parse::<usize>().is_ok() {
            text.push_str(&format!("[{part}]"));
        } else {
            text.push_str(&format!("['{part}']"));
        }
    }
    text
}

/// A voluptuous error about a key (missing or extra) rather than its value.
pub(super) fn key_error(path: &[String], message: &str) -> ApiError {
    ApiError::bad_request(json!({
        "cause": "Invalid input",
        "reason": format!("{message} @ {}", location(path)),
        "detail": path,
    }))
}

/// A voluptuous error about the value at `path`.
pub(super) fn value_error(path: &[String], message: impl Into<String>) -> ApiError {
    Invalid::value(path, message).into()
}

fn path_of(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| (*p).to_owned()).collect()
}

/// The filter of a search or a batch delete: the JSON body when there is
/// one, else the `filter` query parameter (string syntax), else none.
pub(super) fn request_filter(
    headers: &HeaderMap,
    body: &Bytes,
    query: &QueryParams,
) -> Result<Option<Filter>, ApiError> {
    if !body.is_empty() {
        let value = read_json(headers, body, &["application/json"])?;
        return indexer::search::parse_json(&value).map_err(search_error);
    }
    match query.get("filter").filter(|text| !text.trim().is_empty()) {
        Some(text) => string_filter(text).map(Some),
        None => Ok(None),
    }
}

/// A filter in the string form: text the grammar cannot read is an
/// "Invalid filter", a tree the schema refuses is "Invalid input".
pub(super) fn string_filter(text: &str) -> Result<Filter, ApiError> {
    indexer::search::parse_string(text).map_err(|err| match err {
        refused @ IndexerError::InvalidFilter { .. } => search_error(refused),
        other => ApiError::bad_request(format!("Invalid filter: {other}")),
    })
}

/// Search failures: a filter the schema refuses is the structured
/// "Invalid input", the others stay text.
pub(super) fn search_error(error: IndexerError) -> ApiError {
    match error {
        IndexerError::InvalidFilter { reason, path } => ApiError::bad_request(json!({
            "cause": "Invalid input",
            "reason": reason,
            "detail": path,
        })),
        other => other.into(),
    }
}

/// The `attrs` projection: every value of the parameter.
pub(super) fn requested_attrs(query: &QueryParams) -> Vec<String> {
    query.all("attrs").map(str::to_owned).collect()
}

/// Restricts what non-admins reach, as Gnocchi's policy filter does: when the
/// rule does not allow `action` on every resource of the type, only the
/// resources the caller created or whose project is the caller's.
///
/// Gnocchi computes that filter only with project-aware identities (its
/// Keystone and `noauth` helpers); its basic and remote-user helpers return
/// no filter, so there every caller lists, searches and batch-deletes every
/// resource, and reading one still checks `get resource`. We follow that: in
/// those modes the identity is whatever name the client sends (anyone may
/// send `admin:`), so a filter would protect nothing and only break clients.
pub(super) fn policy_filter(
    state: &AppState,
    caller: &Authenticated,
    action: &str,
    type_name: &str,
) -> Result<Option<Filter>, ApiError> {
    if state.config.auth_mode != AuthMode::Noauth {
        return Ok(None);
    }
    let base = || Target::new().with("resource_type", Some(type_name));
    if state.policy.allows(action, &caller.0, &base()) {
        return Ok(None);
    }
    let mut allowed = Vec::new();
    let creator = caller.0.creator();
    let own = base()
        .with("creator", Some(&creator))
        .with("created_by_user_id", Some(&caller.0.user_id))
        .with("created_by_project_id", caller.0.project_id.as_deref());
    if state.policy.allows(action, &caller.0, &own) {
        allowed.push(Filter::Compare {
            op: Op::Eq,
            attr: "creator".into(),
            value: FilterValue::String(creator.clone()),
        });
    }
    if let Some(project) = &caller.0.project_id {
        if state
            .policy
            .allows(action, &caller.0, &base().with("project_id", Some(project)))
        {
            allowed.push(Filter::Compare {
                op: Op::Eq,
                attr: "project_id".into(),
                value: FilterValue::String(project.clone()),
            });
        }
        if state.policy.allows(
            action,
            &caller.0,
            &base().with("created_by_project_id", Some(project)),
        ) {
            // Gnocchi writes this as `creator LIKE '%:<project>'`, which lets a
            // project id containing `%` or `_` match other projects' resources;
            // the index keeps the creator's project in its own column.
            allowed.push(Filter::Compare {
                op: Op::Eq,
                attr: "created_by_project_id".into(),
                value: FilterValue::String(project.clone()),
            });
        }
    }
    if allowed.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Insufficient privileges",
        ));
    }
    Ok(Some(Filter::Or(allowed)))
}

/// Both filters, either of which may be absent.
pub(super) fn combine(policy: Option<Filter>, asked: Option<Filter>) -> Option<Filter> {
    match (policy, asked) {
        (Some(policy), Some(asked)) => Some(Filter::And(vec![policy, asked])),
        (policy, asked) => policy.or(asked),
    }
}

/// A page of resources, projected on `attrs` when given, with the `Link` to
/// the next page when this one is full.
pub(super) fn list_response(
    resources: &[Resource],
    attrs: &[String],
    page: &Page,
    url: &str,
    query: &QueryParams,
    history: bool,
) -> Response {
    let rendered = resources
        .iter()
        .map(|resource| {
            let mut value = resource_json(resource);
            if !attrs.is_empty() {
                if let Value::Object(object) = &mut value {
                    object.retain(|key, _| attrs.iter().any(|attr| attr == key));
                }
            }
            value
        })
        .collect();
    let mut response = Json(Value::Array(rendered)).into_response();
    page.link_next(
        &mut response,
        url,
        query,
        resources.len(),
        resources.last().map(|last| last.marker(history)),
    );
    response
}

/// Reads the listing parameters: `details` and `history` (from the query or,
/// as Gnocchi allows, from parameters of the `Accept` header) and the page.
pub(super) fn listing_options(
    state: &AppState,
    headers: &HeaderMap,
    query: &QueryParams,
) -> Result<(bool, bool, Page), ApiError> {
    let details = accept_flag(headers, query, "details")?;
    let history = accept_flag(headers, query, "history")?;
    let page = query.pagination(state.config.max_limit, DEFAULT_SORT)?;
    Ok((details, history, page))
}

/// A boolean option given as a parameter of the `Accept` header
/// (`application/json; history=true`) or else in the query string.
fn accept_flag(headers: &HeaderMap, query: &QueryParams, name: &str) -> Result<bool, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let given = accept
        .split(',')
        .flat_map(|range| range.split(';').skip(1))
        .filter_map(|param| param.split_once('='))
        .find(|(key, _)| key.trim().eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim().trim_matches('"').to_owned());
    match given {
        None => query.flag(name),
        Some(value) => parse_bool(&value).ok_or_else(|| unparsable_bool("Accept header", &value)),
    }
}

// ---------------------------------------------------------------------------
// Conditional requests.

fn etag(resource: &Resource) -> String {
    format!("\"{}\"", resource.etag())
}

/// `Last-Modified` has a one-second resolution.
fn last_modified(resource: &Resource) -> i64 {
    resource.last_modified().timestamp()
}

fn http_date(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

fn parse_http_date(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc2822(text.trim())
        .ok()
        .map(|t| t.timestamp())
}

/// Whether an `If-Match`/`If-None-Match` list names `etag` (or is `*`).
fn etag_listed(list: &str, etag: &str) -> bool {
    let bare = etag.trim_matches('"');
    list.split(',').map(str::trim).any(|item| {
        let item = item.strip_prefix("W/").unwrap_or(item);
        item == "*" || item.trim_matches('"') == bare
    })
}

/// Gnocchi's precondition checks (RFC 7232 order): the 412 or 304 answer
/// when one applies.
fn precondition(headers: &HeaderMap, method: &Method, resource: &Resource) -> Option<Response> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let tag = etag(resource);
    let modified = last_modified(resource);
    let failed =
        || ApiError::new(StatusCode::PRECONDITION_FAILED, "Condition failed").into_response();
    let reading = method == Method::GET || method == Method::HEAD;
    if let Some(list) = text(header::IF_MATCH) {
        if !etag_listed(list, &tag) {
            return Some(failed());
        }
    } else if let Some(since) = text(header::IF_UNMODIFIED_SINCE).and_then(parse_http_date) {
        if since < modified {
            return Some(failed());
        }
    }
    if let Some(list) = text(header::IF_NONE_MATCH) {
        if etag_listed(list, &tag) {
            return Some(if reading {
                not_modified(resource)
            } else {
                failed()
            });
        }
    } else if let Some(since) = text(header::IF_MODIFIED_SINCE).and_then(parse_http_date) {
        if reading && since >= modified {
            return Some(not_modified(resource));
        }
    }
    None
}

fn not_modified(resource: &Resource) -> Response {
    with_validators(StatusCode::NOT_MODIFIED.into_response(), resource)
}

/// Adds `ETag` and `Last-Modified`.
fn with_validators(mut response: Response, resource: &Resource) -> Response {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag(resource)) {
        headers.insert(header::ETAG, value);
    }
    if let Ok(value) = HeaderValue::from_str(&http_date(last_modified(resource))) {
        headers.insert(header::LAST_MODIFIED, value);
    }
    response
}

// ---------------------------------------------------------------------------
// Loading.

/// The UUID a path's resource id designates for this caller; an id that
/// cannot be one names no resource.
fn resource_id(caller: &Authenticated, id: &str) -> Result<Uuid, ApiError> {
    indexer::resource_uuid(id, &caller.0.creator())
        .map_err(|_| ApiError::not_found(format!("Resource {id} does not exist")))
}

/// Loads a resource of `type_name` and checks `action` on it.
async fn authorized_resource(
    state: &AppState,
    caller: &Authenticated,
    type_name: &str,
    id: &str,
    action: &str,
) -> Result<Resource, ApiError> {
    state.indexer.get_resource_type(type_name).await?;
    let uuid = resource_id(caller, id)?;
    let resource = state.indexer.get_resource(type_name, uuid).await?;
    caller.enforce(state, action, &resource_target(&resource))?;
    Ok(resource)
}

/// Failures of writes: missing metrics and policies are the client's fault
/// (400), attribute values fail as voluptuous would.
fn write_error(error: IndexerError) -> ApiError {
    match error {
        IndexerError::NoSuchMetric(_) | IndexerError::NoSuchArchivePolicy(_) => {
            ApiError::bad_request(error.to_string())
        }
        IndexerError::InvalidAttribute { attribute, reason } => {
            let path = vec![attribute];
            if reason.starts_with("Start timestamp") {
                ApiError::bad_request(reason)
            } else if reason == "extra keys not allowed" || reason == "required key not provided" {
                key_error(&path, &reason)
            } else {
                value_error(&path, reason)
            }
        }
        other => other.into(),
    }
}

// ---------------------------------------------------------------------------
// Bodies.

/// The generic fields of a create or update body and the type's attributes.
#[derive(Debug, Default)]
struct Fields {
    user_id: Option<Option<String>>,
    project_id: Option<Option<String>>,
    started_at: Option<DateTime<Utc>>,
    ended_at: Option<Option<DateTime<Utc>>>,
    metrics: Option<BTreeMap<String, ResourceMetric>>,
    attributes: Map<String, Value>,
}

/// `user_id` and `project_id`: Gnocchi's `Any(None, str)`, whose first
/// alternative's refusal is the one reported.
fn optional_text(value: &Value, key: &str) -> Result<Option<String>, ApiError> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text.clone())),
        _ => Err(value_error(&path_of(&[key]), "not a valid value")),
    }
}

/// `started_at` and `ended_at`: whatever `to_datetime` refuses (text it
/// cannot read, a time before the epoch) is "not a valid value".
fn timestamp(value: &Value, key: &str) -> Result<DateTime<Utc>, ApiError> {
    let raw = match value {
        Value::String(text) => Some(RawTimestamp::Text(text)),
        Value::Number(number) => number.as_f64().map(RawTimestamp::Number),
        _ => None,
    };
    raw.and_then(|raw| parse_timestamp(raw, crate::time::now()).ok())
        .map(DateTime::from_timestamp_nanos)
        .ok_or_else(|| value_error(&path_of(&[key]), "not a valid value"))
}

/// The `metrics` of a body: by name, an existing metric's UUID or the
/// definition of a metric to create.
fn parse_metrics(
    value: &Value,
    path: &[String],
) -> Result<BTreeMap<String, ResourceMetric>, ApiError> {
    let object = value
        .as_object()
        .ok_or_else(|| value_error(path, "expected a dictionary"))?;
    let mut metrics = BTreeMap::new();
    for (name, definition) in object {
        if name.contains('/') {
            return Err(value_error(path, "'/' is not supported in metric name"));
        }
        let mut here = path.to_vec();
        here.push(name.clone());
        let metric = match definition {
            Value::String(text) => ResourceMetric::Existing(
                Uuid::parse_str(text).map_err(|_| value_error(&here, "not a valid value"))?,
            ),
            Value::Object(fields) => {
                if let Some(extra) = fields
                    .keys()
                    .find(|key| !matches!(key.as_str(), "archive_policy_name" | "unit"))
                {
                    let mut extra_path = here.clone();
                    extra_path.push(extra.clone());
                    return Err(key_error(&extra_path, "extra keys not allowed"));
                }
                let text = |key: &str| -> Result<Option<String>, ApiError> {
                    match fields.get(key) {
                        None | Some(Value::Null) => Ok(None),
                        Some(Value::String(text)) => Ok(Some(text.clone())),
                        Some(_) => {
                            let mut at = here.clone();
                            at.push(key.to_owned());
                            Err(value_error(&at, "expected str"))
                        }
                    }
                };
                let unit = text("unit")?;
                if unit
                    .as_ref()
                    .is_some_and(|u| u.chars().count() > MAX_UNIT_LEN)
                {
                    let mut at = here.clone();
                    at.push("unit".into());
                    return Err(value_error(
                        &at,
                        format!("length of value must be at most {MAX_UNIT_LEN}"),
                    ));
                }
                ResourceMetric::New {
                    archive_policy_name: text("archive_policy_name")?,
                    unit,
                }
            }
            _ => return Err(value_error(&here, "not a valid value")),
        };
        metrics.insert(name.clone(), metric);
    }
    Ok(metrics)
}

/// Reads the fields of a create (`creating`) or update body; `id` is the
/// caller's business on create and refused on update.
fn parse_fields(
    object: &Map<String, Value>,
    rt: &ResourceType,
    creating: bool,
) -> Result<Fields, ApiError> {
    let mut fields = Fields::default();
    // voluptuous reports value errors before missing keys; metrics first
    // since their names are checked in the schema.
    if let Some(value) = object.get("metrics") {
        fields.metrics = Some(parse_metrics(value, &path_of(&["metrics"]))?);
    }
    for (key, value) in object {
        match key.as_str() {
            "metrics" => {}
            "id" if creating => {}
            "user_id" => fields.user_id = Some(optional_text(value, key)?),
            "project_id" => fields.project_id = Some(optional_text(value, key)?),
            "started_at" => fields.started_at = Some(timestamp(value, key)?),
            "ended_at" => {
                fields.ended_at = Some(match value {
                    Value::Null => None,
                    other => Some(timestamp(other, key)?),
                })
            }
            other if rt.attributes.contains_key(other) => {
                fields.attributes.insert(other.to_owned(), value.clone());
            }
            other => return Err(key_error(&path_of(&[other]), "extra keys not allowed")),
        }
    }
    Ok(fields)
}

// ---------------------------------------------------------------------------
// Handlers.

/// The resource types and the URL listing each.
#[utoipa::path(
    get,
    path = "/v1/resource",
    tag = "resource",
    responses(
        (status = 200, description = "The URL listing each resource type, by type name", body = std::collections::BTreeMap<String, String>)
    )
)]
async fn index(State(state): State<Arc<AppState>>, base: BaseUrl) -> Result<Json<Value>, ApiError> {
    let types = state.indexer.list_resource_types().await?;
    let links: Map<String, Value> = types
        .iter()
        .map(|rt| {
            let url = base.join(&format!("/v1/resource/{}", path_segment(&rt.name)));
            (rt.name.clone(), Value::String(url))
        })
        .collect();
    Ok(Json(Value::Object(links)))
}

#[utoipa::path(
    post,
    path = "/v1/resource/{type}",
    tag = "resource",
    params(
        ("type" = String, Path, description = "Resource type name (`generic` reaches every type)")
    ),
    request_body = doc::ResourceCreate,
    responses(
        (status = 201, description = "Created; `Location`, `ETag` and `Last-Modified` set", body = doc::Resource),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such resource type", body = doc::ErrorBody),
        (status = 409, description = "A resource with that id already exists", body = doc::ErrorBody),
        (status = 415, description = "The body is not JSON", body = doc::ErrorBody)
    )
)]
async fn create(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    base: BaseUrl,
    Path(type_name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let rt = state.indexer.get_resource_type(&type_name).await?;
    let body = read_json(&headers, &body, &["application/json"])?;
    let object = body
        .as_object()
        .ok_or_else(|| value_error(&[], "expected a dictionary"))?;
    let fields = parse_fields(object, &rt, true)?;
    let creator = caller.0.creator();
    let original = match object.get("id") {
        None => return Err(key_error(&path_of(&["id"]), "required key not provided")),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        Some(_) => return Err(value_error(&path_of(&["id"]), "expected str")),
    };
    let id = indexer::resource_uuid(&original, &creator).map_err(|err| {
        let reason = match err {
            IndexerError::InvalidResourceId(reason) => reason,
            other => other.to_string(),
        };
        value_error(&path_of(&["id"]), reason)
    })?;
    let user_id = fields.user_id.clone().flatten();
    let project_id = fields.project_id.clone().flatten();
    let target = Target::new()
        .with("resource_type", Some(&type_name))
        .with("id", Some(&id.to_string()))
        .with("user_id", user_id.as_deref())
        .with("project_id", project_id.as_deref());
    caller.enforce(&state, "create resource", &target)?;
    let new = NewResource {
        id,
        original_resource_id: original,
        creator,
        user_id,
        project_id,
        started_at: fields.started_at,
        ended_at: fields.ended_at.flatten(),
        attributes: fields.attributes,
        metrics: fields.metrics.unwrap_or_default(),
    };
    let resource = state
        .indexer
        .create_resource(&type_name, &new)
        .await
        .map_err(write_error)?;
    let location = base.join(&format!(
        "/v1/resource/{}/{}",
        path_segment(&type_name),
        resource.id
    ));
    Ok(with_validators(
        created(location, resource_json(&resource)),
        &resource,
    ))
}

#[utoipa::path(
    get,
    path = "/v1/resource/{type}/{id}",
    tag = "resource",
    params(
        ("type" = String, Path, description = "Resource type name (`generic` reaches every type)"),
        ("id" = String, Path, description = "Resource id: a UUID or the original id the creator gave")
    ),
    responses(
        (status = 200, description = "The resource, with `ETag` and `Last-Modified`", body = doc::Resource),
        (status = 304, description = "Not modified (If-None-Match, If-Modified-Since)"),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such resource type or resource", body = doc::ErrorBody),
        (status = 412, description = "A precondition header (If-Match, If-Unmodified-Since) failed", body = doc::ErrorBody)
    )
)]
async fn show(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path((type_name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let resource = authorized_resource(&state, &caller, &type_name, &id, "get resource").await?;
    if let Some(answer) = precondition(&headers, &Method::GET, &resource) {
        return Ok(answer);
    }
    Ok(with_validators(
        Json(resource_json(&resource)).into_response(),
        &resource,
    ))
}

/// Changes some attributes; a new revision is recorded only when one of them
/// actually changes, and `metrics` replaces the resource's metrics.
#[utoipa::path(
    patch,
    path = "/v1/resource/{type}/{id}",
    tag = "resource",
    params(
        ("type" = String, Path, description = "Resource type name (`generic` reaches every type)"),
        ("id" = String, Path, description = "Resource id: a UUID or the original id the creator gave")
    ),
    request_body = doc::ResourceUpdate,
    responses(
        (status = 200, description = "The changed resource", body = doc::Resource),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such resource type or resource", body = doc::ErrorBody),
        (status = 409, description = "A metric of that name on the resource already exists", body = doc::ErrorBody),
        (status = 412, description = "A precondition header (If-Match, If-Unmodified-Since) failed", body = doc::ErrorBody),
        (status = 415, description = "The body is not JSON", body = doc::ErrorBody)
    )
)]
async fn update(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path((type_name, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let resource = authorized_resource(&state, &caller, &type_name, &id, "update resource").await?;
    if let Some(answer) = precondition(&headers, &Method::PATCH, &resource) {
        return Ok(answer);
    }
    let body = read_json(&headers, &body, &["application/json"])?;
    let object = body
        .as_object()
        .ok_or_else(|| value_error(&[], "expected a dictionary"))?;
    let rt = state.indexer.get_resource_type(&type_name).await?;
    let fields = parse_fields(object, &rt, false)?;
    if object.is_empty() {
        return Ok(with_validators(
            Json(resource_json(&resource)).into_response(),
            &resource,
        ));
    }
    let change = ResourceUpdate {
        user_id: fields.user_id,
        project_id: fields.project_id,
        started_at: fields.started_at,
        ended_at: fields.ended_at,
        attributes: fields.attributes,
        metrics: fields.metrics,
        append_metrics: false,
    };
    let resource = state
        .indexer
        .update_resource(&type_name, resource.id, &change)
        .await
        .map_err(write_error)?;
    Ok(with_validators(
        Json(resource_json(&resource)).into_response(),
        &resource,
    ))
}

#[utoipa::path(
    delete,
    path = "/v1/resource/{type}/{id}",
    tag = "resource",
    params(
        ("type" = String, Path, description = "Resource type name (`generic` reaches every type)"),
        ("id" = String, Path, description = "Resource id: a UUID or the original id the creator gave")
    ),
    responses(
        (status = 204, description = "Deleted, with its metrics"),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such resource type or resource", body = doc::ErrorBody),
        (status = 412, description = "A precondition header (If-Match, If-Unmodified-Since) failed", body = doc::ErrorBody)
    )
)]
async fn remove(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path((type_name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let resource = authorized_resource(&state, &caller, &type_name, &id, "delete resource").await?;
    if let Some(answer) = precondition(&headers, &Method::DELETE, &resource) {
        return Ok(answer);
    }
    state
        .indexer
        .delete_resource(&type_name, resource.id)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Lists resources of a type (of every type for `generic`), optionally with
/// their old revisions and, through `generic`, their type's attributes.
#[utoipa::path(
    get,
    path = "/v1/resource/{type}",
    tag = "resource",
    params(
        ("type" = String, Path, description = "Resource type name (`generic` reaches every type)"),
        doc::PageParams,
        doc::ResourceListParams
    ),
    responses(
        (status = 200, description = "A page of resources; `Link: rel=\"next\"` when full", body = Vec<doc::Resource>),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such resource type", body = doc::ErrorBody)
    )
)]
async fn list(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    base: BaseUrl,
    OriginalUri(uri): OriginalUri,
    Path(type_name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let query = QueryParams::parse(raw.as_deref());
    state.indexer.get_resource_type(&type_name).await?;
    let policy = policy_filter(&state, &caller, "list resource", &type_name)?;
    search_page(
        &state,
        &caller,
        &type_name,
        policy,
        &headers,
        &query,
        &base.join(uri.path()),
    )
    .await
}

/// Runs a listing or search of `type_name` restricted by `filter` and renders
/// the page, `attrs` projection and `Link` header included.
pub(super) async fn search_page(
    state: &AppState,
    caller: &Authenticated,
    type_name: &str,
    filter: Option<Filter>,
    headers: &HeaderMap,
    query: &QueryParams,
    url: &str,
) -> Result<Response, ApiError> {
    let (details, history, page) = listing_options(state, headers, query)?;
    let options = SearchOptions {
        history,
        details,
        pagination: page.pagination.clone(),
        creator: caller.0.creator(),
    };
    let resources = state
        .indexer
        .search_resources(type_name, filter.as_ref(), &options)
        .await
        .map_err(search_error)?;
    Ok(list_response(
        &resources,
        &requested_attrs(query),
        &page,
        url,
        query,
        history,
    ))
}

/// Deletes the resources matching a filter (JSON body or `?filter=`); an
/// empty filter is refused rather than emptying the index.
#[utoipa::path(
    delete,
    path = "/v1/resource/{type}",
    tag = "resource",
    params(
        ("type" = String, Path, description = "Resource type name (`generic` reaches every type)"),
        ("filter" = Option<String>, Query, description = "The filter in string form, instead of a body")
    ),
    request_body = doc::Filter,
    responses(
        (status = 200, description = "`{\"deleted\": n}`: how many resources the filter matched and the caller could delete", body = serde_json::Value),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such resource type", body = doc::ErrorBody)
    )
)]
async fn remove_many(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path(type_name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let query = QueryParams::parse(raw.as_deref());
    state.indexer.get_resource_type(&type_name).await?;
    let Some(filter) = request_filter(&headers, &body, &query)? else {
        return Err(ApiError::bad_request("caller must specify filter"));
    };
    let policy = policy_filter(&state, &caller, "delete resources", &type_name)?;
    let Some(filter) = combine(policy, Some(filter)) else {
        return Err(ApiError::bad_request("caller must specify filter"));
    };
    let deleted = state
        .indexer
        .delete_resources(&type_name, &filter, &caller.0.creator())
        .await
        .map_err(search_error)?;
    Ok(Json(json!({ "deleted": deleted })))
}

/// Every revision of a resource, oldest first unless sorted otherwise.
#[utoipa::path(
    get,
    path = "/v1/resource/{type}/{id}/history",
    tag = "resource",
    params(
        ("type" = String, Path, description = "Resource type name (`generic` reaches every type)"),
        ("id" = String, Path, description = "Resource id: a UUID or the original id the creator gave"),
        doc::PageParams,
        ("details" = Option<bool>, Query, description = "Include type-specific attributes")
    ),
    responses(
        (status = 200, description = "Every revision, oldest first unless sorted otherwise", body = Vec<doc::Resource>),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such resource type or resource", body = doc::ErrorBody)
    )
)]
async fn history(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    base: BaseUrl,
    OriginalUri(uri): OriginalUri,
    Path((type_name, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let query = QueryParams::parse(raw.as_deref());
    let (details, _, page) = listing_options(&state, &headers, &query)?;
    let resource = authorized_resource(&state, &caller, &type_name, &id, "get resource").await?;
    let filter = Filter::eq("id", resource.id.to_string());
    let options = SearchOptions {
        history: true,
        details,
        pagination: page.pagination.clone(),
        creator: caller.0.creator(),
    };
    let revisions = state
        .indexer
        .search_resources(&type_name, Some(&filter), &options)
        .await
        .map_err(search_error)?;
    // Gnocchi's history takes no `attrs`: revisions come whole.
    Ok(list_response(
        &revisions,
        &[],
        &page,
        &base.join(uri.path()),
        &query,
        true,
    ))
}

/// The resource's active metrics, as `/v1/metric` lists them (by name).
async fn resource_metrics(state: &AppState, resource_id: Uuid) -> Result<Value, ApiError> {
    let filter = MetricFilter {
        resource_id: Some(resource_id),
        status: Some(MetricStatus::Active),
        ..MetricFilter::default()
    };
    let page = Pagination {
        limit: None,
        marker: None,
        sort: vec![SortKey::asc("name")],
    };
    let metrics = match state.indexer.list_metrics(&filter, &page).await {
        Ok(metrics) => metrics,
        // Sorting is a nicety; fall back to the indexer's order.
        Err(IndexerError::InvalidQuery { .. }) => {
            state
                .indexer
                .list_metrics(&filter, &Pagination::default())
                .await?
        }
        Err(err) => return Err(err.into()),
    };
    let rendered = metrics
        .iter()
        .map(|metric| metric_json(metric, MetricView::Listed))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Value::Array(rendered))
}

#[utoipa::path(
    get,
    path = "/v1/resource/{type}/{id}/metric",
    tag = "resource",
    params(
        ("type" = String, Path, description = "Resource type name (`generic` reaches every type)"),
        ("id" = String, Path, description = "Resource id: a UUID or the original id the creator gave")
    ),
    responses(
        (status = 200, description = "The resource's metrics", body = Vec<doc::Metric>),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such resource type or resource", body = doc::ErrorBody)
    )
)]
async fn metrics(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path((type_name, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let resource = authorized_resource(&state, &caller, &type_name, &id, "get resource").await?;
    Ok(Json(resource_metrics(&state, resource.id).await?))
}

/// Creates (or links) named metrics on the resource; answers all its metrics.
#[utoipa::path(
    post,
    path = "/v1/resource/{type}/{id}/metric",
    tag = "resource",
    params(
        ("type" = String, Path, description = "Resource type name (`generic` reaches every type)"),
        ("id" = String, Path, description = "Resource id: a UUID or the original id the creator gave")
    ),
    request_body = doc::ResourceMetrics,
    responses(
        (status = 200, description = "All the resource's metrics", body = Vec<doc::Metric>),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such resource type or resource", body = doc::ErrorBody),
        (status = 409, description = "A metric of that name on the resource already exists", body = doc::ErrorBody),
        (status = 415, description = "The body is not JSON", body = doc::ErrorBody)
    )
)]
async fn add_metrics(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path((type_name, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let resource = authorized_resource(&state, &caller, &type_name, &id, "update resource").await?;
    let body = read_json(&headers, &body, &["application/json"])?;
    let metrics = parse_metrics(&body, &[])?;
    let change = ResourceUpdate {
        metrics: Some(metrics),
        append_metrics: true,
        ..ResourceUpdate::default()
    };
    state
        .indexer
        .update_resource(&type_name, resource.id, &change)
        .await
        .map_err(write_error)?;
    Ok(Json(resource_metrics(&state, resource.id).await?))
}

/// The metric named `name` on the resource; 404 naming the metric when the
/// resource exists without it, naming the resource otherwise.
async fn named_metric(
    state: &AppState,
    caller: &Authenticated,
    type_name: &str,
    id: &str,
    name: &str,
) -> Result<indexer::Metric, ApiError> {
    let uuid = resource_id(caller, id)?;
    match state.indexer.get_resource_metric(uuid, name).await? {
        Some(metric) if metric.status == MetricStatus::Active => Ok(metric),
        _ => {
            state.indexer.get_resource(type_name, uuid).await?;
            Err(ApiError::not_found(format!("Metric {name} does not exist")))
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/resource/{type}/{id}/metric/{name}",
    tag = "resource",
    params(
        ("type" = String, Path, description = "Resource type name (`generic` reaches every type)"),
        ("id" = String, Path, description = "Resource id: a UUID or the original id the creator gave"),
        ("name" = String, Path, description = "Metric name on the resource")
    ),
    responses(
        (status = 200, description = "The metric", body = doc::Metric),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such resource or metric", body = doc::ErrorBody)
    )
)]
async fn show_metric(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path((type_name, id, name)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let metric = named_metric(&state, &caller, &type_name, &id, &name).await?;
    caller.enforce(&state, "get metric", &metric_target(&metric))?;
    Ok(Json(metric_json(&metric, MetricView::Detailed)?))
}

#[utoipa::path(
    delete,
    path = "/v1/resource/{type}/{id}/metric/{name}",
    tag = "resource",
    params(
        ("type" = String, Path, description = "Resource type name (`generic` reaches every type)"),
        ("id" = String, Path, description = "Resource id: a UUID or the original id the creator gave"),
        ("name" = String, Path, description = "Metric name on the resource")
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such resource or metric", body = doc::ErrorBody)
    )
)]
async fn remove_metric(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path((type_name, id, name)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let metric = named_metric(&state, &caller, &type_name, &id, &name).await?;
    caller.enforce(&state, "delete metric", &metric_target(&metric))?;
    state.indexer.delete_metric(metric.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_lists() {
        assert!(etag_listed("*", "\"abc\""));
        assert!(etag_listed("\"x\", \"abc\"", "\"abc\""));
        assert!(etag_listed("W/\"abc\"", "\"abc\""));
        assert!(!etag_listed("\"x\"", "\"abc\""));
    }

    #[test]
    fn http_dates_round_trip() {
        let text = http_date(1_388_714_522);
        assert_eq!(text, "Fri, 03 Jan 2014 02:02:02 GMT");
        assert_eq!(parse_http_date(&text), Some(1_388_714_522));
    }
}
