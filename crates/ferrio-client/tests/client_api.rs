//! The client's API as a socket.io user expects it, against the ferrio server in-process: listeners with
//! EventEmitter semantics, ack timeouts from the options or per emit, acks failing on a lost connection,
//! the packet parser option, one socket per namespace on a manager with its own options, reconnection
//! delays and the attempt timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferrio::{Io, IoConfig, Socket as ServerSocket};
use ferrio_client::{
    AckError, Auth, ClientOptions, JsonParser, Manager, Parser, Socket, SocketOptions, Value,
    engine::TransportKind,
};
use ferrio_proto::socket::{Encoded, Packet, PacketDecoder};
use tokio::sync::mpsc;

async fn server() -> (Io, String) {
    let mut c = IoConfig::default();
    c.engine.ping_interval = Duration::from_millis(200);
    c.engine.ping_timeout = Duration::from_millis(200);
    let io = Io::new(c);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = io.clone();
    tokio::spawn(async move { served.serve(listener).await });
    for nsp in ["/", "/custom"] {
        let engine = io.engine().clone();
        io.of(nsp).on_connection(move |socket: ServerSocket| {
            let engine = engine.clone();
            async move {
                socket.on("echo", |_s, mut ev: ferrio::Event| async move {
                    let args = ev.take_args();
                    if let Some(a) = ev.take_ack() {
                        let _ = a.send_args(args);
                    }
                });
                // Emits `tick` with the number it was given.
                socket.on("tick-me", |s: ServerSocket, ev: ferrio::Event| async move {
                    let n = ev.parse::<u32>().unwrap_or(0);
                    let _ = s.emit("tick", &n);
                });
                socket.on("silent", |_s, _ev| async move {});
                socket.on(
                    "message",
                    |s: ServerSocket, mut ev: ferrio::Event| async move {
                        let _ = s.emit_args("message-back", ev.take_args());
                    },
                );
                socket.on(
                    "my-auth",
                    |s: ServerSocket, mut ev: ferrio::Event| async move {
                        let _ = ev.ack(&s.handshake().auth);
                    },
                );
                socket.on("ask", |s: ServerSocket, _ev| async move {
                    let answer = s
                        .timeout(Duration::from_secs(2))
                        .emit_with_ack("question", &())
                        .await;
                    let text = match answer {
                        Ok(args) => args.0,
                        Err(e) => vec![Value::from(e.to_string())],
                    };
                    let _ = s.emit_args("answer", text);
                });
                socket.on("kill-transport", move |s: ServerSocket, _ev| {
                    let engine = engine.clone();
                    async move {
                        if let Some(conn) = engine.socket(s.conn_id()) {
                            conn.close();
                        }
                    }
                });
            }
        });
    }
    (io, url)
}

fn options() -> ClientOptions {
    ClientOptions::builder()
        .transports([TransportKind::WebSocket])
        .reconnection_delay(Duration::from_millis(50))
        .reconnection_delay_max(Duration::from_millis(100))
        .force_new(true)
        .build()
}

async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("timed out")
        .expect("closed")
}

async fn connected(socket: &Socket) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while !socket.connected() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("not connected in time");
}

