//! A client: one Engine.IO connection, multiplexing the sockets of several namespaces.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ferrio_proto::engine::{CloseReason, Data, Protocol};
use ferrio_proto::socket::{ConnectRequest, Packet, PacketDecoder, invalid_namespace};
use ferrio_proto::value::Value;
use parking_lot::Mutex;

use crate::adapter::{AdapterError, Handshake, RestoredSession, Sid};
use crate::conn::Conn;
use crate::namespace::NamespaceInner;
use crate::socket::{ClientLink, DisconnectReason, Job, Socket};
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
    sockets: Mutex<HashMap<String, Socket>>,
    joined: AtomicBool,
    /// The socket whose event queue was full when the last message arrived.
    overflowing: Mutex<Option<Socket>>,
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
            sockets: Mutex::new(HashMap::new()),
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

    /// Closes the connection for a protocol violation ("forced server close").
    fn reject(&self) {
        let sockets: Vec<_> = self.sockets.lock().values().cloned().collect();
        for s in sockets {
            s.on_close(DisconnectReason::ForcedServerClose);
        }
        self.conn.close();
    }

    /// The connection closed: every socket disconnects with the connection's reason.
    pub(crate) fn on_close(&self, reason: CloseReason) {
        let reason = DisconnectReason::from(reason);
        self.decoder.lock().reset();
        let sockets: Vec<_> = self.sockets.lock().drain().map(|(_, s)| s).collect();
        for s in sockets {
            s.on_close(reason);
        }
    }

    /// Handles one Engine.IO message.
    pub(crate) fn on_data(self: &Arc<Self>, data: Data) {
        let decoded = self.decoder.lock().decode(data);
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
                if self.sockets.lock().contains_key(&nsp) {
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
                        if !socket.enqueue(Job::Event(ev)) {
                            *self.overflowing.lock() = Some(socket);
                        }
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
                    if me.sockets.lock().contains_key(&nsp) {
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
        let handshake = self.handshake(auth);
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
        let (socket, run) = ns.add_socket(id, me, self.conn.clone(), handshake, recovery);
        // Registered before it runs: the socket's task checks that it is still the client's socket.
        self.sockets.lock().insert(nsp, socket);
        tokio::spawn(run);
    }

    fn handshake(&self, auth: Value) -> Handshake {
        let info = self.conn.session().handshake();
        let headers = info
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let query = info
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect();
        let issued = info
            .issued
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let origin = info
            .headers
            .get(http::header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        let host = info
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok());
        Handshake {
            headers,
            time: httpdate(info.issued),
            address: info
                .remote_addr
                .map(|a| a.ip().to_string())
                .unwrap_or_default(),
            xdomain: origin.is_some_and(|o| host.is_none_or(|h| !o.ends_with(h))),
            secure: info.uri.scheme_str() == Some("https"),
            issued,
            url: info.uri.to_string(),
            query,
            auth,
        }
    }
}

impl ClientLink for Client {
    fn remove(&self, nsp: &str, sid: &Sid) {
        let mut sockets = self.sockets.lock();
        if sockets.get(nsp).is_some_and(|s| s.sid() == sid) {
            sockets.remove(nsp);
        }
    }

    fn has(&self, nsp: &str, sid: &Sid) -> bool {
        self.sockets.lock().get(nsp).is_some_and(|s| s.sid() == sid)
    }

    fn joined(&self) {
        self.joined.store(true, Ordering::Release);
    }

    fn close_all(&self, reason: DisconnectReason) {
        let sockets: Vec<_> = self.sockets.lock().values().cloned().collect();
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

/// An RFC 7231 date, as JavaScript's `Date.toString()` is not worth imitating.
fn httpdate(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(mo - 1) as usize],
        y,
        h,
        m,
        s
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn http_dates() {
        assert_eq!(httpdate(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            httpdate(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
        assert_eq!(
            httpdate(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
    }

    #[test]
    fn ids_are_distinct() {
        let a = new_id();
        assert_eq!(a.len(), 20);
        assert_ne!(a, new_id());
    }
}
