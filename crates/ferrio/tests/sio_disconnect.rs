//! Disconnect reasons, as the official server names them, and the `disconnecting` / `disconnect` order.

mod sio_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrio::adapter::Room;
use ferrio::{DisconnectReason, Event, Socket};
use sio_common::*;

const WITHIN: Duration = Duration::from_secs(3);

/// What the disconnect handlers of a socket saw: (phase, reason, rooms at that time).
type Seen = Log<(&'static str, DisconnectReason, Vec<Room>)>;

/// A server whose sockets (on `/` and `/b`) join room "r1", record their `disconnecting` and
/// `disconnect` calls, and disconnect themselves on the `kick` (namespace) and `kick-all` (connection)
/// events.
async fn recording_server() -> (TestServer, Seen) {
    let server = TestServer::start(config()).await;
    install_echo(&server.io);
    let seen = Seen::new();
    for nsp in ["/", "/b"] {
        let s = seen.clone();
        server.io.of(nsp).on_connection(move |socket: Socket| {
            let s = s.clone();
            async move {
                socket.join(["r1"]).unwrap();
                let s1 = s.clone();
                socket.on_disconnecting(move |sock: Socket, reason| {
                    let s = s1.clone();
                    async move { s.push(("disconnecting", reason, sorted(sock.rooms()))) }
                });
                socket.on_disconnect(move |sock: Socket, reason| {
                    let s = s.clone();
                    async move { s.push(("disconnect", reason, sorted(sock.rooms()))) }
                });
                socket.on("kick", |sock: Socket, _ev: Event| async move {
                    sock.disconnect(false);
                });
                socket.on("kick-all", |sock: Socket, _ev: Event| async move {
                    sock.disconnect(true);
                });
            }
        });
    }
    (server, seen)
}

fn sorted(mut rooms: Vec<Room>) -> Vec<Room> {
    rooms.sort();
    rooms
}

fn room(s: &str) -> Room {
    Arc::from(s)
}

/// Waits for `n` handler calls and checks they all carry `reason`.
async fn expect_reasons(seen: &Seen, n: usize, reason: DisconnectReason) {
    wait_until(WITHIN, "disconnect handlers", || seen.len() >= n).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let got = seen.get();
    assert_eq!(got.len(), n, "{got:?}");
    for (phase, r, _) in &got {
        assert_eq!(*r, reason, "{phase}: {got:?}");
        assert_eq!(r.as_str(), reason.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_namespace_disconnect() {
    let (server, seen) = recording_server().await;
    let mut c = server.client().await;
    let sid = c.join("/").await;
    c.send("41").await;
    expect_reasons(&seen, 2, DisconnectReason::ClientNamespaceDisconnect).await;
    assert_eq!(
        DisconnectReason::ClientNamespaceDisconnect.as_str(),
        "client namespace disconnect"
    );
    // `disconnecting` still sees the rooms, `disconnect` sees none.
    let got = seen.get();
    assert_eq!(got[0].0, "disconnecting");
    assert_eq!(got[0].2, sorted(vec![room(&sid), room("r1")]));
    assert_eq!(got[1].0, "disconnect");
    assert!(got[1].2.is_empty(), "{:?}", got[1].2);
    assert!(server.io.of("/").all_rooms().await.is_empty());
    // The connection stays, and may join again.
    c.expect_open(Duration::from_millis(50)).await;
    c.join("/").await;
    c.assert_echo(1, "1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_namespace_disconnect() {
    let (server, seen) = recording_server().await;
    let mut c = server.joined().await;
    c.join("/b").await;
    c.send(r#"42["kick"]"#).await;
    assert_eq!(c.recv_text().await, "41");
    expect_reasons(&seen, 2, DisconnectReason::ServerNamespaceDisconnect).await;
    assert_eq!(
        DisconnectReason::ServerNamespaceDisconnect.as_str(),
        "server namespace disconnect"
    );
    // Only `/` was left: `/b` and the connection go on.
    c.expect_open(Duration::from_millis(50)).await;
    c.send(r#"42/b,7["x"]"#).await;
    c.expect_open(Duration::from_millis(50)).await;
    assert_eq!(server.io.of("/b").sockets().len(), 1);
    assert!(server.io.of("/").sockets().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_disconnect_with_close_ends_every_namespace() {
    let (server, seen) = recording_server().await;
    let mut c = server.joined().await;
    c.join("/b").await;
    c.send(r#"42["kick-all"]"#).await;
    let frames = c.expect_closed(WITHIN).await;
    let mut texts: Vec<String> = frames
        .into_iter()
        .filter_map(|f| match f {
            Incoming::Text(t) => Some(t),
            _ => None,
        })
        .collect();
    texts.sort();
    assert_eq!(texts, vec!["41".to_owned(), "41/b,".to_owned()]);
    expect_reasons(&seen, 4, DisconnectReason::ServerNamespaceDisconnect).await;
    server.wait_clients(0, WITHIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transport_close() {
    let (server, seen) = recording_server().await;
    let mut c = server.joined().await;
    c.join("/b").await;
    c.close().await;
    expect_reasons(&seen, 4, DisconnectReason::TransportClose).await;
    assert_eq!(DisconnectReason::TransportClose.as_str(), "transport close");
    server.wait_clients(0, WITHIN).await;
    assert!(server.io.of("/").all_rooms().await.is_empty());
    assert!(server.io.of("/b").all_rooms().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tcp_reset_is_a_transport_close_or_error() {
    let (server, seen) = recording_server().await;
    let c = server.joined().await;
    // Drop the client without a close frame.
    drop(c);
    wait_until(WITHIN, "disconnect handlers", || seen.len() >= 2).await;
    let got = seen.get();
    assert!(
        got.iter().all(|(_, r, _)| matches!(
            r,
            DisconnectReason::TransportClose | DisconnectReason::TransportError
        )),
        "{got:?}"
    );
    server.wait_clients(0, WITHIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ping_timeout() {
    let (server, seen) = recording_server().await;
    let mut c = server.joined().await;
    c.answer_pings(false);
    let start = Instant::now();
    c.expect_closed(WITHIN).await;
    let elapsed = start.elapsed();
    expect_reasons(&seen, 2, DisconnectReason::PingTimeout).await;
    assert_eq!(DisconnectReason::PingTimeout.as_str(), "ping timeout");
    assert!(
        elapsed >= PING_TIMEOUT,
        "closed after {elapsed:?}, before the ping timeout"
    );
    assert!(c.pings() >= 1);
    server.wait_clients(0, WITHIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answered_pings_keep_the_connection() {
    let (server, seen) = recording_server().await;
    let mut c = server.joined().await;
    c.expect_open(Duration::from_millis(1200)).await;
    assert!(c.pings() >= 3, "{} pings", c.pings());
    assert!(seen.is_empty());
    c.assert_echo(1, "1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_shutting_down() {
    let (server, seen) = recording_server().await;
    let mut a = server.joined().await;
    a.join("/b").await;
    let mut b = server.joined().await;
    server.io.close().await;
    a.expect_closed(WITHIN).await;
    b.expect_closed(WITHIN).await;
    expect_reasons(&seen, 6, DisconnectReason::ServerShuttingDown).await;
    assert_eq!(
        DisconnectReason::ServerShuttingDown.as_str(),
        "server shutting down"
    );
    server.wait_clients(0, WITHIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parse_error_reason() {
    let (server, seen) = recording_server().await;
    let mut c = server.joined().await;
    c.send("42[true]").await;
    c.expect_closed(WITHIN).await;
    wait_until(WITHIN, "disconnect handlers", || seen.len() >= 2).await;
    let got = seen.get();
    assert_eq!(got.len(), 2, "{got:?}");
    // ferrio says "parse error"; the official server reports "forced close" here. Either is acceptable.
    assert!(
        got.iter().all(|(_, r, _)| matches!(
            r,
            DisconnectReason::ParseError | DisconnectReason::ForcedClose
        )),
        "{got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn packet_for_a_namespace_not_joined_is_a_forced_server_close() {
    let (server, seen) = recording_server().await;
    let mut c = server.joined().await;
    c.send(r#"42/b,["x"]"#).await;
    c.expect_closed(WITHIN).await;
    expect_reasons(&seen, 2, DisconnectReason::ForcedServerClose).await;
    assert_eq!(
        DisconnectReason::ForcedServerClose.as_str(),
        "forced server close"
    );
}

/// `41` then an immediate close: the handlers run once, with the first reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disconnect_handlers_run_once() {
    let (server, seen) = recording_server().await;
    let c = server.joined().await;
    c.send("41").await;
    c.close().await;
    server.wait_clients(0, WITHIN).await;
    expect_reasons(&seen, 2, DisconnectReason::ClientNamespaceDisconnect).await;
}

/// A socket that left a room by itself is not listed in it at `disconnecting`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disconnecting_sees_current_rooms() {
    let server = TestServer::start(config()).await;
    let seen = Seen::new();
    let s = seen.clone();
    server.io.on_connection(move |socket: Socket| {
        let s = s.clone();
        async move {
            socket.join(["a", "b", "c"]).unwrap();
            socket.leave("b");
            socket.on_disconnecting(move |sock: Socket, reason| {
                let s = s.clone();
                async move { s.push(("disconnecting", reason, sorted(sock.rooms()))) }
            });
        }
    });
    let mut c = server.client().await;
    let sid = c.join("/").await;
    c.send("41").await;
    wait_until(WITHIN, "disconnecting", || seen.len() == 1).await;
    assert_eq!(
        seen.get()[0].2,
        sorted(vec![room(&sid), room("a"), room("c")])
    );
}
