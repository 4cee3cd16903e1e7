//! Aggregate storage: each metric's unaggregated tail and its aggregated
//! splits, as objects in an [`object_store::ObjectStore`].
//!
//! # Brief overview
//!
//! [`AggregateStore`] is a cheap-`Clone` handle over an
//! `Arc<dyn ObjectStore>`: a local directory (the embedded default, through
//! the slotted backend described in `slotted.rs`), S3 or any S3-compatible
//! server, or memory (tests), chosen by URL in [`AggregateStore::open`].
//! Object names are built and parsed only in [`keys`]: `<metric>/tail.v2`
//! and `<metric>/<granularity>_<start>.v2`, one object per
//! `(granularity, split)` holding every method (the bytes are carbonara's
//! [`carbonara::codec`]).
//!
//! The primitives read and write carbonara types, never bytes: tails
//! ([`TailBlock`]), splits ([`AggregatedSplit`], shared as `Arc`s through the
//! decoded-split [`cache`]), split lists, deletions. On top of them:
//!
//! - [`AggregateStore::apply_measures`] (in `update.rs`) is metricd's step for
//!   one metric and one batch: merge into the tail, recompute what changed,
//!   rewrite only the affected splits and the tail, drop splits past the
//!   timespan. Re-applying a batch gives the same stored aggregates.
//! - [`AggregateStore::read_aggregates`] answers
//!   `GET /v1/metric/{id}/measures`: per granularity (coarsest first), the
//!   points of one method in `[start, stop)`, truncated to the timespan.
//!
//! Absence is normal and not an error: a metric without measures has no tail
//! and no splits. On a local directory, an object whose first write a power
//! loss cut short (before the next [`AggregateStore::sync`]) also reads as
//! absent: it was written by an apply whose measures are all still pending,
//! so re-applying rebuilds it instead of stopping the sack on a corrupt
//! object. Every other failure is a [`StorageError`] naming the object; a
//! corrupt object is reported, never a panic.

pub mod cache;
mod error;
pub mod keys;
mod slotted;
mod update;

use std::sync::Arc;

use carbonara::codec::{
    decode_split_into, decode_tail, encode_split, encode_tail, SplitBlock, TailBlock,
};
use carbonara::split::{AggregatedSplit, SplitKey};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, PutPayload};
use uuid::Uuid;

pub use cache::{CacheStats, Coherence, SplitCache};
pub use error::{CorruptObject, StorageError};
pub use update::{ApplyOutcome, StageJob, StagedTail};

thread_local! {
    /// Split decode/encode buffer of this thread (never held across an await).
    static SCRATCH_BLOCK: std::cell::RefCell<SplitBlock> =
        std::cell::RefCell::new(SplitBlock::default());
}

/// Default number of object requests one call keeps in flight.
pub const DEFAULT_CONCURRENCY: usize = 32;

/// Handle on the aggregate storage; see the module docs. Clones share the
/// object store and the cache.
#[derive(Clone)]
pub struct AggregateStore {
    store: Arc<dyn ObjectStore>,
    cache: SplitCache,
    coherence: Coherence,
    concurrency: usize,
    durability: Durability,
}

/// When writes reach stable storage; [`AggregateStore::sync`] is the one
/// place that waits for it.
#[derive(Clone, Debug)]
enum Durability {
    /// Every write is durable when it returns (S3, and memory where there
    /// is nothing more to wait for).
    OnWrite,
    /// A local directory ([`slotted`]): writes land in the page cache and
    /// one `syncfs(2)` makes all of them durable at once, a journal commit
    /// per processing pass instead of an fsync (and a directory fsync) per
    /// object, which cost ten times the aggregation itself. With
    /// `fsync=false` nothing is forced to disk (throwaway data).
    Local(slotted::SlotDir),
}

impl std::fmt::Debug for AggregateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateStore")
            .field("store", &format_args!("{}", self.store))
            .field("cache", &self.cache)
            .field("coherence", &self.coherence)
            .field("concurrency", &self.concurrency)
            .field("durability", &self.durability)
            .finish()
    }
}

