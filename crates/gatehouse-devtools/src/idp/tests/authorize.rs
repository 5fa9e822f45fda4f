//! The authorization endpoint: response modes, Cancel, the login session cookie, `prompt` and
//! `max_age`, the response knobs, and hostile requests.

use super::*;

/// The parameters of an authorization request from `gatehouse` to `CB`, with `extra` added or replaced.
fn request<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut query = vec![
        ("response_type", "code"),
        ("client_id", "gatehouse"),
        ("redirect_uri", CB),
        ("state", "st"),
        ("nonce", "n"),
    ];
    query.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    query.extend_from_slice(extra);
    query
}

/// Logs `john` in at the form; returns the response (a redirect unless `extra` asks otherwise).
async fn log_in(idp: &TestIdp, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut form = request(extra);
    form.extend([("username", "john"), ("password", "doe")]);
    idp.post_form("/authorize", &form).await
}

async fn is_login_form(resp: reqwest::Response) -> bool {
    resp.status() == StatusCode::OK && resp.text().await.unwrap().contains("name=\"password\"")
}

#[tokio::test]
async fn fragment_mode_puts_the_answer_after_the_hash() {
    let idp = start().await;
    let resp = log_in(&idp, &[("response_mode", "fragment")]).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(&format!("{CB}#code=")), "{location}");
    let params = redirected(&resp);
    assert_eq!((params["state"].as_str(), params["iss"].as_str()), ("st", idp.base.as_str()));
    let (status, body) = idp.exchange(&params["code"], &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn form_post_mode_answers_a_page_that_posts_itself() {
    let idp = start().await;
    let resp = log_in(&idp, &[("response_mode", "form_post"), ("state", "a&b\"<c>")]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("location").is_none());
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = resp.text().await.unwrap();
    assert!(page.contains(&format!("<form id=\"response\" method=\"post\" action=\"{CB}\">")), "{page}");
    assert!(page.contains("<noscript>") && page.contains("<button type=\"submit\">Continue</button>"));
    assert!(page.contains("document.getElementById(\"response\").submit()"));
    assert_eq!(hidden(&page, "state").unwrap(), "a&b\"<c>", "escaped, and intact once unescaped");
    assert!(!page.contains("a&b\"<c>"), "never raw");
    assert_eq!(hidden(&page, "iss").unwrap(), idp.base);
    let (status, body) = idp.exchange(&hidden(&page, "code").unwrap(), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn errors_follow_the_response_mode() {
    let idp = start().await;
    let resp = idp.authorize(&request(&[("prompt", "none"), ("response_mode", "form_post")]), None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let page = resp.text().await.unwrap();
    assert_eq!(hidden(&page, "error").as_deref(), Some("login_required"));
    assert_eq!(hidden(&page, "state").as_deref(), Some("st"));
    assert!(hidden(&page, "code").is_none());

    let resp = idp.authorize(&request(&[("prompt", "none"), ("response_mode", "fragment")]), None).await;
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("{CB}#error=login_required")), "{location}");
    assert_eq!(redirected(&resp)["iss"], idp.base);

    // An unknown mode is refused in the default mode.
    for mode in ["nonsense", "query.jwt.jwt", "nonsense.jwt"] {
        let resp = idp.authorize(&request(&[("response_mode", mode)]), None).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "{mode}");
        let params = redirected(&resp);
        assert!(resp.headers()["location"].to_str().unwrap().starts_with(&format!("{CB}?")));
        assert_eq!(params["error"], "invalid_request", "{mode}");
    }
}

#[tokio::test]
async fn jarm_modes_answer_one_response_jwt_signed_by_the_provider() {
    let idp = start().await;
    for mode in ["query.jwt", "jwt", "fragment.jwt", "form_post.jwt"] {
        let resp = log_in(&idp, &[("response_mode", mode)]).await;
        let jwt = if mode == "form_post.jwt" {
            let page = resp.text().await.unwrap();
            assert!(hidden(&page, "code").is_none() && hidden(&page, "state").is_none(), "{page}");
            hidden(&page, "response").unwrap()
        } else {
            assert_eq!(resp.status(), StatusCode::FOUND, "{mode}");
            let sep = if mode == "fragment.jwt" { '#' } else { '?' };
            let location = resp.headers()["location"].to_str().unwrap();
            assert!(location.starts_with(&format!("{CB}{sep}response=")), "{mode}: {location}");
            let params = redirected(&resp);
            assert_eq!(params.len(), 1, "{mode}: {params:?}");
            params["response"].clone()
        };
        let claims = idp.verify(&jwt).await.expect("signed with a published key").claims;
        assert_eq!((claims["iss"].as_str(), claims["aud"].as_str()), (Some(idp.base.as_str()), Some("gatehouse")));
        assert_eq!(claims["state"], "st", "{mode}");
        assert!(claims["exp"].as_i64().unwrap() > super::super::util::now());
        let (status, body) = idp.exchange(claims["code"].as_str().unwrap(), &[]).await;
        assert_eq!(status, StatusCode::OK, "{mode}: {body}");
    }
    // Errors travel in the JWT too, reshaped by the knobs as ever.
    idp.dev("/_dev/next", json!({"authorization_response": {"iss": null}})).await;
    let resp = idp.authorize(&request(&[("prompt", "none"), ("response_mode", "jwt")]), None).await;
    let claims = claims_of(&redirected(&resp)["response"]);
    assert_eq!((claims["error"].as_str(), claims["state"].as_str()), (Some("login_required"), Some("st")));
    assert!(claims.get("iss").is_none() && claims.get("code").is_none(), "{claims:?}");
}

/// The `href` of the login page's Cancel link, unescaped.
fn cancel_href(page: &str) -> String {
    let start = page.find("id=\"cancel\" href=\"").unwrap() + "id=\"cancel\" href=\"".len();
    let end = start + page[start..].find('"').unwrap();
    page[start..end].replace("&amp;", "&")
}

#[tokio::test]
async fn cancel_answers_access_denied_in_the_response_mode() {
    let idp = start().await;
    for mode in ["query", "form_post"] {
        let page = idp.authorize(&request(&[("response_mode", mode)]), None).await.text().await.unwrap();
        let href = cancel_href(&page);
        assert!(href.starts_with('?') && href.contains("cancel=1"), "{href}");
        let resp = idp.http.get(format!("{}{href}", idp.url("/authorize"))).send().await.unwrap();
        let params: HashMap<String, String> = if mode == "query" {
            assert_eq!(resp.status(), StatusCode::FOUND);
            redirected(&resp)
        } else {
            let page = resp.text().await.unwrap();
            ["error", "error_description", "state", "iss"]
                .into_iter()
                .filter_map(|n| hidden(&page, n).map(|v| (n.to_owned(), v)))
                .collect()
        };
        assert_eq!(params["error"], "access_denied", "{mode}");
        assert!(!params["error_description"].is_empty());
        assert_eq!((params["state"].as_str(), params["iss"].as_str()), ("st", idp.base.as_str()));
        assert!(!params.contains_key("code"));
    }
}

#[tokio::test]
async fn a_login_keeps_a_session_so_later_requests_skip_the_form() {
    let idp = start().await;
    let first = log_in(&idp, &[]).await;
    assert_eq!(first.status(), StatusCode::FOUND);
    // One cookie for each endpoint that reads it, so the gateway's paths never get it.
    let lines = set_cookies(&first, "gatehouse_idp");
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, path) in lines.iter().zip(["/authorize", "/logout"]) {
        assert!(line.ends_with(&format!("; Path={path}; HttpOnly; SameSite=Lax")), "{line}");
        assert!(!line.contains("Max-Age") && !line.contains("Expires"), "a browser-session cookie: {line}");
        assert_eq!(line.split(';').next(), lines[0].split(';').next(), "one value");
    }
    for other in ["session", "authorization", "remember"] {
        assert!(set_cookie(&first, other).is_none(), "never named {other}");
    }
    let cookie = sso_cookie(&first);
    let (_, tokens) = idp.exchange(&redirected(&first)["code"], &[]).await;
    let first_id = claims_of(tokens["id_token"].as_str().unwrap());

    // Later requests, with the gateway's own cookies beside ours, get a code at once.
    let both = format!("session=abc; {cookie}; authorization=x");
    for extra in [vec![], vec![("prompt", "none")], vec![("prompt", "consent")], vec![("max_age", "3600")]] {
        let resp = idp.authorize(&request(&extra), Some(&both)).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "{extra:?}");
        assert!(set_cookie(&resp, "gatehouse_idp").is_none(), "the session is not renewed");
        let (status, tokens) = idp.exchange(&redirected(&resp)["code"], &[]).await;
        assert_eq!(status, StatusCode::OK);
        let id = claims_of(tokens["id_token"].as_str().unwrap());
        assert_eq!((&id["sid"], &id["auth_time"]), (&first_id["sid"], &first_id["auth_time"]), "same login");
        assert_eq!(id["nonce"], "n");
    }
    // Without the cookie, the form (or login_required).
    assert!(is_login_form(idp.authorize(&request(&[]), None).await).await);
    let resp = idp.authorize(&request(&[("prompt", "none")]), None).await;
    assert_eq!(redirected(&resp)["error"], "login_required");
    assert_eq!(idp.calls().await["authorize"], 7);
}

