//! The single mapping from failures to HTTP answers, in Gnocchi's shape.
//!
//! Gnocchi (through Pecan and WebOb) answers errors as JSON
//! `{"code", "title", "description"}` when the client prefers JSON, and as a
//! plain-text page otherwise; clients match the description's words by regex,
//! so the text is part of the contract. Handlers return [`ApiError`]; the
//! [`negotiate`] middleware, which alone sees the request's `Accept` header,
//! renders it in the form the client asked for.

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use indexer::IndexerError;
use serde_json::{json, Value};

/// A failed request: the status and the description the client sees.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    /// A string, or an object such as `{"cause", "reason", "detail"}`.
    description: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, description: impl Into<Value>) -> Self {
        Self {
            status,
            description: description.into(),
        }
    }

    pub fn bad_request(description: impl Into<Value>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, description)
    }

    pub fn not_found(description: impl Into<Value>) -> Self {
        Self::new(StatusCode::NOT_FOUND, description)
    }

    /// No usable credentials: as Gnocchi, no detail (WebOb's sentence on a
    /// plain page).
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "")
    }

    /// `405` naming the methods the path does take, as Pecan answers it.
    pub fn method_not_allowed(allow: &'static str) -> Response {
        let mut response = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "The method specified is not allowed for this resource.",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        response
    }

    /// The body is not JSON.
    pub fn unsupported_media_type() -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "")
    }

    /// The policy refused the action.
    pub fn forbidden() -> Self {
        // Gnocchi aborts with no detail: an empty description in JSON, and
        // only WebOb's sentence on a plain page.
        Self::new(StatusCode::FORBIDDEN, "")
    }

    /// A failure that is ours, not the client's: logged with its cause, shown
    /// generically.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server encountered an unexpected condition which prevented it from fulfilling the request.",
        )
    }

    /// The 404 for a path that names no route.
    pub fn no_route() -> Self {
        Self::not_found("The resource could not be found.")
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }

    fn json(&self) -> Response {
        let body = json!({
            "code": self.status.as_u16(),
            "title": self.title(),
            "description": self.description,
        });
        (self.status, super::json::Json(body)).into_response()
    }

    /// WebOb's plain-text error page: status line, blank line, explanation.
    fn plain(&self) -> Response {
        let mut description = match &self.description {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        if let Some(explanation) = explanation(self.status) {
            if description.is_empty() {
                description = explanation.to_owned();
            } else if description != explanation {
                description = format!("{explanation}\n\n{description}");
            }
        }
        let body = format!(
            "{} {}\n\n{}\n\n",
            self.status.as_u16(),
            self.title(),
            description
        );
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
            body,
        )
            .into_response()
    }
}

/// The sentence WebOb puts before the detail of its error pages.
fn explanation(status: StatusCode) -> Option<&'static str> {
    Some(match status {
        StatusCode::UNAUTHORIZED => {
            "This server could not verify that you are authorized to access the document you \
             requested. Either you supplied the wrong credentials (e.g., bad password), or your \
             browser does not understand how to supply the credentials required."
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "The server does not support the media type transmitted in the request."
        }
        StatusCode::BAD_REQUEST => {
            "The server could not comply with the request since it is either malformed or otherwise incorrect."
        }
        StatusCode::FORBIDDEN => "Access was denied to this resource.",
        StatusCode::NOT_FOUND => "The resource could not be found.",
        StatusCode::CONFLICT => "There was a conflict when trying to complete your request.",
        StatusCode::PRECONDITION_FAILED => "Request precondition failed.",
        StatusCode::PAYLOAD_TOO_LARGE => "The body of your request was too large for this server.",
        _ => return None,
    })
}

impl IntoResponse for ApiError {
    /// Renders as JSON and leaves a copy in the response's extensions, so that
    /// [`negotiate`] can re-render it for clients that did not ask for JSON.
    fn into_response(self) -> Response {
        let mut response = self.json();
        response.extensions_mut().insert(self);
        response
    }
}

impl From<IndexerError> for ApiError {
    fn from(error: IndexerError) -> Self {
        use IndexerError as E;
        let status = match &error {
            E::NoSuchArchivePolicy(_)
            | E::NoSuchArchivePolicyRule(_)
            | E::NoSuchMetric(_)
            | E::NoSuchResource(_)
            | E::NoSuchResourceType(_) => StatusCode::NOT_FOUND,
            E::ArchivePolicyAlreadyExists(_)
            | E::ArchivePolicyRuleAlreadyExists(_)
            | E::NamedMetricAlreadyExists { .. }
            | E::ResourceAlreadyExists(_)
            | E::ResourceTypeAlreadyExists(_) => StatusCode::CONFLICT,
            E::ArchivePolicyInUse(_)
            | E::ResourceTypeInUse(_)
            | E::NoArchivePolicyRuleMatch(_)
            | E::InvalidMetricName(_)
            | E::InvalidResourceId(_)
            | E::InvalidResourceType(_)
            | E::InvalidAttribute { .. }
            | E::InvalidValue { .. }
            | E::InvalidQuery { .. }
            | E::InvalidFilter { .. }
            | E::InvalidPagination(_) => StatusCode::BAD_REQUEST,
            _ => {
                let chain = error_chain(&error);
                return Self::internal(chain);
            }
        };
        Self::new(status, error.to_string())
    }
}

