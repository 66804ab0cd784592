//! Broadcast operators (`to`, `except`, `local`, `volatile`, `timeout`) and what they apply to.

use std::sync::Arc;
use std::time::Duration;

use ferrio_proto::socket::Packet;
use ferrio_proto::value::{Value, ValueError, from_value, to_args};
use futures_util::FutureExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::ack::{AckArgs, AckError, BroadcastAckError, EmitError, collect_acks};
use crate::adapter::{Adapter, AdapterError, BroadcastOptions, Handshake, Room, Sid, SocketInfo};
use crate::engine::BoxFuture;

/// What an operator acts on: a namespace, seen from below (the namespace implements it), so that
/// operators need nothing of the namespace, socket or server modules.
pub(crate) trait Scope: Send + Sync + 'static {
    /// The namespace name.
    fn name(&self) -> &str;
    /// Its adapter.
    fn adapter(&self) -> &Arc<dyn Adapter>;
    /// The namespaces a broadcast on this one reaches: itself, or every child of a dynamic namespace.
    fn targets(self: Arc<Self>) -> Vec<Arc<dyn Scope>>;
    /// How long `emit_with_ack` waits when no `timeout` was given (none: until the recipients are gone).
    fn ack_timeout(&self) -> Option<Duration>;
    /// Whether its parser writes the default JSON text (events can be written straight from data).
    fn writes_json_text(&self) -> bool;
}

/// Who to reach, built with chained calls, then what to do with them.
#[derive(Clone)]
pub struct BroadcastOperator {
    scope: Arc<dyn Scope>,
    opts: BroadcastOptions,
}

impl std::fmt::Debug for BroadcastOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BroadcastOperator")
            .field("nsp", &self.scope.name())
            .field("opts", &self.opts)
            .finish()
    }
}

/// Runs an adapter call at once when it completes at once (the in-memory adapter); a distributed adapter's
/// pending call finishes on a task, so that `emit` stays synchronous as in JavaScript.
fn run_now_or_spawn<E: Send + 'static>(mut fut: BoxFuture<Result<(), E>>) -> Result<(), E> {
    match (&mut fut).now_or_never() {
        Some(r) => r,
        None => {
            tokio::spawn(fut);
            Ok(())
        }
    }
}

impl BroadcastOperator {
    pub(crate) fn new(scope: Arc<dyn Scope>, opts: BroadcastOptions) -> Self {
        BroadcastOperator { scope, opts }
    }

    fn targets(&self) -> Vec<Arc<dyn Scope>> {
        self.scope.clone().targets()
    }

    /// Adds a target room.
    pub fn to(mut self, room: impl Into<Room>) -> Self {
        self.opts.rooms.insert(room.into());
        self
    }

    /// Same as `to`.
    pub fn within(self, room: impl Into<Room>) -> Self {
        self.to(room)
    }

    /// Excludes the sockets of a room.
    pub fn except(mut self, room: impl Into<Room>) -> Self {
        self.opts.except.insert(room.into());
        self
    }

    /// Only this node.
    pub fn local(mut self) -> Self {
        self.opts.flags.local = true;
        self
    }

    /// The packet may be dropped for clients that cannot take it now.
    pub fn volatile(mut self) -> Self {
        self.opts.flags.volatile = true;
        self
    }

    /// Compression wish.
    pub fn compress(mut self, compress: bool) -> Self {
        self.opts.flags.compress = Some(compress);
        self
    }

