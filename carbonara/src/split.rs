//! Splits: fixed windows of [`SPLIT_SLOTS`] consecutive buckets of one
//! granularity, the unit of aggregate storage.
//!
//! A [`SplitKey`] is the aligned start of the window
//! (`floor(timestamp, granularity × 3600)`, Gnocchi's
//! `SplitKey.from_timestamp_and_sampling`) plus the granularity. An
//! [`AggregatedSplit`] holds every method of one `(granularity, split)`
//! together, so one update rewrites one object; [`AggregatedSplit::to_block`]
//! and [`AggregatedSplit::from_block`] bridge to the codec's
//! [`SplitBlock`].
//!
//! In memory each method is a dense column where NaN means "no value",
//! over a window of the split's slots that grows to hold what was written
//! (word-aligned, shared by every method): applying a 100-point update is a
//! few slice writes, with no search, and a split holding an hour of a
//! 2.5-day span costs an hour of memory, not 3600 slots per method.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::aggregated::{AggregatedSeries, SeriesError};
use crate::aggregation::Method;
use crate::codec::{Column, SplitBlock};
use crate::timestamp::{floor, floor_wide};

/// Buckets per split, as in Gnocchi (`POINTS_PER_SPLIT`).
pub const SPLIT_SLOTS: u32 = 3600;
const SLOTS: usize = SPLIT_SLOTS as usize;
const WORDS: usize = SLOTS.div_ceil(64);

/// Why a split could not be built or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// Granularity zero or negative.
    #[error("granularity must be positive, got {0}")]
    Granularity(i64),
    /// A start that is not a multiple of `granularity × 3600`.
    #[error("split start {start} is not aligned on {granularity} × {SPLIT_SLOTS}")]
    Unaligned {
        /// The start given.
        start: i64,
        /// The granularity given.
        granularity: i64,
    },
    /// A decoded block with another slot count.
    #[error("split has {0} slots, expected {SPLIT_SLOTS}")]
    Slots(u32),
    /// Presence bitmap or column lengths inconsistent.
    #[error("split block is inconsistent: {0}")]
    Inconsistent(&'static str),
    /// A column names an unknown method.
    #[error("unknown aggregation method {0:?} in split")]
    Method(String),
    /// A series of another granularity given to a split.
    #[error(transparent)]
    Series(#[from] SeriesError),
}

/// Identifies a split: its aligned start and its granularity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SplitKey {
    start: i64,
    granularity: i64,
}

impl SplitKey {
    /// The split holding `timestamp` at `granularity` (which must be > 0).
    pub fn containing(timestamp: i64, granularity: i64) -> Result<SplitKey, SplitError> {
        if granularity <= 0 {
            return Err(SplitError::Granularity(granularity));
        }
        Ok(SplitKey {
            start: floor_wide(timestamp, span(granularity)),
            granularity,
        })
    }

    /// A key from stored parts, checked for alignment.
    pub fn new(start: i64, granularity: i64) -> Result<SplitKey, SplitError> {
        let key = SplitKey::containing(start, granularity)?;
        if key.start != start {
            return Err(SplitError::Unaligned { start, granularity });
        }
        Ok(key)
    }

    /// Aligned start, UTC ns.
    pub fn start(&self) -> i64 {
        self.start
    }

    /// Bucket width, ns.
    pub fn granularity(&self) -> i64 {
        self.granularity
    }

    /// Exclusive end, saturating at `i64::MAX`.
    pub fn end(&self) -> i64 {
        (i128::from(self.start) + span(self.granularity)).min(i128::from(i64::MAX)) as i64
    }

    /// The following split, if representable.
    pub fn next(&self) -> Option<SplitKey> {
        let end = i128::from(self.start) + span(self.granularity);
        i64::try_from(end).ok().map(|start| SplitKey {
            start,
            granularity: self.granularity,
        })
    }

    /// Slot of `timestamp` in this split, if it falls inside.
    #[inline]
    pub fn slot(&self, timestamp: i64) -> Option<usize> {
        // i64 on the hot path; i128 only when the offset overflows.
        let slot = match timestamp.checked_sub(self.start) {
            Some(offset) if offset < 0 => return None,
            Some(offset) => offset / self.granularity,
            None => {
                let offset = i128::from(timestamp) - i128::from(self.start);
                if offset < 0 {
                    return None;
                }
                (offset / i128::from(self.granularity)).min(SLOTS as i128) as i64
            }
        };
        (slot < SLOTS as i64).then_some(slot as usize)
    }

