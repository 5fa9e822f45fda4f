//! Key removal through the real binary: the development IdP rotates its signing key away (the
//! old key gone from the JWKS) and the gateway fetches the JWKS again; then nothing the old key
//! verified is accepted from any cache (the per-thread front, verified tokens, grants, opened
//! sessions), while tokens signed by keys still published keep working.

use super::oidc::{Env, base_config};
use super::util::post;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// Every plugin here shares one provider (the same issuer settings), so a JWKS refresh one of
/// them asks for is seen by all; refreshes are never rate-limited.
fn provider(mut config: Value) -> Value {
    config["rediscovery_lifetime"] = json!(0);
    config
}

/// Route `/{name}` on the service, with a route plugin of its own (`config` on the base config).
async fn route(env: &Env, name: &str, config: Value) {
    let admin = &env.gw.admin;
    let (st, body) =
        post(&format!("{admin}/services/echo/routes"), json!({"name": name, "paths": [format!("/{name}")]})).await;
    assert_eq!(st, 201, "{body}");
    let mut cfg = base_config(&env.issuer);
    if let (Value::Object(c), Value::Object(extra)) = (&mut cfg, provider(config)) {
        c.extend(extra);
    }
    let (st, body) =
        post(&format!("{admin}/routes/{name}/plugins"), json!({"name": "openid-connect", "config": cfg})).await;
    assert_eq!(st, 201, "{body}");
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
}

/// The `session=...` cookies a response sets, as a `Cookie` header value.
fn session_cookie(h: &HeaderMap) -> String {
    let cookies: Vec<String> = h
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .filter(|c| c.starts_with("session"))
        .collect();
    assert!(!cookies.is_empty(), "a session was issued");
    cookies.join("; ")
}

/// A counter of the IdP's.
async fn count(env: &Env, endpoint: &str) -> i64 {
    env.calls().await[endpoint].as_i64().unwrap()
}

/// `GET {path}` with one header, a few times (each proxy thread has its own front): the status
/// of each.
async fn statuses(env: &Env, path: &str, header: (&str, &str)) -> Vec<u16> {
    let mut all = Vec::new();
    for _ in 0..4 {
        all.push(env.call_path(path, &[header]).await.0);
    }
    all
}

/// What the upstream got as `Authorization`.
async fn upstream_token(env: &Env, path: &str, auth: &str) -> String {
    let (st, body, _) = env.call_path(path, &[("authorization", auth)]).await;
    assert_eq!(st, 200, "{body}");
    body["headers"]["Authorization"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_removed_key_is_accepted_from_no_cache_and_kept_keys_are_unaffected() {
    // `/api`: password grants (the front serves cached ones); `/bearer`; `/session` (Kong's
    // default: a session's tokens are trusted because we sealed them); `/reverify`.
    let env = Env::new(provider(json!({"auth_methods": ["password"]}))).await;
    route(&env, "bearer", json!({"auth_methods": ["bearer"]})).await;
    route(&env, "session", json!({"auth_methods": ["password", "session"]})).await;
    route(&env, "reverify", json!({"auth_methods": ["password", "session"], "reverify": true})).await;
    let all_ok = vec![200; 4];

    // Everything made with the first key, and seen before, so every cache holds it.
    let old = env.mint(json!({})).await;
    assert_eq!(statuses(&env, "/bearer/x", ("authorization", &bearer(&old))).await, all_ok);
    let john = basic("john", "doe");
    let granted = upstream_token(&env, "/api/x", &john).await;
    let (st, _, h) = env.call_path("/session/x", &[("authorization", &john)]).await;
    assert_eq!(st, 200);
    let session = session_cookie(&h);
    let (st, _, h) = env.call_path("/reverify/x", &[("authorization", &john)]).await;
    assert_eq!(st, 200);
    let reverified = session_cookie(&h);
    assert_eq!(statuses(&env, "/api/x", ("authorization", &john)).await, all_ok);
    assert_eq!(statuses(&env, "/session/x", ("cookie", &session)).await, all_ok);
    assert_eq!(statuses(&env, "/reverify/x", ("cookie", &reverified)).await, all_ok);
    let grants = count(&env, "token").await;

    // A new key added (the old one still published): nothing seen before is refused.
    env.dev("rotate", json!({"drop_old": false})).await;
    let jwks = count(&env, "jwks").await;
    let new = env.mint(json!({})).await;
    assert_eq!(statuses(&env, "/bearer/x", ("authorization", &bearer(&new))).await, all_ok);
    assert!(count(&env, "jwks").await > jwks, "the new kid made the gateway fetch the JWKS");
    assert_eq!(statuses(&env, "/bearer/x", ("authorization", &bearer(&old))).await, all_ok);
    assert_eq!(upstream_token(&env, "/api/x", &john).await, granted, "the cached grant");
    assert_eq!(statuses(&env, "/session/x", ("cookie", &session)).await, all_ok);
    assert_eq!(statuses(&env, "/reverify/x", ("cookie", &reverified)).await, all_ok);
    assert_eq!(count(&env, "token").await, grants, "no grant made again");

    // The first key removed, and the JWKS fetched again (a token with an unknown kid asks).
    env.dev("retire", json!({})).await;
    let jwks = count(&env, "jwks").await;
    let foreign = env.mint(json!({"key": "foreign"})).await;
    assert_eq!(env.call_path("/bearer/x", &[("authorization", &bearer(&foreign))]).await.0, 401);
    assert!(count(&env, "jwks").await > jwks, "the JWKS was fetched again");

    // A bearer token seen before: refused on every thread, from no cache.
    let (st, body, h) = env.call_path("/bearer/x", &[("authorization", &bearer(&old))]).await;
    assert_eq!(st, 401, "{body}");
    assert!(h["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    assert_eq!(statuses(&env, "/bearer/x", ("authorization", &bearer(&old))).await, vec![401; 4]);
    // A token signed by the key still published keeps working.
    assert_eq!(statuses(&env, "/bearer/x", ("authorization", &bearer(&new))).await, all_ok);

    // The cached password grant is not served: it is made again, with the current key.
    let regranted = upstream_token(&env, "/api/x", &john).await;
    assert_ne!(regranted, granted);
    assert_eq!(count(&env, "token").await, grants + 1, "one new grant");
    assert_eq!(statuses(&env, "/api/x", ("authorization", &john)).await, all_ok);
    assert_eq!(count(&env, "token").await, grants + 1, "and that one is cached");

    // Sessions: Kong's default trusts the session's tokens (sealed by us) until they are due;
    // with `reverify` they are verified when the cookie is opened, and the key is gone.
    assert_eq!(statuses(&env, "/session/x", ("cookie", &session)).await, all_ok);
    let (st, body, _) = env.call_path("/reverify/x", &[("cookie", &reverified)]).await;
    assert_eq!(st, 401, "{body}");
    assert_eq!(statuses(&env, "/reverify/x", ("cookie", &reverified)).await, vec![401; 4]);
    // A session made now, with tokens signed by the current key, works with reverify.
    let (st, _, h) = env.call_path("/reverify/x", &[("authorization", &john)]).await;
    assert_eq!(st, 200);
    assert_eq!(statuses(&env, "/reverify/x", ("cookie", &session_cookie(&h))).await, all_ok);
}