    /// Ack timeout for `emit_with_ack` and `server_side_emit_with_ack`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.opts.flags.timeout = Some(timeout);
        self
    }

    fn event_packet(
        &self,
        ns: &dyn Scope,
        event: &str,
        args: Vec<Value>,
    ) -> Result<Packet, EmitError> {
        if ferrio_proto::socket::is_reserved_event(event) {
            return Err(EmitError::Reserved(event.to_owned()));
        }
        Ok(Packet::Event {
            nsp: ns.name().to_owned(),
            event: event.to_owned(),
            args,
            id: None,
        })
    }

    /// Emits to every target; the packet is encoded once per target namespace.
    ///
    /// Where the adapter needs no packet (the in-memory adapter, unless a session log keeps it) and
    /// the parser is the default one, the event is written straight from `data` to its text: no
    /// argument values built, written and dropped again for each broadcast.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), EmitError> {
        if ferrio_proto::socket::is_reserved_event(event) {
            return Err(EmitError::Reserved(event.to_owned()));
        }
        // Built once, for the targets that need a packet.
        let mut built: Option<Vec<Value>> = None;
        // With several targets (the children of a dynamic namespace), the event's text is written
        // once and framed for each: the data's `Serialize` runs once for the text, as it does once
        // for the values.
        let mut text: Option<Option<String>> = None;
        let targets = self.targets();
        let last = targets.len().saturating_sub(1);
        for (i, ns) in targets.into_iter().enumerate() {
            let adapter = ns.adapter();
            if ns.writes_json_text() && adapter.takes_encoded(&self.opts) {
                let encoded = if last == 0 {
                    ferrio_proto::socket::encode_event_from(ns.name(), event, data, None)?
                } else {
                    let text = match &text {
                        Some(text) => text,
                        None => text.insert(ferrio_proto::socket::event_text_from(event, data)?),
                    };
                    text.as_deref()
                        .map(|t| ferrio_proto::socket::encode_event_text(ns.name(), t, None))
                };
                if let Some(encoded) = encoded {
                    crate::telemetry::batched(|| adapter.broadcast_encoded(&encoded, &self.opts))
                        .map_err(|_| EmitError::Disconnected)?;
                    continue;
                }
            }
            let all = match built.as_mut() {
                Some(all) => all,
                None => built.insert(to_args(data)?),
            };
            // The last (usually the only) target takes the arguments instead of a deep copy.
            let args = if i == last {
                std::mem::take(all)
            } else {
                all.clone()
            };
            let packet = self.event_packet(&*ns, event, args)?;
            crate::telemetry::batched(|| {
                run_now_or_spawn(adapter.broadcast(packet, self.opts.clone()))
            })
            .map_err(|_| EmitError::Disconnected)?;
        }
        Ok(())
    }

    /// The ack timeout: the one given with `timeout`, else the server's default.
    fn ack_timeout(&self) -> Option<Duration> {
        self.opts.flags.timeout.or_else(|| self.scope.ack_timeout())
    }

    /// Emits to every target and collects one ack per recipient, until all answered, the timeout
    /// (`timeout`, else the server's `ack_timeout`) or the recipients are gone. The error carries the acks
    /// that did arrive.
    pub async fn emit_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<Vec<AckArgs>, BroadcastAckError> {
        let args = to_args(data).map_err(EmitError::from)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let targets = self.targets();
        let n = targets.len();
        for ns in targets {
            let packet = self.event_packet(&*ns, event, args.clone())?;
            if ns
                .adapter()
                .broadcast_with_ack(packet, self.opts.clone(), tx.clone())
                .await
                .is_err()
            {
                return Err(BroadcastAckError::new(AckError::Disconnected, vec![]));
            }
        }
        drop(tx);
        collect_acks(rx, self.ack_timeout(), n).await
    }

    /// Emits to the other nodes' server-side handlers and collects their acks (none on one node), until
    /// every node answered or the timeout.
    pub async fn server_side_emit_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<Vec<AckArgs>, BroadcastAckError> {
        let args = to_args(data).map_err(EmitError::from)?;
        let (tx, rx) = mpsc::unbounded_channel();
        if self
            .scope
            .adapter()
            .server_side_emit(event.to_owned(), args, Some(tx))
            .await
            .is_err()
        {
            return Err(BroadcastAckError::new(AckError::Disconnected, vec![]));
        }
        collect_acks(rx, self.ack_timeout(), 1).await
    }

    /// Describes the targeted sockets.
    pub async fn fetch_sockets(&self) -> Vec<RemoteSocket> {
        let mut out = Vec::new();
        for ns in self.targets() {
            if let Ok(infos) = ns.adapter().fetch_sockets(self.opts.clone()).await {
                out.extend(infos.into_iter().map(|info| RemoteSocket {
                    info,
                    scope: ns.clone(),
                }));
            }
        }
        out
    }

    /// The ids of the targeted sockets, on every node (`allSockets`), without describing each one.
    pub async fn socket_ids(&self) -> Result<Vec<Sid>, AdapterError> {
        let mut out = Vec::new();
        for ns in self.targets() {
            out.extend(ns.adapter().socket_ids(self.opts.clone()).await?);
        }
        Ok(out)
    }

    /// How many sockets are targeted, on every node: `io.to("room").count()` is the size of a room.
    pub async fn count(&self) -> Result<usize, AdapterError> {
        let mut n = 0;
        for ns in self.targets() {
            n += ns.adapter().sockets_count(self.opts.clone()).await?;
        }
        Ok(n)
    }

    /// Makes the targeted sockets join rooms.
    pub async fn sockets_join<I: IntoIterator<Item = R>, R: Into<Room>>(&self, rooms: I) {
        let rooms: Vec<Room> = rooms.into_iter().map(Into::into).collect();
        for ns in self.targets() {
            let _ = ns
                .adapter()
                .add_sockets(self.opts.clone(), rooms.clone())
                .await;
        }
    }

    /// Makes the targeted sockets leave rooms.
    pub async fn sockets_leave<I: IntoIterator<Item = R>, R: Into<Room>>(&self, rooms: I) {
        let rooms: Vec<Room> = rooms.into_iter().map(Into::into).collect();
        for ns in self.targets() {
            let _ = ns
                .adapter()
                .del_sockets(self.opts.clone(), rooms.clone())
                .await;
        }
    }

    /// Disconnects the targeted sockets (and their connections when `close`).
    pub async fn disconnect_sockets(&self, close: bool) {
        for ns in self.targets() {
            let _ = ns
                .adapter()
                .disconnect_sockets(self.opts.clone(), close)
                .await;
        }
    }
}

