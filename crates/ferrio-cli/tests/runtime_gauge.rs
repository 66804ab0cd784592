//! `ferrio serve --metrics` reports the tasks alive on its tokio runtimes, summed over its serving
//! threads (`ferrio_runtime_alive_tasks`), the figure a soak watches for task leaks: it grows with
//! connected clients and comes back down when they leave.

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

async fn alive_tasks(url: &str) -> f64 {
    let (status, body) = get(url, "/metrics");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|l| l.strip_prefix("ferrio_runtime_alive_tasks "))
        .unwrap_or_else(|| panic!("no ferrio_runtime_alive_tasks in {body}"))
        .parse()
        .unwrap()
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
    settle(&url, "tasks freed after the clients left", |n| {
        n <= idle + 2.0
    })
    .await;
    assert!(busy > idle);
}
