//! `/v1/search/resource/{type}`: resources matching a filter given as a JSON
//! body or as a `?filter=` string (the body may then be empty even when
//! labelled JSON); `{}` or no filter at all matches everything.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Authenticated, BaseUrl};
use super::openapi as doc;
use super::query::QueryParams;
use super::resource::{combine, policy_filter, request_filter, search_page};
use super::ApiError;
use crate::app::AppState;

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .route("/v1/search/resource/{type}", get(not_allowed))
}

#[utoipa::path(
    post,
    path = "/v1/search/resource/{type}",
    tag = "search",
    params(
        ("type" = String, Path, description = "Resource type name (`generic` reaches every type)"),
        doc::PageParams,
        doc::ResourceListParams,
        ("filter" = Option<String>, Query, description = "The filter in string form (`user_id = 'x' and started_at > '2014-01-01'`), instead of a body")
    ),
    request_body = doc::Filter,
    responses(
        (status = 200, description = "A page of matching resources; `Link: rel=\"next\"` when full", body = Vec<doc::Resource>),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such resource type", body = doc::ErrorBody),
        (status = 415, description = "The body is not JSON", body = doc::ErrorBody)
    )
)]
async fn search(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    base: BaseUrl,
    OriginalUri(uri): OriginalUri,
    Path(type_name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.indexer.get_resource_type(&type_name).await?;
    let mut query = QueryParams::parse(uri.query());
    let asked = request_filter(&headers, &body, &query)?;
    // Pecan merges a JSON object body into the request's parameters, so the
    // next page's link repeats the filter as Gnocchi's does.
    if let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(&body) {
        query.fold_json_object(&object);
    }
    let policy = policy_filter(&state, &caller, "search resource", &type_name)?;
    search_page(
        &state,
        &caller,
        &type_name,
        combine(policy, asked),
        &headers,
        &query,
        &base.join(uri.path()),
    )
    .await
}

/// Searching takes a `POST`; an unknown type is still a 404 first.
async fn not_allowed(
    State(state): State<Arc<AppState>>,
    Path(type_name): Path<String>,
) -> Result<Response, ApiError> {
    state.indexer.get_resource_type(&type_name).await?;
    Ok(ApiError::method_not_allowed("POST"))
}
