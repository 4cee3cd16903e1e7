//! The operations of `POST /v1/aggregates`: a string such as
//! `(aggregate mean (metric (ID mean) (ID mean)))` or the same tree as a JSON
//! list, validated into a [`Node`] tree with the metric references it names.
//!
//! The error messages are voluptuous's, as Gnocchi's schema words them; the
//! HTTP layer appends `for dictionary value @ data['operations']`.

use carbonara::aggregation::Method;
use carbonara::calendar::CalendarGrouping;
use carbonara::timespan::parse_timespan;
use serde_json::Value;

use super::AggregatesError;

/// One `(metric, aggregation)` a tree reads; `metric` is an id, or a metric
/// name (possibly with wildcards) when the request searches resources.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MetricRef {
    pub metric: String,
    pub aggregation: String,
}

/// A reduction across the columns of a row (`aggregate`), over a window
/// (`rolling`): numpy's NaN-skipping functions, optionally on the differences.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowAgg {
    pub rate: bool,
    pub kind: AggKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AggKind {
    Mean,
    Median,
    Std,
    Var,
    Min,
    Max,
    Sum,
    Count,
    Percentile(u8),
}

impl RowAgg {
    /// Parses a name of Gnocchi's `AGG_MAP` (`mean`, `rate:max`, `95pct`…).
    pub fn parse(name: &str) -> Option<RowAgg> {
        let (rate, base) = match name.strip_prefix("rate:") {
            Some(base) => (true, base),
            None => (false, name),
        };
        let kind = match base {
            "mean" => AggKind::Mean,
            "median" => AggKind::Median,
            "std" => AggKind::Std,
            "var" => AggKind::Var,
            "min" => AggKind::Min,
            "max" => AggKind::Max,
            "sum" => AggKind::Sum,
            "count" => AggKind::Count,
            other => {
                let q: u8 = other.strip_suffix("pct")?.parse().ok()?;
                if !(1..=99).contains(&q) || other.starts_with('0') || other.starts_with('+') {
                    return None;
                }
                AggKind::Percentile(q)
            }
        };
        Some(RowAgg { rate, kind })
    }
}

/// The new sampling of a `resample`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Nanoseconds.
    Every(i64),
    Calendar(CalendarGrouping),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
    Ne,
    Mod,
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    ClipMin,
    ClipMax,
}

impl BinaryOp {
    /// The operator named `name` in Gnocchi's operation language.
    pub(crate) fn parse(name: &str) -> Option<BinaryOp> {
        Some(match name {
            "=" | "==" | "eq" => BinaryOp::Eq,
            "<" | "lt" => BinaryOp::Lt,
            ">" | "gt" => BinaryOp::Gt,
            "<=" | "≤" | "le" => BinaryOp::Le,
            ">=" | "≥" | "ge" => BinaryOp::Ge,
            "!=" | "≠" | "ne" => BinaryOp::Ne,
            "%" | "mod" => BinaryOp::Mod,
            "+" | "add" => BinaryOp::Add,
            "-" | "sub" => BinaryOp::Sub,
            "*" | "×" | "mul" => BinaryOp::Mul,
            "/" | "÷" | "div" => BinaryOp::Div,
            "**" | "^" | "pow" => BinaryOp::Pow,
            "clip_min" => BinaryOp::ClipMin,
            "clip_max" => BinaryOp::ClipMax,
            _ => return None,
        })
    }

    /// numpy's element-wise function.
    pub fn apply(self, a: f64, b: f64) -> f64 {
        let truth = |c: bool| if c { 1.0 } else { 0.0 };
        match self {
            BinaryOp::Eq => truth(a == b),
            BinaryOp::Lt => truth(a < b),
            BinaryOp::Gt => truth(a > b),
            BinaryOp::Le => truth(a <= b),
            BinaryOp::Ge => truth(a >= b),
            BinaryOp::Ne => truth(a != b),
            // numpy.mod takes the sign of the divisor, like Python's `%`.
            BinaryOp::Mod => {
                if b == 0.0 {
                    f64::NAN
                } else {
                    let r = a % b;
                    if r != 0.0 && (r < 0.0) != (b < 0.0) {
                        r + b
                    } else {
                        r
                    }
                }
            }
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Pow => a.powf(b),
            BinaryOp::ClipMin => clip(a, Some(b), None),
            BinaryOp::ClipMax => clip(a, None, Some(b)),
        }
    }
}

/// numpy.clip: NaN stays NaN.
pub(crate) fn clip(value: f64, min: Option<f64>, max: Option<f64>) -> f64 {
    let mut value = value;
    if let Some(min) = min {
        if value < min {
            value = min;
        }
    }
    if let Some(max) = max {
        if value > max {
            value = max;
        }
    }
    value
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Abs,
    Neg,
    Cos,
    Sin,
    Tan,
    Floor,
    Ceil,
}

