//! The embedded default store: one SQLite file in the data directory.
//!
//! Every write is one transaction, so a failed write leaves nothing behind. The schema is created
//! by numbered migrations recorded in `schema_migrations`.

use crate::{ListQuery, Page, Store, StoreError, column_value, columns};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_core::entity::{EntitySet, Kind};
use gatehouse_core::secrets::IssuerRecord;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Row, SqlitePool};
use std::path::Path;

/// Schema migrations, applied in order, each once.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE services (
  id TEXT PRIMARY KEY, name TEXT UNIQUE, created_at INTEGER NOT NULL, tags TEXT, data TEXT NOT NULL);
CREATE TABLE routes (
  id TEXT PRIMARY KEY, name TEXT UNIQUE, service_id TEXT REFERENCES services(id),
  created_at INTEGER NOT NULL, tags TEXT, data TEXT NOT NULL);
CREATE INDEX routes_service_id ON routes(service_id);
CREATE TABLE consumers (
  id TEXT PRIMARY KEY, username TEXT UNIQUE, custom_id TEXT UNIQUE,
  created_at INTEGER NOT NULL, tags TEXT, data TEXT NOT NULL);
CREATE TABLE plugins (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, instance_name TEXT UNIQUE,
  service_id TEXT REFERENCES services(id) ON DELETE CASCADE,
  route_id TEXT REFERENCES routes(id) ON DELETE CASCADE,
  consumer_id TEXT REFERENCES consumers(id) ON DELETE CASCADE,
  cache_key TEXT UNIQUE, created_at INTEGER NOT NULL, tags TEXT, data TEXT NOT NULL);
CREATE INDEX plugins_service_id ON plugins(service_id);
CREATE INDEX plugins_route_id ON plugins(route_id);
CREATE INDEX plugins_consumer_id ON plugins(consumer_id);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"#,
    ),
    // Kong's `oic_issuers` (without the discovery document and keys, which stay in memory) and
    // `oic_jwks` (one row, Kong's fixed id). Both hold secrets: the file is private (see below).
    // The node-wide session secret they replace is no longer read: it goes.
    (
        2,
        r#"
CREATE TABLE oic_issuers (
  id TEXT PRIMARY KEY, issuer TEXT NOT NULL UNIQUE, secret TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE oic_jwks (id TEXT PRIMARY KEY, jwks TEXT NOT NULL);
DELETE FROM settings WHERE key = 'session_secret';
"#,
    ),
];

/// Kong's fixed id of the one `oic_jwks` row.
const JWKS_ID: &str = "c3cfba2d-1617-453f-a416-52e6edb5f9a0";

/// The database file's name in the data directory.
const DB_FILE: &str = "gatehouse.db";

/// Private files: the data directory and the database, which holds the issuer secrets (with one,
/// anyone can seal a session cookie) and the node's private keys. Nothing here depends on the
/// process umask.
mod private {
    use super::{DB_FILE, StoreError};
    use std::path::Path;

    /// The directory's mode: only its owner may list or enter it.
    pub const DIR_MODE: u32 = 0o700;
    /// The files' mode: only their owner may read or write them.
    pub const FILE_MODE: u32 = 0o600;
    /// SQLite's files for `gatehouse.db` in WAL mode.
    const FILES: [&str; 3] = ["", "-wal", "-shm"];

    fn err(what: &str, path: &Path, e: std::io::Error) -> StoreError {
        StoreError::Database(format!("cannot {what} {}: {e}", path.display()))
    }

