//! `/v1/archive_policy_rule`: which archive policy a metric created without one
//! gets, by the longest matching name pattern.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use indexer::{ArchivePolicyRule, IndexerError};
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Authenticated, BaseUrl, JsonBody};
use super::json::Json;
use super::openapi as doc;
use super::validate::Fields;
use super::{created, path_segment, ApiError};
use crate::app::AppState;
use crate::auth::Target;

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, rename, remove))
}

fn rule_json(rule: &ArchivePolicyRule) -> Value {
    json!({
        "name": rule.name,
        "metric_pattern": rule.metric_pattern,
        "archive_policy_name": rule.archive_policy_name,
    })
}

#[utoipa::path(
    get,
    path = "/v1/archive_policy_rule",
    tag = "archive policy rule",
    responses(
        (status = 200, description = "Every rule", body = Vec<doc::ArchivePolicyRule>),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody)
    )
)]
async fn list(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
) -> Result<Json<Value>, ApiError> {
    caller.enforce(&state, "list archive policy rule", &Target::new())?;
    let rules = state.indexer.list_archive_policy_rules().await?;
    Ok(Json(rules.iter().map(rule_json).collect()))
}

#[utoipa::path(
    get,
    path = "/v1/archive_policy_rule/{name}",
    tag = "archive policy rule",
    params(("name" = String, Path, description = "Archive policy rule name")),
    responses(
        (status = 200, description = "The rule", body = doc::ArchivePolicyRule),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such rule", body = doc::ErrorBody)
    )
)]
async fn show(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.enforce(&state, "get archive policy rule", &Target::new())?;
    let rule = state.indexer.get_archive_policy_rule(&name).await?;
    Ok(Json(rule_json(&rule)))
}

#[utoipa::path(
    post,
    path = "/v1/archive_policy_rule",
    tag = "archive policy rule",
    request_body = doc::ArchivePolicyRule,
    responses(
        (status = 201, description = "Created; `Location` names it", body = doc::ArchivePolicyRule),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 409, description = "A rule of that name already exists", body = doc::ErrorBody),
        (status = 415, description = "The body is not JSON", body = doc::ErrorBody)
    )
)]
async fn create(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    base: BaseUrl,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.enforce(&state, "create archive policy rule", &Target::new())?;
    let fields = Fields::body(&body, &["name", "metric_pattern", "archive_policy_name"])?;
    let rule = ArchivePolicyRule {
        name: fields.required_str("name")?.to_owned(),
        metric_pattern: fields.required_str("metric_pattern")?.to_owned(),
        archive_policy_name: fields.required_str("archive_policy_name")?.to_owned(),
    };
    let rule = match state.indexer.create_archive_policy_rule(&rule).await {
        Err(IndexerError::NoSuchArchivePolicy(policy)) => {
            return Err(ApiError::bad_request(json!({
                "cause": "Archive policy does not exist",
                "detail": policy,
            })))
        }
        other => other?,
    };
    let location = base.join(&format!(
        "/v1/archive_policy_rule/{}",
        path_segment(&rule.name)
    ));
    Ok(created(location, rule_json(&rule)))
}

/// Renames a rule, the only change Gnocchi allows; taking an existing name is
/// a 400, not a 409, as in Gnocchi.
#[utoipa::path(
    patch,
    path = "/v1/archive_policy_rule/{name}",
    tag = "archive policy rule",
    params(("name" = String, Path, description = "Archive policy rule name")),
    request_body = doc::ArchivePolicyRuleUpdate,
    responses(
        (status = 200, description = "The renamed rule", body = doc::ArchivePolicyRule),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such rule", body = doc::ErrorBody)
    )
)]
async fn rename(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    caller.enforce(&state, "update archive policy rule", &Target::new())?;
    let fields = Fields::body(&body, &["name"])?;
    let new_name = fields.required_str("name")?;
    match state
        .indexer
        .rename_archive_policy_rule(&name, new_name)
        .await
    {
        Ok(rule) => Ok(Json(rule_json(&rule))),
        Err(err @ IndexerError::ArchivePolicyRuleAlreadyExists(_)) => {
            Err(ApiError::bad_request(err.to_string()))
        }
        Err(err) => Err(err.into()),
    }
}

#[utoipa::path(
    delete,
    path = "/v1/archive_policy_rule/{name}",
    tag = "archive policy rule",
    params(("name" = String, Path, description = "Archive policy rule name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such rule", body = doc::ErrorBody)
    )
)]
async fn remove(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.enforce(&state, "delete archive policy rule", &Target::new())?;
    state.indexer.delete_archive_policy_rule(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