    /// Timestamp of slot `slot` (saturating).
    #[inline]
    pub fn slot_timestamp(&self, slot: usize) -> i64 {
        (slot as i64)
            .checked_mul(self.granularity)
            .and_then(|offset| self.start.checked_add(offset))
            .unwrap_or_else(|| {
                (i128::from(self.start) + slot as i128 * i128::from(self.granularity))
                    .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
            })
    }
}

fn span(granularity: i64) -> i128 {
    i128::from(granularity) * SLOTS as i128
}

/// Every method of one `(granularity, split)`; see the module docs.
#[derive(Clone)]
pub struct AggregatedSplit {
    key: SplitKey,
    /// Slots `[lo, hi)` are held by every column (`lo` a multiple of 64,
    /// `hi` one too or [`SPLIT_SLOTS`]); outside it nothing has a value.
    lo: usize,
    hi: usize,
    /// One vector of `hi - lo` values per method.
    columns: BTreeMap<Method, Vec<f64>>,
    /// Superset of the slots where some column holds a value (bit set when
    /// a slot is written, never cleared): lets `to_block` and `series` skip
    /// the words of a sparse split without looking at its columns.
    occupied: [u64; WORDS],
}

/// Equal when the same slots hold bit-identical values (NaN, "no value",
/// equals itself).
impl PartialEq for AggregatedSplit {
    fn eq(&self, other: &AggregatedSplit) -> bool {
        self.key == other.key
            && self.columns.len() == other.columns.len()
            && self
                .columns
                .iter()
                .zip(&other.columns)
                .all(|((ma, a), (mb, b))| {
                    ma == mb
                        && (0..SLOTS).all(|slot| {
                            self.value(a, slot).to_bits() == other.value(b, slot).to_bits()
                        })
                })
    }
}

/// Shows the key and the number of values per method, not 3600 slots each.
impl std::fmt::Debug for AggregatedSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut columns = f.debug_map();
        for (method, column) in &self.columns {
            columns.entry(
                &format_args!("{method}"),
                &column.iter().filter(|v| !v.is_nan()).count(),
            );
        }
        columns.finish()?;
        write!(f, " in {:?}", self.key)
    }
}

impl AggregatedSplit {
    /// An empty split.
    pub fn new(key: SplitKey) -> AggregatedSplit {
        AggregatedSplit {
            key,
            lo: 0,
            hi: 0,
            columns: BTreeMap::new(),
            occupied: [0; WORDS],
        }
    }

    /// The value of `column` (one of this split's) at `slot`, NaN outside
    /// the window.
    fn value(&self, column: &[f64], slot: usize) -> f64 {
        if (self.lo..self.hi).contains(&slot) {
            column[slot - self.lo]
        } else {
            f64::NAN
        }
    }

    /// Grows the window (and every column) to hold slots `[lo, hi)`.
    fn cover(&mut self, lo: usize, hi: usize) {
        if lo >= hi {
            return;
        }
        let lo = lo / 64 * 64;
        let hi = hi.div_ceil(64).saturating_mul(64).min(SLOTS);
        let (new_lo, new_hi) = if self.lo == self.hi {
            (lo, hi)
        } else {
            (lo.min(self.lo), hi.max(self.hi))
        };
        if (new_lo, new_hi) == (self.lo, self.hi) {
            return;
        }
        let front = if self.lo == self.hi {
            0
        } else {
            self.lo - new_lo
        };
        for column in self.columns.values_mut() {
            if front > 0 {
                column.splice(0..0, std::iter::repeat_n(f64::NAN, front));
            }
            column.resize(new_hi - new_lo, f64::NAN);
        }
        self.lo = new_lo;
        self.hi = new_hi;
    }

    /// Approximate bytes this split holds in memory (for cache weights).
    pub fn memory_bytes(&self) -> u64 {
        let column = ((self.hi - self.lo) * 8 + 64) as u64;
        256 + self.columns.len() as u64 * column
    }

    /// Which split this is.
    pub fn key(&self) -> SplitKey {
        self.key
    }