impl UnaryOp {
    fn parse(name: &str) -> Option<UnaryOp> {
        Some(match name {
            "abs" | "absolute" => UnaryOp::Abs,
            "neg" | "negative" => UnaryOp::Neg,
            "cos" => UnaryOp::Cos,
            "sin" => UnaryOp::Sin,
            "tan" => UnaryOp::Tan,
            "floor" => UnaryOp::Floor,
            "ceil" => UnaryOp::Ceil,
            _ => return None,
        })
    }

    pub fn apply(self, value: f64) -> f64 {
        match self {
            UnaryOp::Abs => value.abs(),
            UnaryOp::Neg => -value,
            UnaryOp::Cos => value.cos(),
            UnaryOp::Sin => value.sin(),
            UnaryOp::Tan => value.tan(),
            UnaryOp::Floor => value.floor(),
            UnaryOp::Ceil => value.ceil(),
        }
    }
}

/// A node of the operations tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Number(f64),
    /// The columns of these references (indices into [`Operations::refs`]).
    Metric(Vec<usize>),
    Aggregate {
        agg: RowAgg,
        input: Box<Node>,
    },
    Resample {
        method: Method,
        sampling: Sampling,
        input: Box<Node>,
    },
    Rolling {
        agg: RowAgg,
        window: usize,
        input: Box<Node>,
    },
    Binary {
        op: BinaryOp,
        left: Box<Node>,
        right: Box<Node>,
    },
    Clip {
        input: Box<Node>,
        min: Box<Node>,
        max: Box<Node>,
    },
    Unary {
        op: UnaryOp,
        input: Box<Node>,
    },
    RateOfChange(Box<Node>),
}

/// A validated tree and the distinct references it reads, in first-seen order.
#[derive(Debug, Clone, PartialEq)]
pub struct Operations {
    pub root: Node,
    pub refs: Vec<MetricRef>,
}

impl Operations {
    /// Parses `operations` as found in the request body: a string or a list.
    pub fn from_json(value: &Value) -> Result<Operations, AggregatesError> {
        let parsed;
        let tree = match value {
            Value::String(text) => {
                parsed = parse_string(text)?;
                &parsed
            }
            other => other,
        };
        let mut refs = Vec::new();
        let root = node(tree, &mut refs)?;
        Ok(Operations { root, refs })
    }
}

/// Python's `type()` of a JSON value, as voluptuous prints it.
fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "<class 'NoneType'>",
        Value::Bool(_) => "<class 'bool'>",
        Value::Number(n) if n.is_f64() => "<class 'float'>",
        Value::Number(_) => "<class 'int'>",
        Value::String(_) => "<class 'str'>",
        Value::Array(_) => "<class 'list'>",
        Value::Object(_) => "<class 'dict'>",
    }
}

/// A number, or a string that Python's `float()` accepts.
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(text) => {
            let text = text.trim();
            match text.to_ascii_lowercase().as_str() {
                "nan" | "+nan" | "-nan" => Some(f64::NAN),
                "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
                "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
                _ => text.parse().ok(),
            }
        }
        _ => None,
    }
}

fn text(value: &Value) -> Option<&str> {
    value.as_str()
}

/// A sub-node: an operation or a number.
fn sub_node(value: &Value, refs: &mut Vec<MetricRef>) -> Result<Node, AggregatesError> {
    if !value.is_array() {
        if let Some(n) = number(value) {
            return Ok(Node::Number(n));
        }
    }
    node(value, refs)
}

