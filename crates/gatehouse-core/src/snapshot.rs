//! The immutable config snapshot the proxy reads, and how entities are compiled into it.
//!
//! Everything that can be computed before a request arrives is computed here: the sorted routing
//! table, each route's plugin chain (Kong's scoping precedence resolved once), upstream authorities
//! and `Host` values. A request does one `load()` of the [`SnapshotHandle`] and keeps that `Arc`.

use crate::consumers::Consumers;
use crate::entity::{Consumer, EntitySet, PluginEntity, Route, Service};
use crate::plugin::{Broken, BuildEnv, BuildError, Plugin, Registry};
use crate::router::{RouteSpec, RouteTarget, Router, RouterBuilder, ServiceTarget};
use arc_swap::ArcSwap;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The published config. Swapped whole; never changed in place.
#[derive(Default)]
pub struct Snapshot {
    /// Increases with every published snapshot.
    pub version: u64,
    /// The routing table.
    pub router: Router,
    /// Built plugin instances by entity id, with the entity they were built from, so an unchanged
    /// plugin keeps its instance (and its caches) across snapshots.
    pub instances: HashMap<String, (Value, Arc<dyn Plugin>)>,
    /// Consumers, indexed for auth plugins.
    pub consumers: Arc<Consumers>,
    /// Plugins that could not be built (stored by an older version, or a resource failed). Their
    /// routes fail closed; every other route serves. Rebuilt on every compile.
    pub broken: Vec<BrokenPlugin>,
}

/// A plugin entity the compiler could not build, and why.
#[derive(Clone, Debug)]
pub struct BrokenPlugin {
    /// The entity id.
    pub id: String,
    /// The plugin name.
    pub name: String,
    /// The entity as stored, to tell a plugin broken by a write from one that already was.
    pub entity: Value,
    /// Why it could not be built.
    pub reason: BuildError,
}

/// Where the current snapshot is published. Readers `load()`, the compiler `store()`s.
pub type SnapshotHandle = Arc<ArcSwap<Snapshot>>;

/// Why entities could not be compiled. The last good snapshot stays in force.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompileError {
    /// An entity did not have the shape the compiler expects.
    #[error("{kind} {id}: {source}")]
    Shape {
        /// The collection.
        kind: &'static str,
        /// The entity id.
        id: String,
        /// The decode error.
        #[source]
        source: serde_json::Error,
    },
    /// A route could not be compiled.
    #[error(transparent)]
    Route(#[from] crate::router::RouteError),
    /// A service's host or port cannot form a URI.
    #[error("service {id}: invalid upstream address: {msg}")]
    Service {
        /// The service id.
        id: String,
        /// What went wrong.
        msg: String,
    },
}

fn decode<T: serde::de::DeserializeOwned>(kind: &'static str, v: &Value) -> Result<T, CompileError> {
    serde_json::from_value(v.clone()).map_err(|source| CompileError::Shape {
        kind,
        id: v.get("id").and_then(Value::as_str).unwrap_or("?").to_string(),
        source,
    })
}

