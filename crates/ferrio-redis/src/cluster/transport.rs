//! The two narrow doors between the cluster core and a transport.
//!
//! A transport moves messages of one namespace between nodes: it encodes them in its flavour's format,
//! picks where they go (a channel, a stream) and hands what arrives, decoded, to an [`Inbox`]. It never
//! touches sockets or rooms; the core never sees bytes or channels.
//!
//! Pub/Sub transports publish to channels and give no offsets. A log-based transport (Redis Streams,
//! `@socket.io/redis-streams-adapter`) fits the same shape: every message, response or not, goes to its
//! one stream (`publish_response` names the requester inside the message), `publish` resolves with the
//! entry id, and each entry it reads reaches the inbox with that id as its offset.

use std::sync::Weak;

use std::time::Duration;

use ferrio_core::BoxFuture;
use ferrio_core::adapter::{BroadcastOptions, Room, Session};
use ferrio_proto::socket::Packet;

use super::message::{Incoming, Message, Response};
use crate::link::Unavailable;

/// Where a message was stored (a stream entry id), when the transport keeps a log.
pub(crate) type Offset = Option<String>;

/// Moves one namespace's messages between nodes.
pub(crate) trait Transport: Send + Sync + Sized + 'static {
    /// A fresh id in the flavour's format (server ids and request ids).
    fn new_id() -> String;

    /// Starts delivering this namespace's messages (from other nodes, responses to this one) to `inbox`.
    fn subscribe(&self, inbox: Weak<dyn Inbox>);

    /// Stops delivering (the namespace closes).
    fn unsubscribe(&self);

    /// Sends to every other node without waiting; while the link is down it is dropped and counted.
    fn publish_nowait(&self, msg: &Message);

    /// Sends to every other node; resolves once the link took it, with its offset in a log.
    fn publish(&self, msg: &Message) -> BoxFuture<Result<Offset, Unavailable>>;

    /// Answers the node `requester` (`None`: a sender that gave no id).
    fn publish_response(&self, requester: Option<&str>, response: &Response);

    /// The number of nodes, this one included.
    fn server_count(&self) -> BoxFuture<Result<usize, Unavailable>>;

    /// Whether other nodes answer [`Message::AllRooms`]; without it, `all_rooms` is this node's.
    fn answers_all_rooms(&self) -> bool {
        false
    }

    /// A room got its first local socket (`private`: it is a socket's own room).
    fn room_created(&self, _room: &Room, _private: bool) {}

    /// A room lost its last local socket.
    fn room_deleted(&self, _room: &Room) {}

    /// Whether this transport keeps a log that sessions can be restored from (connection state
    /// recovery): then broadcasts get their offset from [`publish`](Self::publish) and are delivered
    /// locally, own ones included, as the log orders them.
    fn supports_recovery() -> bool {
        false
    }

    /// Stores a dropped socket's session for `ttl`.
    fn persist_session(
        &self,
        _session: &Session,
        _ttl: Duration,
    ) -> BoxFuture<Result<(), Unavailable>> {
        Box::pin(async { Err(Unavailable) })
    }

    /// Takes the session `pid` (once) and the entries after `offset`; `None` when either is unknown.
    fn restore_session(
        &self,
        _pid: &str,
        _offset: &str,
        _rejoin: Rejoin,
    ) -> BoxFuture<Result<Option<Restored>, Unavailable>> {
        Box::pin(async { Ok(None) })
    }
}

/// A session read back from a log, with the broadcasts of its namespace stored after its offset
/// (`(entry id, packet, options)`, oldest first); a transport may already have left out those the
/// session's rooms did not receive.
pub(crate) struct Restored {
    pub(crate) session: Session,
    pub(crate) entries: Vec<(String, Packet, BroadcastOptions)>,
}

/// Called by a transport's restore at the instant it stops collecting missed entries and before it
/// delivers any newer one: the socket rejoins its rooms then, so that no broadcast falls in between.
pub(crate) type Rejoin = Box<dyn FnOnce(&Session) + Send>;

/// Where a transport delivers what arrives for one namespace.
pub(crate) trait Inbox: Send + Sync {
    /// A message from another node (or this node's own, which the core ignores).
    fn on_message(&self, incoming: Incoming);

    /// An answer to one of this node's requests.
    fn on_response(&self, response: Response);

    /// Whether a local socket is in `room`: a broadcast on a room's channel for a room without local
    /// sockets need not be decoded.
    fn has_room(&self, room: &str) -> bool;
}
