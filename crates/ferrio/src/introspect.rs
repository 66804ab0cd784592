//! What instrumentation (the admin UI, metrics exporters) needs to see of a server: its namespaces, and
//! each new one as it is created (`io.on("new_namespace")` in JavaScript).

use std::sync::Arc;

use parking_lot::RwLock;

use crate::namespace::{Namespace, NamespaceInner};
use crate::server::Io;

type Hook = Arc<dyn Fn(&Namespace) + Send + Sync>;

/// The `on_new_namespace` callbacks of a server.
#[derive(Default)]
pub(crate) struct NamespaceHooks {
    hooks: RwLock<Vec<Hook>>,
}

impl NamespaceHooks {
    /// Runs the callbacks on a namespace just created; the caller holds no lock of the server, so a
    /// callback may look the namespaces up.
    pub(crate) fn created(&self, inner: &Arc<NamespaceInner>) {
        let hooks = self.hooks.read().clone();
        if hooks.is_empty() {
            return;
        }
        let ns = Namespace {
            inner: inner.clone(),
        };
        for h in hooks {
            h(&ns);
        }
    }
}

impl Io {
    /// Every namespace that exists now: the static ones and the children of dynamic namespaces (not the
    /// dynamic parents themselves, which no client connects to), as `io._nsps` in JavaScript.
    pub fn namespaces(&self) -> Vec<Namespace> {
        self.inner
            .nsps
            .iter()
            .map(|n| Namespace {
                inner: n.value().clone(),
            })
            .collect()
    }

    /// Runs `f` on every namespace created from now on, static or a child of a dynamic namespace, before
    /// its first socket connects (`io.on("new_namespace")`).
    pub fn on_new_namespace(&self, f: impl Fn(&Namespace) + Send + Sync + 'static) {
        self.inner.namespace_hooks.hooks.write().push(Arc::new(f));
    }
}
