//! The pieces every message format of the Redis adapters shares: packets, broadcast options, socket
//! descriptions, ids, and JSON as `JSON.stringify` writes it.

use std::collections::BTreeMap;
use std::collections::HashSet;

use ferrio_core::adapter::{BroadcastFlags, BroadcastOptions, Handshake, Room, SocketInfo};
use ferrio_proto::socket::Packet;
use ferrio_proto::value::{Map, Value};
use rand::Rng;

use crate::link::{Counters, bump};

/// 6 random alphanumerics (what `uid2(6)` gives): server ids and request ids.
pub(crate) fn uid() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..6)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

pub(crate) fn object(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// A packet as socket.io's `Packet` object: `{type, data, nsp}` (plus `id` for an ack).
pub(crate) fn packet_to_value(packet: &Packet) -> Value {
    match packet {
        Packet::Event {
            nsp, event, args, ..
        } => {
            let mut data = Vec::with_capacity(args.len() + 1);
            data.push(Value::String(event.clone()));
            data.extend(args.iter().cloned());
            object(vec![
                ("type", Value::from(2u64)),
                ("data", Value::Array(data)),
                ("nsp", Value::String(nsp.clone())),
            ])
        }
        Packet::Connect { nsp, data } => {
            let mut pairs = vec![("type", Value::from(0u64))];
            if let Some(d) = data {
                pairs.push(("data", d.clone()));
            }
            pairs.push(("nsp", Value::String(nsp.clone())));
            object(pairs)
        }
        Packet::Disconnect { nsp } => object(vec![
            ("type", Value::from(1u64)),
            ("nsp", Value::String(nsp.clone())),
        ]),
        Packet::Ack { nsp, args, id } => object(vec![
            ("type", Value::from(3u64)),
            ("data", Value::Array(args.clone())),
            ("id", Value::from(*id)),
            ("nsp", Value::String(nsp.clone())),
        ]),
        Packet::ConnectError { nsp, data } => object(vec![
            ("type", Value::from(4u64)),
            ("data", data.clone()),
            ("nsp", Value::String(nsp.clone())),
        ]),
    }
}

/// The packet of a broadcast from another node; a missing `nsp` means `/`.
pub(crate) fn packet_from_value(v: &Value) -> Result<Packet, &'static str> {
    let Value::Object(m) = v else {
        return Err("packet is not an object");
    };
    let nsp = match m.get("nsp") {
        None | Some(Value::Null) => "/".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("packet nsp"),
    };
    match m.get("type").and_then(Value::as_u64) {
        // EVENT, or BINARY_EVENT from an encoder that already marked it.
        Some(2 | 5) => {
            let Some(Value::Array(data)) = m.get("data") else {
                return Err("event without data");
            };
            let mut data = data.iter();
            let event = match data.next() {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err("event name"),
            };
            Ok(Packet::Event {
                nsp,
                event,
                args: data.cloned().collect(),
                id: None,
            })
        }
        Some(1) => Ok(Packet::Disconnect { nsp }),
        _ => Err("packet type"),
    }
}

/// `{rooms: [...], except: [...], flags: {...}}`.
pub(crate) fn opts_to_value(opts: &BroadcastOptions) -> Value {
    let rooms = opts
        .rooms
        .iter()
        .map(|r| Value::String(r.to_string()))
        .collect();
    let except = opts
        .except
        .iter()
        .map(|r| Value::String(r.to_string()))
        .collect();
    let mut flags = Map::new();
    if opts.flags.volatile {
        flags.insert("volatile".into(), Value::Bool(true));
    }
    if let Some(c) = opts.flags.compress {
        flags.insert("compress".into(), Value::Bool(c));
    }
    if let Some(t) = opts.flags.timeout {
        flags.insert(
            "timeout".into(),
            Value::from(u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        );
    }
    object(vec![
        ("rooms", Value::Array(rooms)),
        ("except", Value::Array(except)),
        ("flags", Value::Object(flags)),
    ])
}

/// A room name from a string or a number (rooms may be numbers in JavaScript).
pub(crate) fn room_from(v: Option<&Value>) -> Option<Room> {
    match v? {
        Value::String(s) => Some(Room::from(s.as_str())),
        Value::Number(n) => Some(Room::from(n.to_string().as_str())),
        _ => None,
    }
}

pub(crate) fn rooms_vec(v: Option<&Value>) -> Vec<Room> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(|r| room_from(Some(r))).collect(),
        Some(single @ (Value::String(_) | Value::Number(_))) => {
            room_from(Some(single)).into_iter().collect()
        }
        _ => Vec::new(),
    }
}

