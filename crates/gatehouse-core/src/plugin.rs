//! The life of a request as one trait, and the registry of plugin kinds.
//!
//! Phases follow Kong's names so its docs map one to one: `access` runs before the upstream is
//! called and may answer on its own or change the upstream request; `header_filter` runs on the
//! response head before it goes to the client. A plugin implements only what it needs.

use crate::consumers::Consumers;
use crate::entity::{Consumer, Kind, PluginEntity};
use crate::schema::{FieldErrors, Mode, Record, Seg};
use bytes::Bytes;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future, for the phases that must wait on IO.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the access phase decided.
#[derive(Debug)]
pub enum Flow {
    /// Go on to the next plugin, then the upstream.
    Continue,
    /// Answer the client with this response; no later plugin and no upstream runs.
    Respond(http::Response<Bytes>),
    /// The plugin cannot run (its config could not be built): the proxy answers with its own
    /// internal-error response. Core does not know that body, so this says only "fail closed".
    Fail,
}

/// The access phase's answer: ready at once (no allocation), or a future to await.
pub enum Step<'a> {
    /// Decided without waiting.
    Ready(Flow),
    /// Must wait on IO (an identity provider, a store).
    Wait(BoxFuture<'a, Flow>),
}

/// Per-request state handed to every phase. Made at the start of a request, dropped at its end.
#[derive(Debug)]
pub struct Ctx {
    /// The address of the peer that connected (Kong's `kong.client.get_ip()`): a proxy in front,
    /// if there is one.
    pub client_addr: SocketAddr,
    /// The client's IP (Kong's `kong.client.get_forwarded_ip()`): what a trusted proxy in front
    /// said in the real-IP header (`trusted_ips`, `real_ip_header`), else the peer's.
    pub forwarded_ip: IpAddr,
    /// The matched route's id.
    pub route_id: Arc<str>,
    /// The matched service's id, if the route has one.
    pub service_id: Option<Arc<str>>,
    /// The request body, when the route buffers it or a plugin asked for it.
    pub body: Option<Bytes>,
    /// State plugins pass from `access` to `header_filter`, keyed by type.
    pub extensions: http::Extensions,
    /// Whether the request was https: the client connection is TLS, or a trusted proxy in front
    /// said `X-Forwarded-Proto: https` (Kong's `kong.request.get_forwarded_scheme()`). Session
    /// cookies whose `Secure` is not configured follow it.
    pub https: bool,
    /// The peer is a trusted proxy (`trusted_ips`): its `X-Forwarded-Host`, `-Port` and `-Path`
    /// say where the client sent the request (Kong's `kong.request.get_forwarded_*`). From any
    /// other peer they are the client's own words and are not believed.
    pub trusted_proxy: bool,
    /// The port of the listener the request came in on (`kong.request.get_port()`).
    pub local_port: u16,
    /// The consumers of the snapshot this request runs on, for auth plugins' lookups.
    pub consumers: Arc<Consumers>,
    /// The consumer an auth plugin identified (Kong's `kong.client.get_consumer()`).
    pub consumer: Option<Arc<Consumer>>,
    /// Set once an auth plugin authenticated the request; a later auth plugin configured with
    /// `anonymous` then leaves it alone (Kong's multi-auth "logical OR").
    pub authenticated: bool,
}

impl Ctx {
    /// A context for a request on `route_id`, before any plugin ran. The client is the peer and
    /// the request is not https until the proxy sets `forwarded_ip` and `https` from what it trusts.
    pub fn new(
        client_addr: SocketAddr,
        route_id: Arc<str>,
        service_id: Option<Arc<str>>,
        consumers: Arc<Consumers>,
    ) -> Ctx {
        Ctx {
            client_addr,
            forwarded_ip: client_addr.ip(),
            route_id,
            service_id,
            body: None,
            extensions: http::Extensions::new(),
            https: false,
            trusted_proxy: false,
            local_port: 0,
            consumers,
            consumer: None,
            authenticated: false,
        }
    }
}

/// One configured plugin instance, built once per config snapshot.
pub trait Plugin: Send + Sync + 'static {
    /// Whether `access` wants the request body in [`Ctx::body`]. The proxy buffers it only when
    /// its `Content-Type` is a form (`application/x-www-form-urlencoded`) or JSON
    /// (`application/json`, `application/*+json`), and only up to `client_body_buffer_size`: a
    /// larger one is answered 413 before any plugin runs. Any other body streams untouched to the
    /// upstream and `ctx.body` is `None`, so a plugin must not rely on seeing every body.
    fn needs_body(&self) -> bool {
        false
    }

    /// Runs before the upstream is called. May change the upstream request or answer directly.
    fn access<'a>(&'a self, _ctx: &'a mut Ctx, _req: &'a mut http::request::Parts) -> Step<'a> {
        Step::Ready(Flow::Continue)
    }

    /// Runs on the response head (from the upstream or from a plugin) before it goes to the client.
    fn header_filter(&self, _ctx: &mut Ctx, _resp: &mut http::response::Parts) {}
}

