//! The client's websocket against a scripted server that breaks the websocket protocol: the client
//! answers pings, closes with the code of the rule the server broke (RFC 6455 section 7.4.1), refuses a
//! handshake answer with a wrong `Sec-WebSocket-Accept`, and never hangs or panics.

use std::time::Duration;

use ferrio_client::{ClientOptions, DisconnectReason};
use ferrio_proto::engine::TransportKind;
use ferrio_proto::ws::{Decoder, Encoder, Message, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(5);
const OPEN: &str =
    r#"0{"sid":"ws1","upgrades":[],"pingInterval":20000,"pingTimeout":20000,"maxPayload":1000000}"#;

/// Reads the upgrade request and answers it (with a wrong accept key when `bad_accept`).
async fn handshake(tcp: &mut TcpStream, bad_accept: bool) -> Vec<u8> {
    let mut buf = Vec::new();
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 1024];
        let n = tcp.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the client closed during the upgrade");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let key = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| v.trim().to_owned())
        })
        .expect("no Sec-WebSocket-Key");
    // A wrong answer: the accept value of another key.
    let accept = if bad_accept {
        ferrio_proto::ws::accept_key(format!("{key}x").as_bytes())
    } else {
        ferrio_proto::ws::accept_key(key.as_bytes())
    };
    let res = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    tcp.write_all(res.as_bytes()).await.unwrap();
    buf.split_off(end)
}

/// The client's next message (masked frames, decoded as a server does); `None` once it hung up.
async fn next(tcp: &mut TcpStream, decoder: &mut Decoder) -> Option<Message> {
    loop {
        if let Some(m) = decoder.next_message().expect("a bad frame from the client") {
            return Some(m);
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(WAIT, tcp.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => decoder.feed(&chunk[..n]),
            Ok(_) => return None,
            Err(_) => panic!("the client neither wrote nor closed"),
        }
    }
}

/// Serves one connection: the open packet, `40` answered, a ping (whose pong it checks), then `bad`
/// (raw bytes). Reports the client's close code on the channel.
async fn bad_server(bad: Vec<u8>) -> (String, mpsc::UnboundedReceiver<Option<u16>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let early = handshake(&mut tcp, false).await;
        let mut decoder = Decoder::new(Role::Server, 1 << 20, None);
        decoder.feed(&early);
        let mut enc = Encoder::server(None);
        let mut out = Vec::new();
        enc.text(OPEN, false, &mut out).unwrap();
        tcp.write_all(&out).await.unwrap();
        loop {
            match next(&mut tcp, &mut decoder).await {
                Some(Message::Text(t)) if t.starts_with("40") => break,
                Some(_) => continue,
                None => return,
            }
        }
        let mut out = Vec::new();
        enc.text(r#"40{"sid":"s1"}"#, false, &mut out).unwrap();
        enc.ping(b"are you there", &mut out);
        tcp.write_all(&out).await.unwrap();
        loop {
            match next(&mut tcp, &mut decoder).await {
                Some(Message::Pong(p)) => {
                    assert_eq!(&p[..], b"are you there");
                    break;
                }
                Some(_) => continue,
                None => panic!("no pong"),
            }
        }
        tcp.write_all(&bad).await.unwrap();
        let code = loop {
            match next(&mut tcp, &mut decoder).await {
                Some(Message::Close(c)) => break c.map(|c| c.code),
                Some(_) => continue,
                None => panic!("the client hung up without a close frame"),
            }
        };
        let _ = tx.send(code);
    });
    (url, rx)
}

fn options() -> ClientOptions {
    let mut o = ClientOptions::default();
    o.engine.transports = vec![TransportKind::WebSocket];
    o.reconnection = false;
    o.force_new = true;
    o
}

async fn expect_close(bad: Vec<u8>, code: u16, what: &str) {
    let (url, mut codes) = bad_server(bad).await;
    let socket = ferrio_client::connect(&url, options());
    let (dtx, mut reasons) = mpsc::unbounded_channel();
    socket.on_disconnect(move |_s, r| {
        let tx = dtx.clone();
        async move {
            let _ = tx.send(r);
        }
    });
    let got = tokio::time::timeout(WAIT, codes.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: no close frame"))
        .unwrap();
    assert_eq!(got, Some(code), "{what}");
    let reason = tokio::time::timeout(WAIT, reasons.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: no disconnect"))
        .unwrap();
    assert_eq!(reason, DisconnectReason::TransportError, "{what}");
}

#[tokio::test]
async fn protocol_violations_are_closed_with_their_code() {
    // Reserved opcode 3.
    expect_close(vec![0x83, 0x00], 1002, "reserved opcode").await;
    // RSV1 (compressed) without the extension negotiated.
    expect_close(vec![0xc1, 0x01, b'x'], 1002, "RSV1 without deflate").await;
    // A masked frame from the server.
    expect_close(
        vec![0x81, 0x81, 1, 2, 3, 4, b'x'],
        1002,
        "masked server frame",
    )
    .await;
    // Invalid UTF-8 in a text message.
    expect_close(vec![0x81, 0x02, 0xc3, 0x28], 1007, "invalid UTF-8").await;
    // A control frame over 125 bytes.
    let mut big_ping = vec![0x89, 126, 0, 200];
    big_ping.extend(std::iter::repeat_n(0u8, 200));
    expect_close(big_ping, 1002, "ping over 125 bytes").await;
}

/// A server whose `Sec-WebSocket-Accept` is wrong is not a websocket server: no session.
#[tokio::test]
async fn wrong_accept_key_fails_the_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        handshake(&mut tcp, true).await;
        let mut out = Vec::new();
        Encoder::server(None).text(OPEN, false, &mut out).unwrap();
        let _ = tcp.write_all(&out).await;
        let _ = tcp.read(&mut [0u8; 16]).await;
    });
    let socket = ferrio_client::connect(&url, options());
    let (tx, mut errors) = mpsc::unbounded_channel();
    socket.on_connect_error(move |_s, e| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(e.to_string());
        }
    });
    let e = tokio::time::timeout(WAIT, errors.recv())
        .await
        .expect("no connect error")
        .unwrap();
    assert!(e.contains("Sec-WebSocket-Accept"), "{e}");
    assert!(!socket.connected());
}
