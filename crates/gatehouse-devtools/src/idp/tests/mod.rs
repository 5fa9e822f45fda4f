//! End-to-end tests: a real provider on `127.0.0.1:0`, driven over HTTP with reqwest.

#![allow(clippy::unwrap_used)]

mod authorize;
mod browser;
mod client_auth;
mod config;
mod discovery;
mod grants;
mod knobs;
mod mint;
mod par;
mod tokens;

use gatehouse_jose::{KeySet, Policy, Verified, VerifyError};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use tokio::sync::oneshot;

use super::{IdpConfig, serve_idp};

pub(super) const SECRET: &str = "gatehouse-secret";

/// The redirect URI the tests' authorization requests name.
pub(super) const CB: &str = "http://127.0.0.1:9999/cb";

/// A running provider; stops when dropped.
pub(super) struct TestIdp {
    pub base: String,
    pub http: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

pub(super) async fn start() -> TestIdp {
    start_with(IdpConfig::default()).await
}

pub(super) async fn start_with(config: IdpConfig) -> TestIdp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve_idp(listener, config, async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    TestIdp { base, http, _stop: stop }
}

/// The claims of a JWT, without checking anything.
pub(super) fn claims_of(token: &str) -> Map<String, Value> {
    gatehouse_jose::UnverifiedJwt::parse(token).unwrap().unverified_claims().unwrap()
}

/// The header of a JWT as JSON, without checking anything.
pub(super) fn header_of(token: &str) -> Value {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

/// The parameters of an authorization response sent by redirect: the `Location`'s fragment when it
/// has one, else its query.
pub(super) fn redirected(resp: &reqwest::Response) -> HashMap<String, String> {
    let location = resp.headers().get("location").expect("a Location").to_str().unwrap();
    let url = reqwest::Url::parse(location).unwrap();
    match url.fragment() {
        Some(fragment) => form_urlencoded::parse(fragment.as_bytes()).into_owned().collect(),
        None => url.query_pairs().into_owned().collect(),
    }
}

/// The whole `Set-Cookie` lines a response sets for cookie `name`.
pub(super) fn set_cookies(resp: &reqwest::Response, name: &str) -> Vec<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .filter(|v| v.starts_with(&format!("{name}=")))
        .collect()
}

/// The first `Set-Cookie` line a response sets for cookie `name`.
pub(super) fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    set_cookies(resp, name).into_iter().next()
}

/// The `name=value` part of the `gatehouse_idp` cookie a response sets, ready for a `Cookie` header.
pub(super) fn sso_cookie(resp: &reqwest::Response) -> String {
    let line = set_cookie(resp, "gatehouse_idp").expect("a gatehouse_idp cookie");
    line.split(';').next().unwrap().to_owned()
}

/// The `value` of the hidden input `name` in an HTML page.
pub(super) fn hidden(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker)? + marker.len();
    let end = start + page[start..].find('"')?;
    Some(page[start..end].replace("&amp;", "&").replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">"))
}

impl TestIdp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self.http.get(self.url(path)).send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A `/_dev/` POST with a JSON body.
    pub async fn dev(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let resp = self.http.post(self.url(path)).json(&body).send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A form POST authenticated as `gatehouse` with HTTP Basic.
    pub async fn post_basic(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let resp =
            self.http.post(self.url(path)).basic_auth("gatehouse", Some(SECRET)).form(form).send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A form POST with no client authentication of its own.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http.post(self.url(path)).form(form).send().await.unwrap()
    }

    /// Tokens for `john` by the password grant, as `gatehouse`.
    pub async fn login(&self) -> Value {
        let (status, body) =
            self.post_basic("/token", &[("grant_type", "password"), ("username", "john"), ("password", "doe")]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn keyset(&self) -> KeySet {
        let (_, jwks) = self.get("/jwks").await;
        KeySet::from_jwks(jwks).unwrap()
    }

    /// Verifies `token` against the provider's current JWKS.
    pub async fn verify(&self, token: &str) -> Result<Verified, VerifyError> {
        gatehouse_jose::verify(token, &self.keyset().await, &Policy::default())
    }

    pub async fn mint(&self, body: Value) -> String {
        let (status, minted) = self.dev("/_dev/mint", body).await;
        assert_eq!(status, StatusCode::OK, "{minted}");
        minted["token"].as_str().unwrap().to_owned()
    }

    pub async fn introspect(&self, token: &str) -> Value {
        let (status, body) = self.post_basic("/introspect", &[("token", token)]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn calls(&self) -> Value {
        self.get("/_dev/calls").await.1
    }

    /// `GET /authorize` with `query`, sending `cookie` (`name=value`) when given.
    pub async fn authorize(&self, query: &[(&str, &str)], cookie: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(self.url("/authorize")).query(query);
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        req.send().await.unwrap()
    }

    /// Exchanges a code given to `gatehouse` for `CB`.
    pub async fn exchange(&self, code: &str, extra: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut form = vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CB)];
        form.extend_from_slice(extra);
        self.post_basic("/token", &form).await
    }
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405() {
    let idp = start().await;
    let (status, body) = idp.get("/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    let resp = idp.http.get(idp.url("/token")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "POST");
    let (status, _) = idp.dev("/jwks", json!({})).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}
