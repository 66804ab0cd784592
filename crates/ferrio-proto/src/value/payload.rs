//! An event's arguments read straight from its payload's text, `["name", arg, …]`, into the type a
//! listener asks for: what [`from_args`](super::from_args) gives from the arguments' [`Value`]s, with
//! none of them built.
//!
//! It is only a faster road to the same place: it answers `None` wherever it is not sure to agree,
//! and the caller then reads the arguments into values and deserializes from those, which gives the
//! answer (the error included). So it takes no care to report errors, and leaves to that road the
//! cases it does not handle: a missing argument read as `null`, and every error.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, SeqAccess, Visitor};

/// `T` from the arguments of `payload` (an event's payload that the quick reader accepted), as
/// [`from_args`](super::from_args) reads them; `None` when that road must decide.
pub(crate) fn from_payload<T: DeserializeOwned>(payload: &str) -> Option<T> {
    let mut de = serde_json::Deserializer::from_str(payload);
    let value = de::Deserializer::deserialize_seq(&mut de, Payload(PhantomData)).ok()?;
    de.end().ok()?;
    Some(value)
}

/// The payload's array: the name skipped, then `T` from the arguments, then the rest ignored.
struct Payload<T>(PhantomData<T>);

impl<'de, T: de::Deserialize<'de>> Visitor<'de> for Payload<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event's payload")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        seq.next_element::<IgnoredAny>()?
            .ok_or_else(|| de::Error::custom("no name"))?;
        let value = T::deserialize(Args { seq: &mut seq })?;
        // Extra arguments are ignored, as `from_args` ignores them.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(value)
    }
}

/// The arguments, seen as `from_args` sees them: a tuple reads them in order, `()` takes anything,
/// any other type reads the first.
struct Args<'a, A> {
    seq: &'a mut A,
}

/// What a target asked the arguments for, carried to the first argument's own deserializer.
enum Call {
    Any,
    Bool,
    I8,
    I16,
    I32,
    I64,
    I128,
    U8,
    U16,
    U32,
    U64,
    U128,
    F32,
    F64,
    Char,
    Str,
    String,
    Bytes,
    ByteBuf,
    Option,
    Seq,
    Map,
    Identifier,
    NewtypeStruct(&'static str),
    TupleStruct(&'static str, usize),
    Struct(&'static str, &'static [&'static str]),
    Enum(&'static str, &'static [&'static str]),
}

/// Makes `call` with `visitor` on the first argument's deserializer.
struct First<V> {
    call: Call,
    visitor: V,
}

impl<'de, V: Visitor<'de>> DeserializeSeed<'de> for First<V> {
    type Value = V::Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        let v = self.visitor;
        match self.call {
            Call::Any => d.deserialize_any(v),
            Call::Bool => d.deserialize_bool(v),
            Call::I8 => d.deserialize_i8(v),
            Call::I16 => d.deserialize_i16(v),
            Call::I32 => d.deserialize_i32(v),
            Call::I64 => d.deserialize_i64(v),
            Call::I128 => d.deserialize_i128(v),
            Call::U8 => d.deserialize_u8(v),
            Call::U16 => d.deserialize_u16(v),
            Call::U32 => d.deserialize_u32(v),
            Call::U64 => d.deserialize_u64(v),
            Call::U128 => d.deserialize_u128(v),
            Call::F32 => d.deserialize_f32(v),
            Call::F64 => d.deserialize_f64(v),
            Call::Char => d.deserialize_char(v),
            Call::Str => d.deserialize_str(v),
            Call::String => d.deserialize_string(v),
            Call::Bytes => d.deserialize_bytes(v),
            Call::ByteBuf => d.deserialize_byte_buf(v),
            Call::Option => d.deserialize_option(v),
            Call::Seq => d.deserialize_seq(v),
            Call::Map => d.deserialize_map(v),
            Call::Identifier => d.deserialize_identifier(v),
            Call::NewtypeStruct(name) => d.deserialize_newtype_struct(name, v),
            Call::TupleStruct(name, len) => d.deserialize_tuple_struct(name, len, v),
            Call::Struct(name, fields) => d.deserialize_struct(name, fields, v),
            Call::Enum(name, variants) => d.deserialize_enum(name, variants, v),
        }
    }
}

impl<'de, A: SeqAccess<'de>> Args<'_, A> {
    /// `call` on the first argument; an error when there is none (`from_args` reads `null` there).
    fn first<V: Visitor<'de>>(self, call: Call, visitor: V) -> Result<V::Value, A::Error> {
        self.seq
            .next_element_seed(First { call, visitor })?
            .ok_or_else(|| de::Error::custom("no argument"))
    }
}

macro_rules! first_arg {
    ($($method:ident => $call:ident $(($($arg:ident: $t:ty),*))?;)*) => {$(
        fn $method<V: Visitor<'de>>(
            self,
            $($($arg: $t,)*)?
            visitor: V,
        ) -> Result<V::Value, A::Error> {
            self.first(Call::$call $(($($arg),*))?, visitor)
        }
    )*};
}

impl<'de, A: SeqAccess<'de>> de::Deserializer<'de> for Args<'_, A> {
    type Error = A::Error;

    first_arg! {
        deserialize_any => Any;
        deserialize_bool => Bool;
        deserialize_i8 => I8;
        deserialize_i16 => I16;
        deserialize_i32 => I32;
        deserialize_i64 => I64;
        deserialize_i128 => I128;
        deserialize_u8 => U8;
        deserialize_u16 => U16;
        deserialize_u32 => U32;
        deserialize_u64 => U64;
        deserialize_u128 => U128;
        deserialize_f32 => F32;
        deserialize_f64 => F64;
        deserialize_char => Char;
        deserialize_str => Str;
        deserialize_string => String;
        deserialize_bytes => Bytes;
        deserialize_byte_buf => ByteBuf;
        deserialize_option => Option;
        deserialize_seq => Seq;
        deserialize_map => Map;
        deserialize_identifier => Identifier;
        deserialize_newtype_struct => NewtypeStruct(name: &'static str);
        deserialize_tuple_struct => TupleStruct(name: &'static str, len: usize);
        deserialize_struct => Struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum => Enum(name: &'static str, variants: &'static [&'static str]);
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, A::Error> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        visitor.visit_unit()
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, A::Error> {
        visitor.visit_unit()
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        visitor.visit_seq(Tuple {
            seq: self.seq,
            left: len,
        })
    }
}

/// The arguments a tuple reads, `left` more at most; a missing one is an error here (`from_args`
/// reads it as `null`).
struct Tuple<'a, A> {
    seq: &'a mut A,
    left: usize,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Tuple<'_, A> {
    type Error = A::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        match self.seq.next_element_seed(seed)? {
            Some(v) => Ok(Some(v)),
            None => Err(de::Error::custom("missing argument")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}
