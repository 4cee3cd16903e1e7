//! Measures bodies Gnocchi's schemas refuse, on one metric and in batches:
//! each answer is the one Gnocchi 4.7.1 gives (seen side by side), and a
//! refused body writes nothing.

use serde_json::{json, Value};

use crate::server::{Reply, TestServer};

/// `admin`.
const ADMIN: &str = "basic YWRtaW46";

fn post(server: &TestServer, path: &str, body: &str) -> Reply {
    server.request(
        "POST",
        path,
        &[
            ("Authorization", ADMIN),
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
        ],
        body,
    )
}

/// A server with resource `r1` holding metric `cpu`.
fn server() -> TestServer {
    let server = TestServer::spawn(&["--no-default-archive-policies"]);
    let policy = json!({"name": "p", "definition": [{"granularity": "1s", "points": 100}]});
    let reply = post(&server, "/v1/archive_policy", &policy.to_string());
    assert_eq!(reply.status, 201, "{}", reply.body);
    let resource = json!({"id": "r1", "metrics": {"cpu": {"archive_policy_name": "p"}}});
    let reply = post(&server, "/v1/resource/generic", &resource.to_string());
    assert_eq!(reply.status, 201, "{}", reply.body);
    server
}

/// Posts `body` to `path` and returns the 400's `(reason, detail)`.
fn refused(server: &TestServer, path: &str, body: &Value) -> (Value, Value) {
    let reply = post(server, path, &body.to_string());
    assert_eq!(reply.status, 400, "{body} -> {}", reply.body);
    let description = reply.json()["description"].clone();
    assert_eq!(description["cause"], "Invalid input", "{body}");
    (description["reason"].clone(), description["detail"].clone())
}

const MEASURES: &str = "/v1/resource/generic/r1/metric/cpu/measures";
const BATCH: &str = "/v1/batch/resources/metrics/measures";

#[test]
fn bad_measures_are_refused_as_gnocchis_schema_refuses_them() {
    let server = server();
    let good = json!({"timestamp": "2024-01-01T10:00:00", "value": 1});
    let cases = [
        (json!("x"), "unexpected measures format"),
        (json!({"measures": []}), "unexpected measures format"),
        (json!([[1, 2]]), "unexpected measures format"),
        (
            json!([{"timestamp": null, "value": 1}]),
            "unexpected measures format",
        ),
        (
            json!([{"timestamp": "x", "value": 1}]),
            "unexpected timestamp 'Unable to convert timestamps'",
        ),
        (
            json!([{"timestamp": "1915-01-01", "value": 1}]),
            "unexpected timestamp 'Timestamp must be after Epoch'",
        ),
        (
            json!([{"timestamp": "2024-01-01", "value": "x"}]),
            "unexpected measures value",
        ),
        (
            json!([{"timestamp": "2024-01-01", "value": [1]}]),
            "unexpected measures value",
        ),
        (
            json!([{"timestamp": "2024-01-01"}]),
            "unexpected measures value",
        ),
        // The worst kind anywhere in the list is the one reported.
        (
            json!([good, {"timestamp": "2024-01-01", "value": "x"}, {"timestamp": "x", "value": 1}]),
            "unexpected timestamp 'Unable to convert timestamps'",
        ),
    ];
    for (body, reason) in cases {
        assert_eq!(
            refused(&server, MEASURES, &body),
            (json!(reason), json!([])),
            "{body}"
        );
    }
    // What Python lets through: extra keys, booleans, an empty object.
    for body in [
        json!([{"timestamp": "2024-01-01T10:00:01", "value": 2, "unit": "%"}]),
        json!([{"timestamp": "2024-01-01T10:00:02", "value": true}]),
        json!({}),
    ] {
        let reply = post(&server, MEASURES, &body.to_string());
        assert_eq!(reply.status, 202, "{body} -> {}", reply.body);
    }
    let reply = server.request(
        "GET",
        &format!("{MEASURES}?refresh=true"),
        &[("Authorization", ADMIN)],
        "",
    );
    assert_eq!(
        reply.json(),
        json!([
            ["2024-01-01T10:00:01+00:00", 1.0, 2.0],
            ["2024-01-01T10:00:02+00:00", 1.0, 1.0]
        ]),
        "refused bodies wrote nothing"
    );
}

