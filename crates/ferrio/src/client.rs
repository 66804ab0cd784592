//! A client: one Engine.IO connection, multiplexing the sockets of several namespaces.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use base64::Engine as _;
use ferrio_proto::engine::{CloseReason, Data, Protocol};
use ferrio_proto::socket::{ConnectRequest, Packet, PacketDecoder, invalid_namespace};
use ferrio_proto::value::Value;
use parking_lot::Mutex;

use crate::adapter::{AdapterError, RestoredSession, Sid};
use crate::conn::Conn;
use crate::namespace::NamespaceInner;
use crate::socket::{ClientLink, DisconnectReason, Event, Job, Socket};
use futures_util::FutureExt;

/// What a client asks of the server (implemented by the server, which sits above).
pub(crate) trait Namespaces: Send + Sync + 'static {
    /// The namespace a client asks for: an existing one, or a new child of a dynamic namespace.
    fn namespace_for(&self, name: &str, auth: Option<&Value>) -> Option<Arc<NamespaceInner>>;
}

pub(crate) struct Client {
    conn: Conn,
    namespaces: Arc<dyn Namespaces>,
    decoder: Mutex<Box<dyn PacketDecoder>>,
    sockets: Mutex<Sockets>,
    joined: AtomicBool,
    /// The socket whose event queue was full when the last message arrived.
    overflowing: Mutex<Option<Socket>>,
}

/// A client's sockets, one per namespace joined. Most clients join one namespace: it is kept inline, so
/// that a connection holds no map (and no copy of the namespace's name) for it.
#[derive(Default)]
struct Sockets {
    first: Option<Socket>,
    more: Vec<Socket>,
}

impl Sockets {
    fn is_empty(&self) -> bool {
        self.first.is_none() && self.more.is_empty()
    }

    fn get(&self, nsp: &str) -> Option<&Socket> {
        self.first
            .iter()
            .chain(self.more.iter())
            .find(|s| s.nsp() == nsp)
    }

    /// Adds the socket of a namespace the client has not joined.
    fn insert(&mut self, socket: Socket) {
        debug_assert!(self.get(socket.nsp()).is_none(), "one socket per namespace");
        if self.first.is_none() {
            self.first = Some(socket);
        } else {
            self.more.push(socket);
        }
    }

    /// Removes the socket of `nsp` if it is the one with id `sid` (a newer one may have replaced it).
    fn remove(&mut self, nsp: &str, sid: &Sid) {
        let is = |s: &Socket| s.nsp() == nsp && s.sid() == sid;
        if self.first.as_ref().is_some_and(is) {
            self.first = self.more.pop();
        } else if let Some(i) = self.more.iter().position(is) {
            self.more.swap_remove(i);
        }
    }

    fn all(&self) -> Vec<Socket> {
        self.first.iter().chain(self.more.iter()).cloned().collect()
    }

    fn take_all(&mut self) -> Vec<Socket> {
        let mut all: Vec<Socket> = self.first.take().into_iter().collect();
        all.append(&mut self.more);
        all
    }
}

impl Client {
    pub(crate) fn new(
        conn: Conn,
        namespaces: Arc<dyn Namespaces>,
        decoder: Box<dyn PacketDecoder>,
    ) -> Arc<Client> {
        Arc::new(Client {
            conn,
            namespaces,
            decoder: Mutex::new(decoder),
            sockets: Mutex::new(Sockets::default()),
            joined: AtomicBool::new(false),
            overflowing: Mutex::new(None),
        })
    }

    pub(crate) fn has_joined(&self) -> bool {
        self.joined.load(Ordering::Acquire) || !self.sockets.lock().is_empty()
    }

    /// Closes the connection (no namespace joined in time).
    pub(crate) fn close(&self) {
        self.conn.close();
    }

    /// Closes the connection for a protocol violation ("forced server close"). What the client still
    /// sends is ignored from here on: the session stops handing messages over once it is closing (a
    /// CONNECT right behind a duplicate one must not make a socket again).
    fn reject(&self) {
        let sockets: Vec<_> = self.sockets.lock().all();
        for s in sockets {
            s.on_close(DisconnectReason::ForcedServerClose);
        }
        self.conn.close();
    }

    /// The connection closed: every socket disconnects with the connection's reason.
    pub(crate) fn on_close(&self, reason: CloseReason) {
        let reason = DisconnectReason::from(reason);
        self.decoder.lock().reset();
        let sockets = self.sockets.lock().take_all();
        for s in sockets {
            s.on_close(reason);
        }
    }

