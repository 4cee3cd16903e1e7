//! Resource types: their attribute schemas and their typed tables.
//!
//! Each type other than `generic` owns `rt_<hex>` (one row per current resource, keyed by
//! resource id) and `rt_<hex>_h` (one row per old revision, keyed by the revision of
//! `resource_history`), with one real column per attribute, indexed in the current table.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::dialect::{
    col, get_f64, get_i64, get_string, get_text, strs, Arg, ColType, ForeignKey, Sql, TableDef,
};
use crate::error::{violation, Violation};
use crate::search::ValueKind;
use crate::{time, Conn, Indexer, IndexerError, Result};

/// Names a custom attribute may not take: the generic resource's own attributes.
pub(crate) const RESERVED_NAMES: &[&str] = &[
    "id",
    "type",
    "metrics",
    "revision",
    "revision_start",
    "revision_end",
    "started_at",
    "ended_at",
    "user_id",
    "project_id",
    "created_by_user_id",
    "created_by_project_id",
    "creator",
    "original_resource_id",
    "lifespan",
];

/// The type of a resource type attribute, with its constraints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum AttributeType {
    String { min_length: u32, max_length: u32 },
    Uuid,
    Number { min: Option<f64>, max: Option<f64> },
    Bool,
    Datetime,
}

impl AttributeType {
    fn type_name(&self) -> &'static str {
        match self {
            AttributeType::String { .. } => "string",
            AttributeType::Uuid => "uuid",
            AttributeType::Number { .. } => "number",
            AttributeType::Bool => "bool",
            AttributeType::Datetime => "datetime",
        }
    }

    pub(crate) fn col_type(&self) -> ColType {
        match self {
            AttributeType::String { max_length, .. } => ColType::Varchar((*max_length).max(1)),
            AttributeType::Uuid => ColType::Uuid,
            AttributeType::Number { .. } => ColType::Double,
            AttributeType::Bool => ColType::SmallInt,
            AttributeType::Datetime => ColType::BigInt,
        }
    }

    pub(crate) fn value_kind(&self) -> ValueKind {
        match self {
            AttributeType::String { .. } | AttributeType::Uuid => ValueKind::Text,
            AttributeType::Number { .. } => ValueKind::Float,
            AttributeType::Bool | AttributeType::Datetime => ValueKind::Int,
        }
    }

    /// Validates `v` against the type; `Err(reason)` in Gnocchi's (voluptuous) words.
    pub(crate) fn check(&self, v: &Value) -> std::result::Result<Arg, String> {
        match (self, v) {
            (
                AttributeType::String {
                    min_length,
                    max_length,
                },
                Value::String(s),
            ) => {
                let n = s.chars().count() as u32;
                if n > *max_length {
                    Err(format!("length of value must be at most {max_length}"))
                } else if n < *min_length {
                    Err(format!("length of value must be at least {min_length}"))
                } else {
                    Ok(Arg::Text(Some(s.clone())))
                }
            }
            (AttributeType::String { .. }, _) => Err("expected str".into()),
            (AttributeType::Uuid, Value::String(s)) => match Uuid::parse_str(s) {
                Ok(u) => Ok(u.into()),
                Err(_) => Err("badly formed hexadecimal UUID string".into()),
            },
            (AttributeType::Uuid, _) => Err("badly formed hexadecimal UUID string".into()),
            (AttributeType::Number { min, max }, Value::Number(n)) => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if let Some(min) = min {
                    if f < *min {
                        return Err(format!("value must be at least {}", fmt_num(*min)));
                    }
                }
                if let Some(max) = max {
                    if f > *max {
                        return Err(format!("value must be at most {}", fmt_num(*max)));
                    }
                }
                Ok(Arg::Float(Some(f)))
            }
            (AttributeType::Number { .. }, _) => Err("expected Real".into()),
            (AttributeType::Bool, Value::Bool(b)) => Ok(Arg::Int(Some(*b as i64))),
            (AttributeType::Bool, _) => Err("expected bool".into()),
            (AttributeType::Datetime, Value::String(s)) => match time::parse(s) {
                Some(t) => Ok(Arg::Int(Some(time::to_us(t)))),
                None => Err("expected datetime".into()),
            },
            (AttributeType::Datetime, Value::Number(n)) => Ok(Arg::Int(Some(
                (n.as_f64().unwrap_or(0.0) * 1e6).round() as i64,
            ))),
            (AttributeType::Datetime, _) => Err("expected datetime".into()),
        }
    }

    /// Reads the column `col` of `row` back as JSON.
    pub(crate) fn read(&self, row: &sqlx::any::AnyRow, col: &str) -> Result<Value> {
        Ok(match self {
            AttributeType::String { .. } | AttributeType::Uuid => get_text(row, col)?
                .map(Value::String)
                .unwrap_or(Value::Null),
            AttributeType::Number { .. } => get_f64(row, col)?.map_or(Value::Null, float_value),
            AttributeType::Bool => get_i64(row, col)?
                .map(|v| Value::Bool(v != 0))
                .unwrap_or(Value::Null),
            AttributeType::Datetime => get_i64(row, col)?
                .map(|v| Value::String(time::iso(time::from_us(v))))
                .unwrap_or(Value::Null),
        })
    }
}

