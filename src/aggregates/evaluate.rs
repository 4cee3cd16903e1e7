//! Evaluating an operations tree over the series read for its references.
//!
//! As Gnocchi's `processor.aggregated`: per granularity (coarsest first), the
//! series of every reference are aligned on the union of their timestamps (a
//! grid of one column per reference), holes are filled per the `fill` policy
//! or the overlap is checked, then the tree is computed column-wise.

use carbonara::aggregated::AggregatedSeries;
use carbonara::aggregation::Scratch;
use carbonara::calendar::{resample_calendar, CalendarGrouping};
use serde_json::{json, Value};

use super::parse::{clip, AggKind, Node, Operations, Sampling};
use super::AggregatesError;

/// How holes in the grid are treated (`?fill=`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fill {
    /// No fill: the overlap must reach `needed_overlap`.
    None,
    Value(f64),
    Null,
    Dropna,
    Ffill,
    Bfill,
    FullFfill,
    FullBfill,
}

impl Fill {
    /// Parses `?fill=`; `None` when the value is not one Gnocchi accepts.
    pub fn parse(text: &str) -> Option<Fill> {
        Some(match text {
            "null" => Fill::Null,
            "dropna" => Fill::Dropna,
            "ffill" => Fill::Ffill,
            "bfill" => Fill::Bfill,
            "full_ffill" => Fill::FullFfill,
            "full_bfill" => Fill::FullBfill,
            other => Fill::Value(other.trim().parse().ok()?),
        })
    }

    /// Whether NaN (and infinite) points are left out of the answer.
    pub fn drops_nan(self) -> bool {
        matches!(
            self,
            Fill::Dropna | Fill::Ffill | Fill::Bfill | Fill::FullFfill | Fill::FullBfill
        )
    }
}

/// The request-wide parameters of an evaluation.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub start: Option<i64>,
    pub stop: Option<i64>,
    pub fill: Fill,
    /// Percent, 0–100.
    pub needed_overlap: f64,
}

/// The granularity label of an answer's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// Nanoseconds.
    Seconds(i64),
    Calendar(CalendarGrouping),
}

/// One column of a block: the values of one reference, or a computed series.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The reference the column came from (`None` once aggregated).
    pub reference: Option<usize>,
    pub values: Vec<f64>,
}

/// The result at one input granularity.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub granularity: Granularity,
    pub timestamps: Vec<i64>,
    pub columns: Vec<Column>,
}

/// The evaluated tree: blocks from the coarsest granularity.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    /// Columns were combined: the answer is `{"aggregated": …}`.
    pub aggregated: bool,
    pub blocks: Vec<Block>,
}

/// What the granularity planning knows of one reference.
#[derive(Debug, Clone, Copy)]
pub struct RefGranularities<'a> {
    /// The name shown in errors (metric id, or metric name in a resource).
    pub name: &'a str,
    pub aggregation: &'a str,
    /// The granularities the reference's policy stores, in nanoseconds.
    pub granularities: &'a [i64],
}

fn seconds(ns: i64) -> f64 {
    ns as f64 / 1e9
}

/// The granularities to read, coarsest first: the requested one (which every
/// reference must have) or those all references have in common.
pub fn plan_granularities(
    refs: &[RefGranularities<'_>],
    requested: Option<i64>,
) -> Result<Vec<i64>, AggregatesError> {
    match requested {
        Some(granularity) => {
            let missing: Vec<Value> = refs
                .iter()
                .filter(|r| !r.granularities.contains(&granularity))
                .map(|r| json!([r.name, r.aggregation, seconds(granularity)]))
                .collect();
            if missing.is_empty() {
                Ok(vec![granularity])
            } else {
                Err(AggregatesError::Unaggregable {
                    reason: "Granularities are missing".to_owned(),
                    detail: Value::Array(missing),
                })
            }
        }
        None => {
            let Some(first) = refs.first() else {
                return Ok(Vec::new());
            };
            let mut common: Vec<i64> = first
                .granularities
                .iter()
                .copied()
                .filter(|g| refs[1..].iter().all(|r| r.granularities.contains(g)))
                .collect();
            if common.is_empty() {
                return Err(AggregatesError::Unaggregable {
                    reason: "No granularity match".to_owned(),
                    detail: refs
                        .iter()
                        .map(|r| json!([r.name, r.aggregation]))
                        .collect(),
                });
            }
            common.sort_unstable_by(|a, b| b.cmp(a));
            common.dedup();
            Ok(common)
        }
    }
}

/// A sorted series of one reference at one granularity.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub timestamps: &'a [i64],
    pub values: &'a [f64],
}

