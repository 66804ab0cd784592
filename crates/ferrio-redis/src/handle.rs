//! The handle of a server's Redis link, whatever the flavour: the adapter factory, the metrics, and
//! the way to stop it.

use std::marker::PhantomData;
use std::sync::Arc;

use ferrio_core::adapter::AdapterFactory;

use crate::link::{Link, Metrics};

/// The Redis connections of one server; its [`factory`](Self::factory) makes the adapter of each
/// namespace. `F` is the flavour: [`RedisAdapterHandle`](crate::RedisAdapterHandle) (classic Pub/Sub)
/// or [`ShardedRedisAdapterHandle`](crate::ShardedRedisAdapterHandle) (sharded Pub/Sub). Dropping the
/// handle leaves the connections running while an adapter uses them; call [`close`](Self::close) to
/// stop them.
pub struct AdapterHandle<F> {
    link: Arc<dyn Link>,
    factory: AdapterFactory,
    config: Arc<dyn std::fmt::Debug + Send + Sync>,
    flavour: PhantomData<fn() -> F>,
}

impl<F> Clone for AdapterHandle<F> {
    fn clone(&self) -> Self {
        AdapterHandle {
            link: self.link.clone(),
            factory: self.factory.clone(),
            config: self.config.clone(),
            flavour: PhantomData,
        }
    }
}

impl<F> std::fmt::Debug for AdapterHandle<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterHandle")
            .field("config", &self.config)
            .field("connected", &self.is_connected())
            .field("metrics", &self.metrics())
            .finish()
    }
}

impl<F> AdapterHandle<F> {
    pub(crate) fn new(
        link: Arc<dyn Link>,
        factory: AdapterFactory,
        config: Arc<dyn std::fmt::Debug + Send + Sync>,
    ) -> Self {
        AdapterHandle {
            link,
            factory,
            config,
            flavour: PhantomData,
        }
    }

    /// The adapter factory for `IoConfig::adapter`.
    pub fn factory(&self) -> AdapterFactory {
        self.factory.clone()
    }

    /// Whether the connections are up (sharded: whether the last publishes went through).
    pub fn is_connected(&self) -> bool {
        self.link.is_connected()
    }

    /// The counters (all namespaces).
    pub fn metrics(&self) -> Metrics {
        self.link.counters().snapshot()
    }

    /// Stops the connections.
    pub fn close(&self) {
        self.link.shutdown();
    }
}
