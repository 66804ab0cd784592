//! Deserialization: `Deserialize for Value` (from any format) and `Deserializer for Value` (into any type).

use super::{Map, Value, ValueError};
use bytes::Bytes;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess,
    SeqAccess, Unexpected, VariantAccess, Visitor,
};
use serde::forward_to_deserialize_any;
use serde_json::Number;
use std::borrow::Cow;
use std::fmt;

/// Deserializes a `T` from a [`Value`] (blobs feed byte-buffer targets such as `serde_bytes::ByteBuf`).
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ValueError> {
    T::deserialize(value)
}

impl<'de> de::Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// Builds a [`Value`] from whatever the deserializer reports; byte buffers become [`Value::Binary`].
struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value or binary blob")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(if let Ok(u) = u64::try_from(v) {
            Value::Number(u.into())
        } else if let Ok(i) = i64::try_from(v) {
            Value::Number(i.into())
        } else {
            Value::from(v as f64)
        })
    }

    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(match u64::try_from(v) {
            Ok(u) => Value::Number(u.into()),
            Err(_) => Value::from(v as f64),
        })
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Binary(Bytes::copy_from_slice(v)))
    }

    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Binary(Bytes::from(v)))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        de::Deserialize::deserialize(d)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        de::Deserialize::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        // Cap the hint: it comes from the input and must not drive a huge allocation.
        let mut vec = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element()? {
            vec.push(v);
        }
        Ok(Value::Array(vec))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = Map::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value()?;
            // Like JSON.parse: a repeated key keeps its first position and takes the last value.
            m.insert(k, v);
        }
        Ok(Value::Object(m))
    }
}

