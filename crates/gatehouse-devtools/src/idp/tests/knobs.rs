//! The `/_dev/` knobs: counters, reset, failures, delays, rotation.

use super::*;
use std::time::{Duration, Instant};

#[tokio::test]
async fn calls_count_every_request_including_failed_and_concurrent_ones() {
    let idp = start().await;
    for _ in 0..20 {
        assert_eq!(idp.get("/jwks").await.0, StatusCode::OK);
    }
    idp.login().await;
    idp.post_basic("/token", &[("grant_type", "password"), ("username", "john"), ("password", "x")]).await;
    idp.post_basic("/token", &[("grant_type", "client_credentials")]).await;
    idp.post_basic("/token", &[("grant_type", "nonsense")]).await;
    idp.post_form("/introspect", &[("token", "x")]).await;
    let calls = idp.calls().await;
    assert_eq!(calls["jwks"], 20);
    assert_eq!(calls["token"], 4);
    assert_eq!(calls["introspect"], 1);
    assert_eq!(calls["discovery"], 0);
    assert_eq!(
        calls["token_grants"],
        json!({"password": 2, "client_credentials": 1, "refresh_token": 0, "authorization_code": 0, "other": 1})
    );
    for key in ["userinfo", "revoke", "authorize", "logout", "par"] {
        assert_eq!(calls[key], 0, "{key}");
    }
    assert_eq!(calls["revoke_hints"], json!({"access_token": 0, "refresh_token": 0, "none": 0, "other": 0}));

    let (status, _) = idp.dev("/_dev/reset", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let calls = idp.calls().await;
    assert_eq!(calls["jwks"], 0);
    assert_eq!(calls["token_grants"]["password"], 0);
}

#[tokio::test]
async fn concurrent_requests_are_all_counted() {
    let idp = start().await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let http = idp.http.clone();
        let url = idp.url("/.well-known/openid-configuration");
        set.spawn(async move { http.get(url).send().await.unwrap().status() });
    }
    while let Some(status) = set.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    assert_eq!(idp.calls().await["discovery"], 32);
}

