//! Engine.IO v3 beside v4 (`allow_eio3`): polling string and binary payloads, `b64`, JSONP, the
//! client's pings, websocket frames, the upgrade, and bad input of each kind.

mod common;

use std::time::Duration;

use common::*;
use ferrio::engine::{EngineConfig, EngineConfigBuilder, EngineData};

fn v3_config() -> EngineConfig {
    EngineConfigBuilder::from(quiet_config())
        .allow_eio3(true)
        .build()
}

fn url(sid: &str, extra: &str) -> String {
    format!("{PATH}?EIO=3&transport=polling&sid={sid}{extra}")
}

/// A v3 polling handshake (`extra` adds query parameters); returns the sid and the response.
async fn handshake3(s: &Server, extra: &str) -> (String, HttpResponse) {
    let res = request(
        s.addr,
        "GET",
        &format!("{PATH}?EIO=3&transport=polling{extra}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(res.status, 200, "handshake: {:?}", res.text());
    let text = res.text();
    let json = text
        .find(":0")
        .map(|i| &text[i + 2..])
        .expect("a length-prefixed open packet");
    let json = json
        .strip_suffix("\");")
        .unwrap_or(json)
        .replace("\\\"", "\"");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    (v["sid"].as_str().unwrap().to_owned(), res)
}

async fn get3(s: &Server, sid: &str, extra: &str) -> HttpResponse {
    request(s.addr, "GET", &url(sid, extra), &[], b"").await
}

async fn post3(s: &Server, sid: &str, body: &[u8], content_type: &str) -> HttpResponse {
    request(
        s.addr,
        "POST",
        &url(sid, ""),
        &[("Content-Type", content_type)],
        body,
    )
    .await
}

const TEXT: &str = "text/plain;charset=UTF-8";
const OCTETS: &str = "application/octet-stream";
const FORM: &str = "application/x-www-form-urlencoded";

#[tokio::test]
async fn eio3_is_refused_unless_allowed() {
    let off = Server::start(quiet_config()).await;
    for eio in ["EIO=3", "EIO=abc", "EIO=", ""] {
        let res = request(
            off.addr,
            "GET",
            &format!("{PATH}?{eio}&transport=polling"),
            &[],
            b"",
        )
        .await;
        res.assert_error(400, 5, "Unsupported protocol version");
    }
    // Allowing v3 does not make a missing or malformed version one.
    let on = Server::start(v3_config()).await;
    for eio in ["EIO=abc", "EIO=", "", "EIO=2", "EIO=5"] {
        let res = request(
            on.addr,
            "GET",
            &format!("{PATH}?{eio}&transport=polling"),
            &[],
            b"",
        )
        .await;
        res.assert_error(400, 5, "Unsupported protocol version");
    }
    assert_eq!(on.engine.clients_count(), 0);
}

#[tokio::test]
async fn handshake_is_a_length_prefixed_open_packet() {
    let s = Server::start(v3_config()).await;
    let (sid, res) = handshake3(&s, "").await;
    let text = res.text();
    let (len, packet) = text.split_once(':').unwrap();
    assert_eq!(len.parse::<usize>().unwrap(), packet.len());
    let open: serde_json::Value = serde_json::from_str(&packet[1..]).unwrap();
    assert_eq!(open["sid"], sid.as_str());
    assert_eq!(open["upgrades"], serde_json::json!(["websocket"]));
    assert_eq!(open["pingInterval"], 20_000);
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("text/plain; charset=UTF-8")
    );
    // v4 still works on the same server, in its own format.
    let v4 = handshake(s.addr).await;
    assert_eq!(post(s.addr, &v4, b"4a\x1e4b").await.status, 200);
    assert_eq!(poll(s.addr, &v4).await.body, b"4a\x1e4b");
}

#[tokio::test]
async fn string_payloads_count_utf16_units() {
    let s = Server::start(v3_config()).await;
    let (sid, _) = handshake3(&s, "&b64=1").await;
    let body = "6:4hello4:4é😀6:4test2";
    let res = post3(&s, &sid, body.as_bytes(), TEXT).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "ok");
    assert_eq!(
        s.messages(&sid),
        vec![
            EngineData::Text("hello".into()),
            EngineData::Text("é😀".into()),
            EngineData::Text("test2".into()),
        ]
    );
    assert_eq!(get3(&s, &sid, "").await.text(), body);
}

