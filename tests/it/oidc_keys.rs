//! The `openid-connect` plugin's Admin endpoints (`/openid-connect/issuers`, `/openid-connect/jwks`)
//! and the node's own key pair: stored, kept across restarts, rotated, signing `private_key_jwt`
//! assertions when a client has no `client_jwk`. Through the real binary and the development IdP.

use super::oidc::{Env, basic};
use super::util::{Gateway, client, get, json, tempdir};
use serde_json::{Value, json};

async fn jwks(admin: &str) -> Value {
    let resp = client().get(format!("{admin}/openid-connect/jwks")).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/jwk-set+json");
    let (st, v) = json(resp).await;
    assert_eq!(st, 200, "{v}");
    v
}

async fn delete(url: &str) -> u16 {
    client().delete(url).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn the_key_set_is_public_only_survives_restarts_and_rotates() {
    let dir = tempdir();
    let first = {
        let gw = Gateway::start(dir.path());
        jwks(&gw.admin).await
    };
    let keys = first["keys"].as_array().unwrap();
    let algs: Vec<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    assert_eq!(algs, ["RS256", "ES256", "ES384", "ES512", "EdDSA"]);
    for k in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k", "pkcs8"] {
            assert!(k.get(private).is_none(), "{private} in {k}");
        }
        assert!(k["kid"].as_str().is_some_and(|kid| kid.len() == 43), "{k}");
        assert_eq!(k["use"], "sig");
    }
    let gw = Gateway::start(dir.path());
    assert_eq!(jwks(&gw.admin).await, first, "the same keys after a restart");
    assert_eq!(delete(&format!("{}/openid-connect/jwks", gw.admin)).await, 204);
    let rotated = jwks(&gw.admin).await;
    assert_ne!(rotated, first);
    for (a, b) in rotated["keys"].as_array().unwrap().iter().zip(keys) {
        assert_ne!(a["kid"], b["kid"], "every key is new");
    }
    drop(gw);
    let gw = Gateway::start(dir.path());
    assert_eq!(jwks(&gw.admin).await, rotated, "the rotated keys were stored");
}

#[tokio::test]
async fn issuer_records_show_the_discovery_cache_and_never_the_secret() {
    let env = Env::new(json!({"auth_methods": ["bearer"]})).await;
    let admin = &env.gw.admin;
    let (st, list) = get(&format!("{admin}/openid-connect/issuers")).await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["next"], Value::Null);
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{list}");
    let record = &data[0];
    assert_eq!(record["issuer"], env.issuer.as_str());
    assert!(record["created_at"].as_i64().unwrap() > 0);
    let id = record["id"].as_str().unwrap().to_string();
    // Nothing fetched yet; after a request, the document and keys show.
    assert_eq!(record["configuration"], json!({}));
    let token = env.mint(json!({})).await;
    assert_eq!(env.call(&[("authorization", &format!("Bearer {token}"))]).await.0, 200);
    let by_id = get(&format!("{admin}/openid-connect/issuers/{id}")).await;
    assert_eq!(by_id.0, 200, "{}", by_id.1);
    assert_eq!(by_id.1["configuration"]["issuer"], env.issuer.as_str());
    assert!(!by_id.1["keys"].as_array().unwrap().is_empty(), "{}", by_id.1);
    let encoded: String = form_urlencoded_component(&env.issuer);
    let by_issuer = get(&format!("{admin}/openid-connect/issuers/{encoded}")).await;
    assert_eq!(by_issuer, by_id);
    let stored = issuer_secret(&env.dir.path().join("data")).await;
    for body in [&list["data"][0], &by_id.1] {
        assert!(body.get("secret").is_none(), "no secret shown: {body}");
        assert!(!body.to_string().contains(&stored), "no secret shown: {body}");
    }

    // Deleting the record clears the discovery cache: the next request fetches it again.
    let discoveries = env.calls().await["discovery"].as_i64().unwrap();
    assert_eq!(delete(&format!("{admin}/openid-connect/issuers/{encoded}")).await, 204);
    let (_, list) = get(&format!("{admin}/openid-connect/issuers")).await;
    assert_ne!(list["data"][0]["id"], id.as_str(), "a new record: {list}");
    assert_eq!(list["data"][0]["configuration"], json!({}), "{list}");
    let token = env.mint(json!({"claims": {"sub": "again"}})).await;
    assert_eq!(env.call(&[("authorization", &format!("Bearer {token}"))]).await.0, 200);
    assert_eq!(env.calls().await["discovery"].as_i64().unwrap(), discoveries + 1);
    // All at once.
    assert_eq!(delete(&format!("{admin}/openid-connect/issuers")).await, 204);
    let (_, after) = get(&format!("{admin}/openid-connect/issuers")).await;
    assert_eq!(after["data"].as_array().unwrap().len(), 1, "the plugin made its record again: {after}");
    assert_ne!(after["data"][0]["id"], list["data"][0]["id"]);
}

