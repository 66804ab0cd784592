//! ferrio-client plays the official admin UI against an instrumented server: login, config, sockets,
//! rooms, events, the disconnect action, refused credentials, a session id reused, the dashboard's
//! aggregated events and `socket_updated`.

use std::time::Duration;

use ferrio::{Io, IoConfig, Socket as ServerSocket};
use ferrio_admin::{AdminOptions, Auth, Mode, instrument};
use ferrio_client::{ClientOptions, Socket};
use serde_json::json;
use tokio::sync::mpsc;

async fn server(mode: Mode) -> (Io, String) {
    let io = Io::new(IoConfig::default());
    io.on_connection(|socket: ServerSocket| async move {
        socket.on("hello", |_s, _ev| async move {});
        socket.on(
            "set-data",
            |s: ServerSocket, ev: ferrio::Event| async move {
                s.set_data(serde_json::to_value(ev.args()).unwrap());
            },
        );
    });
    let mut options = AdminOptions::new(Auth::Basic {
        username: "admin".into(),
        // The lowest cost: the test checks the protocol, not bcrypt's strength.
        password: bcrypt::hash("s3cret", 4).unwrap(),
    });
    options.server_id = Some("node-a".into());
    options.mode = mode;
    options.server_stats_interval = Duration::from_millis(100);
    instrument(&io, options).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = io.clone();
    tokio::spawn(async move { served.serve(listener).await });
    (io, url)
}

fn options(auth: serde_json::Value) -> ClientOptions {
    ClientOptions::builder()
        .force_new(true)
        .reconnection(false)
        .auth(ferrio_client::Auth::value(&auth).unwrap())
        .build()
}

/// Every event the admin socket gets, as (name, JSON arguments).
fn all_events(socket: &Socket) -> mpsc::UnboundedReceiver<(String, serde_json::Value)> {
    let (tx, rx) = mpsc::unbounded_channel();
    socket.on_any(move |_s, event, args| {
        let args = serde_json::to_value(args).unwrap();
        let _ = tx.send((event.to_owned(), args));
    });
    rx
}

