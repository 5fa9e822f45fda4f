//! The token endpoint's grants.

use super::*;
use crate::idp::util::{b64, sha256};

#[tokio::test]
async fn password_grant_issues_keycloak_style_tokens() {
    let idp = start().await;
    let body = idp.login().await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "openid email profile");
    assert!(body["refresh_token"].as_str().unwrap().len() >= 40);

    let access = body["access_token"].as_str().unwrap();
    let header = header_of(access);
    assert_eq!((header["alg"].as_str(), header["typ"].as_str()), (Some("RS256"), Some("JWT")));
    let verified = idp.verify(access).await.unwrap();
    assert_eq!(verified.header.kid, idp.keyset().await.keys()[0].kid().map(str::to_owned));
    let c = verified.claims;
    assert_eq!(c["iss"], idp.base);
    assert_eq!(c["aud"], "account");
    assert_eq!((c["azp"].as_str(), c["client_id"].as_str()), (Some("gatehouse"), Some("gatehouse")));
    assert_eq!(c["typ"], "Bearer");
    assert_eq!(c["preferred_username"], "john");
    assert_eq!(c["name"], "John Doe");
    assert_eq!(c["given_name"], "John");
    assert_eq!(c["family_name"], "Doe");
    assert_eq!(c["email"], "john@example.com");
    assert_eq!(c["groups"], json!(["users"]));
    assert!(c.get("roles").is_none());
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 3600);
    assert!(c["jti"].is_string() && c["sid"].is_string());

    let id = idp.verify(body["id_token"].as_str().unwrap()).await.unwrap().claims;
    assert_eq!(id["aud"], "gatehouse");
    assert_eq!(id["azp"], "gatehouse");
    assert_eq!(id["sub"], c["sub"]);
    assert_eq!(id["sid"], c["sid"]);
    assert!(id["auth_time"].is_i64());
    assert!(id.get("nonce").is_none());
    assert_eq!(id["at_hash"], b64(&sha256(access.as_bytes())[..16]));
    assert_eq!(id["email_verified"], true);
}

