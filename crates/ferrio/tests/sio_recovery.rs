//! Connection state recovery on the wire, with a raw client: the `pid` in the CONNECT answer, offsets
//! on broadcasts, and what a CONNECT with `pid` and `offset` gets back — the same socket with the
//! packets it missed, or a new socket when the session is unknown, used, expired, left on purpose, or
//! when its offset fell off the log.

mod sio_common;

use std::time::Duration;

use ferrio::{ConnectError, ConnectionStateRecovery, DisconnectReason, Event, Socket};
use serde_json::json;
use sio_common::*;

const WITHIN: Duration = Duration::from_secs(3);

/// What the connection handler saw of each socket: (id, recovered, data).
type Connections = Log<(String, bool, serde_json::Value)>;

struct Recovery {
    server: TestServer,
    connections: Connections,
    disconnects: Log<DisconnectReason>,
    middleware_runs: Counter,
}

/// A server with recovery on: a new socket joins room `r` and stores `{"name":"ann"}` as its data;
/// `kick` disconnects it from the server side.
async fn start(recovery: Option<ConnectionStateRecovery>) -> Recovery {
    start_with(recovery, config()).await
}

async fn start_with(
    recovery: Option<ConnectionStateRecovery>,
    mut config: ferrio::IoConfig,
) -> Recovery {
    config.connection_state_recovery = recovery;
    let server = TestServer::start(config).await;
    let connections = Connections::new();
    let disconnects = Log::new();
    let middleware_runs = Counter::new();
    let runs = middleware_runs.clone();
    server.io.use_middleware(move |_s: Socket| {
        let runs = runs.clone();
        async move {
            runs.incr();
            Ok::<(), ConnectError>(())
        }
    });
    let (seen, gone) = (connections.clone(), disconnects.clone());
    server.io.on_connection(move |socket: Socket| {
        let (seen, gone) = (seen.clone(), gone.clone());
        async move {
            if !socket.recovered() {
                socket.join(["r"]).unwrap();
                socket.set_data(json!({ "name": "ann" }));
            }
            let data =
                ferrio::from_value::<serde_json::Value>(socket.data_value().unwrap()).unwrap();
            seen.push((socket.id().to_owned(), socket.recovered(), data));
            socket.on_disconnect(move |_s, reason| {
                let gone = gone.clone();
                async move { gone.push(reason) }
            });
            socket.on("kick", |s: Socket, _ev: Event| async move {
                s.disconnect(false)
            });
        }
    });
    Recovery {
        server,
        connections,
        disconnects,
        middleware_runs,
    }
}

fn on() -> Option<ConnectionStateRecovery> {
    Some(ConnectionStateRecovery::default())
}

/// Sends a CONNECT to `/` with `auth` and returns the answer's payload.
async fn connect(c: &mut Client, auth: serde_json::Value) -> serde_json::Value {
    c.send(&format!("40{auth}")).await;
    let t = c.recv_text().await;
    let body = t
        .strip_prefix("40")
        .unwrap_or_else(|| panic!("CONNECT expected, got {t:?}"));
    serde_json::from_str(body).unwrap()
}

/// The arguments of the next event, which must be `n`.
async fn next_n(c: &mut Client) -> Vec<serde_json::Value> {
    let t = c.recv_text().await;
    let body = t
        .strip_prefix("42")
        .unwrap_or_else(|| panic!("EVENT expected, got {t:?}"));
    let mut v: Vec<serde_json::Value> = serde_json::from_str(body).unwrap();
    assert_eq!(v.remove(0), json!("n"), "{t}");
    v
}

/// The number and the offset of the next `n` event (a broadcast with recovery on).
async fn next_with_offset(c: &mut Client) -> (u64, String) {
    let args = next_n(c).await;
    assert_eq!(args.len(), 2, "a number and its offset: {args:?}");
    (
        args[0].as_u64().unwrap(),
        args[1].as_str().expect("offset is a string").to_owned(),
    )
}

