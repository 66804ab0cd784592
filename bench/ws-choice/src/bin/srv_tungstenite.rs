//! Echo server: hyper 1 upgrade done by hand + tokio-tungstenite on the
//! upgraded IO (`WebSocketStream::from_raw_socket`).
use futures_util::{SinkExt, StreamExt};
use hyper::{Request, body::Incoming, header};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Error, Message,
        handshake::derive_accept_key,
        protocol::{CloseFrame, Role, WebSocketConfig, frame::coding::CloseCode},
    },
};
use ws_choice::{MAX_MSG, Resp, args, serve, status};

/// True if the comma-separated header `name` contains `token` (case-insensitive),
/// e.g. `Connection: keep-alive, Upgrade` as sent by browsers.
fn has_token(req: &Request<Incoming>, name: header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

async fn handle(req: Request<Incoming>, map_errors: bool, rbuf: usize) -> Result<Resp, std::convert::Infallible> {
    // RFC 6455 §4.2.1 checks that hyper does not do for us.
    if req.method() != hyper::Method::GET
        || !has_token(&req, header::CONNECTION, "upgrade")
        || !has_token(&req, header::UPGRADE, "websocket")
    {
        return Ok(status(400));
    }
    if req.headers().get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        return Ok(status(426));
    }
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else { return Ok(status(400)) };
    let accept = derive_accept_key(key.as_bytes());

    tokio::spawn(async move {
        // Resolves after hyper has flushed our 101 response.
        let Ok(upgraded) = hyper::upgrade::on(req).await else { return };
        // Limit frames too: max_message_size alone would let a single frame's
        // header make tungstenite reserve up to max_frame_size (16 MiB default).
        let cfg = WebSocketConfig::default()
            .max_message_size(Some(MAX_MSG))
            .max_frame_size(Some(MAX_MSG))
            .read_buffer_size(rbuf);
        let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(cfg)).await;
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                    if ws.send(m).await.is_err() { return }
                }
                // Ping -> pong and Close -> close reply are queued by tungstenite
                // and flushed on the next poll; nothing to do here.
                Ok(_) => {}
                Err(e) => {
                    if map_errors {
                        let code = match e {
                            Error::Protocol(_) => CloseCode::Protocol,   // 1002
                            Error::Utf8(_) => CloseCode::Invalid,        // 1007
                            Error::Capacity(_) => CloseCode::Size,       // 1009
                            _ => return,
                        };
                        let _ = ws.close(Some(CloseFrame { code, reason: "".into() })).await;
                    }
                    return;
                }
            }
        }
    });

    Ok(hyper::Response::builder()
        .status(101)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(http_body_util::Empty::new())
        .unwrap())
}

fn main() {
    let (port, map_errors) = args();
    // `--rbuf N`: tungstenite's read buffer (default 128 KiB) is allocated
    // eagerly per connection and zero-filled up to its capacity before every
    // read() syscall, so it drives both idle RSS and CPU per message.
    let a: Vec<String> = std::env::args().collect();
    let rbuf = a.iter().position(|x| x == "--rbuf").and_then(|i| a.get(i + 1)?.parse().ok())
        .unwrap_or(WebSocketConfig::default().read_buffer_size);
    serve(port, move |req| handle(req, map_errors, rbuf));
}
