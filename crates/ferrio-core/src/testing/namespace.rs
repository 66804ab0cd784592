//! A [`LocalNamespace`] without sockets of its own: it records what the adapter asks of it.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use ferrio_proto::engine::Frame;
use ferrio_proto::socket::{Encoded, Packet};
use ferrio_proto::value::Value;
use parking_lot::Mutex;

use crate::adapter::{
    AckEvent, AckSink, Adapter, BroadcastFlags, Handshake, LocalNamespace, Room, Sid, SocketInfo,
};

/// One packet written to one socket.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The socket.
    pub sid: String,
    /// The text frame (`42["event",…]`, `451-[…]` with attachments, `42<ack id>[…]` with an ack).
    pub text: String,
    /// The binary attachments.
    pub attachments: usize,
    /// The flags it came with (none for a packet expecting an ack).
    pub flags: BroadcastFlags,
    /// The ack id it expects an answer to.
    pub ack_id: Option<u64>,
}

/// A server-side event this node's handlers received.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSideEvent {
    /// Event name.
    pub event: String,
    /// Its arguments.
    pub args: Vec<Value>,
    /// Whether the sender expects an ack.
    pub with_ack: bool,
}

#[derive(Default)]
struct Record {
    sockets: Vec<Sid>,
    deliveries: Vec<Delivery>,
    /// Where each pending ack goes, by (socket, ack id).
    acks: HashMap<(String, u64), AckSink>,
    disconnected: Vec<(String, bool)>,
    server_side: Vec<ServerSideEvent>,
    held: Vec<String>,
}

/// The namespace `/` of one node: sockets that exist only as ids, and a record of every delivery,
/// disconnection and server-side event.
pub struct FakeNamespace {
    node: usize,
    adapter: OnceLock<Arc<dyn Adapter>>,
    record: Mutex<Record>,
    next_ack: Mutex<u64>,
    /// What this node's server-side handlers answer (`None`: they do not answer).
    answer: Mutex<Option<Value>>,
}

impl std::fmt::Debug for FakeNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeNamespace")
            .field("node", &self.node)
            .finish()
    }
}

/// The text of an encoded packet's first frame.
fn text(encoded: &Encoded) -> String {
    match &encoded.head {
        Frame::Text(t) => t.to_string(),
        Frame::Binary(b) => format!("<{} bytes>", b.len()),
    }
}

impl FakeNamespace {
    /// The namespace of node number `node` (which tells its sockets apart in `data`).
    pub fn new(node: usize) -> Arc<FakeNamespace> {
        Arc::new(FakeNamespace {
            node,
            adapter: OnceLock::new(),
            record: Mutex::new(Record::default()),
            next_ack: Mutex::new(0),
            answer: Mutex::new(None),
        })
    }

    /// Its node number.
    pub fn node(&self) -> usize {
        self.node
    }

    /// Gives the namespace its adapter (once).
    pub fn set_adapter(&self, adapter: Arc<dyn Adapter>) {
        let _ = self.adapter.set(adapter);
    }

    /// The namespace's adapter.
    pub fn adapter(&self) -> &Arc<dyn Adapter> {
        self.adapter.get().expect("the adapter is set")
    }

    /// A new socket, in its own room as every socket is; returns its id (20 characters, as the official
    /// server's).
    pub fn connect(&self, name: &str) -> Sid {
        let id = format!("{name:_<17}n{:02}", self.node);
        assert_eq!(id.len(), 20, "socket names are at most 17 characters");
        let sid = Sid::from(id.as_str());
        self.record.lock().sockets.push(sid.clone());
        self.adapter().add_all(&sid, std::slice::from_ref(&sid));
        sid
    }

    /// Makes this node's server-side handlers answer `value` (or stay silent with `None`).
    pub fn answer_server_side(&self, value: Option<Value>) {
        *self.answer.lock() = value;
    }

