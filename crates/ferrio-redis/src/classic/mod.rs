//! The classic Redis adapter (`createAdapter` of `@socket.io/redis-adapter` 8.x): Pub/Sub with
//! SUBSCRIBE / PSUBSCRIBE on one Redis, two connections per server shared by every namespace.

pub(crate) mod codec;
pub(crate) mod conn;

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use ferrio_core::BoxFuture;
use ferrio_core::adapter::AdapterFactory;

use crate::cluster::transport::{Inbox, Offset, Transport};
use crate::cluster::{self, ClusterAdapter, CoreOptions, Decoded, Message, Response};
use crate::handle::AdapterHandle;
use crate::link::{Link, PublishQueue, Subscriber, Unavailable, bump};
use crate::{RedisAdapterError, wire};
pub(crate) use codec::{Route, encode_message};
use conn::Driver;

/// How payloads that may hold binary are encoded (broadcasts, broadcast acks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisParser {
    /// MessagePack as notepack.io 3.x writes it (the official adapter's default).
    #[default]
    Msgpack,
}

/// Options of the classic adapter, named and defaulted as `@socket.io/redis-adapter` names them. Build
/// one with [`RedisAdapterConfig::builder`] (or take the [`Default`] and set fields).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisAdapterConfig {
    /// Channel prefix, `key` (`socket.io`).
    pub key: String,
    /// How long `fetch_sockets`, `all_rooms` and `server_side_emit` with acks wait for other nodes,
    /// `requestsTimeout` (5 s).
    pub requests_timeout: Duration,
    /// Answer on `<key>-response#<nsp>#<uid>#` instead of `<key>-response#<nsp>#`,
    /// `publishOnSpecificResponseChannel` (off).
    pub publish_on_specific_response_channel: bool,
    /// Payload encoding, `parser` (MessagePack).
    pub parser: RedisParser,
}

impl Default for RedisAdapterConfig {
    fn default() -> Self {
        RedisAdapterConfig {
            key: "socket.io".into(),
            requests_timeout: Duration::from_millis(5000),
            publish_on_specific_response_channel: false,
            parser: RedisParser::Msgpack,
        }
    }
}

config_builder! {
    /// Builds a [`RedisAdapterConfig`]; unset options keep their official defaults.
    RedisAdapterConfigBuilder builds RedisAdapterConfig {
        /// Channel prefix (`socket.io`).
        key: String,
        /// How long requests to other nodes wait for their answers (5 s).
        requests_timeout: Duration,
        /// Answer on the requester's own response channel (off).
        publish_on_specific_response_channel: bool,
        /// Payload encoding (MessagePack).
        parser: RedisParser,
    }
}

/// The adapter of one namespace on the classic Redis adapter.
pub type RedisAdapter = ClusterAdapter<ClassicTransport>;

/// The connections of one server to one Redis (the classic adapter).
pub type RedisAdapterHandle = AdapterHandle<ClassicTransport>;

impl AdapterHandle<ClassicTransport> {
    /// Starts the connections in the background (they retry until Redis answers) and returns at once.
    pub fn start(
        client_url: &str,
        config: RedisAdapterConfig,
    ) -> Result<RedisAdapterHandle, RedisAdapterError> {
        Ok(Self::on(start_driver(client_url)?, config))
    }

    /// Starts the connections and waits (up to 5 s) until both are up.
    pub async fn connect(
        client_url: &str,
        config: RedisAdapterConfig,
    ) -> Result<RedisAdapterHandle, RedisAdapterError> {
        let driver = start_driver(client_url)?;
        wait_connected(&driver, client_url).await?;
        Ok(Self::on(driver, config))
    }

    fn on(driver: Arc<Driver>, config: RedisAdapterConfig) -> RedisAdapterHandle {
        let config = Arc::new(config);
        let options = CoreOptions {
            requests_timeout: config.requests_timeout,
            track_rooms: false,
        };
        let (d, c) = (driver.clone(), config.clone());
        let factory = cluster::factory(options, move |nsp, uid| ClassicTransport {
            ns: Arc::new(ClassicNamespace::new(d.clone(), &c, nsp, uid)),
        });
        AdapterHandle::new(driver, factory, config)
    }
}

/// Starts the two connections of a server (or of an emitter) in the background.
pub(crate) fn start_driver(client_url: &str) -> Result<Arc<Driver>, RedisAdapterError> {
    let client = redis::Client::open(client_url).map_err(RedisAdapterError::Url)?;
    tokio::runtime::Handle::try_current().map_err(|_| RedisAdapterError::NoRuntime)?;
    Ok(Driver::start(client))
}

