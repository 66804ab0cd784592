//! JSON text → [`Value`] for the shapes peers send nearly always: strings without escapes, numbers,
//! `true`/`false`/`null`, arrays and objects nested well below the limit.
//!
//! Anything else (an escape, deep nesting, and every syntax error) makes it answer `None`, and
//! [`Value::from_json`] hands the whole text to the full parser. So the two agree on every input: this
//! one only takes what it reads exactly as the full parser would, and it skips serde's visitor
//! machinery, which was most of the cost of a small event.

use super::{Map, Value};

/// Well below the full parser's limit of 128, so that text near the limit reaches the parser that
/// reports it (and so that this recursion stays shallow).
const MAX_DEPTH: usize = 64;

/// The value of `text`, or `None` when the full parser must decide.
pub(super) fn parse(text: &str) -> Option<Value> {
    let mut r = Reader {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    let value = r.value(0)?;
    r.skip_ws();
    (r.at == r.bytes.len()).then_some(value)
}

/// The name and the arguments of an event's payload, `["name", arg, …]`, the name borrowed from
/// `text`. The arguments are the values [`parse`] reads after the name. `None` when the name is not a
/// string without escapes, when there is no name, and whenever `parse` would answer `None`: the
/// caller then reads the payload as a whole.
pub(crate) fn event(text: &str) -> Option<(&str, Vec<Value>)> {
    let mut r = Reader {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    r.skip_ws();
    if r.peek()? != b'[' {
        return None;
    }
    r.at += 1;
    r.skip_ws();
    let name = r.plain_string()?;
    let mut args = Vec::new();
    // As `array` reads the elements after the first one of a top-level array.
    while !r.next_or_close(b']')? {
        args.push(r.value(1)?);
    }
    r.skip_ws();
    (r.at == r.bytes.len()).then_some((name, args))
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        self.skip_ws();
        match self.peek()? {
            b'"' => self.string().map(Value::String),
            b'[' if depth < MAX_DEPTH => self.array(depth),
            b'{' if depth < MAX_DEPTH => self.object(depth),
            b't' => self.literal(b"true", Value::Bool(true)),
            b'f' => self.literal(b"false", Value::Bool(false)),
            b'n' => self.literal(b"null", Value::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8], value: Value) -> Option<Value> {
        if !self.bytes[self.at..].starts_with(word) {
            return None;
        }
        self.at += word.len();
        Some(value)
    }

    /// A string. One without escapes is copied as it is. One with escapes goes to serde_json's own
    /// string parser, the one its full parse runs, on this token alone (so a quote or a newline in a
    /// message no longer makes the whole text parse twice). A control character, which the full
    /// parser refuses, gives up.
    fn string(&mut self) -> Option<String> {
        let start = self.at + 1;
        let mut end = start;
        let mut escaped = false;
        loop {
            // Past the end after a final backslash: unterminated.
            end += self
                .bytes
                .get(end..)?
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
            match self.bytes[end] {
                b'"' => break,
                // The escaped byte is skipped (it may be a quote); serde_json checks the escape.
                b'\\' => {
                    escaped = true;
                    end += 2;
                }
                _ => return None,
            }
        }
        self.at = end + 1;
        // Both ends are ASCII quotes, so the slices lie on character boundaries.
        if escaped {
            serde_json::from_str(&self.text[start - 1..=end]).ok()
        } else {
            Some(self.text[start..end].to_owned())
        }
    }

    /// A string without escapes (nor the control characters the full parser refuses), borrowed;
    /// `None` for any other token.
    fn plain_string(&mut self) -> Option<&'a str> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.at + 1;
        let len = self.bytes[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        let end = start + len;
        if self.bytes[end] != b'"' {
            return None;
        }
        self.at = end + 1;
        // Both ends are ASCII quotes, so the slice lies on character boundaries.
        Some(&self.text[start..end])
    }

    /// A number. An integer is read here: `u64` when non-negative, `i64` when negative, as the full
    /// parser reads it. Any other number (a fraction or exponent, `-0`, an integer beyond 64 bits, which
    /// serde_json reads as floats) goes to serde_json's own number parser, the one its full parse runs,
    /// on this token alone: the text is not read again from the start.
    fn number(&mut self) -> Option<Value> {
        let start = self.at;
        let negative = self.bytes[start] == b'-';
        let first = start + usize::from(negative);
        let mut end = self.digits(first)?;
        if end - first > 1 && self.bytes[first] == b'0' {
            return None;
        }
        let magnitude = self.text[first..end].parse::<u64>().ok();
        let mut integer = true;
        if self.bytes.get(end) == Some(&b'.') {
            integer = false;
            end = self.digits(end + 1)?;
        }
        if let Some(b'e' | b'E') = self.bytes.get(end) {
            integer = false;
            end += 1;
            if let Some(b'+' | b'-') = self.bytes.get(end) {
                end += 1;
            }
            end = self.digits(end)?;
        }
        self.at = end;
        let small = match (integer, magnitude) {
            (true, Some(n)) if !negative => Some(Value::Number(n.into())),
            (true, Some(n)) if n != 0 => 0i64
                .checked_sub_unsigned(n)
                .map(|i| Value::Number(i.into())),
            _ => None,
        };
        small.or_else(|| {
            self.text[start..end]
                .parse::<serde_json::Number>()
                .ok()
                .map(Value::Number)
        })
    }

    /// The end of the digits starting at `at`; none when there is not one.
    fn digits(&self, at: usize) -> Option<usize> {
        let count = self.bytes[at.min(self.bytes.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        (count > 0).then_some(at + count)
    }

    /// Steps over the `[` or `{`; whether `close` follows at once (the container is empty).
    fn open(&mut self, close: u8) -> Option<bool> {
        self.at += 1;
        self.skip_ws();
        let empty = self.peek()? == close;
        self.at += usize::from(empty);
        Some(empty)
    }

    /// After an item: whether `close` ends the container, rather than a comma before the next item.
    fn next_or_close(&mut self, close: u8) -> Option<bool> {
        self.skip_ws();
        let closed = match self.peek()? {
            b',' => false,
            b if b == close => true,
            _ => return None,
        };
        self.at += 1;
        Some(closed)
    }

    fn array(&mut self, depth: usize) -> Option<Value> {
        let mut items = Vec::new();
        if !self.open(b']')? {
            loop {
                items.push(self.value(depth + 1)?);
                if self.next_or_close(b']')? {
                    break;
                }
            }
        }
        Some(Value::Array(items))
    }

    fn object(&mut self, depth: usize) -> Option<Value> {
        let mut map = Map::new();
        if !self.open(b'}')? {
            loop {
                self.skip_ws();
                if self.peek()? != b'"' {
                    return None;
                }
                let key = self.string()?;
                self.skip_ws();
                if self.peek()? != b':' {
                    return None;
                }
                self.at += 1;
                let value = self.value(depth + 1)?;
                // As the full parser (and JSON.parse): a repeated key keeps its first place, takes the
                // last value.
                map.insert(key, value);
                if self.next_or_close(b'}')? {
                    break;
                }
            }
        }
        Some(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(text: &str) -> Option<Value> {
        let mut de = serde_json::Deserializer::from_str(text);
        let v = serde::Deserialize::deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(v)
    }

    #[test]
    fn reads_what_peers_send() {
        for text in [
            r#"["chat",{"room":"room1","text":"1733040000000000"}]"#,
            r#"["echo",1733040000000000]"#,
            r#" [ "a" , [ ] , { } , true , false , null , -5 , 0 , 18446744073709551615 ] "#,
            r#"{"a":1,"b":{"c":[1,2,{"d":"é😀"}]},"a":2}"#,
            "[-9223372036854775808]",
            "\"\u{7f}\u{2028}\"",
            // Numbers read by serde_json's number parser, on the token alone.
            "[1.5,-0.25,1e3,1E+3,2e-3,-0,-0.0,0.1]",
            "[18446744073709551616,-9223372036854775809,123456789012345678901234567890.5]",
            "{\"x\":12.000000000000001,\"y\":5e-324}",
            // Strings with escapes, read by serde_json's string parser on the token alone.
            r#"["a\"b","\\","\/\b\f\n\r\t","\u00e9\ud83d\ude00",{"k\"ey":"\"\""}]"#,
            r#"["\\\"", "x"]"#,
        ] {
            let quick = parse(text);
            assert!(quick.is_some(), "{text} should be read here");
            assert_eq!(quick, full(text), "{text}");
        }
    }

    #[test]
    fn leaves_the_rest_to_the_full_parser() {
        for text in [
            "[\"a\u{1}\"]",
            r#"["a\x"]"#,
            r#"["\ud800"]"#,
            r#"["\u12"]"#,
            "[\"a\\",
            "[01]",
            "[-01]",
            "[-]",
            "[1.]",
            "[.5]",
            "[1e]",
            "[1e+]",
            "[1.5.3]",
            "[1e400]",
            "[1,]",
            "{\"a\" 1}",
            "{1:2}",
            "[tru]",
            "[true x]",
            "[1] x",
            "",
            "[",
            "\"open",
            &"[".repeat(MAX_DEPTH + 1),
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&deep).is_some());
        let deeper = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(parse(&deeper), None);
        assert!(full(&deeper).is_some());
    }
}
