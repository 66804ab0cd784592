//! `ferrio serve`: a configurable Socket.IO server running the demo chat application.

use std::sync::Arc;

use ferrio::{Event, Io, Socket};
use serde::Deserialize;
use tower_layer::Layer;

use crate::bundle;
use crate::config::{AdapterSpec, ServeOptions};
use crate::page::{self, BundleGate};

#[derive(Deserialize)]
struct ChatIn {
    room: Option<String>,
    text: String,
}

/// Registers the demo events on the main namespace.
pub fn demo_app(io: &Io) {
    let io2 = io.clone();
    io.on_connection(move |socket: Socket| {
        let io = io2.clone();
        async move {
            socket.on("join", |socket: Socket, mut ev: Event| async move {
                let ok = match ev.parse::<String>() {
                    Ok(room) => {
                        socket.join([room]);
                        true
                    }
                    Err(_) => false,
                };
                let _ = ev.ack(&ok);
            });
            socket.on("leave", |socket: Socket, mut ev: Event| async move {
                let ok = match ev.parse::<String>() {
                    Ok(room) => {
                        socket.leave(room);
                        true
                    }
                    Err(_) => false,
                };
                let _ = ev.ack(&ok);
            });
            socket.on("chat", move |socket: Socket, ev: Event| {
                let io = io.clone();
                async move {
                    let Ok(msg) = ev.parse::<ChatIn>() else { return };
                    let out = serde_json::json!({ "from": socket.id(), "room": msg.room, "text": msg.text });
                    match &msg.room {
                        Some(room) => {
                            let _ = io.to(room.as_str()).emit("chat", &out);
                            // The sender sees its own message even when it is not in the room.
                            if !socket.rooms().iter().any(|r| &**r == room.as_str()) {
                                let _ = socket.emit("chat", &out);
                            }
                        }
                        None => {
                            let _ = io.emit("chat", &out);
                        }
                    }
                }
            });
            socket.on("echo", |_socket, mut ev: Event| async move {
                let args = ev.take_args();
                if let Some(ack) = ev.take_ack() {
                    let _ = ack.send_args(args);
                }
            });
        }
    });
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Binding or serving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The adapter could not be set up (Redis unreachable, adapter not built in).
    #[error("{0}")]
    Adapter(String),
    /// The browser bundle's settings are inconsistent.
    #[error("{0}")]
    Bundle(String),
}

/// How long `ferrio serve` waits for Redis at start before giving up.
const REDIS_WAIT: &str = "5 s";

/// A running cluster adapter, closed at shutdown.
enum AdapterHandle {
    Local,
    Redis(ferrio_redis::RedisAdapterHandle),
    Sharded(ferrio_redis::ShardedRedisAdapterHandle),
}

impl AdapterHandle {
    fn close(&self) {
        match self {
            AdapterHandle::Local => {}
            AdapterHandle::Redis(h) => h.close(),
            AdapterHandle::Sharded(h) => h.close(),
        }
    }
}

/// Connects the adapter `spec` asks for, waiting for Redis, and sets `config.adapter`.
async fn connect_adapter(
    spec: &AdapterSpec,
    config: &mut ferrio::IoConfig,
) -> Result<AdapterHandle, ServeError> {
    match spec {
        AdapterSpec::Local => Ok(AdapterHandle::Local),
        AdapterSpec::Redis { url, key } => {
            tracing::info!(%url, %key, "connecting to the redis adapter");
            let redis_config = ferrio_redis::RedisAdapterConfig::builder()
                .key(key.clone())
                .build();
            let handle = ferrio_redis::RedisAdapterHandle::connect(url, redis_config)
                .await
                .map_err(|e| {
                    ServeError::Adapter(format!(
                        "redis adapter: {e} (no answer within {REDIS_WAIT}; is redis-server running there?)"
                    ))
                })?;
            config.adapter = handle.factory();
            tracing::info!(%url, %key, "redis adapter connected");
            Ok(AdapterHandle::Redis(handle))
        }
        AdapterSpec::RedisSharded { urls, key } => {
            tracing::info!(?urls, %key, "connecting to the sharded redis adapter (Redis Cluster)");
            let sharded_config = ferrio_redis::ShardedConfig::builder()
                .channel_prefix(key.clone())
                .build();
            let handle = ferrio_redis::ShardedRedisAdapterHandle::connect(urls.clone(), sharded_config)
                .await
                .map_err(|e| {
                    ServeError::Adapter(format!(
                        "redis-sharded adapter: {e} (no Redis Cluster answered within {REDIS_WAIT} at {})",
                        urls.join(", ")
                    ))
                })?;
            config.adapter = handle.factory();
            tracing::info!(?urls, %key, "sharded redis adapter connected");
            Ok(AdapterHandle::Sharded(handle))
        }
    }
}

/// Runs the server until Ctrl-C or SIGTERM, then closes every connection.
pub async fn run(opts: ServeOptions) -> Result<(), ServeError> {
    let spec = opts
        .adapter_spec()
        .map_err(|e| ServeError::Adapter(e.to_string()))?;
    let mut config = opts.io_config();
    let bundle = Arc::new(bundle::for_serve(&opts).map_err(ServeError::Bundle)?);
    if let Some(dir) = bundle.dir() {
        config.client_dist = dir.to_owned();
    }
    let adapter = connect_adapter(&spec, &mut config).await?;
    let io = Io::new(config);
    demo_app(&io);
    let host = opts.host.clone().unwrap_or_else(|| "127.0.0.1".into());
    let listener =
        tokio::net::TcpListener::bind((host.as_str(), opts.port.unwrap_or(3000))).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    tracing::info!(%addr, "serving");
    let path: Arc<str> = opts.path.as_deref().unwrap_or("/socket.io/").into();
    let pages = {
        let (bundle, path) = (bundle.clone(), path.clone());
        tower::service_fn(move |req| page::page(req, bundle.clone(), path.clone()))
    };
    let service = BundleGate::new(io.layer().layer(pages), bundle, &path);
    let result = tokio::select! {
        r = ferrio::serve(listener, service) => r,
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            io.close().await;
            // Let the close frames and the last poll answers go out.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            Ok(())
        }
    };
    adapter.close();
    Ok(result?)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
