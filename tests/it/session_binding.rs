//! Sessions are bound to the plugin and issuer that made them: a session cookie made on one route
//! is refused on a route whose plugin is another (same issuer or not), and what it holds never
//! reaches that route's upstream. Through the real binary, two development IdPs and an echo
//! upstream.

use super::oidc::{basic, call_url, idp, session_cookie};
use super::util::{Gateway, Proc, client, echo, post, tempdir};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// A gateway with one echo service per route: `/a` and `/b`, each with its own
/// `openid-connect` plugin of `issuer_a`/`issuer_b` (extra `config` on both).
struct Two {
    _up: Proc,
    gw: Gateway,
    plugins: [String; 2],
}

async fn two_routes(dir: &std::path::Path, issuers: [&str; 2], config: Value) -> Two {
    let up = echo(dir);
    let gw = Gateway::start(dir);
    let mut plugins = Vec::new();
    for (name, issuer) in ["a", "b"].into_iter().zip(issuers) {
        let (st, body) = post(&format!("{}/services", gw.admin), json!({"name": name, "url": up.urls[0]})).await;
        assert_eq!(st, 201, "{body}");
        let (st, body) =
            post(&format!("{}/services/{name}/routes", gw.admin), json!({"paths": [format!("/{name}")]})).await;
        assert_eq!(st, 201, "{body}");
        let mut cfg = json!({"issuer": issuer, "client_id": ["gatehouse"], "client_secret": ["gatehouse-secret"]});
        for (k, v) in config.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        let (st, body) =
            post(&format!("{}/services/{name}/plugins", gw.admin), json!({"name": "openid-connect", "config": cfg}))
                .await;
        assert_eq!(st, 201, "{body}");
        plugins.push(body["id"].as_str().unwrap().to_string());
    }
    Two { _up: up, gw, plugins: [plugins[0].clone(), plugins[1].clone()] }
}

