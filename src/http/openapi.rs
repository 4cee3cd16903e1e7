//! The OpenAPI description of the API, generated from the route table.
//!
//! Every handler carries a `#[utoipa::path]` attribute (method, path,
//! parameters, body, answers) and every module registers its handlers with
//! `utoipa_axum::routes!`, which serves each handler at the path its
//! attribute names. The router and the document come from the same
//! declarations: a route cannot be served undocumented, nor documented at a
//! path it is not served on. Only the shims that answer `405` to a wrong
//! method are registered without a description.
//!
//! Request bodies are parsed by hand (so that failures carry Gnocchi's
//! voluptuous messages), so their shapes are described by the types below,
//! which exist for the document only and are never built.
//!
//! `gnocchid openapi` prints the document; `api-docs/openapi.json` is its
//! output, and a test here fails when the two differ.

// The schema types are read by the `ToSchema` derive, never built or read.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

/// The document's fixed parts; the paths come from the routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "gnocchid",
        description = "Gnocchi's REST API v1, as served by gnocchid. Errors are \
            `{\"code\", \"title\", \"description\"}` when the client accepts JSON, a \
            plain-text page otherwise. Every request is bounded by `--request-timeout` \
            and answered 503 past it.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BasicAuth),
    security(("basic" = [])),
    tags(
        (name = "root", description = "Version document, health check, link index"),
        (name = "archive policy", description = "How long and how finely aggregates are kept"),
        (name = "archive policy rule", description = "Which policy a new metric gets by its name"),
        (name = "metric", description = "Metrics and their measures"),
        (name = "resource", description = "Resources of every type, their history and metrics"),
        (name = "resource type", description = "Resource types and their attributes"),
        (name = "search", description = "Resource search"),
        (name = "batch", description = "Measures for many metrics at once"),
        (name = "aggregates", description = "Operations across metrics"),
        (name = "status", description = "Capabilities and processing backlog"),
        (name = "ingest", description = "InfluxDB line protocol and Prometheus remote write"),
    )
)]
pub(super) struct ApiDoc;

/// Declares the `basic` scheme the default auth mode uses (`admin` is the
/// administrator; the password is ignored).
#[derive(Debug)]
struct BasicAuth;

impl Modify for BasicAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

// ---------------------------------------------------------------------------
// Shared parameters.

/// Paging and ordering of a listing.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct PageParams {
    /// Page size, at most `--max-limit` (the default page size too).
    limit: Option<u32>,
    /// Last id of the previous page, as the `Link: rel="next"` header gives it.
    marker: Option<String>,
    /// `attribute[:asc|:desc][-nullsfirst|-nullslast]`; repeatable.
    sort: Option<Vec<String>>,
}

/// What a resource listing or search returns.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ResourceListParams {
    /// Include the type-specific attributes of resources listed through `generic`.
    details: Option<bool>,
    /// Include old revisions.
    history: Option<bool>,
    /// Return only these attributes; repeatable.
    attrs: Option<Vec<String>>,
}

/// Which measures a read returns.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct MeasuresParams {
    /// Aggregation method (default `mean`).
    aggregation: Option<String>,
    /// Only this granularity (a timespan such as `60` or `1 minute`).
    granularity: Option<String>,
    /// First timestamp included (ISO 8601, epoch seconds or `-2 days`).
    start: Option<String>,
    /// First timestamp excluded.
    stop: Option<String>,
    /// Regroup to this timespan, or to a calendar group `Y`, `H`, `Q`, `M`, `W`.
    resample: Option<String>,
    /// Aggregate the metric's pending measures before answering.
    refresh: Option<bool>,
}

/// Options of the aggregation endpoints.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AggregatesParams {
    /// First timestamp included.
    start: Option<String>,
    /// First timestamp excluded.
    stop: Option<String>,
    /// Only this granularity.
    granularity: Option<String>,
    /// Percentage of series that must have a point for it to be returned.
    needed_overlap: Option<f64>,
    /// A number, `null`, `dropna`, `ffill`, `bfill`, `full_ffill` or `full_bfill`.
    fill: Option<String>,
    /// Answer `{"references", "measures"}` with the metrics used.
    details: Option<bool>,
    /// Aggregate pending measures first.
    refresh: Option<bool>,
}

/// Parameters of the deprecated `/v1/aggregation/…` endpoints.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DeprecatedAggregationParams {
    /// Metric ids (`/v1/aggregation/metric`); repeatable.
    metric: Option<Vec<String>>,
    /// Method read from each metric (default `mean`).
    aggregation: Option<String>,
    /// Method combining the metrics (default: `aggregation`).
    reaggregation: Option<String>,
    /// Regroup to this timespan (needs `granularity`).
    resample: Option<String>,
    /// Attributes to group the resources by (`/v1/aggregation/resource/…`); repeatable.
    groupby: Option<Vec<String>>,
}

// ---------------------------------------------------------------------------
// Bodies.

/// Gnocchi's error shape.
#[derive(Debug, ToSchema)]
pub(super) struct ErrorBody {
    /// The HTTP status.
    code: u16,
    /// The status's reason phrase.
    title: String,
    /// A message, or `{"cause", "reason", "detail"}` for invalid input.
    description: Value,
}