#[tokio::test]
async fn binary_data_as_base64_or_binary_payloads() {
    let s = Server::start(v3_config()).await;
    // A client without binary support gets base64 in a string payload.
    let (sid, _) = handshake3(&s, "&b64=1").await;
    assert_eq!(
        post3(&s, &sid, b"6:4hello10:b4AQIDBA==", TEXT).await.status,
        200
    );
    let res = get3(&s, &sid, "").await;
    assert_eq!(res.text(), "6:4hello10:b4AQIDBA==");
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("text/plain; charset=UTF-8")
    );

    // One with binary support gets a binary payload once a packet is binary.
    let (sid, _) = handshake3(&s, "").await;
    assert_eq!(
        post3(&s, &sid, b"6:4hello10:b4AQIDBA==", TEXT).await.status,
        200
    );
    let res = get3(&s, &sid, "").await;
    assert_eq!(res.header("content-type").as_deref(), Some(OCTETS));
    assert_eq!(
        res.body,
        [
            0, 6, 255, 52, 104, 101, 108, 108, 111, 1, 5, 255, 4, 1, 2, 3, 4
        ]
    );
    // ... and sends binary payloads itself.
    let body = [0, 2, 255, b'4', b'a', 1, 4, 255, 4, 9, 8, 7];
    assert_eq!(post3(&s, &sid, &body, OCTETS).await.status, 200);
    assert_eq!(
        s.messages(&sid)[2..],
        [
            EngineData::Text("a".into()),
            EngineData::Binary(vec![9u8, 8, 7].into()),
        ]
    );
    assert_eq!(get3(&s, &sid, "").await.body, body);
}

#[tokio::test]
async fn client_pings_are_answered_and_their_absence_times_out() {
    let s = Server::start(
        EngineConfigBuilder::from(fast_config())
            .allow_eio3(true)
            .build(),
    )
    .await;
    let (sid, _) = handshake3(&s, "").await;
    // Pinging every 100 ms keeps the session (interval + timeout is 200 ms).
    for _ in 0..4 {
        assert_eq!(post3(&s, &sid, b"1:2", TEXT).await.status, 200);
        assert_eq!(get3(&s, &sid, "").await.text(), "1:3");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(s.close_reasons(&sid).is_empty());
    // The server never pings: a silent client times out.
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(2)).await,
        "ping timeout"
    );

    // A pong from a v3 client breaks the protocol.
    let (sid, _) = handshake3(&s, "").await;
    assert_eq!(post3(&s, &sid, b"1:3", TEXT).await.status, 200);
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(1)).await,
        "transport error"
    );
}

#[tokio::test]
async fn malformed_payloads_close_the_session() {
    let s = Server::start(v3_config()).await;
    let cases: &[(&[u8], &str)] = &[
        (b"abc", TEXT),
        (b"", TEXT),
        (b"5:4a", TEXT),
        (b"2:4", TEXT),
        (b"x:4a", TEXT),
        (b"-1:4", TEXT),
        (b"99999999999999999999:4", TEXT),
        (b"3:4\xff\xfe", TEXT),
        (b"1:9", TEXT),
        (b"3:b4!", TEXT),
        (b"3:4\xc3", TEXT),
        (&[2, 1, 255, b'4'], OCTETS),
        (&[0, 9, 255, b'4'], OCTETS),
        (&[0, 10, 255, b'4'], OCTETS),
        (&[1, 2, 255, 3, 1], OCTETS),
        (&[0, 1, 255, 0xff], OCTETS),
    ];
    for (body, ct) in cases {
        let (sid, _) = handshake3(&s, "").await;
        let res = post3(&s, &sid, body, ct).await;
        res.assert_error(400, 3, "Bad request");
        assert_eq!(
            s.wait_close(&sid, Duration::from_secs(1)).await,
            "parse error",
            "{body:?}"
        );
        assert_unknown_sid(&get3(&s, &sid, "").await);
    }
    assert_eq!(s.engine.clients_count(), 0);
}

