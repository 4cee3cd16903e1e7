//! `/v1/search/resource/{type}`: resources matching a filter given as a JSON
//! body or as a `?filter=` string (the body may then be empty even when
//! labelled JSON); `{}` or no filter at all matches everything.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;

use super::extract::{Authenticated, BaseUrl};
use super::resource::{combine, listing_query, policy_filter, request_filter, search_page};
use super::ApiError;
use crate::app::AppState;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/search/resource/{type}", post(search).get(not_allowed))
}

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
    let query = listing_query(uri.query());
    let asked = request_filter(&headers, &body, &query)?;
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