/// One archive of a policy: two of the three fields fix the third.
#[derive(Debug, ToSchema)]
pub(super) struct ArchivePolicyItem {
    /// A timespan: seconds, `1 minute`, `1h`, ... (answered as `0:01:00`).
    granularity: Option<String>,
    /// How many points the archive keeps.
    points: Option<u64>,
    /// How long the archive reaches back (answered as `30 days, 0:00:00`).
    timespan: Option<String>,
}

/// An archive policy.
#[derive(Debug, ToSchema)]
pub(super) struct ArchivePolicy {
    name: String,
    /// Points of the coarsest archive late measures may still change.
    back_window: Option<u64>,
    /// Methods to compute; `+method` and `-method` change the defaults.
    aggregation_methods: Option<Vec<String>>,
    definition: Vec<ArchivePolicyItem>,
}

/// A change of an archive policy: only its definition may change, and only
/// in the number of points of the granularities it already has.
#[derive(Debug, ToSchema)]
pub(super) struct ArchivePolicyUpdate {
    definition: Vec<ArchivePolicyItem>,
}

/// A rule giving new metrics whose name matches a policy.
#[derive(Debug, ToSchema)]
pub(super) struct ArchivePolicyRule {
    name: String,
    /// A glob (`disk.*`, `*`); the longest matching pattern wins.
    metric_pattern: String,
    archive_policy_name: String,
}

/// A rule's new name: the only change a rule takes.
#[derive(Debug, ToSchema)]
pub(super) struct ArchivePolicyRuleUpdate {
    name: String,
}

/// A metric to create. Without `archive_policy_name`, the rule matching
/// `name` decides.
#[derive(Debug, ToSchema)]
pub(super) struct MetricCreate {
    archive_policy_name: Option<String>,
    name: Option<String>,
    /// At most 31 characters.
    unit: Option<String>,
    /// Attach to this resource (with `name`).
    resource_id: Option<String>,
}

/// A metric as the API shows it.
#[derive(Debug, ToSchema)]
pub(super) struct Metric {
    id: String,
    name: Option<String>,
    unit: Option<String>,
    creator: String,
    created_by_user_id: String,
    created_by_project_id: String,
    resource_id: Option<String>,
    /// The whole policy when one metric is shown; listings give `archive_policy_name`.
    archive_policy: Option<ArchivePolicy>,
    archive_policy_name: Option<String>,
    /// The resource, when one metric is shown and it has one.
    resource: Option<Resource>,
}

/// One measure to add.
#[derive(Debug, ToSchema)]
pub(super) struct Measure {
    /// ISO 8601 (no zone means UTC), epoch seconds, or a relative form such as `-5 minutes`.
    #[schema(value_type = String)]
    timestamp: Value,
    value: f64,
}

/// A stored point: `[timestamp, granularity in seconds, value]`.
#[derive(Debug, ToSchema)]
#[schema(example = json!(["2014-10-06T14:34:00+00:00", 60.0, 12.5]))]
pub(super) struct MeasureRow(Vec<Value>);

/// `{metric id: [measures]}`.
#[derive(Debug, ToSchema)]
pub(super) struct BatchMetricsMeasures(BTreeMap<String, Vec<Measure>>);

/// A metric's measures in a batch by resource: the list, or an object that
/// also says how to create the metric (`create_metrics=true`).
#[derive(Debug, ToSchema)]
#[serde(untagged)]
pub(super) enum BatchMetricMeasures {
    Measures(Vec<Measure>),
    WithDefinition {
        measures: Vec<Measure>,
        archive_policy_name: Option<String>,
        unit: Option<String>,
    },
}

/// `{resource id: {metric name: measures}}`.
#[derive(Debug, ToSchema)]
pub(super) struct BatchResourcesMeasures(BTreeMap<String, BTreeMap<String, BatchMetricMeasures>>);

/// A resource's metric by name: an existing metric's id (created by the
/// resource's creator) or the definition of one to create.
#[derive(Debug, ToSchema)]
#[serde(untagged)]
pub(super) enum ResourceMetricRef {
    Existing(String),
    New {
        archive_policy_name: Option<String>,
        unit: Option<String>,
    },
}

/// A resource to create; the type's own attributes sit beside the generic ones.
#[derive(Debug, ToSchema)]
pub(super) struct ResourceCreate {
    /// A UUID, or any other text (mapped to a UUID5 per creator).
    id: String,
    user_id: Option<String>,
    project_id: Option<String>,
    started_at: Option<String>,
    ended_at: Option<String>,
    metrics: Option<BTreeMap<String, ResourceMetricRef>>,
    #[serde(flatten)]
    attributes: BTreeMap<String, Value>,
}

/// A change of a resource: any of its attributes but `id`; `metrics`
/// replaces its metrics. A change of an attribute records a revision.
#[derive(Debug, ToSchema)]
pub(super) struct ResourceUpdate {
    user_id: Option<String>,
    project_id: Option<String>,
    started_at: Option<String>,
    ended_at: Option<String>,
    metrics: Option<BTreeMap<String, ResourceMetricRef>>,
    #[serde(flatten)]
    attributes: BTreeMap<String, Value>,
}

