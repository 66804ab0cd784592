//! The Engine.IO server: sessions over HTTP long-polling and WebSocket.
//!
//! [`Engine`] answers the requests under its path; what the sessions carry goes to an
//! [`EngineHandler`]. The Socket.IO server is one such handler; a raw Engine.IO application is another.

mod config;
mod cors;
mod error;
mod handshake;
mod limits;
mod socket;
mod timer;
mod wire;

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use dashmap::DashMap;
use ferrio_proto::engine::{CloseReason, Data, OpenPacket, Protocol};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

pub(crate) use config::setters;
pub use config::{
    AllowRequest, BoxFuture, Cookie, EngineConfig, EngineConfigBuilder, GenerateId, HeadersHook,
    HttpCompression, PerMessageDeflate, Rejection, SameSite,
};
pub use cors::{Cors, CorsOrigin};
pub use error::RequestError;
pub use ferrio_proto::engine::{
    CloseReason as EngineCloseReason, Data as EngineData, Frame, Protocol as EngineProtocol,
    TransportKind,
};
pub use handshake::HandshakeInfo;
pub(crate) use socket::{Outbox, queued, uncompressed_marker};
pub use socket::{SendError, Socket};
pub(crate) use wire::Wire;

use crate::http1::Lean;
use crate::transport::{polling, websocket};

/// The peer address of a connection, put in the request extensions by the server that accepted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteAddr(pub std::net::SocketAddr);

/// Receives what the sessions of an [`Engine`] carry. Calls for one session come in order, from the
/// task that read the packet, so a handler sees the messages of a session in arrival order.
pub trait EngineHandler: Send + Sync + 'static {
    /// What the handler keeps for each session: made by `on_open`, handed to every later call for that
    /// session, dropped once the session closed (`()` when nothing is kept).
    type State: Send + Sync + 'static;
    /// A session opened; no message of it arrives before this returns.
    fn on_open(&self, socket: &Arc<Socket>) -> Self::State;
    /// A message arrived.
    fn on_message(&self, socket: &Arc<Socket>, state: &Self::State, data: Data);
    /// The session closed; called once.
    fn on_close(&self, socket: &Arc<Socket>, state: &Self::State, reason: CloseReason);
    /// Called after each message: a future returned here is awaited before the session's next message
    /// is read, which lets a busy handler slow a fast client down instead of queueing without bound.
    fn backpressure(&self, _socket: &Arc<Socket>, _state: &Self::State) -> Option<BoxFuture<()>> {
        None
    }
}

/// The handler with its state type erased, so that neither the engine nor its sessions (nor the
/// transports that drive them) need a type parameter.
trait OpenSession: Send + Sync {
    fn open(&self, socket: &Arc<Socket>) -> Arc<dyn SessionHandler>;
}

/// One session's handler and state together: what the session calls for each message and at close.
pub(crate) trait SessionHandler: Send + Sync {
    fn on_message(&self, socket: &Arc<Socket>, data: Data);
    fn on_close(&self, socket: &Arc<Socket>, reason: CloseReason);
    fn backpressure(&self, socket: &Arc<Socket>) -> Option<BoxFuture<()>>;
}

struct Typed<H>(Arc<H>);

struct Bound<H: EngineHandler> {
    handler: Arc<H>,
    state: H::State,
}

impl<H: EngineHandler> OpenSession for Typed<H> {
    fn open(&self, socket: &Arc<Socket>) -> Arc<dyn SessionHandler> {
        let state = self.0.on_open(socket);
        Arc::new(Bound {
            handler: self.0.clone(),
            state,
        })
    }
}

impl<H: EngineHandler> SessionHandler for Bound<H> {
    fn on_message(&self, socket: &Arc<Socket>, data: Data) {
        self.handler.on_message(socket, &self.state, data)
    }
    fn on_close(&self, socket: &Arc<Socket>, reason: CloseReason) {
        self.handler.on_close(socket, &self.state, reason)
    }
    fn backpressure(&self, socket: &Arc<Socket>) -> Option<BoxFuture<()>> {
        self.handler.backpressure(socket, &self.state)
    }
}

