//! permessage-deflate on the server's websocket: negotiation, compressed messages both ways, the
//! threshold, `compress(false)`, and bad compressed frames (each closed with its code).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Server, quiet_config};
use ferrio::engine::{EngineConfig, EngineConfigBuilder, PerMessageDeflate};
use ferrio_proto::ws::{self, Decoder, DeflateConfig, Encoder, Message, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(3);

fn deflate_config() -> EngineConfig {
    EngineConfigBuilder::from(quiet_config())
        .per_message_deflate(Some(PerMessageDeflate::default()))
        .max_http_buffer_size(100_000)
        .build()
}

fn mask() -> [u8; 4] {
    rand::random()
}

/// A websocket client on ferrio-proto's codec that counts the bytes it receives.
struct Client {
    tcp: TcpStream,
    decoder: Decoder,
    encoder: Encoder,
    /// The 101's `Sec-WebSocket-Extensions`, if any.
    extensions: Option<String>,
    bytes_in: usize,
}

impl Client {
    async fn connect(addr: SocketAddr, target: &str, offer: Option<&str>) -> Client {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let mut req = format!(
            "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        );
        if let Some(o) = offer {
            req.push_str(&format!("Sec-WebSocket-Extensions: {o}\r\n"));
        }
        req.push_str("\r\n");
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(TIMEOUT, tcp.read(&mut chunk))
                .await
                .expect("no 101")
                .unwrap();
            assert!(n > 0, "closed before the 101");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let extensions = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("sec-websocket-extensions")
                .then(|| v.trim().to_string())
        });
        let params = extensions.as_deref().and_then(|e| {
            ws::accept_answer([e], &DeflateConfig::default()).expect("a valid answer")
        });
        let cfg = DeflateConfig::default();
        let mut decoder = Decoder::new(Role::Client, 1 << 20, params.as_ref());
        decoder.feed(&buf[end..]);
        Client {
            tcp,
            decoder,
            encoder: Encoder::client(mask, params.as_ref().map(|p| (p, &cfg))),
            extensions,
            bytes_in: buf.len() - end,
        }
    }

    async fn recv(&mut self) -> Result<Message, ws::Error> {
        loop {
            if let Some(m) = self.decoder.next_message()? {
                return Ok(m);
            }
            let mut chunk = vec![0u8; 64 * 1024];
            let n = tokio::time::timeout(TIMEOUT, self.tcp.read(&mut chunk))
                .await
                .expect("nothing from the server in time")
                .unwrap_or(0);
            assert!(n > 0, "EOF");
            self.bytes_in += n;
            self.decoder.feed(&chunk[..n]);
        }
    }

    async fn recv_text(&mut self) -> String {
        loop {
            match self.recv().await.unwrap() {
                Message::Text(t) if &*t == "2" => self.send_text("3", true).await,
                Message::Text(t) => return t.to_string(),
                Message::Ping(_) | Message::Pong(_) => {}
                m => panic!("unexpected {m:?}"),
            }
        }
    }

    async fn send_text(&mut self, text: &str, compress: bool) {
        let mut out = Vec::new();
        self.encoder.text(text, compress, &mut out).unwrap();
        self.tcp.write_all(&out).await.unwrap();
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.unwrap();
    }

    /// The close code the server sends next (skipping messages).
    async fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.recv().await {
                Ok(Message::Close(c)) => return c.map(|c| c.code),
                Ok(_) => {}
                Err(e) => panic!("bad frame from the server: {e}"),
            }
        }
    }
}

/// A JSON message of about 10 KB, as an application would send.
fn json_10k() -> String {
    let items: Vec<String> = (0..240)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"name\":\"user {i}\",\"online\":{}}}",
                i % 3 == 0
            )
        })
        .collect();
    let s = format!("[\"update\",{{\"items\":[{}]}}]", items.join(","));
    assert!((9_000..12_000).contains(&s.len()), "{}", s.len());
    s
}

const ENGINE_PATH: &str = "/engine.io/?EIO=4&transport=websocket";

