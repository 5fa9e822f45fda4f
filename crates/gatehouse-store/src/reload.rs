//! Compiles the store's entities into a snapshot and publishes it.
//!
//! Admin writes call [`Reloader::reload_write`] after they commit, so the proxy sees a change
//! before the Admin API answers, and a change that does not compile is refused (the caller rolls
//! it back). Startup calls [`Reloader::reload`], which publishes even with plugins that cannot be
//! built: their routes fail closed. Rebuilds are serialized; a failed compile keeps the last good
//! snapshot and is logged.

use crate::{Store, StoreError};
use gatehouse_core::plugin::{BuildEnv, BuildError, Registry};
use gatehouse_core::snapshot::{CompileError, Snapshot, SnapshotHandle, compile};
use std::sync::Arc;
use tokio::sync::{Mutex, MutexGuard};

/// Why a reload failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The entities could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The entities could not be compiled.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// A write left a plugin that cannot be built; nothing was published.
    #[error("plugin {name} ({id}) cannot be built: {reason}")]
    Plugin {
        /// The plugin entity's id.
        id: String,
        /// The plugin name.
        name: String,
        /// Why.
        reason: BuildError,
    },
}

/// Rebuilds and publishes snapshots.
pub struct Reloader {
    store: Arc<dyn Store>,
    registry: Registry,
    env: BuildEnv,
    handle: SnapshotHandle,
    // Held while building, so two rebuilds never race to publish out of order.
    building: Mutex<u64>,
    // Held by an Admin write from its store write to its publish (or rollback), so a write that
    // is rolled back never undoes or hides another one.
    writes: Mutex<()>,
}

impl Reloader {
    /// A reloader publishing into `handle`.
    pub fn new(store: Arc<dyn Store>, registry: Registry, env: BuildEnv, handle: SnapshotHandle) -> Reloader {
        Reloader { store, registry, env, handle, building: Mutex::new(0), writes: Mutex::new(()) }
    }

    /// The handle snapshots are published to.
    pub fn handle(&self) -> &SnapshotHandle {
        &self.handle
    }

    /// Serializes Admin writes: hold the guard from the store write until
    /// [`Reloader::reload_write`] (and any rollback) is done.
    pub async fn write_lock(&self) -> MutexGuard<'_, ()> {
        self.writes.lock().await
    }

    /// Reads every entity, compiles, publishes. Returns the new snapshot's version. Plugins that
    /// cannot be built are logged (id and reason) and their routes fail closed: a node whose store
    /// holds one (written by an older version) still starts and serves every other route.
    pub async fn reload(&self) -> Result<u64, ReloadError> {
        self.rebuild(false).await
    }

    /// As [`Reloader::reload`], after an Admin write: a plugin that cannot be built and was not
    /// already broken in the published snapshot means the write broke it, so nothing is published
    /// and the caller must roll the write back.
    pub async fn reload_write(&self) -> Result<u64, ReloadError> {
        self.rebuild(true).await
    }

    async fn rebuild(&self, strict: bool) -> Result<u64, ReloadError> {
        let mut version = self.building.lock().await;
        let set = match self.store.load_all().await {
            Ok(set) => set,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the config; the last good config stays in force");
                return Err(e.into());
            }
        };
        let prev = self.handle.load();
        let next: Snapshot = match compile(&set, &self.registry, &self.env, Some(&prev), *version + 1) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "config compile failed; the last good config stays in force");
                return Err(e.into());
            }
        };
        for b in &next.broken {
            let known = prev.broken.iter().any(|old| old.id == b.id && old.entity == b.entity);
            if strict && !known {
                tracing::error!(plugin = %b.id, name = %b.name, reason = %b.reason,
                    "a write left a plugin that cannot be built; the last good config stays in force");
                return Err(ReloadError::Plugin { id: b.id.clone(), name: b.name.clone(), reason: b.reason.clone() });
            }
            if !known {
                tracing::error!(plugin = %b.id, name = %b.name, reason = %b.reason,
                    "plugin cannot be built; the routes it covers answer 500 until it is fixed or removed");
            }
        }
        *version += 1;
        self.handle.store(Arc::new(next));
        tracing::debug!(version = *version, "published config snapshot");
        Ok(*version)
    }
}
