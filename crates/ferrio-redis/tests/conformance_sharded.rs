//! The adapter conformance suite against the sharded Redis adapter (default `dynamic` subscription
//! mode), on a private 3-node Redis Cluster.

#[path = "common/harness.rs"]
mod harness;
#[path = "common/servers.rs"]
mod servers;

ferrio_core::adapter_conformance!(harness::Sharded::start(
    ferrio_redis::SubscriptionMode::Dynamic
));
