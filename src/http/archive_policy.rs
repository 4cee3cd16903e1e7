//! `/v1/archive_policy`: list, create, show, change the definition, delete.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use carbonara::aggregation::Method;
use carbonara::archive_policy::{
    default_aggregation_methods, resolve_aggregation_methods, ArchivePolicy, ArchivePolicyItem,
};
use carbonara::timespan::{format_timespan, parse_timespan};
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Authenticated, BaseUrl, JsonBody};
use super::json::Json;
use super::openapi as doc;
use super::validate::{Fields, Invalid};
use super::{created, path_segment, ApiError};
use crate::app::AppState;
use crate::archive_policy::{from_record, to_record};
use crate::auth::Target;

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
}

/// An archive policy as Gnocchi renders it: spans as `timedelta` strings,
/// `null` points and timespan for an unbounded archive.
pub(super) fn policy_json(policy: &ArchivePolicy) -> Value {
    json!({
        "name": policy.name(),
        "back_window": policy.back_window(),
        "definition": policy.definition().iter().map(|item| json!({
            "granularity": format_timespan(item.granularity()),
            "points": item.points(),
            "timespan": item.timespan().map(format_timespan),
        })).collect::<Vec<_>>(),
        "aggregation_methods": policy
            .aggregation_methods()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
    })
}

#[utoipa::path(
    get,
    path = "/v1/archive_policy",
    tag = "archive policy",
    responses(
        (status = 200, description = "Every archive policy", body = Vec<doc::ArchivePolicy>),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody)
    )
)]
async fn list(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
) -> Result<Json<Value>, ApiError> {
    caller.enforce(&state, "list archive policy", &Target::new())?;
    let policies = state.indexer.list_archive_policies().await?;
    let rendered = policies
        .iter()
        .map(|record| from_record(record).map(|policy| policy_json(&policy)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::internal)?;
    Ok(Json(Value::Array(rendered)))
}

#[utoipa::path(
    get,
    path = "/v1/archive_policy/{name}",
    tag = "archive policy",
    params(("name" = String, Path, description = "Archive policy name")),
    responses(
        (status = 200, description = "The policy", body = doc::ArchivePolicy),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such archive policy", body = doc::ErrorBody)
    )
)]
async fn show(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.enforce(&state, "get archive policy", &Target::new())?;
    let record = state.indexer.get_archive_policy(&name).await?;
    let policy = from_record(&record).map_err(ApiError::internal)?;
    Ok(Json(policy_json(&policy)))
}

