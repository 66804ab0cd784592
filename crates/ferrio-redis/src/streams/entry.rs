//! One stream entry: the fields `uid`, `nsp`, `type` and `data`, as the official adapter writes them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ferrio_proto::value::Value;

use crate::cluster::wire::{message_fields, response_fields};
use crate::cluster::{Message, Response};
use crate::wire;

/// The fields of one entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Fields {
    pub(crate) uid: String,
    pub(crate) nsp: String,
    /// The message type, a decimal number.
    pub(crate) ty: String,
    /// JSON, or base64 MessagePack when the data holds binary.
    pub(crate) data: Option<String>,
}

impl Fields {
    fn new(ty: u8, data: Option<Value>, binary: bool, uid: &str, nsp: &str) -> Fields {
        let data = data.map(|d| {
            if binary {
                STANDARD.encode(crate::msgpack::encode(&d))
            } else {
                d.to_json().0
            }
        });
        Fields {
            uid: uid.to_owned(),
            nsp: nsp.to_owned(),
            ty: ty.to_string(),
            data,
        }
    }

    /// A message of node `uid`; `None` for what this format cannot say.
    pub(crate) fn of_message(msg: &Message, uid: &str, nsp: &str) -> Option<Fields> {
        let (ty, data, binary) = message_fields(msg)?;
        Some(Fields::new(ty, data, binary, uid, nsp))
    }

    /// A response of node `uid`.
    pub(crate) fn of_response(response: &Response, uid: &str, nsp: &str) -> Option<Fields> {
        let (ty, data, binary) = response_fields(response)?;
        Some(Fields::new(ty, data, binary, uid, nsp))
    }

    /// The `XADD` arguments after the id.
    pub(crate) fn args(&self) -> Vec<(&'static str, &str)> {
        let mut args = vec![
            ("uid", self.uid.as_str()),
            ("nsp", self.nsp.as_str()),
            ("type", self.ty.as_str()),
        ];
        if let Some(d) = &self.data {
            args.push(("data", d.as_str()));
        }
        args
    }

    /// Reads the fields of an entry (`[field, value, …]`); unknown fields are ignored.
    pub(crate) fn from_pairs(pairs: Vec<(String, String)>) -> Fields {
        let mut fields = Fields::default();
        for (k, v) in pairs {
            match k.as_str() {
                "uid" => fields.uid = v,
                "nsp" => fields.nsp = v,
                "type" => fields.ty = v,
                "data" => fields.data = Some(v),
                _ => {}
            }
        }
        fields
    }

    /// The message as the `{type, data, uid, nsp}` object the cluster decoder reads. Data that does not
    /// start with `{` is base64 MessagePack, as the official decoder assumes.
    pub(crate) fn to_value(&self) -> Result<Value, String> {
        let ty: u64 = self.ty.parse().map_err(|_| "type is not a number")?;
        let mut pairs = vec![("type", Value::from(ty))];
        if let Some(d) = self.data.as_deref().filter(|d| !d.is_empty()) {
            let data = if d.starts_with('{') {
                Value::from_json(d).map_err(|e| e.to_string())?
            } else {
                let bytes = STANDARD.decode(d).map_err(|e| e.to_string())?;
                crate::msgpack::decode(&bytes).map_err(|e| e.to_string())?
            };
            pairs.push(("data", data));
        }
        pairs.push(("uid", Value::String(self.uid.clone())));
        pairs.push(("nsp", Value::String(self.nsp.clone())));
        Ok(wire::object(pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Decoded, Incoming};
    use crate::link::Counters;
    use crate::wire::fixtures;

    #[test]
    fn every_request_survives_the_fields() {
        for msg in fixtures::requests() {
            let Some(fields) = Fields::of_message(&msg, "abc", "/chat") else {
                continue;
            };
            let value = fields.to_value().unwrap();
            let decoded =
                crate::cluster::wire::decode_value(value, "/chat", false, &Counters::default());
            assert_eq!(
                decoded.unwrap(),
                Some(Decoded::Message(Incoming {
                    from: Some("abc".into()),
                    message: msg,
                    offset: None,
                }))
            );
        }
    }

    #[test]
    fn binary_data_is_base64_msgpack() {
        let packet = fixtures::event("/", vec![Value::Binary(vec![1, 2, 3].into())]);
        let msg = Message::Broadcast {
            packet,
            opts: fixtures::opts(&[], &[]),
        };
        let fields = Fields::of_message(&msg, "abc", "/").unwrap();
        let data = fields.data.clone().unwrap();
        assert!(
            !data.starts_with('{'),
            "binary data must not be JSON: {data}"
        );
        assert_eq!(fields.ty, "3");
        assert!(fields.to_value().is_ok());
    }
}
