//! Event arguments: a Rust tuple is the positional argument list of a Socket.IO event.
//!
//! `socket.emit("ev", a, b)` carries the arguments `[a, b]`. [`to_args`] turns a tuple `(a, b)` into
//! that list, `()` into no argument and any other value into exactly one argument; [`from_args`] is
//! the reverse. Note that serde serializes fixed-size arrays `[T; N]` as tuples, so they spread too;
//! use a `Vec` or slice to send one array argument.

use super::ser::{
    SerializeMap, SerializeStructVariant, SerializeTupleVariant, SerializeVec, ValueSerializer,
};
use super::{Value, ValueError, to_value};
use serde::de::{self, DeserializeOwned, DeserializeSeed, SeqAccess, Visitor};
use serde::ser::{self, Serialize};

/// Serializes `value` as event arguments: a tuple gives one argument per element, `()` none, anything else one.
pub fn to_args<T: Serialize + ?Sized>(value: &T) -> Result<Vec<Value>, ValueError> {
    value.serialize(ArgsSerializer)
}

/// Deserializes event arguments: a tuple reads them positionally (missing ones as `null`, extra ones
/// ignored), `()` accepts anything, any other type reads the first argument (`null` if there is none).
pub fn from_args<T: DeserializeOwned>(args: Vec<Value>) -> Result<T, ValueError> {
    T::deserialize(ArgsDeserializer { args })
}

/// [`from_args`] reading borrowed arguments, without copying them first (they stay for another read).
pub fn from_args_ref<T: DeserializeOwned>(args: &[Value]) -> Result<T, ValueError> {
    T::deserialize(ArgsDeserializer { args })
}

/// Top-level serializer of [`to_args`].
struct ArgsSerializer;

/// A compound value that becomes a single argument once complete.
struct One<S>(S);

/// The elements of a top-level tuple, one argument each.
struct ArgsTuple {
    args: Vec<Value>,
}

macro_rules! one_arg {
    ($($method:ident($($arg:ident: $t:ty),*);)*) => {$(
        fn $method(self, $($arg: $t),*) -> Result<Vec<Value>, ValueError> {
            Ok(vec![ValueSerializer.$method($($arg),*)?])
        }
    )*};
}

impl ser::Serializer for ArgsSerializer {
    type Ok = Vec<Value>;
    type Error = ValueError;
    type SerializeSeq = One<SerializeVec>;
    type SerializeTuple = ArgsTuple;
    type SerializeTupleStruct = One<SerializeVec>;
    type SerializeTupleVariant = One<SerializeTupleVariant>;
    type SerializeMap = One<SerializeMap>;
    type SerializeStruct = One<SerializeMap>;
    type SerializeStructVariant = One<SerializeStructVariant>;

    with_leaf_methods!(one_arg serialize_str(v: &str););

