//! Steady-state processing: what an agent fleet does every minute. 10,000
//! metrics (alternately Gnocchi-`low`-like and `medium`-like policies with
//! mean, min, max, sum, std and count) each receive one point per cycle
//! through `POST /v1/batch/metrics/measures`; a cycle ends when
//! `/v1/status` shows no backlog. The first cycle creates every object; the
//! later ones rewrite each metric's tail and latest splits, which is the
//! write path's normal state and the figure quoted as "metrics processed
//! per second".
//!
//! Run: `cargo bench --bench cycles [-- --metrics N --cycles N]`
//! (defaults 10,000 and 10). `GNOCCHID_BENCH_DIR` sets where the data
//! directory goes. Ends by checking that every cycle's point was counted
//! once in a sample of metrics.

mod support;

use std::time::Instant;

use serde_json::{json, Value};
use support::{create_metric, iso, now_minute, wait_processed, Client, Server};

const METHODS: [&str; 6] = ["mean", "min", "max", "sum", "std", "count"];

fn main() {
    let metrics = flag("--metrics", 10_000);
    let cycles = flag("--cycles", 10);
    let server = Server::start();
    let mut client = Client::connect(server.port);
    for (name, definition) in [
        (
            "cycles-low",
            json!([{"granularity": "5 minutes", "timespan": "30 days"}]),
        ),
        (
            "cycles-medium",
            json!([
                {"granularity": "1 minute", "timespan": "7 days"},
                {"granularity": "1 hour", "timespan": "365 days"},
            ]),
        ),
    ] {
        client.expect(
            "POST",
            "/v1/archive_policy",
            &json!({"name": name, "back_window": 0, "definition": definition,
                    "aggregation_methods": METHODS}),
            201,
        );
    }
    let ids: Vec<String> = (0..metrics)
        .map(|i| create_metric(&mut client, ["cycles-low", "cycles-medium"][i % 2]))
        .collect();

    let t0 = now_minute() - 60 * cycles as i64;
    let mut steady = Vec::new();
    for cycle in 0..cycles {
        let at = iso(t0 + 60 * cycle as i64);
        let body: serde_json::Map<String, Value> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let point = json!([{"timestamp": at, "value": (i % 97) as f64 + cycle as f64}]);
                (id.clone(), point)
            })
            .collect();
        let bytes = serde_json::to_vec(&Value::Object(body)).unwrap();
        let (cpu, start) = (server.cpu_seconds(), Instant::now());
        let (status, reply) = client.raw("POST", "/v1/batch/metrics/measures", &bytes);
        assert_eq!(status, 202, "{}", String::from_utf8_lossy(&reply));
        wait_processed(&mut client);
        let (wall, cpu) = (start.elapsed().as_secs_f64(), server.cpu_seconds() - cpu);
        let rate = metrics as f64 / wall;
        eprintln!(
            "cycle {cycle:>2}: {rate:>9.0} metrics/s  {wall:.3} s  server CPU {:.0} µs/metric",
            cpu * 1e6 / metrics as f64
        );
        if cycle > 0 {
            steady.push((rate, cpu * 1e6 / metrics as f64));
        }
    }

    for id in ids.iter().step_by((metrics / 10).max(1)) {
        let path = format!("/v1/metric/{id}/measures?aggregation=count&refresh=true");
        let counted: f64 = client
            .ok("GET", &path, &Value::Null)
            .as_array()
            .unwrap()
            .iter()
            .filter(|row| row[1].as_f64() == Some(300.0) || row[1].as_f64() == Some(3600.0))
            .map(|row| row[2].as_f64().unwrap())
            .sum();
        assert_eq!(
            counted, cycles as f64,
            "metric {id}: every point counted once"
        );
    }

    steady.sort_by(|a, b| a.0.total_cmp(&b.0));
    if let Some(&(rate, cpu)) = steady.get(steady.len() / 2) {
        eprintln!(
            "steady state (median of {} cycles): {rate:.0} metrics/s, {cpu:.0} µs CPU/metric",
            steady.len()
        );
        println!(
            "{}",
            json!({"bench": "cycles", "metrics": metrics, "cycles": cycles,
            "steady_metrics_per_s": rate, "steady_cpu_us_per_metric": cpu})
        );
    }
}

fn flag(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}
