//! [`SchemaLock`]: one process at a time changes the schema.
//!
//! Several processes may upgrade one index at the same moment: a deployment tool running
//! `gnocchid upgrade` on every host, or `serve` instances restarted together. An upgrade
//! reads, then writes (is the schema at version n? is this a fresh index that needs the
//! default policies?), so two of them interleaved both decide to act and the second fails
//! on a duplicate key; on PostgreSQL even two concurrent `CREATE TABLE IF NOT EXISTS`
//! collide on the system catalogs. Under the lock the second upgrade waits, then finds
//! nothing left to do.
//!
//! Each database offers its own primitive, and they differ in what else they give:
//!
//! - PostgreSQL: a session advisory lock (`pg_advisory_lock`, scoped to the current
//!   database), and the upgrade runs in one transaction on the locked connection. DDL is
//!   transactional there, so an upgrade that fails half-way leaves the schema as it was.
//! - MySQL/MariaDB: a named lock (`GET_LOCK`), named after the database because named
//!   locks are server-wide. DDL commits implicitly, so a failed upgrade keeps the
//!   migrations it completed; every migration is idempotent and the next upgrade finishes
//!   the job.
//! - SQLite: `BEGIN IMMEDIATE`, which takes the database's write lock at once (a plain
//!   `BEGIN` takes it at the first write, after the reads that decided what to write), and
//!   the whole upgrade is that one transaction.
//!
//! The lock lives on a connection detached from the pool and closed when the guard goes.
//! Session locks die with their session, so a process killed mid-upgrade frees the lock,
//! and a guard dropped without [`SchemaLock::release`] (an error path, a cancelled task)
//! cannot hand a locked connection back to the pool.

use std::time::Duration;

use sqlx::{AnyPool, Connection, Executor, Row};

use crate::dialect::{get_i64, Dialect, Sql};
use crate::error::{IndexerError, Result};
use crate::Conn;

/// The PostgreSQL advisory lock key of schema changes: the first 8 bytes of
/// `"gnocchid"` read as a big-endian integer, unlikely to collide with another
/// application's key in the same database.
const PG_LOCK_KEY: i64 = i64::from_be_bytes(*b"gnocchid");

/// How long one `GET_LOCK` call waits before asking again. MariaDB has no "wait
/// forever" (a negative timeout returns NULL there), so the wait is a loop; each round
/// logs, so a stuck upgrade elsewhere is visible.
const MYSQL_WAIT_SECONDS: i64 = 30;

/// How long to sleep after SQLite reports the database busy beyond its own busy
/// timeout (another process holds the write lock: a long upgrade or a bulk load).
const SQLITE_RETRY: Duration = Duration::from_millis(100);

/// An exclusive hold on schema changes for this index, across processes.
///
/// Work done under the lock goes through [`SchemaLock::conn`]; on PostgreSQL and SQLite it
/// is one transaction that [`SchemaLock::release`] commits or rolls back.
#[derive(Debug)]
pub(crate) struct SchemaLock {
    conn: Conn,
    dialect: Dialect,
}

