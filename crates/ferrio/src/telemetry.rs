//! Metrics, through the `metrics` crate facade: nothing is recorded until the application installs a
//! recorder (a Prometheus exporter, …), and then each call is a lookup and an atomic add. The call
//! sites are one line each, where the event happens; the names and labels live here.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `ferrio_connections_total` | counter | `transport` of the handshake |
//! | `ferrio_connections` | gauge | open Engine.IO sessions |
//! | `ferrio_disconnections_total` | counter | `reason` (Engine.IO close reason) |
//! | `ferrio_upgrades_total` | counter | |
//! | `ferrio_handshake_errors_total` | counter | `code` (the Engine.IO error code of a refused request) |
//! | `ferrio_sockets_connected_total` | counter | `namespace` |
//! | `ferrio_sockets` | gauge | `namespace` |
//! | `ferrio_packets_in_total`, `ferrio_bytes_in_total` | counter | messages received |
//! | `ferrio_packets_out_total`, `ferrio_bytes_out_total` | counter | frames taken by a session's writer |
//! | `ferrio_volatile_drops_total` | counter | volatile packets dropped on a full queue |
//! | `ferrio_slow_consumer_disconnects_total` | counter | sessions closed on a full queue |
//! | `ferrio_ack_timeouts_total` | counter | acks of `emit_with_ack` past their deadline |

use ferrio_proto::engine::{CloseReason, Data, TransportKind};
use metrics::{Counter, counter, gauge};

pub(crate) fn connection(transport: TransportKind) {
    counter!("ferrio_connections_total", "transport" => transport.as_str()).increment(1);
    gauge!("ferrio_connections").increment(1.0);
}

pub(crate) fn disconnection(reason: CloseReason) {
    counter!("ferrio_disconnections_total", "reason" => reason.as_str()).increment(1);
    gauge!("ferrio_connections").decrement(1.0);
}

/// Counts the upgrade, then runs the websocket session it hands over to.
pub(crate) async fn upgraded<F: std::future::Future>(run: F) -> F::Output {
    counter!("ferrio_upgrades_total").increment(1);
    run.await
}

pub(crate) fn request_error(code: u8) {
    counter!("ferrio_handshake_errors_total", "code" => code.to_string()).increment(1);
}

pub(crate) fn socket_connected(namespace: &str) {
    counter!("ferrio_sockets_connected_total", "namespace" => namespace.to_owned()).increment(1);
    gauge!("ferrio_sockets", "namespace" => namespace.to_owned()).increment(1.0);
}

pub(crate) fn socket_disconnected(namespace: &str) {
    gauge!("ferrio_sockets", "namespace" => namespace.to_owned()).decrement(1.0);
}

/// The in counters of one session, registered once when it opens (every message goes through them).
#[derive(Debug)]
pub(crate) struct MessagesIn {
    packets: Counter,
    bytes: Counter,
}

impl MessagesIn {
    pub(crate) fn new() -> Self {
        MessagesIn {
            packets: counter!("ferrio_packets_in_total"),
            bytes: counter!("ferrio_bytes_in_total"),
        }
    }

    #[inline]
    pub(crate) fn record(&self, data: &Data) {
        self.packets.increment(1);
        self.bytes.increment(data.len() as u64);
    }
}

/// The out counters of one session, registered once when it opens: frames leave a session one by one
/// (every recipient of every broadcast), so each is an atomic add on a held handle, not a registry
/// lookup by name.
#[derive(Debug)]
pub(crate) struct FramesOut {
    packets: Counter,
    bytes: Counter,
}

impl FramesOut {
    pub(crate) fn new() -> Self {
        FramesOut {
            packets: counter!("ferrio_packets_out_total"),
            bytes: counter!("ferrio_bytes_out_total"),
        }
    }

    /// A frame of `bytes` encoded bytes left the queue for the transport.
    #[inline]
    pub(crate) fn record(&self, bytes: usize) {
        self.packets.increment(1);
        self.bytes.increment(bytes as u64);
    }
}

/// Counts a volatile frame that was not queued; returns `queued`.
pub(crate) fn volatile(queued: bool) -> bool {
    if !queued {
        counter!("ferrio_volatile_drops_total").increment(1);
    }
    queued
}

pub(crate) fn slow_consumer() {
    counter!("ferrio_slow_consumer_disconnects_total").increment(1);
}

pub(crate) fn ack_timeout() {
    counter!("ferrio_ack_timeouts_total").increment(1);
}
