//! CRUD on `/services`, `/routes`, `/consumers`, `/plugins` and their nested forms, with Kong's
//! semantics: POST 201, PATCH merges (config field by field), PUT upserts (always 200), DELETE 204
//! (also for a missing entity), lists paginated by opaque offset.

use crate::AdminState;
use crate::body::{self, Body};
use crate::error::{AdminError, json_response, lua_table};
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use gatehouse_core::entity::{Kind, validate_entity};
use gatehouse_core::schema::merge;
use gatehouse_store::{ListQuery, StoreError, TagFilter};
use http::StatusCode;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

type St = State<Arc<AdminState>>;

fn kind(name: &str) -> Result<Kind, AdminError> {
    Kind::from_name(name).ok_or(AdminError::NotFound)
}

/// The foreign-key field a child collection uses for a parent collection, if that nesting exists.
fn nesting(parent: Kind, child: Kind) -> Result<&'static str, AdminError> {
    match (parent, child) {
        (Kind::Services, Kind::Routes) | (Kind::Services, Kind::Plugins) => Ok("service"),
        (Kind::Routes, Kind::Plugins) => Ok("route"),
        (Kind::Consumers, Kind::Plugins) => Ok("consumer"),
        _ => Err(AdminError::NotFound),
    }
}

fn store_err(e: StoreError) -> AdminError {
    match e {
        StoreError::InvalidOffset(s) => {
            AdminError::InvalidOffset(format!("'{s}' is not a valid offset: bad base64 encoding"))
        }
        StoreError::NotFound => AdminError::NotFound,
        other => AdminError::Database(other.to_string()),
    }
}

/// Unix seconds, for `created_at` and `updated_at`.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn id_of(v: &Value) -> String {
    v.get("id").and_then(Value::as_str).unwrap_or_default().to_string()
}

/// Finds an entity by id, or by its endpoint key (`name`, `username`) when the text is not a UUID.
async fn find(state: &AdminState, kind: Kind, id_or_key: &str) -> Result<Option<Value>, AdminError> {
    if uuid::Uuid::parse_str(id_or_key).is_ok() {
        return state.store.get(kind, &id_or_key.to_ascii_lowercase()).await.map_err(store_err);
    }
    match kind.endpoint_key() {
        Some(k) => state.store.get_by(kind, k, id_or_key).await.map_err(store_err),
        None => Ok(None),
    }
}

async fn read_body(req: Request) -> Result<Body, AdminError> {
    let (ct, bytes) = crate::read_bytes(req).await?;
    body::parse(ct.as_deref(), bytes).await
}

/// Turns foreign references given by name into ids and checks that referenced ids exist.
async fn resolve_refs(state: &AdminState, kind: Kind, obj: &mut Map<String, Value>) -> Result<(), AdminError> {
    for (field, target) in kind.foreign_keys() {
        let Some(Value::Object(r)) = obj.get(*field).cloned() else { continue };
        if let Some(Value::String(name)) = r.get("name") {
            let found = match target.endpoint_key() {
                Some(k) => state.store.get_by(*target, k, name).await.map_err(store_err)?,
                None => None,
            };
            match found {
                Some(e) => {
                    obj.insert(field.to_string(), json!({"id": id_of(&e)}));
                }
                None => {
                    return Err(AdminError::ForeignKeyUnresolved(
                        format!(
                            "foreign key unresolved ({field}.name: the foreign key cannot be resolved with '{}' for an existing '{}' entity)",
                            lua_table(&json!({"name": name})),
                            target.name()
                        ),
                        json!({field.to_string(): {"name": "the foreign key cannot be resolved"}}),
                    ));
                }
            }
        } else if let Some(Value::String(id)) = r.get("id")
            && uuid::Uuid::parse_str(id).is_ok()
            && state.store.get(*target, &id.to_ascii_lowercase()).await.map_err(store_err)?.is_none()
        {
            return Err(AdminError::ForeignKey {
                message: format!(
                    "the foreign key '{}' does not reference an existing '{}' entity.",
                    lua_table(&json!({"id": id})),
                    target.name()
                ),
                fields: json!({field.to_string(): {"id": id}}),
            });
        }
    }
    Ok(())
}