#[utoipa::path(
    post,
    path = "/v1/archive_policy",
    tag = "archive policy",
    request_body = doc::ArchivePolicy,
    responses(
        (status = 201, description = "Created; `Location` names it", body = doc::ArchivePolicy),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 409, description = "An archive policy of that name already exists", body = doc::ErrorBody),
        (status = 415, description = "The body is not JSON", body = doc::ErrorBody)
    )
)]
async fn create(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    base: BaseUrl,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    // Authorisation comes before validation, as in Gnocchi.
    caller.enforce(&state, "create archive policy", &Target::new())?;
    let fields = Fields::body(
        &body,
        &["name", "back_window", "aggregation_methods", "definition"],
    )?;
    let name = fields.required_str("name")?;
    let back_window = match fields.optional("back_window") {
        None => 0,
        Some(value) => non_negative_int(value, &fields.path_of("back_window"))?,
    };
    let definition = definition(&fields)?;
    let methods = match fields.optional("aggregation_methods") {
        None => default_aggregation_methods(),
        Some(value) => {
            let path = fields.path_of("aggregation_methods");
            // Each entry is one of Gnocchi's listed values: a method, `*`,
            // or a method with `+` or `-`.
            let entries = value
                .as_array()
                .ok_or_else(|| Invalid::value(&path, "expected a list"))?
                .iter()
                .enumerate()
                .map(|(i, entry)| {
                    entry
                        .as_str()
                        .filter(|text| {
                            let name = text.strip_prefix(['+', '-']).unwrap_or(text);
                            *text == "*" || name.parse::<Method>().is_ok()
                        })
                        .ok_or_else(|| {
                            let mut at = path.clone();
                            at.push(i.to_string());
                            Invalid::item(at, "not a valid value")
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            resolve_aggregation_methods(&entries, &default_aggregation_methods())
                .map_err(|err| ApiError::bad_request(err.to_string()))?
        }
    };
    let policy = ArchivePolicy::new(name, back_window, definition, methods)
        .map_err(|err| ApiError::bad_request(err.to_string()))?;
    state
        .indexer
        .create_archive_policy(&to_record(&policy))
        .await?;
    let location = base.join(&format!("/v1/archive_policy/{}", path_segment(name)));
    Ok(created(location, policy_json(&policy)))
}

/// Changes the timespans of an existing policy's granularities; granularities
/// themselves cannot be added, dropped or changed.
#[utoipa::path(
    patch,
    path = "/v1/archive_policy/{name}",
    tag = "archive policy",
    params(("name" = String, Path, description = "Archive policy name")),
    request_body = doc::ArchivePolicyUpdate,
    responses(
        (status = 200, description = "The changed policy", body = doc::ArchivePolicy),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such archive policy", body = doc::ErrorBody)
    )
)]
async fn update(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    caller.enforce(&state, "update archive policy", &Target::new())?;
    let fields = Fields::body(&body, &["definition"])?;
    let items = definition(&fields)?;
    let current =
        from_record(&state.indexer.get_archive_policy(&name).await?).map_err(ApiError::internal)?;
    let refuse = |why: String| {
        ApiError::bad_request(format!(
            "Archive policy {name} does not support change: {why}"
        ))
    };
    if items.len() != current.definition().len() {
        return Err(refuse("Cannot add or drop granularities".to_owned()));
    }
    let mut sorted = items.clone();
    sorted.sort_by_key(ArchivePolicyItem::granularity);
    for (old, new) in current.definition().iter().zip(&sorted) {
        if old.granularity() != new.granularity() {
            return Err(refuse(format!(
                "{} granularity interval was changed",
                carbonara::timespan::format_seconds(old.granularity())
            )));
        }
    }
    let policy = ArchivePolicy::new(
        current.name(),
        current.back_window(),
        items,
        current.aggregation_methods().clone(),
    )
    .map_err(|err| ApiError::bad_request(err.to_string()))?;
    state
        .indexer
        .update_archive_policy(&name, &to_record(&policy).definition, None)
        .await?;
    Ok(Json(policy_json(&policy)))
}

#[utoipa::path(
    delete,
    path = "/v1/archive_policy/{name}",
    tag = "archive policy",
    params(("name" = String, Path, description = "Archive policy name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The policy is still used by metrics or rules", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such archive policy", body = doc::ErrorBody)
    )
)]
async fn remove(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.enforce(&state, "delete archive policy", &Target::new())?;
    state.indexer.delete_archive_policy(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The `definition` list: items of granularity, points and timespan, any two
/// of which determine the third.
fn definition(fields: &Fields<'_>) -> Result<Vec<ArchivePolicyItem>, ApiError> {
    let items = fields.list("definition", 1)?;
    let mut definition = Vec::with_capacity(items.len());
    for (index, value) in items.iter().enumerate() {
        let item = fields.item(
            "definition",
            index,
            value,
            &["granularity", "points", "timespan"],
        )?;
        let span = |key: &str| -> Result<Option<i64>, Invalid> {
            item.optional(key)
                .filter(|v| !v.is_null())
                .map(|v| timespan(v, &item.path_of(key)))
                .transpose()
        };
        let granularity = span("granularity")?;
        let timespan = span("timespan")?;
        let points = item
            .optional("points")
            .filter(|v| !v.is_null())
            .map(|v| positive_int(v, &item.path_of("points")))
            .transpose()?;
        definition.push(
            ArchivePolicyItem::new(granularity, points, timespan)
                .map_err(|err| ApiError::bad_request(err.to_string()))?,
        );
    }
    Ok(definition)
}

/// A timespan given as seconds (number) or text ("1 minute", "0:01:00").
pub(super) fn timespan(value: &Value, path: &[String]) -> Result<i64, Invalid> {
    let parsed = match value {
        Value::String(text) => parse_timespan(text),
        Value::Number(number) => parse_timespan(&number.to_string()),
        _ => return Err(Invalid::value(path, "Invalid timespan")),
    };
    parsed.map_err(|err| Invalid::value(path, err.to_string()))
}

fn coerce_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64().or_else(|| {
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0)
                .map(|f| f as i64)
        }),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn positive_int(value: &Value, path: &[String]) -> Result<i64, Invalid> {
    let number = coerce_int(value).ok_or_else(|| Invalid::value(path, "expected int"))?;
    if number < 1 {
        return Err(Invalid::value(path, "value must be at least 1"));
    }
    Ok(number)
}

fn non_negative_int(value: &Value, path: &[String]) -> Result<u32, Invalid> {
    let number = coerce_int(value).ok_or_else(|| Invalid::value(path, "expected int"))?;
    u32::try_from(number).map_err(|_| Invalid::value(path, "value must be at least 0"))
}
