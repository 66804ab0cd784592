//! The handshake document carried by the `open` packet.

use serde::{Deserialize, Serialize};

use super::packet::{Frame, PacketType};

/// What the server tells a new client in its `open` packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenPacket {
    /// The session id.
    pub sid: String,
    /// Transports the client may upgrade to (`["websocket"]` over polling, `[]` over websocket).
    pub upgrades: Vec<String>,
    /// Milliseconds between two pings.
    pub ping_interval: u64,
    /// Milliseconds the server waits for a pong.
    pub ping_timeout: u64,
    /// Largest payload, in bytes, the server accepts in one request or message.
    pub max_payload: u64,
}

impl OpenPacket {
    /// Encodes the `open` packet.
    pub fn to_frame(&self) -> Frame {
        // Serializing a struct of strings and integers cannot fail.
        let json = serde_json::to_string(self).unwrap_or_default();
        Frame::text_packet(PacketType::Open, &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Packet, decode_text};

    #[test]
    fn encodes_official_field_names() {
        let open = OpenPacket {
            sid: "abc".into(),
            upgrades: vec!["websocket".into()],
            ping_interval: 25000,
            ping_timeout: 20000,
            max_payload: 1_000_000,
        };
        let Frame::Text(s) = open.to_frame() else {
            panic!()
        };
        assert_eq!(
            &s[..],
            r#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
        );
        let Packet::Open(json) = decode_text(s).unwrap() else {
            panic!()
        };
        assert_eq!(serde_json::from_str::<OpenPacket>(&json).unwrap(), open);
    }
}
