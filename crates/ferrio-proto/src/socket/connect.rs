//! The payloads of CONNECT and CONNECT_ERROR, built and read in one place for both sides.
//!
//! - client → server CONNECT: the `auth` object, plus `pid` and `offset` when the client asks to recover
//!   a session (connection state recovery);
//! - server → client CONNECT: `{"sid":…}`, plus `"pid"` when the server offers recovery;
//! - server → client CONNECT_ERROR: `{"message":…,"data":…}` (old servers sent a bare string).
//!
//! Socket.IO protocol v4 (socket.io-client 2.x, over Engine.IO v3) differs: the client's CONNECT carries
//! its query in the namespace (`0/chat?token=x`) and no payload, the server's CONNECT has no payload,
//! and a middleware's refusal is the bare `data` or message. `socket.io` 4 answers these clients the
//! same way.

use serde::Serialize;

use super::packet::Packet;
use crate::value::{Map, Value, ValueError, to_value};

/// A refused connection: the server's middleware error, and what the client's `connect_error` receives.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectError {
    /// `err.message` on the client.
    pub message: String,
    /// `err.data` on the client.
    pub data: Option<Value>,
}

impl ConnectError {
    /// An error with a message and no data.
    pub fn new(message: impl Into<String>) -> Self {
        ConnectError {
            message: message.into(),
            data: None,
        }
    }

    /// Adds `data` (anything serializable). Data that does not serialize is an error, never dropped.
    pub fn with_data<T: Serialize + ?Sized>(mut self, data: &T) -> Result<Self, ValueError> {
        self.data = Some(to_value(data)?);
        Ok(self)
    }

