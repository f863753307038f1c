//! The little of MessagePack that serf's RPC protocol needs: encoding flat maps of strings and
//! unsigned integers (request headers and bodies), and decoding any value (responses), with a
//! "not complete yet" answer so a TCP stream can be read value by value.
//!
//! Pure: bytes in, values out.

use anyhow::{bail, Context as _};

/// A decoded MessagePack value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    /// Every integer, signed or not (serf's fields fit in an i128 either way).
    Int(i128),
    Float(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Ext(i8, Vec<u8>),
}

impl Value {
    /// The value under string key `key` of a map.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i128> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

/// A scalar in a map the harness sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar<'a> {
    Str(&'a str),
    Uint(u64),
}

/// Encodes a map of string keys to scalars (what serf's request header and bodies are).
pub fn encode_map(entries: &[(&str, Scalar<'_>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let n = entries.len();
    if n < 16 {
        out.push(0x80 | n as u8);
    } else {
        out.push(0xde);
        out.extend_from_slice(&u16::try_from(n).expect("small maps").to_be_bytes());
    }
    for (key, value) in entries {
        encode_str(&mut out, key);
        match value {
            Scalar::Str(s) => encode_str(&mut out, s),
            Scalar::Uint(u) => encode_uint(&mut out, *u),
        }
    }
    out
}

fn encode_str(out: &mut Vec<u8>, s: &str) {
    let len = s.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len < 256 {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else {
        out.push(0xda);
        out.extend_from_slice(&u16::try_from(len).expect("short strings").to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

fn encode_uint(out: &mut Vec<u8>, u: u64) {
    match u {
        0..=0x7f => out.push(u as u8),
        0x80..=0xff => out.extend_from_slice(&[0xcc, u as u8]),
        0x100..=0xffff => {
            out.push(0xcd);
            out.extend_from_slice(&(u as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xce);
            out.extend_from_slice(&(u as u32).to_be_bytes());
        }
        _ => {
            out.push(0xcf);
            out.extend_from_slice(&u.to_be_bytes());
        }
    }
}

/// Decodes the first value of `buf`: `Ok(None)` while `buf` holds only part of it, else the
/// value and how many bytes it took.
pub fn decode(buf: &[u8]) -> anyhow::Result<Option<(Value, usize)>> {
    let mut reader = Reader { buf, pos: 0 };
    match reader.value(0) {
        Ok(v) => Ok(Some((v, reader.pos))),
        Err(Incomplete::Short) => Ok(None),
        Err(Incomplete::Invalid(e)) => Err(e),
    }
}

/// Nesting deeper than this is not something serf sends.
const MAX_DEPTH: usize = 32;

enum Incomplete {
    /// More bytes are needed.
    Short,
    Invalid(anyhow::Error),
}

impl From<anyhow::Error> for Incomplete {
    fn from(e: anyhow::Error) -> Self {
        Incomplete::Invalid(e)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Incomplete> {
        let end = self.pos.checked_add(n).ok_or(Incomplete::Short)?;
        let bytes = self.buf.get(self.pos..end).ok_or(Incomplete::Short)?;
        self.pos = end;
        Ok(bytes)
    }

    fn be(&mut self, n: usize) -> Result<u64, Incomplete> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| acc << 8 | u64::from(b)))
    }

    fn len(&mut self, n: usize) -> Result<usize, Incomplete> {
        let len = self.be(n)?;
        // A length beyond what arrived so far either is still coming or is garbage; either way
        // nothing is allocated for it before the bytes are there.
        usize::try_from(len).map_err(|_| Incomplete::Invalid(anyhow::anyhow!("length {len}")))
    }

    fn bytes(&mut self, n: usize) -> Result<Vec<u8>, Incomplete> {
        Ok(self.take(n)?.to_vec())
    }

    fn string(&mut self, n: usize) -> Result<Value, Incomplete> {
        let bytes = self.take(n)?;
        let s = std::str::from_utf8(bytes)
            .context("a MessagePack string is not UTF-8")?
            .to_owned();
        Ok(Value::Str(s))
    }

    fn array(&mut self, n: usize, depth: usize) -> Result<Value, Incomplete> {
        // Each element takes at least one byte: a count beyond the buffer waits for more.
        if n > self.buf.len() - self.pos {
            return Err(Incomplete::Short);
        }
        (0..n)
            .map(|_| self.value(depth + 1))
            .collect::<Result<_, _>>()
            .map(Value::Array)
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<Value, Incomplete> {
        if n > (self.buf.len() - self.pos) / 2 {
            return Err(Incomplete::Short);
        }
        (0..n)
            .map(|_| Ok((self.value(depth + 1)?, self.value(depth + 1)?)))
            .collect::<Result<_, _>>()
            .map(Value::Map)
    }

    fn ext(&mut self, n: usize) -> Result<Value, Incomplete> {
        let tag = self.take(1)?[0] as i8;
        Ok(Value::Ext(tag, self.bytes(n)?))
    }

    fn value(&mut self, depth: usize) -> Result<Value, Incomplete> {
        if depth > MAX_DEPTH {
            return Err(anyhow::anyhow!("MessagePack nested deeper than {MAX_DEPTH}").into());
        }
        let tag = self.take(1)?[0];
        Ok(match tag {
            0x00..=0x7f => Value::Int(i128::from(tag)),
            0x80..=0x8f => return self.map(usize::from(tag & 0x0f), depth),
            0x90..=0x9f => return self.array(usize::from(tag & 0x0f), depth),
            0xa0..=0xbf => return self.string(usize::from(tag & 0x1f)),
            0xc0 => Value::Nil,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4..=0xc6 => {
                let n = self.len(1 << (tag - 0xc4))?;
                Value::Bin(self.bytes(n)?)
            }
            0xc7..=0xc9 => {
                let n = self.len(1 << (tag - 0xc7))?;
                return self.ext(n);
            }
            0xca => Value::Float(f64::from(f32::from_bits(self.be(4)? as u32))),
            0xcb => Value::Float(f64::from_bits(self.be(8)?)),
            0xcc..=0xcf => Value::Int(i128::from(self.be(1 << (tag - 0xcc))?)),
            0xd0 => Value::Int(i128::from(self.be(1)? as u8 as i8)),
            0xd1 => Value::Int(i128::from(self.be(2)? as u16 as i16)),
            0xd2 => Value::Int(i128::from(self.be(4)? as u32 as i32)),
            0xd3 => Value::Int(i128::from(self.be(8)? as i64)),
            0xd4..=0xd8 => return self.ext(1 << (tag - 0xd4)),
            0xd9..=0xdb => {
                let n = self.len(1 << (tag - 0xd9))?;
                return self.string(n);
            }
            0xdc | 0xdd => {
                let n = self.len(2 << (tag - 0xdc))?;
                return self.array(n, depth);
            }
            0xde | 0xdf => {
                let n = self.len(2 << (tag - 0xde))?;
                return self.map(n, depth);
            }
            0xe0..=0xff => Value::Int(i128::from(tag as i8)),
            0xc1 => return Err(anyhow::anyhow!("MessagePack tag 0xc1 is never used").into()),
        })
    }
}

/// Fails with the value's shape when `v` is not a map (for error messages).
pub fn expect_map(v: &Value, what: &str) -> anyhow::Result<()> {
    match v {
        Value::Map(_) => Ok(()),
        other => bail!("{what} is not a MessagePack map: {other:?}"),
    }
}