pub(crate) fn rooms_from(v: Option<&Value>) -> HashSet<Room> {
    rooms_vec(v).into_iter().collect()
}

/// Broadcast options from the wire; `None` when it is not an object.
pub(crate) fn opts_from_value(v: &Value) -> Option<BroadcastOptions> {
    let Value::Object(m) = v else { return None };
    let mut flags = BroadcastFlags::default();
    if let Some(Value::Object(f)) = m.get("flags") {
        flags.volatile = f.get("volatile").and_then(Value::as_bool).unwrap_or(false);
        flags.compress = f.get("compress").and_then(Value::as_bool);
        flags.timeout = f
            .get("timeout")
            .and_then(Value::as_f64)
            .filter(|t| t.is_finite() && *t >= 0.0)
            .map(|t| std::time::Duration::from_millis(t as u64));
    }
    Some(BroadcastOptions {
        rooms: rooms_from(m.get("rooms")),
        except: rooms_from(m.get("except")),
        flags,
    })
}

/// A request or response: JSON when it starts with `{`, MessagePack otherwise.
pub(crate) fn decode_request(payload: &[u8]) -> Result<Value, String> {
    if payload.first() == Some(&b'{') {
        let text = std::str::from_utf8(payload).map_err(|e| e.to_string())?;
        Value::from_json(text).map_err(|e| e.to_string())
    } else {
        crate::msgpack::decode(payload).map_err(|e| e.to_string())
    }
}

pub(crate) fn json_to_value(v: &serde_json::Value) -> Option<Value> {
    ferrio_proto::value::to_value(v).ok()
}

/// A value as `JSON.stringify` writes it (a blob as a Node `Buffer`: `{"type":"Buffer","data":[…]}`).
pub(crate) fn to_node_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Number(n) => serde_json::Value::Number(n.clone()),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Binary(b) => serde_json::json!({
            "type": "Buffer",
            "data": b.iter().map(|x| serde_json::Value::from(*x)).collect::<Vec<_>>(),
        }),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_node_json).collect()),
        Value::Object(m) => serde_json::Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), to_node_json(v)))
                .collect(),
        ),
    }
}

fn string_map_to_json(m: &BTreeMap<String, String>) -> serde_json::Value {
    serde_json::Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
    )
}

/// `{id, handshake, rooms, data}`, as a REMOTE_FETCH response lists a socket.
pub(crate) fn socket_info_to_json(info: &SocketInfo) -> serde_json::Value {
    let h = &info.handshake;
    serde_json::json!({
        "id": info.id,
        "handshake": {
            "headers": string_map_to_json(&h.headers),
            "time": h.time,
            "address": h.address,
            "xdomain": h.xdomain,
            "secure": h.secure,
            "issued": h.issued,
            "url": h.url,
            "query": string_map_to_json(&h.query),
            "auth": to_node_json(&h.auth),
        },
        "rooms": info.rooms,
        "data": to_node_json(&info.data),
    })
}

/// A header or query value as text: arrays (repeated headers or parameters) joined with `, `.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(", "),
        Value::Null => String::new(),
        other => other.to_json().0,
    }
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    match v {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        _ => BTreeMap::new(),
    }
}

/// A socket of another node, leniently: a missing field takes its default; only `id` is required.
pub(crate) fn socket_info_from(v: &Value) -> Option<SocketInfo> {
    let id = v.get("id")?.as_str()?.to_owned();
    let h = v.get("handshake");
    let field = |k: &str| h.and_then(|h| h.get(k));
    let handshake = Handshake {
        headers: string_map(field("headers")),
        time: field("time").map(text).unwrap_or_default(),
        address: field("address").map(text).unwrap_or_default(),
        xdomain: field("xdomain").and_then(Value::as_bool).unwrap_or(false),
        secure: field("secure").and_then(Value::as_bool).unwrap_or(false),
        issued: field("issued")
            .and_then(Value::as_f64)
            .map(|f| f.max(0.0) as u64)
            .unwrap_or(0),
        url: field("url").map(text).unwrap_or_default(),
        query: string_map(field("query")),
        auth: field("auth").cloned().unwrap_or(Value::Null),
    };
    let rooms = rooms_vec(v.get("rooms"))
        .into_iter()
        .map(|r| r.to_string())
        .collect();
    Some(SocketInfo {
        id,
        handshake,
        rooms,
        data: v.get("data").cloned().unwrap_or(Value::Null),
    })
}

