//! The openid-connect plugin against an OpenID Provider nobody here wrote: panva's oidc-provider
//! (a certified OP, `tests/interop/provider.mjs`), through the real proxy and a `gatehouse echo`
//! upstream, configured as a Kong user would configure it.
//!
//! Needs Node.js and npm: the first test to start runs `npm ci` in `tests/interop` when its
//! `node_modules` is missing or holds another oidc-provider than the pinned one. Each test gets
//! its own provider process.
//!
//! What the provider issues (see the header of `provider.mjs`): clients `gatehouse` and `assertion`
//! get JWT access tokens (audience `api`, RS256; ES256 with `resource=urn:gatehouse:api:es256`);
//! client `opaque` gets opaque tokens, the only kind oidc-provider introspects or serves userinfo
//! for. User `short` gets access tokens that live 2 s.

use super::oidc::{Env, session_cookie};
use super::util::{client, first_line_with, json, post, tempdir};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

const ES256_RESOURCE: &str = "urn:gatehouse:api:es256";

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("interop")
}

/// The oidc-provider version `package.json` pins.
fn pinned_version(dir: &Path) -> String {
    let pkg: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("package.json")).unwrap()).unwrap();
    pkg["dependencies"]["oidc-provider"].as_str().unwrap().to_string()
}

/// The oidc-provider version in `node_modules`, if any.
fn installed_version(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("node_modules/oidc-provider/package.json")).ok()?;
    let pkg: Value = serde_json::from_str(&text).ok()?;
    pkg["version"].as_str().map(str::to_string)
}

/// Runs `npm ci` once per test run when `node_modules` is missing or stale. Concurrent callers
/// wait for the first one.
fn node_modules() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let done = DONE.get_or_init(|| {
        let dir = interop_dir();
        if installed_version(&dir).as_deref() == Some(pinned_version(&dir).as_str()) {
            return Ok(());
        }
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("could not run npm (the interop tests need Node.js and npm): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "npm ci failed in {}:\n{}{}",
                dir.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    });
    if let Err(e) = done {
        panic!("{e}");
    }
}

/// A running `node provider.mjs`, killed on drop.
struct Op {
    child: Child,
    issuer: String,
    log: PathBuf,
}

