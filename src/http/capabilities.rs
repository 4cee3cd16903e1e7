//! `/v1/capabilities`: what clients may ask for. Aodh validates every alarm's
//! aggregation method against this list.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use carbonara::aggregation::Method;
use serde_json::{json, Value};

use super::json::Json;
use crate::app::AppState;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/capabilities", get(capabilities))
}

async fn capabilities() -> Json<Value> {
    let mut methods: Vec<String> = Method::all().map(|m| m.to_string()).collect();
    methods.sort();
    Json(json!({ "aggregation_methods": methods }))
}
