//! JSON text ⇄ [`Value`], and the binary placeholder convention of the Socket.IO parser.

use super::{Value, ValueError};
use bytes::Bytes;
use serde::Deserialize;

/// The key that marks a binary placeholder object.
const PLACEHOLDER: &str = "_placeholder";

impl Value {
    /// Parses JSON text (nesting limited to 128 levels); strings stay strings, placeholders stay objects.
    pub fn from_json(text: &str) -> Result<Value, ValueError> {
        if let Some(value) = super::quick::parse(text) {
            return Ok(value);
        }
        Value::from_json_fully(text)
    }

    /// The full parser (serde_json's), for every text the quick reader leaves to it.
    pub(super) fn from_json_fully(text: &str) -> Result<Value, ValueError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let value = Value::deserialize(&mut de).map_err(ValueError::from_json)?;
        de.end().map_err(ValueError::from_json)?;
        Ok(value)
    }

    /// Appends the `JSON.stringify` text of `self` to `out`, writing each blob as a placeholder and
    /// pushing it onto `attachments` (depth-first order; `num` counts from `attachments.len()`).
    pub fn write_json(&self, out: &mut String, attachments: &mut Vec<Bytes>) {
        self.write_json_with(out, &mut |out, b| {
            out.push_str("{\"_placeholder\":true,\"num\":");
            out.push_str(itoa::Buffer::new().format(attachments.len()));
            out.push('}');
            attachments.push(b.clone());
        });
    }

    /// The JSON writer, with blobs written by `binary` (a placeholder on the wire, a readable form in
    /// `Display`).
    fn write_json_with(&self, out: &mut String, binary: &mut dyn FnMut(&mut String, &Bytes)) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(true) => out.push_str("true"),
            Value::Bool(false) => out.push_str("false"),
            Value::Number(n) => write_number(out, n),
            Value::String(s) => write_escaped(out, s),
            Value::Binary(b) => binary(out, b),
            Value::Array(a) => {
                out.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_json_with(out, binary);
                }
                out.push(']');
            }
            Value::Object(m) => {
                out.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_escaped(out, k);
                    out.push(':');
                    v.write_json_with(out, binary);
                }
                out.push('}');
            }
        }
    }

    /// The `JSON.stringify` text of `self` and its blobs in placeholder order (see [`Value::write_json`]).
    pub fn to_json(&self) -> (String, Vec<Bytes>) {
        let mut out = String::new();
        let mut attachments = Vec::new();
        self.write_json(&mut out, &mut attachments);
        (out, attachments)
    }

    /// Replaces every `{"_placeholder":true,"num":N}` object by `attachments[N]`, strictly: each
    /// attachment must be referenced exactly once and any other object with a `_placeholder` key is an error.
    pub fn resolve_placeholders(mut self, attachments: &[Bytes]) -> Result<Value, ValueError> {
        let mut seen = vec![false; attachments.len()];
        let mut found = 0usize;
        // An explicit work list instead of recursion: one pointer per pending node, no stack growth.
        let mut pending: Vec<&mut Value> = vec![&mut self];
        while let Some(v) = pending.pop() {
            let num = match &*v {
                Value::Object(m) if m.contains_key(PLACEHOLDER) => {
                    Some(placeholder_index(m, attachments.len())?)
                }
                _ => None,
            };
            if let Some(n) = num {
                let slot = &mut seen[n];
                if *slot {
                    return Err(ValueError::DuplicateAttachment(n as u64));
                }
                *slot = true;
                found += 1;
                *v = Value::Binary(attachments[n].clone());
                continue;
            }
            match v {
                Value::Array(a) => pending.extend(a.iter_mut().rev()),
                Value::Object(m) => pending.extend(m.values_mut().rev()),
                _ => {}
            }
        }
        if found != attachments.len() {
            return Err(ValueError::AttachmentCount {
                placeholders: found,
                attachments: attachments.len(),
            });
        }
        Ok(self)
    }
}

