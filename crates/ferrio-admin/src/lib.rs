//! Instrumentation of a ferrio server for the official Socket.IO admin UI (`@socket.io/admin-ui` 0.5).
//!
//! [`instrument`] opens the admin namespace (`/admin` by default) that the official web app connects to,
//! and speaks its protocol: a basic authentication with a bcrypt-hashed password (or none), a session id
//! so that the app reconnects without asking again, `config` (the actions this server allows),
//! `server_stats` every [`AdminOptions::server_stats_interval`] (with the Engine.IO traffic of each
//! second since the last one, `aggregatedEvents`, which the app's dashboard charts), and in development
//! mode `all_sockets` plus one event per socket connection, update (`socket_updated`: its transport after
//! an upgrade, or its `data`, noticed at the next `server_stats`), disconnection, room change and event.
//!
//! Everything goes through the server's adapter (broadcasts on the admin namespace, `fetch_sockets`,
//! `sockets_join`, `sockets_leave`, `disconnect_sockets`), as in the official implementation: on a Redis
//! cluster of ferrio and Node nodes, each instrumented, the app sees every node's sockets and its actions
//! reach them wherever they are.

mod serialize;
mod updates;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrio::adapter::{Room, Sid};
use ferrio::{ConnectError, DisconnectReason, Event, Io, Namespace, Socket, Value};
use parking_lot::Mutex;
use serde::ser::SerializeTuple;

pub use serialize::iso_now;
use serialize::{public_data, serialize_remote, serialize_socket};
use updates::Tracked;

/// A boxed future, as the [`Store`] returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Who may connect to the admin namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// Anyone: only for a namespace no one else can reach.
    None,
    /// A user name and a bcrypt hash of the password (`$2a$`, `$2b$` or `$2y$`, as `bcrypt.hash` gives).
    Basic {
        /// The user name.
        username: String,
        /// The bcrypt hash of the password.
        password: String,
    },
}

/// How much the app is told.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Every socket, room and event (the official default outside `NODE_ENV=production`).
    #[default]
    Development,
    /// Server statistics only: nothing is tracked per socket.
    Production,
}

/// Where the session ids of logged-in apps are kept, so that a reconnecting app needs no password.
pub trait Store: Send + Sync + 'static {
    /// Whether `session_id` was saved.
    fn does_session_exist(&self, session_id: &str) -> BoxFuture<bool>;
    /// Saves a session id.
    fn save_session(&self, session_id: &str);
}

/// Sessions in this process (the official default): a restarted server asks for the password again.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    sessions: Mutex<HashSet<String>>,
}

impl Store for InMemoryStore {
    fn does_session_exist(&self, session_id: &str) -> BoxFuture<bool> {
        let found = self.sessions.lock().contains(session_id);
        Box::pin(async move { found })
    }

    fn save_session(&self, session_id: &str) {
        self.sessions.lock().insert(session_id.to_owned());
    }
}

/// The options of [`instrument`], named after the official ones.
#[derive(Clone)]
pub struct AdminOptions {
    /// Who may connect (`auth`). There is no default, as in the official package: choose.
    pub auth: Auth,
    /// The admin namespace (`namespaceName`, "/admin").
    pub namespace_name: String,
    /// No action allowed (join, leave, disconnect, emit) (`readonly`, false).
    pub read_only: bool,
    /// This node's name in the app (`serverId`, the host name by default).
    pub server_id: Option<String>,
    /// Development or production (`mode`).
    pub mode: Mode,
    /// Where session ids are kept (`store`, in memory).
    pub store: Arc<dyn Store>,
    /// How often `server_stats` is sent (2 s, as the official package).
    pub server_stats_interval: Duration,
}

impl AdminOptions {
    /// The official defaults with this authentication.
    pub fn new(auth: Auth) -> Self {
        AdminOptions {
            auth,
            namespace_name: "/admin".to_owned(),
            read_only: false,
            server_id: None,
            mode: Mode::Development,
            store: Arc::new(InMemoryStore::default()),
            server_stats_interval: Duration::from_secs(2),
        }
    }
}