#[tokio::test]
async fn prompt_login_and_an_old_login_ask_for_the_form_again() {
    let idp = start().await;
    let first = log_in(&idp, &[]).await;
    let cookie = sso_cookie(&first);
    for extra in [vec![("prompt", "login")], vec![("max_age", "0")], vec![("prompt", "login consent")]] {
        assert!(is_login_form(idp.authorize(&request(&extra), Some(&cookie)).await).await, "{extra:?}");
    }

    // An hour later, max_age=60 wants a new login; prompt=none then cannot have one.
    let (status, aged) = idp.dev("/_dev/sso", json!({"age": 3600})).await;
    assert_eq!((status, aged["sessions"].as_u64()), (StatusCode::OK, Some(1)));
    assert!(is_login_form(idp.authorize(&request(&[("max_age", "60")]), Some(&cookie)).await).await);
    let resp = idp.authorize(&request(&[("max_age", "60"), ("prompt", "none")]), Some(&cookie)).await;
    assert_eq!(redirected(&resp)["error"], "login_required");
    let resp = idp.authorize(&request(&[]), Some(&cookie)).await;
    assert_eq!(resp.status(), StatusCode::FOUND, "without max_age the old login still counts");
    let (_, tokens) = idp.exchange(&redirected(&resp)["code"], &[]).await;
    let old = claims_of(tokens["id_token"].as_str().unwrap());
    assert!(old["iat"].as_i64().unwrap() - old["auth_time"].as_i64().unwrap() >= 3600);

    // Logging in again at the form gives a new login session and a new cookie.
    let mut form = request(&[("max_age", "60")]);
    form.extend([("username", "jane"), ("password", "roe")]);
    let again = idp.http.post(idp.url("/authorize")).header("cookie", &cookie).form(&form).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::FOUND);
    let new_cookie = sso_cookie(&again);
    assert_ne!(new_cookie, cookie);
    let (_, tokens) = idp.exchange(&redirected(&again)["code"], &[]).await;
    let new = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(new["preferred_username"], "jane");
    assert_ne!(new["sid"], old["sid"]);
    assert!(new["iat"].as_i64().unwrap() - new["auth_time"].as_i64().unwrap() < 60);
    assert!(is_login_form(idp.authorize(&request(&[]), Some(&cookie)).await).await, "the replaced one is gone");

    let (_, ended) = idp.dev("/_dev/sso", json!({"end": true})).await;
    assert_eq!(ended["sessions"], 1);
    assert!(is_login_form(idp.authorize(&request(&[]), Some(&new_cookie)).await).await);
}

