//! gnocchid: a time-series metrics and resource-indexing database that speaks
//! Gnocchi's REST API v1.
//!
//! # The map
//!
//! Three stores, each behind a driver: the *indexer* (archive policies, metrics,
//! resource types, resources and their history; the `indexer` crate), the
//! *incoming* buffer of measures accepted but not yet aggregated, partitioned
//! into sacks, and the *storage* of aggregated splits. The time-series math and
//! its on-disk format live in the [`carbonara`] crate, free of I/O.
//!
//! - [`cli`] parses the command line into a [`config::Config`] and starts a role.
//! - [`app`] is the composition root: it opens the stores and runs the roles.
//! - [`http`] is the only module that knows about axum; it maps requests to
//!   domain calls and domain errors to Gnocchi's HTTP answers.
//!
//! The write path: `POST …/measures` → validate → append to the metric's sack →
//! `202` once durable → metricd merges into the aggregates. The read path:
//! pick granularities, fetch the needed splits, serialize straight into the body.

pub mod aggregates;
pub mod app;
pub mod archive_policy;
pub mod auth;
pub mod cli;
pub mod config;
pub mod http;
pub mod incoming;
pub mod ingest;
pub mod metric_cache;
pub mod metricd;
pub mod storage;
pub mod time;