/// An error and its sources on one line, for the log.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The error body formats a client can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorFormat {
    Json,
    Plain,
}

/// Picks the format Pecan would: JSON only when `application/json` is the best
/// match of the `Accept` header among plain text, HTML and JSON.
fn error_format(headers: &HeaderMap) -> ErrorFormat {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return ErrorFormat::Plain;
    };
    let mut best = (0.0_f32, ErrorFormat::Plain);
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let quality = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let format = match media.as_str() {
            "application/json" | "application/*" => ErrorFormat::Json,
            "text/plain" | "text/html" | "text/*" | "*/*" => ErrorFormat::Plain,
            _ => continue,
        };
        // Exact JSON beats a wildcard of equal weight, as in WebOb's best_match.
        if quality > best.0 || (quality == best.0 && format == ErrorFormat::Json && quality > 0.0) {
            best = (quality, format);
        }
    }
    best.1
}

/// Whether a JSON answer is acceptable: no `Accept` header, or one that lists
/// JSON or a wildcard with a non-zero weight.
fn accepts_json(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                == Some(0.0)
        });
        !refused
            && matches!(
                media.as_str(),
                "application/json" | "application/*" | "*/*" | ""
            )
    })
}

/// Middleware: re-renders an [`ApiError`] as plain text unless the client
/// prefers JSON.
pub(super) async fn negotiate(request: Request, next: Next) -> Response {
    let format = error_format(request.headers());
    if request.uri().path().starts_with("/v1") && !accepts_json(request.headers()) {
        let refused = ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "The resource could not be generated that was acceptable to your user agent.",
        );
        return refused.plain();
    }
    let response = next.run(request).await;
    if format == ErrorFormat::Json {
        return response;
    }
    match response.extensions().get::<ApiError>() {
        Some(error) => {
            let mut plain = error.plain();
            copy_headers(&response, &mut plain);
            plain
        }
        None => response,
    }
}

/// Keeps headers a handler set on an error (`Allow`, CORS) when re-rendering it.
fn copy_headers(from: &Response, to: &mut Response) {
    for (name, value) in from.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            to.headers_mut().insert(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn json_only_when_preferred() {
        assert_eq!(error_format(&HeaderMap::new()), ErrorFormat::Plain);
        assert_eq!(error_format(&accept("application/json")), ErrorFormat::Json);
        assert_eq!(error_format(&accept("*/*")), ErrorFormat::Plain);
        assert_eq!(
            error_format(&accept("text/plain, application/json; q=0.8")),
            ErrorFormat::Plain
        );
        assert_eq!(
            error_format(&accept("text/plain; q=0.5, application/json")),
            ErrorFormat::Json
        );
    }

    async fn plain_body(error: ApiError) -> String {
        let response = error.plain();
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            HeaderValue::from_static("text/plain; charset=UTF-8")
        );
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn plain_page_carries_explanation_and_description() {
        assert_eq!(
            plain_body(ApiError::not_found("Metric foo does not exist")).await,
            "404 Not Found\n\nThe resource could not be found.\n\nMetric foo does not exist\n\n"
        );
        let body = plain_body(ApiError::bad_request("Invalid input")).await;
        assert!(
            body.starts_with("400 Bad Request\n\nThe server could not comply"),
            "{body}"
        );
        assert!(body.ends_with("incorrect.\n\nInvalid input\n\n"), "{body}");
        // A 403 has no detail: an empty description, the sentence alone.
        assert_eq!(ApiError::forbidden().description, json!(""));
        assert_eq!(
            plain_body(ApiError::forbidden()).await,
            "403 Forbidden\n\nAccess was denied to this resource.\n\n"
        );
        // Statuses WebOb has no sentence for carry the description alone.
        let error = ApiError::new(StatusCode::METHOD_NOT_ALLOWED, json!("Method Not Allowed"));
        assert_eq!(
            plain_body(error).await,
            "405 Method Not Allowed\n\nMethod Not Allowed\n\n"
        );
    }
}