#[tokio::test]
async fn negotiation() {
    let on = Server::start(deflate_config()).await;
    let c = Client::connect(
        on.addr,
        ENGINE_PATH,
        Some("permessage-deflate; client_max_window_bits"),
    )
    .await;
    assert_eq!(c.extensions.as_deref(), Some("permessage-deflate"));
    let c = Client::connect(
        on.addr,
        ENGINE_PATH,
        Some("permessage-deflate; server_max_window_bits=16, permessage-deflate; server_no_context_takeover"),
    )
    .await;
    assert_eq!(
        c.extensions.as_deref(),
        Some("permessage-deflate; server_no_context_takeover")
    );
    // Offers the server cannot take, and no offer: no extension.
    for offer in [
        Some("permessage-deflate; bogus"),
        Some("x-webkit-deflate-frame"),
        None,
    ] {
        let c = Client::connect(on.addr, ENGINE_PATH, offer).await;
        assert_eq!(c.extensions, None, "{offer:?}");
    }
    // Off by default.
    let off = Server::start(quiet_config()).await;
    let c = Client::connect(off.addr, ENGINE_PATH, Some("permessage-deflate")).await;
    assert_eq!(c.extensions, None);
}

#[tokio::test]
async fn compressed_round_trip() {
    let s = Server::start(deflate_config()).await;
    let json = json_10k();
    let mut c = Client::connect(
        s.addr,
        ENGINE_PATH,
        Some("permessage-deflate; client_max_window_bits"),
    )
    .await;
    let open = c.recv_text().await;
    assert!(open.starts_with("0{"));
    for _ in 0..3 {
        let before = c.bytes_in;
        c.send_text(&format!("4{json}"), true).await;
        assert_eq!(c.recv_text().await, format!("4{json}"));
        let wire = c.bytes_in - before;
        assert!(
            wire < json.len() / 4,
            "{wire} bytes on the wire for {}",
            json.len()
        );
    }
    // Small messages go uncompressed; the client may also send uncompressed ones.
    c.send_text("4small", false).await;
    assert_eq!(c.recv_text().await, "4small");
}

#[tokio::test]
async fn uncompressed_when_declined() {
    let s = Server::start(deflate_config()).await;
    let json = json_10k();
    let mut c = Client::connect(s.addr, ENGINE_PATH, None).await;
    c.recv_text().await;
    let before = c.bytes_in;
    c.send_text(&format!("4{json}"), true).await;
    assert_eq!(c.recv_text().await, format!("4{json}"));
    assert!(c.bytes_in - before > json.len());
}

