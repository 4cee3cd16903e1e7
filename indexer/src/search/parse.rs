//! The filter language: JSON form and string form, both to one [`Filter`] AST.

use serde_json::{json, Value};

use crate::{IndexerError, Result};

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Like,
}

impl Op {
    /// The first spelling: the SQL operator for the comparisons.
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::In => "in",
            Op::Like => "like",
        }
    }

    /// Every spelling Gnocchi accepts.
    pub fn from_name(s: &str) -> Option<Op> {
        Some(match s {
            "=" | "==" | "eq" => Op::Eq,
            "!=" | "ne" | "≠" => Op::Ne,
            "<" | "lt" => Op::Lt,
            "<=" | "le" | "≤" => Op::Le,
            ">" | "gt" => Op::Gt,
            ">=" | "ge" | "≥" => Op::Ge,
            "in" => Op::In,
            "like" => Op::Like,
            _ => return None,
        })
    }
}

/// A value in a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    List(Vec<FilterValue>),
}

/// A filter over resource attributes.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Compare {
        op: Op,
        attr: String,
        value: FilterValue,
    },
}

impl Filter {
    /// `attr = value`.
    pub fn eq(attr: &str, value: impl Into<String>) -> Filter {
        Filter::Compare {
            op: Op::Eq,
            attr: attr.to_owned(),
            value: FilterValue::String(value.into()),
        }
    }
}

fn invalid(msg: impl Into<String>) -> IndexerError {
    IndexerError::query(msg, None)
}

/// Parses the JSON form. `{}` (match everything) gives `None`.
///
/// The filter is first checked against Gnocchi's `ResourceSearchSchema`, so
/// that a refusal reads as voluptuous words it (see [`schema`]).
pub fn parse_json(v: &Value) -> Result<Option<Filter>> {
    schema::node(v, &schema::Path::default()).map_err(IndexerError::from)?;
    match v {
        Value::Object(m) if m.is_empty() => Ok(None),
        _ => build(v).map(Some),
    }
}

/// The filter of a tree the schema accepted.
fn build(v: &Value) -> Result<Filter> {
    let Some((op, arg)) = v.as_object().and_then(|m| m.iter().next()) else {
        // `{}` inside a filter: the schema lets it through, but there is
        // nothing to combine, and Gnocchi's indexer says so.
        return Err(IndexerError::query("Unable to parse this query", None));
    };
    let items = || arg.as_array().map(Vec::as_slice).unwrap_or_default();
    match op.as_str() {
        "and" | "∧" => Ok(Filter::And(
            items().iter().map(build).collect::<Result<_>>()?,
        )),
        "or" | "∨" => Ok(Filter::Or(
            items().iter().map(build).collect::<Result<_>>()?,
        )),
        "not" => Ok(Filter::Not(Box::new(build(arg)?))),
        name => {
            let op = Op::from_name(name).expect("the schema knows the operators");
            let (attr, value) = arg
                .as_object()
                .and_then(|fields| fields.iter().next())
                .expect("the schema asks for one attribute");
            let value = match value {
                Value::Array(items) => FilterValue::List(items.iter().map(scalar).collect()),
                other => scalar(other),
            };
            Ok(Filter::Compare {
                op,
                attr: attr.clone(),
                value,
            })
        }
    }
}