/// Validates a placeholder object and returns the attachment index it names.
fn placeholder_index(m: &super::Map, attachments: usize) -> Result<usize, ValueError> {
    if m.len() != 2 {
        return Err(ValueError::InvalidPlaceholder(
            "must have exactly the keys `_placeholder` and `num`",
        ));
    }
    if m.get(PLACEHOLDER) != Some(&Value::Bool(true)) {
        return Err(ValueError::InvalidPlaceholder(
            "`_placeholder` must be the boolean true",
        ));
    }
    let num = match m.get("num") {
        Some(Value::Number(n)) => n.as_u64().ok_or(ValueError::InvalidPlaceholder(
            "`num` must be a non-negative integer",
        ))?,
        Some(_) => {
            return Err(ValueError::InvalidPlaceholder(
                "`num` must be a non-negative integer",
            ));
        }
        None => {
            return Err(ValueError::InvalidPlaceholder(
                "must have exactly the keys `_placeholder` and `num`",
            ));
        }
    };
    match usize::try_from(num) {
        Ok(n) if n < attachments => Ok(n),
        _ => Err(ValueError::InvalidPlaceholder(
            "`num` is not below the number of attachments",
        )),
    }
}

/// Writes a number exactly as serde_json does (integers verbatim, floats in shortest form).
pub(super) fn write_number(out: &mut String, n: &serde_json::Number) {
    if let Some(u) = n.as_u64() {
        out.push_str(itoa::Buffer::new().format(u));
    } else if let Some(i) = n.as_i64() {
        out.push_str(itoa::Buffer::new().format(i));
    } else {
        use std::fmt::Write;
        // Infallible for String; Number's Display is serde_json's own float formatting.
        let _ = write!(out, "{n}");
    }
}

