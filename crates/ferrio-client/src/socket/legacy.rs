//! The shapes of Socket.IO protocol v4, spoken by socket.io 2.x servers (with Engine.IO v3), where they
//! differ from v5: CONNECT carries no `auth` but the handshake query in the namespace string, the
//! server's CONNECT carries no `sid` (the socket id is the Engine.IO id for `/`, `<nsp>#<engine id>`
//! otherwise), and CONNECT_ERROR carries the middleware error's `data`, or its message as a string.

use ferrio_proto::socket::{ConnectAck, ConnectError, Packet};
use ferrio_proto::value::Value;

use crate::engine::endpoint::encode;

/// The CONNECT of namespace `nsp` (never `/`, which the server joins by itself), with the query
/// parameters appended to the namespace as socket.io-client 2.x does: `0/chat?token=x,`.
pub(crate) fn connect_packet(nsp: &str, query: &[(String, String)]) -> Packet {
    let mut nsp = nsp.to_owned();
    for (i, (k, v)) in query.iter().enumerate() {
        nsp.push(if i == 0 { '?' } else { '&' });
        nsp.push_str(&encode(k));
        nsp.push('=');
        nsp.push_str(&encode(v));
    }
    Packet::Connect { nsp, data: None }
}

/// The server's CONNECT for `nsp` on Engine.IO session `engine_id`: the socket id socket.io 2.x gives.
pub(crate) fn connect_ack(nsp: &str, engine_id: &str) -> ConnectAck {
    let sid = if nsp == "/" {
        engine_id.to_owned()
    } else {
        format!("{nsp}#{engine_id}")
    };
    ConnectAck { sid, pid: None }
}

/// A CONNECT_ERROR (ERROR) payload: a string is the message; anything else is the error's `data`,
/// with its `message` field, or else its JSON text, as the message.
pub(crate) fn connect_error(data: Value) -> ConnectError {
    match data {
        Value::String(message) => ConnectError::new(message),
        other => {
            let message = match other.get("message").and_then(Value::as_str) {
                Some(m) => m.to_owned(),
                None => other.to_string(),
            };
            ConnectError::new(message).with_value(other)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrio_proto::socket::encode as encode_packet;

    fn wire(p: &Packet) -> String {
        match encode_packet(p).head {
            ferrio_proto::engine::Frame::Text(s) => s.to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn connect_carries_the_query_in_the_namespace() {
        assert_eq!(wire(&connect_packet("/chat", &[])), "40/chat,");
        let q = [
            ("token".to_owned(), "a b".to_owned()),
            ("x".into(), "1".into()),
        ];
        assert_eq!(
            wire(&connect_packet("/chat", &q)),
            "40/chat?token=a%20b&x=1,"
        );
    }

    #[test]
    fn socket_ids() {
        assert_eq!(connect_ack("/", "e1").sid, "e1");
        assert_eq!(connect_ack("/chat", "e1").sid, "/chat#e1");
        assert_eq!(connect_ack("/chat", "e1").pid, None);
    }

    #[test]
    fn error_shapes() {
        assert_eq!(
            connect_error(Value::from("Invalid namespace")),
            ConnectError::new("Invalid namespace")
        );
        let data: Value = [("message", Value::from("nope")), ("code", Value::from(7))]
            .into_iter()
            .collect();
        let e = connect_error(data.clone());
        assert_eq!(e.message, "nope");
        assert_eq!(e.data, Some(data));
        let e = connect_error(Value::from(42));
        assert_eq!(e.message, "42");
        assert_eq!(e.data, Some(Value::from(42)));
    }
}