#[tokio::test]
async fn unknown_or_garbage_session_cookies_show_the_form() {
    let idp = start().await;
    let long = format!("gatehouse_idp={}", "a".repeat(10_000));
    for cookie in ["gatehouse_idp=nope", "gatehouse_idp=", "gatehouse_idp", "=;;=", "gatehouse_idp=\"quoted\"", &long] {
        assert!(is_login_form(idp.authorize(&request(&[]), Some(cookie)).await).await, "{cookie:.40}");
    }
}

#[tokio::test]
async fn hostile_parameters_are_refused_without_a_redirect() {
    let idp = start().await;
    let long = "x".repeat(5000);
    let many: Vec<(String, String)> = (0..70).map(|i| (format!("p{i}"), "v".to_owned())).collect();
    let mut with_many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    with_many.extend(request(&[]));
    for query in [request(&[("state", long.as_str())]), request(&[("nonce", long.as_str())]), with_many] {
        let resp = idp.authorize(&query, None).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert!(resp.headers().get("location").is_none());
    }
    // Once client and redirect are known, bad values are told to the client.
    for extra in [("max_age", "-1"), ("max_age", "soon"), ("max_age", "99999999999"), ("prompt", "none login")] {
        let resp = idp.authorize(&request(&[extra]), None).await;
        assert_eq!(redirected(&resp)["error"], "invalid_request", "{extra:?}");
    }
    // A form POST with odd fields is still only a login attempt.
    let mut form = request(&[]);
    form.extend([("username", "john"), ("password", "doe\0")]);
    assert!(is_login_form(idp.post_form("/authorize", &form).await).await);
    let resp = idp.http.post(idp.url("/authorize")).body("username=john&password=doe").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "not a form");
}