    /// What was delivered so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.record.lock().deliveries.clone()
    }

    /// The deliveries whose text contains `needle`, as `(socket, text)`, sorted.
    pub fn delivered(&self, needle: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .record
            .lock()
            .deliveries
            .iter()
            .filter(|d| d.text.contains(needle))
            .map(|d| (d.sid.clone(), d.text.clone()))
            .collect();
        out.sort();
        out
    }

    /// Sockets disconnected so far, with the `close` flag.
    pub fn disconnected(&self) -> Vec<(String, bool)> {
        self.record.lock().disconnected.clone()
    }

    /// Sockets the adapter asked to hold deliveries for (connection state recovery), in order.
    pub fn held(&self) -> Vec<String> {
        self.record.lock().held.clone()
    }

    /// Server-side events received so far.
    pub fn server_side(&self) -> Vec<ServerSideEvent> {
        self.record.lock().server_side.clone()
    }

    /// Answers the pending acks of `sid` whose packet contains `needle`, with `value`; returns how
    /// many were answered.
    pub fn answer_acks(&self, sid: &str, needle: &str, value: Value) -> usize {
        let sinks: Vec<(u64, AckSink)> = {
            let mut r = self.record.lock();
            let ids: Vec<u64> = r
                .deliveries
                .iter()
                .filter(|d| d.sid == sid && d.text.contains(needle))
                .filter_map(|d| d.ack_id)
                .collect();
            ids.into_iter()
                .filter_map(|id| r.acks.remove(&(sid.to_owned(), id)).map(|s| (id, s)))
                .collect()
        };
        for (_, sink) in &sinks {
            let _ = sink.send(AckEvent::Response(vec![value.clone()]));
        }
        sinks.len()
    }
}

impl FakeNamespace {
    /// Records a delivery to `sid`, if it is one of this node's sockets.
    fn record(
        &self,
        sid: &str,
        encoded: &Encoded,
        flags: BroadcastFlags,
        ack_id: Option<u64>,
    ) -> bool {
        let mut r = self.record.lock();
        if !r.sockets.iter().any(|s| &**s == sid) {
            return false;
        }
        r.deliveries.push(Delivery {
            sid: sid.to_owned(),
            text: text(encoded),
            attachments: encoded.attachments.len(),
            flags,
            ack_id,
        });
        true
    }
}

impl LocalNamespace for FakeNamespace {
    fn name(&self) -> &str {
        "/"
    }

    fn hold(&self, sid: &str) {
        self.record.lock().held.push(sid.to_owned());
    }

    fn encode(&self, packet: &Packet) -> Encoded {
        ferrio_proto::socket::encode(packet)
    }

    fn deliver(&self, sid: &str, encoded: &Encoded, flags: &BroadcastFlags) -> bool {
        self.record(sid, encoded, flags.clone(), None)
    }

    fn deliver_with_ack(&self, sid: &str, encoded: &Encoded, ack_id: u64, sink: &AckSink) -> bool {
        let delivered = self.record(sid, encoded, BroadcastFlags::default(), Some(ack_id));
        if delivered {
            self.record
                .lock()
                .acks
                .insert((sid.to_owned(), ack_id), sink.clone());
        }
        delivered
    }

    fn next_ack_id(&self) -> u64 {
        let mut n = self.next_ack.lock();
        *n += 1;
        *n
    }

    fn socket_info(&self, sid: &str) -> Option<SocketInfo> {
        let sid = self
            .record
            .lock()
            .sockets
            .iter()
            .find(|s| &***s == sid)
            .cloned()?;
        let mut rooms: Vec<String> = self
            .adapter()
            .socket_rooms(&sid)
            .iter()
            .map(|r: &Room| r.to_string())
            .collect();
        rooms.sort();
        Some(SocketInfo {
            id: sid.to_string(),
            handshake: Handshake {
                url: "/socket.io/?EIO=4&transport=websocket".into(),
                address: "127.0.0.1".into(),
                ..Default::default()
            },
            rooms,
            data: Value::from(self.node as u64),
        })
    }

    fn disconnect(&self, sid: &str, close: bool) {
        let gone = {
            let mut r = self.record.lock();
            let before = r.sockets.len();
            r.sockets.retain(|s| &**s != sid);
            let gone = r.sockets.len() < before;
            if gone {
                r.disconnected.push((sid.to_owned(), close));
            }
            gone
        };
        // As a real namespace does: a disconnected socket leaves every room.
        if gone {
            self.adapter().del_all(&Sid::from(sid));
        }
    }

    fn on_server_side_emit(&self, event: String, args: Vec<Value>, sink: Option<AckSink>) {
        let with_ack = sink.is_some();
        self.record.lock().server_side.push(ServerSideEvent {
            event,
            args,
            with_ack,
        });
        if let (Some(sink), Some(value)) = (sink, self.answer.lock().clone()) {
            let _ = sink.send(AckEvent::Response(vec![value]));
        }
    }
}
