//! socket.io-adapter's `ClusterAdapter` message format (`{type, data, uid, nsp}`, types 1–13): what the
//! sharded adapter publishes, and what the Redis Streams adapter stores. JSON, or MessagePack when the
//! data of a type that may carry binary does.

use ferrio_core::adapter::BroadcastOptions;
use ferrio_proto::value::Value;

use super::message::{Decoded, Incoming, Message, Response};
use crate::link::Counters;
use crate::wire;

wire_enum! {
    /// ClusterAdapter message types (socket.io-adapter 2.5).
    enum MessageType {
        /// A node started (heartbeat membership).
        InitialHeartbeat = 1,
        /// A node is alive.
        Heartbeat = 2,
        /// A broadcast, with acks when it has a request id.
        Broadcast = 3,
        /// `socketsJoin`.
        SocketsJoin = 4,
        /// `socketsLeave`.
        SocketsLeave = 5,
        /// `disconnectSockets`.
        DisconnectSockets = 6,
        /// `fetchSockets`.
        FetchSockets = 7,
        /// A node's sockets.
        FetchSocketsResponse = 8,
        /// `serverSideEmit`, with acks when it has a request id.
        ServerSideEmit = 9,
        /// A node's server-side ack.
        ServerSideEmitResponse = 10,
        /// How many clients of a node got a broadcast with acks.
        BroadcastClientCount = 11,
        /// One client's ack.
        BroadcastAck = 12,
        /// A node's adapter closed.
        AdapterClose = 13,
    }
}

impl MessageType {
    /// The types whose data may hold binary (MessagePack then), as the official `encode` lists them.
    fn may_contain_binary(self) -> bool {
        matches!(
            self,
            Self::Broadcast
                | Self::BroadcastAck
                | Self::FetchSocketsResponse
                | Self::ServerSideEmit
                | Self::ServerSideEmitResponse
        )
    }

    fn is_response(self) -> bool {
        matches!(
            self,
            Self::FetchSocketsResponse
                | Self::ServerSideEmitResponse
                | Self::BroadcastClientCount
                | Self::BroadcastAck
        )
    }
}

fn id(request_id: &str) -> Value {
    Value::String(request_id.to_owned())
}

/// Join, leave, disconnect and fetch carry no flags.
fn opts_without_flags(opts: &BroadcastOptions) -> Value {
    let list = |rooms: &std::collections::HashSet<ferrio_core::adapter::Room>| {
        Value::Array(rooms.iter().map(|r| Value::String(r.to_string())).collect())
    };
    wire::object(vec![
        ("rooms", list(&opts.rooms)),
        ("except", list(&opts.except)),
        ("flags", wire::object(vec![])),
    ])
}

fn rooms_value(rooms: &[ferrio_core::adapter::Room]) -> Value {
    Value::Array(rooms.iter().map(|r| Value::String(r.to_string())).collect())
}