fn fmt_num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// A number column's value as Gnocchi reads it back from its float column:
/// `4.0`, not `4` (NaN and infinities, which JSON lacks, as null).
pub(crate) fn float_value(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// One attribute of a resource type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeSchema {
    #[serde(flatten)]
    pub attr_type: AttributeType,
    pub required: bool,
    /// Value given to existing resources when the attribute is added (`options.fill`);
    /// not stored.
    #[serde(skip)]
    pub fill: Option<Value>,
}

/// Life-cycle state of a resource type, as Gnocchi reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceTypeState {
    Active,
    Creating,
    CreationError,
    Updating,
    UpdatingError,
    Deleting,
    DeletionError,
}

impl ResourceTypeState {
    fn as_str(self) -> &'static str {
        match self {
            ResourceTypeState::Active => "active",
            ResourceTypeState::Creating => "creating",
            ResourceTypeState::CreationError => "creation_error",
            ResourceTypeState::Updating => "updating",
            ResourceTypeState::UpdatingError => "updating_error",
            ResourceTypeState::Deleting => "deleting",
            ResourceTypeState::DeletionError => "deletion_error",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "creating" => ResourceTypeState::Creating,
            "creation_error" => ResourceTypeState::CreationError,
            "updating" => ResourceTypeState::Updating,
            "updating_error" => ResourceTypeState::UpdatingError,
            "deleting" => ResourceTypeState::Deleting,
            "deletion_error" => ResourceTypeState::DeletionError,
            _ => ResourceTypeState::Active,
        }
    }
}

/// A resource type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceType {
    pub name: String,
    pub state: ResourceTypeState,
    pub attributes: BTreeMap<String, AttributeSchema>,
    #[serde(skip)]
    pub(crate) tablename: String,
}

impl ResourceType {
    pub(crate) fn has_table(&self) -> bool {
        self.name != "generic"
    }
    pub(crate) fn history_table(&self) -> String {
        format!("{}_h", self.tablename)
    }
}

/// The net effect of a resource type PATCH: attributes to add (or to change, keeping
/// their type) and attributes to remove.
#[derive(Debug, Clone, Default)]
pub struct ResourceTypeUpdate {
    pub add: BTreeMap<String, AttributeSchema>,
    pub remove: Vec<String>,
}

fn type_from_row(row: &sqlx::any::AnyRow) -> Result<ResourceType> {
    Ok(ResourceType {
        name: get_string(row, "name")?,
        state: ResourceTypeState::parse(&get_string(row, "state")?),
        attributes: serde_json::from_str(&get_string(row, "attributes")?).unwrap_or_default(),
        tablename: get_string(row, "tablename")?,
    })
}

fn check_attribute_name(name: &str) -> Result<()> {
    if RESERVED_NAMES.contains(&name) {
        return Err(IndexerError::InvalidResourceType(format!(
            "{name} is a reserved attribute name"
        )));
    }
    if name.is_empty()
        || name.len() > 63
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err(IndexerError::InvalidResourceType(format!(
            "Resource type attribute name {name} is invalid"
        )));
    }
    Ok(())
}

fn check_schema(name: &str, a: &AttributeSchema) -> Result<()> {
    check_attribute_name(name)?;
    match &a.attr_type {
        AttributeType::String {
            min_length,
            max_length,
        } if min_length > max_length => Err(IndexerError::InvalidResourceType(format!(
            "Attribute {name}: max_length must be greater than or equal to min_length"
        ))),
        AttributeType::Number {
            min: Some(min),
            max: Some(max),
        } if min > max => Err(IndexerError::InvalidResourceType(format!(
            "Attribute {name}: max must be greater than or equal to min"
        ))),
        _ => Ok(()),
    }
}

