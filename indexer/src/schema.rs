//! Versioned schema migrations, as code.
//!
//! Each migration is a list of [`Step`]s rendered per dialect by
//! [`crate::dialect::Dialect`]; the version applied last is recorded in
//! `schema_version`. A migration, once released, never changes: later needs are new
//! migrations. Code rather than SQL files because the same renderer must also build
//! the per-resource-type tables at run time: one description of column types serves both.

use crate::dialect::{col, strs, ColType as T, ColumnDef, Dialect, ForeignKey, TableDef};

/// Migrations in order; version `n` is `MIGRATIONS[n - 1]`.
pub(crate) const MIGRATIONS: &[fn() -> Vec<Step>] = &[v1, v2, v3];

/// The longest original resource id the index holds, in characters: Gnocchi's limit
/// for ids it transforms into UUIDs.
pub(crate) const ORIGINAL_RESOURCE_ID_CHARS: u32 = 289;

/// One change to the schema.
pub(crate) enum Step {
    /// Creates a table and its indexes unless they exist.
    Create(TableDef),
    /// Changes the type of an existing column, keeping its rows.
    Alter {
        table: &'static str,
        column: ColumnDef,
    },
}

impl Step {
    /// The statements carrying the step out, in order.
    pub(crate) fn statements(&self, d: Dialect) -> Vec<String> {
        match self {
            Step::Create(table) => d.create_table(table),
            Step::Alter { table, column } => d.alter_type(table, column).into_iter().collect(),
        }
    }
}

fn fk(cols: &[&str], table: &str, refs: &[&str], on_delete: Option<&'static str>) -> ForeignKey {
    ForeignKey {
        columns: strs(cols),
        table: table.to_owned(),
        ref_columns: strs(refs),
        on_delete,
    }
}

/// Columns shared by `resource` and `resource_history`.
fn resource_columns() -> Vec<crate::dialect::ColumnDef> {
    vec![
        col("id", T::Uuid, false),
        col("type", T::Varchar(255), false),
        col("creator", T::Varchar(255), false),
        col("created_by_user_id", T::Varchar(255), false),
        col("created_by_project_id", T::Varchar(255), false),
        col("user_id", T::Varchar(255), true),
        col("project_id", T::Varchar(255), true),
        col("original_resource_id", T::Varchar(255), false),
        col("started_at", T::BigInt, false),
        col("ended_at", T::BigInt, true),
        col("revision_start", T::BigInt, false),
        col("revision_end", T::BigInt, true),
    ]
}

fn v1() -> Vec<Step> {
    let archive_policy = TableDef {
        name: "archive_policy".into(),
        columns: vec![
            col("name", T::Varchar(255), false),
            col("back_window", T::BigInt, false),
            col("definition", T::Text, false),
            col("aggregation_methods", T::Text, false),
        ],
        primary_key: strs(&["name"]),
        ..Default::default()
    };
    let rule = TableDef {
        name: "archive_policy_rule".into(),
        columns: vec![
            col("name", T::Varchar(255), false),
            col("archive_policy_name", T::Varchar(255), false),
            col("metric_pattern", T::Varchar(255), false),
        ],
        primary_key: strs(&["name"]),
        foreign_keys: vec![fk(
            &["archive_policy_name"],
            "archive_policy",
            &["name"],
            Some("RESTRICT"),
        )],
        ..Default::default()
    };
    let resource_type = TableDef {
        name: "resource_type".into(),
        columns: vec![
            col("name", T::Varchar(255), false),
            col("tablename", T::Varchar(64), false),
            col("attributes", T::Text, false),
            col("state", T::Varchar(32), false),
            col("updated_at", T::BigInt, false),
        ],
        primary_key: strs(&["name"]),
        uniques: vec![strs(&["tablename"])],
        ..Default::default()
    };
    let resource = TableDef {
        name: "resource".into(),
        columns: resource_columns(),
        primary_key: strs(&["id"]),
        foreign_keys: vec![fk(&["type"], "resource_type", &["name"], Some("RESTRICT"))],
        indexes: vec![
            ("ix_resource_type".into(), strs(&["type"])),
            ("ix_resource_started_at".into(), strs(&["started_at"])),
            ("ix_resource_project_id".into(), strs(&["project_id"])),
            ("ix_resource_user_id".into(), strs(&["user_id"])),
            (
                "ix_resource_original_resource_id".into(),
                strs(&["original_resource_id"]),
            ),
        ],
        ..Default::default()
    };
    let mut history_cols = vec![col("revision", T::AutoPk, false)];
    history_cols.extend(resource_columns());
    let history = TableDef {
        name: "resource_history".into(),
        columns: history_cols,
        foreign_keys: vec![fk(&["id"], "resource", &["id"], Some("CASCADE"))],
        indexes: vec![("ix_resource_history_id".into(), strs(&["id"]))],
        ..Default::default()
    };
    let metric = TableDef {
        name: "metric".into(),
        columns: vec![
            col("seq", T::AutoPk, false),
            col("id", T::Uuid, false),
            col("archive_policy_name", T::Varchar(255), false),
            col("creator", T::Varchar(255), false),
            col("resource_id", T::Uuid, true),
            col("name", T::Varchar(255), true),
            col("unit", T::Varchar(31), true),
            col("status", T::Varchar(16), false),
        ],
        uniques: vec![strs(&["id"]), strs(&["resource_id", "name"])],
        foreign_keys: vec![
            fk(
                &["archive_policy_name"],
                "archive_policy",
                &["name"],
                Some("RESTRICT"),
            ),
            fk(&["resource_id"], "resource", &["id"], Some("SET NULL")),
        ],
        indexes: vec![
            ("ix_metric_status".into(), strs(&["status"])),
            (
                "ix_metric_archive_policy_name".into(),
                strs(&["archive_policy_name"]),
            ),
        ],
        ..Default::default()
    };
    [
        archive_policy,
        rule,
        resource_type,
        resource,
        history,
        metric,
    ]
    .into_iter()
    .map(Step::Create)
    .collect()
}

/// Settings every process sharing the index must agree on (the sack count), so that
/// they live with the index rather than in each process's flags.
fn v2() -> Vec<Step> {
    vec![Step::Create(TableDef {
        name: "index_setting".into(),
        columns: vec![
            col("name", T::Varchar(64), false),
            col("value", T::Varchar(255), false),
        ],
        primary_key: strs(&["name"]),
        ..Default::default()
    })]
}

/// Original resource ids up to Gnocchi's 289 characters (v1 held 255).
fn v3() -> Vec<Step> {
    ["resource", "resource_history"]
        .into_iter()
        .map(|table| Step::Alter {
            table,
            column: col(
                "original_resource_id",
                T::Varchar(ORIGINAL_RESOURCE_ID_CHARS),
                false,
            ),
        })
        .collect()
}
