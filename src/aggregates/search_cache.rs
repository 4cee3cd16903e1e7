//! Resource searches and resource types resolved for `/v1/aggregates`, kept in
//! memory for the queries alarm evaluators repeat.
//!
//! Aodh evaluates every alarm each minute with the same request: one search
//! (often on one resource id) and a few minutes of one metric. Without a cache
//! each request costs three or four index round trips (the type, the search,
//! the resources' metrics), and the embedded SQLite index serves them on one
//! connection, which caps the rate well below what the rest of the request
//! costs.
//!
//! Coherence: every entry is stamped with [`indexer::Indexer::generation`] as
//! read *before* the index was queried, and is used only while the generation
//! is unchanged. Any write this process commits to the index (a resource
//! created, patched or deleted, a metric added or deleted, a type changed, a
//! policy changed) advances the generation, so the next request searches
//! again. Writes by *another* process are invisible to that counter, so the
//! cache is enabled only where this process is the index's sole writer: the
//! embedded SQLite index of `gnocchid serve`. With a shared PostgreSQL or
//! MySQL index ([`SearchCache::disabled`]) every request searches.
//!
//! Results that depend on the clock are never cached: a filter naming a time
//! attribute (`started_at`, `ended_at`, `revision_start`, `revision_end`, or
//! a `datetime` attribute of the type) may compare against "now" or a
//! relative time, and would go stale without any write. (`lifespan` compares
//! a duration, and open resources have none.)

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, RwLock};

use indexer::{AttributeSchema, AttributeType, Filter, Resource, ResourceType};
use quick_cache::sync::Cache;

/// Generic columns whose comparisons may depend on the time of the request.
const TIME_COLUMNS: [&str; 4] = ["started_at", "ended_at", "revision_start", "revision_end"];

#[derive(Debug, Clone)]
struct Stamped<T> {
    generation: u64,
    value: T,
}

/// The cache; see the module docs.
#[derive(Debug)]
pub struct SearchCache {
    enabled: bool,
    searches: Cache<String, Stamped<Arc<Vec<Resource>>>>,
    types: RwLock<HashMap<String, Stamped<Arc<ResourceType>>>>,
}

/// What identifies a search: everything [`indexer::Indexer::search_resources`]
/// is given.
#[derive(Debug, Clone, Copy)]
pub struct SearchKey<'a> {
    pub type_name: &'a str,
    /// The caller's filter combined with the access policy's.
    pub filter: Option<&'a Filter>,
    pub history: bool,
    /// Resolves non-UUID resource ids in the filter.
    pub creator: &'a str,
}

impl SearchKey<'_> {
    fn text(&self) -> String {
        let mut key = String::with_capacity(128);
        let _ = write!(
            key,
            "{}\0{}\0{}\0{:?}",
            self.type_name, self.history, self.creator, self.filter
        );
        key
    }
}

impl SearchCache {
    /// A cache for a process that is the index's only writer.
    pub fn new(searches: usize) -> SearchCache {
        SearchCache {
            enabled: searches > 0,
            searches: Cache::new(searches.max(1)),
            types: RwLock::new(HashMap::new()),
        }
    }