    /// Creates `dir` 0700 (or tightens it), tightens existing database files, and creates an
    /// empty 0600 database file when there is none, so SQLite never creates one with the umask's
    /// mode.
    pub fn prepare(dir: &Path) -> Result<(), StoreError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
            if !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(DIR_MODE)
                    .create(dir)
                    .map_err(|e| err("create data directory", dir, e))?;
            }
            tighten(dir, DIR_MODE)?;
            tighten_files(dir)?;
            let db = dir.join(DB_FILE);
            if !db.exists() {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(FILE_MODE)
                    .open(&db)
                    .map_err(|e| err("create", &db, e))?;
            }
        }
        #[cfg(not(unix))]
        std::fs::create_dir_all(dir).map_err(|e| err("create data directory", dir, e))?;
        Ok(())
    }

    /// Tightens whichever of the database's files exist.
    pub fn tighten_files(dir: &Path) -> Result<(), StoreError> {
        for suffix in FILES {
            let path = dir.join(format!("{DB_FILE}{suffix}"));
            if path.exists() {
                tighten(&path, FILE_MODE)?;
            }
        }
        Ok(())
    }

    /// Removes every permission bit beyond `mode`, logging when there were any. A path this
    /// process may not change is an error: the node refuses to start with its secret exposed.
    #[cfg(unix)]
    fn tighten(path: &Path, mode: u32) -> Result<(), StoreError> {
        use std::os::unix::fs::PermissionsExt;
        let found =
            std::fs::metadata(path).map_err(|e| err("read the mode of", path, e))?.permissions().mode() & 0o7777;
        if found & !mode != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(found & mode))
                .map_err(|e| err("tighten the permissions of", path, e))?;
            tracing::warn!(
                path = %path.display(),
                found = format!("{found:o}"),
                now = format!("{:o}", found & mode),
                "tightened permissions: the data directory holds the node's secrets"
            );
        }
        Ok(())
    }

    #[cfg(not(unix))]
    fn tighten(_path: &Path, _mode: u32) -> Result<(), StoreError> {
        Ok(())
    }
}

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    pool: SqlitePool,
}

fn db_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(d) = &e {
        let msg = d.message();
        if let Some(rest) = msg.strip_prefix("UNIQUE constraint failed: ") {
            let field = rest.split(',').next().unwrap_or(rest).trim();
            let field = field.split_once('.').map(|(_, f)| f).unwrap_or(field);
            return StoreError::Unique { field: field.to_string() };
        }
        if msg.contains("FOREIGN KEY constraint failed") {
            return StoreError::ForeignKey;
        }
    }
    StoreError::Database(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) `gatehouse.db` in `dir` and applies migrations.
    ///
    /// The database holds the issuer secrets and the node's private keys, so the directory is made
    /// private (0700) and its files 0600, and looser modes found there are tightened, with a warning.
    pub async fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        private::prepare(dir)?;
        let opts = SqliteConnectOptions::new()
            .filename(dir.join(DB_FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await.map_err(db_err)?;
        let store = SqliteStore { pool };
        store.migrate().await?;
        // SQLite gives its -wal and -shm files the database file's mode; check them anyway.
        private::tighten_files(dir)?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER)")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        for (version, sql) in MIGRATIONS {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let done: Option<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            if done.is_some() {
                continue;
            }
            sqlx::raw_sql(AssertSqlSafe(*sql)).execute(&mut *tx).await.map_err(db_err)?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, strftime('%s','now'))")
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            tracing::info!(version, "applied store migration");
        }
        Ok(())
    }

    /// A node-wide setting (e.g. a generated secret), creating it with `init` if absent. The first
    /// writer wins, so every caller sees the same value.
    pub async fn setting_or_insert(&self, key: &str, init: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT OR IGNORE INTO settings (key, value) VALUES (?, ?)")
            .bind(key)
            .bind(init)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }
}

fn parse_data(s: &str) -> Result<Value, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Database(format!("corrupt entity data: {e}")))
}

/// Encodes a position `(created_at, id)` as Kong-style opaque base64.
fn encode_offset(created_at: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::json!([created_at, id]).to_string())
}

