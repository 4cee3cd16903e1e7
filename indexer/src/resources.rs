//! Resources, their revisions (history) and their metrics.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::dialect::{get_i64, get_string, get_text, Arg, Dialect, Sql};
use crate::error::{violation, Violation};
use crate::metrics::NewMetric;
use crate::resource_types::{AttributeType, ResourceType};
use crate::search::{
    compile_filter, keyset, marker_values, order_by, Columns, Filter, OrderCol, Pagination,
    SortKey, ValueKind,
};
use crate::{time, Conn, Indexer, IndexerError, Result};

/// Gnocchi's namespace for resource ids that are not UUIDs.
const RESOURCE_ID_NAMESPACE: Uuid = Uuid::from_u128(0x0a7a15ff_aa13_4ac2_897c_9bdf30ce175b);

/// Maps a resource id as given by a client to its UUID, as Gnocchi does: a UUID (any form
/// `uuid` parses, with or without dashes) is itself; an id containing `/` is refused;
/// otherwise (at most 289 characters, what the `original_resource_id` columns hold) it
/// is `uuid5(namespace, id + "\0" + creator)`.
pub fn resource_uuid(id: &str, creator: &str) -> Result<Uuid> {
    if id.contains('/') {
        return Err(IndexerError::InvalidResourceId(
            "'/' is not supported in resource id".into(),
        ));
    }
    if let Ok(u) = Uuid::parse_str(id) {
        return Ok(u);
    }
    let max = crate::schema::ORIGINAL_RESOURCE_ID_CHARS;
    if id.chars().count() > max as usize {
        return Err(IndexerError::InvalidResourceId(format!(
            "transformable resource id >{max} max allowed characters"
        )));
    }
    let name = format!("{id}\u{0}{creator}");
    Ok(Uuid::new_v5(&RESOURCE_ID_NAMESPACE, name.as_bytes()))
}

/// How a history listing numbers the current revision of a resource (old revisions
/// count from 1).
pub(crate) const CURRENT_REVISION: i64 = -1;

/// A resource (or one revision of it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resource {
    pub id: Uuid,
    pub original_resource_id: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub creator: String,
    pub created_by_user_id: String,
    pub created_by_project_id: String,
    pub user_id: Option<String>,
    pub project_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub revision_start: DateTime<Utc>,
    /// `None` for the current revision.
    pub revision_end: Option<DateTime<Utc>>,
    /// Active metrics by name (left empty in history rows and nested in metrics).
    pub metrics: BTreeMap<String, Uuid>,
    /// The type-specific attributes (empty for `generic` views), as JSON values;
    /// datetimes are ISO 8601 strings.
    #[serde(flatten)]
    pub attributes: BTreeMap<String, Value>,
    /// Internal number of an old revision; `None` for the current one.
    #[serde(skip)]
    pub revision: Option<i64>,
}

impl Resource {
    /// Material for an `ETag`: changes with every revision.
    pub fn etag(&self) -> String {
        format!(
            "{}-{}-{}",
            self.id.simple(),
            self.revision_start.timestamp_micros(),
            self.revision.unwrap_or(0)
        )
    }

    /// `Last-Modified`: the start of this revision.
    pub fn last_modified(&self) -> DateTime<Utc> {
        self.revision_start
    }

    /// The pagination marker designating this row: its id, or in a history listing
    /// `id@revision`, where the current revision is numbered -1 as in Gnocchi.
    pub fn marker(&self, history: bool) -> String {
        if history {
            format!("{}@{}", self.id, self.revision.unwrap_or(CURRENT_REVISION))
        } else {
            self.id.to_string()
        }
    }
}

/// How to attach a metric on resource creation or update.
#[derive(Debug, Clone, PartialEq)]
pub enum ResourceMetric {
    /// Link an existing metric.
    Existing(Uuid),
    /// Create a metric (the rule matching its name decides when no policy is given).
    New {
        archive_policy_name: Option<String>,
        unit: Option<String>,
    },
}

/// A resource to create.
#[derive(Debug, Clone, Default)]
pub struct NewResource {
    pub id: Uuid,
    /// The id as the client gave it.
    pub original_resource_id: String,
    pub creator: String,
    pub user_id: Option<String>,
    pub project_id: Option<String>,
    /// Defaults to now.
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Type-specific attributes, validated against the type.
    pub attributes: serde_json::Map<String, Value>,
    pub metrics: BTreeMap<String, ResourceMetric>,
}

/// A partial update; `None` fields are left alone.
#[derive(Debug, Clone, Default)]
pub struct ResourceUpdate {
    pub user_id: Option<Option<String>>,
    pub project_id: Option<Option<String>>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<Option<DateTime<Utc>>>,
    pub attributes: serde_json::Map<String, Value>,
    /// Replaces the resource's metrics (or adds to them with `append_metrics`).
    pub metrics: Option<BTreeMap<String, ResourceMetric>>,
    pub append_metrics: bool,
}

/// Options of [`Indexer::search_resources`].
#[derive(Debug, Clone, Default)]
pub struct SearchOptions {
    /// Search every revision, not only current ones.
    pub history: bool,
    /// On `generic`, also return each resource's type-specific attributes.
    pub details: bool,
    pub pagination: Pagination,
    /// Who searches: non-UUID ids in filters map to UUIDs with this creator.
    pub creator: String,
}

