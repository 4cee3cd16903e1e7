//! Metrics: creation, lookup by UUID or compact id, listing, deletion marks for the janitor.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::archive_policies::policy_from_row;
use crate::dialect::{get_i64, get_string, get_text, literal_like, Arg, Sql, LITERAL_LIKE_ESCAPE};
use crate::error::{violation, Violation};
use crate::resources::{resource_from_row, resource_select};
use crate::search::{keyset, order_by, OrderCol, Pagination, SortKey, ValueKind};
use crate::{ArchivePolicy, Conn, Indexer, IndexerError, Resource, Result};

/// Life-cycle status of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricStatus {
    Active,
    /// Marked for deletion; the janitor removes its data then calls
    /// [`Indexer::expunge_metric`].
    Delete,
}

impl MetricStatus {
    fn as_str(self) -> &'static str {
        match self {
            MetricStatus::Active => "active",
            MetricStatus::Delete => "delete",
        }
    }
}

/// A metric with everything needed to render Gnocchi's metric JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    pub id: Uuid,
    /// Small integer id, unique, for bitmaps of metrics.
    pub compact_id: u32,
    pub name: Option<String>,
    pub unit: Option<String>,
    pub archive_policy_name: String,
    pub archive_policy: ArchivePolicy,
    /// `user:project` (or just a user name).
    pub creator: String,
    pub resource_id: Option<Uuid>,
    /// The resource the metric belongs to (generic attributes; `metrics` left empty).
    pub resource: Option<Resource>,
    pub status: MetricStatus,
}

impl Metric {
    /// The user part of `creator` (Gnocchi's `creator.partition(":")`).
    pub fn created_by_user_id(&self) -> &str {
        self.creator
            .split_once(':')
            .map(|(u, _)| u)
            .unwrap_or(&self.creator)
    }
    /// The project part of `creator` (empty when there is none).
    pub fn created_by_project_id(&self) -> &str {
        self.creator.split_once(':').map(|(_, p)| p).unwrap_or("")
    }
}

/// A metric to create.
#[derive(Debug, Clone, Default)]
pub struct NewMetric {
    /// Defaults to a random UUID.
    pub id: Option<Uuid>,
    pub name: Option<String>,
    pub unit: Option<String>,
    /// When `None`, the rule matching `name` decides ([`Indexer::match_rule`]).
    pub archive_policy_name: Option<String>,
    pub creator: String,
    pub resource_id: Option<Uuid>,
}

/// Filters of [`Indexer::list_metrics`]; all given ones must hold.
#[derive(Debug, Clone, Default)]
pub struct MetricFilter {
    pub ids: Vec<Uuid>,
    pub name: Option<String>,
    pub unit: Option<String>,
    pub archive_policy_name: Option<String>,
    pub creator: Option<String>,
    /// Matches the user part of `creator`.
    pub user_id: Option<String>,
    /// Matches the project part of `creator`.
    pub project_id: Option<String>,
    pub resource_id: Option<Uuid>,
    /// `None` lists active metrics only.
    pub status: Option<MetricStatus>,
}

const METRIC_FROM: &str = "metric m JOIN archive_policy ap ON ap.name = m.archive_policy_name LEFT JOIN resource r ON r.id = m.resource_id";

fn metric_select() -> String {
    format!(
        "SELECT m.seq AS m_seq, m.id AS m_id, m.archive_policy_name AS m_archive_policy_name, m.creator AS m_creator, \
         m.resource_id AS m_resource_id, m.name AS m_name, m.unit AS m_unit, m.status AS m_status, \
         ap.name AS ap_name, ap.back_window AS ap_back_window, ap.definition AS ap_definition, \
         ap.aggregation_methods AS ap_aggregation_methods, {} FROM {METRIC_FROM}",
        resource_select("r", "r_")
    )
}

