//! InfluxDB line protocol and Prometheus remote write ingestion, end to end:
//! write, then read the measures back through the REST API.

use serde_json::Value;

use crate::server::{Reply, TestServer};

const ADMIN: (&str, &str) = ("Authorization", "basic YWRtaW46");
const JSON: (&str, &str) = ("Content-Type", "application/json");
const ACCEPT_JSON: (&str, &str) = ("Accept", "application/json");
const TEXT: (&str, &str) = ("Content-Type", "text/plain");

/// A server with a 1-second archive policy applied to every metric.
fn server() -> TestServer {
    let server = TestServer::spawn(&["--no-default-archive-policies"]);
    let policy = server.request(
        "POST",
        "/v1/archive_policy",
        &[ADMIN, JSON],
        r#"{"name": "ingest", "definition": [{"granularity": "1 second", "points": 100000}]}"#,
    );
    assert_eq!(policy.status, 201, "{}", policy.body);
    let rule = server.request(
        "POST",
        "/v1/archive_policy_rule",
        &[ADMIN, JSON],
        r#"{"name": "all", "metric_pattern": "*", "archive_policy_name": "ingest"}"#,
    );
    assert_eq!(rule.status, 201, "{}", rule.body);
    server
}

fn write(server: &TestServer, db: &str, extra: &[(&str, &str)], body: &str) -> Reply {
    let mut headers = vec![ADMIN, TEXT, ACCEPT_JSON];
    headers.extend_from_slice(extra);
    server.request(
        "POST",
        &format!("/v1/influxdb/write?db={db}"),
        &headers,
        body,
    )
}

/// `(timestamp, value)` of the mean at 1 second, after processing.
fn measures(server: &TestServer, path: &str) -> Vec<(String, f64)> {
    let reply = server.request(
        "GET",
        &format!("{path}/measures?refresh=true"),
        &[ADMIN, ACCEPT_JSON],
        "",
    );
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    reply
        .json()
        .as_array()
        .expect("a list")
        .iter()
        .map(|m| (m[0].as_str().unwrap().to_owned(), m[2].as_f64().unwrap()))
        .collect()
}

fn create_database(server: &TestServer, name: &str) {
    let reply = server.request(
        "POST",
        &format!("/v1/influxdb/query?q=CREATE+DATABASE+{name}"),
        &[ADMIN],
        "",
    );
    assert_eq!(reply.status, 204, "{}", reply.body);
}

#[test]
fn line_protocol_measures_are_readable_back() {
    let server = server();
    create_database(&server, "telegraf");
    let body = "cpu,host=web1,cpu=cpu0 usage_idle=90.5,usage_user=9i 1700000000000000000\n\
                cpu,cpu=cpu0,host=web1 usage_idle=80.5,usage_user=19i 1700000001000000000\n\
                \n\
                cpu,host=web2,cpu=cpu0 usage_idle=70 1700000000000000000\n\
                mem,host=web1,path=/var used=1024i,note=\"ignored, really\",ok=true 1700000000000000000\n";
    let reply = write(&server, "telegraf", &[], body);
    assert_eq!(reply.status, 204, "{}", reply.body);

    let resource = server.request("GET", "/v1/resource/telegraf/web1", &[ADMIN], "");
    assert_eq!(resource.status, 200, "{}", resource.body);
    let resource = resource.json();
    assert_eq!(resource["original_resource_id"], "web1");
    assert_eq!(resource["type"], "telegraf");
    let mut names: Vec<&str> = resource["metrics"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "cpu.usage_idle@cpu=cpu0",
            "cpu.usage_user@cpu=cpu0",
            "mem.used@path=_var"
        ]
    );

    let base = "/v1/resource/telegraf/web1/metric";
    assert_eq!(
        measures(&server, &format!("{base}/cpu.usage_idle@cpu=cpu0")),
        [
            ("2023-11-14T22:13:20+00:00".to_owned(), 90.5),
            ("2023-11-14T22:13:21+00:00".to_owned(), 80.5)
        ]
    );
    let user: Vec<f64> = measures(&server, &format!("{base}/cpu.usage_user@cpu=cpu0"))
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(user, [9.0, 19.0]);
    assert_eq!(
        measures(&server, &format!("{base}/mem.used@path=_var"))[0].1,
        1024.0
    );
    assert_eq!(
        measures(
            &server,
            "/v1/resource/telegraf/web2/metric/cpu.usage_idle@cpu=cpu0"
        )[0]
        .1,
        70.0
    );

    // A second write appends a new metric to an existing resource.
    let reply = write(
        &server,
        "telegraf",
        &[],
        "disk,host=web1 free=5 1700000002000000000",
    );
    assert_eq!(reply.status, 204, "{}", reply.body);
    assert_eq!(
        measures(&server, &format!("{base}/disk.free")),
        [("2023-11-14T22:13:22+00:00".to_owned(), 5.0)]
    );
    assert_eq!(
        measures(&server, &format!("{base}/cpu.usage_idle@cpu=cpu0")).len(),
        2
    );
}

