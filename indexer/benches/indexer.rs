//! Indexer benchmarks (custom harness: large fixtures, latency percentiles).
//!
//! `cargo bench -p indexer` runs on SQLite (a temp file). Environment:
//! `GNOCCHID_BENCH_BACKENDS` (comma list of `sqlite`, `postgres`, `mysql`; default
//! `sqlite`), `GNOCCHID_BENCH_RESOURCES` (default 100000), and the test suite's
//! `GNOCCHID_TEST_POSTGRESQL_URL` / `GNOCCHID_TEST_MYSQL_URL` for the servers.
//!
//! Scenarios: resource creation in batches of 1,000 (a custom type with 5 typed
//! attributes), from one writer and from two at once; equality search on an indexed attribute; `and` of three conditions with a
//! time range; metric lookup by id.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use indexer::{
    search::parse_string, ArchivePolicy, ArchivePolicyItem, AttributeSchema, AttributeType,
    Indexer, NewMetric, NewResource, SearchOptions, UpgradeOptions,
};
use serde_json::json;
use sqlx::Connection;
use uuid::Uuid;

const HOSTS: u64 = 10_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "  {name}: n={} p50={:.3} ms p90={:.3} ms p99={:.3} ms",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.9).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
    );
}

/// CPU seconds (user + system) used by this process so far: tells the client's share
/// of a database-bound figure from the server's.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| -> f64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0.0) };
    // utime and stime, in clock ticks of 1/100 s (Linux's USER_HZ).
    (ticks(11) + ticks(12)) / 100.0
}

/// A simple deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

async fn database(backend: &str) -> (String, Option<(String, String)>) {
    let name = format!("gnocchid_bench_{}", Uuid::new_v4().simple());
    let admin = match backend {
        "sqlite" => {
            let path = std::env::temp_dir().join(format!("{name}.sqlite"));
            return (format!("sqlite://{}", path.display()), None);
        }
        "postgres" => std::env::var("GNOCCHID_TEST_POSTGRESQL_URL")
            .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".into()),
        "mysql" => std::env::var("GNOCCHID_TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/mysql".into()),
        other => panic!("unknown backend {other}"),
    };
    let mut conn = sqlx::AnyConnection::connect(&admin)
        .await
        .expect("admin connection");
    sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create database");
    conn.close().await.ok();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    (format!("{base}/{name}"), Some((admin, name)))
}

async fn drop_database(url: &str, admin: Option<(String, String)>) {
    match admin {
        None => {
            let path = url.trim_start_matches("sqlite://");
            for s in ["", "-wal", "-shm"] {
                std::fs::remove_file(format!("{path}{s}")).ok();
            }
        }
        Some((admin, name)) => {
            let mut conn = sqlx::AnyConnection::connect(&admin)
                .await
                .expect("admin connection");
            let force = if admin.starts_with("postgres") {
                " WITH (FORCE)"
            } else {
                ""
            };
            sqlx::Executor::execute(
                &mut conn,
                format!("DROP DATABASE IF EXISTS {name}{force}").as_str(),
            )
            .await
            .ok();
            conn.close().await.ok();
        }
    }
}

/// Resource `i` of the fixture: 100 users, 10 projects, `HOSTS` hosts, one minute apart.
fn new_instance(i: u64) -> NewResource {
    let id = Uuid::new_v4();
    NewResource {
        id,
        original_resource_id: id.to_string(),
        creator: "bench:proj".into(),
        user_id: Some(format!("user{}", i % 100)),
        project_id: Some(format!("project{}", i % 10)),
        started_at: Some(Utc.timestamp_opt(1_500_000_000 + i as i64 * 60, 0).unwrap()),
        attributes: json!({
            "host": format!("host-{}", i % HOSTS),
            "flavor_id": (i % 20) as f64,
            "image_ref": Uuid::new_v4().to_string(),
            "enabled": i % 2 == 0,
            "launched_at": "2017-05-02T11:11:11Z",
        })
        .as_object()
        .unwrap()
        .clone(),
        ..Default::default()
    }
}