/// The one issuer secret in the node's database.
async fn issuer_secret(data: &std::path::Path) -> String {
    use sqlx::ConnectOptions as _;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(data.join("gatehouse.db"))
        .read_only(true)
        .connect()
        .await
        .unwrap();
    sqlx::query_scalar("SELECT secret FROM oic_issuers").fetch_one(&mut conn).await.unwrap()
}

fn form_urlencoded_component(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn hostile_requests_to_the_plugin_endpoints() {
    let dir = tempdir();
    let gw = Gateway::start(dir.path());
    let admin = &gw.admin;
    let not_found = json!({"message": "Not found"});
    for key in ["nope", "00000000-0000-0000-0000-000000000000", "%00", "...", "%2F%2F", "%FF%FE", "a%20b"] {
        let (st, body) = get(&format!("{admin}/openid-connect/issuers/{key}")).await;
        assert_eq!((st, &body), (404, &not_found), "{key}");
        assert_eq!(delete(&format!("{admin}/openid-connect/issuers/{key}")).await, 204, "{key}");
    }
    let long = "a".repeat(60_000);
    let resp = client().get(format!("{admin}/openid-connect/issuers/{long}")).send().await.unwrap();
    assert!([404, 414, 431].contains(&resp.status().as_u16()), "{}", resp.status());
    for path in ["/openid-connect/issuers", "/openid-connect/issuers/x", "/openid-connect/jwks"] {
        for method in ["POST", "PUT", "PATCH"] {
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let resp = client().request(m, format!("{admin}{path}")).json(&json!({"keys": []})).send().await.unwrap();
            assert_eq!(resp.status(), 405, "{method} {path}");
        }
    }
    for (query, code) in [("size=0", 400), ("size=1001", 400), ("size=abc", 400), ("offset=!!", 400), ("size=1", 200)] {
        let (st, body) = get(&format!("{admin}/openid-connect/issuers?{query}")).await;
        assert_eq!(st, code, "{query}: {body}");
    }
    let (st, body) = get(&format!("{admin}/openid-connect/issuers/x/y")).await;
    assert_eq!(st, 404, "{body}");
    // Still serving.
    assert_eq!(get(&format!("{admin}/status")).await.0, 200);
}

#[tokio::test]
async fn private_key_jwt_without_client_jwk_signs_with_the_node_key() {
    let env = Env::new(json!({"auth_methods": ["password"]})).await;
    let published = jwks(&env.gw.admin).await;
    env.dev("clients", json!({"client_id": "keyed", "jwks": published})).await;
    for (i, alg) in [None, Some("ES256"), Some("EdDSA"), Some("PS256")].into_iter().enumerate() {
        // No grant cache: every call goes to the IdP's token endpoint.
        env.patch(json!({"client_id": ["keyed"], "client_secret": null, "client_auth": ["private_key_jwt"],
            "client_alg": alg.map(|a| vec![a]), "cache_tokens": false}))
            .await;
        let (user, pass) = if i % 2 == 0 { ("john", "doe") } else { ("jane", "roe") };
        let (st, body, _) = env.call(&[("authorization", &basic(user, pass))]).await;
        assert_eq!(st, 200, "{alg:?}: {body}");
    }
    // After a rotation the IdP knows only the old keys: the IdP refuses the client (401) until
    // it learns the new ones.
    assert_eq!(delete(&format!("{}/openid-connect/jwks", env.gw.admin)).await, 204);
    let (st, body, _) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    assert_eq!(st, 401, "{body}");
    env.dev("clients", json!({"client_id": "keyed", "jwks": jwks(&env.gw.admin).await})).await;
    let (st, body, _) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    assert_eq!(st, 200, "{body}");
}
