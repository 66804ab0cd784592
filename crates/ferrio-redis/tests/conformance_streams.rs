//! The adapter conformance suite against the Redis Streams adapter, on a private `redis-server`.

#[path = "common/harness.rs"]
mod harness;
#[path = "common/servers.rs"]
mod servers;

ferrio_core::adapter_conformance!(harness::Streams::start());
