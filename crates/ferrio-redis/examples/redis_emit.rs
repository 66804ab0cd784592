//! Publishes one event through the Rust emitter, for the interop cluster tests and as a usage example:
//! `cargo run -p ferrio-redis --example redis_emit -- --redis redis://127.0.0.1:PORT --event NAME
//! [--room ROOM] [--args JSON_ARRAY]`. Exits 0 once published.

use ferrio::Value;
use ferrio_redis::{Emitter, RedisAdapterConfig};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let (Some(url), Some(event)) = (get("--redis"), get("--event")) else {
        eprintln!("usage: redis_emit --redis URL --event NAME [--room ROOM] [--args JSON_ARRAY]");
        std::process::exit(2);
    };
    let values = match get("--args").map(|a| Value::from_json(&a)) {
        Some(Ok(Value::Array(items))) => items,
        Some(_) => {
            eprintln!("--args must be a JSON array");
            std::process::exit(2);
        }
        None => vec![],
    };
    let emitter = match Emitter::connect(&url, RedisAdapterConfig::default()).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("redis_emit: {e}");
            std::process::exit(1);
        }
    };
    let target = match get("--room") {
        Some(room) => emitter.to(room.as_str()),
        None => emitter,
    };
    if let Err(e) = target.emit(&event, values).await {
        eprintln!("redis_emit: {e}");
        std::process::exit(1);
    }
}
