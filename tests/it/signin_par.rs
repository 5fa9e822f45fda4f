//! Pushed authorization requests (RFC 9126), signed request objects (RFC 9101) and JWT-secured
//! authorization responses (JARM) in the authorization code flow, through the real proxy and the
//! development IdP: the redirect carries only what each asks for, the IdP (which can require
//! either of the first two per client) signs the user in, a pushed request's hostile answer never
//! reaches the browser, and a callback counts only with a response JWT the IdP signed.

use super::idp_boundary::{Reply, fake_idp};
use super::oidc::{Env, front};
use super::signin::{
    form_post_page, get, kong_example, login, login_answer, no_redirects, param, refused_without_session, start,
};
use super::util::{client, json, tempdir};
use gatehouse_jose::sign::SigningKey;
use gatehouse_jose::{Algorithm, UnverifiedJwt};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `kong_example()` with `extra` on top.
fn config(extra: Value) -> Value {
    let mut c = kong_example();
    if let (Value::Object(c), Value::Object(extra)) = (&mut c, extra) {
        c.extend(extra);
    }
    c
}

/// The names of a URL's query parameters, in order.
fn names(url: &str) -> Vec<String> {
    reqwest::Url::parse(url).unwrap().query_pairs().map(|(k, _)| k.into_owned()).collect()
}

/// Walks the flow from the redirect `start` answered: the IdP's login form, then the callback;
/// asserts a session was made and the original URL is served with it.
async fn completes(env: &Env, location: &str, auth_cookie: &str) {
    let callback = login(location, "john", "doe").await;
    assert!(callback.starts_with(&format!("{}/api/anything", env.gw.proxy)), "{callback}");
    let back = get(&callback, auth_cookie).await;
    assert_eq!(back.status, 302, "{}", back.body);
    let session = back.cookie("session");
    assert!(!session.is_empty(), "a session: {:?}", back.headers);
    let page = get(back.location(), &session).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.json()["args"]["hello"], "world");
}

/// The request object a redirect carries: its header and claims (the IdP checked the signature).
fn request_object(location: &str) -> (gatehouse_jose::Header, serde_json::Map<String, Value>) {
    let jwt = param(location, "request").expect("a request object");
    let parsed = UnverifiedJwt::parse(&jwt).unwrap();
    (parsed.unverified_header().clone(), parsed.unverified_claims().unwrap())
}

#[tokio::test]
async fn par_required_by_config_pushes_every_parameter_and_redirects_with_client_id_and_request_uri() {
    let env = Env::new(config(json!({"require_pushed_authorization_requests": true}))).await;
    let (a, cookie) = start(&env).await;
    assert_eq!(names(a.location()), ["client_id", "request_uri"], "{}", a.location());
    assert_eq!(param(a.location(), "client_id").as_deref(), Some("gatehouse"));
    assert!(param(a.location(), "request_uri").unwrap().starts_with("urn:ietf:params:oauth:request_uri:"));
    assert_eq!(env.calls().await["par"], 1);
    completes(&env, a.location(), &cookie).await;
    assert_eq!(env.calls().await["par"], 1, "one push per sign-in");
}

#[tokio::test]
async fn a_client_that_must_push_signs_in_when_discovery_says_par_is_required() {
    // The plugin's field stays null: discovery decides.
    let env = Env::new(config(json!({"client_id": ["pusher"], "client_secret": ["pusher-secret"],
        "client_auth": ["client_secret_post"]})))
    .await;
    env.dev(
        "clients",
        json!({"client_id": "pusher", "client_secret": "pusher-secret", "require_pushed_authorization_requests": true}),
    )
    .await;
    env.dev("override", json!({"discovery": {"require_pushed_authorization_requests": true}})).await;
    let (a, cookie) = start(&env).await;
    assert_eq!(names(a.location()), ["client_id", "request_uri"], "{}", a.location());
    assert_eq!(env.calls().await["par"], 1);
    completes(&env, a.location(), &cookie).await;
}

