//! The adapter conformance suite against the sharded Redis adapter (default `dynamic` subscription
//! mode), on a private 3-node Redis Cluster.

#[path = "common/harness.rs"]
mod harness;
#[path = "common/servers.rs"]
mod servers;

ferrio_core::adapter_conformance!(harness::Sharded::start(
    ferrio_redis::SubscriptionMode::Dynamic
));

/// The other subscription modes, on the cases whose channels depend on the mode: broadcasts (a room's
/// own channel or the namespace's) and room changes (subscribing and unsubscribing room channels).
mod modes {
    use ferrio_core::testing;
    use ferrio_redis::SubscriptionMode;

    use super::harness::Sharded;

    async fn run(mode: SubscriptionMode) {
        let harness = Sharded::start(mode);
        testing::broadcast(&harness).await;
        testing::broadcast_local(&harness).await;
        testing::sockets_join_and_leave(&harness).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn static_mode() {
        run(SubscriptionMode::Static).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dynamic_private_mode() {
        run(SubscriptionMode::DynamicPrivate).await;
    }
}