fn node(value: &Value, refs: &mut Vec<MetricRef>) -> Result<Node, AggregatesError> {
    let Value::Array(items) = value else {
        return Err(AggregatesError::invalid(format!(
            "Expected a tuple/list, got a {}",
            python_type(value)
        )));
    };
    let Some(head) = items.first() else {
        return Err(AggregatesError::invalid("Operation must not be empty"));
    };
    if items.len() < 2 {
        return Err(AggregatesError::invalid(
            "Operation need at least one argument",
        ));
    }
    let name = match head {
        Value::String(name) => name.as_str(),
        other => {
            return Err(AggregatesError::invalid(format!(
                "'{}' operation invalid",
                python_repr(other)
            )))
        }
    };
    let invalid = || AggregatesError::invalid(format!("'{name}' operation invalid"));
    let args = &items[1..];
    let result = match name {
        "metric" => metric_node(args, refs).ok_or_else(invalid)?,
        "aggregate" => {
            let [agg, input] = args else {
                return Err(invalid());
            };
            let agg = text(agg).and_then(RowAgg::parse).ok_or_else(invalid)?;
            Node::Aggregate {
                agg,
                input: Box::new(sub_node(input, refs)?),
            }
        }
        "resample" => {
            let [method, sampling, input] = args else {
                return Err(invalid());
            };
            let method = text(method)
                .filter(|m| RowAgg::parse(m).is_some())
                .and_then(|m| m.parse::<Method>().ok())
                .ok_or_else(invalid)?;
            let sampling = sampling_of(sampling).ok_or_else(invalid)?;
            Node::Resample {
                method,
                sampling,
                input: Box::new(sub_node(input, refs)?),
            }
        }
        "rolling" => {
            let [agg, window, input] = args else {
                return Err(invalid());
            };
            let agg = text(agg).and_then(RowAgg::parse).ok_or_else(invalid)?;
            let window = match window {
                Value::Number(n) => n
                    .as_u64()
                    .or_else(|| n.as_f64().filter(|f| *f >= 1.0).map(|f| f as u64)),
                Value::String(s) => s.trim().parse::<u64>().ok(),
                _ => None,
            }
            .filter(|w| *w >= 1)
            .ok_or_else(invalid)?;
            Node::Rolling {
                agg,
                window: window as usize,
                input: Box::new(sub_node(input, refs)?),
            }
        }
        "rateofchange" => {
            let [input] = args else { return Err(invalid()) };
            Node::RateOfChange(Box::new(sub_node(input, refs)?))
        }
        "clip" => {
            let [input, min, max] = args else {
                return Err(invalid());
            };
            Node::Clip {
                input: Box::new(sub_node(input, refs)?),
                min: Box::new(sub_node(min, refs)?),
                max: Box::new(sub_node(max, refs)?),
            }
        }
        other => {
            if let Some(op) = BinaryOp::parse(other) {
                let [left, right] = args else {
                    return Err(invalid());
                };
                Node::Binary {
                    op,
                    left: Box::new(sub_node(left, refs)?),
                    right: Box::new(sub_node(right, refs)?),
                }
            } else if let Some(op) = UnaryOp::parse(other) {
                let [input] = args else { return Err(invalid()) };
                Node::Unary {
                    op,
                    input: Box::new(sub_node(input, refs)?),
                }
            } else {
                return Err(invalid());
            }
        }
    };
    Ok(result)
}

/// `(metric ID AGG)` or `(metric (ID AGG) (ID AGG)…)`.
fn metric_node(args: &[Value], refs: &mut Vec<MetricRef>) -> Option<Node> {
    let pair = |values: &[Value]| -> Option<MetricRef> {
        match values {
            [Value::String(metric), Value::String(aggregation)] => Some(MetricRef {
                metric: metric.clone(),
                aggregation: aggregation.clone(),
            }),
            _ => None,
        }
    };
    let wanted: Vec<MetricRef> = if args.iter().all(Value::is_string) {
        vec![pair(args)?]
    } else {
        args.iter()
            .map(|arg| arg.as_array().and_then(|items| pair(items)))
            .collect::<Option<_>>()?
    };
    let columns = wanted
        .into_iter()
        .map(
            |reference| match refs.iter().position(|r| *r == reference) {
                Some(at) => at,
                None => {
                    refs.push(reference);
                    refs.len() - 1
                }
            },
        )
        .collect();
    Some(Node::Metric(columns))
}

fn sampling_of(value: &Value) -> Option<Sampling> {
    match value {
        Value::String(text) => {
            if let Ok(grouping) = text.parse::<CalendarGrouping>() {
                return Some(Sampling::Calendar(grouping));
            }
            parse_timespan(text)
                .ok()
                .filter(|ns| *ns > 0)
                .map(Sampling::Every)
        }
        Value::Number(n) => {
            let seconds = n.as_f64()?;
            let ns = (seconds * 1e9).round();
            (ns >= 1.0 && ns.is_finite()).then_some(Sampling::Every(ns as i64))
        }
        _ => None,
    }
}