/// Counts the calls of one listener, and reports each call on a channel.
fn counter(
    socket: &Socket,
    event: &str,
    once: bool,
    seen: &mpsc::UnboundedSender<(&'static str, u32)>,
    name: &'static str,
) -> ferrio_client::ListenerId {
    let seen = seen.clone();
    let f = move |_s, ev: ferrio_client::Event| {
        let seen = seen.clone();
        async move {
            let _ = seen.send((name, ev.parse::<u32>().unwrap()));
        }
    };
    if once {
        socket.once(event, f)
    } else {
        socket.on(event, f)
    }
}

#[tokio::test]
async fn on_appends_once_runs_once_off_removes() {
    let (_io, url) = server().await;
    let socket = ferrio_client::connect(&url, options());
    let (tx, mut seen) = mpsc::unbounded_channel();
    let first = counter(&socket, "tick", false, &tx, "first");
    counter(&socket, "tick", false, &tx, "second");
    counter(&socket, "tick", true, &tx, "once");
    assert_eq!(socket.listener_count("tick"), 3);
    // Every event reaches the catch-all: it tells when an event arrived without listeners.
    let (any_tx, mut any) = mpsc::unbounded_channel();
    socket.on_any(move |_s, name, _args| {
        let _ = any_tx.send(name.to_owned());
    });
    // Catch-all listeners: `prepend_any` runs first; `off_listener` removes one of them too.
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (o1, o2, o3) = (order.clone(), order.clone(), order.clone());
    socket.on_any(move |_s, _n, _a| o1.lock().unwrap().push("appended"));
    socket.prepend_any(move |_s, _n, _a| o2.lock().unwrap().push("prepended"));
    let gone = socket.on_any(move |_s, _n, _a| o3.lock().unwrap().push("removed"));
    assert!(socket.off_listener(gone));
    connected(&socket).await;

    socket.emit("tick-me", &1).unwrap();
    let mut got = vec![
        recv(&mut seen).await,
        recv(&mut seen).await,
        recv(&mut seen).await,
    ];
    got.sort();
    assert_eq!(got, [("first", 1), ("once", 1), ("second", 1)]);
    assert_eq!(*order.lock().unwrap(), ["prepended", "appended"]);
    assert_eq!(socket.listener_count("tick"), 2, "the once listener left");

    socket.emit("tick-me", &2).unwrap();
    assert_eq!(recv(&mut seen).await, ("first", 2), "in registration order");
    assert_eq!(recv(&mut seen).await, ("second", 2));

    assert!(socket.off_listener(first));
    assert!(!socket.off_listener(first), "already removed");
    socket.emit("tick-me", &3).unwrap();
    assert_eq!(recv(&mut seen).await, ("second", 3));

    socket.off("tick");
    assert_eq!(socket.listener_count("tick"), 0);
    while any.try_recv().is_ok() {}
    socket.emit("tick-me", &4).unwrap();
    assert_eq!(recv(&mut any).await, "tick");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(seen.try_recv().is_err(), "no listener left");
    socket.disconnect();
}

#[tokio::test]
async fn every_listener_gets_the_ack_and_the_first_answer_wins() {
    let (_io, url) = server().await;
    let socket = ferrio_client::connect(&url, options());
    for answer in ["first", "second"] {
        socket.on("question", move |_s, mut ev| async move {
            assert!(ev.wants_ack());
            ev.ack(&answer).unwrap();
        });
    }
    let (tx, mut answers) = mpsc::unbounded_channel();
    socket.on("answer", move |_s, mut ev| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(ev.take_args());
        }
    });
    connected(&socket).await;
    socket.emit("ask", &()).unwrap();
    assert_eq!(recv(&mut answers).await, vec![Value::from("first")]);
    socket.disconnect();
}

#[tokio::test]
async fn ack_timeout_comes_from_the_options_or_the_emit() {
    let (_io, url) = server().await;
    let mut opts = options();
    opts.ack_timeout = Some(Duration::from_millis(300));
    let socket = ferrio_client::connect(&url, opts);
    connected(&socket).await;

    let t0 = Instant::now();
    let err = socket.emit_with_ack("silent", &1).await.unwrap_err();
    assert!(matches!(err, AckError::Timeout), "{err:?}");
    assert!(
        t0.elapsed() >= Duration::from_millis(290),
        "{:?}",
        t0.elapsed()
    );

    let t0 = Instant::now();
    let err = socket
        .timeout(Duration::from_millis(50))
        .emit_with_ack("silent", &1)
        .await
        .unwrap_err();
    assert!(matches!(err, AckError::Timeout));
    assert!(
        t0.elapsed() < Duration::from_millis(290),
        "{:?}",
        t0.elapsed()
    );

    // Many acks with their own deadlines, one timer: each fails at its own time, answers still come.
    let started = Instant::now();
    let waits = (1..=5u64).map(|i| {
        let s = socket.clone();
        async move {
            let r = s
                .timeout(Duration::from_millis(40 * i))
                .emit_with_ack("silent", &i)
                .await;
            (r.is_err(), started.elapsed())
        }
    });
    let results = futures_util::future::join_all(waits).await;
    for (i, (failed, at)) in results.iter().enumerate() {
        assert!(failed);
        assert!(
            *at >= Duration::from_millis(40 * (i as u64 + 1)),
            "{results:?}"
        );
    }
    let ok = socket.emit_with_ack("echo", &"still").await.unwrap();
    assert_eq!(ok.parse::<String>().unwrap(), "still");
    socket.disconnect();
}

#[tokio::test]
async fn acks_in_flight_fail_when_the_connection_is_lost() {
    let (_io, url) = server().await;
    let socket = ferrio_client::connect(&url, options());
    connected(&socket).await;
    let waiting = {
        let s = socket.clone();
        tokio::spawn(async move { s.emit_with_ack("silent", &1).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    socket.emit("kill-transport", &()).unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the ack never failed")
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, AckError::Disconnected), "{err:?}");
    // The socket came back and works.
    let ok = tokio::time::timeout(Duration::from_secs(5), socket.emit_with_ack("echo", &2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ok.parse::<u32>().unwrap(), 2);
    socket.disconnect();
}

#[tokio::test]
async fn reserved_names_are_refused() {
    let (_io, url) = server().await;
    let socket = ferrio_client::connect(&url, options());
    for name in ["connect", "disconnect", "connect_error"] {
        assert!(matches!(
            socket.emit(name, &()),
            Err(ferrio_client::EmitError::Reserved(_))
        ));
    }
    let err = socket
        .emit_with_ack("disconnecting", &())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        AckError::Emit(ferrio_client::EmitError::Reserved(_))
    ));
    socket.disconnect();
}