/// Waits up to 5 s until both connections are up; stops them otherwise.
pub(crate) async fn wait_connected(
    driver: &Driver,
    client_url: &str,
) -> Result<(), RedisAdapterError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !driver.is_connected() {
        if tokio::time::Instant::now() >= deadline {
            driver.shutdown();
            return Err(RedisAdapterError::Unreachable(client_url.to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// The adapter factory for `IoConfig::adapter` (connections start in the background; needs a tokio
/// runtime). Use [`RedisAdapterHandle`] to wait for Redis first or to read the metrics.
pub fn redis_adapter(
    client_url: &str,
    config: RedisAdapterConfig,
) -> Result<AdapterFactory, RedisAdapterError> {
    Ok(RedisAdapterHandle::start(client_url, config)?.factory())
}

/// The classic Pub/Sub transport of one namespace.
pub struct ClassicTransport {
    ns: Arc<ClassicNamespace>,
}

/// Channel names and delivery of one namespace.
struct ClassicNamespace {
    driver: Arc<Driver>,
    uid: String,
    nsp: String,
    specific_responses: bool,
    /// `key#nsp#`: broadcasts (and `key#nsp#room#`).
    channel: String,
    /// `key#nsp#*`.
    pattern: String,
    /// `key-request#nsp#`.
    request: String,
    /// `key-response#nsp#`.
    response: String,
    /// `key-response#nsp#uid#`.
    specific: String,
    inbox: OnceLock<Weak<dyn Inbox>>,
}

impl ClassicNamespace {
    fn new(driver: Arc<Driver>, config: &RedisAdapterConfig, nsp: &str, uid: &str) -> Self {
        let key = &config.key;
        let response = format!("{key}-response#{nsp}#");
        ClassicNamespace {
            driver,
            uid: uid.to_owned(),
            nsp: nsp.to_owned(),
            specific_responses: config.publish_on_specific_response_channel,
            channel: format!("{key}#{nsp}#"),
            pattern: format!("{key}#{nsp}#*"),
            request: format!("{key}-request#{nsp}#"),
            specific: format!("{response}{uid}#"),
            response,
            inbox: OnceLock::new(),
        }
    }

    fn channels(&self) -> [String; 3] {
        [
            self.request.clone(),
            self.response.clone(),
            self.specific.clone(),
        ]
    }

    /// The channel and bytes of a message; `None` when this format cannot say it.
    fn encode(&self, msg: &Message) -> Option<(String, Vec<u8>)> {
        let (route, payload) = encode_message(msg, Some(&self.uid))?;
        let channel = match route {
            Route::Broadcast(None) => self.channel.clone(),
            Route::Broadcast(Some(room)) => format!("{}{room}#", self.channel),
            Route::Request => self.request.clone(),
        };
        Some((channel, payload))
    }

    fn malformed(&self, what: &str) {
        tracing::debug!("redis adapter: ignoring malformed message: {what}");
        bump(&self.driver.counters().malformed);
    }
}

impl Subscriber for ClassicNamespace {
    fn on_payload(&self, channel: &str, pattern: bool, payload: &[u8]) {
        let Some(inbox) = self.inbox.get().and_then(Weak::upgrade) else {
            return;
        };
        let decoded: Result<Option<Decoded>, String> = if pattern {
            let Some(rest) = channel.strip_prefix(self.channel.as_str()) else {
                return;
            };
            let room = rest.strip_suffix('#').unwrap_or(rest);
            if !room.is_empty() && !inbox.has_room(room) {
                return;
            }
            codec::decode_broadcast(payload, &self.nsp)
        } else if channel.starts_with(self.response.as_str()) {
            codec::decode_response(payload, self.driver.counters())
        } else if channel == self.request {
            codec::decode_request(payload).map(Some)
        } else {
            return;
        };
        match decoded {
            Ok(Some(Decoded::Message(m))) => inbox.on_message(m),
            Ok(Some(Decoded::Response(r))) => inbox.on_response(r),
            Ok(None) => {}
            Err(e) => self.malformed(&e),
        }
    }
}

impl Transport for ClassicTransport {
    fn new_id() -> String {
        wire::uid()
    }

    fn subscribe(&self, inbox: Weak<dyn Inbox>) {
        let _ = self.ns.inbox.set(inbox);
        let me: Arc<dyn Subscriber> = self.ns.clone();
        self.ns.driver.register(
            &Arc::downgrade(&me),
            &self.ns.channels(),
            std::slice::from_ref(&self.ns.pattern),
        );
    }

    fn unsubscribe(&self) {
        self.ns
            .driver
            .unregister(&self.ns.channels(), std::slice::from_ref(&self.ns.pattern));
    }

    fn publish_nowait(&self, msg: &Message) {
        self.ns.driver.send_nowait(self.ns.encode(msg));
    }

    fn publish(&self, msg: &Message) -> BoxFuture<Result<Offset, Unavailable>> {
        self.ns.driver.send(self.ns.encode(msg))
    }

    fn publish_response(&self, requester: Option<&str>, response: &Response) {
        let channel = match requester {
            Some(uid) if self.ns.specific_responses && codec::may_go_to_requester(response) => {
                format!("{}{uid}#", self.ns.response)
            }
            _ => self.ns.response.clone(),
        };
        self.ns
            .driver
            .publish_nowait(channel, codec::encode_response(response));
    }

    fn server_count(&self) -> BoxFuture<Result<usize, Unavailable>> {
        let (driver, channel) = (self.ns.driver.clone(), self.ns.request.clone());
        Box::pin(async move { driver.numsub(channel).await })
    }

    fn answers_all_rooms(&self) -> bool {
        true
    }
}
