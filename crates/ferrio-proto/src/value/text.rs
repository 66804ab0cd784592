//! Event arguments written straight from serde data to JSON text, without building [`Value`]s first.
//!
//! An emit used to turn its data into `Value`s ([`to_args`]), write them as text, and drop them: for a
//! small chat message, most of the emit's own work. This writer produces the text the encoder would
//! write for `to_args(data)`, byte for byte, in one pass. Each serde call is mapped as
//! [`ValueSerializer`](super::ser::ValueSerializer) maps it and then written as
//! [`Value::write_json`] writes that value (numbers through the same formatting, keys through the same
//! key rules, the same escaping).
//!
//! What it does not write, it leaves to the `Value` path, which the caller then takes (so the data's
//! `Serialize` runs a second time):
//! - byte buffers, which become attachments numbered in the order of the final value;
//! - serializers that misuse the map protocol (a value before its key, two keys in a row);
//! - a `Serialize` that drops an error it got and goes on (the text may then hold half a value);
//! - data nested deeper than [`MAX_DEPTH`].
//!
//! Which of these happened is kept beside the error itself, since an application's `Serialize` may
//! wrap the error into its own. So the two paths agree on every input: the same text, or the same
//! error.
//!
//! The one difference is a map that serializes the same key twice. A `Value` keeps the last entry
//! where the first stood, while the text carries both, and `JSON.parse` (and ferrio's own reader)
//! then keeps the last one where the first stood. So the receiver gets the same object.
//!
//! [`to_args`]: super::to_args
//! [`Value`]: super::Value
//! [`Value::write_json`]: super::Value::write_json

use super::ValueError;
use super::json::{write_escaped, write_number};
use super::ser::MapKeySerializer;
use serde::ser::{self, Impossible, Serialize};

/// Why the text was not written.
#[derive(Debug)]
pub(crate) enum TextError {
    /// Not for this writer (a byte buffer, a misused map): the `Value` path must run instead.
    Fallback,
    /// What `to_args` would have reported.
    Value(ValueError),
}

impl std::fmt::Display for TextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TextError::Fallback => f.write_str("left to the value path"),
            TextError::Value(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for TextError {}

impl ser::Error for TextError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        TextError::from(ValueError::Custom(msg.to_string()))
    }
}

impl From<ValueError> for TextError {
    fn from(e: ValueError) -> Self {
        trouble(|t| t.erred = true);
        TextError::Value(e)
    }
}

/// What went wrong while writing, kept beside the errors themselves: an application's `Serialize` may
/// wrap an error into its own (`Error::custom(format!(..))`) or drop it and go on, and the outcome
/// must still be the value path's.
#[derive(Debug, Clone, Copy, Default)]
struct Trouble {
    /// Something was left to the value path.
    fell: bool,
    /// An error was made (by this writer, or by the data's `Serialize`).
    erred: bool,
}

thread_local! {
    static TROUBLE: std::cell::Cell<Trouble> = const {
        std::cell::Cell::new(Trouble { fell: false, erred: false })
    };
}

fn trouble(f: impl FnOnce(&mut Trouble)) {
    TROUBLE.with(|c| {
        let mut t = c.get();
        f(&mut t);
        c.set(t);
    });
}

/// Leaves the data to the value path.
fn fallback() -> TextError {
    trouble(|t| t.fell = true);
    TextError::Fallback
}

/// The most arrays and objects written nested here. Deeper data takes the value path: what this
/// writer writes stays well within the 128 levels every ferrio reader accepts, so the client can read
/// its own text back (an emit that waits offline).
const MAX_DEPTH: u16 = 100;

