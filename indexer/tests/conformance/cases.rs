//! The cases: each takes a fresh, not yet upgraded index (and its URL).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use indexer::{
    resource_uuid, search::parse_json, search::parse_string, ArchivePolicyItem, ArchivePolicyRule,
    AttributeSchema, AttributeType, Filter, Indexer, IndexerError, Metric, MetricFilter,
    MetricStatus, NewMetric, NewResource, Pagination, Resource, ResourceMetric, ResourceTypeState,
    ResourceTypeUpdate, ResourceUpdate, SearchOptions, SortKey, UpgradeOptions, SCHEMA_VERSION,
};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{default_options, gnocchi_policy};

async fn setup(ix: &Indexer) {
    ix.upgrade(&default_options()).await.expect("upgrade");
}

fn ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn attr(t: AttributeType, required: bool) -> AttributeSchema {
    AttributeSchema {
        attr_type: t,
        required,
        fill: None,
    }
}

fn string(max: u32) -> AttributeType {
    AttributeType::String {
        min_length: 0,
        max_length: max,
    }
}

fn obj(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn new_resource(id: Uuid, creator: &str) -> NewResource {
    NewResource {
        id,
        original_resource_id: id.to_string(),
        creator: creator.into(),
        ..Default::default()
    }
}

fn metric(ix_policy: &str, name: Option<&str>, creator: &str) -> NewMetric {
    NewMetric {
        name: name.map(str::to_owned),
        archive_policy_name: Some(ix_policy.into()),
        creator: creator.into(),
        ..Default::default()
    }
}

fn ids(v: &[Resource]) -> Vec<Uuid> {
    v.iter().map(|r| r.id).collect()
}

fn sorted(mut v: Vec<Uuid>) -> Vec<Uuid> {
    v.sort();
    v
}

/// An `instance`-like type with every attribute kind.
async fn create_instance_type(ix: &Indexer) {
    let mut attrs = BTreeMap::new();
    attrs.insert("host".to_string(), attr(string(255), true));
    attrs.insert(
        "display_name".to_string(),
        attr(
            AttributeType::String {
                min_length: 2,
                max_length: 5,
            },
            false,
        ),
    );
    attrs.insert(
        "flavor_id".to_string(),
        attr(
            AttributeType::Number {
                min: Some(-2.0),
                max: Some(100.0),
            },
            false,
        ),
    );
    attrs.insert("image_ref".to_string(), attr(AttributeType::Uuid, false));
    attrs.insert("enabled".to_string(), attr(AttributeType::Bool, false));
    attrs.insert(
        "launched_at".to_string(),
        attr(AttributeType::Datetime, false),
    );
    let rt = ix.create_resource_type("instance", &attrs).await.unwrap();
    assert_eq!(rt.state, ResourceTypeState::Active);
}

pub(crate) async fn upgrade_is_idempotent_and_creates_defaults(ix: Indexer, url: String) {
    assert_eq!(ix.schema_version().await.unwrap_or(0), 0);
    let opts = UpgradeOptions {
        create_default_rule: true,
        ..default_options()
    };
    ix.upgrade(&opts).await.unwrap();
    ix.upgrade(&opts).await.unwrap();
    let again = Indexer::connect(&url).await.unwrap();
    again.upgrade(&opts).await.unwrap();
    again.close().await;
    assert_eq!(ix.schema_version().await.unwrap(), SCHEMA_VERSION);
    let names: Vec<String> = ix
        .list_archive_policies()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, vec!["low", "medium"]);
    let rules = ix.list_archive_policy_rules().await.unwrap();
    assert_eq!(
        rules,
        vec![ArchivePolicyRule {
            name: "default".into(),
            metric_pattern: "*".into(),
            archive_policy_name: "low".into()
        }]
    );
    let types = ix.list_resource_types().await.unwrap();
    assert_eq!(types.len(), 1);
    assert_eq!(types[0].name, "generic");
    assert_eq!(types[0].state, ResourceTypeState::Active);
    // Deleting a default does not bring it back: defaults only go into a fresh index.
    ix.delete_archive_policy("medium").await.unwrap();
    ix.upgrade(&opts).await.unwrap();
    assert!(matches!(
        ix.get_archive_policy("medium").await,
        Err(IndexerError::NoSuchArchivePolicy(_))
    ));
}

/// Several processes upgrading one new index at once (a deployment tool on every host):
/// the schema lock lets exactly one of them migrate and create the defaults; the others
/// wait and find the work done. Without it they collide on duplicate keys (and, on
/// PostgreSQL, on the system catalogs).
pub(crate) async fn concurrent_upgrades_serialise(ix: Indexer, url: String) {
    let mut tasks = Vec::new();
    // Connected first, then released together, so that the upgrades overlap.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(3));
    // Two ask for 64 sacks, one for 256: whichever upgrades first decides for all.
    for sacks in [64, 256, 64] {
        let url = url.clone();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            let process = Indexer::connect(&url).await.expect("connect");
            start.wait().await;
            let opts = UpgradeOptions {
                create_default_rule: true,
                sacks: Some(sacks),
                ..default_options()
            };
            let outcome = process.upgrade(&opts).await;
            process.close().await;
            outcome
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap().expect("every concurrent upgrade succeeds"));
    }
    assert_eq!(
        outcomes.iter().filter(|u| u.from_version == 0).count(),
        1,
        "exactly one upgrade found the index new: {outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|u| u.defaults_created).count(),
        1,
        "exactly one upgrade created the defaults: {outcomes:?}"
    );
    assert!(outcomes.iter().all(|u| u.to_version == SCHEMA_VERSION));
    let sacks = outcomes[0].sacks;
    assert!(matches!(sacks, Some(64) | Some(256)), "{outcomes:?}");
    assert!(
        outcomes.iter().all(|u| u.sacks == sacks),
        "every process sees the same sack count: {outcomes:?}"
    );

    assert_eq!(ix.schema_version().await.unwrap(), SCHEMA_VERSION);
    assert_eq!(ix.sacks().await.unwrap(), sacks);
    let names: Vec<String> = ix
        .list_archive_policies()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, vec!["low", "medium"]);
    let rules = ix.list_archive_policy_rules().await.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].name, "default");
    let types = ix.list_resource_types().await.unwrap();
    assert_eq!(
        types.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        vec!["generic"]
    );
    // The lock was released: another upgrade goes through, with nothing to do.
    let again = ix.upgrade(&default_options()).await.unwrap();
    assert_eq!(again.from_version, SCHEMA_VERSION);
    assert!(!again.defaults_created);
}

/// The first upgrade stores the sack count; later ones never change it (measures
/// waiting in incoming sit in sacks derived from it).
pub(crate) async fn sack_count_is_stored_once(ix: Indexer, _url: String) {
    let none = ix.upgrade(&default_options()).await.unwrap();
    assert_eq!(none.sacks, None, "nothing asked, nothing stored");
    assert_eq!(ix.sacks().await.unwrap(), None);
    let with = |sacks| UpgradeOptions {
        sacks: Some(sacks),
        ..default_options()
    };
    assert_eq!(ix.upgrade(&with(32)).await.unwrap().sacks, Some(32));
    assert_eq!(ix.upgrade(&with(128)).await.unwrap().sacks, Some(32));
    assert_eq!(ix.sacks().await.unwrap(), Some(32));
}

pub(crate) async fn upgrade_without_defaults(ix: Indexer, _url: String) {
    ix.upgrade(&UpgradeOptions::default()).await.unwrap();
    assert!(ix.list_archive_policies().await.unwrap().is_empty());
    assert!(ix.list_archive_policy_rules().await.unwrap().is_empty());
    assert_eq!(
        ix.get_resource_type("generic").await.unwrap().name,
        "generic"
    );
}

pub(crate) async fn archive_policy_crud(ix: Indexer, _url: String) {
    setup(&ix).await;
    let p = gnocchi_policy("✔éñ☃", 1, 3600);
    assert_eq!(ix.create_archive_policy(&p).await.unwrap(), p);
    assert!(
        matches!(ix.create_archive_policy(&p).await, Err(IndexerError::ArchivePolicyAlreadyExists(n)) if n == "✔éñ☃")
    );
    // Names compare byte-wise (MySQL's default collation would not).
    ix.create_archive_policy(&gnocchi_policy("LOW", 1, 10))
        .await
        .unwrap();
    assert_eq!(ix.get_archive_policy("✔éñ☃").await.unwrap(), p);
    let names: Vec<String> = ix
        .list_archive_policies()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, vec!["LOW", "low", "medium", "✔éñ☃"]);
    let def = vec![ArchivePolicyItem {
        granularity_ns: 1_000_000_000,
        points: Some(7200),
        timespan_ns: Some(7_200_000_000_000),
    }];
    let u = ix
        .update_archive_policy("✔éñ☃", &def, Some(5))
        .await
        .unwrap();
    assert_eq!(u.definition, def);
    assert_eq!(u.back_window, 5);
    assert_eq!(u.aggregation_methods, p.aggregation_methods);
    assert_eq!(ix.get_archive_policy("✔éñ☃").await.unwrap(), u);
    let u2 = ix.update_archive_policy("✔éñ☃", &def, None).await.unwrap();
    assert_eq!(u2.back_window, 5);
    assert!(matches!(
        ix.update_archive_policy("nope", &def, None).await,
        Err(IndexerError::NoSuchArchivePolicy(_))
    ));
    ix.delete_archive_policy("✔éñ☃").await.unwrap();
    assert!(matches!(
        ix.get_archive_policy("✔éñ☃").await,
        Err(IndexerError::NoSuchArchivePolicy(_))
    ));
    let e = ix.delete_archive_policy("grandiose").await.unwrap_err();
    assert_eq!(e.to_string(), "Archive policy grandiose does not exist");
}

pub(crate) async fn archive_policy_in_use(ix: Indexer, _url: String) {
    setup(&ix).await;
    ix.create_archive_policy(&gnocchi_policy("large", 1, 10))
        .await
        .unwrap();
    let m = ix
        .create_metric(&metric("large", None, "foobar"))
        .await
        .unwrap();
    let e = ix.delete_archive_policy("large").await.unwrap_err();
    assert_eq!(e.to_string(), "Archive policy large is still in use");
    // Marked for deletion but not expunged: still in use (Gnocchi waits for metricd).
    ix.delete_metric(m.id).await.unwrap();
    assert!(matches!(
        ix.delete_archive_policy("large").await,
        Err(IndexerError::ArchivePolicyInUse(_))
    ));
    ix.expunge_metric(m.id).await.unwrap();
    // A rule pointing to it also keeps it.
    ix.create_archive_policy_rule(&ArchivePolicyRule {
        name: "r".into(),
        metric_pattern: "x.*".into(),
        archive_policy_name: "large".into(),
    })
    .await
    .unwrap();
    assert!(matches!(
        ix.delete_archive_policy("large").await,
        Err(IndexerError::ArchivePolicyInUse(_))
    ));
    ix.delete_archive_policy_rule("r").await.unwrap();
    ix.delete_archive_policy("large").await.unwrap();
}

