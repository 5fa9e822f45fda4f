//! Pushed authorization requests (RFC 9126) and signed request objects (RFC 9101).

use super::*;
use crate::idp::util::{b64, now};
use gatehouse_jose::Algorithm;
use gatehouse_jose::sign::{SigningKey, sign_jwt};

const PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// The authorization parameters of a request from `gatehouse`, with `extra` added or replaced.
fn params<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![
        ("response_type", "code"),
        ("redirect_uri", CB),
        ("scope", "openid"),
        ("state", "pushed"),
        ("nonce", "pn"),
    ];
    p.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    p.extend_from_slice(extra);
    p
}

/// Pushes `form` as `gatehouse`; returns the status and the answer.
async fn push(idp: &TestIdp, form: &[(&str, &str)]) -> (StatusCode, Value) {
    idp.post_basic("/par", form).await
}

/// Logs `john` in at the form with the parameters `query` (a `request_uri` or `request`).
async fn log_in(idp: &TestIdp, query: &[(&str, &str)]) -> reqwest::Response {
    let mut form = query.to_vec();
    form.extend([("username", "john"), ("password", "doe")]);
    idp.post_form("/authorize", &form).await
}

async fn is_bad_request_page(resp: reqwest::Response) -> bool {
    resp.status() == StatusCode::BAD_REQUEST
        && resp.headers().get("location").is_none()
        && resp.headers()["content-type"].to_str().unwrap().starts_with("text/html")
}

