//! Property tests: JSON + attachments round trips, agreement with serde_json's writer, MessagePack round
//! trips.

use super::{Value, from_value, to_value};
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::Number;

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\x00-\\x1f\"\\\\/a-z\u{7f}\u{e9}\u{2028}\u{1f600}]{0,8}",
    ]
}

fn arb_key() -> impl Strategy<Value = String> {
    arb_string().prop_filter("not a placeholder marker", |k| k != "_placeholder")
}

/// Arbitrary values nested at most 5 levels deep; blobs only when `binary`.
fn arb_value(binary: bool) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        (-1000i32..1000, 0u32..4)
            .prop_map(|(m, e)| Value::from(f64::from(m) / 10f64.powi(e as i32))),
        arb_string().prop_map(Value::String),
        vec(any::<u8>(), 0..16).prop_map(move |b| if binary {
            Value::from(b)
        } else {
            Value::Null
        }),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((arb_key(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn sort_keys(v: &mut Value) {
    match v {
        Value::Array(a) => a.iter_mut().for_each(sort_keys),
        Value::Object(m) => {
            m.sort_keys();
            m.values_mut().for_each(sort_keys);
        }
        _ => {}
    }
}

fn to_serde_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null | Value::Binary(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Number(n) => serde_json::Value::Number(n.clone()),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_serde_json).collect()),
        Value::Object(m) => serde_json::Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), to_serde_json(v)))
                .collect(),
        ),
    }
}