/// The JSON parser, counting what goes through it.
#[derive(Default)]
struct Counting {
    encoded: Arc<AtomicUsize>,
    decoded: Arc<AtomicUsize>,
}

struct CountingDecoder {
    inner: Box<dyn PacketDecoder>,
    decoded: Arc<AtomicUsize>,
}

impl PacketDecoder for CountingDecoder {
    fn decode(
        &mut self,
        data: ferrio_proto::engine::Data,
    ) -> Result<Option<Packet>, ferrio_proto::socket::ParseError> {
        let p = self.inner.decode(data)?;
        if p.is_some() {
            self.decoded.fetch_add(1, Ordering::Relaxed);
        }
        Ok(p)
    }

    fn reset(&mut self) {
        self.inner.reset();
    }
}

impl Parser for Counting {
    fn encode(&self, packet: &Packet) -> Encoded {
        self.encoded.fetch_add(1, Ordering::Relaxed);
        JsonParser::default().encode(packet)
    }

    fn decoder(&self) -> Box<dyn PacketDecoder> {
        Box::new(CountingDecoder {
            inner: JsonParser::default().decoder(),
            decoded: self.decoded.clone(),
        })
    }
}

#[tokio::test]
async fn the_parser_option_encodes_and_decodes_every_packet() {
    let (_io, url) = server().await;
    let parser = Counting::default();
    let (encoded, decoded) = (parser.encoded.clone(), parser.decoded.clone());
    let opts = ClientOptions::builder()
        .transports([TransportKind::WebSocket])
        .force_new(true)
        .parser(parser)
        .build();
    let socket = ferrio_client::connect(&url, opts);
    connected(&socket).await;
    let ok = socket
        .emit_with_ack("echo", &"through the parser")
        .await
        .unwrap();
    assert_eq!(ok.parse::<String>().unwrap(), "through the parser");
    // CONNECT and the event went out; the CONNECT answer and the ack came in.
    assert_eq!(encoded.load(Ordering::Relaxed), 2);
    assert_eq!(decoded.load(Ordering::Relaxed), 2);
    socket.disconnect();
}

#[tokio::test]
async fn a_manager_has_one_socket_per_namespace() {
    let (io, url) = server().await;
    let manager = Manager::new(&url, options());
    let a = manager.socket("/");
    let b = manager.socket("");
    a.on("tick", |_s, _ev| async {});
    assert_eq!(b.listener_count("tick"), 1, "the same socket");
    connected(&a).await;
    assert_eq!(a.id(), b.id());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(io.of("/").sockets().len(), 1);
    a.disconnect();
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn reconnection_delays_double_up_to_the_max() {
    let opts = ClientOptions::builder()
        .transports([TransportKind::WebSocket])
        .reconnection_delay(Duration::from_millis(100))
        .reconnection_delay_max(Duration::from_millis(400))
        .randomization_factor(0.0)
        .reconnection_attempts(Some(4))
        .build();
    let manager = Manager::new(&format!("http://127.0.0.1:{}", closed_port()), opts);
    let (tx, mut evs) = mpsc::unbounded_channel();
    manager.on_event(move |e| {
        let _ = tx.send((Instant::now(), e.clone()));
    });
    let _socket = manager.socket("/");
    let mut failed_at = None;
    let mut waits = vec![];
    loop {
        let (at, e) = recv(&mut evs).await;
        match e {
            ferrio_client::ManagerEvent::Error(_) => failed_at = Some(at),
            ferrio_client::ManagerEvent::ReconnectAttempt(n) => {
                waits.push((n, at - failed_at.expect("an attempt follows a failure")));
            }
            ferrio_client::ManagerEvent::ReconnectFailed => break,
            _ => {}
        }
    }
    let numbers: Vec<u32> = waits.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    for ((_, waited), expected) in waits.iter().zip([100, 200, 400, 400]) {
        let expected = Duration::from_millis(expected);
        assert!(
            *waited >= expected && *waited < expected + Duration::from_millis(300),
            "{waits:?}"
        );
    }
}

#[tokio::test]
async fn an_attempt_that_hangs_fails_after_timeout() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut conns = vec![];
        while let Ok((c, _)) = listener.accept().await {
            conns.push(c);
        }
    });
    let opts = ClientOptions::builder()
        .transports([TransportKind::WebSocket])
        .timeout(Some(Duration::from_millis(200)))
        .reconnection(false)
        .build();
    let socket = ferrio_client::connect(&format!("http://127.0.0.1:{port}"), opts);
    let (tx, mut errors) = mpsc::unbounded_channel();
    socket.on_connect_error(move |_s, err| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((Instant::now(), err));
        }
    });
    let t0 = Instant::now();
    let (at, err) = recv(&mut errors).await;
    assert_eq!(err.message, "timeout");
    assert!(at - t0 >= Duration::from_millis(150), "{:?}", at - t0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(errors.try_recv().is_err(), "no reconnection");
    held.abort();
}