pub(crate) async fn archive_policy_rules(ix: Indexer, _url: String) {
    setup(&ix).await;
    let rule = |name: &str, pattern: &str, policy: &str| ArchivePolicyRule {
        name: name.into(),
        metric_pattern: pattern.into(),
        archive_policy_name: policy.into(),
    };
    ix.create_archive_policy_rule(&rule("test_rule1", "*", "low"))
        .await
        .unwrap();
    ix.create_archive_policy_rule(&rule("test_rule2", "disk.foo.*", "medium"))
        .await
        .unwrap();
    ix.create_archive_policy_rule(&rule("test_rule3", "disk.*", "low"))
        .await
        .unwrap();
    let e = ix
        .create_archive_policy_rule(&rule("x", "*", "not-exists"))
        .await
        .unwrap_err();
    assert!(matches!(e, IndexerError::NoSuchArchivePolicy(ref n) if n == "not-exists"));
    let e = ix
        .create_archive_policy_rule(&rule("test_rule1", "a", "low"))
        .await
        .unwrap_err();
    assert!(matches!(e, IndexerError::ArchivePolicyRuleAlreadyExists(_)));
    let patterns: Vec<String> = ix
        .list_archive_policy_rules()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.metric_pattern)
        .collect();
    assert_eq!(patterns, vec!["disk.foo.*", "disk.*", "*"]);
    assert_eq!(
        ix.match_rule("disk.foo.bar").await.unwrap().unwrap().name,
        "test_rule2"
    );
    assert_eq!(
        ix.match_rule("disk.io.rate").await.unwrap().unwrap().name,
        "test_rule3"
    );
    assert_eq!(
        ix.match_rule("cpu").await.unwrap().unwrap().name,
        "test_rule1"
    );
    assert_eq!(
        ix.get_archive_policy_rule("test_rule2")
            .await
            .unwrap()
            .archive_policy_name,
        "medium"
    );
    assert!(matches!(
        ix.get_archive_policy_rule("foo").await,
        Err(IndexerError::NoSuchArchivePolicyRule(_))
    ));
    let r = ix
        .rename_archive_policy_rule("test_rule3", "test_rule3_renamed")
        .await
        .unwrap();
    assert_eq!(r, rule("test_rule3_renamed", "disk.*", "low"));
    assert!(matches!(
        ix.get_archive_policy_rule("test_rule3").await,
        Err(IndexerError::NoSuchArchivePolicyRule(_))
    ));
    let e = ix
        .rename_archive_policy_rule("test_rule2", "test_rule3_renamed")
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Archive policy rule test_rule3_renamed already exists."
    );
    assert!(matches!(
        ix.rename_archive_policy_rule("nope", "x").await,
        Err(IndexerError::NoSuchArchivePolicyRule(_))
    ));
    ix.delete_archive_policy_rule("test_rule1").await.unwrap();
    assert!(ix.match_rule("cpu").await.unwrap().is_none());
    let e = ix
        .delete_archive_policy_rule("test_rule1")
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Archive policy rule test_rule1 does not exist"
    );
}

