//! The adapter: the only door from a namespace to rooms, broadcasts and other nodes.
//!
//! A namespace owns one adapter. The in-memory adapter ([`MemoryAdapter`]) serves one process; a
//! distributed adapter (Redis) implements the same trait and forwards what concerns other nodes. The
//! adapter reaches the sockets of this node only through [`LocalNamespace`], so it needs nothing of the
//! HTTP stack.

mod memory;
mod recovery;

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use ferrio_proto::socket::{Encoded, Packet};
use ferrio_proto::value::Value;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use memory::MemoryAdapter;
pub use recovery::{RecoveryOptions, RestoredSession, Session, SessionLog};

use crate::BoxFuture;

/// A socket id (public, per namespace).
pub type Sid = Arc<str>;
/// A room name.
pub type Room = Arc<str>;

/// Flags of a broadcast.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BroadcastFlags {
    /// Only this node.
    pub local: bool,
    /// May be dropped when a recipient cannot take it now.
    pub volatile: bool,
    /// Compression wish (`compress(false)` turns it off).
    pub compress: Option<bool>,
    /// Ack timeout, for broadcasts that expect acks.
    pub timeout: Option<Duration>,
}

/// Who a broadcast or a bulk operation targets: sockets in any of `rooms` (every socket when empty),
/// minus the sockets in any of `except`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BroadcastOptions {
    /// Target rooms.
    pub rooms: HashSet<Room>,
    /// Excluded rooms.
    pub except: HashSet<Room>,
    /// Flags.
    pub flags: BroadcastFlags,
}

/// What an adapter reports while acks of a broadcast come in.
#[derive(Debug, Clone, PartialEq)]
pub enum AckEvent {
    /// This many more clients received the packet (one report per node).
    ClientCount(usize),
    /// One client answered.
    Response(Vec<Value>),
    /// Every node has reported its client count.
    CountsComplete,
    /// The adapter's own request timeout ended the wait (a node that never answered): what arrived is
    /// all there will be, and the wait failed by timeout, not by a disconnection.
    TimedOut,
}

/// Where acks of a broadcast go.
pub type AckSink = mpsc::UnboundedSender<AckEvent>;

/// Told when a local socket joins (`true`) or leaves (`false`) a room, as the official adapter's
/// `join-room` / `leave-room` events (for instrumentation such as the admin UI).
pub type RoomListener = Arc<dyn Fn(&Room, &Sid, bool) + Send + Sync>;

/// The request of a client when it joined, as the official server describes it (and sends across nodes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Handshake {
    /// Request headers (lower-case names).
    pub headers: std::collections::BTreeMap<String, String>,
    /// Date of creation, as a string.
    pub time: String,
    /// The peer's IP address.
    pub address: String,
    /// Whether the request came from another origin.
    pub xdomain: bool,
    /// Whether the connection is TLS.
    pub secure: bool,
    /// Date of creation, in milliseconds since the epoch.
    pub issued: u64,
    /// Request URL (path and query).
    pub url: String,
    /// Query parameters.
    pub query: std::collections::BTreeMap<String, String>,
    /// The `auth` payload of the CONNECT packet.
    pub auth: Value,
}

/// A socket as an adapter sees it: enough to describe it to any node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SocketInfo {
    /// Socket id.
    pub id: String,
    /// Handshake.
    pub handshake: Handshake,
    /// Rooms it is in.
    pub rooms: Vec<String>,
    /// Its `data`.
    pub data: Value,
}

/// Errors of an adapter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdapterError {
    /// The namespace is gone.
    #[error("namespace closed")]
    Closed,
    /// Other nodes could not be reached.
    #[error("adapter transport: {0}")]
    Transport(String),
}

/// Why a socket could not join rooms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The socket would be in more than `max` rooms (`max_rooms_per_socket`); none of the rooms of
    /// this join were added.
    #[error("too many rooms: a socket may be in {max} rooms at most")]
    TooManyRooms {
        /// The limit.
        max: usize,
    },
}

/// A local socket as a broadcast reaches it. An adapter keeps one beside the sid in its room index
/// ([`LocalNamespace::recipient`]), so that a broadcast writes to each recipient without looking it
/// up by sid: that lookup was the largest part of a delivery's own work, a cache miss per recipient
/// in a large fan-out.
pub trait Recipient: Send + Sync {
    /// The socket's id.
    fn sid(&self) -> &str;
    /// Writes pre-encoded frames, as [`LocalNamespace::deliver`] would, and says whether they were
    /// written. `None` when this socket no longer takes deliveries for its sid (it disconnected, and
    /// a session restored under the same sid may be waiting for them): the adapter then delivers by
    /// sid.
    fn deliver(&self, encoded: &Encoded, flags: &BroadcastFlags) -> Option<bool>;
}

