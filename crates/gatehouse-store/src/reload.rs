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
use serde_json::Value;
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

    /// The environment plugins are built with (the node's secrets among it).
    pub fn env(&self) -> &BuildEnv {
        &self.env
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
        self.rebuild(false, &|_| false).await
    }

    /// As [`Reloader::reload`], but plugins for which `rebuild` is true are built again even when
    /// their entity did not change: what they read from the build environment did (an issuer's
    /// secret, the node's key set). They lose their caches; every other plugin keeps its instance.
    pub async fn reload_rebuilding(&self, rebuild: &(dyn Fn(&Value) -> bool + Sync)) -> Result<u64, ReloadError> {
        self.rebuild(false, rebuild).await
    }

    /// As [`Reloader::reload`], after an Admin write: a plugin that cannot be built and was not
    /// already broken in the published snapshot means the write broke it, so nothing is published
    /// and the caller must roll the write back.
    pub async fn reload_write(&self) -> Result<u64, ReloadError> {
        self.rebuild(true, &|_| false).await
    }

    async fn rebuild(&self, strict: bool, rebuild: &(dyn Fn(&Value) -> bool + Sync)) -> Result<u64, ReloadError> {
        let mut version = self.building.lock().await;
        let set = match self.store.load_all().await {
            Ok(set) => set,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the config; the last good config stays in force");
                return Err(e.into());
            }
        };
        let prev = self.handle.load();
        // The instances the compile may reuse: all but those to rebuild.
        let lend = Snapshot {
            instances: prev
                .instances
                .iter()
                .filter(|(_, (v, _))| !rebuild(v))
                .map(|(k, x)| (k.clone(), x.clone()))
                .collect(),
            ..Snapshot::default()
        };
        let next: Snapshot = match compile(&set, &self.registry, &self.env, Some(&lend), *version + 1) {
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
        self.save_issuers().await;
        *version += 1;
        self.handle.store(Arc::new(next));
        tracing::debug!(version = *version, "published config snapshot");
        Ok(*version)
    }

    /// Writes the issuer records the compile made. One the store cannot take now stays in memory
    /// (its sessions work until a restart) and is tried again on the next reload.
    async fn save_issuers(&self) {
        let secrets = &self.env.secrets;
        let mut failed = Vec::new();
        for record in secrets.take_unsaved() {
            match self.store.issuer_insert(&record).await {
                Ok(stored) if stored.secret == record.secret => {}
                Ok(stored) => {
                    // Another writer stored one first; its secret wins from the next build on.
                    tracing::warn!(issuer = %stored.issuer, "the store already held an issuer record; using it from now on");
                    secrets.set(stored);
                }
                Err(e) => {
                    tracing::error!(issuer = %record.issuer, error = %e,
                        "cannot store an issuer record; its sessions end with this process unless it is stored later");
                    failed.push(record);
                }
            }
        }
        secrets.unsaved_again(failed);
    }
}