/// The next event named `name` whose arguments satisfy `pred` (others are skipped).
async fn next(
    rx: &mut mpsc::UnboundedReceiver<(String, serde_json::Value)>,
    name: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let wait = async {
        loop {
            let (event, args) = rx.recv().await.expect("admin socket closed");
            if event == name && pred(&args) {
                return args;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("no {name} event"))
}

async fn connected(socket: &Socket) -> String {
    let wait = async {
        loop {
            if let Some(id) = socket.id().filter(|_| socket.connected()) {
                return id;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("not connected")
}

#[tokio::test]
async fn the_admin_ui_sees_sockets_rooms_events_and_disconnects_a_client() {
    let (io, url) = server(Mode::Development).await;
    let admin = ferrio_client::connect(
        &format!("{url}/admin"),
        options(json!({ "username": "admin", "password": "s3cret" })),
    );
    let mut rx = all_events(&admin);
    let session = next(&mut rx, "session", |_| true).await;
    let session = session[0].as_str().unwrap().to_owned();
    assert_eq!(session.len(), 16, "8 random bytes in hex");
    let config = next(&mut rx, "config", |_| true).await;
    let features = config[0]["supportedFeatures"].as_array().unwrap();
    for f in ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "ALL_EVENTS"] {
        assert!(features.contains(&json!(f)), "{f} in {features:?}");
    }
    let all = next(&mut rx, "all_sockets", |_| true).await;
    let admin_id = connected(&admin).await;
    assert!(
        all[0]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == json!(admin_id) && s["nsp"] == "/admin"),
        "the admin socket lists itself: {all}"
    );
    let stats = next(&mut rx, "server_stats", |_| true).await;
    assert_eq!(stats[0]["serverId"], "node-a");
    assert_eq!(stats[0]["pid"], json!(std::process::id()));

    // A client connects: the admin UI sees it, with its client id, transport and own room.
    let client = ferrio_client::connect(&url, options(json!({ "token": "t" })));
    let id = connected(&client).await;
    let got = next(&mut rx, "socket_connected", |a| a[0]["nsp"] == "/").await;
    assert_eq!(got[0]["id"], json!(id));
    assert_eq!(got[0]["transport"], "polling");
    assert_eq!(got[0]["clientId"].as_str().unwrap().len(), 12);
    assert_eq!(got[0]["rooms"], json!([id]));
    assert!(
        got[0]["handshake"].get("auth").is_none(),
        "credentials stay out"
    );
    assert!(got[1].as_str().unwrap().ends_with('Z'), "a date: {got}");

    // The UI's join action on the socket's own room.
    admin.emit("join", &("/", "room1", &id)).unwrap();
    let joined = next(&mut rx, "room_joined", |a| a[1] == "room1").await;
    assert_eq!((&joined[0], &joined[2]), (&json!("/"), &json!(id)));
    let rooms = io.of("/").socket(&id).unwrap().rooms();
    assert!(rooms.iter().any(|r| &**r == "room1"), "{rooms:?}");

    // An event of the client, in development mode.
    client.emit("hello", &(1, "two")).unwrap();
    let ev = next(&mut rx, "event_received", |a| a[1] == json!(id)).await;
    assert_eq!(ev[2], json!(["hello", 1, "two"]));

    // Stats count the socket in its namespace.
    let stats = next(&mut rx, "server_stats", |s| {
        s[0]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == "/" && n["socketsCount"] == 1)
    })
    .await;
    assert_eq!(stats[0]["clientsCount"], 2, "the admin UI and the client");

    // The leave action, then the disconnect action, through the room filter.
    admin.emit("leave", &("/", "room1", &id)).unwrap();
    next(&mut rx, "room_left", |a| {
        a[1] == "room1" && a[2] == json!(id)
    })
    .await;
    let (tx, mut disconnected) = mpsc::unbounded_channel();
    client.on_disconnect(move |_s, reason| {
        let _ = tx.send(reason);
        async {}
    });
    admin.emit("_disconnect", &("/", false, &id)).unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(10), disconnected.recv())
        .await
        .expect("the client is disconnected")
        .unwrap();
    assert_eq!(reason.as_str(), "io server disconnect");
    let gone = next(&mut rx, "socket_disconnected", |a| a[1] == json!(id)).await;
    assert_eq!(gone[2], "server namespace disconnect");

    // A second login with the session id alone: no password asked again.
    let again = ferrio_client::connect(
        &format!("{url}/admin"),
        options(json!({ "sessionId": session })),
    );
    let mut rx2 = all_events(&again);
    next(&mut rx2, "config", |_| true).await;
    admin.disconnect();
    again.disconnect();
}

#[tokio::test]
async fn bad_credentials_are_refused_with_connect_error() {
    let (_io, url) = server(Mode::Development).await;
    for auth in [
        json!({ "username": "admin", "password": "wrong" }),
        json!({ "username": "root", "password": "s3cret" }),
        json!({ "sessionId": "0123456789abcdef" }),
        json!({}),
    ] {
        let admin = ferrio_client::connect(&format!("{url}/admin"), options(auth.clone()));
        let (tx, mut errors) = mpsc::unbounded_channel();
        admin.on_connect_error(move |_s, e| {
            let _ = tx.send(e.message);
            async {}
        });
        let message = tokio::time::timeout(Duration::from_secs(10), errors.recv())
            .await
            .expect("refused")
            .unwrap();
        assert_eq!(message, "invalid credentials", "{auth}");
        assert!(!admin.connected());
        admin.disconnect();
    }
}

#[tokio::test]
async fn production_mode_sends_stats_only_and_read_only_no_actions() {
    let io = Io::new(IoConfig::default());
    let mut options = AdminOptions::new(Auth::None);
    options.mode = Mode::Production;
    options.read_only = true;
    options.server_stats_interval = Duration::from_millis(100);
    instrument(&io, options).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = io.clone();
    tokio::spawn(async move { served.serve(listener).await });

    let admin = ferrio_client::connect(&format!("{url}/admin"), options_none());
    let mut rx = all_events(&admin);
    let config = next(&mut rx, "config", |_| true).await;
    assert_eq!(config[0]["supportedFeatures"], json!(["AGGREGATED_EVENTS"]));
    let client = ferrio_client::connect(&url, options_none());
    let id = connected(&client).await;
    // Two stats later, no per-socket event came, and the join action was ignored.
    admin.emit("join", &("/", "room1", &id)).unwrap();
    for _ in 0..3 {
        let (event, _) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event, "server_stats");
    }
    let rooms = io.of("/").socket(&id).unwrap().rooms();
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    let bad = instrument(
        &io,
        AdminOptions::new(Auth::Basic {
            username: "a".into(),
            password: "clear text".into(),
        }),
    );
    assert!(bad.is_err(), "a clear password is refused");
    client.disconnect();
    admin.disconnect();
}

/// Sums of the `aggregatedEvents` of every `server_stats`, by `type` and `subType`.
#[derive(Default, Debug)]
struct Totals(std::collections::HashMap<(String, String), u64>);

