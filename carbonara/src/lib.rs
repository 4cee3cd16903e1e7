//! Gnocchi's time-series model ("Carbonara"), as pure functions over slices.
//!
//! # Brief overview
//!
//! Measures arrive as `(timestamp, value)` pairs, timestamps in UTC nanoseconds.
//! Each metric keeps an unaggregated tail ([`unaggregated`]) long enough for its
//! archive policy's back window; new measures are merged into it, and every
//! `(granularity, method)` of the policy ([`archive_policy`]) is recomputed over
//! the affected range only ([`aggregation`]). Aggregates are stored in splits of
//! a fixed number of slots keyed by their aligned start ([`split`]); the methods
//! of one `(granularity, split)` travel together in one object whose bytes are
//! defined by [`codec`]. Reads resample ([`resample`]), possibly by calendar
//! periods ([`calendar`]).
//!
//! The write path for one metric, per batch of measures:
//!
//! 1. [`unaggregated::UnaggregatedTail::merge`] returns the earliest accepted
//!    timestamp (`recompute_from`) and how many measures were too old;
//! 2. for each `(archive, method)` of
//!    [`archive_policy::ArchivePolicy::aggregations`],
//!    [`unaggregated::UnaggregatedTail::aggregate_from`] recomputes the
//!    buckets from there on into an [`aggregated::AggregatedSeries`];
//! 3. [`split::AggregatedSplit::apply`] writes that update into every split
//!    from [`split::SplitKey::containing`]`(recompute_from)` on;
//! 4. [`unaggregated::UnaggregatedTail::truncate`] drops what the back window
//!    no longer needs (after step 2, as Gnocchi does);
//! 5. splits wholly before the one holding `last - timespan` can be deleted;
//!    as in Gnocchi, the split holding the cutoff is kept whole and reads
//!    apply [`aggregated::AggregatedSeries::truncate`] (or the writer clears
//!    it with [`split::AggregatedSplit::clear_through`]).
//!
//! Time values are bare `i64` nanoseconds ([`timestamp`]); their text forms
//! (`"1 day, 0:00:00"`, `"5m"`) are in [`timespan`].
//!
//! Nothing here does I/O, spawns, or allocates per point.

pub mod aggregated;
pub mod aggregation;
pub mod archive_policy;
pub mod calendar;
pub mod codec;
pub mod resample;
pub mod split;
pub mod timespan;
pub mod timestamp;
pub mod unaggregated;