impl Recovery {
    /// A fresh socket on a new connection: (client, sid, pid).
    async fn fresh(&self) -> (Client, String, String) {
        let mut c = self.server.client().await;
        let body = connect(&mut c, json!({})).await;
        let pid = body["pid"]
            .as_str()
            .expect("pid with recovery on")
            .to_owned();
        let sid = body["sid"].as_str().unwrap().to_owned();
        // The CONNECT answer goes before the socket is in its own room (its task finishes joining right
        // after): a broadcast made at once could miss it.
        let main = self.server.io.of("/");
        wait_until(WITHIN, "the socket in its room", || {
            main.sockets()
                .iter()
                .any(|s| s.id() == sid && !s.rooms().is_empty())
        })
        .await;
        (c, sid, pid)
    }

    /// Closes the client's transport and waits until its socket's session is kept.
    async fn drop_transport(&self, c: Client) {
        let before = self.disconnects.len();
        c.close().await;
        // The session is persisted before the `disconnect` handlers run.
        wait_until(WITHIN, "disconnect", || self.disconnects.len() > before).await;
        assert_eq!(
            self.disconnects.get().last(),
            Some(&DisconnectReason::TransportClose)
        );
    }

    fn emit(&self, room: &str, n: u64) {
        self.server.io.to(room).emit("n", &n).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_id_rooms_data_and_the_missed_packets_in_order() {
    let t = start(on()).await;
    let (mut c, sid, pid) = t.fresh().await;
    t.emit("r", 0);
    let (n, offset) = next_with_offset(&mut c).await;
    assert_eq!(n, 0);
    t.drop_transport(c).await;

    // Missed: 1 and 2 to `r`, 4 to everyone; not 3 (another room), not 5 (volatile).
    t.emit("r", 1);
    t.emit("r", 2);
    t.emit("q", 3);
    t.server.io.emit("n", &4).unwrap();
    t.server.io.to("r").volatile().emit("n", &5).unwrap();

    let mut c = t.server.client().await;
    let body = connect(&mut c, json!({ "pid": pid, "offset": offset })).await;
    assert_eq!(body["sid"], json!(sid), "same id");
    assert_eq!(body["pid"], json!(pid), "same private id");
    let mut offsets = vec![offset];
    for want in [1, 2, 4] {
        let (n, off) = next_with_offset(&mut c).await;
        assert_eq!(n, want);
        offsets.push(off);
    }
    let mut sorted = offsets.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), offsets.len(), "distinct offsets {offsets:?}");

    // The connection handler ran for the restored socket, which kept its data and its room.
    wait_until(WITHIN, "second connection", || t.connections.len() == 2).await;
    assert_eq!(
        t.connections.get()[1],
        (sid.clone(), true, json!({ "name": "ann" }))
    );
    assert_eq!(
        t.middleware_runs.get(),
        1,
        "middlewares skipped on recovery"
    );
    let socket = t.server.io.of("/").socket(&sid).expect("reachable by id");
    let mut rooms: Vec<String> = socket.rooms().iter().map(|r| r.to_string()).collect();
    rooms.sort();
    let mut want = vec!["r".to_owned(), sid.clone()];
    want.sort();
    assert_eq!(rooms, want);

    // Live traffic after the replay, nothing twice.
    t.emit("r", 6);
    assert_eq!(next_with_offset(&mut c).await.0, 6);
    assert!(c.recv_within(Duration::from_millis(200)).await.is_none());