#[tokio::test]
async fn fail_a_number_of_times_then_recover() {
    let idp = start().await;
    let (status, knobs) = idp.dev("/_dev/fail", json!({"endpoint": "token", "status": 503, "times": 2})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(knobs["fail"]["token"]["status"], 503);
    for _ in 0..2 {
        let (status, body) = idp.post_basic("/token", &[("grant_type", "client_credentials")]).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"], "temporarily_unavailable");
    }
    let (status, _) = idp.post_basic("/token", &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(idp.calls().await["token"], 3, "failed requests count too");
}

#[tokio::test]
async fn fail_until_reset_and_for_all_endpoints() {
    let idp = start().await;
    idp.dev("/_dev/fail", json!({"endpoint": "all", "status": 500})).await;
    for path in ["/.well-known/openid-configuration", "/jwks", "/userinfo"] {
        for _ in 0..3 {
            let (status, body) = idp.get(path).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
            assert_eq!(body["error"], "server_error");
        }
    }
    idp.dev("/_dev/reset", json!({})).await;
    assert_eq!(idp.get("/jwks").await.0, StatusCode::OK);

    idp.dev("/_dev/fail", json!({"endpoint": "jwks"})).await;
    assert_eq!(idp.get("/jwks").await.0, StatusCode::SERVICE_UNAVAILABLE, "503 by default");
    assert_eq!(idp.get("/.well-known/openid-configuration").await.0, StatusCode::OK, "others unaffected");
    idp.dev("/_dev/fail", json!({"endpoint": "jwks", "times": 0})).await;
    assert_eq!(idp.get("/jwks").await.0, StatusCode::OK, "times 0 disarms");
}

#[tokio::test]
async fn bad_knob_requests_are_400() {
    let idp = start().await;
    for (path, body) in [
        ("/_dev/fail", json!({"endpoint": "nope"})),
        ("/_dev/fail", json!({"endpoint": "token", "status": 200})),
        ("/_dev/fail", json!({"endpoint": "token", "status": 1000})),
        ("/_dev/fail", json!({})),
        ("/_dev/delay", json!({"endpoint": "token"})),
        ("/_dev/rotate", json!({"drop_old": "yes"})),
        ("/_dev/retire", json!({"kids": ["x"]})),
        ("/_dev/mint", json!({"user": "nobody"})),
        ("/_dev/mint", json!({"key": "quantum"})),
        ("/_dev/mint", json!({"unknown_field": 1})),
        ("/_dev/override", json!({"tokens": {}})),
        ("/_dev/override", json!({"userinfo": ["sub"]})),
        ("/_dev/override", json!({"discovery": "https://other"})),
        ("/_dev/override", json!({"authorization_response": {"iss": 1}})),
        ("/_dev/next", json!({"authorization_response": {"iss": ["x"]}})),
        ("/_dev/next", json!({"id_token": {}})),
        ("/_dev/next", json!({"code_id_token": "x"})),
        ("/_dev/sso", json!({"age": -1})),
        ("/_dev/sso", json!({"age": "old"})),
        ("/_dev/sso", json!({"forget": true})),
        ("/_dev/fail", json!({"endpoint": "end_session"})),
    ] {
        let (status, resp) = idp.dev(path, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}");
        assert_eq!(resp["error"], "invalid_request");
    }
    let resp = idp.http.post(idp.url("/_dev/fail")).body("{not json").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn delay_holds_the_answer_back() {
    let idp = start().await;
    idp.dev("/_dev/delay", json!({"endpoint": "discovery", "ms": 300})).await;
    let started = Instant::now();
    assert_eq!(idp.get("/.well-known/openid-configuration").await.0, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let started = Instant::now();
    idp.get("/jwks").await;
    assert!(started.elapsed() < Duration::from_millis(300), "other endpoints are not delayed");
    idp.dev("/_dev/reset", json!({})).await;
    let started = Instant::now();
    idp.get("/.well-known/openid-configuration").await;
    assert!(started.elapsed() < Duration::from_millis(300), "reset clears delays");
}

#[tokio::test]
async fn rotation_keeps_old_keys_until_dropped() {
    let idp = start().await;
    let old_token = idp.login().await["access_token"].as_str().unwrap().to_owned();
    let old_kid = header_of(&old_token)["kid"].as_str().unwrap().to_owned();

    let (status, rotated) = idp.dev("/_dev/rotate", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let kids: Vec<String> = serde_json::from_value(rotated["kids"].clone()).unwrap();
    assert_eq!(kids.len(), 4);
    assert!(kids.contains(&old_kid));
    let new_kid = rotated["current"]["rsa"].as_str().unwrap();
    assert_ne!(new_kid, old_kid);
    assert_eq!(kids[0], new_kid);

    let new_token = idp.login().await["access_token"].as_str().unwrap().to_owned();
    assert_eq!(header_of(&new_token)["kid"], new_kid);
    assert!(idp.verify(&old_token).await.is_ok(), "old tokens still verify");
    assert!(idp.verify(&new_token).await.is_ok());
    assert_eq!(idp.introspect(&old_token).await["active"], true);

    let (_, dropped) = idp.dev("/_dev/rotate", json!({"drop_old": true})).await;
    assert_eq!(dropped["kids"].as_array().unwrap().len(), 2);
    assert_eq!(idp.keyset().await.len(), 2);
    assert!(matches!(idp.verify(&old_token).await, Err(VerifyError::UnknownKid(_))));
    assert_eq!(idp.introspect(&old_token).await["active"], false);
}

#[tokio::test]
async fn retiring_removes_the_old_keys_and_keeps_the_current_ones() {
    let idp = start().await;
    let old_token = idp.login().await["access_token"].as_str().unwrap().to_owned();
    let (_, rotated) = idp.dev("/_dev/rotate", json!({})).await;
    let new_token = idp.login().await["access_token"].as_str().unwrap().to_owned();
    let (status, retired) = idp.dev("/_dev/retire", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{retired}");
    assert_eq!(retired["current"], rotated["current"], "no new key");
    assert_eq!(retired["kids"].as_array().unwrap().len(), 2);
    assert_eq!(idp.keyset().await.len(), 2);
    assert!(matches!(idp.verify(&old_token).await, Err(VerifyError::UnknownKid(_))));
    assert!(idp.verify(&new_token).await.is_ok());
    let (status, again) = idp.dev("/_dev/retire", json!({})).await;
    assert_eq!((status, &again["kids"]), (StatusCode::OK, &retired["kids"]), "nothing more to retire");
    let resp = idp.http.get(idp.url("/_dev/retire")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn overrides_reshape_each_answer_until_cleared_or_reset() {
    let idp = start().await;
    let (status, set) = idp
        .dev(
            "/_dev/override",
            json!({
                "discovery": {"issuer": "https://elsewhere.example"},
                "id_token": {"iat": null, "sub": null, "aud": ["gatehouse", "other"]},
                "access_token": {"sub": null, "extra": 1},
                "userinfo": {"sub": "someone-else"},
                "introspection": {"exp": 1},
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(set["userinfo"], json!({"sub": "someone-else"}));
    assert_eq!(idp.get("/.well-known/openid-configuration").await.1["issuer"], "https://elsewhere.example");

    let tokens = idp.login().await;
    let id = claims_of(tokens["id_token"].as_str().unwrap());
    assert!(!id.contains_key("iat") && !id.contains_key("sub"), "{id:?}");
    assert_eq!(id["aud"], json!(["gatehouse", "other"]));
    assert!(id.contains_key("at_hash"), "the rest stays");
    let at = tokens["access_token"].as_str().unwrap();
    let access = claims_of(at);
    assert!(!access.contains_key("sub"));
    assert_eq!(access["extra"], 1);
    idp.verify(at).await.expect("still signed by the published key");
    let (_, cc) = idp.post_basic("/token", &[("grant_type", "client_credentials")]).await;
    assert!(!claims_of(cc["access_token"].as_str().unwrap()).contains_key("sub"), "every grant");

    let intro = idp.introspect(at).await;
    assert_eq!((intro["active"].clone(), intro["exp"].clone()), (json!(true), json!(1)));
    assert_eq!(idp.introspect("not-a-token").await, json!({"active": false}), "inactive answers stay as they are");
    let info = idp.http.get(idp.url("/userinfo")).bearer_auth(at).send().await.unwrap();
    let info: Value = info.json().await.unwrap();
    assert_eq!(info["sub"], "someone-else");
    assert_eq!(info["preferred_username"], "john");

    // One kind cleared, the others kept.
    let (_, set) = idp.dev("/_dev/override", json!({"userinfo": {}})).await;
    assert_eq!(set["userinfo"], json!({}));
    assert_eq!(set["introspection"], json!({"exp": 1}));
    // Reset clears them all.
    idp.dev("/_dev/reset", json!({})).await;
    assert_eq!(idp.get("/.well-known/openid-configuration").await.1["issuer"], idp.url(""));
    let id = claims_of(idp.login().await["id_token"].as_str().unwrap());
    assert!(id.contains_key("iat") && id.contains_key("sub"));
}

#[tokio::test]
async fn revocations_are_counted_by_hint_and_par_can_fail() {
    let idp = start().await;
    for hint in [Some("access_token"), Some("refresh_token"), Some("refresh_token"), None, Some("id_token")] {
        let mut form = vec![("token", "t")];
        form.extend(hint.map(|h| ("token_type_hint", h)));
        assert_eq!(idp.post_basic("/revoke", &form).await.0, StatusCode::OK);
    }
    idp.post_form("/revoke", &[("token", "t"), ("token_type_hint", "access_token")]).await;
    let calls = idp.calls().await;
    assert_eq!(calls["revoke"], 6);
    assert_eq!(calls["revoke_hints"], json!({"access_token": 2, "refresh_token": 2, "none": 1, "other": 1}));

    idp.dev("/_dev/fail", json!({"endpoint": "par", "status": 503, "times": 1})).await;
    let (status, _) =
        idp.post_basic("/par", &[("response_type", "code"), ("redirect_uri", "http://localhost/cb")]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) =
        idp.post_basic("/par", &[("response_type", "code"), ("redirect_uri", "http://localhost/cb")]).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(idp.calls().await["par"], 2);
    idp.dev("/_dev/reset", json!({})).await;
    assert_eq!(idp.calls().await["revoke_hints"]["refresh_token"], 0);
}

#[tokio::test]
async fn reset_disarms_one_shot_knobs() {
    let idp = start().await;
    idp.dev("/_dev/next", json!({"code_id_token": {"nonce": "x"}, "authorization_response": {"iss": null}})).await;
    idp.dev("/_dev/reset", json!({})).await;
    let resp = idp.http.post(idp.url("/_dev/next")).send().await.unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"authorization_response": null, "code_id_token": null}));
}
