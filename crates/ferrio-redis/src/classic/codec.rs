//! The message format of `@socket.io/redis-adapter` 8.x (the classic adapter) and of
//! `@socket.io/redis-emitter`: broadcasts as MessagePack `[uid, packet, opts]` on `key#nsp#[room#]`,
//! requests and responses as JSON (MessagePack where binary may travel) on `key-request#nsp#` and
//! `key-response#nsp#[uid#]`.

use ferrio_core::adapter::{BroadcastOptions, Room};
use ferrio_proto::value::Value;
use serde_json::json;

use crate::cluster::{Decoded, Incoming, Message, Response, SocketOp};
use crate::link::Counters;
use crate::wire;

wire_enum! {
    /// Request types of the classic adapter (responses reuse some of them).
    enum RequestType {
        /// The ids of the sockets in some rooms (Node's `allSockets()`).
        Sockets = 0,
        /// Every room of a node.
        AllRooms = 1,
        /// Sockets join rooms.
        RemoteJoin = 2,
        /// Sockets leave rooms.
        RemoteLeave = 3,
        /// Sockets are disconnected.
        RemoteDisconnect = 4,
        /// Describe sockets (`fetchSockets()`).
        RemoteFetch = 5,
        /// An event for the server-side handlers; also the type of their answer.
        ServerSideEmit = 6,
        /// A broadcast expecting acks.
        Broadcast = 7,
        /// How many clients got a broadcast with acks.
        BroadcastClientCount = 8,
        /// One client's ack.
        BroadcastAck = 9,
    }
}

/// Which channel a message goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `key#nsp#`, or `key#nsp#room#` for a broadcast to one room.
    Broadcast(Option<Room>),
    /// `key-request#nsp#`.
    Request,
}

fn strings(rooms: impl IntoIterator<Item = impl ToString>) -> Vec<String> {
    rooms.into_iter().map(|r| r.to_string()).collect()
}

/// `{rooms, except}`: the classic requests carry no flags.
fn target(opts: &BroadcastOptions) -> serde_json::Value {
    json!({ "rooms": strings(&opts.rooms), "except": strings(&opts.except) })
}

/// A JSON request, with the sender's uid when it gave one (the emitter gives none for join, leave and
/// disconnect, as the official emitter does).
fn request(uid: Option<&str>, ty: RequestType, fields: serde_json::Value) -> Vec<u8> {
    let mut req = serde_json::Map::new();
    if let Some(uid) = uid {
        req.insert("uid".into(), uid.into());
    }
    req.insert("type".into(), (ty as u8).into());
    if let serde_json::Value::Object(fields) = fields {
        req.extend(fields);
    }
    serde_json::Value::Object(req).to_string().into_bytes()
}

/// Encodes a message of node `uid` (`None`: a sender without id); `None` for what this format cannot say.
pub(crate) fn encode_message(msg: &Message, uid: Option<&str>) -> Option<(Route, Vec<u8>)> {
    let sender = || Value::String(uid.unwrap_or_default().to_owned());
    Some(match msg {
        Message::Broadcast { packet, opts } => {
            let payload = Value::Array(vec![
                sender(),
                wire::packet_to_value(packet),
                wire::opts_to_value(opts),
            ]);
            let room = (opts.rooms.len() == 1)
                .then(|| opts.rooms.iter().next().cloned())
                .flatten();
            (Route::Broadcast(room), crate::msgpack::encode(&payload))
        }
        Message::BroadcastWithAck {
            request_id,
            packet,
            opts,
        } => {
            let payload = wire::object(vec![
                ("uid", sender()),
                ("requestId", Value::String(request_id.clone())),
                ("type", Value::from(RequestType::Broadcast as u64)),
                ("packet", wire::packet_to_value(packet)),
                ("opts", wire::opts_to_value(opts)),
            ]);
            (Route::Request, crate::msgpack::encode(&payload))
        }
        Message::SocketsJoin { opts, rooms } => (
            Route::Request,
            request(
                uid,
                RequestType::RemoteJoin,
                json!({ "opts": target(opts), "rooms": strings(rooms) }),
            ),
        ),
        Message::SocketsLeave { opts, rooms } => (
            Route::Request,
            request(
                uid,
                RequestType::RemoteLeave,
                json!({ "opts": target(opts), "rooms": strings(rooms) }),
            ),
        ),
        Message::DisconnectSockets { opts, close } => (
            Route::Request,
            request(
                uid,
                RequestType::RemoteDisconnect,
                json!({ "opts": target(opts), "close": close }),
            ),
        ),
        Message::FetchSockets { request_id, opts } => (
            Route::Request,
            request(
                uid,
                RequestType::RemoteFetch,
                json!({ "requestId": request_id, "opts": target(opts) }),
            ),
        ),
        Message::ServerSideEmit {
            request_id,
            event,
            args,
        } => {
            let mut data = vec![serde_json::Value::String(event.clone())];
            data.extend(args.iter().map(wire::to_node_json));
            let mut fields = json!({ "data": data });
            if let Some(rid) = request_id {
                fields["requestId"] = rid.clone().into();
            }
            (
                Route::Request,
                request(uid, RequestType::ServerSideEmit, fields),
            )
        }
        Message::AllRooms { request_id } => (
            Route::Request,
            request(
                uid,
                RequestType::AllRooms,
                json!({ "requestId": request_id }),
            ),
        ),
        Message::SocketIds { request_id, rooms } => (
            Route::Request,
            request(
                uid,
                RequestType::Sockets,
                json!({ "requestId": request_id, "rooms": strings(rooms) }),
            ),
        ),
        Message::SocketOp {
            request_id,
            sid,
            op,
        } => {
            let (ty, extra) = match op {
                SocketOp::Join(room) => (RequestType::RemoteJoin, json!({ "room": &**room })),
                SocketOp::Leave(room) => (RequestType::RemoteLeave, json!({ "room": &**room })),
                SocketOp::Disconnect { close } => {
                    (RequestType::RemoteDisconnect, json!({ "close": close }))
                }
            };
            let mut fields = json!({ "requestId": request_id, "sid": sid });
            if let (Some(f), serde_json::Value::Object(extra)) = (fields.as_object_mut(), extra) {
                f.extend(extra);
            }
            (Route::Request, request(uid, ty, fields))
        }
        // The classic adapter counts nodes with NUMSUB: no heartbeats.
        Message::Heartbeat { .. } | Message::AdapterClose => return None,
    })
}

