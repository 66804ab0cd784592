//! The websocket transport: connection (optionally over TLS), handshake and the steps of the upgrade probe.

use bytes::Bytes;
use bytestring::ByteString;
use ferrio_proto::engine::client::HandshakeError;
use ferrio_proto::engine::{
    ClientConfig, ClientSession, Frame, Packet, decode_binary, decode_text,
};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::EngineError;
use super::driver::{Opened, Transport};
use super::endpoint::Endpoint;
use super::tls::{BoxIo, io_error};

pub(crate) type Ws = WebSocketStream<BoxIo>;

/// The read limit of a websocket opened before `maxPayload` is known; messages are checked against the
/// real limit after the handshake.
const HANDSHAKE_READ_LIMIT: usize = 64 * 1024 * 1024;

fn config(limit: usize) -> WebSocketConfig {
    // A small read buffer instead of tungstenite's 128 KiB default, which is zero-filled before every
    // read: under callgrind that memset was 85% of the client's instructions in a closed-loop echo, and
    // the buffer ~140 KB of every idle client's memory. Larger messages grow the buffer as they arrive.
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
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
pub(crate) async fn handshake(
    endpoint: &Endpoint,
    config: ClientConfig,
) -> Result<Opened, EngineError> {
    let mut ws = open(endpoint, None, HANDSHAKE_READ_LIMIT).await?;
    let session = loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                break ClientSession::from_text(
                    tokio::time::Instant::now().into_std(),
                    config,
                    to_byte_string(t),
                );
            }
            Some(Ok(Message::Binary(_))) => break Err(HandshakeError::Binary),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Close(_))) | None => {
                return Err(EngineError::Handshake(
                    "websocket closed before the open packet".into(),
                ));
            }
            Some(Err(e)) => return Err(ws_error(e)),
        }
    };
    let session = session.map_err(|e| EngineError::Handshake(e.to_string()))?;
    Ok(Opened {
        session,
        transport: Transport::WebSocket(Box::new(ws)),
    })
}

/// Writes `frame` (`2probe`) on the upgrade websocket and reads the packet that answers it.
pub(crate) async fn answer_probe(mut ws: Ws, frame: Frame) -> Result<(Ws, Packet), EngineError> {
    ws.send(to_message(frame)).await.map_err(ws_error)?;
    loop {
        let packet = match ws.next().await {
            Some(Ok(Message::Text(t))) => decode_text(to_byte_string(t))
                .map_err(|e| EngineError::WebSocket(format!("probe error: {e}")))?,
            Some(Ok(Message::Binary(b))) => decode_binary(b),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Close(_))) | None => {
                return Err(EngineError::WebSocket("probe error: closed".into()));
            }
            Some(Err(e)) => return Err(ws_error(e)),
        };
        return Ok((ws, packet));
    }
}

pub(crate) fn to_byte_string(t: Utf8Bytes) -> ByteString {
    // Utf8Bytes is valid UTF-8, so this conversion cannot fail.
    ByteString::try_from(Bytes::from(t)).unwrap_or_default()
}

/// The websocket message of a frame.
pub(crate) fn to_message(frame: Frame) -> Message {
    match frame {
        // A ByteString is valid UTF-8, so this conversion cannot fail.
        Frame::Text(s) => Message::Text(Utf8Bytes::try_from(s.into_bytes()).unwrap_or_default()),
        Frame::Binary(b) => Message::Binary(b),
    }
}