/// Metrics to add to a resource, by name.
#[derive(Debug, ToSchema)]
pub(super) struct ResourceMetrics(BTreeMap<String, ResourceMetricRef>);

/// A resource (or one revision of it).
#[derive(Debug, ToSchema)]
pub(super) struct Resource {
    id: String,
    #[serde(rename = "type")]
    resource_type: String,
    original_resource_id: String,
    creator: String,
    created_by_user_id: String,
    created_by_project_id: String,
    user_id: Option<String>,
    project_id: Option<String>,
    started_at: String,
    ended_at: Option<String>,
    revision_start: String,
    revision_end: Option<String>,
    /// Metric ids by name; every revision shows the resource's current metrics.
    metrics: BTreeMap<String, String>,
    #[serde(flatten)]
    attributes: BTreeMap<String, Value>,
}

/// One attribute of a resource type.
#[derive(Debug, ToSchema)]
pub(super) struct ResourceTypeAttribute {
    /// `string`, `uuid`, `number`, `bool` or `datetime`.
    #[serde(rename = "type")]
    attribute_type: String,
    required: Option<bool>,
    min_length: Option<u32>,
    max_length: Option<u32>,
    min: Option<f64>,
    max: Option<f64>,
    /// `{"fill": value}` gives existing resources a value (on PATCH).
    options: Option<BTreeMap<String, Value>>,
}

/// A resource type to create.
#[derive(Debug, ToSchema)]
pub(super) struct ResourceTypeCreate {
    name: String,
    attributes: Option<BTreeMap<String, ResourceTypeAttribute>>,
}

/// A resource type as the API shows it.
#[derive(Debug, ToSchema)]
pub(super) struct ResourceType {
    name: String,
    /// `active`, or a transitional state while its tables change.
    state: String,
    attributes: BTreeMap<String, ResourceTypeAttribute>,
}

/// One RFC 6902 operation on a resource type: `add` or `remove` of
/// `/attributes/<name>` (`application/json-patch+json`).
#[derive(Debug, ToSchema)]
pub(super) struct JsonPatchOp {
    op: String,
    path: String,
    value: Option<ResourceTypeAttribute>,
}

/// A resource filter: `{"=": {"user_id": "x"}}`, `{"and": [...]}`,
/// `{"like": {...}}`, `{"in": {...}}`, `{"not": ...}`, ...; `{}` matches all.
#[derive(Debug, ToSchema)]
pub(super) struct Filter(BTreeMap<String, Value>);

/// Operations across metrics: `(aggregate mean (metric <id> mean))`, as text
/// or as nested lists; with `resource_type` and `search`, the metrics of the
/// matching resources.
#[derive(Debug, ToSchema)]
pub(super) struct AggregatesRequest {
    #[schema(value_type = Object)]
    operations: Value,
    resource_type: Option<String>,
    /// A filter object or string over `resource_type` (all its resources
    /// when absent); without `resource_type` it is checked, not used.
    #[schema(value_type = Object)]
    search: Option<Value>,
}

/// `{"aggregation_methods": [...]}`.
#[derive(Debug, ToSchema)]
pub(super) struct Capabilities {
    aggregation_methods: Vec<String>,
}

/// Processing backlog and the processes doing it.
#[derive(Debug, ToSchema)]
pub(super) struct Status {
    #[schema(value_type = Object)]
    storage: Value,
    #[schema(value_type = Object)]
    metricd: Value,
}

#[cfg(test)]
mod tests {
    /// Where the checked-in document lives, relative to the crate.
    const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/api-docs/openapi.json");

    #[test]
    fn checked_in_document_matches_the_routes() {
        let generated = super::super::openapi_json();
        let stored = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
        assert!(
            stored == generated,
            "api-docs/openapi.json is stale: regenerate it with \
             `cargo run --release -- openapi > api-docs/openapi.json`"
        );
    }

    #[test]
    fn every_gnocchi_collection_is_described() {
        let doc: serde_json::Value = serde_json::from_str(&super::super::openapi_json()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for (path, method) in [
            ("/v1/archive_policy", "post"),
            ("/v1/archive_policy/{name}", "patch"),
            ("/v1/archive_policy_rule", "post"),
            ("/v1/metric", "post"),
            ("/v1/metric/{id}/measures", "get"),
            ("/v1/resource/{type}", "post"),
            ("/v1/resource/{type}/{id}", "patch"),
            ("/v1/resource/{type}/{id}/history", "get"),
            ("/v1/resource_type", "post"),
            ("/v1/search/resource/{type}", "post"),
            ("/v1/batch/metrics/measures", "post"),
            ("/v1/batch/resources/metrics/measures", "post"),
            ("/v1/aggregates", "post"),
            ("/v1/status", "get"),
        ] {
            let operation = &paths[path][method];
            assert!(operation.is_object(), "{method} {path} is not described");
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
            if method == "post" || method == "patch" {
                assert!(
                    operation["requestBody"]["content"].is_object(),
                    "{method} {path} has no request body"
                );
            }
        }
    }
}
