//! Connection state recovery on the stream: sessions under `<session_key_prefix><pid>` (base64
//! MessagePack of `{sid, pid, rooms, data}`, as the official adapter stores them), and the broadcasts a
//! session missed read back from the stream by entry id.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ferrio_core::adapter::{Room, Session, SessionLog};
use ferrio_proto::value::Value;

use super::StreamsNamespace;
use super::conn::Entry;
use super::entry::Fields;
use crate::cluster::transport::{Rejoin, Restored};
use crate::cluster::{Decoded, Message};
use crate::link::{Link, Unavailable};
use crate::wire;

/// The most `XRANGE` calls of one restore (`RESTORE_SESSION_MAX_XRANGE_CALLS`): a stream written
/// faster than it is read must not keep a restore going forever.
const MAX_RANGE_CALLS: usize = 100;

pub(crate) fn encode(session: &Session) -> String {
    let value = wire::object(vec![
        ("sid", Value::String(session.sid.to_string())),
        ("pid", Value::String(session.pid.to_string())),
        (
            "rooms",
            Value::Array(
                session
                    .rooms
                    .iter()
                    .map(|r| Value::String(r.to_string()))
                    .collect(),
            ),
        ),
        ("data", session.data.clone()),
    ]);
    STANDARD.encode(crate::msgpack::encode(&value))
}

pub(crate) fn decode(raw: &str) -> Option<Session> {
    let bytes = STANDARD.decode(raw).ok()?;
    let v = crate::msgpack::decode(&bytes).ok()?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let rooms = v
        .get("rooms")
        .and_then(Value::as_array)?
        .iter()
        .filter_map(Value::as_str)
        .map(Room::from)
        .collect();
    Some(Session {
        sid: text("sid")?.into(),
        pid: text("pid")?.into(),
        rooms,
        data: v.get("data").cloned().unwrap_or(Value::Null),
    })
}

/// A stream entry id, `<ms>-<seq>`.
pub(crate) fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// The smallest id after `id` (exclusive ranges need Redis 6.2; this works everywhere).
fn next_id((ms, seq): (u64, u64)) -> String {
    match seq.checked_add(1) {
        Some(s) => format!("{ms}-{s}"),
        None => format!("{}-0", ms + 1),
    }
}

/// Keeps the broadcasts of `ns`'s namespace among `batch` that `session` would have received: a
/// restore holds what its socket missed, not every broadcast of the namespace since its offset (with
/// thousands of rooms, thousands of times more).
fn collect(
    ns: &StreamsNamespace,
    session: &Session,
    batch: Vec<Entry>,
    into: &mut Vec<(
        String,
        ferrio_proto::socket::Packet,
        ferrio_core::adapter::BroadcastOptions,
    )>,
) {
    let counters = ns.driver.counters();
    for (id, pairs) in batch {
        let fields = Fields::from_pairs(pairs);
        if fields.nsp != ns.nsp || fields.ty != "3" {
            continue;
        }
        let decoded = fields
            .to_value()
            .and_then(|v| crate::cluster::wire::decode_value(v, &ns.nsp, false, counters));
        if let Ok(Some(Decoded::Message(m))) = decoded
            && let Message::Broadcast { packet, opts } = m.message
            && SessionLog::is_eligible(&packet, &opts)
            && crate::cluster::reached(&session.rooms, &opts)
        {
            into.push((id, packet, opts));
        }
    }
}

pub(crate) async fn restore(
    ns: &StreamsNamespace,
    pid: &str,
    offset: &str,
    rejoin: Rejoin,
) -> Result<Option<Restored>, Unavailable> {
    let Some(start) = parse_id(offset) else {
        return Ok(None);
    };
    let driver = &ns.driver;
    let key = format!("{}{pid}", driver.config().session_key_prefix);
    let mut getdel = redis::cmd("GETDEL");
    getdel.arg(&key);
    let raw: Option<String> = driver.query(&getdel).await?;
    // The offset must still be in the stream: otherwise entries after it may have been trimmed, and
    // a restore would hide the gap.
    let here = driver.range(offset, offset, Some(1)).await?;
    let (Some(raw), false) = (raw, here.is_empty()) else {
        return Ok(None);
    };
    let Some(session) = decode(&raw) else {
        return Ok(None);
    };
    let count = driver.config().read_count.max(1);
    let mut entries = Vec::new();
    let mut last = start;
    for _ in 0..MAX_RANGE_CALLS {
        let batch = driver.range(&next_id(last), "+", Some(count)).await?;
        let Some(id) = batch.last().and_then(|(id, _)| parse_id(id)) else {
            break;
        };
        last = id;
        collect(ns, &session, batch, &mut entries);
    }
    // Line up with the reader: what it handed over is missed, what it has not is delivered live.
    let reading = driver.reading.lock().await;
    let Some(read) = parse_id(&reading) else {
        return Err(Unavailable);
    };
    if last < read {
        let batch = driver.range(&next_id(last), &reading, None).await?;
        collect(ns, &session, batch, &mut entries);
    } else {
        entries.retain(|(id, _, _)| parse_id(id).is_some_and(|id| id <= read));
    }
    rejoin(&session);
    drop(reading);
    Ok(Some(Restored { session, entries }))
}
