//! Kong's declarative format (`kong.yml`, `_format_version: "3.0"`) into a validated [`EntitySet`].
//!
//! Services may nest routes and plugins, routes may nest plugins, consumers may nest plugins;
//! top-level routes and plugins name their parents by name or id. Entities without an `id` get a
//! stable one (UUID v5 of their kind and name or position), so reloading the same file keeps ids.

use gatehouse_core::entity::{EntitySet, Kind, validate_entity};
use gatehouse_core::plugin::Registry;
use gatehouse_core::schema::{FieldErrors, Mode, Seg};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// Namespace for generated ids (a fixed random UUID, so ids are stable across nodes and reloads).
const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6b0f_93a4_5c1e_4f7e_9d2a_3e8b_1c4d_7a90);

/// The deepest nesting of collections (block or flow, `[`, `{`, `-`, `key:`) a document may
/// have. Kong's own files nest about ten levels. libyaml's scanner takes time quadratic in the
/// flow depth before serde_norway's own depth limit can refuse it (20 000 levels: seconds), so
/// the depth is bounded before libyaml sees the text.
pub const MAX_NESTING_DEPTH: usize = 64;

/// Parses YAML (a superset of JSON) into a JSON value. JSON text goes to serde_json, which is
/// linear and refuses nesting past 128 levels by itself.
pub fn parse(text: &str) -> Result<Value, String> {
    if text.trim_start().starts_with('{')
        && let Ok(v) = serde_json::from_str::<Value>(text)
    {
        return Ok(v);
    }
    check_nesting(text)?;
    serde_norway::from_str::<Value>(text).map_err(|e| e.to_string())
}

fn too_deep() -> String {
    format!("collections nested deeper than {MAX_NESTING_DEPTH} levels")
}

/// Refuses a document nested deeper than [`MAX_NESTING_DEPTH`], reading it with a second, pure
/// Rust YAML parser (saphyr) whose events stop as soon as the limit is passed. Its scanner
/// refuses flow nesting past 255 levels by itself, so the scan ahead it needs to resolve keys
/// (`[[[…` is resolved only at its closer) costs at most 255² steps, whatever the input.
///
/// Where saphyr finds the text invalid, its events do not bound libyaml's depth (the two parsers
/// differ in corner cases). The number of `[` and `{` bytes always does, so libyaml only decides
/// (and words the error) when that count is within the limit; otherwise saphyr's error stands.
fn check_nesting(text: &str) -> Result<(), String> {
    use saphyr_parser::{Event, Parser};
    let mut depth = 0usize;
    for event in Parser::new_from_str(text) {
        match event {
            Ok((Event::SequenceStart(..) | Event::MappingStart(..), _)) => {
                depth += 1;
                if depth > MAX_NESTING_DEPTH {
                    return Err(too_deep());
                }
            }
            Ok((Event::SequenceEnd | Event::MappingEnd, _)) => depth = depth.saturating_sub(1),
            Ok(_) => {}
            // saphyr's words for flow nesting past 255 levels.
            Err(e) if e.info() == "recursion limit exceeded" => return Err(too_deep()),
            Err(e) => {
                let openers = text.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
                return if openers <= MAX_NESTING_DEPTH { Ok(()) } else { Err(e.to_string()) };
            }
        }
    }
    Ok(())
}

struct Loader<'a> {
    registry: &'a Registry,
    errs: FieldErrors,
    set: EntitySet,
    now: i64,
    names: HashMap<(Kind, String), String>,
}

fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