    /// No caching: another process may write the index.
    pub fn disabled() -> SearchCache {
        SearchCache::new(0)
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The resource type `name` as of `generation`, if known.
    pub fn resource_type(&self, name: &str, generation: u64) -> Option<Arc<ResourceType>> {
        if !self.enabled {
            return None;
        }
        let types = self.types.read().unwrap_or_else(|e| e.into_inner());
        types
            .get(name)
            .filter(|hit| hit.generation == generation)
            .map(|hit| hit.value.clone())
    }

    /// Remembers a type read at `generation` (read before the query).
    pub fn put_resource_type(&self, value: Arc<ResourceType>, generation: u64) {
        if !self.enabled {
            return;
        }
        let mut types = self.types.write().unwrap_or_else(|e| e.into_inner());
        // Types are few; drop entries of older generations so the map does not
        // keep removed types.
        types.retain(|_, hit| hit.generation == generation);
        types.insert(value.name.clone(), Stamped { generation, value });
    }

    /// The resources `key` selected as of `generation`, if known.
    pub fn search(&self, key: &SearchKey<'_>, generation: u64) -> Option<Arc<Vec<Resource>>> {
        if !self.enabled {
            return None;
        }
        self.searches
            .get(&key.text())
            .filter(|hit| hit.generation == generation)
            .map(|hit| hit.value)
    }

    /// Remembers what `key` selected at `generation` (read before the query),
    /// unless the answer may depend on the clock.
    pub fn put_search(
        &self,
        key: &SearchKey<'_>,
        attributes: &BTreeMap<String, AttributeSchema>,
        value: Arc<Vec<Resource>>,
        generation: u64,
    ) {
        if !self.enabled || key.filter.is_some_and(|f| names_time(f, attributes)) {
            return;
        }
        self.searches
            .insert(key.text(), Stamped { generation, value });
    }
}

/// Whether `filter` compares a time-valued attribute (`attributes`: those of
/// the searched type).
fn names_time(filter: &Filter, attributes: &BTreeMap<String, AttributeSchema>) -> bool {
    match filter {
        Filter::And(all) | Filter::Or(all) => all.iter().any(|f| names_time(f, attributes)),
        Filter::Not(inner) => names_time(inner, attributes),
        Filter::Compare { attr, .. } => {
            TIME_COLUMNS.contains(&attr.as_str())
                || attributes
                    .get(attr)
                    .is_some_and(|schema| schema.attr_type == AttributeType::Datetime)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexer::{FilterValue, Op};

    fn generic() -> BTreeMap<String, AttributeSchema> {
        BTreeMap::new()
    }

    fn compare(attr: &str) -> Filter {
        Filter::Compare {
            op: Op::Eq,
            attr: attr.to_owned(),
            value: FilterValue::String("x".to_owned()),
        }
    }

    fn key<'a>(filter: &'a Filter) -> SearchKey<'a> {
        SearchKey {
            type_name: "generic",
            filter: Some(filter),
            history: false,
            creator: "admin",
        }
    }

    #[test]
    fn entries_live_until_the_generation_moves() {
        let cache = SearchCache::new(16);
        let filter = compare("id");
        let found = Arc::new(Vec::new());
        cache.put_search(&key(&filter), &generic(), found.clone(), 7);
        assert!(cache.search(&key(&filter), 7).is_some());
        assert!(cache.search(&key(&filter), 8).is_none());
        let other = compare("user_id");
        assert!(cache.search(&key(&other), 7).is_none());
        let history = SearchKey {
            history: true,
            ..key(&filter)
        };
        assert!(cache.search(&history, 7).is_none());
    }

    #[test]
    fn clock_dependent_filters_are_not_kept() {
        let cache = SearchCache::new(16);
        let filter = Filter::And(vec![compare("id"), compare("ended_at")]);
        cache.put_search(&key(&filter), &generic(), Arc::new(Vec::new()), 1);
        assert!(cache.search(&key(&filter), 1).is_none());
        let mut attributes = generic();
        attributes.insert(
            "booted".to_owned(),
            AttributeSchema {
                attr_type: AttributeType::Datetime,
                required: false,
                fill: None,
            },
        );
        let filter = Filter::Not(Box::new(compare("booted")));
        cache.put_search(&key(&filter), &attributes, Arc::new(Vec::new()), 1);
        assert!(cache.search(&key(&filter), 1).is_none());
        let filter = compare("host");
        cache.put_search(&key(&filter), &attributes, Arc::new(Vec::new()), 1);
        assert!(cache.search(&key(&filter), 1).is_some());
    }

    #[test]
    fn disabled_keeps_nothing() {
        let cache = SearchCache::disabled();
        let filter = compare("id");
        cache.put_search(&key(&filter), &generic(), Arc::new(Vec::new()), 1);
        assert!(cache.search(&key(&filter), 1).is_none());
        assert!(!cache.is_enabled());
    }
}
