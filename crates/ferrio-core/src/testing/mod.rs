//! An adapter conformance suite: every operation of the [`Adapter`] contract, on one, two and three
//! nodes, driven through a [`FakeNamespace`] that records what the adapter delivers.
//!
//! An adapter crate implements [`Harness`] (how to build the adapters of N nodes that see each other)
//! and expands [`adapter_conformance!`](crate::adapter_conformance) in an integration test, which makes
//! one `#[tokio::test]` per case (the test crate needs `tokio` with the `macros` and
//! `rt-multi-thread` features). This crate's own `tests/conformance.rs` is exactly that line, so it is
//! compiled and run there rather than as a doctest (the macro expands test functions at module level):
//!
//! ```text
//! ferrio_core::adapter_conformance!(ferrio_core::testing::Memory);
//! ```
//!
//! Each case runs on every cluster size from one node to `min(3, max_nodes())`, and checks what every
//! node's sockets received, not how the adapter got it there.

mod cases;
mod namespace;

use std::any::Any;
use std::sync::{Arc, Weak};
use std::time::Duration;

pub use cases::*;
pub use namespace::{Delivery, FakeNamespace, ServerSideEvent};

use crate::BoxFuture;
use crate::adapter::{Adapter, AdapterFactory, LocalNamespace, memory_adapter};

/// The adapter factories of the nodes of one cluster, and whatever keeps the cluster running (a
/// server process, connections), dropped when the case is over.
pub struct Nodes {
    factories: Vec<AdapterFactory>,
    _guard: Box<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for Nodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nodes")
            .field("nodes", &self.factories.len())
            .finish()
    }
}

impl Nodes {
    /// One factory per node; `guard` lives as long as the cluster.
    pub fn new(factories: Vec<AdapterFactory>, guard: impl Any + Send + Sync) -> Nodes {
        Nodes {
            factories,
            _guard: Box::new(guard),
        }
    }
}

/// Builds clusters of an adapter for the suite.
pub trait Harness: Send + Sync {
    /// The largest cluster it can build (the memory adapter: 1).
    fn max_nodes(&self) -> usize;

    /// The factories of `nodes` nodes that see each other and nobody else (a case builds several
    /// clusters one after the other: each must start empty).
    fn start(&self, nodes: usize) -> BoxFuture<Nodes>;

    /// Waits until what the adapters set up in the background after rooms changed is in place (a
    /// subscription per room, say). Nothing to wait for by default.
    fn settle(&self) -> BoxFuture<()> {
        Box::pin(async {})
    }

    /// Whether the adapter supports connection state recovery ([`Adapter::enable_recovery`]): the
    /// recovery cases check it only then.
    fn supports_recovery(&self) -> bool {
        false
    }
}

/// The memory adapter: one node.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory;

impl Harness for Memory {
    fn max_nodes(&self) -> usize {
        1
    }

    fn start(&self, nodes: usize) -> BoxFuture<Nodes> {
        assert_eq!(nodes, 1, "the memory adapter serves one node");
        Box::pin(async { Nodes::new(vec![memory_adapter()], ()) })
    }

    fn supports_recovery(&self) -> bool {
        true
    }
}

/// A running cluster: one namespace per node.
pub struct Cluster {
    /// The nodes' namespaces, node 0 first.
    pub nodes: Vec<Arc<FakeNamespace>>,
    _nodes: Nodes,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for ns in &self.nodes {
            ns.adapter().close();
        }
    }
}

/// How long a case waits for something that should happen.
pub const WITHIN: Duration = Duration::from_secs(5);
/// How long a case waits to be sure that nothing more happens.
pub const QUIET: Duration = Duration::from_millis(250);

impl Cluster {
    /// Builds a cluster of `n` nodes and waits until every node counts `n` servers.
    pub async fn start(harness: &dyn Harness, n: usize) -> Cluster {
        let nodes = harness.start(n).await;
        assert_eq!(nodes.factories.len(), n, "one factory per node");
        let namespaces: Vec<Arc<FakeNamespace>> = nodes
            .factories
            .iter()
            .enumerate()
            .map(|(i, factory)| {
                let ns = FakeNamespace::new(i);
                let weak: Weak<dyn LocalNamespace> =
                    Arc::downgrade(&(ns.clone() as Arc<dyn LocalNamespace>));
                let adapter: Arc<dyn Adapter> = factory(weak);
                ns.set_adapter(adapter.clone());
                adapter.init();
                ns
            })
            .collect();
        let cluster = Cluster {
            nodes: namespaces,
            _nodes: nodes,
        };
        let deadline = tokio::time::Instant::now() + WITHIN * 2;
        for ns in &cluster.nodes {
            loop {
                let count = ns.adapter().server_count().await;
                if count == n {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "node {} counts {count} servers, not {n}",
                    ns.node()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        cluster
    }

    /// Node `i`'s namespace.
    pub fn node(&self, i: usize) -> &Arc<FakeNamespace> {
        &self.nodes[i]
    }
}

/// The cluster sizes a case runs on.
pub fn sizes(harness: &dyn Harness) -> std::ops::RangeInclusive<usize> {
    1..=harness.max_nodes().clamp(1, 3)
}

/// Polls `f` every 10 ms until it holds or `within` is over; returns whether it held.
pub async fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One `#[tokio::test]` per conformance case, for the [`Harness`] the expression builds (evaluated
/// once per test).
#[macro_export]
macro_rules! adapter_conformance {
    ($harness:expr) => {
        $crate::adapter_conformance!(@cases $harness;
            server_count,
            rooms,
            broadcast,
            broadcast_local,
            broadcast_with_ack,
            broadcast_with_ack_partial,
            broadcast_with_ack_timeout,
            fetch_sockets,
            socket_ids_and_count,
            sockets_join_and_leave,
            disconnect_sockets,
            server_side_emit,
            server_side_emit_with_ack,
            recovery_offsets,
            recovery_restore,
            recovery_expiry
        );
    };
    (@cases $harness:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = $harness;
                $crate::testing::$case(&harness).await;
            }
        )*
    };
}
