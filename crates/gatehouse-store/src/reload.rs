//! Compiles the store's entities into a snapshot and publishes it.
//!
//! Admin writes call [`Reloader::reload`] after they commit, so the proxy sees a change before the
//! Admin API answers. Rebuilds are serialized; a failed compile keeps the last good snapshot and is
//! reported.

use crate::{Store, StoreError};
use gatehouse_core::plugin::{BuildEnv, Registry};
use gatehouse_core::snapshot::{CompileError, Snapshot, SnapshotHandle, compile};
use std::sync::Arc;
use tokio::sync::Mutex;

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
}

/// Rebuilds and publishes snapshots.
pub struct Reloader {
    store: Arc<dyn Store>,
    registry: Registry,
    env: BuildEnv,
    handle: SnapshotHandle,
    // Held while building, so two rebuilds never race to publish out of order.
    building: Mutex<u64>,
}

impl Reloader {
    /// A reloader publishing into `handle`.
    pub fn new(store: Arc<dyn Store>, registry: Registry, env: BuildEnv, handle: SnapshotHandle) -> Reloader {
        Reloader { store, registry, env, handle, building: Mutex::new(0) }
    }

    /// The handle snapshots are published to.
    pub fn handle(&self) -> &SnapshotHandle {
        &self.handle
    }

    /// Reads every entity, compiles, publishes. Returns the new snapshot's version.
    pub async fn reload(&self) -> Result<u64, ReloadError> {
        let mut version = self.building.lock().await;
        let set = self.store.load_all().await?;
        let prev = self.handle.load();
        let next: Snapshot = match compile(&set, &self.registry, &self.env, Some(&prev), *version + 1) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "config compile failed; the last good config stays in force");
                return Err(e.into());
            }
        };
        *version += 1;
        self.handle.store(Arc::new(next));
        tracing::debug!(version = *version, "published config snapshot");
        Ok(*version)
    }
}
