//! Metric metadata in memory, in front of the indexer.
//!
//! Every write looks its metric up (to check it exists, whose it is, and its
//! compact id), and metricd looks metrics up by compact id for every batch it
//! processes: both hit this cache instead of the database. Entries are
//! dropped when this process deletes a metric or changes an archive policy;
//! another process's deletion is noticed by metricd, which drops measures of
//! metrics the index no longer knows.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use carbonara::archive_policy::ArchivePolicy;
use indexer::{Indexer, IndexerError, Metric, MetricStatus};
use uuid::Uuid;

use crate::archive_policy::from_record;

/// What the hot paths need to know about a metric.
#[derive(Debug)]
pub struct CachedMetric {
    pub metric: Metric,
    /// Shared so that metricd can hand it to storage work without a copy.
    pub policy: Arc<ArchivePolicy>,
}

/// Failures of a cached lookup.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error(transparent)]
    Indexer(#[from] IndexerError),
    #[error("archive policy {name} of metric {metric} is invalid: {reason}")]
    BadPolicy {
        metric: Uuid,
        name: String,
        reason: String,
    },
}

#[derive(Debug, Default)]
struct Maps {
    by_id: HashMap<Uuid, Arc<CachedMetric>>,
    by_seq: HashMap<u32, Arc<CachedMetric>>,
}

/// A read-mostly cache of active metrics by UUID and by compact id.
#[derive(Debug)]
pub struct MetricCache {
    indexer: Indexer,
    maps: RwLock<Maps>,
}

impl MetricCache {
    pub fn new(indexer: Indexer) -> Self {
        Self {
            indexer,
            maps: RwLock::new(Maps::default()),
        }
    }

    /// The active metric `id`, from memory when possible.
    pub async fn by_id(&self, id: Uuid) -> Result<Arc<CachedMetric>, LookupError> {
        if let Some(hit) = self.read().by_id.get(&id) {
            return Ok(hit.clone());
        }
        let metric = self.indexer.get_metric(id).await?;
        if metric.status != MetricStatus::Active {
            return Err(IndexerError::NoSuchMetric(id).into());
        }
        self.insert(metric)
    }

    /// The active metric with compact id `seq`, or `None` if the index no
    /// longer has it.
    pub async fn by_seq(&self, seq: u32) -> Result<Option<Arc<CachedMetric>>, LookupError> {
        if let Some(hit) = self.read().by_seq.get(&seq) {
            return Ok(Some(hit.clone()));
        }
        match self.indexer.get_metric_by_compact_id(seq).await? {
            Some(metric) if metric.status == MetricStatus::Active => self.insert(metric).map(Some),
            _ => Ok(None),
        }
    }

    /// Forgets one metric (deleted by this process).
    pub fn evict(&self, id: Uuid) {
        let mut maps = self.write();
        if let Some(entry) = maps.by_id.remove(&id) {
            maps.by_seq.remove(&entry.metric.compact_id);
        }
    }

    /// Forgets everything (an archive policy changed).
    pub fn clear(&self) {
        *self.write() = Maps::default();
    }

    /// Remembers a metric this process just created or read, so that the
    /// first measures for it do not cost a query.
    pub fn insert(&self, metric: Metric) -> Result<Arc<CachedMetric>, LookupError> {
        if metric.status != MetricStatus::Active {
            return Err(IndexerError::NoSuchMetric(metric.id).into());
        }
        let policy = from_record(&metric.archive_policy).map_err(|err| LookupError::BadPolicy {
            metric: metric.id,
            name: metric.archive_policy_name.clone(),
            reason: err.to_string(),
        })?;
        let entry = Arc::new(CachedMetric {
            metric,
            policy: Arc::new(policy),
        });
        let mut maps = self.write();
        maps.by_id.insert(entry.metric.id, entry.clone());
        maps.by_seq.insert(entry.metric.compact_id, entry.clone());
        Ok(entry)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.maps
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.maps
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
