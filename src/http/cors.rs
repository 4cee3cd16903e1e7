//! CORS as oslo.middleware answers it for Gnocchi: preflights from an allowed
//! origin get the allowed method and headers echoed; anything else gets no
//! CORS headers at all.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;

const ALLOWED_METHODS: &[&str] = &["GET", "PUT", "POST", "DELETE", "PATCH"];
const EXPOSED_HEADERS: &str = "Content-Type, Cache-Control, Content-Language, Expires, \
    Last-Modified, Pragma, X-Auth-Token, Location, Link, ETag";
/// How long browsers may cache a preflight answer, in seconds.
const MAX_AGE: &str = "3600";

pub(super) async fn cors(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|origin| {
            state
                .config
                .cors_allowed_origins
                .iter()
                .any(|o| o == origin)
        })
        .map(str::to_owned);
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        return preflight_answer(&request, origin.as_deref());
    }
    let mut response = next.run(request).await;
    if let Some(origin) = origin.and_then(|o| HeaderValue::from_str(&o).ok()) {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

fn preflight_answer(request: &Request, origin: Option<&str>) -> Response {
    let mut response = StatusCode::OK.into_response();
    let Some(origin) = origin.and_then(|o| HeaderValue::from_str(o).ok()) else {
        return response;
    };
    let asked = request
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ALLOWED_METHODS.contains(&asked) {
        return response;
    }
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(
            ALLOWED_METHODS[ALLOWED_METHODS
                .iter()
                .position(|m| *m == asked)
                .unwrap_or(0)],
        ),
    );
    if let Some(asked_headers) = request
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
    {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked_headers.clone());
    }
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    response
}
