//! gnocchid's index: archive policies and their rules, metrics, resource types, resources
//! and their history, and the search compiler — over SQLite, PostgreSQL or MySQL/MariaDB.
//!
//! # Brief overview
//!
//! [`Indexer`] is the one handle, cheap to clone (it wraps a connection pool). Open it with
//! [`Indexer::connect`] (`sqlite://path`, `postgresql://…`, `mysql://…`), then call
//! [`Indexer::upgrade`] once: it applies the schema migrations not yet applied and, on a
//! fresh index, creates the default archive policies and rule, all under a lock shared by
//! every process using the index (`lock.rs`: PostgreSQL advisory lock, MySQL `GET_LOCK`,
//! SQLite `BEGIN IMMEDIATE`), so concurrent upgrades serialise instead of colliding. The
//! first upgrade also stores the sack count, which every process reads back with
//! [`Indexer::sacks`]. Every public method that
//! writes runs in one transaction (reads run on one pooled connection, without the
//! `BEGIN`/`COMMIT` round trips) and returns plain data ([`ArchivePolicy`], [`Metric`],
//! [`Resource`], [`ResourceType`], …) or an [`IndexerError`]; callers never see sqlx
//! types. [`Indexer::optimize`] refreshes planner statistics: run it after bulk loads and
//! now and then (SQLite has none until it runs).
//!
//! Per-dialect tuning, in `connect`: SQLite uses one connection (it serialises writers;
//! one connection never hits `SQLITE_BUSY` on lock upgrades), WAL, `synchronous=NORMAL`,
//! a 64 MiB page cache and case-sensitive `LIKE` (as on the other two); PostgreSQL plans
//! every execution with its values (`plan_cache_mode = force_custom_plan`), since a
//! search's best plan depends on them.
//!
//! # One code path, three dialects
//!
//! All queries go through sqlx's `Any` driver, written once with `?` placeholders and every
//! value bound (never interpolated). The remaining differences — `$n` placeholders on
//! PostgreSQL, identifier quoting, DDL column types, auto-increment keys, MySQL's table
//! collation — are private to `dialect.rs`. The `Any` driver only carries portable types,
//! so the schema sticks to them: UUIDs are 36-character text, timestamps are `BIGINT`
//! microseconds since the Unix epoch (UTC; index-friendly and ordered the same on all three
//! databases), booleans are `SMALLINT`.
//!
//! # Schema and migrations
//!
//! Migrations are code (`schema.rs`), versioned in a `schema_version` table and idempotent
//! (`CREATE TABLE IF NOT EXISTS`): the same table renderer must build the tables of each
//! resource type at run time, so one typed description of columns serves both. Like Gnocchi,
//! each resource type owns two tables with real typed columns — `rt_<hex>` for current
//! resources and `rt_<hex>_h` for their old revisions — joined to `resource` /
//! `resource_history`, so a search on a type's attribute is an indexed column comparison.
//!
//! # Modules
//!
//! `archive_policies.rs` (policies, rules), `metrics.rs`, `resource_types.rs`,
//! `resources.rs`, and `search/` (filter language → AST in `parse.rs` → SQL in
//! `compile.rs`).

mod archive_policies;
mod dialect;
mod error;
mod lock;
mod metrics;
mod resource_types;
mod resources;
mod schema;
pub mod search;
mod time;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor};

pub use archive_policies::{fnmatch, ArchivePolicy, ArchivePolicyItem, ArchivePolicyRule};
pub use error::{IndexerError, Result};
pub use metrics::{Metric, MetricFilter, MetricStatus, NewMetric};
pub use resource_types::{
    AttributeSchema, AttributeType, ResourceType, ResourceTypeState, ResourceTypeUpdate,
};
pub use resources::{
    resource_uuid, NewResource, Resource, ResourceMetric, ResourceUpdate, SearchOptions,
    GENERIC_COLUMNS,
};
pub use search::{Filter, FilterValue, Op, Pagination, SortKey};

use dialect::{Dialect, Sql};

/// A write transaction: committing it advances [`Indexer::generation`].
pub(crate) struct Tx {
    inner: sqlx::Transaction<'static, sqlx::Any>,
    generation: Arc<AtomicU64>,
}

impl Tx {
    /// Commits, then advances the generation (after, so that a reader that saw the
    /// old generation cannot have read the old rows after it changes).
    pub(crate) async fn commit(self) -> std::result::Result<(), sqlx::Error> {
        let result = self.inner.commit().await;
        self.generation.fetch_add(1, Ordering::AcqRel);
        result
    }
}