/// The sockets of this node in one namespace, as the adapter may use them.
pub trait LocalNamespace: Send + Sync + 'static {
    /// Namespace name.
    fn name(&self) -> &str;
    /// Encodes a packet once for every recipient.
    fn encode(&self, packet: &Packet) -> Encoded;
    /// Writes pre-encoded frames to a socket; returns whether it was written.
    fn deliver(&self, sid: &str, encoded: &Encoded, flags: &BroadcastFlags) -> bool;
    /// The socket `sid` itself, for an adapter to keep in its room index; `None` (the default) when
    /// it is not reachable now, or the namespace delivers by sid only. Asked when a socket joins
    /// rooms; a recipient that stops taking deliveries says so ([`Recipient::deliver`]).
    fn recipient(&self, _sid: &str) -> Option<Weak<dyn Recipient>> {
        None
    }
    /// Writes pre-encoded frames carrying ack id `ack_id` and routes the socket's answer to `sink`.
    fn deliver_with_ack(&self, sid: &str, encoded: &Encoded, ack_id: u64, sink: &AckSink) -> bool;
    /// A fresh ack id for a broadcast with acks.
    fn next_ack_id(&self) -> u64;
    /// Describes a local socket.
    fn socket_info(&self, sid: &str) -> Option<SocketInfo>;
    /// Disconnects a local socket (and its whole connection when `close`).
    fn disconnect(&self, sid: &str, close: bool);
    /// Runs the server-side event handlers of this node (`serverSideEmit` from another node).
    fn on_server_side_emit(&self, event: String, args: Vec<Value>, sink: Option<AckSink>);
    /// Connection state recovery: the socket `sid` is being restored. From now on, until its socket
    /// takes over, what is delivered to `sid` is kept for it instead of being dropped. An adapter calls
    /// this in [`Adapter::restore_session`], at the same instant as it reads the missed packets and
    /// puts `sid` back into its rooms, so that each broadcast is either missed or held, never both or
    /// neither.
    fn hold(&self, _sid: &str) {}
    /// Rooms one socket may be in at once (`max_rooms_per_socket`); `None`: no limit. An adapter that
    /// keeps rooms refuses a join past it.
    fn max_rooms_per_socket(&self) -> Option<usize> {
        None
    }
}