/// Compiles `set` into a snapshot. `prev` lends its plugin instances when an entity is unchanged.
pub fn compile(
    set: &EntitySet,
    registry: &Registry,
    env: &BuildEnv,
    prev: Option<&Snapshot>,
    version: u64,
) -> Result<Snapshot, CompileError> {
    let mut services = HashMap::new();
    for v in &set.services {
        let s: Service = decode("service", v)?;
        if !s.enabled {
            continue;
        }
        services.insert(s.id.clone(), Arc::new(service_target(&s)?));
    }

    // Build every plugin once (or reuse it), remembering its scope and priority. One that
    // cannot be built does not fail the compile: it becomes `Broken` and runs first on its
    // routes, so they fail closed while every other route serves.
    let mut instances = HashMap::new();
    let mut broken = Vec::new();
    let mut scoped: Vec<(PluginEntity, i32, Arc<dyn Plugin>)> = Vec::new();
    for v in &set.plugins {
        let p: PluginEntity = decode("plugin", v)?;
        let built = match registry.get(&p.name) {
            None => Err(BuildError::Resource("plugin is not available on this node".into())),
            Some(factory) => match prev.and_then(|s| s.instances.get(&p.id)) {
                Some((old, inst)) if old == v => Ok((factory.priority(), inst.clone())),
                _ => factory.build(&p, env).map(|inst| (factory.priority(), inst)),
            },
        };
        let (priority, instance) = match built {
            Ok((priority, instance)) => {
                instances.insert(p.id.clone(), (v.clone(), instance.clone()));
                (priority, instance)
            }
            Err(reason) => {
                broken.push(BrokenPlugin { id: p.id.clone(), name: p.name.clone(), entity: v.clone(), reason });
                (i32::MAX, Arc::new(Broken) as Arc<dyn Plugin>)
            }
        };
        let serves_http = p.protocols.iter().any(|x| x == "http" || x == "https");
        // Consumer-scoped plugins need the consumer an auth plugin finds; they join the chain in
        // the issue that brings consumer mapping.
        if p.enabled && serves_http && p.consumer.is_none() {
            scoped.push((p, priority, instance));
        }
    }

    let mut builder = RouterBuilder::default();
    for v in &set.routes {
        let r: Route = decode("route", v)?;
        let service = match &r.service {
            Some(s) => match services.get(&s.id) {
                Some(t) => Some(t.clone()),
                // A route of a disabled service is not routed, as in Kong.
                None => continue,
            },
            None => None,
        };
        let plugins = chain_for(&r, &scoped);
        let target = Arc::new(RouteTarget {
            route_id: r.id.as_str().into(),
            route_name: r.name.clone(),
            service,
            strip_path: r.strip_path,
            preserve_host: r.preserve_host,
            path_handling_v1: r.path_handling == "v1",
            request_buffering: r.request_buffering,
            plugins_need_body: plugins.iter().any(|p| p.needs_body()),
            plugins,
            allows_http: r.protocols.iter().any(|p| p == "http"),
        });
        builder.add(
            target,
            RouteSpec {
                hosts: r.hosts.clone().unwrap_or_default(),
                methods: r.methods.clone().unwrap_or_default(),
                headers: r.headers.clone().unwrap_or_default().into_iter().collect(),
                paths: r.paths.clone().unwrap_or_default(),
                regex_priority: r.regex_priority,
                created_at: r.created_at,
            },
        )?;
    }
    let consumers = set.consumers.iter().map(|v| decode::<Consumer>("consumer", v)).collect::<Result<Vec<_>, _>>()?;
    Ok(Snapshot { version, router: builder.build(), instances, consumers: Arc::new(Consumers::new(consumers)), broken })
}

/// Resolves Kong's plugin precedence for one route: per plugin name, the most specific of
/// route+service, route, service, global wins. The chain is sorted by priority, highest first.
fn chain_for(r: &Route, scoped: &[(PluginEntity, i32, Arc<dyn Plugin>)]) -> Vec<Arc<dyn Plugin>> {
    let svc = r.service.as_ref().map(|s| s.id.as_str());
    let mut best: HashMap<&str, (u8, i32, &Arc<dyn Plugin>)> = HashMap::new();
    for (p, prio, inst) in scoped {
        let p_route = p.route.as_ref().map(|x| x.id.as_str());
        let p_svc = p.service.as_ref().map(|x| x.id.as_str());
        let rank = match (p_route, p_svc) {
            (Some(pr), Some(ps)) if pr == r.id && Some(ps) == svc => 4,
            (Some(pr), None) if pr == r.id => 3,
            (None, Some(ps)) if Some(ps) == svc => 2,
            (None, None) => 1,
            _ => continue,
        };
        match best.get(p.name.as_str()) {
            Some((have, _, _)) if *have >= rank => {}
            _ => {
                best.insert(p.name.as_str(), (rank, *prio, inst));
            }
        }
    }
    let mut chain: Vec<(i32, &str, &Arc<dyn Plugin>)> = best.into_iter().map(|(n, (_, pr, i))| (pr, n, i)).collect();
    chain.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    chain.into_iter().map(|(_, _, i)| i.clone()).collect()
}

