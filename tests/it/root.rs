//! The version document, the health check and the `/v1` index.

use crate::server::TestServer;

#[test]
fn root_reports_a_gnocchi_4_build_and_v1() {
    let server = TestServer::spawn(&[]);
    let reply = server.get("/");
    assert_eq!(reply.status, 200);
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let doc = reply.json();
    let build = doc["build"].as_str().unwrap();
    let mut parts = build.split('.').map(|p| p.parse::<u32>().unwrap());
    assert_eq!(parts.next(), Some(4));
    assert!(
        parts.next().unwrap() >= 2,
        "clients need >= 4.2.0, got {build}"
    );
    assert_eq!(doc["versions"][0]["id"], "v1.0");
    assert_eq!(doc["versions"][0]["status"], "CURRENT");
    assert_eq!(
        doc["versions"][0]["links"][0]["href"],
        format!("{}/v1/", server.base_url())
    );
}

#[test]
fn healthcheck_answers_ok() {
    let server = TestServer::spawn(&[]);
    assert_eq!(server.get("/healthcheck").status, 200);
}

#[test]
fn v1_index_links_are_absolute_and_slashes_are_forgiven() {
    let server = TestServer::spawn(&[]);
    let doc = server.get("//v1/").json();
    let links = doc["links"].as_array().unwrap();
    assert_eq!(links[0]["rel"], "self");
    assert!(links
        .iter()
        .any(|l| l["rel"] == "metric" && l["href"] == format!("{}/v1/metric", server.base_url())));
}

#[test]
fn errors_follow_the_accept_header() {
    let server = TestServer::spawn(&[]);
    let plain = server.get("/v1/no-such-thing");
    assert_eq!(plain.status, 404);
    assert!(plain.body.starts_with("404 Not Found"), "{}", plain.body);

    let json = server.request(
        "GET",
        "/v1/no-such-thing",
        &[("Accept", "application/json")],
        "",
    );
    assert_eq!(json.status, 404);
    let doc = json.json();
    assert_eq!(doc["code"], 404);
    assert_eq!(doc["title"], "Not Found");
    assert!(doc["description"].is_string());
}

#[test]
fn wrong_method_is_405_with_allow() {
    let server = TestServer::spawn(&[]);
    let reply = server.request("DELETE", "/healthcheck", &[], "");
    assert_eq!(reply.status, 405);
    assert!(reply.header("allow").unwrap().contains("GET"));
}

#[test]
fn capabilities_list_every_method_and_its_rate() {
    let server = TestServer::spawn(&[]);
    let doc = server.get("/v1/capabilities/").json();
    let methods: Vec<&str> = doc["aggregation_methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    for expected in [
        "mean", "sum", "last", "max", "min", "std", "median", "first", "count",
    ] {
        assert!(methods.contains(&expected), "{expected}");
        assert!(methods.contains(&format!("rate:{expected}").as_str()));
    }
    assert!(
        methods.contains(&"1pct") && methods.contains(&"99pct") && methods.contains(&"rate:95pct")
    );
    assert!(!methods.contains(&"100pct") && !methods.contains(&"0pct"));
    assert_eq!(methods.len(), (9 + 99) * 2);
}

#[test]
fn request_timeout_takes_a_positive_span() {
    // A valid span starts a server that answers normally.
    let server = TestServer::spawn(&["--request-timeout", "2min"]);
    assert_eq!(server.get("/healthcheck").status, 200);

    for bad in ["0", "-5s", "soon"] {
        // Were the value accepted, the unusable data directory would make
        // the server exit at once instead of serving.
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_gnocchid"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--data-dir", "/proc/gnocchid-no-such-dir"])
            .arg(format!("--request-timeout={bad}"))
            .output()
            .expect("gnocchid runs");
        assert!(!output.status.success(), "--request-timeout {bad} accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--request-timeout"), "{stderr}");
    }
}

#[test]
fn a_request_past_the_timeout_is_answered_503() {
    use std::io::{Read, Write};

    let server = TestServer::spawn(&["--request-timeout", "1s"]);
    // The body never arrives: only the timeout can end this request.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    stream
        .write_all(
            b"POST /v1/archive_policy HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
              Authorization: basic YWRtaW46\r\nAccept: application/json\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":",
        )
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    let doc: serde_json::Value = serde_json::from_str(body).expect("a JSON error");
    assert_eq!(doc["code"], 503);
    assert_eq!(
        doc["description"],
        "Request timed out after 1 seconds. Please try again."
    );
    // The server goes on serving.
    assert_eq!(server.get("/healthcheck").status, 200);
}
