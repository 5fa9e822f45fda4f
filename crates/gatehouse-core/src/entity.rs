//! The four entity collections, their schemas as Kong defines them, and typed views for compiling.
//!
//! Entities travel and rest as normalized JSON (the output of [`Record::validate`]); the typed
//! structs here are what the snapshot compiler reads.

use crate::schema::{Field, Record};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::LazyLock;

/// An entity collection, named as in the Admin API path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `/services`
    Services,
    /// `/routes`
    Routes,
    /// `/consumers`
    Consumers,
    /// `/plugins`
    Plugins,
}

impl Kind {
    /// Every kind, in dependency order (a kind only references kinds before it).
    pub const ALL: [Kind; 4] = [Kind::Services, Kind::Routes, Kind::Consumers, Kind::Plugins];

    /// The collection name (`services`, ...), also the table name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Services => "services",
            Kind::Routes => "routes",
            Kind::Consumers => "consumers",
            Kind::Plugins => "plugins",
        }
    }

    /// The collection for `name`.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The field besides `id` that identifies an entity in a path (`/services/{name}`).
    pub fn endpoint_key(self) -> Option<&'static str> {
        match self {
            Kind::Services | Kind::Routes => Some("name"),
            Kind::Consumers => Some("username"),
            Kind::Plugins => None,
        }
    }

    /// Fields whose values must be unique across the collection.
    pub fn unique_fields(self) -> &'static [&'static str] {
        match self {
            Kind::Services | Kind::Routes => &["name"],
            Kind::Consumers => &["username", "custom_id"],
            Kind::Plugins => &["instance_name"],
        }
    }

    /// Foreign-key fields and the collection each points to.
    pub fn foreign_keys(self) -> &'static [(&'static str, Kind)] {
        match self {
            Kind::Services | Kind::Consumers => &[],
            Kind::Routes => &[("service", Kind::Services)],
            Kind::Plugins => &[("service", Kind::Services), ("route", Kind::Routes), ("consumer", Kind::Consumers)],
        }
    }

    /// The entity's schema.
    pub fn schema(self) -> &'static Record {
        match self {
            Kind::Services => &SERVICE,
            Kind::Routes => &ROUTE,
            Kind::Consumers => &CONSUMER,
            Kind::Plugins => &PLUGIN,
        }
    }
}

fn base_fields() -> Vec<Field> {
    vec![Field::uuid("id"), Field::integer("created_at"), Field::integer("updated_at")]
}

fn tags() -> Field {
    Field::set("tags", Field::string("tag").check(check_tag))
}

fn check_tag(v: &Value) -> Result<(), String> {
    let s = v.as_str().unwrap_or_default();
    if s.is_empty() || s.contains(',') || s.contains('/') || s.chars().any(|c| c.is_control()) {
        return Err(format!("invalid tag '{s}': expected printable characters with a ',' or a '/'"));
    }
    Ok(())
}

fn check_name(v: &Value) -> Result<(), String> {
    let s = v.as_str().unwrap_or_default();
    if s.is_empty() || !s.chars().all(|c| c.is_alphanumeric() || ".-_~".contains(c)) {
        return Err(format!("invalid value '{s}': it must only contain alphanumeric and '., -, _, ~' characters"));
    }
    Ok(())
}

fn check_host(v: &Value) -> Result<(), String> {
    let s = v.as_str().unwrap_or_default();
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control() || "/?#@".contains(c)) {
        return Err(format!("invalid value: {s}"));
    }
    Ok(())
}

fn check_service_path(v: &Value) -> Result<(), String> {
    let s = v.as_str().unwrap_or_default();
    if !s.starts_with('/') {
        return Err("should start with: /".into());
    }
    if s.contains("//") {
        return Err("must not have empty segments".into());
    }
    if s.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!("invalid value: {s}"));
    }
    Ok(())
}

fn check_route_path(v: &Value) -> Result<(), String> {
    let s = v.as_str().unwrap_or_default();
    if let Some(re) = s.strip_prefix('~') {
        if !re.starts_with('/') {
            return Err("should start with: / (fixed path) or ~/ (regex path)".into());
        }
        return regex::Regex::new(re).map(|_| ()).map_err(|e| format!("invalid regex: '{re}' ({e})"));
    }
    if !s.starts_with('/') {
        return Err("should start with: / (fixed path) or ~/ (regex path)".into());
    }
    if s.contains("//") {
        return Err("must not have empty segments".into());
    }
    if s.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!("invalid value: {s}"));
    }
    Ok(())
}

fn check_route_host(v: &Value) -> Result<(), String> {
    let s = v.as_str().unwrap_or_default();
    check_host(v)?;
    let wildcards = s.matches('*').count();
    if wildcards > 1 || (wildcards == 1 && !s.starts_with("*.") && !s.ends_with(".*")) {
        return Err("invalid wildcard: must be placed at leftmost or rightmost label".into());
    }
    Ok(())
}