/// What a plugin kind needs to build an instance: the node settings plugins read.
#[derive(Clone, Debug, Default)]
pub struct BuildEnv {
    /// `idp_max_response_size`: the most bytes a plugin reads of an identity provider's answer.
    pub idp_max_response_size: IdpMaxResponseSize,
    /// The node's issuer records and key set, loaded from the store at startup. The default is
    /// an empty set of its own (what `check` builds with): records made there are never saved.
    pub secrets: Arc<crate::secrets::NodeSecrets>,
}

/// A cap on identity provider answers, in bytes. Defaults to 1 MiB (`1m`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdpMaxResponseSize(pub u64);

impl Default for IdpMaxResponseSize {
    fn default() -> Self {
        IdpMaxResponseSize(1 << 20)
    }
}

/// Why a plugin instance could not be built.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The config cannot run. Paths are relative to the plugin entity (`config.session_cookie_name`),
    /// so the Admin API can answer them as a schema violation.
    #[error("{0}")]
    Config(FieldErrors),
    /// Something other than the config failed (randomness, the TLS backend). Not the writer's
    /// fault, but the instance still does not exist.
    #[error("{0}")]
    Resource(String),
}

impl BuildError {
    /// The config field `field` (under `config`) is the reason.
    pub fn field(field: &str, msg: impl Into<String>) -> BuildError {
        BuildError::Config(FieldErrors::one(vec![Seg::Key("config".into()), Seg::Key(field.into())], msg))
    }

    /// The error as field errors: a resource failure lands on `@entity`.
    pub fn into_field_errors(self) -> FieldErrors {
        match self {
            BuildError::Config(e) => e,
            BuildError::Resource(msg) => FieldErrors::one(vec![Seg::Key("@entity".into())], msg),
        }
    }
}

/// A plugin whose entity could not be built, left in the chain so its routes fail closed rather
/// than run without it (a broken auth plugin must not mean an open route).
pub struct Broken;

impl Plugin for Broken {
    fn access<'a>(&'a self, _ctx: &'a mut Ctx, _req: &'a mut http::request::Parts) -> Step<'a> {
        Step::Ready(Flow::Fail)
    }
}

/// The entities a plugin kind may be attached to, besides being global. Kong's plugin schemas
/// say it per kind with `typedefs.no_service`, `no_route` and `no_consumer`; an entity whose
/// kind forbids a scope is refused with Kong's `value must be null` on that field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scopes {
    /// May be attached to a service.
    pub service: bool,
    /// May be attached to a route.
    pub route: bool,
    /// May be attached to a consumer.
    pub consumer: bool,
}

impl Scopes {
    /// Every scope (Kong's default).
    pub const ALL: Scopes = Scopes { service: true, route: true, consumer: true };
    /// Every scope but consumers (`consumer = typedefs.no_consumer`): plugins that find the
    /// consumer, like authentication, cannot run for one.
    pub const NO_CONSUMER: Scopes = Scopes { consumer: false, ..Scopes::ALL };

    /// The entity fields this forbids.
    fn forbidden(self) -> impl Iterator<Item = &'static str> {
        [("service", self.service), ("route", self.route), ("consumer", self.consumer)]
            .into_iter()
            .filter(|(_, allowed)| !allowed)
            .map(|(field, _)| field)
    }
}

/// A kind of plugin: its name, schema and priority, and how to build an instance from a config.
pub trait PluginFactory: Send + Sync + 'static {
    /// The name used in the Admin API (`openid-connect`).
    fn name(&self) -> &'static str;
    /// Kong's priority: higher runs first.
    fn priority(&self) -> i32;
    /// The version shown on `GET /`.
    fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }
    /// The schema of `config`.
    fn config_schema(&self) -> &Record;
    /// The protocols the plugin may run for.
    fn protocols(&self) -> &'static [&'static str] {
        &["grpc", "grpcs", "http", "https"]
    }
    /// The entities it may be attached to. Checked on every write path, through
    /// [`Registry::validate_plugin`].
    fn scopes(&self) -> Scopes {
        Scopes::ALL
    }
    /// Builds a running instance from a validated entity. Must refuse (never panic on) any
    /// config the schema let through but the instance cannot run with.
    fn build(&self, entity: &PluginEntity, env: &BuildEnv) -> Result<Arc<dyn Plugin>, BuildError>;

    /// Everything `build` would refuse, without keeping an instance. Every write path runs it
    /// (through [`Registry::validate_plugin`]), so a config that cannot run is never stored. The
    /// default builds and drops the instance, so check and build cannot disagree; a factory
    /// whose build is costly may override it with the pure part of its build.
    fn check(&self, entity: &PluginEntity) -> Result<(), FieldErrors> {
        self.build(entity, &BuildEnv::default()).map(drop).map_err(BuildError::into_field_errors)
    }
}