/// The type and data of a message; `None` for what this format cannot say.
fn message_body(msg: &Message) -> Option<(MessageType, Option<Value>)> {
    Some(match msg {
        Message::Broadcast { packet, opts } => (
            MessageType::Broadcast,
            Some(wire::object(vec![
                ("packet", wire::packet_to_value(packet)),
                ("opts", wire::opts_to_value(opts)),
            ])),
        ),
        Message::BroadcastWithAck {
            request_id,
            packet,
            opts,
        } => (
            MessageType::Broadcast,
            Some(wire::object(vec![
                ("packet", wire::packet_to_value(packet)),
                ("requestId", id(request_id)),
                ("opts", wire::opts_to_value(opts)),
            ])),
        ),
        Message::SocketsJoin { opts, rooms } => (
            MessageType::SocketsJoin,
            Some(wire::object(vec![
                ("opts", opts_without_flags(opts)),
                ("rooms", rooms_value(rooms)),
            ])),
        ),
        Message::SocketsLeave { opts, rooms } => (
            MessageType::SocketsLeave,
            Some(wire::object(vec![
                ("opts", opts_without_flags(opts)),
                ("rooms", rooms_value(rooms)),
            ])),
        ),
        Message::DisconnectSockets { opts, close } => (
            MessageType::DisconnectSockets,
            Some(wire::object(vec![
                ("opts", opts_without_flags(opts)),
                ("close", Value::Bool(*close)),
            ])),
        ),
        Message::FetchSockets { request_id, opts } => (
            MessageType::FetchSockets,
            Some(wire::object(vec![
                ("opts", opts_without_flags(opts)),
                ("requestId", id(request_id)),
            ])),
        ),
        Message::ServerSideEmit {
            request_id,
            event,
            args,
        } => {
            let mut packet = vec![Value::String(event.clone())];
            packet.extend(args.iter().cloned());
            let mut data = Vec::with_capacity(2);
            if let Some(rid) = request_id {
                data.push(("requestId", id(rid)));
            }
            data.push(("packet", Value::Array(packet)));
            (MessageType::ServerSideEmit, Some(wire::object(data)))
        }
        Message::Heartbeat { initial: true } => (MessageType::InitialHeartbeat, None),
        Message::Heartbeat { initial: false } => (MessageType::Heartbeat, None),
        Message::AdapterClose => (MessageType::AdapterClose, None),
        Message::AllRooms { .. } | Message::SocketIds { .. } | Message::SocketOp { .. } => {
            return None;
        }
    })
}

fn response_body(response: &Response) -> Option<(MessageType, Value)> {
    Some(match response {
        Response::BroadcastClientCount { request_id, count } => (
            MessageType::BroadcastClientCount,
            wire::object(vec![
                ("requestId", id(request_id)),
                ("clientCount", Value::from(*count as u64)),
            ]),
        ),
        Response::BroadcastAck { request_id, value } => (
            MessageType::BroadcastAck,
            wire::object(vec![
                ("requestId", id(request_id)),
                ("packet", value.clone()),
            ]),
        ),
        Response::FetchSockets {
            request_id,
            sockets,
        } => (
            MessageType::FetchSocketsResponse,
            wire::object(vec![
                ("requestId", id(request_id)),
                (
                    "sockets",
                    Value::Array(sockets.iter().map(wire::socket_info_to_value).collect()),
                ),
            ]),
        ),
        Response::ServerSideEmit { request_id, value } => (
            MessageType::ServerSideEmitResponse,
            wire::object(vec![
                ("requestId", id(request_id)),
                ("packet", value.clone()),
            ]),
        ),
        Response::AllRooms { .. } | Response::SocketIds { .. } | Response::SocketOpDone { .. } => {
            return None;
        }
    })
}

/// `{type, data, uid, nsp}`: MessagePack when the type may carry binary and does, JSON otherwise.
fn frame(ty: MessageType, data: Option<Value>, uid: &str, nsp: &str) -> Vec<u8> {
    let has_binary = data.as_ref().is_some_and(wire::has_binary);
    let mut pairs = vec![("type", Value::from(ty as u64))];
    if let Some(d) = data {
        pairs.push(("data", d));
    }
    pairs.push(("uid", Value::String(uid.to_owned())));
    pairs.push(("nsp", Value::String(nsp.to_owned())));
    let msg = wire::object(pairs);
    if ty.may_contain_binary() && has_binary {
        crate::msgpack::encode(&msg)
    } else if has_binary {
        // `JSON.stringify` of a Buffer.
        wire::to_node_json(&msg).to_string().into_bytes()
    } else {
        // Keys in insertion order, as `JSON.stringify` writes them.
        msg.to_json().0.into_bytes()
    }
}

/// The type number and data of a message, for a format that stores them as separate fields (a stream
/// entry); `bool`: the data may hold binary and does, so JSON cannot carry it.
pub(crate) fn message_fields(msg: &Message) -> Option<(u8, Option<Value>, bool)> {
    let (ty, data) = message_body(msg)?;
    let binary = ty.may_contain_binary() && data.as_ref().is_some_and(wire::has_binary);
    Some((ty as u8, data, binary))
}