pub(crate) async fn metric_crud(ix: Indexer, _url: String) {
    setup(&ix).await;
    let m = ix
        .create_metric(&NewMetric {
            unit: Some("B/s".into()),
            ..metric("low", Some("disk.io.rate"), "jd:proj")
        })
        .await
        .unwrap();
    assert_eq!(m.name.as_deref(), Some("disk.io.rate"));
    assert_eq!(m.unit.as_deref(), Some("B/s"));
    assert_eq!(m.archive_policy.name, "low");
    assert_eq!(
        m.archive_policy,
        ix.get_archive_policy("low").await.unwrap()
    );
    assert_eq!(m.created_by_user_id(), "jd");
    assert_eq!(m.created_by_project_id(), "proj");
    assert_eq!(m.status, MetricStatus::Active);
    assert!(m.resource.is_none());
    assert_eq!(ix.get_metric(m.id).await.unwrap(), m);
    // No policy, no rule.
    let e = ix
        .create_metric(&NewMetric {
            name: Some("cpu.util".into()),
            creator: "a".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "No archive policy name specified and no archive policy rule found matching the metric name cpu.util"
    );
    ix.create_archive_policy_rule(&ArchivePolicyRule {
        name: "cpu".into(),
        metric_pattern: "cpu.*".into(),
        archive_policy_name: "medium".into(),
    })
    .await
    .unwrap();
    let m2 = ix
        .create_metric(&NewMetric {
            name: Some("cpu.util".into()),
            creator: "a".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(m2.archive_policy_name, "medium");
    assert_ne!(m.compact_id, m2.compact_id);
    assert_eq!(
        ix.get_metric_by_compact_id(m2.compact_id)
            .await
            .unwrap()
            .unwrap()
            .id,
        m2.id
    );
    assert!(ix
        .get_metric_by_compact_id(999_999)
        .await
        .unwrap()
        .is_none());
    let e = ix
        .create_metric(&metric("nope", None, "a"))
        .await
        .unwrap_err();
    assert!(matches!(e, IndexerError::NoSuchArchivePolicy(_)));
    let e = ix
        .create_metric(&metric("low", Some("a/b"), "a"))
        .await
        .unwrap_err();
    assert!(matches!(e, IndexerError::InvalidMetricName(_)));
    let mut got = ix
        .get_metrics(&[m.id, m2.id, Uuid::new_v4()])
        .await
        .unwrap();
    got.sort_by_key(|m| m.compact_id);
    assert_eq!(
        got.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![m.id, m2.id]
    );
    // Deletion marks; the janitor expunges.
    ix.delete_metric(m.id).await.unwrap();
    assert!(matches!(
        ix.delete_metric(m.id).await,
        Err(IndexerError::NoSuchMetric(_))
    ));
    assert_eq!(
        ix.get_metric(m.id).await.unwrap().status,
        MetricStatus::Delete
    );
    let listed = ix
        .list_metrics(&MetricFilter::default(), &Pagination::default())
        .await
        .unwrap();
    assert_eq!(listed.iter().map(|m| m.id).collect::<Vec<_>>(), vec![m2.id]);
    let to_delete: Vec<Uuid> = ix
        .list_metrics_to_delete()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(to_delete, vec![m.id]);
    ix.expunge_metric(m.id).await.unwrap();
    let e = ix.get_metric(m.id).await.unwrap_err();
    assert_eq!(e.to_string(), format!("Metric {} does not exist", m.id));
    assert!(ix.list_metrics_to_delete().await.unwrap().is_empty());
}

pub(crate) async fn metric_list_filters_and_pagination(ix: Indexer, _url: String) {
    setup(&ix).await;
    ix.create_archive_policy(&gnocchi_policy("first_archive", 1, 10))
        .await
        .unwrap();
    ix.create_archive_policy(&gnocchi_policy("second_archive", 1, 10))
        .await
        .unwrap();
    let mk = |name: &str, unit: &str, policy: &str, creator: &str| NewMetric {
        name: Some(name.into()),
        unit: Some(unit.into()),
        archive_policy_name: Some(policy.into()),
        creator: creator.into(),
        ..Default::default()
    };
    let m1 = ix
        .create_metric(&mk("disk.io.rate", "B/s", "first_archive", "jd:p1"))
        .await
        .unwrap();
    let m2 = ix
        .create_metric(&mk("disk.io.rate", "B/s", "first_archive", "foobaz:p2"))
        .await
        .unwrap();
    let m3 = ix
        .create_metric(&mk("cpu_util", "%", "first_archive", "foobaz:p2"))
        .await
        .unwrap();
    let m4 = ix
        .create_metric(&mk("cpu", "ns", "second_archive", "other"))
        .await
        .unwrap();
    let all = Pagination::default();
    let list = |f: MetricFilter, p: Pagination| {
        let ix = ix.clone();
        async move {
            ix.list_metrics(&f, &p)
                .await
                .map(|v| v.into_iter().map(|m: Metric| m.id).collect::<Vec<_>>())
        }
    };
    let everything = list(MetricFilter::default(), all.clone()).await.unwrap();
    assert_eq!(
        everything,
        sorted(vec![m1.id, m2.id, m3.id, m4.id]),
        "default order is by id"
    );
    assert_eq!(
        list(
            MetricFilter {
                ids: vec![m1.id],
                ..Default::default()
            },
            all.clone()
        )
        .await
        .unwrap(),
        vec![m1.id]
    );
    assert_eq!(
        list(
            MetricFilter {
                name: Some("disk.io.rate".into()),
                ..Default::default()
            },
            all.clone()
        )
        .await
        .unwrap(),
        sorted(vec![m1.id, m2.id])
    );
    assert_eq!(
        list(
            MetricFilter {
                unit: Some("ns".into()),
                ..Default::default()
            },
            all.clone()
        )
        .await
        .unwrap(),
        vec![m4.id]
    );
    assert_eq!(
        list(
            MetricFilter {
                creator: Some("jd:p1".into()),
                ..Default::default()
            },
            all.clone()
        )
        .await
        .unwrap(),
        vec![m1.id]
    );
    assert_eq!(
        list(
            MetricFilter {
                user_id: Some("jd".into()),
                ..Default::default()
            },
            all.clone()
        )
        .await
        .unwrap(),
        vec![m1.id]
    );
    assert_eq!(
        list(
            MetricFilter {
                user_id: Some("other".into()),
                ..Default::default()
            },
            all.clone()
        )
        .await
        .unwrap(),
        vec![m4.id]
    );
    assert_eq!(
        list(
            MetricFilter {
                project_id: Some("p2".into()),
                ..Default::default()
            },
            all.clone()
        )
        .await
        .unwrap(),
        sorted(vec![m2.id, m3.id])
    );
    let first = MetricFilter {
        archive_policy_name: Some("first_archive".into()),
        ..Default::default()
    };
    let by_name_desc = Pagination {
        sort: vec![SortKey::parse("name:desc").unwrap()],
        ..Default::default()
    };
    let mut expected = vec![m1.id, m2.id];
    expected.sort();
    expected.push(m3.id);
    assert_eq!(
        list(first.clone(), by_name_desc.clone()).await.unwrap(),
        expected
    );
    let page1 = list(
        first.clone(),
        Pagination {
            limit: Some(2),
            ..by_name_desc.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(page1, expected[..2]);
    let page2 = list(
        first.clone(),
        Pagination {
            limit: Some(2),
            marker: Some(page1[1].to_string()),
            ..by_name_desc.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(page2, expected[2..]);
    // Nullable sort key: unnamed metric sorts last ascending, first descending.
    let unnamed = ix
        .create_metric(&metric("second_archive", None, "x"))
        .await
        .unwrap();
    let by_name = Pagination {
        sort: vec![SortKey::parse("name:asc").unwrap()],
        ..Default::default()
    };
    let v = list(MetricFilter::default(), by_name.clone())
        .await
        .unwrap();
    assert_eq!(*v.last().unwrap(), unnamed.id);
    let v2 = list(MetricFilter::default(), by_name_desc.clone())
        .await
        .unwrap();
    assert_eq!(v2[0], unnamed.id);
    // Paging across the null: a null marker value is skipped, as oslo.db
    // (and so Gnocchi) skips it, leaving the id alone to page on.
    let page_after = |marker: Option<Uuid>| {
        list(
            MetricFilter::default(),
            Pagination {
                limit: Some(1),
                marker: marker.map(|m| m.to_string()),
                ..by_name_desc.clone()
            },
        )
    };
    assert_eq!(page_after(None).await.unwrap(), [unnamed.id]);
    let next: Vec<Uuid> = v2[1..]
        .iter()
        .copied()
        .filter(|id| *id > unnamed.id)
        .take(1)
        .collect();
    assert_eq!(page_after(Some(unnamed.id)).await.unwrap(), next);
    let e = list(
        MetricFilter::default(),
        Pagination {
            marker: Some(Uuid::new_v4().to_string()),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(e, IndexerError::InvalidPagination(_)));
    let e = list(
        MetricFilter::default(),
        Pagination {
            sort: vec![SortKey::asc("nope")],
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(e, IndexerError::InvalidQuery { .. }));
}

pub(crate) async fn resource_type_crud(ix: Indexer, _url: String) {
    setup(&ix).await;
    create_instance_type(&ix).await;
    let e = ix
        .create_resource_type("instance", &BTreeMap::new())
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "Resource type instance already exists");
    let mut reserved = BTreeMap::new();
    reserved.insert("project_id".to_string(), attr(string(10), false));
    assert!(matches!(
        ix.create_resource_type("my_custom_resource", &reserved)
            .await,
        Err(IndexerError::InvalidResourceType(_))
    ));
    let mut bad = BTreeMap::new();
    bad.insert(
        "name".to_string(),
        attr(
            AttributeType::String {
                min_length: 5,
                max_length: 2,
            },
            true,
        ),
    );
    assert!(matches!(
        ix.create_resource_type("my_custom_resource", &bad).await,
        Err(IndexerError::InvalidResourceType(_))
    ));
    let types: Vec<String> = ix
        .list_resource_types()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(types, vec!["generic", "instance"]);
    let rt = ix.get_resource_type("instance").await.unwrap();
    assert_eq!(rt.attributes.len(), 6);
    assert_eq!(
        rt.attributes["display_name"].attr_type,
        AttributeType::String {
            min_length: 2,
            max_length: 5
        }
    );
    assert_eq!(
        rt.attributes["flavor_id"].attr_type,
        AttributeType::Number {
            min: Some(-2.0),
            max: Some(100.0)
        }
    );
    assert!(rt.attributes["host"].required);
    // Empty type: create, delete, recreate, delete.
    ix.create_resource_type("✔éñ☃", &BTreeMap::new())
        .await
        .unwrap();
    ix.delete_resource_type("✔éñ☃").await.unwrap();
    let e = ix.delete_resource_type("✔éñ☃").await.unwrap_err();
    assert_eq!(e.to_string(), "Resource type ✔éñ☃ does not exist");
    ix.create_resource_type("✔éñ☃", &BTreeMap::new())
        .await
        .unwrap();
    ix.delete_resource_type("✔éñ☃").await.unwrap();
    // In use.
    let id = Uuid::new_v4();
    let mut r = new_resource(id, "foobar");
    r.attributes = obj(json!({"host": "h1"}));
    ix.create_resource("instance", &r).await.unwrap();
    let e = ix.delete_resource_type("instance").await.unwrap_err();
    assert_eq!(e.to_string(), "Resource type instance is still in use");
    assert!(matches!(
        ix.delete_resource_type("generic").await,
        Err(IndexerError::ResourceTypeInUse(_))
    ));
    ix.delete_resource("instance", id).await.unwrap();
    ix.delete_resource_type("instance").await.unwrap();
    assert!(matches!(
        ix.get_resource_type("instance").await,
        Err(IndexerError::NoSuchResourceType(_))
    ));
}

pub(crate) async fn resource_type_update_with_fill(ix: Indexer, _url: String) {
    setup(&ix).await;
    let mut attrs = BTreeMap::new();
    attrs.insert(
        "name".to_string(),
        attr(
            AttributeType::String {
                min_length: 2,
                max_length: 5,
            },
            true,
        ),
    );
    attrs.insert("foobar".to_string(), attr(string(255), false));
    ix.create_resource_type("my_custom_resource", &attrs)
        .await
        .unwrap();
    let id = Uuid::new_v4();
    let mut r = new_resource(id, "foobar");
    r.attributes = obj(json!({"name": "bar", "foobar": "what"}));
    ix.create_resource("my_custom_resource", &r).await.unwrap();
    ix.update_resource(
        "my_custom_resource",
        id,
        &ResourceUpdate {
            attributes: obj(json!({"name": "foo"})),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let with_fill = |t: AttributeType, required: bool, fill: Value| AttributeSchema {
        attr_type: t,
        required,
        fill: Some(fill),
    };
    let mut update = ResourceTypeUpdate::default();
    update
        .add
        .insert("new-optional-bool".into(), attr(AttributeType::Bool, false));
    update
        .add
        .insert("newstuff".into(), attr(string(255), false));
    update.add.insert(
        "newfilled".into(),
        with_fill(string(255), false, json!("filled")),
    );
    update.add.insert(
        "newbool".into(),
        with_fill(AttributeType::Bool, true, json!(true)),
    );
    update.add.insert(
        "newint".into(),
        with_fill(
            AttributeType::Number {
                min: Some(0.0),
                max: Some(255.0),
            },
            true,
            json!(15),
        ),
    );
    update.add.insert(
        "newuuid".into(),
        with_fill(
            AttributeType::Uuid,
            true,
            json!("00000000-0000-0000-0000-000000000000"),
        ),
    );
    update.add.insert(
        "newdatetime".into(),
        with_fill(AttributeType::Datetime, true, json!("2017-10-10T10:10:10Z")),
    );
    update.remove.push("foobar".into());
    let rt = ix
        .update_resource_type("my_custom_resource", &update)
        .await
        .unwrap();
    assert!(!rt.attributes.contains_key("foobar"));
    assert_eq!(rt.attributes.len(), 8);
    assert_eq!(rt.state, ResourceTypeState::Active);
    let got = ix.get_resource("my_custom_resource", id).await.unwrap();
    let expect = |r: &Resource, name: &str| {
        assert_eq!(r.attributes["name"], json!(name));
        assert_eq!(r.attributes["newstuff"], Value::Null);
        assert_eq!(r.attributes["newfilled"], json!("filled"));
        assert_eq!(r.attributes["newbool"], json!(true));
        assert_eq!(r.attributes["newint"], json!(15.0));
        assert_eq!(
            r.attributes["newuuid"],
            json!("00000000-0000-0000-0000-000000000000")
        );
        assert_eq!(
            r.attributes["newdatetime"],
            json!("2017-10-10T10:10:10+00:00")
        );
        assert_eq!(r.attributes["new-optional-bool"], Value::Null);
        assert!(!r.attributes.contains_key("foobar"));
    };
    expect(&got, "foo");
    let hist = ix
        .resource_history("my_custom_resource", id, &Pagination::default())
        .await
        .unwrap();
    assert_eq!(hist.len(), 2);
    expect(&hist[0], "bar");
    expect(&hist[1], "foo");
    // Making an attribute optional then required again (with fill).
    let mut u = ResourceTypeUpdate::default();
    u.add.insert(
        "name".into(),
        attr(
            AttributeType::String {
                min_length: 2,
                max_length: 5,
            },
            false,
        ),
    );
    assert!(
        !ix.update_resource_type("my_custom_resource", &u)
            .await
            .unwrap()
            .attributes["name"]
            .required
    );
    let mut u = ResourceTypeUpdate::default();
    u.add.insert(
        "name".into(),
        with_fill(
            AttributeType::String {
                min_length: 2,
                max_length: 5,
            },
            true,
            json!("name"),
        ),
    );
    assert!(
        ix.update_resource_type("my_custom_resource", &u)
            .await
            .unwrap()
            .attributes["name"]
            .required
    );
    // Refusals.
    let mut u = ResourceTypeUpdate::default();
    u.add.insert(
        "name".into(),
        attr(
            AttributeType::Number {
                min: None,
                max: None,
            },
            false,
        ),
    );
    assert_eq!(
        ix.update_resource_type("my_custom_resource", &u).await.unwrap_err().to_string(),
        "Type update is not available yet. Changing string to number for attribute name of resource my_custom_resource"
    );
    let mut u = ResourceTypeUpdate::default();
    u.add
        .insert("missing".into(), attr(AttributeType::Bool, true));
    assert_eq!(
        ix.update_resource_type("my_custom_resource", &u).await.unwrap_err().to_string(),
        "Option 'fill' of resource attribute missing is invalid: must not be empty if required=True"
    );
    let mut u = ResourceTypeUpdate::default();
    u.add.insert(
        "incorrect".into(),
        with_fill(
            AttributeType::Number {
                min: None,
                max: None,
            },
            true,
            json!("a-string"),
        ),
    );
    assert_eq!(
        ix.update_resource_type("my_custom_resource", &u)
            .await
            .unwrap_err()
            .to_string(),
        "Option 'fill' of resource attribute incorrect is invalid: expected Real"
    );
    let u = ResourceTypeUpdate {
        remove: vec!["unknown".into()],
        ..Default::default()
    };
    assert_eq!(
        ix.update_resource_type("my_custom_resource", &u)
            .await
            .unwrap_err()
            .to_string(),
        "can't remove a non-existent object 'unknown'"
    );
    // The failed updates changed nothing.
    let rt = ix.get_resource_type("my_custom_resource").await.unwrap();
    assert_eq!(rt.attributes.len(), 8);
    // A required attribute without fill is fine on an empty type.
    ix.create_resource_type("empty", &BTreeMap::new())
        .await
        .unwrap();
    let mut u = ResourceTypeUpdate::default();
    u.add.insert("req".into(), attr(AttributeType::Bool, true));
    assert!(
        ix.update_resource_type("empty", &u)
            .await
            .unwrap()
            .attributes["req"]
            .required
    );
    // New columns are searchable.
    let found = ix
        .search_resources(
            "my_custom_resource",
            Some(&parse_string("newint = 15 and newbool = true").unwrap()),
            &SearchOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(ids(&found), vec![id]);
}

pub(crate) async fn typed_attribute_validation(ix: Indexer, _url: String) {
    setup(&ix).await;
    create_instance_type(&ix).await;
    let try_create = |attrs: Value| {
        let ix = ix.clone();
        async move {
            let mut r = new_resource(Uuid::new_v4(), "foobar");
            r.attributes = obj(attrs);
            ix.create_resource("instance", &r).await
        }
    };
    let err = |e: IndexerError| match e {
        IndexerError::InvalidAttribute { attribute, reason } => (attribute, reason),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(
        err(
            try_create(json!({"host": "h", "display_name": "toolong!!!"}))
                .await
                .unwrap_err()
        ),
        (
            "display_name".into(),
            "length of value must be at most 5".into()
        )
    );
    assert_eq!(
        err(try_create(json!({"host": "h", "display_name": "a"}))
            .await
            .unwrap_err()),
        (
            "display_name".into(),
            "length of value must be at least 2".into()
        )
    );
    assert_eq!(
        err(try_create(json!({"host": "h", "image_ref": "really!"}))
            .await
            .unwrap_err()),
        (
            "image_ref".into(),
            "badly formed hexadecimal UUID string".into()
        )
    );
    assert_eq!(
        err(try_create(json!({"host": "h", "flavor_id": 101}))
            .await
            .unwrap_err()),
        ("flavor_id".into(), "value must be at most 100".into())
    );
    assert_eq!(
        err(try_create(json!({"host": "h", "flavor_id": -3}))
            .await
            .unwrap_err()),
        ("flavor_id".into(), "value must be at least -2".into())
    );
    assert_eq!(
        err(try_create(json!({"host": "h", "flavor_id": "x"}))
            .await
            .unwrap_err())
        .0,
        "flavor_id"
    );
    assert_eq!(
        err(try_create(json!({"host": "h", "enabled": "yes"}))
            .await
            .unwrap_err())
        .0,
        "enabled"
    );
    assert_eq!(
        err(
            try_create(json!({"host": "h", "launched_at": "not a date"}))
                .await
                .unwrap_err()
        )
        .0,
        "launched_at"
    );
    assert_eq!(
        err(try_create(json!({"display_name": "abc"}))
            .await
            .unwrap_err()),
        ("host".into(), "required key not provided".into())
    );
    assert_eq!(
        err(try_create(json!({"host": null})).await.unwrap_err()).0,
        "host"
    );
    assert_eq!(
        err(try_create(json!({"host": "h", "nope": 1}))
            .await
            .unwrap_err()),
        ("nope".into(), "extra keys not allowed".into())
    );
    let ok = try_create(json!({
        "host": "h", "display_name": "abc", "flavor_id": 2.5, "image_ref": "e495ebad-be64-46c0-81d6-b079beb48df9",
        "enabled": false, "launched_at": "2017-05-02T11:11:11Z"
    }))
    .await
    .unwrap();
    assert_eq!(ok.attributes["flavor_id"], json!(2.5));
    assert_eq!(ok.attributes["enabled"], json!(false));
    assert_eq!(
        ok.attributes["launched_at"],
        json!("2017-05-02T11:11:11+00:00")
    );
    assert_eq!(
        ok.attributes["image_ref"],
        json!("e495ebad-be64-46c0-81d6-b079beb48df9")
    );
    // A failed create leaves nothing behind.
    let all = ix
        .search_resources("generic", None, &SearchOptions::default())
        .await
        .unwrap();
    assert_eq!(ids(&all), vec![ok.id]);
    // Updates validate too.
    let e = ix
        .update_resource(
            "instance",
            ok.id,
            &ResourceUpdate {
                attributes: obj(json!({"flavor_id": 1000})),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err(e).0, "flavor_id");
}

pub(crate) async fn resource_create_and_get(ix: Indexer, _url: String) {
    setup(&ix).await;
    create_instance_type(&ix).await;
    let existing = ix
        .create_metric(&metric("low", None, "foobar:proj"))
        .await
        .unwrap();
    let id = Uuid::new_v4();
    let mut r = new_resource(id, "foobar:proj");
    r.user_id = Some("0fbb231484614b1a80131fc22f6afc9c".into());
    r.project_id = Some("f3d41b770cc14f0bb94a1d5be9c0e3ea".into());
    r.started_at = Some(ts("2014-01-03T02:02:02Z"));
    r.attributes = obj(json!({"host": "compute1", "flavor_id": 2}));
    r.metrics.insert(
        "cpu.util".into(),
        ResourceMetric::New {
            archive_policy_name: Some("medium".into()),
            unit: Some("%".into()),
        },
    );
    r.metrics
        .insert("linked".into(), ResourceMetric::Existing(existing.id));
    let before = Utc::now() - chrono::Duration::seconds(1);
    let created = ix.create_resource("instance", &r).await.unwrap();
    assert_eq!(created.id, id);
    assert_eq!(created.resource_type, "instance");
    assert_eq!(created.creator, "foobar:proj");
    assert_eq!(created.created_by_user_id, "foobar");
    assert_eq!(created.created_by_project_id, "proj");
    assert_eq!(
        created.user_id.as_deref(),
        Some("0fbb231484614b1a80131fc22f6afc9c")
    );
    assert_eq!(created.started_at, ts("2014-01-03T02:02:02Z"));
    assert_eq!(created.ended_at, None);
    assert!(created.revision_start >= before);
    assert_eq!(created.revision_end, None);
    assert_eq!(created.attributes["host"], json!("compute1"));
    assert_eq!(created.attributes["flavor_id"], json!(2));
    assert_eq!(created.attributes["display_name"], Value::Null);
    assert_eq!(created.metrics.len(), 2);
    assert_eq!(created.metrics["linked"], existing.id);
    let cpu = ix.get_metric(created.metrics["cpu.util"]).await.unwrap();
    assert_eq!(cpu.archive_policy_name, "medium");
    assert_eq!(cpu.unit.as_deref(), Some("%"));
    assert_eq!(cpu.creator, "foobar:proj");
    let nested = cpu.resource.expect("nested resource");
    assert_eq!(nested.id, id);
    assert_eq!(
        nested.project_id.as_deref(),
        Some("f3d41b770cc14f0bb94a1d5be9c0e3ea")
    );
    assert_eq!(
        ix.get_resource_metric(id, "cpu.util")
            .await
            .unwrap()
            .unwrap()
            .id,
        cpu.id
    );
    // Reading back, typed and generic: the number given as 2 comes back
    // from its float column as 2.0, as in Gnocchi.
    assert_eq!(created.attributes["flavor_id"], json!(2));
    let mut stored = created.clone();
    stored.attributes.insert("flavor_id".into(), json!(2.0));
    assert_eq!(ix.get_resource("instance", id).await.unwrap(), stored);
    let generic = ix.get_resource("generic", id).await.unwrap();
    assert!(generic.attributes.is_empty());
    assert_eq!(generic.resource_type, "instance");
    assert_eq!(generic.metrics, created.metrics);
    ix.create_resource_type("other", &BTreeMap::new())
        .await
        .unwrap();
    assert!(matches!(
        ix.get_resource("other", id).await,
        Err(IndexerError::NoSuchResource(_))
    ));
    assert!(matches!(
        ix.get_resource("generic", Uuid::new_v4()).await,
        Err(IndexerError::NoSuchResource(_))
    ));
    assert!(matches!(
        ix.get_resource("nope", id).await,
        Err(IndexerError::NoSuchResourceType(_))
    ));
    // Conflicts.
    let e = ix.create_resource("instance", &r).await.unwrap_err();
    assert_eq!(e.to_string(), format!("Resource {id} already exists"));
    let mut g = new_resource(Uuid::new_v4(), "foobar");
    g.metrics
        .insert("x".into(), ResourceMetric::Existing(Uuid::new_v4()));
    assert!(matches!(
        ix.create_resource("generic", &g).await,
        Err(IndexerError::NoSuchMetric(_))
    ));
    g.metrics.clear();
    g.metrics.insert(
        "x".into(),
        ResourceMetric::New {
            archive_policy_name: Some("noexist".into()),
            unit: None,
        },
    );
    assert_eq!(
        ix.create_resource("generic", &g)
            .await
            .unwrap_err()
            .to_string(),
        "Archive policy noexist does not exist"
    );
    g.metrics.clear();
    g.metrics.insert(
        "x".into(),
        ResourceMetric::New {
            archive_policy_name: None,
            unit: None,
        },
    );
    assert!(matches!(
        ix.create_resource("generic", &g).await,
        Err(IndexerError::NoArchivePolicyRuleMatch(_))
    ));
    g.metrics.clear();
    g.metrics.insert(
        "a/b".into(),
        ResourceMetric::New {
            archive_policy_name: Some("low".into()),
            unit: None,
        },
    );
    assert!(matches!(
        ix.create_resource("generic", &g).await,
        Err(IndexerError::InvalidMetricName(_))
    ));
    // A failed create leaves no resource behind.
    assert!(matches!(
        ix.get_resource("generic", g.id).await,
        Err(IndexerError::NoSuchResource(_))
    ));
    // Named metric conflict when creating a metric for a resource.
    let e = ix
        .create_metric(&NewMetric {
            resource_id: Some(id),
            ..metric("low", Some("cpu.util"), "foobar:proj")
        })
        .await
        .unwrap_err();
    assert!(matches!(e, IndexerError::NamedMetricAlreadyExists { .. }));
    let e = ix
        .create_metric(&NewMetric {
            resource_id: Some(Uuid::new_v4()),
            ..metric("low", Some("z"), "a")
        })
        .await
        .unwrap_err();
    assert!(matches!(e, IndexerError::NoSuchResource(_)));
    // Ended before started.
    let mut bad = new_resource(Uuid::new_v4(), "foobar");
    bad.started_at = Some(ts("2014-01-03T02:02:02Z"));
    bad.ended_at = Some(ts("2013-01-03T02:02:02Z"));
    assert!(matches!(
        ix.create_resource("generic", &bad).await,
        Err(IndexerError::InvalidAttribute { .. })
    ));
}

pub(crate) async fn resource_non_uuid_ids(ix: Indexer, _url: String) {
    setup(&ix).await;
    assert_eq!(
        resource_uuid("1.2.3.4", "foobar").unwrap().to_string(),
        "a9c729cc-d1b0-5e6b-b5ba-8b5a7f45f1fc"
    );
    let a = resource_uuid("1.2.3.4", "foobar").unwrap();
    let b = resource_uuid("1.2.3.4", "other").unwrap();
    assert_ne!(a, b);
    let mut r = new_resource(a, "foobar");
    r.original_resource_id = "1.2.3.4".into();
    ix.create_resource("generic", &r).await.unwrap();
    let mut r2 = new_resource(b, "other");
    r2.original_resource_id = "1.2.3.4".into();
    ix.create_resource("generic", &r2).await.unwrap();
    assert_eq!(
        ix.get_resource("generic", a)
            .await
            .unwrap()
            .original_resource_id,
        "1.2.3.4"
    );
    // Searching on id with the non-UUID form maps with the searcher as creator.
    let opts = SearchOptions {
        creator: "foobar".into(),
        ..Default::default()
    };
    let found = ix
        .search_resources(
            "generic",
            Some(&parse_string("id = '1.2.3.4'").unwrap()),
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(ids(&found), vec![a]);
    let found = ix
        .search_resources(
            "generic",
            Some(&parse_string("original_resource_id = '1.2.3.4'").unwrap()),
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(sorted(ids(&found)), sorted(vec![a, b]));
    assert!(resource_uuid("a/b", "foobar").is_err());

    // The longest id Gnocchi transforms, 289 characters (counted as characters, not
    // bytes), is kept whole in the resource and in its history.
    let long: String = "é".repeat(144) + &"x".repeat(145);
    let id = resource_uuid(&long, "foobar").unwrap();
    let mut r = new_resource(id, "foobar");
    r.original_resource_id = long.clone();
    ix.create_resource("generic", &r).await.unwrap();
    let patch = ResourceUpdate {
        user_id: Some(Some("someone".into())),
        ..Default::default()
    };
    ix.update_resource("generic", id, &patch).await.unwrap();
    let history = ix
        .resource_history("generic", id, &Pagination::default())
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|r| r.original_resource_id == long));
}

pub(crate) async fn resource_patch_and_history(ix: Indexer, _url: String) {
    setup(&ix).await;
    create_instance_type(&ix).await;
    let id = Uuid::new_v4();
    let mut r = new_resource(id, "foobar");
    r.attributes = obj(json!({"host": "compute1", "display_name": "bar"}));
    r.user_id = Some("u1".into());
    let created = ix.create_resource("instance", &r).await.unwrap();
    // A no-change patch records no revision.
    let same = ix
        .update_resource(
            "instance",
            id,
            &ResourceUpdate {
                user_id: Some(Some("u1".into())),
                attributes: obj(json!({"host": "compute1"})),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(same, created);
    assert_eq!(same.etag(), created.etag());
    assert_eq!(
        ix.resource_history("instance", id, &Pagination::default())
            .await
            .unwrap()
            .len(),
        1
    );
    // A real change does.
    let p1 = ix
        .update_resource(
            "instance",
            id,
            &ResourceUpdate {
                attributes: obj(json!({"display_name": "foo"})),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(p1.attributes["display_name"], json!("foo"));
    assert_eq!(p1.attributes["host"], json!("compute1"));
    assert!(p1.revision_start > created.revision_start);
    assert_ne!(p1.etag(), created.etag());
    assert_eq!(p1.last_modified(), p1.revision_start);
    let p2 = ix
        .update_resource(
            "generic",
            id,
            &ResourceUpdate {
                user_id: Some(None),
                project_id: Some(Some("p".into())),
                ended_at: Some(Some(ts("2099-01-01T00:00:00Z"))),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(p2.attributes.is_empty(), "generic view");
    assert_eq!(p2.user_id, None);
    assert_eq!(p2.project_id.as_deref(), Some("p"));
    // Only the route type's attributes can be patched.
    let e = ix
        .update_resource(
            "generic",
            id,
            &ResourceUpdate {
                attributes: obj(json!({"host": "x"})),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, IndexerError::InvalidAttribute { .. }));
    // Ending before it started: Gnocchi's words, the value as Python writes it.
    let e = ix
        .update_resource(
            "generic",
            id,
            &ResourceUpdate {
                ended_at: Some(Some(ts("2000-01-01T00:00:00.5Z"))),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Value 2000-01-01 00:00:00.500000+00:00 for attribute ended_at on resource type generic is invalid"
    );
    let hist = ix
        .resource_history("instance", id, &Pagination::default())
        .await
        .unwrap();
    assert_eq!(hist.len(), 3);
    assert_eq!(hist[0].attributes["display_name"], json!("bar"));
    assert_eq!(hist[0].user_id.as_deref(), Some("u1"));
    assert_eq!(hist[0].revision_start, created.revision_start);
    assert_eq!(hist[0].revision_end, Some(p1.revision_start));
    assert_eq!(hist[1].attributes["display_name"], json!("foo"));
    assert_eq!(hist[1].revision_end, Some(hist[2].revision_start));
    assert_eq!(hist[2].revision_end, None);
    assert_eq!(hist[2].user_id, None);
    assert_eq!(hist[2].attributes["display_name"], json!("foo"));
    assert!(hist[0].revision.is_some() && hist[2].revision.is_none());
    // Sorted the other way, and paginated with revision markers.
    let desc = Pagination {
        sort: vec![SortKey::parse("revision_start:desc").unwrap()],
        ..Default::default()
    };
    let hd = ix.resource_history("instance", id, &desc).await.unwrap();
    assert_eq!(
        hd.iter().map(|r| r.revision_start).collect::<Vec<_>>(),
        hist.iter()
            .rev()
            .map(|r| r.revision_start)
            .collect::<Vec<_>>()
    );
    let end_asc = Pagination {
        sort: vec![SortKey::parse("revision_end:asc-nullslast").unwrap()],
        ..Default::default()
    };
    let he = ix.resource_history("instance", id, &end_asc).await.unwrap();
    assert_eq!(he.last().unwrap().revision_end, None);
    let page = ix
        .resource_history(
            "instance",
            id,
            &Pagination {
                limit: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    let rest = ix
        .resource_history(
            "instance",
            id,
            &Pagination {
                marker: Some(page[1].marker(true)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].revision_end, None);
    assert!(matches!(
        ix.update_resource("instance", Uuid::new_v4(), &ResourceUpdate::default())
            .await,
        Err(IndexerError::NoSuchResource(_))
    ));
}

pub(crate) async fn resource_patch_metrics(ix: Indexer, _url: String) {
    setup(&ix).await;
    let id = Uuid::new_v4();
    let mut r = new_resource(id, "foobar");
    r.metrics.insert(
        "a".into(),
        ResourceMetric::New {
            archive_policy_name: Some("low".into()),
            unit: None,
        },
    );
    let created = ix.create_resource("generic", &r).await.unwrap();
    let a = created.metrics["a"];
    // Append.
    let mut more = BTreeMap::new();
    more.insert(
        "b".to_string(),
        ResourceMetric::New {
            archive_policy_name: Some("low".into()),
            unit: None,
        },
    );
    let u = ix
        .update_resource(
            "generic",
            id,
            &ResourceUpdate {
                metrics: Some(more.clone()),
                append_metrics: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        u.metrics.keys().cloned().collect::<Vec<_>>(),
        vec!["a", "b"]
    );
    let e = ix
        .update_resource(
            "generic",
            id,
            &ResourceUpdate {
                metrics: Some(more),
                append_metrics: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, IndexerError::NamedMetricAlreadyExists { .. }));
    // Replace: keeps `a` under a new name, drops `b`.
    let mut replace = BTreeMap::new();
    replace.insert("renamed".to_string(), ResourceMetric::Existing(a));
    let u = ix
        .update_resource(
            "generic",
            id,
            &ResourceUpdate {
                metrics: Some(replace),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(u.metrics.len(), 1);
    assert_eq!(u.metrics["renamed"], a);
    // Metric changes are not revisions.
    assert_eq!(
        ix.resource_history("generic", id, &Pagination::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

pub(crate) async fn resource_delete(ix: Indexer, _url: String) {
    setup(&ix).await;
    create_instance_type(&ix).await;
    let id = Uuid::new_v4();
    let mut r = new_resource(id, "foobar");
    r.attributes = obj(json!({"host": "h"}));
    r.metrics.insert(
        "m".into(),
        ResourceMetric::New {
            archive_policy_name: Some("low".into()),
            unit: None,
        },
    );
    let created = ix.create_resource("instance", &r).await.unwrap();
    ix.update_resource(
        "instance",
        id,
        &ResourceUpdate {
            attributes: obj(json!({"host": "h2"})),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    ix.delete_resource("instance", id).await.unwrap();
    assert!(matches!(
        ix.get_resource("instance", id).await,
        Err(IndexerError::NoSuchResource(_))
    ));
    assert!(matches!(
        ix.delete_resource("instance", id).await,
        Err(IndexerError::NoSuchResource(_))
    ));
    let m = ix.get_metric(created.metrics["m"]).await.unwrap();
    assert_eq!(m.status, MetricStatus::Delete);
    assert_eq!(m.resource_id, None);
    let hist = ix
        .search_resources(
            "instance",
            None,
            &SearchOptions {
                history: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(hist.is_empty());
    // The same id can be used again.
    ix.create_resource("instance", &r).await.unwrap();
}

pub(crate) async fn resource_batch_delete(ix: Indexer, _url: String) {
    setup(&ix).await;
    create_instance_type(&ix).await;
    let mut created = Vec::new();
    for i in 0..5 {
        let mut r = new_resource(Uuid::new_v4(), "foobar");
        r.attributes = obj(json!({"host": format!("h{}", i % 2)}));
        r.started_at = Some(Utc.with_ymd_and_hms(2014, 1, 1 + i, 0, 0, 0).unwrap());
        r.metrics.insert(
            "m".into(),
            ResourceMetric::New {
                archive_policy_name: Some("low".into()),
                unit: None,
            },
        );
        created.push(ix.create_resource("instance", &r).await.unwrap());
    }
    let n = ix
        .delete_resources("instance", &parse_string("host = h0").unwrap(), "foobar")
        .await
        .unwrap();
    assert_eq!(n, 3);
    let left = ix
        .search_resources("generic", None, &SearchOptions::default())
        .await
        .unwrap();
    assert_eq!(
        sorted(ids(&left)),
        sorted(vec![created[1].id, created[3].id])
    );
    assert_eq!(ix.list_metrics_to_delete().await.unwrap().len(), 3);
    let f = parse_json(&json!({"in": {"id": [created[1].id.to_string()]}}))
        .unwrap()
        .unwrap();
    assert_eq!(
        ix.delete_resources("generic", &f, "foobar").await.unwrap(),
        1
    );
    let f = parse_string("started_at < '2000-01-01'").unwrap();
    assert_eq!(
        ix.delete_resources("generic", &f, "foobar").await.unwrap(),
        0
    );
}

/// Six instances with varied attributes, for the search cases.
async fn search_fixture(ix: &Indexer) -> Vec<Resource> {
    setup(ix).await;
    create_instance_type(ix).await;
    let rows = [
        (
            "compute1",
            Some("abc"),
            Some(1.0),
            Some(true),
            Some("u1"),
            Some("p1"),
            "2014-01-01T00:00:00Z",
            None,
        ),
        (
            "compute1",
            Some("abd"),
            Some(2.0),
            Some(false),
            Some("u1"),
            Some("p2"),
            "2014-01-02T00:00:00Z",
            Some("2014-01-02T01:00:00Z"),
        ),
        (
            "compute2",
            None,
            Some(3.5),
            None,
            Some("u2"),
            None,
            "2014-01-03T00:00:00Z",
            Some("2014-01-05T00:00:00Z"),
        ),
        (
            "compute2",
            Some("xyz"),
            None,
            Some(true),
            None,
            Some("p1"),
            "2014-01-04T00:00:00Z",
            None,
        ),
        (
            "other",
            Some("ab%"),
            Some(-1.0),
            Some(false),
            Some("u3"),
            Some("p3"),
            "2014-01-05T00:00:00Z",
            Some("2014-01-05T00:00:30Z"),
        ),
        (
            "compute3",
            Some("a_c"),
            Some(100.0),
            None,
            Some("u1"),
            Some("p1"),
            "2014-01-06T00:00:00Z",
            None,
        ),
    ];
    let mut out = Vec::new();
    for (i, (host, dn, flavor, enabled, user, project, started, ended)) in
        rows.into_iter().enumerate()
    {
        let mut r = new_resource(
            Uuid::new_v4(),
            if i % 2 == 0 {
                "foobar"
            } else {
                "admin:adminproj"
            },
        );
        let mut attrs = json!({"host": host, "launched_at": started});
        if let Some(d) = dn {
            attrs["display_name"] = json!(d);
        }
        if let Some(f) = flavor {
            attrs["flavor_id"] = json!(f);
        }
        if let Some(e) = enabled {
            attrs["enabled"] = json!(e);
        }
        if i == 0 {
            attrs["image_ref"] = json!("e495ebad-be64-46c0-81d6-b079beb48df9");
        }
        r.attributes = obj(attrs);
        r.user_id = user.map(str::to_owned);
        r.project_id = project.map(str::to_owned);
        r.started_at = Some(ts(started));
        r.ended_at = ended.map(ts);
        out.push(ix.create_resource("instance", &r).await.unwrap());
    }
    // One generic resource too.
    let mut g = new_resource(Uuid::new_v4(), "foobar");
    g.started_at = Some(ts("2014-01-07T00:00:00Z"));
    out.push(ix.create_resource("generic", &g).await.unwrap());
    out
}

async fn find(ix: &Indexer, t: &str, q: &str) -> Vec<Uuid> {
    let f = parse_string(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    let r = ix
        .search_resources(t, Some(&f), &SearchOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{q}: {e:?}"));
    sorted(ids(&r))
}

async fn find_json(ix: &Indexer, t: &str, q: Value) -> Vec<Uuid> {
    let f = parse_json(&q).unwrap();
    let r = ix
        .search_resources(t, f.as_ref(), &SearchOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{q}: {e:?}"));
    sorted(ids(&r))
}

/// Metric filters on user and project match the ids literally: `%` and `_` in an id
/// (which a noauth caller chooses freely) are not wildcards.
pub(crate) async fn metric_filters_match_ids_literally(ix: Indexer, _url: String) {
    setup(&ix).await;
    let mut made = BTreeMap::new();
    for creator in ["a_b:p%1", "axb:p21", "a%:q", "abc:p_1", "a:p!1", "solo"] {
        let m = ix
            .create_metric(&metric("low", None, creator))
            .await
            .unwrap();
        made.insert(creator, m.id);
    }
    let by = |user: Option<&str>, project: Option<&str>| {
        let ix = ix.clone();
        let filter = MetricFilter {
            user_id: user.map(str::to_owned),
            project_id: project.map(str::to_owned),
            ..Default::default()
        };
        async move {
            let found = ix
                .list_metrics(&filter, &Pagination::default())
                .await
                .unwrap();
            sorted(found.into_iter().map(|m| m.id).collect())
        }
    };
    let want = |creators: &[&str]| sorted(creators.iter().map(|c| made[c]).collect());
    assert_eq!(by(Some("a_b"), None).await, want(&["a_b:p%1"]));
    assert_eq!(by(Some("a%"), None).await, want(&["a%:q"]));
    assert_eq!(by(Some("%"), None).await, want(&[]));
    assert_eq!(by(Some("solo"), None).await, want(&["solo"]));
    assert_eq!(by(None, Some("p%1")).await, want(&["a_b:p%1"]));
    assert_eq!(by(None, Some("p_1")).await, want(&["abc:p_1"]));
    assert_eq!(by(None, Some("p!1")).await, want(&["a:p!1"]));
    assert_eq!(by(None, Some("%")).await, want(&[]));
    assert_eq!(by(Some("a_b"), Some("p%1")).await, want(&["a_b:p%1"]));
    assert_eq!(by(Some("a_b"), Some("p21")).await, want(&[]));
}

/// The search `like` operator is the client's own pattern: `%` and `_` are wildcards,
/// and a backslash escapes them (PostgreSQL's and MySQL's default, which SQLite is told
/// to follow).
pub(crate) async fn search_like_is_a_pattern(ix: Indexer, _url: String) {
    setup(&ix).await;
    let mut made = BTreeMap::new();
    for project in ["compute_1", "computeX1", "compute%", "other"] {
        let id = Uuid::new_v4();
        let mut r = new_resource(id, "u:p");
        r.project_id = Some(project.into());
        ix.create_resource("generic", &r).await.unwrap();
        made.insert(project, id);
    }
    let want = |projects: &[&str]| sorted(projects.iter().map(|p| made[p]).collect());
    let t = "generic";
    assert_eq!(
        find(&ix, t, "project_id like 'compute%'").await,
        want(&["compute_1", "computeX1", "compute%"])
    );
    assert_eq!(
        find(&ix, t, "project_id like 'compute_1'").await,
        want(&["compute_1", "computeX1"])
    );
    assert_eq!(
        find_json(&ix, t, json!({"like": {"project_id": "compute\\_1"}})).await,
        want(&["compute_1"])
    );
    assert_eq!(
        find_json(&ix, t, json!({"like": {"project_id": "compute\\%"}})).await,
        want(&["compute%"])
    );
    assert_eq!(
        find(&ix, t, "project_id like '%'").await,
        want(&["compute_1", "computeX1", "compute%", "other"])
    );
}

pub(crate) async fn search_every_operator(ix: Indexer, _url: String) {
    let rs = search_fixture(&ix).await;
    let id = |is: &[usize]| sorted(is.iter().map(|i| rs[*i].id).collect());
    let t = "instance";
    assert_eq!(find(&ix, t, "host = compute1").await, id(&[0, 1]));
    assert_eq!(find(&ix, t, "host eq 'compute1'").await, id(&[0, 1]));
    assert_eq!(
        find_json(&ix, t, json!({"==": {"host": "compute1"}})).await,
        id(&[0, 1])
    );
    assert_eq!(find(&ix, t, "host != compute1").await, id(&[2, 3, 4, 5]));
    assert_eq!(find(&ix, t, "host ne compute1").await, id(&[2, 3, 4, 5]));
    assert_eq!(find(&ix, t, "host ≠ compute1").await, id(&[2, 3, 4, 5]));
    // ne selects nulls too (Gnocchi).
    assert_eq!(find(&ix, t, "project_id != p1").await, id(&[1, 2, 4]));
    assert_eq!(find(&ix, t, "flavor_id < 2").await, id(&[0, 4]));
    assert_eq!(find(&ix, t, "flavor_id lt 2").await, id(&[0, 4]));
    assert_eq!(find(&ix, t, "flavor_id <= 2").await, id(&[0, 1, 4]));
    assert_eq!(find(&ix, t, "flavor_id le 2").await, id(&[0, 1, 4]));
    assert_eq!(find(&ix, t, "flavor_id ≤ 2").await, id(&[0, 1, 4]));
    assert_eq!(find(&ix, t, "flavor_id > 2").await, id(&[2, 5]));
    assert_eq!(find(&ix, t, "flavor_id gt 2").await, id(&[2, 5]));
    assert_eq!(find(&ix, t, "flavor_id >= 3.5").await, id(&[2, 5]));
    assert_eq!(find(&ix, t, "flavor_id ge 3.5").await, id(&[2, 5]));
    assert_eq!(find(&ix, t, "flavor_id ≥ 3.5").await, id(&[2, 5]));
    assert_eq!(
        find(&ix, t, "flavor_id >= -1.0").await,
        id(&[0, 1, 2, 4, 5])
    );
    assert_eq!(
        find(&ix, t, "host in [compute1, other]").await,
        id(&[0, 1, 4])
    );
    assert_eq!(
        find_json(&ix, t, json!({"in": {"flavor_id": [1, 100]}})).await,
        id(&[0, 5])
    );
    assert_eq!(
        find(&ix, t, "display_name like 'ab%'").await,
        id(&[0, 1, 4])
    );
    assert_eq!(find(&ix, t, "display_name like 'a_c'").await, id(&[0, 5]));
    assert_eq!(
        find(&ix, t, "display_name like 'AB%'").await,
        id(&[]),
        "like is case-sensitive"
    );
    assert_eq!(find(&ix, t, "creator like 'adm%'").await, id(&[1, 3, 5]));
    assert_eq!(find(&ix, t, "display_name = null").await, id(&[2]));
    assert_eq!(
        find(&ix, t, "display_name != None").await,
        id(&[0, 1, 3, 4, 5])
    );
    assert_eq!(find(&ix, t, "ended_at = none").await, id(&[0, 3, 5]));
    assert_eq!(
        find_json(&ix, t, json!({"=": {"ended_at": null}})).await,
        id(&[0, 3, 5])
    );
    assert_eq!(find(&ix, t, "enabled = true").await, id(&[0, 3]));
    assert_eq!(find(&ix, t, "enabled = False").await, id(&[1, 4]));
    assert_eq!(
        find(&ix, t, "not enabled = true").await,
        id(&[1, 4]),
        "NOT over null stays unknown"
    );
    assert_eq!(find(&ix, t, "not host = compute1").await, id(&[2, 3, 4, 5]));
    assert_eq!(
        find(
            &ix,
            t,
            "host = compute1 and user_id = u1 and project_id = p2"
        )
        .await,
        id(&[1])
    );
    assert_eq!(
        find(&ix, t, "host = compute1 ∧ project_id = p1").await,
        id(&[0])
    );
    assert_eq!(
        find(&ix, t, "host = other or host = compute3").await,
        id(&[4, 5])
    );
    assert_eq!(
        find(&ix, t, "host = other ∨ host = compute3").await,
        id(&[4, 5])
    );
    assert_eq!(
        find(
            &ix,
            t,
            "(host = compute1 or host = compute2) and not (user_id = u1)"
        )
        .await,
        id(&[2])
    );
    assert_eq!(
        find(&ix, t, "started_at >= '2014-01-04'").await,
        id(&[3, 4, 5])
    );
    assert_eq!(
        find(
            &ix,
            t,
            "started_at > '2014-01-03T00:00:00+00:00' and started_at < '2014-01-05 00:00:00'"
        )
        .await,
        id(&[3])
    );
    assert_eq!(
        find(&ix, t, "launched_at = '2014-01-02T00:00:00Z'").await,
        id(&[1])
    );
    assert_eq!(
        find(&ix, t, "image_ref = e495ebad-be64-46c0-81d6-b079beb48df9").await,
        id(&[0])
    );
    assert_eq!(
        find(&ix, t, "image_ref = e495ebadbe6446c081d6b079beb48df9").await,
        id(&[0])
    );
    assert_eq!(
        find(&ix, t, &format!("id = {}", rs[3].id.simple())).await,
        id(&[3])
    );
    assert_eq!(
        find(&ix, t, &format!("id in [{}, {}]", rs[3].id, rs[4].id)).await,
        id(&[3, 4])
    );
    assert_eq!(
        find(&ix, t, &format!("not id in [{}, {}]", rs[3].id, rs[4].id)).await,
        id(&[0, 1, 2, 5])
    );
    assert_eq!(
        find(&ix, t, "created_by_project_id = adminproj").await,
        id(&[1, 3, 5])
    );
    assert_eq!(
        find(&ix, t, "created_by_user_id = foobar").await,
        id(&[0, 2, 4])
    );
    assert_eq!(
        find(&ix, t, "type = instance").await,
        id(&[0, 1, 2, 3, 4, 5])
    );
    // On generic, the generic resource is found too; empty query matches all.
    assert_eq!(find(&ix, "generic", "user_id = u1").await, id(&[0, 1, 5]));
    assert_eq!(
        find_json(&ix, "generic", json!({})).await,
        id(&[0, 1, 2, 3, 4, 5, 6])
    );
    assert_eq!(
        find(&ix, "generic", "created_by_project_id = ''").await,
        id(&[0, 2, 4, 6])
    );
}

pub(crate) async fn search_string_and_json_forms_agree(ix: Indexer, _url: String) {
    search_fixture(&ix).await;
    let pairs = [
        ("host = compute1 or owner_like = x", Value::Null),
        (
            "host = \"compute1\" or display_name like \"ab%\"",
            json!({"or": [{"=": {"host": "compute1"}}, {"like": {"display_name": "ab%"}}]}),
        ),
        (
            "not (flavor_id > 1 and enabled = true)",
            json!({"not": {"and": [{">": {"flavor_id": 1}}, {"=": {"enabled": true}}]}}),
        ),
        (
            "user_id in ['u1', 'u2'] and project_id ≠ p2",
            json!({"and": [{"in": {"user_id": ["u1", "u2"]}}, {"≠": {"project_id": "p2"}}]}),
        ),
        (
            "started_at ≥ '2014-01-03' ∧ ended_at = null",
            json!({"∧": [{"≥": {"started_at": "2014-01-03"}}, {"eq": {"ended_at": null}}]}),
        ),
        (
            "flavor_id ≤ 3.5 ∨ host = other",
            json!({"∨": [{"le": {"flavor_id": 3.5}}, {"=": {"host": "other"}}]}),
        ),
    ];
    for (s, j) in pairs.iter().skip(1) {
        let a = find(&ix, "instance", s).await;
        let b = find_json(&ix, "instance", j.clone()).await;
        assert_eq!(a, b, "{s}");
        assert!(!a.is_empty(), "{s} matches something");
    }
}

pub(crate) async fn search_lifespan(ix: Indexer, _url: String) {
    let rs = search_fixture(&ix).await;
    let id = |is: &[usize]| sorted(is.iter().map(|i| rs[*i].id).collect());
    // Ended: 1 h, 2 days, 30 s; open ones have no lifespan, as in Gnocchi
    // (`ended_at - started_at` is NULL).
    assert_eq!(find(&ix, "instance", "lifespan < 60").await, id(&[4]));
    assert_eq!(find(&ix, "instance", "lifespan <= 3600").await, id(&[1, 4]));
    assert_eq!(
        find_json(&ix, "instance", json!({"<": {"lifespan": "1 day"}})).await,
        id(&[1, 4])
    );
    assert_eq!(find(&ix, "instance", "lifespan > '1 day'").await, id(&[2]));
    assert_eq!(find(&ix, "instance", "lifespan = 172800").await, id(&[2]));
    assert_eq!(
        find_json(&ix, "instance", json!({"=": {"lifespan": null}})).await,
        id(&[0, 3, 5])
    );
    assert_eq!(
        find(&ix, "instance", "lifespan != null").await,
        id(&[1, 2, 4])
    );
}

pub(crate) async fn search_history(ix: Indexer, _url: String) {
    let rs = search_fixture(&ix).await;
    let upd = |attrs: Value| ResourceUpdate {
        attributes: obj(attrs),
        ..Default::default()
    };
    ix.update_resource("instance", rs[0].id, &upd(json!({"host": "moved"})))
        .await
        .unwrap();
    let after_first = Utc::now();
    ix.update_resource("instance", rs[0].id, &upd(json!({"host": "moved-again"})))
        .await
        .unwrap();
    let q = parse_string("host = compute1").unwrap();
    let current = ix
        .search_resources("instance", Some(&q), &SearchOptions::default())
        .await
        .unwrap();
    assert_eq!(ids(&current), vec![rs[1].id]);
    let hist = SearchOptions {
        history: true,
        ..Default::default()
    };
    let old = ix
        .search_resources("instance", Some(&q), &hist)
        .await
        .unwrap();
    assert_eq!(sorted(ids(&old)), sorted(vec![rs[0].id, rs[1].id]));
    let r0_old = old.iter().find(|r| r.id == rs[0].id).unwrap();
    assert!(r0_old.revision_end.is_some());
    assert_eq!(r0_old.attributes["host"], json!("compute1"));
    // All revisions of rs[0].
    let f = Filter::eq("id", rs[0].id.to_string());
    let all = ix
        .search_resources("instance", Some(&f), &hist)
        .await
        .unwrap();
    assert_eq!(
        all.iter()
            .map(|r| r.attributes["host"].clone())
            .collect::<Vec<_>>(),
        vec![json!("compute1"), json!("moved"), json!("moved-again")]
    );
    // Time range: revisions alive at `after_first`.
    let at = after_first.to_rfc3339();
    let q = parse_string(&format!(
        "id = {} and revision_start <= '{at}' and (revision_end > '{at}' or revision_end = null)",
        rs[0].id
    ))
    .unwrap();
    let alive = ix
        .search_resources("instance", Some(&q), &hist)
        .await
        .unwrap();
    assert_eq!(alive.len(), 1);
    assert_eq!(alive[0].attributes["host"], json!("moved"));
    // Generic history search spans every type.
    let g = ix
        .search_resources(
            "generic",
            Some(&parse_string("revision_end != null").unwrap()),
            &hist,
        )
        .await
        .unwrap();
    assert_eq!(g.len(), 2);
    assert!(g.iter().all(|r| r.id == rs[0].id));
}

pub(crate) async fn search_sort_and_marker_pagination(ix: Indexer, _url: String) {
    setup(&ix).await;
    let mut made = Vec::new();
    for i in 0..12u32 {
        let mut r = new_resource(Uuid::new_v4(), "foobar");
        r.started_at = Some(Utc.with_ymd_and_hms(2014, 1, 1 + i / 3, 0, 0, 0).unwrap());
        r.user_id = if i % 4 == 0 {
            None
        } else {
            Some(format!("u{}", i % 3))
        };
        made.push(ix.create_resource("generic", &r).await.unwrap());
    }
    // Default order: revision_start, started_at, id.
    let def = ix
        .search_resources("generic", None, &SearchOptions::default())
        .await
        .unwrap();
    assert_eq!(ids(&def), ids(&made));
    let sort = vec![
        SortKey::parse("started_at:desc").unwrap(),
        SortKey::parse("id:asc").unwrap(),
    ];
    let mut expected = made.clone();
    expected.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(a.id.cmp(&b.id)));
    let opts = |limit: Option<u64>, marker: Option<String>, sort: Vec<SortKey>| SearchOptions {
        pagination: Pagination {
            limit,
            marker,
            sort,
        },
        ..Default::default()
    };
    let full = ix
        .search_resources("generic", None, &opts(None, None, sort.clone()))
        .await
        .unwrap();
    assert_eq!(ids(&full), ids(&expected));
    // Pages follow oslo.db's marker rule (see `after_marker`), nulls and
    // all: the model picks each page out of the unpaged order.
    for sort in [
        sort.clone(),
        vec![
            SortKey::parse("user_id:asc").unwrap(),
            SortKey::parse("started_at:desc").unwrap(),
        ],
        vec![SortKey::parse("user_id:desc").unwrap()],
        vec![SortKey::parse("user_id:desc-nullslast").unwrap()],
        vec![SortKey::parse("user_id:desc-nullsfirst").unwrap()],
        vec![SortKey::parse("user_id:asc-nullslast").unwrap()],
        vec![
            SortKey::parse("user_id:asc-nullsfirst").unwrap(),
            SortKey::parse("id:desc").unwrap(),
        ],
    ] {
        let full = ix
            .search_resources("generic", None, &opts(None, None, sort.clone()))
            .await
            .unwrap();
        assert_eq!(full.len(), 12);
        let mut keys = sort.clone();
        if !keys.iter().any(|k| k.attr == "id") {
            keys.push(SortKey::asc("id"));
        }
        let mut marker: Option<Resource> = None;
        // Where null markers make pages come again, stop after a few.
        for _ in 0..8 {
            let expected: Vec<&Resource> = full
                .iter()
                .filter(|r| marker.as_ref().is_none_or(|m| after_marker(r, m, &keys)))
                .take(5)
                .collect();
            let page = ix
                .search_resources(
                    "generic",
                    None,
                    &opts(
                        Some(5),
                        marker.as_ref().map(|m| m.marker(false)),
                        sort.clone(),
                    ),
                )
                .await
                .unwrap();
            assert_eq!(
                ids(&page),
                expected.iter().map(|r| r.id).collect::<Vec<_>>(),
                "{sort:?} after {:?}",
                marker.as_ref().map(|m| (&m.user_id, m.id))
            );
            let Some(last) = page.last() else { break };
            marker = Some(last.clone());
        }
    }
    // Null placement.
    let nl = ix
        .search_resources(
            "generic",
            None,
            &opts(
                None,
                None,
                vec![SortKey::parse("user_id:asc-nullsfirst").unwrap()],
            ),
        )
        .await
        .unwrap();
    assert!(nl[..3].iter().all(|r| r.user_id.is_none()));
    let nl = ix
        .search_resources(
            "generic",
            None,
            &opts(None, None, vec![SortKey::parse("user_id:asc").unwrap()]),
        )
        .await
        .unwrap();
    assert!(nl[9..].iter().all(|r| r.user_id.is_none()));
    // With a filter.
    let f = parse_string("started_at >= '2014-01-02'").unwrap();
    let page = ix
        .search_resources(
            "generic",
            Some(&f),
            &SearchOptions {
                pagination: Pagination {
                    limit: Some(2),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(&page), ids(&made[3..5]));
    let e = ix
        .search_resources(
            "generic",
            None,
            &opts(None, Some(Uuid::new_v4().to_string()), vec![]),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, IndexerError::InvalidPagination(_)));
    let e = ix
        .search_resources(
            "generic",
            None,
            &opts(None, None, vec![SortKey::asc("nope")]),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, IndexerError::InvalidQuery { .. }));
}

/// A sort key's value in a resource, as text that sorts as the column does.
fn sort_value(r: &Resource, attr: &str) -> Option<String> {
    match attr {
        "id" => Some(r.id.to_string()),
        "user_id" => r.user_id.clone(),
        "started_at" => Some(r.started_at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()),
        other => panic!("no model for sorting by {other}"),
    }
}

/// oslo.db's `paginate_query` marker rule, as Gnocchi pages with it: some
/// key whose marker value is not null is past the marker's, the earlier
/// keys with non-null marker values being equal; a null is past it only
/// after an explicit `asc-nullslast` or `desc-nullsfirst`.
fn after_marker(r: &Resource, m: &Resource, keys: &[SortKey]) -> bool {
    keys.iter().enumerate().any(|(i, key)| {
        let Some(mark) = sort_value(m, &key.attr) else {
            return false;
        };
        let earlier_equal = keys[..i].iter().all(|earlier| {
            sort_value(m, &earlier.attr)
                .is_none_or(|mark| sort_value(r, &earlier.attr) == Some(mark))
        });
        let past = match sort_value(r, &key.attr) {
            None => key.nulls_first == Some(key.descending),
            Some(value) if key.descending => value < mark,
            Some(value) => value > mark,
        };
        earlier_equal && past
    })
}

pub(crate) async fn search_history_pagination(ix: Indexer, _url: String) {
    let rs = search_fixture(&ix).await;
    for (i, r) in rs.iter().take(3).enumerate() {
        ix.update_resource(
            "instance",
            r.id,
            &ResourceUpdate {
                attributes: obj(json!({"host": format!("n{i}")})),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let hist = |limit: Option<u64>, marker: Option<String>| SearchOptions {
        history: true,
        pagination: Pagination {
            limit,
            marker,
            sort: vec![SortKey::parse("host:asc").unwrap()],
        },
        ..Default::default()
    };
    let full = ix
        .search_resources("instance", None, &hist(None, None))
        .await
        .unwrap();
    assert_eq!(full.len(), 9);
    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let page = ix
            .search_resources("instance", None, &hist(Some(2), marker.clone()))
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        marker = Some(page.last().unwrap().marker(true));
        seen.extend(page);
    }
    let key = |v: &[Resource]| v.iter().map(|r| (r.id, r.revision)).collect::<Vec<_>>();
    assert_eq!(key(&seen), key(&full));
}

pub(crate) async fn search_errors(ix: Indexer, _url: String) {
    search_fixture(&ix).await;
    let run = |t: &'static str, f: Filter| {
        let ix = ix.clone();
        async move {
            ix.search_resources(t, Some(&f), &SearchOptions::default())
                .await
        }
    };
    let e = run("instance", parse_string("nope = 1").unwrap())
        .await
        .unwrap_err();
    match e {
        IndexerError::InvalidQuery { attribute, message } => {
            assert_eq!(attribute.as_deref(), Some("nope"));
            assert_eq!(message, "Resource type instance has no nope attribute");
        }
        other => panic!("{other:?}"),
    }
    // A type's attribute is unknown on generic.
    assert!(matches!(
        run("generic", parse_string("host = x").unwrap()).await,
        Err(IndexerError::InvalidQuery { .. })
    ));
    for q in [
        "flavor_id = abc",
        "started_at > 'not a date'",
        "enabled = maybe",
        "flavor_id like '1%'",
        "host > null",
        "lifespan > forever",
    ] {
        let e = run("instance", parse_string(q).unwrap()).await.unwrap_err();
        assert!(matches!(e, IndexerError::InvalidQuery { .. }), "{q}: {e:?}");
    }
    assert!(parse_string("id == foobar")
        .unwrap_err()
        .to_string()
        .starts_with("Expected"));
    assert!(parse_string("host = 'unterminated").is_err());
    assert!(parse_string("(host = a").is_err());
    assert!(parse_string("id in []").is_err());
    assert!(parse_json(&json!({"like": {"id": "fa%"}})).is_err());
    assert!(parse_json(&json!({"and": {"project_id": "foobar"}})).is_err());
    assert!(parse_json(&json!({"in": {"id": []}})).is_err());
    assert!(parse_json(&json!({"foo": {"id": "x"}})).is_err());
    // Ids no resource could have are refused where they stand, as Gnocchi's
    // schema refuses them.
    let long = "x".repeat(290);
    assert_eq!(
        parse_json(&json!({"and": [{"=": {"id": long}}]}))
            .unwrap_err()
            .to_string(),
        "transformable resource id >289 max allowed characters for dictionary value \
         @ data['and'][0]['=']['id']"
    );
    assert_eq!(
        parse_json(&json!({"in": {"id": ["a", "b/c"]}}))
            .unwrap_err()
            .to_string(),
        "'/' is not supported in resource id @ data['in']['id'][1]"
    );
    assert!(matches!(
        ix.search_resources("nope", None, &SearchOptions::default())
            .await,
        Err(IndexerError::NoSuchResourceType(_))
    ));
    // Non-UUID ids are mapped, not refused.
    assert!(run(
        "generic",
        parse_json(&json!({"=": {"id": "cd9eef"}}))
            .unwrap()
            .unwrap()
    )
    .await
    .unwrap()
    .is_empty());
}

pub(crate) async fn search_details_on_generic(ix: Indexer, _url: String) {
    let rs = search_fixture(&ix).await;
    ix.update_resource(
        "instance",
        rs[0].id,
        &ResourceUpdate {
            attributes: obj(json!({"host": "z"})),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let plain = ix
        .search_resources("generic", None, &SearchOptions::default())
        .await
        .unwrap();
    assert!(plain.iter().all(|r| r.attributes.is_empty()));
    let details = ix
        .search_resources(
            "generic",
            None,
            &SearchOptions {
                details: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(details.len(), 7);
    for r in &details {
        if r.resource_type == "instance" {
            assert_eq!(r.attributes.len(), 6, "{r:?}");
        } else {
            assert!(r.attributes.is_empty());
        }
    }
    let d0 = details.iter().find(|r| r.id == rs[0].id).unwrap();
    assert_eq!(d0.attributes["host"], json!("z"));
    let hist = ix
        .search_resources(
            "generic",
            None,
            &SearchOptions {
                details: true,
                history: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let old = hist
        .iter()
        .find(|r| r.id == rs[0].id && r.revision.is_some())
        .unwrap();
    assert_eq!(old.attributes["host"], json!("compute1"));
}

/// Batch creation carries every value through unchanged, whatever the dialect's bulk
/// path (PostgreSQL sends each column as one array literal): quotes, backslashes,
/// braces, commas, the word NULL, non-ASCII text, nulls, fractional and extreme numbers.
pub(crate) async fn resource_batch_create_round_trips_values(ix: Indexer, _url: String) {
    setup(&ix).await;
    create_instance_type(&ix).await;
    let hosts = [
        r#"a "quoted" host"#,
        r"back\slash\",
        "{braces},commas",
        "NULL",
        "",
        "été ☃ 東京",
        "trailing space ",
    ];
    let flavors = [
        json!(0.1),
        json!(-2),
        json!(99.999999),
        json!(1e-7),
        Value::Null,
    ];
    let news: Vec<NewResource> = hosts
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let mut r = new_resource(Uuid::new_v4(), "foobar:proj");
            r.original_resource_id = format!("orig \"{i}\" \\ {{}}");
            r.user_id = (i % 2 == 0).then(|| (*host).to_owned());
            r.project_id = None;
            r.attributes = obj(json!({
                "host": host,
                "display_name": if i % 3 == 0 { Value::Null } else { json!("ab,c") },
                "flavor_id": flavors[i % flavors.len()],
                "image_ref": if i % 2 == 0 { json!(Uuid::nil().to_string()) } else { Value::Null },
                "enabled": if i == 4 { Value::Null } else { json!(i % 2 == 0) },
                "launched_at": "2017-05-02T11:11:11.123456Z",
            }));
            r
        })
        .collect();
    let created = ix.create_resources("instance", &news).await.unwrap();
    for (i, new) in news.iter().enumerate() {
        let got = ix.get_resource("instance", new.id).await.unwrap();
        assert_eq!(
            created[i], got,
            "row {i}: what was returned is what was stored"
        );
        assert_eq!(got.attributes["host"], json!(hosts[i]), "row {i}");
        assert_eq!(got.original_resource_id, new.original_resource_id);
        assert_eq!(got.user_id, new.user_id);
        assert_eq!(got.project_id, None);
        let flavor = &new.attributes["flavor_id"];
        assert_eq!(
            got.attributes["flavor_id"].as_f64(),
            flavor.as_f64(),
            "row {i}"
        );
    }
}

pub(crate) async fn resource_batch_create(ix: Indexer, _url: String) {
    setup(&ix).await;
    create_instance_type(&ix).await;
    let news: Vec<NewResource> = (0..1200)
        .map(|i| {
            let mut r = new_resource(Uuid::new_v4(), "foobar:proj");
            r.user_id = Some(format!("u{}", i % 7));
            r.started_at = Some(Utc.timestamp_opt(1_400_000_000 + i64::from(i), 0).unwrap());
            r.attributes = obj(json!({
                "host": format!("h{}", i % 10), "flavor_id": i % 50, "enabled": i % 2 == 0,
                "launched_at": "2017-05-02T11:11:11Z"
            }));
            if i == 7 {
                r.metrics.insert(
                    "cpu".into(),
                    ResourceMetric::New {
                        archive_policy_name: Some("low".into()),
                        unit: None,
                    },
                );
            }
            r
        })
        .collect();
    let created = ix.create_resources("instance", &news).await.unwrap();
    assert_eq!(created.len(), 1200);
    for i in [0, 7, 499, 500, 1199] {
        let got = ix.get_resource("instance", news[i].id).await.unwrap();
        assert_eq!(created[i], got, "row {i}");
    }
    assert_eq!(created[7].metrics.len(), 1);
    assert_eq!(
        find(&ix, "instance", "host = h3 and flavor_id = 3")
            .await
            .len(),
        24
    );
    // All or nothing.
    let mut bad: Vec<NewResource> = (0..3)
        .map(|_| {
            let mut r = new_resource(Uuid::new_v4(), "x");
            r.attributes = obj(json!({"host": "ok"}));
            r
        })
        .collect();
    bad[2].attributes = obj(json!({"host": "ok", "flavor_id": 1000}));
    assert!(matches!(
        ix.create_resources("instance", &bad).await,
        Err(IndexerError::InvalidAttribute { .. })
    ));
    bad[2].attributes = obj(json!({"host": "ok"}));
    bad[1].id = news[0].id;
    let e = ix.create_resources("instance", &bad).await.unwrap_err();
    assert!(matches!(e, IndexerError::ResourceAlreadyExists(id) if id == news[0].id));
    bad[1].id = bad[0].id;
    assert!(matches!(
        ix.create_resources("instance", &bad).await,
        Err(IndexerError::ResourceAlreadyExists(_))
    ));
    let all = ix
        .search_resources("generic", None, &SearchOptions::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 1200);
    assert!(ix
        .create_resources("instance", &[])
        .await
        .unwrap()
        .is_empty());
}