impl SchemaLock {
    /// Waits until no other process holds the lock, then takes it. Waits as long as it
    /// takes: the holder is an upgrade that will finish or die (and its session with it).
    pub(crate) async fn acquire(pool: &AnyPool, dialect: Dialect) -> Result<SchemaLock> {
        // Detached: the pool opens a replacement (SQLite's pool has one connection, and
        // the upgrade runs on this one), and the lock never goes back into the pool.
        let mut conn = pool.acquire().await?.detach();
        match dialect {
            Dialect::Postgres => {
                // Try first, so that a wait is logged, then block in the server.
                let tried = Sql::new("SELECT pg_try_advisory_lock(?) AS got").arg(PG_LOCK_KEY);
                let got: bool = sql_row(&mut conn, dialect, &tried).await?.try_get("got")?;
                if !got {
                    waiting("another process is upgrading the index (advisory lock)");
                    // `pg_advisory_lock` returns `void`, which the Any driver cannot decode.
                    let sql =
                        Sql::new("SELECT COUNT(*) AS n FROM (SELECT pg_advisory_lock(?)) AS l")
                            .arg(PG_LOCK_KEY);
                    run(&mut conn, dialect, &sql).await?;
                }
                if let Err(e) = conn.execute("BEGIN").await {
                    conn.close().await.ok();
                    return Err(e.into());
                }
            }
            Dialect::Mysql => loop {
                let sql = Sql::new(format!(
                    "SELECT CAST(GET_LOCK({}, ?) AS SIGNED) AS got",
                    mysql_lock_name()
                ))
                .arg(MYSQL_WAIT_SECONDS);
                let row = sql_row(&mut conn, dialect, &sql).await?;
                match get_i64(&row, "got")? {
                    Some(1) => break,
                    Some(_) => waiting("another process is upgrading the index (GET_LOCK)"),
                    // NULL: the server refused (an invalid name, or killed while waiting).
                    None => return Err(IndexerError::SchemaLock("GET_LOCK returned NULL".into())),
                }
            },
            Dialect::Sqlite => loop {
                match conn.execute("BEGIN IMMEDIATE").await {
                    Ok(_) => break,
                    Err(e) if sqlite_busy(&e) => {
                        waiting("another process holds the SQLite write lock");
                        tokio::time::sleep(SQLITE_RETRY).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            },
        }
        Ok(SchemaLock { conn, dialect })
    }

    /// The locked connection: everything done under the lock runs on it.
    pub(crate) fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }

    /// Ends the work done under the lock (commits it if `commit`, else rolls back what the
    /// dialect can), frees the lock and closes the connection.
    pub(crate) async fn release(mut self, commit: bool) -> Result<()> {
        let end = if commit { "COMMIT" } else { "ROLLBACK" };
        let outcome = match self.dialect {
            Dialect::Postgres => match self.conn.execute(end).await {
                Ok(_) => run(
                    &mut self.conn,
                    self.dialect,
                    &Sql::new("SELECT pg_advisory_unlock(?) AS ok").arg(PG_LOCK_KEY),
                )
                .await
                .map(|_| ()),
                Err(e) => Err(e.into()),
            },
            Dialect::Mysql => run(
                &mut self.conn,
                self.dialect,
                &Sql::new(format!(
                    "SELECT CAST(RELEASE_LOCK({}) AS SIGNED) AS ok",
                    mysql_lock_name()
                )),
            )
            .await
            .map(|_| ()),
            Dialect::Sqlite => self.conn.execute(end).await.map(|_| ()).map_err(Into::into),
        };
        // Closing ends the session, which also frees the lock if the statements above
        // failed.
        self.conn.close().await.ok();
        outcome
    }
}

/// The MySQL lock name: per database, within the 64 characters `GET_LOCK` accepts.
fn mysql_lock_name() -> &'static str {
    "LEFT(CONCAT('gnocchid.schema:', DATABASE()), 64)"
}

async fn run(conn: &mut Conn, dialect: Dialect, sql: &Sql) -> Result<()> {
    let text = dialect.placeholders(&sql.text);
    Sql::query(&text, &sql.args).fetch_all(&mut *conn).await?;
    Ok(())
}

async fn sql_row(conn: &mut Conn, dialect: Dialect, sql: &Sql) -> Result<sqlx::any::AnyRow> {
    let text = dialect.placeholders(&sql.text);
    Ok(Sql::query(&text, &sql.args).fetch_one(&mut *conn).await?)
}

/// `SQLITE_BUSY` (5), also in its extended forms (`SQLITE_BUSY_SNAPSHOT`, …), which
/// carry 5 in their low byte.
fn sqlite_busy(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|c| c.parse::<i64>().ok())
            .is_some_and(|c| c & 0xff == 5),
        _ => false,
    }
}

fn waiting(why: &str) {
    tracing::info!("waiting for the schema lock: {why}");
}
