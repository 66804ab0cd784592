//! The Redis Streams adapter, compatible with `@socket.io/redis-streams-adapter` 0.3.x: every node of
//! every namespace appends its messages (and its answers) to one stream, and reads the stream from where
//! it last was. Entries are the fields `uid`, `nsp`, `type` and, when there is one, `data` (JSON, or
//! base64 MessagePack when a type that may carry binary does), with socket.io-adapter's `ClusterAdapter`
//! messages ([`crate::cluster::wire`]). Membership comes from heartbeats, as in
//! `ClusterAdapterWithHeartbeat`.
//!
//! ```no_run
//! # async fn run() -> Result<(), ferrio_redis::RedisAdapterError> {
//! let redis = ferrio_redis::RedisStreamsAdapterHandle::connect(
//!     "redis://127.0.0.1:6379",
//!     ferrio_redis::RedisStreamsConfig::default(),
//! )
//! .await?;
//! let io = ferrio::Io::new(ferrio::IoConfig::builder().adapter(redis.factory()).build());
//! # let _ = io; Ok(()) }
//! ```

mod conn;
pub(crate) mod entry;
pub(crate) mod session;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use ferrio_core::BoxFuture;
use parking_lot::Mutex;

use crate::RedisAdapterError;
use crate::cluster::transport::{Inbox, Offset, Rejoin, Restored, Transport};
use crate::cluster::{self, ClusterAdapter, CoreOptions, Decoded, Message, Response};
use crate::handle::AdapterHandle;
use crate::link::{Link, Unavailable};
use crate::wire;
pub(crate) use conn::StreamsDriver;

/// Options of the Redis Streams adapter, named and defaulted as `createAdapter` of
/// `@socket.io/redis-streams-adapter` names them. Build one with [`RedisStreamsConfig::builder`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStreamsConfig {
    /// The stream, `streamName` (`socket.io`).
    pub stream_name: String,
    /// The approximate maximum length of the stream (`XADD MAXLEN ~`), `maxLen` (10 000).
    pub max_len: usize,
    /// Entries read per `XREAD`, `readCount` (100).
    pub read_count: usize,
    /// Prefix of the session keys (connection state recovery), `sessionKeyPrefix` (`sio:session:`).
    pub session_key_prefix: String,
    /// How often a node says it is alive, `heartbeatInterval` (5 s).
    pub heartbeat_interval: Duration,
    /// How long a silent node still counts, `heartbeatTimeout` (10 s).
    pub heartbeat_timeout: Duration,
    /// How long requests to other nodes wait for their answers, `requestsTimeout` (5 s).
    pub requests_timeout: Duration,
}

impl Default for RedisStreamsConfig {
    fn default() -> Self {
        RedisStreamsConfig {
            stream_name: "socket.io".into(),
            max_len: 10_000,
            read_count: 100,
            session_key_prefix: "sio:session:".into(),
            heartbeat_interval: Duration::from_millis(5000),
            heartbeat_timeout: Duration::from_millis(10_000),
            requests_timeout: Duration::from_millis(5000),
        }
    }
}

config_builder! {
    /// Builds a [`RedisStreamsConfig`]; unset options keep their official defaults.
    RedisStreamsConfigBuilder builds RedisStreamsConfig {
        /// The stream (`socket.io`).
        stream_name: String,
        /// The approximate maximum length of the stream (10 000).
        max_len: usize,
        /// Entries read per `XREAD` (100).
        read_count: usize,
        /// Prefix of the session keys (`sio:session:`).
        session_key_prefix: String,
        /// How often a node says it is alive (5 s).
        heartbeat_interval: Duration,
        /// How long a silent node still counts (10 s).
        heartbeat_timeout: Duration,
        /// How long requests to other nodes wait for their answers (5 s).
        requests_timeout: Duration,
    }
}

/// The adapter of one namespace on the Redis Streams adapter.
pub type RedisStreamsAdapter = ClusterAdapter<StreamsTransport>;

/// The connection of one server to Redis (the Redis Streams adapter).
pub type RedisStreamsAdapterHandle = AdapterHandle<StreamsTransport>;

impl AdapterHandle<StreamsTransport> {
    /// Connects to the Redis at `url`, waiting up to 5 s; reading starts at the stream's current end.
    pub async fn connect(
        url: &str,
        config: RedisStreamsConfig,
    ) -> Result<RedisStreamsAdapterHandle, RedisAdapterError> {
        let config = Arc::new(config);
        let driver = StreamsDriver::connect(url, config.clone(), Duration::from_secs(5)).await?;
        let options = CoreOptions {
            requests_timeout: config.requests_timeout,
            track_rooms: false,
        };
        let d = driver.clone();
        let factory = cluster::factory(options, move |nsp, uid| StreamsTransport {
            ns: Arc::new(StreamsNamespace {
                driver: d.clone(),
                uid: uid.to_owned(),
                nsp: nsp.to_owned(),
                nodes: Mutex::new(HashMap::new()),
                inbox: OnceLock::new(),
                heartbeat: Mutex::new(None),
            }),
        });
        Ok(AdapterHandle::new(driver, factory, config))
    }
}

/// The Redis Streams transport of one namespace.
pub struct StreamsTransport {
    ns: Arc<StreamsNamespace>,
}

