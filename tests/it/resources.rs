//! Resources, resource types and resource search: the behaviour rest.j2
//! documents beyond what Gnocchi's public gabbits check.

use serde_json::{json, Value};

use crate::server::{Reply, TestServer};

/// `foobar`, a plain user.
const FOOBAR: &str = "basic Zm9vYmFyOg==";
/// `admin`.
const ADMIN: &str = "basic YWRtaW46";
/// `foobaz`, another plain user.
const FOOBAZ: &str = "basic Zm9vYmF6Og==";

fn send(server: &TestServer, method: &str, path: &str, auth: &str, body: &Value) -> Reply {
    let text = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    server.request(
        method,
        path,
        &[
            ("Authorization", auth),
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
        ],
        &text,
    )
}

fn create(server: &TestServer, type_name: &str, body: Value) -> Value {
    let reply = send(
        server,
        "POST",
        &format!("/v1/resource/{type_name}"),
        FOOBAR,
        &body,
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()
}

fn ids(reply: &Reply) -> Vec<String> {
    reply
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The path and query of the `Link: <…>; rel="next"` URL.
fn next_link(server: &TestServer, reply: &Reply) -> Option<String> {
    let link = reply.header("link")?;
    let url = link.strip_prefix('<')?.split('>').next()?;
    Some(url.strip_prefix(&server.base_url())?.to_owned())
}

#[test]
fn non_uuid_ids_map_to_uuid5_per_creator() {
    let server = TestServer::spawn(&[]);
    let mine = create(&server, "generic", json!({"id": "1.2.3.4"}));
    assert_eq!(mine["id"], "a9c729cc-d1b0-5e6b-b5ba-8b5a7f45f1fc");
    assert_eq!(mine["original_resource_id"], "1.2.3.4");
    assert_eq!(mine["creator"], "foobar");
    assert_eq!(mine["created_by_user_id"], "foobar");
    assert_eq!(mine["created_by_project_id"], "");

    // The original id reaches the same resource for its creator.
    let reply = send(
        &server,
        "GET",
        "/v1/resource/generic/1.2.3.4",
        FOOBAR,
        &Value::Null,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["id"], mine["id"]);

    // Another user giving the same id gets another resource.
    let reply = send(
        &server,
        "POST",
        "/v1/resource/generic",
        FOOBAZ,
        &json!({"id": "1.2.3.4"}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_ne!(reply.json()["id"], mine["id"]);
    assert_eq!(reply.json()["original_resource_id"], "1.2.3.4");

    // Searching by the original id goes through the same mapping.
    let reply = send(
        &server,
        "POST",
        "/v1/search/resource/generic",
        FOOBAR,
        &json!({"=": {"id": "1.2.3.4"}}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(ids(&reply), [mine["id"].as_str().unwrap()]);

    let reply = send(
        &server,
        "POST",
        "/v1/resource/generic",
        FOOBAR,
        &json!({"id": "a/b"}),
    );
    assert_eq!(reply.status, 400);
}

#[test]
fn pagination_with_markers_and_multi_key_sort() {
    let server = TestServer::spawn(&[]);
    let mut expected = Vec::new();
    for (i, user) in ["b", "a", "b", "a", "c"].iter().enumerate() {
        let id = format!("00000000-0000-0000-0000-00000000000{i}");
        create(
            &server,
            "generic",
            json!({"id": id, "user_id": user, "started_at": format!("2014-01-0{}T00:00:00", 5 - i)}),
        );
        expected.push((user.to_string(), id));
    }
    // user_id ascending, then id descending.
    expected.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();

    let mut seen = Vec::new();
    let mut path = Some("/v1/resource/generic?limit=2&sort=user_id:asc&sort=id:desc".to_owned());
    let mut pages = 0;
    while let Some(current) = path {
        let reply = send(&server, "GET", &current, FOOBAR, &Value::Null);
        assert_eq!(reply.status, 200, "{}", reply.body);
        seen.extend(ids(&reply));
        path = next_link(&server, &reply);
        if let Some(next) = &path {
            assert!(next.contains("sort=user_id%3Aasc&sort=id%3Adesc"), "{next}");
            assert!(next.contains("limit=2"), "{next}");
        }
        pages += 1;
        assert!(pages < 10);
    }
    assert_eq!(seen, expected);
    // 5 items in pages of 2: the third page is not full, so no link after it.
    assert_eq!(pages, 3);

    // The default order is revision_start then started_at, and the link
    // repeats it.
    let reply = send(
        &server,
        "GET",
        "/v1/resource/generic?limit=1",
        FOOBAR,
        &Value::Null,
    );
    assert_eq!(ids(&reply), ["00000000-0000-0000-0000-000000000000"]);
    let next = next_link(&server, &reply).unwrap();
    assert_eq!(
        next,
        "/v1/resource/generic?limit=1&marker=00000000-0000-0000-0000-000000000000\
         &sort=revision_start%3Aasc&sort=started_at%3Aasc"
    );

    // An empty `sort` asks for none: the order by id, and no sort in the link.
    let reply = send(
        &server,
        "GET",
        "/v1/resource/generic?sort=&limit=1",
        FOOBAR,
        &Value::Null,
    );
    assert_eq!(
        next_link(&server, &reply).unwrap(),
        "/v1/resource/generic?limit=1&marker=00000000-0000-0000-0000-000000000000"
    );

    // A search's link repeats the body's top-level keys as Pecan folds them
    // into the parameters: an object by its keys, a list item by item.
    let body = json!({"or": [{"=": {"user_id": "a"}}, {"=": {"user_id": "b"}}]});
    let reply = send(
        &server,
        "POST",
        "/v1/search/resource/generic?limit=1&sort=id:asc",
        FOOBAR,
        &body,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        next_link(&server, &reply).unwrap(),
        "/v1/search/resource/generic?limit=1&marker=00000000-0000-0000-0000-000000000000\
         &or=%7B%27%3D%27%3A+%7B%27user_id%27%3A+%27a%27%7D%7D\
         &or=%7B%27%3D%27%3A+%7B%27user_id%27%3A+%27b%27%7D%7D&sort=id%3Aasc"
    );

    // Descending on a nullable attribute puts nulls first.
    let reply = send(
        &server,
        "GET",
        "/v1/resource/generic?sort=started_at:desc&limit=1",
        FOOBAR,
        &Value::Null,
    );
    assert_eq!(ids(&reply), ["00000000-0000-0000-0000-000000000000"]);

    let reply = send(
        &server,
        "GET",
        "/v1/resource/generic?limit=0",
        FOOBAR,
        &Value::Null,
    );
    assert_eq!(reply.status, 400);
    // Gnocchi's words, which clients and tests match.
    let first = "00000000-0000-0000-0000-000000000000";
    let refused = [
        (
            "/v1/resource/generic?limit=abc".to_owned(),
            "expected int for dictionary value @ data['limit']",
        ),
        (
            "/v1/resource/generic?limit=2&limit=3".to_owned(),
            "expected int for dictionary value @ data['limit']",
        ),
        (
            format!("/v1/resource/generic?marker={first}&marker={first}"),
            "expected str for dictionary value @ data['marker']",
        ),
        (
            "/v1/resource/generic?sort=nope:asc".to_owned(),
            "Invalid pagination: `Sort key supplied is invalid: nope'",
        ),
        (
            "/v1/resource/generic?sort=id:sideways".to_owned(),
            "Invalid pagination: `Unknown sort direction, must be one of: asc-nullsfirst",
        ),
        (
            "/v1/metric?sort=nope:asc".to_owned(),
            "Invalid pagination: `Sort key supplied is invalid: nope'",
        ),
        // Several keys are several parameters; a comma is part of the key.
        (
            "/v1/resource/generic?sort=user_id,id".to_owned(),
            "Invalid pagination: `Sort key supplied is invalid: user_id,id'",
        ),
        (
            "/v1/resource/generic?marker=11111111-1111-1111-1111-111111111111".to_owned(),
            "Invalid pagination: `Invalid marker: `11111111-1111-1111-1111-111111111111''",
        ),
        (
            format!("/v1/resource/generic/{first}/history?marker={first}@7"),
            "Invalid pagination: `Invalid marker: ",
        ),
        // History rows need their revision, even the current one (`@-1`).
        (
            format!("/v1/resource/generic/{first}/history?marker={first}"),
            "Invalid pagination: `Invalid marker: `00000000-0000-0000-0000-000000000000''",
        ),
    ];
    for (path, words) in refused {
        let reply = send(&server, "GET", &path, FOOBAR, &Value::Null);
        assert_eq!(reply.status, 400, "{path}");
        assert!(reply.body.contains(words), "{path}: {}", reply.body);
    }

    // Metric listings name their default sort in the next page's link.
    for _ in 0..2 {
        let body = json!({"archive_policy_name": "low"});
        assert_eq!(
            send(&server, "POST", "/v1/metric", FOOBAR, &body).status,
            201
        );
    }
    let reply = send(&server, "GET", "/v1/metric?limit=1", FOOBAR, &Value::Null);
    let next = next_link(&server, &reply).expect("a full page has a next link");
    assert!(next.ends_with("&sort=id%3Aasc"), "{next}");
}

#[test]
fn history_records_only_real_changes() {
    let server = TestServer::spawn(&[]);
    let id = "75c44741-cc60-4033-804e-2d3098c7d2e9";
    create(
        &server,
        "generic",
        json!({"id": id, "user_id": "u1", "project_id": "p1"}),
    );
    let path = format!("/v1/resource/generic/{id}");
    for user in ["u2", "u2", "u3"] {
        let reply = send(&server, "PATCH", &path, FOOBAR, &json!({"user_id": user}));
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.json()["user_id"], user);
    }
    // An empty patch is an existence check.
    let reply = send(&server, "PATCH", &path, FOOBAR, &json!({}));
    assert_eq!(reply.status, 200);

    // Gnocchi's history takes no `attrs`: revisions come whole.
    let reply = send(
        &server,
        "GET",
        &format!("{path}/history?attrs=user_id"),
        FOOBAR,
        &Value::Null,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let revisions = reply.json();
    for field in ["project_id", "revision_start", "metrics"] {
        assert!(revisions[0].get(field).is_some(), "{field}: {revisions}");
    }
    let users: Vec<&str> = revisions
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["u1", "u2", "u3"]);
    // Each revision ends where the next starts; the current one never ends.
    assert_eq!(revisions[0]["revision_end"], revisions[1]["revision_start"]);
    assert_eq!(revisions[1]["revision_end"], revisions[2]["revision_start"]);
    assert_eq!(revisions[2]["revision_end"], Value::Null);

    // Paged history, newest first.
    let reply = send(
        &server,
        "GET",
        &format!("{path}/history?sort=revision_start:desc&limit=2"),
        FOOBAR,
        &Value::Null,
    );
    let first: Vec<String> = reply
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["user_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(first, ["u3", "u2"]);
    let next = next_link(&server, &reply).expect("a full page links to the next");
    let reply = send(&server, "GET", &next, FOOBAR, &Value::Null);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json().as_array().unwrap().len(), 1);
    assert_eq!(reply.json()[0]["user_id"], "u1");

    // Searching history finds old revisions too.
    let reply = send(
        &server,
        "POST",
        "/v1/search/resource/generic?history=true",
        FOOBAR,
        &json!({"=": {"user_id": "u1"}}),
    );
    assert_eq!(reply.json().as_array().unwrap().len(), 1);
    let reply = send(
        &server,
        "POST",
        "/v1/search/resource/generic",
        FOOBAR,
        &json!({"=": {"user_id": "u1"}}),
    );
    assert_eq!(reply.json().as_array().unwrap().len(), 0);

    let reply = send(
        &server,
        "POST",
        &format!("{path}/history"),
        FOOBAR,
        &json!({}),
    );
    assert_eq!(reply.status, 405);

    // `history` may also come as a parameter of the Accept header; the
    // current revision is `@-1` in markers, as in Gnocchi.
    let accept = [
        ("Authorization", FOOBAR),
        ("Accept", "application/json; history=true"),
    ];
    let reply = server.request("GET", "/v1/resource/generic", &accept, "");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json().as_array().unwrap().len(), 3);
    let reply = server.request(
        "GET",
        "/v1/resource/generic?history=true&sort=revision_start:desc&limit=1",
        &accept[..1],
        "",
    );
    assert_eq!(reply.json()[0]["user_id"], "u3");
    let next = next_link(&server, &reply).unwrap();
    assert!(next.contains(&format!("marker={id}%40-1")), "{next}");
    let reply = server.request("GET", &next, &accept[..1], "");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()[0]["user_id"], "u2");
    let bad = [
        ("Authorization", FOOBAR),
        ("Accept", "application/json; details=maybe"),
    ];
    let reply = server.request("GET", "/v1/resource/generic", &bad, "");
    assert_eq!(reply.status, 400);
    assert!(
        reply.body.contains(
            "Unable to parse `Accept header': Unrecognized value 'maybe', acceptable values are: '0'"
        ),
        "{}",
        reply.body
    );
    let reply = send(
        &server,
        "GET",
        "/v1/resource/generic?details=maybe",
        FOOBAR,
        &Value::Null,
    );
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json()["description"],
        "Unable to parse `details': Unrecognized value 'maybe', acceptable values are: \
         '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"
    );
}

#[test]
fn attrs_project_lists_and_searches() {
    let server = TestServer::spawn(&[]);
    create(&server, "generic", json!({"id": "one", "user_id": "u"}));
    let reply = send(
        &server,
        "GET",
        "/v1/resource/generic?attrs=id&attrs=user_id&attrs=nonexistent",
        FOOBAR,
        &Value::Null,
    );
    let listed = reply.json();
    let object = listed[0].as_object().unwrap();
    assert_eq!(object.len(), 2);
    assert_eq!(object["user_id"], "u");
    let reply = send(
        &server,
        "POST",
        "/v1/search/resource/generic?attrs=original_resource_id",
        FOOBAR,
        &json!({}),
    );
    assert_eq!(reply.json(), json!([{"original_resource_id": "one"}]));
}

#[test]
fn conditional_requests_follow_gnocchi() {
    let server = TestServer::spawn(&[]);
    let id = "f93450f2-d8a5-4d67-9985-02511241e7d1";
    let path = format!("/v1/resource/generic/{id}");
    create(&server, "generic", json!({"id": id}));
    let reply = send(&server, "GET", &path, FOOBAR, &Value::Null);
    let etag = reply.header("etag").expect("ETag").to_owned();
    let modified = reply
        .header("last-modified")
        .expect("Last-Modified")
        .to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert!(modified.ends_with(" GMT"), "{modified}");

    let get = |headers: &[(&str, &str)]| {
        let mut all = vec![("Authorization", FOOBAR), ("Accept", "application/json")];
        all.extend_from_slice(headers);
        server.request("GET", &path, &all, "")
    };
    assert_eq!(get(&[("If-None-Match", &etag)]).status, 304);
    assert_eq!(get(&[("If-None-Match", "\"other\"")]).status, 200);
    assert_eq!(get(&[("If-Match", &etag)]).status, 200);
    assert_eq!(get(&[("If-Match", "\"other\"")]).status, 412);
    assert_eq!(get(&[("If-Match", "*")]).status, 200);
    assert_eq!(get(&[("If-Modified-Since", &modified)]).status, 304);
    assert_eq!(
        get(&[("If-Modified-Since", "Thu, 01 Jan 2004 00:00:00 GMT")]).status,
        200
    );
    assert_eq!(
        get(&[("If-Unmodified-Since", "Thu, 01 Jan 2004 00:00:00 GMT")]).status,
        412
    );

    let patch = |headers: &[(&str, &str)], body: &str| {
        let mut all = vec![
            ("Authorization", FOOBAR),
            ("Accept", "application/json"),
            ("Content-Type", "application/json"),
        ];
        all.extend_from_slice(headers);
        server.request("PATCH", &path, &all, body)
    };
    assert_eq!(
        patch(&[("If-None-Match", &etag)], r#"{"user_id": "x"}"#).status,
        412
    );
    assert_eq!(
        patch(&[("If-Match", "\"other\"")], r#"{"user_id": "x"}"#).status,
        412
    );
    let reply = patch(&[("If-Match", &etag)], r#"{"user_id": "x"}"#);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let new_etag = reply.header("etag").unwrap().to_owned();
    assert_ne!(new_etag, etag);
    // The old tag no longer matches.
    assert_eq!(get(&[("If-Match", &etag)]).status, 412);
    let delete = server.request(
        "DELETE",
        &path,
        &[("Authorization", FOOBAR), ("If-Match", &etag)],
        "",
    );
    assert_eq!(delete.status, 412);
    let delete = server.request(
        "DELETE",
        &path,
        &[("Authorization", FOOBAR), ("If-Match", &new_etag)],
        "",
    );
    assert_eq!(delete.status, 204);
}

#[test]
fn basic_auth_lists_everything_but_guards_each_resource() {
    let server = TestServer::spawn(&[]);
    create(&server, "generic", json!({"id": "mine"}));
    let reply = send(
        &server,
        "POST",
        "/v1/resource/generic",
        FOOBAZ,
        &json!({"id": "theirs"}),
    );
    assert_eq!(reply.status, 201);
    let theirs = reply.json()["id"].as_str().unwrap().to_owned();

    let reply = send(
        &server,
        "GET",
        &format!("/v1/resource/generic/{theirs}"),
        FOOBAR,
        &Value::Null,
    );
    assert_eq!(reply.status, 403);
    let reply = send(
        &server,
        "PATCH",
        &format!("/v1/resource/generic/{theirs}"),
        FOOBAR,
        &json!({"user_id": "x"}),
    );
    assert_eq!(reply.status, 403);
    // Gnocchi's basic-auth helper puts no filter on listings and searches:
    // everyone sees every resource, reading one is what the policy guards.
    let reply = send(&server, "GET", "/v1/resource/generic", FOOBAR, &Value::Null);
    assert_eq!(reply.json().as_array().unwrap().len(), 2);
    let reply = send(
        &server,
        "POST",
        "/v1/search/resource/generic",
        FOOBAR,
        &json!({}),
    );
    assert_eq!(reply.json().as_array().unwrap().len(), 2);
    let reply = send(&server, "GET", "/v1/resource/generic", ADMIN, &Value::Null);
    assert_eq!(reply.json().as_array().unwrap().len(), 2);
    // So is a batch delete: it reaches everyone's resources, as in Gnocchi.
    let reply = send(
        &server,
        "DELETE",
        "/v1/resource/generic",
        FOOBAR,
        &json!({"like": {"original_resource_id": "%"}}),
    );
    assert_eq!(reply.json(), json!({"deleted": 2}));
    let reply = send(
        &server,
        "GET",
        &format!("/v1/resource/generic/{theirs}"),
        ADMIN,
        &Value::Null,
    );
    assert_eq!(reply.status, 404);
}

#[test]
fn resource_types_and_typed_resources() {
    let server = TestServer::spawn(&[]);
    let reply = send(
        &server,
        "POST",
        "/v1/resource_type",
        ADMIN,
        &json!({"name": "host", "attributes": {
            "host": {"type": "string", "required": true, "max_length": 32},
            "cpus": {"type": "number", "required": false, "min": 1},
        }}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(
        reply.header("location").unwrap(),
        format!("{}/v1/resource_type/host", server.base_url())
    );
    assert_eq!(
        reply.json(),
        json!({"name": "host", "state": "active", "attributes": {
            "host": {"type": "string", "required": true, "min_length": 0, "max_length": 32},
            "cpus": {"type": "number", "required": false, "min": 1, "max": null},
        }})
    );
    let index = send(&server, "GET", "/v1/resource", FOOBAR, &Value::Null).json();
    assert_eq!(
        index["host"],
        format!("{}/v1/resource/host", server.base_url())
    );

    create(
        &server,
        "host",
        json!({"id": "h1", "host": "compute1", "cpus": 4}),
    );
    create(&server, "host", json!({"id": "h2", "host": "compute2"}));
    let reply = send(
        &server,
        "POST",
        "/v1/resource/host",
        FOOBAR,
        &json!({"id": "h3"}),
    );
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["description"]["detail"], json!(["host"]));

    // A filter string with an empty JSON body.
    let reply = send(
        &server,
        "POST",
        "/v1/search/resource/host?filter=cpus%20%3E%3D%202",
        FOOBAR,
        &Value::Null,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let found = reply.json();
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["host"], "compute1");

    // Through generic, details brings the type's attributes.
    let reply = send(
        &server,
        "GET",
        "/v1/resource/generic?details=true",
        FOOBAR,
        &Value::Null,
    );
    assert!(reply
        .json()
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r.get("host").is_some()));
    let reply = send(&server, "GET", "/v1/resource/generic", FOOBAR, &Value::Null);
    assert!(reply
        .json()
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r.get("host").is_none()));

    let reply = send(
        &server,
        "POST",
        "/v1/search/resource/host",
        FOOBAR,
        &json!({"=": {"nope": 1}}),
    );
    assert_eq!(reply.status, 400);
    let reply = send(
        &server,
        "POST",
        "/v1/search/resource/host",
        FOOBAR,
        &json!({"=": {"cpus": "many"}}),
    );
    assert_eq!(reply.status, 400);

    // JSON patch needs its media type.
    let patch = r#"[{"op": "add", "path": "/attributes/rack", "value": {"type": "string", "required": false}}]"#;
    let reply = server.request(
        "PATCH",
        "/v1/resource_type/host",
        &[
            ("Authorization", ADMIN),
            ("Content-Type", "application/json"),
        ],
        patch,
    );
    assert_eq!(reply.status, 415);
    let reply = server.request(
        "PATCH",
        "/v1/resource_type/host",
        &[
            ("Authorization", ADMIN),
            ("Content-Type", "application/json-patch+json"),
        ],
        patch,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json()["attributes"]["rack"],
        json!({"type": "string", "required": false, "min_length": 0, "max_length": 256})
    );
    let reply = send(
        &server,
        "DELETE",
        "/v1/resource_type/host",
        ADMIN,
        &Value::Null,
    );
    assert_eq!(reply.status, 400);
    let reply = send(
        &server,
        "DELETE",
        "/v1/resource/host",
        FOOBAR,
        &json!({"like": {"host": "compute%"}}),
    );
    assert_eq!(reply.json(), json!({"deleted": 2}));
    let reply = send(
        &server,
        "DELETE",
        "/v1/resource_type/host",
        ADMIN,
        &Value::Null,
    );
    assert_eq!(reply.status, 204);
}

#[test]
fn named_metrics_of_a_resource() {
    let server = TestServer::spawn(&[]);
    let reply = send(
        &server,
        "POST",
        "/v1/archive_policy",
        ADMIN,
        &json!({"name": "tiny", "definition": [{"granularity": "1 minute", "points": 5}]}),
    );
    assert!(reply.status == 201 || reply.status == 409, "{}", reply.body);
    let resource = create(
        &server,
        "generic",
        json!({"id": "r1", "metrics": {"cpu": {"archive_policy_name": "tiny", "unit": "%"}}}),
    );
    let rid = resource["id"].as_str().unwrap();
    let cpu = resource["metrics"]["cpu"].as_str().unwrap().to_owned();

    let reply = send(
        &server,
        "POST",
        "/v1/resource/generic/r1/metric",
        FOOBAR,
        &json!({"mem": {"archive_policy_name": "tiny"}}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = reply.json();
    let mut names: Vec<&str> = answer
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["cpu", "mem"]);
    let listed = send(
        &server,
        "GET",
        "/v1/resource/generic/r1/metric",
        FOOBAR,
        &Value::Null,
    )
    .json();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["resource_id"] == rid));

    let reply = send(
        &server,
        "GET",
        "/v1/resource/generic/r1/metric/cpu",
        FOOBAR,
        &Value::Null,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["id"], cpu);
    assert_eq!(reply.json()["unit"], "%");
    assert_eq!(reply.json()["archive_policy"]["name"], "tiny");

    let reply = send(
        &server,
        "GET",
        "/v1/resource/generic/r1/metric/nope",
        FOOBAR,
        &Value::Null,
    );
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["description"], "Metric nope does not exist");

    let reply = send(
        &server,
        "DELETE",
        "/v1/resource/generic/r1/metric/cpu",
        FOOBAR,
        &Value::Null,
    );
    assert_eq!(reply.status, 204);
    let resource = send(
        &server,
        "GET",
        "/v1/resource/generic/r1",
        FOOBAR,
        &Value::Null,
    )
    .json();
    assert_eq!(resource["metrics"].as_object().unwrap().len(), 1);
    // Deleting the resource deletes its metrics.
    let mem = resource["metrics"]["mem"].as_str().unwrap().to_owned();
    assert_eq!(
        send(
            &server,
            "DELETE",
            "/v1/resource/generic/r1",
            FOOBAR,
            &Value::Null
        )
        .status,
        204
    );
    assert_eq!(
        send(
            &server,
            "GET",
            &format!("/v1/metric/{mem}"),
            FOOBAR,
            &Value::Null
        )
        .status,
        404
    );
}

/// Headers of a `noauth` caller.
fn noauth(user: &str, project: &str, roles: &str) -> Vec<(String, String)> {
    vec![
        ("X-User-Id".to_owned(), user.to_owned()),
        ("X-Project-Id".to_owned(), project.to_owned()),
        ("X-Roles".to_owned(), roles.to_owned()),
        ("Content-Type".to_owned(), "application/json".to_owned()),
        ("Accept".to_owned(), "application/json".to_owned()),
    ]
}

fn send_as(
    server: &TestServer,
    method: &str,
    path: &str,
    who: &[(String, String)],
    body: &Value,
) -> Reply {
    let headers: Vec<(&str, &str)> = who.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let text = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    server.request(method, path, &headers, &text)
}

fn original_ids(reply: &Reply) -> Vec<String> {
    let mut found: Vec<String> = reply
        .json()
        .as_array()
        .unwrap_or_else(|| panic!("a list: {}", reply.body))
        .iter()
        .map(|r| r["original_resource_id"].as_str().unwrap().to_owned())
        .collect();
    found.sort_unstable();
    found
}

#[test]
fn project_identities_list_their_projects_resources() {
    let server = TestServer::spawn(&["--auth-mode", "noauth"]);
    let u1 = noauth("u1", "p1", "member");
    let u2 = noauth("u2", "p2", "member");
    let reply = send_as(
        &server,
        "POST",
        "/v1/resource/generic",
        &u1,
        &json!({"id": "a"}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let reply = send_as(
        &server,
        "POST",
        "/v1/resource/generic",
        &u2,
        &json!({"id": "b"}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    // Created by u2 but owned by p1: p1's members see it.
    let reply = send_as(
        &server,
        "POST",
        "/v1/resource/generic",
        &u2,
        &json!({"id": "c", "project_id": "p1"}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);

    let listed = send_as(&server, "GET", "/v1/resource/generic", &u1, &Value::Null);
    assert_eq!(original_ids(&listed), ["a", "c"]);
    // Another member of p1 sees what p1 created and what p1 owns.
    let u3 = noauth("u3", "p1", "member");
    let searched = send_as(
        &server,
        "POST",
        "/v1/search/resource/generic",
        &u3,
        &json!({}),
    );
    assert_eq!(original_ids(&searched), ["a", "c"]);
    let listed = send_as(&server, "GET", "/v1/resource/generic", &u2, &Value::Null);
    assert_eq!(original_ids(&listed), ["b", "c"]);
    let admin = noauth("root", "p9", "admin");
    let listed = send_as(&server, "GET", "/v1/resource/generic", &admin, &Value::Null);
    assert_eq!(original_ids(&listed), ["a", "b", "c"]);
    // A batch delete reaches what p1 created: `c` is p1's but p2 created it.
    let reply = send_as(
        &server,
        "DELETE",
        "/v1/resource/generic",
        &u3,
        &json!({"like": {"original_resource_id": "%"}}),
    );
    assert_eq!(reply.json(), json!({"deleted": 1}));
    let listed = send_as(&server, "GET", "/v1/resource/generic", &admin, &Value::Null);
    assert_eq!(original_ids(&listed), ["b", "c"]);
}

#[test]
fn attaching_a_metric_requires_the_resource_creator_to_own_it() {
    let server = TestServer::spawn(&[]);
    let reply = send(
        &server,
        "POST",
        "/v1/archive_policy",
        ADMIN,
        &json!({"name": "tiny", "definition": [{"granularity": "1 minute", "points": 5}]}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let metric_of = |auth: &str| -> String {
        let reply = send(
            &server,
            "POST",
            "/v1/metric",
            auth,
            &json!({"archive_policy_name": "tiny"}),
        );
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.json()["id"].as_str().unwrap().to_owned()
    };
    let theirs = metric_of(FOOBAZ);
    let mine = metric_of(FOOBAR);
    let path = "/v1/resource/generic/r1";

    // Not at creation, not by PATCH, not through the metric sub-resource.
    let reply = send(
        &server,
        "POST",
        "/v1/resource/generic",
        FOOBAR,
        &json!({"id": "r1", "metrics": {"cpu": theirs}}),
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply
            .body
            .contains(&format!("Metric {theirs} does not exist")),
        "{}",
        reply.body
    );
    let uuid = create(&server, "generic", json!({"id": "r1"}))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = send(
        &server,
        "PATCH",
        path,
        FOOBAR,
        &json!({"metrics": {"cpu": theirs}}),
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply
            .body
            .contains(&format!("Metric {theirs} does not exist")),
        "{}",
        reply.body
    );
    let reply = send(
        &server,
        "POST",
        &format!("{path}/metric"),
        FOOBAR,
        &json!({"cpu": theirs}),
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    // An admin acting on foobar's resource cannot hand it foobaz's metric either.
    // (An original id names another resource for another user: use the UUID.)
    let by_uuid = format!("/v1/resource/generic/{uuid}");
    let reply = send(
        &server,
        "PATCH",
        &by_uuid,
        ADMIN,
        &json!({"metrics": {"cpu": theirs}}),
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    // Nothing was attached, and the metric still has no resource.
    let reply = send(&server, "GET", path, FOOBAR, &Value::Null);
    assert_eq!(reply.json()["metrics"], json!({}));
    let reply = send(
        &server,
        "GET",
        &format!("/v1/metric/{theirs}"),
        FOOBAZ,
        &Value::Null,
    );
    assert_eq!(reply.json()["resource_id"], Value::Null);

    let reply = send(
        &server,
        "PATCH",
        path,
        FOOBAR,
        &json!({"metrics": {"cpu": mine}}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["metrics"], json!({"cpu": mine}));
}

#[test]
fn every_revision_shows_the_resource_metrics() {
    let server = TestServer::spawn(&[]);
    let reply = send(
        &server,
        "POST",
        "/v1/archive_policy",
        ADMIN,
        &json!({"name": "tiny", "definition": [{"granularity": "1 minute", "points": 5}]}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let resource = create(
        &server,
        "generic",
        json!({"id": "r1", "user_id": "u1", "metrics": {"cpu": {"archive_policy_name": "tiny"}}}),
    );
    let path = "/v1/resource/generic/r1";
    for user in ["u2", "u3"] {
        let reply = send(&server, "PATCH", path, FOOBAR, &json!({"user_id": user}));
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let expected = resource["metrics"].clone();
    assert_eq!(expected.as_object().unwrap().len(), 1);

    // Gnocchi's history takes no `attrs`: revisions come whole.
    let reply = send(
        &server,
        "GET",
        &format!("{path}/history?attrs=user_id"),
        FOOBAR,
        &Value::Null,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let revisions = reply.json();
    for field in ["project_id", "revision_start", "metrics"] {
        assert!(revisions[0].get(field).is_some(), "{field}: {revisions}");
    }
    let revisions = revisions.as_array().unwrap();
    assert_eq!(revisions.len(), 3);
    for revision in revisions {
        assert_eq!(revision["metrics"], expected, "{revision}");
    }
    // The same through a history search, old revisions included.
    let reply = send(
        &server,
        "POST",
        "/v1/search/resource/generic?history=true",
        FOOBAR,
        &json!({"=": {"user_id": "u1"}}),
    );
    assert_eq!(reply.json()[0]["metrics"], expected, "{}", reply.body);
}

/// A noauth caller picks its own project id. Gnocchi's policy filter matches the
/// creator with `LIKE '%:<project>'`, so a project id of `%` would see every
/// project's resources and metrics; gnocchid matches project ids literally.
#[test]
fn wildcard_project_ids_see_only_their_own() {
    let server = TestServer::spawn(&["--auth-mode", "noauth"]);
    let as_caller = |method: &str, path: &str, project: &str, body: &Value| {
        let text = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        server.request(
            method,
            path,
            &[
                ("X-User-Id", "someone"),
                ("X-Project-Id", project),
                ("Content-Type", "application/json"),
                ("Accept", "application/json"),
            ],
            &text,
        )
    };
    let made = as_caller(
        "POST",
        "/v1/resource/generic",
        "p1",
        &json!({"id": "victim", "metrics": {"cpu": {"archive_policy_name": "low"}}}),
    );
    assert_eq!(made.status, 201, "{}", made.body);

    // The owner's project sees it; `%` and `_` see nothing.
    let listed = as_caller("GET", "/v1/resource/generic", "p1", &Value::Null);
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(ids(&listed).len(), 1);
    for project in ["%", "_1", "p_"] {
        let listed = as_caller("GET", "/v1/resource/generic", project, &Value::Null);
        assert_eq!(listed.status, 200, "{}", listed.body);
        assert!(ids(&listed).is_empty(), "{project}: {}", listed.body);
        let searched = as_caller("POST", "/v1/search/resource/generic", project, &json!({}));
        assert_eq!(searched.status, 200, "{}", searched.body);
        assert!(ids(&searched).is_empty(), "{project}: {}", searched.body);
        let metrics = as_caller("GET", "/v1/metric", project, &Value::Null);
        assert_eq!(metrics.status, 200, "{}", metrics.body);
        assert_eq!(metrics.json(), json!([]), "{project}");
    }
    let metrics = as_caller("GET", "/v1/metric", "p1", &Value::Null);
    assert_eq!(metrics.json().as_array().unwrap().len(), 1);
}

#[test]
fn measures_by_name_say_what_is_missing() {
    let server = TestServer::spawn(&[]);
    let measures = json!([{"timestamp": "2024-01-01T00:00:00", "value": 1.0}]);
    let path = "/v1/resource/generic/nosuch/metric/cpu/measures";
    let reply = send(&server, "POST", path, FOOBAR, &measures);
    assert_eq!(reply.status, 404);
    let uuid = reply.body.contains("Resource ") && reply.body.contains(" does not exist");
    assert!(uuid, "the missing resource is named: {}", reply.body);

    create(&server, "generic", json!({"id": "there"}));
    let path = "/v1/resource/generic/there/metric/cpu/measures";
    let reply = send(&server, "POST", path, FOOBAR, &measures);
    assert_eq!(reply.status, 404);
    assert!(
        reply.body.contains("Metric cpu does not exist"),
        "{}",
        reply.body
    );
}

#[test]
fn bad_resample_is_refused_in_gnocchis_words() {
    let server = TestServer::spawn(&[]);
    let reply = send(
        &server,
        "POST",
        "/v1/metric",
        FOOBAR,
        &json!({"archive_policy_name": "low"}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    for (resample, reason) in [
        ("abc", "Unable to parse timespan"),
        ("0", "Timespan must be positive"),
        ("-1", "Timespan must be positive"),
    ] {
        let path = format!("/v1/metric/{id}/measures?granularity=300&resample={resample}");
        let reply = send(&server, "GET", &path, FOOBAR, &Value::Null);
        assert_eq!(reply.status, 400, "{path}");
        assert_eq!(reply.json()["description"], json!(reason), "{path}");
    }
}

#[test]
fn resource_ids_up_to_289_characters() {
    let server = TestServer::spawn(&[]);
    let longest = "x".repeat(289);
    let reply = send(
        &server,
        "POST",
        "/v1/resource/generic",
        FOOBAR,
        &json!({"id": longest}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.json()["original_resource_id"], json!(longest));
    let reply = send(
        &server,
        "POST",
        "/v1/resource/generic",
        FOOBAR,
        &json!({"id": "x".repeat(290)}),
    );
    assert_eq!(reply.status, 400);
    let words = "transformable resource id >289 max allowed characters \
                 for dictionary value @ data['id']";
    assert!(reply.body.contains(words), "{}", reply.body);
    assert_eq!(reply.body.matches("for dictionary value").count(), 1);
}

#[test]
fn search_filters_are_refused_as_gnocchis_schema_refuses_them() {
    let server = TestServer::spawn(&[]);
    // Each answer is Gnocchi 4.7.1's, seen side by side.
    let cases = [
        (json!("x"), "expected a dictionary", json!([])),
        (json!([]), "expected a dictionary", json!([])),
        (json!(12), "invalid value or type", json!([])),
        (
            json!({"=": {"id": "r1"}, "foo": 1}),
            "length of value must be at most 1",
            json!([]),
        ),
        (
            json!({"foo": "bar"}),
            "not a valid value @ data['foo']",
            json!(["foo"]),
        ),
        (
            json!({"=": 5}),
            "invalid value or type for dictionary value @ data['=']",
            json!(["="]),
        ),
        (
            json!({"=": {}}),
            "length of value must be at least 1 for dictionary value @ data['=']",
            json!(["="]),
        ),
        (
            json!({"=": {"a": [1]}}),
            "expected str for dictionary value @ data['=']['a']",
            json!(["=", "a"]),
        ),
        (
            json!({"in": {"a": [[1]]}}),
            "expected str @ data['in']['a'][0]",
            json!(["in", "a", "0"]),
        ),
        (
            json!({"in": {"a": []}}),
            "length of value must be at least 1 for dictionary value @ data['in']['a']",
            json!(["in", "a"]),
        ),
        (
            json!({"and": []}),
            "length of value must be at least 1 for dictionary value @ data['and']",
            json!(["and"]),
        ),
        (
            json!({"and": [{"=": {"a": 1}}, "x"]}),
            "expected a dictionary @ data['and'][1]",
            json!(["and", "1"]),
        ),
        (
            json!({"or": [{"=": 5}]}),
            "invalid value or type for dictionary value @ data['or'][0]['=']",
            json!(["or", "0", "="]),
        ),
        (
            json!({"not": 5}),
            "invalid value or type for dictionary value @ data['not']",
            json!(["not"]),
        ),
        (
            json!({"like": {"id": "a%"}}),
            "value must not be one of ['id'] @ data['like']['id']",
            json!(["like", "id"]),
        ),
        (
            json!({"=": {"a": 1, "b": 2}}),
            "length of value must be at most 1 for dictionary value @ data['=']",
            json!(["="]),
        ),
    ];
    for (filter, reason, detail) in cases {
        for (method, path) in [
            ("POST", "/v1/search/resource/generic"),
            ("DELETE", "/v1/resource/generic"),
        ] {
            let reply = send(&server, method, path, ADMIN, &filter);
            assert_eq!(reply.status, 400, "{filter}: {}", reply.body);
            assert_eq!(
                reply.json()["description"],
                json!({"cause": "Invalid input", "reason": reason, "detail": detail}),
                "{method} {filter}"
            );
        }
    }
}

#[test]
fn an_empty_filter_inside_a_filter_cannot_be_parsed() {
    let server = TestServer::spawn(&[]);
    for filter in [json!({"not": {}}), json!({"and": [{}]})] {
        let reply = send(
            &server,
            "POST",
            "/v1/search/resource/generic",
            ADMIN,
            &filter,
        );
        assert_eq!(reply.status, 400, "{filter}: {}", reply.body);
        assert_eq!(reply.json()["description"], "Unable to parse this query");
    }
}

#[test]
fn string_filters_are_checked_by_the_same_schema() {
    let server = TestServer::spawn(&[]);
    let long = "x".repeat(300);
    let cases = [
        (
            "id like 'a%'".to_owned(),
            "value must not be one of ['id'] @ data['like']['id']".to_owned(),
            json!(["like", "id"]),
        ),
        (
            "id in []".to_owned(),
            "length of value must be at least 1 for dictionary value @ data['in']['id']".to_owned(),
            json!(["in", "id"]),
        ),
        (
            format!("id = '{long}'"),
            "transformable resource id >289 max allowed characters for dictionary value \
             @ data['=']['id']"
                .to_owned(),
            json!(["=", "id"]),
        ),
    ];
    for (filter, reason, detail) in cases {
        let path = format!("/v1/search/resource/generic?filter={}", urlencode(&filter));
        let reply = send(&server, "POST", &path, ADMIN, &Value::Null);
        assert_eq!(reply.status, 400, "{filter}: {}", reply.body);
        assert_eq!(
            reply.json()["description"],
            json!({"cause": "Invalid input", "reason": reason, "detail": detail}),
            "{filter}"
        );
    }
    // Text the grammar cannot read stays an "Invalid filter".
    let reply = send(
        &server,
        "POST",
        "/v1/search/resource/generic?filter=user_id%20%3D",
        ADMIN,
        &Value::Null,
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    let description = reply.json()["description"].clone();
    assert!(
        description
            .as_str()
            .is_some_and(|text| text.starts_with("Invalid filter: ")),
        "{description}"
    );
    // A value no column can hold is Gnocchi's `QueryValueError`, a list shown whole.
    let reply = send(
        &server,
        "POST",
        "/v1/search/resource/generic",
        ADMIN,
        &json!({"in": {"started_at": ["x"]}}),
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(
        reply.json()["description"],
        "Invalid value: `['x']' for field `started_at'"
    );
}

/// Every byte but letters and digits percent-encoded.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn attribute_definitions_no_type_accepts_are_refused_as_gnocchi_refuses_them() {
    let server = TestServer::spawn(&[]);
    // Gnocchi tries each type's schema, `bool` first, and reports its refusal.
    let at = |key: &str| json!(["attributes", "a", key]);
    let cases = [
        (
            json!({"type": "foo"}),
            "not a valid value for dictionary value @ data['attributes']['a']['type']",
            at("type"),
        ),
        (
            json!({"type": "string", "max_length": -1}),
            "not a valid value for dictionary value @ data['attributes']['a']['type']",
            at("type"),
        ),
        (
            json!({"type": "number", "min": "x"}),
            "not a valid value for dictionary value @ data['attributes']['a']['type']",
            at("type"),
        ),
        (
            json!({"type": "bool", "required": "x"}),
            "expected bool for dictionary value @ data['attributes']['a']['required']",
            at("required"),
        ),
        (
            json!({"type": "bool", "foo": 1}),
            "extra keys not allowed @ data['attributes']['a']['foo']",
            at("foo"),
        ),
        (
            json!({"required": false}),
            "required key not provided @ data['attributes']['a']['type']",
            at("type"),
        ),
    ];
    for (definition, reason, detail) in cases {
        let body = json!({"name": "t", "attributes": {"a": definition}});
        let reply = send(&server, "POST", "/v1/resource_type", ADMIN, &body);
        assert_eq!(reply.status, 400, "{definition}: {}", reply.body);
        assert_eq!(
            reply.json()["description"],
            json!({"cause": "Invalid input", "reason": reason, "detail": detail}),
            "{definition}"
        );
    }
    // A valid definition of another type is not refused.
    let body = json!({"name": "t", "attributes": {"a": {"type": "string", "max_length": 8}}});
    let reply = send(&server, "POST", "/v1/resource_type", ADMIN, &body);
    assert_eq!(reply.status, 201, "{}", reply.body);
}

#[test]
fn numbers_read_back_from_their_float_column() {
    let server = TestServer::spawn(&[]);
    let reply = send(
        &server,
        "POST",
        "/v1/resource_type",
        ADMIN,
        &json!({"name": "flavored", "attributes": {
            "vcpus": {"type": "number", "required": false},
            "ram": {"type": "number", "required": false},
        }}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    // Gnocchi answers a create or a patch with the numbers it was given…
    let created = create(
        &server,
        "flavored",
        json!({"id": "f1", "vcpus": 4, "ram": 2.5}),
    );
    assert!(created["vcpus"].is_u64(), "{created}");
    assert_eq!(created["ram"], json!(2.5));
    // …and reads them back from a float column: 4.0 from then on.
    let path = "/v1/resource/flavored/f1";
    let shown = send(&server, "GET", path, FOOBAR, &Value::Null).json();
    assert!(shown["vcpus"].is_f64(), "{shown}");
    assert_eq!(shown["vcpus"].as_f64(), Some(4.0));
    let patched = send(&server, "PATCH", path, FOOBAR, &json!({"ram": 8})).json();
    assert!(patched["ram"].is_u64(), "{patched}");
    assert!(patched["vcpus"].is_f64(), "{patched}");
    let history = send(
        &server,
        "GET",
        &format!("{path}/history"),
        FOOBAR,
        &Value::Null,
    )
    .json();
    assert!(history[0]["vcpus"].is_f64(), "{history}");
    assert!(history[1]["ram"].is_f64(), "{history}");
}

/// A metric of `policy` holding `points`, processed.
fn metric_with(server: &TestServer, policy: Value, points: Value) -> String {
    let reply = send(server, "POST", "/v1/archive_policy", ADMIN, &policy);
    assert_eq!(reply.status, 201, "{}", reply.body);
    let name = &policy["name"];
    let reply = send(
        server,
        "POST",
        "/v1/metric",
        FOOBAR,
        &json!({"archive_policy_name": name}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/metric/{id}/measures");
    let reply = send(server, "POST", &path, FOOBAR, &points);
    assert_eq!(reply.status, 202, "{}", reply.body);
    let method = &policy["aggregation_methods"][0].as_str().unwrap_or("mean");
    let refresh = format!("{path}?refresh=true&aggregation={method}");
    let reply = send(server, "GET", &refresh, FOOBAR, &Value::Null);
    assert_eq!(reply.status, 200, "{}", reply.body);
    id
}

#[test]
fn resampling_counts_whole_buckets_around_start_and_stop() {
    let server = TestServer::spawn(&[]);
    // One measure every 10 s for 30 minutes, the i-th valued i² mod 17.
    let points: Vec<Value> = (0..180)
        .map(|i| {
            json!({"timestamp": format!("2015-01-01T00:{:02}:{:02}", i / 6, i % 6 * 10),
                   "value": i * i % 17})
        })
        .collect();
    let policy = json!({"name": "tens", "aggregation_methods": ["count", "rate:sum"],
                        "definition": [{"granularity": "10s", "points": 1000}]});
    let id = metric_with(&server, policy, Value::Array(points));
    let get = |query: &str| {
        let path = format!("/v1/metric/{id}/measures?granularity=10&resample=600&{query}");
        let reply = send(&server, "GET", &path, FOOBAR, &Value::Null);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        reply.json()
    };
    // As Gnocchi resamples the splits it loaded whole, the buckets holding
    // `start` and `stop` count all their measures (Gnocchi 4.7.1's answers).
    assert_eq!(
        get("aggregation=count&start=2015-01-01T00:15:30&stop=2015-01-01T00:21:00"),
        json!([
            ["2015-01-01T00:10:00+00:00", 600.0, 60.0],
            ["2015-01-01T00:20:00+00:00", 600.0, 60.0]
        ])
    );
    // The resampled rates (of the stored 10 s rates r) reach back to the
    // point before `start`: they add up to r(119) - r(59) = -1 - (-2), not
    // to r(119) - r(60) = -1 - 0.
    assert_eq!(
        get("aggregation=rate:sum&start=2015-01-01T00:10:00&stop=2015-01-01T00:20:00"),
        json!([["2015-01-01T00:10:00+00:00", 600.0, 1.0]])
    );
}

#[test]
fn metric_list_filters_take_one_value_each() {
    let server = TestServer::spawn(&[]);
    let reply = send(
        &server,
        "GET",
        "/v1/metric?unit=s&name=a&name=b",
        FOOBAR,
        &Value::Null,
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(
        reply.json()["description"],
        json!("Invalid input: expected str for dictionary value @ data['name']")
    );
    // Repeated pagination and unknown parameters are not filters.
    let path = "/v1/metric?sort=name:asc&sort=id:asc&foo=1&foo=2";
    assert_eq!(send(&server, "GET", path, FOOBAR, &Value::Null).status, 200);
}