/// A value the schema accepted: never a list or an object.
fn scalar(v: &Value) -> FilterValue {
    match v {
        Value::Bool(b) => FilterValue::Bool(*b),
        Value::Number(n) => FilterValue::Number(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => FilterValue::String(s.clone()),
        _ => FilterValue::Null,
    }
}

/// Gnocchi's `ResourceSearchSchema`, error for error:
///
/// ```text
/// All(Length(0, 1), {
///     Any(<comparisons>): All(Length(1, 1), {"id": ResourceUUID, NotIDKey: scalar}),
///     "like": All(Length(1, 1), {NotIDKey: scalar}),
///     "in": All(Length(1, 1), {"id": All([ResourceUUID], Length(min=1)),
///                              NotIDKey: All([scalar], Length(min=1))}),
///     Any("and", "∨", "or", "∧"): All([ResourceSearchSchema], Length(min=1)),
///     "not": ResourceSearchSchema,
/// })
/// ```
///
/// An error raised by the value under a key itself says "… for dictionary
/// value"; the first failing item of a list is the one reported.
mod schema {
    use serde_json::Value;

    use crate::IndexerError;

    const COMPARISONS: [&str; 16] = [
        "=", "==", "eq", "<", "lt", ">", "gt", "<=", "≤", "le", ">=", "≥", "ge", "!=", "≠", "ne",
    ];

    /// Where in the filter a check is: the parts (keys, and list indices as
    /// text) and voluptuous's rendering of them.
    #[derive(Debug, Clone, Default)]
    pub(super) struct Path {
        parts: Vec<String>,
        location: String,
    }

    impl Path {
        fn key(&self, key: &str) -> Path {
            let mut path = self.clone();
            path.parts.push(key.to_owned());
            path.location.push_str(&format!("['{key}']"));
            path
        }

        fn index(&self, index: usize) -> Path {
            let mut path = self.clone();
            path.parts.push(index.to_string());
            path.location.push_str(&format!("[{index}]"));
            path
        }
    }

    #[derive(Debug)]
    pub(super) struct Invalid {
        text: String,
        path: Path,
        /// Raised by the value under the key the path ends with.
        of_value: bool,
    }

    impl Invalid {
        fn at(path: &Path, text: impl Into<String>) -> Self {
            Self {
                text: text.into(),
                path: path.clone(),
                of_value: false,
            }
        }
    }

    impl From<Invalid> for IndexerError {
        fn from(invalid: Invalid) -> Self {
            let reason = match (invalid.path.parts.is_empty(), invalid.of_value) {
                (true, _) => invalid.text,
                (false, true) => format!(
                    "{} for dictionary value @ data{}",
                    invalid.text, invalid.path.location
                ),
                (false, false) => format!("{} @ data{}", invalid.text, invalid.path.location),
            };
            IndexerError::InvalidFilter {
                reason,
                path: invalid.path.parts,
            }
        }
    }

    type Checked = Result<(), Invalid>;

    /// Checks the value under the key `path` ends with: what fails at that
    /// very place is the dictionary value's failure.
    fn value_of(path: &Path, check: impl FnOnce(&Path) -> Checked) -> Checked {
        check(path).map_err(|mut invalid| {
            invalid.of_value |= invalid.path.parts.len() == path.parts.len();
            invalid
        })
    }

    /// `Length(min, max)` of what has a length (text, lists, objects).
    fn length(v: &Value, path: &Path, min: usize, max: Option<usize>) -> Checked {
        let len = match v {
            Value::String(text) => text.chars().count(),
            Value::Array(items) => items.len(),
            Value::Object(map) => map.len(),
            _ => return Err(Invalid::at(path, "invalid value or type")),
        };
        if len < min {
            return Err(Invalid::at(
                path,
                format!("length of value must be at least {min}"),
            ));
        }
        match max {
            Some(max) if len > max => Err(Invalid::at(
                path,
                format!("length of value must be at most {max}"),
            )),
            _ => Ok(()),
        }
    }

    /// The one entry of an object of exactly one entry.
    fn single<'a>(v: &'a Value, path: &Path) -> Result<(&'a String, &'a Value), Invalid> {
        length(v, path, 1, Some(1))?;
        v.as_object()
            .and_then(|map| map.iter().next())
            .ok_or_else(|| Invalid::at(path, "expected a dictionary"))
    }

    pub(super) fn node(v: &Value, path: &Path) -> Checked {
        length(v, path, 0, Some(1))?;
        let map = v
            .as_object()
            .ok_or_else(|| Invalid::at(path, "expected a dictionary"))?;
        let Some((op, arg)) = map.iter().next() else {
            return Ok(());
        };
        let here = path.key(op);
        match op.as_str() {
            "and" | "∨" | "or" | "∧" => value_of(&here, |here| {
                let items = arg
                    .as_array()
                    .ok_or_else(|| Invalid::at(here, "expected a list"))?;
                for (i, item) in items.iter().enumerate() {
                    node(item, &here.index(i))?;
                }
                length(arg, here, 1, None)
            }),
            "not" => value_of(&here, |here| node(arg, here)),
            "like" => value_of(&here, |here| {
                let (attr, value) = single(arg, here)?;
                let at = here.key(attr);
                if attr == "id" {
                    return Err(Invalid::at(&at, "value must not be one of ['id']"));
                }
                value_of(&at, |at| attribute_value(value, at))
            }),
            "in" => value_of(&here, |here| {
                let (attr, value) = single(arg, here)?;
                value_of(&here.key(attr), |at| {
                    let items = value
                        .as_array()
                        .ok_or_else(|| Invalid::at(at, "expected a list"))?;
                    for (i, item) in items.iter().enumerate() {
                        let at = at.index(i);
                        if attr == "id" {
                            resource_id(item, &at)?;
                        } else {
                            attribute_value(item, &at)?;
                        }
                    }
                    length(value, at, 1, None)
                })
            }),
            name if COMPARISONS.contains(&name) => value_of(&here, |here| {
                let (attr, value) = single(arg, here)?;
                value_of(&here.key(attr), |at| {
                    if attr == "id" {
                        resource_id(value, at)
                    } else {
                        attribute_value(value, at)
                    }
                })
            }),
            _ => Err(Invalid::at(&here, "not a valid value")),
        }
    }

    /// `Any(str, float, int, bool, None)`: its first alternative's refusal.
    fn attribute_value(v: &Value, path: &Path) -> Checked {
        match v {
            Value::Array(_) | Value::Object(_) => Err(Invalid::at(path, "expected str")),
            _ => Ok(()),
        }
    }

    /// An id is mapped as a created one is, so one no resource could have
    /// is refused where it stands.
    fn resource_id(v: &Value, path: &Path) -> Checked {
        let Value::String(id) = v else {
            return Ok(());
        };
        match crate::resources::resource_uuid(id, "") {
            Err(IndexerError::InvalidResourceId(reason)) => Err(Invalid::at(path, reason)),
            _ => Ok(()),
        }
    }
}

