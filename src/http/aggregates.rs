//! Dynamic aggregates: `POST /v1/aggregates` (operations over metric ids, or
//! over the metrics of the resources a search selects, optionally grouped),
//! and the deprecated `/v1/aggregation/metric` and
//! `/v1/aggregation/resource/{type}/metric/{name}` that Aodh still calls;
//! and `POST /v1/search/metric`, the measures of some metrics that a
//! predicate selects.
//!
//! The domain work is in [`crate::aggregates`]; this module resolves the
//! references, reads the series and writes the answer straight into the body
//! (measures carry bare `NaN` tokens, which serde_json cannot write).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use carbonara::aggregated::AggregatedSeries;
use carbonara::aggregation::Method;
use carbonara::calendar::CalendarGrouping;
use carbonara::timespan::parse_timespan;
use futures::future::try_join_all;
use indexer::{IndexerError, Resource, ResourceType, SearchOptions};
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{is_json, Authenticated};
use super::json::{python_float, to_vec, MeasureRows};
use super::measures::lookup_error;
use super::metric::{metric_json, metric_target, MetricView};
use super::openapi as doc;
use super::query::{parse_bool, QueryParams};
use super::resource::{
    combine, location, policy_filter, request_filter, resource_json, search_error, string_filter,
};
use super::ApiError;
use crate::aggregates::evaluate::{
    evaluate, plan_granularities, Block, Evaluated, Fill, Granularity, Input, Options,
    RefGranularities,
};
use crate::aggregates::history::{self, Window};
use crate::aggregates::measure_query::{MeasureQuery, QueryError};
use crate::aggregates::parse::{Node, Operations, RowAgg, Sampling};
use crate::aggregates::search_cache::SearchKey;
use crate::aggregates::AggregatesError;
use crate::app::AppState;
use crate::metric_cache::{CachedMetric, LookupError};
use crate::time::{now, parse_timestamp, RawTimestamp};

// The deprecated handlers carry `#[deprecated]` so the OpenAPI document marks
// their operations deprecated; they are still served because Aodh calls them.
#[allow(deprecated)]
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(aggregates))
        .routes(routes!(deprecated_metric_post, deprecated_metric_get))
        .routes(routes!(deprecated_resource))
        .route(
            "/v1/aggregation/resource/{type}/metric/{name}",
            MethodRouter::new().fallback(method_not_allowed),
        )
        .route(
            "/v1/aggregation/resource/{type}/metric",
            axum::routing::any(method_not_allowed),
        )
        .routes(routes!(search_metric))
        .route(
            "/v1/search/metric",
            MethodRouter::new().fallback(method_not_allowed),
        )
}

/// The Gnocchi answer for a domain failure.
fn domain_error(error: AggregatesError) -> ApiError {
    match error {
        AggregatesError::InvalidInput(message) => ApiError::bad_request(json!({
            "cause": "Invalid input",
            "reason": format!("{message} for dictionary value @ data['operations']"),
            "detail": ["operations"],
        })),
        AggregatesError::ParseString(detail) => ApiError::bad_request(json!({
            "cause": "Invalid operations",
            "reason": "Fail to parse the operations string",
            "detail": detail,
        })),
        AggregatesError::UnknownMetrics(ids) => ApiError::not_found(json!({
            "cause": "Unknown metrics",
            "reason": "Provided metrics don't exists",
            "detail": ids,
        })),
        AggregatesError::UnknownAggregation {
            metric,
            aggregation,
        } => ApiError::not_found(json!({
            "cause": "Metrics with unknown aggregation",
            "detail": [[metric, aggregation]],
        })),
        AggregatesError::Unaggregable { reason, detail } => ApiError::bad_request(json!({
            "cause": "Metrics cannot be aggregated",
            "reason": reason,
            "detail": detail,
        })),
    }
}

/// A refused metric search query: the schema's "Invalid input", or
/// Gnocchi's storage refusing an operator as text.
fn query_error(error: QueryError) -> ApiError {
    match error {
        QueryError::Schema { message, path } if path.is_empty() => {
            invalid_input(message, json!([]))
        }
        QueryError::Schema { message, path } => {
            invalid_input(format!("{message} @ {}", location(&path)), json!(path))
        }
        other @ QueryError::UnknownOperator(_) => ApiError::bad_request(other.to_string()),
    }
}

fn argument_error(reason: &str, detail: &str) -> ApiError {
    ApiError::bad_request(json!({
        "cause": "Argument value error",
        "reason": reason,
        "detail": detail,
    }))
}

fn invalid_input(reason: String, detail: Value) -> ApiError {
    ApiError::bad_request(json!({"cause": "Invalid input", "reason": reason, "detail": detail}))
}

/// The query parameters common to every aggregation endpoint.
#[derive(Debug, Clone)]
struct Params {
    start: Option<i64>,
    stop: Option<i64>,
    granularity: Option<i64>,
    needed_overlap: Option<f64>,
    fill: Option<Fill>,
    details: bool,
    refresh: bool,
}

impl Params {
    fn parse(query: &QueryParams) -> Result<Params, ApiError> {
        let time = |name: &str| {
            query
                .get(name)
                .map(|text| {
                    parse_timestamp(RawTimestamp::Text(text), now())
                        .map_err(|_| argument_error("Must be a datetime or a timestamp", name))
                })
                .transpose()
        };
        let start = time("start")?;
        let stop = time("stop")?;
        let needed_overlap = query
            .get("needed_overlap")
            .map(|text| {
                text.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| !v.is_nan())
                    .ok_or_else(|| argument_error("Must be a number", "needed_overlap"))
            })
            .transpose()?;
        let granularity = query
            .get("granularity")
            .map(|text| {
                parse_timespan(text)
                    .map_err(|_| argument_error("Unable to parse timespan", "granularity"))
            })
            .transpose()?;
        let fill = query
            .get("fill")
            .map(|text| {
                Fill::parse(text).ok_or_else(|| {
                    argument_error(
                        "Must be a float, 'dropna', 'null', 'ffill', 'bfill', 'full_ffill' or 'full_bfill'",
                        "fill",
                    )
                })
            })
            .transpose()?;
        Ok(Params {
            start,
            stop,
            granularity,
            needed_overlap,
            fill,
            details: query.flag("details")?,
            // `/v1/aggregates` reads it leniently, as Gnocchi's does: anything
            // but a true word is false (see `strict_refresh`).
            refresh: query.get("refresh").and_then(parse_bool) == Some(true),
        })
    }

    /// The deprecated endpoints refuse a `refresh` that is not a boolean
    /// word, as Gnocchi's `strtobool` does.
    fn strict_refresh(mut self, query: &QueryParams) -> Result<Params, ApiError> {
        self.refresh = query.flag("refresh")?;
        Ok(self)
    }

    /// The evaluation options; `dropna` is the default fill of
    /// `/v1/aggregates` when neither `fill` nor `needed_overlap` is given.
    fn options(&self, default_dropna: bool) -> Options {
        let fill = match self.fill {
            Some(fill) => fill,
            None if default_dropna && self.needed_overlap.is_none() => Fill::Dropna,
            None => Fill::None,
        };
        Options {
            start: self.start,
            stop: self.stop,
            fill,
            needed_overlap: self.needed_overlap.unwrap_or(100.0),
        }
    }
}