/// Encodes a response.
pub(crate) fn encode_response(response: &Response) -> Vec<u8> {
    let json = |v: serde_json::Value| v.to_string().into_bytes();
    match response {
        Response::BroadcastClientCount { request_id, count } => json(json!({
            "type": RequestType::BroadcastClientCount as u8,
            "requestId": request_id,
            "clientCount": count,
        })),
        // An ack may carry binary: MessagePack, as the official adapter's parser writes it.
        Response::BroadcastAck { request_id, value } => {
            crate::msgpack::encode(&wire::object(vec![
                ("type", Value::from(RequestType::BroadcastAck as u64)),
                ("requestId", Value::String(request_id.clone())),
                ("packet", value.clone()),
            ]))
        }
        Response::FetchSockets {
            request_id,
            sockets,
        } => {
            let sockets: Vec<_> = sockets.iter().map(wire::socket_info_to_json).collect();
            json(json!({ "requestId": request_id, "sockets": sockets }))
        }
        Response::ServerSideEmit { request_id, value } => json(json!({
            "type": RequestType::ServerSideEmit as u8,
            "requestId": request_id,
            "data": wire::to_node_json(value),
        })),
        Response::AllRooms { request_id, rooms } => {
            json(json!({ "requestId": request_id, "rooms": strings(rooms) }))
        }
        Response::SocketIds { request_id, ids } => {
            json(json!({ "requestId": request_id, "sockets": ids }))
        }
        Response::SocketOpDone { request_id } => json(json!({ "requestId": request_id })),
    }
}

/// Whether a response goes to the requester's own channel when `publish_on_specific_response_channel`
/// is on: the official adapter always answers server-side emits on the common channel.
pub(crate) fn may_go_to_requester(response: &Response) -> bool {
    !matches!(response, Response::ServerSideEmit { .. })
}

/// A broadcast (`[uid, packet, opts]`) for namespace `nsp`; `Ok(None)`: another namespace's.
pub(crate) fn decode_broadcast(payload: &[u8], nsp: &str) -> Result<Option<Decoded>, String> {
    let msg = crate::msgpack::decode(payload).map_err(|e| e.to_string())?;
    let Some([uid, packet, opts]) = msg.as_array().and_then(|a| a.get(..3)) else {
        return Err("broadcast is not [uid, packet, opts]".into());
    };
    let packet = wire::packet_from_value(packet)?;
    if packet.nsp() != nsp {
        return Ok(None);
    }
    let opts = wire::opts_from_value(opts).ok_or("broadcast options")?;
    Ok(Some(Decoded::Message(Incoming {
        from: uid.as_str().map(str::to_owned),
        message: Message::Broadcast { packet, opts },
        offset: None,
    })))
}

