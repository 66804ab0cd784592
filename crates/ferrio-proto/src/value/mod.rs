//! The dynamic value carried by Socket.IO event arguments: JSON plus binary blobs anywhere.
//!
//! On the wire a Socket.IO packet is JSON text in which every binary blob has been replaced by a
//! `{"_placeholder":true,"num":N}` object, followed by the blobs themselves as separate attachments.
//! [`Value::write_json`] produces that text (collecting the attachments), [`Value::from_json`] parses
//! it back and [`Value::resolve_placeholders`] puts the attachments back in place.
//!
//! [`to_value`]/[`from_value`] bridge to any serde type (byte buffers become [`Value::Binary`]), and
//! [`to_args`]/[`from_args`] map a Rust tuple onto the positional argument list of an event.

/// Calls `$m!` with the leaf methods of serde's `Serializer` (those given no nested value), except
/// `serialize_str` and `serialize_unit`, which each serializer here treats apart, followed by `$extra`:
/// the argument writers and key writers handle these alike, one line each.
macro_rules! with_leaf_methods {
    ($m:ident $($extra:tt)*) => {
        $m! {
            serialize_bool(v: bool);
            serialize_i8(v: i8);
            serialize_i16(v: i16);
            serialize_i32(v: i32);
            serialize_i64(v: i64);
            serialize_i128(v: i128);
            serialize_u8(v: u8);
            serialize_u16(v: u16);
            serialize_u32(v: u32);
            serialize_u64(v: u64);
            serialize_u128(v: u128);
            serialize_f32(v: f32);
            serialize_f64(v: f64);
            serialize_char(v: char);
            serialize_bytes(v: &[u8]);
            serialize_none();
            serialize_unit_struct(name: &'static str);
            serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
            $($extra)*
        }
    };
}

mod args;
mod de;
mod json;
pub mod msgpack;
mod payload;
mod quick;
mod ser;
mod text;

#[cfg(test)]
mod proptests;

use bytes::Bytes;
use indexmap::IndexMap;
use serde_json::Number;

pub use args::{from_args, from_args_ref, to_args};
pub use de::from_value;
pub(crate) use json::write_escaped;
pub(crate) use payload::from_payload;
pub(crate) use quick::{event_args as read_event_args, event_name as read_event_name};
pub use ser::to_value;
pub(crate) use text::{TextError, write_args};

/// The map type of [`Value::Object`]: keeps insertion order like a JS object.
pub type Map = IndexMap<String, Value>;

/// A JSON value that may also hold binary blobs anywhere in its tree.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// JSON `null` (also what `undefined`, `()` and `None` become).
    #[default]
    Null,
    /// JSON `true` / `false`.
    Bool(bool),
    /// A JSON number (integers are kept exact, floats are finite).
    Number(Number),
    /// A JSON string (never turned into [`Value::Binary`] by the parser).
    String(String),
    /// A binary blob, sent as a separate attachment.
    Binary(Bytes),
    /// A JSON array.
    Array(Vec<Value>),
    /// A JSON object, in insertion order.
    Object(Map),
}

/// Errors of parsing, placeholder resolution and serde conversion of [`Value`]s.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// The text is not valid JSON (syntax error, trailing characters, unexpected end).
    #[error("invalid JSON: {0}")]
    Syntax(#[source] serde_json::Error),
    /// The JSON nests deeper than the parser's limit of 128 arrays/objects.
    #[error("JSON nesting exceeds the limit of 128 levels at line {line} column {column}")]
    TooDeep {
        /// 1-based line of the offending bracket.
        line: usize,
        /// 1-based column of the offending bracket.
        column: usize,
    },
    /// An object with a `_placeholder` key is not exactly `{"_placeholder":true,"num":<index>}`
    /// with an index below the number of attachments.
    #[error("invalid binary placeholder: {0}")]
    InvalidPlaceholder(&'static str),
    /// Two placeholders name the same attachment.
    #[error("binary attachment {0} is referenced more than once")]
    DuplicateAttachment(u64),
    /// The number of placeholders differs from the number of attachments.
    #[error("{placeholders} binary placeholder(s) for {attachments} attachment(s)")]
    AttachmentCount {
        /// Placeholders found in the JSON.
        placeholders: usize,
        /// Attachments received.
        attachments: usize,
    },
    /// A map key serialized to something that cannot be a JSON object key.
    #[error("map key must be a string, number, bool or char")]
    KeyMustBeAString,
    /// An event argument required by the target tuple is missing.
    #[error("missing event argument {index}: only {received} argument(s) received")]
    MissingArgument {
        /// 0-based position of the missing argument.
        index: usize,
        /// Number of arguments the event carried.
        received: usize,
    },
    /// A message from a `Serialize`/`Deserialize` implementation (type mismatch, missing field...).
    #[error("{0}")]
    Custom(String),
}

impl ValueError {
    fn from_json(e: serde_json::Error) -> Self {
        // serde_json has no public accessor for its error code; its message for this one is fixed.
        if e.is_syntax() && e.to_string().starts_with("recursion limit exceeded") {
            ValueError::TooDeep {
                line: e.line(),
                column: e.column(),
            }
        } else {
            ValueError::Syntax(e)
        }
    }
}

impl serde::ser::Error for ValueError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        ValueError::Custom(msg.to_string())
    }
}