fn metric_from_row(row: &sqlx::any::AnyRow) -> Result<Metric> {
    let resource_id = get_text(row, "m_resource_id")?.and_then(|s| Uuid::parse_str(&s).ok());
    let resource = if resource_id.is_some() && get_text(row, "r_id")?.is_some() {
        Some(resource_from_row(row, "r_")?)
    } else {
        None
    };
    Ok(Metric {
        id: Uuid::parse_str(&get_string(row, "m_id")?).unwrap_or_default(),
        compact_id: get_i64(row, "m_seq")?.unwrap_or(0) as u32,
        name: get_text(row, "m_name")?,
        unit: get_text(row, "m_unit")?,
        archive_policy_name: get_string(row, "m_archive_policy_name")?,
        archive_policy: policy_from_row(row, "ap_")?,
        creator: get_string(row, "m_creator")?,
        resource_id,
        resource,
        status: if get_string(row, "m_status")? == "delete" {
            MetricStatus::Delete
        } else {
            MetricStatus::Active
        },
    })
}

fn metric_sort_col(key: &SortKey) -> Result<OrderCol> {
    let (expr, kind, nullable) = match key.attr.as_str() {
        "id" => ("m.id", ValueKind::Text, false),
        "name" => ("m.name", ValueKind::Text, true),
        "unit" => ("m.unit", ValueKind::Text, true),
        "archive_policy_name" => ("m.archive_policy_name", ValueKind::Text, false),
        "creator" => ("m.creator", ValueKind::Text, false),
        "resource_id" => ("m.resource_id", ValueKind::Text, true),
        "status" => ("m.status", ValueKind::Text, false),
        other => {
            return Err(IndexerError::query(
                crate::search::invalid_sort_key(other),
                Some(other),
            ));
        }
    };
    Ok(OrderCol::new(expr, kind, nullable, key))
}

impl Indexer {
    /// Creates a metric (see [`NewMetric`]).
    pub async fn create_metric(&self, m: &NewMetric) -> Result<Metric> {
        let mut tx = self.begin().await?;
        let id = self.insert_metric(&mut tx, m).await?;
        let metric = self.get_metric_tx(&mut tx, id).await?;
        tx.commit().await?;
        metric.ok_or(IndexerError::NoSuchMetric(id))
    }