/// One resolved reference: the metric, the method, and where its measures go
/// in the answer.
#[derive(Debug, Clone)]
struct Resolved {
    entry: Arc<CachedMetric>,
    method: Method,
    /// `[metric id, aggregation]` or `[resource id, metric name, aggregation]`.
    path: Vec<String>,
    /// The metric as the operations named it (its id, or the name or
    /// pattern matched in each resource): errors name references by it.
    named: String,
    /// With `use_history`, the windows of the revisions that put this
    /// metric in its group: their measures are read per window, scaled and
    /// summed (see [`history`]). Empty otherwise: the asked range, unscaled.
    windows: Vec<Window>,
}

impl Resolved {
    /// The reference as errors name it, Gnocchi's lookup key: `[metric id
    /// or name as asked, aggregation]`.
    fn lookup_key(&self) -> Value {
        json!([self.named, self.path.last()])
    }
}

fn json_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    if !is_json(headers) {
        return Err(ApiError::unsupported_media_type());
    }
    serde_json::from_slice(body)
        .map_err(|err| ApiError::bad_request(format!("Unable to decode body: {err}")))
}

#[utoipa::path(
    post,
    path = "/v1/aggregates",
    tag = "aggregates",
    params(
        doc::AggregatesParams,
        ("groupby" = Option<Vec<String>>, Query, description = "Group the searched resources by these attributes; repeatable")
    ),
    request_body = doc::AggregatesRequest,
    responses(
        (status = 200, description = "The computed series by reference (or per group with `groupby`)", body = serde_json::Value),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "A metric, resource type or aggregation does not exist", body = doc::ErrorBody),
        (status = 415, description = "The body is not JSON", body = doc::ErrorBody)
    )
)]
async fn aggregates(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let query = QueryParams::parse(raw.as_deref());
    let params = Params::parse(&query)?;
    let body = json_body(&headers, &body)?;
    let Value::Object(fields) = &body else {
        return Err(invalid_input(
            "expected a dictionary".to_owned(),
            Value::Array(Vec::new()),
        ));
    };
    // Both of Gnocchi's body schemas refuse any other key.
    if let Some(extra) = fields
        .keys()
        .find(|key| !matches!(key.as_str(), "operations" | "resource_type" | "search"))
    {
        return Err(invalid_input(
            format!("extra keys not allowed @ data['{extra}']"),
            json!([extra]),
        ));
    }
    let Some(operations) = fields.get("operations") else {
        return Err(invalid_input(
            "required key not provided @ data['operations']".to_owned(),
            json!(["operations"]),
        ));
    };
    let ops = Operations::from_json(operations).map_err(domain_error)?;
    let options = params.options(true);
    // As in Gnocchi, the resource type alone selects the search form; a
    // search without it is checked, then the references must be metric ids.
    if fields.contains_key("resource_type") {
        return search_aggregates(&state, &caller, &query, &params, options, fields, ops).await;
    }
    if let Some(search) = fields.get("search") {
        search_filter(search)?;
    }
    let resolved = resolve_ids(&state, &caller, &ops).await?;
    let evaluated = compute(&state, &resolved, &ops, &params, options).await?;
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    if params.details {
        out.extend_from_slice(b"\"references\": ");
        write_references(&mut out, &resolved)?;
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(b"\"measures\": ");
    write_measures(&mut out, &evaluated, &resolved, options.fill);
    out.push(b'}');
    Ok(json_response(out))
}

fn json_response(body: Vec<u8>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// Loads the metrics that `ops` names by id and checks them.
async fn resolve_ids(
    state: &AppState,
    caller: &Authenticated,
    ops: &Operations,
) -> Result<Vec<Resolved>, ApiError> {
    // Every reference must be a UUID before any is looked up, as in Gnocchi.
    let ids = ops
        .refs
        .iter()
        .map(|reference| Uuid::parse_str(&reference.metric))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            ApiError::bad_request(json!({
                "cause": "Invalid metric references",
                "reason": "badly formed hexadecimal UUID string",
                "detail": ops
                    .refs
                    .iter()
                    .map(|r| json!([r.metric, r.aggregation]))
                    .collect::<Vec<_>>(),
            }))
        })?;
    let mut found: Vec<Option<Arc<CachedMetric>>> = Vec::with_capacity(ops.refs.len());
    let mut missing: Vec<String> = Vec::new();
    for (reference, id) in ops.refs.iter().zip(ids) {
        let entry = match state.metrics.by_id(id).await {
            Ok(entry) => Some(entry),
            Err(LookupError::Indexer(IndexerError::NoSuchMetric(_))) => None,
            Err(other) => return Err(lookup_error(other)),
        };
        if entry.is_none() && !missing.contains(&reference.metric) {
            missing.push(reference.metric.clone());
        }
        found.push(entry);
    }
    if !missing.is_empty() {
        return Err(domain_error(AggregatesError::UnknownMetrics(missing)));
    }
    let mut resolved = Vec::with_capacity(found.len());
    let mut unknown = None;
    for (reference, entry) in ops.refs.iter().zip(found) {
        let Some(entry) = entry else { continue };
        caller.enforce(state, "get metric", &metric_target(&entry.metric))?;
        match reference.aggregation.parse::<Method>() {
            Ok(method) if entry.policy.aggregation_methods().contains(&method) => {
                resolved.push(Resolved {
                    path: vec![entry.metric.id.to_string(), reference.aggregation.clone()],
                    named: entry.metric.id.to_string(),
                    entry,
                    method,
                    windows: Vec::new(),
                });
            }
            _ => {
                unknown.get_or_insert((reference.metric.clone(), reference.aggregation.clone()));
            }
        }
    }
    if let Some((metric, aggregation)) = unknown {
        return Err(domain_error(AggregatesError::UnknownAggregation {
            metric,
            aggregation,
        }));
    }
    Ok(resolved)
}

