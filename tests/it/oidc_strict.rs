//! The checks the OpenID specs require beyond Kong's (`crates/gatehouse-oidc/src/claims.rs`),
//! through the real proxy against the development IdP, whose `/_dev/override` knob makes it
//! answer what the specs forbid. Each refusal is a 401 with its fixed `error_description`.

use super::oidc::Env;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::time::Duration;

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The `error_description` of a response's challenge.
fn description(h: &HeaderMap) -> String {
    let c = h.get("www-authenticate").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    c.split("error_description=\"").nth(1).map(|d| d.trim_end_matches('"').to_string()).unwrap_or_default()
}

/// Asserts a 401 with `desc` as its `error_description` and Kong's body.
#[track_caller]
fn assert_refused(r: (u16, Value, HeaderMap), desc: &str, what: &str) {
    let (st, body, h) = r;
    assert_eq!(st, 401, "{what} must be refused: {body}");
    assert_eq!(body, json!({"message": "Unauthorized"}), "{what}");
    assert_eq!(description(&h), desc, "{what}");
}

/// `POST /_dev/override` at the IdP.
async fn set(env: &Env, overrides: Value) {
    env.dev("override", overrides).await;
}

#[tokio::test]
async fn id_tokens_from_a_grant_need_iss_sub_aud_exp_and_iat() {
    let env = Env::new(json!({"auth_methods": ["password"]})).await;
    let john = basic("john", "doe");
    for claim in ["iss", "sub", "aud", "exp", "iat"] {
        set(&env, json!({"id_token": {claim: null}})).await;
        let r = env.call(&[("authorization", &john)]).await;
        assert_refused(r, &format!("missing {claim} claim"), &format!("an ID token without {claim}"));
    }
    // A refusal is not cached: the same credentials work once the IdP issues proper tokens.
    set(&env, json!({"id_token": {}})).await;
    let (st, body, _) = env.call(&[("authorization", &john)]).await;
    assert_eq!(st, 200, "{body}");
    // With verify_claims off, as in Kong, nothing is required.
    env.patch(json!({"verify_claims": false})).await;
    set(&env, json!({"id_token": {"iat": null, "sub": null}})).await;
    let (st, body, _) = env.call(&[("authorization", &john)]).await;
    assert_eq!(st, 200, "{body}");
}

#[tokio::test]
async fn several_audiences_need_an_azp_that_is_our_client() {
    let env = Env::new(json!({"auth_methods": ["password"]})).await;
    let john = basic("john", "doe");
    let auds = json!(["gatehouse", "another-client"]);
    set(&env, json!({"id_token": {"aud": auds, "azp": null}})).await;
    assert_refused(env.call(&[("authorization", &john)]).await, "missing azp claim", "several audiences, no azp");
    set(&env, json!({"id_token": {"aud": auds, "azp": "another-client"}})).await;
    assert_refused(env.call(&[("authorization", &john)]).await, "invalid azp claim", "azp of another client");
    set(&env, json!({"id_token": {"azp": "another-client"}})).await;
    assert_refused(env.call(&[("authorization", &john)]).await, "invalid azp claim", "one audience, wrong azp");
    // Several audiences with our client as azp (the dev IdP's own azp) are fine.
    set(&env, json!({"id_token": {"aud": auds}})).await;
    let (st, body, _) = env.call(&[("authorization", &john)]).await;
    assert_eq!(st, 200, "{body}");
}