pub(crate) struct EngineInner {
    pub(crate) config: EngineConfig,
    pub(crate) sessions: DashMap<Arc<str>, Arc<Socket>>,
    handler: Box<dyn OpenSession>,
    /// Handshakes in progress per address (`max_pending_handshakes_per_address`).
    pending_handshakes: Arc<limits::PendingHandshakes>,
    /// Every session's deadlines, on one task per serving thread.
    pub(crate) timers: timer::TimerSet,
}

/// An Engine.IO server. Cloning shares it.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.inner.config)
            .field("sessions", &self.inner.sessions.len())
            .finish()
    }
}

/// A lean long-polling request the engine takes (see [`Engine::lean_call`]).
pub(crate) enum LeanCall {
    /// A GET, and the encoding its answer may be compressed with.
    Poll {
        socket: Arc<Socket>,
        accepted: Option<&'static str>,
    },
    /// A POST, whose body came whole with its head.
    Post {
        socket: Arc<Socket>,
        octet_stream: bool,
    },
}

/// The response body of the engine's own answers.
pub type EngineBody = Full<Bytes>;

/// The query parameters the engine reads.
#[derive(Debug, Default, PartialEq, Eq)]
struct Query<'a> {
    eio: Option<&'a str>,
    transport: Option<&'a str>,
    sid: Option<&'a str>,
    /// v3: the client wants binary data as base64.
    b64: Option<&'a str>,
    /// JSONP polling: the client's callback index.
    j: Option<&'a str>,
}

impl<'a> Query<'a> {
    fn parse(query: Option<&'a str>) -> Self {
        let mut q = Query::default();
        let query = query.unwrap_or("");
        // Cut at each `&`, and at the first `=` of each pair (every request runs this; see
        // `next_delimiter`). Both are ASCII, so the cuts are char boundaries.
        let bytes = query.as_bytes();
        let (mut start, mut eq, mut at) = (0, None, 0);
        while let Some(i) = next_delimiter(bytes, at) {
            if bytes[i] == b'&' {
                q.take(query, start, eq, i);
                start = i + 1;
                eq = None;
            } else if eq.is_none() {
                eq = Some(i);
            }
            at = i + 1;
        }
        q.take(query, start, eq, query.len());
        q
    }

    /// Records the pair `query[start..end]`, whose first `=` is at `eq`.
    #[inline(always)]
    fn take(&mut self, query: &'a str, start: usize, eq: Option<usize>, end: usize) {
        let (k, v) = match eq {
            Some(eq) => (&query[start..eq], &query[eq + 1..end]),
            None => (&query[start..end], ""),
        };
        // The first occurrence wins, so a repeated key cannot swap a value after it was checked.
        let slot = match k {
            "EIO" => &mut self.eio,
            "transport" => &mut self.transport,
            "sid" => &mut self.sid,
            "b64" => &mut self.b64,
            "j" => &mut self.j,
            _ => return,
        };
        if slot.is_none() {
            *slot = Some(v);
        }
    }
}

/// The position of the first `&` or `=` in `bytes` from `from` on (memchr's word-at-a-time search:
/// `split` and its char searchers cost more than the whole parse should).
fn next_delimiter(bytes: &[u8], from: usize) -> Option<usize> {
    memchr::memchr2(b'&', b'=', bytes.get(from..)?).map(|i| from + i)
}