impl<'de> Deserializer<'de> for Value {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => visit_number(&n, visitor),
            Value::String(s) => visitor.visit_string(s),
            Value::Binary(b) => visitor.visit_byte_buf(Vec::from(b)),
            Value::Array(a) => visit_array(a, visitor),
            Value::Object(m) => visit_object(m, visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Null => visitor.visit_none(),
            v => visitor.visit_some(v),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            // A plain `Vec<u8>` (no serde_bytes) asks for a sequence: give it the bytes one by one.
            Value::Binary(b) => {
                let mut seq = BytesSeq { bytes: b, pos: 0 };
                let out = visitor.visit_seq(&mut seq)?;
                if seq.pos == seq.bytes.len() {
                    Ok(out)
                } else {
                    Err(de::Error::invalid_length(seq.bytes.len(), &"fewer bytes"))
                }
            }
            v => v.deserialize_any(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        match self {
            Value::String(variant) => visitor.visit_enum(EnumDeserializer {
                variant,
                value: None,
            }),
            Value::Object(m) => {
                if m.len() != 1 {
                    return Err(de::Error::invalid_value(
                        Unexpected::Map,
                        &"a map with a single key",
                    ));
                }
                let (variant, value) = m.into_iter().next().expect("one entry");
                visitor.visit_enum(EnumDeserializer {
                    variant,
                    value: Some(value),
                })
            }
            other => Err(de::Error::invalid_type(
                other.unexpected(),
                &"a string or a map with a single key",
            )),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        drop(self);
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple_struct map struct identifier
    }
}

impl IntoDeserializer<'_, ValueError> for Value {
    type Deserializer = Value;

    fn into_deserializer(self) -> Value {
        self
    }
}

/// Reports a number the way serde_json does: `u64` if it fits, else `i64`, else `f64`.
fn visit_number<'de, V: Visitor<'de>>(n: &Number, visitor: V) -> Result<V::Value, ValueError> {
    if let Some(u) = n.as_u64() {
        visitor.visit_u64(u)
    } else if let Some(i) = n.as_i64() {
        visitor.visit_i64(i)
    } else {
        visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
    }
}

fn visit_array<'de, V: Visitor<'de>>(a: Vec<Value>, visitor: V) -> Result<V::Value, ValueError> {
    let len = a.len();
    let mut seq = SeqDeserializer {
        iter: a.into_iter(),
    };
    let out = visitor.visit_seq(&mut seq)?;
    if seq.iter.len() == 0 {
        Ok(out)
    } else {
        Err(de::Error::invalid_length(len, &"fewer elements in array"))
    }
}

fn visit_object<'de, V: Visitor<'de>>(m: Map, visitor: V) -> Result<V::Value, ValueError> {
    let len = m.len();
    let mut map = MapDeserializer {
        iter: m.into_iter(),
        value: None,
    };
    let out = visitor.visit_map(&mut map)?;
    if map.iter.len() == 0 {
        Ok(out)
    } else {
        Err(de::Error::invalid_length(len, &"fewer elements in map"))
    }
}

struct SeqDeserializer {
    iter: std::vec::IntoIter<Value>,
}

impl<'de> SeqAccess<'de> for SeqDeserializer {
    type Error = ValueError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ValueError> {
        self.iter.next().map(|v| seed.deserialize(v)).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// A blob seen as a sequence of `u8`.
struct BytesSeq {
    bytes: Bytes,
    pos: usize,
}

impl<'de> SeqAccess<'de> for BytesSeq {
    type Error = ValueError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ValueError> {
        let Some(&b) = self.bytes.get(self.pos) else {
            return Ok(None);
        };
        self.pos += 1;
        seed.deserialize(b.into_deserializer()).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.bytes.len() - self.pos)
    }
}

struct MapDeserializer {
    iter: indexmap::map::IntoIter<String, Value>,
    value: Option<Value>,
}

impl<'de> MapAccess<'de> for MapDeserializer {
    type Error = ValueError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ValueError> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(MapKeyDeserializer { key: Cow::Owned(k) })
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ValueError> {
        match self.value.take() {
            Some(v) => seed.deserialize(v),
            None => Err(de::Error::custom("value is missing")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// An object key: a string that numeric and boolean targets parse, like serde_json's map keys. Owned
/// when the object is (it is moved to the target), borrowed when the object is read in place (a
/// struct's field name is then matched without a copy).
struct MapKeyDeserializer<'de> {
    key: Cow<'de, str>,
}

macro_rules! deserialize_parsed_key {
    ($($method:ident => $visit:ident : $t:ty,)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
            match self.key.parse::<$t>() {
                Ok(v) => visitor.$visit(v),
                Err(_) => Err(de::Error::invalid_value(Unexpected::Str(&self.key), &visitor)),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for MapKeyDeserializer<'de> {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.key {
            Cow::Borrowed(k) => visitor.visit_borrowed_str(k),
            Cow::Owned(k) => visitor.visit_string(k),
        }
    }

    deserialize_parsed_key! {
        deserialize_bool => visit_bool: bool,
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64,
        deserialize_i128 => visit_i128: i128,
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
        deserialize_u128 => visit_u128: u128,
        deserialize_f32 => visit_f32: f32,
        deserialize_f64 => visit_f64: f64,
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        Value::String(self.key.into_owned()).deserialize_enum(name, variants, visitor)
    }

    forward_to_deserialize_any! {
        char str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

/// Reads a borrowed value without copying it first: strings and blobs are handed to the target as
/// borrowed (a `String` field still copies its own), arrays and objects are walked in place. For
/// `Event::parse`, which may be called more than once and so cannot take the arguments; it used to
/// deep-copy all of them before reading any.
///
/// The rare shapes (an enum, a blob read as a sequence) go through an owned copy of that one value.
impl<'de> Deserializer<'de> for &'de Value {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => visit_number(n, visitor),
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Binary(b) => visitor.visit_borrowed_bytes(b),
            Value::Array(a) => {
                let mut seq = SeqRef { iter: a.iter() };
                let out = visitor.visit_seq(&mut seq)?;
                if seq.iter.len() == 0 {
                    Ok(out)
                } else {
                    Err(de::Error::invalid_length(
                        a.len(),
                        &"fewer elements in array",
                    ))
                }
            }
            Value::Object(m) => {
                let mut map = MapRef {
                    iter: m.iter(),
                    value: None,
                };
                let out = visitor.visit_map(&mut map)?;
                if map.iter.len() == 0 {
                    Ok(out)
                } else {
                    Err(de::Error::invalid_length(m.len(), &"fewer elements in map"))
                }
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Null => visitor.visit_none(),
            v => visitor.visit_some(v),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            // A blob's bytes are shared, not copied.
            Value::Binary(b) => Value::Binary(b.clone()).deserialize_seq(visitor),
            v => v.deserialize_any(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.clone().deserialize_enum(name, variants, visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple_struct map struct identifier
    }
}

struct SeqRef<'de> {
    iter: std::slice::Iter<'de, Value>,
}

impl<'de> SeqAccess<'de> for SeqRef<'de> {
    type Error = ValueError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ValueError> {
        self.iter.next().map(|v| seed.deserialize(v)).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct MapRef<'de> {
    iter: indexmap::map::Iter<'de, String, Value>,
    value: Option<&'de Value>,
}

impl<'de> MapAccess<'de> for MapRef<'de> {
    type Error = ValueError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ValueError> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(MapKeyDeserializer {
                    key: Cow::Borrowed(k),
                })
                .map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ValueError> {
        match self.value.take() {
            Some(v) => seed.deserialize(v),
            None => Err(de::Error::custom("value is missing")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// An externally tagged enum: the variant name and, unless it is a bare string, its content.
struct EnumDeserializer {
    variant: String,
    value: Option<Value>,
}

impl<'de> EnumAccess<'de> for EnumDeserializer {
    type Error = ValueError;
    type Variant = VariantDeserializer;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, VariantDeserializer), ValueError> {
        let variant = seed.deserialize(MapKeyDeserializer {
            key: Cow::Owned(self.variant),
        })?;
        Ok((variant, VariantDeserializer { value: self.value }))
    }
}

struct VariantDeserializer {
    value: Option<Value>,
}

impl<'de> VariantAccess<'de> for VariantDeserializer {
    type Error = ValueError;

    fn unit_variant(self) -> Result<(), ValueError> {
        match self.value {
            None | Some(Value::Null) => Ok(()),
            Some(v) => Err(de::Error::invalid_type(v.unexpected(), &"unit variant")),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, ValueError> {
        match self.value {
            Some(v) => seed.deserialize(v),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"newtype variant",
            )),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        match self.value {
            Some(Value::Array(a)) => visit_array(a, visitor),
            Some(v) => Err(de::Error::invalid_type(v.unexpected(), &"tuple variant")),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"tuple variant",
            )),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        match self.value {
            Some(Value::Object(m)) => visit_object(m, visitor),
            Some(Value::Array(a)) => visit_array(a, visitor),
            Some(v) => Err(de::Error::invalid_type(v.unexpected(), &"struct variant")),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"struct variant",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::to_value;
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::collections::{BTreeMap, HashMap};

    fn j(text: &str) -> Value {
        Value::from_json(text).unwrap()
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Msg {
        room: String,
        text: String,
        ts: u64,
        #[serde(default)]
        tags: Vec<String>,
        reply_to: Option<u32>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum E {
        Unit,
        New(i32),
        Tup(u8, String),
        St { a: bool },
    }

    #[test]
    fn from_value_structs_options_numbers() {
        let m: Msg = from_value(j(
            r#"{"room":"r1","text":"hi","ts":1700000000000,"reply_to":null,"extra":[1]}"#,
        ))
        .unwrap();
        assert_eq!(
            m,
            Msg {
                room: "r1".into(),
                text: "hi".into(),
                ts: 1_700_000_000_000,
                tags: vec![],
                reply_to: None
            }
        );
        assert_eq!(from_value::<i8>(j("-5")).unwrap(), -5);
        assert_eq!(from_value::<f32>(j("1.5")).unwrap(), 1.5);
        assert_eq!(from_value::<f64>(j("3")).unwrap(), 3.0);
        assert!(from_value::<u8>(j("256")).is_err());
        assert!(from_value::<u8>(j("-1")).is_err());
        assert!(from_value::<u32>(j("1.5")).is_err());
        assert_eq!(from_value::<Option<u8>>(j("null")).unwrap(), None);
        assert_eq!(from_value::<Option<u8>>(j("4")).unwrap(), Some(4));
        assert_eq!(
            from_value::<(u8, String)>(j(r#"[1,"a"]"#)).unwrap(),
            (1, "a".into())
        );
        assert!(from_value::<(u8, u8)>(j("[1,2,3]")).is_err());
        assert_eq!(from_value::<()>(j("null")).unwrap(), ());
        assert_eq!(from_value::<char>(j(r#""x""#)).unwrap(), 'x');
        let err = from_value::<Msg>(j(r#"{"room":"r1"}"#)).unwrap_err();
        assert!(
            matches!(&err, ValueError::Custom(m) if m.contains("missing field")),
            "{err}"
        );
    }

    #[test]
    fn a_borrowed_value_reads_as_the_owned_one_does() {
        use super::super::args::{from_args, from_args_ref};
        let v = j(r#"{"room":"r1","text":"hi","ts":1700000000000,"reply_to":7,"extra":[1]}"#);
        let args = vec![v.clone()];
        assert_eq!(
            from_args_ref::<Msg>(&args).unwrap(),
            from_args::<Msg>(args.clone()).unwrap()
        );
        assert_eq!(args[0], v, "the arguments are still there to read again");
        // Keys read as numbers, enums in every form, blobs as byte vectors, missing tuple positions.
        let m: HashMap<u32, bool> = from_args_ref(&[j(r#"{"1":true,"20":false}"#)]).unwrap();
        assert!(m[&1] && !m[&20]);
        assert!(from_args_ref::<HashMap<u32, bool>>(&[j(r#"{"x":true}"#)]).is_err());
        for text in [
            r#""Unit""#,
            r#"{"New":-3}"#,
            r#"{"Tup":[1,"a"]}"#,
            r#"{"St":{"a":true}}"#,
        ] {
            assert_eq!(
                from_args_ref::<E>(&[j(text)]).unwrap(),
                from_value::<E>(j(text)).unwrap(),
                "{text}"
            );
        }
        let blob = Value::Binary(Bytes::from_static(&[1, 2, 3]));
        assert_eq!(
            from_args_ref::<Vec<u8>>(std::slice::from_ref(&blob)).unwrap(),
            vec![1, 2, 3]
        );
        assert_eq!(
            from_args_ref::<(u8, Option<String>)>(&[j("5")]).unwrap(),
            (5, None)
        );
        let err = from_args_ref::<(u8, String)>(&[j("5")]).unwrap_err();
        assert!(
            matches!(
                err,
                ValueError::MissingArgument {
                    index: 1,
                    received: 1
                }
            ),
            "{err:?}"
        );
        assert!(
            from_args_ref::<(u8, u8)>(&[j("[1,2]")]).is_err(),
            "one argument, not a tuple"
        );
        assert_eq!(
            from_args_ref::<(u8, u8)>(&[j("1"), j("2")]).unwrap(),
            (1, 2)
        );
        assert!(from_args_ref::<Msg>(&[j(r#"{"room":"r1"}"#)]).is_err());
        assert_eq!(from_args_ref::<Option<u8>>(&[]).unwrap(), None);
    }

    #[test]
    fn from_value_maps_with_non_string_keys() {
        let m: HashMap<u32, bool> = from_value(j(r#"{"1":true,"20":false}"#)).unwrap();
        assert!(!m[&20]);
        let m: BTreeMap<i64, u8> = from_value(j(r#"{"-3":1}"#)).unwrap();
        assert_eq!(m[&-3], 1);
        assert!(from_value::<HashMap<u32, bool>>(j(r#"{"x":true}"#)).is_err());
    }

    #[test]
    fn from_value_enums_externally_tagged() {
        assert_eq!(from_value::<E>(j(r#""Unit""#)).unwrap(), E::Unit);
        assert_eq!(from_value::<E>(j(r#"{"Unit":null}"#)).unwrap(), E::Unit);
        assert_eq!(from_value::<E>(j(r#"{"New":-2}"#)).unwrap(), E::New(-2));
        assert_eq!(
            from_value::<E>(j(r#"{"Tup":[1,"x"]}"#)).unwrap(),
            E::Tup(1, "x".into())
        );
        assert_eq!(
            from_value::<E>(j(r#"{"St":{"a":true}}"#)).unwrap(),
            E::St { a: true }
        );
        assert!(from_value::<E>(j(r#""Nope""#)).is_err());
        assert!(from_value::<E>(j(r#"{"New":1,"Unit":null}"#)).is_err());
        assert!(from_value::<E>(j(r#""New""#)).is_err());
        assert!(from_value::<E>(j("1")).is_err());
        for e in [
            E::Unit,
            E::New(3),
            E::Tup(0, "y".into()),
            E::St { a: false },
        ] {
            assert_eq!(from_value::<E>(to_value(&e).unwrap()).unwrap(), e);
        }
    }

    #[test]
    fn from_value_buffered_shapes_keep_binary() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type")]
        enum Tagged {
            Blob { data: serde_bytes::ByteBuf },
            Text { text: String },
        }
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        #[serde(untagged)]
        enum Either {
            Num(u8),
            Bin(serde_bytes::ByteBuf),
        }
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Outer {
            id: u8,
            #[serde(flatten)]
            rest: BTreeMap<String, Value>,
        }
        let t = Tagged::Blob {
            data: serde_bytes::ByteBuf::from(vec![9]),
        };
        let v = to_value(&t).unwrap();
        assert!(v.has_binary());
        assert_eq!(from_value::<Tagged>(v).unwrap(), t);
        let t = Tagged::Text { text: "x".into() };
        assert_eq!(from_value::<Tagged>(to_value(&t).unwrap()).unwrap(), t);
        let e = Either::Bin(serde_bytes::ByteBuf::from(vec![1]));
        assert_eq!(from_value::<Either>(to_value(&e).unwrap()).unwrap(), e);
        assert_eq!(from_value::<Either>(j("7")).unwrap(), Either::Num(7));
        let o: Outer = from_value(
            [
                ("id", Value::from(1)),
                ("blob", Value::Binary(Bytes::from_static(b"q"))),
            ]
            .into_iter()
            .collect(),
        )
        .unwrap();
        assert_eq!(o.rest["blob"], Value::Binary(Bytes::from_static(b"q")));
    }

    #[test]
    fn from_value_binary_targets() {
        let blob = Value::Binary(Bytes::from_static(&[1, 2, 255]));
        let b: serde_bytes::ByteBuf = from_value(blob.clone()).unwrap();
        assert_eq!(b.as_slice(), [1, 2, 255]);
        let b: Bytes = from_value(blob.clone()).unwrap();
        assert_eq!(&b[..], [1, 2, 255]);
        let v: Vec<u8> = from_value(blob.clone()).unwrap();
        assert_eq!(v, [1, 2, 255]);
        #[derive(Deserialize)]
        struct W {
            #[serde(with = "serde_bytes")]
            data: Vec<u8>,
        }
        let w: W = from_value([("data", blob.clone())].into_iter().collect()).unwrap();
        assert_eq!(w.data, [1, 2, 255]);
        assert!(from_value::<[u8; 2]>(blob.clone()).is_err());
        assert_eq!(from_value::<[u8; 3]>(blob.clone()).unwrap(), [1, 2, 255]);
        // Value nests inside user structs and keeps the blob.
        #[derive(Deserialize)]
        struct N {
            inner: Value,
        }
        let n: N = from_value([("inner", blob.clone())].into_iter().collect()).unwrap();
        assert_eq!(n.inner, blob);
    }

    #[test]
    fn from_value_into_serde_json_value() {
        let text = r#"{"b":[1,-2,2.5,"s",true,null,{}],"a":{"x":18446744073709551615}}"#;
        let sj: serde_json::Value = from_value(j(text)).unwrap();
        assert_eq!(sj, serde_json::from_str::<serde_json::Value>(text).unwrap());
        // serde_json::Value has no binary variant: a blob is a type error, not a panic.
        assert!(from_value::<serde_json::Value>(Value::Binary(Bytes::from_static(b"x"))).is_err());
    }

    #[test]
    fn deserialize_value_from_other_deserializers() {
        // Through `Value`'s own Deserializer: identity, blobs included.
        let v = Value::Array(vec![
            Value::Binary(Bytes::from_static(b"ab")),
            j(r#"{"k":[1.5,-1,"s",null]}"#),
        ]);
        assert_eq!(from_value::<Value>(v.clone()).unwrap(), v);
        // From a serde_json::Value deserializer.
        let sj = serde_json::json!({"z": 1, "a": [true, null]});
        let v: Value = serde_json::from_value(sj).unwrap();
        assert_eq!(
            v.get("a").and_then(|a| a.get_index(0)),
            Some(&Value::Bool(true))
        );
        // visit_bytes from a byte-array deserializer.
        let d: serde::de::value::BytesDeserializer<'_, ValueError> =
            serde::de::value::BytesDeserializer::new(b"xy");
        assert_eq!(
            Value::deserialize(d).unwrap(),
            Value::Binary(Bytes::from_static(b"xy"))
        );
        // i128/u128 visits.
        let d: serde::de::value::I128Deserializer<ValueError> = (-7i128).into_deserializer();
        assert_eq!(Value::deserialize(d).unwrap().as_i64(), Some(-7));
        let d: serde::de::value::U128Deserializer<ValueError> = u128::MAX.into_deserializer();
        assert!(Value::deserialize(d).unwrap().as_f64().is_some());
    }
}
