//! The login form and logout.

use super::*;

async fn get(idp: &TestIdp, path: &str, query: &[(&str, &str)]) -> reqwest::Response {
    idp.http.get(idp.url(path)).query(query).send().await.unwrap()
}

fn location(resp: &reqwest::Response) -> reqwest::Url {
    reqwest::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap()
}

#[tokio::test]
async fn authorize_shows_a_labelled_login_form() {
    let idp = start().await;
    let resp = get(
        &idp,
        "/authorize",
        &[("response_type", "code"), ("client_id", "gatehouse"), ("redirect_uri", CB), ("state", "<s>")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = resp.text().await.unwrap();
    assert!(page.contains("Gatehouse development IdP — not for production"));
    assert!(page.contains("name=\"password\""));
    assert!(page.contains("value=\"&lt;s&gt;\""), "state is carried, escaped");
}

#[tokio::test]
async fn a_wrong_password_shows_the_form_again() {
    let idp = start().await;
    let form = [
        ("response_type", "code"),
        ("client_id", "gatehouse"),
        ("redirect_uri", CB),
        ("username", "john"),
        ("password", "wrong"),
    ];
    let resp = idp.post_form("/authorize", &form).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("Invalid username or password."));
}

#[tokio::test]
async fn unknown_clients_and_unregistered_redirects_never_redirect() {
    let idp = start().await;
    idp.dev(
        "/_dev/clients",
        json!({"client_id": "app", "client_secret": "s", "redirect_uris": ["https://app.example/cb"]}),
    )
    .await;
    for query in [
        vec![("response_type", "code"), ("client_id", "nobody"), ("redirect_uri", CB)],
        vec![("response_type", "code"), ("client_id", "gatehouse"), ("redirect_uri", "https://evil.example/cb")],
        vec![("response_type", "code"), ("client_id", "app"), ("redirect_uri", "https://app.example/other")],
        vec![("response_type", "code"), ("client_id", "gatehouse")],
        vec![("response_type", "code")],
    ] {
        let resp = get(&idp, "/authorize", &query).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{query:?}");
        assert!(resp.headers().get("location").is_none());
    }
    // The only registered URI may be left out.
    let resp = get(&idp, "/authorize", &[("response_type", "code"), ("client_id", "app")]).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn request_errors_go_back_to_a_valid_redirect() {
    let idp = start().await;
    for (query, error) in [
        (vec![("response_type", "token")], "unsupported_response_type"),
        (
            vec![("response_type", "code"), ("code_challenge", "c"), ("code_challenge_method", "S512")],
            "invalid_request",
        ),
        (vec![("response_type", "code"), ("prompt", "none")], "login_required"),
    ] {
        let mut query = query;
        query.extend([("client_id", "gatehouse"), ("redirect_uri", CB), ("state", "s1")]);
        let resp = get(&idp, "/authorize", &query).await;
        assert_eq!(resp.status(), StatusCode::FOUND);
        let url = location(&resp);
        assert!(url.as_str().starts_with(CB));
        let pairs: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs["error"], error);
        assert_eq!(pairs["state"], "s1");
    }
}

#[tokio::test]
async fn logout_redirects_with_state_or_shows_a_page() {
    let idp = start().await;
    let tokens = idp.login().await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let resp = get(
        &idp,
        "/logout",
        &[("id_token_hint", id_token), ("post_logout_redirect_uri", "http://localhost:3000/bye"), ("state", "z")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp).as_str(), "http://localhost:3000/bye?state=z");
    assert_eq!(idp.introspect(refresh).await["active"], false, "the session's refresh tokens are revoked");

    let resp = get(&idp, "/logout", &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("signed out"));

    let resp = get(&idp, "/logout", &[("post_logout_redirect_uri", "https://evil.example/")]).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = get(&idp, "/logout", &[("id_token_hint", "garbage")]).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(idp.calls().await["logout"], 4);
}

/// Logs `john` in at the form; returns the `gatehouse_idp` cookie and the tokens of the code.
async fn form_login(idp: &TestIdp) -> (String, Value) {
    let form = [
        ("response_type", "code"),
        ("client_id", "gatehouse"),
        ("redirect_uri", CB),
        ("username", "john"),
        ("password", "doe"),
    ];
    let resp = idp.post_form("/authorize", &form).await;
    let (status, tokens) = idp.exchange(&redirected(&resp)["code"], &[]).await;
    assert_eq!(status, StatusCode::OK);
    (sso_cookie(&resp), tokens)
}

async fn signed_in(idp: &TestIdp, cookie: &str) -> bool {
    let query = [("response_type", "code"), ("client_id", "gatehouse"), ("redirect_uri", CB)];
    idp.authorize(&query, Some(cookie)).await.status() == StatusCode::FOUND
}

#[tokio::test]
async fn logout_ends_the_login_session_and_clears_its_cookie() {
    let idp = start().await;
    let (cookie, tokens) = form_login(&idp).await;
    let (other_cookie, _) = form_login(&idp).await;
    assert!(signed_in(&idp, &cookie).await);
    let refresh = tokens["refresh_token"].as_str().unwrap();

    let resp = idp.http.get(idp.url("/logout")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cleared = set_cookies(&resp, "gatehouse_idp");
    assert_eq!(cleared.len(), 2, "both paths");
    for (line, path) in cleared.iter().zip(["/authorize", "/logout"]) {
        assert!(line.starts_with("gatehouse_idp=; Max-Age=0") && line.contains(&format!("Path={path};")), "{line}");
    }
    assert!(!signed_in(&idp, &cookie).await, "the old cookie no longer signs in");
    assert_eq!(idp.introspect(refresh).await["active"], false, "its refresh tokens are revoked");
    assert!(signed_in(&idp, &other_cookie).await, "other browsers stay signed in");
    let resp = idp.http.get(idp.url("/logout")).send().await.unwrap();
    assert!(set_cookie(&resp, "gatehouse_idp").is_none(), "no cookie, nothing to clear");
}

#[tokio::test]
async fn logout_by_id_token_hint_ends_that_login_everywhere() {
    let idp = start().await;
    let (cookie, tokens) = form_login(&idp).await;
    let hint = tokens["id_token"].as_str().unwrap();
    let resp =
        get(&idp, "/logout", &[("id_token_hint", hint), ("post_logout_redirect_uri", CB), ("state", "bye")]).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp).as_str(), format!("{CB}?state=bye"));
    assert!(!signed_in(&idp, &cookie).await);
    assert_eq!(idp.calls().await["logout"], 1);
}