/// What a value is after a MessagePack round trip: a float with an integer value becomes that integer, as
/// notepack writes it (JavaScript has one number type).
fn as_notepack_reads_it(v: &Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or_default();
            if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f) {
                Value::from(f as u64)
            } else if f.fract() == 0.0 && (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
                Value::from(f as i64)
            } else {
                v.clone()
            }
        }
        Value::Array(a) => Value::Array(a.iter().map(as_notepack_reads_it).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), as_notepack_reads_it(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn msgpack_round_trips(v in arb_value(true)) {
        let bytes = super::msgpack::encode(&v);
        let expected = as_notepack_reads_it(&v);
        prop_assert_eq!(super::msgpack::decode(&bytes).unwrap(), expected.clone());
        prop_assert_eq!(super::msgpack::decode_bytes(&bytes.into()).unwrap(), expected);
    }

    #[test]
    fn msgpack_event_packets_round_trip(
        args in vec(arb_value(true), 0..4),
        event in "[a-z]{1,8}".prop_filter("not reserved", |e| !crate::socket::is_reserved_event(e)),
        id in proptest::option::of(any::<u64>()),
        nsp in "/[a-z]{0,6}",
    ) {
        use crate::engine::{Data, Frame};
        use crate::socket::{MsgpackParser, Packet, Parser};
        let expected = Packet::Event {
            nsp: nsp.clone(),
            event: event.clone(),
            args: args.iter().map(as_notepack_reads_it).collect(),
            id,
        };
        let packet = Packet::Event { nsp, event, args, id };
        let Frame::Binary(b) = MsgpackParser::new().encode(&packet).head else {
            panic!("a binary frame");
        };
        let back = MsgpackParser::new().decoder().decode(Data::Binary(b)).unwrap().unwrap();
        prop_assert_eq!(back, expected);
    }

    #[test]
    fn json_and_attachments_round_trip(v in arb_value(true)) {
        let mut text = String::new();
        let mut atts = Vec::new();
        v.write_json(&mut text, &mut atts);
        prop_assert_eq!(atts.is_empty(), !v.has_binary());
        let back = Value::from_json(&text).unwrap().resolve_placeholders(&atts).unwrap();
        prop_assert_eq!(back, v);
    }

    #[test]
    fn write_json_agrees_with_serde_json(v in arb_value(false)) {
        let (text, atts) = v.to_json();
        prop_assert!(atts.is_empty());
        // serde_json writing the same structure directly...
        prop_assert_eq!(&text, &serde_json::to_string(&v).unwrap());
        // ...and through serde_json::Value (whose map sorts keys: compare on sorted keys).
        let mut sorted = v.clone();
        sort_keys(&mut sorted);
        prop_assert_eq!(sorted.to_json().0, serde_json::to_string(&to_serde_json(&sorted)).unwrap());
        // The text is what serde_json::Value parses back into the same thing.
        let sj: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mine: serde_json::Value = from_value(Value::from_json(&text).unwrap()).unwrap();
        prop_assert_eq!(sj, mine);
    }

    #[test]
    fn serde_bridge_round_trips(v in arb_value(true)) {
        prop_assert_eq!(to_value(&v).unwrap(), v.clone());
        prop_assert_eq!(from_value::<Value>(v.clone()).unwrap(), v);
    }

    #[test]
    fn reading_borrowed_arguments_reads_what_reading_owned_ones_does(
        args in prop::collection::vec(arb_value(true), 0..4)
    ) {
        use super::{from_args, from_args_ref};
        prop_assert_eq!(from_args_ref::<Value>(&args).unwrap(), from_args::<Value>(args.clone()).unwrap());
        // serde_json's own value reads blobs as arrays of numbers, through the sequence path.
        prop_assert_eq!(
            from_args_ref::<(serde_json::Value, Option<serde_json::Value>)>(&args).ok(),
            from_args::<(serde_json::Value, Option<serde_json::Value>)>(args.clone()).ok()
        );
        prop_assert_eq!(
            from_args_ref::<(Value, Value, Value, Value)>(&args).unwrap(),
            from_args::<(Value, Value, Value, Value)>(args.clone()).unwrap()
        );
    }

    #[test]
    fn the_quick_reader_agrees_with_the_full_parser_on_what_it_reads(v in arb_value(false)) {
        let (text, _) = v.to_json();
        let quick = super::quick::parse(&text);
        let full = Value::from_json_fully(&text).ok();
        prop_assert!(quick.is_none() || quick == full, "{}", text);
        prop_assert_eq!(Value::from_json(&text).ok(), full);
    }

    #[test]
    fn the_quick_reader_never_reads_what_the_full_parser_would_not(
        text in "[\\[\\]{}:,\" \\\\\\-+.eE0-9a-z\u{1}\u{e9}]{0,24}"
    ) {
        let full = Value::from_json_fully(&text).ok();
        if let Some(quick) = super::quick::parse(&text) {
            prop_assert_eq!(Some(quick), full.clone(), "{}", text);
        }
        prop_assert_eq!(Value::from_json(&text).ok(), full);
    }

    #[test]
    fn emits_written_straight_from_data_are_what_the_value_path_writes(
        a in arb_value(true),
        b in arb_value(false),
        id in proptest::option::of(any::<u64>()),
    ) {
        use crate::socket::{encode_event, encode_event_from};
        use super::to_args;
        let same = |direct: Option<crate::socket::Encoded>, args: Vec<Value>| {
            let via = encode_event("/n", "e", &args, id);
            match direct {
                Some(d) => d == via,
                // Left to the value path only for blobs.
                None => !via.attachments.is_empty(),
            }
        };
        prop_assert!(same(encode_event_from("/n", "e", &a, id).unwrap(), to_args(&a).unwrap()));
        let pair = (&a, &b);
        prop_assert!(same(encode_event_from("/n", "e", &pair, id).unwrap(), to_args(&pair).unwrap()));
        // Through another Serialize implementation of the same tree (serde_json's, blobs as null).
        let j = to_serde_json(&a);
        prop_assert!(same(encode_event_from("/n", "e", &j, id).unwrap(), to_args(&j).unwrap()));
    }
}

