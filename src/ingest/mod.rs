//! Ingestion protocols other than Gnocchi's JSON: InfluxDB line protocol and
//! Prometheus remote write.
//!
//! Each parser turns a request body into measures grouped by resource and
//! metric name ([`Grouped`]), with Gnocchi's naming rules; the HTTP layer then
//! creates missing resources and metrics and ends in `Incoming::append`. No
//! axum here: malformed input is a typed error, never a panic.

use std::collections::HashMap;

pub mod line_protocol;
pub mod remote_write;

/// Measures for one metric, in arrival order (UTC nanoseconds, values).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
}

impl Series {
    fn push(&mut self, timestamp: i64, value: f64) {
        self.timestamps.push(timestamp);
        self.values.push(value);
    }
}

/// Measures by metric name, for one resource.
pub type MetricSeries = HashMap<String, Series>;
