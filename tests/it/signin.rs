//! The authorization code flow through the real proxy and the development IdP, walked by a plain
//! HTTP client that follows no redirect by itself: each hop (gateway → IdP login form → the
//! gateway's callback) is checked, and every attack of issue 13 is refused with no session made
//! and nothing proxied.

use super::oidc::Env;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// A client that shows every redirect instead of following it.
pub(super) fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).pool_max_idle_per_host(0).build().unwrap()
}

/// An answer: status, headers, body text.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    pub(super) body: String,
}

impl Answer {
    pub(super) fn location(&self) -> &str {
        self.headers.get("location").map(|v| v.to_str().unwrap()).unwrap_or_default()
    }

    /// The `name=value` of each `Set-Cookie` named `name` (or a chunk of it).
    pub(super) fn cookies(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .filter(|c| c.starts_with(&format!("{name}=")))
            .collect()
    }

    /// The value `Cookie` carries back for the cookies named `name` that were set (not expired).
    pub(super) fn cookie(&self, name: &str) -> String {
        self.cookies(name)
            .into_iter()
            .filter(|c| !c.contains("Max-Age=0"))
            .map(|c| c.split(';').next().unwrap().to_string())
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(super) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

pub(super) async fn get(url: &str, cookie: &str) -> Answer {
    let mut req = no_redirects().get(url);
    if !cookie.is_empty() {
        req = req.header("cookie", cookie);
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    Answer { status, headers, body: resp.text().await.unwrap() }
}

pub(super) fn param(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url).ok()?.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// Signs in at the dev IdP's form (as the browser's POST would) for the authorization request
/// at `location`; returns the callback URL the IdP sends the browser to.
pub(super) async fn login(location: &str, user: &str, password: &str) -> String {
    let resp = login_answer(location, user, password).await;
    assert_eq!(resp.status().as_u16(), 302, "{}", resp.text().await.unwrap());
    resp.headers()["location"].to_str().unwrap().to_string()
}

/// The dev IdP's answer to the login form's POST for the authorization request at `location`.
pub(super) async fn login_answer(location: &str, user: &str, password: &str) -> reqwest::Response {
    let url = reqwest::Url::parse(location).unwrap();
    let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    form.push(("username".into(), user.into()));
    form.push(("password".into(), password.into()));
    let mut endpoint = url.clone();
    endpoint.set_query(None);
    no_redirects().post(endpoint).form(&form).send().await.unwrap()
}

/// The gateway's answer to `GET /api/anything?hello=world`: a redirect to the IdP, and the
/// authorization cookie it set.
pub(super) async fn start(env: &Env) -> (Answer, String) {
    let a = get(&format!("{}/api/anything?hello=world", env.gw.proxy), "").await;
    assert_eq!(a.status, 302, "{}", a.body);
    assert!(a.location().starts_with(&format!("{}/authorize?", env.issuer)), "{}", a.location());
    let cookie = a.cookie("authorization");
    assert!(!cookie.is_empty(), "an authorization cookie: {:?}", a.headers);
    (a, cookie)
}

/// Kong's authorization-code example (developer.konghq.com, openid-connect
/// examples/authorization-code.yaml) with the query response mode.
pub(super) fn kong_example() -> Value {
    json!({
        "client_auth": ["client_secret_post"],
        "auth_methods": ["authorization_code", "session"],
        "preserve_query_args": true,
        "login_action": "redirect",
        "login_tokens": null,
    })
}

/// A refused callback: no session cookie, and the answer is the plugin's, not the upstream's.
pub(super) fn refused_without_session(a: &Answer, what: &str) {
    assert!(a.cookies("session").iter().all(|c| c.contains("Max-Age=0")), "{what}: no session made: {:?}", a.headers);
    assert!(a.json().get("headers").is_none(), "{what}: the upstream was not called: {}", a.body);
}

#[tokio::test]
async fn kongs_authorization_code_example_signs_in_and_lands_on_the_original_url_with_its_query() {
    let env = Env::new(kong_example()).await;
    let (a, auth_cookie) = start(&env).await;
    let loc = a.location().to_string();
    assert_eq!(a.headers["cache-control"], "no-store");
    let redirect_uri = format!("{}/api/anything", env.gw.proxy);
    assert_eq!(param(&loc, "redirect_uri").as_deref(), Some(redirect_uri.as_str()), "Kong: the URL without its query");
    assert_eq!(param(&loc, "response_type").as_deref(), Some("code"));
    assert_eq!(param(&loc, "client_id").as_deref(), Some("gatehouse"));
    assert_eq!(param(&loc, "scope").as_deref(), Some("openid"));
    assert_eq!(param(&loc, "state").map(|s| s.len()), Some(24), "18 random bytes");
    assert_eq!(param(&loc, "nonce").map(|s| s.len()), Some(24));
    assert_eq!(param(&loc, "code_challenge_method").as_deref(), Some("S256"), "discovery offers PKCE");
    let set = &a.cookies("authorization")[0];
    assert!(set.contains("HttpOnly") && set.contains("Path=/"), "{set}");

    let callback = login(&loc, "john", "doe").await;
    assert!(callback.starts_with(&redirect_uri), "{callback}");
    assert_eq!(param(&callback, "state"), param(&loc, "state"));

    let back = get(&callback, &auth_cookie).await;
    assert_eq!(back.status, 302, "login_action redirect: {}", back.body);
    assert_eq!(back.location(), format!("{}/api/anything?hello=world", env.gw.proxy));
    assert!(back.cookies("authorization").iter().all(|c| c.contains("Max-Age=0")), "the flow's cookie expired");
    let session = back.cookie("session");
    assert!(!session.is_empty(), "a session: {:?}", back.headers);

    let page = get(back.location(), &session).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let echo = page.json();
    assert_eq!(echo["args"]["hello"], "world", "{echo}");
    let auth = echo["headers"]["Authorization"].as_str().unwrap_or_default();
    assert!(auth.starts_with("Bearer "), "the access token goes upstream: {echo}");
    assert!(echo["headers"]["Cookie"].is_null(), "our cookies do not: {echo}");

    // A reload rides on the session: no new sign-in, no token call.
    let before = env.calls().await;
    let again = get(back.location(), &session).await;
    assert_eq!(again.status, 200);
    assert_eq!(env.calls().await["token"], before["token"], "no IdP round trip on a reload");
}

#[tokio::test]
async fn login_action_upstream_proxies_the_callback_without_its_code_and_state() {
    let env = Env::new(json!({"auth_methods": ["authorization_code", "session"], "preserve_query_args": true})).await;
    let (a, auth_cookie) = start(&env).await;
    let callback = login(a.location(), "john", "doe").await;
    let back = get(&callback, &auth_cookie).await;
    assert_eq!(back.status, 200, "{}", back.body);
    let echo = back.json();
    assert_eq!(echo["args"], json!({"hello": "world"}), "the original query, no code or state: {echo}");
    assert!(!back.cookie("session").is_empty());
    assert!(echo["headers"]["Cookie"].is_null(), "the authorization cookie does not go upstream: {echo}");
}

#[tokio::test]
async fn no_chunk_of_a_large_authorization_cookie_goes_upstream_and_a_long_query_is_not_kept() {
    let env = Env::new(json!({"auth_methods": ["authorization_code", "session"], "preserve_query_args": true})).await;
    // A path long enough (and not compressible) that the authorization cookie, which holds it
    // twice (the return URL and the redirect URI), needs a second chunk. (A long query is not
    // kept past 2 KiB, so it cannot do this.)
    let abc = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let long: String = (0..1900u64).map(|i| char::from(abc[((i * 7919) ^ (i >> 3)) as usize % abc.len()])).collect();
    let a = get(&format!("{}/api/{long}?q=1", env.gw.proxy), "").await;
    assert_eq!(a.status, 302, "{}", a.body);
    let cookie = [a.cookie("authorization"), a.cookie("authorization2")].join("; ");
    assert!(cookie.contains("authorization2="), "chunked: {:?}", a.headers);
    let callback = login(a.location(), "john", "doe").await;
    let back = get(&callback, &format!("theme=dark; {cookie}")).await;
    assert_eq!(back.status, 200, "{}", back.body);
    let echo = back.json();
    assert_eq!(echo["args"]["q"], "1", "{echo}");
    assert_eq!(echo["headers"]["Cookie"], "theme=dark", "no chunk of the authorization cookie");

    // A 5000-byte query is not kept through the sign-in: the cookie stays one cookie.
    let a = get(&format!("{}/api/anything?q={}", env.gw.proxy, "x".repeat(5000)), "").await;
    assert_eq!(a.status, 302);
    assert!(a.cookies("authorization2").is_empty(), "{:?}", a.headers);
}

#[tokio::test]
async fn a_tampered_or_missing_state_sends_the_browser_back_to_the_idp_with_the_pending_values() {
    let env = Env::new(kong_example()).await;
    let (a, auth_cookie) = start(&env).await;
    let state = param(a.location(), "state").unwrap();
    let callback = login(a.location(), "john", "doe").await;
    let code = param(&callback, "code").unwrap();
    let base = format!("{}/api/anything", env.gw.proxy);

    for (what, url) in
        [("tampered state", format!("{base}?code={code}&state=x{state}")), ("no state", format!("{base}?code={code}"))]
    {
        let r = get(&url, &auth_cookie).await;
        assert_eq!(r.status, 302, "{what}: {}", r.body);
        assert!(r.location().starts_with(&format!("{}/authorize?", env.issuer)), "{what}");
        assert_eq!(param(r.location(), "state").as_deref(), Some(state.as_str()), "{what}: the pending state again");
        refused_without_session(&r, what);
    }
    // The code was not spent: the real callback still signs in.
    let ok = get(&callback, &auth_cookie).await;
    assert_eq!(ok.status, 302);
    assert!(!ok.cookie("session").is_empty());
}

#[tokio::test]
async fn a_second_tab_does_not_break_the_first_tabs_sign_in() {
    // Kong: a request mid-flow is sent to the IdP again with the pending state ("the user may have
    // opened a second tab"). The first tab's callback, arriving at its own redirect_uri, must
    // still be exchanged with that redirect_uri.
    let env = Env::new(kong_example()).await;
    let (a, cookie_a) = start(&env).await;
    let second = get(&format!("{}/api/other", env.gw.proxy), &cookie_a).await;
    assert_eq!(second.status, 302);
    assert_eq!(param(second.location(), "state"), param(a.location(), "state"), "the pending state");
    let cookie = second.cookie("authorization");
    let callback = login(a.location(), "john", "doe").await;
    let back = get(&callback, &cookie).await;
    assert_eq!(back.status, 302, "{}", back.body);
    assert!(!back.cookie("session").is_empty(), "signed in: {:?}", back.headers);
}

#[tokio::test]
async fn a_callback_without_the_authorization_cookie_starts_a_new_flow() {
    let env = Env::new(kong_example()).await;
    let (a, _) = start(&env).await;
    let callback = login(a.location(), "john", "doe").await;
    let r = get(&callback, "").await;
    assert_eq!(r.status, 302);
    assert!(r.location().starts_with(&format!("{}/authorize?", env.issuer)));
    assert_ne!(param(r.location(), "state"), param(&callback, "state"), "a new state");
    refused_without_session(&r, "no cookie");
    assert_eq!(env.calls().await["token"], 0, "nothing exchanged");
}

#[tokio::test]
async fn a_replayed_code_is_refused_with_nothing_stored() {
    let env = Env::new(kong_example()).await;
    let (a, cookie_a) = start(&env).await;
    let callback_a = login(a.location(), "john", "doe").await;
    assert_eq!(get(&callback_a, &cookie_a).await.status, 302);

    // A second flow, its callback carrying the first flow's (spent) code with its own state.
    let (b, cookie_b) = start(&env).await;
    let state_b = param(b.location(), "state").unwrap();
    let code_a = param(&callback_a, "code").unwrap();
    let url = format!("{}/api/anything?code={code_a}&state={state_b}", env.gw.proxy);
    let r = get(&url, &cookie_b).await;
    assert_eq!(r.status, 401, "{}", r.body);
    refused_without_session(&r, "replayed code");
}

#[tokio::test]
async fn a_code_issued_to_another_client_or_with_another_nonce_is_refused() {
    let env = Env::new(kong_example()).await;
    let redirect_uri = format!("{}/api/anything", env.gw.proxy);
    for (what, client_id, nonce_of) in
        [("another client", "gatehouse-public", true), ("a wrong nonce", "gatehouse", false)]
    {
        let (b, cookie_b) = start(&env).await;
        let state_b = param(b.location(), "state").unwrap();
        // The attacker's own authorization request, answered with a code for the victim's state.
        let nonce = if nonce_of { param(b.location(), "nonce").unwrap() } else { "attacker-nonce".into() };
        let mut evil = reqwest::Url::parse(&format!("{}/authorize", env.issuer)).unwrap();
        evil.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("scope", "openid")
            .append_pair("state", &state_b)
            .append_pair("nonce", &nonce);
        let callback = login(evil.as_str(), "jane", "roe").await;
        let r = get(&callback, &cookie_b).await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        refused_without_session(&r, what);
    }
}

#[tokio::test]
async fn a_wrong_nonce_is_refused_with_verify_claims_off_as_kong_does() {
    // Kong checks the nonce under `verify_nonce` alone. Without PKCE, the nonce is what keeps a
    // code from another sign-in (injected with this browser's state) from being exchanged.
    let mut config = kong_example();
    config["verify_claims"] = json!(false);
    config["require_proof_key_for_code_exchange"] = json!(false);
    let env = Env::new(config).await;
    let (b, cookie_b) = start(&env).await;
    assert!(param(b.location(), "code_challenge").is_none());
    let mut evil = reqwest::Url::parse(&format!("{}/authorize", env.issuer)).unwrap();
    evil.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "gatehouse")
        .append_pair("redirect_uri", &format!("{}/api/anything", env.gw.proxy))
        .append_pair("scope", "openid")
        .append_pair("state", &param(b.location(), "state").unwrap())
        .append_pair("nonce", "attacker-nonce");
    let callback = login(evil.as_str(), "jane", "roe").await;
    let r = get(&callback, &cookie_b).await;
    assert_eq!(r.status, 401, "{}", r.body);
    refused_without_session(&r, "a wrong nonce, verify_claims off");
}

#[tokio::test]
async fn an_answer_from_another_issuer_or_an_idp_error_is_refused() {
    let env = Env::new(kong_example()).await;
    let (a, cookie) = start(&env).await;
    let state = param(a.location(), "state").unwrap();
    let callback = login(a.location(), "john", "doe").await;
    let code = param(&callback, "code").unwrap();
    let base = format!("{}/api/anything", env.gw.proxy);
    for (what, url) in [
        ("mix-up: another issuer", format!("{base}?code={code}&state={state}&iss=https%3A%2F%2Fevil.example")),
        ("the IdP's error", format!("{base}?error=access_denied&state={state}")),
        ("no code", format!("{base}?state={state}")),
    ] {
        let r = get(&url, &cookie).await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        refused_without_session(&r, what);
    }
    assert_eq!(env.calls().await["token"], 0, "no code was exchanged");
}

#[tokio::test]
async fn without_authorization_code_in_auth_methods_anonymous_requests_get_401() {
    let env = Env::new(json!({"auth_methods": ["bearer", "session"]})).await;
    let r = get(&format!("{}/api/anything", env.gw.proxy), "").await;
    assert_eq!(r.status, 401);
    assert!(r.cookies("authorization").is_empty());
}

#[tokio::test]
async fn login_action_response_answers_with_the_tokens() {
    let env = Env::new(json!({
        "auth_methods": ["authorization_code", "session"],
        "login_action": "response",
        "login_tokens": ["id_token", "access_token"],
    }))
    .await;
    let (a, cookie) = start(&env).await;
    let callback = login(a.location(), "john", "doe").await;
    let r = get(&callback, &cookie).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert!(body["id_token"].as_str().is_some_and(|t| t.split('.').count() == 3), "{body}");
    assert!(body["access_token"].is_string(), "{body}");
    assert!(body.get("headers").is_none(), "answered by the gateway, not proxied");
    assert!(!r.cookie("session").is_empty(), "the session rides on the answer");
}

/// The hidden fields of the dev IdP's `form_post` page, and where it posts them.
pub(super) fn form_post_page(html: &str) -> (String, Vec<(String, String)>) {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let end = tag[start..].find('"')? + start;
        Some(tag[start..end].replace("&amp;", "&").replace("&quot;", "\"").replace("&#39;", "'"))
    };
    let form = html.split("<form").nth(1).expect("a form");
    let action = attr(form, "action").expect("an action");
    let fields =
        form.split("<input").skip(1).filter_map(|tag| Some((attr(tag, "name")?, attr(tag, "value")?))).collect();
    (action, fields)
}

#[tokio::test]
async fn kongs_example_as_written_signs_in_with_form_post() {
    let mut config = kong_example();
    config["response_mode"] = json!("form_post");
    let env = Env::new(config).await;
    let (a, auth_cookie) = start(&env).await;
    assert_eq!(param(a.location(), "response_mode").as_deref(), Some("form_post"));
    // The IdP answers the login with a page that posts the code back.
    let url = reqwest::Url::parse(a.location()).unwrap();
    let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    form.push(("username".into(), "john".into()));
    form.push(("password".into(), "doe".into()));
    let mut endpoint = url.clone();
    endpoint.set_query(None);
    let page = no_redirects().post(endpoint).form(&form).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let (action, fields) = form_post_page(&page.text().await.unwrap());
    assert_eq!(action, format!("{}/api/anything", env.gw.proxy));
    assert!(fields.iter().any(|(k, _)| k == "code"), "{fields:?}");

    let back = no_redirects().post(&action).header("cookie", &auth_cookie).form(&fields).send().await.unwrap();
    assert_eq!(back.status().as_u16(), 302, "login_action redirect turns the POST into a GET");
    let location = back.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(location, format!("{}/api/anything?hello=world", env.gw.proxy));
    let session: String = back
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .filter(|c| c.starts_with("session=") && !c.contains("Max-Age=0"))
        .map(|c| c.split(';').next().unwrap().to_string())
        .collect();
    let page = get(&location, &session).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.json()["args"]["hello"], "world");
}

