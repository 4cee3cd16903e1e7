//! `/v1/metric`: create, list, show and delete metrics.

use std::sync::Arc;

use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use indexer::{IndexerError, Metric, MetricFilter, MetricStatus, NewMetric};
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::archive_policy::policy_json;
use super::extract::{Authenticated, BaseUrl, JsonBody};
use super::json::Json;
use super::openapi as doc;
use super::query::QueryParams;
use super::resource::resource_json;
use super::validate::{Fields, Invalid};
use super::{created, ApiError};
use crate::app::AppState;
use crate::archive_policy::from_record;
use crate::auth::Target;

/// Longest unit Gnocchi stores.
const MAX_UNIT_LEN: usize = 31;

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, remove))
}

/// What the access rules look at on a metric.
pub(super) fn metric_target(metric: &Metric) -> Target {
    Target::new()
        .with("creator", Some(&metric.creator))
        .with("created_by_user_id", Some(metric.created_by_user_id()))
        .with(
            "created_by_project_id",
            Some(metric.created_by_project_id()),
        )
        .with(
            "resource.project_id",
            metric
                .resource
                .as_ref()
                .and_then(|r| r.project_id.as_deref()),
        )
        .with(
            "resource.user_id",
            metric.resource.as_ref().and_then(|r| r.user_id.as_deref()),
        )
}

/// Which related objects a metric's JSON embeds, as Gnocchi varies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MetricView {
    /// The answer to a creation: `archive_policy_name` and `resource_id`.
    Created,
    /// Listings: the archive policy object and `resource_id` (clients such
    /// as `gnocchi metric list` read that key).
    Listed,
    /// `GET` of one metric: the archive policy and resource objects.
    Detailed,
}

/// A metric's JSON in the given view.
pub(super) fn metric_json(metric: &Metric, view: MetricView) -> Result<Value, ApiError> {
    let mut object = json!({
        "id": metric.id.to_string(),
        "creator": metric.creator,
        "name": metric.name,
        "unit": metric.unit,
        "created_by_user_id": metric.created_by_user_id(),
        "created_by_project_id": metric.created_by_project_id(),
    });
    if view == MetricView::Created {
        object["archive_policy_name"] = Value::String(metric.archive_policy_name.clone());
    } else {
        let policy = from_record(&metric.archive_policy).map_err(ApiError::internal)?;
        object["archive_policy"] = policy_json(&policy);
    }
    if view == MetricView::Detailed {
        object["resource"] = metric.resource.as_ref().map_or(Value::Null, resource_json);
    } else {
        object["resource_id"] = metric
            .resource_id
            .map_or(Value::Null, |id| Value::String(id.to_string()));
    }
    Ok(object)
}

/// Parses a metric id from a path; anything but a UUID names no metric.
pub(super) fn metric_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| ApiError::not_found(format!("Metric {text} does not exist")))
}

/// Loads an active metric and checks `action` on it.
pub(super) async fn authorized_metric(
    state: &AppState,
    caller: &Authenticated,
    id: &str,
    action: &str,
) -> Result<Metric, ApiError> {
    let metric = state.indexer.get_metric(metric_id(id)?).await?;
    if metric.status != MetricStatus::Active {
        return Err(IndexerError::NoSuchMetric(metric.id).into());
    }
    caller.enforce(state, action, &metric_target(&metric))?;
    Ok(metric)
}

#[utoipa::path(
    post,
    path = "/v1/metric",
    tag = "metric",
    request_body = doc::MetricCreate,
    responses(
        (status = 201, description = "Created; `Location` names it", body = doc::Metric),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 409, description = "A metric of that name on the resource already exists", body = doc::ErrorBody),
        (status = 415, description = "The body is not JSON", body = doc::ErrorBody)
    )
)]
async fn create(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    base: BaseUrl,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let fields = Fields::body(
        &body,
        &["archive_policy_name", "name", "unit", "resource_id"],
    )?;
    let name = fields.optional_str("name")?;
    let unit = fields.optional_str("unit")?;
    if unit.is_some_and(|unit| unit.chars().count() > MAX_UNIT_LEN) {
        return Err(Invalid::value(
            &fields.path_of("unit"),
            format!("length of value must be at most {MAX_UNIT_LEN}"),
        )
        .into());
    }
    let creator = caller.0.creator();
    let resource_id = fields
        .optional_str("resource_id")?
        .map(|id| indexer::resource_uuid(id, &creator))
        .transpose()
        .map_err(|err| {
            ApiError::from(Invalid::value(
                &fields.path_of("resource_id"),
                err.to_string(),
            ))
        })?;
    let target = Target::new()
        .with("creator", Some(&creator))
        .with("created_by_user_id", Some(&caller.0.user_id))
        .with("created_by_project_id", caller.0.project_id.as_deref());
    caller.enforce(&state, "create metric", &target)?;
    if resource_id.is_some() && name.is_none() {
        return Err(ApiError::bad_request(json!({
            "cause": "Attribute value error",
            "detail": "name",
            "reason": "Name cannot be null if resource_id is not null",
        })));
    }
    let new = NewMetric {
        id: None,
        name: name.map(str::to_owned),
        unit: unit.map(str::to_owned),
        archive_policy_name: fields
            .optional_str("archive_policy_name")?
            .map(str::to_owned),
        creator,
        resource_id,
    };
    let metric = match state.indexer.create_metric(&new).await {
        // A missing policy or resource is a bad request here, not a 404.
        Err(err @ (IndexerError::NoSuchArchivePolicy(_) | IndexerError::NoSuchResource(_))) => {
            return Err(ApiError::bad_request(err.to_string()))
        }
        // Gnocchi answers 400 (not 409) here, naming the metric.
        Err(IndexerError::NamedMetricAlreadyExists { name, .. }) => {
            return Err(ApiError::bad_request(json!({
                "cause": "Named metric already exists",
                "detail": name,
            })));
        }
        other => other?,
    };
    let location = base.join(&format!("/v1/metric/{}", metric.id));
    let body = metric_json(&metric, MetricView::Created)?;
    // Measures for a new metric usually follow at once.
    let _ = state.metrics.insert(metric);
    Ok(created(location, body))
}

