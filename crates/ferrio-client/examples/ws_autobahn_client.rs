//! The Autobahn|Testsuite client protocol on ferrio-client's websocket (`autobahn/run.sh client`): asks
//! the fuzzing server for the number of cases, runs each one by connecting to
//! `/runCase?case=N&agent=ferrio-client` and echoing every message, then asks for the reports.
//!
//! Usage: `ws_autobahn_client [--client-no-context-takeover] [ws://127.0.0.1:9001]`. The flag adds
//! `client_no_context_takeover` to the offer: cases 13.2, 13.5 and 13.6 have the server accept only
//! offers that carry it (the client's promise to reset its compressor after each message), and the
//! default offer, as `ws` makes it, does not.

use std::time::Duration;

use ferrio_client::engine::{DeflateConfig, RawError, RawWebSocket};
use ferrio_proto::ws::Message;

const AGENT: &str = "ferrio-client";

/// The largest message of the suite is 16 MiB (section 9).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Time allowed for the server to close the connection after the closing handshake.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

async fn connect(base: &str, path: &str) -> Result<RawWebSocket, String> {
    // Offered as the client offers it by default (the Socket.IO client's `perMessageDeflate`), with
    // threshold 0 so that every echo of a compressed message is compressed too: the section 12 cases
    // of kosoku check an uncompressed text echo as a `str` and fail with a Python error, not a verdict.
    let deflate = DeflateConfig {
        threshold: 0,
        client_no_context_takeover: std::env::args().any(|a| a == "--client-no-context-takeover"),
        ..DeflateConfig::default()
    };
    RawWebSocket::connect(&format!("{base}{path}"), MAX_MESSAGE, Some(deflate))
        .await
        .map_err(|e| format!("{path}: {e}"))
}

/// Echoes every message until the connection ends; answers a close with the same code, and a broken
/// rule with the code that names it.
async fn echo(mut ws: RawWebSocket) {
    loop {
        let sent = match ws.next().await {
            Ok(Message::Text(t)) => ws.send_text(&t).await,
            Ok(Message::Binary(b)) => ws.send_binary(&b).await,
            Ok(Message::Close(c)) => {
                let _ = ws.close(c.map(|c| c.code)).await;
                break;
            }
            Ok(_) => Ok(()),
            Err(RawError::Protocol(e)) => {
                let _ = ws.close(Some(e.close_code())).await;
                break;
            }
            Err(_) => return,
        };
        if sent.is_err() {
            return;
        }
    }
    // The server closes the TCP connection first (RFC 6455 section 7.1.1): wait for it.
    let _ = tokio::time::timeout(CLOSE_WAIT, async { while ws.next().await.is_ok() {} }).await;
}

/// The text of the one message the server sends on `path`.
async fn read_text(base: &str, path: &str) -> Result<String, String> {
    let mut ws = connect(base, path).await?;
    let text = match ws.next().await {
        Ok(Message::Text(t)) => t.to_string(),
        other => return Err(format!("{path}: unexpected {other:?}")),
    };
    echo(ws).await;
    Ok(text)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let base = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let count: u32 = read_text(&base, "/getCaseCount")
        .await?
        .trim()
        .parse()
        .map_err(|e| format!("case count: {e}"))?;
    eprintln!("{count} cases");
    for case in 1..=count {
        match connect(&base, &format!("/runCase?case={case}&agent={AGENT}")).await {
            Ok(ws) => echo(ws).await,
            // A case may refuse the handshake on purpose; the server records the verdict.
            Err(e) => eprintln!("case {case}: {e}"),
        }
    }
    let ws = connect(&base, &format!("/updateReports?agent={AGENT}")).await?;
    echo(ws).await;
    Ok(())
}
