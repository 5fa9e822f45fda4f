//! No panic from config: every numeric field of every plugin schema (and of the service entity),
//! found through the schema endpoints themselves, is written with extreme values. Each write may
//! be refused (400) or accepted; an accepted one must leave a node that answers every request
//! through it, Kong-shaped, without a reset connection.

use super::oidc::idp;
use super::util::{Gateway, client, echo, echo_service, get, json, post, tempdir};
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant};

/// The values every numeric field is tried with.
fn extremes() -> Vec<Value> {
    vec![json!(0), json!(-1), json!(1.5), json!(1e30), json!(-1e30), json!(i64::MAX), json!(i64::MIN), json!(f64::MAX)]
}

/// Paths (under `config`, or under the entity) of every `integer` and `number` field of a
/// described record, nested records included.
fn numeric_paths(fields: &Value, prefix: &[String], out: &mut Vec<Vec<String>>) {
    for f in fields.as_array().into_iter().flatten() {
        let Some((name, desc)) = f.as_object().and_then(|o| o.iter().next()) else { continue };
        let mut path = prefix.to_vec();
        path.push(name.clone());
        match desc["type"].as_str() {
            Some("integer" | "number") => out.push(path),
            Some("record") => numeric_paths(&desc["fields"], &path, out),
            _ => {}
        }
    }
}

fn set_path(root: &mut Value, path: &[String], v: Value) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut node = root;
    for p in parents {
        if !node.get(p).is_some_and(Value::is_object) {
            node[p.as_str()] = Value::Object(Map::new());
        }
        node = &mut node[p.as_str()];
    }
    node[last.as_str()] = v;
}

/// The base config each plugin is written with before one field is set to an extreme.
fn base_config(name: &str, issuer: &str) -> Value {
    match name {
        "openid-connect" => {
            json!({"issuer": issuer, "client_id": ["gatehouse"], "client_secret": ["gatehouse-secret"]})
        }
        _ => json!({}),
    }
}

/// One request through the route; the answer must come, and a 5xx must be Kong-shaped.
async fn probe(proxy: &str, auth: Option<&str>, case: &str) {
    let mut req = client().get(format!("{proxy}/x/anything")).timeout(Duration::from_secs(10));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => panic!("{case}: no answer ({e})"),
    };
    let (st, body) = json(resp).await;
    assert!(st != 0, "{case}");
    if st >= 500 {
        assert!(body["message"].is_string(), "{case}: a 5xx without Kong's body: {st} {body}");
        assert_ne!(body["message"], "An unexpected error occurred", "{case}: an accepted config that cannot run");
    }
}

/// Where one plugin kind's extremes are written and probed.
struct Target<'a> {
    admin_url: &'a str,
    proxy: &'a str,
    name: &'a str,
    issuer: &'a str,
    tokens: &'a [String],
}

impl Target<'_> {
    /// Writes `v` into every field of `paths` at once; the fields a 400 names are dropped (back
    /// to their defaults) and the rest written again, so each field is either refused by name or
    /// runs with `v`. A refusal that names none of them (an entity check) falls back to one
    /// field at a time. Returns (fields tried, fields accepted).
    async fn try_all(&self, paths: &[Vec<String>], v: &Value) -> (usize, usize) {
        let mut left: Vec<&Vec<String>> = paths.iter().collect();
        // Each round drops at least one field, so this ends.
        for _ in 0..=paths.len() {
            if left.is_empty() {
                return (paths.len(), 0);
            }
            let case = format!("{} = {v} in {} fields", self.name, left.len());
            let (st, body) = self.write(&left, v, &case).await;
            if st != 400 {
                return (paths.len(), left.len());
            }
            let refused = &body["fields"]["config"];
            let before = left.len();
            left.retain(|p| lookup(refused, p).is_none());
            if left.len() == before {
                let mut ok = 0;
                for p in &left {
                    let case = format!("{} config.{} = {v}", self.name, p.join("."));
                    ok += usize::from(self.write(&[p], v, &case).await.0 != 400);
                }
                return (paths.len(), ok);
            }
        }
        panic!("{} = {v}: refusals did not converge", self.name);
    }

    /// One `PUT` of the plugin with `v` at `paths`; an accepted one is probed.
    async fn write(&self, paths: &[&Vec<String>], v: &Value, case: &str) -> (u16, Value) {
        let mut config = base_config(self.name, self.issuer);
        for p in paths {
            set_path(&mut config, p, v.clone());
        }
        let (st, body) = put(self.admin_url, &json!({"name": self.name, "config": config})).await;
        match st {
            200 | 201 => {
                probe(self.proxy, None, case).await;
                if self.name == "openid-connect" {
                    for t in self.tokens {
                        probe(self.proxy, Some(t), case).await;
                    }
                }
            }
            400 => assert!(body["fields"].is_object(), "{case}: a refusal names its field: {body}"),
            other => panic!("{case}: admin answered {other} {body}"),
        }
        (st, body)
    }
}