/// Refreshes, plans, reads and evaluates.
async fn compute(
    state: &AppState,
    resolved: &[Resolved],
    ops: &Operations,
    params: &Params,
    options: Options,
) -> Result<Evaluated, ApiError> {
    if params.refresh {
        let mut done: Vec<u32> = Vec::new();
        for r in resolved {
            let seq = r.entry.metric.compact_id;
            if !done.contains(&seq) {
                done.push(seq);
                state
                    .metricd
                    .process_metric(seq)
                    .await
                    .map_err(ApiError::internal)?;
            }
        }
    }
    let granularities: Vec<Vec<i64>> = resolved
        .iter()
        .map(|r| {
            r.entry
                .policy
                .definition()
                .iter()
                .map(|d| d.granularity())
                .collect()
        })
        .collect();
    // Granularity errors name the metric itself (its id, or its name in the
    // resource) and the aggregation: the path's last two parts.
    let plan_refs: Vec<RefGranularities<'_>> = resolved
        .iter()
        .zip(&granularities)
        .map(|(r, granularities)| {
            let [.., name, aggregation] = r.path.as_slice() else {
                unreachable!("a reference path ends with the metric and the aggregation")
            };
            RefGranularities {
                name,
                aggregation,
                granularities,
            }
        })
        .collect();
    let plan = plan_granularities(&plan_refs, params.granularity).map_err(domain_error)?;
    let reads = plan.iter().flat_map(|&g| {
        resolved.iter().map(move |r| async move {
            if r.windows.is_empty() {
                return read_series(state, r, g, params.start, params.stop).await;
            }
            let mut parts = Vec::with_capacity(r.windows.len());
            for window in r.windows.iter().filter(|w| !w.is_empty()) {
                let series = read_series(state, r, g, window.start, window.stop).await?;
                let (timestamps, values) = series.into_parts();
                parts.push((*window, timestamps, values));
            }
            let (timestamps, values) = history::sum_portions(g, parts);
            AggregatedSeries::from_parts(g, r.method, timestamps, values)
                .map_err(ApiError::internal)
        })
    });
    let series = try_join_all(reads).await?;
    let inputs: Vec<(i64, Vec<Input<'_>>)> = plan
        .iter()
        .zip(series.chunks(resolved.len().max(1)))
        .map(|(&g, chunk)| (g, chunk.iter().map(Input::from).collect()))
        .collect();
    evaluate(ops, &inputs, &options, || {
        resolved.iter().map(Resolved::lookup_key).collect()
    })
    .map_err(domain_error)
}

/// The series of one reference at granularity `g` within `[start, stop)`,
/// empty when it has none there.
async fn read_series(
    state: &AppState,
    r: &Resolved,
    g: i64,
    start: Option<i64>,
    stop: Option<i64>,
) -> Result<AggregatedSeries, ApiError> {
    if matches!((start, stop), (Some(start), Some(stop)) if start >= stop) {
        return AggregatedSeries::new(g, r.method).map_err(ApiError::internal);
    }
    let mut series = state
        .storage
        .read_aggregates(
            r.entry.metric.id,
            &r.entry.policy,
            r.method,
            Some(g),
            start,
            stop,
        )
        .await
        .map_err(ApiError::internal)?;
    match series.pop() {
        Some(series) => Ok(series),
        None => AggregatedSeries::new(g, r.method).map_err(ApiError::internal),
    }
}

fn write_references(out: &mut Vec<u8>, resolved: &[Resolved]) -> Result<(), ApiError> {
    let mut seen: Vec<Uuid> = Vec::new();
    let mut references = Vec::new();
    for r in resolved {
        if !seen.contains(&r.entry.metric.id) {
            seen.push(r.entry.metric.id);
            references.push(metric_json(&r.entry.metric, MetricView::Detailed)?);
        }
    }
    out.extend(to_vec(&references).map_err(ApiError::internal)?);
    Ok(())
}

/// The `"measures"` object: `{"aggregated": rows}` or rows nested by path.
fn write_measures(out: &mut Vec<u8>, evaluated: &Evaluated, resolved: &[Resolved], fill: Fill) {
    let drop_nan = fill.drops_nan();
    if evaluated.aggregated {
        out.extend_from_slice(b"{\"aggregated\": ");
        write_aggregated_rows(out, evaluated, drop_nan);
        out.push(b'}');
        return;
    }
    let mut tree = Tree::default();
    for block in &evaluated.blocks {
        let mut seen = vec![false; resolved.len()];
        for column in &block.columns {
            let Some(i) = column.reference else { continue };
            if seen[i] {
                continue;
            }
            seen[i] = true;
            let leaf = tree.leaf(&resolved[i].path);
            write_rows(
                &mut leaf.rows,
                &mut leaf.has_rows,
                block,
                &column.values,
                drop_nan,
            );
        }
    }
    tree.write(out);
}

/// The rows of the single aggregated column of every block, as one list.
fn write_aggregated_rows(out: &mut Vec<u8>, evaluated: &Evaluated, drop_nan: bool) {
    out.push(b'[');
    let mut any = false;
    for block in &evaluated.blocks {
        if let Some(column) = block.columns.first() {
            write_rows(out, &mut any, block, &column.values, drop_nan);
        }
    }
    out.push(b']');
}

/// Appends `["<iso>", <granularity>, <value>]` rows.
fn write_rows(out: &mut Vec<u8>, any: &mut bool, block: &Block, values: &[f64], drop_nan: bool) {
    let mut rows = match block.granularity {
        Granularity::Seconds(ns) => MeasureRows::seconds(ns),
        Granularity::Calendar(grouping) => MeasureRows::calendar(grouping),
    }
    .after(*any);
    for (&timestamp, &value) in block.timestamps.iter().zip(values) {
        if drop_nan && !value.is_finite() {
            continue;
        }
        // Comparisons too: Gnocchi answers their truth as 0.0 and 1.0.
        rows.push(out, timestamp, value);
    }
    *any = rows.any();
}

/// An insertion-ordered nest of objects whose leaves are row lists.
#[derive(Debug, Default)]
struct Tree {
    children: Vec<(String, Tree)>,
    rows: Vec<u8>,
    has_rows: bool,
}

impl Tree {
    fn leaf(&mut self, path: &[String]) -> &mut Tree {
        let mut node = self;
        for key in path {
            let at = match node.children.iter().position(|(k, _)| k == key) {
                Some(at) => at,
                None => {
                    node.children.push((key.clone(), Tree::default()));
                    node.children.len() - 1
                }
            };
            node = &mut node.children[at].1;
        }
        node
    }

    fn write(&self, out: &mut Vec<u8>) {
        if self.children.is_empty() {
            out.push(b'[');
            out.extend_from_slice(&self.rows);
            out.push(b']');
            return;
        }
        out.push(b'{');
        for (i, (key, child)) in self.children.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            out.extend(serde_json::to_vec(key).unwrap_or_default());
            out.extend_from_slice(b": ");
            child.write(out);
        }
        out.push(b'}');
    }
}

