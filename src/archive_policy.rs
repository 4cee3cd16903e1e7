//! Archive policies between their two homes: [`carbonara::archive_policy`]
//! validates and computes with them, the indexer stores them as plain rows.

use std::collections::BTreeSet;

use carbonara::aggregation::Method;
use carbonara::archive_policy::{ArchivePolicy, ArchivePolicyItem};

/// The stored form of a validated policy.
pub fn to_record(policy: &ArchivePolicy) -> indexer::ArchivePolicy {
    indexer::ArchivePolicy {
        name: policy.name().to_owned(),
        back_window: policy.back_window(),
        definition: policy
            .definition()
            .iter()
            .map(|item| indexer::ArchivePolicyItem {
                granularity_ns: item.granularity(),
                points: item.points(),
                timespan_ns: item.timespan(),
            })
            .collect(),
        aggregation_methods: policy
            .aggregation_methods()
            .iter()
            .map(ToString::to_string)
            .collect(),
    }
}

/// A stored policy, checked again on the way out: rows are only ever written
/// from validated policies, so failing here means the index was edited by hand.
pub fn from_record(
    record: &indexer::ArchivePolicy,
) -> Result<ArchivePolicy, carbonara::archive_policy::ArchivePolicyError> {
    let definition = record
        .definition
        .iter()
        .map(|item| {
            ArchivePolicyItem::new(
                Some(item.granularity_ns),
                item.points.map(|points| points as i64),
                item.timespan_ns,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let methods = record
        .aggregation_methods
        .iter()
        .map(|name| {
            name.parse::<Method>().map_err(|_| {
                carbonara::archive_policy::ArchivePolicyError::InvalidMethod(name.clone())
            })
        })
        .collect::<Result<BTreeSet<_>, _>>()?;
    ArchivePolicy::new(record.name.clone(), record.back_window, definition, methods)
}