#[tokio::test]
async fn oversize_bodies_are_refused_as_in_v4() {
    let s = Server::start(
        EngineConfigBuilder::from(v3_config())
            .max_http_buffer_size(100)
            .build(),
    )
    .await;
    let (sid, _) = handshake3(&s, "").await;
    let mut body = b"101:4".to_vec();
    body.resize(5 + 100, b'a');
    assert_eq!(post3(&s, &sid, &body, TEXT).await.status, 413);
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(1)).await,
        "transport error"
    );
    // A poll answer stays under the limit: many queued messages go out over several polls.
    let (sid, _) = handshake3(&s, "").await;
    let socket = s.engine.socket(&sid).unwrap();
    for i in 0..30 {
        socket.send_text(&format!("message {i:02}")).unwrap();
    }
    let mut got = String::new();
    while got.matches("message").count() < 30 {
        let res = get3(&s, &sid, "").await;
        assert!(res.body.len() <= 100, "{} bytes", res.body.len());
        got.push_str(&res.text());
    }
    assert!(got.starts_with("11:4message 00"), "{got}");
}

#[tokio::test]
async fn jsonp_wraps_answers_and_reads_form_posts() {
    let s = Server::start(v3_config()).await;
    let (sid, res) = handshake3(&s, "&j=7&b64=1").await;
    let text = res.text();
    assert!(
        text.starts_with("___eio[7](\"") && text.ends_with("\");"),
        "{text}"
    );

    // A form post, newline escaped as the client does, and an escaped newline kept.
    let res = post3(&s, &sid, b"d=14%3A4line%5Cnbreak+%5C%5Cn", FORM).await;
    assert_eq!((res.status, res.text().as_str()), (200, "ok"));
    assert_eq!(
        s.messages(&sid),
        vec![EngineData::Text("line\nbreak \\n".into())]
    );
    // The answer is a JavaScript string: quotes, backslashes, newlines, U+2028/9 escaped.
    let answer = get3(&s, &sid, "&j=7").await;
    assert_eq!(answer.text(), "___eio[7](\"14:4line\\nbreak \\\\n\");");
    let socket = s.engine.socket(&sid).unwrap();
    socket.send_text("\"q\"\u{2028}\u{2029}</script>").unwrap();
    socket.send_binary(vec![1u8, 2]).unwrap();
    let answer = get3(&s, &sid, "&j=7").await;
    assert_eq!(
        answer.text(),
        "___eio[7](\"15:4\\\"q\\\"\\u2028\\u2029</script>6:b4AQI=\");"
    );
    assert_eq!(
        answer.header("content-type").as_deref(),
        Some("text/plain; charset=UTF-8")
    );
}

#[tokio::test]
async fn bad_jsonp_input_gets_a_400() {
    let s = Server::start(v3_config()).await;
    for j in ["abc", "", "1x", "-1", "12345678901", "%30"] {
        let res = request(
            s.addr,
            "GET",
            &format!("{PATH}?EIO=3&transport=polling&j={j}"),
            &[],
            b"",
        )
        .await;
        res.assert_error(400, 3, "Bad request");
    }
    assert_eq!(s.engine.clients_count(), 0);
    for body in [&b"x=1"[..], b"d=1&d=2", b"d=%zz", b"d=%ff", b"d=abc", b""] {
        let (sid, _) = handshake3(&s, "&j=0").await;
        let res = post3(&s, &sid, body, FORM).await;
        res.assert_error(400, 3, "Bad request");
        assert_eq!(
            s.wait_close(&sid, Duration::from_secs(1)).await,
            "parse error",
            "{body:?}"
        );
    }
    // A JSONP form over the limit is refused like any body.
    let small = Server::start(
        EngineConfigBuilder::from(v3_config())
            .max_http_buffer_size(50)
            .build(),
    )
    .await;
    let (sid, _) = handshake3(&small, "&j=0").await;
    let body = format!("d={}", "a".repeat(60));
    assert_eq!(post3(&small, &sid, body.as_bytes(), FORM).await.status, 413);
}

