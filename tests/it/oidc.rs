//! The openid-connect plugin through the real proxy, against the development IdP (`gatehouse
//! idp`) and a real `gatehouse echo` upstream: every auth method, the failures, key rotation,
//! the IdP going down, and the caches (counted at the IdP).

use super::util::{Gateway, Proc, client, echo, echo_service, json, post, tempdir};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::time::Duration;

/// An identity provider process, whose log is shown when a test fails.
pub trait Provider {
    /// What the log is headed with.
    const NAME: &'static str;
    /// Everything it logged so far.
    fn logs(&self) -> String;
}

impl Provider for Proc {
    const NAME: &'static str = "idp";
    fn logs(&self) -> String {
        Proc::logs(self)
    }
}

/// An identity provider (the development IdP unless said otherwise), an echo upstream and a
/// gateway with service `echo`, route `/api` and an `openid-connect` plugin on the service.
pub struct Env<P: Provider = Proc> {
    pub dir: tempfile::TempDir,
    pub idp: Option<P>,
    pub issuer: String,
    pub _up: Proc,
    pub gw: Gateway,
    pub plugin: String,
}

/// Starts `gatehouse idp` on a free port.
pub fn idp(dir: &std::path::Path, args: &[&str]) -> Proc {
    let mut all = vec!["idp", "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    Proc::spawn(&all, &[], &dir.join("idp.log"))
}

/// The plugin config every test starts from: the dev IdP's confidential client.
pub fn base_config(issuer: &str) -> Value {
    json!({"issuer": issuer, "client_id": ["gatehouse"], "client_secret": ["gatehouse-secret"]})
}

fn merge(a: &mut Value, b: Value) {
    if let (Value::Object(a), Value::Object(b)) = (a, b) {
        for (k, v) in b {
            a.insert(k, v);
        }
    }
}

/// An echo upstream and a gateway in front of it: service `echo`, route `/api`, and an
/// `openid-connect` plugin on the service with `issuer`, the `gatehouse` client and `config`.
/// Returns the upstream, the gateway and the plugin id.
pub async fn front(dir: &std::path::Path, issuer: &str, config: Value) -> (Proc, Gateway, String) {
    let up = echo(dir);
    let gw = Gateway::start(dir);
    echo_service(&gw, &up.urls[0], &[json!({"paths": ["/api"]})]).await;
    let mut cfg = base_config(issuer);
    merge(&mut cfg, config);
    let (st, body) =
        post(&format!("{}/services/echo/plugins", gw.admin), json!({"name": "openid-connect", "config": cfg})).await;
    assert_eq!(st, 201, "{body}");
    let plugin = body["id"].as_str().unwrap().to_string();
    (up, gw, plugin)
}

impl<P: Provider> Drop for Env<P> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- gateway log ---\n{}", self.gw.proc.logs());
            if let Some(idp) = &self.idp {
                eprintln!("--- {} log ---\n{}", P::NAME, idp.logs());
            }
        }
    }
}

impl<P: Provider> Env<P> {
    /// The gateway in front of a provider already running at `issuer`.
    pub async fn with_provider(dir: tempfile::TempDir, provider: P, issuer: String, config: Value) -> Env<P> {
        let (up, gw, plugin) = front(dir.path(), &issuer, config).await;
        Env { dir, idp: Some(provider), issuer, _up: up, gw, plugin }
    }

    /// A grant at the provider's token endpoint as client `id` (client_secret_basic), the way a
    /// client would get its tokens.
    pub async fn token(&self, id: &str, secret: &str, form: &[(&str, &str)]) -> Value {
        let resp = client()
            .post(format!("{}/token", self.issuer))
            .basic_auth(id, Some(secret))
            .form(form)
            .send()
            .await
            .unwrap();
        let (st, v) = json(resp).await;
        assert_eq!(st, 200, "{v}");
        v
    }

    /// `PATCH` the plugin's config.
    pub async fn patch(&self, config: Value) {
        let resp = client()
            .patch(format!("{}/plugins/{}", self.gw.admin, self.plugin))
            .json(&json!({"config": config}))
            .send()
            .await
            .unwrap();
        let (st, v) = json(resp).await;
        assert_eq!(st, 200, "{v}");
    }

    /// `GET /api/anything` with headers; status, echo body, response headers.
    pub async fn call(&self, headers: &[(&str, &str)]) -> (u16, Value, HeaderMap) {
        self.call_path("/api/anything", headers).await
    }

    pub async fn call_path(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Value, HeaderMap) {
        call_url(&format!("{}{path}", self.gw.proxy), headers).await
    }
}

