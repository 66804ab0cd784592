//! What nodes say to each other, whatever the flavour: each transport has its own encoding of these
//! (classic `@socket.io/redis-adapter` requests, socket.io-adapter's `ClusterAdapter` messages, …), the
//! core only ever sees them typed.

use std::collections::HashSet;

use ferrio_core::adapter::{BroadcastOptions, Room, SocketInfo};
use ferrio_proto::socket::Packet;
use ferrio_proto::value::Value;

/// A request id (an opaque string, unique per request of one node).
pub(crate) type RequestId = String;

/// A message for every other node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Message {
    /// Deliver to the matching local sockets.
    Broadcast {
        packet: Packet,
        opts: BroadcastOptions,
    },
    /// Deliver to the matching local sockets and report their count and acks.
    BroadcastWithAck {
        request_id: RequestId,
        packet: Packet,
        opts: BroadcastOptions,
    },
    /// Matching local sockets join `rooms`.
    SocketsJoin {
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    },
    /// Matching local sockets leave `rooms`.
    SocketsLeave {
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    },
    /// Disconnect matching local sockets (their whole connection when `close`).
    DisconnectSockets { opts: BroadcastOptions, close: bool },
    /// Describe matching local sockets.
    FetchSockets {
        request_id: RequestId,
        opts: BroadcastOptions,
    },
    /// Run the server-side handlers of `event`; answer the first ack when a request id is given.
    ServerSideEmit {
        request_id: Option<RequestId>,
        event: String,
        args: Vec<Value>,
    },
    /// List the local rooms (classic flavour only).
    AllRooms { request_id: RequestId },
    /// List the ids of the local sockets in `rooms` (classic flavour only: Node's `allSockets()`).
    SocketIds {
        request_id: RequestId,
        rooms: HashSet<Room>,
    },
    /// One socket, by id, joins or leaves a room or is disconnected (the classic 7.x form).
    SocketOp {
        request_id: Option<RequestId>,
        sid: String,
        op: SocketOp,
    },
    /// A node says it is alive (`initial`: it just started). Membership comes from the transport's
    /// server count today; a heartbeat-based transport (Redis Streams) will count nodes from these.
    Heartbeat { initial: bool },
    /// A node's adapter closed.
    AdapterClose,
}

/// What [`Message::SocketOp`] does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SocketOp {
    Join(Room),
    Leave(Room),
    Disconnect { close: bool },
}

/// An answer to one node's request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Response {
    /// How many local sockets got a broadcast with acks.
    BroadcastClientCount { request_id: RequestId, count: usize },
    /// One socket's ack (its first argument).
    BroadcastAck { request_id: RequestId, value: Value },
    /// The matching sockets of one node.
    FetchSockets {
        request_id: RequestId,
        sockets: Vec<SocketInfo>,
    },
    /// One node's server-side ack (its first argument).
    ServerSideEmit { request_id: RequestId, value: Value },
    /// The rooms of one node.
    AllRooms {
        request_id: RequestId,
        rooms: Vec<Room>,
    },
    /// The socket ids of one node.
    SocketIds {
        request_id: RequestId,
        ids: Vec<String>,
    },
    /// A [`Message::SocketOp`] was applied.
    SocketOpDone { request_id: Option<RequestId> },
}

/// A message as it arrived: who sent it (`None`: an emitter or an unknown sender) and, in a log such as
/// a Redis stream, where it stands.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Incoming {
    pub(crate) from: Option<String>,
    pub(crate) message: Message,
    /// The message's position in a log (a stream entry id); connection-state recovery will append it to
    /// the packets it delivers. Pub/Sub has none.
    pub(crate) offset: Option<String>,
}

/// What a transport decoded from one received payload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decoded {
    Message(Incoming),
    Response(Response),
}
