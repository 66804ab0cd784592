//! The errors a request can meet, answered exactly as the official server does.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};

/// Why the engine refused an HTTP request or an upgrade. Codes 0–5 are the official Engine.IO codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Code 0: the `transport` query parameter is missing or not an allowed transport.
    #[error("Transport unknown")]
    UnknownTransport,
    /// Code 1: no session has this `sid`.
    #[error("Session ID unknown")]
    UnknownSid,
    /// Code 2: a handshake that is not a GET.
    #[error("Bad handshake method")]
    BadHandshakeMethod,
    /// Code 3: anything else malformed (bad Origin bytes, transport mismatch, bad websocket headers,
    /// overlapping polls, an undecodable body).
    #[error("Bad request")]
    BadRequest,
    /// Code 4: the origin is not allowed, or `allow_request` said no (with its message).
    #[error("{0}")]
    Forbidden(String),
    /// Code 5: an `EIO` version the server does not speak.
    #[error("Unsupported protocol version")]
    UnsupportedProtocolVersion,
    /// The request body is larger than `max_http_buffer_size` (HTTP 413, no JSON code).
    #[error("Payload too large")]
    PayloadTooLarge,
    /// `allow_request` refused with a custom code.
    #[error("{message}")]
    Custom {
        /// Engine.IO code.
        code: u8,
        /// Message.
        message: String,
    },
}

impl RequestError {
    /// The official numeric code.
    pub fn code(&self) -> u8 {
        match self {
            RequestError::UnknownTransport => 0,
            RequestError::UnknownSid => 1,
            RequestError::BadHandshakeMethod => 2,
            RequestError::BadRequest | RequestError::PayloadTooLarge => 3,
            RequestError::Forbidden(_) => 4,
            RequestError::UnsupportedProtocolVersion => 5,
            RequestError::Custom { code, .. } => *code,
        }
    }

    /// The HTTP status: 403 for Forbidden, 413 for an oversized body, 400 otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            RequestError::Forbidden(_) => StatusCode::FORBIDDEN,
            RequestError::Custom { code: 4, .. } => StatusCode::FORBIDDEN,
            RequestError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The response: status, `Content-Type: application/json`, `{"code":N,"message":"…"}`.
    pub(crate) fn into_response(self) -> http::Response<Bytes> {
        crate::telemetry::request_error(self.code());
        let status = self.status();
        let body = if status == StatusCode::PAYLOAD_TOO_LARGE {
            Bytes::new()
        } else {
            let json = serde_json::json!({ "code": self.code(), "message": self.to_string() });
            Bytes::from(json.to_string())
        };
        let mut res = http::Response::new(body);
        *res.status_mut() = status;
        if status != StatusCode::PAYLOAD_TOO_LARGE {
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_bodies() {
        let cases = [
            (
                RequestError::UnknownTransport,
                400,
                r#"{"code":0,"message":"Transport unknown"}"#,
            ),
            (
                RequestError::UnknownSid,
                400,
                r#"{"code":1,"message":"Session ID unknown"}"#,
            ),
            (
                RequestError::BadHandshakeMethod,
                400,
                r#"{"code":2,"message":"Bad handshake method"}"#,
            ),
            (
                RequestError::BadRequest,
                400,
                r#"{"code":3,"message":"Bad request"}"#,
            ),
            (
                RequestError::Forbidden("Forbidden".into()),
                403,
                r#"{"code":4,"message":"Forbidden"}"#,
            ),
            (
                RequestError::UnsupportedProtocolVersion,
                400,
                r#"{"code":5,"message":"Unsupported protocol version"}"#,
            ),
        ];
        for (err, status, body) in cases {
            let res = err.into_response();
            assert_eq!(res.status().as_u16(), status);
            assert_eq!(res.body(), body.as_bytes());
            assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        }
        assert_eq!(RequestError::PayloadTooLarge.into_response().status(), 413);
    }
}
