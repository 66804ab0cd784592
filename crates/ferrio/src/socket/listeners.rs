//! The socket's listeners: per event (EventEmitter semantics: `on` appends, `once`, `off`), catch-alls,
//! `socket.use` middlewares and the disconnect handlers.
//!
//! The registry belongs to the socket's task; the `Socket` handle only points at it weakly. A listener
//! that captures its own socket therefore makes no cycle: when the task ends, the listeners go with it.

use std::sync::Arc;

use ferrio_proto::value::Value;
use parking_lot::RwLock;

use super::DisconnectReason;
use super::Socket;
use super::event::Event;
use crate::engine::BoxFuture;

pub(crate) type EventHandler = Arc<dyn Fn(Socket, Event) -> BoxFuture<()> + Send + Sync>;
pub(crate) type AnyHandler = Arc<dyn Fn(&Socket, &str, &[Value]) + Send + Sync>;
pub(crate) type EventMiddleware = Arc<dyn Fn(&Socket, &Event) -> Result<(), Value> + Send + Sync>;
pub(crate) type ErrorHandler = Arc<dyn Fn(&Socket, &Value) + Send + Sync>;
pub(crate) type DisconnectHandler =
    Arc<dyn Fn(Socket, DisconnectReason) -> BoxFuture<()> + Send + Sync>;

/// One listener added with `on` or `once`; `off_listener` removes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

impl ListenerId {
    /// The id of no listener (what `on` returns on a disconnected socket); real ids start at 1.
    pub(crate) const NONE: ListenerId = ListenerId(0);
}

struct Listener {
    event: Box<str>,
    id: ListenerId,
    once: bool,
    handler: EventHandler,
}

/// The listeners one event reaches, in the order they were added.
pub(crate) enum Matched {
    None,
    One(EventHandler),
    Many(Vec<EventHandler>),
}

#[derive(Default)]
pub(crate) struct Registry {
    next_id: u64,
    /// Every event's listeners in one list, in the order they were added. A socket has a handful of
    /// listeners, registered per connection: a map of per-event lists took a table and a list per
    /// event, for every connection, and finding an event among a few names by comparing them is no
    /// slower than hashing it.
    events: Vec<Listener>,
    /// Boxed, and only once one is added: most sockets have none of these, and six empty lists inline
    /// would take more room than their listeners.
    hooks: Option<Box<Hooks>>,
}

/// Catch-alls, middlewares and disconnect handlers.
#[derive(Default)]
pub(crate) struct Hooks {
    pub(crate) any: Vec<AnyHandler>,
    pub(crate) any_outgoing: Vec<AnyHandler>,
    pub(crate) middlewares: Vec<EventMiddleware>,
    pub(crate) errors: Vec<ErrorHandler>,
    pub(crate) disconnecting: Vec<DisconnectHandler>,
    pub(crate) disconnect: Vec<DisconnectHandler>,
}

/// The hooks of a socket that has none.
static NO_HOOKS: Hooks = Hooks {
    any: Vec::new(),
    any_outgoing: Vec::new(),
    middlewares: Vec::new(),
    errors: Vec::new(),
    disconnecting: Vec::new(),
    disconnect: Vec::new(),
};

impl Registry {
    pub(crate) fn hooks(&self) -> &Hooks {
        self.hooks.as_deref().unwrap_or(&NO_HOOKS)
    }

    pub(crate) fn hooks_mut(&mut self) -> &mut Hooks {
        self.hooks.get_or_insert_default()
    }
}

/// The registry, shared by the socket's task (strongly) and its handles (weakly).
#[derive(Default)]
pub(crate) struct Listeners(RwLock<Registry>);

impl Listeners {
    pub(crate) fn read(&self) -> parking_lot::RwLockReadGuard<'_, Registry> {
        self.0.read()
    }

    pub(crate) fn write(&self) -> parking_lot::RwLockWriteGuard<'_, Registry> {
        self.0.write()
    }

    pub(crate) fn add(&self, event: String, handler: EventHandler, once: bool) -> ListenerId {
        let mut r = self.0.write();
        r.next_id += 1;
        let id = ListenerId(r.next_id);
        // Exact size while small: a socket's few listeners are usually all added at its connection and
        // stay for its life, so a doubling's spare room would be held as long.
        if r.events.len() < 8 {
            r.events.reserve_exact(1);
        }
        r.events.push(Listener {
            event: event.into_boxed_str(),
            id,
            once,
            handler,
        });
        id
    }

    /// Removes every listener of `event`.
    pub(crate) fn off(&self, event: &str) {
        self.0.write().events.retain(|l| &*l.event != event);
    }

    /// Removes one listener; returns whether it was there.
    pub(crate) fn off_listener(&self, id: ListenerId) -> bool {
        let mut r = self.0.write();
        match r.events.iter().position(|l| l.id == id) {
            Some(i) => {
                r.events.remove(i);
                true
            }
            None => false,
        }
    }

    /// The listeners `event` runs now; `once` listeners among them are removed.
    pub(crate) fn take(&self, event: &str) -> Matched {
        let (matched, once, last) = {
            let r = self.0.read();
            let last = r.next_id;
            let mut listeners = r.events.iter().filter(|l| &*l.event == event);
            let Some(first) = listeners.next() else {
                return Matched::None;
            };
            let mut once = first.once;
            let matched = match listeners.next() {
                None => Matched::One(first.handler.clone()),
                Some(second) => {
                    once |= second.once;
                    let mut all = vec![first.handler.clone(), second.handler.clone()];
                    for l in listeners {
                        once |= l.once;
                        all.push(l.handler.clone());
                    }
                    Matched::Many(all)
                }
            };
            (matched, once, last)
        };
        if once {
            // Only the `once` listeners that run now go: one added meanwhile has an id after `last`,
            // and waits for the next event.
            let mut r = self.0.write();
            r.events
                .retain(|l| !(l.once && &*l.event == event && l.id.0 <= last));
        }
        matched
    }
}