/// Escape action per byte: 0 = verbatim, `u` = `\u00XX`, anything else = backslash + that char.
/// Identical to serde_json and to `JSON.stringify` for well-formed strings.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Writes `s` as a quoted JSON string literal.
pub(crate) fn write_escaped(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = ESCAPE[b as usize];
        if esc == 0 {
            continue;
        }
        // Escaped bytes are ASCII, so `start..i` lies on char boundaries.
        out.push_str(&s[start..i]);
        out.push('\\');
        if esc == b'u' {
            out.push_str("u00");
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        } else {
            out.push(esc as char);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin(b: &'static [u8]) -> Value {
        Value::Binary(Bytes::from_static(b))
    }

    #[test]
    fn from_json_parses_everything() {
        let v = Value::from_json(
            r#" ["chat", {"room":"r1","n":-5,"big":18446744073709551615,"f":1.5,"t":true,"z":null,"a":[]}] "#,
        )
        .unwrap();
        assert_eq!(v.get_index(0).and_then(Value::as_str), Some("chat"));
        let o = v.get_index(1).unwrap();
        assert_eq!(o.get("room").and_then(Value::as_str), Some("r1"));
        assert_eq!(o.get("n").and_then(Value::as_i64), Some(-5));
        assert_eq!(o.get("big").and_then(Value::as_u64), Some(u64::MAX));
        assert_eq!(o.get("f").and_then(Value::as_f64), Some(1.5));
        assert_eq!(o.get("t").and_then(Value::as_bool), Some(true));
        assert!(o.get("z").unwrap().is_null());
        assert_eq!(o.get("a").and_then(Value::as_array).map(Vec::len), Some(0));
        let keys: Vec<_> = o.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["room", "n", "big", "f", "t", "z", "a"]);
    }

    #[test]
    fn from_json_keeps_strings_and_placeholders_as_is() {
        let v = Value::from_json(r#"["AQID",{"_placeholder":true,"num":0}]"#).unwrap();
        assert_eq!(v.get_index(0), Some(&Value::from("AQID")));
        assert!(v.get_index(1).unwrap().as_object().is_some());
        assert!(!v.has_binary());
    }

    #[test]
    fn from_json_duplicate_key_replaces_in_first_position() {
        let v = Value::from_json(r#"{"a":1,"b":2,"a":3}"#).unwrap();
        assert_eq!(v.to_json().0, r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn from_json_rejects_bad_input() {
        for bad in ["", "[1,]", "{\"a\"}", "[1] x", "nul", "\"\\ud800\"", "01"] {
            assert!(
                matches!(Value::from_json(bad), Err(ValueError::Syntax(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn from_json_depth_limit_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(matches!(
            Value::from_json(&deep),
            Err(ValueError::TooDeep { line: 1, .. })
        ));
        let deep_obj = r#"{"a":"#.repeat(100_000);
        assert!(matches!(
            Value::from_json(&deep_obj),
            Err(ValueError::TooDeep { .. })
        ));
        let ok = format!("{}{}", "[".repeat(120), "]".repeat(120));
        assert!(Value::from_json(&ok).is_ok());
    }

    #[test]
    fn write_json_matches_json_stringify() {
        let text = r#"["chat",{"room":"r1","text":"hello world","ts":1700000000000,"neg":-1,"f":0.5,"e":1e+300,"ok":false,"nil":null,"nest":[[],{}]}]"#;
        let v = Value::from_json(text).unwrap();
        let (out, atts) = v.to_json();
        assert!(atts.is_empty());
        // serde_json writes 1e300 as `1e+300`, like JS.
        assert_eq!(out, text);
    }

    #[test]
    fn floats_round_trip_exactly() {
        // Needs serde_json's `float_roundtrip`: its default parser is off by 2 ULPs here.
        for text in [
            "-1.1010891775966935e-13",
            "0.1",
            "5e-324",
            "1.7976931348623157e+308",
            "2.5",
            "1.0",
        ] {
            assert_eq!(Value::from_json(text).unwrap().to_json().0, text);
        }
    }

    #[test]
    fn write_json_escapes_like_json_stringify() {
        let v = Value::from("q\"b\\s/\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f}é€😀\u{2028}");
        let (out, _) = v.to_json();
        assert_eq!(
            out,
            "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\u{7f}é€😀\u{2028}\""
        );
        assert_eq!(out, serde_json::to_string(v.as_str().unwrap()).unwrap());
        let k: Value = [("a\"\n", Value::Null)].into_iter().collect();
        assert_eq!(k.to_json().0, r#"{"a\"\n":null}"#);
    }

    #[test]
    fn write_json_emits_placeholders_in_depth_first_order() {
        let v = Value::Array(vec![
            Value::from("ev"),
            bin(b"one"),
            [("x", Value::Array(vec![bin(b"two")])), ("y", bin(b"three"))]
                .into_iter()
                .collect(),
        ]);
        assert!(v.has_binary());
        let mut out = String::from("451-");
        let mut atts = Vec::new();
        v.write_json(&mut out, &mut atts);
        assert_eq!(
            out,
            r#"451-["ev",{"_placeholder":true,"num":0},{"x":[{"_placeholder":true,"num":1}],"y":{"_placeholder":true,"num":2}}]"#
        );
        assert_eq!(atts, [&b"one"[..], b"two", b"three"]);
        let back = Value::from_json(&out[4..])
            .unwrap()
            .resolve_placeholders(&atts)
            .unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn resolve_placeholders_accepts_valid_and_any_order() {
        let atts = [Bytes::from_static(b"a"), Bytes::from_static(b"b")];
        let v = Value::from_json(
            r#"[{"num":1,"_placeholder":true},{"k":{"_placeholder":true,"num":0}}]"#,
        )
        .unwrap()
        .resolve_placeholders(&atts)
        .unwrap();
        assert_eq!(v.get_index(0), Some(&bin(b"b")));
        assert_eq!(v.get_index(1).unwrap().get("k"), Some(&bin(b"a")));
        // No placeholders, no attachments: unchanged.
        let plain = Value::from_json(r#"{"placeholder":true,"num":0}"#).unwrap();
        assert_eq!(plain.clone().resolve_placeholders(&[]).unwrap(), plain);
    }

    #[test]
    fn resolve_placeholders_is_strict() {
        let one = [Bytes::from_static(b"a")];
        let two = [Bytes::from_static(b"a"), Bytes::from_static(b"b")];
        let cases: &[(&str, &[Bytes])] = &[
            (r#"{"_placeholder":"true","num":0}"#, &one),
            (r#"{"_placeholder":1,"num":0}"#, &one),
            (r#"{"_placeholder":false,"num":0}"#, &one),
            (r#"{"_placeholder":true,"num":"0"}"#, &one),
            (r#"{"_placeholder":true,"num":-1}"#, &one),
            (r#"{"_placeholder":true,"num":1.5}"#, &one),
            (r#"{"_placeholder":true,"num":0.0}"#, &one),
            (r#"{"_placeholder":true,"num":1}"#, &one),
            (r#"{"_placeholder":true,"num":18446744073709551615}"#, &one),
            (r#"{"_placeholder":true,"num":null}"#, &one),
            (r#"{"_placeholder":true}"#, &one),
            (r#"{"_placeholder":true,"num":0,"x":1}"#, &one),
            (r#"{"_placeholder":true,"nom":0}"#, &one),
            (
                r#"[{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}]"#,
                &two,
            ),
            (r#"[{"_placeholder":true,"num":0}]"#, &two),
            (r#"[{"_placeholder":true,"num":0}]"#, &[]),
            (r#"["no placeholders"]"#, &one),
        ];
        for (text, atts) in cases {
            let r = Value::from_json(text).unwrap().resolve_placeholders(atts);
            assert!(r.is_err(), "{text} with {} attachments: {r:?}", atts.len());
        }
        let dup =
            Value::from_json(r#"[{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}]"#)
                .unwrap()
                .resolve_placeholders(&two);
        assert!(matches!(dup, Err(ValueError::DuplicateAttachment(0))));
        let missing = Value::from_json(r#"[{"_placeholder":true,"num":1}]"#)
            .unwrap()
            .resolve_placeholders(&two);
        assert!(matches!(
            missing,
            Err(ValueError::AttachmentCount {
                placeholders: 1,
                attachments: 2
            })
        ));
    }

    #[test]
    fn resolve_placeholders_handles_max_depth() {
        let text = format!(
            "{}{{\"_placeholder\":true,\"num\":0}}{}",
            "[".repeat(126),
            "]".repeat(126)
        );
        let v = Value::from_json(&text)
            .unwrap()
            .resolve_placeholders(&[Bytes::from_static(b"x")])
            .unwrap();
        assert!(v.has_binary());
    }
}

/// Prints the value as JSON text. A blob prints as Node prints a `Buffer` in JSON
/// (`{"type":"Buffer","data":[1,2]}`), so nothing is hidden and the text stays valid JSON.
impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        self.write_json_with(&mut out, &mut |out, b| {
            out.push_str("{\"type\":\"Buffer\",\"data\":[");
            for (i, byte) in b.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(itoa::Buffer::new().format(*byte));
            }
            out.push_str("]}");
        });
        f.write_str(&out)
    }
}

#[cfg(test)]
mod display_tests {
    use super::*;

    #[test]
    fn display_prints_json() {
        let v = Value::from_json(r#"{"a":[1,"x\"y",null,true,2.5]}"#).unwrap();
        assert_eq!(v.to_string(), r#"{"a":[1,"x\"y",null,true,2.5]}"#);
        let b: Value = vec![Value::from(Bytes::from_static(&[1, 255]))].into();
        assert_eq!(b.to_string(), r#"[{"type":"Buffer","data":[1,255]}]"#);
    }
}
