//! What a socket hands to user code: events with their ack sender, the listener registry (EventEmitter
//! semantics: `on` appends, `once` runs once, `off` removes), and the task that runs the listeners of
//! one socket in order.

use std::collections::HashMap;
use std::sync::Arc;

use ferrio_proto::socket::{AckWriter, ClientDisconnectReason, ConnectError, EmitError};
use ferrio_proto::value::Value;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::{Socket, SocketInner};
use crate::options::BoxFuture;

/// Identifies one listener, for [`Socket::off_listener`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

/// Answers a server's ack request, once: when several listeners get the event, the first answer is
/// the one sent, as with the official client.
pub type AckSender = ferrio_proto::socket::AckSender<Socket>;

/// An event from the server.
pub type Event = ferrio_proto::socket::Event<Socket>;

impl AckWriter for Socket {
    fn write_ack(&self, id: u64, args: Vec<Value>) -> Result<(), EmitError> {
        if self.inner.manager.write_ack(&self.inner.nsp, args, id) {
            Ok(())
        } else {
            Err(EmitError::Disconnected)
        }
    }

    fn write_ack_from<T: serde::Serialize + ?Sized>(
        &self,
        id: u64,
        data: &T,
    ) -> Result<(), EmitError> {
        let manager = &self.inner.manager;
        // Straight to text with the default parser: no argument values built and dropped.
        if manager.writes_json_text()
            && let Some(encoded) = ferrio_proto::socket::encode_ack_from(&self.inner.nsp, data, id)?
        {
            return if manager.write_encoded(encoded) {
                Ok(())
            } else {
                Err(EmitError::Disconnected)
            };
        }
        self.write_ack(id, ferrio_proto::value::to_args(data)?)
    }
}

pub(crate) type EventHandler = Arc<dyn Fn(Socket, Event) -> BoxFuture<()> + Send + Sync>;
pub(crate) type AnyHandler = Arc<dyn Fn(&Socket, &str, &[Value]) + Send + Sync>;
pub(crate) type ConnectHandler = Arc<dyn Fn(Socket) -> BoxFuture<()> + Send + Sync>;
pub(crate) type ErrorHandler = Arc<dyn Fn(Socket, ConnectError) -> BoxFuture<()> + Send + Sync>;
pub(crate) type DisconnectHandler =
    Arc<dyn Fn(Socket, ClientDisconnectReason) -> BoxFuture<()> + Send + Sync>;

struct Listener {
    id: ListenerId,
    handler: EventHandler,
    once: bool,
}

/// Every listener of a socket, each list in registration order.
#[derive(Default)]
pub(crate) struct Handlers {
    next_id: u64,
    events: HashMap<String, Vec<Listener>>,
    pub(crate) fallback: Option<EventHandler>,
    pub(crate) any: Vec<(ListenerId, AnyHandler)>,
    pub(crate) any_outgoing: Vec<(ListenerId, AnyHandler)>,
    pub(crate) connect: Vec<(ListenerId, ConnectHandler)>,
    pub(crate) connect_error: Vec<(ListenerId, ErrorHandler)>,
    pub(crate) disconnect: Vec<(ListenerId, DisconnectHandler)>,
}

impl Handlers {
    pub(crate) fn next_id(&mut self) -> ListenerId {
        self.next_id += 1;
        ListenerId(self.next_id)
    }

    pub(crate) fn add_event(
        &mut self,
        event: String,
        handler: EventHandler,
        once: bool,
    ) -> ListenerId {
        let id = self.next_id();
        self.events
            .entry(event)
            .or_default()
            .push(Listener { id, handler, once });
        id
    }

    pub(crate) fn remove_event(&mut self, event: &str) {
        self.events.remove(event);
    }

    pub(crate) fn listener_count(&self, event: &str) -> usize {
        self.events.get(event).map_or(0, Vec::len)
    }

    /// Removes listener `id` wherever it is; whether it was there.
    pub(crate) fn remove(&mut self, id: ListenerId) -> bool {
        for (name, list) in self.events.iter_mut() {
            if let Some(i) = list.iter().position(|l| l.id == id) {
                list.remove(i);
                if list.is_empty() {
                    let name = name.clone();
                    self.events.remove(&name);
                }
                return true;
            }
        }
        fn take<T>(list: &mut Vec<(ListenerId, T)>, id: ListenerId) -> bool {
            let before = list.len();
            list.retain(|(i, _)| *i != id);
            list.len() != before
        }
        take(&mut self.any, id)
            || take(&mut self.any_outgoing, id)
            || take(&mut self.connect, id)
            || take(&mut self.connect_error, id)
            || take(&mut self.disconnect, id)
    }

    /// The listeners for one event (the `once` ones leave the registry), or the fallback when none.
    fn for_event(&mut self, event: &str) -> Vec<EventHandler> {
        match self.events.get_mut(event) {
            Some(list) if !list.is_empty() => {
                let all = list.iter().map(|l| l.handler.clone()).collect();
                list.retain(|l| !l.once);
                if list.is_empty() {
                    self.events.remove(event);
                }
                all
            }
            _ => self.fallback.iter().cloned().collect(),
        }
    }
}

/// What the socket's task handles, in order.
pub(crate) enum Incoming {
    Connect,
    ConnectError(ConnectError),
    /// An event, with its place in the bounded queue (freed once its listeners ran).
    Event(Event, OwnedSemaphorePermit),
    Disconnect(ClientDisconnectReason),
}

fn values<T: Clone>(list: &[(ListenerId, T)]) -> Vec<T> {
    list.iter().map(|(_, h)| h.clone()).collect()
}

/// Runs the socket's listeners, one event after the other.
pub(crate) async fn dispatch_loop(
    socket: std::sync::Weak<SocketInner>,
    mut rx: mpsc::UnboundedReceiver<Incoming>,
) {
    while let Some(incoming) = rx.recv().await {
        let Some(inner) = socket.upgrade() else {
            return;
        };
        let socket = Socket { inner };
        match incoming {
            Incoming::Connect => {
                let handlers = values(&socket.inner.handlers.read().connect);
                for h in handlers {
                    h(socket.clone()).await;
                }
            }
            Incoming::ConnectError(err) => {
                let handlers = values(&socket.inner.handlers.read().connect_error);
                for h in handlers {
                    h(socket.clone(), err.clone()).await;
                }
            }
            Incoming::Disconnect(reason) => {
                let handlers = values(&socket.inner.handlers.read().disconnect);
                for h in handlers {
                    h(socket.clone(), reason).await;
                }
            }
            Incoming::Event(event, _permit) => {
                socket.record_offset(event.args());
                let (any, listeners) = {
                    let mut h = socket.inner.handlers.write();
                    (values(&h.any), h.for_event(event.name()))
                };
                for f in &any {
                    f(&socket, event.name(), event.args());
                }
                // Every listener gets the arguments and the ack sender, the last one the original (no
                // copy with one listener); the first answer wins.
                let mut event = event;
                if let Some((last, rest)) = listeners.split_last() {
                    for h in rest {
                        h(socket.clone(), event.fork()).await;
                    }
                    last(socket.clone(), event).await;
                }
            }
        }
    }
}
