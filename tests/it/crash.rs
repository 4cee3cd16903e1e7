//! Crash safety of the write path: every measure answered with `202` survives
//! a SIGKILL at any moment, and reprocessing after a restart counts nothing
//! twice.
//!
//! Clients write measures continuously while the server is killed and
//! restarted on the same data directory a few times. Each timestamp is sent
//! exactly once (a failed request is not retried), so after the last restart
//! the `count` aggregate must be exactly 1 at every stored timestamp, and
//! every acknowledged measure must be there with its value as `sum`.
//!
//! The same run goes on the embedded stores (local log, local directory) and
//! on the scale-out ones (Redis with a prefix of its own, an S3 bucket of
//! its own on the server `bash .ci/s3` starts), which are removed after.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;

use crate::server::{fresh_data_dir, send, TestServer};
use crate::storage::{s3_endpoint, s3_request};

const ADMIN: (&str, &str) = ("Authorization", "basic YWRtaW46");
const JSON: (&str, &str) = ("Content-Type", "application/json");
const CLIENTS: usize = 3;
const METRICS_PER_CLIENT: usize = 2;
const KILLS: usize = 5;
const BATCH: usize = 50;

/// A small deterministic generator for the pauses between kills.
fn next_pause(state: &mut u64) -> Duration {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    Duration::from_millis(80 + (*state >> 33) % 320)
}

#[test]
fn acknowledged_measures_survive_sigkill_on_the_embedded_stores() {
    crash_cycle(&[]);
}

