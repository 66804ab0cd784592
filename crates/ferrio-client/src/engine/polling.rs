//! HTTP long-polling: one keep-alive HTTP/1.1 connection per direction (the GET loop and the POST writer
//! run concurrently), reconnected when the server closes it.

use bytes::Bytes;
use ferrio_proto::engine::{ClientConfig, ClientSession, TransportKind};
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use super::driver::{Opened, Transport};
use super::endpoint::Endpoint;
use super::{EngineError, MIN_INCOMING_LIMIT};

/// One HTTP/1.1 connection to the server, opened on first use and reopened after the server closed it.
#[derive(Debug, Default)]
pub(crate) struct HttpConn {
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// What a request failed with: an error status or a transport error.
#[derive(Debug)]
pub(crate) enum RequestError {
    /// The server answered with this status.
    Status(StatusCode, String),
    /// The body is larger than allowed.
    TooLarge,
    /// Connection, TLS or HTTP failure.
    Transport(EngineError),
}

impl From<RequestError> for EngineError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Status(status, body) => EngineError::Http { status, body },
            RequestError::TooLarge => {
                EngineError::Handshake("response larger than the limit".to_string())
            }
            RequestError::Transport(e) => e,
        }
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::Status(s, body) => write!(f, "http status {s}: {body}"),
            RequestError::TooLarge => f.write_str("payload too large"),
            RequestError::Transport(e) => write!(f, "{e}"),
        }
    }
}

impl HttpConn {
    async fn connect(endpoint: &Endpoint) -> Result<SendRequest<Full<Bytes>>, EngineError> {
        let io = endpoint.open_stream().await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| EngineError::Hyper(e.to_string()))?;
        // The connection ends by itself once `sender` is dropped and no request is in flight.
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!(error = %e, "polling connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Sends one request, returns the body of a 2xx answer (at most `limit` bytes).
    pub(crate) async fn request(
        &mut self,
        endpoint: &Endpoint,
        method: Method,
        sid: Option<&str>,
        body: Bytes,
        limit: usize,
    ) -> Result<Bytes, RequestError> {
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(endpoint.path_and_query(TransportKind::Polling, sid))
            .header(header::HOST, endpoint.authority());
        for (name, value) in &endpoint.headers {
            builder = builder.header(name, value);
        }
        if method == Method::POST {
            builder = builder.header(header::CONTENT_TYPE, "text/plain;charset=UTF-8");
        }
        let mut req = builder
            .body(Full::new(body))
            .map_err(|e| RequestError::Transport(EngineError::InvalidUrl(e.to_string())))?;

        // A kept-alive connection the server closed meanwhile fails before the request is written: the
        // request then goes once more, on a new connection.
        let response = loop {
            let reused = match &self.sender {
                Some(s) if !s.is_closed() => true,
                _ => {
                    self.sender = Some(
                        Self::connect(endpoint)
                            .await
                            .map_err(RequestError::Transport)?,
                    );
                    false
                }
            };
            let sender = self
                .sender
                .as_mut()
                .ok_or(RequestError::Transport(EngineError::Closed))?;
            if sender.ready().await.is_err() {
                self.sender = None;
                if reused {
                    continue;
                }
                return Err(RequestError::Transport(EngineError::Hyper(
                    "connection closed".into(),
                )));
            }
            match sender.try_send_request(req).await {
                Ok(res) => break res,
                Err(mut e) => {
                    self.sender = None;
                    match e.take_message() {
                        Some(r) if reused => req = r,
                        _ => {
                            return Err(RequestError::Transport(EngineError::Hyper(
                                e.into_error().to_string(),
                            )));
                        }
                    }
                }
            }
        };
        let status = response.status();
        let collected = Limited::new(response.into_body(), limit).collect().await;
        let body = match collected {
            Ok(b) => b.to_bytes(),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                self.sender = None;
                return Err(RequestError::TooLarge);
            }
            Err(e) => {
                self.sender = None;
                return Err(RequestError::Transport(EngineError::Hyper(e.to_string())));
            }
        };
        if !status.is_success() {
            return Err(RequestError::Status(
                status,
                String::from_utf8_lossy(&body).into_owned(),
            ));
        }
        Ok(body)
    }
}

/// Opens a session with a polling GET; the payload starts with the open packet and may hold more.
pub(crate) async fn handshake(
    endpoint: &Endpoint,
    config: ClientConfig,
) -> Result<Opened, EngineError> {
    let mut conn = HttpConn::default();
    let body = conn
        .request(
            endpoint,
            Method::GET,
            None,
            Bytes::new(),
            MIN_INCOMING_LIMIT,
        )
        .await?;
    let now = tokio::time::Instant::now().into_std();
    let session = ClientSession::from_payload(now, config, body)
        .map_err(|e| EngineError::Handshake(e.to_string()))?;
    Ok(Opened {
        session,
        transport: Transport::Polling(conn),
    })
}
