//! The HTTP API: Gnocchi's REST API v1 on axum. The only module that imports axum.
//!
//! [`router`] builds the whole application without a socket (tests drive it
//! with `oneshot`); [`serve`] puts it on a listener. Every request is bounded
//! by `--request-timeout` (see the `timeout` module). Paths are normalised before
//! routing, because Gnocchi clients send `//name` and trailing slashes that
//! Pecan accepted.

mod aggregates;
mod archive_policy;
mod archive_policy_rule;
mod batch;
mod capabilities;
mod cors;
mod error;
mod extract;
mod influxdb;
mod json;
mod measures;
mod measures_body;
mod metric;
mod openapi;
mod prometheus;
mod query;
mod resource;
mod resource_type;
mod root;
mod search;
mod status;
mod timeout;
mod validate;

use std::future::Future;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{middleware, Router, ServiceExt};
use tokio::net::TcpListener;
use tower::Layer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;

pub use error::ApiError;

/// Largest request body accepted: room for big measure batches and
/// Prometheus remote-write payloads, a bound on what one request can pin.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Every route with its description: what [`router`] serves is what
/// [`openapi`] documents (see the `openapi` module).
fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(root::routes())
        .merge(archive_policy::routes())
        .merge(archive_policy_rule::routes())
        .merge(metric::routes())
        .merge(resource::routes())
        .merge(resource_type::routes())
        .merge(search::routes())
        .merge(capabilities::routes())
        .merge(measures::routes())
        .merge(batch::routes())
        .merge(status::routes())
        .merge(aggregates::routes())
        .merge(influxdb::routes())
        .merge(prometheus::routes())
}

/// The application, routes and middleware, without path normalisation.
pub fn router(state: Arc<AppState>) -> Router {
    let (routes, _) = routes().split_for_parts();
    routes
        .fallback(|| async { ApiError::no_route() })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Inside `negotiate`, so a timeout is rendered as the client asked.
        .layer(middleware::from_fn_with_state(
            state.config.request_timeout,
            timeout::limit,
        ))
        .layer(middleware::from_fn(error::negotiate))
        .layer(middleware::from_fn_with_state(state.clone(), cors::cors))
        .with_state(state)
}

/// The OpenAPI 3.1 description of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// [`openapi`] as pretty JSON ending in a newline: what `gnocchid openapi`
/// prints and `api-docs/openapi.json` holds.
pub fn openapi_json() -> String {
    let mut text =
        serde_json::to_string_pretty(&openapi()).expect("an OpenAPI document always serialises");
    text.push('\n');
    text
}

/// Serves [`router`] on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = tower::util::MapRequestLayer::new(normalize_path).layer(router(state));
    axum::serve(listener, ServiceExt::<Request>::into_make_service(app))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A `201 Created` with the new object's absolute URL in `Location`.
fn created(location: String, body: serde_json::Value) -> Response {
    let mut response = (StatusCode::CREATED, json::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Percent-encodes one path segment (names may hold any Unicode).
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:@!$&'()*+,;=".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Merges repeated slashes and drops one trailing slash, keeping the query.
fn normalize_path(mut request: Request) -> Request {
    let uri = request.uri();
    let path = uri.path();
    if !path.contains("//") && (path.len() <= 1 || !path.ends_with('/')) {
        return request;
    }
    let mut clean = String::with_capacity(path.len());
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        clean.push('/');
        clean.push_str(segment);
    }
    if clean.is_empty() {
        clean.push('/');
    }
    if let Some(query) = uri.query() {
        clean.push('?');
        clean.push_str(query);
    }
    let mut parts = uri.clone().into_parts();
    if let Ok(path_and_query) = clean.parse() {
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(uri: &str) -> String {
        let request = Request::builder()
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        normalize_path(request).uri().to_string()
    }

    #[test]
    fn slashes_are_normalised() {
        assert_eq!(
            normalized("/v1/archive_policy//low"),
            "/v1/archive_policy/low"
        );
        assert_eq!(normalized("/v1/metric/"), "/v1/metric");
        assert_eq!(normalized("/v1/metric/?limit=2"), "/v1/metric?limit=2");
        assert_eq!(normalized("/"), "/");
        assert_eq!(normalized("//"), "/");
        assert_eq!(
            normalized("/v1/status?details=False"),
            "/v1/status?details=False"
        );
    }
}