    pub(crate) async fn insert_metric(&self, tx: &mut Conn, m: &NewMetric) -> Result<Uuid> {
        if let Some(name) = &m.name {
            if name.contains('/') {
                return Err(IndexerError::InvalidMetricName(name.clone()));
            }
        }
        let policy = match &m.archive_policy_name {
            Some(p) => p.clone(),
            None => match self
                .match_rule_tx(tx, m.name.as_deref().unwrap_or("None"))
                .await?
            {
                Some(rule) => rule.archive_policy_name,
                None => {
                    return Err(IndexerError::NoArchivePolicyRuleMatch(
                        m.name.clone().unwrap_or_else(|| "None".into()),
                    ))
                }
            },
        };
        if self
            .fetch_optional(
                tx,
                &Sql::new("SELECT name FROM archive_policy WHERE name = ?").arg(&policy),
            )
            .await?
            .is_none()
        {
            return Err(IndexerError::NoSuchArchivePolicy(policy));
        }
        if let Some(rid) = m.resource_id {
            if self
                .fetch_optional(
                    tx,
                    &Sql::new("SELECT id FROM resource WHERE id = ?").arg(rid),
                )
                .await?
                .is_none()
            {
                return Err(IndexerError::NoSuchResource(rid.to_string()));
            }
        }
        if let (Some(name), Some(rid)) = (&m.name, m.resource_id) {
            let sql = Sql::new("SELECT id FROM metric WHERE resource_id = ? AND name = ?")
                .arg(rid)
                .arg(name);
            if self.fetch_optional(tx, &sql).await?.is_some() {
                return Err(IndexerError::NamedMetricAlreadyExists {
                    name: name.clone(),
                    resource_id: rid,
                });
            }
        }
        let id = m.id.unwrap_or_else(Uuid::new_v4);
        let sql = Sql::new(
            "INSERT INTO metric (id, archive_policy_name, creator, resource_id, name, unit, status) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .arg(id)
        .arg(&policy)
        .arg(&m.creator)
        .arg(m.resource_id)
        .arg(m.name.clone())
        .arg(m.unit.clone())
        .arg("active");
        match self.execute(tx, &sql).await {
            Ok(_) => Ok(id),
            // A concurrent insert of the same name (the check above ran first).
            Err(IndexerError::Database(e)) if violation(&e) == Some(Violation::Unique) => {
                match (&m.name, m.resource_id) {
                    (Some(name), Some(rid)) if m.id.is_none() => {
                        Err(IndexerError::NamedMetricAlreadyExists {
                            name: name.clone(),
                            resource_id: rid,
                        })
                    }
                    _ => Err(IndexerError::Database(e)),
                }
            }
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn get_metric_tx(&self, tx: &mut Conn, id: Uuid) -> Result<Option<Metric>> {
        let row = self
            .fetch_optional(
                tx,
                &Sql::new(format!("{} WHERE m.id = ?", metric_select())).arg(id),
            )
            .await?;
        row.map(|r| metric_from_row(&r)).transpose()
    }

    /// The metric `id`, whatever its status.
    pub async fn get_metric(&self, id: Uuid) -> Result<Metric> {
        let row = self
            .read_optional(&Sql::new(format!("{} WHERE m.id = ?", metric_select())).arg(id))
            .await?;
        match row {
            Some(r) => metric_from_row(&r),
            None => Err(IndexerError::NoSuchMetric(id)),
        }
    }

    /// Metrics by UUID, in no particular order; unknown ids are left out.
    pub async fn get_metrics(&self, ids: &[Uuid]) -> Result<Vec<Metric>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut sql = Sql::new(format!("{} WHERE m.id IN (", metric_select()));
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.value(*id);
            }
            sql.push(")");
            for r in self.read_all(&sql).await? {
                out.push(metric_from_row(&r)?);
            }
        }
        Ok(out)
    }

    /// The metric whose compact id is `compact_id`.
    pub async fn get_metric_by_compact_id(&self, compact_id: u32) -> Result<Option<Metric>> {
        let row = self
            .read_optional(
                &Sql::new(format!("{} WHERE m.seq = ?", metric_select())).arg(compact_id as i64),
            )
            .await?;
        row.map(|r| metric_from_row(&r)).transpose()
    }

    /// The metric named `name` of resource `resource_id` (active only).
    pub async fn get_resource_metric(
        &self,
        resource_id: Uuid,
        name: &str,
    ) -> Result<Option<Metric>> {
        let mut tx = self.conn().await?;
        let row = self
            .fetch_optional(
                &mut tx,
                &Sql::new(format!(
                    "{} WHERE m.resource_id = ? AND m.name = ? AND m.status = ?",
                    metric_select()
                ))
                .arg(resource_id)
                .arg(name)
                .arg("active"),
            )
            .await?;
        row.map(|r| metric_from_row(&r)).transpose()
    }