fn redact(url: &str) -> String {
    url.split('?').next().unwrap_or_default().to_owned()
}

impl AggregateStore {
    /// A store over `store` with the default cache and
    /// [`Coherence::Revalidate`] (safe when other processes write too).
    pub fn new(store: Arc<dyn ObjectStore>) -> AggregateStore {
        AggregateStore {
            store,
            cache: SplitCache::new(cache::DEFAULT_CAPACITY_BYTES),
            coherence: Coherence::Revalidate,
            concurrency: DEFAULT_CONCURRENCY,
            durability: Durability::OnWrite,
        }
    }

    /// Opens the storage named by `url`:
    ///
    /// - `memory://`: a fresh in-memory store (tests), [`Coherence::Exclusive`];
    /// - `file:///path` or a plain path: a directory (created if missing),
    ///   writes durable after [`AggregateStore::sync`]; `?fsync=false` turns
    ///   that off;
    /// - `s3://bucket?endpoint=…&region=…&access_key_id=…&secret_access_key=…&allow_http=true`:
    ///   S3 or an S3-compatible server; any `AmazonS3ConfigKey` name is
    ///   accepted as a query parameter, the `AWS_*` environment fills the
    ///   rest, and `prefix=…` keeps every object under that prefix.
    ///
    /// Errors never echo the query string, which may hold secrets.
    pub fn open(url: &str) -> Result<AggregateStore, StorageError> {
        let invalid = |reason: String| StorageError::InvalidUrl {
            url: redact(url),
            reason,
        };
        if !url.contains("://") {
            return AggregateStore::open_dir(std::path::Path::new(url), true, url);
        }
        let parsed = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        let mut params: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut take = |name: &str| {
            let i = params.iter().position(|(k, _)| k == name)?;
            Some(params.remove(i).1)
        };
        match parsed.scheme() {
            "memory" => {
                let mut store = AggregateStore::new(Arc::new(InMemory::new()));
                store.coherence = Coherence::Exclusive;
                Ok(store)
            }
            "file" => {
                let fsync = match take("fsync").as_deref() {
                    None | Some("true") => true,
                    Some("false") => false,
                    Some(other) => {
                        return Err(invalid(format!(
                            "fsync must be true or false, got {other:?}"
                        )))
                    }
                };
                if let Some((k, _)) = params.first() {
                    return Err(invalid(format!("unknown parameter {k:?}")));
                }
                let path = parsed
                    .to_file_path()
                    .map_err(|()| invalid("not an absolute local path".into()))?;
                AggregateStore::open_dir(&path, fsync, url)
            }
            "s3" => {
                let bucket = parsed
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| invalid("no bucket name".into()))?
                    .to_owned();
                let prefix = take("prefix");
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
                for (k, v) in params {
                    let key: AmazonS3ConfigKey = k
                        .parse()
                        .map_err(|_| invalid(format!("unknown S3 parameter {k:?}")))?;
                    builder = builder.with_config(key, v);
                }
                let s3 = builder.build().map_err(|source| StorageError::Open {
                    url: redact(url),
                    source,
                })?;
                let store: Arc<dyn ObjectStore> = match prefix {
                    Some(p) if !p.is_empty() => Arc::new(PrefixStore::new(s3, p)),
                    _ => Arc::new(s3),
                };
                Ok(AggregateStore::new(store))
            }
            other => Err(invalid(format!(
                "unsupported scheme {other:?} (use file://, s3:// or memory://)"
            ))),
        }
    }

    fn open_dir(
        path: &std::path::Path,
        fsync: bool,
        url: &str,
    ) -> Result<AggregateStore, StorageError> {
        let local = slotted::SlotDir::open(path, fsync).map_err(|e| StorageError::InvalidUrl {
            url: redact(url),
            reason: format!("cannot open the directory: {e}"),
        })?;
        let mut store = AggregateStore::new(Arc::new(local.clone()));
        store.durability = Durability::Local(local);
        Ok(store)
    }

    /// Whether this store's I/O is local file access that object_store runs
    /// inline when called outside the async runtime.
    fn inline_io(&self) -> bool {
        matches!(self.durability, Durability::Local(_))
    }

    /// Waits until every write and delete this store has returned from is
    /// on stable storage. Writes are only guaranteed durable after this;
    /// callers that order durability (splits before the tail that makes
    /// them redundant, storage before acknowledging incoming measures) call
    /// it between the steps.
    ///
    /// On a local directory this is one `syncfs(2)`: it flushes the whole
    /// file system holding the directory, so keep the data directory off
    /// file systems with unrelated heavy writers.
    pub async fn sync(&self) -> Result<(), StorageError> {
        let Durability::Local(dir) = &self.durability else {
            return Ok(());
        };
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || dir.sync())
            .await
            .unwrap_or_else(|join| Err(std::io::Error::other(join)))
            .map_err(StorageError::Sync)
    }

    /// Replaces the cache by one of `bytes` capacity (0 disables it).
    pub fn with_cache_capacity(mut self, bytes: u64) -> AggregateStore {
        self.cache = SplitCache::new(bytes);
        self
    }

    /// Sets how far the cache is trusted; [`Coherence::Exclusive`] only when
    /// no other process writes this storage.
    pub fn with_coherence(mut self, coherence: Coherence) -> AggregateStore {
        self.coherence = coherence;
        self
    }

    /// Bounds the object requests one call keeps in flight (at least 1).
    pub fn with_concurrency(mut self, concurrency: usize) -> AggregateStore {
        self.concurrency = concurrency.max(1);
        self
    }

    /// The object store underneath (for janitors, tests and wrappers).
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The split cache (for its statistics).
    pub fn cache(&self) -> &SplitCache {
        &self.cache
    }

    /// The cache coherence mode in force.
    pub fn coherence(&self) -> Coherence {
        self.coherence
    }

    /// The metric's unaggregated tail, or `None` if it has none yet.
    pub async fn read_tail(&self, metric: Uuid) -> Result<Option<TailBlock>, StorageError> {
        let key = keys::tail(metric);
        let fetched = match self.store.get(&key).await {
            Ok(result) => result.bytes().await,
            Err(e) => Err(e),
        };
        let bytes = match fetched {
            Ok(b) => b,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(StorageError::store(&key, e)),
        };
        decode_tail(&bytes)
            .map(Some)
            .map_err(|e| StorageError::corrupt(&key, e))
    }

    /// Replaces the metric's tail; durable after [`AggregateStore::sync`].
    ///
    /// # Panics
    ///
    /// If the block breaks [`encode_tail`]'s contract (unsorted timestamps,
    /// lengths differ): a caller bug, not bad input.
    pub async fn write_tail(&self, metric: Uuid, tail: &TailBlock) -> Result<(), StorageError> {
        let key = keys::tail(metric);
        self.store
            .put(&key, PutPayload::from(encode_tail(tail)))
            .await
            .map_err(|e| StorageError::store(&key, e))?;
        Ok(())
    }

    /// One split, or `None` if it was never written (or was deleted).
    /// Served from the cache when possible; see [`Coherence`].
    pub async fn read_split(
        &self,
        metric: Uuid,
        granularity: i64,
        start: i64,
    ) -> Result<Option<Arc<AggregatedSplit>>, StorageError> {
        let Some(splits) = self.cache.splits() else {
            return Ok(self
                .fetch_split(metric, granularity, start, None)
                .await?
                .into_split());
        };
        let ckey = (metric, granularity, start);
        match self.coherence {
            Coherence::Exclusive => match splits.get_value_or_guard_async(&ckey).await {
                Ok(hit) => {
                    self.cache.count(true);
                    Ok(Some(hit.split))
                }
                Err(guard) => {
                    self.cache.count(false);
                    match self.fetch_split(metric, granularity, start, None).await? {
                        Fetched::Found(value) => {
                            let split = value.split.clone();
                            // Fails harmlessly if a write replaced the placeholder.
                            let _ = guard.insert(value);
                            Ok(Some(split))
                        }
                        Fetched::Missing | Fetched::Unchanged => Ok(None),
                    }
                }
            },
            Coherence::Revalidate => {
                let cached = splits.get(&ckey);
                let e_tag = cached.as_ref().and_then(|c| c.e_tag.clone());
                match self.fetch_split(metric, granularity, start, e_tag).await? {
                    Fetched::Unchanged => {
                        self.cache.count(true);
                        Ok(cached.map(|c| c.split))
                    }
                    Fetched::Found(value) => {
                        self.cache.count(false);
                        let split = value.split.clone();
                        self.cache.put_split(ckey, value);
                        Ok(Some(split))
                    }
                    Fetched::Missing => {
                        self.cache.count(false);
                        self.cache.forget_split(&ckey);
                        Ok(None)
                    }
                }
            }
        }
    }

    /// A split about to be rewritten by this process (see `apply_measures`):
    /// taken out of the cache rather than shared, so that updating it needs
    /// no copy, and not cached when fetched (the write that follows caches
    /// the new version). In [`Coherence::Revalidate`] a cached split is still
    /// revalidated with a conditional GET.
    pub(crate) async fn take_split_for_update(
        &self,
        metric: Uuid,
        granularity: i64,
        start: i64,
    ) -> Result<Option<AggregatedSplit>, StorageError> {
        let ckey = (metric, granularity, start);
        let cached = self
            .cache
            .splits()
            .and_then(|splits| splits.remove(&ckey))
            .map(|(_, v)| v);
        let fetched = match (self.coherence, cached) {
            (Coherence::Exclusive, Some(c)) => {
                self.cache.count(true);
                return Ok(Some(Arc::unwrap_or_clone(c.split)));
            }
            (Coherence::Revalidate, Some(c)) => {
                match self
                    .fetch_split(metric, granularity, start, c.e_tag.clone())
                    .await?
                {
                    Fetched::Unchanged => {
                        self.cache.count(true);
                        return Ok(Some(Arc::unwrap_or_clone(c.split)));
                    }
                    other => other,
                }
            }
            (_, None) => self.fetch_split(metric, granularity, start, None).await?,
        };
        self.cache.count(false);
        Ok(fetched.into_split().map(Arc::unwrap_or_clone))
    }

    /// GETs and decodes a split; with `if_none_match`, a conditional GET.
    async fn fetch_split(
        &self,
        metric: Uuid,
        granularity: i64,
        start: i64,
        if_none_match: Option<Arc<str>>,
    ) -> Result<Fetched, StorageError> {
        let key = keys::split(metric, granularity, start);
        let options = GetOptions::new().with_if_none_match(if_none_match.as_deref());
        let result = match self.store.get_opts(&key, options).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(Fetched::Missing),
            Err(object_store::Error::NotModified { .. }) => return Ok(Fetched::Unchanged),
            Err(e) => return Err(StorageError::store(&key, e)),
        };
        let e_tag = result.meta.e_tag.as_deref().map(Arc::from);
        let bytes = match result.bytes().await {
            Ok(b) => b,
            Err(object_store::Error::NotFound { .. }) => return Ok(Fetched::Missing),
            Err(e) => return Err(StorageError::store(&key, e)),
        };
        // One decode buffer per thread: its column vectors are reused.
        let split = SCRATCH_BLOCK.with_borrow_mut(|block| {
            decode_split_into(&bytes, block).map_err(|e| StorageError::corrupt(&key, e))?;
            AggregatedSplit::from_block(block).map_err(|e| StorageError::corrupt(&key, e))
        })?;
        let found = split.key();
        if found.granularity() != granularity || found.start() != start {
            return Err(StorageError::corrupt(
                &key,
                CorruptObject::KeyMismatch {
                    granularity,
                    start,
                    found_granularity: found.granularity(),
                    found_start: found.start(),
                },
            ));
        }
        Ok(Fetched::Found(cache::CachedSplit {
            split: Arc::new(split),
            e_tag,
        }))
    }

    /// Starts of the metric's splits of `granularity`, increasing. Objects
    /// under the granularity's prefix that are not split keys are ignored;
    /// split keys of an unknown layout version are an error.
    pub async fn list_splits(
        &self,
        metric: Uuid,
        granularity: i64,
    ) -> Result<Vec<i64>, StorageError> {
        if self.coherence == Coherence::Exclusive {
            if let Some(index) = self.cache.index() {
                let ikey = (metric, granularity);
                return match index.get_value_or_guard_async(&ikey).await {
                    Ok(starts) => Ok((*starts).clone()),
                    Err(guard) => {
                        let starts = self.list_split_objects(metric, granularity, None).await?;
                        let _ = guard.insert(Arc::new(starts.clone()));
                        Ok(starts)
                    }
                };
            }
        }
        self.list_split_objects(metric, granularity, None).await
    }

    /// Lists split objects, starting after `offset` (a split start) when
    /// given: the object stores that can push the offset down skip the rest.
    async fn list_split_objects(
        &self,
        metric: Uuid,
        granularity: i64,
        from_start: Option<i64>,
    ) -> Result<Vec<i64>, StorageError> {
        let prefix = keys::metric_prefix(metric);
        let listing = match from_start {
            Some(start) => {
                let offset = keys::split_offset(metric, granularity, start);
                self.store.list_with_offset(Some(&prefix), &offset)
            }
            None => self.store.list(Some(&prefix)),
        };
        let metas: Vec<_> = listing
            .try_collect()
            .await
            .map_err(|e| StorageError::store(&prefix, e))?;
        let mut starts = Vec::with_capacity(metas.len());
        for meta in metas {
            let Some(name) = meta.location.filename() else {
                continue;
            };
            match keys::parse_split_name(name) {
                Ok((g, start)) if g == granularity => starts.push(start),
                Ok(_) => {}
                Err(keys::KeyError::Malformed(_)) => {
                    tracing::debug!(key = %meta.location, "ignoring unexpected object");
                }
                Err(e @ keys::KeyError::UnknownVersion { .. }) => {
                    return Err(StorageError::UnknownLayout {
                        key: meta.location.to_string(),
                        source: e,
                    })
                }
            }
        }
        starts.sort_unstable();
        starts.dedup();
        Ok(starts)
    }

    /// The splits of `granularity` overlapping `[start, stop)` (either bound
    /// optional), by increasing start: one listing, then parallel reads
    /// (through the cache). A split deleted between the two is left out.
    pub async fn read_splits(
        &self,
        metric: Uuid,
        granularity: i64,
        start: Option<i64>,
        stop: Option<i64>,
    ) -> Result<Vec<Arc<AggregatedSplit>>, StorageError> {
        let starts = self
            .splits_in_range(metric, granularity, start, stop)
            .await?;
        self.read_split_set(metric, granularity, &starts).await
    }

    /// Starts of the stored splits overlapping `[start, stop)`.
    async fn splits_in_range(
        &self,
        metric: Uuid,
        granularity: i64,
        start: Option<i64>,
        stop: Option<i64>,
    ) -> Result<Vec<i64>, StorageError> {
        let first = match start {
            Some(s) => Some(
                SplitKey::containing(s, granularity)
                    .map_err(|e| StorageError::corrupt(keys::metric_prefix(metric), e))?
                    .start(),
            ),
            None => None,
        };
        let mut starts = if self.coherence == Coherence::Exclusive && self.cache.is_enabled() {
            self.list_splits(metric, granularity).await?
        } else {
            self.list_split_objects(metric, granularity, first).await?
        };
        starts.retain(|&s| first.is_none_or(|f| s >= f) && stop.is_none_or(|t| s < t));
        Ok(starts)
    }

    /// Reads the given splits in parallel (bounded), in the given order,
    /// leaving out missing ones.
    async fn read_split_set(
        &self,
        metric: Uuid,
        granularity: i64,
        starts: &[i64],
    ) -> Result<Vec<Arc<AggregatedSplit>>, StorageError> {
        let found: Vec<Option<Arc<AggregatedSplit>>> = stream::iter(starts.iter().copied())
            .map(|s| self.read_split(metric, granularity, s))
            .buffered(self.concurrency)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// Writes splits in parallel (bounded); durable after [`AggregateStore::sync`], and
    /// visible to this store's readers through the cache. Splits of any
    /// granularity may be mixed.
    pub async fn write_splits(
        &self,
        metric: Uuid,
        splits: Vec<AggregatedSplit>,
    ) -> Result<(), StorageError> {
        stream::iter(splits)
            .map(|split| self.write_split(metric, split))
            .buffer_unordered(self.concurrency)
            .try_collect::<()>()
            .await
    }

    async fn write_split(&self, metric: Uuid, split: AggregatedSplit) -> Result<(), StorageError> {
        let k = split.key();
        let key = keys::split(metric, k.granularity(), k.start());
        let bytes = SCRATCH_BLOCK.with_borrow_mut(|block| {
            split.to_block_into(block);
            encode_split(block)
        });
        let put = self
            .store
            .put(&key, PutPayload::from(bytes))
            .await
            .map_err(|e| StorageError::store(&key, e))?;
        self.cache.put_split(
            (metric, k.granularity(), k.start()),
            cache::CachedSplit {
                split: Arc::new(split),
                e_tag: put.e_tag.as_deref().map(Arc::from),
            },
        );
        self.cache
            .edit_index((metric, k.granularity()), |s| s.push(k.start()));
        Ok(())
    }

    /// Deletes the named splits of `granularity` (missing ones are fine).
    pub async fn delete_splits(
        &self,
        metric: Uuid,
        granularity: i64,
        starts: &[i64],
    ) -> Result<(), StorageError> {
        let paths: Vec<Path> = starts
            .iter()
            .map(|&s| keys::split(metric, granularity, s))
            .collect();
        self.delete_paths(paths).await?;
        for &s in starts {
            self.cache.forget_split(&(metric, granularity, s));
        }
        self.cache
            .edit_index((metric, granularity), |v| v.retain(|s| !starts.contains(s)));
        Ok(())
    }

    /// Deletes every split of `granularity` that ends at or before `cutoff`
    /// (holds only timestamps `< cutoff`), as truncation and the janitor
    /// need; returns how many were deleted.
    pub async fn delete_splits_before(
        &self,
        metric: Uuid,
        granularity: i64,
        cutoff: i64,
    ) -> Result<usize, StorageError> {
        let starts = self.list_split_objects(metric, granularity, None).await?;
        let doomed: Vec<i64> = starts
            .into_iter()
            .filter(|&s| SplitKey::new(s, granularity).is_ok_and(|k| k.end() <= cutoff))
            .collect();
        self.delete_splits(metric, granularity, &doomed).await?;
        Ok(doomed.len())
    }

    /// Granularities (ns) the metric has splits of, increasing.
    pub async fn granularities(&self, metric: Uuid) -> Result<Vec<i64>, StorageError> {
        let prefix = keys::metric_prefix(metric);
        let names: Vec<Path> = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| StorageError::store(&prefix, e))?;
        let mut out: Vec<i64> = names
            .iter()
            .filter_map(|p| keys::parse_split_name(p.filename()?).ok())
            .map(|(g, _)| g)
            .collect();
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Deletes every object of the metric (tail and splits); returns how many
    /// objects were deleted. Idempotent.
    pub async fn delete_metric(&self, metric: Uuid) -> Result<usize, StorageError> {
        let prefix = keys::metric_prefix(metric);
        let paths: Vec<Path> = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| StorageError::store(&prefix, e))?;
        let n = paths.len();
        self.delete_paths(paths).await?;
        self.cache.forget_metric(metric);
        Ok(n)
    }

    async fn delete_paths(&self, paths: Vec<Path>) -> Result<(), StorageError> {
        if paths.is_empty() {
            return Ok(());
        }
        let input = stream::iter(paths.into_iter().map(Ok)).boxed();
        let mut results = self.store.delete_stream(input);
        while let Some(r) = results.next().await {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(StorageError::store("(batch delete)", e)),
            }
        }
        Ok(())
    }
}

/// Outcome of one (conditional) split GET.
enum Fetched {
    Found(cache::CachedSplit),
    Missing,
    Unchanged,
}

impl Fetched {
    fn into_split(self) -> Option<Arc<AggregatedSplit>> {
        match self {
            Fetched::Found(c) => Some(c.split),
            Fetched::Missing | Fetched::Unchanged => None,
        }
    }
}