fn unique_error(field: &str, entity: &Value) -> AdminError {
    let fields = if field == "cache_key" {
        let mut m = Map::new();
        for f in ["consumer", "name", "route", "service"] {
            m.insert(f.into(), entity.get(f).cloned().unwrap_or(Value::Null));
        }
        Value::Object(m)
    } else {
        json!({field: entity.get(field).cloned().unwrap_or(Value::Null)})
    };
    AdminError::Unique(format!("UNIQUE violation detected on '{}'", lua_table(&fields)), fields)
}

fn write_err(e: StoreError, entity: &Value) -> AdminError {
    match e {
        StoreError::Unique { field } => unique_error(&field, entity),
        StoreError::ForeignKey => {
            AdminError::ForeignKey { message: "a referenced entity does not exist".into(), fields: json!({}) }
        }
        other => store_err(other),
    }
}

/// The Admin write lock ([`gatehouse_store::reload::Reloader::write_lock`]). A write holds it
/// from reading the row it changes to its publish or rollback, so a rollback restores exactly what
/// this write replaced, never a copy that another write has changed since.
type Writing<'a> = tokio::sync::MutexGuard<'a, ()>;

/// Validates, stores and publishes one entity; the proxy sees it before this returns. `prev` is
/// the stored entity an update replaces, read under `_writing`. If the new config does not
/// compile, the write is undone and refused: the Admin API never answers success for a config
/// that is not in force.
async fn save(
    state: &AdminState,
    _writing: &Writing<'_>,
    kind: Kind,
    input: Value,
    body: &Body,
    prev: Option<&Value>,
) -> Result<Value, AdminError> {
    let entity = validate_entity(kind, &input, body.mode, &state.registry).map_err(AdminError::Schema)?;
    let res = match prev {
        Some(_) => state.store.update(kind, &entity).await,
        None => state.store.insert(kind, &entity).await,
    };
    res.map_err(|e| write_err(e, &entity))?;
    if let Err(e) = state.publish().await {
        // An insert has nothing cascading from it yet: the lock kept others from adding any.
        let undo = match prev {
            Some(old) => state.store.update(kind, old).await,
            None => state.store.delete(kind, &id_of(&entity)).await,
        };
        if let Err(undo) = undo {
            return Err(rollback_failed(undo, kind, &entity));
        }
        return Err(e);
    }
    Ok(entity)
}

/// A write whose publish failed could not be undone: the store now holds a config that is not
/// the running one, and the next reload would publish it. Said loudly, and a 500, not the
/// writer's 400.
fn rollback_failed(e: StoreError, kind: Kind, entity: &Value) -> AdminError {
    tracing::error!(error = %e, collection = kind.name(), id = %id_of(entity),
        "cannot roll back a write that was not published; the store differs from the running config");
    AdminError::Database(format!("rollback failed: {e}"))
}

/// The plugins deleting this entity cascades to (the store's `ON DELETE CASCADE` on a plugin's
/// `service`, `route` and `consumer`; a service's routes are refused instead), read under the
/// write lock so a failed delete can put them back.
async fn cascaded(state: &AdminState, kind: Kind, id: &str) -> Result<Vec<Value>, AdminError> {
    let Ok(field) = nesting(kind, Kind::Plugins) else { return Ok(Vec::new()) };
    let mut plugins = Vec::new();
    let mut offset = None;
    loop {
        let q = ListQuery { size: 1000, offset, tags: None, parent: Some((field, id.to_string())) };
        let page = state.store.list(Kind::Plugins, &q).await.map_err(store_err)?;
        plugins.extend(page.data);
        match page.offset {
            Some(next) => offset = Some(next),
            None => return Ok(plugins),
        }
    }
}

