//! `EngineHandler::State`: what `on_open` returns is handed to every later call of that session, and
//! dropped once the session closed (the Socket.IO server keeps its `Client` there).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use ferrio::engine::{Engine, EngineCloseReason, EngineData, EngineHandler, Socket};
use parking_lot::Mutex;
use tokio::net::TcpListener;

struct Counting {
    guard: Arc<()>,
    closed: Arc<Mutex<Vec<(String, usize, String)>>>,
}

struct PerSession {
    messages: AtomicUsize,
    _guard: Arc<()>,
}

impl EngineHandler for Counting {
    type State = PerSession;

    fn on_open(&self, _: &Arc<Socket>) -> PerSession {
        PerSession {
            messages: AtomicUsize::new(0),
            _guard: self.guard.clone(),
        }
    }

    fn on_message(&self, socket: &Arc<Socket>, state: &PerSession, _: EngineData) {
        let n = state.messages.fetch_add(1, Ordering::Relaxed) + 1;
        let _ = socket.send_text(&n.to_string());
    }

    fn on_close(&self, socket: &Arc<Socket>, state: &PerSession, reason: EngineCloseReason) {
        self.closed.lock().push((
            socket.id().to_owned(),
            state.messages.load(Ordering::Relaxed),
            reason.to_string(),
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_lives_as_long_as_its_session() {
    let guard = Arc::new(());
    let closed = Arc::new(Mutex::new(Vec::new()));
    let engine = Engine::new(
        quiet_config(),
        Counting {
            guard: guard.clone(),
            closed: closed.clone(),
        },
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = ferrio::EngineService::new(engine.clone(), ferrio::NotFound);
    let server = tokio::spawn(async move { ferrio::serve(listener, service).await });

    let a = handshake(addr).await;
    let b = handshake(addr).await;
    // The test and the handler hold one each, and each session one.
    assert_eq!(Arc::strong_count(&guard), 4, "one state per session");
    // Two messages to a, one to b: each session counts its own.
    let res = request(addr, "POST", &polling_url(&a), &[], b"4x\x1e4y").await;
    assert_eq!(res.status, 200);
    let res = request(addr, "POST", &polling_url(&b), &[], b"4z").await;
    assert_eq!(res.status, 200);
    let res = request(addr, "GET", &polling_url(&a), &[], b"").await;
    assert_eq!(res.text(), "41\x1e42");
    let res = request(addr, "GET", &polling_url(&b), &[], b"").await;
    assert_eq!(res.text(), "41");

    // The client closes a: its state comes to on_close, then goes.
    let res = request(addr, "POST", &polling_url(&a), &[], b"1").await;
    assert_eq!(res.status, 200);
    let ok = eventually(Duration::from_secs(2), || closed.lock().len() == 1).await;
    assert!(ok, "on_close ran");
    assert_eq!(closed.lock()[0], (a, 2, "transport close".to_owned()));
    let ok = eventually(Duration::from_secs(2), || Arc::strong_count(&guard) == 3).await;
    assert!(ok, "the closed session's state was dropped");

    engine.close();
    let ok = eventually(Duration::from_secs(2), || Arc::strong_count(&guard) == 2).await;
    assert!(ok, "every state dropped once every session closed");
    assert_eq!(closed.lock()[1].1, 1);
    server.abort();
}