impl Totals {
    fn add(&mut self, stats: &serde_json::Value) {
        for e in stats[0]["aggregatedEvents"]
            .as_array()
            .expect("aggregatedEvents")
        {
            let ts = e["timestamp"].as_u64().expect("a timestamp");
            assert_eq!(ts % 1000, 0, "whole seconds: {e}");
            let key = (
                e["type"].as_str().unwrap().to_owned(),
                e["subType"].as_str().unwrap_or("").to_owned(),
            );
            *self.0.entry(key).or_default() += e["count"].as_u64().unwrap();
        }
    }

    fn get(&self, kind: &str, sub: &str) -> u64 {
        self.0
            .get(&(kind.to_owned(), sub.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Reads `server_stats` until `done` holds for the totals.
    async fn until(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<(String, serde_json::Value)>,
        done: impl Fn(&Totals) -> bool,
    ) {
        while !done(self) {
            let stats = next(rx, "server_stats", |_| true).await;
            self.add(&stats);
        }
    }
}

#[tokio::test]
async fn server_stats_aggregate_the_traffic_per_second() {
    let (_io, url) = server(Mode::Production).await;
    let admin = ferrio_client::connect(
        &format!("{url}/admin"),
        options(json!({ "username": "admin", "password": "s3cret" })),
    );
    let mut rx = all_events(&admin);
    let mut totals = Totals::default();
    // The admin UI's own session was counted before the first stats it gets (it may be in them).
    let stats = next(&mut rx, "server_stats", |_| true).await;
    totals.add(&stats);
    let base = totals.get("rawConnection", "");

    let client = ferrio_client::connect(&url, options_none());
    connected(&client).await;
    let payload = "x".repeat(1000);
    for _ in 0..5 {
        client.emit("hello", &payload).unwrap();
    }
    // The client's session; five events of 1000 bytes and more, in; CONNECT acks and stats, out.
    tokio::time::timeout(
        Duration::from_secs(10),
        totals.until(&mut rx, |t| {
            t.get("rawConnection", "") > base
                && t.get("packetsIn", "") >= 5
                && t.get("bytesIn", "") >= 5000
                && t.get("packetsOut", "") >= 2
                && t.get("bytesOut", "") > 0
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("traffic not aggregated: {totals:?}"));
    assert_eq!(totals.get("rawDisconnection", "transport close"), 0);

    client.disconnect();
    tokio::time::timeout(
        Duration::from_secs(10),
        totals.until(&mut rx, |t| {
            t.get("rawDisconnection", "transport close") == 1
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("disconnection not aggregated: {totals:?}"));
    assert_eq!(totals.get("rawConnection", ""), base + 1, "{totals:?}");
    admin.disconnect();
}

#[tokio::test]
async fn socket_updated_follows_an_upgrade_and_new_data() {
    let (_io, url) = server(Mode::Development).await;
    let admin = ferrio_client::connect(
        &format!("{url}/admin"),
        options(json!({ "username": "admin", "password": "s3cret" })),
    );
    let mut rx = all_events(&admin);
    next(&mut rx, "all_sockets", |_| true).await;

    let client = ferrio_client::connect(&url, options_none());
    let id = connected(&client).await;
    let got = next(&mut rx, "socket_connected", |a| a[0]["id"] == json!(id)).await;
    assert_eq!(got[0]["transport"], "polling");
    assert_eq!(
        got[0]["data"],
        json!({}),
        "the instrumentation's own entry stays out"
    );
    let up = next(&mut rx, "socket_updated", |a| a[0]["id"] == json!(id)).await;
    assert_eq!(
        up[0],
        json!({ "id": id, "nsp": "/", "transport": "websocket" })
    );

    client.emit("set-data", &("name", 7)).unwrap();
    let data = next(&mut rx, "socket_updated", |a| {
        a[0]["id"] == json!(id) && a[0].get("data").is_some()
    })
    .await;
    assert_eq!(
        data[0],
        json!({ "id": id, "nsp": "/", "data": ["name", 7] })
    );
    // Told once: the next stats come without another update of this socket.
    next(&mut rx, "server_stats", |_| true).await;
    next(&mut rx, "server_stats", |_| true).await;
    while let Ok((event, args)) = rx.try_recv() {
        assert!(
            !(event == "socket_updated" && args[0]["id"] == json!(id)),
            "{event} {args}"
        );
    }
    client.disconnect();
    admin.disconnect();
}

fn options_none() -> ClientOptions {
    ClientOptions::builder()
        .force_new(true)
        .reconnection(false)
        .build()
}