/// Parses the string form (`?filter=`), Gnocchi's grammar: comparisons
/// `attr op value` with ops `>= <= != > < = == eq ne lt gt ge le in like ≠ ≥ ≤` (tried in
/// that order, as Gnocchi does — so `==` does not parse), `not`, `and`/`∧`, `or`/`∨`,
/// parentheses; values `null|None|none`, `true|false|True|False`, UUIDs, bare words,
/// numbers, quoted strings and `[a, b]` lists.
pub fn parse_string(s: &str) -> Result<Filter> {
    let mut p = Parser {
        s: s.chars().collect(),
        pos: 0,
    };
    let f = p.or_expr()?;
    p.ws();
    if p.pos != p.s.len() {
        return Err(p.expected("end of text"));
    }
    // Gnocchi turns the text into the JSON form's tree and checks that with
    // the same schema, so the refusals read alike.
    schema::node(&tree(&f), &schema::Path::default()).map_err(IndexerError::from)?;
    Ok(f)
}

/// The JSON form of a filter, operators in their first spelling ([`Op::symbol`]).
fn tree(f: &Filter) -> Value {
    match f {
        Filter::And(items) => json!({"and": items.iter().map(tree).collect::<Vec<_>>()}),
        Filter::Or(items) => json!({"or": items.iter().map(tree).collect::<Vec<_>>()}),
        Filter::Not(inner) => json!({"not": tree(inner)}),
        Filter::Compare { op, attr, value } => {
            let mut fields = serde_json::Map::new();
            fields.insert(attr.clone(), value_tree(value));
            let mut node = serde_json::Map::new();
            node.insert(op.symbol().to_owned(), Value::Object(fields));
            Value::Object(node)
        }
    }
}

fn value_tree(v: &FilterValue) -> Value {
    match v {
        FilterValue::Null => Value::Null,
        FilterValue::Bool(b) => json!(b),
        FilterValue::Number(n) => json!(n),
        FilterValue::String(s) => json!(s),
        FilterValue::List(items) => items.iter().map(value_tree).collect(),
    }
}

struct Parser {
    s: Vec<char>,
    pos: usize,
}

const STRING_OPS: &[&str] = &[
    ">=", "<=", "!=", ">", "<", "=", "==", "eq", "ne", "lt", "gt", "ge", "le", "in", "like", "≠",
    "≥", "≤",
];

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-' || c == '.' || c == ':'
}

impl Parser {
    fn expected(&self, what: &str) -> IndexerError {
        invalid(
            format!("Expected {what}, found end of text (at char {})", self.pos).replace(
                "found end of text",
                &if self.pos < self.s.len() {
                    format!("found '{}'", self.s[self.pos])
                } else {
                    "found end of text".into()
                },
            ),
        )
    }