#[tokio::test]
async fn a_client_that_must_sign_its_requests_signs_in_with_its_client_jwk() {
    let key = SigningKey::generate(Algorithm::Es256).unwrap().with_kid("gw-jar");
    let env = Env::new(config(json!({"client_id": ["signer"], "client_secret": ["signer-secret"],
        "client_jwk": [key.private_jwk().unwrap()]})))
    .await;
    env.dev(
        "clients",
        json!({"client_id": "signer", "client_secret": "signer-secret", "require_signed_request_object": true,
            "jwks": {"keys": [key.public_jwk().unwrap()]}}),
    )
    .await;
    // Null in the plugin, required by discovery.
    env.dev("override", json!({"discovery": {"require_signed_request_object": true}})).await;
    let (a, cookie) = start(&env).await;
    let loc = a.location().to_string();
    assert_eq!(names(&loc), ["response_type", "client_id", "scope", "request"], "{loc}");
    let (header, claims) = request_object(&loc);
    assert_eq!(
        (header.typ.as_deref(), header.alg.as_str(), header.kid.as_deref()),
        (Some("oauth-authz-req+jwt"), "ES256", Some("gw-jar"))
    );
    assert_eq!(claims["iss"], "signer");
    assert_eq!(claims["aud"], env.issuer.as_str());
    assert_eq!(claims["client_id"], "signer");
    assert!(claims["state"].as_str().is_some_and(|s| s.len() == 24), "{claims:?}");
    assert!(claims["nonce"].is_string() && claims["redirect_uri"].is_string() && claims["jti"].is_string());
    completes(&env, &loc, &cookie).await;

    // PAR as well: the request object is what is pushed.
    env.patch(json!({"require_pushed_authorization_requests": true})).await;
    let (a, cookie) = start(&env).await;
    assert_eq!(names(a.location()), ["client_id", "request_uri"], "{}", a.location());
    assert_eq!(env.calls().await["par"], 1);
    completes(&env, a.location(), &cookie).await;
}

#[tokio::test]
async fn without_a_client_jwk_request_objects_are_signed_with_the_node_key() {
    let env = Env::new(config(json!({"client_id": ["node-signed"], "client_secret": ["node-secret"],
        "require_signed_request_object": true})))
    .await;
    let (st, node_keys) =
        json(client().get(format!("{}/openid-connect/jwks", env.gw.admin)).send().await.unwrap()).await;
    assert_eq!(st, 200, "{node_keys}");
    env.dev(
        "clients",
        json!({"client_id": "node-signed", "client_secret": "node-secret", "require_signed_request_object": true,
            "jwks": node_keys}),
    )
    .await;
    let kid = |alg: &str| {
        let keys = node_keys["keys"].as_array().unwrap();
        keys.iter().find(|k| k["alg"] == alg).and_then(|k| k["kid"].as_str()).unwrap().to_string()
    };
    let (a, cookie) = start(&env).await;
    let (header, _) = request_object(a.location());
    assert_eq!((header.alg.as_str(), header.kid.clone()), ("RS256", Some(kid("RS256"))), "the node's RS256 key (Kong)");
    completes(&env, a.location(), &cookie).await;
    // `client_alg` picks the node's key for that algorithm.
    env.patch(json!({"client_alg": ["ES384"]})).await;
    let (a, cookie) = start(&env).await;
    let (header, _) = request_object(a.location());
    assert_eq!((header.alg.as_str(), header.kid.clone()), ("ES384", Some(kid("ES384"))));
    completes(&env, a.location(), &cookie).await;
}

