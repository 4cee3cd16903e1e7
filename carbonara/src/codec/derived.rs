//! Columns computed from two others of the same split: `value = a / b`.
//!
//! A mean is its slot's sum divided by its count, bit for bit when the
//! aggregation computes it that way, and a mean is the costliest column to
//! compress otherwise (its decimals never end). Stating the relation costs a
//! few bytes instead of several per point. The codec stays ignorant of
//! method names: the encoder finds any column that is the quotient of two
//! others and keeps the relation if it holds for almost every slot.
//!
//! Only IEEE division of finite results is relied on, which every platform
//! rounds alike; slots whose quotient is NaN (whose payload bits are
//! platform-specific) are always stored as exceptions. A derived column
//! never references a derived column, so decoding is two passes.

use super::bytes::{put_varint, Reader};
use super::column::{is_constant, put_exceptions, read_exceptions};
use super::{Column, DecodeError};

/// Column tag of a quotient; the other tags are in `column`.
pub(super) const TAG_QUOTIENT: u8 = 5;

/// Divisions the search may spend per split: the pairs grow with the cube of
/// the column count, and a policy with every percentile has 100 columns.
/// Enough for a dozen columns exhaustively (and for the mean of any policy
/// whose sum and count come early in the column order).
const WORK_LIMIT: usize = 1 << 17;

/// Most slots that may miss the relation (as exceptions) for it to be used.
fn budget(n: usize) -> usize {
    n / 16
}

/// Slots where `vals` differs from `num / den`, or where that is NaN; `None`
/// once more than `limit`.
fn misses(vals: &[f64], num: &[f64], den: &[f64], limit: usize) -> Option<Vec<(usize, u64)>> {
    let mut out = Vec::new();
    for (i, ((&v, &a), &b)) in vals.iter().zip(num).zip(den).enumerate() {
        let q = a / b;
        if q.is_nan() || q.to_bits() != v.to_bits() {
            if out.len() == limit {
                return None;
            }
            out.push((i, v.to_bits()));
        }
    }
    Some(out)
}

/// A column stored as `columns[num] / columns[den]` except at `exceptions`
/// (position, raw bits).
#[derive(Debug, Clone)]
pub(super) struct Quotient {
    pub(super) num: usize,
    pub(super) den: usize,
    pub(super) exceptions: Vec<(usize, u64)>,
}

/// For each column, the quotient it is to be stored as, if any. References
/// always point at columns that are not derived themselves.
pub(super) fn find(columns: &[Column]) -> Vec<Option<Quotient>> {
    let k = columns.len();
    let mut derived: Vec<Option<Quotient>> = vec![None; k];
    let mut referenced = vec![false; k];
    let mut work = 0usize;
    for j in 0..k {
        let values = &columns[j].values;
        let n = values.len();
        // A constant column is nine bytes anyway, and cheaper to decode.
        if n == 0 || referenced[j] || is_constant(values) {
            continue;
        }
        let mut best: Option<Quotient> = None;
        for a in (0..k).filter(|&a| a != j && derived[a].is_none()) {
            for b in (0..k).filter(|&b| b != j && b != a && derived[b].is_none()) {
                // A candidate must beat the best so far (or the budget).
                let allowed = match &best {
                    None => budget(n),
                    Some(q) if q.exceptions.is_empty() => break,
                    Some(q) => q.exceptions.len() - 1,
                };
                let (v, num, den) = (&columns[j].values, &columns[a].values, &columns[b].values);
                // Cheap rejection: most pairs miss on nearly every slot.
                let head = n.min(8);
                let head_allowed = allowed.min(head / 2);
                work += head;
                if work > WORK_LIMIT {
                    return derived;
                }
                if misses(&v[..head], &num[..head], &den[..head], head_allowed).is_none() {
                    continue;
                }
                work += n;
                if let Some(exceptions) = misses(v, num, den, allowed) {
                    best = Some(Quotient {
                        num: a,
                        den: b,
                        exceptions,
                    });
                }
            }
        }
        if let Some(q) = best {
            referenced[q.num] = true;
            referenced[q.den] = true;
            derived[j] = Some(q);
        }
    }
    derived
}

/// Appends a quotient column payload.
pub(super) fn encode(out: &mut Vec<u8>, q: &Quotient) {
    out.push(TAG_QUOTIENT);
    put_varint(out, q.num as u64);
    put_varint(out, q.den as u64);
    put_exceptions(out, &q.exceptions);
}

/// Reads the references of a quotient payload (after its tag).
pub(super) fn references(r: &mut Reader<'_>, ncols: usize) -> Result<(usize, usize), DecodeError> {
    let num = r.len("quotient numerator column", ncols.saturating_sub(1))?;
    let den = r.len("quotient denominator column", ncols.saturating_sub(1))?;
    Ok((num, den))
}

/// Fills `out` with `num / den` and patches the exceptions that follow in `r`.
pub(super) fn decode(
    r: &mut Reader<'_>,
    num: &[f64],
    den: &[f64],
    out: &mut Vec<f64>,
) -> Result<(), DecodeError> {
    out.clear();
    out.extend(num.iter().zip(den).map(|(a, b)| a / b));
    read_exceptions(r, out)
}
