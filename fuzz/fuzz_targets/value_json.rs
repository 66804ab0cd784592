//! `Value` JSON parsing (every event's arguments, CONNECT payloads, adapter requests). It must give what
//! serde_json gives (its quick reader hands serde_json whatever it is unsure of), and what parses must
//! print (Display is JSON) to text that parses to the same value. An emit of it written straight to
//! text must be the frame the value path encodes.
#![no_main]

use ferrio_proto::value::Value;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let full = {
        let mut de = serde_json::Deserializer::from_str(text);
        <Value as serde::Deserialize>::deserialize(&mut de).and_then(|v| de.end().map(|()| v))
    };
    let parsed = Value::from_json(text);
    assert_eq!(parsed.as_ref().ok(), full.as_ref().ok(), "{text:?}");
    let Ok(value) = parsed else {
        return;
    };
    let printed = value.to_string();
    let again = Value::from_json(&printed).unwrap_or_else(|e| panic!("{printed:?}: {e}"));
    assert_eq!(again, value, "{text:?} printed as {printed:?}");
    let direct = ferrio_proto::socket::encode_event_from("/", "e", &value, None).unwrap();
    let args = ferrio_proto::value::to_args(&value).unwrap();
    assert_eq!(
        direct,
        Some(ferrio_proto::socket::encode_event("/", "e", &args, None)),
        "{text:?}"
    );
});
