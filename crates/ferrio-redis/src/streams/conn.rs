//! The connections of one server to Redis for the Redis Streams adapter: one for commands (XADD, SET,
//! GETDEL, XRANGE), shared by every namespace, and one that blocks in `XREAD` and hands each entry to its
//! namespace. Both reconnect by themselves; the reader resumes from the last id it read, so a Redis
//! restart (or a network cut) loses nothing the stream still holds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;

use super::entry::Fields;
use super::{RedisStreamsConfig, StreamsNamespace};
use crate::RedisAdapterError;
use crate::link::{Control, Link, Unavailable, bump};

/// How long one `XREAD` blocks before it is sent again (and the stop signal looked at).
const BLOCK: Duration = Duration::from_millis(2000);
/// How long to wait before reconnecting after an error.
const RETRY: Duration = Duration::from_millis(200);

/// Entries waiting for the writer; more are dropped (and counted) rather than held without bound.
const QUEUE: usize = 4096;
/// The most entries the writer sends in one pipeline.
const BATCH: usize = 256;

/// One stream entry as `XREAD` and `XRANGE` give it.
pub(crate) type Entry = (String, Vec<(String, String)>);

pub(crate) struct StreamsDriver {
    client: redis::Client,
    config: Arc<RedisStreamsConfig>,
    control: Control,
    /// The command connection; `None` after an error, until the next command reconnects.
    cmd: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    namespaces: Mutex<HashMap<String, Weak<StreamsNamespace>>>,
    connected: AtomicBool,
    /// The id of the last entry handed to the namespaces; held while entries are handed over, so that
    /// a session restore can take its missed entries up to exactly there.
    pub(crate) reading: tokio::sync::Mutex<String>,
    /// The queue of [`append_nowait`](Self::append_nowait), drained by [`write_loop`].
    writer: mpsc::Sender<redis::Cmd>,
}

impl Link for StreamsDriver {
    fn control(&self) -> &Control {
        &self.control
    }

    fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
}

impl StreamsDriver {
    /// Connects, learns where the stream ends now (reading starts after it: what was there before
    /// this node is not for it), and starts the reader.
    pub(crate) async fn connect(
        url: &str,
        config: Arc<RedisStreamsConfig>,
        within: Duration,
    ) -> Result<Arc<StreamsDriver>, RedisAdapterError> {
        let client = redis::Client::open(url).map_err(RedisAdapterError::Url)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(RedisAdapterError::NoRuntime);
        }
        let unreachable = || RedisAdapterError::Unreachable(url.to_owned());
        let mut conn = tokio::time::timeout(within, client.get_multiplexed_async_connection())
            .await
            .map_err(|_| unreachable())?
            .map_err(|_| unreachable())?;
        let last: Vec<Entry> = redis::cmd("XREVRANGE")
            .arg(&config.stream_name)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
            .map_err(RedisAdapterError::Redis)?;
        let start = last
            .into_iter()
            .next()
            .map_or_else(|| "0-0".to_owned(), |(id, _)| id);
        let (writer, queue) = mpsc::channel(QUEUE);
        let driver = Arc::new(StreamsDriver {
            client,
            config,
            control: Control::new("redis-streams"),
            cmd: tokio::sync::Mutex::new(Some(conn)),
            namespaces: Mutex::new(HashMap::new()),
            connected: AtomicBool::new(true),
            reading: tokio::sync::Mutex::new(start.clone()),
            writer,
        });
        tokio::spawn(read_loop(Arc::downgrade(&driver), start));
        tokio::spawn(write_loop(Arc::downgrade(&driver), queue));
        Ok(driver)
    }

    pub(crate) fn config(&self) -> &RedisStreamsConfig {
        &self.config
    }

    pub(crate) fn register(&self, nsp: &str, ns: Weak<StreamsNamespace>) {
        self.namespaces.lock().insert(nsp.to_owned(), ns);
    }

    pub(crate) fn unregister(&self, nsp: &str) {
        self.namespaces.lock().remove(nsp);
    }

    /// Runs one command on the command connection, reconnecting first when it was lost. A connection
    /// found dead by this command (Redis restarted since the last one) is replaced and the command
    /// sent once more on the new one: the dead one could not have taken it.
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &impl Query,
    ) -> Result<T, Unavailable> {
        for attempt in 0..2 {
            if self.control.stopped() {
                return Err(Unavailable);
            }
            let mut conn = self.command_connection().await?;
            match cmd.run(&mut conn).await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_io_error() || e.is_connection_dropped() => {
                    tracing::debug!("redis streams adapter: connection lost: {e}");
                    *self.cmd.lock().await = None;
                    if attempt == 0 {
                        bump(&self.control.counters.reconnects);
                    }
                }
                Err(e) => {
                    tracing::debug!("redis streams adapter: command failed: {e}");
                    return Err(Unavailable);
                }
            }
        }
        Err(Unavailable)
    }

    async fn command_connection(&self) -> Result<MultiplexedConnection, Unavailable> {
        let mut guard = self.cmd.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        match self.client.get_multiplexed_async_connection().await {
            Ok(c) => {
                *guard = Some(c.clone());
                Ok(c)
            }
            Err(e) => {
                tracing::debug!("redis streams adapter: reconnecting: {e}");
                Err(Unavailable)
            }
        }
    }

    fn xadd(&self, fields: &Fields) -> redis::Cmd {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&self.config.stream_name)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.config.max_len)
            .arg("*");
        for (k, v) in fields.args() {
            cmd.arg(k).arg(v);
        }
        cmd
    }

    /// Appends an entry; resolves with its id.
    pub(crate) async fn append(&self, fields: Fields) -> Result<String, Unavailable> {
        let res = self.query::<String>(&self.xadd(&fields)).await;
        bump(if res.is_ok() {
            &self.control.counters.published
        } else {
            &self.control.counters.dropped
        });
        res
    }

    /// Appends an entry without waiting. Entries queued here reach the stream in the order they were
    /// queued (one writer, pipelined); a full queue drops the entry and counts it.
    pub(crate) fn append_nowait(&self, fields: Fields) {
        if self.writer.try_send(self.xadd(&fields)).is_err() {
            bump(&self.control.counters.dropped);
        }
    }

    /// `XRANGE` of the stream from `start` to `end` (inclusive), at most `count` entries.
    pub(crate) async fn range(
        &self,
        start: &str,
        end: &str,
        count: Option<usize>,
    ) -> Result<Vec<Entry>, Unavailable> {
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(&self.config.stream_name).arg(start).arg(end);
        if let Some(n) = count {
            cmd.arg("COUNT").arg(n);
        }
        self.query(&cmd).await
    }

    fn dispatch(&self, entries: Vec<Entry>) {
        self.control.counters.received.add(entries.len() as u64);
        for (id, pairs) in entries {
            let fields = Fields::from_pairs(pairs);
            let ns = self
                .namespaces
                .lock()
                .get(&fields.nsp)
                .and_then(Weak::upgrade);
            if let Some(ns) = ns {
                ns.on_entry(&fields, &id);
            }
        }
    }
}

