//! Integration tests: one binary that starts real `gnocchid` processes and talks
//! to them over HTTP.

mod aggregates;
mod batch;
mod crash;
mod incoming;
mod ingest;
mod resources;
mod root;
mod server;
mod storage;
mod upgrade;