// ---------------------------------------------------------------------------
// Search mode: the metrics of the resources a search selects.

/// Whether a metric name matches a pattern with `*` wildcards.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == name;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(tail) = rest.strip_prefix(part) else {
                return false;
            };
            rest = tail;
        } else if i == parts.len() - 1 {
            return rest.len() >= part.len() && rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    rest.is_empty()
}

/// The filter of a search given as JSON or as a string.
fn search_filter(search: &Value) -> Result<Option<indexer::Filter>, ApiError> {
    match search {
        Value::String(text) if text.trim().is_empty() => Ok(None),
        Value::String(text) if text.trim_start().starts_with('{') => {
            let value: Value = serde_json::from_str(text)
                .map_err(|err| ApiError::bad_request(format!("Invalid filter: {err}")))?;
            indexer::search::parse_json(&value).map_err(search_error)
        }
        Value::String(text) => string_filter(text).map(Some),
        Value::Null => Ok(None),
        other => indexer::search::parse_json(other).map_err(search_error),
    }
}

/// The resource type `name`, from [`AppState::searches`] while the index is
/// unchanged.
async fn resource_type(state: &AppState, name: &str) -> Result<Arc<ResourceType>, ApiError> {
    let generation = state.indexer.generation();
    if let Some(hit) = state.searches.resource_type(name, generation) {
        return Ok(hit);
    }
    let found = Arc::new(state.indexer.get_resource_type(name).await?);
    state.searches.put_resource_type(found.clone(), generation);
    Ok(found)
}

/// The resources of `resource_type` the caller may see and `asked` selects
/// (with their past revisions when `history`, which then share the current
/// revision's metrics), from [`AppState::searches`] while the index is
/// unchanged.
async fn search_resources(
    state: &AppState,
    caller: &Authenticated,
    resource_type: &ResourceType,
    asked: Option<indexer::Filter>,
    history: bool,
) -> Result<Arc<Vec<Resource>>, ApiError> {
    let type_name = resource_type.name.as_str();
    let policy = policy_filter(state, caller, "search resource", type_name)?;
    let filter = combine(policy, asked);
    let creator = caller.0.creator();
    let key = SearchKey {
        type_name,
        filter: filter.as_ref(),
        history,
        creator: &creator,
    };
    let generation = state.indexer.generation();
    if let Some(hit) = state.searches.search(&key, generation) {
        return Ok(hit);
    }
    let options = SearchOptions {
        history,
        details: false,
        pagination: Default::default(),
        creator: creator.clone(),
    };
    let mut resources = state
        .indexer
        .search_resources(type_name, filter.as_ref(), &options)
        .await
        .map_err(search_error)?;
    if history {
        share_metrics(&mut resources);
    }
    let resources = Arc::new(resources);
    state.searches.put_search(
        &key,
        &resource_type.attributes,
        resources.clone(),
        generation,
    );
    Ok(resources)
}

/// One searched resource (or, with `use_history`, one revision of it and
/// the window of time its attributes were current).
#[derive(Debug, Clone, Copy)]
struct Member<'a> {
    resource: &'a Resource,
    window: Option<Window>,
}

/// Rewrites `ops` so that each name reference becomes the matching metrics of
/// `members`, and resolves them: one reference per resource, metric and
/// aggregation, holding the windows of every revision of it in `members`.
async fn expand(
    state: &AppState,
    ops: &Operations,
    members: &[Member<'_>],
) -> Result<(Operations, Vec<Resolved>), ApiError> {
    let mut resolved: Vec<Resolved> = Vec::new();
    // For each original reference, the indices of its expansion.
    let mut expansion: Vec<Vec<usize>> = Vec::with_capacity(ops.refs.len());
    let mut unknown = None;
    // Where each (resource, metric name, aggregation) went: a search over
    // thousands of resources must not compare paths pairwise.
    let mut seen: HashMap<(Uuid, &str, &str), usize> = HashMap::new();
    for reference in &ops.refs {
        let mut indices = Vec::new();
        for member in members {
            let resource = member.resource;
            for (name, id) in &resource.metrics {
                if !wildcard_match(&reference.metric, name) {
                    continue;
                }
                let key = (resource.id, name.as_str(), reference.aggregation.as_str());
                if let Some(&at) = seen.get(&key) {
                    if let Some(window) = member.window {
                        if !resolved[at].windows.contains(&window) {
                            resolved[at].windows.push(window);
                        }
                    }
                    if !indices.contains(&at) {
                        indices.push(at);
                    }
                    continue;
                }
                let entry = match state.metrics.by_id(*id).await {
                    Ok(entry) => entry,
                    Err(LookupError::Indexer(IndexerError::NoSuchMetric(_))) => continue,
                    Err(other) => return Err(lookup_error(other)),
                };
                let method = match reference.aggregation.parse::<Method>() {
                    Ok(m) if entry.policy.aggregation_methods().contains(&m) => m,
                    _ => {
                        unknown.get_or_insert((id.to_string(), reference.aggregation.clone()));
                        continue;
                    }
                };
                resolved.push(Resolved {
                    entry,
                    method,
                    path: vec![
                        resource.id.to_string(),
                        name.clone(),
                        reference.aggregation.clone(),
                    ],
                    named: reference.metric.clone(),
                    windows: member.window.into_iter().collect(),
                });
                seen.insert(key, resolved.len() - 1);
                indices.push(resolved.len() - 1);
            }
        }
        expansion.push(indices);
    }
    if let Some((metric, aggregation)) = unknown {
        return Err(domain_error(AggregatesError::UnknownAggregation {
            metric,
            aggregation,
        }));
    }
    let root = rewrite(&ops.root, &expansion);
    Ok((
        Operations {
            root,
            refs: ops.refs.clone(),
        },
        resolved,
    ))
}

fn rewrite(node: &Node, expansion: &[Vec<usize>]) -> Node {
    let boxed = |n: &Node| Box::new(rewrite(n, expansion));
    match node {
        Node::Number(n) => Node::Number(*n),
        Node::Metric(columns) => Node::Metric(
            columns
                .iter()
                .flat_map(|&c| expansion[c].iter().copied())
                .collect(),
        ),
        Node::Aggregate { agg, input } => Node::Aggregate {
            agg: *agg,
            input: boxed(input),
        },
        Node::Resample {
            method,
            sampling,
            input,
        } => Node::Resample {
            method: *method,
            sampling: *sampling,
            input: boxed(input),
        },
        Node::Rolling { agg, window, input } => Node::Rolling {
            agg: *agg,
            window: *window,
            input: boxed(input),
        },
        Node::Binary { op, left, right } => Node::Binary {
            op: *op,
            left: boxed(left),
            right: boxed(right),
        },
        Node::Clip { input, min, max } => Node::Clip {
            input: boxed(input),
            min: boxed(min),
            max: boxed(max),
        },
        Node::Unary { op, input } => Node::Unary {
            op: *op,
            input: boxed(input),
        },
        Node::RateOfChange(input) => Node::RateOfChange(boxed(input)),
    }
}

/// The value of a groupby attribute of a resource.
fn attribute(resource: &Resource, name: &str) -> Value {
    match name {
        "id" => json!(resource.id.to_string()),
        "original_resource_id" => json!(resource.original_resource_id),
        "type" => json!(resource.resource_type),
        "creator" => json!(resource.creator),
        "created_by_user_id" => json!(resource.created_by_user_id),
        "created_by_project_id" => json!(resource.created_by_project_id),
        "user_id" => json!(resource.user_id),
        "project_id" => json!(resource.project_id),
        "started_at" => json!(resource.started_at.to_rfc3339()),
        "ended_at" => json!(resource.ended_at.map(|t| t.to_rfc3339())),
        "revision_start" => json!(resource.revision_start.to_rfc3339()),
        "revision_end" => json!(resource.revision_end.map(|t| t.to_rfc3339())),
        other => resource
            .attributes
            .get(other)
            .cloned()
            .unwrap_or(Value::Null),
    }
}

/// The `groupby` attributes, sorted; the first unknown to the resource
/// type is the error, for each endpoint to word as its Gnocchi does.
fn groupby_params(
    query: &QueryParams,
    resource_type: &ResourceType,
) -> Result<Vec<String>, String> {
    // Gnocchi's `arg_to_list`: repeated parameters, never split on commas.
    let mut groupby: Vec<String> = query
        .all("groupby")
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect();
    groupby.sort();
    groupby.dedup();
    match groupby.iter().find(|g| {
        !indexer::GENERIC_COLUMNS.contains(&g.as_str())
            && !resource_type.attributes.contains_key(*g)
    }) {
        Some(bad) => Err(bad.clone()),
        None => Ok(groupby),
    }
}

/// Groups resources by the values of `groupby`, in sorted group order.
fn group_resources<'a>(
    members: &[Member<'a>],
    groupby: &[String],
) -> Vec<(Value, Vec<Member<'a>>)> {
    let mut groups: Vec<(Vec<Value>, Vec<Member<'a>>)> = Vec::new();
    for &member in members {
        let key: Vec<Value> = groupby
            .iter()
            .map(|g| attribute(member.resource, g))
            .collect();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, found)) => found.push(member),
            None => groups.push((key, vec![member])),
        }
    }
    groups.sort_by(|a, b| {
        let a = serde_json::to_string(&a.0).unwrap_or_default();
        let b = serde_json::to_string(&b.0).unwrap_or_default();
        a.cmp(&b)
    });
    groups
        .into_iter()
        .map(|(key, members)| {
            let group: serde_json::Map<String, Value> = groupby.iter().cloned().zip(key).collect();
            (Value::Object(group), members)
        })
        .collect()
}

