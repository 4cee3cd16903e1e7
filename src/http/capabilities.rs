//! `/v1/capabilities`: what clients may ask for. Aodh validates every alarm's
//! aggregation method against this list.

use std::sync::Arc;

use carbonara::aggregation::Method;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::json::Json;
use super::openapi as doc;
use crate::app::AppState;

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(capabilities))
}

#[utoipa::path(
    get,
    path = "/v1/capabilities",
    tag = "status",
    security(()),
    responses(
        (status = 200, description = "The aggregation methods", body = doc::Capabilities)
    )
)]
async fn capabilities() -> Json<Value> {
    let mut methods: Vec<String> = Method::all().map(|m| m.to_string()).collect();
    methods.sort();
    Json(json!({ "aggregation_methods": methods }))
}
