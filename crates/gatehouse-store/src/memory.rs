//! The declarative store: entities loaded from a `kong.yml`, held in memory, read-only through the
//! Admin API (`database = off`), replaced whole by `POST /config`.
//!
//! Issuer records and the node's key set are node state, not configuration: they live here in
//! memory too, made at startup and gone at exit (as Kong keeps them in worker memory without a
//! database). So without a database, sessions of plugins without `session_secret` end with the
//! process, and the generated key pair changes on every start.

use crate::{ListQuery, Page, Store, StoreError, TagFilter, column_value};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_core::entity::{EntitySet, Kind};
use gatehouse_core::secrets::IssuerRecord;
use serde_json::Value;
use tokio::sync::{Mutex, RwLock};

/// In-memory, read-only [`Store`].
pub struct MemoryStore {
    set: RwLock<EntitySet>,
    issuers: Mutex<Vec<IssuerRecord>>,
    own_keys: Mutex<Option<String>>,
}

impl MemoryStore {
    /// A store holding `set`.
    pub fn new(set: EntitySet) -> MemoryStore {
        MemoryStore { set: RwLock::new(set), issuers: Mutex::default(), own_keys: Mutex::default() }
    }
}

fn id_of(v: &Value) -> &str {
    v.get("id").and_then(Value::as_str).unwrap_or_default()
}

#[async_trait]
impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "off"
    }

    fn read_only(&self) -> bool {
        true
    }

    async fn get(&self, kind: Kind, id: &str) -> Result<Option<Value>, StoreError> {
        Ok(self.set.read().await.of(kind).iter().find(|v| id_of(v) == id).cloned())
    }

    async fn get_by(&self, kind: Kind, field: &'static str, value: &str) -> Result<Option<Value>, StoreError> {
        Ok(self.set.read().await.of(kind).iter().find(|v| column_value(v, field).as_deref() == Some(value)).cloned())
    }

    async fn list(&self, kind: Kind, q: &ListQuery) -> Result<Page, StoreError> {
        let start = match &q.offset {
            Some(off) => URL_SAFE_NO_PAD
                .decode(off)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or_else(|| StoreError::InvalidOffset(off.clone()))?,
            None => 0,
        };
        let set = self.set.read().await;
        let matches = |v: &&Value| {
            q.tags.as_ref().is_none_or(|t: &TagFilter| t.matches(v.get("tags").unwrap_or(&Value::Null)))
                && q.parent.as_ref().is_none_or(|(f, id)| column_value(v, &format!("{f}_id")).as_deref() == Some(id))
        };
        let all: Vec<&Value> = set.of(kind).iter().filter(matches).collect();
        let data: Vec<Value> = all.iter().skip(start).take(q.size).map(|v| (*v).clone()).collect();
        let next = start + data.len();
        let offset = (next < all.len()).then(|| URL_SAFE_NO_PAD.encode(next.to_string()));
        Ok(Page { data, offset })
    }

    async fn insert(&self, _: Kind, _: &Value) -> Result<(), StoreError> {
        Err(StoreError::ReadOnly)
    }

    async fn update(&self, _: Kind, _: &Value) -> Result<(), StoreError> {
        Err(StoreError::ReadOnly)
    }

    async fn delete(&self, _: Kind, _: &str) -> Result<(), StoreError> {
        Err(StoreError::ReadOnly)
    }

    async fn load_all(&self) -> Result<EntitySet, StoreError> {
        Ok(self.set.read().await.clone())
    }

    async fn replace_all(&self, set: EntitySet) -> Result<(), StoreError> {
        *self.set.write().await = set;
        Ok(())
    }

    async fn ping(&self) -> bool {
        true
    }

    async fn issuers(&self) -> Result<Vec<IssuerRecord>, StoreError> {
        Ok(self.issuers.lock().await.clone())
    }

    async fn issuer_insert(&self, record: &IssuerRecord) -> Result<IssuerRecord, StoreError> {
        let mut all = self.issuers.lock().await;
        if let Some(r) = all.iter().find(|r| r.issuer == record.issuer) {
            return Ok(r.clone());
        }
        all.push(record.clone());
        Ok(record.clone())
    }

    async fn issuer_delete(&self, id: &str) -> Result<bool, StoreError> {
        let mut all = self.issuers.lock().await;
        let before = all.len();
        all.retain(|r| r.id != id);
        Ok(all.len() < before)
    }

    async fn own_keys(&self) -> Result<Option<String>, StoreError> {
        Ok(self.own_keys.lock().await.clone())
    }

    async fn set_own_keys(&self, stored: &str) -> Result<(), StoreError> {
        *self.own_keys.lock().await = Some(stored.to_string());
        Ok(())
    }
}