#[tokio::test]
async fn the_authorization_request_follows_the_config() {
    let env = Env::new(json!({
        "auth_methods": ["authorization_code", "session"],
        "redirect_uri": ["http://127.0.0.1:1/callback"],
        "scopes": ["openid", "email"],
        "audience": ["api"],
        "max_age": 300,
        "authorization_query_args_names": ["hd", "prompt"],
        "authorization_query_args_values": ["example.com", "login"],
        "authorization_query_args_client": ["login_hint", "ui_locales"],
        "require_proof_key_for_code_exchange": false,
        "response_type": ["code"],
        "authorization_cookie_name": "pending",
        "authorization_cookie_path": "/api",
        "authorization_cookie_same_site": "Strict",
        "authorization_cookie_secure": true,
        "authorization_rolling_timeout": 120,
    }))
    .await;
    let a = get(&format!("{}/api/anything?login_hint=john&other=x", env.gw.proxy), "").await;
    assert_eq!(a.status, 302, "{}", a.body);
    let loc = a.location();
    assert_eq!(param(loc, "redirect_uri").as_deref(), Some("http://127.0.0.1:1/callback"));
    assert_eq!(param(loc, "scope").as_deref(), Some("openid email"));
    assert_eq!(param(loc, "audience").as_deref(), Some("api"));
    assert_eq!(param(loc, "max_age").as_deref(), Some("300"));
    assert_eq!(param(loc, "hd").as_deref(), Some("example.com"));
    assert_eq!(param(loc, "prompt").as_deref(), Some("login"));
    assert_eq!(param(loc, "login_hint").as_deref(), Some("john"), "copied from the request");
    assert_eq!(param(loc, "ui_locales"), None, "absent from the request: not sent");
    assert_eq!(param(loc, "other"), None);
    assert_eq!(param(loc, "code_challenge"), None, "PKCE turned off");
    let set = a.cookies("pending");
    assert_eq!(set.len(), 1, "{:?}", a.headers);
    let c = &set[0];
    assert!(c.contains("Path=/api") && c.contains("SameSite=Strict") && c.contains("Secure"), "{c}");
    assert!(c.contains("Max-Age=120"), "authorization_rolling_timeout: {c}");
    assert!(a.cookies("authorization").is_empty());
}