#[tokio::test]
async fn refused_logouts_end_nothing() {
    let idp = start().await;
    idp.dev(
        "/_dev/clients",
        json!({"client_id": "app", "client_secret": "s", "redirect_uris": ["https://app.example/cb"],
               "post_logout_redirect_uris": ["https://app.example/bye"]}),
    )
    .await;
    let (cookie, tokens) = form_login(&idp).await;
    let hint = tokens["id_token"].as_str().unwrap();
    let foreign = idp.mint(json!({"key": "foreign", "claims": {"aud": "gatehouse"}})).await;
    let other_issuer = idp.mint(json!({"claims": {"iss": "https://other.example", "aud": "gatehouse"}})).await;
    let long = "x".repeat(5000);
    for query in [
        vec![("id_token_hint", hint), ("client_id", "app")],
        vec![("id_token_hint", foreign.as_str())],
        vec![("id_token_hint", other_issuer.as_str())],
        vec![("id_token_hint", hint), ("post_logout_redirect_uri", "https://app.example/bye")],
        vec![("client_id", "app"), ("post_logout_redirect_uri", "https://app.example/cb")],
        vec![("client_id", "app"), ("post_logout_redirect_uri", "https://evil.example/")],
        vec![("client_id", "nobody"), ("post_logout_redirect_uri", CB)],
        vec![("id_token_hint", hint), ("state", long.as_str())],
    ] {
        let resp = idp.http.get(idp.url("/logout")).query(&query).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{query:.80?}");
        assert!(resp.headers().get("location").is_none() && set_cookie(&resp, "gatehouse_idp").is_none());
    }
    assert!(signed_in(&idp, &cookie).await);
    assert_eq!(idp.introspect(tokens["refresh_token"].as_str().unwrap()).await["active"], true);
    // The registered post-logout URI of app works; its redirect URI is not one.
    let resp =
        get(&idp, "/logout", &[("client_id", "app"), ("post_logout_redirect_uri", "https://app.example/bye")]).await;
    assert_eq!(location(&resp).as_str(), "https://app.example/bye");
}