async fn call(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> (u16, Value, HeaderMap) {
    call_url(&format!("{}{path}", gw.proxy), headers).await
}

/// A session made on `/a` with john's password grant.
async fn session_on_a(gw: &Gateway) -> String {
    let (st, body, h) = call(gw, "/a/x", &[("authorization", &basic("john", "doe"))]).await;
    assert_eq!(st, 200, "{body}");
    let cookie = session_cookie(&h);
    assert!(cookie.starts_with("session="), "{h:?}");
    let (st, body, _) = call(gw, "/a/x", &[("cookie", &cookie)]).await;
    assert_eq!(st, 200, "the session works where it was made: {body}");
    cookie
}

/// `cookie` on `/b` is refused, and nothing of it reached the upstream.
async fn refused_on_b(gw: &Gateway, cookie: &str) {
    let (st, body, h) = call(gw, "/b/x", &[("cookie", cookie)]).await;
    assert_eq!(st, 401, "{body}");
    assert!(body.get("headers").is_none(), "the upstream was not called: {body}");
    assert!(h.get("www-authenticate").is_some(), "{h:?}");
}

#[tokio::test]
async fn a_session_of_another_issuer_is_refused() {
    let dir = tempdir();
    let idp_a = idp(dir.path(), &[]);
    let idp_b = {
        let sub = dir.path().join("b");
        std::fs::create_dir(&sub).unwrap();
        idp(&sub, &[])
    };
    let env =
        two_routes(dir.path(), [&idp_a.urls[0], &idp_b.urls[0]], json!({"auth_methods": ["password", "session"]}))
            .await;
    let cookie = session_on_a(&env.gw).await;
    refused_on_b(&env.gw, &cookie).await;
}

#[tokio::test]
async fn a_session_of_another_plugin_of_the_same_issuer_is_refused() {
    let dir = tempdir();
    let idp = idp(dir.path(), &[]);
    let issuer = idp.urls[0].as_str();
    let env = two_routes(dir.path(), [issuer, issuer], json!({"auth_methods": ["password", "session"]})).await;
    assert_ne!(env.plugins[0], env.plugins[1]);
    let cookie = session_on_a(&env.gw).await;
    refused_on_b(&env.gw, &cookie).await;
    // Even with one session_secret shared on purpose, the key is still per plugin.
    for p in &env.plugins {
        let resp = client()
            .patch(format!("{}/plugins/{p}", env.gw.admin))
            .json(&json!({"config": {"session_secret": "one secret for both plugins"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let cookie = session_on_a(&env.gw).await;
    refused_on_b(&env.gw, &cookie).await;
}

#[tokio::test]
async fn sessions_survive_a_restart_and_end_when_their_issuer_record_is_deleted() {
    let dir = tempdir();
    let idp = idp(dir.path(), &[]);
    let issuer = idp.urls[0].clone();
    let env = two_routes(dir.path(), [&issuer, &issuer], json!({"auth_methods": ["password", "session"]})).await;
    let cookie = session_on_a(&env.gw).await;
    let Two { _up, gw, plugins: _ } = env;
    drop(gw);
    let gw = Gateway::start(dir.path());
    let (st, body, _) = call(&gw, "/a/x", &[("cookie", &cookie)]).await;
    assert_eq!(st, 200, "the issuer's secret was stored: {body}");
    refused_on_b(&gw, &cookie).await;

    // Deleting the issuer record (Kong's discovery cache) rotates its secret.
    let (st, list) = super::util::get(&format!("{}/openid-connect/issuers", gw.admin)).await;
    assert_eq!(st, 200, "{list}");
    let id = list["data"][0]["id"].as_str().unwrap().to_string();
    let resp = client().delete(format!("{}/openid-connect/issuers/{id}", gw.admin)).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let (st, body, _) = call(&gw, "/a/x", &[("cookie", &cookie)]).await;
    assert_eq!(st, 401, "the old secret is gone: {body}");
    let (st, list) = super::util::get(&format!("{}/openid-connect/issuers", gw.admin)).await;
    assert_eq!(st, 200);
    assert_ne!(list["data"][0]["id"], id.as_str(), "a new record: {list}");
    // New sessions work under the new secret.
    let fresh = session_on_a(&gw).await;
    assert_ne!(fresh, cookie);
}

/// Declarative mode: the issuer secret and the key set live in memory. A reload with the same
/// `kong.yml` keeps the plugin's id (a UUID v5 of its place), so its sessions go on; another
/// process has another secret, so they do not.
#[tokio::test]
async fn declarative_sessions_survive_a_reload_but_not_the_process() {
    let dir = tempdir();
    let idp = idp(dir.path(), &[]);
    let up = echo(dir.path());
    let yml = format!(
        r#"_format_version: "3.0"
services:
- name: a
  url: {}
  routes:
  - name: a
    paths: [/a]
  plugins:
  - name: openid-connect
    config:
      issuer: {}
      client_id: [gatehouse]
      client_secret: [gatehouse-secret]
      auth_methods: [password, session]
"#,
        up.urls[0], idp.urls[0]
    );
    let file = dir.path().join("kong.yml");
    std::fs::write(&file, &yml).unwrap();
    let args = ["--database", "off", "--declarative-config", file.to_str().unwrap()];
    let gw = Gateway::start_with(dir.path(), &args, &[]);
    let cookie = session_on_a(&gw).await;
    let (st, list) = super::util::get(&format!("{}/openid-connect/issuers", gw.admin)).await;
    assert_eq!((st, list["data"][0]["issuer"].as_str()), (200, Some(idp.urls[0].as_str())), "{list}");
    assert_eq!(super::util::get(&format!("{}/openid-connect/jwks", gw.admin)).await.0, 200);
    let (st, body) = post(&format!("{}/config", gw.admin), json!({"config": yml})).await;
    assert_eq!(st, 201, "{body}");
    let (st, body, _) = call(&gw, "/a/x", &[("cookie", &cookie)]).await;
    assert_eq!(st, 200, "the same plugin id and secret after a reload: {body}");
    drop(gw);
    let gw = Gateway::start_with(dir.path(), &args, &[]);
    let (st, body, _) = call(&gw, "/a/x", &[("cookie", &cookie)]).await;
    assert_eq!(st, 401, "a new process, a new secret: {body}");
}

/// A session records the client its tokens were obtained for: once the plugin no longer has that
/// client, the session no longer opens (same plugin, same issuer, same key).
#[tokio::test]
async fn a_session_of_a_client_the_plugin_no_longer_has_is_refused() {
    let dir = tempdir();
    let users = dir.path().join("users.yaml");
    std::fs::write(&users, "access_token_ttl: 2\n").unwrap();
    let idp = idp(dir.path(), &["--users", users.to_str().unwrap()]);
    let issuer = idp.urls[0].as_str();
    let env = two_routes(dir.path(), [issuer, issuer], json!({"auth_methods": ["password", "session"]})).await;
    let cookie = session_on_a(&env.gw).await;
    let patch = |config: Value| {
        let url = format!("{}/plugins/{}", env.gw.admin, env.plugins[0]);
        async move {
            let resp = client().patch(url).json(&json!({"config": config})).send().await.unwrap();
            assert_eq!(resp.status(), 200);
        }
    };
    patch(json!({"client_id": ["gatehouse-public"], "client_secret": null, "client_auth": ["none"]})).await;
    let (st, body, _) = call(&env.gw, "/a/x", &[("cookie", &cookie)]).await;
    assert_eq!(st, 401, "{body}");
    patch(json!({"client_id": ["gatehouse-public", "gatehouse"], "client_secret": ["-", "gatehouse-secret"],
        "client_auth": ["none", "client_secret_basic"]}))
    .await;
    let (st, body, _) = call(&env.gw, "/a/x", &[("cookie", &cookie)]).await;
    assert_eq!(st, 200, "the client is back: {body}");
    assert_eq!(
        jwt_claims(body["headers"]["Authorization"].as_str().unwrap().trim_start_matches("Bearer "))["client_id"],
        "gatehouse",
        "the tokens of the session's own client"
    );
    // The access token expires; the refresh goes out as the session's client, now second in
    // `client_id` (the IdP refuses a refresh token of another client).
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let (st, body, _) = call(&env.gw, "/a/x", &[("cookie", &cookie)]).await;
    assert_eq!(st, 200, "refreshed as the session's client: {body}");
}

fn jwt_claims(t: &str) -> Value {
    use base64::Engine as _;
    let part = t.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}