#[test]
fn bad_batches_name_where_they_fail() {
    let server = server();
    let good = json!([{"timestamp": "2024-01-01T10:00:00", "value": 1}]);
    let long = "x".repeat(300);
    let cases = [
        (json!([]), "expected a dictionary", json!([])),
        (
            json!({"r1": "x"}),
            "expected a dictionary for dictionary value @ data['r1']",
            json!(["r1"]),
        ),
        (
            json!({"r1": {"cpu": "x"}}),
            "unexpected measures format for dictionary value @ data['r1']['cpu']",
            json!(["r1", "cpu"]),
        ),
        (
            json!({"r1": {"cpu": [{"timestamp": "x", "value": 1}]}}),
            "unexpected timestamp 'Unable to convert timestamps' for dictionary value @ data['r1']['cpu']",
            json!(["r1", "cpu"]),
        ),
        (
            json!({"r1": {"cpu": {"measures": "x"}}}),
            "unexpected measures format for dictionary value @ data['r1']['cpu']['measures']",
            json!(["r1", "cpu", "measures"]),
        ),
        (
            json!({"r1": {"cpu": {"measures": good, "archive_policy_name": 1}}}),
            "expected str for dictionary value @ data['r1']['cpu']['archive_policy_name']",
            json!(["r1", "cpu", "archive_policy_name"]),
        ),
        (
            json!({"r1": {"cpu": {"measures": good, "foo": 1}}}),
            "extra keys not allowed @ data['r1']['cpu']['foo']",
            json!(["r1", "cpu", "foo"]),
        ),
        (
            json!({"r1": {"cpu": {"unit": "%"}}}),
            "required key not provided @ data['r1']['cpu']['measures']",
            json!(["r1", "cpu", "measures"]),
        ),
        (
            json!({"a/b": {"cpu": good}}),
            "'/' is not supported in resource id @ data['a/b']",
            json!(["a/b"]),
        ),
    ];
    for (body, reason, detail) in cases {
        // The first entry is good: a refused batch writes none of it.
        let mut batch = json!({"r1": {"cpu": [{"timestamp": "2024-01-01T09:00:00", "value": 9}]}});
        if let Value::Object(entries) = &body {
            batch.as_object_mut().unwrap().extend(entries.clone());
        } else {
            batch = body.clone();
        }
        assert_eq!(
            refused(&server, BATCH, &batch),
            (json!(reason), detail),
            "{body}"
        );
    }
    assert_eq!(
        refused(&server, BATCH, &json!({long.clone(): {"cpu": good}})),
        (
            json!(format!(
                "transformable resource id >289 max allowed characters @ data['{long}']"
            )),
            json!([long])
        )
    );
    let by_metric = "/v1/batch/metrics/measures";
    assert_eq!(
        refused(&server, by_metric, &json!({"foo": "x"})),
        (json!("not a valid value @ data['foo']"), json!(["foo"]))
    );
    let id = "00000000-0000-0000-0000-000000000000";
    assert_eq!(
        refused(&server, by_metric, &json!({id: {"measures": good}})),
        (
            json!(format!(
                "unexpected measures format for dictionary value @ data['{id}']"
            )),
            json!([id])
        )
    );
    // An empty metric object is an empty list; `create_metrics` is only
    // read once a metric is named.
    let reply = post(
        &server,
        &format!("{BATCH}?create_metrics=maybe"),
        r#"{"r1": {}}"#,
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    let reply = post(&server, BATCH, r#"{"r1": {"cpu": {}}}"#);
    assert_eq!(reply.status, 202, "{}", reply.body);

    let reply = server.request(
        "GET",
        &format!("{MEASURES}?refresh=true"),
        &[("Authorization", ADMIN)],
        "",
    );
    assert_eq!(reply.json(), json!([]), "refused batches wrote nothing");
}