impl<'a> From<&'a AggregatedSeries> for Input<'a> {
    fn from(series: &'a AggregatedSeries) -> Self {
        Input {
            timestamps: series.timestamps(),
            values: series.values(),
        }
    }
}

/// Evaluates `ops` over `inputs`: per granularity (coarsest first), one input
/// per reference of `ops.refs`, in order. `lookup_keys` is the error detail
/// naming the references.
pub fn evaluate(
    ops: &Operations,
    inputs: &[(i64, Vec<Input<'_>>)],
    options: &Options,
    lookup_keys: impl Fn() -> Value,
) -> Result<Evaluated, AggregatesError> {
    let mut blocks = Vec::with_capacity(inputs.len());
    let mut aggregated = false;
    let mut scratch = Scratch::new();
    for (granularity, series) in inputs {
        let mut grid = Grid {
            block: align(*granularity, series, options, &lookup_keys)?,
            uses: vec![0; series.len()],
        };
        count_uses(&ops.root, &mut grid.uses);
        let value = eval(&ops.root, &mut grid, &lookup_keys, &mut scratch)?;
        let Value_::Frame(frame) = value else {
            return Err(AggregatesError::invalid(
                "Operations must return timeseries",
            ));
        };
        aggregated |= frame.aggregated;
        blocks.push(frame.block);
    }
    Ok(Evaluated { aggregated, blocks })
}

/// The union of sorted timestamp slices.
fn union(series: &[Input<'_>]) -> Vec<i64> {
    match series {
        [] => Vec::new(),
        [only] => only.timestamps.to_vec(),
        [first, rest @ ..] if rest.iter().all(|s| s.timestamps == first.timestamps) => {
            first.timestamps.to_vec()
        }
        _ => {
            let mut all: Vec<i64> =
                Vec::with_capacity(series.iter().map(|s| s.timestamps.len()).sum());
            for s in series {
                all.extend_from_slice(s.timestamps);
            }
            all.sort_unstable();
            all.dedup();
            all
        }
    }
}

/// The values of `series` placed on `times` (a superset of its timestamps),
/// `filler` elsewhere.
fn spread(series: &Input<'_>, times: &[i64], filler: f64) -> Vec<f64> {
    if series.timestamps.len() == times.len() {
        return series.values.to_vec();
    }
    let mut values = vec![filler; times.len()];
    let mut at = 0;
    for (&t, &v) in series.timestamps.iter().zip(series.values) {
        while at < times.len() && times[at] < t {
            at += 1;
        }
        if let Some(slot) = values.get_mut(at) {
            *slot = v;
        }
    }
    values
}

/// Builds the grid of one granularity and applies the fill or overlap rules.
fn align(
    granularity: i64,
    series: &[Input<'_>],
    options: &Options,
    lookup_keys: &impl Fn() -> Value,
) -> Result<Block, AggregatesError> {
    let mut times = union(series);
    let filler = match options.fill {
        Fill::Value(v) => v,
        _ => f64::NAN,
    };
    let mut columns: Vec<Column> = series
        .iter()
        .enumerate()
        .map(|(i, s)| Column {
            reference: Some(i),
            values: spread(s, &times, filler),
        })
        .collect();
    match options.fill {
        Fill::None => {
            let overlaps = |row: usize| columns.iter().all(|c| !c.values[row].is_nan());
            let overlap: Vec<usize> = (0..times.len()).filter(|&row| overlaps(row)).collect();
            if overlap.is_empty() && options.needed_overlap > 0.0 {
                return Err(AggregatesError::Unaggregable {
                    reason: "No overlap".to_owned(),
                    detail: lookup_keys(),
                });
            }
            if !times.is_empty() {
                let mut from = 0;
                let mut to = times.len();
                if let (Some(&first), Some(&last)) = (overlap.first(), overlap.last()) {
                    if options.stop.is_none() {
                        to = last + 1;
                    }
                    if options.start.is_none() {
                        from = first;
                    }
                }
                if from != 0 || to != times.len() {
                    times = times[from..to].to_vec();
                    for column in &mut columns {
                        column.values = column.values[from..to].to_vec();
                    }
                }
                let percent = overlap.len() as f64 * 100.0 / times.len() as f64;
                if percent < options.needed_overlap {
                    return Err(AggregatesError::Unaggregable {
                        reason: format!(
                            "Less than {:.6}% of datapoints overlap in this timespan ({percent:.2}%)",
                            options.needed_overlap
                        ),
                        detail: lookup_keys(),
                    });
                }
            }
        }
        Fill::Ffill | Fill::FullFfill => {
            for column in &mut columns {
                forward_fill(&mut column.values);
                if options.fill == Fill::FullFfill {
                    backward_fill(&mut column.values);
                }
            }
        }
        Fill::Bfill | Fill::FullBfill => {
            for column in &mut columns {
                backward_fill(&mut column.values);
                if options.fill == Fill::FullBfill {
                    forward_fill(&mut column.values);
                }
            }
        }
        Fill::Value(_) | Fill::Null | Fill::Dropna => {}
    }
    Ok(Block {
        granularity: Granularity::Seconds(granularity),
        timestamps: times,
        columns,
    })
}

fn forward_fill(values: &mut [f64]) {
    let mut last = f64::NAN;
    for v in values {
        if v.is_nan() {
            *v = last;
        } else {
            last = *v;
        }
    }
}

fn backward_fill(values: &mut [f64]) {
    let mut next = f64::NAN;
    for v in values.iter_mut().rev() {
        if v.is_nan() {
            *v = next;
        } else {
            next = *v;
        }
    }
}

/// A block and whether its columns were combined.
#[derive(Debug, Clone)]
struct Frame {
    block: Block,
    aggregated: bool,
}

/// The value of a node.
#[derive(Debug, Clone)]
enum Value_ {
    Scalar(f64),
    Frame(Frame),
}

/// The aligned columns of one granularity, and how many `metric` nodes still
/// have to read each: the last reader takes the column instead of copying it.
#[derive(Debug)]
struct Grid {
    block: Block,
    uses: Vec<usize>,
}

impl Grid {
    fn column(&mut self, i: usize) -> Column {
        match self.uses.get_mut(i) {
            Some(uses) if *uses <= 1 => {
                *uses = 0;
                std::mem::replace(
                    &mut self.block.columns[i],
                    Column {
                        reference: Some(i),
                        values: Vec::new(),
                    },
                )
            }
            Some(uses) => {
                *uses -= 1;
                self.block.columns[i].clone()
            }
            None => self.block.columns[i].clone(),
        }
    }
}

fn count_uses(node: &Node, uses: &mut [usize]) {
    match node {
        Node::Number(_) => {}
        Node::Metric(columns) => {
            for &i in columns {
                if let Some(n) = uses.get_mut(i) {
                    *n += 1;
                }
            }
        }
        Node::Aggregate { input, .. }
        | Node::Resample { input, .. }
        | Node::Rolling { input, .. }
        | Node::Unary { input, .. }
        | Node::RateOfChange(input) => count_uses(input, uses),
        Node::Binary { left, right, .. } => {
            count_uses(left, uses);
            count_uses(right, uses);
        }
        Node::Clip { input, min, max } => {
            count_uses(input, uses);
            count_uses(min, uses);
            count_uses(max, uses);
        }
    }
}

fn eval(
    node: &Node,
    grid: &mut Grid,
    lookup_keys: &impl Fn() -> Value,
    scratch: &mut Scratch,
) -> Result<Value_, AggregatesError> {
    Ok(match node {
        Node::Number(n) => Value_::Scalar(*n),
        Node::Metric(columns) => Value_::Frame(Frame {
            block: Block {
                granularity: grid.block.granularity,
                timestamps: grid.block.timestamps.clone(),
                columns: columns.iter().map(|&i| grid.column(i)).collect(),
            },
            aggregated: false,
        }),
        Node::Aggregate { agg, input } => {
            let mut frame = frame(eval(input, grid, lookup_keys, scratch)?)?;
            let block = &mut frame.block;
            let values = match reduce_columns(agg.kind, &block.columns, block.timestamps.len()) {
                Some(values) => values,
                None => {
                    let mut row = Vec::with_capacity(block.columns.len());
                    (0..block.timestamps.len())
                        .map(|r| {
                            row.clear();
                            row.extend(
                                block
                                    .columns
                                    .iter()
                                    .map(|c| c.values.get(r).copied().unwrap_or(f64::NAN)),
                            );
                            reduce(agg.kind, &mut row, Summation::Pairwise)
                        })
                        .collect()
                }
            };
            block.columns = vec![Column {
                reference: None,
                values,
            }];
            // As Gnocchi's `rated_agg`: the rate of the aggregate, not the
            // aggregate of the rates (`rate:max` is not `max` of differences).
            if agg.rate {
                rate_of_change(block);
            }
            frame.aggregated = true;
            Value_::Frame(frame)
        }
        Node::Resample {
            method,
            sampling,
            input,
        } => {
            let mut frame = frame(eval(input, grid, lookup_keys, scratch)?)?;
            let block = &mut frame.block;
            let mut parts = Vec::with_capacity(block.columns.len());
            for column in &block.columns {
                parts.push(match sampling {
                    Sampling::Every(every) => AggregatedSeries::compute(
                        &block.timestamps,
                        &column.values,
                        *every,
                        *method,
                        scratch,
                    )
                    .map_err(|err| AggregatesError::invalid(err.to_string()))?
                    .into_parts(),
                    Sampling::Calendar(grouping) => resample_calendar(
                        &block.timestamps,
                        &column.values,
                        *grouping,
                        *method,
                        scratch,
                    )
                    .map_err(|err| AggregatesError::invalid(err.to_string()))?,
                });
            }
            // Columns may come back with different timestamps (NaN points
            // are not grouped): realign them on their union.
            let inputs: Vec<Input<'_>> = parts
                .iter()
                .map(|(t, v)| Input {
                    timestamps: t,
                    values: v,
                })
                .collect();
            let timestamps = union(&inputs);
            let values: Vec<Vec<f64>> = inputs
                .iter()
                .map(|input| spread(input, &timestamps, f64::NAN))
                .collect();
            block.timestamps = timestamps;
            for (column, values) in block.columns.iter_mut().zip(values) {
                column.values = values;
            }
            block.granularity = match sampling {
                Sampling::Every(every) => Granularity::Seconds(*every),
                Sampling::Calendar(grouping) => Granularity::Calendar(*grouping),
            };
            Value_::Frame(frame)
        }
        Node::Rolling { agg, window, input } => {
            let mut frame = frame(eval(input, grid, lookup_keys, scratch)?)?;
            let block = &mut frame.block;
            let len = block.timestamps.len();
            if *window > len {
                return Err(AggregatesError::Unaggregable {
                    reason: format!(
                        "Rolling window '{window}' is greater than serie length '{len}'"
                    ),
                    detail: lookup_keys(),
                });
            }
            block.timestamps.drain(..window - 1);
            // Gnocchi's windows are strided views of the (time × metric)
            // matrix: contiguous only when there is one metric.
            let summation = if block.columns.len() == 1 {
                Summation::Pairwise
            } else {
                Summation::InOrder
            };
            let mut buffer = Vec::with_capacity(*window);
            for column in &mut block.columns {
                column.values = column
                    .values
                    .windows(*window)
                    .map(|w| {
                        buffer.clear();
                        buffer.extend_from_slice(w);
                        reduce(agg.kind, &mut buffer, summation)
                    })
                    .collect();
            }
            // As for `aggregate`: the rate of the rolling aggregate.
            if agg.rate {
                rate_of_change(block);
            }
            Value_::Frame(frame)
        }
        Node::Binary { op, left, right } => {
            let left = eval(left, grid, lookup_keys, scratch)?;
            let right = eval(right, grid, lookup_keys, scratch)?;
            let result = match (left, right) {
                (Value_::Scalar(a), Value_::Scalar(b)) => Value_::Scalar(op.apply(a, b)),
                (Value_::Frame(mut f), Value_::Scalar(b)) => {
                    map_columns(&mut f.block, |a| op.apply(a, b));
                    Value_::Frame(f)
                }
                (Value_::Scalar(a), Value_::Frame(mut f)) => {
                    map_columns(&mut f.block, |b| op.apply(a, b));
                    Value_::Frame(f)
                }
                (Value_::Frame(mut a), Value_::Frame(b)) => {
                    if a.block.timestamps != b.block.timestamps
                        || a.block.granularity != b.block.granularity
                    {
                        return Err(AggregatesError::Unaggregable {
                            reason: format!(
                                "Can't compute timeseries with different granularity {} <> {}",
                                granularity_text(a.block.granularity),
                                granularity_text(b.block.granularity)
                            ),
                            detail: lookup_keys(),
                        });
                    }
                    let (na, nb) = (a.block.columns.len(), b.block.columns.len());
                    if na != nb && na != 1 && nb != 1 {
                        return Err(AggregatesError::Unaggregable {
                            reason: format!(
                                "operands could not be broadcast together ({na} and {nb} series)"
                            ),
                            detail: lookup_keys(),
                        });
                    }
                    let n = na.max(nb);
                    let columns = (0..n)
                        .map(|i| {
                            let x = &a.block.columns[if na == 1 { 0 } else { i }];
                            let y = &b.block.columns[if nb == 1 { 0 } else { i }];
                            Column {
                                reference: x.reference,
                                values: x
                                    .values
                                    .iter()
                                    .zip(&y.values)
                                    .map(|(&p, &q)| op.apply(p, q))
                                    .collect(),
                            }
                        })
                        .collect();
                    a.block.columns = columns;
                    a.aggregated = true;
                    Value_::Frame(a)
                }
            };
            result
        }
        Node::Clip { input, min, max } => {
            let mut f = frame(eval(input, grid, lookup_keys, scratch)?)?;
            let bound = |node: &Node| match node {
                Node::Number(n) => Ok(*n),
                _ => Err(AggregatesError::invalid("'clip' operation invalid")),
            };
            let (min, max) = (bound(min)?, bound(max)?);
            map_columns(&mut f.block, |v| clip(v, Some(min), Some(max)));
            Value_::Frame(f)
        }
        Node::Unary { op, input } => {
            let mut f = frame(eval(input, grid, lookup_keys, scratch)?)?;
            map_columns(&mut f.block, |v| op.apply(v));
            Value_::Frame(f)
        }
        Node::RateOfChange(input) => {
            let mut f = frame(eval(input, grid, lookup_keys, scratch)?)?;
            rate_of_change(&mut f.block);
            Value_::Frame(f)
        }
    })
}

fn granularity_text(granularity: Granularity) -> String {
    match granularity {
        Granularity::Seconds(ns) => format!("{:?}", seconds(ns)),
        Granularity::Calendar(grouping) => grouping.to_string(),
    }
}

fn frame(value: Value_) -> Result<Frame, AggregatesError> {
    match value {
        Value_::Frame(frame) => Ok(frame),
        Value_::Scalar(_) => Err(AggregatesError::invalid(
            "Operations must be applied to timeseries",
        )),
    }
}

fn map_columns(block: &mut Block, f: impl Fn(f64) -> f64) {
    for column in &mut block.columns {
        for v in &mut column.values {
            *v = f(*v);
        }
    }
}

/// Differences between consecutive rows; the first row goes.
fn rate_of_change(block: &mut Block) {
    if block.timestamps.is_empty() {
        return;
    }
    block.timestamps.remove(0);
    for column in &mut block.columns {
        column.values = column.values.windows(2).map(|w| w[1] - w[0]).collect();
    }
}

/// [`reduce`] of every row at once for the kinds that fold: one sequential
/// pass per column instead of gathering each row across all columns (the
/// same additions in the same order, so the same results). `None` for kinds
/// that need a row's values together (median, percentiles, std, var).
fn reduce_columns(kind: AggKind, columns: &[Column], rows: usize) -> Option<Vec<f64>> {
    // numpy sums a row of 8 metrics or more pairwise, not in order.
    if columns.len() >= 8 && matches!(kind, AggKind::Sum | AggKind::Mean) {
        return None;
    }
    // `-0.0` is the neutral element `Iterator::sum` starts from.
    let start = match kind {
        AggKind::Min => f64::INFINITY,
        AggKind::Max => f64::NEG_INFINITY,
        _ => -0.0,
    };
    let mut acc = vec![start; rows];
    let mut counts = vec![0u32; rows];
    // One monomorphic loop per fold, so the fold inlines into it.
    match kind {
        // A NaN adds `0.0` in its place, as in `numpy.nansum`.
        AggKind::Sum | AggKind::Mean | AggKind::Count => {
            fold_columns(columns, &mut acc, &mut counts, |a, v| {
                a + if v.is_nan() { 0.0 } else { v }
            })
        }
        // `f64::min` and `f64::max` pass NaNs over.
        AggKind::Min => fold_columns(columns, &mut acc, &mut counts, f64::min),
        AggKind::Max => fold_columns(columns, &mut acc, &mut counts, f64::max),
        _ => return None,
    }
    Some(
        acc.into_iter()
            .zip(counts)
            .map(|(a, n)| match (kind, n) {
                (AggKind::Count, n) => f64::from(n),
                (_, 0) => f64::NAN,
                (AggKind::Mean, n) => a / f64::from(n),
                _ => a,
            })
            .collect(),
    )
}

/// Folds the values of every column into `acc`, counting the non-NaN ones.
fn fold_columns(
    columns: &[Column],
    acc: &mut [f64],
    counts: &mut [u32],
    fold: impl Fn(f64, f64) -> f64,
) {
    for column in columns {
        // A short column lacks its last rows: NaNs, as in the row reduction.
        let values = column.values.iter().chain(std::iter::repeat(&f64::NAN));
        for ((a, n), &v) in acc.iter_mut().zip(counts.iter_mut()).zip(values) {
            *a = fold(*a, v);
            *n += u32::from(!v.is_nan());
        }
    }
}

/// The order in which numpy adds up a reduction, which Gnocchi's array
/// layout decides and which shows in the last digit of sums and means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Summation {
    /// A contiguous run (a row across metrics, the windows of one series):
    /// numpy's pairwise sum.
    Pairwise,
    /// Strided windows (rolling over several series): numpy walks the
    /// window axis outermost, one addition after another.
    InOrder,
}

impl Summation {
    /// The sum of `term(v)` over `values`, in numpy's order.
    fn sum(self, values: &[f64], term: impl Fn(f64) -> f64 + Copy) -> f64 {
        match self {
            Summation::Pairwise => pairwise_sum(values, term),
            Summation::InOrder => values.iter().fold(-0.0, |total, &v| total + term(v)),
        }
    }
}

/// numpy's `add.reduce` of a contiguous run: in order below 8 values, eight
/// interleaved partial sums up to 128, halves (on a multiple of 8) above.
fn pairwise_sum(values: &[f64], term: impl Fn(f64) -> f64 + Copy) -> f64 {
    let n = values.len();
    if n < 8 {
        return values.iter().fold(-0.0, |total, &v| total + term(v));
    }
    if n <= 128 {
        let mut partial = [0.0; 8];
        for (p, &v) in partial.iter_mut().zip(values) {
            *p = term(v);
        }
        let whole = n - n % 8;
        for chunk in values[8..whole].chunks_exact(8) {
            for (p, &v) in partial.iter_mut().zip(chunk) {
                *p += term(v);
            }
        }
        let [a, b, c, d, e, f, g, h] = partial;
        let mut total = ((a + b) + (c + d)) + ((e + f) + (g + h));
        for &v in &values[whole..] {
            total += term(v);
        }
        return total;
    }
    let mut half = n / 2;
    half -= half % 8;
    pairwise_sum(&values[..half], term) + pairwise_sum(&values[half..], term)
}

/// numpy's NaN-skipping reduction of `values` (reordered in place), adding
/// up as `summation` says. As in `numpy.nansum` and `nanvar`, a NaN counts
/// as `0.0` in its place in the sums and is left out of the counts.
pub(crate) fn reduce(kind: AggKind, values: &mut Vec<f64>, summation: Summation) -> f64 {
    let n = values.iter().filter(|v| !v.is_nan()).count() as f64;
    if n == 0.0 {
        return if kind == AggKind::Count {
            0.0
        } else {
            f64::NAN
        };
    }
    let zero_nan = |v: f64| if v.is_nan() { 0.0 } else { v };
    let mean = || summation.sum(values, zero_nan) / n;
    match kind {
        AggKind::Count => n,
        AggKind::Sum => summation.sum(values, zero_nan),
        AggKind::Mean => mean(),
        AggKind::Var | AggKind::Std => {
            let m = mean();
            let square = |v: f64| if v.is_nan() { 0.0 } else { (v - m) * (v - m) };
            let var = summation.sum(values, square) / n;
            if kind == AggKind::Std {
                var.sqrt()
            } else {
                var
            }
        }
        AggKind::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
        AggKind::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        AggKind::Median => {
            values.retain(|v| !v.is_nan());
            median(values)
        }
        AggKind::Percentile(q) => {
            values.retain(|v| !v.is_nan());
            percentile(values, f64::from(q))
        }
    }
}

/// `numpy.median`: the middle value, or the mean of the middle two.
fn median(values: &mut [f64]) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// `numpy.percentile` with its default linear method, interpolating from
/// the nearer end as numpy's `_lerp` does.
fn percentile(values: &mut [f64], q: f64) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    let rank = (values.len() - 1) as f64 * (q / 100.0);
    let low = rank.floor();
    let (a, b) = (values[low as usize], values[rank.ceil() as usize]);
    let t = rank - low;
    if t >= 0.5 {
        b - (b - a) * (1.0 - t)
    } else {
        a + (b - a) * t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const S: i64 = 1_000_000_000;

    fn options(fill: Fill) -> Options {
        Options {
            start: None,
            stop: None,
            fill,
            needed_overlap: 100.0,
        }
    }

    fn run(
        ops: Value,
        series: &[(&[i64], &[f64])],
        fill: Fill,
    ) -> Result<Evaluated, AggregatesError> {
        let ops = Operations::from_json(&ops).unwrap();
        let inputs: Vec<Input<'_>> = series
            .iter()
            .map(|(t, v)| Input {
                timestamps: t,
                values: v,
            })
            .collect();
        evaluate(&ops, &[(S, inputs)], &options(fill), || json!([]))
    }

    #[test]
    fn mean_across_metrics_with_dropna() {
        let out = run(
            json!([
                "aggregate",
                "mean",
                ["metric", ["a", "mean"], ["b", "mean"]]
            ]),
            &[
                (&[S, 2 * S, 3 * S], &[1.0, 2.0, 3.0]),
                (&[2 * S, 3 * S], &[4.0, 5.0]),
            ],
            Fill::Dropna,
        )
        .unwrap();
        assert!(out.aggregated);
        assert_eq!(out.blocks[0].timestamps, vec![S, 2 * S, 3 * S]);
        assert_eq!(out.blocks[0].columns[0].values, vec![1.0, 3.0, 4.0]);
    }

    #[test]
    fn fill_value_and_ffill() {
        let series: &[(&[i64], &[f64])] =
            &[(&[S, 2 * S, 3 * S], &[1.0, 2.0, 3.0]), (&[2 * S], &[4.0])];
        let ops = json!(["metric", ["a", "mean"], ["b", "mean"]]);
        let out = run(ops.clone(), series, Fill::Value(0.0)).unwrap();
        assert!(!out.aggregated);
        assert_eq!(out.blocks[0].columns[1].values, vec![0.0, 4.0, 0.0]);
        let out = run(ops.clone(), series, Fill::Ffill).unwrap();
        assert!(out.blocks[0].columns[1].values[0].is_nan());
        assert_eq!(out.blocks[0].columns[1].values[1..], [4.0, 4.0]);
        let out = run(ops, series, Fill::FullBfill).unwrap();
        assert_eq!(out.blocks[0].columns[1].values, vec![4.0, 4.0, 4.0]);
    }

    #[test]
    fn overlap_is_checked_without_fill() {
        let series: &[(&[i64], &[f64])] = &[(&[S, 2 * S], &[1.0, 2.0]), (&[3 * S], &[4.0])];
        let err = run(
            json!(["metric", ["a", "mean"], ["b", "mean"]]),
            series,
            Fill::None,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "No overlap");
        let series: &[(&[i64], &[f64])] = &[
            (&[S, 2 * S, 3 * S], &[1.0, 2.0, 3.0]),
            (&[S, 3 * S], &[4.0, 5.0]),
        ];
        let err = run(
            json!(["metric", ["a", "mean"], ["b", "mean"]]),
            series,
            Fill::None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Less than 100.000000% of datapoints overlap in this timespan (66.67%)"
        );
    }

    #[test]
    fn math_rolling_and_rate() {
        let series: &[(&[i64], &[f64])] = &[
            (&[S, 2 * S, 3 * S], &[1.0, 4.0, 9.0]),
            (&[S, 2 * S, 3 * S], &[1.0, 1.0, 1.0]),
        ];
        let out = run(
            json!(["-", ["metric", "a", "mean"], ["metric", "b", "mean"]]),
            series,
            Fill::Dropna,
        )
        .unwrap();
        assert!(out.aggregated);
        assert_eq!(out.blocks[0].columns[0].values, vec![0.0, 3.0, 8.0]);
        let out = run(
            json!("(rolling sum 2 (metric a mean))"),
            series,
            Fill::Dropna,
        )
        .unwrap();
        assert_eq!(out.blocks[0].timestamps, vec![2 * S, 3 * S]);
        assert_eq!(out.blocks[0].columns[0].values, vec![5.0, 13.0]);
        let out = run(
            json!("(rateofchange (metric a mean))"),
            series,
            Fill::Dropna,
        )
        .unwrap();
        assert_eq!(out.blocks[0].columns[0].values, vec![3.0, 5.0]);
        let out = run(
            json!("(aggregate rate:mean (metric (a mean) (b mean)))"),
            series,
            Fill::Dropna,
        )
        .unwrap();
        assert_eq!(out.blocks[0].columns[0].values, vec![1.5, 2.5]);
        let out = run(json!("(clip_min (metric a mean) 5)"), series, Fill::Dropna).unwrap();
        assert_eq!(out.blocks[0].columns[0].values, vec![5.0, 5.0, 9.0]);
        let out = run(json!("(> (metric a mean) 3)"), series, Fill::Dropna).unwrap();
        assert_eq!(out.blocks[0].columns[0].values, vec![0.0, 1.0, 1.0]);
    }

    #[test]
    fn rates_are_taken_of_the_aggregate_as_gnocchi_takes_them() {
        let series: &[(&[i64], &[f64])] = &[
            (&[S, 2 * S, 3 * S], &[1.0, 4.0, 9.0]),
            (&[S, 2 * S, 3 * S], &[3.0, 2.0, 10.0]),
        ];
        // Row maxima 3, 4, 10: their differences, not the larger difference.
        let out = run(
            json!("(aggregate rate:max (metric (a mean) (b mean)))"),
            series,
            Fill::Dropna,
        )
        .unwrap();
        assert_eq!(out.blocks[0].timestamps, vec![2 * S, 3 * S]);
        assert_eq!(out.blocks[0].columns[0].values, vec![1.0, 6.0]);
        // Rolling means 2.5 and 6.5, one row later than the plain rolling mean.
        let out = run(
            json!("(rolling rate:mean 2 (metric a mean))"),
            &series[..1],
            Fill::Dropna,
        )
        .unwrap();
        assert_eq!(out.blocks[0].timestamps, vec![3 * S]);
        assert_eq!(out.blocks[0].columns[0].values, vec![4.0]);
    }

    #[test]
    fn granularity_planning() {
        let a = [60 * S, S];
        let b = [5 * S];
        let refs = [
            RefGranularities {
                name: "a",
                aggregation: "mean",
                granularities: &a,
            },
            RefGranularities {
                name: "b",
                aggregation: "mean",
                granularities: &a,
            },
        ];
        assert_eq!(plan_granularities(&refs, None).unwrap(), vec![60 * S, S]);
        let mixed = [
            RefGranularities {
                name: "a",
                aggregation: "mean",
                granularities: &a,
            },
            RefGranularities {
                name: "b",
                aggregation: "mean",
                granularities: &b,
            },
        ];
        assert_eq!(
            plan_granularities(&mixed, None).unwrap_err().to_string(),
            "No granularity match"
        );
        let err = plan_granularities(&refs[..1], Some(123 * S)).unwrap_err();
        match err {
            AggregatesError::Unaggregable { detail, .. } => {
                assert_eq!(detail, json!([["a", "mean", 123.0]]))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn columnwise_reductions_match_row_reductions() {
        let nan = f64::NAN;
        let column = |values: Vec<f64>| Column {
            reference: None,
            values,
        };
        let columns = vec![
            column(vec![1.0, nan, 3.0, -0.0]),
            column(vec![nan, nan, -1.0, -0.0]),
            column(vec![2.5]),
        ];
        for kind in [
            AggKind::Mean,
            AggKind::Sum,
            AggKind::Count,
            AggKind::Min,
            AggKind::Max,
        ] {
            let fast = reduce_columns(kind, &columns, 4).unwrap();
            let slow: Vec<f64> = (0..4)
                .map(|r| {
                    let mut row = columns
                        .iter()
                        .map(|c| c.values.get(r).copied().unwrap_or(nan))
                        .collect();
                    reduce(kind, &mut row, Summation::Pairwise)
                })
                .collect();
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{kind:?}");
        }
        assert!(reduce_columns(AggKind::Median, &columns, 4).is_none());
    }

    #[test]
    fn a_metric_named_twice_is_read_twice() {
        let series: &[(&[i64], &[f64])] = &[(&[S, 2 * S], &[1.0, 4.0])];
        let out = run(
            json!("(+ (metric a mean) (* (metric a mean) 2))"),
            series,
            Fill::Dropna,
        )
        .unwrap();
        assert_eq!(out.blocks[0].columns[0].values, vec![3.0, 12.0]);
    }

    /// numpy 2.4's answers for one row of 20 metrics, with and without a
    /// missing value: pairwise sums, not in-order ones (-511.17800000000005).
    #[test]
    fn row_reductions_give_numpys_last_digit() {
        let row = vec![
            -35.233, -69.83, 30.187, -85.513, 7.176, -26.862, -88.4, 1.487, -92.501, -13.271,
            -86.029, -81.857, -15.096, 65.37, -75.24, -55.352, 25.487, 89.542, 15.421, -20.664,
        ];
        let pairwise = |kind, row: &Vec<f64>| reduce(kind, &mut row.clone(), Summation::Pairwise);
        assert_eq!(pairwise(AggKind::Sum, &row), -511.17799999999994);
        assert_eq!(pairwise(AggKind::Mean, &row), -25.558899999999998);
        assert_eq!(pairwise(AggKind::Std, &row), 52.563443358383594);
        let mut gap = row.clone();
        gap[3] = f64::NAN;
        assert_eq!(pairwise(AggKind::Sum, &gap), -425.665);
        assert_eq!(pairwise(AggKind::Mean, &gap), -22.40342105263158);
        assert_eq!(pairwise(AggKind::Std, &gap), 52.04989182790296);
        assert_eq!(
            reduce(AggKind::Sum, &mut row.clone(), Summation::InOrder),
            -511.17800000000005
        );
    }

    #[test]
    fn percentiles_match_numpy() {
        assert_eq!(
            reduce(
                AggKind::Median,
                &mut vec![3.0, 1.0, 2.0, 4.0],
                Summation::Pairwise
            ),
            2.5
        );
        assert_eq!(
            reduce(
                AggKind::Percentile(90),
                &mut vec![1.0, 2.0, 3.0, 4.0, 5.0],
                Summation::Pairwise
            ),
            4.6
        );
        assert_eq!(
            reduce(
                AggKind::Count,
                &mut vec![f64::NAN, 1.0],
                Summation::Pairwise
            ),
            1.0
        );
    }
}