/// Whether a value holds a blob anywhere (what `hasBinary` of the official adapter checks).
pub(crate) fn has_binary(v: &Value) -> bool {
    match v {
        Value::Binary(_) => true,
        Value::Array(a) => a.iter().any(has_binary),
        Value::Object(m) => m.values().any(has_binary),
        _ => false,
    }
}

/// `{id, handshake, rooms, data}` as a [`Value`]: `auth` and `data` kept as they are (blobs included).
pub(crate) fn socket_info_to_value(info: &SocketInfo) -> Value {
    let mut v = json_to_value(&socket_info_to_json(info)).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        m.insert("data".into(), info.data.clone());
        if let Some(Value::Object(h)) = m.get_mut("handshake") {
            h.insert("auth".into(), info.handshake.auth.clone());
        }
    }
    v
}

/// 16 hex digits (what `randomBytes(8).toString("hex")` gives): ClusterAdapter server and request ids.
pub(crate) fn hex_id() -> String {
    let n: u64 = rand::rng().random();
    format!("{n:016x}")
}

/// The sockets of a fetch answer; those that cannot be read are left out and counted as malformed.
pub(crate) fn socket_infos(v: Option<&Value>, counters: &Counters) -> Vec<SocketInfo> {
    let Some(list) = v.and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|s| {
            let info = socket_info_from(s);
            if info.is_none() {
                bump(&counters.malformed);
            }
            info
        })
        .collect()
}

/// `[event, ...args]` of a server-side emit; the event name may be a number in JavaScript.
pub(crate) fn event_and_args(
    data: Option<&Vec<Value>>,
) -> Result<(String, Vec<Value>), &'static str> {
    let mut items = data.ok_or("SERVER_SIDE_EMIT without data")?.iter();
    let event = match items.next() {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err("SERVER_SIDE_EMIT event name"),
        None => return Err("SERVER_SIDE_EMIT without event"),
    };
    Ok((event, items.cloned().collect()))
}

/// Values the codec tests of every flavour share.
#[cfg(test)]
pub(crate) mod fixtures {
    use ferrio_core::adapter::{BroadcastOptions, Handshake, Room, SocketInfo};
    use ferrio_proto::socket::Packet;
    use ferrio_proto::value::Value;

    pub(crate) fn opts(rooms: &[&str], except: &[&str]) -> BroadcastOptions {
        BroadcastOptions {
            rooms: rooms.iter().map(|r| Room::from(*r)).collect(),
            except: except.iter().map(|r| Room::from(*r)).collect(),
            ..Default::default()
        }
    }

    /// An event `e` in namespace `nsp`.
    pub(crate) fn event(nsp: &str, args: Vec<Value>) -> Packet {
        Packet::Event {
            nsp: nsp.into(),
            event: "e".into(),
            args,
            id: None,
        }
    }

    /// Requests every format can say (without binary, which JSON formats cannot carry everywhere).
    pub(crate) fn requests() -> Vec<crate::cluster::Message> {
        use crate::cluster::Message;
        vec![
            Message::SocketsJoin {
                opts: opts(&["a"], &["b"]),
                rooms: vec![Room::from("j")],
            },
            Message::SocketsLeave {
                opts: opts(&[], &[]),
                rooms: vec![Room::from("j"), Room::from("k")],
            },
            Message::DisconnectSockets {
                opts: opts(&["a"], &[]),
                close: true,
            },
            Message::FetchSockets {
                request_id: "r2".into(),
                opts: opts(&["a"], &["b"]),
            },
            Message::ServerSideEmit {
                request_id: Some("r3".into()),
                event: "hi".into(),
                args: vec![Value::from(1u64), Value::from("two")],
            },
        ]
    }

    /// The responses every format can say.
    pub(crate) fn responses() -> Vec<crate::cluster::Response> {
        use crate::cluster::Response;
        vec![
            Response::BroadcastClientCount {
                request_id: "r".into(),
                count: 3,
            },
            Response::BroadcastAck {
                request_id: "r".into(),
                value: Value::Binary(ferrio_proto::Bytes::from_static(&[9])),
            },
            Response::FetchSockets {
                request_id: "r".into(),
                sockets: vec![socket()],
            },
            Response::ServerSideEmit {
                request_id: "r".into(),
                value: Value::from("pong"),
            },
        ]
    }

    pub(crate) fn socket() -> SocketInfo {
        SocketInfo {
            id: "abcdefghijklmnopqrst".into(),
            handshake: Handshake {
                url: "/socket.io/?EIO=4".into(),
                address: "::1".into(),
                issued: 7,
                ..Default::default()
            },
            rooms: vec!["abcdefghijklmnopqrst".into(), "r".into()],
            data: Value::from(3u64),
        }
    }
}
