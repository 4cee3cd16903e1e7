//! Byte-level primitives: LEB128 varints, zigzag, and a bounds-checked reader.
//!
//! Every read goes through [`Reader`], which turns running off the end into
//! [`DecodeError::Truncated`] so no decoder indexes raw slices past their length.

use super::DecodeError;

/// Maps signed integers to unsigned so that small magnitudes get short varints.
#[inline]
pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub(super) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn put_ivarint(out: &mut Vec<u8>, v: i64) {
    put_varint(out, zigzag(v));
}

/// A cursor over untrusted input; every accessor fails instead of panicking.
#[derive(Debug, Clone)]
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(super) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(super) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    pub(super) fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(super) fn u64_le(&mut self) -> Result<u64, DecodeError> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }

    /// Reads a LEB128 varint; rejects encodings longer than 10 bytes or
    /// overflowing 64 bits, so each value has one accepted spelling only.
    pub(super) fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            if i == 9 && b > 1 {
                return Err(DecodeError::Corrupt {
                    reason: "varint overflows 64 bits",
                });
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Corrupt {
            reason: "varint longer than 10 bytes",
        })
    }

    pub(super) fn ivarint(&mut self) -> Result<i64, DecodeError> {
        self.varint().map(unzigzag)
    }

    /// Reads a varint that counts something, failing if it exceeds `limit`
    /// (the caller derives `limit` from slots or remaining input, never from
    /// the field itself).
    pub(super) fn len(&mut self, what: &'static str, limit: usize) -> Result<usize, DecodeError> {
        let v = self.varint()?;
        if v > limit as u64 {
            return Err(DecodeError::LimitExceeded {
                what,
                value: v,
                limit: limit as u64,
            });
        }
        Ok(v as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trips_edges() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            u32::MAX as u64,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut r = Reader::new(&b);
            assert_eq!(r.varint().unwrap(), v);
            assert!(r.is_empty());
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn varint_rejects_overlong_and_truncated() {
        let mut r = Reader::new(&[0xff; 11]);
        assert!(matches!(r.varint(), Err(DecodeError::Corrupt { .. })));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]);
        assert!(matches!(r.varint(), Err(DecodeError::Corrupt { .. })));
        let mut r = Reader::new(&[0x80]);
        assert_eq!(r.varint(), Err(DecodeError::Truncated));
    }
}
