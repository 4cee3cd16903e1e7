//! Dynamic aggregates over HTTP: `POST /v1/aggregates` with metric ids and
//! with a resource search (wildcards, groupby), and the deprecated
//! `/v1/aggregation` endpoints, checked against hand-computed numbers.

use serde_json::{json, Value};

use crate::server::{Reply, TestServer};

/// `admin`.
const ADMIN: &str = "basic YWRtaW46";

fn send(server: &TestServer, method: &str, path: &str, body: &Value) -> Reply {
    let text = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    server.request(
        method,
        path,
        &[
            ("Authorization", ADMIN),
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
        ],
        &text,
    )
}

fn ok(reply: Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

/// A server with a `1s`/`60s` policy.
fn server() -> TestServer {
    let server = TestServer::spawn(&["--no-default-archive-policies"]);
    let reply = send(
        &server,
        "POST",
        "/v1/archive_policy",
        &json!({"name": "fine", "definition": [
            {"granularity": "1 second", "points": 3600},
            {"granularity": "60 second", "points": 60},
        ]}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let reply = send(
        &server,
        "POST",
        "/v1/archive_policy_rule",
        &json!({"name": "all", "metric_pattern": "*", "archive_policy_name": "fine"}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    server
}

fn metric(server: &TestServer, points: &[(&str, f64)]) -> String {
    let reply = send(
        server,
        "POST",
        "/v1/metric",
        &json!({"archive_policy_name": "fine"}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    push(server, &format!("/v1/metric/{id}/measures"), points);
    id
}

fn push(server: &TestServer, path: &str, points: &[(&str, f64)]) {
    let measures: Vec<Value> = points
        .iter()
        .map(|(t, v)| json!({"timestamp": t, "value": v}))
        .collect();
    let reply = send(server, "POST", path, &Value::Array(measures));
    assert_eq!(reply.status, 202, "{}", reply.body);
}

/// The `[timestamp, granularity, value]` rows as `(time, value)` pairs.
fn rows(value: &Value) -> Vec<(String, f64)> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not rows: {value}"))
        .iter()
        .map(|row| {
            (
                row[0].as_str().unwrap()[11..19].to_owned(),
                row[2].as_f64().unwrap(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, f64)]) -> Vec<(String, f64)> {
    expected
        .iter()
        .map(|(t, v)| ((*t).to_owned(), *v))
        .collect()
}

fn two_metrics(server: &TestServer) -> (String, String) {
    let a = metric(
        server,
        &[
            ("2024-01-01T10:00:00", 1.0),
            ("2024-01-01T10:00:01", 2.0),
            ("2024-01-01T10:00:02", 3.0),
        ],
    );
    let b = metric(
        server,
        &[
            ("2024-01-01T10:00:01", 10.0),
            ("2024-01-01T10:00:02", 20.0),
            ("2024-01-01T10:00:03", 30.0),
        ],
    );
    (a, b)
}

#[test]
fn aggregates_across_metric_ids() {
    let server = server();
    let (a, b) = two_metrics(&server);
    let mean = format!("(aggregate mean (metric ({a} mean) ({b} mean)))");

    // Default fill (dropna): every timestamp, NaN-skipping mean.
    let body = ok(send(
        &server,
        "POST",
        "/v1/aggregates?granularity=1&refresh=true",
        &json!({"operations": mean}),
    ));
    assert_eq!(
        rows(&body["measures"]["aggregated"]),
        pairs(&[
            ("10:00:00", 1.0),
            ("10:00:01", 6.0),
            ("10:00:02", 11.5),
            ("10:00:03", 30.0)
        ])
    );

    // needed_overlap without fill: trimmed to the overlapping span.
    let body = ok(send(
        &server,
        "POST",
        "/v1/aggregates?granularity=1&needed_overlap=100",
        &json!({"operations": mean}),
    ));
    assert_eq!(
        rows(&body["measures"]["aggregated"]),
        pairs(&[("10:00:01", 6.0), ("10:00:02", 11.5)])
    );

    // With a start, the leading hole counts against the overlap.
    let reply = send(
        &server,
        "POST",
        "/v1/aggregates?granularity=1&needed_overlap=100&start=2024-01-01T10:00:00",
        &json!({"operations": mean}),
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    let description = &reply.json()["description"];
    assert_eq!(description["cause"], "Metrics cannot be aggregated");
    assert_eq!(
        description["reason"],
        "Less than 100.000000% of datapoints overlap in this timespan (66.67%)"
    );

    // Math keeps one series per metric; a fill value plugs the holes.
    let body = ok(send(
        &server,
        "POST",
        "/v1/aggregates?granularity=1&fill=0",
        &json!({"operations": ["*", ["metric", [a, "mean"], [b, "mean"]], 2]}),
    ));
    assert_eq!(
        rows(&body["measures"][&b]["mean"]),
        pairs(&[
            ("10:00:00", 0.0),
            ("10:00:01", 20.0),
            ("10:00:02", 40.0),
            ("10:00:03", 60.0)
        ])
    );

    // Subtracting two series aggregates them.
    let body = ok(send(
        &server,
        "POST",
        "/v1/aggregates?granularity=1",
        &json!({"operations": format!("(- (metric {b} mean) (metric {a} mean))")}),
    ));
    assert_eq!(
        rows(&body["measures"]["aggregated"]),
        pairs(&[("10:00:01", 8.0), ("10:00:02", 17.0)])
    );

    // fill=null writes NaN as a bare token.
    let reply = send(
        &server,
        "POST",
        "/v1/aggregates?granularity=1&fill=null",
        &json!({"operations": format!("(metric ({a} mean) ({b} mean))")}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply
            .body
            .contains("[\"2024-01-01T10:00:00+00:00\", 1.0, NaN]"),
        "{}",
        reply.body
    );

    // Rolling and resample.
    let body = ok(send(
        &server,
        "POST",
        "/v1/aggregates?granularity=1",
        &json!({"operations": format!("(rolling sum 2 (metric {a} mean))")}),
    ));
    assert_eq!(
        rows(&body["measures"][&a]["mean"]),
        pairs(&[("10:00:01", 3.0), ("10:00:02", 5.0)])
    );
    let body = ok(send(
        &server,
        "POST",
        "/v1/aggregates?granularity=1&details=true",
        &json!({"operations": format!("(resample max 60 (metric {b} mean))")}),
    ));
    assert_eq!(
        rows(&body["measures"][&b]["mean"]),
        pairs(&[("10:00:00", 30.0)])
    );
    assert_eq!(body["references"][0]["id"], json!(b));
}

#[test]
fn aggregates_errors_are_gnocchis() {
    let server = server();
    let (a, _) = two_metrics(&server);
    let unknown = "8c062a7e-9f9f-4b1c-9996-9d0328512ab7";
    let reply = send(
        &server,
        "POST",
        "/v1/aggregates",
        &json!({"operations": ["metric", [a, "mean"], [unknown, "mean"]]}),
    );
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(reply.json()["description"]["cause"], "Unknown metrics");
    assert_eq!(reply.json()["description"]["detail"], json!([unknown]));

    // Resource searches: an unknown type is bad input; no metric found is a 404
    // naming the metrics as Gnocchi does, grouped or not.
    let search = |resource_type: &str, groupby: &str| {
        let path = format!("/v1/aggregates?granularity=1{groupby}");
        let body = json!({
            "resource_type": resource_type,
            "search": {"=": {"id": unknown}},
            "operations": "(aggregate mean (metric cpu.util mean))",
        });
        send(&server, "POST", &path, &body)
    };
    // Without a resource type a search is only checked: names are not ids.
    let body = json!({
        "search": {"=": {"id": unknown}},
        "operations": "(metric cpu.util mean)",
    });
    let reply = send(&server, "POST", "/v1/aggregates", &body);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(
        reply.json()["description"]["cause"],
        "Invalid metric references"
    );
    let body = json!({"search": "id = = 5", "operations": ["metric", a, "mean"]});
    let reply = send(&server, "POST", "/v1/aggregates", &body);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("Invalid filter"), "{}", reply.body);

    let reply = search("nope", "");
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(
        reply.json()["description"],
        json!({"cause": "Resource type does not exist", "detail": "nope"})
    );
    for groupby in ["", "&groupby=project_id"] {
        let reply = search("generic", groupby);
        assert_eq!(reply.status, 404, "{groupby}: {}", reply.body);
        assert_eq!(
            reply.json()["description"],
            json!("Metric ['cpu.util'] does not exist"),
            "{groupby}"
        );
    }

    // A reference that is not a UUID is refused before any lookup.
    let reply = send(
        &server,
        "POST",
        "/v1/aggregates",
        &json!({"operations": ["metric", [a, "mean"], ["cpu.util", "max"]]}),
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    let description = &reply.json()["description"];
    assert_eq!(description["cause"], "Invalid metric references");
    assert_eq!(
        description["detail"],
        json!([[a, "mean"], ["cpu.util", "max"]])
    );

    let reply = send(
        &server,
        "POST",
        "/v1/aggregates",
        &json!({"operations": format!("(notexist (metric {a} mean))")}),
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(
        reply.json()["description"]["reason"],
        "'notexist' operation invalid for dictionary value @ data['operations']"
    );

    let reply = send(
        &server,
        "POST",
        "/v1/aggregates?granularity=5",
        &json!({"operations": format!("(metric {a} mean)")}),
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(
        reply.json()["description"]["reason"],
        "Granularities are missing"
    );
}

fn resource(server: &TestServer, id: &str, project: &str, value: f64) {
    let reply = send(
        server,
        "POST",
        "/v1/resource/generic",
        &json!({"id": id, "project_id": project, "metrics": {"cpu.util": {}, "disk": {}}}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    push(
        server,
        &format!("/v1/resource/generic/{id}/metric/cpu.util/measures"),
        &[("2024-01-01T10:00:00", value)],
    );
}

#[test]
fn aggregates_with_search_and_groupby() {
    let server = server();
    let p1 = "11111111-1111-1111-1111-111111111111";
    let p2 = "22222222-2222-2222-2222-222222222222";
    let r1 = "aaaaaaaa-0000-0000-0000-000000000001";
    let r2 = "aaaaaaaa-0000-0000-0000-000000000002";
    let r3 = "aaaaaaaa-0000-0000-0000-000000000003";
    resource(&server, r1, p1, 1.0);
    resource(&server, r2, p1, 3.0);
    resource(&server, r3, p2, 5.0);

    // One resource by search: measures by resource, metric name, method.
    let body = ok(send(
        &server,
        "POST",
        "/v1/aggregates?granularity=1&refresh=true",
        &json!({
            "resource_type": "generic",
            "search": {"=": {"id": r1}},
            "operations": "(metric cpu.util mean)",
        }),
    ));
    assert_eq!(
        rows(&body["measures"][r1]["cpu.util"]["mean"]),
        pairs(&[("10:00:00", 1.0)])
    );

    // A string search and a wildcard name.
    let body = ok(send(
        &server,
        "POST",
        "/v1/aggregates?granularity=1&refresh=true",
        &json!({
            "resource_type": "generic",
            "search": format!("project_id = '{p2}'"),
            "operations": "(aggregate max (metric cpu* mean))",
        }),
    ));
    assert_eq!(
        rows(&body["measures"]["aggregated"]),
        pairs(&[("10:00:00", 5.0)])
    );

    // Grouped by project.
    let body = ok(send(
        &server,
        "POST",
        "/v1/aggregates?granularity=1&groupby=project_id&refresh=true",
        &json!({
            "resource_type": "generic",
            "search": {},
            "operations": "(aggregate mean (metric cpu.util mean))",
        }),
    ));
    let groups = body.as_array().unwrap();
    assert_eq!(groups.len(), 2, "{body}");
    assert_eq!(groups[0]["group"], json!({"project_id": p1}));
    assert_eq!(
        rows(&groups[0]["measures"]["measures"]["aggregated"]),
        pairs(&[("10:00:00", 2.0)])
    );
    assert_eq!(groups[1]["group"], json!({"project_id": p2}));
    assert_eq!(
        rows(&groups[1]["measures"]["measures"]["aggregated"]),
        pairs(&[("10:00:00", 5.0)])
    );

    // With history: same groups here (no revision changed a project).
    let body = ok(send(
        &server,
        "POST",
        "/v1/aggregates?granularity=1&groupby=project_id&use_history=true",
        &json!({
            "resource_type": "generic",
            "search": {},
            "operations": "(aggregate mean (metric cpu.util mean))",
        }),
    ));
    assert_eq!(body.as_array().unwrap().len(), 2, "{body}");

    // Deprecated endpoints agree.
    let body = ok(send(
        &server,
        "POST",
        "/v1/aggregation/resource/generic/metric/cpu.util?granularity=1&groupby=project_id",
        &json!({"=": {"project_id": p1}}),
    ));
    assert_eq!(body[0]["group"], json!({"project_id": p1}));
    assert_eq!(rows(&body[0]["measures"]), pairs(&[("10:00:00", 2.0)]));
    let reply = send(
        &server,
        "POST",
        "/v1/aggregation/resource/generic/metric/cpu.util?groupby=nope",
        &Value::Null,
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["description"], "Invalid groupby attribute");
    // A group whose resources lack the metric answers with no measures.
    let reply = send(
        &server,
        "POST",
        "/v1/resource/generic",
        &json!({"id": "aaaaaaaa-0000-0000-0000-000000000004", "project_id": "p3"}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let body = ok(send(
        &server,
        "POST",
        "/v1/aggregation/resource/generic/metric/cpu.util?granularity=1&groupby=project_id",
        &json!({"=": {"project_id": "p3"}}),
    ));
    assert_eq!(
        body,
        json!([{"group": {"project_id": "p3"}, "measures": []}])
    );
    // `/v1/aggregates` sorts by the groupby attributes: the sort key is bad.
    // Neither splits a comma, as Gnocchi's `arg_to_list` does not.
    let reply = send(
        &server,
        "POST",
        "/v1/aggregates?groupby=project_id,id",
        &json!({"resource_type": "generic", "search": {}, "operations": "(metric cpu.util mean)"}),
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(
        reply.json()["description"],
        "Invalid pagination: `Sort key supplied is invalid: project_id,id'"
    );

    // Errors name the references as Gnocchi does: the metric name in the
    // resource for a missing granularity, the name as asked otherwise.
    let p1_cpu = json!({
        "resource_type": "generic",
        "search": {"=": {"project_id": p1}},
        "operations": "(aggregate mean (metric cpu* mean))",
    });
    let reply = send(&server, "POST", "/v1/aggregates?granularity=5", &p1_cpu);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(
        reply.json()["description"],
        json!({
            "cause": "Metrics cannot be aggregated",
            "reason": "Granularities are missing",
            "detail": [["cpu.util", "mean", 5.0], ["cpu.util", "mean", 5.0]],
        })
    );
    push(
        &server,
        &format!("/v1/resource/generic/{r1}/metric/cpu.util/measures"),
        &[("2024-01-01T10:00:01", 2.0)],
    );
    let reply = send(
        &server,
        "POST",
        "/v1/aggregates?granularity=1&needed_overlap=100&stop=2024-01-01T10:00:02&refresh=true",
        &p1_cpu,
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(
        reply.json()["description"]["detail"],
        json!([["cpu*", "mean"], ["cpu*", "mean"]])
    );
}

#[test]
fn deprecated_cross_metric_aggregation() {
    let server = server();
    let (a, b) = two_metrics(&server);
    let body = ok(send(
        &server,
        "GET",
        &format!("/v1/aggregation/metric?metric={a}&metric={b}&granularity=1&refresh=true"),
        &Value::Null,
    ));
    assert_eq!(rows(&body), pairs(&[("10:00:01", 6.0), ("10:00:02", 11.5)]));
    let body = ok(send(
        &server,
        "GET",
        &format!(
            "/v1/aggregation/metric?metric={a}&metric={b}&granularity=1&reaggregation=max&fill=0"
        ),
        &Value::Null,
    ));
    assert_eq!(
        rows(&body),
        pairs(&[
            ("10:00:00", 1.0),
            ("10:00:01", 10.0),
            ("10:00:02", 20.0),
            ("10:00:03", 30.0)
        ])
    );

    // One metric is answered with its own measures: nothing reaggregates
    // or fills it, and no overlap is needed, so an empty one is an empty list.
    let body = ok(send(
        &server,
        "GET",
        &format!("/v1/aggregation/metric?metric={a}&granularity=1&reaggregation=max&fill=0"),
        &Value::Null,
    ));
    assert_eq!(
        rows(&body),
        pairs(&[("10:00:00", 1.0), ("10:00:01", 2.0), ("10:00:02", 3.0)])
    );
    let reply = send(
        &server,
        "POST",
        "/v1/metric",
        &json!({"archive_policy_name": "fine"}),
    );
    let empty = reply.json()["id"].as_str().unwrap().to_owned();
    let body = ok(send(
        &server,
        "GET",
        &format!("/v1/aggregation/metric?metric={empty}&needed_overlap=100"),
        &Value::Null,
    ));
    assert_eq!(body, json!([]));
}

fn epoch_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn push_now(server: &TestServer, id: &str, value: f64) {
    let reply = send(
        server,
        "POST",
        &format!("/v1/resource/generic/{id}/metric/cpu.util/measures"),
        &json!([{"timestamp": epoch_seconds(), "value": value}]),
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
}

/// The aggregated values of each group, by the group's `user_id`.
fn groups_by_user(body: &Value) -> Vec<(String, Vec<f64>)> {
    body.as_array()
        .unwrap_or_else(|| panic!("not a list: {body}"))
        .iter()
        .map(|group| {
            (
                group["group"]["user_id"].as_str().unwrap().to_owned(),
                rows(&group["measures"]["measures"]["aggregated"])
                    .into_iter()
                    .map(|(_, v)| v)
                    .collect(),
            )
        })
        .collect()
}

/// A generic resource of `user` with a `cpu.util` metric.
fn create_for_user(server: &TestServer, id: &str, user: &str) {
    let reply = send(
        server,
        "POST",
        "/v1/resource/generic",
        &json!({"id": id, "user_id": user, "metrics": {"cpu.util": {}}}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
}

/// Gives the resource to `user` (a new revision); returns the resource.
fn change_user(server: &TestServer, id: &str, user: &str) -> Value {
    let reply = send(
        server,
        "PATCH",
        &format!("/v1/resource/generic/{id}"),
        &json!({"user_id": user}),
    );
    ok(reply)
}

#[test]
fn groupby_with_history_splits_measures_by_revision() {
    let server = server();
    let id = "bbbbbbbb-0000-0000-0000-000000000001";
    create_for_user(&server, id, "u1");
    let pause = std::time::Duration::from_millis(1100);
    std::thread::sleep(pause);
    push_now(&server, id, 1.0);
    std::thread::sleep(pause);
    change_user(&server, id, "u2");
    std::thread::sleep(pause);
    push_now(&server, id, 3.0);

    let operations = json!({
        "resource_type": "generic",
        "search": format!("id = '{id}'"),
        "operations": "(aggregate sum (metric cpu.util mean))",
    });
    let body = ok(send(
        &server,
        "POST",
        "/v1/aggregates?granularity=1&groupby=user_id&refresh=true",
        &operations,
    ));
    assert_eq!(
        groups_by_user(&body),
        vec![("u2".to_owned(), vec![1.0, 3.0])]
    );
    let body = ok(send(
        &server,
        "POST",
        "/v1/aggregates?granularity=1&groupby=user_id&use_history=true",
        &operations,
    ));
    assert_eq!(
        groups_by_user(&body),
        vec![("u1".to_owned(), vec![1.0]), ("u2".to_owned(), vec![3.0])]
    );
}

/// A bucket that straddles an attribute change is shared between the two
/// groups in proportion to the time each revision covers, and a time range
/// leaves out the revisions that were not current in it (Gnocchi's rules).
#[test]
fn groupby_with_history_splits_a_straddling_bucket() {
    use chrono::{DateTime, Utc};
    let server = server();
    let id = "bbbbbbbb-0000-0000-0000-000000000002";
    create_for_user(&server, id, "u1");
    let changed: DateTime<Utc> = change_user(&server, id, "u2")["revision_start"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let changed_ns = changed.timestamp_nanos_opt().unwrap();
    let minute = 60_000_000_000_i64;
    let bucket = changed_ns - changed_ns.rem_euclid(minute);
    let at = |ns: i64| DateTime::<Utc>::from_timestamp_nanos(ns).to_rfc3339();
    push(
        &server,
        &format!("/v1/resource/generic/{id}/metric/cpu.util/measures"),
        &[
            (&at(bucket - 2 * minute), 1.0),
            (&at(bucket - minute), 2.0),
            (&at(bucket), 10.0),
            (&at(bucket + minute), 4.0),
            (&at(bucket + 2 * minute), 5.0),
        ],
    );
    let before = (changed_ns - bucket) as f64 / minute as f64;
    let after = 1.0 - before;
    let operations = json!({
        "resource_type": "generic",
        "search": format!("id = '{id}'"),
        "operations": "(aggregate mean (metric cpu.util mean))",
    });
    let groups = |query: &str| {
        let body = ok(send(
            &server,
            "POST",
            &format!("/v1/aggregates?{query}"),
            &operations,
        ));
        groups_by_user(&body)
    };
    let close = |got: &[(String, Vec<f64>)], want: &[(&str, &[f64])]| {
        assert_eq!(got.len(), want.len(), "{got:?}");
        for ((user, values), (want_user, want_values)) in got.iter().zip(want) {
            assert_eq!(user, want_user);
            assert_eq!(values.len(), want_values.len(), "{got:?}");
            for (v, w) in values.iter().zip(*want_values) {
                assert!((v - w).abs() < 1e-9, "{got:?}");
            }
        }
    };
    close(
        &groups("granularity=60&groupby=user_id&refresh=true"),
        &[("u2", &[1.0, 2.0, 10.0, 4.0, 5.0])],
    );
    close(
        &groups("granularity=60&groupby=user_id&use_history=true"),
        &[
            ("u1", &[1.0, 2.0, 10.0 * before]),
            ("u2", &[10.0 * after, 4.0, 5.0]),
        ],
    );
    // From the next minute on, only the second revision was current; it is
    // the first one found, so it covers the whole asked range.
    let start = at(bucket + minute).replace('+', "%2B");
    let stop = at(bucket + 10 * minute).replace('+', "%2B");
    close(
        &groups(&format!(
            "granularity=60&groupby=user_id&use_history=true&start={start}&stop={stop}"
        )),
        &[("u2", &[4.0, 5.0])],
    );
    // Without groupby, history changes nothing.
    let body = ok(send(
        &server,
        "POST",
        "/v1/aggregates?granularity=60&use_history=true",
        &operations,
    ));
    let values: Vec<f64> = rows(&body["measures"]["aggregated"])
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values, vec![1.0, 2.0, 10.0, 4.0, 5.0]);
}

/// The same search answered again after index writes sees them: cached
/// searches last only while the index is unchanged.
#[test]
fn repeated_searches_see_index_writes() {
    let server = server();
    let p1 = "11111111-1111-1111-1111-111111111111";
    let p2 = "22222222-2222-2222-2222-222222222222";
    let r1 = "cccccccc-0000-0000-0000-000000000001";
    let r2 = "cccccccc-0000-0000-0000-000000000002";
    let r3 = "cccccccc-0000-0000-0000-000000000003";
    resource(&server, r1, p1, 1.0);
    resource(&server, r2, p1, 3.0);
    let query = json!({
        "resource_type": "generic",
        "search": {"=": {"project_id": p1}},
        "operations": "(aggregate sum (metric cpu.util mean))",
    });
    let sum = |server: &TestServer| {
        let body = ok(send(
            server,
            "POST",
            "/v1/aggregates?granularity=1&refresh=true",
            &query,
        ));
        rows(&body["measures"]["aggregated"])
    };
    assert_eq!(sum(&server), pairs(&[("10:00:00", 4.0)]));
    assert_eq!(sum(&server), pairs(&[("10:00:00", 4.0)]));

    // A new resource in the project.
    resource(&server, r3, p1, 5.0);
    assert_eq!(sum(&server), pairs(&[("10:00:00", 9.0)]));

    // A resource leaves the project.
    let reply = send(
        &server,
        "PATCH",
        &format!("/v1/resource/generic/{r2}"),
        &json!({"project_id": p2}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(sum(&server), pairs(&[("10:00:00", 6.0)]));

    // A resource is deleted.
    let reply = send(
        &server,
        "DELETE",
        &format!("/v1/resource/generic/{r3}"),
        &Value::Null,
    );
    assert_eq!(reply.status, 204, "{}", reply.body);
    assert_eq!(sum(&server), pairs(&[("10:00:00", 1.0)]));
}

/// `POST /v1/search/metric`: rest.j2's "Search > Metric" examples.
#[test]
fn search_values_in_metrics() {
    let server = server();
    let a = metric(
        &server,
        &[
            ("2024-01-01T10:00:00", 12.0),
            ("2024-01-01T10:00:01", 27.0),
            ("2024-01-01T10:00:02", 55.0),
            ("2024-01-01T10:00:03", 60.0),
        ],
    );
    let b = metric(&server, &[("2024-01-01T10:00:00", 12.0)]);
    for id in [&a, &b] {
        ok(send(
            &server,
            "GET",
            &format!("/v1/metric/{id}/measures?refresh=true"),
            &Value::Null,
        ));
    }
    // Values >= 50 once 23 is added, and not 55: coarsest granularity first.
    let body = ok(send(
        &server,
        "POST",
        &format!("/v1/search/metric?metric_id={a}"),
        &json!({"and": [{">=": [{"+": 23}, 50]}, {"!=": 55}]}),
    ));
    assert_eq!(
        body,
        json!({a.clone(): [
            ["2024-01-01T10:00:00+00:00", 60.0, 38.5],
            ["2024-01-01T10:00:01+00:00", 1.0, 27.0],
            ["2024-01-01T10:00:03+00:00", 1.0, 60.0],
        ]})
    );
    // Several metrics, chosen granularities.
    let body = ok(send(
        &server,
        "POST",
        &format!(
            "/v1/search/metric?metric_id={a}&metric_id={b}&granularity=1second&granularity=60s"
        ),
        &json!({"=": 12}),
    ));
    assert_eq!(
        body,
        json!({
            a.clone(): [["2024-01-01T10:00:00+00:00", 1.0, 12.0]],
            b.clone(): [
                ["2024-01-01T10:00:00+00:00", 60.0, 12.0],
                ["2024-01-01T10:00:00+00:00", 1.0, 12.0],
            ],
        })
    );
    // start and stop bound the measures.
    let body = ok(send(
        &server,
        "POST",
        &format!(
            "/v1/search/metric?metric_id={a}&granularity=1&start=2024-01-01T10:00:01&stop=2024-01-01T10:00:03"
        ),
        &json!({">": 0}),
    ));
    assert_eq!(
        rows(&body[&a]),
        pairs(&[("10:00:01", 27.0), ("10:00:02", 55.0)])
    );
    // Unknown metric ids are left out.
    let body = ok(send(
        &server,
        "POST",
        "/v1/search/metric?metric_id=dddddddd-0000-0000-0000-000000000000",
        &json!({"=": 1}),
    ));
    assert_eq!(body, json!({}));

    let error = |path: String, body: Value| {
        let reply = send(&server, "POST", &path, &body);
        assert_eq!(reply.status, 400, "{path}: {}", reply.body);
        reply.body
    };
    // What Gnocchi 4.7.1 answers: a missing granularity first, then a
    // method the policy lacks (named "Metric does not exist" there).
    let description = |path: String, body: Value| {
        let reply = send(&server, "POST", &path, &body);
        assert_eq!(reply.status, 400, "{path}: {}", reply.body);
        reply.json()["description"].clone()
    };
    assert_eq!(
        description(
            format!(
                "/v1/search/metric?metric_id={a}&granularity=1s&granularity=300&aggregation=nope"
            ),
            json!({"=": 12}),
        ),
        json!({
            "cause": "Aggregation does not exist",
            "detail": {"granularity": 300.0, "aggregation_method": "nope"},
        })
    );
    let refused = description(
        format!("/v1/search/metric?metric_id={a}&aggregation=nope"),
        json!({"=": 12}),
    );
    assert_eq!(refused["cause"], "Metric does not exist");
    assert_eq!(refused["detail"]["metric"]["id"], json!(a));
    assert_eq!(
        refused["detail"]["metric"]["archive_policy"]["name"],
        json!("fine")
    );
    let text = error(
        format!("/v1/search/metric?metric_id={a}&start=foobar"),
        json!({"∧": [{"≥": 1000}]}),
    );
    assert!(text.contains("Invalid value for start"), "{text}");
    let text = error(
        format!("/v1/search/metric?metric_id={a}&stop=foobar"),
        json!({"∧": [{"≥": 1000}]}),
    );
    assert!(text.contains("Invalid value for stop"), "{text}");
    // The query is checked against Gnocchi's schema (every case is in the
    // unit tests of `measure_query`).
    assert_eq!(
        description(
            format!("/v1/search/metric?metric_id={a}"),
            json!({"and": [{"=": 12}, {"foo": 1}]}),
        ),
        json!({
            "cause": "Invalid input",
            "reason": "not a valid value @ data['and'][1]['foo']",
            "detail": ["and", "1", "foo"],
        })
    );
    assert_eq!(
        description(format!("/v1/search/metric?metric_id={a}"), json!([1, 2])),
        json!({
            "cause": "Invalid input",
            "reason": "length of value must be at most 1",
            "detail": [],
        })
    );
    assert_eq!(
        description(
            format!("/v1/search/metric?metric_id={a}"),
            json!({"not": [{"=": 1}]}),
        ),
        json!("Unknown operator not")
    );
}

#[test]
fn comparisons_answer_their_truth_as_numbers() {
    // Gnocchi 4.7.1 writes a comparison's result as 0.0 or 1.0.
    let server = server();
    let (a, _) = two_metrics(&server);
    let body = ok(send(
        &server,
        "POST",
        "/v1/aggregates?granularity=1&refresh=true",
        &json!({"operations": format!("(> (metric {a} mean) 1.5)")}),
    ));
    assert_eq!(
        body["measures"][&a]["mean"],
        json!([
            ["2024-01-01T10:00:00+00:00", 1.0, 0.0],
            ["2024-01-01T10:00:01+00:00", 1.0, 1.0],
            ["2024-01-01T10:00:02+00:00", 1.0, 1.0]
        ])
    );
}

#[test]
fn aggregates_refuse_unknown_body_keys_and_name_one_unknown_aggregation() {
    let server = server();
    let (a, b) = two_metrics(&server);
    let reply = send(
        &server,
        "POST",
        "/v1/aggregates",
        &json!({"operations": format!("(metric {a} mean)"), "foo": 1}),
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(
        reply.json()["description"],
        json!({
            "cause": "Invalid input",
            "reason": "extra keys not allowed @ data['foo']",
            "detail": ["foo"],
        })
    );
    // Gnocchi's storage stops at the first reference lacking its aggregation.
    let reply = send(
        &server,
        "POST",
        "/v1/aggregates",
        &json!({"operations": format!("(metric ({a} what?) ({b} nope))")}),
    );
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(
        reply.json()["description"],
        json!({"cause": "Metrics with unknown aggregation", "detail": [[a, "what?"]]})
    );
}