/// The adapter of a namespace.
pub trait Adapter: Send + Sync + 'static {
    /// Adds a socket to rooms. A join past [`LocalNamespace::max_rooms_per_socket`] adds nothing (and
    /// logs a warning): see [`try_add_all`](Adapter::try_add_all).
    fn add_all(&self, sid: &Sid, rooms: &[Room]);
    /// Adds a socket to rooms, or none of them when it would then be in more than
    /// [`LocalNamespace::max_rooms_per_socket`] rooms. The default (an adapter keeping no rooms of its
    /// own) adds them.
    fn try_add_all(&self, sid: &Sid, rooms: &[Room]) -> Result<(), JoinError> {
        self.add_all(sid, rooms);
        Ok(())
    }
    /// Removes a socket from a room.
    fn del(&self, sid: &Sid, room: &Room);
    /// Removes a socket from every room; frees its entry.
    fn del_all(&self, sid: &Sid);
    /// The rooms of a local socket.
    fn socket_rooms(&self, sid: &Sid) -> Vec<Room>;
    /// Local sockets matching `opts`.
    fn sockets(&self, opts: &BroadcastOptions) -> Vec<Sid>;
    /// Every room with at least one socket (all nodes unless `local`).
    fn all_rooms(&self, local: bool) -> BoxFuture<Result<HashSet<Room>, AdapterError>>;
    /// Sends a packet to every matching socket.
    fn broadcast(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
    ) -> BoxFuture<Result<(), AdapterError>>;
    /// Whether a broadcast to `opts` may come to [`Adapter::broadcast_encoded`]: already encoded with
    /// the namespace's parser, without its packet. Only an adapter that needs nothing more of it says
    /// yes (the in-memory one, when no session log keeps the packet for recovery). A cluster adapter
    /// sends the packet itself to the other nodes, so the default is `false`.
    fn takes_encoded(&self, _opts: &BroadcastOptions) -> bool {
        false
    }
    /// Sends an event, encoded with the namespace's parser, to every matching socket, as
    /// [`Adapter::broadcast`] would have sent its packet. Called only when
    /// [`Adapter::takes_encoded`] said yes for `opts`; the default (which never says yes) refuses it.
    fn broadcast_encoded(
        &self,
        _encoded: &Encoded,
        _opts: &BroadcastOptions,
    ) -> Result<(), AdapterError> {
        Err(AdapterError::Transport(
            "this adapter sends packets, not encoded frames".into(),
        ))
    }
    /// Sends a packet expecting an ack from every matching socket; acks and counts go to `sink`, which
    /// gets `CountsComplete` once every node reported.
    fn broadcast_with_ack(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
        sink: AckSink,
    ) -> BoxFuture<Result<(), AdapterError>>;
    /// Describes matching sockets.
    fn fetch_sockets(
        &self,
        opts: BroadcastOptions,
    ) -> BoxFuture<Result<Vec<SocketInfo>, AdapterError>>;
    /// Makes matching sockets join rooms.
    fn add_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<Result<(), AdapterError>>;
    /// Makes matching sockets leave rooms.
    fn del_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<Result<(), AdapterError>>;
    /// Disconnects matching sockets.
    fn disconnect_sockets(
        &self,
        opts: BroadcastOptions,
        close: bool,
    ) -> BoxFuture<Result<(), AdapterError>>;
    /// Sends an event to the other nodes' server-side handlers; their acks go to `sink`.
    fn server_side_emit(
        &self,
        event: String,
        args: Vec<Value>,
        sink: Option<AckSink>,
    ) -> BoxFuture<Result<(), AdapterError>>;
    /// The ids of matching sockets on every node (all nodes unless `opts.flags.local`). The default asks
    /// `fetch_sockets`, which is right across a cluster; an adapter that can list ids alone overrides it.
    fn socket_ids(&self, opts: BroadcastOptions) -> BoxFuture<Result<Vec<Sid>, AdapterError>> {
        let infos = self.fetch_sockets(opts);
        Box::pin(async move {
            Ok(infos
                .await?
                .into_iter()
                .map(|info| Sid::from(info.id))
                .collect())
        })
    }
    /// How many sockets match on every node (all nodes unless `opts.flags.local`): the size of a room.
    /// The default counts `socket_ids`; an adapter that can count cheaper overrides it.
    fn sockets_count(&self, opts: BroadcastOptions) -> BoxFuture<Result<usize, AdapterError>> {
        let ids = self.socket_ids(opts);
        Box::pin(async move { Ok(ids.await?.len()) })
    }
    /// Turns connection state recovery on (the namespace calls it once, before any socket joins);
    /// returns whether this adapter supports it. When it does, every broadcast that
    /// [`SessionLog::is_eligible`] accepts carries an offset as its last argument, and sessions can
    /// be persisted and restored. The default supports nothing: recovery then never succeeds.
    fn enable_recovery(&self, _opts: RecoveryOptions) -> bool {
        false
    }
    /// Keeps the session of a socket that dropped for a recoverable reason, for
    /// `max_disconnection_duration`.
    fn persist_session(&self, _session: Session) -> BoxFuture<Result<(), AdapterError>> {
        Box::pin(async { Ok(()) })
    }
    /// Gives back the session `pid` and every broadcast it missed since `offset`, oldest first, once:
    /// `None` when the pid is unknown, used or expired, or the offset is not known any more. On
    /// success, the adapter has put the socket back into its rooms and called
    /// [`LocalNamespace::hold`] for it, at the same instant as it read the missed packets.
    fn restore_session(
        &self,
        _pid: &str,
        _offset: &str,
    ) -> BoxFuture<Result<Option<RestoredSession>, AdapterError>> {
        Box::pin(async { Ok(None) })
    }
    /// Number of nodes (1 for the in-memory adapter).
    fn server_count(&self) -> BoxFuture<usize>;
    /// Called once the namespace exists (the factory runs while it is being built, so the namespace
    /// cannot be reached from the factory itself): subscribe to other nodes here.
    fn init(&self) {}
    /// Stops the adapter (namespace closing).
    fn close(&self) {}
    /// Adds a listener of the local sockets' joins and leaves (a socket already in the room does not
    /// join it again). Adapters keeping no rooms of their own ignore it.
    fn on_room_change(&self, _listener: RoomListener) {}
    /// The adapter as `Any`, to reach what a specific adapter offers (metrics, …).
    fn as_any(&self) -> &dyn std::any::Any;
}

/// Builds the adapter of each namespace.
pub type AdapterFactory =
    Arc<dyn Fn(std::sync::Weak<dyn LocalNamespace>) -> Arc<dyn Adapter> + Send + Sync>;

/// The in-memory adapter factory (the default).
pub fn memory_adapter() -> AdapterFactory {
    Arc::new(|ns| Arc::new(MemoryAdapter::new(ns)) as Arc<dyn Adapter>)
}