#[tokio::test]
async fn sockets_sharing_a_connection_keep_their_own_auth() {
    let (io, url) = server().await;
    let auth = |who: &str| Auth::value(&serde_json::json!({ "who": who })).unwrap();
    let manager = Manager::new(&url, options());
    let a = manager.socket_with("/", SocketOptions::default().auth(auth("a")));
    // `connect` on a multiplexed manager: this call's auth goes with its namespace.
    let mut shared = options();
    shared.force_new = false;
    shared.auth = auth("b");
    let b1 = ferrio_client::connect(&url, shared.clone());
    shared.auth = auth("c");
    let c = ferrio_client::connect(&format!("{url}/custom"), shared);
    for s in [&a, &b1, &c] {
        connected(s).await;
    }
    let who = |s: Socket| async move {
        let v: serde_json::Value = s
            .emit_with_ack("my-auth", &())
            .await
            .unwrap()
            .parse()
            .unwrap();
        v["who"].as_str().unwrap().to_owned()
    };
    assert_eq!(who(a.clone()).await, "a");
    assert_eq!(who(b1.clone()).await, "b");
    assert_eq!(who(c.clone()).await, "c");
    assert_eq!(io.clients_count(), 2, "b and c share one connection");
    for s in [a, b1, c] {
        s.disconnect();
    }
}

#[tokio::test]
async fn send_emits_a_message_event() {
    let (_io, url) = server().await;
    let socket = ferrio_client::connect(&url, options());
    let (tx, mut back) = mpsc::unbounded_channel();
    socket.on("message-back", move |_s, mut ev| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(ev.take_args());
        }
    });
    socket.send(&("hi", 1)).unwrap();
    assert_eq!(
        recv(&mut back).await,
        vec![Value::from("hi"), Value::from(1u64)]
    );
    socket.disconnect();
}

#[tokio::test]
async fn a_dropped_emit_with_ack_is_forgotten() {
    let (_io, url) = server().await;
    let mut opts = options();
    opts.auto_connect = false;
    let socket = Manager::new(&url, opts).socket("/");
    let outgoing = Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = outgoing.clone();
    socket.on_any_outgoing(move |_s, name, _args| out.lock().unwrap().push(name.to_owned()));
    let (tx, mut seen) = mpsc::unbounded_channel();
    counter(&socket, "tick", false, &tx, "tick");

    // Given up by the caller while still in the offline buffer: it must not go out later.
    let dropped =
        tokio::time::timeout(Duration::from_millis(10), socket.emit_with_ack("echo", &1)).await;
    assert!(dropped.is_err());
    socket.emit("tick-me", &7).unwrap();
    socket.connect();
    assert_eq!(recv(&mut seen).await, ("tick", 7));
    assert_eq!(*outgoing.lock().unwrap(), ["tick-me"]);
    socket.disconnect();
}

/// A connected socket writes its emits straight from their data unless an outgoing listener wants the
/// arguments: either way the server reads the same event and the ack comes back.
#[tokio::test]
async fn outgoing_listeners_see_the_arguments_of_connected_emits() {
    let (_io, url) = server().await;
    let socket = Manager::new(&url, options()).socket("/");
    let (tx, mut back) = mpsc::unbounded_channel();
    socket.on("message-back", move |_s, mut ev: ferrio_client::Event| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(ev.take_args());
        }
    });
    connected(&socket).await;
    let data = ("q\"\n", 1.5, [1u8, 2], Some(()));
    let expected = ferrio_client::to_args(&data).unwrap();
    socket.emit("message", &data).unwrap();
    assert_eq!(recv(&mut back).await, expected);

    let outgoing = Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = outgoing.clone();
    socket.on_any_outgoing(move |_s, name, args| {
        out.lock().unwrap().push((name.to_owned(), args.to_vec()))
    });
    socket.emit("message", &data).unwrap();
    assert_eq!(recv(&mut back).await, expected);
    let acked = socket.emit_with_ack("echo", &data).await.unwrap();
    assert_eq!(acked.0, expected);
    assert_eq!(
        *outgoing.lock().unwrap(),
        [
            ("message".to_owned(), expected.clone()),
            ("echo".to_owned(), expected.clone())
        ]
    );

    socket.off_any_outgoing();
    let acked = socket.emit_with_ack("echo", &data).await.unwrap();
    assert_eq!(acked.0, expected);
    assert_eq!(outgoing.lock().unwrap().len(), 2);
    socket.disconnect();
}