#[utoipa::path(
    get,
    path = "/v1/metric/{id}",
    tag = "metric",
    params(("id" = String, Path, description = "Metric UUID")),
    responses(
        (status = 200, description = "The metric, its policy and resource", body = doc::Metric),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such metric", body = doc::ErrorBody)
    )
)]
async fn show(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let metric = authorized_metric(&state, &caller, &id, "get metric").await?;
    Ok(Json(metric_json(&metric, MetricView::Detailed)?))
}

#[utoipa::path(
    delete,
    path = "/v1/metric/{id}",
    tag = "metric",
    params(("id" = String, Path, description = "Metric UUID")),
    responses(
        (status = 204, description = "Deleted; its data is removed in the background"),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such metric", body = doc::ErrorBody)
    )
)]
async fn remove(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let metric = authorized_metric(&state, &caller, &id, "delete metric").await?;
    state.indexer.delete_metric(metric.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists metrics with filters and pagination.
#[utoipa::path(
    get,
    path = "/v1/metric",
    tag = "metric",
    params(
        doc::PageParams,
        ("name" = Option<String>, Query, description = "Only metrics of this name"),
        ("unit" = Option<String>, Query, description = "Only metrics of this unit"),
        ("archive_policy_name" = Option<String>, Query, description = "Only metrics of this policy"),
        ("creator" = Option<String>, Query, description = "Only this creator's metrics (non-admins see only their own)"),
        ("user_id" = Option<String>, Query, description = "Creator's user"),
        ("project_id" = Option<String>, Query, description = "Creator's project"),
        ("status" = Option<String>, Query, description = "`active` (default) or `delete`")
    ),
    responses(
        (status = 200, description = "A page of metrics; `Link: rel=\"next\"` when full", body = Vec<doc::Metric>),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody)
    )
)]
async fn list(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    base: BaseUrl,
    OriginalUri(uri): OriginalUri,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = QueryParams::parse(raw.as_deref());
    // Gnocchi's `MetricListSchema` takes one string per filter.
    const FILTERS: [&str; 8] = [
        "user_id",
        "project_id",
        "creator",
        "name",
        "id",
        "unit",
        "archive_policy_name",
        "status",
    ];
    if let Some(name) = query.first_repeated(&FILTERS) {
        return Err(ApiError::bad_request(format!(
            "Invalid input: expected str for dictionary value @ data['{name}']"
        )));
    }
    let page = query.pagination(state.config.max_limit, &["id:asc"])?;
    let mut filter = MetricFilter {
        ids: query
            .get("id")
            .into_iter()
            .map(|id| {
                Uuid::parse_str(id)
                    .map_err(|_| ApiError::bad_request(format!("Invalid metric id: {id}")))
            })
            .collect::<Result<_, _>>()?,
        name: query.get("name").map(str::to_owned),
        unit: query.get("unit").map(str::to_owned),
        archive_policy_name: query.get("archive_policy_name").map(str::to_owned),
        creator: query.get("creator").map(str::to_owned),
        user_id: query.get("user_id").map(str::to_owned),
        project_id: query.get("project_id").map(str::to_owned),
        resource_id: None,
        status: match query.get("status") {
            None | Some("active") => Some(MetricStatus::Active),
            Some("delete") => Some(MetricStatus::Delete),
            Some(_) => {
                return Err(ApiError::bad_request(
                    "Invalid input: not a valid value for dictionary value @ data['status']",
                ))
            }
        },
    };
    if !state
        .policy
        .allows("list all metric", &caller.0, &Target::new())
    {
        caller.enforce(&state, "list metric", &Target::new())?;
        // As Gnocchi's auth helpers: callers scoped to a project see the
        // metrics created from it; basic and remote-user callers have no
        // project and no such restriction.
        if let Some(project) = &caller.0.project_id {
            filter.project_id = Some(project.clone());
        }
    }
    let metrics = state
        .indexer
        .list_metrics(&filter, &page.pagination)
        .await?;
    let rendered = metrics
        .iter()
        .map(|metric| metric_json(metric, MetricView::Listed))
        .collect::<Result<Vec<_>, _>>()?;
    let mut response = Json(Value::Array(rendered)).into_response();
    page.link_next(
        &mut response,
        &base.join(uri.path()),
        &query,
        metrics.len(),
        metrics.last().map(|m| m.id.to_string()),
    );
    Ok(response)
}
