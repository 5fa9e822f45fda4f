//! Where Gatehouse's entities live.
//!
//! [`Store`] is what the Admin API writes through and what the config compiler reads. Entities are
//! stored as the normalized JSON the schema produced, plus the columns needed for uniqueness,
//! foreign keys, lookups by name and pagination. Backends: [`sqlite::SqliteStore`] (the embedded
//! default) and [`memory::MemoryStore`] (declarative, read-only). PostgreSQL implements the same
//! trait in a later issue.
//!
//! Architecture invariant: the proxy never awaits a store; it reads the compiled snapshot that
//! [`reload::Reloader`] publishes.
#![warn(missing_docs)]

pub mod declarative;
pub mod memory;
pub mod reload;
pub mod sqlite;

use async_trait::async_trait;
use gatehouse_core::entity::{EntitySet, Kind};
use gatehouse_core::secrets::IssuerRecord;
use serde_json::Value;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique column already holds this value.
    #[error("unique violation on {field}")]
    Unique {
        /// The field (`name`, `username`, `custom_id`, `instance_name`, or `cache_key` for a plugin's
        /// scope).
        field: String,
    },
    /// The entity is still referenced by entities of another collection.
    #[error("an existing '{by}' entity references this entity")]
    Referenced {
        /// The referencing collection.
        by: &'static str,
    },
    /// A referenced entity does not exist.
    #[error("foreign key violation")]
    ForeignKey,
    /// The entity to update does not exist.
    #[error("not found")]
    NotFound,
    /// The pagination offset cannot be decoded.
    #[error("'{0}' is not a valid offset: bad base64 encoding")]
    InvalidOffset(String),
    /// The store is read-only (declarative mode).
    #[error("the store is read-only")]
    ReadOnly,
    /// The database failed.
    #[error("database error: {0}")]
    Database(String),
}

/// Which tags a list must match: `a,b` means all of them, `a/b` any of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagFilter {
    /// The tags.
    pub tags: Vec<String>,
    /// Whether every tag must be present (`,`) or any (`/`).
    pub all: bool,
}

impl TagFilter {
    /// Parses Kong's `?tags=` syntax. Mixing `,` and `/` is refused, as is more than 5 tags.
    pub fn parse(s: &str) -> Result<TagFilter, String> {
        if s.contains(',') && s.contains('/') {
            return Err("invalid option (tags: invalid filter: mixing ',' and '/' is not allowed)".into());
        }
        let all = !s.contains('/');
        let tags: Vec<String> = s.split([',', '/']).map(str::to_string).collect();
        if tags.iter().any(String::is_empty) {
            return Err("invalid option (tags: invalid filter: empty tag)".into());
        }
        if tags.len() > 5 {
            return Err("invalid option (tags: cannot query more than 5 tags)".into());
        }
        Ok(TagFilter { tags, all })
    }

    /// Whether an entity's `tags` value passes the filter.
    pub fn matches(&self, tags: &Value) -> bool {
        let have: Vec<&str> = tags.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        if self.all {
            self.tags.iter().all(|t| have.contains(&t.as_str()))
        } else {
            self.tags.iter().any(|t| have.contains(&t.as_str()))
        }
    }
}

/// A list request.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// Page size, 1 to 1000.
    pub size: usize,
    /// The opaque offset from the previous page.
    pub offset: Option<String>,
    /// Tag filter.
    pub tags: Option<TagFilter>,
    /// Only entities whose foreign key `field` (`service`, `route`, `consumer`) is this id.
    pub parent: Option<(&'static str, String)>,
}

/// One page of a list.
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// The entities.
    pub data: Vec<Value>,
    /// The offset of the next page, if there is one.
    pub offset: Option<String>,
}

/// Persistent entity storage.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The backend's name as `GET /` reports it (`sqlite`, `off`).
    fn backend(&self) -> &'static str;

    /// Whether writes are refused (declarative mode).
    fn read_only(&self) -> bool {
        false
    }

    /// The entity with this id.
    async fn get(&self, kind: Kind, id: &str) -> Result<Option<Value>, StoreError>;

    /// The entity whose unique `field` has this value.
    async fn get_by(&self, kind: Kind, field: &'static str, value: &str) -> Result<Option<Value>, StoreError>;

    /// A page of entities, oldest first.
    async fn list(&self, kind: Kind, q: &ListQuery) -> Result<Page, StoreError>;

    /// Inserts a new, validated entity.
    async fn insert(&self, kind: Kind, entity: &Value) -> Result<(), StoreError>;

    /// Replaces the entity with the same id.
    async fn update(&self, kind: Kind, entity: &Value) -> Result<(), StoreError>;

    /// Deletes by id; deleting a missing entity is not an error. Dependent plugins go with it; a
    /// service with routes is refused with [`StoreError::Referenced`].
    async fn delete(&self, kind: Kind, id: &str) -> Result<(), StoreError>;

    /// Every entity, for compiling a snapshot.
    async fn load_all(&self) -> Result<EntitySet, StoreError>;

    /// Replaces everything at once (declarative `POST /config`).
    async fn replace_all(&self, _set: EntitySet) -> Result<(), StoreError> {
        Err(StoreError::ReadOnly)
    }

    /// Whether the database answers.
    async fn ping(&self) -> bool;

    /// Every issuer record (Kong's `oic_issuers`), oldest first.
    async fn issuers(&self) -> Result<Vec<IssuerRecord>, StoreError>;

    /// Writes `record` unless its issuer already has one; returns the record stored for the
    /// issuer (the first writer's, so every node of a cluster ends up with the same secret).
    /// Declarative stores keep it in memory too: it is node state, not configuration.
    async fn issuer_insert(&self, record: &IssuerRecord) -> Result<IssuerRecord, StoreError>;

    /// Deletes the issuer record with this id; whether there was one.
    async fn issuer_delete(&self, id: &str) -> Result<bool, StoreError>;

    /// The node's private key set in its stored form (Kong's `oic_jwks`), if made.
    async fn own_keys(&self) -> Result<Option<String>, StoreError>;

    /// Replaces the node's private key set.
    async fn set_own_keys(&self, stored: &str) -> Result<(), StoreError>;
}

/// The value of a unique or foreign-key column for `entity`, as stored.
pub(crate) fn column_value(entity: &Value, column: &str) -> Option<String> {
    match column {
        "service_id" => entity.get("service")?.get("id")?.as_str().map(str::to_string),
        "route_id" => entity.get("route")?.get("id")?.as_str().map(str::to_string),
        "consumer_id" => entity.get("consumer")?.get("id")?.as_str().map(str::to_string),
        "cache_key" => Some(plugin_cache_key(entity)),
        other => entity.get(other)?.as_str().map(str::to_string),
    }
}

/// Kong's plugin uniqueness key: one plugin of a name per (route, service, consumer) scope.
pub fn plugin_cache_key(entity: &Value) -> String {
    let id = |k: &str| entity.get(k).and_then(|v| v.get("id")).and_then(Value::as_str).unwrap_or("").to_string();
    format!(
        "plugins:{}:{}:{}:{}",
        entity.get("name").and_then(Value::as_str).unwrap_or(""),
        id("route"),
        id("service"),
        id("consumer"),
    )
}

/// Extra indexed columns per collection, besides `id`, `created_at`, `tags` and `data`.
pub(crate) fn columns(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Services => &["name"],
        Kind::Routes => &["name", "service_id"],
        Kind::Consumers => &["username", "custom_id"],
        Kind::Plugins => &["name", "instance_name", "service_id", "route_id", "consumer_id", "cache_key"],
    }
}
