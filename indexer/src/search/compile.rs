//! [`Filter`] → SQL predicate over a resource view, values bound and coerced to each
//! attribute's type.

use std::collections::HashMap;

use super::parse::{Filter, FilterValue, Op};
use super::ValueKind;
use crate::dialect::{Arg, Dialect, Sql};
use crate::resource_types::AttributeType;
use crate::{resource_uuid, time, IndexerError, Result};

/// How a column's values are coerced.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ColKind {
    /// The resource id: non-UUID strings map through [`resource_uuid`].
    Id,
    Text,
    Attr(AttributeType),
    Datetime,
    /// `ended_at - started_at` (or now - `started_at`), in seconds.
    Lifespan,
}

#[derive(Debug, Clone)]
pub(crate) struct ColInfo {
    pub(crate) expr: String,
    pub(crate) kind: ColKind,
    pub(crate) nullable: bool,
}

impl ColInfo {
    pub(crate) fn value_kind(&self) -> ValueKind {
        match &self.kind {
            ColKind::Id | ColKind::Text => ValueKind::Text,
            ColKind::Attr(t) => t.value_kind(),
            ColKind::Datetime | ColKind::Lifespan => ValueKind::Int,
        }
    }
}

/// The attributes a filter may name, and their SQL.
#[derive(Debug, Clone, Default)]
pub(crate) struct Columns {
    map: HashMap<String, ColInfo>,
    pub(crate) type_name: String,
}

impl Columns {
    pub(crate) fn generic(alias: &str) -> Columns {
        let mut c = Columns::default();
        let mut put = |name: &str, kind: ColKind, nullable: bool| {
            c.map.insert(
                name.to_owned(),
                ColInfo {
                    expr: format!("{alias}.{name}"),
                    kind,
                    nullable,
                },
            );
        };
        put("id", ColKind::Id, false);
        for n in [
            "type",
            "creator",
            "created_by_user_id",
            "created_by_project_id",
            "original_resource_id",
        ] {
            put(n, ColKind::Text, false);
        }
        put("user_id", ColKind::Text, true);
        put("project_id", ColKind::Text, true);
        put("started_at", ColKind::Datetime, false);
        put("revision_start", ColKind::Datetime, false);
        put("ended_at", ColKind::Datetime, true);
        put("revision_end", ColKind::Datetime, true);
        c.map.insert(
            "lifespan".into(),
            ColInfo {
                expr: alias.to_owned(),
                kind: ColKind::Lifespan,
                nullable: true,
            },
        );
        c
    }

    pub(crate) fn add(&mut self, name: &str, expr: &str, t: AttributeType) {
        self.map.insert(
            name.to_owned(),
            ColInfo {
                expr: expr.to_owned(),
                kind: ColKind::Attr(t),
                nullable: true,
            },
        );
    }

    pub(crate) fn get(&self, name: &str) -> Option<&ColInfo> {
        self.map.get(name).filter(|c| c.kind != ColKind::Lifespan)
    }
}

/// Parses a timespan: seconds as a number, or `<n> <unit>` (s, min, h, d, w and their
/// long names).
fn timespan_us(v: &FilterValue) -> Option<i64> {
    match v {
        FilterValue::Number(n) => Some((n * 1e6).round() as i64),
        FilterValue::String(s) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<f64>() {
                return Some((n * 1e6).round() as i64);
            }
            let split = s
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
                .unwrap_or(s.len());
            let (n, unit) = s.split_at(split);
            let n: f64 = n.trim().parse().ok()?;
            let mult = match unit.trim().to_ascii_lowercase().as_str() {
                "s" | "sec" | "second" | "seconds" => 1.0,
                "m" | "min" | "minute" | "minutes" => 60.0,
                "h" | "hour" | "hours" => 3600.0,
                "d" | "day" | "days" => 86400.0,
                "w" | "week" | "weeks" => 604800.0,
                _ => return None,
            };
            Some((n * mult * 1e6).round() as i64)
        }
        _ => None,
    }
}

