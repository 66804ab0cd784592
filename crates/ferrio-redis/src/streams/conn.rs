//! The connections of one server to Redis for the Redis Streams adapter: one for commands (XADD, SET,
//! GETDEL, XRANGE), shared by every namespace, and one that blocks in `XREAD` and hands each entry to its
//! namespace. Both reconnect by themselves; the reader resumes from the last id it read, so a Redis
//! restart (or a network cut) loses nothing the stream still holds.
//!
//! A command that finds Redis gone waits for it to come back, up to [`OUTAGE`], before it fails: the
//! official adapter runs on node-redis, whose offline queue holds commands while it reconnects, so a
//! Redis restart loses neither the broadcasts appended meanwhile nor the sessions of the sockets that
//! dropped meanwhile. Appends go through one ordered queue (the stream gets one node's entries in the
//! order they were sent, retried as a block after a reconnection).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::entry::Fields;
use super::{RedisStreamsConfig, StreamsNamespace};
use crate::RedisAdapterError;
use crate::link::{Control, Link, Unavailable, bump};

/// How long one `XREAD` blocks before it is sent again (and the stop signal looked at).
const BLOCK: Duration = Duration::from_millis(2000);
/// How long to wait before reconnecting after an error.
const RETRY: Duration = Duration::from_millis(200);
/// How long a command waits for an unreachable Redis to come back before it fails (a restart takes
/// well under a second; a longer outage is an outage, and each node goes on alone).
pub(crate) const OUTAGE: Duration = Duration::from_secs(5);

/// Entries waiting for the writer; more are dropped (and counted) rather than held without bound.
const QUEUE: usize = 4096;
/// The most entries the writer sends in one pipeline.
const BATCH: usize = 256;

/// One stream entry as `XREAD` and `XRANGE` give it.
pub(crate) type Entry = (String, Vec<(String, String)>);

/// One `XADD` waiting for the writer.
struct Append {
    cmd: redis::Cmd,
    /// Where its entry id goes, when the caller waits for it.
    reply: Option<oneshot::Sender<Result<String, Unavailable>>>,
    /// When it is given up on if Redis is still unreachable.
    deadline: Instant,
}

impl Append {
    fn answer(self, result: Result<String, Unavailable>) {
        if let Some(reply) = self.reply {
            let _ = reply.send(result);
        }
    }
}

