//! Serialization: `Serialize for Value` (into any format) and a `Serializer` producing a [`Value`].

use super::{Map, Value, ValueError};
use bytes::Bytes;
use serde::ser::{self, Impossible, Serialize};
use serde_json::Number;

/// Serializes any `T` into a [`Value`] (byte buffers such as `serde_bytes::ByteBuf` become blobs).
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, ValueError> {
    value.serialize(ValueSerializer)
}

impl Serialize for Value {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            // `none`, not `unit`: as event arguments, `()` means no argument while a null value is one.
            Value::Null => serializer.serialize_none(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Number(n) => n.serialize(serializer),
            Value::String(s) => serializer.serialize_str(s),
            Value::Binary(b) => serializer.serialize_bytes(b),
            Value::Array(a) => serializer.collect_seq(a),
            Value::Object(m) => serializer.collect_map(m),
        }
    }
}

/// The serializer behind [`to_value`]: the serde data model mapped like serde_json maps it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ValueSerializer;

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = ValueError;
    type SerializeSeq = SerializeVec;
    type SerializeTuple = SerializeVec;
    type SerializeTupleStruct = SerializeVec;
    type SerializeTupleVariant = SerializeTupleVariant;
    type SerializeMap = SerializeMap;
    type SerializeStruct = SerializeMap;
    type SerializeStructVariant = SerializeStructVariant;

    fn serialize_bool(self, v: bool) -> Result<Value, ValueError> {
        Ok(Value::Bool(v))
    }

    fn serialize_i8(self, v: i8) -> Result<Value, ValueError> {
        Ok(Value::Number(v.into()))
    }

    fn serialize_i16(self, v: i16) -> Result<Value, ValueError> {
        Ok(Value::Number(v.into()))
    }

    fn serialize_i32(self, v: i32) -> Result<Value, ValueError> {
        Ok(Value::Number(v.into()))
    }

    fn serialize_i64(self, v: i64) -> Result<Value, ValueError> {
        Ok(Value::Number(v.into()))
    }

    fn serialize_i128(self, v: i128) -> Result<Value, ValueError> {
        if let Ok(u) = u64::try_from(v) {
            Ok(Value::Number(u.into()))
        } else if let Ok(i) = i64::try_from(v) {
            Ok(Value::Number(i.into()))
        } else {
            Err(ValueError::Custom("number out of range".into()))
        }
    }

    fn serialize_u8(self, v: u8) -> Result<Value, ValueError> {
        Ok(Value::Number(v.into()))
    }

    fn serialize_u16(self, v: u16) -> Result<Value, ValueError> {
        Ok(Value::Number(v.into()))
    }

    fn serialize_u32(self, v: u32) -> Result<Value, ValueError> {
        Ok(Value::Number(v.into()))
    }

    fn serialize_u64(self, v: u64) -> Result<Value, ValueError> {
        Ok(Value::Number(v.into()))
    }

    fn serialize_u128(self, v: u128) -> Result<Value, ValueError> {
        u64::try_from(v)
            .map(|u| Value::Number(u.into()))
            .map_err(|_| ValueError::Custom("number out of range".into()))
    }

    fn serialize_f32(self, v: f32) -> Result<Value, ValueError> {
        Ok(Value::from(v))
    }

    fn serialize_f64(self, v: f64) -> Result<Value, ValueError> {
        Ok(Value::from(v))
    }

    fn serialize_char(self, v: char) -> Result<Value, ValueError> {
        Ok(Value::String(v.to_string()))
    }

    fn serialize_str(self, v: &str) -> Result<Value, ValueError> {
        Ok(Value::String(v.to_owned()))
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<Value, ValueError> {
        Ok(Value::Binary(Bytes::copy_from_slice(v)))
    }

    fn serialize_none(self) -> Result<Value, ValueError> {
        Ok(Value::Null)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, ValueError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<Value, ValueError> {
        Ok(Value::Null)
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, ValueError> {
        Ok(Value::Null)
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, ValueError> {
        Ok(Value::String(variant.to_owned()))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Value, ValueError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, ValueError> {
        let mut m = Map::with_capacity(1);
        m.insert(variant.to_owned(), to_value(value)?);
        Ok(Value::Object(m))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<SerializeVec, ValueError> {
        Ok(SerializeVec {
            vec: Vec::with_capacity(len.unwrap_or(0)),
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<SerializeVec, ValueError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SerializeVec, ValueError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SerializeTupleVariant, ValueError> {
        Ok(SerializeTupleVariant {
            variant,
            vec: Vec::with_capacity(len),
        })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<SerializeMap, ValueError> {
        Ok(SerializeMap {
            map: Map::with_capacity(len.unwrap_or(0)),
            next_key: None,
        })
    }

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<SerializeMap, ValueError> {
        self.serialize_map(Some(len))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SerializeStructVariant, ValueError> {
        Ok(SerializeStructVariant {
            variant,
            map: Map::with_capacity(len),
        })
    }
}

/// Elements of a sequence, tuple or tuple struct.
pub(crate) struct SerializeVec {
    vec: Vec<Value>,
}

/// Elements of a tuple variant, wrapped in `{variant: [...]}` at the end.
pub(crate) struct SerializeTupleVariant {
    variant: &'static str,
    vec: Vec<Value>,
}

/// Entries of a map or struct.
pub(crate) struct SerializeMap {
    map: Map,
    next_key: Option<String>,
}

/// Fields of a struct variant, wrapped in `{variant: {...}}` at the end.
pub(crate) struct SerializeStructVariant {
    variant: &'static str,
    map: Map,
}

impl ser::SerializeSeq for SerializeVec {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.vec.push(to_value(value)?);
        Ok(())
    }

    fn end(self) -> Result<Value, ValueError> {
        Ok(Value::Array(self.vec))
    }
}

impl ser::SerializeTuple for SerializeVec {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<Value, ValueError> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for SerializeVec {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<Value, ValueError> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleVariant for SerializeTupleVariant {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.vec.push(to_value(value)?);
        Ok(())
    }

    fn end(self) -> Result<Value, ValueError> {
        let mut m = Map::with_capacity(1);
        m.insert(self.variant.to_owned(), Value::Array(self.vec));
        Ok(Value::Object(m))
    }
}

impl ser::SerializeMap for SerializeMap {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), ValueError> {
        self.next_key = Some(key.serialize(MapKeySerializer)?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        let key = self.next_key.take().ok_or_else(|| {
            ValueError::Custom("serialize_value called before serialize_key".into())
        })?;
        self.map.insert(key, to_value(value)?);
        Ok(())
    }

    fn end(self) -> Result<Value, ValueError> {
        Ok(Value::Object(self.map))
    }
}

impl ser::SerializeStruct for SerializeMap {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ValueError> {
        self.map.insert(key.to_owned(), to_value(value)?);
        Ok(())
    }

    fn end(self) -> Result<Value, ValueError> {
        Ok(Value::Object(self.map))
    }
}

impl ser::SerializeStructVariant for SerializeStructVariant {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ValueError> {
        self.map.insert(key.to_owned(), to_value(value)?);
        Ok(())
    }

    fn end(self) -> Result<Value, ValueError> {
        let mut m = Map::with_capacity(1);
        m.insert(self.variant.to_owned(), Value::Object(self.map));
        Ok(Value::Object(m))
    }
}

/// Turns a map key into a string like serde_json: strings, chars, numbers, bools and unit variants.
pub(super) struct MapKeySerializer;

impl ser::Serializer for MapKeySerializer {
    type Ok = String;
    type Error = ValueError;
    type SerializeSeq = Impossible<String, ValueError>;
    type SerializeTuple = Impossible<String, ValueError>;
    type SerializeTupleStruct = Impossible<String, ValueError>;
    type SerializeTupleVariant = Impossible<String, ValueError>;
    type SerializeMap = Impossible<String, ValueError>;
    type SerializeStruct = Impossible<String, ValueError>;
    type SerializeStructVariant = Impossible<String, ValueError>;

    fn serialize_bool(self, v: bool) -> Result<String, ValueError> {
        Ok(if v { "true" } else { "false" }.to_owned())
    }

    fn serialize_i8(self, v: i8) -> Result<String, ValueError> {
        Ok(itoa::Buffer::new().format(v).to_owned())
    }

    fn serialize_i16(self, v: i16) -> Result<String, ValueError> {
        Ok(itoa::Buffer::new().format(v).to_owned())
    }

    fn serialize_i32(self, v: i32) -> Result<String, ValueError> {
        Ok(itoa::Buffer::new().format(v).to_owned())
    }

    fn serialize_i64(self, v: i64) -> Result<String, ValueError> {
        Ok(itoa::Buffer::new().format(v).to_owned())
    }

    fn serialize_i128(self, v: i128) -> Result<String, ValueError> {
        Ok(itoa::Buffer::new().format(v).to_owned())
    }

    fn serialize_u8(self, v: u8) -> Result<String, ValueError> {
        Ok(itoa::Buffer::new().format(v).to_owned())
    }

    fn serialize_u16(self, v: u16) -> Result<String, ValueError> {
        Ok(itoa::Buffer::new().format(v).to_owned())
    }

    fn serialize_u32(self, v: u32) -> Result<String, ValueError> {
        Ok(itoa::Buffer::new().format(v).to_owned())
    }

    fn serialize_u64(self, v: u64) -> Result<String, ValueError> {
        Ok(itoa::Buffer::new().format(v).to_owned())
    }

    fn serialize_u128(self, v: u128) -> Result<String, ValueError> {
        Ok(itoa::Buffer::new().format(v).to_owned())
    }

    fn serialize_f32(self, v: f32) -> Result<String, ValueError> {
        if v.is_finite() {
            // serde_json's own shortest f32 formatting.
            serde_json::to_string(&v).map_err(|e| ValueError::Custom(e.to_string()))
        } else {
            Err(ValueError::Custom("float key must be finite".into()))
        }
    }

    fn serialize_f64(self, v: f64) -> Result<String, ValueError> {
        Number::from_f64(v)
            .map(|n| n.to_string())
            .ok_or_else(|| ValueError::Custom("float key must be finite".into()))
    }

    fn serialize_char(self, v: char) -> Result<String, ValueError> {
        Ok(v.to_string())
    }

    fn serialize_str(self, v: &str) -> Result<String, ValueError> {
        Ok(v.to_owned())
    }

    fn serialize_bytes(self, _v: &[u8]) -> Result<String, ValueError> {
        Err(ValueError::KeyMustBeAString)
    }

    fn serialize_none(self) -> Result<String, ValueError> {
        Err(ValueError::KeyMustBeAString)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<String, ValueError> {
        Err(ValueError::KeyMustBeAString)
    }

    fn serialize_unit(self) -> Result<String, ValueError> {
        Err(ValueError::KeyMustBeAString)
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<String, ValueError> {
        Err(ValueError::KeyMustBeAString)
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<String, ValueError> {
        Ok(variant.to_owned())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<String, ValueError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<String, ValueError> {
        Err(ValueError::KeyMustBeAString)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, ValueError> {
        Err(ValueError::KeyMustBeAString)
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, ValueError> {
        Err(ValueError::KeyMustBeAString)
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, ValueError> {
        Err(ValueError::KeyMustBeAString)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, ValueError> {
        Err(ValueError::KeyMustBeAString)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, ValueError> {
        Err(ValueError::KeyMustBeAString)
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, ValueError> {
        Err(ValueError::KeyMustBeAString)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, ValueError> {
        Err(ValueError::KeyMustBeAString)
    }
}

#[cfg(test)]
mod tests {
    use super::super::from_value;
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Upload {
        name: String,
        blob: Bytes,
        buf: serde_bytes::ByteBuf,
        #[serde(with = "serde_bytes")]
        raw: Vec<u8>,
        meta: Option<Value>,
        nothing: Option<u8>,
    }

    #[derive(Serialize)]
    enum E {
        Unit,
        New(i32),
        Tup(u8, &'static str),
        St { a: bool },
    }

    #[derive(Serialize)]
    struct UnitS;

    #[derive(Serialize)]
    struct NewT(u8);

    #[derive(Serialize)]
    struct TupS(u8, bool);

    fn json(v: &Value) -> String {
        v.to_json().0
    }

    #[test]
    fn to_value_matches_serde_json_shapes() {
        #[derive(Serialize)]
        struct All {
            b: bool,
            i: i8,
            u: u64,
            f: f64,
            f32: f32,
            nan: f64,
            c: char,
            s: &'static str,
            unit: (),
            us: UnitS,
            nt: NewT,
            ts: TupS,
            v: Vec<i32>,
            t: (u8, &'static str),
            e: [E; 4],
            none: Option<u8>,
            some: Option<u8>,
        }
        let all = All {
            b: true,
            i: -1,
            u: u64::MAX,
            f: 0.1,
            f32: 0.5,
            nan: f64::NAN,
            c: 'é',
            s: "x\"y",
            unit: (),
            us: UnitS,
            nt: NewT(7),
            ts: TupS(1, false),
            v: vec![1, -2],
            t: (3, "z"),
            e: [E::Unit, E::New(-4), E::Tup(5, "w"), E::St { a: true }],
            none: None,
            some: Some(9),
        };
        let v = to_value(&all).unwrap();
        assert_eq!(json(&v), serde_json::to_string(&all).unwrap());
        assert!(!v.has_binary());
    }

    #[test]
    fn to_value_map_keys_like_serde_json() {
        let mut m = BTreeMap::new();
        m.insert(-3i32, "a");
        m.insert(10, "b");
        assert_eq!(json(&to_value(&m).unwrap()), r#"{"-3":"a","10":"b"}"#);
        let m: BTreeMap<bool, u8> = [(false, 1), (true, 2)].into_iter().collect();
        assert_eq!(json(&to_value(&m).unwrap()), r#"{"false":1,"true":2}"#);
        let m: BTreeMap<char, u8> = [('k', 1)].into_iter().collect();
        assert_eq!(json(&to_value(&m).unwrap()), r#"{"k":1}"#);
        let m: BTreeMap<(u8, u8), u8> = [((1, 2), 1)].into_iter().collect();
        assert!(matches!(to_value(&m), Err(ValueError::KeyMustBeAString)));
        assert_eq!(
            MapKeySerializer.serialize_f32_for_test(0.1),
            serde_json::to_string(&0.1f32).unwrap()
        );
        assert_eq!(MapKeySerializer.serialize_f64_for_test(2.5), "2.5");
        assert!(ser::Serializer::serialize_f64(MapKeySerializer, f64::INFINITY).is_err());
    }

    impl MapKeySerializer {
        fn serialize_f32_for_test(self, v: f32) -> String {
            ser::Serializer::serialize_f32(self, v).unwrap()
        }
        fn serialize_f64_for_test(self, v: f64) -> String {
            ser::Serializer::serialize_f64(self, v).unwrap()
        }
    }

    #[test]
    fn to_value_bytes_become_binary_and_round_trip() {
        let up = Upload {
            name: "pic".into(),
            blob: Bytes::from_static(&[0, 1, 2]),
            buf: serde_bytes::ByteBuf::from(vec![3, 4]),
            raw: vec![5],
            meta: Some(Value::Binary(Bytes::from_static(b"m"))),
            nothing: None,
        };
        let v = to_value(&up).unwrap();
        assert_eq!(
            v.get("blob"),
            Some(&Value::Binary(Bytes::from_static(&[0, 1, 2])))
        );
        assert_eq!(
            v.get("buf"),
            Some(&Value::Binary(Bytes::from_static(&[3, 4])))
        );
        assert_eq!(v.get("raw"), Some(&Value::Binary(Bytes::from_static(&[5]))));
        assert_eq!(
            v.get("meta"),
            Some(&Value::Binary(Bytes::from_static(b"m")))
        );
        assert_eq!(v.get("nothing"), Some(&Value::Null));
        let (text, atts) = v.to_json();
        assert_eq!(atts.len(), 4);
        let back: Upload = from_value(
            Value::from_json(&text)
                .unwrap()
                .resolve_placeholders(&atts)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(back, up);
        assert_eq!(from_value::<Upload>(v).unwrap(), up);
    }

    #[test]
    fn value_serializes_through_serde_json() {
        let v = Value::from_json(r#"{"a":[1,-1,1.5,"s",null,true],"b":{}}"#).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), json(&v));
        assert_eq!(to_value(&v).unwrap(), v);
        let b = Value::Binary(Bytes::from_static(&[1, 2]));
        assert_eq!(serde_json::to_string(&b).unwrap(), "[1,2]");
        assert_eq!(to_value(&b).unwrap(), b);
    }

    #[test]
    fn to_value_out_of_range_128() {
        assert!(to_value(&u128::MAX).is_err());
        assert!(to_value(&i128::MIN).is_err());
        assert_eq!(to_value(&-5i128).unwrap().as_i64(), Some(-5));
        assert_eq!(to_value(&5u128).unwrap().as_u64(), Some(5));
    }
}
