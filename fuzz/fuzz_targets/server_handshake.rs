//! The server's reading of a handshake: the request line's query (`EIO`, `transport`, `sid`, the rest
//! kept for the socket's handshake) and the headers (Origin against CORS, the preflight's requested
//! headers, the websocket upgrade headers, every header as the socket's handshake sees it), through
//! the public `Engine::handle` of a Socket.IO server (`Io`) with a CORS list and a dynamic namespace.
//! When the handshake succeeds, a CONNECT with an auth payload from the input follows, so that the
//! socket's handshake (query pairs, headers as text, origin and host) is built from the same bytes.
//!
//! The input is split on 0xff: the first segment is a method selector byte and the request target, then
//! header names and values alternate (pairs that are not valid header bytes are left out, as the HTTP
//! server would refuse them); an odd last segment is the CONNECT payload. Every refusal must be the
//! official answer: 400/403 with `{"code":0..=5,"message":…}` JSON (or 413, 404).
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use ferrio::engine::{Cors, RemoteAddr};
use ferrio::{Io, IoConfig};
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

fn server() -> &'static Io {
    static IO: OnceLock<Io> = OnceLock::new();
    IO.get_or_init(|| {
        let _guard = runtime().enter();
        let io = Io::new(
            IoConfig::builder()
                .cors(Cors::origins(["https://app.example"]))
                .serve_client(false)
                .build(),
        );
        io.of_regex(regex::Regex::new(r"^/dyn-\d+$").unwrap());
        io
    })
}

async fn send(io: &Io, req: Request<Full<Bytes>>) -> (u16, Bytes) {
    let res = io.engine().handle(req).await;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    if status == 400 || status == 403 {
        let v: serde_json::Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {body:?}"));
        let code = v["code"].as_u64().expect("code");
        assert!(code <= 5, "unofficial code {code}");
        assert!(v["message"].is_string(), "{v}");
    } else {
        assert!(
            matches!(status, 200 | 204 | 404 | 413),
            "unexpected status {status}"
        );
    }
    (status, body)
}

fuzz_target!(|data: &[u8]| {
    let mut segments = data.split(|&b| b == 0xff);
    let Some(first) = segments.next() else { return };
    let Some((&m, target)) = first.split_first() else {
        return;
    };
    let method = match m % 4 {
        0 | 1 => Method::GET,
        2 => Method::OPTIONS,
        _ => Method::POST,
    };
    let rest: Vec<&[u8]> = segments.collect();
    let (pairs, auth) = if rest.len() % 2 == 1 {
        (&rest[..rest.len() - 1], rest.last().copied())
    } else {
        (&rest[..], None)
    };
    let mut builder = Request::builder().method(method).uri(target);
    for p in pairs.chunks(2) {
        if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(p[0]), HeaderValue::from_bytes(p[1])) {
            builder = builder.header(k, v);
        }
    }
    let Ok(mut req) = builder.body(Full::new(Bytes::new())) else {
        return;
    };
    req.extensions_mut()
        .insert(RemoteAddr("127.0.0.1:4000".parse().unwrap()));
    let io = server();
    runtime().block_on(async {
        let (status, body) = send(io, req).await;
        let sid = (status == 200 && body.starts_with(b"0{"))
            .then(|| serde_json::from_slice::<serde_json::Value>(&body[1..]).ok())
            .flatten()
            .and_then(|v| v["sid"].as_str().map(str::to_owned));
        if let Some(sid) = sid {
            let mut connect = b"40".to_vec();
            connect.extend_from_slice(auth.unwrap_or_default());
            let post = Request::post(format!(
                "/socket.io/?EIO=4&transport=polling&sid={sid}"
            ))
            .header("content-type", "text/plain;charset=UTF-8")
            .body(Full::new(Bytes::from(connect)))
            .unwrap();
            send(io, post).await;
            // Let the socket's task run its handshake.
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
        }
        io.engine().close();
        tokio::task::yield_now().await;
    });
});