/// Loads a parsed declarative document. Every error is reported with its path.
pub fn load(doc: &Value, registry: &Registry, now: i64) -> Result<EntitySet, FieldErrors> {
    let mut l =
        Loader { registry, errs: FieldErrors::default(), set: EntitySet::default(), now, names: HashMap::new() };
    let Some(top) = doc.as_object() else {
        return Err(FieldErrors::one(vec![], "expected a record"));
    };
    match top.get("_format_version").and_then(Value::as_str) {
        Some("3.0" | "2.1" | "1.1") => {}
        Some(v) => l.errs.push(&[key("_format_version")], format!("unsupported version '{v}', expected \"3.0\"")),
        None => l.errs.push(&[key("_format_version")], "required field missing"),
    }
    for k in top.keys() {
        if !matches!(
            k.as_str(),
            "_format_version"
                | "_transform"
                | "_comment"
                | "_ignore"
                | "_info"
                | "services"
                | "routes"
                | "consumers"
                | "plugins"
        ) {
            l.errs.push(&[key(k)], "unknown field");
        }
    }
    // Parents first, so names resolve; plugins last.
    let mut pending_plugins: Vec<(Vec<Seg>, Map<String, Value>)> = Vec::new();
    let mut pending_routes: Vec<(Vec<Seg>, Map<String, Value>)> = Vec::new();
    for (i, svc) in l.items(top, "services") {
        let path = vec![key("services"), Seg::Index(i)];
        let mut svc = svc.clone();
        let routes = svc.remove("routes");
        let plugins = svc.remove("plugins");
        let Some(id) = l.entity(Kind::Services, &path, svc) else { continue };
        for (j, r) in l.nested(routes, &path, "routes") {
            let rpath = [path.clone(), vec![key("routes"), Seg::Index(j)]].concat();
            let mut r = r;
            r.insert("service".into(), json!({"id": id}));
            pending_routes.push((rpath, r));
        }
        for (j, p) in l.nested(plugins, &path, "plugins") {
            let mut p = p;
            p.insert("service".into(), json!({"id": id}));
            pending_plugins.push(([path.clone(), vec![key("plugins"), Seg::Index(j)]].concat(), p));
        }
    }
    for (i, r) in l.items(top, "routes") {
        pending_routes.push((vec![key("routes"), Seg::Index(i)], r.clone()));
    }
    for (path, mut r) in pending_routes {
        let plugins = r.remove("plugins");
        l.resolve(&mut r, &path, "service", Kind::Services);
        let Some(id) = l.entity(Kind::Routes, &path, r) else { continue };
        for (j, p) in l.nested(plugins, &path, "plugins") {
            let mut p = p;
            p.insert("route".into(), json!({"id": id}));
            pending_plugins.push(([path.clone(), vec![key("plugins"), Seg::Index(j)]].concat(), p));
        }
    }
    for (i, c) in l.items(top, "consumers") {
        let path = vec![key("consumers"), Seg::Index(i)];
        let mut c = c.clone();
        let plugins = c.remove("plugins");
        let Some(id) = l.entity(Kind::Consumers, &path, c) else { continue };
        for (j, p) in l.nested(plugins, &path, "plugins") {
            let mut p = p;
            p.insert("consumer".into(), json!({"id": id}));
            pending_plugins.push(([path.clone(), vec![key("plugins"), Seg::Index(j)]].concat(), p));
        }
    }
    for (i, p) in l.items(top, "plugins") {
        pending_plugins.push((vec![key("plugins"), Seg::Index(i)], p.clone()));
    }
    let mut scopes: HashMap<String, Vec<Seg>> = HashMap::new();
    for (path, mut p) in pending_plugins {
        l.resolve(&mut p, &path, "service", Kind::Services);
        l.resolve(&mut p, &path, "route", Kind::Routes);
        l.resolve(&mut p, &path, "consumer", Kind::Consumers);
        // Checked before the entity is made: its generated id comes from this scope, so a second
        // plugin of one scope would otherwise be told only "duplicate id".
        let scope = crate::plugin_cache_key(&Value::Object(p.clone()));
        if let Some(first) = scopes.get(&scope) {
            l.errs.push(
                &path,
                format!(
                    "uniqueness violation: 'plugins' entity with the same name and scope already declared at {}",
                    gatehouse_core::schema::path_string(first)
                ),
            );
            continue;
        }
        if l.entity(Kind::Plugins, &path, p).is_some() {
            scopes.insert(scope, path);
        }
    }
    if l.errs.is_empty() { Ok(l.set) } else { Err(l.errs) }
}

