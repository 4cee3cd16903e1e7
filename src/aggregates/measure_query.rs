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
use super::AggregatesError;

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

impl MeasureQuery {
    /// Parses the JSON body of a metric search.
    pub fn parse(tree: &Value) -> Result<MeasureQuery, AggregatesError> {
        let invalid = |reason: String| AggregatesError::InvalidInput(reason);
        let Value::Object(map) = tree else {
            return Ok(MeasureQuery::Constant(constant(tree)));
        };
        let mut entries = map.iter();
        let (Some((operator, nodes)), None) = (entries.next(), entries.next()) else {
            return Err(invalid(format!(
                "A query takes exactly one operator, {} given",
                map.len()
            )));
        };
        match operator.as_str() {
            "and" | "∧" | "or" | "∨" => {
                let Value::Array(items) = nodes else {
                    return Err(invalid(format!("Operator {operator} takes a list")));
                };
                Ok(MeasureQuery::Logical {
                    all: matches!(operator.as_str(), "and" | "∧"),
                    nodes: items
                        .iter()
                        .map(MeasureQuery::parse)
                        .collect::<Result<_, _>>()?,
                })
            }
            name => {
                // The operators of `/v1/aggregates`, less its clipping functions.
                let op = BinaryOp::parse(name)
                    .filter(|op| !matches!(op, BinaryOp::ClipMin | BinaryOp::ClipMax))
                    .ok_or_else(|| invalid(format!("Unknown operator {name}")))?;
                match nodes {
                    Value::Array(items) if items.len() == 2 => Ok(MeasureQuery::Binary {
                        op,
                        left: Box::new(MeasureQuery::parse(&items[0])?),
                        right: Box::new(MeasureQuery::parse(&items[1])?),
                    }),
                    Value::Array(items) => Err(invalid(format!(
                        "Binary operator {name} needs 2 arguments, {} given",
                        items.len()
                    ))),
                    Value::Number(n) => Ok(MeasureQuery::WithValue {
                        op,
                        operand: n.as_f64().unwrap_or(f64::NAN),
                    }),
                    Value::Bool(b) => Ok(MeasureQuery::WithValue {
                        op,
                        operand: f64::from(u8::from(*b)),
                    }),
                    _ => Err(invalid(format!(
                        "Operator {name} takes a number or a list of two operands"
                    ))),
                }
            }
        }
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
    fn malformed_queries_are_rejected() {
        let err = |q: Value| MeasureQuery::parse(&q).unwrap_err().to_string();
        assert_eq!(err(json!({"foo": 1})), "Unknown operator foo");
        assert_eq!(
            err(json!({"=": [1, 2, 3]})),
            "Binary operator = needs 2 arguments, 3 given"
        );
        assert_eq!(
            err(json!({"=": 1, "<": 2})),
            "A query takes exactly one operator, 2 given"
        );
        assert_eq!(err(json!({"and": 1})), "Operator and takes a list");
    }
}
