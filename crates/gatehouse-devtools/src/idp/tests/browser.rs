//! The login form and logout.

use super::*;

const CB: &str = "http://127.0.0.1:9999/cb";

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