    /// Lists metrics matching `filter`, ordered by `page.sort` (default `id:asc`; `id` is
    /// always the final tie-breaker), after `page.marker` (a metric id).
    pub async fn list_metrics(
        &self,
        filter: &MetricFilter,
        page: &Pagination,
    ) -> Result<Vec<Metric>> {
        let mut cols = page
            .sort
            .iter()
            .map(metric_sort_col)
            .collect::<Result<Vec<_>>>()?;
        if !page.sort.iter().any(|k| k.attr == "id") {
            cols.push(metric_sort_col(&SortKey::asc("id"))?);
        }
        let mut where_ = Sql::new(" WHERE m.status = ?");
        where_.bind(filter.status.unwrap_or(MetricStatus::Active).as_str());
        if !filter.ids.is_empty() {
            where_.push(" AND m.id IN (");
            for (i, id) in filter.ids.iter().enumerate() {
                if i > 0 {
                    where_.push(", ");
                }
                where_.value(*id);
            }
            where_.push(")");
        }
        for (col, v) in [
            ("m.name", &filter.name),
            ("m.unit", &filter.unit),
            ("m.archive_policy_name", &filter.archive_policy_name),
            ("m.creator", &filter.creator),
        ] {
            if let Some(v) = v {
                where_.push(&format!(" AND {col} = ")).value(v);
            }
        }
        // The creator is `user:project`; ids are matched literally (a `%` in a
        // project id must not widen a caller's view to every project).
        if let Some(u) = &filter.user_id {
            where_
                .push(" AND (m.creator = ")
                .value(u)
                .push(" OR m.creator LIKE ")
                .value(format!("{}:%", literal_like(u)))
                .push(LITERAL_LIKE_ESCAPE)
                .push(")");
        }
        if let Some(p) = &filter.project_id {
            where_
                .push(" AND m.creator LIKE ")
                .value(format!("%:{}", literal_like(p)))
                .push(LITERAL_LIKE_ESCAPE);
        }
        if let Some(r) = filter.resource_id {
            where_.push(" AND m.resource_id = ").value(r);
        }
        let mut tx = self.conn().await?;
        if let Some(marker) = &page.marker {
            let mid = Uuid::parse_str(marker)
                .map_err(|_| IndexerError::InvalidPagination(marker.clone()))?;
            let mut msql = Sql::new("SELECT ");
            for (i, c) in cols.iter().enumerate() {
                if i > 0 {
                    msql.push(", ");
                }
                msql.push(&format!("{} AS k{i}", c.expr));
            }
            msql.push(&format!(" FROM {METRIC_FROM} WHERE m.id = "))
                .value(mid);
            let Some(mrow) = self.fetch_optional(&mut tx, &msql).await? else {
                return Err(IndexerError::InvalidPagination(marker.clone()));
            };
            let values = crate::search::marker_values(&mrow, &cols)?;
            where_.push(" AND ").append(keyset(&cols, &values));
        }
        let mut sql = Sql::new(metric_select());
        sql.append(where_);
        sql.push(&order_by(&cols));
        if let Some(limit) = page.limit {
            sql.push(" LIMIT ").value(limit as i64);
        }
        let rows = self.fetch_all(&mut tx, &sql).await?;
        rows.iter().map(metric_from_row).collect()
    }

    /// Marks metric `id` for deletion (and detaches it from its resource). Deleting a
    /// metric already marked is [`IndexerError::NoSuchMetric`], as in Gnocchi.
    pub async fn delete_metric(&self, id: Uuid) -> Result<()> {
        let mut tx = self.begin().await?;
        let row = self
            .fetch_optional(
                &mut tx,
                &Sql::new("SELECT status FROM metric WHERE id = ?").arg(id),
            )
            .await?;
        match row {
            Some(r) if get_string(&r, "status")? == "active" => {}
            _ => return Err(IndexerError::NoSuchMetric(id)),
        }
        self.execute(
            &mut tx,
            &Sql::new("UPDATE metric SET status = ?, resource_id = ? WHERE id = ?")
                .arg("delete")
                .arg(Arg::Text(None))
                .arg(id),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Metrics marked for deletion, for the janitor.
    pub async fn list_metrics_to_delete(&self) -> Result<Vec<Metric>> {
        let filter = MetricFilter {
            status: Some(MetricStatus::Delete),
            ..Default::default()
        };
        self.list_metrics(&filter, &Pagination::default()).await
    }

    /// Removes metric `id` for good (after the janitor deleted its data).
    pub async fn expunge_metric(&self, id: Uuid) -> Result<()> {
        let mut tx = self.begin().await?;
        let n = self
            .execute(
                &mut tx,
                &Sql::new("DELETE FROM metric WHERE id = ?").arg(id),
            )
            .await?;
        if n == 0 {
            return Err(IndexerError::NoSuchMetric(id));
        }
        tx.commit().await?;
        Ok(())
    }
}