/// A socket returned by `fetch_sockets`, on this node or another.
#[derive(Clone)]
pub struct RemoteSocket {
    info: SocketInfo,
    scope: Arc<dyn Scope>,
}

impl std::fmt::Debug for RemoteSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSocket")
            .field("id", &self.info.id)
            .field("rooms", &self.info.rooms)
            .finish()
    }
}

impl RemoteSocket {
    /// Socket id.
    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// Handshake.
    pub fn handshake(&self) -> &Handshake {
        &self.info.handshake
    }

    /// Rooms.
    pub fn rooms(&self) -> &[String] {
        &self.info.rooms
    }

    /// `data` as `T`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, ValueError> {
        from_value(self.info.data.clone())
    }

    fn me(&self) -> BroadcastOperator {
        BroadcastOperator::new(self.scope.clone(), BroadcastOptions::default())
            .to(self.info.id.as_str())
    }

    /// Emits to this socket.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), EmitError> {
        self.me().emit(event, data)
    }

    /// Makes this socket join rooms.
    pub async fn join<I: IntoIterator<Item = R>, R: Into<Room>>(&self, rooms: I) {
        self.me().sockets_join(rooms).await
    }

    /// Makes this socket leave rooms.
    pub async fn leave<I: IntoIterator<Item = R>, R: Into<Room>>(&self, rooms: I) {
        self.me().sockets_leave(rooms).await
    }

    /// Disconnects this socket.
    pub async fn disconnect(&self, close: bool) {
        self.me().disconnect_sockets(close).await
    }
}