    /// Methods with a column, in order.
    pub fn methods(&self) -> impl Iterator<Item = Method> + '_ {
        self.columns.keys().copied()
    }

    /// True when no slot holds a value for any method.
    pub fn is_empty(&self) -> bool {
        self.columns.values().all(|c| c.iter().all(|v| v.is_nan()))
    }

    /// Writes `update` into the column of its method: slots at or after
    /// `floor(from, granularity)` are cleared, then the update's points that
    /// fall in this split are set. This is [`AggregatedSeries::merge`]
    /// restricted to one split.
    pub fn apply(&mut self, update: &AggregatedSeries, from: i64) -> Result<(), SplitError> {
        if update.granularity() != self.key.granularity {
            return Err(SeriesError::GranularityMismatch {
                expected: self.key.granularity,
                got: update.granularity(),
            }
            .into());
        }
        let key = self.key;
        let start = floor(from, key.granularity);
        let clear_from = if start < key.start {
            0
        } else {
            key.slot(start).unwrap_or(SLOTS)
        };
        let (ts, vs) = update.range(Some(start.max(key.start)), Some(key.end()));
        if let (Some(first), Some(last)) = (
            ts.first().and_then(|&t| key.slot(t)),
            ts.last().and_then(|&t| key.slot(t)),
        ) {
            self.cover(first, last + 1);
        }
        let (lo, hi) = (self.lo, self.hi);
        let column = self
            .columns
            .entry(update.method())
            .or_insert_with(|| vec![f64::NAN; hi - lo]);
        // Only words that may hold a value need clearing (the rest is NaN),
        // and only inside the window.
        let mut slot = clear_from.max(lo);
        while slot < hi {
            let end = ((slot / 64 + 1) * 64).min(hi);
            if self.occupied[slot / 64] != 0 {
                column[slot - lo..end - lo].fill(f64::NAN);
            }
            slot = end;
        }
        for (&t, &v) in ts.iter().zip(vs) {
            if let Some(slot) = key.slot(t) {
                column[slot - lo] = v;
                self.occupied[slot / 64] |= 1 << (slot % 64);
            }
        }
        Ok(())
    }

    /// Clears every slot at or before `cutoff` (for truncation: `cutoff =
    /// last - timespan`, see [`AggregatedSeries::truncate`]).
    pub fn clear_through(&mut self, cutoff: i64) {
        let upto = if cutoff < self.key.start {
            return;
        } else {
            self.key.slot(cutoff).map_or(SLOTS, |s| s + 1)
        };
        let upto = upto.clamp(self.lo, self.hi);
        for column in self.columns.values_mut() {
            column[..upto - self.lo].fill(f64::NAN);
        }
    }

    /// The points of `method` in this split, if it has a column.
    pub fn series(&self, method: Method) -> Option<AggregatedSeries> {
        let mut ts = Vec::new();
        let mut vs = Vec::new();
        self.append_points(method, i64::MIN, i64::MAX, &mut ts, &mut vs)?;
        Some(AggregatedSeries::from_parts_unchecked(
            self.key.granularity,
            method,
            ts,
            vs,
        ))
    }

    /// Timestamp of the latest point of `method` in this split, if any.
    pub fn last_timestamp(&self, method: Method) -> Option<i64> {
        let column = self.columns.get(&method)?;
        for (w, &occupied) in self.occupied.iter().enumerate().rev() {
            let (lo, hi) = ((w * 64).max(self.lo), ((w + 1) * 64).min(self.hi));
            if occupied == 0 || lo >= hi {
                continue;
            }
            let words = &column[lo - self.lo..hi - self.lo];
            if let Some(slot) = words.iter().rposition(|v| !v.is_nan()) {
                return Some(self.key.slot_timestamp(lo + slot));
            }
        }
        None
    }

    /// Appends the points of `method` with `from <= t < until` to `ts` and
    /// `vs`, in order; `None` if the split has no column for `method`.
    /// Readers concatenating consecutive splits get one sorted series
    /// without an intermediate copy per split.
    pub fn append_points(
        &self,
        method: Method,
        from: i64,
        until: i64,
        ts: &mut Vec<i64>,
        vs: &mut Vec<f64>,
    ) -> Option<()> {
        let column = self.columns.get(&method)?;
        let first = if from <= self.key.start {
            0
        } else {
            // The first slot whose timestamp is at or after `from`.
            match self.key.slot(from) {
                Some(slot) if self.key.slot_timestamp(slot) < from => slot + 1,
                Some(slot) => slot,
                None => SLOTS,
            }
        };
        let end = if until >= self.key.end() {
            SLOTS
        } else if until <= self.key.start {
            0
        } else {
            // `until` is exclusive: its own slot is kept only when `until`
            // lies past the slot's start.
            let slot = self.key.slot(until).unwrap_or(SLOTS);
            if self.key.slot_timestamp(slot) < until {
                slot + 1
            } else {
                slot
            }
        };
        let (first, end) = (first.max(self.lo), end.min(self.hi));
        // Slots where any method has a value: an upper bound, so one growth.
        let present: u32 = self.occupied.iter().map(|w| w.count_ones()).sum();
        ts.reserve(present as usize);
        vs.reserve(present as usize);
        for (w, &occupied) in self.occupied.iter().enumerate() {
            let (lo, hi) = ((w * 64).max(first), ((w + 1) * 64).min(end));
            if occupied == 0 || lo >= hi {
                continue;
            }
            for (slot, &v) in column[lo - self.lo..hi - self.lo].iter().enumerate() {
                if !v.is_nan() {
                    ts.push(self.key.slot_timestamp(lo + slot));
                    vs.push(v);
                }
            }
        }
        Some(())
    }

    /// The codec's view: slots where any method has a value are present;
    /// columns carry NaN where their method has none.
    pub fn to_block(&self) -> SplitBlock {
        let mut block = SplitBlock::default();
        self.to_block_into(&mut block);
        block
    }

    /// Like [`AggregatedSplit::to_block`], reusing the allocations already
    /// in `block` (bitset, method names, value vectors), for writers encoding
    /// many splits.
    pub fn to_block_into(&self, block: &mut SplitBlock) {
        block.start = self.key.start;
        block.granularity = self.key.granularity;
        block.slots = SPLIT_SLOTS;
        // Branch-free per 64-slot word, so it vectorizes, and only over
        // words that may hold a value; then gathers by word, copying whole
        // words when every slot of one is present.
        let present = &mut block.present;
        present.clear();
        present.resize(WORDS, 0);
        let first_word = self.lo / 64;
        for column in self.columns.values() {
            for ((word, chunk), &occupied) in present[first_word..]
                .iter_mut()
                .zip(column.chunks(64))
                .zip(&self.occupied[first_word..])
            {
                if occupied == 0 {
                    continue;
                }
                let mut mask = 0u64;
                for (i, v) in chunk.iter().enumerate() {
                    mask |= u64::from(!v.is_nan()) << i;
                }
                *word |= mask;
            }
        }
        let count: usize = present.iter().map(|w| w.count_ones() as usize).sum();
        block.columns.truncate(self.columns.len());
        block
            .columns
            .resize_with(self.columns.len(), Column::default);
        for ((method, column), out) in self.columns.iter().zip(&mut block.columns) {
            out.method.clear();
            let _ = write!(out.method, "{method}");
            let values = &mut out.values;
            values.clear();
            values.reserve(count);
            // Present words all lie inside the window.
            for (w, &word) in block.present.iter().enumerate().skip(first_word) {
                let base = w * 64 - self.lo;
                if word == u64::MAX {
                    values.extend_from_slice(&column[base..base + 64]);
                    continue;
                }
                let mut bits = word;
                while bits != 0 {
                    values.push(column[base + bits.trailing_zeros() as usize]);
                    bits &= bits - 1;
                }
            }
        }
    }

    /// Rebuilds a split from a decoded block, checking it against this
    /// crate's invariants (slot count, alignment, column lengths, methods).
    pub fn from_block(block: &SplitBlock) -> Result<AggregatedSplit, SplitError> {
        if block.slots != SPLIT_SLOTS {
            return Err(SplitError::Slots(block.slots));
        }
        let key = SplitKey::new(block.start, block.granularity)?;
        if block.present.len() != WORDS {
            return Err(SplitError::Inconsistent("presence bitmap length"));
        }
        if block.present[WORDS - 1] >> (SLOTS % 64) != 0 {
            return Err(SplitError::Inconsistent(
                "presence bits beyond the last slot",
            ));
        }
        let count = block.present_count();
        let first = block.present.iter().position(|&w| w != 0);
        let last = block.present.iter().rposition(|&w| w != 0);
        let (lo, hi) = match (first, last) {
            (Some(first), Some(last)) => (first * 64, ((last + 1) * 64).min(SLOTS)),
            _ => (0, 0),
        };
        let mut columns = BTreeMap::new();
        for column in &block.columns {
            let method: Method = column
                .method
                .parse()
                .map_err(|_| SplitError::Method(column.method.chars().take(64).collect()))?;
            if column.values.len() != count {
                return Err(SplitError::Inconsistent(
                    "column length differs from present slots",
                ));
            }
            let mut dense = vec![f64::NAN; hi - lo];
            let mut next = 0;
            for (w, &word) in block.present.iter().enumerate() {
                if word == 0 {
                    continue;
                }
                let base = w * 64 - lo;
                if word == u64::MAX {
                    dense[base..base + 64].copy_from_slice(&column.values[next..next + 64]);
                    next += 64;
                    continue;
                }
                let mut bits = word;
                while bits != 0 {
                    dense[base + bits.trailing_zeros() as usize] = column.values[next];
                    next += 1;
                    bits &= bits - 1;
                }
            }
            if columns.insert(method, dense).is_some() {
                return Err(SplitError::Inconsistent("duplicate method column"));
            }
        }
        let mut occupied = [0; WORDS];
        occupied.copy_from_slice(&block.present);
        Ok(AggregatedSplit {
            key,
            lo,
            hi,
            columns,
            occupied,
        })
    }
}