fn check_method(v: &Value) -> Result<(), String> {
    let s = v.as_str().unwrap_or_default();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!("invalid value: {s}"));
    }
    Ok(())
}

fn timeout(name: &'static str) -> Field {
    Field::integer(name).default(json!(60000)).between(1, 2_147_483_646)
}

const PROTOCOLS: &[&str] = &["grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp", "ws", "wss"];

static SERVICE: LazyLock<Record> = LazyLock::new(|| {
    let mut f = base_fields();
    f.extend([
        Field::string("name").check(check_name),
        Field::integer("retries").default(json!(5)).between(0, 32767),
        Field::string("protocol").required().default(json!("http")).one_of(PROTOCOLS),
        Field::string("host").required().check(check_host),
        Field::integer("port").required().default(json!(80)).between(0, 65535),
        Field::string("path").check(check_service_path),
        timeout("connect_timeout"),
        timeout("write_timeout"),
        timeout("read_timeout"),
        tags(),
        Field::foreign("client_certificate", "certificates"),
        Field::boolean("tls_verify"),
        Field::integer("tls_verify_depth").between(0, 64),
        Field::array("ca_certificates", Field::uuid("element")),
        Field::boolean("enabled").required().default(json!(true)),
        Field::string("url").shorthand(),
    ]);
    Record::new(f)
});

static ROUTE: LazyLock<Record> = LazyLock::new(|| {
    let mut f = base_fields();
    f.extend([
        Field::string("name").check(check_name),
        Field::set("protocols", Field::string("protocol").one_of(PROTOCOLS))
            .required()
            .default(json!(["http", "https"])),
        Field::set("methods", Field::string("method").check(check_method)),
        Field::array("hosts", Field::string("host").check(check_route_host)),
        Field::array("paths", Field::string("path").check(check_route_path)),
        Field::map("headers", Field::strings("values")),
        Field::integer("https_redirect_status_code").required().default(json!(426)).check(check_redirect),
        Field::integer("regex_priority").default(json!(0)),
        Field::boolean("strip_path").required().default(json!(true)),
        Field::string("path_handling").default(json!("v0")).one_of(&["v0", "v1"]),
        Field::boolean("preserve_host").required().default(json!(false)),
        Field::boolean("request_buffering").required().default(json!(true)),
        Field::boolean("response_buffering").required().default(json!(true)),
        Field::strings("snis"),
        Field::array("sources", Field::any("source")),
        Field::array("destinations", Field::any("destination")),
        tags(),
        Field::foreign("service", "services"),
    ]);
    Record::new(f).entity_check(check_route)
});

fn check_redirect(v: &Value) -> Result<(), String> {
    match v.as_i64() {
        Some(426 | 301 | 302 | 307 | 308) => Ok(()),
        _ => Err("expected one of: 426, 301, 302, 307, 308".into()),
    }
}

fn non_empty(m: &Map<String, Value>, k: &str) -> bool {
    match m.get(k) {
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::Null) | None => false,
        Some(_) => true,
    }
}

fn check_route(m: &Map<String, Value>) -> Result<(), String> {
    let protocols: Vec<&str> = m
        .get("protocols")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let has = |p: &str| protocols.contains(&p);
    if let Some(Value::Object(h)) = m.get("headers")
        && h.keys().any(|k| k.eq_ignore_ascii_case("host"))
    {
        return Err("cannot contain 'host' header, which must be specified in the 'hosts' attribute".into());
    }
    if has("https") {
        if !["methods", "hosts", "headers", "paths", "snis"].iter().any(|k| non_empty(m, k)) {
            return Err(
                "must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https'".into()
            );
        }
    } else if has("http") && !["methods", "hosts", "headers", "paths"].iter().any(|k| non_empty(m, k)) {
        return Err("must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http'".into());
    }
    if (has("http") || has("https")) && non_empty(m, "sources") {
        return Err("cannot set 'sources' when 'protocols' is 'http' or 'https'".into());
    }
    if (has("http") || has("https")) && non_empty(m, "destinations") {
        return Err("cannot set 'destinations' when 'protocols' is 'http' or 'https'".into());
    }
    Ok(())
}

static CONSUMER: LazyLock<Record> = LazyLock::new(|| {
    let mut f = base_fields();
    f.extend([Field::string("username"), Field::string("custom_id"), tags()]);
    Record::new(f).entity_check(|m| {
        if non_empty(m, "username") || non_empty(m, "custom_id") {
            Ok(())
        } else {
            Err("at least one of these fields must be non-empty: 'custom_id', 'username'".into())
        }
    })
});