#[tokio::test]
async fn at_hash_must_be_the_access_tokens() {
    let env = Env::new(json!({"auth_methods": ["password", "bearer"], "id_token_param_name": "id_token"})).await;
    set(&env, json!({"id_token": {"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}})).await;
    assert_refused(
        env.call(&[("authorization", &basic("john", "doe"))]).await,
        "invalid at_hash claim",
        "a grant's ID token bound to another access token",
    );
    set(&env, json!({"id_token": {}})).await;
    // An ID token sent along with a bearer token must be bound to that token, when it says so.
    let one = env.idp_token(&[("grant_type", "password"), ("username", "john"), ("password", "doe")]).await;
    let two = env.idp_token(&[("grant_type", "password"), ("username", "john"), ("password", "doe")]).await;
    let id_one = one["id_token"].as_str().unwrap();
    let (st, body, _) =
        env.call(&[("authorization", &bearer(one["access_token"].as_str().unwrap())), ("id_token", id_one)]).await;
    assert_eq!(st, 200, "{body}");
    let r = env.call(&[("authorization", &bearer(two["access_token"].as_str().unwrap())), ("id_token", id_one)]).await;
    assert_refused(r, "invalid at_hash claim", "an ID token sent along with another access token");
}

#[tokio::test]
async fn an_id_token_sent_along_needs_the_required_claims() {
    let env = Env::new(json!({"auth_methods": ["bearer"], "id_token_param_name": "id_token"})).await;
    let at = env.mint(json!({})).await;
    // An ID token's shape, minted: addressed to our client.
    let id = |claims: Value| env.mint(json!({"claims": claims}));
    let good = id(json!({"aud": "gatehouse"})).await;
    let (st, body, _) = env.call(&[("authorization", &bearer(&at)), ("id_token", &good)]).await;
    assert_eq!(st, 200, "{body}");
    for claim in ["sub", "iat"] {
        let bad = id(json!({"aud": "gatehouse", claim: null})).await;
        let r = env.call(&[("authorization", &bearer(&at)), ("id_token", &bad)]).await;
        assert_refused(r, &format!("missing {claim} claim"), &format!("an ID token without {claim} sent along"));
    }
}

#[tokio::test]
async fn jwt_access_tokens_need_iss_exp_sub_and_iat() {
    let env = Env::new(json!({"auth_methods": ["bearer", "client_credentials"]})).await;
    for claim in ["iss", "exp", "sub", "iat"] {
        let token = env.mint(json!({"claims": {claim: null}})).await;
        let r = env.call(&[("authorization", &bearer(&token))]).await;
        assert_refused(r, &format!("missing {claim} claim"), &format!("an access token without {claim}"));
    }
    // The access token of a grant is a JWT access token too.
    set(&env, json!({"access_token": {"sub": null}})).await;
    let r = env.call(&[("authorization", &basic("gatehouse", "gatehouse-secret"))]).await;
    assert_refused(r, "missing sub claim", "a client_credentials access token without sub");
    set(&env, json!({"access_token": {}})).await;
    let (st, body, _) = env.call(&[("authorization", &basic("gatehouse", "gatehouse-secret"))]).await;
    assert_eq!(st, 200, "{body}");
    // verify_claims off: Kong's leniency.
    env.patch(json!({"verify_claims": false})).await;
    let token = env.mint(json!({"claims": {"iat": null, "sub": null}})).await;
    let (st, body, _) = env.call(&[("authorization", &bearer(&token))]).await;
    assert_eq!(st, 200, "{body}");
}

#[tokio::test]
async fn a_discovery_document_for_another_issuer_is_not_used() {
    let env = Env::new(json!({"auth_methods": ["bearer"]})).await;
    set(&env, json!({"discovery": {"issuer": "https://elsewhere.example/realms/x"}})).await;
    let token = env.mint(json!({})).await;
    let (st, body, h) = env.call(&[("authorization", &bearer(&token))]).await;
    assert_eq!(st, 502, "treated as a failed discovery: {body}");
    assert_eq!(body, json!({"message": "The identity provider is unavailable"}));
    assert!(h.get("www-authenticate").is_none());
    assert_eq!(env.calls().await["jwks"], 0, "nothing the document names is fetched");
    let logs = env.gw.proc.logs();
    assert!(
        logs.contains("https://elsewhere.example/realms/x") && logs.contains("is neither the configured issuer"),
        "{logs}"
    );
    // Listed in issuers_allowed (Entra ID's `common` endpoint names a templated issuer): used, and
    // tokens are then checked against that list.
    env.patch(json!({"issuers_allowed": ["https://elsewhere.example/realms/x", env.issuer]})).await;
    let (st, body, _) = env.call(&[("authorization", &bearer(&token))]).await;
    assert_eq!(st, 200, "{body}");
}

#[tokio::test]
async fn the_issuer_is_compared_without_a_trailing_slash_or_the_well_known_path() {
    for suffix in ["/", "/.well-known/openid-configuration"] {
        let env = Env::new(json!({"auth_methods": ["bearer"]})).await;
        env.patch(json!({"issuer": format!("{}{suffix}", env.issuer)})).await;
        let token = env.mint(json!({})).await;
        let (st, body, _) = env.call(&[("authorization", &bearer(&token))]).await;
        assert_eq!(st, 200, "issuer configured with {suffix}: {body}");
    }
}

#[tokio::test]
async fn a_userinfo_answer_about_another_subject_is_refused() {
    let env = Env::new(json!({
        "auth_methods": ["bearer"],
        "upstream_user_info_header": "x-userinfo",
    }))
    .await;
    let token = env.mint(json!({})).await;
    let (st, body, _) = env.call(&[("authorization", &bearer(&token))]).await;
    assert_eq!(st, 200, "{body}");
    assert!(body["headers"].get("X-Userinfo").is_some(), "{body}");
    set(&env, json!({"userinfo": {"sub": "someone-else", "email": "mallory@example.com"}})).await;
    // With an ID token sent along (its `sub` is the dev user's), a userinfo answer about someone
    // else is refused; a token whose userinfo answer is not cached yet.
    env.patch(json!({"id_token_param_name": "id_token"})).await;
    let token = env.mint(json!({})).await;
    let id = env.mint(json!({"claims": {"aud": "gatehouse"}})).await;
    let r = env.call(&[("authorization", &bearer(&token)), ("id_token", &id)]).await;
    assert!(r.1.get("headers").is_none(), "nothing reached the upstream: {}", r.1);
    assert_refused(r, "userinfo subject does not match the token", "a userinfo answer about someone else");
    let logs = env.gw.proc.logs();
    assert!(logs.contains("the userinfo answer is about another subject than the token"), "{logs}");
    assert!(!logs.contains("mallory"), "the answer's claims are not logged");
    // A bearer token alone: Core §5.3.4 compares with the ID token only, and an access token's
    // `sub` may be another identifier (Okta), so the answer is used (review1.rs has Okta's shape).
    let token = env.mint(json!({})).await;
    let (st, body, _) = env.call(&[("authorization", &bearer(&token))]).await;
    assert_eq!(st, 200, "{body}");

    // Authenticated at userinfo with an opaque token, the ID token sent along gives the subject.
    env.patch(json!({"auth_methods": ["userinfo"], "id_token_param_name": "id_token"})).await;
    let opaque = env.mint(json!({"format": "opaque"})).await;
    let id = env.mint(json!({"claims": {"aud": "gatehouse"}})).await;
    let r = env.call(&[("authorization", &bearer(&opaque)), ("id_token", &id)]).await;
    assert_refused(r, "userinfo subject does not match the token", "userinfo method, ID token sent along");
    set(&env, json!({"userinfo": {}})).await;
    let opaque = env.mint(json!({"format": "opaque"})).await;
    let (st, body, _) = env.call(&[("authorization", &bearer(&opaque)), ("id_token", &id)]).await;
    assert_eq!(st, 200, "{body}");
}

#[tokio::test]
async fn an_introspection_answer_outside_its_window_is_inactive() {
    let env = Env::new(json!({"auth_methods": ["introspection"]})).await;
    let opaque = env.mint(json!({"format": "opaque"})).await;
    set(&env, json!({"introspection": {"exp": now() - 60}})).await;
    let r = env.call(&[("authorization", &bearer(&opaque))]).await;
    assert_refused(r, "The access token expired", "active: true with exp in the past");
    set(&env, json!({"introspection": {"exp": now() + 600, "nbf": now() + 300}})).await;
    let r = env.call(&[("authorization", &bearer(&opaque))]).await;
    assert_refused(r, "token not yet valid", "active: true with nbf in the future");
    set(&env, json!({"introspection": {}})).await;
    let (st, body, _) = env.call(&[("authorization", &bearer(&opaque))]).await;
    assert_eq!(st, 200, "{body}");
}

#[tokio::test]
async fn a_cached_introspection_answer_never_outlives_its_exp() {
    // `cache_ttl_min` asks for an hour; the answer's own `exp` still ends it.
    let env = Env::new(json!({"auth_methods": ["introspection"], "cache_ttl_min": 3600})).await;
    let opaque = env.mint(json!({"format": "opaque"})).await;
    // Room for the first fetch (discovery, keys, introspection) on a busy machine.
    let exp = now() + 10;
    set(&env, json!({"introspection": {"exp": exp}})).await;
    for _ in 0..2 {
        let (st, body, _) = env.call(&[("authorization", &bearer(&opaque))]).await;
        assert_eq!(st, 200, "{body}");
    }
    assert_eq!(env.calls().await["introspect"], 1, "cached while it lasts");
    while now() <= exp {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let r = env.call(&[("authorization", &bearer(&opaque))]).await;
    assert_refused(r, "The access token expired", "the same answer, past its exp");
    assert_eq!(env.calls().await["introspect"], 2, "asked again, not served from the cache");
}