/// Appends the arguments `data` stands for (as [`to_args`](super::to_args) reads it: a tuple is one
/// argument per element, `()` none, anything else one), each written as JSON and preceded by a comma,
/// except the first when `first_comma` is false.
pub(crate) fn write_args<T: Serialize + ?Sized>(
    out: &mut String,
    data: &T,
    first_comma: bool,
) -> Result<(), TextError> {
    // Saved and put back: the data's `Serialize` may itself emit (and so write) something else.
    let outer = TROUBLE.with(|c| c.replace(Trouble::default()));
    let result = data.serialize(Args {
        out,
        comma: first_comma,
    });
    let seen = TROUBLE.with(|c| c.replace(outer));
    // Left to the value path, whatever became of that error on its way up; or an error dropped by
    // the data's own code, after which the text may hold half a value.
    if seen.fell || (seen.erred && result.is_ok()) {
        // Not `fallback()`: that would mark the writer this one may be nested in.
        return Err(TextError::Fallback);
    }
    result
}

/// The top level of [`write_args`].
struct Args<'a> {
    out: &'a mut String,
    comma: bool,
}

impl<'a> Args<'a> {
    /// Starts the one argument this value is: its separator, then a writer for it.
    fn one(self) -> Json<'a> {
        if self.comma {
            self.out.push(',');
        }
        Json {
            out: self.out,
            depth: 0,
        }
    }
}

/// The elements of a top-level tuple, one argument each.
struct ArgsTuple<'a> {
    out: &'a mut String,
    comma: bool,
}

macro_rules! args_one {
    ($($method:ident($($arg:ident: $t:ty),*);)*) => {$(
        fn $method(self, $($arg: $t),*) -> Result<(), TextError> {
            self.one().$method($($arg),*)
        }
    )*};
}

impl<'a> ser::Serializer for Args<'a> {
    type Ok = ();
    type Error = TextError;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = ArgsTuple<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    with_leaf_methods!(args_one serialize_str(v: &str););

    /// `()`: no argument at all.
    fn serialize_unit(self) -> Result<(), TextError> {
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), TextError> {
        value.serialize(self.one())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), TextError> {
        // One argument, even around a tuple (as `to_args`).
        value.serialize(self.one())
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), TextError> {
        self.one()
            .serialize_newtype_variant(name, index, variant, value)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'a>, TextError> {
        self.one().serialize_seq(len)
    }

    fn serialize_tuple(self, _len: usize) -> Result<ArgsTuple<'a>, TextError> {
        Ok(ArgsTuple {
            out: self.out,
            comma: self.comma,
        })
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, TextError> {
        self.one().serialize_tuple_struct(name, len)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, TextError> {
        self.one()
            .serialize_tuple_variant(name, index, variant, len)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Compound<'a>, TextError> {
        self.one().serialize_map(len)
    }

    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Compound<'a>, TextError> {
        self.one().serialize_struct(name, len)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, TextError> {
        self.one()
            .serialize_struct_variant(name, index, variant, len)
    }
}

impl ser::SerializeTuple for ArgsTuple<'_> {
    type Ok = ();
    type Error = TextError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), TextError> {
        if self.comma {
            self.out.push(',');
        }
        self.comma = true;
        value.serialize(Json {
            out: self.out,
            depth: 0,
        })
    }

    fn end(self) -> Result<(), TextError> {
        Ok(())
    }
}

/// Writes one value.
struct Json<'a> {
    out: &'a mut String,
    /// The arrays and objects it stands in.
    depth: u16,
}

/// The depth inside `levels` more arrays or objects, or the value path for data nested too deep.
fn deeper(depth: u16, levels: u16) -> Result<u16, TextError> {
    match depth + levels {
        d if d > MAX_DEPTH => Err(fallback()),
        d => Ok(d),
    }
}

impl Json<'_> {
    fn raw(self, s: &str) -> Result<(), TextError> {
        self.out.push_str(s);
        Ok(())
    }

    fn integer(self, v: impl itoa::Integer) -> Result<(), TextError> {
        self.out.push_str(itoa::Buffer::new().format(v));
        Ok(())
    }

    /// A float as `Value::from` keeps it: a finite one as a number, the others as `null`.
    fn float(self, v: f64) -> Result<(), TextError> {
        match serde_json::Number::from_f64(v) {
            Some(n) => write_number(self.out, &n),
            None => self.out.push_str("null"),
        }
        Ok(())
    }

    /// `{"variant":` of an externally tagged enum variant; the caller closes it.
    fn open_variant(&mut self, variant: &str) {
        self.out.push('{');
        write_escaped(self.out, variant);
        self.out.push(':');
    }
}

