//! Request facts that handlers need beyond their own parameters.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde_json::Value;

use super::ApiError;
use crate::app::AppState;
use crate::auth::{Caller, Target};

/// The absolute URL clients reach this server at, without a trailing slash:
/// what `Location` and `Link` headers and link documents are built from.
#[derive(Debug, Clone)]
pub(crate) struct BaseUrl(pub(crate) String);

impl BaseUrl {
    /// `base` followed by `path` (which starts with `/`).
    pub(crate) fn join(&self, path: &str) -> String {
        format!("{}{}", self.0, path)
    }
}

impl FromRequestParts<Arc<AppState>> for BaseUrl {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let header_str = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let mut scheme = "http".to_owned();
        let mut host = header_str(header::HOST.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| state.config.listen.to_string());
        if state.config.enable_proxy_headers {
            if let Some(forwarded) = header_str("forwarded") {
                for pair in forwarded.split(',').next().unwrap_or("").split(';') {
                    match pair.trim().split_once('=') {
                        Some((key, value)) if key.eq_ignore_ascii_case("proto") => {
                            scheme = value.trim_matches('"').to_owned();
                        }
                        Some((key, value)) if key.eq_ignore_ascii_case("host") => {
                            host = value.trim_matches('"').to_owned();
                        }
                        _ => {}
                    }
                }
            } else {
                if let Some(proto) = header_str("x-forwarded-proto") {
                    scheme = proto.to_owned();
                }
                if let Some(forwarded_host) = header_str("x-forwarded-host") {
                    host = forwarded_host.to_owned();
                }
            }
        }
        Ok(BaseUrl(format!("{scheme}://{host}")))
    }
}

/// The authenticated caller; rejects with 401 when the configured auth mode
/// finds no identity in the request.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated(pub(crate) Caller);

impl FromRequestParts<Arc<AppState>> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        Caller::from_headers(state.config.auth_mode, &parts.headers)
            .map(Authenticated)
            .map_err(|_| ApiError::unauthorized())
    }
}

impl Authenticated {
    /// Checks `action` against the policy; 403 when refused.
    pub(crate) fn enforce(
        &self,
        state: &AppState,
        action: &str,
        target: &Target,
    ) -> Result<(), ApiError> {
        if state.policy.allows(action, &self.0, target) {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }
}

/// A JSON request body, read the way Gnocchi reads one: any content type but
/// JSON is a 415, and a body that does not parse is a 400 naming the problem.
#[derive(Debug, Clone)]
pub(crate) struct JsonBody(pub(crate) Value);

impl FromRequest<Arc<AppState>> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(
        request: Request,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(ApiError::unsupported_media_type());
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|err| ApiError::bad_request(format!("Unable to decode body: {err}")))
    }
}

/// Whether the request says its body is JSON (`application/json`, any parameters).
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}
