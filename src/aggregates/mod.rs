//! Dynamic aggregates (`POST /v1/aggregates` and the deprecated
//! `/v1/aggregation` endpoints): the operations language and its evaluation,
//! free of HTTP.
//!
//! [`parse`] turns the operations (a Lisp-like string or the equivalent JSON
//! list) into a [`parse::Operations`] tree and the metric references it names;
//! [`evaluate`] picks the granularities to read, aligns the series read at each
//! granularity on a common timestamp index (hand-written merges over sorted
//! slices), applies the fill policy and computes the tree column-wise, as
//! Gnocchi's `rest/aggregates/processor.py` and `operations.py` do.
//! [`measure_query`] is the predicate language of `/v1/search/metric`.
//! [`search_cache`] keeps the resources a search selected for the alarm
//! evaluators that repeat the same query every minute.

pub mod evaluate;
pub mod history;
pub mod measure_query;
pub mod parse;
pub mod search_cache;

use serde_json::Value;

/// Why an aggregates request cannot be answered; each maps to Gnocchi's 4xx.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AggregatesError {
    /// The operations do not match the schema (`Invalid input`, detail
    /// `["operations"]`); the reason is voluptuous's message without its path.
    #[error("{0}")]
    InvalidInput(String),
    /// The operations string is not a parenthesised expression.
    #[error("Fail to parse the operations string")]
    ParseString(String),
    /// Metric ids that name no metric.
    #[error("Unknown metrics")]
    UnknownMetrics(Vec<String>),
    /// The first reference whose policy lacks the aggregation: Gnocchi's
    /// storage stops at it.
    #[error("Metrics with unknown aggregation")]
    UnknownAggregation { metric: String, aggregation: String },
    /// The series cannot be combined: Gnocchi's `UnAggregableTimeseries`.
    #[error("{reason}")]
    Unaggregable { reason: String, detail: Value },
}

impl AggregatesError {
    /// The `InvalidInput` for a voluptuous message about `operations`.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidInput(message.into())
    }
}