fn index_name(table: &str, attr: &str) -> String {
    let h = Uuid::new_v5(&Uuid::NAMESPACE_OID, attr.as_bytes())
        .simple()
        .to_string();
    format!("ix_{table}_{}", &h[..8])
}

fn tables_for(rt: &ResourceType) -> (TableDef, TableDef) {
    let mut current = TableDef {
        name: rt.tablename.clone(),
        columns: vec![col("id", ColType::Uuid, false)],
        primary_key: strs(&["id"]),
        foreign_keys: vec![ForeignKey {
            columns: strs(&["id"]),
            table: "resource".into(),
            ref_columns: strs(&["id"]),
            on_delete: Some("CASCADE"),
        }],
        ..Default::default()
    };
    let mut history = TableDef {
        name: rt.history_table(),
        columns: vec![col("revision", ColType::BigInt, false)],
        primary_key: strs(&["revision"]),
        foreign_keys: vec![ForeignKey {
            columns: strs(&["revision"]),
            table: "resource_history".into(),
            ref_columns: strs(&["revision"]),
            on_delete: Some("CASCADE"),
        }],
        ..Default::default()
    };
    for (name, a) in &rt.attributes {
        current
            .columns
            .push(col(name, a.attr_type.col_type(), true));
        history
            .columns
            .push(col(name, a.attr_type.col_type(), true));
        if indexable(&a.attr_type) {
            current
                .indexes
                .push((index_name(&rt.tablename, name), vec![name.clone()]));
        }
    }
    (current, history)
}

fn indexable(t: &AttributeType) -> bool {
    !matches!(t, AttributeType::String { max_length, .. } if *max_length > 768)
}

impl Indexer {
    /// Creates a resource type and its tables. Its state is `creating` while the tables
    /// are built, then `active` (or `creation_error`).
    pub async fn create_resource_type(
        &self,
        name: &str,
        attributes: &BTreeMap<String, AttributeSchema>,
    ) -> Result<ResourceType> {
        for (n, a) in attributes {
            check_schema(n, a)?;
        }
        let mut attributes = attributes.clone();
        for a in attributes.values_mut() {
            a.fill = None;
        }
        let rt = ResourceType {
            name: name.to_owned(),
            state: ResourceTypeState::Creating,
            attributes,
            tablename: format!("rt_{}", Uuid::new_v4().simple()),
        };
        let mut tx = self.begin().await?;
        let sql = Sql::new("INSERT INTO resource_type (name, tablename, attributes, state, updated_at) VALUES (?, ?, ?, ?, ?)")
            .arg(name)
            .arg(&rt.tablename)
            .arg(serde_json::to_string(&rt.attributes).unwrap_or_default())
            .arg(ResourceTypeState::Creating.as_str())
            .arg(time::now_us());
        match self.execute(&mut tx, &sql).await {
            Ok(_) => {}
            Err(IndexerError::Database(e)) if violation(&e) == Some(Violation::Unique) => {
                return Err(IndexerError::ResourceTypeAlreadyExists(name.to_owned()))
            }
            Err(e) => return Err(e),
        }
        if self.dialect().transactional_ddl() {
            // Tables and the row appear together.
            self.create_type_tables(&mut tx, &rt).await?;
            self.set_type_state(&mut tx, name, ResourceTypeState::Active)
                .await?;
            tx.commit().await?;
        } else {
            tx.commit().await?;
            let mut tx = self.begin().await?;
            let res = self.create_type_tables(&mut tx, &rt).await;
            let state = if res.is_ok() {
                ResourceTypeState::Active
            } else {
                ResourceTypeState::CreationError
            };
            self.set_type_state(&mut tx, name, state).await?;
            tx.commit().await?;
            res?;
        }
        Ok(ResourceType {
            state: ResourceTypeState::Active,
            ..rt
        })
    }

    async fn create_type_tables(&self, tx: &mut Conn, rt: &ResourceType) -> Result<()> {
        let (current, history) = tables_for(rt);
        for t in [current, history] {
            for stmt in self.dialect().create_table(&t) {
                self.ddl(tx, &stmt).await?;
            }
        }
        Ok(())
    }

