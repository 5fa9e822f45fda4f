//! Kong-compatible Admin API.
//!
//! [`router`] builds the axum `Router`; tests drive it without a socket. Only this crate (and the
//! proxy's `respond` module) knows Kong's JSON shapes.
#![warn(missing_docs)]

mod body;
mod entities;
mod error;
mod guard;
mod oidc;
mod serve;

pub use error::AdminError;
pub use guard::{Guard, OriginError, parse_origin};
pub use serve::serve;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use gatehouse_core::plugin::Registry;
use gatehouse_core::stats::ProxyStats;
use gatehouse_store::Store;
use gatehouse_store::reload::Reloader;
use http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

/// Everything the Admin API handlers share.
pub struct AdminState {
    /// Where entities live.
    pub store: Arc<dyn Store>,
    /// Known plugin kinds.
    pub registry: Registry,
    /// Publishes new snapshots after writes.
    pub reloader: Arc<Reloader>,
    /// Proxy counters for `/status`.
    pub stats: Arc<ProxyStats>,
    /// This node's id.
    pub node_id: String,
    /// The effective configuration shown on `GET /` (no secrets).
    pub configuration: Value,
}

impl AdminState {
    /// Recompiles and publishes the config after a committed write. A failure (logged by the
    /// reloader) leaves the last good snapshot in force and is returned, so the caller rolls the
    /// write back instead of answering success for a config that is not running.
    async fn publish(&self) -> Result<(), AdminError> {
        self.reloader.reload_write().await.map(drop).map_err(reload_err)
    }
}

/// The last good config compiled, so a compile that fails now was broken by this write: the
/// writer's schema violation (a plugin's with its field, else on `@entity`). A store that cannot
/// be read, or a resource that cannot be made, is the node's fault.
fn reload_err(e: gatehouse_store::reload::ReloadError) -> AdminError {
    use gatehouse_core::plugin::BuildError;
    use gatehouse_core::schema::{FieldErrors, Seg};
    use gatehouse_store::reload::ReloadError;
    match e {
        ReloadError::Plugin { reason: BuildError::Config(errs), .. } => AdminError::Schema(errs),
        ReloadError::Compile(e) => {
            AdminError::Schema(FieldErrors::one(vec![Seg::Key("@entity".into())], e.to_string()))
        }
        other => AdminError::Database(other.to_string()),
    }
}

/// The Admin API router with the default [`Guard`]: no cross-origin writes, Kong's body limit.
pub fn router(state: Arc<AdminState>) -> Router {
    router_with(state, Guard::default())
}

/// The Admin API router, with `guard`'s origins and limits.
pub fn router_with(state: Arc<AdminState>, guard: Guard) -> Router {
    layers(routes(state), guard)
}

/// The outer layers, outermost first: a panic anywhere inside becomes a 500 for that request; then
/// the origin check and body limit ([`guard`]).
fn layers(routes: Router, guard: Guard) -> Router {
    routes
        .layer(axum::middleware::from_fn_with_state(Arc::new(guard), guard::origin_check))
        .layer(axum::middleware::from_fn(guard::catch_panic))
}

fn routes(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/status", get(status))
        .route("/config", post(post_config))
        .route("/plugins/enabled", get(plugins_enabled))
        .route("/schemas/plugins/validate", post(validate_plugin))
        .route("/schemas/plugins/{name}", get(plugin_schema))
        .route("/schemas/{coll}", get(entity_schema))
        .route(
            "/openid-connect/issuers",
            get(oidc::list_issuers).delete(oidc::delete_issuers).fallback(method_not_allowed),
        )
        .route(
            "/openid-connect/issuers/{issuer_or_id}",
            get(oidc::read_issuer).delete(oidc::delete_issuer).fallback(method_not_allowed),
        )
        .route("/openid-connect/jwks", get(oidc::read_jwks).delete(oidc::rotate_jwks).fallback(method_not_allowed))
        .route("/{coll}", get(entities::list).post(entities::create).fallback(method_not_allowed))
        .route(
            "/{coll}/{id}",
            get(entities::read)
                .patch(entities::update)
                .put(entities::upsert)
                .delete(entities::remove)
                .fallback(method_not_allowed),
        )
        .route(
            "/{parent}/{pid}/{coll}",
            get(entities::list_nested).post(entities::create_nested).fallback(method_not_allowed),
        )
        .route(
            "/{parent}/{pid}/{coll}/{id}",
            get(entities::read)
                .patch(entities::update)
                .put(entities::upsert)
                .delete(entities::remove)
                .fallback(method_not_allowed),
        )
        .fallback(not_found)
        .with_state(state)
}

