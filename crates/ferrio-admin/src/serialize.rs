//! Sockets and dates as the admin UI reads them.

use std::time::{SystemTime, UNIX_EPOCH};

use ferrio::adapter::Handshake;
use ferrio::{RemoteSocket, Socket, Value};
use serde_json::json;

/// Now as JavaScript's `new Date()` serializes: `2024-01-31T12:34:56.789Z`.
pub fn iso_now() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    iso(ms)
}

/// A date in milliseconds since the epoch, in the proleptic Gregorian calendar (days to civil date
/// after Howard Hinnant's algorithm).
fn iso(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

fn handshake(h: &Handshake) -> serde_json::Value {
    // Behind a proxy, the client's address is in a header (Cloudflare's first), as the UI shows it.
    let address = h
        .headers
        .get("cf-connecting-ip")
        .or_else(|| h.headers.get("x-forwarded-for"))
        .unwrap_or(&h.address);
    // `auth` stays out: it may hold the client's credentials.
    json!({
        "address": address,
        "headers": h.headers,
        "query": h.query,
        "issued": h.issued,
        "secure": h.secure,
        "time": h.time,
        "url": h.url,
        "xdomain": h.xdomain,
    })
}

/// `data` without the instrumentation's own `_admin` entry.
pub(crate) fn public_data(data: Value) -> serde_json::Value {
    let mut data = serde_json::to_value(&data).unwrap_or_else(|_| json!({}));
    if let Some(m) = data.as_object_mut() {
        m.remove("_admin");
    }
    data
}

/// A socket of this node.
pub(crate) fn serialize_socket(s: &Socket, nsp: &str) -> serde_json::Value {
    json!({
        "id": s.id(),
        "clientId": crate::client_id(s),
        "transport": s.transport().as_str(),
        "nsp": nsp,
        "data": public_data(s.data_value().unwrap_or(Value::Null)),
        "handshake": handshake(s.handshake()),
        "rooms": s.rooms().iter().map(|r| &**r).collect::<Vec<_>>(),
    })
}

/// A socket of any node, as `fetch_sockets` describes it; `local` is the same socket when it is on this
/// node (its client id and transport are then read directly).
pub(crate) fn serialize_remote(
    r: &RemoteSocket,
    nsp: &str,
    local: Option<&Socket>,
) -> serde_json::Value {
    let data: serde_json::Value = r.data().unwrap_or_else(|_| json!({}));
    let admin = data.get("_admin");
    let (client_id, transport) = match local {
        Some(s) => (json!(crate::client_id(s)), json!(s.transport().as_str())),
        None => (
            admin
                .and_then(|a| a.get("clientId"))
                .cloned()
                .unwrap_or_default(),
            admin
                .and_then(|a| a.get("transport"))
                .cloned()
                .unwrap_or_default(),
        ),
    };
    let mut public = data.clone();
    if let Some(m) = public.as_object_mut() {
        m.remove("_admin");
    }
    json!({
        "id": r.id(),
        "clientId": client_id,
        "transport": transport,
        "nsp": nsp,
        "data": public,
        "handshake": handshake(r.handshake()),
        "rooms": r.rooms(),
    })
}

#[cfg(test)]
mod tests {
    use super::iso;

    #[test]
    fn dates_are_javascript_iso_strings() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso(1_709_210_096_789), "2024-02-29T12:34:56.789Z");
    }
}
