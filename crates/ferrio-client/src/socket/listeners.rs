//! What a socket hands to user code: events with their ack sender, the listener registry (EventEmitter
//! semantics: `on` appends, `once` runs once, `off` removes), and the task that runs the listeners of
//! one socket in order.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ferrio_proto::socket::{ClientDisconnectReason, ConnectError, EmitError, Packet};
use ferrio_proto::value::{Value, ValueError, from_args, to_args};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::{Socket, SocketInner};
use crate::options::BoxFuture;

/// Identifies one listener, for [`Socket::off_listener`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

/// Answers a server's ack request, once: when several listeners get the event, the first answer is
/// the one sent, as with the official client.
#[derive(Debug, Clone)]
pub struct AckSender {
    socket: Socket,
    id: u64,
    sent: Arc<AtomicBool>,
}

impl AckSender {
    pub(crate) fn new(socket: Socket, id: u64) -> Self {
        AckSender {
            socket,
            id,
            sent: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Sends the ack: a tuple is several arguments, `()` none, anything else one.
    pub fn send<T: Serialize + ?Sized>(self, data: &T) -> Result<(), EmitError> {
        let args = to_args(data)?;
        self.send_args(args);
        Ok(())
    }

    /// Sends the ack with raw arguments.
    pub fn send_args(self, args: Vec<Value>) {
        if self.sent.swap(true, Ordering::AcqRel) {
            return;
        }
        let packet = Packet::Ack {
            nsp: self.socket.inner.nsp.clone(),
            args,
            id: self.id,
        };
        self.socket.inner.manager.write_packet(&packet);
    }

    /// Whether an answer was already sent.
    pub fn is_sent(&self) -> bool {
        self.sent.load(Ordering::Acquire)
    }
}

/// An event from the server.
#[derive(Debug)]
pub struct Event {
    pub(crate) name: String,
    pub(crate) args: Vec<Value>,
    pub(crate) ack: Option<AckSender>,
}

impl Event {
    /// Event name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Arguments.
    pub fn args(&self) -> &[Value] {
        &self.args
    }

    /// Takes the arguments out.
    pub fn take_args(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.args)
    }

    /// Deserializes the arguments: a tuple reads them in order, any other type reads the first.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ValueError> {
        from_args(self.args.clone())
    }

    /// Whether the server waits for an answer.
    pub fn wants_ack(&self) -> bool {
        self.ack.is_some()
    }

    /// Takes the sender that answers the server's ack request, if it asked for one.
    pub fn take_ack(&mut self) -> Option<AckSender> {
        self.ack.take()
    }

    /// Answers the server's ack request, if any.
    pub fn ack<T: Serialize + ?Sized>(&mut self, data: &T) -> Result<(), EmitError> {
        match self.ack.take() {
            Some(a) => a.send(data),
            None => Ok(()),
        }
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
                socket.record_offset(&event.args);
                let (any, listeners) = {
                    let mut h = socket.inner.handlers.write();
                    (values(&h.any), h.for_event(&event.name))
                };
                for f in &any {
                    f(&socket, &event.name, &event.args);
                }
                match listeners.len() {
                    0 => {}
                    1 => listeners[0](socket.clone(), event).await,
                    _ => {
                        // Every listener gets the arguments and the ack sender; the first answer wins.
                        let Event { name, args, ack } = event;
                        for h in listeners {
                            let ev = Event {
                                name: name.clone(),
                                args: args.clone(),
                                ack: ack.clone(),
                            };
                            h(socket.clone(), ev).await;
                        }
                    }
                }
            }
        }
    }
}