impl std::ops::Deref for Tx {
    type Target = sqlx::Transaction<'static, sqlx::Any>;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

/// What the query helpers run on: a transaction's connection (`&mut tx` coerces) or a
/// plain pooled connection for read-only calls (no `BEGIN`/`COMMIT` round trips).
pub(crate) type Conn = sqlx::AnyConnection;

/// Options for [`Indexer::upgrade`].
#[derive(Debug, Clone, Default)]
pub struct UpgradeOptions {
    /// Archive policies created on a fresh index (Gnocchi's defaults, or nothing).
    pub default_policies: Vec<ArchivePolicy>,
    /// On a fresh index, create the rule `default` matching `*` to the policy `low`
    /// (when such a policy exists).
    pub create_default_rule: bool,
    /// The number of sacks to store if the index has none yet. A stored count is never
    /// changed: measures already waiting in incoming sit in sacks derived from it.
    pub sacks: Option<u32>,
}

/// What [`Indexer::upgrade`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgraded {
    /// The schema version before the upgrade (0: a fresh index).
    pub from_version: i64,
    /// The schema version after it.
    pub to_version: i64,
    /// Whether this upgrade created default archive policies or the default rule (false
    /// when another process did it first).
    pub defaults_created: bool,
    /// The sack count stored in the index, if any.
    pub sacks: Option<u32>,
}

/// The schema version this build migrates to.
pub const SCHEMA_VERSION: i64 = schema::MIGRATIONS.len() as i64;

/// `index_setting` key of the sack count.
const SACKS_SETTING: &str = "sacks";

fn parse_sacks(stored: Option<String>) -> Result<Option<u32>> {
    stored
        .map(|v| match v.parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(IndexerError::InvalidSetting {
                name: SACKS_SETTING,
                value: v,
            }),
        })
        .transpose()
}

/// The index. Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Indexer {
    pool: AnyPool,
    dialect: Dialect,
    /// Committed write transactions through this handle and its clones.
    generation: Arc<AtomicU64>,
}