impl serde::de::Error for ValueError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        ValueError::Custom(msg.to_string())
    }
}

impl Value {
    /// The string, if this is a [`Value::String`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The blob's bytes, if this is a [`Value::Binary`].
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Binary(b) => Some(b),
            _ => None,
        }
    }

    /// The blob as a cheaply clonable [`Bytes`], if this is a [`Value::Binary`].
    pub fn as_binary(&self) -> Option<&Bytes> {
        match self {
            Value::Binary(b) => Some(b),
            _ => None,
        }
    }

    /// The elements, if this is a [`Value::Array`].
    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The elements, mutably, if this is a [`Value::Array`].
    pub fn as_array_mut(&mut self) -> Option<&mut Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The map, if this is a [`Value::Object`].
    pub fn as_object(&self) -> Option<&Map> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// The map, mutably, if this is a [`Value::Object`].
    pub fn as_object_mut(&mut self) -> Option<&mut Map> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// The number as `u64`, if this is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    /// The number as `i64`, if this is an integer in `i64` range.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    /// The number as `f64` (integers converted), if this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    /// The boolean, if this is a [`Value::Bool`].
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Whether this is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The member `key` of an object (`None` for non-objects and absent keys).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(m) => m.get(key),
            _ => None,
        }
    }

    /// The element at index `i` of an array (`None` for non-arrays and out-of-range indices).
    pub fn get_index(&self, i: usize) -> Option<&Value> {
        match self {
            Value::Array(a) => a.get(i),
            _ => None,
        }
    }

    /// Whether a [`Value::Binary`] occurs anywhere in this value.
    pub fn has_binary(&self) -> bool {
        match self {
            Value::Binary(_) => true,
            Value::Array(a) => a.iter().any(Value::has_binary),
            Value::Object(m) => m.values().any(Value::has_binary),
            _ => false,
        }
    }

    /// A short description of the variant, for error messages.
    fn unexpected(&self) -> serde::de::Unexpected<'_> {
        use serde::de::Unexpected;
        match self {
            Value::Null => Unexpected::Unit,
            Value::Bool(b) => Unexpected::Bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Unexpected::Unsigned(u)
                } else if let Some(i) = n.as_i64() {
                    Unexpected::Signed(i)
                } else {
                    Unexpected::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => Unexpected::Str(s),
            Value::Binary(b) => Unexpected::Bytes(b),
            Value::Array(_) => Unexpected::Seq,
            Value::Object(_) => Unexpected::Map,
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

macro_rules! from_integer {
    ($($t:ty)*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::Number(Number::from(v))
            }
        }
    )*};
}
from_integer!(i8 i16 i32 i64 isize u8 u16 u32 u64 usize);

impl From<f64> for Value {
    /// A finite float becomes a number; NaN and infinities become `null`, as in `JSON.stringify`.
    fn from(v: f64) -> Self {
        Number::from_f64(v).map_or(Value::Null, Value::Number)
    }
}

impl From<f32> for Value {
    /// A finite float becomes a number; NaN and infinities become `null`, as in `JSON.stringify`.
    fn from(v: f32) -> Self {
        Value::from(f64::from(v))
    }
}

