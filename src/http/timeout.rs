//! A bound on the time one request may take (`--request-timeout`).
//!
//! A request still being handled when the bound passes is dropped and
//! answered `503 Service Unavailable` in Gnocchi's error shape, so one stuck
//! backend call cannot pin a connection and its memory forever. The bound
//! covers receiving the body too: a client that stops sending mid-body is cut
//! off the same way.
//!
//! Why 503 and not 408: `408 Request Timeout` says the *client* was too slow
//! to send its request, while here the server could not finish in time. 503
//! is also what Gnocchi itself answers when it cannot do an operation within
//! its `operation_timeout` (refreshing a locked metric), and clients already
//! treat it as "try again later".
//!
//! Dropping the handler is safe for the stores: an indexer transaction that
//! has not committed rolls back, and the incoming log appends a request's
//! measures in one message to its writer task, so a timed-out write is
//! either wholly accepted or not at all. (A retried write that had in fact
//! been accepted stores the same timestamps again, which processing merges.)
//! A `refresh=true` read only waits for processing, which runs as a task of
//! its own and finishes under its sack lock whatever happens to the request.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// Runs the rest of the stack for at most `limit`.
pub(super) async fn limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(?limit, "request timed out");
            timed_out(limit).into_response()
        }
    }
}

/// The answer to a request that ran out of time.
fn timed_out(limit: Duration) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "Request timed out after {} seconds. Please try again.",
            limit.as_secs_f64()
        ),
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use axum::{middleware, Router};
    use tower::ServiceExt;

    use super::*;

    fn app(limit: Duration) -> Router {
        Router::new()
            // Never answers: only the timeout can end this request.
            .route("/stuck", get(std::future::pending::<&'static str>))
            .route("/quick", get(|| async { "done" }))
            .layer(middleware::from_fn_with_state(limit, super::limit))
    }

    async fn call(app: Router, path: &str) -> (StatusCode, serde_json::Value, String) {
        let request = Request::builder().uri(path).body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_default(),
            text,
        )
    }

    #[tokio::test]
    async fn a_request_past_the_limit_gets_a_gnocchi_503() {
        let (status, body, _) = call(app(Duration::from_millis(10)), "/stuck").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["code"], 503);
        assert_eq!(body["title"], "Service Unavailable");
        assert_eq!(
            body["description"],
            "Request timed out after 0.01 seconds. Please try again."
        );
    }

    #[tokio::test]
    async fn a_request_within_the_limit_is_untouched() {
        let (status, _, text) = call(app(Duration::from_secs(3600)), "/quick").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(text, "done");
    }
}