    /// Adds data already in `Value` form.
    pub fn with_value(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The wire payload: `{"message":…}` plus `"data"` when there is some.
    pub fn to_value(&self) -> Value {
        let mut map = Map::with_capacity(2);
        map.insert("message".into(), Value::String(self.message.clone()));
        if let Some(d) = &self.data {
            map.insert("data".into(), d.clone());
        }
        Value::Object(map)
    }

    /// Reads a CONNECT_ERROR payload: the object form, or the bare string of old servers. Anything else
    /// keeps its JSON text as the message, so the user still sees what the server said.
    pub fn from_value(value: Value) -> Self {
        match value {
            Value::String(message) => ConnectError::new(message),
            Value::Object(mut map) => {
                let data = map.shift_remove("data");
                let message = match map.shift_remove("message") {
                    Some(Value::String(s)) => s,
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                ConnectError { message, data }
            }
            other => ConnectError::new(other.to_string()),
        }
    }

    /// The CONNECT_ERROR packet for namespace `nsp`.
    pub fn packet(&self, nsp: &str) -> Packet {
        Packet::ConnectError {
            nsp: nsp.to_owned(),
            data: self.to_value(),
        }
    }

    /// The refusal a Socket.IO v4 client (socket.io-client 2.x) gets: its `error` event receives the
    /// error's data when there is some (not null or false, as JavaScript's `err.data || err.message`),
    /// else the message as a string.
    pub fn packet_v4(&self, nsp: &str) -> Packet {
        let data = match &self.data {
            Some(d) if is_truthy(d) => d.clone(),
            _ => Value::String(self.message.clone()),
        };
        Packet::ConnectError {
            nsp: nsp.to_owned(),
            data,
        }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnectError {}

/// The server's CONNECT_ERROR for a namespace that does not exist (socket.io's exact message).
pub fn invalid_namespace(nsp: &str) -> Packet {
    ConnectError::new("Invalid namespace").packet(nsp)
}

/// The server's CONNECT answer: `{"sid":…}`, with `"pid"` when connection state recovery is on.
pub fn connect_ok(nsp: &str, sid: &str, pid: Option<&str>) -> Packet {
    let mut map = Map::with_capacity(2);
    map.insert("sid".into(), Value::String(sid.to_owned()));
    if let Some(pid) = pid {
        map.insert("pid".into(), Value::String(pid.to_owned()));
    }
    Packet::Connect {
        nsp: nsp.to_owned(),
        data: Some(Value::Object(map)),
    }
}

/// The server's CONNECT answer to a Socket.IO v4 client: no payload (its socket id is derived from the
/// Engine.IO id on both sides).
pub fn connect_ok_v4(nsp: &str) -> Packet {
    Packet::Connect {
        nsp: nsp.to_owned(),
        data: None,
    }
}

/// JavaScript truthiness of a JSON value.
fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => false,
        Value::String(s) => !s.is_empty(),
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        _ => true,
    }
}

/// The client's CONNECT: `auth` (an object, or none), with `pid` and `offset` added when it asks to
/// recover its previous session (`offset` null when it received no offset yet).
pub fn connect_request(
    nsp: &str,
    auth: Option<Value>,
    recovery: Option<(&str, Option<&str>)>,
) -> Packet {
    let data = match recovery {
        None => auth,
        Some((pid, offset)) => {
            let mut map = match auth {
                Some(Value::Object(m)) => m,
                _ => Map::with_capacity(2),
            };
            map.insert("pid".into(), Value::String(pid.to_owned()));
            map.insert(
                "offset".into(),
                offset.map_or(Value::Null, |o| Value::String(o.to_owned())),
            );
            Some(Value::Object(map))
        }
    };
    Packet::Connect {
        nsp: nsp.to_owned(),
        data,
    }
}

/// What the server reads from a client's CONNECT.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectRequest {
    /// `socket.handshake.auth`: the payload as sent (an empty object when there was none), recovery
    /// fields included, as the official server shows it.
    pub auth: Value,
    /// The private id of the session the client asks to recover.
    pub pid: Option<String>,
    /// The offset of the last packet it received in that session.
    pub offset: Option<String>,
}

impl ConnectRequest {
    /// Reads a CONNECT payload. The decoder already refused non-object payloads; a missing one is `{}`.
    pub fn parse(data: Option<Value>) -> Self {
        let auth = data.unwrap_or_else(|| Value::Object(Map::new()));
        let field = |k: &str| auth.get(k).and_then(Value::as_str).map(str::to_owned);
        let pid = field("pid");
        let offset = field("offset");
        ConnectRequest { auth, pid, offset }
    }
}

impl ConnectRequest {
    /// Reads the CONNECT of a Socket.IO v4 client: `nsp` may carry a query (`/chat?token=x`), which is
    /// the handshake's `auth` (string values, as `URLSearchParams` reads them). Returns the namespace
    /// name without the query. Such clients never recover sessions: no `pid` or `offset` is read.
    pub fn parse_v4(nsp: &str) -> (String, Self) {
        let nsp = nsp.split_once('#').map_or(nsp, |(n, _)| n);
        let (path, query) = nsp.split_once('?').unwrap_or((nsp, ""));
        let mut auth = Map::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            // The last occurrence wins, as `Object.fromEntries` does.
            auth.insert(form_component(k), Value::String(form_component(v)));
        }
        let request = ConnectRequest {
            auth: Value::Object(auth),
            pid: None,
            offset: None,
        };
        (path.to_owned(), request)
    }
}

/// Decodes one `application/x-www-form-urlencoded` component: `+` is a space, `%XX` a byte; a malformed
/// escape stays as it is, and bytes that are not UTF-8 become U+FFFD (what `URLSearchParams` does).
fn form_component(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the client reads from the server's CONNECT answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectAck {
    /// The socket's id.
    pub sid: String,
    /// The private id for a later recovery, when the server offers it.
    pub pid: Option<String>,
}

