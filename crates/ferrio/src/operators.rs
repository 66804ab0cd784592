//! Broadcast operators (`to`, `except`, `local`, `volatile`, `timeout`) and what they apply to.

use std::sync::Arc;
use std::time::Duration;

use ferrio_proto::socket::Packet;
use ferrio_proto::value::{Value, ValueError, from_value, to_args};
use futures_util::FutureExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::adapter::{AckEvent, BroadcastOptions, Handshake, Room, SocketInfo};
use crate::engine::BoxFuture;
use crate::namespace::NamespaceInner;
use crate::socket::{AckArgs, AckError, EmitError};

/// Who to reach, built with chained calls, then what to do with them.
#[derive(Clone)]
pub struct BroadcastOperator {
    ns: Arc<NamespaceInner>,
    opts: BroadcastOptions,
}

impl std::fmt::Debug for BroadcastOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BroadcastOperator")
            .field("nsp", &self.ns.name)
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
    pub(crate) fn new(ns: Arc<NamespaceInner>, opts: BroadcastOptions) -> Self {
        BroadcastOperator { ns, opts }
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

    /// Ack timeout for `emit_with_ack`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.opts.flags.timeout = Some(timeout);
        self
    }

    fn event_packet(
        &self,
        ns: &NamespaceInner,
        event: &str,
        args: Vec<Value>,
    ) -> Result<Packet, EmitError> {
        if ferrio_proto::socket::RESERVED_EVENTS.contains(&event) {
            return Err(EmitError::Reserved(event.to_owned()));
        }
        Ok(Packet::Event {
            nsp: ns.name.clone(),
            event: event.to_owned(),
            args,
            id: None,
        })
    }

    /// Emits to every target; the packet is encoded once.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), EmitError> {
        let args = to_args(data)?;
        for ns in self.ns.broadcast_targets() {
            let packet = self.event_packet(&ns, event, args.clone())?;
            run_now_or_spawn(ns.adapter().broadcast(packet, self.opts.clone()))
                .map_err(|_| EmitError::Disconnected)?;
        }
        Ok(())
    }

    /// Emits to every target and collects one ack per recipient, until all answered or the timeout.
    /// On timeout, the error comes with the acks that did arrive.
    pub async fn emit_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<Vec<AckArgs>, (AckError, Vec<AckArgs>)> {
        let args = to_args(data).map_err(|e| (AckError::Emit(e.into()), vec![]))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let targets = self.ns.broadcast_targets();
        let n = targets.len();
        for ns in targets {
            let packet = self
                .event_packet(&ns, event, args.clone())
                .map_err(|e| (AckError::Emit(e), vec![]))?;
            if ns
                .adapter()
                .broadcast_with_ack(packet, self.opts.clone(), tx.clone())
                .await
                .is_err()
            {
                return Err((AckError::Disconnected, vec![]));
            }
        }
        drop(tx);
        collect_acks_from(rx, self.opts.flags.timeout, n).await
    }

    /// Describes the targeted sockets.
    pub async fn fetch_sockets(&self) -> Vec<RemoteSocket> {
        let mut out = Vec::new();
        for ns in self.ns.broadcast_targets() {
            if let Ok(infos) = ns.adapter().fetch_sockets(self.opts.clone()).await {
                out.extend(infos.into_iter().map(|info| RemoteSocket {
                    info,
                    ns: ns.clone(),
                }));
            }
        }
        out
    }

    /// Makes the targeted sockets join rooms.
    pub async fn sockets_join<I: IntoIterator<Item = R>, R: Into<Room>>(&self, rooms: I) {
        let rooms: Vec<Room> = rooms.into_iter().map(Into::into).collect();
        for ns in self.ns.broadcast_targets() {
            let _ = ns
                .adapter()
                .add_sockets(self.opts.clone(), rooms.clone())
                .await;
        }
    }

    /// Makes the targeted sockets leave rooms.
    pub async fn sockets_leave<I: IntoIterator<Item = R>, R: Into<Room>>(&self, rooms: I) {
        let rooms: Vec<Room> = rooms.into_iter().map(Into::into).collect();
        for ns in self.ns.broadcast_targets() {
            let _ = ns
                .adapter()
                .del_sockets(self.opts.clone(), rooms.clone())
                .await;
        }
    }

    /// Disconnects the targeted sockets (and their connections when `close`).
    pub async fn disconnect_sockets(&self, close: bool) {
        for ns in self.ns.broadcast_targets() {
            let _ = ns
                .adapter()
                .disconnect_sockets(self.opts.clone(), close)
                .await;
        }
    }
}

/// Collects acks until every node reported and every counted client answered, or the timeout.
pub(crate) async fn collect_acks(
    rx: mpsc::UnboundedReceiver<AckEvent>,
    timeout: Option<Duration>,
) -> Result<Vec<AckArgs>, (AckError, Vec<AckArgs>)> {
    collect_acks_from(rx, timeout, 1).await
}

async fn collect_acks_from(
    mut rx: mpsc::UnboundedReceiver<AckEvent>,
    timeout: Option<Duration>,
    adapters: usize,
) -> Result<Vec<AckArgs>, (AckError, Vec<AckArgs>)> {
    let mut expected = 0usize;
    let mut complete = 0usize;
    let mut responses = Vec::new();
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    loop {
        if complete >= adapters && responses.len() >= expected {
            return Ok(responses);
        }
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                Ok(n) => n,
                Err(_) => return Err((AckError::Timeout, responses)),
            },
            None => rx.recv().await,
        };
        match next {
            Some(AckEvent::ClientCount(n)) => expected += n,
            Some(AckEvent::Response(args)) => responses.push(AckArgs(args)),
            Some(AckEvent::CountsComplete) => complete += 1,
            // Every sender is gone: no more acks can come.
            None => {
                return if responses.len() >= expected && complete >= adapters {
                    Ok(responses)
                } else {
                    Err((AckError::Disconnected, responses))
                };
            }
        }
    }
}

/// A socket returned by `fetch_sockets`, on this node or another.
#[derive(Clone)]
pub struct RemoteSocket {
    info: SocketInfo,
    ns: Arc<NamespaceInner>,
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
        BroadcastOperator::new(self.ns.clone(), BroadcastOptions::default())
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
