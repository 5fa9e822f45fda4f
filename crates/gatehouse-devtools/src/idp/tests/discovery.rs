//! Discovery document and JWKS.

use super::*;

#[tokio::test]
async fn discovery_names_every_endpoint_under_the_issuer() {
    let idp = start().await;
    let (status, doc) = idp.get("/.well-known/openid-configuration").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["issuer"], idp.base);
    for (field, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/jwks"),
        ("introspection_endpoint", "/introspect"),
        ("revocation_endpoint", "/revoke"),
        ("end_session_endpoint", "/logout"),
        ("pushed_authorization_request_endpoint", "/par"),
    ] {
        assert_eq!(doc[field], idp.url(path), "{field}");
    }
    assert_eq!(doc["response_types_supported"], json!(["code"]));
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256", "plain"]));
    assert_eq!(
        doc["response_modes_supported"],
        json!(["query", "form_post", "fragment", "query.jwt", "form_post.jwt", "fragment.jwt", "jwt"])
    );
    assert_eq!(doc["authorization_signing_alg_values_supported"], json!(["RS256"]));
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert_eq!(doc["require_pushed_authorization_requests"], false);
    assert_eq!(doc["request_parameter_supported"], true);
    let algs = doc["request_object_signing_alg_values_supported"].as_array().unwrap();
    for alg in ["RS256", "PS256", "ES256", "HS256"] {
        assert!(algs.contains(&json!(alg)), "{alg}");
    }
    assert!(!algs.contains(&json!("none")));
    assert_eq!(doc["subject_types_supported"], json!(["public"]));
    assert_eq!(doc["id_token_signing_alg_values_supported"], json!(["RS256"]));
    let methods = doc["token_endpoint_auth_methods_supported"].as_array().unwrap();
    for m in ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"] {
        assert!(methods.contains(&json!(m)), "{m}");
    }
    for grant in ["authorization_code", "password", "client_credentials", "refresh_token"] {
        assert!(doc["grant_types_supported"].as_array().unwrap().contains(&json!(grant)), "{grant}");
    }
    assert!(doc["introspection_endpoint_auth_methods_supported"].is_array());
    assert!(doc["scopes_supported"].as_array().unwrap().contains(&json!("openid")));
    for claim in ["preferred_username", "at_hash", "c_hash", "auth_time", "nonce"] {
        assert!(doc["claims_supported"].as_array().unwrap().contains(&json!(claim)), "{claim}");
    }
}

#[tokio::test]
async fn jwks_has_one_rsa_and_one_ec_signing_key() {
    let idp = start().await;
    let (status, jwks) = idp.get("/jwks").await;
    assert_eq!(status, StatusCode::OK);
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    let rsa = &keys[0];
    assert_eq!(
        (rsa["kty"].as_str(), rsa["alg"].as_str(), rsa["use"].as_str()),
        (Some("RSA"), Some("RS256"), Some("sig"))
    );
    assert!(rsa["n"].as_str().unwrap().len() >= 342, "2048-bit modulus");
    let ec = &keys[1];
    assert_eq!(
        (ec["kty"].as_str(), ec["alg"].as_str(), ec["crv"].as_str()),
        (Some("EC"), Some("ES256"), Some("P-256"))
    );
    assert_ne!(rsa["kid"], ec["kid"]);
    assert!(rsa["kid"].is_string() && ec["kid"].is_string());
    assert!(rsa.get("d").is_none() && ec.get("d").is_none(), "no private members");
    assert_eq!(KeySet::from_jwks(jwks).unwrap().len(), 2);
}

#[tokio::test]
async fn an_issuer_with_a_path_serves_endpoints_under_it() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let issuer = format!("http://{addr}/realms/demo");
    let config = IdpConfig { issuer: Some(issuer.clone()), ..IdpConfig::default() };
    tokio::spawn(serve_idp(listener, config, std::future::pending()));
    let http = reqwest::Client::new();
    let doc: Value =
        http.get(format!("{issuer}/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["issuer"], issuer);
    assert_eq!(doc["token_endpoint"], format!("{issuer}/token"));
    let jwks = http.get(format!("{issuer}/jwks")).send().await.unwrap();
    assert_eq!(jwks.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_invalid_config_fails_at_start() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = IdpConfig { access_token_ttl: 0, ..IdpConfig::default() };
    let err = serve_idp(listener, config, std::future::pending()).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}
