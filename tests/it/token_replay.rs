//! `token_headers_replay`: headers of the token endpoint's answer passed on to the client after
//! the grants `token_headers_grants` names, cached grants with their cached headers, never after
//! a session's refresh, never with a control character. The dev IdP echoes request headers
//! `x-dev-echo-<name>` as `<name>`, and the plugin sends those with `token_headers_names`.

use super::oidc::{Env, basic, session_cookie};
use super::util::{client, tempdir};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::time::Duration;

/// The answer headers the IdP gives every grant, and which of them are replayed, as `idp-<name>`.
fn replaying(grants: Value) -> Value {
    json!({
        "token_headers_names": ["x-dev-echo-x-trace-id", "x-dev-echo-x-rate", "x-dev-echo-x-rate", "x-dev-echo-x-evil"],
        "token_headers_values": ["t-1", "10", "20", "a\tb"],
        "token_headers_replay": ["X-Trace-Id", "x-rate", "x-evil", "x-absent"],
        "token_headers_prefix": "idp-",
        "token_headers_grants": grants,
    })
}

fn with(mut a: Value, b: Value) -> Value {
    if let (Value::Object(a), Value::Object(b)) = (&mut a, b) {
        a.extend(b);
    }
    a
}

fn values(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name).iter().map(|v| v.to_str().unwrap().to_string()).collect()
}

/// The replayed headers a response carries, by name, and nothing of the hostile one.
fn replayed(h: &HeaderMap) -> Vec<(String, Vec<String>)> {
    assert!(h.get("idp-x-evil").is_none(), "a value with a control character is not sent: {h:?}");
    assert!(h.get("x-trace-id").is_none() && h.get("idp-x-absent").is_none(), "{h:?}");
    ["idp-x-trace-id", "idp-x-rate"]
        .into_iter()
        .map(|n| (n.to_string(), values(h, n)))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

fn all() -> Vec<(String, Vec<String>)> {
    vec![("idp-x-trace-id".into(), vec!["t-1".into()]), ("idp-x-rate".into(), vec!["10".into(), "20".into()])]
}

async fn token_calls(env: &Env) -> i64 {
    env.calls().await["token"].as_i64().unwrap()
}

#[tokio::test]
async fn password_grants_replay_the_token_endpoint_headers_cached_and_not() {
    let env = Env::new(with(json!({"auth_methods": ["password"]}), replaying(json!(["password"])))).await;
    let john = basic("john", "doe");
    // The first answer from the IdP, then the cached grant: by the general path and by the front.
    for round in 0..3 {
        let (st, body, h) = env.call(&[("authorization", &john)]).await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(replayed(&h), all(), "round {round}");
        assert!(body["headers"].get("Idp-X-Rate").is_none(), "replayed to the client only: {body}");
    }
    assert_eq!(token_calls(&env).await, 1, "cached");
    // A refused request gets none (replay comes after authorization, as in Kong).
    env.patch(json!({"scopes_required": ["admin"]})).await;
    let (st, _, h) = env.call(&[("authorization", &john)]).await;
    assert_eq!(st, 403);
    assert!(replayed(&h).is_empty(), "{h:?}");
    // Without the token cache: each grant's own answer.
    env.patch(json!({"scopes_required": null, "cache_tokens": false})).await;
    for _ in 0..2 {
        let (st, _, h) = env.call(&[("authorization", &john)]).await;
        assert_eq!(st, 200);
        assert_eq!(replayed(&h), all());
    }
    assert_eq!(token_calls(&env).await, 4);
    // Only after the grants named, and not at all when none are.
    for grants in [json!(["client_credentials"]), Value::Null] {
        env.patch(json!({"token_headers_grants": grants})).await;
        let (st, _, h) = env.call(&[("authorization", &john)]).await;
        assert_eq!(st, 200);
        assert!(replayed(&h).is_empty(), "{grants}: {h:?}");
    }
    // The IdP does send the hostile value: it is the gateway that leaves it out.
    let resp = client()
        .post(format!("{}/token", env.issuer))
        .basic_auth("gatehouse", Some("gatehouse-secret"))
        .header("x-dev-echo-x-evil", "a\tb")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-evil"].as_bytes(), b"a\tb");
}

#[tokio::test]
async fn client_credentials_grants_replay_the_token_endpoint_headers_cached_and_not() {
    let config = with(json!({"auth_methods": ["client_credentials"]}), replaying(json!(["client_credentials"])));
    let env = Env::new(config).await;
    let client = basic("gatehouse", "gatehouse-secret");
    for _ in 0..2 {
        let (st, body, h) = env.call(&[("authorization", &client)]).await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(replayed(&h), all());
    }
    assert_eq!(token_calls(&env).await, 1, "cached");
    env.patch(json!({"cache_tokens": false})).await;
    let (st, _, h) = env.call(&[("authorization", &client)]).await;
    assert_eq!(st, 200);
    assert_eq!(replayed(&h), all());
    assert_eq!(token_calls(&env).await, 2);
    // The password grant is not named: a Basic pair that is a user's gets none.
    env.patch(json!({"auth_methods": ["password", "client_credentials"]})).await;
    let (st, _, h) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    assert_eq!(st, 200);
    assert!(replayed(&h).is_empty(), "{h:?}");
}

#[tokio::test]
async fn the_refresh_token_method_replays_but_a_session_refresh_never_does() {
    let files = tempdir();
    let users = files.path().join("users.yaml");
    std::fs::write(&users, "access_token_ttl: 2\n").unwrap();
    let config = with(
        json!({"auth_methods": ["password", "session", "refresh_token"], "refresh_token_param_name": "refresh_token"}),
        replaying(json!(["password", "refresh_token"])),
    );
    let env = Env::with_idp_args(config, &["--users", users.to_str().unwrap()]).await;
    let (st, _, h) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    assert_eq!(st, 200);
    assert_eq!(replayed(&h), all());
    let cookie = session_cookie(&h);
    // The refresh_token auth method: a grant of this request, replayed.
    let t = env.idp_token(&[("grant_type", "password"), ("username", "jane"), ("password", "roe")]).await;
    let (st, body, h) = env.call(&[("refresh_token", t["refresh_token"].as_str().unwrap())]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(replayed(&h), all());
    // The session's access token expires: its refresh replays nothing.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let before = env.calls().await["token_grants"]["refresh_token"].as_i64().unwrap();
    let (st, body, h) = env.call(&[("cookie", &cookie)]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(env.calls().await["token_grants"]["refresh_token"].as_i64().unwrap(), before + 1, "refreshed");
    assert!(!session_cookie(&h).is_empty());
    assert!(replayed(&h).is_empty(), "{h:?}");
}
