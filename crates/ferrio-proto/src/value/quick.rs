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
    let mut r = Reader::<Build>::new(text);
    let value = r.value(0)?;
    r.skip_ws();
    (r.at == r.bytes.len()).then_some(value)
}

/// The name and the arguments of an event's payload, `["name", arg, …]`, the name borrowed from
/// `text`. The arguments are the values [`parse`] reads after the name. `None` when the name is not a
/// string without escapes, when there is no name, and whenever `parse` would answer `None`: the
/// caller then reads the payload as a whole.
pub(crate) fn event(text: &str) -> Option<(&str, Vec<Value>)> {
    let mut args = Vec::new();
    let name = Reader::<Build>::new(text).event(|arg| args.push(arg))?;
    Some((name, args))
}

/// The arguments [`event`] reads; none where it reads nothing.
pub(crate) fn event_args(text: &str) -> Vec<Value> {
    event(text).map(|(_, args)| args).unwrap_or_default()
}

/// The name of an event's payload that [`event`] reads, checked as `event` checks it but with no
/// value built: `None` exactly where `event` answers `None`. The arguments can then be read when they
/// are wanted, by `event` or straight into a type.
pub(crate) fn event_name(text: &str) -> Option<&str> {
    Reader::<Check>::new(text).event(drop)
}

/// Where the first quote, backslash or control character of `bytes` is: where a string ends, or
/// needs more than a copy. Eight bytes at a time: a byte is one of them when it is zero once XORed
/// with a quote or a backslash, or when it is below 0x20. Subtracting 0x01 (or 0x20) from each byte
/// of a word sets the high bit of every such byte, and may set it in the bytes above one (a borrow),
/// never below: the lowest byte found is exact.
fn stop(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    let mut at = 0;
    while let Some(word) = bytes.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        let x = u64::from_le_bytes(*word);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        let found = (quote.wrapping_sub(ONES) & !quote
            | backslash.wrapping_sub(ONES) & !backslash
            | x.wrapping_sub(ONES * 0x20) & !x)
            & HIGH;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    bytes[at..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|i| at + i)
}