/// `GET url` with headers; status, echo body, response headers.
pub async fn call_url(url: &str, headers: &[(&str, &str)]) -> (u16, Value, HeaderMap) {
    let mut req = client().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let h = resp.headers().clone();
    let (st, v) = json(resp).await;
    (st, v, h)
}

impl Env {
    pub async fn new(config: Value) -> Env {
        Self::with_idp_args(config, &[]).await
    }

    pub async fn with_idp_args(config: Value, idp_args: &[&str]) -> Env {
        let dir = tempdir();
        let idp = idp(dir.path(), idp_args);
        let issuer = idp.urls[0].clone();
        Env::with_provider(dir, idp, issuer, config).await
    }

    /// `POST {issuer}/_dev/{path}`.
    pub async fn dev(&self, path: &str, body: Value) -> Value {
        let (st, v) =
            json(client().post(format!("{}/_dev/{path}", self.issuer)).json(&body).send().await.unwrap()).await;
        assert!(st == 200 || st == 201, "{path}: {st} {v}");
        v
    }

    /// A token from `/_dev/mint`.
    pub async fn mint(&self, body: Value) -> String {
        self.dev("mint", body).await["token"].as_str().unwrap().to_string()
    }

    /// The IdP's call counters.
    pub async fn calls(&self) -> Value {
        json(client().get(format!("{}/_dev/calls", self.issuer)).send().await.unwrap()).await.1
    }

    /// A grant at the IdP as the `gatehouse` client.
    pub async fn idp_token(&self, form: &[(&str, &str)]) -> Value {
        self.token("gatehouse", "gatehouse-secret", form).await
    }
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

pub fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
}