async fn search_aggregates(
    state: &AppState,
    caller: &Authenticated,
    query: &QueryParams,
    params: &Params,
    options: Options,
    fields: &serde_json::Map<String, Value>,
    ops: Operations,
) -> Result<Response, ApiError> {
    let type_name = match fields.get("resource_type") {
        Some(Value::String(name)) => name.clone(),
        _ => {
            return Err(invalid_input(
                "expected str for dictionary value @ data['resource_type']".to_owned(),
                json!(["resource_type"]),
            ))
        }
    };
    let resource_type =
        resource_type(state, &type_name)
            .await
            .map_err(|err| match err.status() {
                // Gnocchi's aggregates call it bad input, not a missing resource.
                StatusCode::NOT_FOUND => ApiError::bad_request(json!({
                    "cause": "Resource type does not exist",
                    "detail": type_name,
                })),
                _ => err,
            })?;
    let asked = match fields.get("search") {
        Some(search) => search_filter(search)?,
        None => None,
    };
    // Gnocchi sorts the resources by the groupby attributes, so a bad one
    // is the indexer's refusal of a sort key.
    let groupby = groupby_params(query, &resource_type)
        .map_err(|bad| ApiError::bad_request(indexer::search::invalid_sort_key(&bad)))?;
    // As in Gnocchi, history only changes grouped answers.
    let history = query.flag("use_history")? && !groupby.is_empty();
    let resources = search_resources(state, caller, &resource_type, asked, history).await?;
    let members = if history {
        revision_members(&resources, params.start, params.stop)
    } else {
        resources
            .iter()
            .map(|resource| Member {
                resource,
                window: None,
            })
            .collect()
    };
    if groupby.is_empty() {
        let Some(out) = search_group(state, &ops, &members, params, options).await? else {
            return Err(no_metric_found(&ops));
        };
        let mut body = Vec::with_capacity(256);
        write_search_result(&mut body, &out, params.details, options.fill)?;
        return Ok(json_response(body));
    }
    let mut body = Vec::with_capacity(256);
    body.push(b'[');
    let mut first = true;
    for (group, members) in group_resources(&members, &groupby) {
        let Some(out) = search_group(state, &ops, &members, params, options).await? else {
            continue;
        };
        if !first {
            body.extend_from_slice(b", ");
        }
        first = false;
        body.extend_from_slice(b"{\"group\": ");
        body.extend(to_vec(&group).map_err(ApiError::internal)?);
        body.extend_from_slice(b", \"measures\": ");
        write_search_result(&mut body, &out, params.details, options.fill)?;
        body.push(b'}');
    }
    if first {
        return Err(no_metric_found(&ops));
    }
    body.push(b']');
    Ok(json_response(body))
}

/// Gnocchi's 404 when no selected resource has the named metrics: the names
/// as a Python list.
fn no_metric_found(ops: &Operations) -> ApiError {
    let mut names: Vec<String> = Vec::new();
    for reference in &ops.refs {
        let quoted = format!("'{}'", reference.metric);
        if !names.contains(&quoted) {
            names.push(quoted);
        }
    }
    ApiError::not_found(format!("Metric [{}] does not exist", names.join(", ")))
}

/// The revisions that were current at some time in `[start, stop)`, each
/// with its window of that range.
fn revision_members(
    revisions: &[Resource],
    start: Option<i64>,
    stop: Option<i64>,
) -> Vec<Member<'_>> {
    let nanos = |t: &chrono::DateTime<chrono::Utc>| t.timestamp_nanos_opt().unwrap_or(i64::MAX);
    let (kept, spans): (Vec<&Resource>, Vec<history::Revision<Uuid>>) = revisions
        .iter()
        .map(|r| {
            let span = history::Revision {
                resource: r.id,
                start: nanos(&r.revision_start),
                end: r.revision_end.as_ref().map(nanos),
            };
            (r, span)
        })
        .filter(|(_, span)| history::overlaps(span, start, stop))
        .unzip();
    kept.into_iter()
        .zip(history::windows(&spans, start, stop))
        .map(|(resource, window)| Member {
            resource,
            window: Some(window),
        })
        .collect()
}