    fn ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_whitespace() {
            self.pos += 1;
        }
    }

    fn peek_str(&self, t: &str) -> bool {
        let t: Vec<char> = t.chars().collect();
        self.s.len() >= self.pos + t.len() && self.s[self.pos..self.pos + t.len()] == t[..]
    }

    /// Matches keyword `kw` (a whole word when alphabetic).
    fn keyword(&mut self, kw: &str) -> bool {
        self.ws();
        if !self.peek_str(kw) {
            return false;
        }
        let n = kw.chars().count();
        let alpha = kw.chars().all(|c| c.is_alphabetic());
        if alpha && self.s.get(self.pos + n).is_some_and(|c| is_word(*c)) {
            return false;
        }
        self.pos += n;
        true
    }

    fn or_expr(&mut self) -> Result<Filter> {
        let mut items = vec![self.and_expr()?];
        while self.keyword("or") || self.keyword("∨") {
            items.push(self.and_expr()?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one")
        } else {
            Filter::Or(items)
        })
    }

    fn and_expr(&mut self) -> Result<Filter> {
        let mut items = vec![self.not_expr()?];
        while self.keyword("and") || self.keyword("∧") {
            items.push(self.not_expr()?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one")
        } else {
            Filter::And(items)
        })
    }

    fn not_expr(&mut self) -> Result<Filter> {
        if self.keyword("not") {
            return Ok(Filter::Not(Box::new(self.not_expr()?)));
        }
        self.ws();
        if self.peek_str("(") {
            self.pos += 1;
            let f = self.or_expr()?;
            self.ws();
            if !self.peek_str(")") {
                return Err(self.expected("')'"));
            }
            self.pos += 1;
            return Ok(f);
        }
        self.comparison()
    }

    fn identifier(&mut self) -> Option<String> {
        self.ws();
        let start = self.pos;
        if !self
            .s
            .get(self.pos)
            .is_some_and(|c| c.is_alphabetic() || *c == '_')
        {
            return None;
        }
        while self.pos < self.s.len()
            && (self.s[self.pos].is_alphanumeric() || matches!(self.s[self.pos], '_' | '-' | '.'))
        {
            self.pos += 1;
        }
        Some(self.s[start..self.pos].iter().collect())
    }

    fn comparison(&mut self) -> Result<Filter> {
        let Some(attr) = self.identifier() else {
            return Err(self.expected("an attribute name"));
        };
        self.ws();
        let mut op = None;
        for name in STRING_OPS {
            let n = name.chars().count();
            if self.peek_str(name) {
                let alpha = name.chars().all(|c| c.is_alphabetic());
                if alpha && self.s.get(self.pos + n).is_some_and(|c| is_word(*c)) {
                    continue;
                }
                self.pos += n;
                op = Op::from_name(name);
                break;
            }
        }
        let Some(op) = op else {
            return Err(self.expected("an operator"));
        };
        // What the grammar lets through the schema may refuse (`id like`,
        // `in` without a list…): see `parse_string`.
        let value = self.value()?;
        Ok(Filter::Compare { op, attr, value })
    }

    fn word(&mut self) -> String {
        let start = self.pos;
        while self.pos < self.s.len() && is_word(self.s[self.pos]) {
            self.pos += 1;
        }
        self.s[start..self.pos].iter().collect()
    }

    fn value(&mut self) -> Result<FilterValue> {
        self.ws();
        let Some(&c) = self.s.get(self.pos) else {
            return Err(self.expected("a value"));
        };
        if c == '[' {
            self.pos += 1;
            let mut items = Vec::new();
            self.ws();
            if self.peek_str("]") {
                self.pos += 1;
                return Ok(FilterValue::List(items));
            }
            loop {
                items.push(self.value()?);
                self.ws();
                if self.peek_str(",") {
                    self.pos += 1;
                } else if self.peek_str("]") {
                    self.pos += 1;
                    return Ok(FilterValue::List(items));
                } else {
                    return Err(self.expected("',' or ']'"));
                }
            }
        }
        if c == '"' || c == '\'' {
            self.pos += 1;
            let mut out = String::new();
            while let Some(&ch) = self.s.get(self.pos) {
                self.pos += 1;
                if ch == '\\' {
                    if let Some(&n) = self.s.get(self.pos) {
                        out.push(n);
                        self.pos += 1;
                    }
                } else if ch == c {
                    return Ok(FilterValue::String(out));
                } else {
                    out.push(ch);
                }
            }
            return Err(self.expected("closing quote"));
        }
        let start = self.pos;
        let w = self.word();
        if w.is_empty() {
            // A sign or dot-started number.
            let mut end = self.pos;
            while end < self.s.len()
                && (self.s[end].is_ascii_digit()
                    || matches!(self.s[end], '+' | '-' | '.' | 'e' | 'E'))
            {
                end += 1;
            }
            let t: String = self.s[start..end].iter().collect();
            if let Ok(f) = t.parse::<f64>() {
                self.pos = end;
                return Ok(FilterValue::Number(f));
            }
            return Err(self.expected("a value"));
        }
        Ok(match w.as_str() {
            "null" | "None" | "none" => FilterValue::Null,
            "true" | "True" => FilterValue::Bool(true),
            "false" | "False" => FilterValue::Bool(false),
            _ if uuid::Uuid::try_parse(&w).is_ok() && (w.len() == 32 || w.len() == 36) => {
                FilterValue::String(w)
            }
            _ => match w.parse::<f64>() {
                Ok(f)
                    if w.chars().next().is_some_and(|c| {
                        c.is_ascii_digit() || c == '-' || c == '+' || c == '.'
                    }) =>
                {
                    FilterValue::Number(f)
                }
                _ => FilterValue::String(w),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(op: Op, attr: &str, value: FilterValue) -> Filter {
        Filter::Compare {
            op,
            attr: attr.into(),
            value,
        }
    }

    #[test]
    fn string_grammar() {
        assert_eq!(
            parse_string("host = \"example1\" or owner like 'admin-%'").unwrap(),
            Filter::Or(vec![
                cmp(Op::Eq, "host", FilterValue::String("example1".into())),
                cmp(Op::Like, "owner", FilterValue::String("admin-%".into())),
            ])
        );
        assert_eq!(
            parse_string("not (a ≥ 3 ∧ b != null)").unwrap(),
            Filter::Not(Box::new(Filter::And(vec![
                cmp(Op::Ge, "a", FilterValue::Number(3.0)),
                cmp(Op::Ne, "b", FilterValue::Null)
            ])))
        );
        assert_eq!(
            parse_string("id in [faef212f-0bf4-4030-a461-2186fef79be0, 1.5, x]").unwrap(),
            cmp(
                Op::In,
                "id",
                FilterValue::List(vec![
                    FilterValue::String("faef212f-0bf4-4030-a461-2186fef79be0".into()),
                    FilterValue::Number(1.5),
                    FilterValue::String("x".into())
                ])
            )
        );
        assert_eq!(
            parse_string("flag eq True").unwrap(),
            cmp(Op::Eq, "flag", FilterValue::Bool(true))
        );
        assert!(parse_string("id == foobar")
            .unwrap_err()
            .to_string()
            .starts_with("Expected"));
        assert!(parse_string("id in []").is_err());
        // and binds tighter than or
        assert_eq!(
            parse_string("a=1 or b=2 and c=3").unwrap(),
            Filter::Or(vec![
                cmp(Op::Eq, "a", FilterValue::Number(1.0)),
                Filter::And(vec![
                    cmp(Op::Eq, "b", FilterValue::Number(2.0)),
                    cmp(Op::Eq, "c", FilterValue::Number(3.0))
                ])
            ])
        );
    }

    #[test]
    fn json_form() {
        let v: Value = serde_json::json!({"and": [{"=": {"a": 1}}, {"not": {"in": {"b": ["x"]}}}]});
        assert!(parse_json(&v).unwrap().is_some());
        assert!(parse_json(&serde_json::json!({})).unwrap().is_none());
        assert!(parse_json(&serde_json::json!({"and": {"a": 1}})).is_err());
        assert!(parse_json(&serde_json::json!({"like": {"id": "fa%"}})).is_err());
        assert!(parse_json(&serde_json::json!({"ne": {"a": ["x"]}})).is_err());
        assert!(parse_json(&serde_json::json!({"not": [{"a": 1}]})).is_err());
        assert!(parse_json(&serde_json::json!({"in": {"id": []}})).is_err());
    }
}