impl std::fmt::Debug for AdminOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminOptions")
            .field("namespace_name", &self.namespace_name)
            .field("read_only", &self.read_only)
            .field("server_id", &self.server_id)
            .field("mode", &self.mode)
            .field("server_stats_interval", &self.server_stats_interval)
            .finish_non_exhaustive()
    }
}

/// Why the server could not be instrumented.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The password of [`Auth::Basic`] is not a bcrypt hash (a clear password would never match).
    #[error("the password must be a valid bcrypt hash: {0}")]
    InvalidHash(#[from] bcrypt::BcryptError),
}

/// The actions the app may offer, as the official `Feature` names.
fn features(options: &AdminOptions) -> Vec<&'static str> {
    let mut f = if options.read_only {
        Vec::new()
    } else {
        vec![
            "EMIT",
            "JOIN",
            "LEAVE",
            "DISCONNECT",
            "MJOIN",
            "MLEAVE",
            "MDISCONNECT",
        ]
    };
    f.push("AGGREGATED_EVENTS");
    if options.mode == Mode::Development {
        f.push("ALL_EVENTS");
    }
    f
}

/// Opens the admin namespace on `io` for the official admin UI; see the crate documentation.
pub fn instrument(io: &Io, options: AdminOptions) -> Result<(), AdminError> {
    if let Auth::Basic { password, .. } = &options.auth {
        // Checked now rather than at each login: a misconfigured server must not start.
        password.parse::<bcrypt::HashParts>()?;
    }
    let admin = io.of(&options.namespace_name);
    let options = Arc::new(options);
    authenticate(&admin, options.clone());

    let io2 = io.clone();
    let opts = options.clone();
    admin.on_connection(move |socket: Socket| {
        let io = io2.clone();
        let opts = opts.clone();
        async move {
            if let Some(session) = socket.extension::<NewSession>() {
                let _ = socket.emit("session", &session.0);
            }
            if !opts.read_only {
                register_actions(&io, &socket);
            }
            let config = serde_json::json!({ "supportedFeatures": features(&opts) });
            let _ = socket.emit("config", &config);
            if opts.mode == Mode::Development {
                let sockets = all_sockets(&io).await;
                let _ = socket.emit("all_sockets", &sockets);
            }
        }
    });

    let tracked = Arc::new(Tracked::default());
    if options.mode == Mode::Development {
        // Every namespace, the admin one included (the app lists its own sockets too), and each new one.
        let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
        let watch = {
            let admin = admin.clone();
            let seen = seen.clone();
            let tracked = tracked.clone();
            move |ns: &Namespace| {
                if seen.lock().insert(ns.name().to_owned()) {
                    watch_namespace(&admin, ns, &tracked);
                }
            }
        };
        io.on_new_namespace(watch.clone());
        for ns in io.namespaces() {
            watch(&ns);
        }
    }

    // Counted from now on, in production mode too, as the official package does.
    let events = ferrio::AggregatedEvents::new();
    tokio::spawn(emit_stats(io.clone(), admin, options, events, tracked));
    Ok(())
}

/// The session id made for a login, sent once the socket is connected.
struct NewSession(String);

fn auth_field<'a>(socket: &'a Socket, key: &str) -> Option<&'a str> {
    socket
        .handshake()
        .auth
        .as_object()
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
}

fn authenticate(admin: &Namespace, options: Arc<AdminOptions>) {
    let Auth::Basic { username, password } = options.auth.clone() else {
        tracing::warn!("admin UI: authentication is disabled");
        return;
    };
    admin.use_middleware(move |socket: Socket| {
        let options = options.clone();
        let username = username.clone();
        let hash = password.clone();
        async move {
            if let Some(id) = auth_field(&socket, "sessionId")
                && options.store.does_session_exist(id).await
            {
                return Ok(());
            }
            let given_user = auth_field(&socket, "username").map(str::to_owned);
            let given_password = auth_field(&socket, "password").map(str::to_owned);
            if let (Some(user), Some(pass)) = (given_user, given_password)
                && user == username
            {
                // bcrypt is slow on purpose: off the runtime's worker threads.
                let ok = tokio::task::spawn_blocking(move || bcrypt::verify(pass, &hash))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or(false);
                if ok {
                    let session: String = (0..8)
                        .map(|_| format!("{:02x}", rand::random::<u8>()))
                        .collect();
                    options.store.save_session(&session);
                    socket.insert_extension(NewSession(session));
                    return Ok(());
                }
            }
            Err(ConnectError::new("invalid credentials"))
        }
    });
}

