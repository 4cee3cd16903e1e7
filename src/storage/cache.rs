//! In-memory caches in front of the object store: decoded splits, and the
//! list of split starts per `(metric, granularity)`.
//!
//! [`SplitCache`] holds `Arc<AggregatedSplit>`s keyed by
//! `(metric, granularity, split start)`, bounded by their decoded size in
//! bytes ([`AggregatedSplit::memory_bytes`]: 8 bytes per method for each slot
//! of the split's window, at most 28 KiB per method) and evicted by `quick_cache`'s CLOCK-Pro policy. Values
//! are shared: every reader of a hot split gets the same `Arc`, and
//! concurrent misses on one key wait for a single fetch and decode
//! (`get_value_or_guard_async`).
//!
//! Coherence: [`super::AggregateStore`] updates both caches after each of its
//! own writes and deletes (inserting a value replaces a pending load of that
//! key, whose stale result is then discarded). Writes made by *another*
//! process are not seen, which is why the store either trusts the cache only
//! when it is the sole writer ([`Coherence::Exclusive`]) or revalidates each
//! cached split with a conditional GET on its ETag
//! ([`Coherence::Revalidate`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use carbonara::split::{AggregatedSplit, SPLIT_SLOTS};
use quick_cache::sync::Cache;
use quick_cache::Weighter;
use uuid::Uuid;

/// Default bound of the split cache: 256 MiB of decoded splits.
pub const DEFAULT_CAPACITY_BYTES: u64 = 256 << 20;

/// How much the cache may trust itself; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coherence {
    /// This process is the only writer of the storage (`gnocchid serve`, or
    /// the in-memory backend): cached splits and split lists are used without
    /// asking the object store.
    Exclusive,
    /// Other processes may write: a cached split is used only after a
    /// conditional GET (`If-None-Match`) says it is unchanged, and split lists
    /// are always listed.
    Revalidate,
}

/// `(metric, granularity, split start)`.
pub type SplitCacheKey = (Uuid, i64, i64);

/// A decoded split and the ETag of the object it was read from or written as.
#[derive(Debug, Clone)]
pub struct CachedSplit {
    /// The decoded split, shared by every reader.
    pub split: Arc<AggregatedSplit>,
    /// The object's ETag, when the backend reports one.
    pub e_tag: Option<Arc<str>>,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SplitWeighter;

impl Weighter<SplitCacheKey, CachedSplit> for SplitWeighter {
    fn weight(&self, _key: &SplitCacheKey, value: &CachedSplit) -> u64 {
        value.split.memory_bytes()
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct IndexWeighter;

impl Weighter<(Uuid, i64), Arc<Vec<i64>>> for IndexWeighter {
    fn weight(&self, _key: &(Uuid, i64), value: &Arc<Vec<i64>>) -> u64 {
        64 + value.len() as u64 * 8
    }
}

pub(crate) type SplitMap = Cache<SplitCacheKey, CachedSplit, SplitWeighter>;
pub(crate) type IndexMap = Cache<(Uuid, i64), Arc<Vec<i64>>, IndexWeighter>;

/// The decoded-split cache and the split-list cache of one
/// [`super::AggregateStore`] (shared by its clones). Capacity zero disables
/// both.
#[derive(Clone)]
pub struct SplitCache {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    splits: SplitMap,
    index: IndexMap,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for SplitCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            None => f.write_str("SplitCache(disabled)"),
            Some(inner) => f
                .debug_struct("SplitCache")
                .field("splits", &inner.splits.len())
                .field("weight", &inner.splits.weight())
                .field("capacity", &inner.splits.capacity())
                .field("indexed", &inner.index.len())
                .finish(),
        }
    }
}

/// Hit and miss counters of the split cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Splits held.
    pub splits: usize,
    /// Their estimated decoded bytes.
    pub bytes: u64,
    /// Lookups answered from memory.
    pub hits: u64,
    /// Lookups that went to the object store.
    pub misses: u64,
}

impl SplitCache {
    /// A cache bounded to about `capacity_bytes` of decoded splits (plus a
    /// 1/16 share of that for split lists); zero disables caching.
    pub fn new(capacity_bytes: u64) -> SplitCache {
        if capacity_bytes == 0 {
            return SplitCache { inner: None };
        }
        // Sizes the cache's bookkeeping only: six methods over a quarter of
        // a split, between a fresh split and a full one.
        let per_split = 256 + 6 * (u64::from(SPLIT_SLOTS) * 2 + 64);
        let estimated = (capacity_bytes / per_split).clamp(16, 1 << 20) as usize;
        SplitCache {
            inner: Some(Arc::new(Inner {
                splits: Cache::with_weighter(estimated, capacity_bytes, SplitWeighter),
                index: Cache::with_weighter(
                    estimated,
                    (capacity_bytes / 16).max(1 << 16),
                    IndexWeighter,
                ),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            })),
        }
    }

    /// True when caching is on.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    pub(crate) fn splits(&self) -> Option<&SplitMap> {
        self.inner.as_deref().map(|i| &i.splits)
    }

    pub(crate) fn index(&self) -> Option<&IndexMap> {
        self.inner.as_deref().map(|i| &i.index)
    }

    pub(crate) fn count(&self, hit: bool) {
        if let Some(inner) = &self.inner {
            let counter = if hit { &inner.hits } else { &inner.misses };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records a split this process just wrote (replacing any pending load).
    pub(crate) fn put_split(&self, key: SplitCacheKey, value: CachedSplit) {
        if let Some(splits) = self.splits() {
            splits.insert(key, value);
        }
    }

    /// Forgets a split (deleted, or found missing).
    pub(crate) fn forget_split(&self, key: &SplitCacheKey) {
        if let Some(splits) = self.splits() {
            splits.remove(key);
        }
    }

    /// Applies a change to the cached list of split starts of
    /// `(metric, granularity)`: updated in place when cached, otherwise any
    /// pending load is cancelled so that it cannot cache a pre-change list.
    pub(crate) fn edit_index(&self, key: (Uuid, i64), edit: impl FnOnce(&mut Vec<i64>)) {
        let Some(index) = self.index() else { return };
        match index.get(&key) {
            Some(current) => {
                let mut starts = (*current).clone();
                edit(&mut starts);
                starts.sort_unstable();
                starts.dedup();
                index.insert(key, Arc::new(starts));
            }
            None => {
                index.remove(&key);
            }
        }
    }

    /// Forgets every split list of a metric (the metric was deleted).
    pub(crate) fn forget_metric(&self, metric: Uuid) {
        if let Some(inner) = &self.inner {
            inner.index.retain(|k, _| k.0 != metric);
            inner.splits.retain(|k, _| k.0 != metric);
        }
    }

    /// Current counters.
    pub fn stats(&self) -> CacheStats {
        match &self.inner {
            None => CacheStats::default(),
            Some(inner) => CacheStats {
                splits: inner.splits.len(),
                bytes: inner.splits.weight(),
                hits: inner.hits.load(Ordering::Relaxed),
                misses: inner.misses.load(Ordering::Relaxed),
            },
        }
    }
}
