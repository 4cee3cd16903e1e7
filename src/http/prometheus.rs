//! Prometheus remote write: `POST /v1/prometheus/write` (see
//! [`crate::ingest::remote_write`]). Resources are of type `prometheus`
//! (created on first use, with required `job` and `instance` strings), with
//! original id `<job>@<instance>`; answered `202` once the measures are durable.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use indexer::{AttributeSchema, AttributeType};
use serde_json::{json, Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::Authenticated;
use super::influxdb::{push_batches, resource_metrics, AutoResource};
use super::measures::accepted;
use super::openapi as doc;
use super::ApiError;
use crate::app::AppState;
use crate::ingest::remote_write::{self, RemoteWriteError};
use crate::ingest::MetricSeries;

const RESOURCE_TYPE: &str = "prometheus";

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(write))
}

/// Gnocchi's `prometheus` resource type.
fn resource_type_attributes() -> BTreeMap<String, AttributeSchema> {
    let text = || AttributeSchema {
        attr_type: AttributeType::String {
            min_length: 1,
            max_length: 512,
        },
        required: true,
        fill: None,
    };
    BTreeMap::from([("instance".to_owned(), text()), ("job".to_owned(), text())])
}

fn decode_error(error: RemoteWriteError) -> ApiError {
    ApiError::bad_request(json!({
        "cause": "Invalid input",
        "reason": error.to_string(),
        "detail": "body",
    }))
}

#[utoipa::path(
    post,
    path = "/v1/prometheus/write",
    tag = "ingest",
    request_body(content = Vec<u8>, content_type = "application/x-protobuf", description = "A snappy-compressed Prometheus remote-write `WriteRequest`"),
    responses(
        (status = 202, description = "Accepted and durable"),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody)
    )
)]
async fn write(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    body: Bytes,
) -> Result<Response, ApiError> {
    let raw = remote_write::decompress(&body).map_err(decode_error)?;
    let request = remote_write::decode(&raw).map_err(decode_error)?;
    let grouped = remote_write::group(&request).map_err(decode_error)?;
    let creator = caller.0.creator();
    let type_attributes = resource_type_attributes();
    let mut resources: Vec<((String, String), MetricSeries)> = grouped.into_iter().collect();
    resources.sort_by(|a, b| a.0.cmp(&b.0));
    let mut batches = Vec::new();
    for ((job, instance), metrics) in resources {
        let original_id = format!("{job}@{instance}");
        let attributes: Map<String, Value> = [
            ("job".to_owned(), Value::String(job)),
            ("instance".to_owned(), Value::String(instance)),
        ]
        .into_iter()
        .collect();
        let wanted = AutoResource {
            type_name: RESOURCE_TYPE,
            original_id: &original_id,
            attributes,
            type_attributes: Some(&type_attributes),
        };
        let ids = resource_metrics(&state, &caller, &creator, &wanted, metrics.keys()).await?;
        push_batches(&state, &caller, &ids, metrics, &mut batches).await?;
    }
    super::measures::append(&state, batches).await?;
    Ok(accepted())
}