#[tokio::test]
async fn compress_false_reaches_the_wire() {
    let io = ferrio::Io::new(
        ferrio::IoConfig::builder()
            .per_message_deflate(Some(PerMessageDeflate::default()))
            .build(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = io.clone();
    let task = tokio::spawn(async move {
        let _ = served.serve(listener).await;
    });
    let joined = std::sync::Arc::new(std::sync::Mutex::new(None::<ferrio::Socket>));
    let j = joined.clone();
    io.of("/").on_connection(move |socket: ferrio::Socket| {
        let j = j.clone();
        async move {
            socket.join(["r"]).unwrap();
            *j.lock().unwrap() = Some(socket);
        }
    });
    let mut c = Client::connect(
        addr,
        "/socket.io/?EIO=4&transport=websocket",
        Some("permessage-deflate"),
    )
    .await;
    assert!(c.recv_text().await.starts_with("0{"));
    c.send_text("40", true).await;
    assert!(c.recv_text().await.starts_with("40{"));
    let json: serde_json::Value = serde_json::from_str(&json_10k()).unwrap();
    let payload = json[1].clone();
    // The connection handler runs once the CONNECT answer is out: wait for it to hand the socket over.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let socket = loop {
        if let Some(s) = joined.lock().unwrap().clone() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "no connection");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // A broadcast (`io.to(room).compress(b)`), then an emit to the socket itself (`socket.compress(b)`).
    for (compress, direct) in [
        (true, false),
        (false, false),
        (true, false),
        (false, true),
        (true, true),
        (false, true),
    ] {
        let before = c.bytes_in;
        if direct {
            socket.compress(compress).emit("update", &payload).unwrap();
        } else {
            io.to("r")
                .compress(compress)
                .emit("update", &payload)
                .unwrap();
        }
        let t = c.recv_text().await;
        assert!(t.starts_with("42[\"update\""), "{t}");
        let wire = c.bytes_in - before;
        if compress {
            assert!(
                wire < t.len() / 4,
                "compressed: {wire} bytes for {}",
                t.len()
            );
        } else {
            assert!(
                wire > t.len(),
                "compress(false): {wire} bytes for {}",
                t.len()
            );
        }
    }
    task.abort();
}

/// Opens a deflate session, sends `bad`, expects `code` and the session gone.
async fn expect_close(bad: Vec<u8>, code: u16, what: &str) {
    let s = Server::start(deflate_config()).await;
    let mut c = Client::connect(s.addr, ENGINE_PATH, Some("permessage-deflate")).await;
    let open = c.recv_text().await;
    let sid: serde_json::Value = serde_json::from_str(&open[1..]).unwrap();
    let sid = sid["sid"].as_str().unwrap().to_string();
    c.send_raw(&bad).await;
    assert_eq!(c.close_code().await, Some(code), "{what}");
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(2)).await,
        "transport error",
        "{what}"
    );
}

fn client_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    common::encode_frame(b0, payload, common::MASK)
}

#[tokio::test]
async fn bad_compressed_frames() {
    use common::{FIN, OP_CONT, OP_PING, OP_TEXT, RSV1};
    let mut zlib = ferrio_proto::ws::deflate::Deflater::new(15, false, 9, 0);
    let mut bomb = Vec::new();
    zlib.compress(&vec![b'4'; 1_000_000], &mut bomb).unwrap();
    let mut invalid = Vec::new();
    zlib.compress(b"4\xff\xfe", &mut invalid).unwrap();
    let mut rsv_cont = client_frame(RSV1 | OP_TEXT, b"");
    rsv_cont.extend(client_frame(FIN | RSV1 | OP_CONT, b""));
    let cases = vec![
        (
            client_frame(FIN | RSV1 | OP_PING, b""),
            1002,
            "RSV1 on a ping",
        ),
        (rsv_cont, 1002, "RSV1 on a continuation"),
        (client_frame(FIN | 0x20 | OP_TEXT, b"4a"), 1002, "RSV2"),
        (
            client_frame(FIN | RSV1 | OP_TEXT, &[0xff; 8]),
            1007,
            "not deflate data",
        ),
        (
            client_frame(FIN | RSV1 | OP_TEXT, &invalid),
            1007,
            "invalid UTF-8 inside",
        ),
        (
            client_frame(FIN | RSV1 | OP_TEXT, &bomb),
            1009,
            "a deflate bomb",
        ),
        (client_frame(FIN | 0x0b, b""), 1002, "reserved opcode"),
    ];
    for (bad, code, what) in cases {
        expect_close(bad, code, what).await;
    }
}

#[tokio::test]
async fn ping_and_close_handshake() {
    use common::{FIN, OP_CLOSE, OP_PING};
    let s = Server::start(deflate_config()).await;
    let mut c = Client::connect(s.addr, ENGINE_PATH, Some("permessage-deflate")).await;
    c.recv_text().await;
    c.send_raw(&client_frame(FIN | OP_PING, b"hi")).await;
    assert_eq!(
        c.recv().await.unwrap(),
        Message::Pong(bytes::Bytes::from_static(b"hi"))
    );
    // The close is answered with the client's code.
    let mut p = 4000u16.to_be_bytes().to_vec();
    p.extend_from_slice(b"bye");
    c.send_raw(&client_frame(FIN | OP_CLOSE, &p)).await;
    assert_eq!(c.close_code().await, Some(4000));
}