/// Event arguments of any count (a tuple of `n` values), for the `emit` action.
struct Args(Vec<Value>);

impl serde::Serialize for Args {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(self.0.len())?;
        for v in &self.0 {
            t.serialize_element(v)?;
        }
        t.end()
    }
}

/// The existing namespace `name`: the app must not create namespaces by naming them.
fn existing(io: &Io, name: &str) -> Option<Namespace> {
    io.namespaces().into_iter().find(|n| n.name() == name)
}

/// The room filter of an action: a string, or nothing (null, absent, empty) for the whole namespace.
fn filter(arg: Option<&Value>) -> Option<Room> {
    arg.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(Room::from)
}

fn register_actions(io: &Io, socket: &Socket) {
    let io2 = io.clone();
    socket.on("emit", move |_s, ev: Event| {
        let io = io2.clone();
        async move {
            let args = ev.args();
            let (Some(nsp), Some(event)) = (
                args.first().and_then(Value::as_str),
                args.get(2).and_then(Value::as_str),
            ) else {
                return;
            };
            let Some(ns) = existing(&io, nsp) else { return };
            let rest = Args(args[3..].to_vec());
            let _ = match filter(args.get(1)) {
                Some(room) => ns.to(room).emit(event, &rest),
                None => ns.emit(event, &rest),
            };
        }
    });
    for action in ["join", "leave"] {
        let io2 = io.clone();
        socket.on(action, move |_s, ev: Event| {
            let io = io2.clone();
            async move {
                let args = ev.args();
                let (Some(nsp), Some(room)) = (
                    args.first().and_then(Value::as_str),
                    args.get(1).and_then(Value::as_str),
                ) else {
                    return;
                };
                let Some(ns) = existing(&io, nsp) else { return };
                let room = Room::from(room);
                match (action, filter(args.get(2))) {
                    ("join", Some(f)) => ns.to(f).sockets_join([room]).await,
                    ("join", None) => ns.sockets_join([room]).await,
                    (_, Some(f)) => ns.to(f).sockets_leave([room]).await,
                    (_, None) => ns.sockets_leave([room]).await,
                }
            }
        });
    }
    let io2 = io.clone();
    socket.on("_disconnect", move |_s, ev: Event| {
        let io = io2.clone();
        async move {
            let args = ev.args();
            let Some(nsp) = args.first().and_then(Value::as_str) else {
                return;
            };
            let close = matches!(args.get(1), Some(Value::Bool(true)));
            let Some(ns) = existing(&io, nsp) else { return };
            match filter(args.get(2)) {
                Some(f) => ns.to(f).disconnect_sockets(close).await,
                None => ns.disconnect_sockets(close).await,
            }
        }
    });
}

/// Every socket of every namespace on every node, as the app lists them.
async fn all_sockets(io: &Io) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for ns in io.namespaces() {
        for remote in ns.fetch_sockets().await {
            let local = ns.socket(remote.id());
            out.push(serialize_remote(&remote, ns.name(), local.as_ref()));
        }
    }
    out
}

/// What the app sees of a socket's client: its first 12 characters only, as the official package (the
/// full id would let anyone who sees the app hijack the session).
fn client_id(socket: &Socket) -> String {
    socket.conn_id().chars().take(12).collect()
}

