//! The Engine.IO client against misbehaving mini-servers, and over TLS.

use std::sync::Arc;
use std::time::Duration;

use ferrio::engine::{Engine, EngineCloseReason, EngineConfig, EngineData, EngineHandler, Socket};
use ferrio_client::engine::{
    CloseReason, Data, EngineError, EngineEvent, EngineOptions, Frame, TlsOptions, TransportKind,
    connect,
};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(5);

async fn next_event(events: &mut mpsc::Receiver<EngineEvent>) -> EngineEvent {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("no event in time")
        .expect("event stream ended without Close")
}

/// Reads one request head; `None` at end of stream.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// A server that answers the first request of each connection that has no `sid` with `status` and
/// `body`, and never answers anything else. Returns its URL.
async fn mini_server(status: &'static str, body: &'static str) -> String {
    scripted_server(move |head| (!head.contains("sid=")).then_some((status, body))).await
}

/// A server that answers each request as `script` says from its head (`None`: hold it, unanswered).
async fn scripted_server(
    script: impl Fn(&str) -> Option<(&'static str, &'static str)> + Send + Sync + Clone + 'static,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let script = script.clone();
            tokio::spawn(async move {
                while let Some(head) = read_head(&mut stream).await {
                    let Some((status, body)) = script(&head) else {
                        // Hold the request (and the connection) without answering.
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        return;
                    };
                    if let Some(len) = head.lines().find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    }) {
                        let mut body = vec![0u8; len];
                        if stream.read_exact(&mut body).await.is_err() {
                            return;
                        }
                    }
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if stream.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

/// A websocket server that sends `messages` on each connection, then keeps it open and silent.
async fn websocket_server(messages: &'static [&'static str]) -> String {
    use futures_util::SinkExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                for m in messages {
                    let msg = tokio_tungstenite::tungstenite::Message::text(*m);
                    if ws.send(msg).await.is_err() {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
    });
    format!("ws://{addr}")
}

fn websocket_only() -> EngineOptions {
    EngineOptions {
        transports: vec![TransportKind::WebSocket],
        ..EngineOptions::default()
    }
}

#[tokio::test]
async fn websocket_ping_timeout_and_parse_error() {
    let url = websocket_server(&[
        r#"0{"sid":"w1","upgrades":[],"pingInterval":100,"pingTimeout":100,"maxPayload":1000000}"#,
        "2",
    ])
    .await;
    let mut conn = connect(&url, &websocket_only()).await.unwrap();
    assert_eq!(conn.handshake.sid, "w1");
    assert_eq!(next_event(&mut conn.events).await, EngineEvent::Ping);
    assert_eq!(
        next_event(&mut conn.events).await,
        EngineEvent::Close {
            reason: CloseReason::PingTimeout,
            detail: None
        }
    );

    let url = websocket_server(&[
        r#"0{"sid":"w2","upgrades":[],"pingInterval":20000,"pingTimeout":20000,"maxPayload":1000000}"#,
        "4fine",
        "x",
    ])
    .await;
    let mut conn = connect(&url, &websocket_only()).await.unwrap();
    assert_eq!(
        next_event(&mut conn.events).await,
        EngineEvent::Message(Data::Text("fine".into()))
    );
    assert_eq!(
        next_event(&mut conn.events).await,
        EngineEvent::Close {
            reason: CloseReason::ParseError,
            detail: None
        }
    );
}

#[tokio::test]
async fn failed_probe_stays_on_polling() {
    // Offers the upgrade but refuses websockets; holds polls, accepts posts.
    let url = scripted_server(|head| {
        if head.contains("transport=websocket") {
            Some(("400 Bad Request", r#"{"code":3,"message":"Bad request"}"#))
        } else if !head.contains("sid=") {
            Some((
                "200 OK",
                r#"0{"sid":"p1","upgrades":["websocket"],"pingInterval":20000,"pingTimeout":20000,"maxPayload":1000000}"#,
            ))
        } else if head.starts_with("POST") {
            Some(("200 OK", "ok"))
        } else {
            None
        }
    })
    .await;
    let mut conn = connect(&url, &EngineOptions::default()).await.unwrap();
    conn.sender.send(Frame::message("over polling")).unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(500), conn.events.recv()).await;
    assert!(quiet.is_err(), "unexpected event {quiet:?}");
    assert_eq!(conn.sender.transport(), TransportKind::Polling);
    assert!(!conn.sender.is_closed());
}

fn polling_only() -> EngineOptions {
    EngineOptions {
        transports: vec![TransportKind::Polling],
        ..EngineOptions::default()
    }
}

#[tokio::test]
async fn ping_timeout_when_the_server_stops_pinging() {
    let url = mini_server(
        "200 OK",
        r#"0{"sid":"s1","upgrades":[],"pingInterval":100,"pingTimeout":100,"maxPayload":1000000}"#,
    )
    .await;
    let started = std::time::Instant::now();
    let mut conn = connect(&url, &polling_only()).await.unwrap();
    assert_eq!(conn.handshake.sid, "s1");
    assert_eq!(
        next_event(&mut conn.events).await,
        EngineEvent::Close {
            reason: CloseReason::PingTimeout,
            detail: None
        }
    );
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(190), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert!(conn.events.recv().await.is_none());
    assert!(matches!(
        conn.sender.send(Frame::message("x")),
        Err(EngineError::Closed)
    ));
}

/// A polling server that records the body of every POST, answers it `ok`, and holds every GET after
/// the handshake (which announces `max_payload`). Returns its URL and the bodies.
async fn recording_server(max_payload: u32) -> (String, Arc<parking_lot::Mutex<Vec<String>>>) {
    let posts = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let recorded = posts.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let recorded = recorded.clone();
            tokio::spawn(async move {
                while let Some(head) = read_head(&mut stream).await {
                    let body = if head.starts_with("POST") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        let mut body = vec![0u8; len];
                        if stream.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        recorded
                            .lock()
                            .push(String::from_utf8_lossy(&body).into_owned());
                        "ok".to_string()
                    } else if !head.contains("sid=") {
                        format!(
                            r#"0{{"sid":"r1","upgrades":[],"pingInterval":20000,"pingTimeout":20000,"maxPayload":{max_payload}}}"#
                        )
                    } else {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        return;
                    };
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if stream.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), posts)
}

#[tokio::test]
async fn posts_respect_max_payload_and_the_close_packet_goes_alone() {
    let (url, posts) = recording_server(12).await;
    let mut conn = connect(&url, &polling_only()).await.unwrap();
    for m in ["aaaa", "bbbb", "cccc", "this one is larger"] {
        conn.sender.send(Frame::message(m)).unwrap();
    }
    conn.sender.close();
    assert_eq!(
        next_event(&mut conn.events).await,
        EngineEvent::Close {
            reason: CloseReason::ForcedClose,
            detail: None
        }
    );
    // The events end once the close packet was posted.
    assert!(
        tokio::time::timeout(WAIT, conn.events.recv())
            .await
            .unwrap()
            .is_none()
    );
    let posts = posts.lock().clone();
    let joined = posts.join("|");
    assert_eq!(
        joined, "4aaaa\u{1e}4bbbb|4cccc|4this one is larger|1",
        "bodies: {posts:?}"
    );
}

#[tokio::test]
async fn packets_after_the_open_packet_are_delivered() {
    let url = mini_server(
        "200 OK",
        "0{\"sid\":\"s2\",\"upgrades\":[],\"pingInterval\":20000,\"pingTimeout\":20000,\"maxPayload\":1000000}\x1e4hi\x1ebAAE=",
    )
    .await;
    let mut conn = connect(&url, &polling_only()).await.unwrap();
    assert_eq!(
        next_event(&mut conn.events).await,
        EngineEvent::Message(Data::Text("hi".into()))
    );
    assert_eq!(
        next_event(&mut conn.events).await,
        EngineEvent::Message(Data::Binary(vec![0u8, 1].into()))
    );
}

#[tokio::test]
async fn bad_packet_after_the_handshake_is_a_parse_error() {
    let url = mini_server(
        "200 OK",
        "0{\"sid\":\"s3\",\"upgrades\":[],\"pingInterval\":20000,\"pingTimeout\":20000,\"maxPayload\":1000000}\x1e4ok\x1e9bad",
    )
    .await;
    let mut conn = connect(&url, &polling_only()).await.unwrap();
    assert_eq!(
        next_event(&mut conn.events).await,
        EngineEvent::Message(Data::Text("ok".into()))
    );
    assert_eq!(
        next_event(&mut conn.events).await,
        EngineEvent::Close {
            reason: CloseReason::ParseError,
            detail: None
        }
    );
}

#[tokio::test]
async fn handshake_400_is_http_error() {
    let url = mini_server("400 Bad Request", r#"{"code":3,"message":"Bad request"}"#).await;
    let err = connect(&url, &polling_only()).await.unwrap_err();
    match err {
        EngineError::Http { status, body } => {
            assert_eq!(status, 400);
            assert_eq!(body, r#"{"code":3,"message":"Bad request"}"#);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn invalid_open_packet_is_handshake_error() {
    let url = mini_server("200 OK", "4not an open packet").await;
    let err = connect(&url, &polling_only()).await.unwrap_err();
    assert!(matches!(err, EngineError::Handshake(_)), "{err:?}");
    let url = mini_server("200 OK", "0{\"sid\":1}").await;
    let err = connect(&url, &polling_only()).await.unwrap_err();
    assert!(matches!(err, EngineError::Handshake(_)), "{err:?}");
}

#[tokio::test]
async fn handshake_timeout() {
    // Accepts connections, never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _keep = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    for transports in [vec![TransportKind::Polling], vec![TransportKind::WebSocket]] {
        let opts = EngineOptions {
            transports,
            connect_timeout: Some(Duration::from_millis(200)),
            ..EngineOptions::default()
        };
        let err = connect(&format!("http://{addr}"), &opts).await.unwrap_err();
        assert!(matches!(err, EngineError::Timeout), "{err:?}");
    }
}

struct Echo;

impl EngineHandler for Echo {
    type State = ();
    fn on_open(&self, _socket: &Arc<Socket>) {}
    fn on_message(&self, socket: &Arc<Socket>, _state: &(), data: EngineData) {
        let _ = socket.send(data);
    }
    fn on_close(&self, _socket: &Arc<Socket>, _state: &(), _reason: EngineCloseReason) {}
}

/// A CA and a certificate for `localhost` and 127.0.0.1 signed by it: (CA PEM, cert DER, key DER).
fn certificates() -> (String, Vec<u8>, Vec<u8>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ferrio test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.der().to_vec(), key.serialize_der())
}

/// The ferrio engine served over TLS on 127.0.0.1; returns the port.
async fn tls_server(cert: Vec<u8>, key: Vec<u8>) -> u16 {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(cert)],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let engine = Engine::new(EngineConfig::default(), Echo);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let engine = engine.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |req| {
                    let engine = engine.clone();
                    async move { Ok::<_, std::convert::Infallible>(engine.handle(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    port
}

#[tokio::test]
async fn tls_with_trusted_ca() {
    let (ca_pem, cert, key) = certificates();
    let port = tls_server(cert, key).await;
    let tls = TlsOptions {
        root_certificates: vec![ca_pem.into_bytes()],
        ..TlsOptions::default()
    };
    for (host, transports) in [
        ("localhost", vec![TransportKind::Polling]),
        ("127.0.0.1", vec![TransportKind::WebSocket]),
        (
            "localhost",
            vec![TransportKind::Polling, TransportKind::WebSocket],
        ),
    ] {
        let upgrade = transports.len() == 2;
        let opts = EngineOptions {
            transports,
            tls: tls.clone(),
            ..EngineOptions::default()
        };
        let mut conn = connect(&format!("https://{host}:{port}"), &opts)
            .await
            .unwrap();
        if upgrade {
            assert_eq!(
                next_event(&mut conn.events).await,
                EngineEvent::Upgrade(TransportKind::WebSocket)
            );
        }
        conn.sender.send(Frame::message("secret")).unwrap();
        assert_eq!(
            next_event(&mut conn.events).await,
            EngineEvent::Message(Data::Text("secret".into()))
        );
        conn.sender.close();
        assert_eq!(
            next_event(&mut conn.events).await,
            EngineEvent::Close {
                reason: CloseReason::ForcedClose,
                detail: None
            }
        );
    }
}

#[tokio::test]
async fn tls_without_trusting_the_ca_fails() {
    let (_ca_pem, cert, key) = certificates();
    let port = tls_server(cert, key).await;
    for transports in [vec![TransportKind::Polling], vec![TransportKind::WebSocket]] {
        let opts = EngineOptions {
            transports: transports.clone(),
            ..EngineOptions::default()
        };
        let err = connect(&format!("https://localhost:{port}"), &opts)
            .await
            .unwrap_err();
        assert!(
            matches!(err, EngineError::Tls(_)),
            "{transports:?}: {err:?}"
        );
        // `wss://` is the same server.
        let err = connect(&format!("wss://localhost:{port}"), &opts)
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::Tls(_)), "{err:?}");
    }
    // Explicitly accepting invalid certificates works.
    let opts = EngineOptions {
        tls: TlsOptions {
            danger_accept_invalid_certs: true,
            ..TlsOptions::default()
        },
        transports: vec![TransportKind::Polling],
        ..EngineOptions::default()
    };
    let mut conn = connect(&format!("https://localhost:{port}"), &opts)
        .await
        .unwrap();
    conn.sender.send(Frame::message("ok")).unwrap();
    assert_eq!(
        next_event(&mut conn.events).await,
        EngineEvent::Message(Data::Text("ok".into()))
    );
}

#[tokio::test]
async fn invalid_root_certificate_is_tls_error() {
    let opts = EngineOptions {
        tls: TlsOptions {
            root_certificates: vec![
                b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".to_vec(),
            ],
            ..TlsOptions::default()
        },
        ..EngineOptions::default()
    };
    let err = connect("https://localhost:1", &opts).await.unwrap_err();
    assert!(matches!(err, EngineError::Tls(_)), "{err:?}");
}

/// What a [`reading_server`] read: a text or a binary websocket message.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    Text(String),
    Binary(Vec<u8>),
}

/// A websocket server on a thread and runtime of its own, so that it runs while the test's runtime is
/// blocked: it opens an Engine.IO session, waits for `go` (when given) before it reads anything, then
/// hands over every message it reads.
fn reading_server(
    go: Option<tokio::sync::oneshot::Receiver<()>>,
) -> (String, mpsc::UnboundedReceiver<Read>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::from_std(std_listener).unwrap();
            let (stream, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
            let open = r#"0{"sid":"direct","upgrades":[],"pingInterval":60000,"pingTimeout":60000,"maxPayload":100000000}"#;
            ws.send(Message::text(open)).await.unwrap();
            if let Some(go) = go {
                let _ = go.await;
            }
            while let Some(Ok(m)) = ws.next().await {
                let read = match m {
                    Message::Text(t) => Read::Text(t.to_string()),
                    Message::Binary(b) => Read::Binary(b.to_vec()),
                    _ => continue,
                };
                if tx.send(read).is_err() {
                    return;
                }
            }
        });
    });
    (format!("ws://{addr}"), rx)
}

/// A frame sent while the session's task waits with nothing to write is written by `send` itself, not
/// handed to the task: from the send on, the runtime the client runs on is blocked, and the server still
/// reads the frame.
#[test]
fn a_frame_sent_while_the_task_waits_is_written_by_send_itself() {
    let (url, mut received) = reading_server(None);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conn = rt.block_on(async {
        let conn = connect(&url, &websocket_only()).await.unwrap();
        // The task starts and settles into its wait.
        tokio::time::sleep(Duration::from_millis(50)).await;
        conn
    });
    conn.sender.send(Frame::message("direct")).unwrap();
    conn.sender.send(Frame::binary(vec![1u8, 2, 3])).unwrap();
    // Nothing runs on `rt` from here on.
    let deadline = std::time::Instant::now() + WAIT;
    let mut next = || loop {
        match received.try_recv() {
            Ok(r) => return r,
            Err(mpsc::error::TryRecvError::Empty) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("the frame was not written by send: {e:?}"),
        }
    };
    assert_eq!(next(), Read::Text("4direct".into()));
    assert_eq!(next(), Read::Binary(vec![1, 2, 3]));
}

/// Frames keep the order of their sends when the socket takes only part of one: the server reads nothing
/// until 16 MB were sent, more than the loopback's buffers hold, so a sender's own write stops halfway,
/// the task writes the rest of it, and the frames sent meanwhile queue behind it.
#[tokio::test]
async fn frames_keep_their_order_when_the_socket_takes_part_of_one() {
    let (go, go_rx) = tokio::sync::oneshot::channel();
    let (url, mut received) = reading_server(Some(go_rx));
    let conn = connect(&url, &websocket_only()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut sent = Vec::new();
    for i in 0..64u32 {
        let mut big = vec![(i % 251) as u8; 256 * 1024];
        big[..4].copy_from_slice(&i.to_be_bytes());
        conn.sender.send(Frame::binary(big.clone())).unwrap();
        sent.push(Read::Binary(big));
        conn.sender.send(Frame::message(&format!("t{i}"))).unwrap();
        sent.push(Read::Text(format!("4t{i}")));
        if i % 8 == 7 {
            // The task runs now and then: it flushes what it can and waits for room.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    go.send(()).unwrap();
    for (i, want) in sent.iter().enumerate() {
        let got = tokio::time::timeout(WAIT, received.recv())
            .await
            .unwrap_or_else(|_| panic!("message {i} never came"))
            .unwrap();
        // Compared whole, but reported by its head: 256 KB do not print.
        if &got != want {
            let head = |r: &Read| match r {
                Read::Text(t) => t.clone(),
                Read::Binary(b) => format!("binary {:?}, {} bytes", &b[..4], b.len()),
            };
            panic!("message {i}: got {}, want {}", head(&got), head(want));
        }
    }
}

/// A frame that the socket takes only part of, with nothing sent after it, is finished by the task: the
/// sender's own write leaves the rest and wakes it.
#[tokio::test]
async fn a_frame_the_socket_takes_part_of_is_finished_by_the_task() {
    let (go, go_rx) = tokio::sync::oneshot::channel();
    let (url, mut received) = reading_server(Some(go_rx));
    let conn = connect(&url, &websocket_only()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // More than the loopback's buffers hold while the server does not read.
    let big: Vec<u8> = (0..16 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    conn.sender.send(Frame::binary(big.clone())).unwrap();
    go.send(()).unwrap();
    let got = tokio::time::timeout(WAIT, received.recv())
        .await
        .expect("the rest of the frame never came")
        .unwrap();
    assert!(got == Read::Binary(big), "the frame came torn");
}
