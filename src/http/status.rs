//! `/v1/status`: the processing backlog, from the incoming store's counters.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use serde_json::{json, Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::Authenticated;
use super::json::Json;
use super::openapi as doc;
use super::query::QueryParams;
use super::ApiError;
use crate::app::AppState;
use crate::auth::Target;

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(status))
}

/// `{"storage": {"summary": {...}, "measures_to_process": {...}}, "metricd":
/// {"processors": [...], "statistics": {...}}}`; `details=false` leaves out
/// the per-metric counts.
#[utoipa::path(
    get,
    path = "/v1/status",
    tag = "status",
    params(
        ("details" = Option<bool>, Query, description = "Include per-metric counts (default true)")
    ),
    responses(
        (status = 200, description = "Backlog of measures to process and the processors", body = doc::Status),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody)
    )
)]
async fn status(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    caller.enforce(&state, "get status", &Target::new())?;
    let query = QueryParams::parse(raw.as_deref());
    let details = match query.get("details") {
        None => true,
        Some(_) => query.flag("details")?,
    };
    let backlog = state
        .incoming
        .backlog(details)
        .await
        .map_err(ApiError::internal)?;
    let mut storage = Map::new();
    storage.insert(
        "summary".into(),
        json!({"metrics": backlog.metrics, "measures": backlog.measures}),
    );
    if let Some(per_metric) = backlog.per_metric {
        let mut counts = Map::new();
        for (seq, count) in per_metric {
            if let Ok(Some(entry)) = state.metrics.by_seq(seq).await {
                counts.insert(entry.metric.id.to_string(), json!(count));
            }
        }
        storage.insert("measures_to_process".into(), Value::Object(counts));
    }
    Ok(Json(json!({
        "storage": storage,
        "metricd": {
            "processors": [state.processor_id],
            "statistics": state.metricd.statistics(),
        },
    })))
}