fn challenge(h: &HeaderMap) -> String {
    h.get("www-authenticate").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

/// The `session=...` cookies of a response, as a `Cookie` header value.
pub fn session_cookie(h: &HeaderMap) -> String {
    h.get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .filter(|c| c.starts_with("session"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test]
async fn bearer_jwt_is_verified_and_forwarded() {
    let env = Env::new(json!({"auth_methods": ["bearer"]})).await;
    let token = env.mint(json!({})).await;
    let (st, body, _) = env.call(&[("authorization", &bearer(&token)), ("x-consumer-id", "spoofed")]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["headers"]["Authorization"], bearer(&token));
    assert!(body["headers"].get("X-Consumer-Id").is_none(), "client identity headers never pass: {body}");
    // ES256 tokens from the same IdP verify too.
    let ec = env.mint(json!({"key": "ec"})).await;
    let (st, _, _) = env.call(&[("authorization", &bearer(&ec))]).await;
    assert_eq!(st, 200);
    // No token at all.
    let (st, body, h) = env.call(&[]).await;
    assert_eq!(st, 401);
    assert_eq!(body, json!({"message": "Unauthorized"}));
    let host = env.issuer.trim_start_matches("http://").split(':').next().unwrap().to_string();
    assert_eq!(challenge(&h), format!("Bearer realm=\"{host}\", error=\"invalid_token\""));
}

/// Each attack token is refused on its own, with the IdP otherwise healthy.
async fn refused(env: &Env, mint: Value) -> (String, Value) {
    let token = env.mint(mint.clone()).await;
    let (st, body, h) = env.call(&[("authorization", &bearer(&token))]).await;
    assert_eq!(st, 401, "{mint} must be refused: {body}");
    assert_eq!(body, json!({"message": "Unauthorized"}));
    (challenge(&h), body)
}

#[tokio::test]
async fn expired_token_is_refused() {
    let env = Env::new(json!({"auth_methods": ["bearer"]})).await;
    let (c, _) = refused(&env, json!({"ttl": -60})).await;
    assert!(c.ends_with("error_description=\"The access token expired\""), "{c}");
}

/// A repeated token is answered by each proxy thread's fast path (`fast.rs`) after the first
/// time: the same headers as the first answer, spoofed ones still stripped, and no longer than
/// the token lives.
#[tokio::test]
async fn a_repeated_token_gets_the_same_answer_until_it_expires() {
    let env = Env::new(json!({
        "auth_methods": ["bearer"],
        "upstream_headers_claims": ["preferred_username", "email"],
        "upstream_headers_names": ["x_user", "x_email"],
    }))
    .await;
    let minted = std::time::Instant::now();
    let token = env.mint(json!({"ttl": 5})).await;
    let auth = bearer(&token);
    let (st, first, _) = env.call(&[("authorization", &auth)]).await;
    assert_eq!(st, 200, "{first}");
    assert_eq!(first["headers"]["X-User"], "john");
    // Repeats while the token is surely valid (exp is whole seconds, so up to 1 s early); a
    // loaded machine may get through fewer of them.
    for _ in 0..20 {
        if minted.elapsed() > std::time::Duration::from_secs(3) {
            break;
        }
        let (st, again, _) = env.call(&[("authorization", &auth), ("x-user", "mallory"), ("x-consumer-id", "1")]).await;
        assert_eq!(st, 200, "{again}");
        assert_eq!(again["headers"], first["headers"], "the same upstream request as the first time");
    }
    tokio::time::sleep(std::time::Duration::from_secs(6).saturating_sub(minted.elapsed())).await;
    let (st, _, h) = env.call(&[("authorization", &auth)]).await;
    assert_eq!(st, 401, "a remembered token still expires");
    assert!(challenge(&h).ends_with("error_description=\"The access token expired\""), "{h:?}");
}

#[tokio::test]
async fn token_from_another_issuer_is_refused() {
    let env = Env::new(json!({"auth_methods": ["bearer"]})).await;
    let (c, _) = refused(&env, json!({"claims": {"iss": "https://evil.example"}})).await;
    assert!(c.contains("invalid issuer"), "{c}");
}

#[tokio::test]
async fn token_for_another_audience_is_refused() {
    // Kong's audience check is `audience_required` (a 403 insufficient_scope, as for scopes).
    let env = Env::new(json!({"auth_methods": ["bearer"], "audience_required": ["account"]})).await;
    let token = env.mint(json!({"claims": {"aud": "other-api"}})).await;
    let (st, _, h) = env.call(&[("authorization", &bearer(&token))]).await;
    assert_eq!(st, 403);
    assert!(challenge(&h).contains("error=\"insufficient_scope\""));
    let good = env.mint(json!({})).await;
    assert_eq!(env.call(&[("authorization", &bearer(&good))]).await.0, 200);
}

#[tokio::test]
async fn token_signed_by_a_foreign_key_is_refused() {
    let env = Env::new(json!({"auth_methods": ["bearer"]})).await;
    refused(&env, json!({"key": "foreign"})).await;
}

#[tokio::test]
async fn hs256_token_signed_with_the_client_secret_is_refused() {
    let env = Env::new(json!({"auth_methods": ["bearer"]})).await;
    let (c, _) = refused(&env, json!({"key": "hs"})).await;
    assert!(c.contains("algorithm not allowed"), "{c}");
}

#[tokio::test]
async fn alg_none_token_is_refused() {
    let env = Env::new(json!({"auth_methods": ["bearer"]})).await;
    refused(&env, json!({"key": "none"})).await;
}

#[tokio::test]
async fn token_with_an_unknown_kid_is_refused() {
    let env = Env::new(json!({"auth_methods": ["bearer"]})).await;
    refused(&env, json!({"header": {"kid": "no-such-key"}})).await;
}

#[tokio::test]
async fn rs_token_relabelled_as_hs_is_refused_even_with_hs_enabled() {
    // Key confusion: an HS256 token "signed" with the RSA public key material must not verify.
    let env = Env::new(json!({"auth_methods": ["bearer"], "enable_hs_signatures": true})).await;
    refused(&env, json!({"key": "hs", "hs_secret": "not-the-client-secret"})).await;
    // With enable_hs_signatures, a token signed with the client secret is accepted (Kong's HS mode).
    let ok = env.mint(json!({"key": "hs"})).await;
    assert_eq!(env.call(&[("authorization", &bearer(&ok))]).await.0, 200);
}

#[tokio::test]
async fn unknown_critical_header_and_future_nbf_are_refused() {
    let env = Env::new(json!({"auth_methods": ["bearer"]})).await;
    refused(&env, json!({"header": {"crit": ["exp-ext"], "exp-ext": 1}})).await;
    refused(&env, json!({"nbf_in": 600})).await;
}

#[tokio::test]
async fn keys_rotate_without_restart_and_unknown_kids_are_rate_limited() {
    let env = Env::new(json!({"auth_methods": ["bearer"], "rediscovery_lifetime": 2})).await;
    let before = env.mint(json!({})).await;
    assert_eq!(env.call(&[("authorization", &bearer(&before))]).await.0, 200);
    let jwks_before = env.calls().await["jwks"].as_i64().unwrap();
    // A burst of tokens with unknown kids costs at most one JWKS fetch per rediscovery_lifetime.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let burst = std::time::Instant::now();
    for _ in 0..10 {
        let bad = env.mint(json!({"header": {"kid": "nope"}})).await;
        assert_eq!(env.call(&[("authorization", &bearer(&bad))]).await.0, 401);
    }
    // On a loaded machine the burst may outlast the 2 s lifetime, which rightly allows one more
    // fetch per lifetime begun, and the limit counts whole seconds, so a lifetime can begin up to
    // a second early: one fetch more is allowed. Without the rate limit there would be ten.
    let allowed = 2 + burst.elapsed().as_secs() as i64 / 2;
    let jwks_after = env.calls().await["jwks"].as_i64().unwrap();
    assert!(jwks_after - jwks_before <= allowed, "{jwks_before} -> {jwks_after} (at most {allowed})");
    // Rotate: a token signed with the new key is accepted once the lifetime has passed.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    env.dev("rotate", json!({"drop_old": false})).await;
    let after = env.mint(json!({})).await;
    let (st, body, _) = env.call(&[("authorization", &bearer(&after))]).await;
    assert_eq!(st, 200, "{body}");
    // Tokens signed with the old key still work while the IdP publishes it.
    let old_again = env.mint(json!({"key": "ec"})).await;
    assert_eq!(env.call(&[("authorization", &bearer(&old_again))]).await.0, 200);
}

#[tokio::test]
async fn bearer_keeps_working_with_cached_keys_while_the_idp_is_down() {
    let mut env = Env::new(json!({"auth_methods": ["bearer"], "cache_ttl": 1, "rediscovery_lifetime": 0})).await;
    let first = env.mint(json!({})).await;
    let second = env.mint(json!({"claims": {"jti": "second"}})).await;
    assert_eq!(env.call(&[("authorization", &bearer(&first))]).await.0, 200);
    drop(env.idp.take());
    // The document is stale now (cache_ttl 1 s); the refresh fails and the cached keys serve.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (st, body, _) = env.call(&[("authorization", &bearer(&second))]).await;
    assert_eq!(st, 200, "{body}");
    assert!(env.gw.proc.logs().contains("serving the cached document"));
}

#[tokio::test]
async fn an_unreachable_idp_without_cache_is_a_clear_502() {
    let dir = tempdir();
    let env = Env::new(json!({"auth_methods": ["bearer", "password"]})).await;
    // Point the plugin at a port where nothing listens.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    env.patch(json!({"issuer": format!("http://{dead}/realms/x")})).await;
    let token = env.mint(json!({})).await;
    let (st, body, h) = env.call(&[("authorization", &bearer(&token))]).await;
    assert_eq!(st, 502, "{body}");
    assert_eq!(body, json!({"message": "The identity provider is unavailable"}));
    assert!(h.get("www-authenticate").is_none());
    let (st, _, _) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    assert_eq!(st, 502);
    assert!(env.gw.proc.logs().contains("could not be reached"), "a log line names the failure");
    drop(dir);
}

#[tokio::test]
async fn password_grant_with_basic_credentials() {
    let env = Env::new(json!({"auth_methods": ["password"]})).await;
    let (st, body, h) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    assert_eq!(st, 200, "{body}");
    let auth = body["headers"]["Authorization"].as_str().unwrap();
    assert!(auth.starts_with("Bearer ey"), "the access token goes upstream: {auth}");
    assert!(h.get("set-cookie").is_none(), "no session without the session method");
    let (st, _, _) = env.call(&[("authorization", &basic("john", "wrong"))]).await;
    assert_eq!(st, 401);
    // Arguments work too.
    let (st, _, _) = env.call_path("/api/x?username=jane&password=roe", &[]).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn concurrent_identical_password_requests_call_the_idp_once() {
    let env = Env::new(json!({"auth_methods": ["password"]})).await;
    env.dev("delay", json!({"endpoint": "token", "ms": 300})).await;
    let before = env.calls().await["token"].as_i64().unwrap();
    let auth = basic("john", "doe");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let url = format!("{}/api/x", env.gw.proxy);
        let auth = auth.clone();
        tasks.push(tokio::spawn(async move {
            client().get(url).header("authorization", auth).send().await.unwrap().status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let after = env.calls().await["token"].as_i64().unwrap();
    assert_eq!(after - before, 1, "one token request for 20 identical concurrent requests");
    // A wrong password never hits the right one's entry.
    assert_eq!(env.call(&[("authorization", &basic("john", "nope"))]).await.0, 401);
    assert_eq!(env.calls().await["token"].as_i64().unwrap() - before, 2);
}

#[tokio::test]
async fn client_credentials_grant() {
    let env = Env::new(json!({"auth_methods": ["client_credentials"]})).await;
    let (st, body, _) = env.call(&[("authorization", &basic("gatehouse", "gatehouse-secret"))]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(env.calls().await["token_grants"]["client_credentials"], 1);
    let (st, _, _) = env.call(&[("authorization", &basic("gatehouse", "bad"))]).await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn password_then_client_credentials_with_one_basic_header() {
    let env = Env::new(json!({"auth_methods": ["password", "client_credentials"]})).await;
    // Not a user: the password grant fails, client_credentials succeeds.
    let (st, body, _) = env.call(&[("authorization", &basic("gatehouse", "gatehouse-secret"))]).await;
    assert_eq!(st, 200, "{body}");
    let grants = &env.calls().await["token_grants"];
    assert_eq!((grants["password"].as_i64(), grants["client_credentials"].as_i64()), (Some(1), Some(1)));
}

#[tokio::test]
async fn refresh_token_grant() {
    let env = Env::new(json!({"auth_methods": ["refresh_token"], "refresh_token_param_name": "refresh_token"})).await;
    let t = env.idp_token(&[("grant_type", "password"), ("username", "john"), ("password", "doe")]).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let (st, body, _) = env.call(&[("refresh_token", rt)]).await;
    assert_eq!(st, 200, "{body}");
    assert!(!body["headers"].to_string().contains(rt), "hide_credentials removes it: {body}");
    // Refresh tokens rotate at this IdP: the used one is dead now.
    let (st, _, _) = env.call(&[("refresh_token", rt)]).await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn opaque_tokens_are_introspected_and_cached() {
    let env = Env::new(json!({"auth_methods": ["introspection"]})).await;
    let opaque = env.mint(json!({"format": "opaque"})).await;
    for _ in 0..3 {
        let (st, body, _) = env.call(&[("authorization", &bearer(&opaque))]).await;
        assert_eq!(st, 200, "{body}");
    }
    assert_eq!(env.calls().await["introspect"], 1, "cached after the first call");
    // Revoked: inactive at the IdP.
    let other = env.mint(json!({"format": "opaque"})).await;
    let resp = client()
        .post(format!("{}/revoke", env.issuer))
        .basic_auth("gatehouse", Some("gatehouse-secret"))
        .form(&[("token", other.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(env.call(&[("authorization", &bearer(&other))]).await.0, 401);
    // A JWT with a bad signature falls through to introspection too (Kong's order), and fails.
    let forged = env.mint(json!({"key": "foreign"})).await;
    assert_eq!(env.call(&[("authorization", &bearer(&forged))]).await.0, 401);
}

#[tokio::test]
async fn introspection_with_check_active_off_accepts_inactive_answers() {
    let env = Env::new(json!({"auth_methods": ["introspection"], "introspection_check_active": false})).await;
    let (st, _, _) = env.call(&[("authorization", "Bearer garbage")]).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn opaque_tokens_are_checked_at_userinfo() {
    let env = Env::new(json!({"auth_methods": ["userinfo"]})).await;
    let opaque = env.mint(json!({"format": "opaque"})).await;
    let (st, body, _) = env.call(&[("authorization", &bearer(&opaque))]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(env.call(&[("authorization", "Bearer not-a-token")]).await.0, 401);
    assert_eq!(env.calls().await["userinfo"], 2);
}

#[tokio::test]
async fn bearer_token_from_query_and_body_and_hide_credentials() {
    let env = Env::new(json!({"auth_methods": ["bearer"]})).await;
    let token = env.mint(json!({})).await;
    let (st, body, _) = env.call_path(&format!("/api/x?a=1&access_token={token}"), &[]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["args"], json!({"a": "1"}), "the query credential is removed");
    let resp = client()
        .post(format!("{}/api/x", env.gw.proxy))
        .form(&[("access_token", token.as_str()), ("keep", "yes")])
        .send()
        .await
        .unwrap();
    let (st, body) = json(resp).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["form"], json!({"keep": "yes"}));
    // hide_credentials off: the query credential stays.
    env.patch(json!({"hide_credentials": false})).await;
    let (_, body, _) = env.call_path(&format!("/api/x?access_token={token}"), &[]).await;
    assert_eq!(body["args"]["access_token"], token);
}

#[tokio::test]
async fn sessions_are_issued_after_a_grant_and_used_alone() {
    let env = Env::new(json!({"auth_methods": ["password", "session"]})).await;
    let (st, body, h) = env.call(&[("authorization", &basic("john", "doe")), ("cookie", "theme=dark")]).await;
    assert_eq!(st, 200, "{body}");
    let cookie = session_cookie(&h);
    assert!(cookie.starts_with("session="), "{h:?}");
    let set = h.get("set-cookie").unwrap().to_str().unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"), "{set}");
    let token_calls = env.calls().await["token"].as_i64().unwrap();
    // The cookie alone authenticates; it does not reach the upstream; other cookies do.
    let (st, body, _) = env.call(&[("cookie", &format!("theme=dark; {cookie}"))]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["headers"]["Cookie"], "theme=dark");
    assert!(body["headers"]["Authorization"].as_str().unwrap().starts_with("Bearer "));
    assert_eq!(env.calls().await["token"].as_i64().unwrap(), token_calls, "no IdP call with a session");
    // A tampered cookie is no session.
    let mut bad = cookie.clone();
    bad.insert(12, if bad.as_bytes()[12] == b'A' { 'B' } else { 'A' });
    assert_eq!(env.call(&[("cookie", &bad)]).await.0, 401);
    // disable_session: no cookie after a password grant.
    env.patch(json!({"disable_session": ["password"]})).await;
    let (_, _, h) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    assert!(h.get("set-cookie").is_none());
}

#[tokio::test]
async fn expired_session_tokens_are_refreshed() {
    let dir = tempdir();
    let users = dir.path().join("users.yaml");
    std::fs::write(&users, "access_token_ttl: 2\n").unwrap();
    let env =
        Env::with_idp_args(json!({"auth_methods": ["password", "session"]}), &["--users", users.to_str().unwrap()])
            .await;
    let (st, _, h) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    assert_eq!(st, 200);
    let cookie = session_cookie(&h);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let (st, body, h) = env.call(&[("cookie", &cookie)]).await;
    assert_eq!(st, 200, "{body}");
    each_header_once(&h);
    assert_eq!(env.calls().await["token_grants"]["refresh_token"], 1);
    assert!(!session_cookie(&h).is_empty(), "the refreshed session is saved");
    // refresh_tokens off: an expired session answers "The access token expired".
    env.patch(json!({"refresh_tokens": false})).await;
    let (_, _, h) = env.call(&[("authorization", &basic("jane", "roe"))]).await;
    let cookie = session_cookie(&h);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let (st, _, h) = env.call(&[("cookie", &cookie)]).await;
    assert_eq!(st, 401);
    each_header_once(&h);
    assert!(challenge(&h).contains("The access token expired"));
    assert!(
        h.get("set-cookie").map(|v| v.to_str().unwrap().contains("Max-Age=0")).unwrap_or(false),
        "the session is destroyed: {h:?} {cookie}"
    );
}

#[tokio::test]
async fn client_authentication_methods_at_the_token_endpoint() {
    let env = Env::new(json!({"auth_methods": ["password"]})).await;
    for method in ["client_secret_post", "client_secret_jwt"] {
        env.patch(json!({"client_auth": [method]})).await;
        let (st, body, _) = env.call(&[("authorization", &basic("john", "doe"))]).await;
        assert_eq!(st, 200, "{method}: {body}");
    }
    // private_key_jwt: a key of ours, registered at the IdP.
    let key = gatehouse_jose::sign::SigningKey::generate(gatehouse_jose::Algorithm::Es256).unwrap().with_kid("gw-1");
    env.dev("clients", json!({"client_id": "keyed", "jwks": {"keys": [key.public_jwk().unwrap()]}})).await;
    env.patch(json!({"client_id": ["keyed"], "client_secret": null, "client_auth": ["private_key_jwt"],
        "client_jwk": [key.private_jwk().unwrap()]}))
        .await;
    let (st, body, _) = env.call(&[("authorization", &basic("jane", "roe"))]).await;
    assert_eq!(st, 200, "private_key_jwt: {body}");
    // none: a public client.
    env.patch(json!({"client_id": ["gatehouse-public"], "client_jwk": null, "client_auth": ["none"]})).await;
    let (st, body, _) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    assert_eq!(st, 200, "none: {body}");
    // A wrong client secret is the IdP refusing: 401.
    env.patch(json!({"client_id": ["gatehouse"], "client_secret": ["wrong"], "client_auth": ["client_secret_basic"]}))
        .await;
    assert_eq!(env.call(&[("authorization", &basic("jane", "roe"))]).await.0, 401);
}

#[tokio::test]
async fn required_scopes_groups_and_roles_are_403() {
    let env = Env::new(json!({"auth_methods": ["bearer"], "scopes_required": ["openid admin", "email"]})).await;
    let token = env.mint(json!({"claims": {"scope": "openid profile"}})).await;
    let (st, body, h) = env.call(&[("authorization", &bearer(&token))]).await;
    assert_eq!(st, 403);
    assert_eq!(body, json!({"message": "Forbidden"}));
    assert!(challenge(&h).ends_with("error=\"insufficient_scope\""), "{}", challenge(&h));
    let ok = env.mint(json!({"claims": {"scope": "openid email"}})).await;
    assert_eq!(env.call(&[("authorization", &bearer(&ok))]).await.0, 200);
    env.patch(json!({"scopes_required": null, "groups_required": ["admins"], "roles_claim": ["realm", "roles"],
        "roles_required": ["admin"]}))
        .await;
    let jane = env.mint(json!({"user": "jane", "claims": {"realm": {"roles": ["admin"]}}})).await;
    assert_eq!(env.call(&[("authorization", &bearer(&jane))]).await.0, 200);
    let john = env.mint(json!({"user": "john", "claims": {"realm": {"roles": ["admin"]}}})).await;
    assert_eq!(env.call(&[("authorization", &bearer(&john))]).await.0, 403, "john is not in admins");
    // display_errors explains the refusal.
    env.patch(json!({"display_errors": true})).await;
    let (_, body, _) = env.call(&[("authorization", &bearer(&john))]).await;
    assert_eq!(body["message"], "Forbidden (required groups were not found [ admins ])");
}

#[tokio::test]
async fn consumers_are_mapped_from_claims() {
    let env = Env::new(json!({"auth_methods": ["bearer"], "consumer_claim": ["preferred_username"]})).await;
    let (st, c) = post(&format!("{}/consumers", env.gw.admin), json!({"username": "john", "custom_id": "j-1"})).await;
    assert_eq!(st, 201, "{c}");
    let token = env.mint(json!({})).await;
    let (st, body, _) = env.call(&[("authorization", &bearer(&token)), ("x-anonymous-consumer", "true")]).await;
    assert_eq!(st, 200, "{body}");
    let h = &body["headers"];
    assert_eq!(h["X-Consumer-Id"], c["id"]);
    assert_eq!(h["X-Consumer-Username"], "john");
    assert_eq!(h["X-Consumer-Custom-Id"], "j-1");
    assert!(h.get("X-Anonymous-Consumer").is_none());
    // No consumer for jane: 403, unless optional.
    let jane = env.mint(json!({"user": "jane"})).await;
    assert_eq!(env.call(&[("authorization", &bearer(&jane))]).await.0, 403);
    env.patch(json!({"consumer_optional": true})).await;
    let (st, body, _) = env.call(&[("authorization", &bearer(&jane))]).await;
    assert_eq!(st, 200);
    assert!(body["headers"].get("X-Consumer-Id").is_none());
}

#[tokio::test]
async fn anonymous_consumer_on_failure() {
    let env = Env::new(json!({"auth_methods": ["bearer"]})).await;
    let (st, anon) = post(&format!("{}/consumers", env.gw.admin), json!({"username": "guest"})).await;
    assert_eq!(st, 201);
    env.patch(json!({"anonymous": "guest"})).await;
    let (st, body, _) = env.call(&[("x-consumer-username", "admin")]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["headers"]["X-Anonymous-Consumer"], "true");
    assert_eq!(body["headers"]["X-Consumer-Id"], anon["id"]);
    assert_eq!(body["headers"]["X-Consumer-Username"], "guest");
    // A valid token is not anonymous.
    let token = env.mint(json!({})).await;
    let (_, body, _) = env.call(&[("authorization", &bearer(&token))]).await;
    assert!(body["headers"].get("X-Anonymous-Consumer").is_none());
    // An anonymous consumer that does not exist is a server error.
    env.patch(json!({"anonymous": "nobody"})).await;
    assert_eq!(env.call(&[]).await.0, 500);
}

#[tokio::test]
async fn repeated_bearer_tokens_are_verified_once_but_time_checks_still_apply() {
    let env = Env::new(json!({"auth_methods": ["bearer"]})).await;
    // Long enough for the first calls (discovery and keys fetched) on a busy machine.
    let token = env.mint(json!({"ttl": 6})).await;
    let minted = std::time::Instant::now();
    for _ in 0..5 {
        assert_eq!(env.call(&[("authorization", &bearer(&token))]).await.0, 200);
    }
    tokio::time::sleep(Duration::from_millis(6100).saturating_sub(minted.elapsed())).await;
    let (st, _, h) = env.call(&[("authorization", &bearer(&token))]).await;
    assert_eq!(st, 401, "a cached verification never outlives the token");
    assert!(challenge(&h).contains("The access token expired"));
}

#[tokio::test]
async fn invalid_configs_are_refused_by_the_admin_api() {
    let env = Env::new(json!({"auth_methods": ["bearer"]})).await;
    let (st, body) = post(&format!("{}/plugins", env.gw.admin), json!({"name": "openid-connect", "config": {}})).await;
    assert_eq!(st, 400);
    assert_eq!(body["message"], "schema violation (config.issuer: required field missing)");
    assert_eq!(body["fields"]["config"]["issuer"], "required field missing");
    let _ = &env.dir;
}

#[tokio::test]
async fn an_id_token_sent_along_is_verified_for_our_client() {
    let env = Env::new(json!({"auth_methods": ["bearer"], "id_token_param_name": "id_token"})).await;
    let t = env.idp_token(&[("grant_type", "password"), ("username", "john"), ("password", "doe")]).await;
    let (at, id) = (t["access_token"].as_str().unwrap(), t["id_token"].as_str().unwrap());
    let (st, body, _) = env.call(&[("authorization", &bearer(at)), ("x-id-token", id)]).await;
    assert_eq!(st, 200, "{body}");
    assert!(body["headers"].get("X-Id-Token").is_none(), "hidden like the access token");
    // An ID token for another client is refused.
    let foreign = env.mint(json!({"claims": {"aud": "someone-else"}})).await;
    assert_eq!(env.call(&[("authorization", &bearer(at)), ("id_token", &foreign)]).await.0, 401);
}

#[tokio::test]
async fn failures_redirect_when_redirect_uris_are_set() {
    let env =
        Env::new(json!({"auth_methods": ["bearer"], "unauthorized_redirect_uri": ["https://app.example/login"]})).await;
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/api/x", env.gw.proxy))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], "https://app.example/login");
}

#[tokio::test]
async fn idle_sessions_are_touched_once() {
    // Timestamps are whole seconds, so every wait below leaves a second of slack either side:
    // with an idling timeout of 8 s a use is recorded when the last one is 2 s old or more.
    let env = Env::new(json!({"auth_methods": ["password", "session"], "session_idling_timeout": 8})).await;
    let (_, _, h) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    let old = session_cookie(&h);
    // Right after login nothing is written (at most 1 s can have passed on the clock).
    let (st, _, h) = env.call(&[("cookie", &old)]).await;
    assert_eq!(st, 200);
    assert!(h.get("set-cookie").is_none(), "no touch right after login");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (st, _, h1) = env.call(&[("cookie", &old)]).await;
    assert_eq!(st, 200);
    each_header_once(&h1);
    let touched = session_cookie(&h1);
    assert!(!touched.is_empty() && touched != old, "the idle clock moved: a new cookie");
    // Requests still carrying the old cookie are served without a new seal and without repeating it.
    let (st, _, h2) = env.call(&[("cookie", &old)]).await;
    assert_eq!(st, 200);
    assert!(h2.get("set-cookie").is_none(), "the touched cookie went out once");
    // 8.7 s after login (>= 8 s on the clock) and 6.5 s after the touch (<= 7 s on the clock): the
    // idle timeout counts from the touch, so the refreshed cookie still works.
    tokio::time::sleep(Duration::from_millis(6500)).await;
    assert_eq!(env.call(&[("cookie", &touched)]).await.0, 200);
}

/// Every value of every response header, checked: no header value twice, and no cookie set twice
/// (each addition travels one route to the client).
fn each_header_once(h: &HeaderMap) {
    for name in h.keys() {
        let values: Vec<String> =
            h.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into()).collect();
        let mut unique = values.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), values.len(), "{name} sent twice: {values:?}");
    }
    let mut names: Vec<&str> =
        h.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().split('=').next().unwrap()).collect();
    let count = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), count, "a cookie set twice: {h:?}");
}

#[tokio::test]
async fn each_response_header_is_sent_once_on_success_and_refusal() {
    let env = Env::new(json!({
        "auth_methods": ["password", "session"],
        "downstream_headers_claims": ["preferred_username"],
        "downstream_headers_names": ["x_user"],
    }))
    .await;
    // Success with a new session: the cookie and the downstream header, once each.
    let (st, _, h) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    assert_eq!(st, 200);
    each_header_once(&h);
    assert_eq!(h.get_all("set-cookie").iter().filter(|v| v.to_str().unwrap().starts_with("session=")).count(), 1);
    assert_eq!(h.get_all("x-user").iter().count(), 1, "{h:?}");
    let cookie = session_cookie(&h);
    // The session alone: the downstream header once, no cookie.
    let (st, _, h) = env.call(&[("cookie", &cookie)]).await;
    assert_eq!(st, 200);
    each_header_once(&h);
    assert_eq!(h.get_all("x-user").iter().count(), 1);
    // A session cookie that does not open (tampered here; another plugin's looks the same): one
    // challenge, and the cookie is left alone (expiring another plugin's session would sign the
    // user out there).
    let mut bad = cookie.clone();
    bad.insert(12, if bad.as_bytes()[12] == b'A' { 'B' } else { 'A' });
    let (st, _, h) = env.call(&[("cookie", &bad)]).await;
    assert_eq!(st, 401);
    each_header_once(&h);
    assert!(h.get("set-cookie").is_none(), "{h:?}");
    assert_eq!(h.get_all("www-authenticate").iter().count(), 1);
    // A plain 401: one challenge, no cookie.
    let (st, _, h) = env.call(&[("authorization", &basic("john", "wrong"))]).await;
    assert_eq!(st, 401);
    each_header_once(&h);
    assert_eq!(h.get_all("www-authenticate").iter().count(), 1);
    assert!(h.get("set-cookie").is_none());
}