impl Op {
    fn start(dir: &Path) -> Op {
        node_modules();
        let log = dir.join("provider.log");
        let mut child = Command::new("node")
            .args(["provider.mjs", "0"])
            .current_dir(interop_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("could not run node (the interop tests need Node.js): {e}"));
        const READY: &str = "interop provider ready: ";
        match first_line_with(&mut child, READY, Duration::from_secs(30)) {
            Ok(line) => Op { child, issuer: line.trim_start_matches(READY).to_string(), log },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("oidc-provider did not become ready:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
            }
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl super::oidc::Provider for Op {
    const NAME: &'static str = "oidc-provider";
    fn logs(&self) -> String {
        Op::logs(self)
    }
}

/// oidc-provider, an echo upstream and a gateway with service `echo`, route `/api` and an
/// `openid-connect` plugin on the service whose issuer is the provider.
type Interop = Env<Op>;

impl Interop {
    async fn start(config: Value) -> Interop {
        let dir = tempdir();
        let op = Op::start(dir.path());
        let issuer = op.issuer.clone();
        Env::with_provider(dir, op, issuer, config).await
    }

    /// john's JWT access token (and the rest of the answer) for client `gatehouse`.
    async fn john(&self) -> Value {
        self.token(
            "gatehouse",
            "gatehouse-secret",
            &[("grant_type", "password"), ("username", "john"), ("password", "doe")],
        )
        .await
    }

    /// An opaque access token for john, from client `opaque`.
    async fn opaque(&self) -> String {
        let t = self
            .token(
                "opaque",
                "opaque-secret",
                &[
                    ("grant_type", "password"),
                    ("username", "john"),
                    ("password", "doe"),
                    ("scope", "openid profile email"),
                ],
            )
            .await;
        let at = t["access_token"].as_str().unwrap().to_string();
        assert_eq!(at.matches('.').count(), 0, "an opaque token: {at}");
        at
    }
}

fn at(v: &Value) -> String {
    v["access_token"].as_str().unwrap().to_string()
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{pass}")))
}

fn b64url_json(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn jwt_header(t: &str) -> Value {
    b64url_json(t.split('.').next().unwrap())
}

fn jwt_claims(t: &str) -> Value {
    b64url_json(t.split('.').nth(1).unwrap())
}

/// The bearer token the upstream received.
fn upstream_token(body: &Value) -> String {
    let auth = body["headers"]["Authorization"].as_str().unwrap_or_else(|| panic!("no Authorization: {body}"));
    auth.strip_prefix("Bearer ").unwrap_or_else(|| panic!("not a bearer token: {auth}")).to_string()
}

fn user_header() -> Value {
    json!({"upstream_headers_claims": ["preferred_username"], "upstream_headers_names": ["authenticated_user"]})
}

fn with(mut a: Value, b: Value) -> Value {
    if let (Value::Object(a), Value::Object(b)) = (&mut a, b) {
        a.extend(b);
    }
    a
}

#[tokio::test]
async fn interop_bearer_jwt_access_tokens() {
    let env = Interop::start(json!({"auth_methods": ["bearer"]})).await;
    let token = at(&env.john().await);
    let h = jwt_header(&token);
    assert_eq!((h["alg"].as_str(), h["typ"].as_str()), (Some("RS256"), Some("at+jwt")), "{h}");
    let (st, body, _) = env.call(&[("authorization", &bearer(&token))]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(upstream_token(&body), token);
    // The provider's EC key: an ES256 access token (client_credentials, the ES256 resource).
    let es = at(&env
        .token("gatehouse", "gatehouse-secret", &[("grant_type", "client_credentials"), ("resource", ES256_RESOURCE)])
        .await);
    assert_eq!(jwt_header(&es)["alg"], "ES256");
    let (st, body, _) = env.call(&[("authorization", &bearer(&es))]).await;
    assert_eq!(st, 200, "{body}");
    // Tampered: jane's claims under john's signature.
    let mut claims = jwt_claims(&token);
    claims["sub"] = json!("u-1002");
    claims["preferred_username"] = json!("jane");
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2]);
    let (st, body, _) = env.call(&[("authorization", &bearer(&forged))]).await;
    assert_eq!(st, 401, "{body}");
    // oidc-provider's `aud` is a string: audience_required reads it.
    env.patch(json!({"audience_required": ["api"]})).await;
    assert_eq!(env.call(&[("authorization", &bearer(&token))]).await.0, 200);
    env.patch(json!({"audience_required": ["another-api"]})).await;
    assert_eq!(env.call(&[("authorization", &bearer(&token))]).await.0, 403);
}

#[tokio::test]
async fn interop_opaque_tokens_are_introspected() {
    let env = Interop::start(with(json!({"auth_methods": ["introspection"]}), user_header())).await;
    let token = env.opaque().await;
    let (st, body, _) = env.call(&[("authorization", &bearer(&token))]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(upstream_token(&body), token);
    // The claim comes from oidc-provider's introspection answer.
    assert_eq!(body["headers"]["Authenticated-User"], "john", "{body}");
    // Revoked at the provider (by the client it was issued to): inactive, so 401.
    let revoked = env.opaque().await;
    let resp = client()
        .post(format!("{}/token/revocation", env.issuer))
        .basic_auth("opaque", Some("opaque-secret"))
        .form(&[("token", revoked.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (st, body, _) = env.call(&[("authorization", &bearer(&revoked))]).await;
    assert_eq!(st, 401, "{body}");
    // oidc-provider refuses to introspect JWTs (400 unsupported_token_type): a 401, not a 502.
    let jwt = at(&env.john().await);
    let (st, body, _) = env.call(&[("authorization", &bearer(&jwt))]).await;
    assert_eq!(st, 401, "{body}");
}

#[tokio::test]
async fn interop_opaque_tokens_are_checked_at_userinfo() {
    let config = with(json!({"auth_methods": ["userinfo"], "search_user_info": true}), user_header());
    let env = Interop::start(config).await;
    let token = env.opaque().await;
    let (st, body, _) = env.call(&[("authorization", &bearer(&token))]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(upstream_token(&body), token);
    // The claim comes from oidc-provider's userinfo answer.
    assert_eq!(body["headers"]["Authenticated-User"], "john", "{body}");
    // A token for the API (with an audience) is "not for userinfo" at oidc-provider.
    let jwt = at(&env.john().await);
    let (st, body, _) = env.call(&[("authorization", &bearer(&jwt))]).await;
    assert_eq!(st, 401, "{body}");
    let (st, _, _) = env.call(&[("authorization", "Bearer not-a-token")]).await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn interop_client_credentials_through_the_gateway() {
    let env = Interop::start(json!({"auth_methods": ["client_credentials"]})).await;
    let (st, body, _) = env.call(&[("authorization", &basic("gatehouse", "gatehouse-secret"))]).await;
    assert_eq!(st, 200, "{body}");
    let token = upstream_token(&body);
    let claims = jwt_claims(&token);
    assert_eq!(claims["iss"], env.issuer.as_str(), "{claims}");
    assert_eq!((claims["client_id"].as_str(), claims["aud"].as_str()), (Some("gatehouse"), Some("api")), "{claims}");
    let (st, body, _) = env.call(&[("authorization", &basic("gatehouse", "wrong-secret"))]).await;
    assert_eq!(st, 401, "{body}");
    // Another client of the provider, whose tokens are opaque: still a successful grant.
    let (st, body, _) = env.call(&[("authorization", &basic("opaque", "opaque-secret"))]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(upstream_token(&body).matches('.').count(), 0, "{body}");
    // Extra token-endpoint arguments reach the provider: the ES256 resource.
    env.patch(json!({"token_post_args_names": ["resource"], "token_post_args_values": [ES256_RESOURCE]})).await;
    let (st, body, _) = env.call(&[("authorization", &basic("gatehouse", "gatehouse-secret"))]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(jwt_header(&upstream_token(&body))["alg"], "ES256", "{body}");
}

#[tokio::test]
async fn interop_password_grant_through_the_gateway() {
    let config = with(json!({"auth_methods": ["password"], "upstream_id_token_header": "x-id-token"}), user_header());
    let env = Interop::start(config).await;
    let (st, body, h) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["headers"]["Authenticated-User"], "john", "{body}");
    let token = upstream_token(&body);
    let claims = jwt_claims(&token);
    assert_eq!((claims["sub"].as_str(), claims["aud"].as_str()), (Some("u-1001"), Some("api")), "{claims}");
    // The ID token oidc-provider issued with it, verified for our client.
    let id = body["headers"]["X-Id-Token"].as_str().unwrap_or_else(|| panic!("no ID token: {body}"));
    assert_eq!(jwt_claims(id)["aud"], "gatehouse");
    assert!(h.get("set-cookie").is_none(), "no session without the session method");
    let (st, body, _) = env.call(&[("authorization", &basic("jane", "roe"))]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["headers"]["Authenticated-User"], "jane", "{body}");
    let (st, body, _) = env.call(&[("authorization", &basic("john", "wrong"))]).await;
    assert_eq!(st, 401, "{body}");
}

#[tokio::test]
async fn interop_refresh_token_through_the_gateway() {
    let config =
        with(json!({"auth_methods": ["refresh_token"], "refresh_token_param_name": "refresh_token"}), user_header());
    let env = Interop::start(config).await;
    let t = env.john().await;
    let rt = t["refresh_token"].as_str().unwrap();
    let (st, body, _) = env.call(&[("refresh_token", rt)]).await;
    assert_eq!(st, 200, "{body}");
    // hide_credentials removes it (the echo would show it as `Refresh_token`).
    assert!(!body["headers"].to_string().contains(rt), "{body}");
    // A new access token from oidc-provider's refresh_token grant, for the same user.
    let token = upstream_token(&body);
    assert_ne!(token, at(&t));
    assert_eq!(jwt_claims(&token)["sub"], "u-1001");
    assert_eq!(body["headers"]["Authenticated-User"], "john", "{body}");
    // The provider rotates refresh tokens: the used one is refused now.
    let (st, body, _) = env.call(&[("refresh_token", rt)]).await;
    assert_eq!(st, 401, "{body}");
}

#[tokio::test]
async fn interop_session_after_a_password_grant() {
    let mut env = Interop::start(with(json!({"auth_methods": ["password", "session"]}), user_header())).await;
    let (st, body, h) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    assert_eq!(st, 200, "{body}");
    let token = upstream_token(&body);
    let cookie = session_cookie(&h);
    assert!(cookie.starts_with("session="), "{h:?}");
    // The provider is gone: the cookie alone authenticates, with the tokens it holds.
    drop(env.idp.take());
    let (st, body, _) = env.call(&[("cookie", &cookie)]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(upstream_token(&body), token);
    assert_eq!(body["headers"]["Authenticated-User"], "john", "{body}");
    assert!(body["headers"].get("Cookie").is_none(), "the session cookie stays at the gateway: {body}");
    // No cookie, no credentials.
    let (st, _, _) = env.call(&[]).await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn interop_sessions_refresh_expired_tokens_with_rotating_refresh_tokens() {
    // User `short` gets access tokens that live 2 s; every refresh consumes the refresh token.
    let env = Interop::start(with(json!({"auth_methods": ["password", "session"]}), user_header())).await;
    let (st, body, h) = env.call(&[("authorization", &basic("short", "lived"))]).await;
    assert_eq!(st, 200, "{body}");
    let first = session_cookie(&h);
    let mut token = upstream_token(&body);
    let mut cookie = first.clone();
    // Twice: the second refresh works only if the session kept the refresh token of the first.
    for round in 1..=2 {
        // `exp` is whole seconds (issue second + 2): 3 s on, the token has expired for sure.
        tokio::time::sleep(Duration::from_millis(3100)).await;
        let (st, body, h) = env.call(&[("cookie", &cookie)]).await;
        assert_eq!(st, 200, "round {round}: {body}");
        let refreshed = upstream_token(&body);
        assert_ne!(refreshed, token, "round {round}: a new access token");
        assert_eq!(body["headers"]["Authenticated-User"], "short", "{body}");
        cookie = session_cookie(&h);
        assert!(cookie.starts_with("session="), "round {round}: the refreshed session is saved: {h:?}");
        token = refreshed;
    }
    // The first cookie holds an expired token and a consumed refresh token.
    let (st, body, _) = env.call(&[("cookie", &first)]).await;
    assert_eq!(st, 401, "{body}");
}

#[tokio::test]
async fn interop_keys_rotated_at_the_provider() {
    let env = Interop::start(json!({"auth_methods": ["bearer"], "rediscovery_lifetime": 0})).await;
    let before = at(&env.john().await);
    assert_eq!(env.call(&[("authorization", &bearer(&before))]).await.0, 200);
    // Signed with the old key, not shown to the gateway until after the rotation.
    let unseen = at(&env.john().await);
    let (st, rotated) = json(client().post(format!("{}/_test/rotate", env.issuer)).send().await.unwrap()).await;
    assert_eq!(st, 200, "{rotated}");
    // Signed with the new RSA key, which the gateway has never seen.
    let after = at(&env.john().await);
    assert_eq!(jwt_header(&after)["kid"], rotated["kids"][0], "{rotated}");
    assert_ne!(jwt_header(&after)["kid"], jwt_header(&before)["kid"]);
    let (st, body, _) = env.call(&[("authorization", &bearer(&after))]).await;
    assert_eq!(st, 200, "{body}");
    // And the new EC key.
    let es = at(&env
        .token("gatehouse", "gatehouse-secret", &[("grant_type", "client_credentials"), ("resource", ES256_RESOURCE)])
        .await);
    assert_eq!(jwt_header(&es)["kid"], rotated["kids"][1]);
    let (st, body, _) = env.call(&[("authorization", &bearer(&es))]).await;
    assert_eq!(st, 200, "{body}");
    // The provider still publishes the old key, and the refreshed key set keeps it.
    assert_eq!(jwt_header(&unseen)["kid"], jwt_header(&before)["kid"]);
    let (st, body, _) = env.call(&[("authorization", &bearer(&unseen))]).await;
    assert_eq!(st, 200, "{body}");
}

#[tokio::test]
async fn interop_client_authentication_methods() {
    // client_secret_post for the password grant: oidc-provider takes the secret from the form.
    let env = Interop::start(with(
        json!({"auth_methods": ["password"], "client_auth": ["client_secret_post"]}),
        user_header(),
    ))
    .await;
    let (st, body, _) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["headers"]["Authenticated-User"], "john", "{body}");
    // client_secret_jwt: an HS256 client assertion for a client registered with that method.
    env.patch(json!({"client_id": ["assertion"], "client_secret": ["assertion-secret-at-least-32-bytes-long"],
        "client_auth": ["client_secret_jwt"]}))
        .await;
    let (st, body, _) = env.call(&[("authorization", &basic("jane", "roe"))]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["headers"]["Authenticated-User"], "jane", "{body}");
    assert_eq!(jwt_claims(&upstream_token(&body))["client_id"], "assertion");
    // private_key_jwt: a key of ours, in a client registered at the provider (RFC 7591).
    let key = gatehouse_jose::sign::SigningKey::generate(gatehouse_jose::Algorithm::Es256).unwrap().with_kid("gw-1");
    let (st, reg) = post(
        &format!("{}/reg", env.issuer),
        json!({"token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "ES256",
            "jwks": {"keys": [key.public_jwk().unwrap()]}, "grant_types": ["password"], "response_types": [],
            "redirect_uris": []}),
    )
    .await;
    assert_eq!(st, 201, "{reg}");
    let keyed = reg["client_id"].as_str().unwrap();
    env.patch(json!({"client_id": [keyed], "client_secret": null, "client_auth": ["private_key_jwt"],
        "client_jwk": [key.private_jwk().unwrap()]}))
        .await;
    let (st, body, _) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(jwt_claims(&upstream_token(&body))["client_id"], keyed);
}

#[tokio::test]
async fn interop_private_key_jwt_with_the_gateways_own_key() {
    // Kong's walkthrough: `client_auth=private_key_jwt` and no `client_jwk`; the provider knows
    // the gateway's public keys from its Admin API's `/openid-connect/jwks`.
    let env = Interop::start(with(json!({"auth_methods": ["password"]}), user_header())).await;
    let resp = client().get(format!("{}/openid-connect/jwks", env.gw.admin)).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/jwk-set+json");
    let (st, jwks) = json(resp).await;
    assert_eq!(st, 200, "{jwks}");
    for (alg, user, pass) in [("RS256", "john", "doe"), ("ES256", "jane", "roe")] {
        let (st, reg) = post(
            &format!("{}/reg", env.issuer),
            json!({"token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": alg,
                "jwks": jwks, "grant_types": ["password"], "response_types": [], "redirect_uris": []}),
        )
        .await;
        assert_eq!(st, 201, "{reg}");
        let keyed = reg["client_id"].as_str().unwrap();
        env.patch(json!({"client_id": [keyed], "client_secret": null, "client_auth": ["private_key_jwt"],
            "client_alg": [alg]}))
            .await;
        let (st, body, _) = env.call(&[("authorization", &basic(user, pass))]).await;
        assert_eq!(st, 200, "{alg}: {body}");
        assert_eq!(jwt_claims(&upstream_token(&body))["client_id"], keyed);
    }
}

/// Kong's authorization-code example in a real browser against oidc-provider's own interactive
/// pages (devInteractions): its login and consent pages, back on the page asked for with its
/// query, the upstream sees john, a reload stays signed in; then logout through its end-session
/// confirmation page, back at `logout_redirect_uri`, the old cookie refused and the next visit
/// at the login page again.
#[tokio::test]
async fn interop_a_person_signs_in_and_out_in_a_browser() {
    use super::browser::{Browser, assert_refused, assert_upstream_saw_john, has_cookie, signed_out_page};
    let env = Interop::start(super::browser::kong_authorization_code_example()).await;
    let page = format!("{}/api/anything?hello=world", env.gw.proxy);
    let signed_out = signed_out_page(&env).await;
    // The gateway's URLs are known only now that it runs: a client registered for them (RFC 7591;
    // oidc-provider matches redirect URIs exactly). The callback is the page's own path (Kong's
    // default redirect_uri).
    let (st, reg) = post(
        &format!("{}/reg", env.issuer),
        json!({"redirect_uris": [format!("{}/api/anything", env.gw.proxy)], "post_logout_redirect_uris": [signed_out],
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_post"}),
    )
    .await;
    assert_eq!(st, 201, "{reg}");
    env.patch(json!({
        "client_id": [reg["client_id"]],
        "client_secret": [reg["client_secret"]],
        "logout_uri_suffix": "/logout",
        "logout_methods": ["GET", "POST"],
        "logout_redirect_uri": [signed_out],
    }))
    .await;
    let browser = Browser::start().await;

    browser.goto(&page).await;
    // devInteractions takes the login as the account id as typed (any password): john is u-1001.
    browser.fill("input[name=login]", "u-1001").await;
    browser.fill("input[name=password]", "doe").await;
    browser.click("button.login-submit").await;
    browser.find("input[name=prompt][value=consent]").await;
    assert!(browser.url().await.starts_with(&format!("{}/interaction/", env.issuer)));
    browser.click("button.login-submit").await;
    let landed = browser.wait_for_url(&page).await;
    assert_eq!(landed, page, "the original URL with its query, nothing added");
    let echo = browser.json().await;
    assert_upstream_saw_john(&echo);
    assert_eq!(jwt_claims(&upstream_token(&echo))["sub"], "u-1001");
    browser.reload().await;
    assert_upstream_saw_john(&browser.json().await);

    let old = browser.cookie_header().await;
    assert!(has_cookie(&old, "session"), "{old}");
    browser.goto(&format!("{}/api/logout", env.gw.proxy)).await;
    browser.find("form[id='op.logoutForm']").await;
    assert!(browser.url().await.starts_with(&format!("{}/session/end", env.issuer)));
    browser.click("button[name=logout][value=yes]").await;
    let back = browser.wait_for_url(&signed_out).await;
    assert_eq!(back, signed_out);
    assert!(!has_cookie(&browser.cookie_header().await, "session"), "the browser's session cookie is gone");
    assert_refused(&page, &old, &env.issuer).await;

    // The provider's session ended too: the login page again, not the consent page or the page.
    browser.goto(&page).await;
    browser.find("input[name=login]").await;
    browser.close().await;
}
