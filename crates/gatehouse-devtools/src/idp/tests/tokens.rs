//! Introspection, userinfo and revocation.

use super::*;

#[tokio::test]
async fn introspection_of_active_and_inactive_tokens() {
    let idp = start().await;
    let body = idp.login().await;
    let access = body["access_token"].as_str().unwrap();
    let active = idp.introspect(access).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["client_id"], "gatehouse");
    assert_eq!(active["username"], "john");
    assert_eq!(active["token_type"], "Bearer");
    assert_eq!(active["sub"], claims_of(access)["sub"]);
    assert_eq!(active["scope"], "openid email profile");
    assert!(active["exp"].is_i64());

    let refresh = idp.introspect(body["refresh_token"].as_str().unwrap()).await;
    assert_eq!((refresh["active"].as_bool(), refresh["token_type"].as_str()), (Some(true), Some("Refresh")));
    assert_eq!(refresh["client_id"], "gatehouse");
    assert_eq!(refresh["username"], "john");

    for token in ["garbage", "a.b.c", &idp.mint(json!({"ttl": -10})).await, &idp.mint(json!({"key": "foreign"})).await]
    {
        assert_eq!(idp.introspect(token).await, json!({"active": false}), "{token}");
    }
    let other_issuer = idp.mint(json!({"claims": {"iss": "https://other.example"}})).await;
    assert_eq!(idp.introspect(&other_issuer).await["active"], false);
}

#[tokio::test]
async fn introspection_requires_client_authentication() {
    let idp = start().await;
    let resp = idp.post_form("/introspect", &[("token", "x")]).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (status, body) = idp.post_basic("/introspect", &[]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
}

#[tokio::test]
async fn introspection_as_a_signed_jwt() {
    let idp = start().await;
    let access = idp.login().await["access_token"].as_str().unwrap().to_owned();
    for (accept, content_type) in [
        ("application/token-introspection+jwt", "application/token-introspection+jwt"),
        ("application/jwt", "application/jwt"),
    ] {
        let resp = idp
            .http
            .post(idp.url("/introspect"))
            .basic_auth("gatehouse", Some(SECRET))
            .header("accept", accept)
            .form(&[("token", access.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], content_type);
        let jwt = resp.text().await.unwrap();
        assert_eq!(header_of(&jwt)["typ"], "token-introspection+jwt");
        let claims = idp.verify(&jwt).await.unwrap().claims;
        assert_eq!(claims["iss"], idp.base);
        assert_eq!(claims["aud"], "gatehouse");
        assert!(claims["iat"].is_i64());
        assert_eq!(claims["token_introspection"]["active"], true);
        assert_eq!(claims["token_introspection"]["username"], "john");
    }
}

#[tokio::test]
async fn revocation_of_access_and_refresh_tokens() {
    let idp = start().await;
    let body = idp.login().await;
    let access = body["access_token"].as_str().unwrap();
    let refresh = body["refresh_token"].as_str().unwrap();
    let (status, _) = idp.post_basic("/revoke", &[("token", access)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(idp.introspect(access).await, json!({"active": false}));
    let resp = idp.http.get(idp.url("/userinfo")).bearer_auth(access).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let (status, _) = idp.post_basic("/revoke", &[("token", refresh), ("token_type_hint", "refresh_token")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(idp.introspect(refresh).await["active"], false);
    let (status, body) = idp.post_basic("/token", &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));

    let (status, _) = idp.post_basic("/revoke", &[("token", "never-issued")]).await;
    assert_eq!(status, StatusCode::OK, "unknown tokens are fine");
    let resp = idp.post_form("/revoke", &[("token", "x")]).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "client authentication required");
}

#[tokio::test]
async fn userinfo_as_json_and_as_jwt() {
    let idp = start().await;
    let access = idp.login().await["access_token"].as_str().unwrap().to_owned();
    let resp = idp.http.get(idp.url("/userinfo")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let info: Value = resp.json().await.unwrap();
    assert_eq!(info["sub"], claims_of(&access)["sub"]);
    assert_eq!(info["preferred_username"], "john");
    assert_eq!(info["name"], "John Doe");
    assert_eq!(info["email"], "john@example.com");
    assert_eq!(info["email_verified"], true);
    assert_eq!(info["groups"], json!(["users"]));
    assert!(info.get("exp").is_none() && info.get("scope").is_none(), "no protocol claims: {info}");

    let resp = idp.post_form("/userinfo", &[("access_token", access.as_str())]).await;
    assert_eq!(resp.status(), StatusCode::OK, "form body token");

    let resp = idp
        .http
        .get(idp.url("/userinfo"))
        .bearer_auth(&access)
        .header("accept", "application/jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/jwt");
    let claims = idp.verify(&resp.text().await.unwrap()).await.unwrap().claims;
    assert_eq!(claims["preferred_username"], "john");
    assert_eq!(claims["aud"], "gatehouse");
    assert_eq!(claims["iss"], idp.base);
}

#[tokio::test]
async fn userinfo_refuses_bad_tokens_with_a_bearer_challenge() {
    let idp = start().await;
    let expired = idp.mint(json!({"ttl": -1})).await;
    let refresh = idp.login().await["refresh_token"].as_str().unwrap().to_owned();
    for token in ["garbage", expired.as_str(), refresh.as_str()] {
        let resp = idp.http.get(idp.url("/userinfo")).bearer_auth(token).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.starts_with("Bearer") && challenge.contains("error=\"invalid_token\""), "{challenge}");
    }
    let resp = idp.http.get(idp.url("/userinfo")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(!resp.headers()["www-authenticate"].to_str().unwrap().contains("error="), "no token, no error code");
}
