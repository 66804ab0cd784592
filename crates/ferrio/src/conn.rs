//! The connection under a client's sockets: an Engine.IO session and the parser that encodes for it.

use std::sync::Arc;

use ferrio_proto::engine::{Frame, Protocol, TransportKind};
use ferrio_proto::socket::{Encoded, Packet, Parser};

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

    /// Writes pre-encoded frames; returns false when the connection refused them.
    pub(crate) fn write(&self, encoded: &Encoded, volatile: bool) -> bool {
        self.write_with(encoded, volatile, true)
    }

    /// Writes pre-encoded frames; with `compress` false (`compress(false)`), a websocket sends them
    /// uncompressed.
    pub(crate) fn write_with(&self, encoded: &Encoded, volatile: bool, compress: bool) -> bool {
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
            if !self.session.send_frame_volatile(encoded.head.clone()) {
                return false;
            }
        } else if self.session.send_frame(encoded.head.clone()).is_err() {
            return false;
        }
        encoded
            .attachments
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
}