/// Integers of 64 bits at most, written as they are.
macro_rules! integers {
    ($($method:ident($t:ty);)*) => {$(
        fn $method(self, v: $t) -> Result<(), TextError> {
            self.integer(v)
        }
    )*};
}

impl<'a> ser::Serializer for Json<'a> {
    type Ok = ();
    type Error = TextError;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), TextError> {
        self.raw(if v { "true" } else { "false" })
    }

    integers! {
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_u8(u8);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
    }

    fn serialize_i128(self, v: i128) -> Result<(), TextError> {
        // A JSON number of the value path holds 64 bits at most.
        if u64::try_from(v).is_ok() || i64::try_from(v).is_ok() {
            self.integer(v)
        } else {
            Err(ValueError::Custom("number out of range".into()).into())
        }
    }

    fn serialize_u128(self, v: u128) -> Result<(), TextError> {
        if u64::try_from(v).is_ok() {
            self.integer(v)
        } else {
            Err(ValueError::Custom("number out of range".into()).into())
        }
    }

    fn serialize_f32(self, v: f32) -> Result<(), TextError> {
        // Widened first, as `Value::from(f32)` does.
        self.float(f64::from(v))
    }

    fn serialize_f64(self, v: f64) -> Result<(), TextError> {
        self.float(v)
    }

    fn serialize_char(self, v: char) -> Result<(), TextError> {
        write_escaped(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), TextError> {
        write_escaped(self.out, v);
        Ok(())
    }

    fn serialize_bytes(self, _v: &[u8]) -> Result<(), TextError> {
        // A blob is an attachment with a placeholder: the value path writes those.
        Err(fallback())
    }

    fn serialize_none(self) -> Result<(), TextError> {
        self.raw("null")
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), TextError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), TextError> {
        self.raw("null")
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), TextError> {
        self.raw("null")
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), TextError> {
        write_escaped(self.out, variant);
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), TextError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), TextError> {
        let depth = deeper(self.depth, 1)?;
        self.open_variant(variant);
        value.serialize(Json {
            out: &mut *self.out,
            depth,
        })?;
        self.out.push('}');
        Ok(())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a>, TextError> {
        self.out.push('[');
        Ok(Compound::new(self.out, "]", deeper(self.depth, 1)?))
    }

    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>, TextError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, TextError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, TextError> {
        self.open_variant(variant);
        self.out.push('[');
        Ok(Compound::new(self.out, "]}", deeper(self.depth, 2)?))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a>, TextError> {
        self.out.push('{');
        Ok(Compound::new(self.out, "}", deeper(self.depth, 1)?))
    }

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Compound<'a>, TextError> {
        self.serialize_map(Some(len))
    }

    fn serialize_struct_variant(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, TextError> {
        self.open_variant(variant);
        self.out.push('{');
        Ok(Compound::new(self.out, "}}", deeper(self.depth, 2)?))
    }
}

/// An array or object being written (and, for enum variants, the object around it).
struct Compound<'a> {
    out: &'a mut String,
    first: bool,
    /// A map's key was written and its value is due.
    value_due: bool,
    close: &'static str,
    /// The arrays and objects its elements stand in.
    depth: u16,
}

