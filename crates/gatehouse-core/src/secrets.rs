//! What the node keeps for the `openid-connect` plugin besides entities, as Kong keeps it in its
//! `oic_issuers` and `oic_jwks` tables: one record per issuer (with the secret that seals the
//! sessions of plugins that set no `session_secret`) and the node's own key set (which signs
//! `private_key_jwt` client assertions when a client has no `client_jwk`).
//!
//! The store holds them; the binary loads them into a [`NodeSecrets`] at startup, plugin builds
//! read it (synchronously, never on the request path), and the Admin API changes it (rotation,
//! deletion) and then rebuilds the plugins that read what changed. A build that meets an issuer
//! for the first time makes its record here and marks it unsaved; the reloader writes it to the
//! store after the compile, off the request path.

use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};

/// One issuer's record (Kong's `oic_issuers` row).
#[derive(Clone, PartialEq, Eq)]
pub struct IssuerRecord {
    /// A UUID.
    pub id: String,
    /// The plugin's `issuer`, as configured.
    pub issuer: String,
    /// The generated session secret: 32 random bytes as hex. Never shown by the Admin API.
    pub secret: String,
    /// When the record was made (Unix seconds).
    pub created_at: i64,
}

impl IssuerRecord {
    /// A new record for `issuer` with a fresh id and secret.
    pub fn generate(issuer: &str, now: i64) -> IssuerRecord {
        let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        IssuerRecord { id: uuid::Uuid::new_v4().to_string(), issuer: issuer.to_string(), secret, created_at: now }
    }
}

/// Leaves the secret out.
impl fmt::Debug for IssuerRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerRecord")
            .field("id", &self.id)
            .field("issuer", &self.issuer)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// A plugin's live view of an issuer's discovery cache, shown by `GET /openid-connect/issuers`
/// and cleared by `DELETE`.
pub trait DiscoveryView: Send + Sync {
    /// The cached discovery document and the keys (a JSON array of public JWKs), if fetched.
    fn current(&self) -> Option<(Value, Value)>;
    /// Drops the cached document and keys, so the next request fetches them again.
    fn forget(&self);
}

/// The node's issuer records and key set, shared by the build environment and the Admin API.
#[derive(Default)]
pub struct NodeSecrets {
    issuers: Mutex<HashMap<String, IssuerRecord>>,
    unsaved: Mutex<Vec<IssuerRecord>>,
    /// The stored form of the node's private key set (see `gatehouse_jose::own_keys`).
    client_keys: RwLock<Option<Arc<str>>>,
    discovery: Mutex<HashMap<String, Vec<Weak<dyn DiscoveryView>>>>,
}

impl fmt::Debug for NodeSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeSecrets").field("issuers", &lock(&self.issuers).len()).finish_non_exhaustive()
    }
}