/// [`message_fields`] of a response.
pub(crate) fn response_fields(response: &Response) -> Option<(u8, Option<Value>, bool)> {
    let (ty, data) = response_body(response)?;
    let binary = ty.may_contain_binary() && wire::has_binary(&data);
    Some((ty as u8, Some(data), binary))
}

/// Encodes a message of node `uid` in namespace `nsp`; `None` for what this format cannot say.
pub(crate) fn encode_message(msg: &Message, uid: &str, nsp: &str) -> Option<Vec<u8>> {
    let (ty, data) = message_body(msg)?;
    Some(frame(ty, data, uid, nsp))
}

/// Encodes a response of node `uid` in namespace `nsp`.
pub(crate) fn encode_response(response: &Response, uid: &str, nsp: &str) -> Option<Vec<u8>> {
    let (ty, data) = response_body(response)?;
    Some(frame(ty, Some(data), uid, nsp))
}

/// Decodes a payload for namespace `nsp` (`Ok(None)`: another namespace's); `response_channel`: it came
/// on this node's response channel, where only responses belong. Sockets that cannot be read in a
/// fetch answer are left out and counted in `counters`.
pub(crate) fn decode(
    payload: &[u8],
    nsp: &str,
    response_channel: bool,
    counters: &Counters,
) -> Result<Option<Decoded>, String> {
    decode_value(
        wire::decode_request(payload)?,
        nsp,
        response_channel,
        counters,
    )
}

/// [`decode`] of a message already read into a [`Value`] (a stream entry's fields).
pub(crate) fn decode_value(
    msg: Value,
    nsp: &str,
    response_channel: bool,
    counters: &Counters,
) -> Result<Option<Decoded>, String> {
    if !matches!(msg, Value::Object(_)) {
        return Err("message is not an object".into());
    }
    if !response_channel && msg.get("nsp").and_then(Value::as_str) != Some(nsp) {
        return Ok(None);
    }
    let ty = msg
        .get("type")
        .and_then(Value::as_u64)
        .and_then(MessageType::from_u64)
        .ok_or("unknown message type")?;
    let empty = Value::Null;
    let data = msg.get("data").unwrap_or(&empty);
    let request_id = data
        .get("requestId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if ty.is_response() {
        let request_id = request_id.ok_or("response without requestId")?;
        return Ok(Some(Decoded::Response(decode_response(
            ty, data, request_id, counters,
        ))));
    }
    if response_channel {
        return Err("request type on the response channel".into());
    }
    let opts = || {
        data.get("opts")
            .and_then(wire::opts_from_value)
            .ok_or("options")
    };
    let message = match ty {
        MessageType::InitialHeartbeat => Message::Heartbeat { initial: true },
        MessageType::Heartbeat => Message::Heartbeat { initial: false },
        MessageType::AdapterClose => Message::AdapterClose,
        MessageType::Broadcast => {
            let packet = data.get("packet").ok_or("BROADCAST without packet")?;
            let packet = wire::packet_from_value(packet)?;
            let opts = opts()?;
            match request_id {
                None => Message::Broadcast { packet, opts },
                Some(request_id) => Message::BroadcastWithAck {
                    request_id,
                    packet,
                    opts,
                },
            }
        }
        MessageType::SocketsJoin => Message::SocketsJoin {
            opts: opts()?,
            rooms: wire::rooms_vec(data.get("rooms")),
        },
        MessageType::SocketsLeave => Message::SocketsLeave {
            opts: opts()?,
            rooms: wire::rooms_vec(data.get("rooms")),
        },
        MessageType::DisconnectSockets => Message::DisconnectSockets {
            opts: opts()?,
            close: data.get("close").and_then(Value::as_bool).unwrap_or(false),
        },
        MessageType::FetchSockets => Message::FetchSockets {
            opts: opts()?,
            request_id: request_id.ok_or("FETCH_SOCKETS without requestId")?,
        },
        MessageType::ServerSideEmit => {
            let packet = data.get("packet").and_then(Value::as_array);
            let (event, args) = wire::event_and_args(packet)?;
            Message::ServerSideEmit {
                request_id,
                event,
                args,
            }
        }
        MessageType::FetchSocketsResponse
        | MessageType::ServerSideEmitResponse
        | MessageType::BroadcastClientCount
        | MessageType::BroadcastAck => return Err("response type".into()),
    };
    Ok(Some(Decoded::Message(Incoming {
        from: msg.get("uid").and_then(Value::as_str).map(str::to_owned),
        message,
        offset: None,
    })))
}