/// The refusal of `path` in a `fields` tree: at the field itself, or at a record above it (a
/// record the write brought into being whose required fields are missing).
fn lookup<'v>(root: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut node = root;
    for k in path {
        match node.get(k.as_str()) {
            Some(v @ Value::String(_)) => return Some(v),
            Some(v) if v.get("@entity").is_some() => return Some(v),
            Some(v) if !v.is_null() => node = v,
            _ => return None,
        }
    }
    Some(node)
}

async fn put(url: &str, body: &Value) -> (u16, Value) {
    json(client().put(url).json(body).send().await.expect("admin answers")).await
}

#[tokio::test]
async fn extreme_numbers_in_every_numeric_field_never_break_the_node() {
    let started = Instant::now();
    let dir = tempdir();
    let provider = idp(dir.path(), &[]);
    let issuer = provider.urls[0].clone();
    let up = echo(dir.path());
    let gw = Gateway::start(dir.path());
    let a = &gw.admin;
    echo_service(&gw, &up.urls[0], &[json!({"name": "x", "paths": ["/x"]})]).await;

    // Tokens the plugin meets: a good one, one without `exp` (the `cache_ttl` path), an expired
    // one, and one whose claims sit at the ends of the integer range.
    let mint = |body: Value| {
        let issuer = issuer.clone();
        async move {
            let (st, v) = post(&format!("{issuer}/_dev/mint"), body).await;
            assert_eq!(st, 200, "{v}");
            format!("Bearer {}", v["token"].as_str().expect("token"))
        }
    };
    let tokens = [
        mint(json!({})).await,
        mint(json!({"claims": {"exp": null}})).await,
        mint(json!({"ttl": -60})).await,
        mint(json!({"claims": {"exp": i64::MAX, "nbf": i64::MIN, "iat": i64::MIN}})).await,
    ];

    let (_, enabled) = get(&format!("{a}/plugins/enabled")).await;
    let names: Vec<String> = enabled["enabled_plugins"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect();
    assert!(names.iter().any(|n| n == "openid-connect"), "{names:?}");
    let mut tried = 0;
    let mut accepted = 0;
    for name in &names {
        let (st, schema) = get(&format!("{a}/schemas/plugins/{name}")).await;
        assert_eq!(st, 200, "{schema}");
        let config_fields = schema["fields"]
            .as_array()
            .and_then(|f| f.iter().find_map(|f| f.get("config")))
            .map(|c| c["fields"].clone())
            .expect("a config record");
        let mut paths = Vec::new();
        numeric_paths(&config_fields, &[], &mut paths);
        let plugin_url = format!("{a}/routes/x/plugins/{}", uuid_for(name));
        let target = Target { admin_url: &plugin_url, proxy: &gw.proxy, name, issuer: &issuer, tokens: &tokens };
        for v in extremes() {
            let (t, ok) = target.try_all(&paths, &v).await;
            tried += t;
            accepted += ok;
        }
        let (st, _) = json(client().delete(&plugin_url).send().await.expect("delete")).await;
        assert_eq!(st, 204);
    }

    // The service entity's numbers (port, retries, timeouts) reach the proxy's arithmetic too.
    let (_, schema) = get(&format!("{a}/schemas/services")).await;
    let mut paths = Vec::new();
    numeric_paths(&schema["fields"], &[], &mut paths);
    assert!(!paths.is_empty());
    for path in &paths {
        for v in extremes() {
            let case = format!("service.{} = {v}", path.join("."));
            let mut svc = json!({"url": up.urls[0]});
            if path[0] != "port" {
                set_path(&mut svc, path, v);
            } else {
                // `url` and `port` cannot be combined; the parts are given instead.
                let u = up.urls[0].trim_start_matches("http://");
                let host = u.split(':').next().unwrap_or_default();
                svc = json!({"protocol": "http", "host": host, "port": v});
            }
            tried += 1;
            let (st, body) = put(&format!("{a}/services/echo"), &svc).await;
            match st {
                200 => {
                    accepted += 1;
                    probe(&gw.proxy, None, &case).await;
                }
                400 => assert!(body["fields"].is_object(), "{case}: {body}"),
                other => panic!("{case}: admin answered {other} {body}"),
            }
        }
    }
    assert!(accepted > 0 && accepted < tried, "both outcomes happen: {accepted} of {tried}");
    let (st, _) = get(&format!("{a}/status")).await;
    assert_eq!(st, 200);
    let logs = gw.proc.logs();
    assert!(!logs.contains("panicked"), "no panic in the node:\n{logs}");
    assert!(started.elapsed() < Duration::from_secs(60), "bounded: {:?}", started.elapsed());
}

/// A stable plugin id per plugin name, so `PUT` replaces the one instance under test.
fn uuid_for(name: &str) -> String {
    let n = name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    format!("00000000-0000-4000-8000-{:012x}", n & 0xffff_ffff_ffff)
}