/// Cuts series of one granularity (any methods) into splits, in key order.
pub fn split_series(series: &[AggregatedSeries]) -> Result<Vec<AggregatedSplit>, SplitError> {
    let mut splits: BTreeMap<SplitKey, AggregatedSplit> = BTreeMap::new();
    let Some(granularity) = series.first().map(AggregatedSeries::granularity) else {
        return Ok(Vec::new());
    };
    for s in series {
        if s.granularity() != granularity {
            return Err(SeriesError::GranularityMismatch {
                expected: granularity,
                got: s.granularity(),
            }
            .into());
        }
        let mut i = 0;
        let ts = s.timestamps();
        while i < ts.len() {
            let key = SplitKey::containing(ts[i], granularity)?;
            let end = ts[i..].partition_point(|&t| t < key.end()) + i;
            let split = splits
                .entry(key)
                .or_insert_with(|| AggregatedSplit::new(key));
            if let (Some(a), Some(b)) = (key.slot(ts[i]), key.slot(ts[end - 1])) {
                split.cover(a, b + 1);
            }
            let (lo, hi) = (split.lo, split.hi);
            let column = split
                .columns
                .entry(s.method())
                .or_insert_with(|| vec![f64::NAN; hi - lo]);
            for (&t, &v) in ts[i..end].iter().zip(&s.values()[i..end]) {
                if let Some(slot) = key.slot(t) {
                    column[slot - lo] = v;
                    split.occupied[slot / 64] |= 1 << (slot % 64);
                }
            }
            i = end;
        }
    }
    Ok(splits.into_values().collect())
}