pub(crate) struct StreamsNamespace {
    driver: Arc<StreamsDriver>,
    uid: String,
    nsp: String,
    /// Other nodes of this namespace and when each was last heard of.
    nodes: Mutex<HashMap<String, Instant>>,
    inbox: OnceLock<Weak<dyn Inbox>>,
    heartbeat: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl StreamsNamespace {
    /// One entry read from the stream for this namespace, at `id`.
    pub(crate) fn on_entry(&self, fields: &entry::Fields, id: &str) {
        let Some(inbox) = self.inbox.get().and_then(Weak::upgrade) else {
            return;
        };
        let counters = self.driver.counters();
        let decoded = fields
            .to_value()
            .and_then(|v| cluster::wire::decode_value(v, &self.nsp, false, counters));
        match decoded {
            Ok(Some(Decoded::Message(mut m))) => {
                if let Some(from) = m.from.as_deref().filter(|f| *f != self.uid) {
                    self.heard(from, &m.message);
                }
                m.offset = Some(id.to_owned());
                inbox.on_message(m);
            }
            Ok(Some(Decoded::Response(r))) => inbox.on_response(r),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!("redis streams adapter: ignoring malformed entry {id}: {e}");
                crate::link::bump(&counters.malformed);
            }
        }
    }

    /// Membership: any message says its node is alive; an initial heartbeat is answered so that the new
    /// node counts this one at once; a closing adapter leaves.
    fn heard(&self, from: &str, message: &Message) {
        match message {
            Message::AdapterClose => {
                self.nodes.lock().remove(from);
            }
            Message::Heartbeat { initial } => {
                let new = self
                    .nodes
                    .lock()
                    .insert(from.to_owned(), Instant::now())
                    .is_none();
                if *initial || new {
                    self.send_nowait(&Message::Heartbeat { initial: false });
                }
            }
            _ => {
                self.nodes.lock().insert(from.to_owned(), Instant::now());
            }
        }
    }

    fn send_nowait(&self, msg: &Message) {
        if let Some(fields) = entry::Fields::of_message(msg, &self.uid, &self.nsp) {
            self.driver.append_nowait(fields);
        }
    }
}

impl Transport for StreamsTransport {
    fn new_id() -> String {
        wire::hex_id()
    }

    fn subscribe(&self, inbox: Weak<dyn Inbox>) {
        let _ = self.ns.inbox.set(inbox);
        self.ns
            .driver
            .register(&self.ns.nsp, Arc::downgrade(&self.ns));
        self.ns.send_nowait(&Message::Heartbeat { initial: true });
        let ns = Arc::downgrade(&self.ns);
        let every = self.ns.driver.config().heartbeat_interval;
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(ns) = ns.upgrade() else { return };
                ns.send_nowait(&Message::Heartbeat { initial: false });
            }
        });
        *self.ns.heartbeat.lock() = Some(task);
    }

    fn unsubscribe(&self) {
        if let Some(task) = self.ns.heartbeat.lock().take() {
            task.abort();
        }
        self.ns.send_nowait(&Message::AdapterClose);
        self.ns.driver.unregister(&self.ns.nsp);
    }

    fn publish_nowait(&self, msg: &Message) {
        self.ns.send_nowait(msg);
    }

    fn publish(&self, msg: &Message) -> BoxFuture<Result<Offset, Unavailable>> {
        let fields = entry::Fields::of_message(msg, &self.ns.uid, &self.ns.nsp);
        let driver = self.ns.driver.clone();
        Box::pin(async move {
            let id = driver.append(fields.ok_or(Unavailable)?).await?;
            Ok(Some(id))
        })
    }

    /// Every answer goes to the stream too; the requester knows its own request ids.
    fn publish_response(&self, _requester: Option<&str>, response: &Response) {
        if let Some(fields) = entry::Fields::of_response(response, &self.ns.uid, &self.ns.nsp) {
            self.ns.driver.append_nowait(fields);
        }
    }

    fn supports_recovery() -> bool {
        true
    }

    fn persist_session(
        &self,
        session: &ferrio_core::adapter::Session,
        ttl: Duration,
    ) -> BoxFuture<Result<(), Unavailable>> {
        let ns = self.ns.clone();
        let key = format!("{}{}", ns.driver.config().session_key_prefix, session.pid);
        let value = session::encode(session);
        // `SET … PX`: the official adapter keeps the session for `maxDisconnectionDuration` ms.
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        Box::pin(async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(value).arg("PX").arg(ttl);
            ns.driver.query::<()>(&cmd).await
        })
    }

    fn restore_session(
        &self,
        pid: &str,
        offset: &str,
        rejoin: Rejoin,
    ) -> BoxFuture<Result<Option<Restored>, Unavailable>> {
        let ns = self.ns.clone();
        let (pid, offset) = (pid.to_owned(), offset.to_owned());
        Box::pin(async move { session::restore(&ns, &pid, &offset, rejoin).await })
    }

    fn server_count(&self) -> BoxFuture<Result<usize, Unavailable>> {
        let timeout = self.ns.driver.config().heartbeat_timeout;
        let mut nodes = self.ns.nodes.lock();
        nodes.retain(|_, seen| seen.elapsed() < timeout);
        let count = nodes.len() + 1;
        Box::pin(async move { Ok(count) })
    }
}
