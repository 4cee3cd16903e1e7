//! The predicate of `POST /v1/search/metric`: which measures of the named
//! metrics to return, as Gnocchi's `storage.MeasureQuery` evaluates it.
//!
//! A query is a JSON object with one operator: a comparison or arithmetic
//! operator (`=`, `<`, `≥`, `+`, `%`, `**`, …) whose operand is either a number
//! (`{">=": 50}` is `value >= 50`) or a list of two sub-expressions
//! (`{">=": [{"+": 23}, 50]}` is `(value + 23) >= 50`), or `and`/`or` over a
//! list of sub-queries. Anything that is not an object is a constant. A
//! measure matches when the result is truthy (non-zero; NaN counts as true,
//! as in numpy). Comparisons yield 1 or 0, so they nest in arithmetic as
//! Python's booleans do.

use serde_json::Value;

use super::parse::BinaryOp;

/// A parsed measure query.
#[derive(Debug, Clone, PartialEq)]
pub enum MeasureQuery {
    /// A constant, whatever the measure.
    Constant(f64),
    /// `op(value, operand)`.
    WithValue { op: BinaryOp, operand: f64 },
    /// `op(left(value), right(value))`.
    Binary {
        op: BinaryOp,
        left: Box<MeasureQuery>,
        right: Box<MeasureQuery>,
    },
    /// `and` (all truthy) or `or` (any truthy) of the sub-queries.
    Logical { all: bool, nodes: Vec<MeasureQuery> },
}

/// Why a metric search's query is refused, in Gnocchi's words.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// The query does not match Gnocchi's schema: voluptuous's message and
    /// where in the query it failed (keys, and list indices as text).
    #[error("{message}")]
    Schema { message: String, path: Vec<String> },
    /// The schema lets `not` through, but nothing evaluates it.
    #[error("Unknown operator {0}")]
    UnknownOperator(String),
}

impl MeasureQuery {
    /// Parses the JSON body of a metric search: checked against Gnocchi's
    /// schema first, so that errors read as Gnocchi's do.
    pub fn parse(tree: &Value) -> Result<MeasureQuery, QueryError> {
        schema::query(tree, &mut Vec::new()).map_err(|invalid| QueryError::Schema {
            message: invalid.message(),
            path: invalid.path,
        })?;
        build(tree)
    }