#[tokio::test]
async fn a_pending_authorization_expires_after_authorization_rolling_timeout() {
    let env =
        Env::new(json!({"auth_methods": ["authorization_code", "session"], "authorization_rolling_timeout": 1})).await;
    let (a, cookie) = start(&env).await;
    let callback = login(a.location(), "john", "doe").await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = get(&callback, &cookie).await;
    assert_eq!(r.status, 302, "an expired flow starts again: {}", r.body);
    assert_ne!(param(r.location(), "state"), param(a.location(), "state"));
    refused_without_session(&r, "expired flow");
}

/// Kong's session example (developer.konghq.com, openid-connect examples/session-auth.yaml, and
/// its how-to with `password` added to sign in): the session alone authenticates afterwards.
#[tokio::test]
async fn kongs_session_auth_example_works_unchanged() {
    let env = Env::new(json!({"client_auth": ["client_secret_post"], "auth_methods": ["session"]})).await;
    let r = get(&format!("{}/api/anything", env.gw.proxy), "").await;
    assert_eq!(r.status, 401, "the example alone only accepts a session: {}", r.body);

    env.patch(json!({"auth_methods": ["session", "password"], "cache_tokens_salt": "salt"})).await;
    let basic = super::oidc::basic("john", "doe");
    let resp = no_redirects()
        .get(format!("{}/api/anything", env.gw.proxy))
        .header("authorization", basic)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let cookie = super::oidc::session_cookie(resp.headers());
    assert!(!cookie.is_empty());
    let r = get(&format!("{}/api/anything", env.gw.proxy), &cookie).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["headers"]["Authorization"].as_str().is_some_and(|a| a.starts_with("Bearer ")));
}

