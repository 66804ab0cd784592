//! The websocket transport: connection (optionally over TLS), handshake and upgrade probe.

use bytes::Bytes;
use bytestring::ByteString;
use ferrio_proto::engine::{Frame, Packet, decode_binary, decode_text};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::driver::{Opened, Transport};
use super::endpoint::Endpoint;
use super::polling::parse_open;
use super::tls::{BoxIo, io_error};
use super::{EngineError, MIN_INCOMING_LIMIT};

pub(crate) type Ws = WebSocketStream<BoxIo>;

/// The read limit of a websocket opened before `maxPayload` is known; messages are checked against the
/// real limit after the handshake.
const HANDSHAKE_READ_LIMIT: usize = 64 * 1024 * 1024;

fn config(limit: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit))
}

pub(crate) fn ws_error(e: WsError) -> EngineError {
    match e {
        WsError::Http(res) => {
            let status = res.status();
            let body = res
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            EngineError::Http { status, body }
        }
        WsError::Io(e) => io_error(e),
        WsError::Url(e) => EngineError::InvalidUrl(e.to_string()),
        other => EngineError::WebSocket(other.to_string()),
    }
}

/// Opens a websocket to the engine, for a new session (`sid` `None`) or an upgrade.
pub(crate) async fn open(
    endpoint: &Endpoint,
    sid: Option<&str>,
    limit: usize,
) -> Result<Ws, EngineError> {
    let io = endpoint.open_stream().await?;
    let mut req = endpoint
        .websocket_url(sid)
        .into_client_request()
        .map_err(ws_error)?;
    for name in endpoint.headers.keys() {
        if req.headers().contains_key(name) {
            continue;
        }
        for value in endpoint.headers.get_all(name) {
            req.headers_mut().append(name.clone(), value.clone());
        }
    }
    let (ws, _response) = tokio_tungstenite::client_async_with_config(req, io, Some(config(limit)))
        .await
        .map_err(ws_error)?;
    Ok(ws)
}

/// Opens a session over websocket: the first message is the open packet.
pub(crate) async fn handshake(endpoint: &Endpoint) -> Result<Opened, EngineError> {
    let mut ws = open(endpoint, None, HANDSHAKE_READ_LIMIT).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let open = match decode_text(to_byte_string(t)) {
                    Ok(Packet::Open(json)) => parse_open(&json)?,
                    Ok(other) => {
                        return Err(EngineError::Handshake(format!(
                            "expected an open packet, got {:?}",
                            other.packet_type()
                        )));
                    }
                    Err(e) => return Err(EngineError::Handshake(e.to_string())),
                };
                return Ok(Opened {
                    open,
                    transport: Transport::WebSocket(Box::new(ws)),
                    pending: Vec::new(),
                    pending_error: false,
                });
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Binary(_))) => {
                return Err(EngineError::Handshake(
                    "binary message before the open packet".into(),
                ));
            }
            Some(Ok(Message::Close(_))) | None => {
                return Err(EngineError::Handshake(
                    "websocket closed before the open packet".into(),
                ));
            }
            Some(Err(e)) => return Err(ws_error(e)),
        }
    }
}

/// Opens the websocket of an upgrade and checks that the server answers `2probe` with `3probe`.
pub(crate) async fn probe(endpoint: &Endpoint, sid: &str, limit: usize) -> Result<Ws, EngineError> {
    let mut ws = open(endpoint, Some(sid), limit.max(MIN_INCOMING_LIMIT)).await?;
    ws.send(Message::text("2probe")).await.map_err(ws_error)?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str() == "3probe" => return Ok(ws),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(other)) => {
                return Err(EngineError::WebSocket(format!(
                    "probe error: unexpected {other:?}"
                )));
            }
            None => return Err(EngineError::WebSocket("probe error: closed".into())),
            Some(Err(e)) => return Err(ws_error(e)),
        }
    }
}

fn to_byte_string(t: Utf8Bytes) -> ByteString {
    // Utf8Bytes is valid UTF-8, so this conversion cannot fail.
    ByteString::try_from(Bytes::from(t)).unwrap_or_default()
}

/// The packet a websocket message carries; `None` for control frames.
pub(crate) fn packet_of(
    message: Message,
) -> Option<Result<Packet, ferrio_proto::engine::DecodeError>> {
    match message {
        Message::Text(t) => Some(decode_text(to_byte_string(t))),
        Message::Binary(b) => Some(Ok(decode_binary(b))),
        _ => None,
    }
}

/// The websocket message of a frame.
pub(crate) fn to_message(frame: Frame) -> Message {
    match frame {
        // A ByteString is valid UTF-8, so this conversion cannot fail.
        Frame::Text(s) => Message::Text(Utf8Bytes::try_from(s.into_bytes()).unwrap_or_default()),
        Frame::Binary(b) => Message::Binary(b),
    }
}
