//! Logout through the real binary, the development IdP and an echo upstream: Kong's logout
//! example unchanged (revocation counted at the IdP, the end-session redirect followed, the old
//! cookie refused), the redirect-only and 204 answers, and the checks on `logout_redirect_uri`.

use super::oidc::{Env, basic, session_cookie};
use super::util::{client, json, post};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// A client that never follows redirects, so each 302 is seen.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// `method url` with headers and an optional form body; status, headers and body text.
async fn send(method: &str, url: &str, headers: &[(&str, &str)], form: Option<&str>) -> (u16, HeaderMap, String) {
    let mut req = no_redirects().request(method.parse().unwrap(), url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(body) = form {
        req = req.header("content-type", "application/x-www-form-urlencoded").body(body.to_string());
    }
    let resp = req.send().await.unwrap();
    let (st, h) = (resp.status().as_u16(), resp.headers().clone());
    (st, h, resp.text().await.unwrap())
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

/// The `Set-Cookie` headers that expire the session cookie.
fn expired_sessions(h: &HeaderMap) -> usize {
    h.get_all("set-cookie")
        .iter()
        .filter(|v| v.to_str().unwrap().starts_with("session=;") && v.to_str().unwrap().contains("Max-Age=0"))
        .count()
}

/// A session made with john's password grant; the cookie and the access token the upstream saw.
async fn signed_in(env: &Env) -> (String, String) {
    let (st, body, h) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    assert_eq!(st, 200, "{body}");
    let cookie = session_cookie(&h);
    assert!(cookie.starts_with("session="), "{h:?}");
    let (st, body, _) = env.call(&[("cookie", &cookie)]).await;
    assert_eq!(st, 200, "the session alone authenticates: {body}");
    let token = body["headers"]["Authorization"].as_str().unwrap().trim_start_matches("Bearer ").to_string();
    (cookie, token)
}

/// Whether the IdP still says `token` is active (asked as the `gatehouse` client).
async fn active(env: &Env, token: &str) -> bool {
    let resp = client()
        .post(format!("{}/introspect", env.issuer))
        .basic_auth("gatehouse", Some("gatehouse-secret"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let (st, v) = json(resp).await;
    assert_eq!(st, 200, "{v}");
    v["active"] == true
}

fn calls(v: &Value, endpoint: &str) -> i64 {
    v[endpoint].as_i64().unwrap()
}

/// Kong's `logout.yaml` example (developer.konghq.com, openid-connect/examples/logout), unchanged.
#[tokio::test]
async fn kongs_logout_example_revokes_the_tokens_and_ends_the_session() {
    let env = Env::new(json!({
        "client_auth": ["client_secret_post"],
        "auth_methods": ["password", "session"],
        "logout_uri_suffix": "/logout",
        "logout_methods": ["POST"],
        "logout_revoke": true,
    }))
    .await;
    let (cookie, access_token) = signed_in(&env).await;
    assert!(active(&env, &access_token).await);

    // GET is not a logout method here: proxied as any request of the session.
    let (st, body, _) = env.call_path("/api/logout", &[("cookie", &cookie)]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["method"], "GET");

    let before = env.calls().await;
    let url = format!("{}/api/logout", env.gw.proxy);
    let (st, h, body) = send("POST", &url, &[("cookie", &cookie)], None).await;
    assert_eq!(st, 302, "{body}");
    assert!(body.is_empty());
    let location = header(&h, "location");
    let end_session = format!("{}/logout?id_token_hint=", env.issuer);
    assert!(location.starts_with(&end_session), "{location}");
    assert!(location.ends_with("&client_id=gatehouse"), "{location}");
    assert!(!location.contains("post_logout_redirect_uri"), "none configured: {location}");
    assert_eq!(header(&h, "cache-control"), "no-store");
    assert_eq!(expired_sessions(&h), 1, "{h:?}");

    let after = env.calls().await;
    assert_eq!(calls(&after, "revoke") - calls(&before, "revoke"), 2, "refresh then access token: {after}");
    assert_eq!(calls(&after, "logout"), calls(&before, "logout"), "the browser goes there, not the gateway");
    assert!(!active(&env, &access_token).await, "the access token was revoked at the IdP");

    // The browser follows the redirect: the IdP signs it out (HTTPie --follow shows its 200).
    let (st, _, page) = send("GET", &location, &[], None).await;
    assert_eq!(st, 200, "{page}");
    assert!(page.contains("Signed out"), "{page}");

    // The old cookie is refused, and the upstream never sees the request.
    let (st, body, h) = env.call(&[("cookie", &cookie)]).await;
    assert_eq!(st, 401, "{body}");
    assert!(body.get("headers").is_none(), "the upstream was not called: {body}");
    assert_eq!(expired_sessions(&h), 1, "and expired again");

    // A logout without a session is still answered, never proxied.
    let (st, h, _) = send("POST", &url, &[("authorization", &basic("john", "doe"))], None).await;
    assert_eq!(st, 302);
    assert_eq!(header(&h, "location"), format!("{}/logout?client_id=gatehouse", env.issuer));
    assert_eq!(expired_sessions(&h), 0);
}

/// RP-initiated logout with `post_logout_redirect_uri`: the IdP sends the browser back to the
/// application when the URI is registered for the client.
#[tokio::test]
async fn logout_through_the_idp_returns_to_logout_redirect_uri() {
    let env = Env::new(json!({
        "client_id": ["app"],
        "client_secret": ["app-secret"],
        "auth_methods": ["password", "session"],
        "logout_query_arg": "logout",
        "logout_methods": ["GET", "POST", "DELETE"],
        "logout_redirect_uri": ["https://app.example/signed-out?from=gateway"],
    }))
    .await;
    let registered = json!({
        "client_id": "app",
        "client_secret": "app-secret",
        "redirect_uris": ["https://app.example/signed-out?from=gateway"],
    });
    env.dev("clients", registered).await;
    let (cookie, _) = signed_in(&env).await;
    let before = env.calls().await;

    let url = format!("{}/api/anything?logout", env.gw.proxy);
    let (st, h, _) = send("GET", &url, &[("cookie", &cookie)], None).await;
    assert_eq!(st, 302);
    let location = header(&h, "location");
    let back = "post_logout_redirect_uri=https%3A%2F%2Fapp.example%2Fsigned-out%3Ffrom%3Dgateway";
    assert!(location.starts_with(&format!("{}/logout?id_token_hint=", env.issuer)), "{location}");
    assert!(location.ends_with(&format!("&{back}&client_id=app")), "{location}");
    assert_eq!(calls(&env.calls().await, "revoke"), calls(&before, "revoke"), "logout_revoke is off by default");

    let (st, h, page) = send("GET", &location, &[], None).await;
    assert_eq!(st, 302, "{page}");
    assert_eq!(header(&h, "location"), "https://app.example/signed-out?from=gateway");
    assert_eq!(env.call(&[("cookie", &cookie)]).await.0, 401);
}

/// Without an end-session endpoint (none configured, none discovered): a 302 to
/// `logout_redirect_uri`, else 204. `logout_post_arg` works without `logout_uri_suffix`.
#[tokio::test]
async fn without_an_end_session_endpoint_logout_redirects_or_answers_204() {
    let env = Env::new(json!({
        "auth_methods": ["password", "session"],
        "logout_post_arg": "logout",
        "logout_redirect_uri": ["https://elsewhere.example/bye"],
    }))
    .await;
    env.dev("override", json!({"discovery": {"end_session_endpoint": null}})).await;
    let (cookie, _) = signed_in(&env).await;
    let url = format!("{}/api/anything", env.gw.proxy);

    // A form without the argument is an ordinary request, its body passed on.
    let (st, _, body) = send("POST", &url, &[("cookie", &cookie)], Some("a=1&logoutx=2")).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["form"], json!({"a": "1", "logoutx": "2"}));

    let (st, h, body) = send("POST", &url, &[("cookie", &cookie)], Some("a=1&logout=")).await;
    assert_eq!(st, 302, "{body}");
    assert_eq!(header(&h, "location"), "https://elsewhere.example/bye");
    assert_eq!(header(&h, "cache-control"), "no-store");
    assert_eq!(expired_sessions(&h), 1);
    assert_eq!(env.call(&[("cookie", &cookie)]).await.0, 401);

    env.patch(json!({"logout_redirect_uri": null})).await;
    let (cookie, _) = signed_in(&env).await;
    let (st, h, body) = send("DELETE", &url, &[("cookie", &cookie)], Some("logout")).await;
    assert_eq!(st, 204);
    assert!(body.is_empty());
    assert!(h.get("location").is_none());
    assert_eq!(header(&h, "cache-control"), "no-store");
    assert_eq!(expired_sessions(&h), 1);
    assert_eq!(env.call(&[("cookie", &cookie)]).await.0, 401);
}

/// `logout_redirect_uri` is where browsers are sent: only absolute http(s) URLs without
/// userinfo are accepted (any host: it is the operator's choice, not the request's).
#[tokio::test]
async fn logout_redirect_uri_must_be_an_absolute_http_url_without_userinfo() {
    let env = Env::new(json!({"auth_methods": ["session"]})).await;
    let plugin = |uri: &str| {
        let mut config = super::oidc::base_config(&env.issuer);
        config["logout_redirect_uri"] = json!([uri]);
        json!({"name": "openid-connect", "config": config})
    };
    for bad in
        ["javascript:alert(1)", "javascript://x/%0Aalert(1)", "/after-logout", "https://app.example@evil.example/"]
    {
        let (st, body) = post(&format!("{}/plugins", env.gw.admin), plugin(bad)).await;
        assert_eq!(st, 400, "{bad}: {body}");
        assert!(!body["fields"]["config"]["logout_redirect_uri"].is_null(), "{bad}: {body}");
    }
    let (st, body) = post(&format!("{}/plugins", env.gw.admin), plugin("https://elsewhere.example/bye")).await;
    assert_eq!(st, 201, "a foreign host is the operator's choice: {body}");
}