async fn not_found() -> Response {
    axum::response::IntoResponse::into_response(AdminError::NotFound)
}

async fn method_not_allowed() -> Response {
    axum::response::IntoResponse::into_response(AdminError::MethodNotAllowed)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "localhost".into())
}

async fn root(State(s): State<Arc<AdminState>>) -> Response {
    let mut available = serde_json::Map::new();
    for f in s.registry.iter() {
        available.insert(f.name().into(), json!({"version": f.version(), "priority": f.priority()}));
    }
    let enabled: Vec<String> = match s.store.load_all().await {
        Ok(set) => {
            let mut names: Vec<String> =
                set.plugins.iter().filter_map(|p| p.get("name").and_then(Value::as_str)).map(str::to_string).collect();
            names.sort();
            names.dedup();
            names
        }
        Err(_) => Vec::new(),
    };
    error::json_response(
        StatusCode::OK,
        &json!({
            "tagline": "Welcome to gatehouse",
            "version": env!("CARGO_PKG_VERSION"),
            "edition": "community",
            "hostname": hostname(),
            "node_id": s.node_id,
            "plugins": {"available_on_server": available, "enabled_in_cluster": enabled},
            "configuration": s.configuration,
            "pids": {"master": std::process::id(), "workers": [std::process::id()]},
        }),
    )
}

async fn status(State(s): State<Arc<AdminState>>) -> Response {
    let reachable = s.store.ping().await;
    let snapshot = s.reloader.handle().load();
    error::json_response(
        StatusCode::OK,
        &json!({
            "database": {"reachable": reachable},
            "server": s.stats.to_json(),
            "configuration_version": snapshot.version,
        }),
    )
}

async fn plugins_enabled(State(s): State<Arc<AdminState>>) -> Response {
    let names: Vec<&str> = s.registry.iter().map(|f| f.name()).collect();
    error::json_response(StatusCode::OK, &json!({"enabled_plugins": names}))
}

async fn plugin_schema(State(s): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    match s.registry.describe(&name) {
        Some(v) => error::json_response(StatusCode::OK, &v),
        None => error::json_response(StatusCode::NOT_FOUND, &json!({"message": format!("No plugin named '{name}'")})),
    }
}

async fn entity_schema(Path(coll): Path<String>) -> Response {
    match gatehouse_core::entity::Kind::from_name(&coll) {
        Some(k) => error::json_response(StatusCode::OK, &json!({"fields": k.schema().describe()})),
        None => error::json_response(StatusCode::NOT_FOUND, &json!({"message": format!("No entity named '{coll}'")})),
    }
}

async fn validate_plugin(State(s): State<Arc<AdminState>>, req: Request) -> Response {
    entities::result(
        async {
            let (_, bytes) = read_bytes(req).await?;
            let b = body::parse(Some("application/json"), bytes).await?;
            s.registry.validate_plugin(&Value::Object(b.value), b.mode).map_err(AdminError::Schema)?;
            Ok(error::json_response(StatusCode::OK, &json!({"message": "schema validation successful"})))
        }
        .await,
    )
}

