//! MessagePack for [`Value`], byte for byte what notepack.io writes, and everything it reads.
//!
//! notepack.io is the codec of both JavaScript users of MessagePack in Socket.IO: `socket.io-msgpack-parser`
//! 3.x (notepack 2.2) and `@socket.io/redis-adapter` (notepack 3.x). Both write a [`Value`] the same way,
//! and the decoder reads what either writes.
//!
//! Encoding, as notepack does it: a number whose value is an integer (`2.0` included) takes the smallest
//! integer form, any other number is a float 64; strings, blobs (`bin`, what notepack writes for a Node
//! `Buffer` and reads as a `Buffer` in Node, an `ArrayBuffer` in browsers), arrays and maps take the
//! smallest length form.
//!
//! Decoding accepts any MessagePack, plus notepack's extensions, turned into what `JSON.stringify` would
//! give of the JavaScript value: a date (ext −1 timestamps of notepack 3.x, `d7 00` + milliseconds of
//! notepack 2.x) becomes its ISO 8601 text; ext 0 (an `ArrayBuffer` or typed array, as notepack writes
//! them) becomes a blob; `d4 00 00` (`undefined`) becomes null, except as the value of a map entry, which
//! is then left out (`{"a": undefined}` is `{}`). Other extension types are refused. Nesting is limited to
//! [`MAX_DEPTH`] levels and a length never makes the decoder allocate more than the input could hold.

use bytes::Bytes;
use serde_json::Number;

use super::{Map, Value};

/// Deepest nesting of arrays and maps the decoder accepts.
pub const MAX_DEPTH: usize = 128;

/// Why bytes are not a MessagePack value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends in the middle of a value.
    #[error("unexpected end of input")]
    Eof,
    /// `0xc1`, the one byte MessagePack never uses.
    #[error("invalid marker byte 0x{0:02x}")]
    InvalidMarker(u8),
    /// A string is not UTF-8.
    #[error("string is not UTF-8")]
    Utf8,
    /// Arrays and maps nest deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Bytes are left after the value.
    #[error("{0} trailing byte(s)")]
    Trailing(usize),
    /// An extension type that has no meaning here.
    #[error("unsupported extension type {0}")]
    UnsupportedExt(i8),
    /// A map key that is an array or a map: no message of either protocol has one, and turning each level
    /// of nested keys into text escapes the text of the level below, which grows exponentially with depth.
    #[error("map key is an array or a map")]
    KeyNotScalar,
}

/// Encodes `value` as notepack.io 3.x does.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(value, &mut out);
    out
}

/// Appends the encoding of `value` to `out`.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Number(n) => encode_number(n, out),
        Value::String(s) => write_str(s, out),
        Value::Binary(b) => {
            let len = b.len();
            if len < 0x100 {
                out.extend_from_slice(&[0xc4, len as u8]);
            } else if len < 0x10000 {
                out.push(0xc5);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                out.push(0xc6);
                out.extend_from_slice(&(len as u32).to_be_bytes());
            }
            out.extend_from_slice(b);
        }
        Value::Array(items) => {
            write_array_len(items.len(), out);
            for v in items {
                encode_into(v, out);
            }
        }
        Value::Object(map) => {
            write_map_len(map.len(), out);
            for (k, v) in map {
                write_str(k, out);
                encode_into(v, out);
            }
        }
    }
}

