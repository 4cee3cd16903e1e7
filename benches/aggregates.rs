//! Dynamic aggregates end to end: a release `gnocchid serve` on a fresh data
//! directory, driven over loopback HTTP/1.1 keep-alive connections by a small
//! blocking client (a few microseconds of client CPU per request, so the
//! figures are the server's time, not a client library's).
//!
//! Scenarios (issue 6's targets):
//!
//! - `mean`: `(aggregate mean (metric (ID mean) …))` over 100 and 1,000
//!   metrics × 1,440 points at 1 minute (targets: < 5 ms and < 40 ms);
//! - `groupby`: `(aggregate mean (metric cpu mean))` over a search selecting
//!   10,000 resources, `groupby=project_id` (10 groups), one hour of 1-minute
//!   points each (target: < 200 ms);
//! - `alarm`: what Aodh's by-resources evaluator sends, 1,000 distinct
//!   queries (`search` on one resource id, last 10 minutes, granularity 60,
//!   `needed_overlap=0`), repeated by 4 connections (target: ≥ 5,000 req/s).
//!
//! Run: `cargo bench --bench aggregates [-- mean|groupby|alarm ...]` (all
//! three by default). `GNOCCHID_BENCH_DIR` sets where the data directory goes
//! (default: the system temp dir); `GNOCCHID_BENCH_SERVER_ARGS` adds flags to
//! `gnocchid serve` (`--search-cache-entries 0` measures alarm queries that
//! always search the index). Each figure is printed as a table line and
//! as one JSON line.

mod support;

use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{create_metric, iso, now_minute, wait_processed, Client, Server};
const POLICY: &str = "bench-minute";
const GROUPBY_RESOURCES: usize = 10_000;
const GROUPS: usize = 10;
const ALARM_QUERIES: usize = 1_000;
const ALARM_CONNECTIONS: usize = 4;
const ALARM_REQUESTS: usize = 40_000;

fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    let server = Server::start();
    eprintln!("server pid {}", server.child.as_ref().map_or(0, Child::id));
    let mut client = Client::connect(server.port);
    create_policy(&mut client);
    if run("mean") {
        mean(&server, &mut client);
    }
    if run("groupby") || run("alarm") {
        let resources = create_resources(&server, &mut client);
        if run("groupby") {
            groupby(&mut client);
        }
        if run("alarm") {
            alarm(&server, &resources[..ALARM_QUERIES]);
        }
    }
}

// ---------------------------------------------------------------------------
// Scenarios.

fn mean(server: &Server, client: &mut Client) {
    let now = now_minute();
    let ids: Vec<String> = (0..1000).map(|_| create_metric(client, POLICY)).collect();
    for chunk in ids.chunks(20) {
        let batch: serde_json::Map<String, Value> = chunk
            .iter()
            .enumerate()
            .map(|(k, id)| (id.clone(), points(now - 1440 * 60, 1440, k)))
            .collect();
        client.expect(
            "POST",
            "/v1/batch/metrics/measures",
            &Value::Object(batch),
            202,
        );
    }
    wait_processed(client);
    for size in [100, 1000] {
        let refs: Vec<String> = ids[..size]
            .iter()
            .map(|id| format!("({id} mean)"))
            .collect();
        let body = json!({"operations": format!("(aggregate mean (metric {}))", refs.join(" "))});
        let path = "/v1/aggregates?granularity=60";
        let reply = client.ok("POST", path, &body);
        assert_eq!(
            reply["measures"]["aggregated"].as_array().map(Vec::len),
            Some(1440),
            "mean of {size}"
        );
        let times = repeat(client, "POST", path, &body, 30);
        report(
            &format!("mean_of_{size}_metrics_1440_points"),
            &times,
            server,
        );
    }
}

/// Creates 10,000 resources (`project_id` one of 10 groups, one `cpu` metric
/// each) with the last hour of 1-minute points; returns their ids.
fn create_resources(server: &Server, client: &mut Client) -> Vec<String> {
    let ids: Vec<String> = (0..GROUPBY_RESOURCES)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    let created = Instant::now();
    std::thread::scope(|scope| {
        for part in ids.chunks(ids.len().div_ceil(4)) {
            let port = server.port;
            scope.spawn(move || {
                let mut client = Client::connect(port);
                for id in part {
                    let group = id[24..].parse::<usize>().unwrap() % GROUPS;
                    client.expect(
                        "POST",
                        "/v1/resource/generic",
                        &json!({
                            "id": id,
                            "project_id": format!("group-{group}"),
                            "user_id": "bench",
                            "metrics": {"cpu": {"archive_policy_name": POLICY}},
                        }),
                        201,
                    );
                }
            });
        }
    });
    eprintln!(
        "created {} resources in {:.1} s",
        ids.len(),
        created.elapsed().as_secs_f64()
    );
    let now = now_minute();
    for chunk in ids.chunks(500) {
        let batch: serde_json::Map<String, Value> = chunk
            .iter()
            .enumerate()
            .map(|(k, id)| (id.clone(), json!({"cpu": points(now - 3600, 60, k)})))
            .collect();
        client.expect(
            "POST",
            "/v1/batch/resources/metrics/measures",
            &Value::Object(batch),
            202,
        );
    }
    wait_processed(client);
    ids
}

