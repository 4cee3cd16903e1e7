//! `gnocchid upgrade`: prepares the index once, outside `serve`.

use std::process::Command;

use crate::server::{fresh_data_dir, TestServer};

fn upgrade(data_dir: &std::path::Path, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_gnocchid"))
        .arg("upgrade")
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .output()
        .expect("gnocchid upgrade runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn upgrade_prepares_the_index_that_serve_then_uses() {
    let data_dir = fresh_data_dir();
    let first = upgrade(
        &data_dir,
        &["--no-default-archive-policies", "--sacks", "16"],
    );
    assert!(first.contains("schema version 0 -> "), "{first}");
    assert!(
        first.contains("no default archive policies created"),
        "{first}"
    );
    assert!(first.contains("16 sacks"), "{first}");
    // Idempotent, and the stored sack count wins over a different flag.
    let second = upgrade(&data_dir, &["--sacks", "64"]);
    assert!(second.contains("already at schema version"), "{second}");
    assert!(second.contains("16 sacks"), "{second}");

    // `serve` on the same index upgrades again (nothing to do): still no policies.
    let server = TestServer::start_in(data_dir.clone(), &[]);
    let reply = server.request(
        "GET",
        "/v1/archive_policy",
        &[
            ("Authorization", "basic YWRtaW46"),
            ("Accept", "application/json"),
        ],
        "",
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), serde_json::json!([]));
    drop(server);
    std::fs::remove_dir_all(&data_dir).ok();
}