/// Gnocchi's `QueryValueError`: the value as Python prints it.
fn bad_value(v: &FilterValue, attr: &str) -> IndexerError {
    fn python(v: &FilterValue, quoted: bool) -> String {
        match v {
            FilterValue::Null => "None".to_owned(),
            FilterValue::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
            FilterValue::Number(n) => n.to_string(),
            FilterValue::String(s) if quoted => format!("'{s}'"),
            FilterValue::String(s) => s.clone(),
            FilterValue::List(items) => {
                let items: Vec<String> = items.iter().map(|item| python(item, true)).collect();
                format!("[{}]", items.join(", "))
            }
        }
    }
    IndexerError::query(
        format!("Invalid value: `{}' for field `{attr}'", python(v, false)),
        Some(attr),
    )
}

/// Coerces a (non-null, scalar) value to what `col` stores.
fn coerce(col: &ColInfo, attr: &str, v: &FilterValue, creator: &str, like: bool) -> Result<Arg> {
    let text = |v: &FilterValue| -> Option<String> {
        match v {
            FilterValue::String(s) => Some(s.clone()),
            FilterValue::Number(n) => Some(if n.fract() == 0.0 {
                format!("{}", *n as i64)
            } else {
                n.to_string()
            }),
            FilterValue::Bool(b) => Some(if *b { "True" } else { "False" }.to_owned()),
            _ => None,
        }
    };
    let as_uuid = |v: &FilterValue| -> Result<Arg> {
        let s = text(v).ok_or_else(|| bad_value(v, attr))?;
        if like {
            return Ok(Arg::Text(Some(s)));
        }
        resource_uuid(&s, creator)
            .map(Arg::from)
            .map_err(|_| bad_value(v, attr))
    };
    let as_time = |v: &FilterValue| -> Result<Arg> {
        match v {
            FilterValue::String(s) => time::parse(s)
                .map(|t| Arg::Int(Some(time::to_us(t))))
                .ok_or_else(|| bad_value(v, attr)),
            FilterValue::Number(n) => Ok(Arg::Int(Some((n * 1e6).round() as i64))),
            _ => Err(bad_value(v, attr)),
        }
    };
    match &col.kind {
        ColKind::Id | ColKind::Attr(AttributeType::Uuid) => as_uuid(v),
        ColKind::Text | ColKind::Attr(AttributeType::String { .. }) => text(v)
            .map(|s| Arg::Text(Some(s)))
            .ok_or_else(|| bad_value(v, attr)),
        ColKind::Datetime | ColKind::Attr(AttributeType::Datetime) => as_time(v),
        ColKind::Attr(AttributeType::Number { .. }) => match v {
            FilterValue::Number(n) => Ok(Arg::Float(Some(*n))),
            FilterValue::String(s) => s
                .trim()
                .parse::<f64>()
                .map(|f| Arg::Float(Some(f)))
                .map_err(|_| bad_value(v, attr)),
            _ => Err(bad_value(v, attr)),
        },
        ColKind::Attr(AttributeType::Bool) => match v {
            FilterValue::Bool(b) => Ok(Arg::Int(Some(*b as i64))),
            FilterValue::Number(n) if *n == 0.0 || *n == 1.0 => Ok(Arg::Int(Some(*n as i64))),
            FilterValue::String(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(Arg::Int(Some(1))),
                "false" | "0" | "no" | "off" => Ok(Arg::Int(Some(0))),
                _ => Err(bad_value(v, attr)),
            },
            _ => Err(bad_value(v, attr)),
        },
        ColKind::Lifespan => timespan_us(v)
            .map(|t| Arg::Int(Some(t)))
            .ok_or_else(|| bad_value(v, attr)),
    }
}