#[test]
fn acknowledged_measures_survive_sigkill_on_redis_and_s3() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!("gnocchid-crash-{}-{nanos}", std::process::id());
    let endpoint = s3_endpoint();
    let status = runtime.block_on(s3_request(&endpoint, "PUT", &format!("/{name}")));
    assert_eq!(status, 200, "creating bucket {name} at {endpoint}");
    let redis = std::env::var("GNOCCHID_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let sep = if redis.contains('?') { '&' } else { '?' };
    let incoming = format!("{redis}{sep}prefix={name}");
    let storage = format!(
        "s3://{name}?endpoint={endpoint}&region=us-east-1&access_key_id=test\
         &secret_access_key=test&allow_http=true"
    );
    let outcome = std::panic::catch_unwind(|| {
        crash_cycle(&["--incoming-url", &incoming, "--storage-url", &storage]);
    });
    runtime.block_on(async {
        let store = gnocchid::storage::AggregateStore::open(&storage).unwrap();
        let objects = store
            .object_store()
            .list(None)
            .map_ok(|m| m.location)
            .boxed();
        let deleted: Vec<_> = store.object_store().delete_stream(objects).collect().await;
        assert!(deleted.iter().all(Result::is_ok), "emptying bucket {name}");
        assert!(!deleted.is_empty(), "the server wrote no aggregates to S3");
        let status = s3_request(&endpoint, "DELETE", &format!("/{name}")).await;
        assert_eq!(status, 204, "deleting bucket {name}");
        gnocchid::incoming::RedisIncoming::connect(&incoming, 128)
            .await
            .expect("reconnect to Redis for cleanup")
            .destroy()
            .await
            .expect("delete the test's Redis keys");
    });
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Writes, kills and restarts a server started with `stores` (flags naming
/// its incoming and storage URLs, none for the embedded defaults), then
/// checks every acknowledged measure is counted exactly once.
fn crash_cycle(stores: &[&str]) {
    let data_dir = fresh_data_dir();
    let mut flags = vec!["--no-default-archive-policies"];
    flags.extend_from_slice(stores);
    let flags = &flags[..];
    let server = TestServer::start_in(data_dir.clone(), flags);
    let policy = server.request(
        "POST",
        "/v1/archive_policy",
        &[ADMIN, JSON],
        // About 115 days at 1 s: more than the clients can send in the run,
        // so no acknowledged measure expires past the timespan.
        r#"{"name": "crash", "aggregation_methods": ["count", "sum"],
            "definition": [{"granularity": "1 second", "points": 10000000}]}"#,
    );
    assert_eq!(policy.status, 201, "{}", policy.body);
    let metrics: Vec<String> = (0..CLIENTS * METRICS_PER_CLIENT)
        .map(|_| {
            let reply = server.request(
                "POST",
                "/v1/metric",
                &[ADMIN, JSON],
                r#"{"archive_policy_name": "crash"}"#,
            );
            assert_eq!(reply.status, 201, "{}", reply.body);
            reply.json()["id"].as_str().unwrap().to_owned()
        })
        .collect();

    let port = Arc::new(AtomicU16::new(server.port()));
    let stop = Arc::new(AtomicBool::new(false));
    // (metric, epoch second) -> value, for every measure answered with 202.
    let acknowledged = Arc::new(Mutex::new(HashMap::<(usize, i64), f64>::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (port, stop, acknowledged) = (port.clone(), stop.clone(), acknowledged.clone());
            let metrics = metrics.clone();
            std::thread::spawn(move || {
                let mut second = 1_600_000_000_i64;
                let mut round = 0_usize;
                while !stop.load(Ordering::Relaxed) {
                    let metric = client * METRICS_PER_CLIENT + round % METRICS_PER_CLIENT;
                    round += 1;
                    let batch: Vec<(i64, f64)> = (0..BATCH)
                        .map(|i| (second + i as i64, (second * 7 + client as i64) as f64 / 4.0))
                        .collect();
                    second += BATCH as i64;
                    let body = serde_json::to_string(
                        &batch
                            .iter()
                            .map(|(t, v)| serde_json::json!({"timestamp": t, "value": v}))
                            .collect::<Vec<_>>(),
                    )
                    .unwrap();
                    let path = format!("/v1/metric/{}/measures", metrics[metric]);
                    match send(
                        port.load(Ordering::Relaxed),
                        "POST",
                        &path,
                        &[ADMIN, JSON],
                        &body,
                    ) {
                        Ok(reply) if reply.status == 202 => {
                            let mut acked = acknowledged.lock().unwrap();
                            for (t, v) in batch {
                                acked.insert((metric, t), v);
                            }
                        }
                        // Killed mid-request, or not restarted yet: move on,
                        // never resend the same timestamps.
                        _ => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        })
        .collect();

    let mut server = server;
    let mut seed = 0x5eed_u64;
    for _ in 0..KILLS {
        std::thread::sleep(next_pause(&mut seed));
        server.kill();
        server = TestServer::start_in(data_dir.clone(), flags);
        port.store(server.port(), Ordering::Relaxed);
    }
    std::thread::sleep(next_pause(&mut seed));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    server.kill();
    let server = TestServer::start_in(data_dir.clone(), flags);

    let acknowledged = acknowledged.lock().unwrap();
    assert!(
        acknowledged.len() >= BATCH * CLIENTS,
        "too few acknowledged measures to prove anything: {}",
        acknowledged.len()
    );
    for (index, metric) in metrics.iter().enumerate() {
        let read = |method: &str| -> HashMap<i64, f64> {
            let reply = server.request(
                "GET",
                &format!("/v1/metric/{metric}/measures?refresh=true&aggregation={method}"),
                &[ADMIN],
                "",
            );
            assert_eq!(reply.status, 200, "{}", reply.body);
            reply
                .json()
                .as_array()
                .unwrap()
                .iter()
                .map(|row| {
                    let iso = row[0].as_str().unwrap();
                    (epoch_seconds(iso), row[2].as_f64().unwrap())
                })
                .collect()
        };
        let counts = read("count");
        let sums = read("sum");
        for (second, count) in &counts {
            assert_eq!(
                *count, 1.0,
                "metric {index} counted {count} measures at {second}"
            );
        }
        for ((m, second), value) in acknowledged.iter() {
            if *m != index {
                continue;
            }
            assert_eq!(
                counts.get(second),
                Some(&1.0),
                "metric {index} lost the measure at {second}"
            );
            assert_eq!(sums.get(second), Some(value), "metric {index} at {second}");
        }
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// Seconds since the epoch of an ISO 8601 timestamp with offset.
fn epoch_seconds(iso: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(iso)
        .unwrap_or_else(|err| panic!("{iso}: {err}"))
        .timestamp()
}