/// The plugin kinds this node knows, by name.
#[derive(Clone, Default)]
pub struct Registry {
    factories: BTreeMap<&'static str, Arc<dyn PluginFactory>>,
}

impl Registry {
    /// Adds a plugin kind.
    pub fn register(&mut self, f: Arc<dyn PluginFactory>) {
        self.factories.insert(f.name(), f);
    }

    /// The plugin kind named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn PluginFactory>> {
        self.factories.get(name)
    }

    /// Every kind, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn PluginFactory>> {
        self.factories.values()
    }

    /// Validates a whole plugin entity: the entity fields, the plugin name, and `config` against the
    /// plugin's schema. Returns the normalized entity.
    pub fn validate_plugin(&self, input: &Value, mode: Mode) -> Result<Value, FieldErrors> {
        let mut errs = FieldErrors::default();
        let mut out = match Kind::Plugins.schema().validate(input, mode) {
            Ok(v) => v,
            Err(e) => {
                errs = e;
                Value::Null
            }
        };
        let name = input.get("name").and_then(Value::as_str);
        let factory = match name {
            Some(n) => match self.get(n) {
                Some(f) => Some(f),
                None => {
                    errs.push(
                        &[Seg::Key("name".into())],
                        format!("plugin '{n}' not enabled; add it to the 'plugins' configuration property"),
                    );
                    None
                }
            },
            None => None,
        };
        if let Some(f) = factory {
            let cfg = input.get("config").unwrap_or(&Value::Null);
            match f.config_schema().validate(cfg, mode) {
                Ok(c) => {
                    if let Value::Object(o) = &mut out {
                        o.insert("config".into(), c);
                    }
                }
                Err(e) => errs.extend_under(&[Seg::Key("config".into())], e),
            }
            for field in f.scopes().forbidden() {
                if input.get(field).is_some_and(|v| !v.is_null()) {
                    errs.push(&[Seg::Key(field.into())], "value must be null");
                }
            }
            if let Some(Value::Array(protocols)) = out.get("protocols") {
                for (i, p) in protocols.iter().enumerate() {
                    let p = p.as_str().unwrap_or_default();
                    if !f.protocols().contains(&p) {
                        errs.push(
                            &[Seg::Key("protocols".into()), Seg::Index(i)],
                            format!("expected one of: {}", f.protocols().join(", ")),
                        );
                    }
                }
            }
        }
        // Only a config the schema accepts is built: the build may rely on the schema's shape.
        if errs.is_empty()
            && let Some(f) = factory
        {
            let mut whole = out.clone();
            // `POST /schemas/plugins/validate` bodies need not carry an id.
            if let Value::Object(o) = &mut whole
                && o.get("id").is_none_or(Value::is_null)
            {
                o.insert("id".into(), Value::String(String::new()));
            }
            match serde_json::from_value::<PluginEntity>(whole) {
                Ok(entity) => f.check(&entity)?,
                Err(e) => errs.push(&[Seg::Key("@entity".into())], e.to_string()),
            }
        }
        if errs.is_empty() { Ok(out) } else { Err(errs) }
    }

    /// `GET /schemas/plugins/{name}`: the plugin entity's schema with this plugin's `config`.
    pub fn describe(&self, name: &str) -> Option<Value> {
        let f = self.get(name)?;
        let mut fields = Vec::new();
        for field in &Kind::Plugins.schema().fields {
            let mut desc = field.describe();
            if field.name == "config" {
                desc = serde_json::json!({"type": "record", "required": true, "fields": f.config_schema().describe()});
            }
            // Kong shows a forbidden scope as `eq: null` on the foreign key.
            if f.scopes().forbidden().any(|s| s == field.name)
                && let Value::Object(d) = &mut desc
            {
                d.insert("eq".into(), Value::Null);
            }
            let mut m = Map::new();
            m.insert(field.name.into(), desc);
            fields.push(Value::Object(m));
        }
        Some(serde_json::json!({"fields": fields}))
    }
}
