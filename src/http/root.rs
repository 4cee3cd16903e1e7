//! The version document at `/`, the health check, and the `/v1` link index.

use std::sync::Arc;

use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(versions))
        .routes(routes!(healthcheck))
        .routes(routes!(v1_index))
}

#[utoipa::path(
    get,
    path = "/",
    tag = "root",
    security(()),
    responses(
        (status = 200, description = "Versions and Gnocchi build number", body = serde_json::Value)
    )
)]
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

#[utoipa::path(
    method(get, head),
    path = "/healthcheck",
    tag = "root",
    security(()),
    responses(
        (status = 200, description = "The server is up", body = String)
    )
)]
async fn healthcheck() -> &'static str {
    "OK"
}

#[utoipa::path(
    get,
    path = "/v1",
    tag = "root",
    security(()),
    responses(
        (status = 200, description = "Links to the collections", body = serde_json::Value)
    )
)]
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