fn groupby(client: &mut Client) {
    let path = format!(
        "/v1/aggregates?granularity=60&groupby=project_id&start={}",
        iso(now_minute() - 3600)
    );
    let body = json!({
        "resource_type": "generic",
        "search": {"like": {"project_id": "group-%"}},
        "operations": "(aggregate mean (metric cpu mean))",
    });
    let reply = client.ok("POST", &path, &body);
    let groups = reply.as_array().expect("groupby answers a list");
    assert_eq!(groups.len(), GROUPS);
    for group in groups {
        let rows = group["measures"]["measures"]["aggregated"]
            .as_array()
            .expect("aggregated rows");
        assert!(rows.len() >= 59, "{group}");
    }
    let times = repeat(client, "POST", &path, &body, 10);
    report("groupby_10000_resources_10_groups", &times, &Server::none());
}

/// 4 connections cycle through 1,000 distinct alarm queries; after one warm
/// pass, 40,000 requests are timed.
fn alarm(server: &Server, resources: &[String]) {
    let now = now_minute();
    let path = format!(
        "/v1/aggregates?details=False&granularity=60&needed_overlap=0&start={}&stop={}&use_history=False",
        iso(now - 600),
        iso(now + 60)
    );
    let bodies: Vec<Vec<u8>> = resources
        .iter()
        .map(|id| {
            serde_json::to_vec(&json!({
                "operations": ["aggregate", "mean", ["metric", "cpu", "mean"]],
                "search": {"=": {"id": id}},
                "resource_type": "generic",
            }))
            .unwrap()
        })
        .collect();
    let run = |requests_per_connection: usize| {
        let started = Instant::now();
        let cpu_before = server.cpu_seconds();
        let latencies: Vec<Vec<Duration>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..ALARM_CONNECTIONS)
                .map(|c| {
                    let (path, bodies) = (&path, &bodies);
                    let port = server.port;
                    scope.spawn(move || {
                        let mut client = Client::connect(port);
                        let mut times = Vec::with_capacity(requests_per_connection);
                        for i in 0..requests_per_connection {
                            let body = &bodies[(c + i * ALARM_CONNECTIONS) % bodies.len()];
                            let t = Instant::now();
                            let (status, reply) = client.raw("POST", path, body);
                            times.push(t.elapsed());
                            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
                            assert!(reply.starts_with(b"{\"measures\": {\"aggregated\": [["));
                        }
                        times
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let wall = started.elapsed();
        let cpu = server.cpu_seconds() - cpu_before;
        let mut all: Vec<Duration> = latencies.into_iter().flatten().collect();
        all.sort_unstable();
        (wall, cpu, all)
    };
    let (wall, _, _) = run(ALARM_QUERIES / ALARM_CONNECTIONS);
    eprintln!(
        "alarm warm-up: {} distinct queries in {:.3} s",
        ALARM_QUERIES,
        wall.as_secs_f64(),
    );
    let (wall, cpu, all) = run(ALARM_REQUESTS / ALARM_CONNECTIONS);
    let rate = all.len() as f64 / wall.as_secs_f64();
    let (p50, p99) = (percentile(&all, 50.0), percentile(&all, 99.0));
    eprintln!(
        "{:<40} {:>9.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  server cpu {:.0} us/req",
        "alarm_search_one_id_last_10min",
        rate,
        p50,
        p99,
        cpu * 1e6 / all.len() as f64
    );
    println!(
        "{}",
        json!({
            "bench": "alarm_search_one_id_last_10min",
            "requests": all.len(),
            "connections": ALARM_CONNECTIONS,
            "distinct_queries": ALARM_QUERIES,
            "requests_per_s": rate,
            "p50_ms": p50,
            "p99_ms": p99,
            "server_cpu_us_per_request": cpu * 1e6 / all.len() as f64,
        })
    );
}

// ---------------------------------------------------------------------------
// Set-up helpers.

fn create_policy(client: &mut Client) {
    client.expect(
        "POST",
        "/v1/archive_policy",
        &json!({
            "name": POLICY,
            "back_window": 0,
            "definition": [{"granularity": "1 minute", "timespan": "1 day"}],
            "aggregation_methods": ["mean", "max", "min"],
        }),
        201,
    );
}

/// `count` measures one minute apart from `start` (epoch seconds); values
/// vary with `k` so that aggregates are not trivially constant.
fn points(start: i64, count: usize, k: usize) -> Value {
    Value::Array(
        (0..count)
            .map(|i| json!({"timestamp": start + 60 * i as i64, "value": ((i * 7 + k * 13) % 100) as f64}))
            .collect(),
    )
}

/// Times `n` requests (`GNOCCHID_BENCH_RUNS` overrides `n`, for profiling).
fn repeat(client: &mut Client, method: &str, path: &str, body: &Value, n: usize) -> Vec<Duration> {
    let n = std::env::var("GNOCCHID_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    eprintln!("measuring {path}");
    let bytes = serde_json::to_vec(body).unwrap();
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            let (status, _) = client.raw(method, path, &bytes);
            let elapsed = t.elapsed();
            assert_eq!(status, 200);
            elapsed
        })
        .collect();
    times.sort_unstable();
    times
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let at = ((sorted.len() - 1) as f64 * q / 100.0).round() as usize;
    sorted[at].as_secs_f64() * 1e3
}

fn report(name: &str, sorted: &[Duration], _server: &Server) {
    let (p50, p90, min) = (
        percentile(sorted, 50.0),
        percentile(sorted, 90.0),
        percentile(sorted, 0.0),
    );
    eprintln!("{name:<40} p50 {p50:>8.3} ms  p90 {p90:>8.3} ms  min {min:>8.3} ms");
    println!(
        "{}",
        json!({"bench": name, "runs": sorted.len(), "p50_ms": p50, "p90_ms": p90, "min_ms": min})
    );
}
