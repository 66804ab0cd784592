//! Emits to the clients of Socket.IO servers (ferrio or Node) from a process that is not one, in the
//! format of `@socket.io/redis-emitter` 5.x (uid `"emitter"`).

use std::collections::HashSet;
use std::sync::Arc;

use ferrio_core::adapter::{BroadcastOptions, Room};
use ferrio_proto::socket::Packet;
use ferrio_proto::value::Value;

use crate::conn::Driver;
use crate::wire::{self, RequestType};
use crate::{RedisAdapterConfig, RedisAdapterError};

const UID: &str = "emitter";

/// A Redis emitter targeting one namespace; `to`/`except`/`volatile`/`compress` return narrowed copies.
#[derive(Clone)]
pub struct Emitter {
    driver: Arc<Driver>,
    key: Arc<str>,
    nsp: String,
    opts: BroadcastOptions,
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter")
            .field("nsp", &self.nsp)
            .field("opts", &self.opts)
            .finish()
    }
}

/// The emitter could not publish (Redis unreachable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("redis unreachable: not published")]
pub struct NotPublished;

impl Emitter {
    /// Connects (waits up to 5 s for Redis) and targets the main namespace.
    pub async fn connect(
        client_url: &str,
        config: RedisAdapterConfig,
    ) -> Result<Emitter, RedisAdapterError> {
        let handle = crate::RedisAdapterHandle::connect(client_url, config.clone()).await?;
        Ok(Emitter {
            driver: handle.driver.clone(),
            key: Arc::from(config.key.as_str()),
            nsp: "/".into(),
            opts: BroadcastOptions::default(),
        })
    }

    /// The same emitter for namespace `nsp`.
    pub fn of(&self, nsp: &str) -> Emitter {
        let nsp = if nsp.starts_with('/') {
            nsp.to_owned()
        } else {
            format!("/{nsp}")
        };
        Emitter {
            nsp,
            opts: BroadcastOptions::default(),
            ..self.clone()
        }
    }

    /// Targets a room.
    pub fn to(mut self, room: impl Into<Room>) -> Emitter {
        self.opts.rooms.insert(room.into());
        self
    }

    /// Excludes a room.
    pub fn except(mut self, room: impl Into<Room>) -> Emitter {
        self.opts.except.insert(room.into());
        self
    }

    /// Droppable packets.
    pub fn volatile(mut self) -> Emitter {
        self.opts.flags.volatile = true;
        self
    }

    /// Compression wish.
    pub fn compress(mut self, compress: bool) -> Emitter {
        self.opts.flags.compress = Some(compress);
        self
    }

    fn broadcast_channel(&self) -> String {
        format!("{}#{}#", self.key, self.nsp)
    }

    fn request_channel(&self) -> String {
        format!("{}-request#{}#", self.key, self.nsp)
    }

    /// Emits `event` with `args` to the targeted clients of every node.
    pub async fn emit(&self, event: &str, args: Vec<Value>) -> Result<(), NotPublished> {
        let packet = Packet::Event {
            nsp: self.nsp.clone(),
            event: event.to_owned(),
            args,
            id: None,
        };
        let msg = Value::Array(vec![
            Value::String(UID.into()),
            wire::packet_to_value(&packet),
            wire::opts_to_value(&self.opts),
        ]);
        let mut channel = self.broadcast_channel();
        if self.opts.rooms.len() == 1
            && let Some(r) = self.opts.rooms.iter().next()
        {
            channel.push_str(r);
            channel.push('#');
        }
        self.driver
            .publish(channel, crate::msgpack::encode(&msg))
            .await
            .map_err(|_| NotPublished)
    }

    fn target(&self) -> serde_json::Value {
        let list = |s: &HashSet<Room>| s.iter().map(|r| r.to_string()).collect::<Vec<_>>();
        serde_json::json!({ "rooms": list(&self.opts.rooms), "except": list(&self.opts.except) })
    }

    async fn request(&self, req: serde_json::Value) -> Result<(), NotPublished> {
        self.driver
            .publish(self.request_channel(), req.to_string().into_bytes())
            .await
            .map_err(|_| NotPublished)
    }

    /// Makes the targeted sockets join rooms.
    pub async fn sockets_join(&self, rooms: &[&str]) -> Result<(), NotPublished> {
        self.request(serde_json::json!({
            "type": RequestType::RemoteJoin as u8, "opts": self.target(), "rooms": rooms,
        }))
        .await
    }

    /// Makes the targeted sockets leave rooms.
    pub async fn sockets_leave(&self, rooms: &[&str]) -> Result<(), NotPublished> {
        self.request(serde_json::json!({
            "type": RequestType::RemoteLeave as u8, "opts": self.target(), "rooms": rooms,
        }))
        .await
    }

    /// Disconnects the targeted sockets.
    pub async fn disconnect_sockets(&self, close: bool) -> Result<(), NotPublished> {
        self.request(serde_json::json!({
            "type": RequestType::RemoteDisconnect as u8, "opts": self.target(), "close": close,
        }))
        .await
    }

    /// Emits to the server-side handlers of every node (no acks, as with the official emitter).
    pub async fn server_side_emit(&self, event: &str, args: &[Value]) -> Result<(), NotPublished> {
        let mut data = vec![serde_json::Value::String(event.to_owned())];
        data.extend(args.iter().map(wire::to_node_json));
        self.request(serde_json::json!({
            "uid": UID, "type": RequestType::ServerSideEmit as u8, "data": data,
        }))
        .await
    }

    /// Stops the emitter's connections.
    pub fn close(&self) {
        self.driver.shutdown();
    }
}