#[tokio::test]
async fn jane_has_roles_and_scope_without_openid_gets_no_id_token() {
    let idp = start().await;
    let (status, body) = idp
        .post_basic(
            "/token",
            &[("grant_type", "password"), ("username", "jane"), ("password", "roe"), ("scope", "email")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("id_token").is_none());
    assert_eq!(body["scope"], "email profile", "email and profile are always granted");
    let c = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(c["roles"], json!(["admin"]));
    assert_eq!(c["groups"], json!(["users", "admins"]));
    assert_eq!(c["scope"], "email profile");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_are_invalid_grant() {
    let idp = start().await;
    for (user, pass) in [("john", "nope"), ("nobody", "doe")] {
        let (status, body) =
            idp.post_basic("/token", &[("grant_type", "password"), ("username", user), ("password", pass)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_grant");
    }
    let (status, body) = idp.post_basic("/token", &[("grant_type", "password"), ("username", "john")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
}

#[tokio::test]
async fn unsupported_or_missing_grant_type() {
    let idp = start().await;
    let (status, body) = idp.post_basic("/token", &[("grant_type", "implicit")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
    let (status, body) = idp.post_basic("/token", &[]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
    let resp = idp
        .http
        .post(idp.url("/token"))
        .basic_auth("gatehouse", Some(SECRET))
        .json(&json!({"grant_type": "password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "JSON bodies are refused");
    let (status, body) =
        idp.post_basic("/token", &[("grant_type", "password"), ("grant_type", "client_credentials")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "repeated");
}

#[tokio::test]
async fn client_credentials_is_about_the_client() {
    let idp = start().await;
    let (status, body) = idp.post_basic("/token", &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("refresh_token").is_none());
    assert!(body.get("id_token").is_none());
    let c = idp.verify(body["access_token"].as_str().unwrap()).await.unwrap().claims;
    assert_eq!(c["sub"], "gatehouse");
    assert_eq!(c["preferred_username"], "service-account-gatehouse");
    assert_eq!(c["client_id"], "gatehouse");
    assert!(c.get("email").is_none());

    let resp =
        idp.post_form("/token", &[("grant_type", "client_credentials"), ("client_id", "gatehouse-public")]).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "unauthorized_client");
}

#[tokio::test]
async fn client_audience_overrides_account() {
    let idp = start().await;
    let (status, _) =
        idp.dev("/_dev/clients", json!({"client_id": "api", "client_secret": "s", "audience": ["a", "b"]})).await;
    assert_eq!(status, StatusCode::CREATED);
    let resp = idp
        .http
        .post(idp.url("/token"))
        .basic_auth("api", Some("s"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(claims_of(body["access_token"].as_str().unwrap())["aud"], json!(["a", "b"]));
}

#[tokio::test]
async fn refresh_rotates_and_revokes_the_old_token() {
    let idp = start().await;
    let first = idp.login().await;
    let old = first["refresh_token"].as_str().unwrap();
    let (status, second) = idp.post_basic("/token", &[("grant_type", "refresh_token"), ("refresh_token", old)]).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let new = second["refresh_token"].as_str().unwrap();
    assert_ne!(new, old);
    assert!(second["id_token"].is_string());
    let (a, b) =
        (claims_of(first["access_token"].as_str().unwrap()), claims_of(second["access_token"].as_str().unwrap()));
    assert_eq!(a["sid"], b["sid"], "same session");
    assert_ne!(a["jti"], b["jti"]);

    let (status, body) = idp.post_basic("/token", &[("grant_type", "refresh_token"), ("refresh_token", old)]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "old one spent");
    assert_eq!(idp.introspect(old).await, json!({"active": false}));
    assert_eq!(idp.introspect(new).await["active"], true);

    let (status, body) = idp
        .post_basic("/token", &[("grant_type", "refresh_token"), ("refresh_token", new), ("scope", "openid admin")])
        .await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")));
}

#[tokio::test]
async fn refresh_tokens_belong_to_their_client() {
    let idp = start().await;
    let body = idp.login().await;
    let refresh = body["refresh_token"].as_str().unwrap();
    let resp = idp
        .post_form(
            "/token",
            &[("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", "gatehouse-public")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

/// Logs `john` in through the form and returns the code from the redirect.
pub(super) async fn code_for(idp: &TestIdp, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut form = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", "http://127.0.0.1:9999/cb"),
        ("state", "st"),
        ("username", "john"),
        ("password", "doe"),
    ];
    form.extend_from_slice(extra);
    let resp = idp.post_form("/authorize", &form).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = reqwest::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let query: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(query["state"], "st");
    assert_eq!(query["iss"], idp.base);
    query["code"].clone()
}

fn exchange<'a>(code: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut form =
        vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", "http://127.0.0.1:9999/cb")];
    form.extend_from_slice(extra);
    form
}

#[tokio::test]
async fn authorization_code_with_s256_pkce_and_nonce() {
    let idp = start().await;
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = b64(&sha256(verifier.as_bytes()));
    let code = code_for(
        &idp,
        "gatehouse",
        &[
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("nonce", "n-1"),
            ("scope", "openid profile"),
        ],
    )
    .await;
    let (status, body) = idp.post_basic("/token", &exchange(&code, &[("code_verifier", verifier)])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "openid profile email");
    let id = idp.verify(body["id_token"].as_str().unwrap()).await.unwrap().claims;
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["preferred_username"], "john");

    let (status, body) = idp.post_basic("/token", &exchange(&code, &[("code_verifier", verifier)])).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "single use");
}

#[tokio::test]
async fn authorization_code_with_plain_pkce_for_a_public_client() {
    let idp = start().await;
    let code =
        code_for(&idp, "gatehouse-public", &[("code_challenge", "plain-verifier-plain-verifier-plain-verifier")]).await;
    let form = exchange(
        &code,
        &[("code_verifier", "plain-verifier-plain-verifier-plain-verifier"), ("client_id", "gatehouse-public")],
    );
    let resp = idp.post_form("/token", &form).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(claims_of(body["access_token"].as_str().unwrap())["azp"], "gatehouse-public");
}

#[tokio::test]
async fn pkce_and_redirect_failures_are_invalid_grant() {
    let idp = start().await;
    let challenge = b64(&sha256(b"right-verifier-right-verifier-right-verifier"));
    let s256 = [("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")];
    type Form<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Form, Form); 4] = [
        (&s256, &[("code_verifier", "wrong-verifier-wrong-verifier-wrong-verifier")]),
        (&s256, &[]),
        (&[], &[("code_verifier", "unexpected-verifier-unexpected-verifier")]),
        (&s256, &[("code_verifier", "right-verifier-right-verifier-right-verifier"), ("redirect_uri", "x")]),
    ];
    for (auth, token) in cases {
        let code = code_for(&idp, "gatehouse", auth).await;
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "authorization_code"), ("code", &code)];
        if !token.iter().any(|(k, _)| *k == "redirect_uri") {
            form.push(("redirect_uri", "http://127.0.0.1:9999/cb"));
        }
        form.extend_from_slice(token);
        let (status, body) = idp.post_basic("/token", &form).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{token:?}");
    }
    let code = code_for(&idp, "gatehouse-public", &[]).await;
    let (status, body) = idp.post_basic("/token", &exchange(&code, &[])).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "other client");
    let (status, body) = idp.post_basic("/token", &exchange("made-up", &[])).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
}

#[tokio::test]
async fn code_grant_id_tokens_bind_access_token_code_and_login_time() {
    let idp = start().await;
    let before = crate::idp::util::now();
    let code = code_for(&idp, "gatehouse", &[("nonce", "n-2")]).await;
    let (status, body) = idp.exchange(&code, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = body["access_token"].as_str().unwrap();
    let id = idp.verify(body["id_token"].as_str().unwrap()).await.unwrap().claims;
    assert_eq!(id["at_hash"], b64(&sha256(access.as_bytes())[..16]));
    assert_eq!(id["c_hash"], b64(&sha256(code.as_bytes())[..16]));
    assert_eq!(id["nonce"], "n-2");
    let auth_time = id["auth_time"].as_i64().unwrap();
    assert!(auth_time >= before && auth_time <= id["iat"].as_i64().unwrap());

    // A refresh keeps the login time, and has neither nonce nor c_hash.
    let refresh = body["refresh_token"].as_str().unwrap();
    let (_, refreshed) = idp.post_basic("/token", &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
    let id = claims_of(refreshed["id_token"].as_str().unwrap());
    assert_eq!(id["auth_time"], auth_time);
    assert!(id.get("nonce").is_none() && id.get("c_hash").is_none());
    assert_eq!(id["at_hash"], b64(&sha256(refreshed["access_token"].as_str().unwrap().as_bytes())[..16]));
}

#[test]
fn hashes_follow_the_signing_algorithm() {
    use crate::idp::util::half_hash;
    use aws_lc_rs::digest::{SHA256, SHA384, SHA512, digest};
    use gatehouse_jose::Algorithm;
    let data = b"an access token";
    for (alg, hash, len) in [
        (Algorithm::Rs256, &SHA256, 16),
        (Algorithm::Es256, &SHA256, 16),
        (Algorithm::Ps384, &SHA384, 24),
        (Algorithm::Hs384, &SHA384, 24),
        (Algorithm::Rs512, &SHA512, 32),
        (Algorithm::Es512, &SHA512, 32),
        (Algorithm::EdDsa, &SHA512, 32),
    ] {
        assert_eq!(half_hash(alg, data), b64(&digest(hash, data).as_ref()[..len]), "{alg}");
    }
}

#[tokio::test]
async fn the_code_id_token_knob_tampers_with_the_next_code_grant_only() {
    let idp = start().await;
    let (status, armed) =
        idp.dev("/_dev/next", json!({"code_id_token": {"nonce": "wrong", "at_hash": "AAAA", "c_hash": null}})).await;
    assert_eq!(status, StatusCode::OK, "{armed}");
    let id = claims_of(idp.login().await["id_token"].as_str().unwrap());
    assert!(id.get("nonce").is_none() && id["at_hash"] != "AAAA", "other grants are left alone");

    let code = code_for(&idp, "gatehouse", &[("nonce", "right")]).await;
    let (_, body) = idp.exchange(&code, &[]).await;
    let id = claims_of(body["id_token"].as_str().unwrap());
    assert_eq!((id["nonce"].as_str(), id["at_hash"].as_str()), (Some("wrong"), Some("AAAA")));
    assert!(id.get("c_hash").is_none());
    idp.verify(body["id_token"].as_str().unwrap()).await.expect("still signed");

    let code = code_for(&idp, "gatehouse", &[("nonce", "right")]).await;
    let (_, body) = idp.exchange(&code, &[]).await;
    let id = claims_of(body["id_token"].as_str().unwrap());
    assert_eq!(id["nonce"], "right", "once only");
    assert_eq!(id["c_hash"], b64(&sha256(code.as_bytes())[..16]));
    assert_eq!(idp.get("/_dev/calls").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_what_it_gave() {
    let idp = start().await;
    let code = code_for(&idp, "gatehouse", &[]).await;
    let (_, first) = idp.exchange(&code, &[]).await;
    let refresh = first["refresh_token"].as_str().unwrap();
    let (_, second) = idp.post_basic("/token", &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
    let other = code_for(&idp, "gatehouse", &[]).await;
    let (_, unrelated) = idp.exchange(&other, &[]).await;
    for token in [&first["access_token"], &second["access_token"], &second["refresh_token"]] {
        assert_eq!(idp.introspect(token.as_str().unwrap()).await["active"], true);
    }

    let (status, body) = idp.exchange(&code, &[]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    for token in [&first["access_token"], &second["access_token"], &second["refresh_token"]] {
        assert_eq!(idp.introspect(token.as_str().unwrap()).await, json!({"active": false}));
    }
    let resp = idp.http.get(idp.url("/userinfo")).bearer_auth(second["access_token"].as_str().unwrap()).send().await;
    assert_eq!(resp.unwrap().status(), StatusCode::UNAUTHORIZED);
    let (status, _) = idp
        .post_basic(
            "/token",
            &[("grant_type", "refresh_token"), ("refresh_token", second["refresh_token"].as_str().unwrap())],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for token in [&unrelated["access_token"], &unrelated["refresh_token"]] {
        assert_eq!(idp.introspect(token.as_str().unwrap()).await["active"], true, "other codes' tokens live");
    }
    // A third try, and a code another client redeems first, are refused as well.
    assert_eq!(idp.exchange(&code, &[]).await.0, StatusCode::BAD_REQUEST);
    let stolen = code_for(&idp, "gatehouse", &[]).await;
    let form = [("grant_type", "authorization_code"), ("code", stolen.as_str()), ("redirect_uri", CB)];
    let resp = idp.post_form("/token", &[&form[..], &[("client_id", "gatehouse-public")]].concat()).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let (status, body) = idp.exchange(&stolen, &[]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "spent");
}

#[tokio::test]
async fn refresh_rotation_can_be_turned_off_per_client() {
    let idp = start().await;
    for (id, rotation) in [("reuse", "reuse"), ("omit", "omit"), ("rotate", "rotate")] {
        let client = json!({"client_id": id, "client_secret": "s", "refresh_token_rotation": rotation});
        assert_eq!(idp.dev("/_dev/clients", client).await.0, StatusCode::CREATED);
    }
    let refresh_as = |client: &'static str, token: String| {
        let http = idp.http.clone();
        let url = idp.url("/token");
        async move {
            let form = [("grant_type", "refresh_token"), ("refresh_token", token.as_str())];
            let resp = http.post(url).basic_auth(client, Some("s")).form(&form).send().await.unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap())
        }
    };
    let login_as = |client: &'static str| {
        let http = idp.http.clone();
        let url = idp.url("/token");
        async move {
            let form = [("grant_type", "password"), ("username", "john"), ("password", "doe")];
            let resp = http.post(url).basic_auth(client, Some("s")).form(&form).send().await.unwrap();
            resp.json::<Value>().await.unwrap()["refresh_token"].as_str().unwrap().to_owned()
        }
    };

    let token = login_as("reuse").await;
    for _ in 0..3 {
        let (status, body) = refresh_as("reuse", token.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["refresh_token"], token.as_str());
        assert!(body["refresh_expires_in"].as_i64().unwrap() > 0);
    }
    let token = login_as("omit").await;
    for _ in 0..3 {
        let (status, body) = refresh_as("omit", token.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("refresh_token").is_none() && body.get("refresh_expires_in").is_none());
    }
    let token = login_as("rotate").await;
    let (_, body) = refresh_as("rotate", token.clone()).await;
    assert_ne!(body["refresh_token"], token.as_str());
    assert_eq!(refresh_as("rotate", token).await.1["error"], "invalid_grant", "reuse refused");

    let bad = json!({"client_id": "x", "refresh_token_rotation": "sometimes"});
    assert_eq!(idp.dev("/_dev/clients", bad).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn token_lifetimes_per_client_and_per_user() {
    let mut config = IdpConfig::default();
    config.users[1].access_token_ttl = Some(7);
    let idp = start_with(config).await;
    let client = json!({"client_id": "short", "client_secret": "s", "access_token_ttl": 1, "refresh_token_ttl": 50});
    assert_eq!(idp.dev("/_dev/clients", client).await.0, StatusCode::CREATED);
    let login = |user: &'static str, pass: &'static str| {
        let http = idp.http.clone();
        let url = idp.url("/token");
        async move {
            let form = [("grant_type", "password"), ("username", user), ("password", pass)];
            let resp = http.post(url).basic_auth("short", Some("s")).form(&form).send().await.unwrap();
            resp.json::<Value>().await.unwrap()
        }
    };
    let body = login("john", "doe").await;
    assert_eq!((body["expires_in"].as_i64(), body["refresh_expires_in"].as_i64()), (Some(1), Some(50)));
    let access = body["access_token"].as_str().unwrap().to_owned();
    let c = claims_of(&access);
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 1);
    let id = claims_of(body["id_token"].as_str().unwrap());
    assert_eq!(id["exp"].as_i64().unwrap() - id["iat"].as_i64().unwrap(), 3600, "ID tokens keep the global lifetime");
    assert_eq!(login("jane", "roe").await["expires_in"], 7, "the user's lifetime wins");
    assert_eq!(idp.login().await["expires_in"], 3600, "other clients keep the global one");

    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(idp.introspect(&access).await["active"], false);
    let resp = idp.http.get(idp.url("/userinfo")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    for bad in [json!({"client_id": "x", "access_token_ttl": 0}), json!({"client_id": "x", "refresh_token_ttl": -5})] {
        assert_eq!(idp.dev("/_dev/clients", bad.clone()).await.0, StatusCode::BAD_REQUEST, "{bad}");
    }
}