/// Why one attempt at a command failed.
enum Attempt {
    /// Redis is unreachable or not ready (restarting, loading its data): worth trying again.
    Retry,
    /// Redis refused the command itself.
    Fatal,
}

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
    /// The queue of [`append`](Self::append) and [`append_nowait`](Self::append_nowait), drained in
    /// order by [`write_loop`].
    writer: mpsc::Sender<Append>,
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

    /// Runs one command on the command connection, reconnecting first when it was lost, and waiting
    /// up to [`OUTAGE`] for an unreachable Redis to come back.
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &impl Query,
    ) -> Result<T, Unavailable> {
        self.query_until(cmd, Instant::now() + OUTAGE).await
    }

    /// [`query`](Self::query) giving up at `deadline`. A connection found dead (Redis restarted since
    /// the last command) is replaced and the command sent again at once; Redis unreachable or still
    /// loading its data is tried again every [`RETRY`]. A command that Redis ran but could not answer
    /// before its connection went (a shutdown at that very instant) runs twice: at least once, as with
    /// node-redis.
    async fn query_until<T: redis::FromRedisValue>(
        &self,
        cmd: &impl Query,
        deadline: Instant,
    ) -> Result<T, Unavailable> {
        let mut immediate = true;
        loop {
            if self.control.stopped() {
                return Err(Unavailable);
            }
            match self.attempt(cmd, &mut immediate).await {
                Ok(v) => return Ok(v),
                Err(Attempt::Fatal) => return Err(Unavailable),
                Err(Attempt::Retry) if immediate => immediate = false,
                Err(Attempt::Retry) => {
                    if Instant::now() + RETRY > deadline {
                        return Err(Unavailable);
                    }
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    /// One try of `cmd`; `fresh` says whether a dead connection found now may be retried at once (it
    /// is cleared when a retry is spent on that).
    async fn attempt<T: redis::FromRedisValue>(
        &self,
        cmd: &impl Query,
        fresh: &mut bool,
    ) -> Result<T, Attempt> {
        let Ok(mut conn) = self.command_connection().await else {
            *fresh = false;
            return Err(Attempt::Retry);
        };
        match cmd.run(&mut conn).await {
            Ok(v) => Ok(v),
            Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() => {
                tracing::debug!("redis streams adapter: connection lost: {e}");
                *self.cmd.lock().await = None;
                if *fresh {
                    bump(&self.control.counters.reconnects);
                }
                Err(Attempt::Retry)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    redis::ErrorKind::BusyLoadingError | redis::ErrorKind::TryAgain
                ) =>
            {
                *fresh = false;
                Err(Attempt::Retry)
            }
            Err(e) => {
                tracing::debug!("redis streams adapter: command failed: {e}");
                Err(Attempt::Fatal)
            }
        }
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

    /// Appends an entry; resolves with its id. It takes its place in the writer's queue, after the
    /// entries queued before it.
    pub(crate) async fn append(&self, fields: Fields) -> Result<String, Unavailable> {
        let (tx, rx) = oneshot::channel();
        if !self.enqueue(&fields, Some(tx)) {
            return Err(Unavailable);
        }
        rx.await.unwrap_or(Err(Unavailable))
    }

    /// Appends an entry without waiting. Entries reach the stream in the order they were queued (one
    /// writer, pipelined); a full queue drops the entry and counts it.
    pub(crate) fn append_nowait(&self, fields: Fields) {
        self.enqueue(&fields, None);
    }

    fn enqueue(
        &self,
        fields: &Fields,
        reply: Option<oneshot::Sender<Result<String, Unavailable>>>,
    ) -> bool {
        let append = Append {
            cmd: self.xadd(fields),
            reply,
            deadline: Instant::now() + OUTAGE,
        };
        let queued = self.writer.try_send(append).is_ok();
        if !queued {
            bump(&self.control.counters.dropped);
        }
        queued
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

/// Sends the queued appends in order, as many as are waiting in one pipeline. While Redis is
/// unreachable the same block is tried again, each entry until its deadline; nothing after it is sent
/// before it, so one node's entries keep their order in the stream.
async fn write_loop(driver: Weak<StreamsDriver>, mut queue: mpsc::Receiver<Append>) {
    let mut batch: Vec<Append> = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        let mut fresh = true;
        loop {
            let Some(d) = driver.upgrade() else { return };
            let counters = &d.control.counters;
            let now = Instant::now();
            if d.control.stopped() {
                counters.dropped.add(batch.len() as u64);
                batch.drain(..).for_each(|a| a.answer(Err(Unavailable)));
                break;
            }
            // The block is in queue order: the oldest entries are the first to expire.
            let expired = batch.iter().take_while(|a| a.deadline <= now).count();
            counters.dropped.add(expired as u64);
            batch
                .drain(..expired)
                .for_each(|a| a.answer(Err(Unavailable)));
            if batch.is_empty() {
                break;
            }
            let mut pipe = redis::pipe();
            for a in &batch {
                pipe.add_command(a.cmd.clone());
            }
            match d.attempt::<Vec<redis::Value>>(&pipe, &mut fresh).await {
                Ok(ids) => {
                    counters.published.add(batch.len() as u64);
                    let mut ids = ids.into_iter();
                    for a in batch.drain(..) {
                        let id = ids
                            .next()
                            .and_then(|v| redis::from_redis_value::<String>(&v).ok())
                            .ok_or(Unavailable);
                        a.answer(id);
                    }
                    break;
                }
                Err(Attempt::Fatal) => {
                    bump(&counters.publish_errors);
                    counters.dropped.add(batch.len() as u64);
                    batch.drain(..).for_each(|a| a.answer(Err(Unavailable)));
                    break;
                }
                // A dead connection found now: the new one is tried at once.
                Err(Attempt::Retry) if fresh => fresh = false,
                Err(Attempt::Retry) => {
                    drop(d);
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }
}