/// Whether `e` is written with an escape (a quote, a backslash or a control character).
fn needs_escape(e: &str) -> bool {
    e.chars().any(|c| c == '"' || c == '\\' || c < ' ')
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// An event read without its packet (`Decoder::plain_event`) is the packet `decode_text` makes of
    /// the same text, and every event whose name needs no escape is read that way.
    #[test]
    fn plain_events_are_what_the_decoder_makes_of_them(
        args in vec(arb_value(false), 0..4),
        event in arb_string(),
        id in proptest::option::of(any::<u64>()),
        nsp in prop_oneof![Just("/".to_owned()), "/[a-z]{1,6}"],
        spaced in any::<bool>(),
    ) {
        use crate::socket::{Decoder, Packet};
        let crate::engine::Frame::Text(frame) = crate::socket::encode_event(&nsp, &event, &args, id).head
        else {
            panic!("a text frame");
        };
        // Without the Engine.IO message type; when `spaced`, with whitespace after the array's
        // opening bracket, before the comma after the name, and after the array.
        let mut text = frame[1..].to_owned();
        if spaced {
            let at = text.find('[').unwrap();
            text.insert_str(at + 1, " \n");
            if !args.is_empty() && !needs_escape(&event) {
                // The first comma after the name's closing quote (the name has no escaped quote).
                let name_end = text[at + 4..].find('"').unwrap() + at + 4;
                text.insert(name_end + 1, '\t');
            }
            text.push(' ');
        }
        let mut decoder = Decoder::new(10);
        let plain = decoder.plain_event(&text);
        let decoded = decoder.decode_text(&text);
        match plain {
            Some(plain) => prop_assert_eq!(decoded, Ok(Some(Packet::from(plain)))),
            None => prop_assert!(
                needs_escape(&event) || crate::socket::is_reserved_event(&event),
                "{text:?} was left to the decoder"
            ),
        }
    }

    /// No text at all is read as an event that `decode_text` reads otherwise (or refuses).
    #[test]
    fn plain_events_of_any_text_agree_with_the_decoder(
        text in prop_oneof![
            "2[/a-z,0-9]{0,6}\\[[\"a-z0-9,\\[\\]{}: \\\\]{0,24}",
            any::<String>().prop_map(|s| format!("2{s}")),
        ],
    ) {
        use crate::socket::{Decoder, Packet};
        let mut decoder = Decoder::new(10);
        if let Some(p) = decoder.plain_event(&text) {
            prop_assert_eq!(decoder.decode_text(&text), Ok(Some(Packet::from(p))));
        }
    }
}

/// The shapes a listener reads its arguments into, for the agreement of the two readings below.
mod targets {
    use std::collections::{BTreeMap, HashMap};

    use serde::Deserialize;