/// Compiles `f` against `cols` for `dialect`; `creator` maps non-UUID ids.
pub(crate) fn compile_filter(
    f: &Filter,
    cols: &Columns,
    creator: &str,
    dialect: Dialect,
) -> Result<Sql> {
    let mut out = Sql::default();
    compile_into(f, cols, creator, dialect, &mut out)?;
    Ok(out)
}

fn compile_into(
    f: &Filter,
    cols: &Columns,
    creator: &str,
    dialect: Dialect,
    out: &mut Sql,
) -> Result<()> {
    match f {
        Filter::And(items) | Filter::Or(items) => {
            let sep = if matches!(f, Filter::And(_)) {
                " AND "
            } else {
                " OR "
            };
            out.push("(");
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(sep);
                }
                compile_into(x, cols, creator, dialect, out)?;
            }
            out.push(")");
        }
        Filter::Not(x) => {
            // Plain SQL NOT, as Gnocchi: a row where the inner predicate is unknown (null
            // attribute) is not selected.
            out.push("(NOT (");
            compile_into(x, cols, creator, dialect, out)?;
            out.push("))");
        }
        Filter::Compare { op, attr, value } => {
            let Some(col) = cols.map.get(attr.as_str()) else {
                return Err(IndexerError::query(
                    format!("Resource type {} has no {attr} attribute", cols.type_name),
                    Some(attr),
                ));
            };
            let expr = if col.kind == ColKind::Lifespan {
                // As in Gnocchi, an open resource has no lifespan (NULL): it
                // matches `lifespan = null` and no comparison.
                let a = &col.expr;
                Sql::new(format!("({a}.ended_at - {a}.started_at)"))
            } else {
                Sql::new(col.expr.clone())
            };
            match (op, value) {
                (Op::Eq, FilterValue::Null) => {
                    out.append(expr).push(" IS NULL");
                }
                (Op::Ne, FilterValue::Null) => {
                    out.append(expr).push(" IS NOT NULL");
                }
                (_, FilterValue::Null) => return Err(bad_value(value, attr)),
                (Op::In, FilterValue::List(items)) => {
                    if items.is_empty() {
                        return Err(IndexerError::query(
                            "length of value must be at least 1",
                            Some(attr),
                        ));
                    }
                    out.append(expr).push(" IN (");
                    for (i, v) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(", ");
                        }
                        // A bad item refuses the list, shown whole.
                        let arg = coerce(col, attr, v, creator, false)
                            .map_err(|_| bad_value(value, attr))?;
                        out.value(arg);
                    }
                    out.push(")");
                }
                (Op::In, v) => {
                    out.append(expr)
                        .push(" = ")
                        .value(coerce(col, attr, v, creator, false)?);
                }
                (_, FilterValue::List(_)) => return Err(bad_value(value, attr)),
                (Op::Like, v) => {
                    if col.kind == ColKind::Id {
                        return Err(IndexerError::query(
                            "value must not be one of ['id']",
                            Some(attr),
                        ));
                    }
                    if col.value_kind() != ValueKind::Text {
                        return Err(bad_value(v, attr));
                    }
                    // The client's own pattern: `%` and `_` stay wildcards.
                    out.append(expr)
                        .push(" LIKE ")
                        .value(coerce(col, attr, v, creator, true)?)
                        .push(dialect.pattern_escape());
                }
                (Op::Ne, v) => {
                    // Gnocchi's `ne` also selects rows where the attribute is null.
                    let arg = coerce(col, attr, v, creator, false)?;
                    out.push("(")
                        .append(expr.clone())
                        .push(" <> ")
                        .value(arg)
                        .push(" OR ")
                        .append(expr)
                        .push(" IS NULL)");
                }
                // `=`, `<`, `<=`, `>`, `>=`: the others are handled above.
                (op, v) => {
                    out.append(expr)
                        .push(&format!(" {} ", op.symbol()))
                        .value(coerce(col, attr, v, creator, false)?);
                }
            }
        }
    }
    Ok(())
}