/// Appends the header of an array of `len` elements (the elements follow).
pub fn write_array_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x10 {
        out.push(0x90 | len as u8);
    } else if len < 0x10000 {
        out.push(0xdc);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// Appends the header of a map of `len` entries (keys and values follow, alternating).
pub fn write_map_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x10 {
        out.push(0x80 | len as u8);
    } else if len < 0x10000 {
        out.push(0xde);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdf);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// Appends a string.
pub fn write_str(s: &str, out: &mut Vec<u8>) {
    let len = s.len();
    if len < 0x20 {
        out.push(0xa0 | len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len < 0x10000 {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

fn encode_number(n: &Number, out: &mut Vec<u8>) {
    if let Some(u) = n.as_u64() {
        write_uint(u, out);
    } else if let Some(i) = n.as_i64() {
        encode_int(i, out);
    } else {
        let f = n.as_f64().unwrap_or(0.0);
        // notepack: a number equal to its floor is an integer (JS has one number type).
        if f.is_finite() && f.floor() == f && f.abs() < 18_446_744_073_709_551_616.0 {
            if f >= 0.0 {
                write_uint(f as u64, out);
                return;
            } else if f >= -9_223_372_036_854_775_808.0 {
                encode_int(f as i64, out);
                return;
            }
        }
        out.push(0xcb);
        out.extend_from_slice(&f.to_be_bytes());
    }
}

/// Appends a non-negative integer in its smallest form.
pub fn write_uint(u: u64, out: &mut Vec<u8>) {
    if u < 0x80 {
        out.push(u as u8);
    } else if u < 0x100 {
        out.extend_from_slice(&[0xcc, u as u8]);
    } else if u < 0x10000 {
        out.push(0xcd);
        out.extend_from_slice(&(u as u16).to_be_bytes());
    } else if u < 0x1_0000_0000 {
        out.push(0xce);
        out.extend_from_slice(&(u as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&u.to_be_bytes());
    }
}

fn encode_int(i: i64, out: &mut Vec<u8>) {
    if i >= 0 {
        write_uint(i as u64, out);
    } else if i >= -0x20 {
        out.push(i as i8 as u8);
    } else if i >= -0x80 {
        out.extend_from_slice(&[0xd0, i as i8 as u8]);
    } else if i >= -0x8000 {
        out.push(0xd1);
        out.extend_from_slice(&(i as i16).to_be_bytes());
    } else if i >= -0x8000_0000 {
        out.push(0xd2);
        out.extend_from_slice(&(i as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

/// Decodes one MessagePack value that spans all of `input` (blobs are copied out of it).
pub fn decode(input: &[u8]) -> Result<Value, DecodeError> {
    decode_with(input, None)
}

/// Decodes one MessagePack value that spans all of `input`; blobs share its memory instead of being
/// copied.
pub fn decode_bytes(input: &Bytes) -> Result<Value, DecodeError> {
    decode_with(input, Some(input))
}

fn decode_with(input: &[u8], shared: Option<&Bytes>) -> Result<Value, DecodeError> {
    let mut d = Decoder {
        buf: input,
        shared,
        pos: 0,
    };
    let v = d.value(0)?.unwrap_or(Value::Null);
    if d.pos != input.len() {
        return Err(DecodeError::Trailing(input.len() - d.pos));
    }
    Ok(v)
}

struct Decoder<'a> {
    buf: &'a [u8],
    /// The same bytes as `buf`, when the caller holds them as `Bytes`: blobs are then slices of it.
    shared: Option<&'a Bytes>,
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Eof)?;
        let s = self.buf.get(self.pos..end).ok_or(DecodeError::Eof)?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn len(&mut self, bytes: usize) -> Result<usize, DecodeError> {
        Ok(match bytes {
            1 => self.u8()? as usize,
            2 => u16::from_be_bytes(self.be()?) as usize,
            _ => u32::from_be_bytes(self.be()?) as usize,
        })
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn str(&mut self, len: usize) -> Result<Value, DecodeError> {
        let s = self.take(len)?;
        std::str::from_utf8(s)
            .map(|s| Value::String(s.to_owned()))
            .map_err(|_| DecodeError::Utf8)
    }

    fn blob(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        let start = self.pos;
        let data = self.take(len)?;
        Ok(match self.shared {
            Some(b) => b.slice(start..start + len),
            None => Bytes::copy_from_slice(data),
        })
    }

    fn bin(&mut self, len: usize) -> Result<Value, DecodeError> {
        self.blob(len).map(Value::Binary)
    }

    fn array(&mut self, len: usize, depth: usize) -> Result<Value, DecodeError> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        // Each element takes at least one byte: a length beyond the input is a lie, not an allocation.
        if len > self.remaining() {
            return Err(DecodeError::Eof);
        }
        let mut items = Vec::with_capacity(len);
        for _ in 0..len {
            items.push(self.value(depth + 1)?.unwrap_or(Value::Null));
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, len: usize, depth: usize) -> Result<Value, DecodeError> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        if len.saturating_mul(2) > self.remaining() {
            return Err(DecodeError::Eof);
        }
        let mut map = Map::with_capacity(len);
        for _ in 0..len {
            let key = match self.value(depth + 1)?.unwrap_or(Value::Null) {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => "null".to_owned(),
                Value::Array(_) | Value::Object(_) => return Err(DecodeError::KeyNotScalar),
                other => serde_json::to_string(&other).unwrap_or_default(),
            };
            // An `undefined` entry is absent, as for any JavaScript reader of the map.
            if let Some(v) = self.value(depth + 1)? {
                map.insert(key, v);
            }
        }
        Ok(Value::Object(map))
    }

    /// An extension value; `None` is `undefined`.
    fn ext(&mut self, len: usize, fixed: bool) -> Result<Option<Value>, DecodeError> {
        let ty = self.u8()? as i8;
        if ty == 0 {
            return Ok(match (fixed, len) {
                (true, 1) => {
                    self.take(1)?;
                    None
                }
                (true, 8) => {
                    // notepack 2.x `Date`: milliseconds since the epoch, signed high word first.
                    let ms = i64::from_be_bytes(self.be()?);
                    Some(Value::String(iso_date(ms)))
                }
                // An `ArrayBuffer` or typed array.
                _ => Some(self.bin(len)?),
            });
        }
        let data = self.take(len)?;
        match (ty, len) {
            (-1, 4) => {
                let s = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as i64;
                Ok(Some(Value::String(iso_date(s * 1000))))
            }
            (-1, 8) => {
                let w = u64::from_be_bytes(data.try_into().map_err(|_| DecodeError::Eof)?);
                let ns = (w >> 34) as i64;
                let s = (w & 0x3_ffff_ffff) as i64;
                Ok(Some(Value::String(iso_date(s * 1000 + ns / 1_000_000))))
            }
            (-1, 12) => {
                let ns = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as i64;
                let s = i64::from_be_bytes(data[4..12].try_into().map_err(|_| DecodeError::Eof)?);
                Ok(Some(Value::String(iso_date(
                    s.saturating_mul(1000).saturating_add(ns / 1_000_000),
                ))))
            }
            _ => Err(DecodeError::UnsupportedExt(ty)),
        }
    }

    /// The next value; `None` is notepack's `undefined`.
    fn value(&mut self, depth: usize) -> Result<Option<Value>, DecodeError> {
        let b = self.u8()?;
        Ok(Some(match b {
            0x00..=0x7f => Value::from(b as u64),
            0x80..=0x8f => self.map((b & 0x0f) as usize, depth)?,
            0x90..=0x9f => self.array((b & 0x0f) as usize, depth)?,
            0xa0..=0xbf => self.str((b & 0x1f) as usize)?,
            0xc0 => Value::Null,
            0xc1 => return Err(DecodeError::InvalidMarker(b)),
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4..=0xc6 => {
                let len = self.len(1 << (b - 0xc4))?;
                self.bin(len)?
            }
            0xc7..=0xc9 => {
                let len = self.len(1 << (b - 0xc7))?;
                return self.ext(len, false);
            }
            0xca => float(f32::from_be_bytes(self.be()?) as f64),
            0xcb => float(f64::from_be_bytes(self.be()?)),
            0xcc => Value::from(self.u8()? as u64),
            0xcd => Value::from(u16::from_be_bytes(self.be()?) as u64),
            0xce => Value::from(u32::from_be_bytes(self.be()?) as u64),
            0xcf => Value::from(u64::from_be_bytes(self.be()?)),
            0xd0 => Value::from(self.u8()? as i8 as i64),
            0xd1 => Value::from(i16::from_be_bytes(self.be()?) as i64),
            0xd2 => Value::from(i32::from_be_bytes(self.be()?) as i64),
            0xd3 => Value::from(i64::from_be_bytes(self.be()?)),
            0xd4..=0xd8 => return self.ext(1 << (b - 0xd4), true),
            0xd9..=0xdb => {
                let len = self.len(1 << (b - 0xd9))?;
                self.str(len)?
            }
            0xdc | 0xdd => {
                let len = self.len(if b == 0xdc { 2 } else { 4 })?;
                self.array(len, depth)?
            }
            0xde | 0xdf => {
                let len = self.len(if b == 0xde { 2 } else { 4 })?;
                self.map(len, depth)?
            }
            0xe0..=0xff => Value::from(b as i8 as i64),
        }))
    }
}

/// A float as JSON can hold it: NaN and infinities become null (what `JSON.stringify` does).
fn float(f: f64) -> Value {
    Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// `Date.prototype.toISOString` of a time in milliseconds since the epoch.
fn iso_date(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn obj(pairs: Vec<(&str, Value)>) -> Value {
        Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    #[test]
    fn worked_example_of_redis_wire() {
        let packet = obj(vec![
            ("type", Value::from(2u64)),
            (
                "data",
                Value::Array(vec![Value::from("hello"), Value::Binary(vec![1, 2].into())]),
            ),
            ("nsp", Value::from("/")),
        ]);
        let opts = obj(vec![
            ("rooms", Value::Array(vec![Value::from("room1")])),
            ("except", Value::Array(vec![])),
            ("flags", obj(vec![])),
        ]);
        let msg = Value::Array(vec![Value::from("AbC123"), packet, opts]);
        let bytes = encode(&msg);
        assert_eq!(
            bytes,
            hex(
                "93 a6416243313233 83 a474797065 02 a464617461 92 a568656c6c6f c4020102 a36e7370 a12f 83 a5726f6f6d73 91 a5726f6f6d31 a6657863657074 90 a5666c616773 80"
            )
        );
        assert_eq!(decode(&bytes).unwrap(), msg);
    }

    #[test]
    fn numbers_like_notepack() {
        let cases: Vec<(Value, &str)> = vec![
            (Value::from(0u64), "00"),
            (Value::from(127u64), "7f"),
            (Value::from(128u64), "cc80"),
            (Value::from(256u64), "cd0100"),
            (Value::from(65536u64), "ce00010000"),
            (Value::from(4294967296u64), "cf0000000100000000"),
            (Value::from(-1i64), "ff"),
            (Value::from(-32i64), "e0"),
            (Value::from(-33i64), "d0df"),
            (Value::from(-129i64), "d1ff7f"),
            (Value::from(-32769i64), "d2ffff7fff"),
            (Value::from(-2147483649i64), "d3ffffffff7fffffff"),
            (Value::from(2.0f64), "02"),
            (Value::from(-3.0f64), "fd"),
            (Value::from(1.5f64), "cb3ff8000000000000"),
            (Value::Null, "c0"),
            (Value::Bool(true), "c3"),
            (Value::Bool(false), "c2"),
        ];
        for (v, h) in cases {
            assert_eq!(encode(&v), hex(h), "{v:?}");
        }
    }

    #[test]
    fn lengths() {
        let s = "x".repeat(32);
        assert_eq!(&encode(&Value::from(s.as_str()))[..2], &[0xd9, 32]);
        let s = "x".repeat(256);
        assert_eq!(&encode(&Value::from(s.as_str()))[..3], &[0xda, 1, 0]);
        let a = Value::Array(vec![Value::Null; 16]);
        assert_eq!(&encode(&a)[..3], &[0xdc, 0, 16]);
        let b = Value::Binary(vec![0u8; 256].into());
        assert_eq!(&encode(&b)[..3], &[0xc5, 1, 0]);
        let m: Value = (0..16)
            .map(|i| (i.to_string(), Value::Null))
            .collect::<Value>();
        assert_eq!(&encode(&m)[..3], &[0xde, 0, 16]);
    }

    #[test]
    fn decodes_other_forms() {
        assert_eq!(decode(&hex("ca3fc00000")).unwrap(), Value::from(1.5f64));
        assert_eq!(decode(&hex("d40000")).unwrap(), Value::Null);
        assert_eq!(
            decode(&hex("c7020001 02")).unwrap(),
            Value::Binary(vec![1, 2].into())
        );
        assert_eq!(
            decode(&hex("d6ff00000000")).unwrap(),
            Value::from("1970-01-01T00:00:00.000Z")
        );
        // 2024-02-29T12:34:56.789Z as timestamp 64
        let s: u64 = 1_709_210_096;
        let ns: u64 = 789_000_000;
        let mut b = vec![0xd7, 0xff];
        b.extend_from_slice(&((ns << 34) | s).to_be_bytes());
        assert_eq!(decode(&b).unwrap(), Value::from("2024-02-29T12:34:56.789Z"));
        assert_eq!(
            decode(&hex("81 01 c3")).unwrap(),
            obj(vec![("1", Value::Bool(true))])
        );
    }

    #[test]
    fn notepack_2_extensions() {
        // new Date(1709210096789) as notepack 2.2 writes it.
        assert_eq!(
            decode(&hex("d700 0000018d f4dc5495")).unwrap(),
            Value::from("2024-02-29T12:34:56.789Z")
        );
        assert_eq!(
            decode(&hex("d700 ffffffff ffffffff")).unwrap(),
            Value::from("1969-12-31T23:59:59.999Z")
        );
        // {a: undefined, b: [undefined]}: the entry is absent, the element null.
        assert_eq!(
            decode(&hex("82 a161 d40000 a162 91 d40000")).unwrap(),
            obj(vec![("b", Value::Array(vec![Value::Null]))])
        );
        // new Uint8Array([1, 2, 3]) (ext 8, type 0).
        assert_eq!(
            decode(&hex("c7030001 0203")).unwrap(),
            Value::Binary(vec![1, 2, 3].into())
        );
        assert_eq!(
            decode(&hex("d5 05 0102")),
            Err(DecodeError::UnsupportedExt(5))
        );
    }

    #[test]
    fn decode_bytes_shares_blobs() {
        let input = Bytes::from(hex("92 c403 010203 c0"));
        let v = decode_bytes(&input).unwrap();
        let blob = v.get_index(0).and_then(Value::as_binary).unwrap();
        assert_eq!(&blob[..], &[1, 2, 3]);
        assert_eq!(blob.as_ptr(), input[3..].as_ptr());
        assert_eq!(decode(&input).unwrap(), v);
    }

    #[test]
    fn malformed_never_panics() {
        for bad in [
            &b""[..],
            &[0xc1],
            &[0x92, 0x01],
            &[0xdd, 0xff, 0xff, 0xff, 0xff],
            &[0xdf, 0xff, 0xff, 0xff, 0xff],
            &[0xdb, 0xff, 0xff, 0xff, 0xff, 0x00],
            &[0xa2, 0xff, 0xfe],
            &[0x01, 0x02],
            &[0xd5, 0x05, 0, 0],
            &[0xc7, 0x00],
            &[0xc9, 0xff, 0xff, 0xff, 0xff, 0x01],
            &[0xd4, 0x00],
            &[0xd7, 0x00, 0, 0, 0],
            &[0xc7, 0x05, 0x00, 1],
            &[0x81, 0xa1, b'a'],
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        let deep = vec![0x91u8; 100_000];
        assert_eq!(decode(&deep), Err(DecodeError::TooDeep));
        let mut ok = vec![0x91u8; 100];
        ok.push(0xc0);
        assert!(decode(&ok).is_ok());
        // Arbitrary bytes: errors or values, never a panic.
        let mut x: u32 = 12345;
        for _ in 0..20_000 {
            let len = (x % 40) as usize;
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                buf.push(x as u8);
            }
            let _ = decode(&buf);
        }
    }

    /// Found by the `redis_wire` fuzz target: maps used as the keys of maps, nested. Each level turned its
    /// key into JSON text, escaping the text of the level below, so 300 bytes took seconds and memory
    /// exponential in the depth. Such keys are rejected at once now.
    #[test]
    fn nested_map_keys_are_rejected_in_linear_time() {
        let fuzzed = hex(concat!(
            "84a3756965657373c3786393a475696431837074cd0acdcdcdcdcdcd838383838383838383838383838324834e090909",
            "090909090909cdcd838383838383838383838383838324837479706583838383823131370000000083838383cdcdcc2d",
            "cdcdcdcdcdcdcdcdcdcdcd90202020755fe5e5e5e5e5e5e54e090909090909090909090909650070e5e5e5e5e5e5e5e5",
            "e5e5e5e5e5e5e5cdcdcdcd90202020755fe5e5e5e5e5e5e54e090909090909090909090909650070e5e5e5e5e5e5e5e5",
            "e5e5e5e5e5e5e5cdcdcdcdcdcdcdcd70e5e5e5e5e5e5e5e5e5e5e5e5e5e5e55de565c3",
        ));
        let start = std::time::Instant::now();
        assert!(decode(&fuzzed).is_err());
        // 100 maps, each the only key of the next: `{{{…}: nil}: nil}`.
        let mut deep = vec![0x81u8; 100];
        deep.push(0x80);
        deep.extend(std::iter::repeat_n(0xc0, 100));
        assert_eq!(decode(&deep), Err(DecodeError::KeyNotScalar));
        assert_eq!(decode(&[0x81, 0x90, 0xc0]), Err(DecodeError::KeyNotScalar));
        assert!(
            start.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        // Scalar keys still decode as the official decoder names them.
        let m = decode(&[0x82, 0x01, 0xc3, 0xc2, 0xc0]).unwrap();
        assert_eq!(m.get("1"), Some(&Value::Bool(true)));
        assert_eq!(m.get("false"), Some(&Value::Null));
    }
}