/// The `XREAD` answer: `[[stream, [[id, [field, value, …]], …]]]`, or nil on timeout.
type XreadReply = Option<Vec<(String, Vec<Entry>)>>;

async fn read_loop(driver: Weak<StreamsDriver>, mut offset: String) {
    let mut conn: Option<MultiplexedConnection> = None;
    loop {
        let Some(d) = driver.upgrade() else { return };
        if d.control.stopped() {
            return;
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match d.client.get_multiplexed_async_connection().await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    tracing::debug!("redis streams adapter: reader reconnecting: {e}");
                    d.connected.store(false, Ordering::Relaxed);
                    drop(d);
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            },
        };
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(d.config.read_count)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&d.config.stream_name)
            .arg(&offset);
        let mut stop = d.control.stop_signal();
        // Hold no strong reference while blocked, so that dropping every handle ends the loop.
        let config_name = d.config.stream_name.clone();
        drop(d);
        let reply = tokio::select! {
            r = cmd.query_async::<XreadReply>(c) => r,
            _ = stop.changed() => return,
        };
        let Some(d) = driver.upgrade() else { return };
        match reply {
            Ok(reply) => {
                d.connected.store(true, Ordering::Relaxed);
                let mut reading = d.reading.lock().await;
                for (stream, entries) in reply.unwrap_or_default() {
                    if stream != config_name {
                        continue;
                    }
                    if let Some((id, _)) = entries.last() {
                        offset = id.clone();
                        reading.clone_from(&offset);
                    }
                    d.dispatch(entries);
                }
            }
            Err(e) => {
                tracing::debug!("redis streams adapter: XREAD failed: {e}");
                d.connected.store(false, Ordering::Relaxed);
                bump(&d.control.counters.reconnects);
                conn = None;
                drop(d);
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// A command or a pipeline, as [`StreamsDriver::query`] runs it.
pub(crate) trait Query: Sync {
    fn run<T: redis::FromRedisValue>(
        &self,
        conn: &mut MultiplexedConnection,
    ) -> impl Future<Output = redis::RedisResult<T>> + Send;
}

impl Query for redis::Cmd {
    fn run<T: redis::FromRedisValue>(
        &self,
        conn: &mut MultiplexedConnection,
    ) -> impl Future<Output = redis::RedisResult<T>> + Send {
        self.query_async(conn)
    }
}

impl Query for redis::Pipeline {
    fn run<T: redis::FromRedisValue>(
        &self,
        conn: &mut MultiplexedConnection,
    ) -> impl Future<Output = redis::RedisResult<T>> + Send {
        self.query_async(conn)
    }
}

/// Sends the queued appends in order, as many as are waiting in one pipeline.
async fn write_loop(driver: Weak<StreamsDriver>, mut queue: mpsc::Receiver<redis::Cmd>) {
    let mut batch = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        let Some(d) = driver.upgrade() else { return };
        let n = batch.len() as u64;
        let mut pipe = redis::pipe();
        for cmd in batch.drain(..) {
            pipe.add_command(cmd).ignore();
        }
        let counter = match d.query::<()>(&pipe).await {
            Ok(()) => &d.control.counters.published,
            Err(_) => &d.control.counters.dropped,
        };
        counter.add(n);
    }
}