impl<'a> Compound<'a> {
    fn new(out: &'a mut String, close: &'static str, depth: u16) -> Self {
        Compound {
            out,
            first: true,
            value_due: false,
            close,
            depth,
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), TextError> {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        value.serialize(Json {
            out: &mut *self.out,
            depth: self.depth,
        })
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), TextError> {
        if self.value_due {
            return Err(fallback());
        }
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        write_escaped(self.out, key);
        self.out.push(':');
        value.serialize(Json {
            out: &mut *self.out,
            depth: self.depth,
        })
    }

    fn end(self) -> Result<(), TextError> {
        if self.value_due {
            return Err(fallback());
        }
        self.out.push_str(self.close);
        Ok(())
    }
}

/// serde's four sequence traits, each writing an element.
macro_rules! sequence_impls {
    ($($tr:ident::$method:ident;)*) => {$(
        impl ser::$tr for Compound<'_> {
            type Ok = ();
            type Error = TextError;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), TextError> {
                self.element(value)
            }

            fn end(self) -> Result<(), TextError> {
                Compound::end(self)
            }
        }
    )*};
}

sequence_impls! {
    SerializeSeq::serialize_element;
    SerializeTuple::serialize_element;
    SerializeTupleStruct::serialize_field;
    SerializeTupleVariant::serialize_field;
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = TextError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), TextError> {
        if self.value_due {
            // Two keys in a row: the value path keeps only the second; leave it to that path.
            return Err(fallback());
        }
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        key.serialize(Key {
            out: &mut *self.out,
        })?;
        self.out.push(':');
        self.value_due = true;
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), TextError> {
        if !self.value_due {
            return Err(fallback());
        }
        self.value_due = false;
        value.serialize(Json {
            out: &mut *self.out,
            depth: self.depth,
        })
    }

    fn end(self) -> Result<(), TextError> {
        Compound::end(self)
    }
}

/// serde's two struct traits, each writing a named field.
macro_rules! struct_impls {
    ($($tr:ident;)*) => {$(
        impl ser::$tr for Compound<'_> {
            type Ok = ();
            type Error = TextError;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), TextError> {
                self.field(key, value)
            }

            fn end(self) -> Result<(), TextError> {
                Compound::end(self)
            }
        }
    )*};
}

struct_impls! {
    SerializeStruct;
    SerializeStructVariant;
}

/// Writes a map key: a string as it is, anything else through the value path's own key rules
/// ([`MapKeySerializer`]), so that numbers, chars and enum variants read the same.
struct Key<'a> {
    out: &'a mut String,
}

impl Key<'_> {
    fn via(self, key: Result<String, ValueError>) -> Result<(), TextError> {
        write_escaped(self.out, &key?);
        Ok(())
    }
}

macro_rules! key_via {
    ($($method:ident($($arg:ident: $t:ty),*);)*) => {$(
        fn $method(self, $($arg: $t),*) -> Result<(), TextError> {
            self.via(ser::Serializer::$method(MapKeySerializer, $($arg),*))
        }
    )*};
}

/// What a key cannot be, as [`MapKeySerializer`] refuses it.
fn not_a_key<T>() -> Result<T, TextError> {
    Err(ValueError::KeyMustBeAString.into())
}

