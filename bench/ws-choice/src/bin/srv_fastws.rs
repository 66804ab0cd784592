//! Echo server: hyper 1 + fastwebsockets' `upgrade::upgrade`.
use fastwebsockets::{FragmentCollector, Frame, OpCode, WebSocketError as E, upgrade};
use hyper::{Request, body::Incoming};
use ws_choice::{MAX_MSG, Resp, args, serve, status};

async fn handle(mut req: Request<Incoming>, map_errors: bool) -> Result<Resp, std::convert::Infallible> {
    // upgrade() checks Sec-WebSocket-Key/Version only (not Connection/Upgrade);
    // is_upgrade_request covers the rest so both servers validate the same.
    if !upgrade::is_upgrade_request(&req) {
        return Ok(status(400));
    }
    let Ok((resp, fut)) = upgrade::upgrade(&mut req) else { return Ok(status(400)) };
    tokio::spawn(async move {
        let Ok(mut ws) = fut.await else { return };
        ws.set_max_message_size(MAX_MSG); // per frame; auto_pong/auto_close default on
        // FragmentCollector reassembles fragmented messages (the app sees
        // whole messages, like tungstenite) and validates UTF-8 across them.
        let mut ws = FragmentCollector::new(ws);
        loop {
            match ws.read_frame().await {
                Ok(f) => match f.opcode {
                    OpCode::Text | OpCode::Binary => {
                        if ws.write_frame(f).await.is_err() { return }
                    }
                    OpCode::Close => return, // close reply already sent by auto_close
                    _ => {}
                },
                Err(e) => {
                    if map_errors {
                        let code = match e {
                            E::InvalidUTF8 => 1007,
                            E::FrameTooLarge => 1009,
                            E::IoError(_) | E::UnexpectedEOF | E::ConnectionClosed => return,
                            _ => 1002, // reserved bits, control frame rules, fragments, close codes
                        };
                        let _ = ws.write_frame(Frame::close(code, b"")).await;
                    }
                    return;
                }
            }
        }
    });
    Ok(resp)
}

fn main() {
    let (port, map_errors) = args();
    serve(port, move |req| handle(req, map_errors));
}