#[tokio::test]
async fn a_hostile_or_refusing_par_endpoint_gets_no_redirect_to_the_browser() {
    // A provider whose pushed authorization request endpoint answers, in turn: a request_uri with
    // a header break in it, an answer over the node's size cap, no request_uri, then a refusal.
    let pushes = Arc::new(AtomicUsize::new(0));
    let seen = pushes.clone();
    let idp = fake_idp(move |base, path| match path {
        "/.well-known/openid-configuration" => Reply::Json(
            json!({"issuer": base, "authorization_endpoint": format!("{base}/authorize"),
                "pushed_authorization_request_endpoint": format!("{base}/par"),
                "require_pushed_authorization_requests": true})
            .to_string(),
        ),
        "/par" => match seen.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::Json(r#"{"request_uri":"urn:x\r\nSet-Cookie: evil=1"}"#.into()),
            1 => Reply::Sized(4 << 20),
            2 => Reply::Json(r#"{"expires_in":60}"#.into()),
            _ => Reply::Status(400),
        },
        _ => Reply::Status(404),
    })
    .await;
    let dir = tempdir();
    // No connection reuse: the fake reads no request bodies.
    let (_up, gw, _) = front(dir.path(), &idp.url, config(json!({"keepalive": false}))).await;
    for (what, status) in [("a header break", 502), ("too large", 502), ("no request_uri", 502), ("refused", 401)] {
        let a = get(&format!("{}/api/anything?hello=world", gw.proxy), "").await;
        assert_eq!(a.status, status, "{what}: {}", a.body);
        assert!(a.headers.get("location").is_none(), "{what}: no redirect");
        assert!(a.headers.get_all("set-cookie").iter().all(|c| !c.to_str().unwrap_or("evil").contains("evil")));
        assert!(a.cookies("authorization").is_empty(), "{what}: no flow started");
        assert!(a.json().get("headers").is_none(), "{what}: not proxied");
    }
    assert_eq!(pushes.load(Ordering::SeqCst), 4);
}

/// The claims of the `response` JWT of a JARM callback URL, unverified.
fn response_claims(callback: &str) -> serde_json::Map<String, Value> {
    UnverifiedJwt::parse(&param(callback, "response").expect("a response")).unwrap().unverified_claims().unwrap()
}

#[tokio::test]
async fn jarm_signs_in_from_the_response_jwt_alone_and_refuses_forged_ones() {
    let env = Env::new(config(json!({"response_mode": "query.jwt"}))).await;
    let base = format!("{}/api/anything", env.gw.proxy);
    let (a, cookie) = start(&env).await;
    assert_eq!(param(a.location(), "response_mode").as_deref(), Some("query.jwt"));
    let callback = login(a.location(), "john", "doe").await;
    assert_eq!(names(&callback), ["response"], "{callback}");
    let claims = response_claims(&callback);
    let (code, state) = (claims["code"].as_str().unwrap(), claims["state"].as_str().unwrap());

    // The JWT's code and state, sent plainly: nothing is exchanged, the browser goes to the IdP again.
    let r = get(&format!("{base}?code={code}&state={state}"), &cookie).await;
    assert_eq!(r.status, 302, "{}", r.body);
    assert!(r.location().starts_with(&format!("{}/authorize?", env.issuer)), "{}", r.location());
    refused_without_session(&r, "plain code and state");
    // The same claims signed by a key the IdP does not publish: 401.
    let forged = env.mint(json!({"key": "foreign", "claims": {"code": code, "state": state}})).await;
    let r = get(&format!("{base}?response={forged}"), &cookie).await;
    assert_eq!(r.status, 401, "{}", r.body);
    refused_without_session(&r, "forged response");
    assert_eq!(env.calls().await["token"], 0, "no code was exchanged");

    // The real response signs in, and lands on the original URL.
    let back = get(&callback, &cookie).await;
    assert_eq!(back.status, 302, "{}", back.body);
    assert_eq!(back.location(), format!("{base}?hello=world"));
    let page = get(back.location(), &back.cookie("session")).await;
    assert_eq!(page.status, 200, "{}", page.body);

    // A response JWT naming another issuer (a mix-up) is refused.
    env.dev("next", json!({"authorization_response": {"iss": "https://evil.example"}})).await;
    let (a, cookie) = start(&env).await;
    let callback = login(a.location(), "john", "doe").await;
    assert_eq!(response_claims(&callback)["iss"], "https://evil.example");
    let r = get(&callback, &cookie).await;
    assert_eq!(r.status, 401, "{}", r.body);
    refused_without_session(&r, "mix-up");
}

#[tokio::test]
async fn jarm_form_post_signs_in_from_the_posted_response_jwt() {
    let env = Env::new(config(json!({"response_mode": "form_post.jwt"}))).await;
    let (a, cookie) = start(&env).await;
    let page = login_answer(a.location(), "john", "doe").await.text().await.unwrap();
    let (action, fields) = form_post_page(&page);
    assert_eq!(fields.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["response"], "{page}");
    let back = no_redirects().post(&action).header("cookie", &cookie).form(&fields).send().await.unwrap();
    assert_eq!(back.status().as_u16(), 302, "{}", back.text().await.unwrap());
    let session: Vec<String> = back
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string())
        .filter(|c| c.starts_with("session="))
        .collect();
    assert_eq!(session.len(), 1, "{:?}", back.headers());
    let landed = get(back.headers()["location"].to_str().unwrap(), &session[0]).await;
    assert_eq!(landed.status, 200, "{}", landed.body);
    assert_eq!(landed.json()["args"]["hello"], "world");
}

#[tokio::test]
async fn jarm_with_login_action_upstream_proxies_the_callback_without_its_response() {
    let env = Env::new(json!({"auth_methods": ["authorization_code", "session"], "preserve_query_args": true,
        "response_mode": "jwt"}))
    .await;
    let (a, cookie) = start(&env).await;
    let callback = login(a.location(), "john", "doe").await;
    assert_eq!(names(&callback), ["response"], "jwt is query.jwt for the code flow");
    let back = get(&callback, &cookie).await;
    assert_eq!(back.status, 200, "{}", back.body);
    assert_eq!(back.json()["args"], json!({"hello": "world"}), "no response JWT upstream: {}", back.body);
}