impl ser::Serializer for Key<'_> {
    type Ok = ();
    type Error = TextError;
    type SerializeSeq = Impossible<(), TextError>;
    type SerializeTuple = Impossible<(), TextError>;
    type SerializeTupleStruct = Impossible<(), TextError>;
    type SerializeTupleVariant = Impossible<(), TextError>;
    type SerializeMap = Impossible<(), TextError>;
    type SerializeStruct = Impossible<(), TextError>;
    type SerializeStructVariant = Impossible<(), TextError>;

    with_leaf_methods!(key_via serialize_unit(););

    fn serialize_str(self, v: &str) -> Result<(), TextError> {
        write_escaped(self.out, v);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<(), TextError> {
        not_a_key()
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), TextError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), TextError> {
        not_a_key()
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, TextError> {
        not_a_key()
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, TextError> {
        not_a_key()
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, TextError> {
        not_a_key()
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, TextError> {
        not_a_key()
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, TextError> {
        not_a_key()
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, TextError> {
        not_a_key()
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, TextError> {
        not_a_key()
    }
}

#[cfg(test)]
mod tests {
    use crate::socket::{Encoded, encode_ack, encode_ack_from, encode_event, encode_event_from};
    use crate::value::{Value, to_args};
    use serde::Serialize;
    use serde::ser::{SerializeMap, Serializer};
    use std::collections::{BTreeMap, HashMap};

    /// What the direct writer gives for `data`, checked against `to_args` and the encoder, as an
    /// event (in two namespaces, with and without an ack id) and as an ack.
    fn check<T: Serialize + ?Sized>(data: &T) -> Result<Option<Encoded>, String> {
        let mut first = None;
        for (nsp, id) in [("/", None), ("/chat", Some(7))] {
            let direct = encode_event_from(nsp, "ev\"ent", data, id);
            let via = to_args(data).map(|a| encode_event(nsp, "ev\"ent", &a, id));
            let got = agree(direct, via)?;
            let ack = agree(
                encode_ack_from(nsp, data, 3),
                to_args(data).map(|a| encode_ack(nsp, &a, 3)),
            )?;
            assert_eq!(got.is_none(), ack.is_none());
            // In two steps (the text, then the frame around it), the same frame.
            if let Some(frame) = &got {
                let text = crate::socket::event_text_from("ev\"ent", data)
                    .unwrap()
                    .unwrap();
                assert_eq!(&crate::socket::encode_event_text(nsp, &text, id), frame);
            } else {
                assert!(matches!(
                    crate::socket::event_text_from("e", data),
                    Ok(None)
                ));
            }
            first.get_or_insert(got);
        }
        Ok(first.flatten())
    }

    fn agree(
        direct: Result<Option<Encoded>, crate::value::ValueError>,
        via: Result<Encoded, crate::value::ValueError>,
    ) -> Result<Option<Encoded>, String> {
        match (direct, via) {
            (Ok(Some(d)), Ok(v)) => {
                assert_eq!(d, v);
                Ok(Some(d))
            }
            // Left to the value path: only data with blobs (or a misused map) is.
            (Ok(None), Ok(v)) => {
                assert!(!v.attachments.is_empty(), "left to the value path: {v:?}");
                Ok(None)
            }
            (Ok(None), Err(e)) => Err(e.to_string()),
            (Err(a), Err(b)) => {
                assert_eq!(a.to_string(), b.to_string());
                Err(a.to_string())
            }
            (d, v) => panic!("direct {d:?}, value path {v:?}"),
        }
    }

    fn text<T: Serialize + ?Sized>(data: &T) -> String {
        let e = check(data).unwrap().expect("written directly");
        let crate::engine::Frame::Text(t) = e.head else {
            panic!("a text frame")
        };
        t.to_string()
    }

    #[derive(Serialize)]
    struct Chat<'a> {
        from: &'a str,
        room: Option<&'a str>,
        text: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        n: f32,
    }

    #[derive(Serialize)]
    enum E {
        Unit,
        New(i32),
        Tup(u8, &'static str),
        St { a: bool, b: Vec<u8> },
    }

    #[derive(Serialize)]
    struct UnitS;

    #[derive(Serialize)]
    struct NewT((u8, u8));

    #[derive(Serialize)]
    struct TupS(i8, char);

    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
    enum K {
        A,
    }

    #[test]
    fn writes_what_to_args_and_the_encoder_write() {
        let chat = Chat {
            from: "x\ny",
            room: None,
            text: "héllo \u{1}😀".into(),
            skipped: None,
            n: 0.1,
        };
        assert_eq!(
            text(&chat),
            "42[\"ev\\\"ent\",{\"from\":\"x\\ny\",\"room\":null,\"text\":\"héllo \\u0001😀\",\"n\":0.10000000149011612}]"
        );
        // Spread and not spread, as `to_args` reads them.
        assert_eq!(text(&()), "42[\"ev\\\"ent\"]");
        assert_eq!(text(&(1, "a", ())), "42[\"ev\\\"ent\",1,\"a\",null]");
        assert_eq!(text(&vec![1, 2]), "42[\"ev\\\"ent\",[1,2]]");
        assert_eq!(text(&NewT((1, 2))), "42[\"ev\\\"ent\",[1,2]]");
        assert_eq!(text(&Some(())), "42[\"ev\\\"ent\",null]");
        assert_eq!(text(&None::<u8>), "42[\"ev\\\"ent\",null]");
        for data in [
            serde_json::json!({"from": "a", "room": "r", "text": "t", "n": [1, -2, 2.5, null, true]}),
            serde_json::json!("just a string"),
            serde_json::json!(null),
            serde_json::json!([]),
        ] {
            text(&data);
        }
        text(&(UnitS, TupS(-3, '"'), E::Unit, E::New(-1), E::Tup(2, "x")));
        text(&E::St {
            a: true,
            b: vec![1],
        });
        text(&(
            f64::NAN,
            f32::INFINITY,
            -0.0f64,
            1e300f64,
            5e-324f64,
            i64::MIN,
            u64::MAX,
        ));
        text(&(
            i128::from(u64::MAX),
            i128::from(i64::MIN),
            u128::from(u64::MAX),
        ));
        text(&Value::from(vec![Value::from("v"), Value::Null]));
        // Keys other than strings, through the same key rules.
        let mut m = BTreeMap::new();
        m.insert(-1i64, "a");
        m.insert(2, "b");
        text(&m);
        text(&BTreeMap::from([(true, 1)]));
        text(&BTreeMap::from([('k', 1)]));
        text(&BTreeMap::from([(K::A, 1)]));
        text(&HashMap::from([("only", 1.5f32)]));
        text(&BTreeMap::from([(UnitS2(1.5), 1)]));
    }

    /// A float key, through a newtype (floats are not `Ord`, so ordered by hand).
    #[derive(Serialize)]
    struct UnitS2(f64);
    impl PartialEq for UnitS2 {
        fn eq(&self, o: &Self) -> bool {
            self.cmp(o).is_eq()
        }
    }
    impl Eq for UnitS2 {}
    impl PartialOrd for UnitS2 {
        fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for UnitS2 {
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            self.0.total_cmp(&o.0)
        }
    }

    #[test]
    fn errors_are_those_of_to_args() {
        for e in [
            check(&i128::MAX).unwrap_err(),
            check(&(1, u128::MAX)).unwrap_err(),
            check(&BTreeMap::from([(vec![1], 1)])).unwrap_err(),
            check(&BTreeMap::from([(Some(1), 1)])).unwrap_err(),
            check(&BTreeMap::from([((), 1)])).unwrap_err(),
            check(&BTreeMap::from([(UnitS2(f64::NAN), 1)])).unwrap_err(),
        ] {
            assert!(!e.is_empty());
        }
    }

    #[test]
    fn blobs_are_left_to_the_value_path() {
        let blob = serde_bytes::ByteBuf::from(vec![1, 2]);
        assert!(check(&blob).unwrap().is_none());
        assert!(check(&(1, vec![Some(&blob)])).unwrap().is_none());
        assert!(
            check(&Value::from(bytes::Bytes::from_static(b"x")))
                .unwrap()
                .is_none()
        );
    }

    /// A `Serialize` that misuses the map protocol.
    enum Misused {
        ValueFirst,
        TwoKeys,
        KeyLast,
        DuplicateKey,
    }

    impl Serialize for Misused {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(None)?;
            match self {
                Misused::ValueFirst => m.serialize_value(&1)?,
                Misused::TwoKeys => {
                    m.serialize_key("a")?;
                    m.serialize_key("b")?;
                    m.serialize_value(&1)?;
                }
                Misused::KeyLast => m.serialize_key("a")?,
                Misused::DuplicateKey => {
                    m.serialize_entry("a", &1)?;
                    m.serialize_entry("b", &2)?;
                    m.serialize_entry("a", &3)?;
                }
            }
            m.end()
        }
    }

    #[test]
    fn a_misused_map_is_left_to_the_value_path() {
        for m in [Misused::ValueFirst, Misused::TwoKeys, Misused::KeyLast] {
            assert!(matches!(encode_event_from("/", "e", &m, None), Ok(None)));
        }
        // The same key twice: both entries are written; a reader keeps the last value where the first
        // stood, which is what the value path keeps.
        let Some(e) = encode_event_from("/", "e", &Misused::DuplicateKey, None).unwrap() else {
            panic!("written directly")
        };
        let crate::engine::Frame::Text(t) = e.head else {
            panic!("a text frame")
        };
        assert_eq!(&*t, r#"42["e",{"a":1,"b":2,"a":3}]"#);
        let read = Value::from_json(&t[2..]).unwrap();
        let kept = Value::from(to_args(&("e", Misused::DuplicateKey)).unwrap());
        assert_eq!(read, kept);
        // serde's own writer agrees on what it writes.
        let json = serde_json::to_string(&Misused::DuplicateKey).unwrap();
        assert_eq!(json, r#"{"a":1,"b":2,"a":3}"#);
    }
}

#[cfg(test)]
mod trouble_tests {
    use crate::socket::encode_event_from;
    use crate::value::to_args;
    use serde::ser::{Error as _, SerializeSeq};
    use serde::{Serialize, Serializer};

    /// A blob whose `Serialize` wraps the error it gets into its own.
    struct Wrapped;
    impl Serialize for Wrapped {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&[1, 2])
                .map_err(|e| S::Error::custom(format_args!("blob: {e}")))
        }
    }

    /// A sequence whose `Serialize` drops an element's error and goes on.
    struct Dropping;
    impl Serialize for Dropping {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(None)?;
            let _ = seq.serialize_element(&i128::MAX);
            seq.serialize_element(&1)?;
            seq.end()
        }
    }

    /// Emits a blob itself while being written (so a nested writer falls back), then writes a string.
    struct Nesting;
    impl Serialize for Nesting {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let inner = serde_bytes::Bytes::new(&[1]);
            assert!(matches!(
                encode_event_from("/", "x", &inner, None),
                Ok(None)
            ));
            s.serialize_str("fine")
        }
    }

    #[test]
    fn a_wrapped_fallback_still_takes_the_value_path() {
        assert!(matches!(
            encode_event_from("/", "e", &Wrapped, None),
            Ok(None)
        ));
        assert!(to_args(&Wrapped).unwrap()[0].as_bytes().is_some());
    }

    #[test]
    fn a_dropped_error_leaves_the_data_to_the_value_path() {
        assert!(matches!(
            encode_event_from("/", "e", &Dropping, None),
            Ok(None)
        ));
        // The value path keeps what was written before and after the dropped element.
        let one = crate::value::Value::Array(vec![1u64.into()]);
        assert_eq!(to_args(&Dropping).unwrap(), [one]);
    }

    #[test]
    fn a_nested_writer_falling_back_leaves_the_outer_one_alone() {
        let Some(e) = encode_event_from("/", "e", &Nesting, None).unwrap() else {
            panic!("written directly")
        };
        assert_eq!(
            e.head,
            crate::engine::Frame::Text(r#"42["e","fine"]"#.into())
        );
    }

    #[test]
    fn deep_data_takes_the_value_path_and_shallower_data_reads_back() {
        let nest = |n: usize| {
            let mut v = crate::value::Value::Null;
            for _ in 0..n {
                v = crate::value::Value::Array(vec![v]);
            }
            v
        };
        assert!(matches!(
            encode_event_from("/", "e", &nest(101), None),
            Ok(None)
        ));
        assert_eq!(to_args(&nest(101)).unwrap().len(), 1);
        let Some(e) = encode_event_from("/", "e", &nest(100), None).unwrap() else {
            panic!("written directly")
        };
        let crate::engine::Frame::Text(t) = e.head else {
            panic!("a text frame")
        };
        assert!(crate::value::Value::from_json(&t[2..]).is_ok());
        // The depth is counted afresh for each emit (nothing left over from the refused one).
        assert!(
            encode_event_from("/", "e", &nest(3), None)
                .unwrap()
                .is_some()
        );
    }
}