fn decode_offset(s: &str) -> Result<(i64, String), StoreError> {
    let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| StoreError::InvalidOffset(s.to_string()))?;
    let v: (i64, String) = serde_json::from_slice(&bytes).map_err(|_| StoreError::InvalidOffset(s.to_string()))?;
    Ok(v)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn get(&self, kind: Kind, id: &str) -> Result<Option<Value>, StoreError> {
        let sql = format!("SELECT data FROM {} WHERE id = ?", kind.name());
        let row: Option<String> =
            sqlx::query_scalar(AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await.map_err(db_err)?;
        row.map(|s| parse_data(&s)).transpose()
    }

    async fn get_by(&self, kind: Kind, field: &'static str, value: &str) -> Result<Option<Value>, StoreError> {
        if !columns(kind).contains(&field) {
            return Err(StoreError::Database(format!("{} has no column {field}", kind.name())));
        }
        let sql = format!("SELECT data FROM {} WHERE {field} = ?", kind.name());
        let row: Option<String> =
            sqlx::query_scalar(AssertSqlSafe(sql)).bind(value).fetch_optional(&self.pool).await.map_err(db_err)?;
        row.map(|s| parse_data(&s)).transpose()
    }

    async fn list(&self, kind: Kind, q: &ListQuery) -> Result<Page, StoreError> {
        let mut sql = format!("SELECT created_at, id, data FROM {} t WHERE 1=1", kind.name());
        let mut binds: Vec<String> = Vec::new();
        let mut after: Option<(i64, String)> = None;
        if let Some(off) = &q.offset {
            after = Some(decode_offset(off)?);
            sql.push_str(" AND (created_at > ? OR (created_at = ? AND id > ?))");
        }
        if let Some((field, id)) = &q.parent {
            let col = format!("{field}_id");
            if !columns(kind).contains(&col.as_str()) {
                return Err(StoreError::Database(format!("{} has no column {col}", kind.name())));
            }
            sql.push_str(&format!(" AND {col} = ?"));
            binds.push(id.clone());
        }
        if let Some(tags) = &q.tags {
            if tags.all {
                for t in &tags.tags {
                    sql.push_str(" AND EXISTS (SELECT 1 FROM json_each(t.tags) WHERE value = ?)");
                    binds.push(t.clone());
                }
            } else {
                let marks = vec!["?"; tags.tags.len()].join(",");
                sql.push_str(&format!(" AND EXISTS (SELECT 1 FROM json_each(t.tags) WHERE value IN ({marks}))"));
                binds.extend(tags.tags.iter().cloned());
            }
        }
        sql.push_str(" ORDER BY created_at, id LIMIT ?");
        let mut query = sqlx::query(AssertSqlSafe(sql));
        if let Some((c, id)) = &after {
            query = query.bind(*c).bind(*c).bind(id.clone());
        }
        for b in binds {
            query = query.bind(b);
        }
        let rows = query.bind((q.size + 1) as i64).fetch_all(&self.pool).await.map_err(db_err)?;
        let more = rows.len() > q.size;
        let mut data = Vec::with_capacity(q.size.min(rows.len()));
        let mut last = None;
        for row in rows.iter().take(q.size) {
            let created: i64 = row.get(0);
            let id: String = row.get(1);
            let json: String = row.get(2);
            data.push(parse_data(&json)?);
            last = Some((created, id));
        }
        let offset = match (more, last) {
            (true, Some((c, id))) => Some(encode_offset(c, &id)),
            _ => None,
        };
        Ok(Page { data, offset })
    }

    async fn insert(&self, kind: Kind, entity: &Value) -> Result<(), StoreError> {
        let cols = columns(kind);
        let sql = format!(
            "INSERT INTO {} (id, created_at, tags, data, {}) VALUES (?, ?, ?, ?, {})",
            kind.name(),
            cols.join(", "),
            vec!["?"; cols.len()].join(", ")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(entity.get("id").and_then(Value::as_str).unwrap_or_default().to_string())
            .bind(entity.get("created_at").and_then(Value::as_i64).unwrap_or_default())
            .bind(tags_text(entity))
            .bind(entity.to_string());
        for c in cols {
            query = query.bind(column_value(entity, c));
        }
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        query.execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn update(&self, kind: Kind, entity: &Value) -> Result<(), StoreError> {
        let cols = columns(kind);
        let sets: Vec<String> = cols.iter().map(|c| format!("{c} = ?")).collect();
        let sql = format!("UPDATE {} SET tags = ?, data = ?, {} WHERE id = ?", kind.name(), sets.join(", "));
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(tags_text(entity)).bind(entity.to_string());
        for c in cols {
            query = query.bind(column_value(entity, c));
        }
        let id = entity.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let res = query.bind(id).execute(&mut *tx).await.map_err(db_err)?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await.map_err(db_err)
    }

    async fn delete(&self, kind: Kind, id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        if kind == Kind::Services {
            let used: Option<i64> = sqlx::query_scalar("SELECT 1 FROM routes WHERE service_id = ? LIMIT 1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            if used.is_some() {
                return Err(StoreError::Referenced { by: "routes" });
            }
        }
        let sql = format!("DELETE FROM {} WHERE id = ?", kind.name());
        sqlx::query(AssertSqlSafe(sql)).bind(id).execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn load_all(&self) -> Result<EntitySet, StoreError> {
        let mut set = EntitySet::default();
        // One read transaction, so the snapshot sees one consistent state.
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        for kind in Kind::ALL {
            let sql = format!("SELECT data FROM {} ORDER BY created_at, id", kind.name());
            let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(sql)).fetch_all(&mut *tx).await.map_err(db_err)?;
            *set.of_mut(kind) = rows.iter().map(|s| parse_data(s)).collect::<Result<_, _>>()?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(set)
    }

    async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    async fn issuers(&self) -> Result<Vec<IssuerRecord>, StoreError> {
        let rows = sqlx::query("SELECT id, issuer, secret, created_at FROM oic_issuers ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(rows.iter().map(issuer_row).collect())
    }

    async fn issuer_insert(&self, record: &IssuerRecord) -> Result<IssuerRecord, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query("INSERT OR IGNORE INTO oic_issuers (id, issuer, secret, created_at) VALUES (?, ?, ?, ?)")
            .bind(&record.id)
            .bind(&record.issuer)
            .bind(&record.secret)
            .bind(record.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let row = sqlx::query("SELECT id, issuer, secret, created_at FROM oic_issuers WHERE issuer = ?")
            .bind(&record.issuer)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(issuer_row(&row))
    }

    async fn issuer_delete(&self, id: &str) -> Result<bool, StoreError> {
        let res =
            sqlx::query("DELETE FROM oic_issuers WHERE id = ?").bind(id).execute(&self.pool).await.map_err(db_err)?;
        Ok(res.rows_affected() > 0)
    }

    async fn own_keys(&self) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT jwks FROM oic_jwks WHERE id = ?")
            .bind(JWKS_ID)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn set_own_keys(&self, stored: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO oic_jwks (id, jwks) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET jwks = excluded.jwks")
            .bind(JWKS_ID)
            .bind(stored)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

fn issuer_row(row: &sqlx::sqlite::SqliteRow) -> IssuerRecord {
    IssuerRecord { id: row.get(0), issuer: row.get(1), secret: row.get(2), created_at: row.get(3) }
}

fn tags_text(entity: &Value) -> Option<String> {
    match entity.get("tags") {
        Some(t @ Value::Array(_)) => Some(t.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TagFilter;
    use serde_json::json;

    fn svc(id: &str, name: &str, created: i64, tags: Value) -> Value {
        json!({"id": id, "name": name, "created_at": created, "updated_at": created, "host": "h", "tags": tags})
    }

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_fresh_store_is_private_to_its_owner() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let s = SqliteStore::open(&dir).await.unwrap();
        s.setting_or_insert("node_id", "s3cret").await.unwrap();
        assert_eq!(mode(&dir), 0o700);
        for f in ["gatehouse.db", "gatehouse.db-wal", "gatehouse.db-shm"] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_loose_store_is_tightened_and_keeps_its_data() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        {
            let s = SqliteStore::open(&dir).await.unwrap();
            s.setting_or_insert("node_id", "s3cret").await.unwrap();
            s.pool.close().await;
        }
        let loosen = |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        loosen(&dir, 0o755);
        loosen(&dir.join("gatehouse.db"), 0o644);
        std::fs::write(dir.join("gatehouse.db-shm"), b"").unwrap();
        loosen(&dir.join("gatehouse.db-shm"), 0o666);
        let s = SqliteStore::open(&dir).await.unwrap();
        assert_eq!(s.setting_or_insert("node_id", "other").await.unwrap(), "s3cret");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("gatehouse.db")), 0o600);
        assert_eq!(mode(&dir.join("gatehouse.db-shm")), 0o600);
    }

    #[tokio::test]
    async fn pages_follow_creation_order_and_tags_filter() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).await.unwrap();
        for i in 0..5 {
            let tags = if i % 2 == 0 { json!(["even", "all"]) } else { json!(["all"]) };
            s.insert(
                Kind::Services,
                &svc(&format!("00000000-0000-0000-0000-00000000000{i}"), &format!("s{i}"), 100 + i, tags),
            )
            .await
            .unwrap();
        }
        let mut q = ListQuery { size: 2, ..Default::default() };
        let p1 = s.list(Kind::Services, &q).await.unwrap();
        assert_eq!(p1.data.len(), 2);
        q.offset = p1.offset.clone();
        let p2 = s.list(Kind::Services, &q).await.unwrap();
        q.offset = p2.offset.clone();
        let p3 = s.list(Kind::Services, &q).await.unwrap();
        assert_eq!(p3.data.len(), 1);
        assert!(p3.offset.is_none());
        assert_eq!(p3.data[0]["name"], "s4");
        let q = ListQuery { size: 10, tags: Some(TagFilter::parse("even,all").unwrap()), ..Default::default() };
        assert_eq!(s.list(Kind::Services, &q).await.unwrap().data.len(), 3);
        let bad = ListQuery { size: 10, offset: Some("!!".into()), ..Default::default() };
        assert!(matches!(s.list(Kind::Services, &bad).await, Err(StoreError::InvalidOffset(_))));
    }

    #[tokio::test]
    async fn issuer_records_and_own_keys_survive_a_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let a = IssuerRecord::generate("https://a", 5);
        {
            let s = SqliteStore::open(tmp.path()).await.unwrap();
            assert_eq!(s.issuer_insert(&a).await.unwrap(), a);
            // The first writer wins: a second record for the issuer is not stored.
            assert_eq!(s.issuer_insert(&IssuerRecord::generate("https://a", 6)).await.unwrap(), a);
            assert_eq!(s.own_keys().await.unwrap(), None);
            s.set_own_keys("one").await.unwrap();
            s.set_own_keys("two").await.unwrap();
            s.pool.close().await;
        }
        let s = SqliteStore::open(tmp.path()).await.unwrap();
        assert_eq!(s.issuers().await.unwrap(), vec![a.clone()]);
        assert_eq!(s.own_keys().await.unwrap().as_deref(), Some("two"));
        assert!(s.issuer_delete(&a.id).await.unwrap());
        assert!(!s.issuer_delete(&a.id).await.unwrap());
        assert!(s.issuers().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn unique_names_and_restricted_deletes_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).await.unwrap();
        let id = "00000000-0000-0000-0000-000000000001";
        s.insert(Kind::Services, &svc(id, "a", 1, Value::Null)).await.unwrap();
        let dup = s.insert(Kind::Services, &svc("00000000-0000-0000-0000-000000000002", "a", 1, Value::Null)).await;
        assert!(matches!(dup, Err(StoreError::Unique { field }) if field == "name"));
        let route = json!({"id": "10000000-0000-0000-0000-000000000001", "created_at": 1, "service": {"id": id}});
        s.insert(Kind::Routes, &route).await.unwrap();
        assert!(matches!(s.delete(Kind::Services, id).await, Err(StoreError::Referenced { by: "routes" })));
        let orphan = json!({"id": "10000000-0000-0000-0000-000000000002", "created_at": 1, "service": {"id": "20000000-0000-0000-0000-000000000000"}});
        assert!(matches!(s.insert(Kind::Routes, &orphan).await, Err(StoreError::ForeignKey)));
        // Nothing half-written: the failed inserts left no rows.
        assert_eq!(s.load_all().await.unwrap().routes.len(), 1);
        assert_eq!(s.load_all().await.unwrap().services.len(), 1);
    }
}
