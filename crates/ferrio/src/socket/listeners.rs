//! The socket's listeners: per event (EventEmitter semantics: `on` appends, `once`, `off`), catch-alls,
//! `socket.use` middlewares and the disconnect handlers.
//!
//! The registry belongs to the socket's task; the `Socket` handle only points at it weakly. A listener
//! that captures its own socket therefore makes no cycle: when the task ends, the listeners go with it.

use std::collections::HashMap;
use std::sync::Arc;

use ferrio_proto::value::Value;
use parking_lot::RwLock;

use super::DisconnectReason;
use super::Socket;
use super::event::Event;
use crate::engine::BoxFuture;
use crate::fxhash::FxBuild;

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
    /// Looked up for every incoming event. Only the application adds names, so a client cannot fill it
    /// with colliding keys: the fast hasher is safe here.
    events: HashMap<String, Vec<Listener>, FxBuild>,
    pub(crate) any: Vec<AnyHandler>,
    pub(crate) any_outgoing: Vec<AnyHandler>,
    pub(crate) middlewares: Vec<EventMiddleware>,
    pub(crate) errors: Vec<ErrorHandler>,
    pub(crate) disconnecting: Vec<DisconnectHandler>,
    pub(crate) disconnect: Vec<DisconnectHandler>,
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
        // One slot first: most events have one listener, and a vector's first growth takes four.
        r.events
            .entry(event)
            .or_insert_with(|| Vec::with_capacity(1))
            .push(Listener { id, once, handler });
        id
    }

    /// Removes every listener of `event`.
    pub(crate) fn off(&self, event: &str) {
        self.0.write().events.remove(event);
    }

    /// Removes one listener; returns whether it was there.
    pub(crate) fn off_listener(&self, id: ListenerId) -> bool {
        let mut r = self.0.write();
        let mut found = None;
        for (name, list) in r.events.iter_mut() {
            if let Some(i) = list.iter().position(|l| l.id == id) {
                list.remove(i);
                found = Some((name.clone(), list.is_empty()));
                break;
            }
        }
        match found {
            Some((name, true)) => {
                r.events.remove(&name);
                true
            }
            Some(_) => true,
            None => false,
        }
    }

    /// The listeners `event` runs now; `once` listeners among them are removed.
    pub(crate) fn take(&self, event: &str) -> Matched {
        let (matched, once) = {
            let r = self.0.read();
            let Some(list) = r.events.get(event) else {
                return Matched::None;
            };
            // Only the `once` listeners that run now go: one added meanwhile waits for the next event.
            let once: Vec<ListenerId> = list.iter().filter(|l| l.once).map(|l| l.id).collect();
            let matched = match list.as_slice() {
                [] => Matched::None,
                [one] => Matched::One(one.handler.clone()),
                many => Matched::Many(many.iter().map(|l| l.handler.clone()).collect()),
            };
            (matched, once)
        };
        if !once.is_empty() {
            let mut r = self.0.write();
            if let Some(list) = r.events.get_mut(event) {
                list.retain(|l| !once.contains(&l.id));
                if list.is_empty() {
                    r.events.remove(event);
                }
            }
        }
        matched
    }
}