/// The plugin entity schema. `config` is `Any` here: it is validated against the named plugin's own
/// schema by [`crate::plugin::Registry::validate_plugin`].
static PLUGIN: LazyLock<Record> = LazyLock::new(|| {
    let mut f = base_fields();
    f.extend([
        Field::string("name").required(),
        Field::string("instance_name").check(check_name),
        Field::foreign("route", "routes"),
        Field::foreign("service", "services"),
        Field::foreign("consumer", "consumers"),
        Field::any("config"),
        Field::set("protocols", Field::string("protocol").one_of(PROTOCOLS))
            .required()
            .default(json!(["grpc", "grpcs", "http", "https"])),
        Field::boolean("enabled").required().default(json!(true)),
        tags(),
        Field::any("ordering"),
    ]);
    Record::new(f)
});

/// Expands a service's `url` shorthand into `protocol`, `host`, `port` and `path`, as Kong does
/// before validation. Returns the error message for a URL that cannot be parsed.
pub fn expand_service_url(obj: &mut Map<String, Value>) -> Result<(), String> {
    let Some(Value::String(url)) = obj.get("url").cloned() else { return Ok(()) };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("invalid url: {url}"))?;
    let scheme = scheme.to_ascii_lowercase();
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let (host, port) = split_host_port(authority).ok_or_else(|| format!("invalid url: {url}"))?;
    if host.is_empty() {
        return Err(format!("invalid url: {url}"));
    }
    let port = port.unwrap_or(match scheme.as_str() {
        "https" | "grpcs" | "wss" | "tls" => 443,
        _ => 80,
    });
    obj.insert("protocol".into(), scheme.into());
    obj.insert("host".into(), host.into());
    obj.insert("port".into(), port.into());
    obj.insert("path".into(), path.map(Value::from).unwrap_or(Value::Null));
    obj.remove("url");
    Ok(())
}

/// Splits `host[:port]`, accepting bracketed IPv6 literals.
pub fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((format!("[{h}]"), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), Some(p.parse().ok()?))),
        None => Some((authority.to_string(), None)),
    }
}

/// A reference to another entity, as stored: `{"id": "..."}`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ForeignRef {
    /// The referenced entity's id.
    pub id: String,
}

/// A service, as the snapshot compiler reads it.
#[derive(Clone, Debug, Deserialize)]
pub struct Service {
    /// Entity id.
    pub id: String,
    /// Optional unique name.
    pub name: Option<String>,
    /// Upstream scheme (`http` or `https`).
    pub protocol: String,
    /// Upstream host.
    pub host: String,
    /// Upstream port.
    pub port: u16,
    /// Path prefix prepended to every upstream request.
    pub path: Option<String>,
    /// Connection attempts after the first, on connect failures.
    pub retries: u32,
    /// Milliseconds to establish a connection.
    pub connect_timeout: u64,
    /// Milliseconds allowed for sending the request.
    pub write_timeout: u64,
    /// Milliseconds allowed between reads of the response.
    pub read_timeout: u64,
    /// Whether the upstream's TLS certificate is verified (`null` = yes; see `docs/admin-api.md`).
    pub tls_verify: Option<bool>,
    /// Disabled services are not routed to, like Kong skips their routes.
    pub enabled: bool,
}

/// A route, as the snapshot compiler reads it.
#[derive(Clone, Debug, Deserialize)]
pub struct Route {
    /// Entity id.
    pub id: String,
    /// Optional unique name.
    pub name: Option<String>,
    /// Allowed client protocols.
    pub protocols: Vec<String>,
    /// Allowed methods (any when `None`).
    pub methods: Option<Vec<String>>,
    /// Allowed `Host` values, wildcards allowed at either end.
    pub hosts: Option<Vec<String>>,
    /// Prefix paths, or regex paths starting with `~`.
    pub paths: Option<Vec<String>>,
    /// Required request headers and their allowed values.
    pub headers: Option<std::collections::BTreeMap<String, Vec<String>>>,
    /// Priority among regex routes (higher first).
    pub regex_priority: i64,
    /// Whether the matched path prefix is removed before proxying.
    pub strip_path: bool,
    /// `v0` or `v1` path joining.
    pub path_handling: String,
    /// Whether the client's `Host` is sent upstream.
    pub preserve_host: bool,
    /// Whether the request body is read fully before proxying (allows retries).
    pub request_buffering: bool,
    /// The service requests are proxied to.
    pub service: Option<ForeignRef>,
    /// Creation time, the final tie-break in route ordering.
    pub created_at: i64,
}

/// A consumer, as the snapshot compiler reads it.
#[derive(Clone, Debug, Deserialize)]
pub struct Consumer {
    /// Entity id.
    pub id: String,
    /// Unique username.
    pub username: Option<String>,
    /// Unique custom id.
    pub custom_id: Option<String>,
}

