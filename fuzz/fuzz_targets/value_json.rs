//! `Value` JSON parsing (every event's arguments, CONNECT payloads, adapter requests). What parses must
//! print (Display is JSON) to text that parses to the same value.
#![no_main]

use ferrio_proto::value::Value;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(value) = Value::from_json(text) else {
        return;
    };
    let printed = value.to_string();
    let again = Value::from_json(&printed).unwrap_or_else(|e| panic!("{printed:?}: {e}"));
    assert_eq!(again, value, "{text:?} printed as {printed:?}");
});