/// 128 bits from the OS CSPRNG, base64url without padding (22 characters).
fn default_id() -> String {
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Engine {
    /// A server with these options, sending what its sessions carry to `handler`.
    pub fn new(config: EngineConfig, handler: impl EngineHandler) -> Engine {
        Engine {
            inner: Arc::new(EngineInner {
                pending_handshakes: limits::PendingHandshakes::new(
                    config.max_pending_handshakes_per_address,
                ),
                config,
                sessions: DashMap::new(),
                handler: Box::new(Typed(Arc::new(handler))),
                timers: timer::TimerSet::default(),
            }),
        }
    }

    /// The options.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Number of open sessions.
    pub fn clients_count(&self) -> usize {
        self.inner.sessions.len()
    }

    /// The session with this id.
    pub fn socket(&self, sid: &str) -> Option<Arc<Socket>> {
        self.inner.sessions.get(sid).map(|s| s.clone())
    }

    /// Whether a request path is the engine's.
    pub fn matches(&self, path: &str) -> bool {
        self.inner.config.matches(path)
    }

    /// The long-polling request `req` of one of this engine's sessions, when the engine answers it without
    /// the `http` types ([`crate::http1`]'s lean requests): its own path, `transport=polling`, the `sid`
    /// of a polling session, no headers hook to hand the request to, and no origin for CORS to judge.
    /// Any other request goes through [`handle`](Self::handle), which answers these the same way.
    pub(crate) fn lean_call(&self, req: &Lean<'_>) -> Option<LeanCall> {
        let config = &self.inner.config;
        if config.headers.is_some() || !config.transports.contains(&TransportKind::Polling) {
            return None;
        }
        // `handle` refuses an origin a header may not carry, and applies CORS to the others.
        if let Some(origin) = req.origin
            && (config.cors.is_some()
                || !origin
                    .iter()
                    .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)))
        {
            return None;
        }
        let (path, query) = req.target.split_once('?')?;
        if path != config.path {
            return None;
        }
        let query = Query::parse(Some(query));
        if query.transport != Some("polling") {
            return None;
        }
        let socket = self.socket(query.sid?)?;
        if socket.transport() != TransportKind::Polling {
            return None;
        }
        Some(if req.post {
            LeanCall::Post {
                socket,
                octet_stream: req.octet_stream,
            }
        } else {
            let accepted = config
                .http_compression
                .and(req.accept_encoding)
                .and_then(polling::pick_encoding);
            LeanCall::Poll { socket, accepted }
        })
    }

    /// Closes every session now, with reason "forced close".
    pub fn close(&self) {
        let all: Vec<_> = self
            .inner
            .sessions
            .iter()
            .map(|s| s.value().clone())
            .collect();
        for s in all {
            s.close_with(CloseReason::ForcedClose);
        }
    }

    /// Answers one HTTP request under the engine's path.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<EngineBody>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (mut parts, body) = req.into_parts();
        self.handle_parts(&mut parts, body).await
    }

    /// [`Engine::handle`] for a request already split, whose parts the caller keeps: the future then
    /// holds neither the request nor a second copy of its parts (it is boxed once per request, and
    /// small blocks are the allocator's cheap ones).
    pub(crate) async fn handle_parts<B>(
        &self,
        parts: &mut http::request::Parts,
        body: B,
    ) -> Response<EngineBody>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // Boxed: only cross-origin requests have them, and the map would take room in every request's
        // future.
        let mut cors_headers: Option<Box<HeaderMap>> = None;
        if let Some(origin) = parts.headers.get(header::ORIGIN) {
            // Reject origins with bytes a header may not carry before anything echoes them.
            if origin.to_str().is_err() {
                return finish(RequestError::BadRequest.into_response());
            }
            if let Some(cors) = &self.inner.config.cors {
                if !cors.allows(origin.to_str().unwrap_or_default()) {
                    return finish(RequestError::Forbidden("Forbidden".into()).into_response());
                }
                if parts.method == Method::OPTIONS
                    && parts
                        .headers
                        .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
                {
                    let mut res = Response::new(Bytes::new());
                    *res.status_mut() = StatusCode::NO_CONTENT;
                    cors.apply_preflight(origin, &parts.headers, res.headers_mut());
                    res.headers_mut()
                        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
                    return finish(res);
                }
                // A copy of the origin, not a slice of the HTTP server's read buffer: a poll may keep these
                // headers for a whole wait (see `polling::own_request_bytes`).
                let origin = HeaderValue::from_bytes(origin.as_bytes())
                    .unwrap_or(HeaderValue::from_static(""));
                let mut headers = Box::new(HeaderMap::new());
                cors.apply(&origin, &mut headers);
                cors_headers = Some(headers);
            }
        }
        let mut res = match self.dispatch(parts, body).await {
            Ok(res) => res,
            Err(e) => {
                tracing::debug!(uri = %parts.uri, error = %e, "request refused");
                e.into_response()
            }
        };
        if let Some(cors_headers) = cors_headers {
            for (k, v) in cors_headers.iter() {
                res.headers_mut().append(k, v.clone());
            }
        }
        finish(res)
    }

    async fn dispatch<B>(
        &self,
        parts: &mut http::request::Parts,
        body: B,
    ) -> Result<Response<Bytes>, RequestError>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let config = &self.inner.config;
        let query = Query::parse(parts.uri.query());
        let transport = query
            .transport
            .and_then(TransportKind::parse)
            .filter(|t| config.transports.contains(t))
            .ok_or(RequestError::UnknownTransport)?;
        let is_upgrade = parts.headers.contains_key(header::UPGRADE);

        if let Some(sid) = query.sid {
            let socket = self.socket(sid).ok_or(RequestError::UnknownSid)?;
            return match transport {
                TransportKind::Polling => {
                    if socket.transport() != TransportKind::Polling {
                        return Err(RequestError::BadRequest);
                    }
                    let mut res = match parts.method {
                        Method::GET => polling::poll(&socket, parts).await,
                        Method::POST => polling::post(&socket, parts, body).await,
                        _ => Err(RequestError::BadRequest),
                    }?;
                    // Answered on another serving thread than the session's: the connection may
                    // follow the session there for its next requests.
                    if let Some(home) = socket.home_elsewhere() {
                        res.extensions_mut()
                            .insert(crate::serving::FollowSession(home));
                    }
                    Ok(res)
                }
                TransportKind::WebSocket => {
                    if !is_upgrade || !config.allow_upgrades {
                        return Err(RequestError::BadRequest);
                    }
                    let upgrade = websocket::check_upgrade_request(parts, config)?;
                    // A v3 client chooses base64 per transport: the websocket says so on its own.
                    socket
                        .wire()
                        .set_websocket_b64(wire::wants_base64(query.b64));
                    let mut res = websocket::switching_protocols(&upgrade);
                    self.apply_headers_hooks(res.headers_mut(), parts, false);
                    match socket.begin_upgrade() {
                        Some(cancel) => websocket::spawn_probe(socket, parts, cancel, upgrade),
                        None => websocket::spawn_reject(parts),
                    }
                    Ok(res)
                }
            };
        }

        if parts.method != Method::GET {
            return Err(RequestError::BadHandshakeMethod);
        }
        if transport == TransportKind::WebSocket && !is_upgrade {
            return Err(RequestError::BadRequest);
        }
        if let Some(allow) = &config.allow_request
            && let Err(rejection) = allow(parts).await
        {
            return Err(match rejection.code {
                4 => RequestError::Forbidden(rejection.message),
                code => RequestError::Custom {
                    code,
                    message: rejection.message,
                },
            });
        }
        let protocol = match Protocol::from_query(query.eio) {
            Some(Protocol::V3) if config.allow_eio3 => Protocol::V3,
            Some(Protocol::V4) => Protocol::V4,
            _ => return Err(RequestError::UnsupportedProtocolVersion),
        };
        let jsonp = match (transport, query.j) {
            (TransportKind::Polling, Some(j)) if config.allow_eio3 => Some(
                ferrio_proto::engine::v3::jsonp_index(j)
                    .ok_or(RequestError::BadRequest)?
                    .into(),
            ),
            _ => None,
        };
        let b64 = wire::wants_base64(query.b64);
        let wire = Wire::new(protocol, b64, jsonp, b64);
        let accept = match transport {
            TransportKind::WebSocket => Some(websocket::check_upgrade_request(parts, config)?),
            TransportKind::Polling => None,
        };

        let remote_addr = parts.extensions.get::<RemoteAddr>().map(|a| a.0);
        let slot = self
            .inner
            .pending_handshakes
            .acquire(remote_addr)
            .map_err(|()| {
                tracing::warn!(?remote_addr, "handshake refused: too many in progress");
                RequestError::Forbidden("Too many pending handshakes".into())
            })?;
        let id: Arc<str> = match &config.generate_id {
            Some(generate) => generate(parts).into(),
            None => default_id().into(),
        };
        if id.is_empty() || self.inner.sessions.contains_key(&id) {
            return Err(RequestError::BadRequest);
        }
        let handshake = HandshakeInfo::new(parts, remote_addr);
        let socket = Socket::new(id.clone(), self.inner.clone(), transport, handshake, wire);
        socket.hold_handshake_slot(slot);
        let upgrades = match transport {
            TransportKind::Polling
                if config.allow_upgrades
                    && config.transports.contains(&TransportKind::WebSocket) =>
            {
                vec!["websocket".to_string()]
            }
            _ => vec![],
        };
        let open = OpenPacket {
            sid: id.to_string(),
            upgrades,
            ping_interval: config.ping_interval.as_millis() as u64,
            ping_timeout: config.ping_timeout.as_millis() as u64,
            max_payload: config.max_http_buffer_size as u64,
        }
        .to_frame();

        let mut res = match &accept {
            None => crate::transport::payload::first_response(&socket, open),
            Some(accept) => {
                // The open packet is the first frame the websocket writer sends.
                let _ = socket.send_frame(open);
                websocket::switching_protocols(accept)
            }
        };
        if let Some(cookie) = &config.cookie
            && let Ok(v) = HeaderValue::from_str(&cookie.header_value(&id))
        {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
        self.apply_headers_hooks(res.headers_mut(), parts, true);

        // The handler sees the session before anything can reach it: its id is not known to any request
        // yet and its websocket is not read yet, so no message or close comes before `on_open` returns.
        socket.set_handler(self.inner.handler.open(&socket));
        self.inner.sessions.insert(id, socket.clone());
        socket.reschedule();
        if let Some(upgrade) = accept {
            websocket::spawn_session(socket.clone(), parts, upgrade);
        }
        Ok(res)
    }

    pub(crate) fn apply_headers_hooks(
        &self,
        headers: &mut HeaderMap,
        parts: &http::request::Parts,
        initial: bool,
    ) {
        apply_headers_hooks(&self.inner.config, headers, parts, initial);
    }
}