#[tokio::test]
async fn the_iss_knobs_tamper_with_authorization_responses() {
    let idp = start().await;
    let (status, armed) =
        idp.dev("/_dev/next", json!({"authorization_response": {"iss": "https://evil.example"}})).await;
    assert_eq!(status, StatusCode::OK, "{armed}");
    assert_eq!(armed["authorization_response"], json!({"iss": "https://evil.example"}));
    let params = redirected(&log_in(&idp, &[]).await);
    assert_eq!(params["iss"], "https://evil.example");
    assert!(params.contains_key("code"));
    assert_eq!(redirected(&log_in(&idp, &[]).await)["iss"], idp.base, "only the next one");

    idp.dev("/_dev/next", json!({"authorization_response": {"iss": null}})).await;
    let resp = idp.authorize(&request(&[("prompt", "none")]), None).await;
    let params = redirected(&resp);
    assert_eq!(params["error"], "login_required", "error responses too");
    assert!(!params.contains_key("iss"));

    // The override lasts until cleared.
    idp.dev("/_dev/override", json!({"authorization_response": {"iss": null, "session_state": "s"}})).await;
    for _ in 0..2 {
        let params = redirected(&log_in(&idp, &[]).await);
        assert!(!params.contains_key("iss"));
        assert_eq!(params["session_state"], "s");
    }
    idp.dev("/_dev/override", json!({"authorization_response": {}})).await;
    assert_eq!(redirected(&log_in(&idp, &[]).await)["iss"], idp.base);

    idp.dev("/_dev/next", json!({"authorization_response": {"iss": "x"}})).await;
    let (_, disarmed) = idp.dev("/_dev/next", json!({"authorization_response": {}})).await;
    assert_eq!(disarmed["authorization_response"], Value::Null);
    assert_eq!(redirected(&log_in(&idp, &[]).await)["iss"], idp.base);
}

#[tokio::test]
async fn the_session_cookie_follows_the_issuer_path() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = IdpConfig { issuer: Some(format!("https://{addr}/realms/demo")), ..IdpConfig::default() };
    tokio::spawn(serve_idp(listener, config, std::future::pending()));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut form = request(&[]);
    form.extend([("username", "john"), ("password", "doe")]);
    let resp = http.post(format!("http://{addr}/realms/demo/authorize")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let lines = set_cookies(&resp, "gatehouse_idp");
    assert_eq!(lines.len(), 2);
    for (line, path) in lines.iter().zip(["/realms/demo/authorize", "/realms/demo/logout"]) {
        assert!(line.ends_with(&format!("; Path={path}; HttpOnly; SameSite=Lax; Secure")), "{line}");
    }
    let cookie = sso_cookie(&resp);
    let resp = http.get(format!("http://{addr}/realms/demo/logout")).header("cookie", cookie).send().await.unwrap();
    let cleared = set_cookies(&resp, "gatehouse_idp");
    assert_eq!(cleared.len(), 2);
    assert!(cleared.iter().all(|c| c.starts_with("gatehouse_idp=; Max-Age=0; Path=/realms/demo/")), "{cleared:?}");
}
