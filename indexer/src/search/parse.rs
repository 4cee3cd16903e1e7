//! The filter language: JSON form and string form, both to one [`Filter`] AST.

use serde_json::Value;

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

fn json_value(v: &Value, path: &str) -> Result<FilterValue> {
    Ok(match v {
        Value::Null => FilterValue::Null,
        Value::Bool(b) => FilterValue::Bool(*b),
        Value::Number(n) => FilterValue::Number(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => FilterValue::String(s.clone()),
        Value::Array(_) | Value::Object(_) => {
            return Err(invalid(format!(
                "expected str for dictionary value @ data{path}"
            )))
        }
    })
}

/// Gnocchi's schema maps searched ids as it maps created ones, so an id no
/// resource could have is refused where it stands (`data['=']['id']`, or
/// `data['in']['id'][0]` in a list).
fn check_ids(value: &Value, at: &str) -> Result<()> {
    let refuse = |id: &str, location: String| match crate::resources::resource_uuid(id, "") {
        Err(IndexerError::InvalidResourceId(reason)) => Err(IndexerError::query(
            format!("{reason}{location}"),
            Some("id"),
        )),
        _ => Ok(()),
    };
    match value {
        Value::String(id) => refuse(id, format!(" for dictionary value @ data{at}")),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| match item {
                Value::String(id) => refuse(id, format!(" @ data{at}[{i}]")),
                _ => Ok(()),
            }),
        _ => Ok(()),
    }
}

/// Parses the JSON form. `{}` (match everything) gives `None`.
pub fn parse_json(v: &Value) -> Result<Option<Filter>> {
    match v {
        Value::Object(m) if m.is_empty() => Ok(None),
        _ => parse_json_node(v, "").map(Some),
    }
}

fn parse_json_node(v: &Value, path: &str) -> Result<Filter> {
    let Value::Object(m) = v else {
        return Err(invalid(format!("expected a dictionary @ data{path}")));
    };
    if m.len() != 1 {
        return Err(invalid(format!(
            "expected exactly one operator @ data{path}"
        )));
    }
    let (op, arg) = m.iter().next().expect("one entry");
    let here = format!("{path}['{op}']");
    match op.as_str() {
        "and" | "∧" | "or" | "∨" => {
            let Value::Array(items) = arg else {
                return Err(invalid(format!(
                    "expected a list for dictionary value @ data{here}"
                )));
            };
            if items.is_empty() {
                return Err(invalid(format!(
                    "length of value must be at least 1 @ data{here}"
                )));
            }
            let subs = items
                .iter()
                .enumerate()
                .map(|(i, x)| parse_json_node(x, &format!("{here}[{i}]")))
                .collect::<Result<Vec<_>>>()?;
            Ok(if op == "and" || op == "∧" {
                Filter::And(subs)
            } else {
                Filter::Or(subs)
            })
        }
        "not" => {
            if !arg.is_object() {
                return Err(invalid(format!(
                    "expected a dictionary for dictionary value @ data{here}"
                )));
            }
            Ok(Filter::Not(Box::new(parse_json_node(arg, &here)?)))
        }
        name => {
            let Some(op) = Op::from_name(name) else {
                return Err(invalid(format!("extra keys not allowed @ data{here}")));
            };
            let Value::Object(fields) = arg else {
                return Err(invalid(format!(
                    "expected a dictionary for dictionary value @ data{here}"
                )));
            };
            if fields.len() != 1 {
                return Err(invalid(format!(
                    "expected exactly one attribute @ data{here}"
                )));
            }
            let (attr, value) = fields.iter().next().expect("one entry");
            let at = format!("{here}['{attr}']");
            if op == Op::Like && attr == "id" {
                return Err(IndexerError::query(
                    format!("value must not be one of ['id'] @ data{at}"),
                    Some("id"),
                ));
            }
            if attr == "id" {
                check_ids(value, &at)?;
            }
            let value = match (op, value) {
                (Op::In, Value::Array(items)) => {
                    if items.is_empty() {
                        return Err(invalid(format!(
                            "length of value must be at least 1 @ data{at}"
                        )));
                    }
                    FilterValue::List(
                        items
                            .iter()
                            .map(|x| json_value(x, &at))
                            .collect::<Result<Vec<_>>>()?,
                    )
                }
                (Op::In, _) => {
                    return Err(invalid(format!(
                        "expected a list for dictionary value @ data{at}"
                    )))
                }
                (_, v) => json_value(v, &at)?,
            };
            Ok(Filter::Compare {
                op,
                attr: attr.clone(),
                value,
            })
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
    Ok(f)
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
        let value = self.value()?;
        if op == Op::Like && attr == "id" {
            return Err(IndexerError::query(
                "value must not be one of ['id']",
                Some("id"),
            ));
        }
        match (&op, &value) {
            (Op::In, FilterValue::List(l)) if l.is_empty() => {
                return Err(invalid("length of value must be at least 1"));
            }
            (Op::In, FilterValue::List(_)) => {}
            (Op::In, _) => return Err(invalid("expected a list")),
            (_, FilterValue::List(_)) => return Err(invalid("expected a value, not a list")),
            _ => {}
        }
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
