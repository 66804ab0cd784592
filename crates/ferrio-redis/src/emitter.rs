//! Emits to the clients of Socket.IO servers (ferrio or Node) from a process that is not one, in the
//! format of `@socket.io/redis-emitter` 5.x (uid `"emitter"`).

use std::sync::Arc;

use ferrio_core::adapter::{BroadcastOptions, Room};
use ferrio_proto::socket::{Packet, normalize_namespace};
use ferrio_proto::value::Value;

use crate::classic::conn::Driver;
use crate::classic::{Route, encode_message, start_driver, wait_connected};
use crate::cluster::Message;
use crate::link::{Link, PublishQueue};
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
        let driver = start_driver(client_url)?;
        wait_connected(&driver, client_url).await?;
        Ok(Emitter {
            driver,
            key: Arc::from(config.key.as_str()),
            nsp: "/".into(),
            opts: BroadcastOptions::default(),
        })
    }

    /// The same emitter for namespace `nsp`.
    pub fn of(&self, nsp: &str) -> Emitter {
        Emitter {
            nsp: normalize_namespace(nsp).into_owned(),
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

    /// Publishes a message as the official emitter writes it: uid `emitter` on broadcasts and
    /// server-side emits, no uid on join, leave and disconnect.
    async fn publish(&self, msg: Message) -> Result<(), NotPublished> {
        let uid = matches!(
            msg,
            Message::Broadcast { .. } | Message::ServerSideEmit { .. }
        )
        .then_some(UID);
        let (route, payload) = encode_message(&msg, uid).ok_or(NotPublished)?;
        let channel = match route {
            Route::Broadcast(None) => format!("{}#{}#", self.key, self.nsp),
            Route::Broadcast(Some(room)) => format!("{}#{}#{room}#", self.key, self.nsp),
            Route::Request => format!("{}-request#{}#", self.key, self.nsp),
        };
        self.driver
            .publish(channel, payload)
            .await
            .map_err(|_| NotPublished)
    }

    /// Emits `event` with `args` to the targeted clients of every node.
    pub async fn emit(&self, event: &str, args: Vec<Value>) -> Result<(), NotPublished> {
        let packet = Packet::Event {
            nsp: self.nsp.clone(),
            event: event.to_owned(),
            args,
            id: None,
        };
        self.publish(Message::Broadcast {
            packet,
            opts: self.opts.clone(),
        })
        .await
    }

    fn rooms(rooms: &[&str]) -> Vec<Room> {
        rooms.iter().map(|r| Room::from(*r)).collect()
    }

    /// Makes the targeted sockets join rooms.
    pub async fn sockets_join(&self, rooms: &[&str]) -> Result<(), NotPublished> {
        self.publish(Message::SocketsJoin {
            opts: self.opts.clone(),
            rooms: Self::rooms(rooms),
        })
        .await
    }

    /// Makes the targeted sockets leave rooms.
    pub async fn sockets_leave(&self, rooms: &[&str]) -> Result<(), NotPublished> {
        self.publish(Message::SocketsLeave {
            opts: self.opts.clone(),
            rooms: Self::rooms(rooms),
        })
        .await
    }

    /// Disconnects the targeted sockets.
    pub async fn disconnect_sockets(&self, close: bool) -> Result<(), NotPublished> {
        self.publish(Message::DisconnectSockets {
            opts: self.opts.clone(),
            close,
        })
        .await
    }

    /// Emits to the server-side handlers of every node (no acks, as with the official emitter).
    pub async fn server_side_emit(&self, event: &str, args: &[Value]) -> Result<(), NotPublished> {
        self.publish(Message::ServerSideEmit {
            request_id: None,
            event: event.to_owned(),
            args: args.to_vec(),
        })
        .await
    }

    /// Stops the emitter's connections.
    pub fn close(&self) {
        self.driver.shutdown();
    }
}