    fn serialize_unit(self) -> Result<Vec<Value>, ValueError> {
        Ok(Vec::new())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<Value>, ValueError> {
        Ok(vec![to_value(value)?])
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Vec<Value>, ValueError> {
        Ok(vec![to_value(value)?])
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Vec<Value>, ValueError> {
        Ok(vec![
            ValueSerializer.serialize_newtype_variant(name, index, variant, value)?,
        ])
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<One<SerializeVec>, ValueError> {
        ValueSerializer.serialize_seq(len).map(One)
    }

    fn serialize_tuple(self, len: usize) -> Result<ArgsTuple, ValueError> {
        Ok(ArgsTuple {
            args: Vec::with_capacity(len),
        })
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<One<SerializeVec>, ValueError> {
        ValueSerializer.serialize_tuple_struct(name, len).map(One)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<One<SerializeTupleVariant>, ValueError> {
        ValueSerializer
            .serialize_tuple_variant(name, index, variant, len)
            .map(One)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<One<SerializeMap>, ValueError> {
        ValueSerializer.serialize_map(len).map(One)
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<One<SerializeMap>, ValueError> {
        ValueSerializer.serialize_struct(name, len).map(One)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<One<SerializeStructVariant>, ValueError> {
        ValueSerializer
            .serialize_struct_variant(name, index, variant, len)
            .map(One)
    }
}

impl ser::SerializeTuple for ArgsTuple {
    type Ok = Vec<Value>;
    type Error = ValueError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.args.push(to_value(value)?);
        Ok(())
    }

    fn end(self) -> Result<Vec<Value>, ValueError> {
        Ok(self.args)
    }
}

impl<S: ser::SerializeSeq<Ok = Value, Error = ValueError>> ser::SerializeSeq for One<S> {
    type Ok = Vec<Value>;
    type Error = ValueError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.0.serialize_element(value)
    }

    fn end(self) -> Result<Vec<Value>, ValueError> {
        Ok(vec![self.0.end()?])
    }
}

impl<S: ser::SerializeTupleStruct<Ok = Value, Error = ValueError>> ser::SerializeTupleStruct
    for One<S>
{
    type Ok = Vec<Value>;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.0.serialize_field(value)
    }

    fn end(self) -> Result<Vec<Value>, ValueError> {
        Ok(vec![self.0.end()?])
    }
}

impl<S: ser::SerializeTupleVariant<Ok = Value, Error = ValueError>> ser::SerializeTupleVariant
    for One<S>
{
    type Ok = Vec<Value>;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.0.serialize_field(value)
    }

    fn end(self) -> Result<Vec<Value>, ValueError> {
        Ok(vec![self.0.end()?])
    }
}

impl<S: ser::SerializeMap<Ok = Value, Error = ValueError>> ser::SerializeMap for One<S> {
    type Ok = Vec<Value>;
    type Error = ValueError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), ValueError> {
        self.0.serialize_key(key)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.0.serialize_value(value)
    }

    fn end(self) -> Result<Vec<Value>, ValueError> {
        Ok(vec![self.0.end()?])
    }
}

impl<S: ser::SerializeStruct<Ok = Value, Error = ValueError>> ser::SerializeStruct for One<S> {
    type Ok = Vec<Value>;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ValueError> {
        self.0.serialize_field(key, value)
    }

    fn end(self) -> Result<Vec<Value>, ValueError> {
        Ok(vec![self.0.end()?])
    }
}

impl<S: ser::SerializeStructVariant<Ok = Value, Error = ValueError>> ser::SerializeStructVariant
    for One<S>
{
    type Ok = Vec<Value>;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ValueError> {
        self.0.serialize_field(key, value)
    }

    fn end(self) -> Result<Vec<Value>, ValueError> {
        Ok(vec![self.0.end()?])
    }
}

/// The arguments [`ArgsDeserializer`] reads: owned ([`from_args`]) or borrowed ([`from_args_ref`]).
trait ArgList<'de> {
    type Arg: de::Deserializer<'de, Error = ValueError>;
    type Iter: ExactSizeIterator<Item = Self::Arg>;
    fn into_args(self) -> Self::Iter;
    /// What a missing argument reads as (JS `undefined`, seen as `null`).
    fn null() -> Self::Arg;
}

impl ArgList<'_> for Vec<Value> {
    type Arg = Value;
    type Iter = std::vec::IntoIter<Value>;
    fn into_args(self) -> Self::Iter {
        self.into_iter()
    }
    fn null() -> Value {
        Value::Null
    }
}

static NULL: Value = Value::Null;

impl<'de> ArgList<'de> for &'de [Value] {
    type Arg = &'de Value;
    type Iter = std::slice::Iter<'de, Value>;
    fn into_args(self) -> Self::Iter {
        self.iter()
    }
    fn null() -> &'de Value {
        &NULL
    }
}

/// Top-level deserializer of [`from_args`] and [`from_args_ref`].
struct ArgsDeserializer<L> {
    args: L,
}

impl<'de, L: ArgList<'de>> ArgsDeserializer<L> {
    fn first(self) -> L::Arg {
        self.args.into_args().next().unwrap_or_else(L::null)
    }
}

macro_rules! first_arg {
    ($($method:ident($($arg:ident: $t:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $t,)* visitor: V) -> Result<V::Value, ValueError> {
            self.first().$method($($arg,)* visitor)
        }
    )*};
}

impl<'de, L: ArgList<'de>> de::Deserializer<'de> for ArgsDeserializer<L> {
    type Error = ValueError;

    first_arg! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        visitor.visit_unit()
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_unit()
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        let iter = self.args.into_args();
        let received = iter.len();
        visitor.visit_seq(ArgsSeq::<'de, L> {
            iter,
            index: 0,
            len,
            received,
        })
    }
}

/// The arguments seen by a tuple target; positions past the end read as `null`.
struct ArgsSeq<'de, L: ArgList<'de>> {
    iter: L::Iter,
    index: usize,
    len: usize,
    received: usize,
}