    // A restored socket that drops is kept again, under the same pid; a client that claims an older
    // offset gets everything since.
    t.drop_transport(c).await;
    let mut again = t.server.client().await;
    let body = connect(
        &mut again,
        json!({ "pid": pid, "offset": offsets[0].clone() }),
    )
    .await;
    assert_eq!(body["sid"], json!(sid));
    for want in [1, 2, 4, 6] {
        assert_eq!(next_with_offset(&mut again).await.0, want);
    }
    // The session was used: the same pid and offset give a new socket.
    let mut third = t.server.client().await;
    let body = connect(
        &mut third,
        json!({ "pid": pid, "offset": offsets[0].clone() }),
    )
    .await;
    assert_ne!(body["sid"], json!(sid), "a session is given back once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pid_bad_offset_or_missing_offset_give_a_new_socket() {
    let t = start(on()).await;
    let (mut c, sid, pid) = t.fresh().await;
    t.emit("r", 0);
    let (_, offset) = next_with_offset(&mut c).await;
    t.drop_transport(c).await;

    for auth in [
        json!({ "pid": "forged-pid-000000000", "offset": offset }),
        json!({ "pid": 12, "offset": offset }),
        json!({ "pid": pid, "offset": "999999" }),
    ] {
        let mut c = t.server.client().await;
        let body = connect(&mut c, auth.clone()).await;
        assert_ne!(body["sid"], json!(sid), "{auth}");
        assert!(body["pid"].is_string(), "a new session to recover later");
        assert_ne!(body["pid"], json!(pid));
    }
    let recovered = t.connections.get().iter().filter(|c| c.1).count();
    assert_eq!(recovered, 0);

    // Without an offset (the client never got a broadcast), as the official server: no recovery.
    let (c, sid2, pid2) = t.fresh().await;
    t.drop_transport(c).await;
    let mut c = t.server.client().await;
    let body = connect(&mut c, json!({ "pid": pid2, "offset": null })).await;
    assert_ne!(body["sid"], json!(sid2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_not_recovered() {
    let t = start(Some(
        ConnectionStateRecovery::default().max_disconnection_duration(Duration::from_millis(300)),
    ))
    .await;
    let (mut c, sid, pid) = t.fresh().await;
    t.emit("r", 0);
    let (_, offset) = next_with_offset(&mut c).await;
    t.drop_transport(c).await;
    t.emit("r", 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut c = t.server.client().await;
    let body = connect(&mut c, json!({ "pid": pid, "offset": offset })).await;
    assert_ne!(body["sid"], json!(sid));
    assert!(
        c.recv_within(Duration::from_millis(200)).await.is_none(),
        "nothing replayed to a new socket"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voluntary_and_server_disconnects_are_not_kept() {
    let t = start(on()).await;

    // The client leaves the namespace.
    let (mut c, sid, pid) = t.fresh().await;
    t.emit("r", 0);
    let (_, offset) = next_with_offset(&mut c).await;
    c.send("41").await;
    wait_until(WITHIN, "disconnect", || t.disconnects.len() == 1).await;
    c.close().await;
    let mut c = t.server.client().await;
    let body = connect(&mut c, json!({ "pid": pid, "offset": offset })).await;
    assert_ne!(body["sid"], json!(sid), "client namespace disconnect");
    let pid = body["pid"].as_str().unwrap().to_owned();
    let sid = body["sid"].as_str().unwrap().to_owned();

    // The server kicks the socket.
    t.emit("r", 1);
    let (_, offset) = next_with_offset(&mut c).await;
    c.send(r#"42["kick"]"#).await;
    wait_until(WITHIN, "kick", || t.disconnects.len() == 2).await;
    assert_eq!(
        t.disconnects.get()[1],
        DisconnectReason::ServerNamespaceDisconnect
    );
    let mut c = t.server.client().await;
    let body = connect(&mut c, json!({ "pid": pid, "offset": offset })).await;
    assert_ne!(body["sid"], json!(sid), "server namespace disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offset_that_fell_off_the_log_is_not_recovered() {
    let t = start(Some(
        ConnectionStateRecovery::default().max_stored_packets(5),
    ))
    .await;
    let (mut c, sid, pid) = t.fresh().await;
    t.emit("r", 0);
    let (_, offset) = next_with_offset(&mut c).await;
    t.drop_transport(c).await;
    for n in 1..=5 {
        t.emit("r", n);
    }
    // Offset 0 is gone from a log of 5: a replay of 1..=5 would look complete, but the log cannot
    // tell, so there is none.
    let mut c = t.server.client().await;
    let body = connect(&mut c, json!({ "pid": pid, "offset": offset })).await;
    assert_ne!(body["sid"], json!(sid));
    assert!(c.recv_within(Duration::from_millis(200)).await.is_none());

    // Within the cap, the same steps recover.
    let pid = body["pid"].as_str().unwrap().to_owned();
    let sid = body["sid"].as_str().unwrap().to_owned();
    t.emit("r", 10);
    let (_, offset) = next_with_offset(&mut c).await;
    t.drop_transport(c).await;
    for n in 11..=14 {
        t.emit("r", n);
    }
    let mut c = t.server.client().await;
    let body = connect(&mut c, json!({ "pid": pid, "offset": offset })).await;
    assert_eq!(body["sid"], json!(sid));
    for want in 11..=14 {
        assert_eq!(next_with_offset(&mut c).await.0, want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn middlewares_run_on_recovery_when_asked() {
    let t = start(Some(
        ConnectionStateRecovery::default().skip_middlewares(false),
    ))
    .await;
    let (mut c, sid, pid) = t.fresh().await;
    t.emit("r", 0);
    let (_, offset) = next_with_offset(&mut c).await;
    t.drop_transport(c).await;
    let mut c = t.server.client().await;
    let body = connect(&mut c, json!({ "pid": pid, "offset": offset })).await;
    assert_eq!(body["sid"], json!(sid));
    assert_eq!(t.middleware_runs.get(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_plain_broadcasts_carry_an_offset() {
    let t = start(on()).await;
    let (mut c, sid, _) = t.fresh().await;
    let socket = t.server.io.of("/").socket(&sid).unwrap();
    socket.emit("n", &1).unwrap();
    assert_eq!(next_n(&mut c).await, vec![json!(1)], "socket.emit: none");
    t.server.io.volatile().emit("n", &2).unwrap();
    assert_eq!(next_n(&mut c).await, vec![json!(2)], "volatile: none");
    let io = t.server.io.clone();
    let acks = tokio::spawn(async move {
        io.timeout(Duration::from_millis(500))
            .emit_with_ack("n", &3)
            .await
    });
    let frame = c.recv_text().await;
    assert!(
        frame.starts_with("42") && frame.ends_with(r#"["n",3]"#),
        "with ack: none, {frame}"
    );
    let id = &frame[2..frame.len() - r#"["n",3]"#.len()];
    c.send(&format!("43{id}[\"ok\"]")).await;
    let acks = acks.await.unwrap().unwrap();
    assert_eq!(acks.len(), 1);
    t.emit("r", 4);
    assert_eq!(next_with_offset(&mut c).await.0, 4, "to(room).emit: one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_by_default_no_pid_no_offset() {
    let t = start(None).await;
    let mut c = t.server.client().await;
    let body = connect(&mut c, json!({ "pid": "x", "offset": "0" })).await;
    assert!(body.get("pid").is_none(), "{body}");
    t.emit("r", 1);
    assert_eq!(next_n(&mut c).await, vec![json!(1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_longer_than_the_connection_queue_waits_for_room() {
    let mut config = config();
    config.engine.max_buffered_packets = 16;
    let t = start_with(on(), config).await;
    let (mut c, sid, pid) = t.fresh().await;
    t.emit("r", 0);
    let (_, offset) = next_with_offset(&mut c).await;
    t.drop_transport(c).await;
    for n in 1..=200 {
        t.emit("r", n);
    }
    let mut c = t.server.client().await;
    let body = connect(&mut c, json!({ "pid": pid, "offset": offset })).await;
    assert_eq!(body["sid"], json!(sid));
    for want in 1..=200 {
        assert_eq!(next_with_offset(&mut c).await.0, want);
    }
    t.emit("r", 201);
    assert_eq!(next_with_offset(&mut c).await.0, 201);
    assert_eq!(t.disconnects.len(), 1, "not closed as a slow consumer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_middleware_refusing_a_restored_socket_leaves_nothing_behind() {
    let t = start(Some(
        ConnectionStateRecovery::default().skip_middlewares(false),
    ))
    .await;
    t.server.io.use_middleware(|s: Socket| async move {
        if s.handshake().auth.get("refuse").is_some() {
            Err(ConnectError::new("refused"))
        } else {
            Ok(())
        }
    });
    let (mut c, sid, pid) = t.fresh().await;
    t.emit("r", 0);
    let (_, offset) = next_with_offset(&mut c).await;
    t.drop_transport(c).await;
    assert_eq!(t.server.io.to("r").count().await.unwrap(), 0);

    let mut c = t.server.client().await;
    c.send(&format!(
        "40{}",
        json!({ "pid": pid, "offset": offset, "refuse": true })
    ))
    .await;
    let answer = c.recv_text().await;
    assert!(
        answer.starts_with("44"),
        "CONNECT_ERROR expected, got {answer}"
    );
    // The restored session had put the socket back into its rooms: refused, it left them again.
    assert_eq!(t.server.io.to("r").count().await.unwrap(), 0);
    assert!(t.server.io.of("/").socket(&sid).is_none());
    t.emit("r", 1);
    assert!(c.recv_within(Duration::from_millis(200)).await.is_none());
}