    /// The query's value for one measure.
    pub fn eval(&self, value: f64) -> f64 {
        match self {
            MeasureQuery::Constant(c) => *c,
            MeasureQuery::WithValue { op, operand } => op.apply(value, *operand),
            MeasureQuery::Binary { op, left, right } => {
                op.apply(left.eval(value), right.eval(value))
            }
            MeasureQuery::Logical { all, nodes } => {
                let truth = if *all {
                    nodes.iter().all(|n| truthy(n.eval(value)))
                } else {
                    nodes.iter().any(|n| truthy(n.eval(value)))
                };
                if truth {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }

    /// Whether a measure of `value` matches.
    pub fn matches(&self, value: f64) -> bool {
        truthy(self.eval(value))
    }
}

/// The evaluator of a query the schema accepted.
fn build(tree: &Value) -> Result<MeasureQuery, QueryError> {
    let Some((operator, nodes)) = tree.as_object().and_then(|map| map.iter().next()) else {
        return Ok(MeasureQuery::Constant(constant(tree)));
    };
    if let Some(all) = match operator.as_str() {
        "and" | "∧" => Some(true),
        "or" | "∨" => Some(false),
        _ => None,
    } {
        let items = nodes.as_array().map(Vec::as_slice).unwrap_or_default();
        return Ok(MeasureQuery::Logical {
            all,
            nodes: items.iter().map(build).collect::<Result<_, _>>()?,
        });
    }
    // The schema let only its operators through, and `not`.
    let op = Some(operator.as_str())
        .filter(|name| schema::BINARY.contains(name))
        .and_then(BinaryOp::parse)
        .ok_or_else(|| QueryError::UnknownOperator(operator.clone()))?;
    Ok(match nodes.as_array().map(Vec::as_slice) {
        Some([left, right]) => MeasureQuery::Binary {
            op,
            left: Box::new(build(left)?),
            right: Box::new(build(right)?),
        },
        _ => MeasureQuery::WithValue {
            op,
            operand: constant(nodes),
        },
    })
}

/// Gnocchi's voluptuous schema for the query, error for error:
///
/// ```text
/// operation = All(Length(1, 1), {Any(<binary operators>):
///                 Any(float, int, All([float, int, Any(operation)], Length(2, 2)))})
/// query     = Any(operation,
///                 All(Length(1, 1), {Any("and", "∨", "or", "∧", "not"): [query]}))
/// ```
///
/// Where alternatives all fail, voluptuous reports the error that went
/// deepest, the first of them on a tie; a list reports its first bad item,
/// unless an item failed deeper than itself, which stops the list at once.
mod schema {
    use super::Value;

    /// The operators of the `operation` schema (those of `/v1/aggregates`
    /// less its clipping functions).
    pub(super) const BINARY: [&str; 31] = [
        "=", "==", "eq", "<", "lt", ">", "gt", "<=", "≤", "le", ">=", "≥", "ge", "!=", "≠", "ne",
        "%", "mod", "+", "add", "-", "sub", "*", "×", "mul", "/", "÷", "div", "**", "^", "pow",
    ];
    const LOGICAL: [&str; 5] = ["and", "∨", "or", "∧", "not"];

    #[derive(Debug, Clone, PartialEq)]
    pub(super) struct Invalid {
        text: &'static str,
        pub(super) path: Vec<String>,
        /// Raised by the value of the key the path ends with (voluptuous
        /// then says "… for dictionary value").
        of_value: bool,
    }

    impl Invalid {
        fn at(text: &'static str, path: &[String]) -> Self {
            Self {
                text,
                path: path.to_vec(),
                of_value: false,
            }
        }

        pub(super) fn message(&self) -> String {
            if self.of_value {
                format!("{} for dictionary value", self.text)
            } else {
                self.text.to_owned()
            }
        }
    }

    type Checked = Result<(), Invalid>;

    /// `Any(a, b)`: the deeper error, the first on a tie.
    fn deeper(a: Invalid, b: Invalid) -> Invalid {
        if b.path.len() > a.path.len() {
            b
        } else {
            a
        }
    }

    pub(super) fn query(node: &Value, path: &mut Vec<String>) -> Checked {
        let Err(first) = operation(node, path) else {
            return Ok(());
        };
        let Err(second) = logical(node, path) else {
            return Ok(());
        };
        Err(deeper(first, second))
    }

    /// `All(Length(min=1, max=1), dict)`: the one key and its value.
    fn single<'a>(node: &'a Value, path: &[String]) -> Result<(&'a String, &'a Value), Invalid> {
        let len = match node {
            Value::String(text) => text.chars().count(),
            Value::Array(items) => items.len(),
            Value::Object(map) => map.len(),
            _ => return Err(Invalid::at("invalid value or type", path)),
        };
        if len < 1 {
            return Err(Invalid::at("length of value must be at least 1", path));
        }
        if len > 1 {
            return Err(Invalid::at("length of value must be at most 1", path));
        }
        node.as_object()
            .and_then(|map| map.iter().next())
            .ok_or_else(|| Invalid::at("expected a dictionary", path))
    }

    /// Checks the value of `key` (just pushed on `path`), marking an error
    /// raised at the key itself as the dictionary value's.
    fn value_of(
        path: &mut Vec<String>,
        check: impl FnOnce(&mut Vec<String>) -> Checked,
    ) -> Checked {
        let depth = path.len();
        let result = check(path).map_err(|mut invalid| {
            invalid.of_value |= invalid.path.len() <= depth;
            invalid
        });
        path.pop();
        result
    }

    fn operation(node: &Value, path: &mut Vec<String>) -> Checked {
        let (key, value) = single(node, path)?;
        path.push(key.clone());
        if !BINARY.contains(&key.as_str()) {
            let invalid = Invalid::at("not a valid value", path);
            path.pop();
            return Err(invalid);
        }
        value_of(path, |path| operand(value, path))
    }

    /// `Any(float, int, All([float, int, Any(operation)], Length(2, 2)))`.
    fn operand(value: &Value, path: &mut Vec<String>) -> Checked {
        if matches!(value, Value::Number(_) | Value::Bool(_)) {
            return Ok(());
        }
        let as_number = Invalid::at("expected float", path);
        let Err(as_pair) = pair(value, path) else {
            return Ok(());
        };
        Err(deeper(as_number, as_pair))
    }

    fn pair(value: &Value, path: &mut Vec<String>) -> Checked {
        let Value::Array(items) = value else {
            return Err(Invalid::at("expected a list", path));
        };
        items_each(items, path, |item, path| {
            if matches!(item, Value::Number(_) | Value::Bool(_)) {
                Ok(())
            } else {
                operation(item, path)
            }
        })?;
        match items.len() {
            0 | 1 => Err(Invalid::at("length of value must be at least 2", path)),
            2 => Ok(()),
            _ => Err(Invalid::at("length of value must be at most 2", path)),
        }
    }

    fn logical(node: &Value, path: &mut Vec<String>) -> Checked {
        let (key, value) = single(node, path)?;
        path.push(key.clone());
        if !LOGICAL.contains(&key.as_str()) {
            let invalid = Invalid::at("not a valid value", path);
            path.pop();
            return Err(invalid);
        }
        value_of(path, |path| {
            let Value::Array(items) = value else {
                return Err(Invalid::at("expected a list", path));
            };
            items_each(items, path, query)
        })
    }

    /// A voluptuous list: the first item's error at its own depth, unless an
    /// item fails deeper, which is raised at once.
    fn items_each(
        items: &[Value],
        path: &mut Vec<String>,
        check: impl Fn(&Value, &mut Vec<String>) -> Checked,
    ) -> Checked {
        let mut first = None;
        for (index, item) in items.iter().enumerate() {
            path.push(index.to_string());
            let depth = path.len();
            let result = check(item, path);
            path.pop();
            match result {
                Err(invalid) if invalid.path.len() > depth => return Err(invalid),
                Err(invalid) => {
                    first.get_or_insert(invalid);
                }
                Ok(()) => {}
            }
        }
        first.map_or(Ok(()), Err)
    }
}

fn truthy(v: f64) -> bool {
    v != 0.0
}

/// A non-object node: numbers are themselves, booleans 1 or 0, anything else
/// (which Gnocchi would return as is and test for truth) non-zero when
/// non-empty.
fn constant(node: &Value) -> f64 {
    match node {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Null => 0.0,
        Value::String(s) => f64::from(u8::from(!s.is_empty())),
        Value::Array(items) => f64::from(u8::from(!items.is_empty())),
        Value::Object(map) => f64::from(u8::from(!map.is_empty())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matching(query: Value, values: &[f64]) -> Vec<f64> {
        let query = MeasureQuery::parse(&query).unwrap();
        values
            .iter()
            .copied()
            .filter(|&v| query.matches(v))
            .collect()
    }

    #[test]
    fn the_documented_example() {
        // Values that are >= 50 once 23 is added, and are not 55.
        let values = [10.0, 26.0, 27.0, 55.0, 60.0];
        assert_eq!(
            matching(
                json!({"and": [{">=": [{"+": 23}, 50]}, {"!=": 55}]}),
                &values
            ),
            vec![27.0, 60.0]
        );
    }

    #[test]
    fn operators_and_their_aliases() {
        let values = [-3.0, 0.0, 2.0, 12.0];
        assert_eq!(matching(json!({"=": 12}), &values), vec![12.0]);
        assert_eq!(matching(json!({"≥": 2}), &values), vec![2.0, 12.0]);
        assert_eq!(matching(json!({"lt": 0}), &values), vec![-3.0]);
        assert_eq!(
            matching(json!({"or": [{"=": 0}, {"=": 2}]}), &values),
            vec![0.0, 2.0]
        );
        // Python's modulo: -3 % 5 == 2.
        assert_eq!(
            matching(json!({"=": [{"%": 5}, 2]}), &values),
            vec![-3.0, 2.0, 12.0]
        );
        assert_eq!(matching(json!({"=": [{"**": 2}, 4]}), &values), vec![2.0]);
        // An arithmetic result is its own truth value: 0 + 0 is false.
        assert_eq!(matching(json!({"+": 0}), &values), vec![-3.0, 2.0, 12.0]);
    }

    #[test]
    fn malformed_queries_are_refused_as_gnocchis_schema_words_it() {
        // Each answer is Gnocchi 4.7.1's, seen side by side.
        let cases = [
            (json!(12), "invalid value or type", vec![]),
            (json!(null), "invalid value or type", vec![]),
            (json!("a"), "expected a dictionary", vec![]),
            (json!("ab"), "length of value must be at most 1", vec![]),
            (json!([]), "length of value must be at least 1", vec![]),
            (json!([1, 2]), "length of value must be at most 1", vec![]),
            (json!([{"=": 12}]), "expected a dictionary", vec![]),
            (json!({}), "length of value must be at least 1", vec![]),
            (
                json!({"=": 1, "<": 2}),
                "length of value must be at most 1",
                vec![],
            ),
            (json!({"foo": 12}), "not a valid value", vec!["foo"]),
            (json!({"and": 1}), "not a valid value", vec!["and"]),
            (
                json!({"=": "x"}),
                "expected float for dictionary value",
                vec!["="],
            ),
            (
                json!({"=": [1, 2, 3]}),
                "expected float for dictionary value",
                vec!["="],
            ),
            (
                json!({"=": {"a": 1}}),
                "expected float for dictionary value",
                vec!["="],
            ),
            (
                json!({"=": [{"foo": 1}, 2]}),
                "not a valid value",
                vec!["=", "0", "foo"],
            ),
            (
                json!({"=": ["x", 2]}),
                "expected a dictionary",
                vec!["=", "0"],
            ),
            (
                json!({"=": [null, 2]}),
                "invalid value or type",
                vec!["=", "0"],
            ),
            (
                json!({"=": [{"+": 1, "-": 2}, 3]}),
                "length of value must be at most 1",
                vec!["=", "0"],
            ),
            (
                json!({"and": [{"=": "x"}]}),
                "expected float for dictionary value",
                vec!["and", "0", "="],
            ),
            (
                json!({"and": [1]}),
                "invalid value or type",
                vec!["and", "0"],
            ),
            (
                json!({"and": [{"=": 12}, {"foo": 1}]}),
                "not a valid value",
                vec!["and", "1", "foo"],
            ),
            (
                json!({"and": [{"=": 1}, {"or": [{"=": [1]}]}]}),
                "expected float for dictionary value",
                vec!["and", "1", "or", "0", "="],
            ),
        ];
        for (query, message, path) in cases {
            let expected = QueryError::Schema {
                message: message.to_owned(),
                path: path.into_iter().map(str::to_owned).collect(),
            };
            assert_eq!(MeasureQuery::parse(&query), Err(expected), "{query}");
        }
        // `not` passes the schema, but nothing evaluates it.
        assert_eq!(
            MeasureQuery::parse(&json!({"not": [{"=": 1}]})),
            Err(QueryError::UnknownOperator("not".to_owned()))
        );
        // Booleans are ints to voluptuous; an empty `and` matches everything.
        assert_eq!(
            matching(json!({"=": [true, 2]}), &[1.0, 2.0]),
            Vec::<f64>::new()
        );
        assert_eq!(matching(json!({"and": []}), &[1.0, 2.0]), vec![1.0, 2.0]);
    }
}