#[tokio::test]
async fn a_pushed_request_is_used_once_through_its_request_uri() {
    let idp = start().await;
    let (status, pushed) = push(&idp, &params(&[("response_mode", "fragment")])).await;
    assert_eq!(status, StatusCode::CREATED, "{pushed}");
    assert_eq!(pushed["expires_in"], 60);
    let uri = pushed["request_uri"].as_str().unwrap();
    assert!(uri.starts_with(PREFIX) && uri.len() > PREFIX.len() + 40, "{uri}");
    let query = [("client_id", "gatehouse"), ("request_uri", uri)];

    // The form can be shown (and reloaded) before the login spends it.
    for _ in 0..2 {
        let page = idp.authorize(&query, None).await.text().await.unwrap();
        assert_eq!(hidden(&page, "request_uri").as_deref(), Some(uri));
        assert!(hidden(&page, "state").is_none(), "the pushed parameters stay at the IdP");
    }
    let resp = log_in(&idp, &query).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert!(resp.headers()["location"].to_str().unwrap().starts_with(&format!("{CB}#")), "pushed response_mode");
    let answer = redirected(&resp);
    assert_eq!(answer["state"], "pushed");
    let (status, tokens) = idp.exchange(&answer["code"], &[]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(claims_of(tokens["id_token"].as_str().unwrap())["nonce"], "pn");

    assert!(is_bad_request_page(log_in(&idp, &query).await).await, "spent");
    assert!(is_bad_request_page(idp.authorize(&query, None).await).await);
    let calls = idp.calls().await;
    assert_eq!((calls["par"].as_u64(), calls["authorize"].as_u64()), (Some(1), Some(5)));
}

#[tokio::test]
async fn outside_parameters_do_not_change_a_pushed_request() {
    let idp = start().await;
    let (_, pushed) = push(&idp, &params(&[])).await;
    let uri = pushed["request_uri"].as_str().unwrap();
    let query = [
        ("client_id", "gatehouse"),
        ("request_uri", uri),
        ("redirect_uri", "http://127.0.0.1:7777/elsewhere"),
        ("state", "outside"),
    ];
    let answer = redirected(&log_in(&idp, &query).await);
    assert_eq!(answer["state"], "pushed");
    assert_eq!(idp.exchange(&answer["code"], &[]).await.0, StatusCode::OK, "bound to the pushed redirect_uri");
}

#[tokio::test]
async fn request_uris_belong_to_their_client_and_expire() {
    let idp = start_with(IdpConfig { par_ttl: 1, ..IdpConfig::default() }).await;
    let (_, pushed) = push(&idp, &params(&[])).await;
    let uri = pushed["request_uri"].as_str().unwrap();
    assert_eq!(pushed["expires_in"], 1);
    let long = format!("{PREFIX}{}", "a".repeat(5000));
    for query in [
        vec![("client_id", "gatehouse-public"), ("request_uri", uri)],
        vec![("request_uri", uri)],
        vec![("client_id", "gatehouse"), ("request_uri", "urn:ietf:params:oauth:request_uri:made-up")],
        vec![("client_id", "gatehouse"), ("request_uri", "https://attacker.example/request.jwt")],
        vec![("client_id", "gatehouse"), ("request_uri", long.as_str())],
        vec![("client_id", "gatehouse"), ("request_uri", uri), ("request", "a.b.c")],
    ] {
        assert!(is_bad_request_page(idp.authorize(&query, None).await).await, "{query:.80?}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert!(is_bad_request_page(idp.authorize(&[("client_id", "gatehouse"), ("request_uri", uri)], None).await).await);
}

#[tokio::test]
async fn par_refuses_bad_requests() {
    let idp = start().await;
    let resp = idp.post_form("/par", &params(&[])).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "client authentication required");
    let resp = idp.http.post(idp.url("/par")).basic_auth("gatehouse", Some("wrong")).form(&params(&[])).send().await;
    assert_eq!(resp.unwrap().status(), StatusCode::UNAUTHORIZED);
    let long = "s".repeat(5000);
    for (form, error) in [
        (params(&[("request_uri", "urn:x")]), "invalid_request"),
        (params(&[("redirect_uri", "https://evil.example/cb")]), "invalid_request"),
        (params(&[("response_type", "token")]), "unsupported_response_type"),
        (params(&[("code_challenge_method", "S256")]), "invalid_request"),
        (params(&[("response_mode", "query.jwt.jwt")]), "invalid_request"),
        (params(&[("state", long.as_str())]), "invalid_request"),
        (params(&[("request", "garbage")]), "invalid_request_object"),
        (vec![("response_type", "code")], "invalid_request"),
    ] {
        let (status, body) = push(&idp, &form).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some(error)), "{form:.80?}");
    }
    let resp = idp.http.get(idp.url("/par")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let resp = idp.http.post(idp.url("/par")).basic_auth("gatehouse", Some(SECRET)).json(&json!({"a": 1})).send().await;
    assert_eq!(resp.unwrap().status(), StatusCode::BAD_REQUEST);
    // A public client pushes with its client_id; the pushed request is its own.
    let mut form = params(&[]);
    form.push(("client_id", "gatehouse-public"));
    let resp = idp.post_form("/par", &form).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let uri = resp.json::<Value>().await.unwrap()["request_uri"].as_str().unwrap().to_owned();
    assert!(is_bad_request_page(idp.authorize(&[("client_id", "gatehouse"), ("request_uri", &uri)], None).await).await);
    assert_eq!(idp.calls().await["par"], 13);
}

#[tokio::test]
async fn a_client_can_require_pushed_requests() {
    let idp = start().await;
    let client = json!({"client_id": "strict", "client_secret": "s", "require_pushed_authorization_requests": true});
    assert_eq!(idp.dev("/_dev/clients", client).await.0, StatusCode::CREATED);
    let mut query = params(&[]);
    query.push(("client_id", "strict"));
    let resp = idp.authorize(&query, None).await;
    let answer = redirected(&resp);
    assert_eq!((answer["error"].as_str(), answer["state"].as_str()), ("invalid_request", "pushed"));
    assert!(!answer.contains_key("code"));

    let resp = idp.http.post(idp.url("/par")).basic_auth("strict", Some("s")).form(&params(&[])).send().await.unwrap();
    let uri = resp.json::<Value>().await.unwrap()["request_uri"].as_str().unwrap().to_owned();
    let resp = log_in(&idp, &[("client_id", "strict"), ("request_uri", &uri)]).await;
    assert!(redirected(&resp).contains_key("code"));
}

/// Registers `jar`, with a secret and the public half of `key`, plus `flags`.
async fn register_jar(idp: &TestIdp, key: &SigningKey, flags: Value) {
    let mut client =
        json!({"client_id": "jar", "client_secret": "jar-secret", "jwks": {"keys": [key.public_jwk().unwrap()]}});
    client.as_object_mut().unwrap().extend(flags.as_object().unwrap().clone());
    assert_eq!(idp.dev("/_dev/clients", client).await.0, StatusCode::CREATED);
}

/// The claims of a good request object from `jar` to `idp`, with `over` merged in.
fn object_claims(idp: &TestIdp, over: Value) -> Value {
    let mut claims = json!({
        "iss": "jar", "aud": idp.base, "exp": now() + 60, "iat": now(), "jti": "j1",
        "client_id": "jar", "response_type": "code", "redirect_uri": CB, "scope": "openid",
        "state": "inside", "nonce": "in", "max_age": 600, "claims": {"id_token": {"acr": null}},
    });
    for (k, v) in over.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

fn signed(key: &SigningKey, claims: &Value) -> String {
    sign_jwt(&json!({"typ": "oauth-authz-req+jwt"}), claims, key).unwrap()
}

/// Exchanges a code given to `jar`.
async fn exchange_as_jar(idp: &TestIdp, code: &str) -> Value {
    let form = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CB)];
    let resp = idp.http.post(idp.url("/token")).basic_auth("jar", Some("jar-secret")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn signed_request_objects_at_authorize_and_par() {
    let idp = start().await;
    let key = SigningKey::generate(Algorithm::Es256).unwrap().with_kid("jar-1");
    register_jar(&idp, &key, json!({})).await;
    let jwt = signed(&key, &object_claims(&idp, json!({})));
    // By value: the object's parameters win over the ones outside.
    let resp = log_in(&idp, &[("client_id", "jar"), ("request", &jwt), ("state", "outside"), ("nonce", "out")]).await;
    let answer = redirected(&resp);
    assert_eq!(answer["state"], "inside");
    let tokens = exchange_as_jar(&idp, &answer["code"]).await;
    assert_eq!(claims_of(tokens["id_token"].as_str().unwrap())["nonce"], "in");

    // Signed with the client secret, and pushed.
    let hs = SigningKey::hmac(Algorithm::Hs256, b"jar-secret").unwrap();
    let jwt = signed(&hs, &object_claims(&idp, json!({"state": "hs"})));
    let resp = idp.http.post(idp.url("/par")).basic_auth("jar", Some("jar-secret")).form(&[("request", jwt.as_str())]);
    let resp = resp.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let uri = resp.json::<Value>().await.unwrap()["request_uri"].as_str().unwrap().to_owned();
    let answer = redirected(&log_in(&idp, &[("client_id", "jar"), ("request_uri", &uri)]).await);
    assert_eq!(answer["state"], "hs");
    exchange_as_jar(&idp, &answer["code"]).await;
}

#[tokio::test]
async fn request_objects_are_verified() {
    let idp = start().await;
    let key = SigningKey::generate(Algorithm::Es256).unwrap().with_kid("jar-1");
    register_jar(&idp, &key, json!({})).await;
    let other = SigningKey::generate(Algorithm::Es256).unwrap().with_kid("jar-1");
    let wrong_secret = SigningKey::hmac(Algorithm::Hs256, b"guessed").unwrap();
    let unsigned =
        format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(object_claims(&idp, json!({})).to_string().as_bytes()));
    let bad = [
        signed(&other, &object_claims(&idp, json!({}))),
        signed(&wrong_secret, &object_claims(&idp, json!({}))),
        unsigned,
        "garbage".to_owned(),
        "a.b.c".to_owned(),
        signed(&key, &object_claims(&idp, json!({"iss": "gatehouse"}))),
        signed(&key, &object_claims(&idp, json!({"iss": null}))),
        signed(&key, &object_claims(&idp, json!({"aud": "https://other.example"}))),
        signed(&key, &object_claims(&idp, json!({"aud": null}))),
        signed(&key, &object_claims(&idp, json!({"exp": now() - 120}))),
        signed(&key, &object_claims(&idp, json!({"nbf": now() + 600}))),
        signed(&key, &object_claims(&idp, json!({"client_id": "gatehouse"}))),
        signed(&key, &object_claims(&idp, json!({"request_uri": "urn:x"}))),
        signed(&key, &object_claims(&idp, json!({"redirect_uri": "https://evil.example/cb"}))),
        signed(&key, &object_claims(&idp, json!({"state": "x".repeat(5000)}))),
        format!("{}.{}", "a".repeat(40_000), "b"),
    ];
    for jwt in &bad {
        assert!(is_bad_request_page(log_in(&idp, &[("client_id", "jar"), ("request", jwt)]).await).await, "{jwt:.60}");
        let resp =
            idp.http.post(idp.url("/par")).basic_auth("jar", Some("jar-secret")).form(&[("request", jwt.as_str())]);
        let resp = resp.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{jwt:.60}");
    }
    // The same object presented by another client is that client's problem, not jar's.
    let good = signed(&key, &object_claims(&idp, json!({})));
    assert!(is_bad_request_page(log_in(&idp, &[("client_id", "gatehouse"), ("request", &good)]).await).await);
    // Without exp, or with an aud list holding the issuer, it is fine.
    for over in [json!({"exp": null}), json!({"aud": ["x", idp.base]}), json!({"client_id": null})] {
        let jwt = signed(&key, &object_claims(&idp, over.clone()));
        assert!(
            redirected(&log_in(&idp, &[("client_id", "jar"), ("request", &jwt)]).await).contains_key("code"),
            "{over}"
        );
    }
}

#[tokio::test]
async fn a_client_can_require_signed_request_objects() {
    let idp = start().await;
    let key = SigningKey::generate(Algorithm::Rs256).unwrap().with_kid("r1");
    register_jar(&idp, &key, json!({"require_signed_request_object": true})).await;
    let mut query = params(&[]);
    query.push(("client_id", "jar"));
    let answer = redirected(&idp.authorize(&query, None).await);
    assert_eq!((answer["error"].as_str(), answer["state"].as_str()), ("invalid_request", "pushed"));
    let resp = idp.http.post(idp.url("/par")).basic_auth("jar", Some("jar-secret")).form(&params(&[])).send().await;
    let resp = resp.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_request");

    let jwt = signed(&key, &object_claims(&idp, json!({})));
    assert!(redirected(&log_in(&idp, &[("client_id", "jar"), ("request", &jwt)]).await).contains_key("code"));
    let resp = idp.http.post(idp.url("/par")).basic_auth("jar", Some("jar-secret")).form(&[("request", jwt.as_str())]);
    let uri = resp.send().await.unwrap().json::<Value>().await.unwrap()["request_uri"].as_str().unwrap().to_owned();
    assert!(redirected(&log_in(&idp, &[("client_id", "jar"), ("request_uri", &uri)]).await).contains_key("code"));
}