/// Past revisions come without their metrics: they have the current
/// revision's (metrics belong to the resource, not to a revision).
fn share_metrics(revisions: &mut [Resource]) {
    let current: Vec<(Uuid, std::collections::BTreeMap<String, Uuid>)> = revisions
        .iter()
        .filter(|r| !r.metrics.is_empty())
        .map(|r| (r.id, r.metrics.clone()))
        .collect();
    for revision in revisions.iter_mut().filter(|r| r.metrics.is_empty()) {
        if let Some((_, metrics)) = current.iter().find(|(id, _)| *id == revision.id) {
            revision.metrics = metrics.clone();
        }
    }
}

/// The evaluated result of one group of resources.
#[derive(Debug)]
struct GroupResult {
    resolved: Vec<Resolved>,
    evaluated: Evaluated,
    /// The resources the references came from (`details=true`).
    resources: Vec<Value>,
}

/// Evaluates `ops` over the metrics of `resources`; `None` when no metric
/// matches.
async fn search_group(
    state: &AppState,
    ops: &Operations,
    members: &[Member<'_>],
    params: &Params,
    options: Options,
) -> Result<Option<GroupResult>, ApiError> {
    let (expanded, resolved) = expand(state, ops, members).await?;
    if resolved.is_empty() {
        return Ok(None);
    }
    let evaluated = compute(state, &resolved, &expanded, params, options).await?;
    let mut seen: Vec<&str> = Vec::new();
    let mut references = Vec::new();
    if params.details {
        for r in &resolved {
            let id = r.path[0].as_str();
            if seen.contains(&id) {
                continue;
            }
            seen.push(id);
            if let Some(member) = members.iter().find(|m| m.resource.id.to_string() == id) {
                references.push(resource_json(member.resource));
            }
        }
    }
    Ok(Some(GroupResult {
        evaluated,
        resources: references,
        resolved,
    }))
}

/// `{"references": […], "measures": {…}}`, references when `details`.
fn write_search_result(
    out: &mut Vec<u8>,
    result: &GroupResult,
    details: bool,
    fill: Fill,
) -> Result<(), ApiError> {
    out.push(b'{');
    if details {
        out.extend_from_slice(b"\"references\": ");
        out.extend(to_vec(&result.resources).map_err(ApiError::internal)?);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(b"\"measures\": ");
    write_measures(out, &result.evaluated, &result.resolved, fill);
    out.push(b'}');
    Ok(())
}

// ---------------------------------------------------------------------------
// Deprecated `/v1/aggregation/…`.

#[utoipa::path(
    get,
    path = "/v1/aggregation/metric",
    tag = "aggregates",
    params(doc::AggregatesParams, doc::DeprecatedAggregationParams),
    responses(
        (status = 200, description = "The metrics combined", body = Vec<doc::MeasureRow>),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such metric or aggregation", body = doc::ErrorBody)
    )
)]
#[deprecated = "Gnocchi deprecates /v1/aggregation in favour of /v1/aggregates"]
async fn deprecated_metric_get(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = QueryParams::parse(raw.as_deref());
    let ids: Vec<String> = query.all("metric").map(str::to_owned).collect();
    deprecated_metrics(&state, &caller, &query, ids).await
}

#[utoipa::path(
    post,
    path = "/v1/aggregation/metric",
    tag = "aggregates",
    params(doc::AggregatesParams, doc::DeprecatedAggregationParams),
    request_body = Vec<String>,
    responses(
        (status = 200, description = "The metrics combined", body = Vec<doc::MeasureRow>),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such metric or aggregation", body = doc::ErrorBody)
    )
)]
#[deprecated = "Gnocchi deprecates /v1/aggregation in favour of /v1/aggregates"]
async fn deprecated_metric_post(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let query = QueryParams::parse(raw.as_deref());
    let mut ids: Vec<String> = query.all("metric").map(str::to_owned).collect();
    if !body.is_empty() {
        match json_body(&headers, &body)? {
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::String(id) => ids.push(id),
                        other => ids.push(other.to_string()),
                    }
                }
            }
            Value::String(id) => ids.push(id),
            _ => {
                return Err(ApiError::bad_request(
                    "Invalid input: expected a list of metric ids",
                ))
            }
        }
    }
    deprecated_metrics(&state, &caller, &query, ids).await
}

/// The deprecated parameters beyond [`Params`].
#[derive(Debug, Clone)]
struct Deprecated {
    aggregation: String,
    /// `None` when the name is no method at all (a 404 once a metric is known).
    method: Option<Method>,
    /// `None` when the name is not one `aggregate` knows (fine for one metric).
    reaggregation: Option<RowAgg>,
    resample: Option<Sampling>,
}

fn deprecated_params(query: &QueryParams, params: &Params) -> Result<Deprecated, ApiError> {
    let aggregation = query.get("aggregation").unwrap_or("mean").to_owned();
    let method: Option<Method> = aggregation.parse().ok();
    let reaggregation = RowAgg::parse(query.get("reaggregation").unwrap_or(&aggregation));
    let resample = match query.get("resample") {
        None => None,
        Some(text) => {
            let sampling = match text.parse::<CalendarGrouping>() {
                Ok(grouping) => Sampling::Calendar(grouping),
                Err(_) => Sampling::Every(
                    parse_timespan(text)
                        .map_err(|_| argument_error("Unable to parse timespan", "resample"))?,
                ),
            };
            if params.granularity.is_none() {
                return Err(ApiError::bad_request(
                    "A granularity must be specified to resample",
                ));
            }
            Some(sampling)
        }
    };
    Ok(Deprecated {
        aggregation,
        method,
        reaggregation,
        resample,
    })
}

/// Gnocchi's `AggregationDoesNotExist`, as a 404.
fn aggregation_missing(method: &str, granularity: Option<i64>, metric: Option<Uuid>) -> ApiError {
    ApiError::not_found(format!(
        "Aggregation method '{method}' at granularity '{}' for metric {} does not exist",
        python_float(granularity.unwrap_or(0) as f64 / 1e9),
        metric.map(|m| m.to_string()).unwrap_or_default()
    ))
}

