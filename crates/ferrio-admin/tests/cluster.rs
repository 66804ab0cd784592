//! Two instrumented ferrio nodes on one Redis: the admin UI connected to one node sees the other node's
//! stats and sockets, and its disconnect action reaches a client of the other node.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferrio::{Io, IoConfig};
use ferrio_admin::{AdminOptions, Auth, instrument};
use ferrio_client::{ClientOptions, Socket};
use serde_json::json;
use tokio::sync::mpsc;

/// A child process killed (and reaped) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private, non-persistent redis-server; None when redis-server is not installed.
fn start_redis() -> Option<(Proc, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match child {
        Ok(c) => Proc(c),
        Err(e) => {
            eprintln!("skipping: cannot start redis-server ({e})");
            return None;
        }
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((child, format!("redis://127.0.0.1:{port}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("redis-server did not come up on port {port}");
}

async fn node(redis: &str, id: &str) -> (Io, String, ferrio_redis::RedisAdapterHandle) {
    let handle = ferrio_redis::RedisAdapterHandle::connect(redis, Default::default())
        .await
        .expect("redis adapter");
    let io = Io::new(IoConfig::builder().adapter(handle.factory()).build());
    let mut options = AdminOptions::new(Auth::None);
    options.server_id = Some(id.into());
    options.server_stats_interval = Duration::from_millis(100);
    instrument(&io, options).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = io.clone();
    tokio::spawn(async move { served.serve(listener).await });
    (io, url, handle)
}

fn options() -> ClientOptions {
    ClientOptions::builder()
        .force_new(true)
        .reconnection(false)
        .build()
}

fn all_events(socket: &Socket) -> mpsc::UnboundedReceiver<(String, serde_json::Value)> {
    let (tx, rx) = mpsc::unbounded_channel();
    socket.on_any(move |_s, event, args| {
        let _ = tx.send((event.to_owned(), serde_json::to_value(args).unwrap()));
    });
    rx
}

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
    for _ in 0..1000 {
        if let Some(id) = socket.id().filter(|_| socket.connected()) {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not connected");
}

#[tokio::test]
async fn the_admin_ui_on_one_node_sees_and_acts_on_the_other() {
    let Some((_redis, redis)) = start_redis() else {
        return;
    };
    let (_a, url_a, handle_a) = node(&redis, "node-a").await;
    let (_b, url_b, handle_b) = node(&redis, "node-b").await;

    let admin = ferrio_client::connect(&format!("{url_a}/admin"), options());
    let mut rx = all_events(&admin);
    next(&mut rx, "server_stats", |s| s[0]["serverId"] == "node-b").await;
    next(&mut rx, "server_stats", |s| s[0]["serverId"] == "node-a").await;

    // A client of node B: node B's instrumentation tells node A's admin socket.
    let client = ferrio_client::connect(&url_b, options());
    let id = connected(&client).await;
    let got = next(&mut rx, "socket_connected", |a| a[0]["id"] == json!(id)).await;
    assert_eq!(got[0]["nsp"], "/");

    // A second login on node A lists it, with the client id node B stored in its data.
    let again = ferrio_client::connect(&format!("{url_a}/admin"), options());
    let mut rx2 = all_events(&again);
    let all = next(&mut rx2, "all_sockets", |_| true).await;
    let listed = all[0]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == json!(id))
        .unwrap_or_else(|| panic!("{id} not in {all}"))
        .clone();
    assert_eq!(
        listed["clientId"].as_str().map(str::len),
        Some(12),
        "{listed}"
    );
    assert_eq!(
        listed["data"],
        json!({}),
        "the instrumentation's own data stays hidden"
    );

    // The disconnect action from node A reaches the client on node B.
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
    next(&mut rx, "socket_disconnected", |a| a[1] == json!(id)).await;
    admin.disconnect();
    again.disconnect();
    handle_a.close();
    handle_b.close();
}