/// A plugin instance, as the snapshot compiler reads it.
#[derive(Clone, Debug, Deserialize)]
pub struct PluginEntity {
    /// Entity id.
    pub id: String,
    /// Plugin name (`openid-connect`, ...).
    pub name: String,
    /// Scoping to a route.
    pub route: Option<ForeignRef>,
    /// Scoping to a service.
    pub service: Option<ForeignRef>,
    /// Scoping to a consumer.
    pub consumer: Option<ForeignRef>,
    /// The validated config, defaults filled in.
    pub config: Value,
    /// Disabled plugins are not run.
    pub enabled: bool,
    /// Client protocols the plugin runs for.
    pub protocols: Vec<String>,
}

impl PluginEntity {
    /// An enabled plugin on every route, for http, with a validated `config`: what tests build.
    pub fn global(id: &str, name: &str, config: Value) -> PluginEntity {
        PluginEntity {
            id: id.into(),
            name: name.into(),
            route: None,
            service: None,
            consumer: None,
            config,
            enabled: true,
            protocols: vec!["http".into()],
        }
    }
}

/// Every entity, as loaded from a store, in normalized JSON form.
#[derive(Clone, Debug, Default)]
pub struct EntitySet {
    /// `/services`
    pub services: Vec<Value>,
    /// `/routes`
    pub routes: Vec<Value>,
    /// `/consumers`
    pub consumers: Vec<Value>,
    /// `/plugins`
    pub plugins: Vec<Value>,
}

impl EntitySet {
    /// The list for `kind`.
    pub fn of(&self, kind: Kind) -> &Vec<Value> {
        match kind {
            Kind::Services => &self.services,
            Kind::Routes => &self.routes,
            Kind::Consumers => &self.consumers,
            Kind::Plugins => &self.plugins,
        }
    }

    /// The mutable list for `kind`.
    pub fn of_mut(&mut self, kind: Kind) -> &mut Vec<Value> {
        match kind {
            Kind::Services => &mut self.services,
            Kind::Routes => &mut self.routes,
            Kind::Consumers => &mut self.consumers,
            Kind::Plugins => &mut self.plugins,
        }
    }
}

/// Validates one entity of `kind` for storing: expands a service's `url`, checks the entity schema
/// and, for plugins, the plugin's own config schema. Ids, timestamps and foreign keys must already
/// be filled in by the caller.
pub fn validate_entity(
    kind: Kind,
    input: &Value,
    mode: crate::schema::Mode,
    registry: &crate::plugin::Registry,
) -> Result<Value, crate::schema::FieldErrors> {
    use crate::schema::{FieldErrors, Seg};
    let mut input = input.clone();
    if kind == Kind::Services
        && let Value::Object(o) = &mut input
        && let Err(msg) = expand_service_url(o)
    {
        return Err(FieldErrors::one(vec![Seg::Key("url".into())], msg));
    }
    match kind {
        Kind::Plugins => registry.validate_plugin(&input, mode),
        _ => kind.schema().validate(&input, mode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Mode;

    #[test]
    fn service_url_shorthand_expands() {
        let mut m = json!({"url": "https://example.com:8443/api"}).as_object().cloned().unwrap();
        expand_service_url(&mut m).unwrap();
        let out = SERVICE.validate(&Value::Object(m), Mode::default()).unwrap();
        assert_eq!(out["protocol"], "https");
        assert_eq!(out["host"], "example.com");
        assert_eq!(out["port"], 8443);
        assert_eq!(out["path"], "/api");
        assert!(out.get("url").is_none());
        let mut m = json!({"url": "http://[::1]"}).as_object().cloned().unwrap();
        expand_service_url(&mut m).unwrap();
        assert_eq!(m["host"], "[::1]");
        assert_eq!(m["port"], 80);
    }

    #[test]
    fn bare_route_needs_a_matching_attribute() {
        let errs = ROUTE.validate(&json!({}), Mode::default()).unwrap_err();
        assert_eq!(
            errs.lines().collect::<Vec<_>>(),
            ["@entity: must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https'"]
        );
    }

    #[test]
    fn route_paths_are_checked() {
        let errs = ROUTE.validate(&json!({"paths": ["x", "~/(", "/a//b"]}), Mode::default()).unwrap_err();
        let lines: Vec<_> = errs.lines().collect();
        assert_eq!(lines[0], "paths[0]: should start with: / (fixed path) or ~/ (regex path)");
        assert!(lines[1].starts_with("paths[1]: invalid regex"));
        assert_eq!(lines[2], "paths[2]: must not have empty segments");
    }

    #[test]
    fn consumer_needs_username_or_custom_id() {
        assert!(CONSUMER.validate(&json!({"custom_id": "c"}), Mode::default()).is_ok());
        assert!(CONSUMER.validate(&json!({}), Mode::default()).is_err());
    }
}