#[test]
fn resource_tag_header_picks_the_resource() {
    let server = server();
    create_database(&server, "influxdb");
    // Without `db`, the database is `influxdb`.
    let reply = server.request(
        "POST",
        "/v1/influxdb/write",
        &[ADMIN, TEXT, ("X-Gnocchi-InfluxDB-Tag-Resource-ID", "rack")],
        "temp,rack=r1,host=h1 celsius=21.5 1700000000000000000",
    );
    assert_eq!(reply.status, 204, "{}", reply.body);
    let values = measures(
        &server,
        "/v1/resource/influxdb/r1/metric/temp.celsius@host=h1",
    );
    assert_eq!(values, [("2023-11-14T22:13:20+00:00".to_owned(), 21.5)]);

    // Nothing numeric to store: accepted, and no resource appears.
    for body in [
        "",
        "\n\n",
        "note,host=quiet text=\"only words\",flag=false 1",
    ] {
        let reply = write(&server, "influxdb", &[], body);
        assert_eq!(reply.status, 204, "{body:?}: {}", reply.body);
    }
    let reply = server.request("GET", "/v1/resource/influxdb/quiet", &[ADMIN], "");
    assert_eq!(reply.status, 404, "{}", reply.body);
}

#[test]
fn bad_input_is_a_client_error_and_writes_nothing() {
    let server = server();
    create_database(&server, "db1");

    let reply = write(
        &server,
        "db1",
        &[],
        "cpu,host=a v=1 1\ncpu,host=a v=oops 2\n",
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    let description = &reply.json()["description"];
    assert_eq!(description["cause"], "Value error");
    assert_eq!(description["detail"], "line");
    assert_eq!(description["reason"], "Unable to parse line 2");

    let reply = write(&server, "db1", &[], "cpu,rack=a v=1 1");
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(
        reply.json()["description"]["reason"],
        "Unable to find key `host' in tags"
    );

    // Nothing of the refused bodies was created.
    let reply = server.request("GET", "/v1/resource/db1/a", &[ADMIN], "");
    assert_eq!(reply.status, 404, "{}", reply.body);

    // An unknown database is an unknown resource type.
    let reply = write(&server, "nope", &[], "cpu,host=a v=1 1");
    assert_eq!(reply.status, 404, "{}", reply.body);

    // No credentials.
    let reply = server.request(
        "POST",
        "/v1/influxdb/write?db=db1",
        &[TEXT],
        "cpu,host=a v=1 1",
    );
    assert_eq!(reply.status, 401, "{}", reply.body);

    // Remote write bodies that are not snappy-compressed protobuf.
    for body in ["", "garbage", "\u{7f}\u{7f}\u{7f}\u{7f}\u{7f}"] {
        let reply = server.request(
            "POST",
            "/v1/prometheus/write",
            &[
                ADMIN,
                ACCEPT_JSON,
                ("Content-Type", "application/x-protobuf"),
            ],
            body,
        );
        assert_eq!(reply.status, 400, "{body:?}: {}", reply.body);
    }
}

#[test]
fn ping_and_query_answer_like_gnocchi() {
    let server = server();
    let ping = server.request("GET", "/v1/influxdb/ping", &[], "");
    assert_eq!(ping.status, 204);
    assert!(ping
        .header("X-Influxdb-Version")
        .is_some_and(|v| v.starts_with("Gnocchi ")));
    let head = server.request("HEAD", "/v1/influxdb/ping", &[], "");
    assert_eq!(head.status, 405);

    let reply = server.request(
        "POST",
        "/v1/influxdb/query?q=SHOW+DATABASES",
        &[ADMIN, ACCEPT_JSON],
        "",
    );
    assert_eq!(reply.status, 501, "{}", reply.body);
    assert_eq!(
        reply.json()["description"]["reason"],
        Value::from("Query not implemented")
    );
    // Creating an existing database is fine.
    create_database(&server, "twice");
    create_database(&server, "twice");
    let rt = server.request("GET", "/v1/resource_type/twice", &[ADMIN], "");
    assert_eq!(rt.status, 200, "{}", rt.body);
}