impl ConnectAck {
    /// Reads the server's CONNECT payload; `None` when it has no `sid` (not a Socket.IO v5 server).
    pub fn parse(data: &Option<Value>) -> Option<Self> {
        let data = data.as_ref()?;
        let sid = data.get("sid")?.as_str()?.to_owned();
        let pid = data.get("pid").and_then(Value::as_str).map(str::to_owned);
        Some(ConnectAck { sid, pid })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::encode;

    fn text(p: &Packet) -> String {
        match &encode(p).head {
            crate::engine::Frame::Text(s) => s[1..].to_owned(),
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn socket_io_v4_shapes() {
        assert_eq!(text(&connect_ok_v4("/")), "0");
        assert_eq!(text(&connect_ok_v4("/chat")), "0/chat,");
        assert_eq!(
            text(&ConnectError::new("Not authorized").packet_v4("/")),
            r#"4"Not authorized""#
        );
        let with_data = ConnectError::new("no")
            .with_data(&serde_json::json!({"code": 7}))
            .unwrap();
        assert_eq!(text(&with_data.packet_v4("/a")), r#"4/a,{"code":7}"#);
        // Falsy data gives the message, as `err.data || err.message`.
        for falsy in [
            serde_json::json!(null),
            serde_json::json!(false),
            serde_json::json!(0),
            serde_json::json!(""),
        ] {
            let e = ConnectError::new("m").with_data(&falsy).unwrap();
            assert_eq!(text(&e.packet_v4("/")), r#"4"m""#, "{falsy}");
        }
        // Invalid namespace keeps the object form, as socket.io 4 sends it to every client.
        assert_eq!(
            text(&invalid_namespace("/x")),
            r#"4/x,{"message":"Invalid namespace"}"#
        );
    }

    #[test]
    fn socket_io_v4_connect_query_is_auth() {
        let (nsp, req) = ConnectRequest::parse_v4("/chat?token=a%20b&x=1+2&x=3&flag&bad=%zz");
        assert_eq!(nsp, "/chat");
        assert_eq!(
            serde_json::to_string(&req.auth).unwrap(),
            r#"{"token":"a b","x":"3","flag":"","bad":"%zz"}"#
        );
        assert_eq!(req.pid, None);
        let (nsp, req) = ConnectRequest::parse_v4("/?pid=p&offset=o");
        assert_eq!(nsp, "/");
        assert_eq!(req.pid, None, "v4 clients do not recover");
        let (nsp, req) = ConnectRequest::parse_v4("/a#frag");
        assert_eq!((nsp.as_str(), req.auth), ("/a", Value::Object(Map::new())));
    }

    #[test]
    fn connect_error_round_trip() {
        let e = ConnectError::new("nope").with_data(&[1, 2]).unwrap();
        assert_eq!(
            text(&e.packet("/chat")),
            r#"4/chat,{"message":"nope","data":[1,2]}"#
        );
        assert_eq!(ConnectError::from_value(e.to_value()), e);
        assert_eq!(e.to_string(), "nope");
        let bare = ConnectError::from_value(Value::String("old".into()));
        assert_eq!(bare, ConnectError::new("old"));
        assert_eq!(
            text(&invalid_namespace("/x")),
            r#"4/x,{"message":"Invalid namespace"}"#
        );
    }

    #[test]
    fn connect_error_data_that_does_not_serialize_is_an_error() {
        struct Bad;
        impl Serialize for Bad {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        assert!(ConnectError::new("x").with_data(&Bad).is_err());
    }

    #[test]
    fn connect_answers() {
        assert_eq!(text(&connect_ok("/", "abc", None)), r#"0{"sid":"abc"}"#);
        let p = connect_ok("/a", "abc", Some("p1"));
        assert_eq!(text(&p), r#"0/a,{"sid":"abc","pid":"p1"}"#);
        let Packet::Connect { data, .. } = p else {
            unreachable!()
        };
        assert_eq!(
            ConnectAck::parse(&data),
            Some(ConnectAck {
                sid: "abc".into(),
                pid: Some("p1".into())
            })
        );
        assert_eq!(ConnectAck::parse(&None), None);
        assert_eq!(ConnectAck::parse(&Some(Value::Object(Map::new()))), None);
    }

    #[test]
    fn connect_requests() {
        let auth: Value = [("token", Value::from("t"))].into_iter().collect();
        assert_eq!(
            text(&connect_request("/", Some(auth.clone()), None)),
            r#"0{"token":"t"}"#
        );
        assert_eq!(text(&connect_request("/", None, None)), "0");
        let p = connect_request("/", Some(auth), Some(("p1", Some("o9"))));
        assert_eq!(text(&p), r#"0{"token":"t","pid":"p1","offset":"o9"}"#);
        let p2 = connect_request("/n", None, Some(("p1", None)));
        assert_eq!(text(&p2), r#"0/n,{"pid":"p1","offset":null}"#);

        let Packet::Connect { data, .. } = p else {
            unreachable!()
        };
        let req = ConnectRequest::parse(data);
        assert_eq!(req.pid.as_deref(), Some("p1"));
        assert_eq!(req.offset.as_deref(), Some("o9"));
        assert_eq!(req.auth.get("token").and_then(Value::as_str), Some("t"));
        let empty = ConnectRequest::parse(None);
        assert_eq!(empty.auth, Value::Object(Map::new()));
        assert_eq!(empty.pid, None);
    }
}
