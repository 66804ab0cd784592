//! The connection under a client's sockets: an Engine.IO session and the parser that encodes for it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use ferrio_proto::engine::{Frame, Protocol, TransportKind};
use ferrio_proto::socket::{Encoded, Packet, Parser};
use ferrio_proto::value::Value;

use crate::adapter::Handshake;

use crate::engine::Socket as Session;

/// Writes a client's packets; shared by the client and every socket it has (cloning shares it).
#[derive(Clone)]
pub(crate) struct Conn {
    session: Arc<Session>,
    parser: Arc<dyn Parser>,
}

impl Conn {
    pub(crate) fn new(session: Arc<Session>, parser: Arc<dyn Parser>) -> Self {
        Conn { session, parser }
    }

    pub(crate) fn session(&self) -> &Arc<Session> {
        &self.session
    }

    pub(crate) fn id(&self) -> &str {
        self.session.id()
    }

    /// The Engine.IO revision, which fixes the Socket.IO one: v3 carries Socket.IO v4 (socket.io-client
    /// 2.x), v4 carries v5.
    pub(crate) fn protocol(&self) -> Protocol {
        self.session.protocol()
    }

    pub(crate) fn transport(&self) -> TransportKind {
        self.session.transport()
    }

    pub(crate) fn encode(&self, packet: &Packet) -> Encoded {
        self.parser.encode(packet)
    }

    /// The parser, for the packets written from their parts (no `Packet` built).
    pub(crate) fn parser(&self) -> &dyn Parser {
        &*self.parser
    }

    /// Writes pre-encoded frames; returns false when the connection refused them.
    pub(crate) fn write(&self, encoded: &Encoded, volatile: bool) -> bool {
        self.write_with(encoded.head.clone(), &encoded.attachments, volatile, true)
    }

    /// Writes a packet's frames (its head, then its attachments); with `compress` false
    /// (`compress(false)`), a websocket sends them uncompressed. The head is taken by value: a packet
    /// encoded for this connection alone is queued without sharing its bytes (which would cost an
    /// allocation).
    pub(crate) fn write_with(
        &self,
        head: Frame,
        attachments: &[Bytes],
        volatile: bool,
        compress: bool,
    ) -> bool {
        // Only a websocket compresses; on polling the marker would be skipped for nothing.
        if !compress
            && self.session.engine.config.per_message_deflate.is_some()
            && self.session.transport() == TransportKind::WebSocket
        {
            let marker = crate::engine::uncompressed_marker();
            let queued = if volatile {
                self.session.send_frame_volatile(marker)
            } else {
                self.session.send_frame(marker).is_ok()
            };
            if !queued {
                return false;
            }
        }
        if volatile {
            // All or nothing: attachments must follow their head, so only the head may be dropped.
            if !self.session.send_frame_volatile(head) {
                return false;
            }
        } else if self.session.send_frame(head).is_err() {
            return false;
        }
        attachments
            .iter()
            .all(|a| self.session.send_frame(Frame::Binary(a.clone())).is_ok())
    }

    /// Writes pre-encoded frames, waiting for room in the queue (a replay longer than the queue);
    /// returns false when the connection closed.
    pub(crate) async fn write_waiting(&self, encoded: &Encoded) -> bool {
        if self
            .session
            .send_frame_waiting(encoded.head.clone())
            .await
            .is_err()
        {
            return false;
        }
        for a in &encoded.attachments {
            if self
                .session
                .send_frame_waiting(Frame::Binary(a.clone()))
                .await
                .is_err()
            {
                return false;
            }
        }
        true
    }

    /// Encodes and writes one packet.
    pub(crate) fn send(&self, packet: &Packet) -> bool {
        self.write(&self.encode(packet), false)
    }

    /// Closes the connection gracefully (what is queued is still delivered).
    pub(crate) fn close(&self) {
        self.session.close();
    }

    /// The handshake of a socket of this connection, as `socket.handshake` reads in socket.io: built
    /// from what the session kept of its request when the application first asks, not per socket.
    pub(crate) fn handshake(&self, auth: Value) -> Handshake {
        let info = self.session.handshake();
        // Values that are not visible ASCII are left out, as `HeaderValue::to_str` would.
        let text = |v: &[u8]| {
            v.iter()
                .all(|&b| b == b'\t' || (32..127).contains(&b))
                .then(|| String::from_utf8_lossy(v).into_owned())
        };
        let headers = info
            .headers()
            .filter_map(|(k, v)| Some((k.to_owned(), text(v)?)))
            .collect();
        let query = info
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect();
        let issued = info
            .issued()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let header = |name| info.header(name).and_then(|v| std::str::from_utf8(v).ok());
        let (origin, host) = (header("origin"), header("host"));
        Handshake {
            headers,
            time: httpdate(info.issued()),
            address: info
                .remote_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default(),
            xdomain: origin.is_some_and(|o| host.is_none_or(|h| !o.ends_with(h))),
            secure: info.uri().starts_with("https://"),
            issued,
            url: info.uri().to_owned(),
            query,
            auth,
        }
    }
}

/// An RFC 7231 date, as JavaScript's `Date.toString()` is not worth imitating.
fn httpdate(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(mo - 1) as usize],
        y,
        h,
        m,
        s
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn http_dates() {
        assert_eq!(httpdate(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            httpdate(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
        assert_eq!(
            httpdate(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
    }
}