    async fn set_type_state(
        &self,
        tx: &mut Conn,
        name: &str,
        state: ResourceTypeState,
    ) -> Result<()> {
        self.execute(
            tx,
            &Sql::new("UPDATE resource_type SET state = ?, updated_at = ? WHERE name = ?")
                .arg(state.as_str())
                .arg(time::now_us())
                .arg(name),
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn get_resource_type_tx(
        &self,
        tx: &mut Conn,
        name: &str,
    ) -> Result<ResourceType> {
        let row = self
            .fetch_optional(
                tx,
                &Sql::new(
                    "SELECT name, tablename, attributes, state FROM resource_type WHERE name = ?",
                )
                .arg(name),
            )
            .await?;
        match row {
            Some(r) => type_from_row(&r),
            None => Err(IndexerError::NoSuchResourceType(name.to_owned())),
        }
    }

    pub async fn get_resource_type(&self, name: &str) -> Result<ResourceType> {
        let mut tx = self.conn().await?;
        let rt = self.get_resource_type_tx(&mut tx, name).await;
        rt
    }

    /// All resource types, `generic` first then by name.
    pub async fn list_resource_types(&self) -> Result<Vec<ResourceType>> {
        let mut tx = self.conn().await?;
        let rows = self
            .fetch_all(
                &mut tx,
                &Sql::new("SELECT name, tablename, attributes, state FROM resource_type"),
            )
            .await?;
        let mut v = rows.iter().map(type_from_row).collect::<Result<Vec<_>>>()?;
        v.sort_by(|a, b| (a.name != "generic", &a.name).cmp(&(b.name != "generic", &b.name)));
        Ok(v)
    }

    /// Adds, changes (same type; `required` and constraints) and removes attributes.
    /// Existing rows get `fill` for added attributes (and for attributes becoming
    /// required, where null); a required attribute without `fill` is refused when the
    /// type has resources.
    pub async fn update_resource_type(
        &self,
        name: &str,
        update: &ResourceTypeUpdate,
    ) -> Result<ResourceType> {
        let mut tx = self.begin().await?;
        let mut rt = self.get_resource_type_tx(&mut tx, name).await?;
        if !rt.has_table() && (!update.add.is_empty() || !update.remove.is_empty()) {
            return Err(IndexerError::InvalidResourceType(
                "Resource type generic cannot be updated".into(),
            ));
        }
        for r in &update.remove {
            if !rt.attributes.contains_key(r) {
                return Err(IndexerError::InvalidResourceType(format!(
                    "can't remove a non-existent object '{r}'"
                )));
            }
        }
        let has_rows = self
            .fetch_optional(
                &mut tx,
                &Sql::new("SELECT id FROM resource WHERE type = ?").arg(name),
            )
            .await?
            .is_some();
        let mut fills = Vec::new();
        for (attr, a) in &update.add {
            check_schema(attr, a)?;
            if let Some(old) = rt.attributes.get(attr) {
                if old.attr_type.type_name() != a.attr_type.type_name() {
                    return Err(IndexerError::InvalidResourceType(format!(
                        "Type update is not available yet. Changing {} to {} for attribute {attr} of resource {name}",
                        old.attr_type.type_name(),
                        a.attr_type.type_name()
                    )));
                }
            }
            let fill = match &a.fill {
                Some(v) if !v.is_null() => Some(a.attr_type.check(v).map_err(|reason| {
                    IndexerError::InvalidResourceType(format!(
                        "Option 'fill' of resource attribute {attr} is invalid: {reason}"
                    ))
                })?),
                _ => None,
            };
            if a.required && fill.is_none() && has_rows {
                let newly_required = rt.attributes.get(attr).is_none_or(|old| !old.required);
                if newly_required {
                    return Err(IndexerError::InvalidResourceType(format!(
                        "Option 'fill' of resource attribute {attr} is invalid: must not be empty if required=True"
                    )));
                }
            }
            fills.push((
                attr.clone(),
                a.clone(),
                fill,
                rt.attributes.contains_key(attr),
            ));
        }
        if !self.dialect().transactional_ddl() {
            self.set_type_state(&mut tx, name, ResourceTypeState::Updating)
                .await?;
            tx.commit().await?;
            let mut tx2 = self.begin().await?;
            let res = self
                .apply_type_update(&mut tx2, &mut rt, update, &fills)
                .await;
            let state = if res.is_ok() {
                ResourceTypeState::Active
            } else {
                ResourceTypeState::UpdatingError
            };
            tx2.commit().await?;
            let mut tx3 = self.begin().await?;
            self.set_type_state(&mut tx3, name, state).await?;
            tx3.commit().await?;
            res?;
        } else {
            self.apply_type_update(&mut tx, &mut rt, update, &fills)
                .await?;
            tx.commit().await?;
        }
        rt.state = ResourceTypeState::Active;
        Ok(rt)
    }

    async fn apply_type_update(
        &self,
        tx: &mut Conn,
        rt: &mut ResourceType,
        update: &ResourceTypeUpdate,
        fills: &[(String, AttributeSchema, Option<Arg>, bool)],
    ) -> Result<()> {
        let d = self.dialect();
        let hist = rt.history_table();
        for r in &update.remove {
            if update.add.contains_key(r) {
                continue;
            }
            if d != crate::dialect::Dialect::Mysql {
                self.ddl(
                    tx,
                    &format!(
                        "DROP INDEX IF EXISTS {}",
                        d.quote(&index_name(&rt.tablename, r))
                    ),
                )
                .await?;
            }
            self.ddl(tx, &d.drop_column(&rt.tablename, r)).await?;
            self.ddl(tx, &d.drop_column(&hist, r)).await?;
            rt.attributes.remove(r);
        }
        for (attr, a, fill, existed) in fills {
            let column = col(attr, a.attr_type.col_type(), true);
            if !existed {
                self.ddl(tx, &d.add_column(&rt.tablename, &column)).await?;
                self.ddl(tx, &d.add_column(&hist, &column)).await?;
                if indexable(&a.attr_type) {
                    let ix = index_name(&rt.tablename, attr);
                    let stmt = format!(
                        "CREATE INDEX {} ON {} ({})",
                        d.quote(&ix),
                        d.quote(&rt.tablename),
                        d.quote(attr)
                    );
                    self.ddl(tx, &stmt).await?;
                }
            } else if let Some(alter) = d.alter_type(&rt.tablename, &column) {
                self.ddl(tx, &alter).await?;
                if let Some(alter) = d.alter_type(&hist, &column) {
                    self.ddl(tx, &alter).await?;
                }
            }
            if let Some(fill) = fill {
                for t in [&rt.tablename, &hist] {
                    let sql = Sql::new(format!(
                        "UPDATE {} SET {} = ? WHERE {} IS NULL",
                        d.quote(t),
                        d.quote(attr),
                        d.quote(attr)
                    ))
                    .arg(fill.clone());
                    self.execute(tx, &sql).await?;
                }
            }
            let mut stored = a.clone();
            stored.fill = None;
            rt.attributes.insert(attr.clone(), stored);
        }
        self.execute(
            tx,
            &Sql::new("UPDATE resource_type SET attributes = ?, updated_at = ? WHERE name = ?")
                .arg(serde_json::to_string(&rt.attributes).unwrap_or_default())
                .arg(time::now_us())
                .arg(&rt.name),
        )
        .await?;
        Ok(())
    }

    /// Deletes a resource type and its tables; refused while resources of that type exist
    /// ([`IndexerError::ResourceTypeInUse`]) and for `generic`.
    pub async fn delete_resource_type(&self, name: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let rt = self.get_resource_type_tx(&mut tx, name).await?;
        if !rt.has_table() {
            return Err(IndexerError::ResourceTypeInUse(name.to_owned()));
        }
        if self
            .fetch_optional(
                &mut tx,
                &Sql::new("SELECT id FROM resource WHERE type = ?").arg(name),
            )
            .await?
            .is_some()
        {
            return Err(IndexerError::ResourceTypeInUse(name.to_owned()));
        }
        let d = self.dialect();
        if !d.transactional_ddl() {
            self.set_type_state(&mut tx, name, ResourceTypeState::Deleting)
                .await?;
            tx.commit().await?;
            let mut tx = self.begin().await?;
            let res = async {
                self.ddl(&mut tx, &d.drop_table(&rt.history_table()))
                    .await?;
                self.ddl(&mut tx, &d.drop_table(&rt.tablename)).await
            }
            .await;
            match res {
                Ok(()) => {
                    self.execute(
                        &mut tx,
                        &Sql::new("DELETE FROM resource_type WHERE name = ?").arg(name),
                    )
                    .await?;
                }
                Err(e) => {
                    self.set_type_state(&mut tx, name, ResourceTypeState::DeletionError)
                        .await?;
                    tx.commit().await?;
                    return Err(e);
                }
            }
            tx.commit().await?;
        } else {
            self.ddl(&mut tx, &d.drop_table(&rt.history_table()))
                .await?;
            self.ddl(&mut tx, &d.drop_table(&rt.tablename)).await?;
            self.execute(
                &mut tx,
                &Sql::new("DELETE FROM resource_type WHERE name = ?").arg(name),
            )
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }
}