pub(crate) fn apply_headers_hooks(
    config: &EngineConfig,
    headers: &mut HeaderMap,
    parts: &http::request::Parts,
    initial: bool,
) {
    if initial && let Some(hook) = &config.initial_headers {
        hook(headers, parts);
    }
    if let Some(hook) = &config.headers {
        hook(headers, parts);
    }
}

fn finish(res: Response<Bytes>) -> Response<EngineBody> {
    res.map(Full::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_first_occurrence_wins() {
        let q = Query::parse(Some(
            "EIO=4&transport=polling&transport=websocket&sid=abc&t=1",
        ));
        assert_eq!(
            q,
            Query {
                eio: Some("4"),
                transport: Some("polling"),
                sid: Some("abc"),
                ..Query::default()
            }
        );
        assert_eq!(Query::parse(None), Query::default());
        assert_eq!(Query::parse(Some("transport")).transport, Some(""));
        assert_eq!(Query::parse(Some("")), Query::default());
        assert_eq!(Query::parse(Some("&&sid=a=b&")).sid, Some("a=b"));
        assert_eq!(Query::parse(Some("sid=&EIO=3")).sid, Some(""));
        assert_eq!(Query::parse(Some("sid=&EIO=3")).eio, Some("3"));
        assert_eq!(Query::parse(Some("x=é&j=1")).j, Some("1"));
        let long = "EIO=4&transport=polling&t=PZ3x1a&sid=AbCdEfGhIjKlMnOpQrStUv&b64=1";
        let q = Query::parse(Some(long));
        assert_eq!(
            (q.eio, q.transport, q.sid, q.b64),
            (
                Some("4"),
                Some("polling"),
                Some("AbCdEfGhIjKlMnOpQrStUv"),
                Some("1")
            )
        );
    }

    #[test]
    fn delimiters_at_every_offset() {
        // Against the plain scan, with the delimiter at each position of an eight-byte word and
        // bytes that only look like it in the word (0x26 and 0x3d with the high bit set, 0xa6/0xbd).
        for len in 0..40 {
            for at in 0..len {
                for d in [b'&', b'='] {
                    let mut b = vec![0xa6u8; len];
                    b[at] = d;
                    if at + 1 < len {
                        b[at + 1] = 0xbd;
                    }
                    for from in 0..=len {
                        let plain = b[from..]
                            .iter()
                            .position(|&c| c == b'&' || c == b'=')
                            .map(|i| from + i);
                        assert_eq!(
                            next_delimiter(&b, from),
                            plain,
                            "len {len} at {at} from {from}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn ids_are_128_bit_and_distinct() {
        let a = default_id();
        let b = default_id();
        assert_eq!(a.len(), 22);
        assert_ne!(a, b);
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&a)
            .unwrap();
        assert_eq!(decoded.len(), 16);
    }
}