/// Reads the whole body, refusing more than the [`Guard`]'s limit with 413.
pub(crate) async fn read_bytes(req: Request) -> Result<(Option<String>, bytes::Bytes), AdminError> {
    use http_body_util::BodyExt;
    let ct = req.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (limit, timeout) = req
        .extensions()
        .get::<guard::BodyLimit>()
        .map_or((body::DEFAULT_MAX_BODY, guard::Guard::default().body_timeout), |l| (l.0, l.1));
    let limited = http_body_util::Limited::new(req.into_body(), limit);
    // Nothing has been done yet when the body is late: giving up here leaves nothing half-done.
    let Ok(collected) = tokio::time::timeout(timeout, limited.collect()).await else {
        tracing::info!(timeout_secs = timeout.as_secs(), "admin request body not received in time");
        return Err(AdminError::RequestTimeout);
    };
    match collected {
        Ok(c) => Ok((ct, c.to_bytes())),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(AdminError::PayloadTooLarge),
        Err(e) => Err(AdminError::BadRequest(format!("cannot read body: {e}"))),
    }
}

/// `POST /config` (declarative mode): replaces the whole configuration with a `kong.yml` given as
/// the `config` field or as the raw body.
async fn post_config(State(s): State<Arc<AdminState>>, req: Request) -> Response {
    entities::result(
        async {
            if !s.store.read_only() {
                return Err(AdminError::BadRequest(
                    "this endpoint is only available when using declarative config".into(),
                ));
            }
            let (ct, bytes) = read_bytes(req).await?;
            let text = match ct.as_deref() {
                Some(c) if c.starts_with("application/x-www-form-urlencoded") || c.starts_with("multipart/") => {
                    let b = body::parse(Some(c), bytes).await?;
                    b.value.get("config").and_then(Value::as_str).unwrap_or_default().to_string()
                }
                Some(c) if c.starts_with("application/json") => {
                    let v = body::json(&bytes)?;
                    match v.get("config") {
                        Some(Value::String(t)) => t.clone(),
                        Some(obj @ Value::Object(_)) => obj.to_string(),
                        _ => v.to_string(),
                    }
                }
                _ => String::from_utf8_lossy(&bytes).into_owned(),
            };
            let doc = gatehouse_store::declarative::parse(&text)
                .map_err(|e| AdminError::Declarative(gatehouse_core::schema::FieldErrors::one(vec![], e)))?;
            let set = gatehouse_store::declarative::load(&doc, &s.registry, entities::now())
                .map_err(AdminError::Declarative)?;
            let _writing = s.reloader.write_lock().await;
            let old = s.store.load_all().await.map_err(|e| AdminError::Database(e.to_string()))?;
            s.store.replace_all(set).await.map_err(|e| AdminError::Database(e.to_string()))?;
            if let Err(e) = s.publish().await {
                // The old set compiled before; put it back so the store and the proxy agree.
                if let Err(back) = s.store.replace_all(old).await {
                    // The store keeps the refused config and the next reload publishes it: a
                    // node fault (500), not the writer's 400.
                    tracing::error!(error = %back,
                        "cannot restore the previous declarative config after a refused POST /config; \
                         the store differs from the running config");
                    return Err(AdminError::Database(format!("rollback failed: {back}")));
                }
                return Err(match e {
                    AdminError::Schema(errs) => AdminError::Declarative(errs),
                    other => other,
                });
            }
            Ok(error::json_response(StatusCode::CREATED, &doc))
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::entity::PluginEntity;
    use gatehouse_core::plugin::{BuildEnv, BuildError, Plugin, PluginFactory};
    use gatehouse_core::schema::{Field, FieldErrors, Record};
    use gatehouse_core::secrets::IssuerRecord;
    use gatehouse_store::sqlite::SqliteStore;
    use http::Request;
    use tower::ServiceExt as _;

    /// A plugin whose check passes but whose build fails when `fail` is set: a write the
    /// check cannot see through (a resource failing at compile time).
    struct Flaky(Record);
    struct Noop;
    impl Plugin for Noop {}

    impl PluginFactory for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        fn priority(&self) -> i32 {
            1
        }
        fn config_schema(&self) -> &Record {
            &self.0
        }
        fn build(&self, entity: &PluginEntity, _env: &BuildEnv) -> Result<Arc<dyn Plugin>, BuildError> {
            if entity.config["fail"] == json!(true) {
                return Err(BuildError::field("fail", "cannot be built now"));
            }
            Ok(Arc::new(Noop))
        }
        fn check(&self, _entity: &PluginEntity) -> Result<(), FieldErrors> {
            Ok(())
        }
    }

    async fn state(dir: &std::path::Path) -> Arc<AdminState> {
        state_on(Arc::new(SqliteStore::open(dir).await.expect("store"))).await
    }

    async fn state_on(store: Arc<dyn Store>) -> Arc<AdminState> {
        let mut registry = Registry::default();
        registry.register(Arc::new(Flaky(Record::new(vec![Field::boolean("fail").default(json!(false))]))));
        let reloader =
            Arc::new(Reloader::new(store.clone(), registry.clone(), BuildEnv::default(), Default::default()));
        reloader.reload().await.expect("empty config compiles");
        Arc::new(AdminState {
            store,
            registry,
            reloader,
            stats: Default::default(),
            node_id: "node".into(),
            configuration: json!({}),
        })
    }

    async fn call(s: &Arc<AdminState>, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let req = Request::builder().method(method).uri(uri).header("content-type", "application/json");
        let req = req.body(axum::body::Body::from(body.map(|b| b.to_string()).unwrap_or_default())).expect("request");
        let resp = router(s.clone()).oneshot(req).await.expect("answer");
        let status = resp.status();
        let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.expect("body").to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn a_write_whose_compile_fails_is_rolled_back_and_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = state(dir.path()).await;
        let version = s.reloader.handle().load().version;

        // An insert that does not build is refused and not stored.
        let (st, body) = call(&s, "POST", "/plugins", Some(json!({"name": "flaky", "config": {"fail": true}}))).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["fields"]["config"]["fail"], "cannot be built now");
        assert_eq!(call(&s, "GET", "/plugins", None).await.1["data"], json!([]));
        assert_eq!(s.reloader.handle().load().version, version, "nothing published");

        // An update that does not build is undone: the stored row is the old one.
        let (st, body) = call(&s, "POST", "/plugins", Some(json!({"name": "flaky"}))).await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().expect("id").to_string();
        let (st, _) = call(&s, "PATCH", &format!("/plugins/{id}"), Some(json!({"config": {"fail": true}}))).await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        let (_, stored) = call(&s, "GET", &format!("/plugins/{id}"), None).await;
        assert_eq!(stored["config"]["fail"], false, "rolled back: {stored}");

        // And the next write goes through.
        let (st, _) = call(&s, "PATCH", &format!("/plugins/{id}"), Some(json!({"tags": ["ok"]}))).await;
        assert_eq!(st, StatusCode::OK);
        assert!(s.reloader.handle().load().version > version);
    }

    /// A store that forwards to another, with hooks to interleave writes and to fail on cue.
    #[derive(Default)]
    struct Hooks {
        /// Taken by the next `get` of this id, which then waits for it before answering.
        gate: std::sync::Mutex<Option<(String, tokio::sync::oneshot::Receiver<()>)>>,
        /// Signalled when the gated `get` has read its row.
        gated: tokio::sync::Notify,
        /// `load_all` fails while set (a database that cannot be read at publish time).
        fail_load: std::sync::atomic::AtomicBool,
        /// How many more `replace_all` calls succeed.
        replaces_left: std::sync::atomic::AtomicUsize,
    }

    struct Hooked {
        inner: Arc<dyn Store>,
        hooks: Arc<Hooks>,
    }

    #[async_trait::async_trait]
    impl Store for Hooked {
        fn backend(&self) -> &'static str {
            self.inner.backend()
        }
        fn read_only(&self) -> bool {
            self.inner.read_only()
        }
        async fn get(
            &self,
            kind: gatehouse_core::entity::Kind,
            id: &str,
        ) -> Result<Option<Value>, gatehouse_store::StoreError> {
            let row = self.inner.get(kind, id).await;
            let gate = {
                let mut g = self.hooks.gate.lock().expect("gate");
                if g.as_ref().is_some_and(|(gid, _)| gid == id) { g.take() } else { None }
            };
            if let Some((_, rx)) = gate {
                self.hooks.gated.notify_one();
                rx.await.expect("gate opened");
            }
            row
        }
        async fn get_by(
            &self,
            kind: gatehouse_core::entity::Kind,
            field: &'static str,
            value: &str,
        ) -> Result<Option<Value>, gatehouse_store::StoreError> {
            self.inner.get_by(kind, field, value).await
        }
        async fn list(
            &self,
            kind: gatehouse_core::entity::Kind,
            q: &gatehouse_store::ListQuery,
        ) -> Result<gatehouse_store::Page, gatehouse_store::StoreError> {
            self.inner.list(kind, q).await
        }
        async fn insert(
            &self,
            kind: gatehouse_core::entity::Kind,
            e: &Value,
        ) -> Result<(), gatehouse_store::StoreError> {
            self.inner.insert(kind, e).await
        }
        async fn update(
            &self,
            kind: gatehouse_core::entity::Kind,
            e: &Value,
        ) -> Result<(), gatehouse_store::StoreError> {
            self.inner.update(kind, e).await
        }
        async fn delete(
            &self,
            kind: gatehouse_core::entity::Kind,
            id: &str,
        ) -> Result<(), gatehouse_store::StoreError> {
            self.inner.delete(kind, id).await
        }
        async fn load_all(&self) -> Result<gatehouse_core::entity::EntitySet, gatehouse_store::StoreError> {
            if self.hooks.fail_load.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(gatehouse_store::StoreError::Database("cannot read (test)".into()));
            }
            self.inner.load_all().await
        }
        async fn replace_all(&self, set: gatehouse_core::entity::EntitySet) -> Result<(), gatehouse_store::StoreError> {
            let left = &self.hooks.replaces_left;
            if left
                .fetch_update(std::sync::atomic::Ordering::SeqCst, std::sync::atomic::Ordering::SeqCst, |n| {
                    n.checked_sub(1)
                })
                .is_err()
            {
                return Err(gatehouse_store::StoreError::Database("cannot write (test)".into()));
            }
            self.inner.replace_all(set).await
        }
        async fn ping(&self) -> bool {
            self.inner.ping().await
        }
        async fn issuers(&self) -> Result<Vec<IssuerRecord>, gatehouse_store::StoreError> {
            self.inner.issuers().await
        }
        async fn issuer_insert(&self, r: &IssuerRecord) -> Result<IssuerRecord, gatehouse_store::StoreError> {
            self.inner.issuer_insert(r).await
        }
        async fn issuer_delete(&self, id: &str) -> Result<bool, gatehouse_store::StoreError> {
            self.inner.issuer_delete(id).await
        }
        async fn own_keys(&self) -> Result<Option<String>, gatehouse_store::StoreError> {
            self.inner.own_keys().await
        }
        async fn set_own_keys(&self, stored: &str) -> Result<(), gatehouse_store::StoreError> {
            self.inner.set_own_keys(stored).await
        }
    }

    async fn hooked(dir: &std::path::Path) -> (Arc<AdminState>, Arc<Hooks>) {
        let hooks = Arc::new(Hooks::default());
        let inner: Arc<dyn Store> = Arc::new(SqliteStore::open(dir).await.expect("store"));
        (state_on(Arc::new(Hooked { inner, hooks: hooks.clone() })).await, hooks)
    }

    /// Two writes of one plugin (B a PATCH or a PUT): B read the row, then A committed and was
    /// answered 200, then B's config failed to build. B's rollback must restore A's row, not the
    /// copy B read first, or the store disagrees with the running config and the next reload
    /// silently reverts A.
    #[tokio::test]
    async fn a_rolled_back_update_restores_the_row_a_concurrent_write_committed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (s, hooks) = hooked(dir.path()).await;
        for (method, b_body) in
            [("PATCH", json!({"config": {"fail": true}})), ("PUT", json!({"name": "flaky", "config": {"fail": true}}))]
        {
            let (st, body) = call(&s, "POST", "/plugins", Some(json!({"name": "flaky", "enabled": false}))).await;
            assert_eq!(st, StatusCode::CREATED, "{body}");
            let id = body["id"].as_str().expect("id").to_string();
            let uri = format!("/plugins/{id}");

            // B reads the row and is held there until A is done.
            let (open, held) = tokio::sync::oneshot::channel();
            *hooks.gate.lock().expect("gate") = Some((id.clone(), held));
            let b = tokio::spawn({
                let (s, uri) = (s.clone(), uri.clone());
                async move { call(&s, method, &uri, Some(b_body)).await }
            });
            let wait = std::time::Duration::from_secs(5);
            tokio::time::timeout(wait, hooks.gated.notified()).await.expect("B read the row");

            // If B read the row under the write lock, A waits for B (serialized, nothing to
            // interleave); otherwise A commits between B's read and B's rollback. A zero timeout
            // polls the lock once: a try-lock.
            let b_holds_the_lock =
                tokio::time::timeout(std::time::Duration::ZERO, s.reloader.write_lock()).await.is_err();
            let a_body = json!({"enabled": true});
            if !b_holds_the_lock {
                let (st, body) = call(&s, "PATCH", &uri, Some(a_body.clone())).await;
                assert_eq!((st, &body["enabled"]), (StatusCode::OK, &json!(true)), "{body}");
            }
            open.send(()).expect("B waits");
            let (st, body) = tokio::time::timeout(wait, b).await.expect("B ends").expect("B");
            assert_eq!(st, StatusCode::BAD_REQUEST, "{method}: {body}");
            if b_holds_the_lock {
                assert_eq!(call(&s, "PATCH", &uri, Some(a_body)).await.0, StatusCode::OK);
            }

            let (_, stored) = call(&s, "GET", &uri, None).await;
            let kept = (&stored["enabled"], &stored["config"]["fail"]);
            assert_eq!(kept, (&json!(true), &json!(false)), "{method}: A kept: {stored}");
            assert_eq!(call(&s, "DELETE", &uri, None).await.0, StatusCode::NO_CONTENT);
        }
    }

    /// A delete whose publish fails is undone with everything it removed: the plugins of a
    /// service, route or consumer go with it (ON DELETE CASCADE) and must come back with it, or
    /// the next reload publishes a route without its auth plugin.
    #[tokio::test]
    async fn a_rolled_back_delete_restores_the_plugins_that_cascaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (s, hooks) = hooked(dir.path()).await;
        let (st, b) = call(&s, "POST", "/services", Some(json!({"name": "svc", "url": "http://127.0.0.1:9"}))).await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        let (st, b) = call(&s, "POST", "/routes", Some(json!({"name": "r", "paths": ["/r"]}))).await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        let (st, b) = call(&s, "POST", "/consumers", Some(json!({"username": "c"}))).await;
        assert_eq!(st, StatusCode::CREATED, "{b}");

        for parent in ["services/svc", "routes/r", "consumers/c"] {
            let (st, plugin) = call(&s, "POST", &format!("/{parent}/plugins"), Some(json!({"name": "flaky"}))).await;
            assert_eq!(st, StatusCode::CREATED, "{plugin}");
            let (_, before) = call(&s, "GET", &format!("/{parent}"), None).await;

            hooks.fail_load.store(true, std::sync::atomic::Ordering::SeqCst);
            let (st, body) = call(&s, "DELETE", &format!("/{parent}"), None).await;
            hooks.fail_load.store(false, std::sync::atomic::Ordering::SeqCst);
            assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR, "{parent}: {body}");

            assert_eq!(call(&s, "GET", &format!("/{parent}"), None).await.1, before, "{parent} restored");
            let (_, plugins) = call(&s, "GET", &format!("/{parent}/plugins"), None).await;
            assert_eq!(plugins["data"], json!([plugin]), "{parent}'s plugin restored");
        }
        // The restored rows are the running config: it still compiles, and deleting works.
        s.reloader.reload_write().await.expect("reload");
        assert_eq!(call(&s, "DELETE", "/routes/r", None).await.0, StatusCode::NO_CONTENT);
        assert_eq!(call(&s, "GET", "/plugins", None).await.1["data"].as_array().map(Vec::len), Some(2));
    }

    /// A `DELETE` under `/openid-connect/` whose rebuild fails (the store cannot be read) changes
    /// nothing: the record and the key set the running plugins use stay, and the answer is a 500.
    #[tokio::test]
    async fn oidc_deletes_whose_rebuild_fails_change_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (s, hooks) = hooked(dir.path()).await;
        let secrets = &s.reloader.env().secrets;
        let record = secrets.issuer("https://idp", 1);
        secrets.set_client_keys(Some("old keys".into()));
        s.reloader.reload().await.expect("stores the record");
        assert_eq!(s.store.issuers().await.expect("issuers"), vec![record.clone()]);

        hooks.fail_load.store(true, std::sync::atomic::Ordering::SeqCst);
        for uri in ["/openid-connect/issuers/https%3A%2F%2Fidp", "/openid-connect/issuers", "/openid-connect/jwks"] {
            let (st, body) = call(&s, "DELETE", uri, None).await;
            assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR, "{uri}: {body}");
        }
        hooks.fail_load.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(secrets.get("https://idp"), Some(record.clone()));
        assert_eq!(s.store.issuers().await.expect("issuers"), vec![record.clone()]);
        assert_eq!(secrets.client_keys().as_deref(), Some("old keys"));
        let (st, body) = call(&s, "GET", &format!("/openid-connect/issuers/{}", record.id), None).await;
        assert_eq!((st, body["issuer"].as_str()), (StatusCode::OK, Some("https://idp")));
        assert!(body.get("secret").is_none(), "{body}");

        // Once the store answers, they work.
        assert_eq!(call(&s, "DELETE", "/openid-connect/issuers", None).await.0, StatusCode::NO_CONTENT);
        assert_eq!(secrets.get("https://idp"), None);
        assert_eq!(call(&s, "GET", "/openid-connect/issuers", None).await.1, json!({"data": [], "next": null}));
    }

    /// `POST /config` that does not compile, when the previous config cannot be put back: a 500
    /// (the store no longer holds the running config), not the writer's 400.
    #[tokio::test]
    async fn a_declarative_config_that_cannot_be_restored_is_a_server_error() {
        let hooks = Arc::new(Hooks::default());
        let inner: Arc<dyn Store> = Arc::new(gatehouse_store::memory::MemoryStore::new(Default::default()));
        let s = state_on(Arc::new(Hooked { inner, hooks: hooks.clone() })).await;
        let broken = json!({"_format_version": "3.0", "plugins": [{"name": "flaky", "config": {"fail": true}}]});

        hooks.replaces_left.store(2, std::sync::atomic::Ordering::SeqCst);
        let (st, body) = call(&s, "POST", "/config", Some(json!({"config": broken.to_string()}))).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "restored: the writer's error: {body}");

        hooks.replaces_left.store(1, std::sync::atomic::Ordering::SeqCst);
        let (st, body) = call(&s, "POST", "/config", Some(json!({"config": broken.to_string()}))).await;
        assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR, "not restored: {body}");
        assert_eq!(body["name"], "database error", "{body}");
    }
}
