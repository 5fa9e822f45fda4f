//! Kong-compatible Admin API.
//!
//! [`router`] builds the axum `Router`; tests drive it without a socket. Only this crate (and the
//! proxy's `respond` module) knows Kong's JSON shapes.
#![warn(missing_docs)]

mod body;
mod entities;
mod error;
mod guard;

pub use error::AdminError;
pub use guard::{Guard, OriginError, parse_origin};

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
    let limit = req.extensions().get::<guard::BodyLimit>().map_or(body::DEFAULT_MAX_BODY, |l| l.0);
    let limited = http_body_util::Limited::new(req.into_body(), limit);
    match limited.collect().await {
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
                    tracing::error!(error = %back, "cannot restore the previous declarative config");
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
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir).await.expect("store"));
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
}
