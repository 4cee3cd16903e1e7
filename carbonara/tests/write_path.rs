//! The write path as metricd drives it, end to end through the codec:
//! batches merged into the tail, updates applied to stored splits, old splits
//! deleted, then reads joined and truncated. The result must equal a one-shot
//! computation over all measures.

use std::collections::BTreeMap;

use carbonara::aggregated::AggregatedSeries;
use carbonara::aggregation::{BaseMethod, Scratch};
use carbonara::archive_policy::{default_aggregation_methods, ArchivePolicy, ArchivePolicyItem};
use carbonara::codec::{decode_split, decode_tail, encode_split, encode_tail, TailBlock};
use carbonara::split::{join_splits, AggregatedSplit, SplitKey};
use carbonara::unaggregated::UnaggregatedTail;

const S: i64 = 1_000_000_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn metricd_like_processing_matches_one_shot() {
    let policy = ArchivePolicy::new(
        "test",
        0,
        vec![
            ArchivePolicyItem::new(Some(S), Some(1800), None).unwrap(),
            ArchivePolicyItem::new(Some(60 * S), Some(100), None).unwrap(),
        ],
        default_aggregation_methods(),
    )
    .unwrap();
    let mut rng = Rng(0x5eed);
    // About five hours of irregular measures from 2015-03-06T14:00:00Z.
    let mut all_ts = Vec::new();
    let mut all_vs = Vec::new();
    let mut t = 1_425_650_400 * S;
    while all_ts.len() < 12_000 {
        t += (1 + rng.next() % 3) as i64 * S;
        all_ts.push(t);
        all_vs.push((rng.next() % 10_000) as f64 / 10.0);
    }

    // Object store stand-in: encoded tail and splits.
    let mut stored_tail: Vec<u8> = encode_tail(&TailBlock::default());
    let mut splits: BTreeMap<(i64, i64), Vec<u8>> = BTreeMap::new();
    let mut scratch = Scratch::new();
    let mut start = 0;
    while start < all_ts.len() {
        let len = 1 + (rng.next() % 700) as usize;
        let end = (start + len).min(all_ts.len());
        let (batch_ts, batch_vs) = (&all_ts[start..end], &all_vs[start..end]);
        start = end;

        let decoded = decode_tail(&stored_tail).unwrap();
        let mut tail = UnaggregatedTail::from_parts(
            policy.block_size(),
            policy.back_window(),
            decoded.timestamps,
            decoded.values,
        )
        .unwrap();
        let outcome = tail.merge(batch_ts, batch_vs).unwrap();
        assert_eq!(outcome.dropped, 0);
        let from = outcome.recompute_from.unwrap();
        let last = *tail.timestamps().last().unwrap();
        for item in policy.definition() {
            let g = item.granularity();
            let first_key = SplitKey::containing(from, g).unwrap();
            let last_key = SplitKey::containing(last, g).unwrap();
            let updates: Vec<AggregatedSeries> = policy
                .aggregation_methods()
                .iter()
                .map(|&m| tail.aggregate_from(from, g, m, &mut scratch))
                .collect();
            let mut key = first_key;
            loop {
                let mut split = match splits.get(&(g, key.start())) {
                    Some(bytes) => {
                        AggregatedSplit::from_block(&decode_split(bytes).unwrap()).unwrap()
                    }
                    None => AggregatedSplit::new(key),
                };
                for u in &updates {
                    split.apply(u, from).unwrap();
                }
                splits.insert((g, key.start()), encode_split(&split.to_block()));
                if key == last_key {
                    break;
                }
                key = key.next().unwrap();
            }
            // Delete splits wholly before the one holding the cutoff.
            let cutoff = last - item.timespan().unwrap();
            let keep_from = SplitKey::containing(cutoff, g).unwrap().start();
            splits.retain(|&(sg, s), _| sg != g || s >= keep_from);
        }
        tail.truncate();
        let (ts, vs) = tail.into_parts();
        stored_tail = encode_tail(&TailBlock {
            timestamps: ts,
            values: vs,
        });
    }

    for item in policy.definition() {
        let g = item.granularity();
        let loaded: Vec<AggregatedSplit> = splits
            .iter()
            .filter(|((sg, _), _)| *sg == g)
            .map(|(_, bytes)| AggregatedSplit::from_block(&decode_split(bytes).unwrap()).unwrap())
            .collect();
        for &m in policy.aggregation_methods() {
            let mut read = join_splits(&loaded, g, m).unwrap();
            read.truncate(item.timespan().unwrap());
            let mut want = AggregatedSeries::compute(&all_ts, &all_vs, g, m, &mut scratch).unwrap();
            want.truncate(item.timespan().unwrap());
            assert_eq!(read.timestamps(), want.timestamps(), "{m} at {g}");
            for (a, b) in read.values().iter().zip(want.values()) {
                assert!(
                    (a - b).abs() <= 1e-9 * a.abs().max(1.0),
                    "{m} at {g}: {a} vs {b}"
                );
            }
            assert!(read.len() as u64 <= item.points().unwrap());
            // One measure per second at most: no 1 s bucket has a std.
            let std_at_1s = m.base == BaseMethod::Std && g == S;
            assert_eq!(read.is_empty(), std_at_1s, "{m} at {g}");
        }
    }
}