impl Loader<'_> {
    fn items(&mut self, top: &Map<String, Value>, name: &str) -> Vec<(usize, Map<String, Value>)> {
        self.nested(top.get(name).cloned(), &[], name)
    }

    fn nested(&mut self, v: Option<Value>, parent: &[Seg], name: &str) -> Vec<(usize, Map<String, Value>)> {
        let path = [parent.to_vec(), vec![key(name)]].concat();
        match v {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .into_iter()
                .enumerate()
                .filter_map(|(i, item)| match item {
                    Value::Object(o) => Some((i, o)),
                    _ => {
                        let mut p = path.clone();
                        p.push(Seg::Index(i));
                        self.errs.push(&p, "expected a record");
                        None
                    }
                })
                .collect(),
            Some(_) => {
                self.errs.push(&path, "expected an array");
                Vec::new()
            }
        }
    }

    /// Turns a parent given as a name, `{name}` or `{id}` into `{id}`.
    fn resolve(&mut self, obj: &mut Map<String, Value>, path: &[Seg], field: &str, kind: Kind) {
        let name = match obj.get(field) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Object(o)) if o.contains_key("name") => o["name"].as_str().unwrap_or_default().to_string(),
            _ => return,
        };
        match self.names.get(&(kind, name.clone())) {
            Some(id) => {
                obj.insert(field.into(), json!({"id": id}));
            }
            None if uuid::Uuid::parse_str(&name).is_ok() => {
                obj.insert(field.into(), json!({"id": name}));
            }
            None => {
                self.errs.push(
                    &[path.to_vec(), vec![key(field)]].concat(),
                    format!("could not find {} '{name}'", kind.name().trim_end_matches('s')),
                );
                obj.remove(field);
            }
        }
    }

    /// Validates and adds one entity; returns its id.
    fn entity(&mut self, kind: Kind, path: &[Seg], mut obj: Map<String, Value>) -> Option<String> {
        let label = kind
            .endpoint_key()
            .and_then(|k| obj.get(k))
            .and_then(Value::as_str)
            .map(|n| format!("{}:{n}", kind.name()))
            .or_else(|| (kind == Kind::Plugins).then(|| plugin_label(&obj)))
            .unwrap_or_else(|| format!("{}:{}", kind.name(), gatehouse_core::schema::path_string(path)));
        let id = match obj.get("id").and_then(Value::as_str) {
            Some(id) => id.to_string(),
            None => uuid::Uuid::new_v5(&NAMESPACE, label.as_bytes()).to_string(),
        };
        obj.insert("id".into(), id.clone().into());
        obj.entry("created_at").or_insert(self.now.into());
        obj.entry("updated_at").or_insert(self.now.into());
        match validate_entity(kind, &Value::Object(obj), Mode::default(), self.registry) {
            Ok(v) => {
                if self.set.of(kind).iter().any(|e| e["id"] == id.as_str()) {
                    self.errs.push(&[path.to_vec(), vec![key("id")]].concat(), format!("duplicate id '{id}'"));
                    return None;
                }
                for f in kind.unique_fields() {
                    if let Some(val) = v.get(*f).and_then(Value::as_str)
                        && self.set.of(kind).iter().any(|e| e.get(*f).and_then(Value::as_str) == Some(val))
                    {
                        self.errs.push(
                            &[path.to_vec(), vec![key(f)]].concat(),
                            format!(
                                "uniqueness violation: '{}' entity with {f} set to '{val}' already declared",
                                kind.name()
                            ),
                        );
                        return None;
                    }
                }
                if let Some(k) = kind.endpoint_key()
                    && let Some(n) = v.get(k).and_then(Value::as_str)
                {
                    self.names.insert((kind, n.to_string()), id.clone());
                }
                self.set.of_mut(kind).push(v);
                Some(id)
            }
            Err(e) => {
                // Keep the id so nested children are still checked and reported.
                self.errs.extend_under(path, e);
                Some(id)
            }
        }
    }
}