/// How many ASCII digits `bytes` starts with. Eight bytes at a time: XORed with `'0'`, a digit is a
/// byte below 10; adding 0x76 sets the high bit of every other byte (or it was set), and a carry
/// only goes up from a byte that is not a digit, so the lowest byte found is exact.
fn leading_digits(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    let mut at = 0;
    while let Some(word) = bytes.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        let y = u64::from_le_bytes(*word) ^ (ONES * u64::from(b'0'));
        let other = (y.wrapping_add(ONES * 0x76) | y) & HIGH;
        if other != 0 {
            return at + (other.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + bytes[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count()
}

/// What a [`Reader`] makes of the text it reads: [`Value`]s ([`Build`]), or nothing ([`Check`]). Both
/// run the same code over the text, so they accept exactly the same texts; the checking one
/// allocates nothing (but for a string with escapes, which serde_json must read to check) and passes
/// no value around.
trait Make {
    type Out;
    /// Reads numbers and strings into values (the checking mode reads what it must to check).
    const BUILD: bool;
    type Array: Default;
    type Object;
    fn value(value: impl FnOnce() -> Value) -> Self::Out;
    fn push(array: &mut Self::Array, item: Self::Out);
    fn array(array: Self::Array) -> Self::Out;
    fn object() -> Self::Object;
    fn insert(object: &mut Self::Object, key: Self::Out, value: Self::Out);
    fn close(object: Self::Object) -> Self::Out;
}

/// Builds the values.
struct Build;

/// Only checks the text.
struct Check;

impl Make for Build {
    type Out = Value;
    const BUILD: bool = true;
    type Array = Vec<Value>;
    type Object = Map;

    fn value(value: impl FnOnce() -> Value) -> Value {
        value()
    }

    fn push(array: &mut Vec<Value>, item: Value) {
        array.push(item);
    }

    fn array(array: Vec<Value>) -> Value {
        Value::Array(array)
    }

    fn object() -> Map {
        Map::new()
    }

    fn insert(object: &mut Map, key: Value, value: Value) {
        // As the full parser (and JSON.parse): a repeated key keeps its first place, takes the last
        // value. A key is always read as a string.
        if let Value::String(key) = key {
            object.insert(key, value);
        }
    }

    fn close(object: Map) -> Value {
        Value::Object(object)
    }
}

impl Make for Check {
    type Out = ();
    const BUILD: bool = false;
    type Array = ();
    type Object = ();

    fn value(_: impl FnOnce() -> Value) {}
    fn push((): &mut (), (): ()) {}
    fn array((): ()) {}
    fn object() {}
    fn insert((): &mut (), (): (), (): ()) {}
    fn close((): ()) {}
}

/// Reads JSON text into what `M` makes of it.
struct Reader<'a, M> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    make: std::marker::PhantomData<M>,
}

impl<'a, M: Make> Reader<'a, M> {
    fn new(text: &'a str) -> Self {
        Reader {
            text,
            bytes: text.as_bytes(),
            at: 0,
            make: std::marker::PhantomData,
        }
    }

    /// A payload `["name", arg, …]`: its name, each argument handed to `arg`.
    fn event(mut self, mut arg: impl FnMut(M::Out)) -> Option<&'a str> {
        self.skip_ws();
        if self.peek()? != b'[' {
            return None;
        }
        self.at += 1;
        self.skip_ws();
        let name = self.plain_string()?;
        // As `array` reads the elements after the first one of a top-level array.
        while !self.next_or_close(b']')? {
            arg(self.value(1)?);
        }
        self.skip_ws();
        (self.at == self.bytes.len()).then_some(name)
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn value(&mut self, depth: usize) -> Option<M::Out> {
        self.skip_ws();
        match self.peek()? {
            b'"' => self.string(),
            b'[' if depth < MAX_DEPTH => self.array(depth),
            b'{' if depth < MAX_DEPTH => self.object(depth),
            b't' => self.literal(b"true", Value::Bool(true)),
            b'f' => self.literal(b"false", Value::Bool(false)),
            b'n' => self.literal(b"null", Value::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8], value: Value) -> Option<M::Out> {
        if !self.bytes[self.at..].starts_with(word) {
            return None;
        }
        self.at += word.len();
        Some(M::value(|| value))
    }

    /// A string. One without escapes is copied as it is. One with escapes goes to serde_json's own
    /// string parser, the one its full parse runs, on this token alone (so a quote or a newline in a
    /// message no longer makes the whole text parse twice). A control character, which the full
    /// parser refuses, gives up.
    fn string(&mut self) -> Option<M::Out> {
        let start = self.at + 1;
        let mut end = start;
        let mut escaped = false;
        loop {
            // Past the end after a final backslash: unterminated.
            end += stop(self.bytes.get(end..)?)?;
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
            let s: String = serde_json::from_str(&self.text[start - 1..=end]).ok()?;
            Some(M::value(|| Value::String(s)))
        } else {
            Some(M::value(|| Value::String(self.text[start..end].to_owned())))
        }
    }

    /// A string without escapes (nor the control characters the full parser refuses), borrowed;
    /// `None` for any other token.
    fn plain_string(&mut self) -> Option<&'a str> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.at + 1;
        let len = stop(&self.bytes[start..])?;
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
    fn number(&mut self) -> Option<M::Out> {
        let start = self.at;
        let negative = self.bytes[start] == b'-';
        let first = start + usize::from(negative);
        let mut end = self.digits(first)?;
        if end - first > 1 && self.bytes[first] == b'0' {
            return None;
        }
        let int_digits = end - first;
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
        // An integer of up to 19 digits is one either reading takes (as a 64-bit integer, or as a
        // float when it is a negative one past `i64::MIN`, or `-0`): checking reads none.
        if !M::BUILD && integer && int_digits <= 19 {
            return Some(M::value(|| Value::Null));
        }
        let digits = &self.bytes[first..first + int_digits];
        let magnitude = match integer {
            // Nineteen digits stay below 10^19, within a `u64`: no step can overflow.
            true if int_digits <= 19 => Some(
                digits
                    .iter()
                    .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
            ),
            true => self.text[first..first + int_digits].parse::<u64>().ok(),
            false => None,
        };
        let small = match (integer, magnitude) {
            (true, Some(n)) if !negative => Some(Value::Number(n.into())),
            (true, Some(n)) if n != 0 => 0i64
                .checked_sub_unsigned(n)
                .map(|i| Value::Number(i.into())),
            _ => None,
        };
        let value = small.or_else(|| {
            self.text[start..end]
                .parse::<serde_json::Number>()
                .ok()
                .map(Value::Number)
        })?;
        Some(M::value(|| value))
    }

    /// The end of the digits starting at `at`; none when there is not one.
    fn digits(&self, at: usize) -> Option<usize> {
        let count = leading_digits(&self.bytes[at.min(self.bytes.len())..]);
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

    fn array(&mut self, depth: usize) -> Option<M::Out> {
        let mut items = M::Array::default();
        if !self.open(b']')? {
            loop {
                let item = self.value(depth + 1)?;
                M::push(&mut items, item);
                if self.next_or_close(b']')? {
                    break;
                }
            }
        }
        Some(M::array(items))
    }

    fn object(&mut self, depth: usize) -> Option<M::Out> {
        let mut map = M::object();
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
                M::insert(&mut map, key, value);
                if self.next_or_close(b'}')? {
                    break;
                }
            }
        }
        Some(M::close(map))
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

    /// The scans eight bytes at a time find what a byte at a time finds, wherever it is.
    #[test]
    fn word_scans_find_what_byte_scans_find() {
        let bytes: Vec<u8> = (0..=255).collect();
        for len in 0..20 {
            for at in 0..len {
                for &b in &bytes {
                    let mut text = vec![b'5'; len];
                    text[at] = b;
                    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
                    assert_eq!(leading_digits(&text), digits, "{text:?}");
                    let mut text = vec![b'a'; len];
                    text[at] = b;
                    let end = text
                        .iter()
                        .position(|&b| b == b'"' || b == b'\\' || b < 0x20);
                    assert_eq!(stop(&text), end, "{text:?}");
                }
            }
        }
        // Two bytes of interest in one word: the lower one counts, whatever the upper one carries.
        for (low, high) in [
            (b'x', 0xff),
            (0xff, b'x'),
            (b'/', 0x8a),
            (0x8a, b':'),
            (b'"', b'\\'),
        ] {
            for at in 0..15 {
                let mut text = vec![b'7'; 16];
                text[at] = low;
                text[at + 1] = high;
                assert_eq!(leading_digits(&text), at, "{text:?}");
                let mut text = vec![b'a'; 16];
                text[at] = low;
                text[at + 1] = high;
                let end = text
                    .iter()
                    .position(|&b| b == b'"' || b == b'\\' || b < 0x20);
                assert_eq!(stop(&text), end, "{text:?}");
            }
        }
    }

    /// Checking a payload accepts what reading it accepts, on the numbers it checks without reading
    /// them (up to 19 digits) and those it reads to check (beyond, where a float may overflow).
    #[test]
    fn checking_numbers_accepts_what_reading_them_does() {
        let huge = "9".repeat(400);
        for number in [
            "0",
            "-0",
            "9999999999999999999",
            "-9999999999999999999",
            "-9223372036854775808",
            "18446744073709551616",
            "99999999999999999999",
            "-99999999999999999999",
            huge.as_str(),
            &format!("-{huge}"),
            &format!("{huge}.5"),
            "1e400",
            "-1e400",
            "1.5e-400",
            "00",
            "-",
            "1.",
        ] {
            let text = format!(r#"["n",{number},[{number}],{{"k":{number}}}]"#);
            let read = event(&text);
            assert_eq!(event_name(&text), read.as_ref().map(|(n, _)| *n), "{text}");
            assert_eq!(read.is_some(), full(&text).is_some(), "{text}");
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