impl<'de, L: ArgList<'de>> SeqAccess<'de> for ArgsSeq<'de, L> {
    type Error = ValueError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ValueError> {
        if self.index >= self.len {
            return Ok(None);
        }
        let index = self.index;
        self.index += 1;
        match self.iter.next() {
            Some(v) => seed.deserialize(v).map(Some),
            // A missing trailing argument is JS `undefined`: fine for an `Option`, an error otherwise.
            None => {
                seed.deserialize(L::null())
                    .map(Some)
                    .map_err(|_| ValueError::MissingArgument {
                        index,
                        received: self.received,
                    })
            }
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.len - self.index)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_null_value_is_one_argument() {
        assert_eq!(to_args(&Value::Null).unwrap(), vec![Value::Null]);
        assert_eq!(to_args(&()).unwrap(), Vec::<Value>::new());
        assert_eq!(to_args(&Some(Value::Null)).unwrap(), vec![Value::Null]);
    }

    use super::*;
    use bytes::Bytes;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Chat {
        room: String,
        text: String,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Pair(u8, u8);

    fn chat() -> Chat {
        Chat {
            room: "r1".into(),
            text: "hi".into(),
        }
    }

    #[test]
    fn to_args_spreads_tuples_only() {
        let a = to_args(&("a", 1)).unwrap();
        assert_eq!(a, vec![Value::from("a"), Value::from(1)]);
        assert_eq!(to_args(&(5u8,)).unwrap(), vec![Value::from(5u8)]);
        assert_eq!(to_args(&()).unwrap(), Vec::<Value>::new());
        let v = to_args(&vec![1, 2]).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].to_json().0, "[1,2]");
        assert_eq!(to_args(&[1, 2][..]).unwrap().len(), 1);
        assert_eq!(to_args(&"s").unwrap(), vec![Value::from("s")]);
        assert_eq!(to_args(&3.5).unwrap(), vec![Value::from(3.5)]);
        assert_eq!(to_args(&None::<u8>).unwrap(), vec![Value::Null]);
        assert_eq!(to_args(&Some(("x", 1))).unwrap().len(), 1);
        let s = to_args(&chat()).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].to_json().0, r#"{"room":"r1","text":"hi"}"#);
        assert_eq!(to_args(&Pair(1, 2)).unwrap().len(), 1);
        assert_eq!(
            to_args(&Bytes::from_static(b"b")).unwrap(),
            vec![Value::Binary(Bytes::from_static(b"b"))]
        );
        // A nested tuple is one array argument.
        let n = to_args(&(("a", 1), chat())).unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].to_json().0, r#"["a",1]"#);
    }

    #[test]
    fn from_args_tuples_are_positional() {
        let args = vec![Value::from("a"), Value::from(7), Value::from("extra")];
        let (s, n): (String, u32) = from_args(args).unwrap();
        assert_eq!((s.as_str(), n), ("a", 7));
        let (x,): (u8,) = from_args(vec![Value::from(1)]).unwrap();
        assert_eq!(x, 1);
        // Missing trailing arguments: `None` for options, an error otherwise.
        let (a, b): (u8, Option<String>) = from_args(vec![Value::from(1)]).unwrap();
        assert_eq!((a, b), (1, None));
        let err = from_args::<(String, u32)>(vec![Value::from("a")]).unwrap_err();
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
        assert!(from_args::<(String, u32)>(vec![Value::from(1), Value::from(2)]).is_err());
    }

    #[test]
    fn from_args_other_targets_read_the_first_argument() {
        let args = to_args(&(chat(), 5)).unwrap();
        assert_eq!(from_args::<Chat>(args.clone()).unwrap(), chat());
        assert_eq!(from_args::<Value>(args.clone()).unwrap(), args[0]);
        assert_eq!(from_args::<Option<u8>>(vec![]).unwrap(), None);
        assert_eq!(
            from_args::<Option<u8>>(vec![Value::from(3)]).unwrap(),
            Some(3)
        );
        assert_eq!(
            from_args::<Vec<u8>>(vec![Value::from_json("[1,2]").unwrap()]).unwrap(),
            [1, 2]
        );
        assert_eq!(
            from_args::<Pair>(vec![Value::from_json("[1,2]").unwrap()]).unwrap(),
            Pair(1, 2)
        );
        from_args::<()>(args).unwrap();
        from_args::<()>(vec![]).unwrap();
        assert!(from_args::<Chat>(vec![]).is_err());
        assert!(from_args::<String>(vec![]).is_err());
    }

    #[test]
    fn args_round_trip_with_binary() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct File {
            name: String,
            data: serde_bytes::ByteBuf,
        }
        let f = File {
            name: "a.bin".into(),
            data: serde_bytes::ByteBuf::from(vec![0, 255]),
        };
        let args = to_args(&("upload", &f, Bytes::from_static(b"z"))).unwrap();
        let (text, atts) = Value::Array(args).to_json();
        assert_eq!(
            text,
            r#"["upload",{"name":"a.bin","data":{"_placeholder":true,"num":0}},{"_placeholder":true,"num":1}]"#
        );
        let Value::Array(back) = Value::from_json(&text)
            .unwrap()
            .resolve_placeholders(&atts)
            .unwrap()
        else {
            panic!("array expected");
        };
        let (ev, f2, z): (String, File, Bytes) = from_args(back).unwrap();
        assert_eq!(ev, "upload");
        assert_eq!(f2, f);
        assert_eq!(&z[..], b"z");
    }
}