#[tokio::test]
async fn jsonp_follows_the_cors_rules_of_polling() {
    let s = Server::start(
        EngineConfigBuilder::from(v3_config())
            .cors(ferrio::engine::Cors::origins(["https://good.example"]))
            .build(),
    )
    .await;
    let res = request(
        s.addr,
        "GET",
        &format!("{PATH}?EIO=3&transport=polling&j=0"),
        &[("Origin", "https://evil.example")],
        b"",
    )
    .await;
    assert_eq!(res.status, 403);
    let res = request(
        s.addr,
        "GET",
        &format!("{PATH}?EIO=3&transport=polling&j=0"),
        &[("Origin", "https://good.example")],
        b"",
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("access-control-allow-origin").as_deref(),
        Some("https://good.example")
    );
}

#[tokio::test]
async fn websocket_frames_carry_the_packet_type() {
    let s = Server::start(v3_config()).await;
    let mut ws = RawWs::connect(s.addr, &format!("{PATH}?EIO=3&transport=websocket"), &[]).await;
    let open = ws.next_text().await.unwrap();
    assert!(open.starts_with("0{"), "{open}");
    ws.send_text("2").await.unwrap();
    assert_eq!(ws.next_text().await.unwrap(), "3");
    ws.send(FIN | OP_BINARY, &[4, 1, 2, 3]).await.unwrap();
    let f = ws.frame().await.unwrap();
    assert_eq!((f.opcode, f.payload), (OP_BINARY, vec![4, 1, 2, 3]));
    // Base64 from the client is binary data all the same.
    ws.send_text("b4AQID").await.unwrap();
    let f = ws.frame().await.unwrap();
    assert_eq!((f.opcode, f.payload), (OP_BINARY, vec![4, 1, 2, 3]));
    // A binary frame that is not a message packet closes the session.
    ws.send(FIN | OP_BINARY, &[2, 1]).await.unwrap();
    assert!(ws.close_code(Duration::from_secs(2)).await.is_some());

    // With b64 on the websocket, binary goes as base64 text.
    let mut ws = RawWs::connect(
        s.addr,
        &format!("{PATH}?EIO=3&transport=websocket&b64=1"),
        &[],
    )
    .await;
    ws.next_text().await.unwrap();
    ws.send(FIN | OP_BINARY, &[4, 1, 2, 3]).await.unwrap();
    assert_eq!(ws.next_text().await.unwrap(), "b4AQID");
}

#[tokio::test]
async fn upgrade_from_polling_to_websocket() {
    let s = Server::start(v3_config()).await;
    let (sid, _) = handshake3(&s, "&b64=1").await;
    let mut ws = RawWs::connect(
        s.addr,
        &format!("{PATH}?EIO=3&transport=websocket&sid={sid}"),
        &[],
    )
    .await;
    ws.send_text("2probe").await.unwrap();
    assert_eq!(ws.next_text().await.unwrap(), "3probe");
    assert_eq!(get3(&s, &sid, "").await.text(), "1:6");
    ws.send_text("5").await.unwrap();
    // The websocket has no b64: binary data goes as binary frames now.
    ws.send(FIN | OP_BINARY, &[4, 7]).await.unwrap();
    let f = ws.frame().await.unwrap();
    assert_eq!((f.opcode, f.payload), (OP_BINARY, vec![4, 7]));
    ws.send_text("2").await.unwrap();
    assert_eq!(ws.next_text().await.unwrap(), "3");
    // Polling after the upgrade is refused.
    assert_eq!(get3(&s, &sid, "").await.status, 400);
}
