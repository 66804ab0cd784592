//! `socket_updated`: what the app was told of each local socket (its transport and public `data`),
//! compared with what the socket says now at each `server_stats` tick (development mode only).
//!
//! The official package sees both changes as they happen (a proxy on `socket.data`, the connection's
//! `upgrade` event); a ferrio socket's data and transport are read, not observed, so a change reaches the
//! app at the next tick instead, which the app shows the same way.

use std::collections::HashMap;

use ferrio::{Io, Namespace, Socket, TransportKind, Value};
use parking_lot::Mutex;
use serde_json::json;

use crate::public_data;

/// What the app knows of a socket.
struct Known {
    transport: TransportKind,
    data: serde_json::Value,
}

/// The local sockets of the watched namespaces, by (namespace, id).
#[derive(Default)]
pub(crate) struct Tracked {
    sockets: Mutex<HashMap<(String, String), Known>>,
}

fn key(socket: &Socket) -> (String, String) {
    (socket.nsp().to_owned(), socket.id().to_owned())
}

impl Tracked {
    /// A socket as `socket_connected` described it (`data`: its public data).
    pub(crate) fn insert(&self, socket: &Socket, data: serde_json::Value) {
        let known = Known {
            transport: socket.transport(),
            data,
        };
        self.sockets.lock().insert(key(socket), known);
    }

    pub(crate) fn remove(&self, socket: &Socket) {
        self.sockets.lock().remove(&key(socket));
    }

    /// Sends `socket_updated` for each local socket whose transport or data changed since the app was
    /// last told.
    pub(crate) fn emit_updates(&self, io: &Io, admin: &Namespace) {
        for ns in io.namespaces() {
            for socket in ns.sockets() {
                // Read outside the lock: serializing data runs the application's `Serialize`.
                let transport = socket.transport();
                let data = public_data(socket.data_value().unwrap_or(Value::Null));
                let (moved, changed) = {
                    let mut map = self.sockets.lock();
                    let Some(known) = map.get_mut(&key(&socket)) else {
                        continue;
                    };
                    let moved = known.transport != transport;
                    known.transport = transport;
                    let changed = known.data != data;
                    if changed {
                        known.data = data.clone();
                    }
                    (moved, changed)
                };
                if moved {
                    upgraded(&socket, transport);
                    let _ = admin.emit(
                        "socket_updated",
                        &json!({ "id": socket.id(), "nsp": ns.name(), "transport": transport.as_str() }),
                    );
                }
                if changed {
                    let _ = admin.emit(
                        "socket_updated",
                        &json!({ "id": socket.id(), "nsp": ns.name(), "data": data }),
                    );
                }
            }
        }
    }
}

/// Other nodes read a socket's transport from its `_admin` data: updated when the data is still the
/// instrumentation's own (the application's data is never replaced).
fn upgraded(socket: &Socket, transport: TransportKind) {
    let Some(data) = socket.data::<serde_json::Value>() else {
        return;
    };
    let Some(admin) = data
        .as_object()
        .filter(|m| m.len() == 1)
        .and_then(|m| m.get("_admin"))
    else {
        return;
    };
    let mut admin = admin.clone();
    admin["transport"] = transport.as_str().into();
    socket.set_data(json!({ "_admin": admin }));
}
