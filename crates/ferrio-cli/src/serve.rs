//! `ferrio serve`: a configurable Socket.IO server running the demo chat application.

use std::sync::Arc;
use std::time::Duration;

use ferrio::{Event, Io, Socket};
use serde::Deserialize;
use tower_layer::Layer;

use crate::bundle;
use crate::config::{AdapterSpec, ServeOptions};
use crate::page::BundleGate;
use crate::{admin, ops, tls};

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
                    // Past max_rooms_per_socket the join is refused (and logged): answer false.
                    Ok(room) => socket.join([room]).is_ok(),
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
    /// The TLS certificate or key could not be loaded.
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    /// `--admin` is not `USER:PASSWORD`, or the metrics recorder could not be installed.
    #[error("{0}")]
    Admin(String),
}

/// How long `ferrio serve` waits for Redis at start before giving up.
const REDIS_WAIT: &str = "5 s";

/// A running cluster adapter, closed at shutdown.
enum AdapterHandle {
    Local,
    Redis(ferrio_redis::RedisAdapterHandle),
    Sharded(ferrio_redis::ShardedRedisAdapterHandle),
    Streams(ferrio_redis::RedisStreamsAdapterHandle),
}

impl AdapterHandle {
    fn close(&self) {
        match self {
            AdapterHandle::Local => {}
            AdapterHandle::Redis(h) => h.close(),
            AdapterHandle::Sharded(h) => h.close(),
            AdapterHandle::Streams(h) => h.close(),
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
        AdapterSpec::RedisStreams { url, key } => {
            tracing::info!(%url, stream = %key, "connecting to the redis streams adapter");
            let streams_config = ferrio_redis::RedisStreamsConfig::builder()
                .stream_name(key.clone())
                .build();
            let handle = ferrio_redis::RedisStreamsAdapterHandle::connect(url, streams_config)
                .await
                .map_err(|e| {
                    ServeError::Adapter(format!(
                        "redis-streams adapter: {e} (no answer within {REDIS_WAIT}; is redis-server running there?)"
                    ))
                })?;
            config.adapter = handle.factory();
            tracing::info!(%url, stream = %key, "redis streams adapter connected");
            Ok(AdapterHandle::Streams(handle))
        }
    }
}

/// How long the drain waits for clients to leave unless `--drain-timeout` says otherwise.
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the server until SIGTERM or Ctrl-C, then drains it (see [`ops::Ops::drain`]); a second signal
/// during the drain ends it at once.
pub async fn run(opts: ServeOptions) -> Result<(), ServeError> {
    // First: a metric handle taken before the recorder exists (the Redis link's, made with the adapter)
    // would count into nothing.
    let metrics = admin::metrics(&opts).map_err(ServeError::Admin)?;
    let spec = opts
        .adapter_spec()
        .map_err(|e| ServeError::Adapter(e.to_string()))?;
    let certs = match (&opts.tls_cert, &opts.tls_key) {
        (Some(cert), Some(key)) => Some(tls::CertStore::load(cert, key)?),
        _ => None,
    };
    let mut config = opts.io_config();
    let bundle = Arc::new(bundle::for_serve(&opts).map_err(ServeError::Bundle)?);
    if let Some(dir) = bundle.dir() {
        config.client_dist = dir.to_owned();
    }
    let adapter = connect_adapter(&spec, &mut config).await?;
    let io = Io::new(config);
    demo_app(&io);
    let admin_ui = admin::setup(&io, &opts).map_err(ServeError::Admin)?;
    let host = opts.host.clone().unwrap_or_else(|| "127.0.0.1".into());
    register_runtime(&tokio::runtime::Handle::current());
    let threads = if SPREADS_CONNECTIONS {
        opts.threads.unwrap_or_else(default_threads)
    } else {
        if opts.threads.is_some_and(|t| t > 1) {
            tracing::warn!(
                "one serving thread: this system does not spread connections over listeners"
            );
        }
        1
    };
    // Named only when there are several: a long-polling session's connections then follow it to the
    // thread of its handshake (see `ops::serve_plain`). The main thread is the first runtime counted.
    if threads > 1 {
        ferrio::set_serving_thread(1);
    }
    let mut listeners = bind(&host, opts.port.unwrap_or(3000), threads)?.into_iter();
    let listener = tokio::net::TcpListener::from_std(listeners.next().expect("one listener"))?;
    let addr = listener.local_addr()?;
    // Handlers installed before the listening line: a signal sent as soon as it is read must find them
    // (the default action of SIGTERM and SIGHUP ends the process).
    let mut signals = Signals::new()?;
    if let Some(certs) = &certs {
        reload_on_sighup(certs.clone());
    }
    let path: Arc<str> = opts.path.as_deref().unwrap_or("/socket.io/").into();
    let pages = {
        let (bundle, path) = (bundle.clone(), path.clone());
        tower::service_fn(move |req| {
            let ops = (admin_ui.clone(), metrics.clone());
            admin::admin_or_page(req, ops, bundle.clone(), path.clone())
        })
    };
    let ops = ops::Ops::new(io.engine().clone(), opts.max_connections);
    let service = ops::Gate::new(
        BundleGate::new(io.layer().layer(pages), bundle, &path),
        ops.clone(),
    );
    let header_read_timeout = opts
        .header_read_timeout
        .map_or(ferrio::DEFAULT_HEADER_READ_TIMEOUT, Duration::from_millis);
    let drain_timeout = opts
        .drain_timeout
        .map_or(DEFAULT_DRAIN_TIMEOUT, Duration::from_millis);
    let acceptor = certs
        .as_ref()
        .map(|c| tokio_rustls::TlsAcceptor::from(c.server_config()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    // The other threads, each with its own listener on the same port and its own runtime: a
    // connection and its tasks stay on the thread that accepted it.
    for (n, listener) in listeners.enumerate() {
        let (acceptor, service, ops) = (acceptor.clone(), service.clone(), ops.clone());
        let stop = stopped(stop_rx.clone());
        // The thread first, then its runtime: a runtime dropped here, inside this one, would panic.
        let (give, take) = std::sync::mpsc::channel::<tokio::runtime::Runtime>();
        std::thread::Builder::new()
            .name(format!("ferrio-{}", n + 1))
            .spawn(move || {
                // Counted in `RUNTIMES` after the main thread's and those of the threads before it.
                ferrio::set_serving_thread(u16::try_from(n + 2).unwrap_or(0));
                if let Ok(rt) = take.recv() {
                    // The connections left on this thread are closed by the main thread's
                    // `io.close()`, then the process exits: keep serving them until then.
                    rt.block_on(std::future::pending::<()>());
                }
            })?;
        let rt = crate::one_thread_runtime()?;
        // Accepting and counted before the listening line, a task as the main thread's accept loop.
        let listener = {
            let _entered = rt.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        rt.spawn(ops::accept_loop(
            listener,
            acceptor,
            service,
            ops,
            header_read_timeout,
            stop,
        ));
        register_runtime(rt.handle());
        if let Err(std::sync::mpsc::SendError(rt)) = give.send(rt) {
            rt.shutdown_background();
            return Err(std::io::Error::other("a serving thread ended at its start").into());
        }
    }
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{addr}");
    tracing::info!(%addr, tls = acceptor.is_some(), threads, "serving");
    let accepting = tokio::spawn(ops::accept_loop(
        listener,
        acceptor,
        service,
        ops.clone(),
        header_read_timeout,
        stopped(stop_rx),
    ));
    signals.next().await;
    tokio::select! {
        _ = ops.drain(drain_timeout) => {}
        _ = signals.next() => tracing::warn!("second signal: ending the drain now"),
    }
    // Whoever is left is closed now (with "server shutting down"), and the port released.
    let _ = stop_tx.send(true);
    let _ = accepting.await;
    io.close().await;
    // Let the close frames and the last poll answers go out.
    tokio::time::sleep(Duration::from_millis(200)).await;
    adapter.close();
    tracing::info!("stopped");
    Ok(())
}

/// The runtimes of the serving threads, for the figures `/metrics` sums over them.
static RUNTIMES: std::sync::Mutex<Vec<tokio::runtime::Handle>> = std::sync::Mutex::new(Vec::new());

/// Counts a runtime among the serving ones.
fn register_runtime(rt: &tokio::runtime::Handle) {
    RUNTIMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(rt.clone());
}

/// The runtime of serving thread `index` (counted from 1, in the order of `RUNTIMES`).
pub(crate) fn serving_runtime(index: u16) -> Option<tokio::runtime::Handle> {
    let runtimes = RUNTIMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    runtimes.get(usize::from(index).checked_sub(1)?).cloned()
}

/// Tasks alive on every serving thread's runtime (on the current one when none is registered: a test
/// that builds the service without `run`).
pub fn alive_tasks() -> usize {
    let runtimes = RUNTIMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if runtimes.is_empty() {
        return tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
    }
    runtimes.iter().map(|h| h.metrics().num_alive_tasks()).sum()
}

/// Threads when `threads` is not set: the CPUs this process may use.
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Whether listeners sharing a port through `SO_REUSEPORT` get the new connections spread over them
/// (Linux's behaviour; elsewhere the option exists with other meanings, or not at all).
const SPREADS_CONNECTIONS: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// `threads` listening sockets on `host`'s first address that takes them (as tokio's
/// `TcpListener::bind` tries each). With more than one, each has `SO_REUSEPORT`, so the kernel
/// spreads new connections over the serving threads; the first binds the port (any free one for 0),
/// the others bind the same.
fn bind(host: &str, port: u16, threads: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    use std::net::ToSocketAddrs;
    let mut last = None;
    for addr in (host, port).to_socket_addrs()? {
        match bind_group(addr, threads) {
            Ok(listeners) => return Ok(listeners),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("no address for {host}"),
        )
    }))
}

fn bind_group(
    mut addr: std::net::SocketAddr,
    threads: usize,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    let shared = threads > 1;
    if shared && addr.port() != 0 {
        // A server already on the port (another process of this user with `SO_REUSEPORT`) would
        // otherwise share it silently, each getting part of the clients: a socket without the option
        // finds it.
        drop(listen_on(addr, false)?);
    }
    let mut out = Vec::with_capacity(threads);
    for _ in 0..threads.max(1) {
        let listener = listen_on(addr, shared)?;
        addr = listener.local_addr()?;
        out.push(listener);
    }
    Ok(out)
}

fn listen_on(addr: std::net::SocketAddr, shared: bool) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // As tokio's `TcpListener::bind`: a restart does not wait for the old connections' TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if shared {
        socket.set_reuse_port(true)?;
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = shared;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Reads the certificate again on every SIGHUP, from a task; a failed reload keeps the certificate
/// in use. The handler is installed before this returns.
fn reload_on_sighup(certs: Arc<tls::CertStore>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "no SIGHUP handler: the certificate will not be reloaded");
                return;
            }
        };
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match certs.reload() {
                    Ok(()) => tracing::info!("TLS certificate reloaded"),
                    Err(e) => tracing::error!(
                        error = %e,
                        "TLS certificate not reloaded, keeping the previous one"
                    ),
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = certs;
}

/// SIGTERM and Ctrl-C (SIGINT), installed before serving so that none is missed.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