fn service_target(s: &Service) -> Result<ServiceTarget, CompileError> {
    let err = |msg: String| CompileError::Service { id: s.id.clone(), msg };
    let scheme = match s.protocol.as_str() {
        "https" | "grpcs" | "wss" => http::uri::Scheme::HTTPS,
        _ => http::uri::Scheme::HTTP,
    };
    let default_port = if scheme == http::uri::Scheme::HTTPS { 443 } else { 80 };
    let authority: http::uri::Authority = format!("{}:{}", s.host, s.port).parse().map_err(|e| err(format!("{e}")))?;
    let host_header = if s.port == default_port { s.host.clone() } else { format!("{}:{}", s.host, s.port) };
    Ok(ServiceTarget {
        id: s.id.as_str().into(),
        scheme,
        authority,
        host_header: http::HeaderValue::from_str(&host_header).map_err(|e| err(e.to_string()))?,
        path: s.path.clone(),
        retries: s.retries,
        connect_timeout: Duration::from_millis(s.connect_timeout),
        write_timeout: Duration::from_millis(s.write_timeout),
        read_timeout: Duration::from_millis(s.read_timeout),
        tls_verify: s.tls_verify.unwrap_or(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::{Kind, validate_entity};
    use crate::plugin::{Ctx, Flow, PluginFactory, Scopes, Step};
    use crate::schema::{Field, Mode, Record, Seg};
    use serde_json::json;

    /// A plugin kind whose schema accepts `ok: false` but whose build refuses it, as a config
    /// written by an older version (or a schema gap) would be; named `name`, attachable to `scopes`.
    struct Picky(Record, &'static str, Scopes);

    struct Noop;
    impl Plugin for Noop {}

    impl PluginFactory for Picky {
        fn name(&self) -> &'static str {
            self.1
        }
        fn scopes(&self) -> Scopes {
            self.2
        }
        fn priority(&self) -> i32 {
            10
        }
        fn config_schema(&self) -> &Record {
            &self.0
        }
        fn build(&self, entity: &PluginEntity, _env: &BuildEnv) -> Result<Arc<dyn Plugin>, BuildError> {
            match entity.config.get("ok").and_then(Value::as_bool) {
                Some(false) => Err(BuildError::field("ok", "cannot run with ok = false")),
                _ => Ok(Arc::new(Noop)),
            }
        }
    }

    fn registry() -> Registry {
        let mut r = Registry::default();
        r.register(Arc::new(Picky(Record::new(vec![Field::boolean("ok").default(json!(true))]), "picky", Scopes::ALL)));
        r
    }

    fn entity(kind: Kind, v: Value, reg: &Registry) -> Value {
        validate_entity(kind, &v, Mode::default(), reg).expect("valid entity")
    }

    const ROUTE_A: &str = "00000000-0000-0000-0000-00000000000a";
    const ROUTE_B: &str = "00000000-0000-0000-0000-00000000000b";

    fn set_with_plugin(ok: bool, reg: &Registry) -> EntitySet {
        let route = |id: &str, path: &str| {
            entity(Kind::Routes, json!({"id": id, "paths": [path], "created_at": 1, "updated_at": 1}), reg)
        };
        // Written straight into the set, as an older version could have stored it.
        let mut plugin = entity(
            Kind::Plugins,
            json!({"id": "00000000-0000-0000-0000-000000000001", "name": "picky",
                   "route": {"id": ROUTE_A}, "created_at": 1, "config": {}}),
            reg,
        );
        plugin["config"]["ok"] = json!(ok);
        EntitySet {
            routes: vec![route(ROUTE_A, "/a"), route(ROUTE_B, "/b")],
            plugins: vec![plugin],
            ..EntitySet::default()
        }
    }

    fn first_flow(s: &Snapshot, path: &str) -> Option<Flow> {
        let m = s.router.find(&http::Method::GET, "", path, &http::HeaderMap::new())?;
        let mut ctx = Ctx::new("127.0.0.1:1".parse().ok()?, "r".into(), None, Arc::default());
        let mut req = http::Request::new(()).into_parts().0;
        match m.target.plugins.first()?.access(&mut ctx, &mut req) {
            Step::Ready(f) => Some(f),
            Step::Wait(_) => None,
        }
    }

    #[test]
    fn validate_plugin_refuses_what_build_refuses_with_the_field_path() {
        let reg = registry();
        let errs = reg
            .validate_plugin(&json!({"name": "picky", "config": {"ok": false}}), Mode::default())
            .expect_err("build refuses it");
        assert_eq!(
            errs.errors,
            [(vec![Seg::Key("config".into()), Seg::Key("ok".into())], "cannot run with ok = false".to_string())]
        );
        assert!(reg.validate_plugin(&json!({"name": "picky", "config": {"ok": true}}), Mode::default()).is_ok());
    }

    #[test]
    fn a_scope_the_kind_forbids_is_refused_with_kongs_message() {
        let mut reg = registry();
        // A kind that may not be attached to a consumer, as openid-connect.
        reg.register(Arc::new(Picky(Record::new(vec![]), "no-consumer", Scopes::NO_CONSUMER)));
        let consumer = json!({"id": "00000000-0000-0000-0000-0000000000c1"});
        let errs = reg
            .validate_plugin(&json!({"name": "no-consumer", "consumer": consumer}), Mode::default())
            .expect_err("no consumer scope");
        assert_eq!(errs.errors, [(vec![Seg::Key("consumer".into())], "value must be null".to_string())]);
        // Every other scope, an explicit null and other kinds are as before.
        for ok in [
            json!({"name": "no-consumer", "consumer": null, "route": {"id": ROUTE_A}}),
            json!({"name": "no-consumer", "service": {"id": ROUTE_B}}),
            json!({"name": "picky", "consumer": consumer}),
        ] {
            assert!(reg.validate_plugin(&ok, Mode::default()).is_ok(), "{ok}");
        }
        let schema = reg.describe("no-consumer").expect("described");
        let field =
            |name: &str| schema["fields"].as_array().unwrap().iter().find_map(|f| f.get(name)).cloned().expect("field");
        assert_eq!(field("consumer").get("eq"), Some(&Value::Null));
        assert_eq!(field("route").get("eq"), None);
    }

    #[test]
    fn a_stored_plugin_that_cannot_be_built_fails_only_its_routes_closed() {
        let reg = registry();
        let s = compile(&set_with_plugin(false, &reg), &reg, &BuildEnv::default(), None, 1).expect("compiles");
        assert_eq!(s.broken.len(), 1);
        assert!(matches!(s.broken[0].reason, BuildError::Config(_)));
        assert!(matches!(first_flow(&s, "/a"), Some(Flow::Fail)));
        let b = s.router.find(&http::Method::GET, "", "/b", &http::HeaderMap::new()).expect("route b");
        assert!(b.target.plugins.is_empty());

        // Fixed, the same entity id builds and its route runs the real plugin.
        let s = compile(&set_with_plugin(true, &reg), &reg, &BuildEnv::default(), Some(&s), 2).expect("compiles");
        assert!(s.broken.is_empty());
        assert!(matches!(first_flow(&s, "/a"), Some(Flow::Continue)));
    }

    #[test]
    fn a_plugin_unknown_to_this_node_fails_its_routes_closed() {
        let reg = registry();
        let set = set_with_plugin(true, &reg);
        let s = compile(&set, &Registry::default(), &BuildEnv::default(), None, 1).expect("compiles");
        assert_eq!(s.broken.len(), 1);
        assert!(matches!(first_flow(&s, "/a"), Some(Flow::Fail)));
    }
}