/// Roughly Python's `repr` of a JSON value, for messages.
fn python_repr(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Parses the string form like pyparsing's `OneOrMore(nestedExpr())`: the
/// first parenthesised expression, words split on whitespace, anything after
/// it ignored.
pub fn parse_string(text: &str) -> Result<Value, AggregatesError> {
    let chars: Vec<char> = text.chars().collect();
    let mut at = 0;
    while at < chars.len() && chars[at].is_whitespace() {
        at += 1;
    }
    if at >= chars.len() || chars[at] != '(' {
        return Err(AggregatesError::ParseString(format!(
            "Expected nested () expression, found '{}'  (at char {at}), (line:1, col:{})",
            chars.get(at).map(|c| c.to_string()).unwrap_or_default(),
            at + 1
        )));
    }
    let mut stack: Vec<Vec<Value>> = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, stack: &mut Vec<Vec<Value>>| {
        if !word.is_empty() {
            let token = std::mem::take(word);
            if let Some(top) = stack.last_mut() {
                top.push(Value::String(token));
            }
        }
    };
    while at < chars.len() {
        let c = chars[at];
        at += 1;
        match c {
            '(' => {
                flush(&mut word, &mut stack);
                stack.push(Vec::new());
            }
            ')' => {
                flush(&mut word, &mut stack);
                let done = stack.pop().unwrap_or_default();
                match stack.last_mut() {
                    Some(parent) => parent.push(Value::Array(done)),
                    None => return Ok(Value::Array(done)),
                }
            }
            '"' | '\'' => {
                flush(&mut word, &mut stack);
                let mut quoted = String::new();
                while at < chars.len() && chars[at] != c {
                    quoted.push(chars[at]);
                    at += 1;
                }
                at += 1;
                if let Some(top) = stack.last_mut() {
                    top.push(Value::String(quoted));
                }
            }
            c if c.is_whitespace() => flush(&mut word, &mut stack),
            c => word.push(c),
        }
    }
    Err(AggregatesError::ParseString(format!(
        "Expected ')', found end of text  (at char {}), (line:1, col:{})",
        chars.len(),
        chars.len() + 1
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const A: &str = "8c062a7e-9f9f-4b1c-9996-9d0328512ab7";
    const B: &str = "e4864464-1b27-4622-9fbb-dc900e06c192";

    fn refs(ops: &Operations) -> Vec<(&str, &str)> {
        ops.refs
            .iter()
            .map(|r| (r.metric.as_str(), r.aggregation.as_str()))
            .collect()
    }

    #[test]
    fn string_and_list_forms_agree() {
        let text = format!("(aggregate mean (metric ({A} mean) ({B} mean)))");
        let from_text = Operations::from_json(&Value::String(text)).unwrap();
        let from_list = Operations::from_json(&json!([
            "aggregate",
            "mean",
            ["metric", [A, "mean"], [B, "mean"]]
        ]))
        .unwrap();
        assert_eq!(from_text, from_list);
        assert_eq!(refs(&from_text), vec![(A, "mean"), (B, "mean")]);
    }

    #[test]
    fn numbers_and_trailing_garbage() {
        let ops = Operations::from_json(&json!(format!("(+ (metric {A} mean) 2.0))"))).unwrap();
        assert!(matches!(
            ops.root,
            Node::Binary { op: BinaryOp::Add, ref right, .. } if **right == Node::Number(2.0)
        ));
    }

    #[test]
    fn duplicate_references_are_read_once() {
        let ops = Operations::from_json(&json!(["metric", [A, "mean"], [B, "mean"], [B, "mean"]]))
            .unwrap();
        assert_eq!(ops.refs.len(), 2);
        assert_eq!(ops.root, Node::Metric(vec![0, 1, 1]));
    }

    #[test]
    fn schema_messages() {
        let message = |value: Value| Operations::from_json(&value).unwrap_err().to_string();
        assert_eq!(message(json!([])), "Operation must not be empty");
        assert!(message(json!({"foo": "bar"})).starts_with("Expected a tuple/list, got a"));
        assert_eq!(
            message(json!(["metric"])),
            "Operation need at least one argument"
        );
        assert_eq!(
            message(json!(format!("(rolling blah 2 (metric {A} mean))"))),
            "'rolling' operation invalid"
        );
        assert_eq!(
            message(json!(format!("(rolling mean (metric {A} mean))"))),
            "'rolling' operation invalid"
        );
        assert_eq!(
            message(json!(format!("(notexist (absolute (metric {A} mean)))"))),
            "'notexist' operation invalid"
        );
        assert_eq!(
            message(json!(format!("(resample mean invalid (metric {A} mean))"))),
            "'resample' operation invalid"
        );
        assert!(matches!(
            Operations::from_json(&json!("(metroc foo bar")),
            Err(AggregatesError::ParseString(_))
        ));
    }

    #[test]
    fn aggregation_names() {
        assert_eq!(
            RowAgg::parse("95pct").unwrap().kind,
            AggKind::Percentile(95)
        );
        assert!(RowAgg::parse("rate:mean").unwrap().rate);
        assert!(RowAgg::parse("last").is_none());
        assert!(RowAgg::parse("100pct").is_none());
    }
}