/// Concatenates the points of `method` across `splits` (sorted by key
/// here), the inverse of [`split_series`].
pub fn join_splits(
    splits: &[AggregatedSplit],
    granularity: i64,
    method: Method,
) -> Result<AggregatedSeries, SplitError> {
    let mut ordered: Vec<&AggregatedSplit> = splits.iter().collect();
    ordered.sort_by_key(|s| s.key);
    let mut ts = Vec::new();
    let mut vs = Vec::new();
    for split in ordered {
        if split.key.granularity != granularity {
            return Err(SeriesError::GranularityMismatch {
                expected: granularity,
                got: split.key.granularity,
            }
            .into());
        }
        if let Some(column) = split.columns.get(&method) {
            for (i, &v) in column.iter().enumerate() {
                if !v.is_nan() {
                    ts.push(split.key.slot_timestamp(split.lo + i));
                    vs.push(v);
                }
            }
        }
    }
    // Duplicated keys would break ordering: checked construction.
    Ok(AggregatedSeries::from_parts(granularity, method, ts, vs)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode_split, encode_split};

    fn m(name: &str) -> Method {
        name.parse().unwrap()
    }

    #[test]
    fn the_window_grows_both_ways_and_keeps_what_it_holds() {
        let g = 1_000_000_000;
        let series = |method: &str, slots: std::ops::Range<i64>| {
            let ts: Vec<i64> = slots.clone().map(|s| s * g).collect();
            let vs: Vec<f64> = slots.map(|s| s as f64 + 0.5).collect();
            AggregatedSeries::from_parts(g, m(method), ts, vs).unwrap()
        };
        // Late points first, then earlier ones of another method: the
        // window is extended at the front under the existing column.
        let late = series("mean", 3_000..3_100);
        let early = series("max", 10..20);
        let both = [late.clone(), early.clone()];
        let splits = split_series(&both).unwrap();
        assert_eq!(splits.len(), 1);
        let split = &splits[0];
        assert_eq!(join_splits(&splits, g, m("mean")).unwrap(), late);
        assert_eq!(join_splits(&splits, g, m("max")).unwrap(), early);
        assert_eq!(split.last_timestamp(m("max")), Some(19 * g));
        assert_eq!(split.last_timestamp(m("mean")), Some(3_099 * g));
        let decoded = AggregatedSplit::from_block(&split.to_block()).unwrap();
        assert_eq!(&decoded, split);
        // A sparse split holds a window, not 3600 slots per method.
        let sparse = split_series(&[series("mean", 100..110)]).unwrap();
        assert!(
            sparse[0].memory_bytes() < 2_000,
            "{}",
            sparse[0].memory_bytes()
        );
        // Applying across the window's end grows it and clears from `from`.
        let mut grown = sparse[0].clone();
        grown.apply(&series("mean", 105..3_600), 105 * g).unwrap();
        assert_eq!(
            join_splits(std::slice::from_ref(&grown), g, m("mean")).unwrap(),
            series("mean", 100..3_600)
        );
        grown.clear_through(3_000 * g);
        assert_eq!(
            join_splits(std::slice::from_ref(&grown), g, m("mean")).unwrap(),
            series("mean", 3_001..3_600)
        );
    }

    #[test]
    fn keys_align_like_gnocchi() {
        let k = SplitKey::containing(1_425_652_452_000_000_000, 1_000_000_000).unwrap();
        // 3600 s splits: 2015-03-06T14:00:00Z.
        assert_eq!(k.start(), 1_425_650_400_000_000_000);
        assert_eq!(k.end() - k.start(), 3_600_000_000_000);
        assert_eq!(k.next().unwrap().start(), k.end());
        assert_eq!(k.slot(k.start() + 5_000_000_000), Some(5));
        assert_eq!(k.slot(k.end()), None);
        assert_eq!(SplitKey::containing(-1, 60).unwrap().start(), -216_000);
        assert!(SplitKey::new(60, 60).is_err());
        assert!(SplitKey::containing(0, 0).is_err());
        // A year granularity: the span overflows i64 but keys still work.
        let year = 365 * 86_400_000_000_000;
        let k = SplitKey::containing(1_700_000_000_000_000_000, year).unwrap();
        assert_eq!(k.start(), 0);
        assert_eq!(k.end(), i64::MAX);
        assert_eq!(k.next(), None);
        assert_eq!(k.slot(1_700_000_000_000_000_000), Some(53));
        assert_eq!(k.slot_timestamp(53), 53 * year);
        let k = SplitKey::containing(-1, year).unwrap();
        assert_eq!(k.start(), i64::MIN);
    }

    #[test]
    fn from_splits_concatenates_sorted_splits() {
        let g = 10;
        let first = SplitKey::containing(0, g).unwrap();
        let second = first.next().unwrap();
        let mut a = AggregatedSplit::new(first);
        // The last slot too: its word covers 16 slots, not 64.
        let early = AggregatedSeries::from_parts(
            g,
            m("mean"),
            vec![0, 10, first.end() - g],
            vec![1.0, 2.0, 4.0],
        );
        a.apply(&early.unwrap(), 0).unwrap();
        let mut b = AggregatedSplit::new(second);
        let late = AggregatedSeries::from_parts(g, m("mean"), vec![second.start()], vec![3.0]);
        b.apply(&late.unwrap(), second.start()).unwrap();
        let mut s = AggregatedSeries::from_splits(g, m("mean"), &[&a, &b]).unwrap();
        assert_eq!(s.timestamps(), &[0, 10, first.end() - g, second.start()]);
        assert_eq!(s.values(), &[1.0, 2.0, 4.0, 3.0]);
        assert!(AggregatedSeries::from_splits(g, m("mean"), &[&b, &a]).is_err());
        assert!(AggregatedSeries::from_splits(20, m("mean"), &[&a]).is_err());
        assert!(AggregatedSeries::from_splits(g, m("max"), &[&a])
            .unwrap()
            .is_empty());
        s.retain_range(Some(10), Some(second.start()));
        assert_eq!(s.timestamps(), &[10, first.end() - g]);
        assert_eq!(s.values(), &[2.0, 4.0]);
    }

    #[test]
    fn apply_replaces_from_the_update_start() {
        let key = SplitKey::containing(0, 10).unwrap();
        let mut split = AggregatedSplit::new(key);
        let all = AggregatedSeries::from_parts(
            10,
            m("mean"),
            (0..3600).map(|i| i * 10).collect(),
            vec![1.0; 3600],
        )
        .unwrap();
        split.apply(&all, 0).unwrap();
        let update =
            AggregatedSeries::from_parts(10, m("mean"), vec![35_000, 35_020], vec![2.0, 3.0])
                .unwrap();
        split.apply(&update, 35_000).unwrap();
        let s = split.series(m("mean")).unwrap();
        assert_eq!(s.len(), 3502);
        assert_eq!(&s.timestamps()[3499..], &[34_990, 35_000, 35_020]);
        assert_eq!(&s.values()[3499..], &[1.0, 2.0, 3.0]);
        split.clear_through(20);
        assert_eq!(split.series(m("mean")).unwrap().timestamps()[0], 30);
        let other = AggregatedSeries::new(20, m("mean")).unwrap();
        assert!(split.apply(&other, 0).is_err());
    }

    #[test]
    fn block_round_trip_through_codec() {
        let mean = AggregatedSeries::from_parts(
            60,
            m("mean"),
            vec![0, 120, 216_000 - 60],
            vec![1.5, -2.0, 7.0],
        )
        .unwrap();
        let std = AggregatedSeries::from_parts(60, m("std"), vec![120], vec![0.5]).unwrap();
        let splits = split_series(&[mean.clone(), std.clone()]).unwrap();
        assert_eq!(splits.len(), 1);
        let block = splits[0].to_block();
        assert_eq!(block.present_count(), 3);
        assert_eq!(block.columns[0].method, "mean");
        assert!(block.columns[1].values[0].is_nan());
        let decoded = decode_split(&encode_split(&block)).unwrap();
        let back = AggregatedSplit::from_block(&decoded).unwrap();
        assert_eq!(back.series(m("mean")).unwrap(), mean);
        assert_eq!(back.series(m("std")).unwrap(), std);
        assert_eq!(join_splits(&splits, 60, m("mean")).unwrap(), mean);
    }

    #[test]
    fn from_block_refuses_inconsistent_blocks() {
        let good = AggregatedSplit::new(SplitKey::containing(0, 60).unwrap());
        let mut block = good.to_block();
        assert_eq!(AggregatedSplit::from_block(&block).unwrap(), good);
        block.slots = 100;
        assert_eq!(
            AggregatedSplit::from_block(&block).unwrap_err(),
            SplitError::Slots(100)
        );
        block.slots = SPLIT_SLOTS;
        block.start = 60;
        assert!(AggregatedSplit::from_block(&block).is_err());
        block.start = 0;
        block.present[0] = 1;
        block.columns.push(Column {
            method: "wtf".into(),
            values: vec![1.0],
        });
        assert!(matches!(
            AggregatedSplit::from_block(&block),
            Err(SplitError::Method(_))
        ));
        block.columns[0].method = "mean".into();
        block.columns[0].values.clear();
        assert!(AggregatedSplit::from_block(&block).is_err());
        block.present[0] = 0;
        block.present[WORDS - 1] = u64::MAX;
        assert!(AggregatedSplit::from_block(&block).is_err());
    }
}