/// A request on `key-request#nsp#`.
pub(crate) fn decode_request(payload: &[u8]) -> Result<Decoded, String> {
    let req = wire::decode_request(payload)?;
    if !matches!(req, Value::Object(_)) {
        return Err("request is not an object".into());
    }
    let ty = req
        .get("type")
        .and_then(Value::as_u64)
        .and_then(RequestType::from_u64)
        .ok_or("unknown request type")?;
    let request_id = req
        .get("requestId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let required = |what: &'static str| request_id.clone().ok_or(what);
    let opts = || {
        req.get("opts")
            .map(|o| wire::opts_from_value(o).ok_or("options"))
    };
    let message = match ty {
        RequestType::Sockets => Message::SocketIds {
            request_id: required("SOCKETS without requestId")?,
            rooms: wire::rooms_from(req.get("rooms")),
        },
        RequestType::AllRooms => Message::AllRooms {
            request_id: required("ALL_ROOMS without requestId")?,
        },
        RequestType::RemoteJoin | RequestType::RemoteLeave | RequestType::RemoteDisconnect => {
            match opts() {
                Some(opts) => {
                    let opts = opts?;
                    let rooms = wire::rooms_vec(req.get("rooms"));
                    match ty {
                        RequestType::RemoteJoin => Message::SocketsJoin { opts, rooms },
                        RequestType::RemoteLeave => Message::SocketsLeave { opts, rooms },
                        _ => Message::DisconnectSockets {
                            opts,
                            close: req.get("close").and_then(Value::as_bool).unwrap_or(false),
                        },
                    }
                }
                // The 7.x form: one socket by id.
                None => {
                    let sid = req
                        .get("sid")
                        .and_then(Value::as_str)
                        .ok_or("join/leave/disconnect without opts nor sid")?
                        .to_owned();
                    let room = || wire::room_from(req.get("room")).ok_or("room");
                    let op = match ty {
                        RequestType::RemoteJoin => SocketOp::Join(room()?),
                        RequestType::RemoteLeave => SocketOp::Leave(room()?),
                        _ => SocketOp::Disconnect {
                            close: req.get("close").and_then(Value::as_bool).unwrap_or(false),
                        },
                    };
                    Message::SocketOp {
                        request_id,
                        sid,
                        op,
                    }
                }
            }
        }
        RequestType::RemoteFetch => Message::FetchSockets {
            request_id: required("REMOTE_FETCH without requestId")?,
            opts: opts().ok_or("REMOTE_FETCH without opts")??,
        },
        RequestType::ServerSideEmit => {
            let (event, args) = wire::event_and_args(req.get("data").and_then(Value::as_array))?;
            Message::ServerSideEmit {
                request_id,
                event,
                args,
            }
        }
        RequestType::Broadcast => {
            let request_id = required("BROADCAST without requestId")?;
            let packet = req.get("packet").ok_or("BROADCAST without packet")?;
            Message::BroadcastWithAck {
                request_id,
                packet: wire::packet_from_value(packet)?,
                opts: opts().ok_or("BROADCAST without opts")??,
            }
        }
        RequestType::BroadcastClientCount | RequestType::BroadcastAck => {
            return Err("response type on the request channel".into());
        }
    };
    Ok(Decoded::Message(Incoming {
        from: req.get("uid").and_then(Value::as_str).map(str::to_owned),
        message,
        offset: None,
    }))
}

/// A response on `key-response#nsp#[uid#]`; `Ok(None)` without a request id (nobody to give it to).
///
/// Only some responses say their type: the others are told apart by their fields, as the requester
/// knows what it asked.
pub(crate) fn decode_response(
    payload: &[u8],
    counters: &Counters,
) -> Result<Option<Decoded>, String> {
    let resp = wire::decode_request(payload)?;
    if !matches!(resp, Value::Object(_)) {
        return Err("response is not an object".into());
    }
    let Some(request_id) = resp
        .get("requestId")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Ok(None);
    };
    let ty = resp
        .get("type")
        .and_then(Value::as_u64)
        .and_then(RequestType::from_u64);
    let response = match ty {
        Some(RequestType::BroadcastClientCount) => Response::BroadcastClientCount {
            request_id,
            count: resp.get("clientCount").and_then(Value::as_u64).unwrap_or(0) as usize,
        },
        Some(RequestType::BroadcastAck) => Response::BroadcastAck {
            request_id,
            value: resp.get("packet").cloned().unwrap_or(Value::Null),
        },
        Some(RequestType::ServerSideEmit) => Response::ServerSideEmit {
            request_id,
            value: resp.get("data").cloned().unwrap_or(Value::Null),
        },
        Some(_) => return Err("request type on the response channel".into()),
        None => match (resp.get("sockets"), resp.get("rooms")) {
            (Some(Value::Array(ids)), _)
                if !ids.is_empty() && ids.iter().all(|s| matches!(s, Value::String(_))) =>
            {
                Response::SocketIds {
                    request_id,
                    ids: ids
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect(),
                }
            }
            (Some(sockets), _) => Response::FetchSockets {
                request_id,
                sockets: wire::socket_infos(Some(sockets), counters),
            },
            (None, Some(rooms)) => Response::AllRooms {
                request_id,
                rooms: wire::rooms_vec(Some(rooms)),
            },
            (None, None) => Response::SocketOpDone {
                request_id: Some(request_id),
            },
        },
    };
    Ok(Some(Decoded::Response(response)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ferrio_core::adapter::Room;
    use ferrio_proto::socket::Packet;

    use super::*;
    use crate::wire::fixtures::{self, event, opts, responses};

    fn packet(args: Vec<Value>) -> Packet {
        event("/chat", args)
    }

    fn roundtrip(msg: Message, route: Route) {
        let (got_route, bytes) = encode_message(&msg, Some("abc123")).expect("encodable");
        assert_eq!(got_route, route);
        let decoded = match route {
            Route::Broadcast(_) => decode_broadcast(&bytes, "/chat").expect("decodes"),
            Route::Request => Some(decode_request(&bytes).expect("decodes")),
        };
        let want = Decoded::Message(Incoming {
            from: Some("abc123".into()),
            message: msg,
            offset: None,
        });
        assert_eq!(decoded, Some(want));
    }

    #[test]
    fn messages_round_trip() {
        let mut flagged = opts(&["r"], &["x"]);
        flagged.flags.volatile = true;
        flagged.flags.compress = Some(false);
        flagged.flags.timeout = Some(Duration::from_millis(200));
        let bin = Value::Binary(ferrio_proto::Bytes::from_static(&[1, 2]));
        roundtrip(
            Message::Broadcast {
                packet: packet(vec![bin.clone()]),
                opts: flagged.clone(),
            },
            Route::Broadcast(Some(Room::from("r"))),
        );
        roundtrip(
            Message::Broadcast {
                packet: packet(vec![]),
                opts: opts(&["r", "q"], &[]),
            },
            Route::Broadcast(None),
        );
        let requests = [
            Message::BroadcastWithAck {
                request_id: "r1".into(),
                packet: packet(vec![bin]),
                opts: flagged,
            },
            Message::AllRooms {
                request_id: "r4".into(),
            },
            Message::SocketIds {
                request_id: "r5".into(),
                rooms: [Room::from("a")].into_iter().collect(),
            },
            Message::SocketOp {
                request_id: Some("r6".into()),
                sid: "s".into(),
                op: SocketOp::Join(Room::from("j")),
            },
            Message::SocketOp {
                request_id: None,
                sid: "s".into(),
                op: SocketOp::Disconnect { close: false },
            },
        ];
        for msg in requests.into_iter().chain(fixtures::requests()) {
            roundtrip(msg, Route::Request);
        }
        // The emitter's join carries no uid, as the official emitter's.
        let join = Message::SocketsJoin {
            opts: opts(&[], &[]),
            rooms: vec![],
        };
        let (_, bytes) = encode_message(&join, None).unwrap();
        assert!(!String::from_utf8(bytes).unwrap().contains("uid"));
    }

    #[test]
    fn responses_round_trip() {
        let classic_only = [
            Response::AllRooms {
                request_id: "r".into(),
                rooms: vec![Room::from("a"), Room::from("b")],
            },
            Response::SocketIds {
                request_id: "r".into(),
                ids: vec!["s1".into()],
            },
            Response::SocketOpDone {
                request_id: Some("r".into()),
            },
        ];
        for response in responses().into_iter().chain(classic_only) {
            let bytes = encode_response(&response);
            let got = decode_response(&bytes, &Counters::default());
            assert_eq!(got, Ok(Some(Decoded::Response(response))));
        }
        // Without a request id, nobody asked.
        assert_eq!(decode_response(b"{}", &Counters::default()), Ok(None));
    }

    #[test]
    fn only_server_side_answers_stay_on_the_common_channel() {
        let sse = Response::ServerSideEmit {
            request_id: "r".into(),
            value: Value::Null,
        };
        assert!(!may_go_to_requester(&sse));
        let count = Response::BroadcastClientCount {
            request_id: "r".into(),
            count: 0,
        };
        assert!(may_go_to_requester(&count));
    }
}