impl Indexer {
    /// Connects to `url`: `sqlite://path` (the file is created if missing),
    /// `postgresql://…` / `postgres://…`, or `mysql://…`.
    pub async fn connect(url: &str) -> Result<Indexer> {
        sqlx::any::install_default_drivers();
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
        let dialect = match scheme {
            "sqlite" => Dialect::Sqlite,
            "postgresql" | "postgres" => Dialect::Postgres,
            "mysql" | "mariadb" => Dialect::Mysql,
            _ => return Err(IndexerError::UnsupportedUrl(scheme.to_owned())),
        };
        let pool = match dialect {
            Dialect::Sqlite => {
                let mut url = url.to_owned();
                if !url.contains("mode=") {
                    url.push_str(if url.contains('?') {
                        "&mode=rwc"
                    } else {
                        "?mode=rwc"
                    });
                }
                // One connection: SQLite serialises writers anyway, and a single
                // connection avoids SQLITE_BUSY on lock upgrades inside transactions.
                AnyPoolOptions::new()
                    .max_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            // 64 MiB of page cache (default 2 MiB): random UUID keys
                            // touch pages all over the indexes.
                            conn.execute("PRAGMA cache_size = -65536").await?;
                            conn.execute("PRAGMA case_sensitive_like = ON").await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?
            }
            Dialect::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // Searches are prepared statements whose best plan depends on
                            // the values (an attribute equality vs a wide time range): plan
                            // each execution with its values rather than a generic plan.
                            conn.execute("SET plan_cache_mode = force_custom_plan")
                                .await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
            Dialect::Mysql => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect(url)
                    .await?
            }
        };
        Ok(Indexer {
            pool,
            dialect,
            generation: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Applies the migrations not yet applied; on a fresh index also creates the built-in
    /// `generic` resource type and `options`' defaults; stores `options.sacks` if the index
    /// has no sack count yet. Idempotent.
    ///
    /// Safe to run from several processes at once: the whole upgrade holds the index's
    /// schema lock (see `lock.rs`), so one process migrates and creates the defaults, and
    /// the others then find the work done. On PostgreSQL and SQLite the upgrade is one
    /// transaction: it applies entirely or not at all.
    pub async fn upgrade(&self, options: &UpgradeOptions) -> Result<Upgraded> {
        let mut lock = lock::SchemaLock::acquire(&self.pool, self.dialect).await?;
        let outcome = self.upgrade_locked(lock.conn(), options).await;
        let released = lock.release(outcome.is_ok()).await;
        let upgraded = outcome?;
        released?;
        Ok(upgraded)
    }

    /// The body of [`Indexer::upgrade`], on the locked connection and without
    /// transactions of its own (the lock decides how the work is committed).
    async fn upgrade_locked(&self, conn: &mut Conn, options: &UpgradeOptions) -> Result<Upgraded> {
        let d = self.dialect;
        self.ddl(
            conn,
            &format!(
                "CREATE TABLE IF NOT EXISTS schema_version (version {} NOT NULL PRIMARY KEY){}",
                d.col_type(dialect::ColType::BigInt),
                if d == Dialect::Mysql {
                    " ENGINE=InnoDB"
                } else {
                    ""
                }
            ),
        )
        .await?;
        let current = self
            .fetch_optional(
                conn,
                &Sql::new("SELECT MAX(version) AS v FROM schema_version"),
            )
            .await?
            .and_then(|r| dialect::get_i64(&r, "v").ok().flatten())
            .unwrap_or(0);
        for (i, migration) in schema::MIGRATIONS.iter().enumerate() {
            let version = i as i64 + 1;
            if version <= current {
                continue;
            }
            for step in migration() {
                for stmt in step.statements(d) {
                    self.ddl(conn, &stmt).await?;
                }
            }
            self.execute(
                conn,
                &Sql::new("INSERT INTO schema_version (version) VALUES (?)").arg(version),
            )
            .await?;
        }
        let fresh = current == 0;
        let mut defaults_created = false;
        if fresh {
            if !self.exists(conn, "resource_type", "generic").await? {
                self.execute(
                    conn,
                    &Sql::new(
                        "INSERT INTO resource_type (name, tablename, attributes, state, updated_at) VALUES (?, ?, ?, ?, ?)",
                    )
                    .arg("generic")
                    .arg("generic")
                    .arg("{}")
                    .arg("active")
                    .arg(time::now_us()),
                )
                .await?;
            }
            // Checked before inserting rather than by catching duplicate-key errors: an
            // error inside PostgreSQL's transaction would abort the whole upgrade.
            for p in &options.default_policies {
                if !self.exists(conn, "archive_policy", &p.name).await? {
                    self.insert_archive_policy(conn, p).await?;
                    defaults_created = true;
                }
            }
            if options.create_default_rule
                && self.exists(conn, "archive_policy", "low").await?
                && !self.exists(conn, "archive_policy_rule", "default").await?
            {
                self.insert_archive_policy_rule(
                    conn,
                    &ArchivePolicyRule {
                        name: "default".into(),
                        metric_pattern: "*".into(),
                        archive_policy_name: "low".into(),
                    },
                )
                .await?;
                defaults_created = true;
            }
        }
        let mut sacks = self.setting(conn, SACKS_SETTING).await?;
        if let (None, Some(wanted)) = (&sacks, options.sacks) {
            self.execute(
                conn,
                &Sql::new("INSERT INTO index_setting (name, value) VALUES (?, ?)")
                    .arg(SACKS_SETTING)
                    .arg(wanted.to_string()),
            )
            .await?;
            sacks = Some(wanted.to_string());
        }
        Ok(Upgraded {
            from_version: current,
            to_version: SCHEMA_VERSION.max(current),
            defaults_created,
            sacks: parse_sacks(sacks)?,
        })
    }

    /// Whether `table` has a row whose `name` is `name`.
    async fn exists(&self, conn: &mut Conn, table: &str, name: &str) -> Result<bool> {
        Ok(self
            .fetch_optional(
                conn,
                &Sql::new(format!("SELECT name FROM {table} WHERE name = ?")).arg(name),
            )
            .await?
            .is_some())
    }

    async fn setting(&self, conn: &mut Conn, name: &str) -> Result<Option<String>> {
        let row = self
            .fetch_optional(
                conn,
                &Sql::new("SELECT value FROM index_setting WHERE name = ?").arg(name),
            )
            .await?;
        row.map(|r| dialect::get_string(&r, "value"))
            .transpose()
            .map_err(Into::into)
    }

    /// The number of sacks stored by the first upgrade (`None` if no upgrade stored
    /// one). Every process sharing this index spreads incoming measures over this many
    /// sacks: a process using another count would look for a metric's measures in the
    /// wrong sack.
    pub async fn sacks(&self) -> Result<Option<u32>> {
        let mut conn = self.conn().await?;
        parse_sacks(self.setting(&mut conn, SACKS_SETTING).await?)
    }

    /// The schema version applied (0 before the first [`Indexer::upgrade`]).
    pub async fn schema_version(&self) -> Result<i64> {
        let mut tx = self.begin().await?;
        let row = self
            .fetch_optional(
                &mut tx,
                &Sql::new("SELECT MAX(version) AS v FROM schema_version"),
            )
            .await?;
        tx.commit().await?;
        Ok(row
            .and_then(|r| dialect::get_i64(&r, "v").ok().flatten())
            .unwrap_or(0))
    }

    /// Refreshes the planner's statistics (SQLite `ANALYZE`, PostgreSQL `ANALYZE`, MySQL
    /// `ANALYZE TABLE`). Worth running after bulk loads and now and then (the janitor):
    /// without statistics SQLite may pick a poor index for multi-condition searches.
    pub async fn optimize(&self) -> Result<()> {
        let mut tx = self.begin().await?;
        let rows = self
            .fetch_all(
                &mut tx,
                &Sql::new("SELECT tablename FROM resource_type WHERE name <> ?").arg("generic"),
            )
            .await?;
        let mut tables: Vec<String> = [
            "resource",
            "resource_history",
            "metric",
            "archive_policy",
            "archive_policy_rule",
            "resource_type",
        ]
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
        for r in rows {
            let t = dialect::get_string(&r, "tablename")?;
            tables.push(format!("{t}_h"));
            tables.push(t);
        }
        tx.commit().await?;
        match self.dialect {
            Dialect::Sqlite | Dialect::Postgres => {
                self.pool.execute("ANALYZE").await?;
            }
            Dialect::Mysql => {
                let list = tables
                    .iter()
                    .map(|t| self.dialect.quote(t))
                    .collect::<Vec<_>>()
                    .join(", ");
                sqlx::query(&format!("ANALYZE TABLE {list}"))
                    .fetch_all(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Runs one read statement outside an explicit transaction (a single statement is
    /// atomic on its own): saves the `BEGIN`/`COMMIT` round trips on hot lookups.
    pub(crate) async fn read_optional(&self, sql: &Sql) -> Result<Option<AnyRow>> {
        let text = self.dialect.placeholders(&sql.text);
        Ok(Sql::query(&text, &sql.args)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub(crate) async fn read_all(&self, sql: &Sql) -> Result<Vec<AnyRow>> {
        let text = self.dialect.placeholders(&sql.text);
        Ok(Sql::query(&text, &sql.args).fetch_all(&self.pool).await?)
    }

    pub(crate) async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Any>> {
        Ok(self.pool.acquire().await?)
    }

    pub(crate) async fn begin(&self) -> Result<Tx> {
        Ok(Tx {
            inner: self.pool.begin().await?,
            generation: self.generation.clone(),
        })
    }

    /// A number that changes after every write this handle (or a clone) commits.
    ///
    /// Lets callers cache what they derive from the index (search results, resource
    /// types) without a round trip: stamp an entry with the generation read *before*
    /// querying, and use it only while the generation is still that value. Writes
    /// committed by other processes sharing the database are not counted: such caches
    /// are only sound where this process is the index's sole writer.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) async fn fetch_all(&self, tx: &mut Conn, sql: &Sql) -> Result<Vec<AnyRow>> {
        let text = self.dialect.placeholders(&sql.text);
        Ok(Sql::query(&text, &sql.args).fetch_all(&mut *tx).await?)
    }

    pub(crate) async fn fetch_optional(&self, tx: &mut Conn, sql: &Sql) -> Result<Option<AnyRow>> {
        let text = self.dialect.placeholders(&sql.text);
        Ok(Sql::query(&text, &sql.args)
            .fetch_optional(&mut *tx)
            .await?)
    }

    /// Runs a statement; returns the rows affected (matched rows are not counted on MySQL
    /// when unchanged: never use it to test existence after an UPDATE).
    pub(crate) async fn execute(&self, tx: &mut Conn, sql: &Sql) -> Result<u64> {
        let text = self.dialect.placeholders(&sql.text);
        Ok(Sql::query(&text, &sql.args)
            .execute(&mut *tx)
            .await?
            .rows_affected())
    }

    /// Runs a DDL statement on `tx`'s connection. On MySQL, where DDL commits implicitly,
    /// what `tx` did before is committed then; running it on another connection instead
    /// would wait forever for the metadata locks `tx` holds.
    pub(crate) async fn ddl(&self, tx: &mut Conn, stmt: &str) -> Result<()> {
        tx.execute(stmt).await?;
        Ok(())
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.dialect
    }
}