async fn bench(backend: &str, n: u64) {
    println!("{backend}: {n} resources");
    let (url, admin) = database(backend).await;
    let ix = Indexer::connect(&url).await.expect("connect");
    let policy = ArchivePolicy {
        name: "low".into(),
        back_window: 0,
        definition: vec![ArchivePolicyItem {
            granularity_ns: 300_000_000_000,
            points: Some(8640),
            timespan_ns: Some(2_592_000_000_000_000),
        }],
        aggregation_methods: vec!["mean".into()],
    };
    ix.upgrade(&UpgradeOptions {
        default_policies: vec![policy],
        create_default_rule: true,
        sacks: None,
    })
    .await
    .expect("upgrade");
    let mut attrs = BTreeMap::new();
    let a = |t| AttributeSchema {
        attr_type: t,
        required: false,
        fill: None,
    };
    attrs.insert(
        "host".to_string(),
        a(AttributeType::String {
            min_length: 0,
            max_length: 255,
        }),
    );
    attrs.insert(
        "flavor_id".to_string(),
        a(AttributeType::Number {
            min: None,
            max: None,
        }),
    );
    attrs.insert("image_ref".to_string(), a(AttributeType::Uuid));
    attrs.insert("enabled".to_string(), a(AttributeType::Bool));
    attrs.insert("launched_at".to_string(), a(AttributeType::Datetime));
    ix.create_resource_type("instance", &attrs)
        .await
        .expect("type");

    // Creation in batches.
    let batch = 1000;
    let t0 = Instant::now();
    let mut batch_times = Vec::new();
    let mut batch_cpu = 0.0;
    for b in 0..n.div_ceil(batch) {
        let news: Vec<NewResource> = (b * batch..((b + 1) * batch).min(n))
            .map(new_instance)
            .collect();
        let tb = Instant::now();
        let cpu = cpu_seconds();
        ix.create_resources("instance", &news)
            .await
            .expect("create");
        batch_cpu += cpu_seconds() - cpu;
        batch_times.push(tb.elapsed());
    }
    let el = t0.elapsed();
    println!(
        "  create_resources (batches of {batch}): {n} in {:.2} s = {:.0} resources/s (incl. fixture generation)",
        el.as_secs_f64(),
        n as f64 / el.as_secs_f64()
    );
    let insert_only: Duration = batch_times.iter().sum();
    println!(
        "  create_resources, database time only: {:.0} resources/s; this process's CPU: {:.1} µs/resource",
        n as f64 / insert_only.as_secs_f64(),
        batch_cpu * 1e6 / n as f64
    );

    // The same, from 2 writers at once (an API serves several clients; one batch keeps
    // one server backend busy), into a second type so that the searches below see the
    // same data whatever this phase does. Fixtures are built before the clock starts.
    ix.create_resource_type("instance_bis", &attrs)
        .await
        .expect("type");
    let concurrent = n.min(100_000);
    let batches: Vec<Vec<NewResource>> = (0..concurrent.div_ceil(batch))
        .map(|b| {
            (b * batch..((b + 1) * batch).min(concurrent))
                .map(new_instance)
                .collect()
        })
        .collect();
    let writers = 2;
    let mut shares: Vec<Vec<Vec<NewResource>>> = (0..writers).map(|_| Vec::new()).collect();
    for (i, b) in batches.into_iter().enumerate() {
        shares[i % writers].push(b);
    }
    let t = Instant::now();
    let tasks: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let ix = ix.clone();
            tokio::spawn(async move {
                for news in share {
                    ix.create_resources("instance_bis", &news)
                        .await
                        .expect("create");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    println!(
        "  create_resources, {writers} writers at once (batches of {batch}): {concurrent} in {:.2} s = {:.0} resources/s",
        t.elapsed().as_secs_f64(),
        concurrent as f64 / t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    ix.optimize().await.expect("optimize");
    println!(
        "  optimize (ANALYZE) after the load: {:.2} s",
        t.elapsed().as_secs_f64()
    );

    // Equality search on an indexed attribute.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let opts = SearchOptions {
        creator: "bench:proj".into(),
        ..Default::default()
    };
    let mut samples = Vec::new();
    let mut found = 0;
    for _ in 0..500 {
        let f = parse_string(&format!("host = 'host-{}'", rng.next() % HOSTS.min(n))).unwrap();
        let t = Instant::now();
        found += ix
            .search_resources("instance", Some(&f), &opts)
            .await
            .expect("search")
            .len();
        samples.push(t.elapsed());
    }
    report(
        &format!("search host = X ({} rows/query)", found / 500),
        samples,
    );

    // and of three conditions with a time range.
    let mut samples = Vec::new();
    let mut found = 0;
    for _ in 0..500 {
        let h = rng.next() % HOSTS.min(n);
        let start = Utc
            .timestamp_opt(1_500_000_000 + (h as i64) * 60, 0)
            .unwrap();
        let stop = start + chrono::Duration::days(7 * 365);
        let f = parse_string(&format!(
            "host = 'host-{h}' and project_id = 'project{}' and started_at >= '{}' and started_at < '{}'",
            h % 10,
            start.to_rfc3339(),
            stop.to_rfc3339()
        ))
        .unwrap();
        let t = Instant::now();
        found += ix
            .search_resources("instance", Some(&f), &opts)
            .await
            .expect("search")
            .len();
        samples.push(t.elapsed());
    }
    report(
        &format!(
            "search host = X and project_id = Y and started_at in range ({} rows/query)",
            found / 500
        ),
        samples,
    );

    // Metric lookup by id.
    let mut ids = Vec::new();
    for i in 0..2000 {
        let m = NewMetric {
            name: Some(format!("m{i}")),
            archive_policy_name: Some("low".into()),
            creator: "bench:proj".into(),
            ..Default::default()
        };
        ids.push(ix.create_metric(&m).await.expect("metric").id);
    }
    let lookups = 20_000;
    let t = Instant::now();
    for _ in 0..lookups {
        ix.get_metric(ids[(rng.next() % ids.len() as u64) as usize])
            .await
            .expect("get");
    }
    let el = t.elapsed();
    println!(
        "  get_metric by id, 1 task: {:.0} lookups/s",
        lookups as f64 / el.as_secs_f64()
    );
    let t = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..8u64 {
        let ix = ix.clone();
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x1234_5678 + k);
            for _ in 0..lookups / 8 {
                ix.get_metric(ids[(rng.next() % ids.len() as u64) as usize])
                    .await
                    .expect("get");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let el = t.elapsed();
    println!(
        "  get_metric by id, 8 tasks: {:.0} lookups/s",
        lookups as f64 / el.as_secs_f64()
    );
    let t = Instant::now();
    for chunk in ids.chunks(100).cycle().take(100) {
        ix.get_metrics(chunk).await.expect("get_metrics");
    }
    let el = t.elapsed();
    println!(
        "  get_metrics, 100 ids per call: {:.0} metrics/s",
        10_000.0 / el.as_secs_f64()
    );

    ix.close().await;
    if std::env::var_os("GNOCCHID_BENCH_KEEP").is_some() {
        println!("  kept: {url}");
    } else {
        drop_database(&url, admin).await;
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would too: skip then.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    sqlx::any::install_default_drivers();
    let n: u64 = std::env::var("GNOCCHID_BENCH_RESOURCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let backends = std::env::var("GNOCCHID_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for b in backends.split(',') {
        rt.block_on(bench(b.trim(), n));
    }
}
