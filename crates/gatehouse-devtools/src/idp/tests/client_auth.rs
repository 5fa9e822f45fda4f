//! Client authentication methods at the token endpoint.

use super::*;
use crate::idp::util::now;
use gatehouse_jose::Algorithm;
use gatehouse_jose::sign::{SigningKey, sign_jwt};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn assertion(key: &SigningKey, client_id: &str, aud: &str, exp_in: i64) -> String {
    let claims = json!({
        "iss": client_id, "sub": client_id, "aud": aud, "jti": uuid::Uuid::new_v4().to_string(),
        "iat": now(), "exp": now() + exp_in,
    });
    sign_jwt(&json!({"typ": "JWT"}), &claims, key).unwrap()
}

async fn with_assertion(idp: &TestIdp, token: &str) -> reqwest::Response {
    idp.post_form(
        "/token",
        &[("grant_type", "client_credentials"), ("client_assertion_type", JWT_BEARER), ("client_assertion", token)],
    )
    .await
}

async fn assert_invalid_client(resp: reqwest::Response) {
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_client");
}

#[tokio::test]
async fn client_secret_basic_and_post() {
    let idp = start().await;
    let (status, _) = idp.post_basic("/token", &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK);
    let resp = idp
        .post_form(
            "/token",
            &[("grant_type", "client_credentials"), ("client_id", "gatehouse"), ("client_secret", SECRET)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_invalid_client() {
    let idp = start().await;
    let wrong_basic = idp
        .http
        .post(idp.url("/token"))
        .basic_auth("gatehouse", Some("nope"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_invalid_client(wrong_basic).await;
    let wrong_post = idp
        .post_form(
            "/token",
            &[("grant_type", "client_credentials"), ("client_id", "gatehouse"), ("client_secret", "x")],
        )
        .await;
    assert_invalid_client(wrong_post).await;
    let unknown = idp
        .post_form("/token", &[("grant_type", "client_credentials"), ("client_id", "nobody"), ("client_secret", "x")])
        .await;
    assert_invalid_client(unknown).await;
    let none_for_confidential =
        idp.post_form("/token", &[("grant_type", "client_credentials"), ("client_id", "gatehouse")]).await;
    assert_invalid_client(none_for_confidential).await;
    let nothing = idp.post_form("/token", &[("grant_type", "client_credentials")]).await;
    assert_invalid_client(nothing).await;
    let garbage = idp
        .http
        .post(idp.url("/token"))
        .header("authorization", "Basic !!!")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_invalid_client(garbage).await;
}

#[tokio::test]
async fn two_methods_at_once_are_refused() {
    let idp = start().await;
    let (status, body) =
        idp.post_basic("/token", &[("grant_type", "client_credentials"), ("client_secret", SECRET)]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
}

#[tokio::test]
async fn public_client_uses_none() {
    let idp = start().await;
    let resp = idp
        .post_form(
            "/token",
            &[("grant_type", "password"), ("username", "john"), ("password", "doe"), ("client_id", "gatehouse-public")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = idp
        .post_form(
            "/token",
            &[
                ("grant_type", "password"),
                ("username", "john"),
                ("password", "doe"),
                ("client_id", "gatehouse-public"),
                ("client_secret", "x"),
            ],
        )
        .await;
    assert_invalid_client(resp).await;
}

#[tokio::test]
async fn client_secret_jwt() {
    let idp = start().await;
    let key = SigningKey::hmac(Algorithm::Hs256, SECRET.as_bytes()).unwrap();
    let good = with_assertion(&idp, &assertion(&key, "gatehouse", &idp.url("/token"), 60)).await;
    assert_eq!(good.status(), StatusCode::OK);
    let issuer_aud = with_assertion(&idp, &assertion(&key, "gatehouse", &idp.base, 60)).await;
    assert_eq!(issuer_aud.status(), StatusCode::OK);

    assert_invalid_client(with_assertion(&idp, &assertion(&key, "gatehouse", "https://elsewhere", 60)).await).await;
    assert_invalid_client(with_assertion(&idp, &assertion(&key, "gatehouse", &idp.base, -120)).await).await;
    let wrong = SigningKey::hmac(Algorithm::Hs256, b"not-the-secret").unwrap();
    assert_invalid_client(with_assertion(&idp, &assertion(&wrong, "gatehouse", &idp.base, 60)).await).await;
    assert_invalid_client(with_assertion(&idp, "not.a.jwt").await).await;

    let claims = json!({"iss": "gatehouse", "sub": "someone-else", "aud": idp.base, "exp": now() + 60});
    let mismatched = sign_jwt(&json!({}), &claims, &key).unwrap();
    assert_invalid_client(with_assertion(&idp, &mismatched).await).await;

    let wrong_type = idp
        .post_form(
            "/token",
            &[("grant_type", "client_credentials"), ("client_assertion_type", "x"), ("client_assertion", "a.b.c")],
        )
        .await;
    assert_eq!(wrong_type.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn private_key_jwt_with_a_registered_jwks() {
    let idp = start().await;
    let key = SigningKey::generate(Algorithm::Es256).unwrap().with_kid("k1");
    let client = json!({"client_id": "pk", "jwks": {"keys": [key.public_jwk().unwrap()]}});
    let (status, body) = idp.dev("/_dev/clients", client).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let good = with_assertion(&idp, &assertion(&key, "pk", &idp.url("/token"), 60)).await;
    assert_eq!(good.status(), StatusCode::OK);
    let token: Value = good.json().await.unwrap();
    assert_eq!(claims_of(token["access_token"].as_str().unwrap())["sub"], "pk");

    let other = SigningKey::generate(Algorithm::Es256).unwrap().with_kid("k1");
    assert_invalid_client(with_assertion(&idp, &assertion(&other, "pk", &idp.url("/token"), 60)).await).await;
    // An HMAC assertion for a client without a secret is not private_key_jwt in disguise.
    let hs = SigningKey::hmac(Algorithm::Hs256, b"guess").unwrap();
    assert_invalid_client(with_assertion(&idp, &assertion(&hs, "pk", &idp.url("/token"), 60)).await).await;
    // And gatehouse, which has no jwks, cannot use private_key_jwt.
    assert_invalid_client(with_assertion(&idp, &assertion(&key, "gatehouse", &idp.url("/token"), 60)).await).await;

    let (status, _) = idp.dev("/_dev/clients", json!({"client_id": "bad", "jwks": {"keys": "x"}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = idp.dev("/_dev/clients", json!({"client_id": ""})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