/// The deprecated operations: `(aggregate reagg ([resample agg s] (metric …)))`.
/// One metric is read as it is, without reaggregation.
fn deprecated_operations(
    deprecated: &Deprecated,
    method: Method,
    count: usize,
) -> Result<Node, ApiError> {
    let mut node = Node::Metric((0..count).collect());
    if let Some(sampling) = deprecated.resample {
        node = Node::Resample {
            method,
            sampling,
            input: Box::new(node),
        };
    }
    if count == 1 {
        return Ok(node);
    }
    let agg = deprecated
        .reaggregation
        .ok_or_else(|| argument_error("Invalid reaggregation method", "reaggregation"))?;
    Ok(Node::Aggregate {
        agg,
        input: Box::new(node),
    })
}

/// Checks each metric has the aggregation (and granularity), as Gnocchi's
/// deprecated endpoint does before aggregating.
fn check_deprecated(
    entries: &[Arc<CachedMetric>],
    deprecated: &Deprecated,
    params: &Params,
) -> Result<Method, ApiError> {
    for entry in entries {
        let first = entry.policy.definition().first().map(|d| d.granularity());
        let known = deprecated
            .method
            .is_some_and(|m| entry.policy.aggregation_methods().contains(&m));
        if !known && entries.len() == 1 {
            return Err(ApiError::not_found(json!({
                "cause": "Aggregation method does not exist for this metric",
                "detail": {
                    "metric": entry.metric.id.to_string(),
                    "aggregation_method": deprecated.aggregation,
                },
            })));
        }
        if !known {
            return Err(aggregation_missing(
                &deprecated.aggregation,
                params.granularity.or(first),
                Some(entry.metric.id),
            ));
        }
        if let Some(g) = params.granularity {
            if !entry
                .policy
                .definition()
                .iter()
                .any(|d| d.granularity() == g)
            {
                return Err(aggregation_missing(
                    &deprecated.aggregation,
                    Some(g),
                    Some(entry.metric.id),
                ));
            }
        }
    }
    deprecated
        .method
        .ok_or_else(|| aggregation_missing(&deprecated.aggregation, None, None))
}

async fn deprecated_metrics(
    state: &AppState,
    caller: &Authenticated,
    query: &QueryParams,
    ids: Vec<String>,
) -> Result<Response, ApiError> {
    let params = Params::parse(query)?.strict_refresh(query)?;
    let deprecated = deprecated_params(query, &params)?;
    let mut entries = Vec::with_capacity(ids.len());
    for id in &ids {
        let uuid = Uuid::parse_str(id).map_err(|_| {
            ApiError::bad_request(json!({
                "cause": "Argument value error",
                "reason": "badly formed hexadecimal UUID string",
                "detail": "metric",
            }))
        })?;
        let entry = state.metrics.by_id(uuid).await.map_err(lookup_error)?;
        caller.enforce(state, "get metric", &metric_target(&entry.metric))?;
        if !entries
            .iter()
            .any(|e: &Arc<CachedMetric>| e.metric.id == uuid)
        {
            entries.push(entry);
        }
    }
    let body = deprecated_aggregate(state, &entries, &deprecated, &params).await?;
    Ok(json_response(body))
}

/// The rows of the deprecated cross-metric aggregation.
async fn deprecated_aggregate(
    state: &AppState,
    entries: &[Arc<CachedMetric>],
    deprecated: &Deprecated,
    params: &Params,
) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(256);
    if entries.is_empty() {
        out.extend_from_slice(b"[]");
        return Ok(out);
    }
    let method = check_deprecated(entries, deprecated, params)?;
    let resolved: Vec<Resolved> = entries
        .iter()
        .map(|entry| Resolved {
            entry: entry.clone(),
            method,
            path: vec![entry.metric.id.to_string(), deprecated.aggregation.clone()],
            named: entry.metric.id.to_string(),
            windows: Vec::new(),
        })
        .collect();
    let ops = Operations {
        root: deprecated_operations(deprecated, method, resolved.len())?,
        refs: Vec::new(),
    };
    let options = if resolved.len() == 1 {
        // Gnocchi answers one metric with its own measures: nothing is
        // aggregated, so neither overlap nor fill applies.
        Options {
            fill: Fill::Dropna,
            needed_overlap: 0.0,
            ..params.options(false)
        }
    } else {
        params.options(false)
    };
    let evaluated = compute(state, &resolved, &ops, params, options).await?;
    write_aggregated_rows(&mut out, &evaluated, options.fill.drops_nan());
    Ok(out)
}

