//! The Engine.IO client against the ferrio server in-process, over polling only, websocket only, and
//! polling upgraded to websocket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferrio::engine::{Engine, EngineCloseReason, EngineConfig, EngineData, EngineHandler, Socket};
use ferrio_client::engine::{
    CloseReason, Data, EngineConnection, EngineError, EngineEvent, EngineOptions, Frame,
    TransportKind, connect,
};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(5);

/// Echoes every message; the text message `close-me` makes the server close the session.
struct Echo {
    closes: Arc<Mutex<Vec<(String, String)>>>,
}

impl EngineHandler for Echo {
    type State = ();

    fn on_open(&self, _socket: &Arc<Socket>) {}

    fn on_message(&self, socket: &Arc<Socket>, _state: &(), data: EngineData) {
        if matches!(&data, EngineData::Text(t) if &t[..] == "close-me") {
            socket.close();
        } else {
            let _ = socket.send(data);
        }
    }

    fn on_close(&self, socket: &Arc<Socket>, _state: &(), reason: EngineCloseReason) {
        self.closes
            .lock()
            .push((socket.id().to_string(), reason.to_string()));
    }
}

struct Server {
    addr: SocketAddr,
    closes: Arc<Mutex<Vec<(String, String)>>>,
    engine: Engine,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start(config: EngineConfig) -> Server {
        let closes = Arc::new(Mutex::new(Vec::new()));
        let engine = Engine::new(
            config,
            Echo {
                closes: closes.clone(),
            },
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = ferrio::EngineService::new(engine.clone(), ferrio::NotFound);
        let task = tokio::spawn(async move {
            let _ = ferrio::serve(listener, service).await;
        });
        Server {
            addr,
            closes,
            engine,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the server reports the close of `sid`; returns its reason.
    async fn close_reason(&self, sid: &str) -> String {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some((_, r)) = self.closes.lock().iter().find(|(s, _)| s == sid) {
                    return r.clone();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("server never saw the session close")
    }
}

fn quiet() -> EngineConfig {
    EngineConfig::builder()
        .ping_interval(Duration::from_secs(20))
        .ping_timeout(Duration::from_secs(20))
        .build()
}

fn fast() -> EngineConfig {
    EngineConfig::builder()
        .ping_interval(Duration::from_millis(100))
        .ping_timeout(Duration::from_millis(100))
        .build()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Polling,
    WebSocket,
    Upgrade,
}

fn options(mode: Mode) -> EngineOptions {
    match mode {
        Mode::Polling => EngineOptions {
            transports: vec![TransportKind::Polling],
            ..EngineOptions::default()
        },
        Mode::WebSocket => EngineOptions {
            transports: vec![TransportKind::WebSocket],
            ..EngineOptions::default()
        },
        Mode::Upgrade => EngineOptions::default(),
    }
}

async fn next_event(events: &mut mpsc::Receiver<EngineEvent>) -> EngineEvent {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("no event in time")
        .expect("event stream ended without Close")
}

/// The next event that is not a ping or an upgrade.
async fn next_message(events: &mut mpsc::Receiver<EngineEvent>) -> EngineEvent {
    loop {
        match next_event(events).await {
            EngineEvent::Ping | EngineEvent::Upgrade(_) => {}
            other => return other,
        }
    }
}

async fn open(server: &Server, mode: Mode) -> EngineConnection {
    let mut conn = connect(&server.url(), &options(mode)).await.unwrap();
    assert!(!conn.handshake.sid.is_empty());
    assert_eq!(conn.sender.id(), conn.handshake.sid);
    match mode {
        Mode::Polling => {
            assert_eq!(conn.sender.transport(), TransportKind::Polling);
            assert_eq!(conn.handshake.upgrades, vec!["websocket".to_string()]);
        }
        Mode::WebSocket => {
            assert_eq!(conn.sender.transport(), TransportKind::WebSocket);
            assert!(conn.handshake.upgrades.is_empty());
        }
        Mode::Upgrade => {
            assert_eq!(conn.sender.transport(), TransportKind::Polling);
            assert_eq!(
                next_event(&mut conn.events).await,
                EngineEvent::Upgrade(TransportKind::WebSocket)
            );
            assert_eq!(conn.sender.transport(), TransportKind::WebSocket);
            // The server switches when it reads the upgrade packet.
            let socket = server.engine.socket(conn.sender.id()).unwrap();
            tokio::time::timeout(WAIT, async {
                while socket.transport() != TransportKind::WebSocket {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .expect("the server never switched to websocket");
        }
    }
    conn
}

async fn handshake_and_echo(mode: Mode) {
    let server = Server::start(quiet()).await;
    let mut conn = open(&server, mode).await;
    assert_eq!(conn.handshake.ping_interval, 20_000);
    assert_eq!(conn.handshake.max_payload, 1_000_000);
    assert_eq!(server.engine.clients_count(), 1);

    conn.sender.send(Frame::message("héllo")).unwrap();
    assert_eq!(
        next_message(&mut conn.events).await,
        EngineEvent::Message(Data::Text("héllo".into()))
    );
    conn.sender
        .send(Frame::binary(vec![0u8, 1, 2, 255]))
        .unwrap();
    assert_eq!(
        next_message(&mut conn.events).await,
        EngineEvent::Message(Data::Binary(vec![0u8, 1, 2, 255].into()))
    );
    // Empty messages and a large binary one (base64 over polling).
    conn.sender.send(Frame::message("")).unwrap();
    assert_eq!(
        next_message(&mut conn.events).await,
        EngineEvent::Message(Data::Text("".into()))
    );
    let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    conn.sender.send(Frame::binary(big.clone())).unwrap();
    assert_eq!(
        next_message(&mut conn.events).await,
        EngineEvent::Message(Data::Binary(big.into()))
    );
    // Server-initiated message.
    let socket = server.engine.socket(conn.sender.id()).unwrap();
    socket.send_text("from server").unwrap();
    assert_eq!(
        next_message(&mut conn.events).await,
        EngineEvent::Message(Data::Text("from server".into()))
    );
}

async fn many_in_order(mode: Mode) {
    let server = Server::start(quiet()).await;
    let mut conn = if mode == Mode::Upgrade {
        // Send while the upgrade is under way: every frame must arrive once, in order.
        connect(&server.url(), &options(mode)).await.unwrap()
    } else {
        open(&server, mode).await
    };
    for i in 0..200 {
        let frame = if i % 10 == 9 {
            Frame::binary(format!("b{i}").into_bytes())
        } else {
            Frame::message(&format!("m{i}"))
        };
        conn.sender.send(frame).unwrap();
    }
    let mut upgraded = false;
    for i in 0..200 {
        let expected = if i % 10 == 9 {
            Data::Binary(format!("b{i}").into_bytes().into())
        } else {
            Data::Text(format!("m{i}").into())
        };
        loop {
            match next_event(&mut conn.events).await {
                EngineEvent::Message(d) => {
                    assert_eq!(d, expected, "message {i}");
                    break;
                }
                EngineEvent::Upgrade(TransportKind::WebSocket) => upgraded = true,
                EngineEvent::Ping => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    if mode == Mode::Upgrade && !upgraded {
        assert_eq!(
            next_event(&mut conn.events).await,
            EngineEvent::Upgrade(TransportKind::WebSocket)
        );
    }
    // Nothing duplicated.
    conn.sender.send(Frame::message("end")).unwrap();
    assert_eq!(
        next_message(&mut conn.events).await,
        EngineEvent::Message(Data::Text("end".into()))
    );
}

async fn heartbeats(mode: Mode) {
    let server = Server::start(fast()).await;
    let mut conn = open(&server, mode).await;
    let mut pings = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(ev) = tokio::time::timeout_at(deadline, conn.events.recv()).await {
        match ev {
            Some(EngineEvent::Ping) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pings >= 10, "only {pings} pings in 2 s");
    assert!(server.closes.lock().is_empty());
    conn.sender.send(Frame::message("still here")).unwrap();
    assert_eq!(
        next_message(&mut conn.events).await,
        EngineEvent::Message(Data::Text("still here".into()))
    );
}

async fn server_closes(mode: Mode) {
    let server = Server::start(quiet()).await;
    let mut conn = open(&server, mode).await;
    conn.sender.send(Frame::message("close-me")).unwrap();
    assert_eq!(
        next_message(&mut conn.events).await,
        EngineEvent::Close {
            reason: CloseReason::TransportClose,
            detail: None
        }
    );
    assert!(
        tokio::time::timeout(WAIT, conn.events.recv())
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        conn.sender.send(Frame::message("late")),
        Err(EngineError::Closed)
    ));
}

async fn client_closes(mode: Mode) {
    let server = Server::start(quiet()).await;
    let mut conn = open(&server, mode).await;
    conn.sender.send(Frame::message("last")).unwrap();
    conn.sender.close();
    conn.sender.close();
    assert_eq!(
        next_message(&mut conn.events).await,
        EngineEvent::Close {
            reason: CloseReason::ForcedClose,
            detail: None
        }
    );
    assert!(
        tokio::time::timeout(WAIT, conn.events.recv())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        server.close_reason(conn.sender.id()).await,
        "transport close"
    );
    assert!(matches!(
        conn.sender.send(Frame::message("late")),
        Err(EngineError::Closed)
    ));
    assert!(conn.sender.is_closed());
}

async fn dropping_closes(mode: Mode) {
    let server = Server::start(quiet()).await;
    let conn = open(&server, mode).await;
    let sid = conn.handshake.sid.clone();
    let sender2 = conn.sender.clone();
    drop(conn);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(server.closes.lock().is_empty(), "a sender is still alive");
    drop(sender2);
    assert_eq!(server.close_reason(&sid).await, "transport close");
}

macro_rules! per_mode {
    ($($name:ident),*) => {
        mod polling { use super::*; $( #[tokio::test] async fn $name() { super::$name(Mode::Polling).await } )* }
        mod websocket { use super::*; $( #[tokio::test] async fn $name() { super::$name(Mode::WebSocket).await } )* }
        mod upgrade { use super::*; $( #[tokio::test] async fn $name() { super::$name(Mode::Upgrade).await } )* }
    };
}

per_mode!(
    handshake_and_echo,
    many_in_order,
    heartbeats,
    server_closes,
    client_closes,
    dropping_closes
);

#[tokio::test]
async fn custom_path_and_query() {
    let mut config = quiet();
    config.path = "/socket.io/".into();
    let server = Server::start(config).await;
    let opts = EngineOptions {
        path: "/socket.io/".into(),
        query: vec![("token".into(), "a b".into())],
        ..EngineOptions::default()
    };
    let mut conn = connect(&server.url(), &opts).await.unwrap();
    conn.sender.send(Frame::message("x")).unwrap();
    assert_eq!(
        next_message(&mut conn.events).await,
        EngineEvent::Message(Data::Text("x".into()))
    );
    // Wrong path: the server answers 404.
    let err = connect(&server.url(), &EngineOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Http { status, .. } if status == 404),
        "{err:?}"
    );
}

#[tokio::test]
async fn rejected_handshake_is_http_error() {
    let server = Server::start(
        quiet().allow_request(|_| async { Err(ferrio::engine::Rejection::forbidden("nope")) }),
    )
    .await;
    for mode in [Mode::Polling, Mode::WebSocket] {
        let err = connect(&server.url(), &options(mode)).await.unwrap_err();
        match err {
            EngineError::Http { status, body } => {
                assert_eq!(status, 403, "{mode:?}");
                let json: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(json["code"], 4);
                assert_eq!(json["message"], "nope");
            }
            other => panic!("{mode:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn remember_upgrade_starts_with_websocket() {
    let server = Server::start(quiet()).await;
    let opts = EngineOptions {
        remember_upgrade: true,
        ..EngineOptions::default()
    };
    // Upgrade once: the host is remembered.
    let _first = open(&server, Mode::Upgrade).await;
    let mut conn = connect(&server.url(), &opts).await.unwrap();
    assert_eq!(conn.sender.transport(), TransportKind::WebSocket);
    assert!(conn.handshake.upgrades.is_empty());
    conn.sender.send(Frame::message("ws")).unwrap();
    assert_eq!(
        next_message(&mut conn.events).await,
        EngineEvent::Message(Data::Text("ws".into()))
    );
}

#[tokio::test]
async fn upgrade_disabled_by_server_stays_on_polling() {
    let mut config = quiet();
    config.allow_upgrades = false;
    let server = Server::start(config).await;
    let mut conn = connect(&server.url(), &EngineOptions::default())
        .await
        .unwrap();
    conn.sender.send(Frame::message("p")).unwrap();
    assert_eq!(
        next_event(&mut conn.events).await,
        EngineEvent::Message(Data::Text("p".into()))
    );
    assert_eq!(conn.sender.transport(), TransportKind::Polling);
}

#[tokio::test]
async fn queue_full_is_reported() {
    let server = Server::start(quiet()).await;
    let conn = open(&server, Mode::Polling).await;
    let mut full = false;
    for i in 0..100_000 {
        match conn.sender.send(Frame::message(&format!("{i}"))) {
            Ok(()) => {}
            Err(EngineError::QueueFull) => {
                full = true;
                break;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(full);
}

#[tokio::test]
async fn connection_refused_is_io_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    for mode in [Mode::Polling, Mode::WebSocket] {
        let err = connect(&format!("http://{addr}"), &options(mode))
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::Io(_)), "{err:?}");
    }
}