/// With `anonymous`, a refused callback goes upstream as the anonymous consumer: without its code,
/// state or the authorization cookie, which would otherwise hand a live code to the upstream.
#[tokio::test]
async fn a_refused_callback_let_through_as_anonymous_carries_no_code_and_no_flow_cookie() {
    let env = Env::new(json!({"auth_methods": ["authorization_code", "session"]})).await;
    let (st, _) = super::util::post(&format!("{}/consumers", env.gw.admin), json!({"username": "guest"})).await;
    assert_eq!(st, 201);
    let (a, cookie) = start(&env).await;
    env.patch(json!({"anonymous": "guest"})).await;
    let state = param(a.location(), "state").unwrap();
    let callback = login(a.location(), "john", "doe").await;
    let code = param(&callback, "code").unwrap();
    // The IdP's answer from another issuer: refused, then let through as the anonymous consumer.
    let url = format!("{}/api/anything?code={code}&state={state}&iss=https%3A%2F%2Fevil.example&keep=1", env.gw.proxy);
    let r = get(&url, &format!("theme=dark; {cookie}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let echo = r.json();
    assert_eq!(echo["headers"]["X-Anonymous-Consumer"], "true", "{echo}");
    assert_eq!(echo["args"], json!({"keep": "1"}), "no code, state or iss upstream: {echo}");
    assert_eq!(echo["headers"]["Cookie"], "theme=dark", "no authorization cookie upstream: {echo}");
}