impl From<Number> for Value {
    fn from(v: Number) -> Self {
        Value::Number(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}

impl From<Bytes> for Value {
    fn from(v: Bytes) -> Self {
        Value::Binary(v)
    }
}

impl From<Vec<u8>> for Value {
    /// A byte vector is a binary blob, not an array of numbers.
    fn from(v: Vec<u8>) -> Self {
        Value::Binary(Bytes::from(v))
    }
}

impl From<&[u8]> for Value {
    /// A byte slice is copied into a binary blob.
    fn from(v: &[u8]) -> Self {
        Value::Binary(Bytes::copy_from_slice(v))
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::Array(v)
    }
}

impl From<Map> for Value {
    fn from(v: Map) -> Self {
        Value::Object(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    /// `None` becomes `null`.
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl From<()> for Value {
    fn from((): ()) -> Self {
        Value::Null
    }
}

impl FromIterator<Value> for Value {
    fn from_iter<I: IntoIterator<Item = Value>>(iter: I) -> Self {
        Value::Array(iter.into_iter().collect())
    }
}

impl<K: Into<String>> FromIterator<(K, Value)> for Value {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        Value::Object(iter.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_impls() {
        assert_eq!(Value::from(true), Value::Bool(true));
        assert_eq!(Value::from(-3i64).as_i64(), Some(-3));
        assert_eq!(Value::from(3u64).as_u64(), Some(3));
        assert_eq!(Value::from(1.5f64).as_f64(), Some(1.5));
        assert_eq!(Value::from(f64::NAN), Value::Null);
        assert_eq!(Value::from("a"), Value::String("a".into()));
        assert_eq!(Value::from(String::from("a")).as_str(), Some("a"));
        assert_eq!(
            Value::from(vec![1u8, 2]),
            Value::Binary(Bytes::from_static(&[1, 2]))
        );
        assert_eq!(
            Value::from(Bytes::from_static(b"x")).as_bytes(),
            Some(&b"x"[..])
        );
        assert_eq!(
            Value::from(&b"y"[..]).as_binary(),
            Some(&Bytes::from_static(b"y"))
        );
        assert_eq!(
            Value::from(vec![Value::Null]).as_array().map(Vec::len),
            Some(1)
        );
        assert_eq!(Value::from(None::<u8>), Value::Null);
        assert_eq!(Value::default(), Value::Null);
    }

    #[test]
    fn accessors() {
        let v: Value = [
            ("a", Value::from(1u8)),
            ("b", Value::from(vec![Value::Bool(true)])),
        ]
        .into_iter()
        .collect();
        assert_eq!(v.get("a").and_then(Value::as_u64), Some(1));
        assert_eq!(v.get("a").and_then(Value::as_i64), Some(1));
        assert_eq!(v.get("a").and_then(Value::as_f64), Some(1.0));
        assert!(v.get("zz").is_none());
        assert!(v.as_object().is_some());
        assert!(v.as_array().is_none());
        let b = v.get("b").unwrap();
        assert_eq!(b.get_index(0).and_then(Value::as_bool), Some(true));
        assert!(b.get_index(1).is_none());
        assert!(b.get("a").is_none());
        assert!(Value::Null.is_null());
        assert!(!Value::Bool(false).is_null());
        assert_eq!(Value::from("s").as_u64(), None);
    }

    #[test]
    fn has_binary_finds_nested_blobs() {
        assert!(
            !Value::from_json(r#"{"a":[1,{"b":"x"}]}"#)
                .unwrap()
                .has_binary()
        );
        let v = Value::Array(vec![
            Value::Null,
            [("k", Value::from(vec![7u8]))].into_iter().collect(),
        ]);
        assert!(v.has_binary());
        assert!(Value::Binary(Bytes::new()).has_binary());
    }

    #[test]
    fn deep_value_drops_fine() {
        let mut v = Value::Null;
        for _ in 0..120 {
            v = Value::Array(vec![v]);
        }
        let text = v.to_json().0;
        let parsed = Value::from_json(&text).unwrap();
        assert_eq!(parsed, v);
        drop(parsed);
        drop(v);
    }

    #[test]
    fn error_messages() {
        let e = Value::from_json("[").unwrap_err();
        assert!(matches!(e, ValueError::Syntax(_)), "{e:?}");
        assert!(e.to_string().starts_with("invalid JSON"), "{e}");
        assert_eq!(
            ValueError::AttachmentCount {
                placeholders: 1,
                attachments: 2
            }
            .to_string(),
            "1 binary placeholder(s) for 2 attachment(s)"
        );
    }
}