/// Puts back an entity a failed delete removed, then the plugins its delete cascaded to. If a
/// plugin cannot be put back, the entity is deleted again: the next reload would publish a route
/// back without its auth plugin unauthenticated, while a missing route fails closed (404).
async fn restore(state: &AdminState, kind: Kind, entity: &Value, plugins: &[Value]) -> Result<(), StoreError> {
    state.store.insert(kind, entity).await?;
    for p in plugins {
        if let Err(e) = state.store.insert(Kind::Plugins, p).await {
            if let Err(again) = state.store.delete(kind, &id_of(entity)).await {
                tracing::error!(error = %again, id = %id_of(entity),
                    "cannot remove an entity whose plugins could not be restored");
            }
            return Err(e);
        }
    }
    Ok(())
}

fn read_only(state: &AdminState, kind: Kind, op: &str) -> Result<(), AdminError> {
    if state.store.read_only() {
        return Err(AdminError::Unsupported(format!(
            "cannot {op} '{}' entities when not using a database",
            kind.name()
        )));
    }
    Ok(())
}

// === collection endpoints ===

/// `GET /{collection}`
pub async fn list(State(s): St, Path(coll): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    result(list_inner(&s, &coll, None, q).await)
}

/// `GET /{parent}/{id}/{collection}`
pub async fn list_nested(
    State(s): St,
    Path((parent, pid, coll)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    result(list_inner(&s, &coll, Some((parent, pid)), q).await)
}

/// Kong's `?size=`: 100 when absent, else an integer from 1 to 1000.
pub(crate) fn page_size(q: &HashMap<String, String>) -> Result<usize, AdminError> {
    match q.get("size") {
        None => Ok(100),
        Some(v) => {
            let n: f64 = v.parse().map_err(|_| AdminError::InvalidSize("size must be a number".into()))?;
            if !(1.0..=1000.0).contains(&n) || n.fract() != 0.0 {
                return Err(AdminError::InvalidSize("size must be an integer between 1 and 1000".into()));
            }
            Ok(n as usize)
        }
    }
}

async fn list_inner(
    s: &AdminState,
    coll: &str,
    parent: Option<(String, String)>,
    q: HashMap<String, String>,
) -> Result<Response, AdminError> {
    let kind = kind(coll)?;
    let size = page_size(&q)?;
    let tags = match q.get("tags") {
        Some(t) => Some(TagFilter::parse(t).map_err(AdminError::InvalidOptions)?),
        None => None,
    };
    let mut base = format!("/{coll}");
    let parent = match parent {
        Some((pcoll, pid)) => {
            let pkind = self::kind(&pcoll)?;
            let field = nesting(pkind, kind)?;
            let p = find(s, pkind, &pid).await?.ok_or(AdminError::NotFound)?;
            base = format!("/{pcoll}/{}/{coll}", id_of(&p));
            Some((field, id_of(&p)))
        }
        None => None,
    };
    let query = ListQuery { size, offset: q.get("offset").cloned(), tags, parent };
    let page = s.store.list(kind, &query).await.map_err(store_err)?;
    let mut body = json!({"data": page.data, "next": null});
    if let Some(off) = page.offset {
        let enc: String = form_urlencoded::byte_serialize(off.as_bytes()).collect();
        let mut next = format!("{base}?offset={enc}");
        if let Some(t) = q.get("tags") {
            next.push_str("&tags=");
            next.extend(form_urlencoded::byte_serialize(t.as_bytes()));
        }
        if q.contains_key("size") {
            next.push_str(&format!("&size={size}"));
        }
        body["next"] = next.into();
        body["offset"] = off.into();
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// `POST /{collection}`
pub async fn create(State(s): St, Path(coll): Path<String>, req: Request) -> Response {
    result(create_inner(&s, &coll, None, req).await)
}

/// `POST /{parent}/{id}/{collection}`
pub async fn create_nested(
    State(s): St,
    Path((parent, pid, coll)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    result(create_inner(&s, &coll, Some((parent, pid)), req).await)
}

async fn create_inner(
    s: &AdminState,
    coll: &str,
    parent: Option<(String, String)>,
    req: Request,
) -> Result<Response, AdminError> {
    let kind = kind(coll)?;
    let parent_ref = parent_ref(s, kind, parent).await?;
    read_only(s, kind, "create")?;
    let body = read_body(req).await?;
    let mut obj = body.value.clone();
    if let Some((field, id)) = parent_ref {
        obj.insert(field.into(), json!({"id": id}));
    }
    obj.entry("id").or_insert_with(|| uuid::Uuid::new_v4().to_string().into());
    let t = now();
    obj.insert("created_at".into(), t.into());
    obj.insert("updated_at".into(), t.into());
    let writing = s.reloader.write_lock().await;
    resolve_refs(s, kind, &mut obj).await?;
    let entity = save(s, &writing, kind, Value::Object(obj), &body, None).await?;
    Ok(json_response(StatusCode::CREATED, &entity))
}

async fn parent_ref(
    s: &AdminState,
    kind: Kind,
    parent: Option<(String, String)>,
) -> Result<Option<(&'static str, String)>, AdminError> {
    match parent {
        Some((pcoll, pid)) => {
            let pkind = self::kind(&pcoll)?;
            let field = nesting(pkind, kind)?;
            let p = find(s, pkind, &pid).await?.ok_or(AdminError::NotFound)?;
            Ok(Some((field, id_of(&p))))
        }
        None => Ok(None),
    }
}

// === entity endpoints ===

/// Loads the entity addressed by a (possibly nested) path, or 404.
async fn addressed(
    s: &AdminState,
    kind: Kind,
    id: &str,
    parent: &Option<(&'static str, String)>,
) -> Result<Option<Value>, AdminError> {
    let e = find(s, kind, id).await?;
    if let (Some(e), Some((field, pid))) = (&e, parent)
        && e.get(*field).and_then(|r| r.get("id")).and_then(Value::as_str) != Some(pid.as_str())
    {
        return Ok(None);
    }
    Ok(e)
}

/// `GET /{collection}/{id}` and `GET /{parent}/{pid}/{collection}/{id}`
pub async fn read(State(s): St, Path(p): Path<HashMap<String, String>>) -> Response {
    result(
        async {
            let (kind, id, parent) = entity_path(&s, &p).await?;
            let e = addressed(&s, kind, &id, &parent).await?.ok_or(AdminError::NotFound)?;
            Ok(json_response(StatusCode::OK, &e))
        }
        .await,
    )
}

async fn entity_path(
    s: &AdminState,
    p: &HashMap<String, String>,
) -> Result<(Kind, String, Option<(&'static str, String)>), AdminError> {
    let kind = kind(p.get("coll").map(String::as_str).unwrap_or_default())?;
    let id = p.get("id").cloned().unwrap_or_default();
    let parent = match (p.get("parent"), p.get("pid")) {
        (Some(pc), Some(pid)) => parent_ref(s, kind, Some((pc.clone(), pid.clone()))).await?,
        _ => None,
    };
    Ok((kind, id, parent))
}

/// `PATCH /{collection}/{id}`: merges the body into the stored entity.
pub async fn update(State(s): St, Path(p): Path<HashMap<String, String>>, req: Request) -> Response {
    result(
        async {
            let (kind, id, parent) = entity_path(&s, &p).await?;
            if addressed(&s, kind, &id, &parent).await?.is_none() {
                return Err(AdminError::NotFound);
            }
            read_only(&s, kind, "update")?;
            // The body is read before the lock: a slow client does not hold up every writer.
            let body = read_body(req).await?;
            let writing = s.reloader.write_lock().await;
            let Some(existing) = addressed(&s, kind, &id, &parent).await? else {
                return Err(AdminError::NotFound);
            };
            let mut merged = existing.clone();
            let mut patch = body.value.clone();
            patch.remove("id");
            patch.remove("created_at");
            if kind == Kind::Services
                && patch.contains_key("url")
                && let Value::Object(m) = &mut merged
            {
                for f in ["protocol", "host", "port", "path"] {
                    m.remove(f);
                }
            }
            merge(&mut merged, &Value::Object(patch));
            let Value::Object(mut obj) = merged else { return Err(AdminError::NotFound) };
            obj.insert("updated_at".into(), now().into());
            if let Some((field, pid)) = &parent {
                obj.insert(field.to_string(), json!({"id": pid}));
            }
            resolve_refs(&s, kind, &mut obj).await?;
            let entity = save(&s, &writing, kind, Value::Object(obj), &body, Some(&existing)).await?;
            Ok(json_response(StatusCode::OK, &entity))
        }
        .await,
    )
}

/// `PUT /{collection}/{id or name}`: creates or replaces the whole entity.
pub async fn upsert(State(s): St, Path(p): Path<HashMap<String, String>>, req: Request) -> Response {
    result(
        async {
            let (kind, id, parent) = entity_path(&s, &p).await?;
            read_only(&s, kind, "create or update")?;
            let body = read_body(req).await?;
            let writing = s.reloader.write_lock().await;
            let existing = find(&s, kind, &id).await?;
            let mut obj = body.value.clone();
            let t = now();
            match &existing {
                Some(e) => {
                    obj.insert("id".into(), id_of(e).into());
                    obj.insert("created_at".into(), e.get("created_at").cloned().unwrap_or(t.into()));
                }
                None if uuid::Uuid::parse_str(&id).is_ok() => {
                    obj.insert("id".into(), id.to_ascii_lowercase().into());
                    obj.insert("created_at".into(), t.into());
                }
                None => {
                    let Some(key) = kind.endpoint_key() else { return Err(AdminError::NotFound) };
                    obj.insert(key.into(), id.clone().into());
                    obj.insert("id".into(), uuid::Uuid::new_v4().to_string().into());
                    obj.insert("created_at".into(), t.into());
                }
            }
            if existing.is_some()
                && uuid::Uuid::parse_str(&id).is_err()
                && let Some(key) = kind.endpoint_key()
            {
                obj.insert(key.into(), id.clone().into());
            }
            obj.insert("updated_at".into(), t.into());
            if let Some((field, pid)) = &parent {
                obj.insert(field.to_string(), json!({"id": pid}));
            }
            resolve_refs(&s, kind, &mut obj).await?;
            let entity = save(&s, &writing, kind, Value::Object(obj), &body, existing.as_ref()).await?;
            Ok(json_response(StatusCode::OK, &entity))
        }
        .await,
    )
}

/// `DELETE /{collection}/{id}`: 204 whether or not the entity existed.
pub async fn remove(State(s): St, Path(p): Path<HashMap<String, String>>) -> Response {
    result(
        async {
            let (kind, id, parent) = entity_path(&s, &p).await?;
            if addressed(&s, kind, &id, &parent).await?.is_none() {
                return Ok(StatusCode::NO_CONTENT.into_response());
            }
            read_only(&s, kind, "remove")?;
            let _writing = s.reloader.write_lock().await;
            let Some(e) = addressed(&s, kind, &id, &parent).await? else {
                return Ok(StatusCode::NO_CONTENT.into_response());
            };
            let plugins = cascaded(&s, kind, &id_of(&e)).await?;
            match s.store.delete(kind, &id_of(&e)).await {
                Ok(()) => {}
                Err(StoreError::Referenced { by }) => {
                    return Err(AdminError::ForeignKey {
                        message: format!("an existing '{by}' entity references this '{}' entity", kind.name()),
                        fields: json!({"@referenced_by": by}),
                    });
                }
                Err(other) => return Err(store_err(other)),
            }
            if let Err(err) = s.publish().await {
                // Put back the entity and the plugins that went with it, so the store still holds
                // the running config and the answer says the truth.
                if let Err(undo) = restore(&s, kind, &e, &plugins).await {
                    return Err(rollback_failed(undo, kind, &e));
                }
                return Err(err);
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

/// Turns a handler result into a response, errors in Kong's shape.
pub fn result(r: Result<Response, AdminError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}