    /// Handles one Engine.IO message.
    pub(crate) fn on_data(self: &Arc<Self>, data: Data) {
        // One lock of the decoder for both readings.
        let mut decoder = self.decoder.lock();
        // The usual event is read without a packet: no allocation for its namespace or its name, and
        // its arguments stay text until a listener wants them.
        if let Data::Text(text) = &data
            && let Some(ev) = decoder.plain_event(text)
        {
            drop(decoder);
            let Some(socket) = self.sockets.lock().get(ev.nsp).cloned() else {
                // An event for a namespace the client has not joined.
                self.reject();
                return;
            };
            let event = socket.new_plain_event(&ev, text);
            self.deliver(socket, event);
            return;
        }
        let decoded = decoder.decode(data);
        drop(decoder);
        let packet = match decoded {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(conn = self.conn.id(), error = %e, "invalid packet");
                self.conn.session().close_with(CloseReason::ParseError);
                return;
            }
        };
        match packet {
            Packet::Connect { nsp, data } => {
                let (nsp, request) = match self.conn.protocol() {
                    Protocol::V4 => (nsp, ConnectRequest::parse(data)),
                    // Socket.IO v4: the auth is the namespace's query; a payload means nothing there
                    // and is ignored, as socket.io does.
                    Protocol::V3 => ConnectRequest::parse_v4(&nsp),
                };
                if self.sockets.lock().get(&nsp).is_some() {
                    // A second CONNECT to a namespace already joined: never a duplicate socket.
                    self.reject();
                } else {
                    self.connect(nsp, request);
                }
            }
            Packet::ConnectError { .. } => self.reject(),
            other => {
                let socket = self.sockets.lock().get(other.nsp()).cloned();
                let Some(socket) = socket else {
                    // A packet for a namespace the client has not joined.
                    self.reject();
                    return;
                };
                match other {
                    Packet::Event {
                        event, args, id, ..
                    } => {
                        let ev = socket.new_event(event, args, id);
                        self.deliver(socket, ev);
                    }
                    Packet::Ack { id, args, .. } => socket.on_ack(id, args),
                    Packet::Disconnect { .. } => {
                        socket.on_close(DisconnectReason::ClientNamespaceDisconnect)
                    }
                    Packet::Connect { .. } | Packet::ConnectError { .. } => {}
                }
            }
        }
    }

    /// Hands an incoming event to its socket; a full queue holds back the connection's reader.
    fn deliver(&self, socket: Socket, event: Event) {
        if !socket.enqueue(Job::Event(event)) {
            *self.overflowing.lock() = Some(socket);
        }
    }

    /// The socket whose full event queue holds back the connection's reader, if any.
    pub(crate) fn pending_overflow(&self) -> Option<Socket> {
        self.overflowing.lock().take()
    }

    /// A Socket.IO v4 client (socket.io-client 2.x) is in the main namespace as soon as it connects, as
    /// socket.io does for these clients: they never send a CONNECT for `/`.
    pub(crate) fn connect_main(self: &Arc<Self>) {
        let (nsp, request) = ConnectRequest::parse_v4("/");
        self.connect(nsp, request);
    }

    fn connect(self: &Arc<Self>, nsp: String, request: ConnectRequest) {
        let Some(ns) = self.namespaces.namespace_for(&nsp, Some(&request.auth)) else {
            self.conn.send(&invalid_namespace(&nsp));
            return;
        };
        let Some(mut restore) = ns.restore(request.pid.as_deref(), request.offset.as_deref())
        else {
            self.add_socket(ns, nsp, request.auth, None);
            return;
        };
        // The in-memory adapter answers at once, so the socket is registered before the client's next
        // packet is read; a distributed adapter's answer is awaited on a task.
        match (&mut restore).now_or_never() {
            Some(restored) => self.add_socket(ns, nsp, request.auth, restored_or_log(restored)),
            None => {
                let me = self.clone();
                tokio::spawn(async move {
                    let restored = restored_or_log(restore.await);
                    if me.sockets.lock().get(&nsp).is_some() {
                        // A second CONNECT to the namespace came meanwhile.
                        if let Some(r) = &restored {
                            ns.abandon(r);
                        }
                        me.reject();
                        return;
                    }
                    me.add_socket(ns, nsp, request.auth, restored);
                });
            }
        }
    }

    fn add_socket(
        self: &Arc<Self>,
        ns: Arc<NamespaceInner>,
        nsp: String,
        auth: Value,
        restored: Option<RestoredSession>,
    ) {
        let me: Weak<dyn ClientLink> = Arc::downgrade(self) as Weak<Client>;
        let id: Sid = match (&restored, self.conn.protocol()) {
            (Some(r), _) => r.session.sid.clone(),
            (None, Protocol::V4) => new_id().into(),
            // socket.io-client 2.x computes its socket's id from the Engine.IO id: `nsp#id`, or the id
            // itself for `/`, so the server must use the same one.
            (None, Protocol::V3) if nsp == "/" => self.conn.id().into(),
            (None, Protocol::V3) => format!("{nsp}#{}", self.conn.id()).into(),
        };
        let recovery = ns.recovery_for(restored);
        let (socket, run) = ns.add_socket(id, me, self.conn.clone(), auth, recovery);
        // Registered before it runs: the socket's task checks that it is still the client's socket.
        self.sockets.lock().insert(socket);
        tokio::spawn(run);
    }
}

impl ClientLink for Client {
    fn remove(&self, nsp: &str, sid: &Sid) {
        self.sockets.lock().remove(nsp, sid);
    }

    fn has(&self, nsp: &str, sid: &Sid) -> bool {
        self.sockets.lock().get(nsp).is_some_and(|s| s.sid() == sid)
    }

    fn joined(&self) {
        self.joined.store(true, Ordering::Release);
        // No longer a handshake in progress (`max_pending_handshakes_per_address`).
        self.conn.session().established();
    }

    fn close_all(&self, reason: DisconnectReason) {
        let sockets: Vec<_> = self.sockets.lock().all();
        for s in sockets {
            let _ = s.write_packet(
                &Packet::Disconnect {
                    nsp: s.nsp().to_owned(),
                },
                false,
            );
            s.on_close(reason);
        }
        self.conn.close();
    }
}

/// A restore that failed in the adapter gives a new socket, as an unknown session does.
fn restored_or_log(r: Result<Option<RestoredSession>, AdapterError>) -> Option<RestoredSession> {
    r.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "session not restored");
        None
    })
}

/// 120 random bits, base64url: socket ids (and recovery's private ids) must not be guessable.
pub(crate) fn new_id() -> String {
    // 120 bits, 20 characters: the length of the official server's ids, which other nodes rely on (the
    // sharded Redis adapter takes a 20-character room for a socket's own room).
    let bytes: [u8; 15] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct() {
        let a = new_id();
        assert_eq!(a.len(), 20);
        assert_ne!(a, new_id());
    }
}