    #[derive(Debug, PartialEq, Deserialize)]
    pub struct Chat {
        pub room: Option<String>,
        pub text: String,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    pub struct Defaults {
        #[serde(default)]
        pub n: u32,
        #[serde(default)]
        pub tags: Vec<String>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    pub enum Tagged {
        Unit,
        Newtype(u32),
        Tuple(i64, String),
        Struct { x: bool },
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(untagged)]
    pub enum Untagged {
        Number(u64),
        Text(String),
        List(Vec<Untagged>),
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(tag = "type")]
    pub enum Internal {
        Join { room: String },
        Leave,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    pub struct Flat {
        pub a: Option<i32>,
        #[serde(flatten)]
        pub rest: HashMap<String, serde_json::Value>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    pub struct Newtype(pub Vec<bool>);

    pub type Keys = BTreeMap<u32, serde_json::Value>;
}

/// `from_payload::<T>` agrees with `from_args::<T>` on the arguments of `text` wherever it answers.
fn agrees<T>(text: &str, args: &[Value]) -> Result<(), TestCaseError>
where
    T: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Some(direct) = super::from_payload::<T>(text) {
        prop_assert_eq!(
            super::from_args_ref::<T>(args).ok(),
            Some(direct),
            "{} from {}",
            std::any::type_name::<T>(),
            text
        );
    }
    Ok(())
}

/// `from_payload::<T>` reads `text` whenever `from_args` reads its arguments into `T` and there are at
/// least `least` of them.
fn direct<T>(text: &str, args: &[Value], least: usize) -> Result<(), TestCaseError>
where
    T: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Ok(v) = super::from_args_ref::<T>(args)
        && args.len() >= least
    {
        prop_assert_eq!(
            super::from_payload::<T>(text),
            Some(v),
            "{} from {}",
            std::any::type_name::<T>(),
            text
        );
    }
    Ok(())
}

/// One of `words`, or a string matching `pattern`, each as likely as one word: the names the targets
/// above know, and some they do not.
fn word_or(words: &'static [&'static str], pattern: &'static str) -> impl Strategy<Value = String> {
    let weight = u32::try_from(words.len()).unwrap_or(u32::MAX);
    prop_oneof![
        weight => proptest::sample::select(words).prop_map(str::to_owned),
        1 => pattern,
    ]
}

/// Values more likely to fit the targets above than arbitrary ones.
fn arb_fitting() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (0u64..300).prop_map(Value::from),
        (-300i64..0).prop_map(Value::from),
        Just(Value::from(18_446_744_073_709_551_615u64)),
        Just(Value::from(1.5)),
        word_or(
            &["room", "text", "type", "Join", "Unit", "Newtype", "7"],
            "[a-z\"\\\\é]{0,3}",
        )
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec(
                (
                    word_or(
                        &[
                            "room", "text", "n", "tags", "type", "x", "a", "Struct", "Tuple",
                            "Newtype", "12",
                        ],
                        "[a-z]{1,2}",
                    ),
                    inner
                ),
                0..4
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The reader that only checks a payload (`event_name`) accepts exactly what the one building
    /// its values (`event`) accepts, and finds the same name.
    #[test]
    fn checking_a_payload_accepts_what_reading_it_does(
        text in prop_oneof![
            "[ ]?\\[[ ]?\"[a-z]{0,3}\"[\"a-z0-9,.eE+\\-\\[\\]{}: \\\\]{0,24}",
            any::<String>(),
        ],
    ) {
        prop_assert_eq!(
            super::quick::event_name(&text),
            super::quick::event(&text).map(|(name, _)| name)
        );
    }

    /// Arguments read straight from the payload's text into a listener's type are what the
    /// arguments' values give, for every shape of target; the usual ones are read that way.
    #[test]
    fn arguments_read_from_text_are_those_read_from_values(
        args in vec(prop_oneof![arb_fitting(), arb_value(false)], 0..4),
        spaced in any::<bool>(),
    ) {
        use std::collections::HashMap;
        use targets::*;
        let sep = if spaced { " , " } else { "," };
        let mut text = String::from(if spaced { " [ \"ev\"" } else { "[\"ev\"" });
        for a in &args {
            text.push_str(sep);
            text.push_str(&serde_json::to_string(&to_serde_json(a)).unwrap());
        }
        text.push(']');
        let read = super::quick::event(&text);
        prop_assume!(read.is_some());
        let (_, read) = read.unwrap();
        prop_assert_eq!(&read, &args);

        agrees::<serde_json::Value>(&text, &args)?;
        agrees::<Value>(&text, &args)?;
        agrees::<Option<serde_json::Value>>(&text, &args)?;
        agrees::<(serde_json::Value, serde_json::Value)>(&text, &args)?;
        agrees::<(Option<String>, Option<u8>, Value)>(&text, &args)?;
        agrees::<()>(&text, &args)?;
        agrees::<String>(&text, &args)?;
        agrees::<Option<String>>(&text, &args)?;
        agrees::<char>(&text, &args)?;
        agrees::<bool>(&text, &args)?;
        agrees::<u8>(&text, &args)?;
        agrees::<u64>(&text, &args)?;
        agrees::<i64>(&text, &args)?;
        agrees::<f64>(&text, &args)?;
        agrees::<f32>(&text, &args)?;
        agrees::<Vec<serde_json::Value>>(&text, &args)?;
        agrees::<Vec<u8>>(&text, &args)?;
        agrees::<HashMap<String, serde_json::Value>>(&text, &args)?;
        agrees::<Keys>(&text, &args)?;
        agrees::<Chat>(&text, &args)?;
        agrees::<(Chat, Option<Chat>)>(&text, &args)?;
        agrees::<Defaults>(&text, &args)?;
        agrees::<Tagged>(&text, &args)?;
        agrees::<Untagged>(&text, &args)?;
        agrees::<Internal>(&text, &args)?;
        agrees::<Flat>(&text, &args)?;
        agrees::<Newtype>(&text, &args)?;

        // What listeners usually ask for is read from the text whenever the values give it and
        // every argument it reads was sent.
        direct::<serde_json::Value>(&text, &args, 1)?;
        direct::<Option<String>>(&text, &args, 1)?;
        direct::<String>(&text, &args, 1)?;
        direct::<u64>(&text, &args, 1)?;
        direct::<Chat>(&text, &args, 1)?;
        direct::<Vec<serde_json::Value>>(&text, &args, 1)?;
        direct::<(serde_json::Value, Option<u8>)>(&text, &args, 2)?;
        direct::<()>(&text, &args, 0)?;
    }
}
