//! The version document at `/`, the health check, and the `/v1` link index.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::extract::BaseUrl;
use super::json::Json;
use crate::app::AppState;

/// The Gnocchi release whose API this server implements. Clients gate features
/// on it: Ceilometer needs >= 4.2.0, Grafana enables `attrs` from 4.2.0.
pub(crate) const GNOCCHI_API_BUILD: &str = "4.7.1";

/// Top-level collections under `/v1`, as Gnocchi lists them (sorted).
const V1_COLLECTIONS: &[&str] = &[
    "aggregates",
    "aggregation",
    "archive_policy",
    "archive_policy_rule",
    "batch",
    "capabilities",
    "influxdb",
    "metric",
    "resource",
    "resource_type",
    "search",
    "status",
];

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(versions))
        .route("/healthcheck", get(healthcheck).head(healthcheck))
        .route("/v1", get(v1_index))
}

async fn versions(base: BaseUrl) -> Json<Value> {
    Json(json!({
        "build": GNOCCHI_API_BUILD,
        "versions": [{
            "id": "v1.0",
            "status": "CURRENT",
            "links": [{"rel": "self", "href": base.join("/v1/")}],
            "updated": "2015-03-19",
        }],
    }))
}

async fn healthcheck() -> &'static str {
    "OK"
}

async fn v1_index(base: BaseUrl) -> Json<Value> {
    let root = base.join("/v1");
    let mut links = vec![json!({"rel": "self", "href": root})];
    links.extend(
        V1_COLLECTIONS
            .iter()
            .map(|name| json!({"rel": name, "href": format!("{root}/{name}")})),
    );
    Json(json!({"version": "1.0", "links": links}))
}
