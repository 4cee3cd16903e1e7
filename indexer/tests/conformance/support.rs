//! Per-test databases.

use std::future::Future;

use indexer::{ArchivePolicy, ArchivePolicyItem, Indexer, UpgradeOptions};
use sqlx::Connection;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
    Mysql,
}

const PG_VAR: &str = "GNOCCHID_TEST_POSTGRESQL_URL";
const MY_VAR: &str = "GNOCCHID_TEST_MYSQL_URL";

fn admin_url(b: Backend) -> (String, &'static str) {
    match b {
        Backend::Postgres => (
            std::env::var(PG_VAR)
                .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".into()),
            PG_VAR,
        ),
        Backend::Mysql => (
            std::env::var(MY_VAR).unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/mysql".into()),
            MY_VAR,
        ),
        Backend::Sqlite => (String::new(), ""),
    }
}

/// `url` with its database (path) replaced by `db`.
fn with_db(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map(|(b, q)| (b, format!("?{q}")))
        .unwrap_or((url, String::new()));
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[after_scheme..]
        .find('/')
        .map(|i| i + after_scheme)
        .unwrap_or(base.len());
    format!("{}/{db}{query}", &base[..host_end])
}

pub(crate) fn gnocchi_policy(name: &str, granularity_s: i64, points: u64) -> ArchivePolicy {
    ArchivePolicy {
        name: name.into(),
        back_window: 0,
        definition: vec![ArchivePolicyItem {
            granularity_ns: granularity_s * 1_000_000_000,
            points: Some(points),
            timespan_ns: Some(granularity_s * 1_000_000_000 * points as i64),
        }],
        aggregation_methods: vec!["mean".into(), "max".into()],
    }
}

pub(crate) fn default_options() -> UpgradeOptions {
    UpgradeOptions {
        default_policies: vec![
            gnocchi_policy("low", 300, 288),
            gnocchi_policy("medium", 60, 1440),
        ],
        create_default_rule: false,
        sacks: None,
    }
}

/// Runs `case` against a fresh, upgraded (no defaults) index on `backend`, then drops
/// the database, also when the case panics.
pub(crate) async fn run<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Indexer, String) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    sqlx::any::install_default_drivers();
    let name = format!("gnocchid_test_{}", uuid::Uuid::new_v4().simple());
    let url = match backend {
        Backend::Sqlite => {
            let path = std::env::temp_dir().join(format!("{name}.sqlite"));
            format!("sqlite://{}", path.display())
        }
        Backend::Postgres | Backend::Mysql => {
            let (admin, var) = admin_url(backend);
            let mut conn = sqlx::AnyConnection::connect(&admin).await.unwrap_or_else(|e| {
                panic!("cannot reach the test database at {admin} ({e}); set {var} to a reachable server")
            });
            sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
                .await
                .expect("create database");
            conn.close().await.ok();
            with_db(&admin, &name)
        }
    };
    let ix = Indexer::connect(&url).await.expect("connect");
    let handle = tokio::spawn(case(ix.clone(), url.clone()));
    let outcome = handle.await;
    ix.close().await;
    match backend {
        Backend::Sqlite => {
            let path = url.trim_start_matches("sqlite://");
            for suffix in ["", "-wal", "-shm"] {
                std::fs::remove_file(format!("{path}{suffix}")).ok();
            }
        }
        Backend::Postgres | Backend::Mysql => {
            let (admin, _) = admin_url(backend);
            let mut conn = sqlx::AnyConnection::connect(&admin)
                .await
                .expect("reconnect");
            let force = if matches!(backend, Backend::Postgres) {
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
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