fn decode_response(
    ty: MessageType,
    data: &Value,
    request_id: String,
    counters: &Counters,
) -> Response {
    let packet = || data.get("packet").cloned().unwrap_or(Value::Null);
    match ty {
        MessageType::BroadcastClientCount => Response::BroadcastClientCount {
            request_id,
            count: data.get("clientCount").and_then(Value::as_u64).unwrap_or(0) as usize,
        },
        MessageType::BroadcastAck => Response::BroadcastAck {
            request_id,
            value: packet(),
        },
        MessageType::ServerSideEmitResponse => Response::ServerSideEmit {
            request_id,
            value: packet(),
        },
        _ => Response::FetchSockets {
            request_id,
            sockets: wire::socket_infos(data.get("sockets"), counters),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use ferrio_core::adapter::Room;
    use ferrio_proto::socket::Packet;
    use ferrio_proto::value::Value;

    use super::*;
    use crate::wire::fixtures::{event, opts, requests, responses};

    fn packet(args: Vec<Value>) -> Packet {
        event("/chat", args)
    }

    fn roundtrip(msg: Message) {
        let bytes = encode_message(&msg, "0123456789abcdef", "/chat").expect("encodable");
        let got = decode(&bytes, "/chat", false, &Counters::default()).expect("decodes");
        let want = Decoded::Message(Incoming {
            from: Some("0123456789abcdef".into()),
            message: msg,
            offset: None,
        });
        assert_eq!(got, Some(want));
        // Another namespace's message is not ours.
        assert_eq!(decode(&bytes, "/", false, &Counters::default()), Ok(None));
    }

    #[test]
    fn messages_round_trip() {
        let mut flagged = opts(&["r"], &["x"]);
        flagged.flags.volatile = true;
        flagged.flags.timeout = Some(Duration::from_millis(1500));
        let bin = Value::Binary(ferrio_proto::Bytes::from_static(&[1, 2]));
        for msg in [
            Message::Broadcast {
                packet: packet(vec![Value::from(1u64)]),
                opts: flagged.clone(),
            },
            Message::Broadcast {
                packet: packet(vec![bin.clone()]),
                opts: opts(&[], &[]),
            },
            Message::BroadcastWithAck {
                request_id: "r1".into(),
                packet: packet(vec![]),
                opts: flagged,
            },
            Message::ServerSideEmit {
                request_id: None,
                event: "hi".into(),
                args: vec![bin],
            },
            Message::ServerSideEmit {
                request_id: Some("r3".into()),
                event: "hi".into(),
                args: vec![],
            },
            Message::Heartbeat { initial: true },
            Message::AdapterClose,
        ]
        .into_iter()
        .chain(requests())
        {
            roundtrip(msg);
        }
    }

    #[test]
    fn responses_round_trip() {
        for response in responses() {
            let bytes = encode_response(&response, "u", "/").expect("encodable");
            let got = decode(&bytes, "/", true, &Counters::default());
            assert_eq!(got, Ok(Some(Decoded::Response(response))));
        }
    }

    #[test]
    fn what_this_format_cannot_say() {
        let rooms: HashSet<Room> = HashSet::new();
        assert!(
            encode_message(
                &Message::SocketIds {
                    request_id: "r".into(),
                    rooms
                },
                "u",
                "/"
            )
            .is_none()
        );
        let request = encode_message(
            &Message::FetchSockets {
                request_id: "r".into(),
                opts: opts(&[], &[]),
            },
            "u",
            "/",
        )
        .unwrap();
        assert!(
            decode(&request, "/", true, &Counters::default()).is_err(),
            "a request on the response channel is malformed"
        );
    }
}