/// A plugin's stable id label: what it is and where it is attached (its cache key: name, route,
/// service, consumer; and `instance_name`), not its place in the file. A plugin
/// must not inherit the id, and so the sessions, of the plugin listed before it when that one
/// is removed.
fn plugin_label(obj: &Map<String, Value>) -> String {
    let key = crate::plugin_cache_key(&Value::Object(obj.clone()));
    match obj.get("instance_name").and_then(Value::as_str) {
        Some(name) => format!("{key}:{name}"),
        None => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each form refused within a generous bound (debug build, loaded machine); libyaml alone
    /// takes seconds for 20 000 levels and minutes for 200 000.
    fn refused_fast(text: &str) -> String {
        let started = std::time::Instant::now();
        let Err(e) = parse(text) else { panic!("accepted {:?}…", &text[..text.len().min(40)]) };
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "{e}: {:?}", started.elapsed());
        e
    }

    /// Documents that fooled the former byte scanner's quote and comment heuristics.
    fn bypasses(n: usize) -> Vec<String> {
        let open = "[".repeat(n);
        vec![
            format!("a: {open}x{}", "]".repeat(n)),
            format!("{{\"config\":\"{open}"),
            // In flow context `a:"` is a plain scalar: no quoted scalar starts there.
            format!("{{\"config\":\"[a:\"{open}"),
            format!("[-\"{open}"),
            format!("[a:\"{open}"),
            // A tag or anchor before a real quote: the quoted `]` closes nothing.
            format!("x: {}", "[!t \"]\", ".repeat(n)),
            format!("x: {}", "[&a \"]\", ".repeat(n)),
            // `#` right after a quoted scalar starts no comment.
            format!("x: [!t \" #\", {open}"),
            format!("x: [\"a\"#, {open}"),
            // An apostrophe inside a plain scalar opens nothing, even across lines.
            format!("x: a '\ny: {open}\nz: '"),
            format!("x: a\n  '\ny: {open}\nz: '"),
            format!("x: [\"{}\", {open}", "]".repeat(n)),
            format!("{}x", "{a: ".repeat(n)),
            format!("{}x", "- ".repeat(n)),
            format!("{}x", "[{".repeat(n / 2)),
            // Closers past the openers never lower the depth that counts.
            format!("a: x{}\nb: {open}", "]".repeat(n)),
        ]
    }

    #[test]
    fn deep_nesting_is_refused_fast_in_every_form() {
        // Some forms are invalid YAML too; each is refused before libyaml scans it.
        for text in bypasses(200_000) {
            refused_fast(&text);
        }
        // Just past the limit, block and flow alike, each refused by depth.
        for text in bypasses(MAX_NESTING_DEPTH + 1) {
            assert!(parse(&text).is_err(), "{:?}", &text[..40]);
        }
        let deep = format!("a: {}x{}", "[".repeat(MAX_NESTING_DEPTH), "]".repeat(MAX_NESTING_DEPTH));
        assert!(refused_fast(&deep).contains("nested deeper than 64"));
        let block = format!("{}x", "- ".repeat(MAX_NESTING_DEPTH + 1));
        assert!(refused_fast(&block).contains("nested deeper than 64"));
    }

    #[test]
    fn saphyr_alone_stops_flow_nesting_within_its_own_limit() {
        // The scan ahead before the first event must not cost time quadratic in the input.
        let text = format!("a: {}", "[".repeat(2_000_000));
        let started = std::time::Instant::now();
        assert_eq!(check_nesting(&text), Err(too_deep()));
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
    }

    #[test]
    fn legit_documents_are_accepted() {
        let ok = format!("a: {}x{}", "[".repeat(MAX_NESTING_DEPTH - 1), "]".repeat(MAX_NESTING_DEPTH - 1));
        assert_eq!(parse(&ok).map(|v| v.is_object()), Ok(true));
        for (text, want) in [
            ("paths: [\"~/a[0-9]+\", '~/b{2}']", json!({"paths": ["~/a[0-9]+", "~/b{2}"]})),
            ("a: {b: [1, {c: 2}]}", json!({"a": {"b": [1, {"c": 2}]}})),
            ("a: \"[[[[\"\nb: '{{{{'\nc: 'it''s ]]'", json!({"a": "[[[[", "b": "{{{{", "c": "it's ]]"})),
            ("# [[[[ {{\na: [x] # {{{{\nb: it's", json!({"a": ["x"], "b": "it's"})),
            ("a: x]]\nb: |\n  [[[[\n", json!({"a": "x]]", "b": "[[[[\n"})),
            ("a: [b:\"c\", !!str 1, &x d, *x]", json!({"a": ["b:\"c\"", "1", "d", "d"]})),
        ] {
            assert_eq!(parse(text), Ok(want), "{text:?}");
        }
        // JSON text takes serde_json's path; flow-style YAML that is not JSON still parses.
        assert_eq!(parse(r#"{"a": [1]}"#), Ok(json!({"a": [1]})));
        assert_eq!(parse("{a: [1]}"), Ok(json!({"a": [1]})));
        // Invalid YAML with few brackets keeps libyaml's (serde_norway's) error.
        let e = parse("a: [1\nb: 2").unwrap_err();
        assert_eq!(e, serde_norway::from_str::<Value>("a: [1\nb: 2").unwrap_err().to_string());
    }

    /// A kong.yml in the shapes Kong's own docs use: comments, anchors, block scalars, flow lists,
    /// regex paths with brackets, tabs inside quotes, several levels of block nesting.
    const KONG_YML: &str = r#"# Kong declarative config [generated] {v3}
_format_version: "3.0"
_transform: true
x-oidc: &oidc
  issuer: https://idp.example.com/.well-known/openid-configuration
  client_id: [gatehouse]
  client_secret: ["s3cr3t#[not a comment]"]
  scopes: [openid, profile, 'email']   # [trailing comment]
  auth_methods:
  - authorization_code
  - session
services:
- name: api
  url: http://upstream:8080/v1
  tags: [a, "b]", 'c[']
  routes:
  - name: regex
    paths: ["~/users/(?<id>[0-9]+)$", '~/a{2,3}', /plain]
    methods: [GET, POST]
    headers: {x-version: ["1", "2"]}
    strip_path: false
  plugins:
  - name: openid-connect
    config:
      <<: *oidc
      login_redirect_uri: ["https://app.example.com/?q=[x]"]
      description: |
        Block scalar with [[[ brackets ]]] and {{ braces }}
        and a # that is text.
      note: >-
        folded 'quote and "quote
consumers:
- username: "alice\t[admin]"
  custom_id: it's-alice
"#;

    #[test]
    fn a_kong_file_parses_exactly_as_libyaml_reads_it() {
        assert_eq!(check_nesting(KONG_YML), Ok(()));
        let direct = serde_norway::from_str::<Value>(KONG_YML).map_err(|e| e.to_string());
        assert_eq!(parse(KONG_YML), direct);
        let doc = parse(KONG_YML).unwrap();
        assert_eq!(doc["services"][0]["routes"][0]["paths"][0], "~/users/(?<id>[0-9]+)$");
        assert_eq!(doc["x-oidc"]["client_secret"], json!(["s3cr3t#[not a comment]"]));
        assert_eq!(doc["consumers"][0]["username"], "alice\t[admin]");
    }

    const DOC: &str = r#"
_format_version: "3.0"
services:
- name: echo
  url: http://127.0.0.1:9090/base
  routes:
  - name: echo-route
    paths: [/echo]
consumers:
- username: alice
routes:
- name: top
  service: echo
  hosts: [example.com]
"#;

    /// A declarative plugin's id was once a UUID v5 of its *position* (`plugins[0]`), and the
    /// openid-connect session key is derived from the plugin id and issuer only
    /// (`gatehouse-oidc/src/node.rs` `session_codec`). So after `POST /config` (or a restart with
    /// the same `session_secret`) drops the first plugin, the plugin that moves into its place
    /// takes its id and opens the sessions the other plugin sealed (tokens it never checked:
    /// another route, `ignore_signature`, `verify_claims: false`, ...). A different plugin (other
    /// route, other config) must not inherit another's id.
    #[test]
    fn a_plugin_does_not_inherit_the_id_of_the_plugin_that_held_its_place() {
        use gatehouse_core::entity::PluginEntity;
        use gatehouse_core::plugin::{BuildEnv, BuildError, Plugin, PluginFactory};
        use gatehouse_core::schema::{Field, Record};
        use std::sync::Arc;
        struct Auth(Record);
        struct Noop;
        impl Plugin for Noop {}
        impl PluginFactory for Auth {
            fn name(&self) -> &'static str {
                "openid-connect"
            }
            fn priority(&self) -> i32 {
                1
            }
            fn config_schema(&self) -> &Record {
                &self.0
            }
            fn build(&self, _: &PluginEntity, _: &BuildEnv) -> Result<Arc<dyn Plugin>, BuildError> {
                Ok(Arc::new(Noop))
            }
        }
        let mut reg = Registry::default();
        reg.register(Arc::new(Auth(Record::new(vec![
            Field::string("issuer"),
            Field::boolean("verify_signature").default(json!(true)),
        ]))));
        let before = r#"
_format_version: "3.0"
services:
- name: s
  host: h
  routes:
  - name: admin
    paths: [/admin]
  - name: public
    paths: [/public]
plugins:
- name: openid-connect
  route: admin
  config: {issuer: "https://idp"}
- name: openid-connect
  route: public
  config: {issuer: "https://idp", verify_signature: false}
"#;
        let after = r#"
_format_version: "3.0"
services:
- name: s
  host: h
  routes:
  - name: admin
    paths: [/admin]
  - name: public
    paths: [/public]
plugins:
- name: openid-connect
  route: public
  config: {issuer: "https://idp", verify_signature: false}
"#;
        let a = load(&parse(before).unwrap(), &reg, 1).unwrap();
        let b = load(&parse(after).unwrap(), &reg, 2).unwrap();
        let admin_plugin = &a.plugins[0];
        let public_plugin = &b.plugins[0];
        assert_eq!(admin_plugin["route"]["id"], a.routes[0]["id"]);
        assert_eq!(public_plugin["route"]["id"], b.routes[1]["id"]);
        assert_ne!(
            admin_plugin["id"], public_plugin["id"],
            "the /public plugin (verify_signature off) took the /admin plugin's id, so its session key"
        );
    }

    #[test]
    fn nested_and_top_level_entities_load_with_stable_ids() {
        let reg = Registry::default();
        let a = load(&parse(DOC).unwrap(), &reg, 1).unwrap();
        let b = load(&parse(DOC).unwrap(), &reg, 2).unwrap();
        assert_eq!(a.services.len(), 1);
        assert_eq!(a.routes.len(), 2);
        assert_eq!(a.routes[1]["service"]["id"], a.services[0]["id"]);
        assert_eq!(a.services[0]["path"], "/base");
        assert_eq!(a.services[0]["id"], b.services[0]["id"]);
        assert_eq!(a.consumers[0]["username"], "alice");
    }

    #[test]
    fn every_error_has_its_path() {
        let doc = parse(
            r#"
_format_version: "3.0"
services:
- name: s
  host: h
  port: 99999
  routes:
  - paths: [nope]
plugins:
- name: nosuch
  service: missing
"#,
        )
        .unwrap();
        let errs = load(&doc, &Registry::default(), 0).unwrap_err();
        let lines: Vec<String> = errs.lines().collect();
        assert_eq!(
            lines,
            [
                "services[0].port: value should be between 0 and 65535",
                "services[0].routes[0].paths[0]: should start with: / (fixed path) or ~/ (regex path)",
                "plugins[0].service: could not find service 'missing'",
                "plugins[0].name: plugin 'nosuch' not enabled; add it to the 'plugins' configuration property",
            ]
        );
    }
}