fn watch_namespace(admin: &Namespace, ns: &Namespace, tracked: &Arc<Tracked>) {
    let is_admin = ns == admin;
    let admin2 = admin.clone();
    let tracked2 = tracked.clone();
    ns.on_connection(move |socket: Socket| {
        let admin = admin2.clone();
        let tracked = tracked2.clone();
        async move {
            // Other nodes describe this socket from its data, as the official package stores it there:
            // only when the application left it unset, so that its own data keeps its type.
            if matches!(socket.data_value(), Ok(Value::Object(ref m)) if m.is_empty()) {
                socket.set_data(serde_json::json!({
                    "_admin": { "clientId": client_id(&socket), "transport": socket.transport().as_str() }
                }));
            }
            let nsp = socket.nsp().to_owned();
            let described = serialize_socket(&socket, &nsp);
            tracked.insert(&socket, described["data"].clone());
            let _ = admin.emit("socket_connected", &(described, iso_now()));
            if !is_admin {
                let a = admin.clone();
                socket.on_any(move |s, event, args| {
                    let mut all = Vec::with_capacity(args.len() + 1);
                    all.push(Value::from(event));
                    all.extend_from_slice(args);
                    let _ = a.emit("event_received", &(s.nsp(), s.id(), all, iso_now()));
                });
                let a = admin.clone();
                socket.on_any_outgoing(move |s, event, args| {
                    let mut all = Vec::with_capacity(args.len() + 1);
                    all.push(Value::from(event));
                    all.extend_from_slice(args);
                    let _ = a.emit("event_sent", &(s.nsp(), s.id(), all, iso_now()));
                });
            }
            let a = admin.clone();
            socket.on_disconnect(move |s: Socket, reason: DisconnectReason| {
                let a = a.clone();
                tracked.remove(&s);
                async move {
                    let _ = a.emit(
                        "socket_disconnected",
                        &(s.nsp(), s.id(), reason.as_str(), iso_now()),
                    );
                }
            });
        }
    });
    let admin = admin.clone();
    let nsp = ns.name().to_owned();
    ns.adapter()
        .on_room_change(Arc::new(move |room: &Room, sid: &Sid, joined: bool| {
            let event = if joined { "room_joined" } else { "room_left" };
            let _ = admin.emit(event, &(&nsp, &**room, &**sid, iso_now()));
        }));
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Sends `server_stats` to every admin socket of the cluster at each interval, while the server runs.
async fn emit_stats(
    io: Io,
    admin: Namespace,
    options: Arc<AdminOptions>,
    events: ferrio::AggregatedEvents,
    tracked: Arc<Tracked>,
) {
    let host = hostname();
    let server_id = options.server_id.clone().unwrap_or_else(|| host.clone());
    let started = Instant::now();
    let mut tick = tokio::time::interval(options.server_stats_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if options.mode == Mode::Development {
            tracked.emit_updates(&io, &admin);
        }
        let mut polling = HashSet::new();
        let namespaces: Vec<serde_json::Value> = io
            .namespaces()
            .iter()
            .map(|ns| {
                let sockets = ns.sockets();
                for s in &sockets {
                    if s.transport() == ferrio::TransportKind::Polling {
                        polling.insert(s.conn_id().to_owned());
                    }
                }
                serde_json::json!({ "name": ns.name(), "socketsCount": sockets.len() })
            })
            .collect();
        let stats = serde_json::json!({
            "serverId": server_id,
            "hostname": host,
            "pid": std::process::id(),
            "uptime": started.elapsed().as_secs_f64(),
            "clientsCount": io.clients_count(),
            "pollingClientsCount": polling.len(),
            "aggregatedEvents": aggregated(&events),
            "namespaces": namespaces,
        });
        let _ = admin.emit("server_stats", &stats);
    }
}

/// The Engine.IO traffic since the last `server_stats`, one entry per second, type and close reason.
fn aggregated(events: &ferrio::AggregatedEvents) -> Vec<serde_json::Value> {
    events
        .take()
        .into_iter()
        .map(|e| {
            let mut v = serde_json::json!({
                "timestamp": e.timestamp,
                "type": e.kind,
                "count": e.count,
            });
            if let Some(sub) = e.sub_type {
                v["subType"] = sub.into();
            }
            v
        })
        .collect()
}