/// The attributes every resource has, whatever its type.
pub const GENERIC_COLUMNS: &[&str] = &[
    "id",
    "type",
    "creator",
    "created_by_user_id",
    "created_by_project_id",
    "user_id",
    "project_id",
    "original_resource_id",
    "started_at",
    "ended_at",
    "revision_start",
    "revision_end",
];

/// `alias.col AS prefixcol, …` for the generic columns.
pub(crate) fn resource_select(alias: &str, prefix: &str) -> String {
    GENERIC_COLUMNS
        .iter()
        .map(|c| format!("{alias}.{c} AS {prefix}{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn resource_from_row(row: &sqlx::any::AnyRow, prefix: &str) -> Result<Resource> {
    let c = |n: &str| format!("{prefix}{n}");
    let revision = get_i64(row, &c("revision"))
        .ok()
        .flatten()
        .filter(|r| *r > 0);
    Ok(Resource {
        id: Uuid::parse_str(&get_string(row, &c("id"))?).unwrap_or_default(),
        original_resource_id: get_string(row, &c("original_resource_id"))?,
        resource_type: get_string(row, &c("type"))?,
        creator: get_string(row, &c("creator"))?,
        created_by_user_id: get_string(row, &c("created_by_user_id"))?,
        created_by_project_id: get_string(row, &c("created_by_project_id"))?,
        user_id: get_text(row, &c("user_id"))?,
        project_id: get_text(row, &c("project_id"))?,
        started_at: time::from_us(get_i64(row, &c("started_at"))?.unwrap_or(0)),
        ended_at: get_i64(row, &c("ended_at"))?.map(time::from_us),
        revision_start: time::from_us(get_i64(row, &c("revision_start"))?.unwrap_or(0)),
        revision_end: get_i64(row, &c("revision_end"))?.map(time::from_us),
        metrics: BTreeMap::new(),
        attributes: BTreeMap::new(),
        revision,
    })
}

/// A view over the resources of one type: current rows, or every revision.
pub(crate) struct View<'a> {
    pub(crate) rt: &'a ResourceType,
    pub(crate) history: bool,
    pub(crate) dialect: Dialect,
}

impl View<'_> {
    fn attr_alias(i: usize) -> String {
        format!("a_{i}")
    }

    pub(crate) fn from(&self) -> String {
        let d = self.dialect;
        let typed = self.rt.has_table();
        if !self.history {
            return if typed {
                format!(
                    "resource r JOIN {} t ON t.id = r.id",
                    d.quote(&self.rt.tablename)
                )
            } else {
                "resource r".into()
            };
        }
        let attrs = |alias: &str| -> String {
            self.rt
                .attributes
                .keys()
                .map(|a| format!(", {alias}.{}", d.quote(a)))
                .collect::<String>()
        };
        let gen = |alias: &str| {
            GENERIC_COLUMNS
                .iter()
                .map(|c| format!("{alias}.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (cur_join, hist_join) = if typed {
            (
                format!(" JOIN {} t0 ON t0.id = r0.id", d.quote(&self.rt.tablename)),
                format!(
                    " JOIN {} th ON th.revision = h.revision",
                    d.quote(&self.rt.history_table())
                ),
            )
        } else {
            (String::new(), String::new())
        };
        format!(
            "(SELECT {}, {CURRENT_REVISION} AS revision{} FROM resource r0{cur_join} UNION ALL SELECT {}, h.revision{} FROM resource_history h{hist_join}) r",
            gen("r0"),
            if typed { attrs("t0") } else { String::new() },
            gen("h"),
            if typed { attrs("th") } else { String::new() },
        )
    }

    fn attr_expr(&self, attr: &str) -> String {
        let alias = if self.history { "r" } else { "t" };
        format!("{alias}.{}", self.dialect.quote(attr))
    }

    pub(crate) fn select(&self) -> String {
        let mut s = format!("SELECT {}", resource_select("r", "r_"));
        s.push_str(if self.history {
            ", r.revision AS r_revision"
        } else {
            ", 0 AS r_revision"
        });
        if self.rt.has_table() {
            for (i, a) in self.rt.attributes.keys().enumerate() {
                s.push_str(&format!(
                    ", {} AS {}",
                    self.attr_expr(a),
                    Self::attr_alias(i)
                ));
            }
        }
        s.push_str(" FROM ");
        s.push_str(&self.from());
        s
    }

    pub(crate) fn read(&self, row: &sqlx::any::AnyRow) -> Result<Resource> {
        let mut r = resource_from_row(row, "r_")?;
        if self.rt.has_table() {
            for (i, (name, a)) in self.rt.attributes.iter().enumerate() {
                r.attributes
                    .insert(name.clone(), a.attr_type.read(row, &Self::attr_alias(i))?);
            }
        }
        Ok(r)
    }

    /// The columns a filter or a sort may use.
    pub(crate) fn columns(&self) -> Columns {
        let mut c = Columns::generic("r");
        if self.rt.has_table() {
            for (name, a) in &self.rt.attributes {
                c.add(name, &self.attr_expr(name), a.attr_type.clone());
            }
        }
        c.type_name = self.rt.name.clone();
        c
    }

    pub(crate) fn sort_col(&self, cols: &Columns, key: &SortKey) -> Result<OrderCol> {
        let Some(c) = cols.get(&key.attr) else {
            return Err(IndexerError::query(
                crate::search::invalid_sort_key(&key.attr),
                Some(&key.attr),
            ));
        };
        Ok(OrderCol::new(&c.expr, c.value_kind(), c.nullable, key))
    }
}

fn split_creator(creator: &str) -> (String, String) {
    match creator.split_once(':') {
        Some((u, p)) => (u.to_owned(), p.to_owned()),
        None => (creator.to_owned(), String::new()),
    }
}

/// Validates type-specific attributes; `partial` for updates (no required check).
fn check_attributes(
    rt: &ResourceType,
    given: &serde_json::Map<String, Value>,
    partial: bool,
) -> Result<BTreeMap<String, Arg>> {
    let mut out = BTreeMap::new();
    for (k, v) in given {
        let Some(schema) = rt.attributes.get(k) else {
            return Err(IndexerError::attribute(k, "extra keys not allowed"));
        };
        let arg = if v.is_null() {
            if schema.required {
                return Err(IndexerError::attribute(k, "expected a value, got None"));
            }
            null_arg(&schema.attr_type)
        } else {
            schema
                .attr_type
                .check(v)
                .map_err(|reason| IndexerError::attribute(k, reason))?
        };
        out.insert(k.clone(), arg);
    }
    if !partial {
        for (k, schema) in &rt.attributes {
            if !given.contains_key(k) {
                if schema.required {
                    return Err(IndexerError::attribute(k, "required key not provided"));
                }
                out.insert(k.clone(), null_arg(&schema.attr_type));
            }
        }
    }
    Ok(out)
}

/// Numbers just written are shown as the client gave them (`4` stays `4`), as
/// Gnocchi answers a create or a patch with the object it was given; read back
/// later they come from the float column (`4.0`).
fn keep_given_numbers(r: &mut Resource, rt: &ResourceType, given: &serde_json::Map<String, Value>) {
    for (name, value) in given {
        let is_number = matches!(
            rt.attributes.get(name).map(|a| &a.attr_type),
            Some(AttributeType::Number { .. })
        );
        if is_number && value.is_number() {
            r.attributes.insert(name.clone(), value.clone());
        }
    }
}

/// A validated value back to its JSON rendering (as `AttributeType::read` gives it).
fn arg_to_json(t: &AttributeType, a: &Arg) -> Value {
    match (t, a) {
        (AttributeType::Bool, Arg::Int(Some(v))) => Value::Bool(*v != 0),
        (AttributeType::Datetime, Arg::Int(Some(v))) => Value::String(time::iso(time::from_us(*v))),
        (_, Arg::Float(Some(f))) => crate::resource_types::float_value(*f),
        (_, Arg::Text(Some(s))) => Value::String(s.clone()),
        (_, Arg::Int(Some(v))) => Value::from(*v),
        _ => Value::Null,
    }
}

fn null_arg(t: &AttributeType) -> Arg {
    match t.value_kind() {
        ValueKind::Text => Arg::Text(None),
        ValueKind::Int => Arg::Int(None),
        ValueKind::Float => Arg::Float(None),
    }
}

impl Indexer {
    /// Creates a resource of type `type_name` with its metrics, in one transaction.
    pub async fn create_resource(&self, type_name: &str, new: &NewResource) -> Result<Resource> {
        let mut tx = self.begin().await?;
        let rt = self.get_resource_type_tx(&mut tx, type_name).await?;
        let attrs = check_attributes(&rt, &new.attributes, false)?;
        let now = time::now_us();
        let started_at = new.started_at.map(time::to_us).unwrap_or(now);
        let ended_at = new.ended_at.map(time::to_us);
        if let Some(e) = ended_at {
            if e < started_at {
                return Err(IndexerError::attribute(
                    "ended_at",
                    "Start timestamp cannot be after end timestamp",
                ));
            }
        }
        let (cu, cp) = split_creator(&new.creator);
        let sql = Sql::new(
            "INSERT INTO resource (id, type, creator, created_by_user_id, created_by_project_id, user_id, project_id, \
             original_resource_id, started_at, ended_at, revision_start, revision_end) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .arg(new.id)
        .arg(type_name)
        .arg(&new.creator)
        .arg(cu)
        .arg(cp)
        .arg(new.user_id.clone())
        .arg(new.project_id.clone())
        .arg(&new.original_resource_id)
        .arg(started_at)
        .arg(ended_at)
        .arg(now)
        .arg(Arg::Int(None));
        match self.execute(&mut tx, &sql).await {
            Ok(_) => {}
            Err(IndexerError::Database(e)) if violation(&e) == Some(Violation::Unique) => {
                return Err(IndexerError::ResourceAlreadyExists(new.id))
            }
            Err(e) => return Err(e),
        }
        if rt.has_table() {
            let d = self.dialect();
            let mut sql = Sql::new(format!("INSERT INTO {} (id", d.quote(&rt.tablename)));
            for k in attrs.keys() {
                sql.push(", ").push(&d.quote(k));
            }
            sql.push(") VALUES (").value(new.id);
            for v in attrs.into_values() {
                sql.push(", ").value(v);
            }
            sql.push(")");
            self.execute(&mut tx, &sql).await?;
        }
        self.set_resource_metrics(&mut tx, new.id, &new.creator, &new.metrics)
            .await?;
        let mut r = self.get_resource_tx(&mut tx, &rt, new.id).await?;
        tx.commit().await?;
        keep_given_numbers(&mut r, &rt, &new.attributes);
        Ok(r)
    }

    /// Creates many resources of one type in one transaction (multi-row inserts): all or
    /// nothing. Returns them in order, as created.
    pub async fn create_resources(
        &self,
        type_name: &str,
        news: &[NewResource],
    ) -> Result<Vec<Resource>> {
        if news.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let rt = self.get_resource_type_tx(&mut tx, type_name).await?;
        let now = time::now_us();
        let mut rows = Vec::with_capacity(news.len());
        let mut seen = std::collections::HashSet::with_capacity(news.len());
        for new in news {
            if !seen.insert(new.id) {
                return Err(IndexerError::ResourceAlreadyExists(new.id));
            }
            let attrs = check_attributes(&rt, &new.attributes, false)?;
            let started_at = new.started_at.map(time::to_us).unwrap_or(now);
            let ended_at = new.ended_at.map(time::to_us);
            if ended_at.is_some_and(|e| e < started_at) {
                return Err(IndexerError::attribute(
                    "ended_at",
                    "Start timestamp cannot be after end timestamp",
                ));
            }
            rows.push((new, attrs, started_at, ended_at));
        }
        let d = self.dialect();
        let generic: Vec<Vec<Arg>> = rows
            .iter()
            .map(|(new, _, started_at, ended_at)| {
                let (cu, cp) = split_creator(&new.creator);
                vec![
                    new.id.into(),
                    type_name.into(),
                    (&new.creator).into(),
                    cu.into(),
                    cp.into(),
                    new.user_id.clone().into(),
                    new.project_id.clone().into(),
                    (&new.original_resource_id).into(),
                    (*started_at).into(),
                    (*ended_at).into(),
                    now.into(),
                    Arg::Int(None),
                ]
            })
            .collect();
        // In the order of GENERIC_COLUMNS.
        for sql in d.insert_rows("resource", GENERIC_COLUMNS, &generic) {
            match self.execute(&mut tx, &sql).await {
                Ok(_) => {}
                Err(IndexerError::Database(e)) if violation(&e) == Some(Violation::Unique) => {
                    // Find which id is taken, outside the failed transaction.
                    drop(tx);
                    return Err(self
                        .taken_id(news)
                        .await
                        .unwrap_or(IndexerError::Database(e)));
                }
                Err(e) => return Err(e),
            }
        }
        drop(generic);
        if rt.has_table() {
            let mut columns = vec!["id"];
            columns.extend(rt.attributes.keys().map(String::as_str));
            let typed: Vec<Vec<Arg>> = rows
                .iter()
                .map(|(new, attrs, _, _)| {
                    let mut row = Vec::with_capacity(columns.len());
                    row.push(new.id.into());
                    row.extend(attrs.values().cloned());
                    row
                })
                .collect();
            for sql in d.insert_rows(&rt.tablename, &columns, &typed) {
                self.execute(&mut tx, &sql).await?;
            }
        }
        for (new, _, _, _) in &rows {
            self.set_resource_metrics(&mut tx, new.id, &new.creator, &new.metrics)
                .await?;
        }
        // The results, built from what was written (attributes as stored).
        let mut out = Vec::with_capacity(rows.len());
        for (new, attrs, started_at, ended_at) in rows {
            let (cu, cp) = split_creator(&new.creator);
            let attributes = if rt.has_table() {
                rt.attributes
                    .iter()
                    .map(|(k, schema)| (k.clone(), arg_to_json(&schema.attr_type, &attrs[k])))
                    .collect()
            } else {
                BTreeMap::new()
            };
            out.push(Resource {
                id: new.id,
                original_resource_id: new.original_resource_id.clone(),
                resource_type: type_name.to_owned(),
                creator: new.creator.clone(),
                created_by_user_id: cu,
                created_by_project_id: cp,
                user_id: new.user_id.clone(),
                project_id: new.project_id.clone(),
                started_at: time::from_us(started_at),
                ended_at: ended_at.map(time::from_us),
                revision_start: time::from_us(now),
                revision_end: None,
                metrics: BTreeMap::new(),
                attributes,
                revision: None,
            });
        }
        if news.iter().any(|n| !n.metrics.is_empty()) {
            self.fill_metrics(&mut tx, &mut out).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// The first of `news` whose id exists already, as an error.
    async fn taken_id(&self, news: &[NewResource]) -> Option<IndexerError> {
        for chunk in news.chunks(500) {
            let mut sql = Sql::new("SELECT id FROM resource WHERE id IN (");
            for (i, n) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.value(n.id);
            }
            sql.push(")");
            if let Some(row) = self.read_optional(&sql).await.ok()? {
                let id = Uuid::parse_str(&get_string(&row, "id").ok()?).ok()?;
                return Some(IndexerError::ResourceAlreadyExists(id));
            }
        }
        None
    }

    async fn set_resource_metrics(
        &self,
        tx: &mut Conn,
        resource_id: Uuid,
        creator: &str,
        metrics: &BTreeMap<String, ResourceMetric>,
    ) -> Result<()> {
        for (name, m) in metrics {
            match m {
                ResourceMetric::Existing(mid) => {
                    if name.contains('/') {
                        return Err(IndexerError::InvalidMetricName(name.clone()));
                    }
                    // Only an active metric created by the resource's
                    // creator may be attached, as Gnocchi's
                    // `_set_metrics_for_resource` requires: anyone else's
                    // metric "does not exist" for this resource.
                    let row = self
                        .fetch_optional(
                            tx,
                            &Sql::new("SELECT status, creator FROM metric WHERE id = ?").arg(*mid),
                        )
                        .await?;
                    match row {
                        Some(r)
                            if get_string(&r, "status")? == "active"
                                && get_string(&r, "creator")? == creator => {}
                        _ => return Err(IndexerError::NoSuchMetric(*mid)),
                    }
                    let sql = Sql::new("UPDATE metric SET resource_id = ?, name = ? WHERE id = ?")
                        .arg(resource_id)
                        .arg(name)
                        .arg(*mid);
                    match self.execute(tx, &sql).await {
                        Ok(_) => {}
                        Err(IndexerError::Database(e))
                            if violation(&e) == Some(Violation::Unique) =>
                        {
                            return Err(IndexerError::NamedMetricAlreadyExists {
                                name: name.clone(),
                                resource_id,
                            })
                        }
                        Err(e) => return Err(e),
                    }
                }
                ResourceMetric::New {
                    archive_policy_name,
                    unit,
                } => {
                    let nm = NewMetric {
                        id: None,
                        name: Some(name.clone()),
                        unit: unit.clone(),
                        archive_policy_name: archive_policy_name.clone(),
                        creator: creator.to_owned(),
                        resource_id: Some(resource_id),
                    };
                    self.insert_metric(tx, &nm).await?;
                }
            }
        }
        Ok(())
    }

    /// Sets each resource's active metrics by name. Old revisions get the
    /// resource's metrics too: metrics are not versioned, and Gnocchi's
    /// history mapper joins them on the resource id for every revision.
    async fn fill_metrics(&self, tx: &mut Conn, resources: &mut [Resource]) -> Result<()> {
        let ids: Vec<Uuid> = resources
            .iter()
            .map(|r| r.id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let mut by_id: BTreeMap<Uuid, BTreeMap<String, Uuid>> = BTreeMap::new();
        for chunk in ids.chunks(500) {
            // The status is checked here rather than in SQL: with `status = ?` in the
            // WHERE clause SQLite may pick `ix_metric_status` (every active metric)
            // over the `(resource_id, name)` index, a scan per search.
            let mut sql = Sql::new("SELECT id, name, resource_id, status FROM metric WHERE");
            sql.push(" resource_id IN (");
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.value(*id);
            }
            sql.push(")");
            for row in self.fetch_all(tx, &sql).await? {
                if get_string(&row, "status")? != "active" {
                    continue;
                }
                let rid = Uuid::parse_str(&get_string(&row, "resource_id")?).unwrap_or_default();
                let mid = Uuid::parse_str(&get_string(&row, "id")?).unwrap_or_default();
                if let Some(name) = get_text(&row, "name")? {
                    by_id.entry(rid).or_default().insert(name, mid);
                }
            }
        }
        for r in resources.iter_mut() {
            if let Some(m) = by_id.get(&r.id) {
                r.metrics = m.clone();
            }
        }
        Ok(())
    }

    pub(crate) async fn get_resource_tx(
        &self,
        tx: &mut Conn,
        rt: &ResourceType,
        id: Uuid,
    ) -> Result<Resource> {
        let view = View {
            rt,
            history: false,
            dialect: self.dialect(),
        };
        let sql = Sql::new(format!("{} WHERE r.id = ?", view.select())).arg(id);
        let Some(row) = self.fetch_optional(tx, &sql).await? else {
            return Err(IndexerError::NoSuchResource(id.to_string()));
        };
        let mut r = [view.read(&row)?];
        self.fill_metrics(tx, &mut r).await?;
        let [r] = r;
        Ok(r)
    }

    /// The resource `id` seen as `type_name` (`generic` shows any resource, with the
    /// generic attributes only).
    pub async fn get_resource(&self, type_name: &str, id: Uuid) -> Result<Resource> {
        let mut tx = self.conn().await?;
        let rt = self.get_resource_type_tx(&mut tx, type_name).await?;
        let r = self.get_resource_tx(&mut tx, &rt, id).await;
        r
    }

    /// Applies `update`. A new revision is recorded (the old one copied to history) only
    /// when an attribute actually changes; metric changes are not versioned.
    pub async fn update_resource(
        &self,
        type_name: &str,
        id: Uuid,
        update: &ResourceUpdate,
    ) -> Result<Resource> {
        let mut tx = self.begin().await?;
        let route_rt = self.get_resource_type_tx(&mut tx, type_name).await?;
        let generic_view = self.get_resource_type_tx(&mut tx, "generic").await?;
        let current = self.get_resource_tx(&mut tx, &generic_view, id).await?;
        let rt = if current.resource_type == route_rt.name {
            route_rt.clone()
        } else if route_rt.name == "generic" {
            self.get_resource_type_tx(&mut tx, &current.resource_type)
                .await?
        } else {
            return Err(IndexerError::NoSuchResource(id.to_string()));
        };
        // Only the route type's attributes may be patched.
        let attrs = check_attributes(&route_rt, &update.attributes, true)?;
        let full = self.get_resource_tx(&mut tx, &rt, id).await?;
        let mut sets: Vec<(&str, Arg)> = Vec::new();
        if let Some(u) = &update.user_id {
            if *u != full.user_id {
                sets.push(("user_id", Arg::Text(u.clone())));
            }
        }
        if let Some(p) = &update.project_id {
            if *p != full.project_id {
                sets.push(("project_id", Arg::Text(p.clone())));
            }
        }
        let started_at = update.started_at.unwrap_or(full.started_at);
        if started_at != full.started_at {
            sets.push(("started_at", Arg::Int(Some(time::to_us(started_at)))));
        }
        let ended_at = update.ended_at.unwrap_or(full.ended_at);
        if ended_at != full.ended_at {
            sets.push(("ended_at", Arg::Int(ended_at.map(time::to_us))));
        }
        if let Some(e) = ended_at.filter(|e| *e < started_at) {
            return Err(IndexerError::InvalidValue {
                resource_type: type_name.to_owned(),
                attribute: "ended_at",
                value: time::python_str(e),
            });
        }
        let mut attr_sets: Vec<(String, Arg)> = Vec::new();
        for (k, v) in attrs {
            let schema = &rt.attributes[&k];
            let old = full.attributes.get(&k).cloned().unwrap_or(Value::Null);
            let old_arg = if old.is_null() {
                null_arg(&schema.attr_type)
            } else {
                schema.attr_type.check(&old).unwrap_or(Arg::Text(None))
            };
            if old_arg != v {
                attr_sets.push((k, v));
            }
        }
        if !sets.is_empty() || !attr_sets.is_empty() {
            let d = self.dialect();
            let now = time::now_us().max(time::to_us(full.revision_start) + 1);
            let cols = GENERIC_COLUMNS
                .iter()
                .filter(|c| **c != "revision_end")
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            self.execute(
                &mut tx,
                &Sql::new(format!("INSERT INTO resource_history ({cols}, revision_end) SELECT {cols}, ? FROM resource WHERE id = ?"))
                    .arg(now)
                    .arg(id),
            )
            .await?;
            if rt.has_table() {
                let row = self
                    .fetch_optional(
                        &mut tx,
                        &Sql::new("SELECT MAX(revision) AS rev FROM resource_history WHERE id = ?")
                            .arg(id),
                    )
                    .await?;
                let rev = row
                    .and_then(|r| get_i64(&r, "rev").ok().flatten())
                    .unwrap_or(0);
                let acols = rt
                    .attributes
                    .keys()
                    .map(|a| format!(", {}", d.quote(a)))
                    .collect::<String>();
                self.execute(
                    &mut tx,
                    &Sql::new(format!(
                        "INSERT INTO {} (revision{acols}) SELECT ?{acols} FROM {} WHERE id = ?",
                        d.quote(&rt.history_table()),
                        d.quote(&rt.tablename)
                    ))
                    .arg(rev)
                    .arg(id),
                )
                .await?;
            }
            let mut sql = Sql::new("UPDATE resource SET revision_start = ");
            sql.value(now);
            for (c, v) in sets {
                sql.push(&format!(", {c} = ")).value(v);
            }
            sql.push(" WHERE id = ").value(id);
            self.execute(&mut tx, &sql).await?;
            if !attr_sets.is_empty() {
                let mut sql = Sql::new(format!("UPDATE {} SET ", d.quote(&rt.tablename)));
                for (i, (c, v)) in attr_sets.into_iter().enumerate() {
                    if i > 0 {
                        sql.push(", ");
                    }
                    sql.push(&format!("{} = ", d.quote(&c))).value(v);
                }
                sql.push(" WHERE id = ").value(id);
                self.execute(&mut tx, &sql).await?;
            }
        }
        if let Some(metrics) = &update.metrics {
            if !update.append_metrics {
                let mut sql = Sql::new("UPDATE metric SET resource_id = ");
                sql.value(Arg::Text(None))
                    .push(" WHERE resource_id = ")
                    .value(id)
                    .push(" AND status = ")
                    .value("active");
                self.execute(&mut tx, &sql).await?;
            } else {
                for name in metrics.keys() {
                    if full.metrics.contains_key(name) {
                        return Err(IndexerError::NamedMetricAlreadyExists {
                            name: name.clone(),
                            resource_id: id,
                        });
                    }
                }
            }
            self.set_resource_metrics(&mut tx, id, &full.creator, metrics)
                .await?;
        }
        let mut r = self.get_resource_tx(&mut tx, &route_rt, id).await?;
        tx.commit().await?;
        keep_given_numbers(&mut r, &route_rt, &update.attributes);
        Ok(r)
    }

    /// Deletes resource `id` (seen as `type_name`) and its history; its metrics are marked
    /// for deletion.
    pub async fn delete_resource(&self, type_name: &str, id: Uuid) -> Result<()> {
        let mut tx = self.begin().await?;
        let route_rt = self.get_resource_type_tx(&mut tx, type_name).await?;
        let r = self.get_resource_tx(&mut tx, &route_rt, id).await?;
        self.delete_resource_tx(&mut tx, &r).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_resource_tx(&self, tx: &mut Conn, r: &Resource) -> Result<()> {
        let d = self.dialect();
        let rt = self.get_resource_type_tx(tx, &r.resource_type).await?;
        let mut sql = Sql::new("UPDATE metric SET status = ");
        sql.value("delete")
            .push(", resource_id = ")
            .value(Arg::Text(None))
            .push(" WHERE resource_id = ")
            .value(r.id);
        self.execute(tx, &sql).await?;
        if rt.has_table() {
            self.execute(
                tx,
                &Sql::new(format!(
                    "DELETE FROM {} WHERE revision IN (SELECT revision FROM resource_history WHERE id = ?)",
                    d.quote(&rt.history_table())
                ))
                .arg(r.id),
            )
            .await?;
        }
        self.execute(
            tx,
            &Sql::new("DELETE FROM resource_history WHERE id = ?").arg(r.id),
        )
        .await?;
        if rt.has_table() {
            self.execute(
                tx,
                &Sql::new(format!(
                    "DELETE FROM {} WHERE id = ?",
                    d.quote(&rt.tablename)
                ))
                .arg(r.id),
            )
            .await?;
        }
        self.execute(tx, &Sql::new("DELETE FROM resource WHERE id = ?").arg(r.id))
            .await?;
        Ok(())
    }

    /// Deletes every resource of `type_name` matching `filter`; returns how many.
    pub async fn delete_resources(
        &self,
        type_name: &str,
        filter: &Filter,
        creator: &str,
    ) -> Result<u64> {
        let mut tx = self.begin().await?;
        let rt = self.get_resource_type_tx(&mut tx, type_name).await?;
        let opts = SearchOptions {
            creator: creator.to_owned(),
            ..Default::default()
        };
        let found = self.search_tx(&mut tx, &rt, Some(filter), &opts).await?;
        for r in &found {
            self.delete_resource_tx(&mut tx, r).await?;
        }
        tx.commit().await?;
        Ok(found.len() as u64)
    }

    /// Every revision of resource `id`, oldest first by default (`revision_start:asc`).
    pub async fn resource_history(
        &self,
        type_name: &str,
        id: Uuid,
        page: &Pagination,
    ) -> Result<Vec<Resource>> {
        let mut tx = self.conn().await?;
        let rt = self.get_resource_type_tx(&mut tx, type_name).await?;
        // Existence (and type) check on the current row.
        self.get_resource_tx(&mut tx, &rt, id).await?;
        let mut page = page.clone();
        if page.sort.is_empty() {
            page.sort = vec![SortKey::asc("revision_start")];
        }
        let filter = Filter::eq("id", id.to_string());
        let opts = SearchOptions {
            history: true,
            pagination: page,
            ..Default::default()
        };
        let r = self.search_tx(&mut tx, &rt, Some(&filter), &opts).await;
        r
    }

    /// Searches resources of `type_name` (all types for `generic`) matching `filter`
    /// (`None`: all), with Gnocchi's default order `revision_start:asc,started_at:asc`
    /// (then `id`, then revision, as tie-breakers).
    pub async fn search_resources(
        &self,
        type_name: &str,
        filter: Option<&Filter>,
        opts: &SearchOptions,
    ) -> Result<Vec<Resource>> {
        let mut tx = self.conn().await?;
        let rt = self.get_resource_type_tx(&mut tx, type_name).await?;
        let r = self.search_tx(&mut tx, &rt, filter, opts).await;
        r
    }

    async fn search_tx(
        &self,
        tx: &mut Conn,
        rt: &ResourceType,
        filter: Option<&Filter>,
        opts: &SearchOptions,
    ) -> Result<Vec<Resource>> {
        let view = View {
            rt,
            history: opts.history,
            dialect: self.dialect(),
        };
        let cols = view.columns();
        let mut where_ = Sql::new(" WHERE 1 = 1");
        if let Some(f) = filter {
            where_
                .push(" AND ")
                .append(compile_filter(f, &cols, &opts.creator, self.dialect())?);
        }
        let page = &opts.pagination;
        let sort = if page.sort.is_empty() {
            vec![SortKey::asc("revision_start"), SortKey::asc("started_at")]
        } else {
            page.sort.clone()
        };
        let mut order = sort
            .iter()
            .map(|k| view.sort_col(&cols, k))
            .collect::<Result<Vec<_>>>()?;
        if !sort.iter().any(|k| k.attr == "id") {
            order.push(view.sort_col(&cols, &SortKey::asc("id"))?);
        }
        if opts.history {
            order.push(OrderCol::new(
                "r.revision",
                ValueKind::Int,
                false,
                &SortKey::asc("revision"),
            ));
        }
        if let Some(marker) = &page.marker {
            let invalid = || IndexerError::InvalidPagination(marker.clone());
            // History rows are designated by id and revision, current ones by id alone.
            let (mid, mrev) = if opts.history {
                let (id, rev) = marker.split_once('@').ok_or_else(invalid)?;
                (id, Some(rev.parse::<i64>().map_err(|_| invalid())?))
            } else {
                (marker.as_str(), None)
            };
            let mid = resource_uuid(mid, &opts.creator).map_err(|_| invalid())?;
            let mut msql = Sql::new("SELECT ");
            for (i, c) in order.iter().enumerate() {
                if i > 0 {
                    msql.push(", ");
                }
                msql.push(&format!("{} AS k{i}", c.expr));
            }
            msql.push(&format!(" FROM {} WHERE r.id = ", view.from()))
                .value(mid);
            if let Some(rev) = mrev {
                msql.push(" AND r.revision = ").value(rev);
            }
            let Some(mrow) = self.fetch_optional(tx, &msql).await? else {
                return Err(invalid());
            };
            let values = marker_values(&mrow, &order)?;
            where_.push(" AND ").append(keyset(&order, &values));
        }
        let mut sql = Sql::new(view.select());
        sql.append(where_);
        sql.push(&order_by(&order));
        if let Some(limit) = page.limit {
            sql.push(" LIMIT ").value(limit as i64);
        }
        let rows = self.fetch_all(tx, &sql).await?;
        let mut out = rows
            .iter()
            .map(|r| view.read(r))
            .collect::<Result<Vec<_>>>()?;
        self.fill_metrics(tx, &mut out).await?;
        if opts.details && !rt.has_table() {
            self.fill_details(tx, &mut out).await?;
        }
        Ok(out)
    }

    /// Adds type-specific attributes to resources listed through `generic`.
    async fn fill_details(&self, tx: &mut Conn, resources: &mut [Resource]) -> Result<()> {
        let d = self.dialect();
        let types: std::collections::BTreeSet<String> = resources
            .iter()
            .filter(|r| r.resource_type != "generic")
            .map(|r| r.resource_type.clone())
            .collect();
        for t in types {
            let rt = self.get_resource_type_tx(tx, &t).await?;
            if rt.attributes.is_empty() {
                continue;
            }
            let names: Vec<&String> = rt.attributes.keys().collect();
            let sel = names
                .iter()
                .enumerate()
                .map(|(i, a)| format!(", {} AS a_{i}", d.quote(a)))
                .collect::<String>();
            for (history, key, table) in [
                (false, "id", rt.tablename.clone()),
                (true, "revision", rt.history_table()),
            ] {
                let targets: Vec<usize> = resources
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.resource_type == t && r.revision.is_some() == history)
                    .map(|(i, _)| i)
                    .collect();
                for chunk in targets.chunks(500) {
                    let mut sql = Sql::new(format!(
                        "SELECT {key} AS k{sel} FROM {} WHERE {key} IN (",
                        d.quote(&table)
                    ));
                    for (j, i) in chunk.iter().enumerate() {
                        if j > 0 {
                            sql.push(", ");
                        }
                        let r = &resources[*i];
                        if history {
                            sql.value(r.revision.unwrap_or(0));
                        } else {
                            sql.value(r.id);
                        }
                    }
                    sql.push(")");
                    let rows = self.fetch_all(tx, &sql).await?;
                    let mut by_key = std::collections::HashMap::with_capacity(rows.len());
                    for row in &rows {
                        let k = if history {
                            get_i64(row, "k")?
                                .map(|v| v.to_string())
                                .unwrap_or_default()
                        } else {
                            get_string(row, "k")?
                        };
                        by_key.insert(k, row);
                    }
                    for i in chunk {
                        let r = &mut resources[*i];
                        let rk = if history {
                            r.revision.unwrap_or(0).to_string()
                        } else {
                            r.id.to_string()
                        };
                        if let Some(row) = by_key.get(&rk) {
                            for (j, (name, a)) in rt.attributes.iter().enumerate() {
                                r.attributes.insert(
                                    name.clone(),
                                    a.attr_type.read(row, &format!("a_{j}"))?,
                                );
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_uuid_like_gnocchi() {
        assert_eq!(
            resource_uuid("1.2.3.4", "foobar").unwrap().to_string(),
            "a9c729cc-d1b0-5e6b-b5ba-8b5a7f45f1fc"
        );
        let u = "faef212f-0bf4-4030-a461-2186fef79be0";
        assert_eq!(resource_uuid(u, "x").unwrap().to_string(), u);
        assert_eq!(
            resource_uuid("faef212f0bf44030a4612186fef79be0", "x")
                .unwrap()
                .to_string(),
            u
        );
        assert!(resource_uuid("a/b", "x").is_err());
        assert!(resource_uuid(&"é".repeat(289), "x").is_ok());
        let err = resource_uuid(&"x".repeat(290), "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains(">289 max allowed characters"), "{err}");
    }
}
