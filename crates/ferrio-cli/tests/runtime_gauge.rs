//! `ferrio serve --metrics` reports the tasks alive on its tokio runtimes, summed over its serving
//! threads (`ferrio_runtime_alive_tasks`), the figure a soak watches for task leaks: it grows with
//! connected clients and comes back down when they leave. Also the connections of long-polling
//! sessions that followed their session to its serving thread (`ferrio_connections_moved_total`).

mod common;

use std::time::Duration;

use ferrio_client::ClientOptions;

use common::{Proc, get, serve};

/// The server with its metrics; its stderr is held open for as long as it runs.
fn start_server() -> (Proc, String, std::process::ChildStderr) {
    serve(
        // Three serving threads: the clients spread over them, and the figure counts them all
        // whichever thread answers the scrape.
        &["--metrics", "--log", "warn", "--threads", "3"],
        &[],
        std::path::Path::new("."),
    )
}

fn figure(url: &str, name: &str) -> f64 {
    let (status, body) = get(url, "/metrics");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        .parse()
        .unwrap()
}

async fn alive_tasks(url: &str) -> f64 {
    figure(url, "ferrio_runtime_alive_tasks")
}

async fn settle(url: &str, what: &str, ok: impl Fn(f64) -> bool) -> f64 {
    for _ in 0..200 {
        let n = alive_tasks(url).await;
        if ok(n) {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: {}", alive_tasks(url).await);
}

#[tokio::test]
async fn alive_tasks_follow_the_clients() {
    let (_server, url, _stderr) = start_server();
    let idle = alive_tasks(&url).await;
    assert!(
        idle >= 3.0,
        "an accept loop on each thread at least: {idle}"
    );
    let clients: Vec<_> = (0..20)
        .map(|_| {
            ferrio_client::connect(
                &url,
                ClientOptions::builder()
                    .force_new(true)
                    .reconnection(false)
                    .build(),
            )
        })
        .collect();
    for _ in 0..200 {
        if clients.iter().all(|c| c.connected()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(clients.iter().all(|c| c.connected()));
    // Each connection holds tasks of its own (its transport, its socket).
    let busy = settle(&url, "tasks of 20 clients", |n| n >= idle + 20.0).await;
    for c in &clients {
        c.disconnect();
        c.io().close();
    }
    drop(clients);
    // What stays: each serving thread's deadline task (started by its first session) and the
    // connect-timeout sweeper; and, on a loaded machine, the previous scrape's connection, whose end
    // the thread that served it may not have seen yet. A leak of the clients' tasks is 20 or more.
    settle(&url, "tasks freed after the clients left", |n| {
        n <= idle + 5.0
    })
    .await;
    assert!(busy > idle);
}

/// Long-polling clients on three serving threads: the connections that bring a session's requests to
/// another thread than its handshake's move there after their answer, once each. Every ack still
/// comes back, and more requests move nothing more: the session's requests now all land on its thread.
#[tokio::test]
async fn polling_connections_follow_their_session_once() {
    let (_server, url, _stderr) = start_server();
    assert_eq!(figure(&url, "ferrio_connections_moved_total"), 0.0);
    let clients: Vec<_> = (0..15)
        .map(|_| {
            ferrio_client::connect(
                &url,
                ClientOptions::builder()
                    .transports(vec![ferrio_client::engine::TransportKind::Polling])
                    .force_new(true)
                    .reconnection(false)
                    .build(),
            )
        })
        .collect();
    let round = || async {
        for c in &clients {
            for i in 0..5 {
                let ack = c
                    .timeout(Duration::from_secs(5))
                    .emit_with_ack("echo", &i)
                    .await;
                assert!(ack.is_ok(), "echo {i}: {ack:?}");
            }
        }
    };
    round().await;
    // A client polls on one connection and posts on another; the kernel spreads them over three
    // listeners, so with 15 clients some land away from their session (all at home: 3^-15).
    let moved = figure(&url, "ferrio_connections_moved_total");
    assert!(moved >= 1.0, "{moved}");
    round().await;
    round().await;
    assert_eq!(figure(&url, "ferrio_connections_moved_total"), moved);
    for c in &clients {
        c.disconnect();
    }
}