#[utoipa::path(
    post,
    path = "/v1/aggregation/resource/{type}/metric/{name}",
    tag = "aggregates",
    params(
        ("type" = String, Path, description = "Resource type name (`generic` reaches every type)"),
        ("name" = String, Path, description = "Metric name on each resource"),
        doc::AggregatesParams,
        doc::DeprecatedAggregationParams
    ),
    request_body = doc::Filter,
    responses(
        (status = 200, description = "The named metric of the matching resources, combined (per group with `groupby`)", body = serde_json::Value),
        (status = 400, description = "Invalid input; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such resource type, metric or aggregation", body = doc::ErrorBody)
    )
)]
#[deprecated = "Gnocchi deprecates /v1/aggregation in favour of /v1/aggregates"]
async fn deprecated_resource(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    Path((type_name, metric_name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let query = QueryParams::parse(raw.as_deref());
    let params = Params::parse(&query)?.strict_refresh(&query)?;
    let resource_type = resource_type(&state, &type_name).await?;
    let deprecated = deprecated_params(&query, &params)?;
    let asked = request_filter(&headers, &body, &query)?;
    // Gnocchi's deprecated endpoint searches current revisions only.
    let resources = search_resources(&state, &caller, &resource_type, asked, false).await?;
    let members: Vec<Member<'_>> = resources
        .iter()
        .map(|resource| Member {
            resource,
            window: None,
        })
        .collect();
    let groupby = groupby_params(&query, &resource_type)
        .map_err(|_| ApiError::bad_request("Invalid groupby attribute"))?;
    let entries_of = |members: &[Member<'_>]| {
        let ids: Vec<Uuid> = members
            .iter()
            .filter_map(|m| m.resource.metrics.get(&metric_name).copied())
            .collect();
        ids
    };
    let load = |ids: Vec<Uuid>| {
        let state = state.clone();
        async move {
            let mut entries: Vec<Arc<CachedMetric>> = Vec::with_capacity(ids.len());
            for id in ids {
                match state.metrics.by_id(id).await {
                    Ok(entry) => {
                        if !entries.iter().any(|e| e.metric.id == id) {
                            entries.push(entry);
                        }
                    }
                    Err(LookupError::Indexer(IndexerError::NoSuchMetric(_))) => {}
                    Err(other) => return Err(lookup_error(other)),
                }
            }
            Ok::<_, ApiError>(entries)
        }
    };
    if groupby.is_empty() {
        let entries = load(entries_of(&members)).await?;
        let body = deprecated_aggregate(&state, &entries, &deprecated, &params).await?;
        return Ok(json_response(body));
    }
    let mut out = Vec::with_capacity(256);
    out.push(b'[');
    let mut first = true;
    for (group, members) in group_resources(&members, &groupby) {
        // A group without the metric still answers, with no measures.
        let entries = load(entries_of(&members)).await?;
        let rows = deprecated_aggregate(&state, &entries, &deprecated, &params).await?;
        if !first {
            out.extend_from_slice(b", ");
        }
        first = false;
        out.extend_from_slice(b"{\"group\": ");
        out.extend(to_vec(&group).map_err(ApiError::internal)?);
        out.extend_from_slice(b", \"measures\": ");
        out.extend(rows);
        out.push(b'}');
    }
    out.push(b']');
    Ok(json_response(out))
}

// ---------------------------------------------------------------------------
// `POST /v1/search/metric`: the measures of the given metrics that a
// predicate selects.

#[utoipa::path(
    post,
    path = "/v1/search/metric",
    tag = "search",
    params(
        ("metric_id" = Vec<String>, Query, description = "Metrics to search; repeatable"),
        ("granularity" = Option<String>, Query, description = "Only this granularity (default: each metric's own)"),
        ("start" = Option<String>, Query, description = "Earliest timestamp"),
        ("stop" = Option<String>, Query, description = "Latest timestamp (exclusive)"),
        ("aggregation" = Option<String>, Query, description = "Aggregation method (default `mean`)")
    ),
    request_body(content = serde_json::Value, description = "A predicate on values: `{\"and\": [{\">=\": 10}, {\"<\": 20}]}`, also `=`, `!=`, `in`, `or`, `not`, math operators"),
    responses(
        (status = 200, description = "Per metric id, the rows whose value matches", body = serde_json::Value),
        (status = 400, description = "Invalid query; the description names the problem", body = doc::ErrorBody),
        (status = 401, description = "No usable credentials", body = doc::ErrorBody),
        (status = 403, description = "The access policy refuses the caller", body = doc::ErrorBody),
        (status = 404, description = "No such aggregation for a metric", body = doc::ErrorBody)
    )
)]
async fn search_metric(
    State(state): State<Arc<AppState>>,
    caller: Authenticated,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let query = QueryParams::parse(raw.as_deref());
    // Unknown ids are left out of the answer, as Gnocchi's metric listing
    // leaves them out.
    let mut entries: Vec<Arc<CachedMetric>> = Vec::new();
    for id in query.all("metric_id") {
        let uuid = Uuid::parse_str(id)
            .map_err(|_| argument_error("badly formed hexadecimal UUID string", "metric_id"))?;
        match state.metrics.by_id(uuid).await {
            Ok(entry) if !entries.iter().any(|e| e.metric.id == uuid) => entries.push(entry),
            Ok(_) | Err(LookupError::Indexer(IndexerError::NoSuchMetric(_))) => {}
            Err(other) => return Err(lookup_error(other)),
        }
    }
    for entry in &entries {
        caller.enforce(&state, "search metric", &metric_target(&entry.metric))?;
    }
    if body.is_empty() {
        return Err(ApiError::bad_request("No query specified in body"));
    }
    let predicate = MeasureQuery::parse(&json_body(&headers, &body)?).map_err(query_error)?;
    let time = |name: &str| {
        query
            .get(name)
            .map(|text| {
                parse_timestamp(RawTimestamp::Text(text), now())
                    .map_err(|_| ApiError::bad_request(format!("Invalid value for {name}")))
            })
            .transpose()
    };
    let (start, stop) = (time("start")?, time("stop")?);
    let aggregation = query.get("aggregation").unwrap_or("mean");
    let mut asked: Vec<i64> = query
        .all("granularity")
        .map(|text| {
            parse_timespan(text)
                .map_err(|_| argument_error("Unable to parse timespan", "granularity"))
        })
        .collect::<Result<_, _>>()?;
    asked.sort_unstable_by(|a, b| b.cmp(a));
    asked.dedup();
    // Every metric must have every granularity, then the method, before any
    // is read, as Gnocchi checks.
    let mut plan: Vec<(&Arc<CachedMetric>, Option<Method>, Vec<i64>)> =
        Vec::with_capacity(entries.len());
    for entry in &entries {
        let stored: Vec<i64> = entry
            .policy
            .definition()
            .iter()
            .map(|d| d.granularity())
            .collect();
        let granularities = if asked.is_empty() {
            let mut all = stored.clone();
            all.sort_unstable_by(|a, b| b.cmp(a));
            all
        } else {
            asked.clone()
        };
        let method = aggregation
            .parse::<Method>()
            .ok()
            .filter(|m| entry.policy.aggregation_methods().contains(m));
        if let Some(&missing) = granularities.iter().find(|g| !stored.contains(g)) {
            return Err(ApiError::bad_request(json!({
                "cause": "Aggregation does not exist",
                "detail": {
                    "granularity": missing as f64 / 1e9,
                    "aggregation_method": aggregation,
                },
            })));
        }
        plan.push((entry, method, granularities));
    }
    let plan = plan
        .into_iter()
        .map(|(entry, method, granularities)| match method {
            Some(method) => Ok((entry, method, granularities)),
            // What Gnocchi 4.7.1 answers for a method the policy lacks.
            None => Err(ApiError::bad_request(json!({
                "cause": "Metric does not exist",
                "detail": {"metric": metric_json(&entry.metric, MetricView::Listed)?},
            }))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    for (i, (entry, method, granularities)) in plan.into_iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.push(b'"');
        out.extend_from_slice(entry.metric.id.to_string().as_bytes());
        out.extend_from_slice(b"\": [");
        let mut any = false;
        for granularity in granularities {
            let series = state
                .storage
                .read_aggregates(
                    entry.metric.id,
                    &entry.policy,
                    method,
                    Some(granularity),
                    start,
                    stop,
                )
                .await
                .map_err(ApiError::internal)?;
            let mut rows = MeasureRows::seconds(granularity).after(any);
            for series in &series {
                for (&timestamp, &value) in series.timestamps().iter().zip(series.values()) {
                    if predicate.matches(value) {
                        rows.push(&mut out, timestamp, value);
                    }
                }
            }
            any = rows.any();
        }
        out.push(b']');
    }
    out.push(b'}');
    Ok(json_response(out))
}

async fn method_not_allowed() -> Response {
    ApiError::method_not_allowed("POST")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("cpu*", "cpu.util"));
        assert!(wildcard_match("*util", "cpu.util"));
        assert!(wildcard_match("c*u*l", "cpu.util"));
        assert!(!wildcard_match("disk*", "cpu.util"));
        assert!(wildcard_match("cpu", "cpu"));
        assert!(!wildcard_match("cpu", "cpu2"));
    }
}
