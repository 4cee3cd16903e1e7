//! The search language and pagination.
//!
//! Filters arrive as JSON (`{"=": {"host": "a"}}`, `{"and": [...]}`) or as a string
//! (`host = "a" and not started_at < "2020-01-01"`); both parse to one [`Filter`] AST
//! (`parse.rs`), which `compile.rs` turns into a SQL predicate over a resource type's
//! typed columns, coercing each value to its attribute's type. Sorting and `marker`
//! pagination (keyset, on any list of keys) are shared by metrics and resources.

mod compile;
mod parse;

pub use parse::{parse_json, parse_string, Filter, FilterValue, Op};

pub(crate) use compile::{compile_filter, Columns};

use sqlx::any::AnyRow;

use crate::dialect::{get_f64, get_i64, get_text, Arg, Sql};
use crate::{IndexerError, Result};

/// One sort key: `attr[:asc|:desc][-nullsfirst|-nullslast]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub attr: String,
    pub descending: bool,
    /// `None`: nulls last when ascending, first when descending (PostgreSQL's default).
    pub nulls_first: Option<bool>,
}

impl SortKey {
    pub fn asc(attr: &str) -> SortKey {
        SortKey {
            attr: attr.to_owned(),
            descending: false,
            nulls_first: None,
        }
    }

    pub fn desc(attr: &str) -> SortKey {
        SortKey {
            attr: attr.to_owned(),
            descending: true,
            nulls_first: None,
        }
    }

    /// Parses `name`, `name:asc`, `started_at:desc-nullslast`, …
    pub fn parse(s: &str) -> Result<SortKey> {
        let (attr, dir) = s.split_once(':').unwrap_or((s, "asc"));
        let (dir, nulls) = dir.split_once('-').unwrap_or((dir, ""));
        let descending = match dir {
            "asc" | "" => false,
            "desc" => true,
            _ => {
                return Err(IndexerError::query(
                    SORT_DIRECTION_ERROR.to_owned(),
                    Some(attr),
                ))
            }
        };
        let nulls_first = match nulls {
            "" => None,
            "nullsfirst" => Some(true),
            "nullslast" => Some(false),
            _ => {
                return Err(IndexerError::query(
                    SORT_DIRECTION_ERROR.to_owned(),
                    Some(attr),
                ))
            }
        };
        if attr.is_empty() {
            return Err(IndexerError::query(invalid_sort_key(s), None));
        }
        Ok(SortKey {
            attr: attr.to_owned(),
            descending,
            nulls_first,
        })
    }
}

/// Limit, marker and sort of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pagination {
    pub limit: Option<u64>,
    /// The id of the last item of the previous page.
    pub marker: Option<String>,
    /// Empty: the listing's default order.
    pub sort: Vec<SortKey>,
}

/// How a sort column's values are read back and bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueKind {
    Text,
    Int,
    Float,
}

/// A sort column as SQL.
#[derive(Debug, Clone)]
pub(crate) struct OrderCol {
    pub(crate) expr: String,
    pub(crate) kind: ValueKind,
    pub(crate) nullable: bool,
    pub(crate) desc: bool,
    pub(crate) nulls_first: bool,
    /// Whether the sort key said where nulls go (`asc-nullslast`, …)
    /// rather than taking the default (last ascending, first descending).
    pub(crate) explicit_nulls: bool,
}

impl OrderCol {
    pub(crate) fn new(expr: &str, kind: ValueKind, nullable: bool, key: &SortKey) -> OrderCol {
        OrderCol {
            expr: expr.to_owned(),
            kind,
            nullable,
            desc: key.descending,
            nulls_first: key.nulls_first.unwrap_or(key.descending),
            explicit_nulls: key.nulls_first.is_some(),
        }
    }

    fn null_flag(&self) -> String {
        // Sorted ascending: 0 comes first.
        let (null, not_null) = if self.nulls_first { (0, 1) } else { (1, 0) };
        format!(
            "(CASE WHEN {} IS NULL THEN {null} ELSE {not_null} END)",
            self.expr
        )
    }
}

/// Gnocchi's words for a sort direction it does not know.
const SORT_DIRECTION_ERROR: &str = "Invalid pagination: `Unknown sort direction, must be one of: \
     asc-nullsfirst, asc-nullslast, desc-nullsfirst, desc-nullslast'";

/// Gnocchi's words for a sort key that names no sortable attribute.
pub fn invalid_sort_key(key: &str) -> String {
    format!("Invalid pagination: `Sort key supplied is invalid: {key}'")
}

/// `ORDER BY` for `cols`, with explicit null placement (identical on all dialects).
pub(crate) fn order_by(cols: &[OrderCol]) -> String {
    let mut parts = Vec::new();
    for c in cols {
        if c.nullable {
            parts.push(format!("{} ASC", c.null_flag()));
        }
        parts.push(format!(
            "{} {}",
            c.expr,
            if c.desc { "DESC" } else { "ASC" }
        ));
    }
    format!(" ORDER BY {}", parts.join(", "))
}

/// Reads the marker row's sort values (`k0`, `k1`, …).
pub(crate) fn marker_values(row: &AnyRow, cols: &[OrderCol]) -> Result<Vec<Arg>> {
    cols.iter()
        .enumerate()
        .map(|(i, c)| {
            let n = format!("k{i}");
            Ok(match c.kind {
                ValueKind::Text => Arg::Text(get_text(row, &n)?),
                ValueKind::Int => Arg::Int(get_i64(row, &n)?),
                ValueKind::Float => Arg::Float(get_f64(row, &n)?),
            })
        })
        .collect()
}

fn is_null(a: &Arg) -> bool {
    matches!(a, Arg::Int(None) | Arg::Float(None) | Arg::Text(None))
}

/// The rows after the marker, selected as oslo.db's `paginate_query` (which
/// Gnocchi pages with) selects them: for each key whose marker value is not
/// null, the earlier keys with non-null marker values equal and this key
/// past the marker's; nulls count as past it only after an explicit
/// `asc-nullslast` or `desc-nullsfirst`. Null marker values are skipped, so
/// where a sort key is null, rows can be left out of the pages or come
/// again, exactly as Gnocchi's do.
pub(crate) fn keyset(cols: &[OrderCol], marker: &[Arg]) -> Sql {
    let mut out = Sql::new("(");
    let mut first = true;
    for (i, (col, value)) in cols.iter().zip(marker).enumerate() {
        if is_null(value) {
            continue;
        }
        if !first {
            out.push(" OR ");
        }
        first = false;
        out.push("(");
        for (earlier, earlier_value) in cols[..i].iter().zip(&marker[..i]) {
            if !is_null(earlier_value) {
                out.push(&format!("{} = ", earlier.expr))
                    .value(earlier_value.clone())
                    .push(" AND ");
            }
        }
        let past = if col.desc { "<" } else { ">" };
        let nulls_past = col.explicit_nulls && col.desc == col.nulls_first;
        if nulls_past {
            out.push("(");
        }
        out.push(&format!("{} {past} ", col.expr))
            .value(value.clone());
        if nulls_past {
            out.push(&format!(" OR {} IS NULL)", col.expr));
        }
        out.push(")");
    }
    if first {
        out.push("1 = 0");
    }
    out.push(")");
    out
}