/// A poisoned lock only means another thread panicked while holding it; the maps stay usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl NodeSecrets {
    /// The records and key set read from the store.
    pub fn load(records: Vec<IssuerRecord>, client_keys: Option<String>) -> NodeSecrets {
        let s = NodeSecrets::default();
        *lock(&s.issuers) = records.into_iter().map(|r| (r.issuer.clone(), r)).collect();
        s.set_client_keys(client_keys);
        s
    }

    /// The record of `issuer`, made now (and marked unsaved) when there is none.
    pub fn issuer(&self, issuer: &str, now: i64) -> IssuerRecord {
        let mut map = lock(&self.issuers);
        if let Some(r) = map.get(issuer) {
            return r.clone();
        }
        let r = IssuerRecord::generate(issuer, now);
        map.insert(issuer.to_string(), r.clone());
        lock(&self.unsaved).push(r.clone());
        r
    }

    /// The record of `issuer`, if there is one.
    pub fn get(&self, issuer: &str) -> Option<IssuerRecord> {
        lock(&self.issuers).get(issuer).cloned()
    }

    /// Every record, oldest first.
    pub fn records(&self) -> Vec<IssuerRecord> {
        let mut all: Vec<IssuerRecord> = lock(&self.issuers).values().cloned().collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        all
    }

    /// Records made by builds and not yet written to the store. The caller writes them and
    /// puts back ([`NodeSecrets::unsaved_again`]) those it could not.
    pub fn take_unsaved(&self) -> Vec<IssuerRecord> {
        std::mem::take(&mut *lock(&self.unsaved))
    }

    /// Records the store did not take, for the next attempt.
    pub fn unsaved_again(&self, records: Vec<IssuerRecord>) {
        lock(&self.unsaved).extend(records);
    }

    /// Replaces the record of its issuer (the store held another one).
    pub fn set(&self, record: IssuerRecord) {
        lock(&self.issuers).insert(record.issuer.clone(), record);
    }

    /// Forgets the record of `issuer` and its discovery cache. The next build for it makes a
    /// new record, with a new secret: sessions sealed under the old one no longer open.
    pub fn remove(&self, issuer: &str) {
        lock(&self.issuers).remove(issuer);
        lock(&self.unsaved).retain(|r| r.issuer != issuer);
        self.forget_discovery(issuer);
    }

    /// The node's private key set in its stored form.
    pub fn client_keys(&self) -> Option<Arc<str>> {
        self.client_keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the node's private key set.
    pub fn set_client_keys(&self, stored: Option<String>) {
        *self.client_keys.write().unwrap_or_else(|e| e.into_inner()) = stored.map(Into::into);
    }

    /// Registers a plugin's discovery cache for `issuer`.
    pub fn watch_discovery(&self, issuer: &str, view: Weak<dyn DiscoveryView>) {
        let mut map = lock(&self.discovery);
        let list = map.entry(issuer.to_string()).or_default();
        list.retain(|w| w.strong_count() > 0);
        if !list.iter().any(|w| w.ptr_eq(&view)) {
            list.push(view);
        }
    }

    /// The cached discovery document and keys of `issuer`, from any plugin that has them.
    pub fn discovery(&self, issuer: &str) -> Option<(Value, Value)> {
        let views: Vec<Arc<dyn DiscoveryView>> =
            lock(&self.discovery).get(issuer).map(|l| l.iter().filter_map(Weak::upgrade).collect()).unwrap_or_default();
        views.iter().find_map(|v| v.current())
    }

    /// Clears every plugin's discovery cache of `issuer`.
    pub fn forget_discovery(&self, issuer: &str) {
        let views: Vec<Arc<dyn DiscoveryView>> =
            lock(&self.discovery).get(issuer).map(|l| l.iter().filter_map(Weak::upgrade).collect()).unwrap_or_default();
        for v in views {
            v.forget();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn an_issuer_gets_one_record_until_removed() {
        let s = NodeSecrets::default();
        let a = s.issuer("https://a", 10);
        assert_eq!(a.secret.len(), 64);
        assert_eq!(s.issuer("https://a", 20), a, "the same record on later builds");
        assert_eq!(s.take_unsaved(), vec![a.clone()]);
        assert!(s.take_unsaved().is_empty());
        s.remove("https://a");
        let again = s.issuer("https://a", 30);
        assert_ne!((again.id.as_str(), again.secret.as_str()), (a.id.as_str(), a.secret.as_str()));
        assert!(!format!("{again:?}").contains(&again.secret), "Debug hides the secret");
    }

    #[test]
    fn loaded_records_are_not_unsaved() {
        let r = IssuerRecord::generate("https://a", 1);
        let s = NodeSecrets::load(vec![r.clone()], Some("keys".into()));
        assert_eq!(s.issuer("https://a", 2), r);
        assert!(s.take_unsaved().is_empty());
        assert_eq!(s.client_keys().as_deref(), Some("keys"));
        assert_eq!(s.records(), vec![r]);
    }

    struct View(AtomicBool);
    impl DiscoveryView for View {
        fn current(&self) -> Option<(Value, Value)> {
            (!self.0.load(Ordering::Relaxed)).then(|| (json!({"issuer": "a"}), json!([])))
        }
        fn forget(&self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    #[test]
    fn discovery_views_are_read_and_cleared() {
        let s = NodeSecrets::default();
        let v: Arc<dyn DiscoveryView> = Arc::new(View(AtomicBool::new(false)));
        s.watch_discovery("a", Arc::downgrade(&v));
        s.watch_discovery("a", Arc::downgrade(&v));
        assert_eq!(s.discovery("a").map(|d| d.0), Some(json!({"issuer": "a"})));
        s.remove("a");
        assert_eq!(s.discovery("a"), None);
        drop(v);
        assert_eq!(s.discovery("a"), None, "a dropped plugin is skipped");
    }
}
