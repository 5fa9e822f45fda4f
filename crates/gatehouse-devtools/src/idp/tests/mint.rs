//! `/_dev/mint`: every key kind produces what it says.

use super::*;
use crate::idp::util::now;
use gatehouse_jose::{AlgorithmSet, ClaimsError, ClaimsPolicy, Jwk};

#[tokio::test]
async fn default_mint_is_a_valid_access_token_for_john() {
    let idp = start().await;
    let token = idp.mint(json!({})).await;
    let header = header_of(&token);
    assert_eq!((header["alg"].as_str(), header["typ"].as_str()), (Some("RS256"), Some("JWT")));
    let keys = idp.keyset().await;
    assert_eq!(header["kid"].as_str(), keys.keys()[0].kid());
    let verified = idp.verify(&token).await.unwrap();
    verified.check_claims(&ClaimsPolicy { issuers: vec![idp.base.clone()], ..Default::default() }, now()).unwrap();
    assert_eq!(verified.claims["preferred_username"], "john");
    assert_eq!(verified.claims["client_id"], "gatehouse");
    assert_eq!(verified.claims["aud"], "account");
    assert_eq!(idp.introspect(&token).await["active"], true);
}

#[tokio::test]
async fn ec_key_signs_es256_with_the_published_ec_key() {
    let idp = start().await;
    let token = idp.mint(json!({"key": "ec", "user": "jane"})).await;
    assert_eq!(header_of(&token)["alg"], "ES256");
    let verified = idp.verify(&token).await.unwrap();
    assert_eq!(verified.key.kid(), idp.keyset().await.keys()[1].kid());
    assert_eq!(verified.claims["roles"], json!(["admin"]));
}

#[tokio::test]
async fn foreign_key_is_not_in_the_jwks() {
    let idp = start().await;
    let token = idp.mint(json!({"key": "foreign"})).await;
    let header = header_of(&token);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"].as_str().unwrap().len(), 16, "same kid shape as ours");
    assert!(matches!(idp.verify(&token).await, Err(VerifyError::UnknownKid(_))));

    // Claiming a published kid does not help: the signature is wrong.
    let rsa_kid = idp.keyset().await.keys()[0].kid().unwrap().to_owned();
    let token = idp.mint(json!({"key": "foreign", "header": {"kid": rsa_kid}})).await;
    assert_eq!(idp.verify(&token).await.unwrap_err(), VerifyError::InvalidSignature);
}

#[tokio::test]
async fn hs_key_signs_with_the_client_secret_or_hs_secret() {
    let idp = start().await;
    let token = idp.mint(json!({"key": "hs"})).await;
    let header = header_of(&token);
    assert_eq!(header["alg"], "HS256");
    assert!(header.get("kid").is_none());
    assert!(matches!(idp.verify(&token).await, Err(VerifyError::AlgorithmNotAllowed(_))));
    let hs = |secret: &[u8]| KeySet::from_keys([Jwk::from_hmac_secret(secret, None, None).unwrap()]);
    let policy = Policy { algorithms: AlgorithmSet::all(), enable_hs_signatures: true };
    assert!(gatehouse_jose::verify(&token, &hs(SECRET.as_bytes()), &policy).is_ok());

    let token = idp.mint(json!({"key": "hs", "hs_secret": "other", "alg": "HS512"})).await;
    assert_eq!(header_of(&token)["alg"], "HS512");
    assert!(gatehouse_jose::verify(&token, &hs(b"other"), &policy).is_ok());
    assert!(gatehouse_jose::verify(&token, &hs(SECRET.as_bytes()), &policy).is_err());
    assert_eq!(idp.introspect(&token).await["active"], false);

    let (status, _) = idp.dev("/_dev/mint", json!({"key": "hs", "alg": "RS256"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = idp.dev("/_dev/mint", json!({"key": "hs", "client_id": "gatehouse-public"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no secret to sign with");
}

#[tokio::test]
async fn none_key_has_no_signature() {
    let idp = start().await;
    let token = idp.mint(json!({"key": "none"})).await;
    assert!(token.ends_with('.'));
    assert_eq!(token.split('.').count(), 3);
    let header = header_of(&token);
    assert_eq!(header["alg"], "none");
    assert!(header.get("kid").is_none());
    assert_eq!(idp.verify(&token).await.unwrap_err(), VerifyError::AlgorithmNotAllowed("none"));
    assert_eq!(idp.introspect(&token).await["active"], false);
    assert_eq!(claims_of(&token)["preferred_username"], "john");
}

#[tokio::test]
async fn alg_override_signs_with_a_matching_key() {
    let idp = start().await;
    // The published RSA key, rebound: the JWK says RS256, so verifiers refuse it.
    let rs384 = idp.mint(json!({"alg": "RS384"})).await;
    assert_eq!(header_of(&rs384)["alg"], "RS384");
    assert_eq!(header_of(&rs384)["kid"].as_str(), idp.keyset().await.keys()[0].kid());
    assert!(matches!(idp.verify(&rs384).await, Err(VerifyError::KeyMismatch(_))));
    let ps256 = idp.mint(json!({"alg": "PS256"})).await;
    assert!(matches!(idp.verify(&ps256).await, Err(VerifyError::KeyMismatch(_))));
    // A fresh key when no published key can make the alg.
    let es384 = idp.mint(json!({"alg": "ES384"})).await;
    assert_eq!(header_of(&es384)["alg"], "ES384");
    assert!(matches!(idp.verify(&es384).await, Err(VerifyError::UnknownKid(_))));
    let ec_rs = idp.mint(json!({"key": "ec", "alg": "RS256"})).await;
    assert!(matches!(idp.verify(&ec_rs).await, Err(VerifyError::UnknownKid(_))));
    // alg alone picks the kind: ES256 → the published EC key.
    assert!(idp.verify(&idp.mint(json!({"alg": "ES256"})).await).await.is_ok());
    let (status, _) = idp.dev("/_dev/mint", json!({"alg": "XS999"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn header_and_claims_overrides() {
    let idp = start().await;
    let token = idp
        .mint(json!({
            "claims": {"sub": "someone", "email": null, "aud": ["a", "b"], "custom": {"x": 1}},
            "header": {"typ": "at+jwt", "crit": ["exp"]},
        }))
        .await;
    let claims = claims_of(&token);
    assert_eq!(claims["sub"], "someone");
    assert!(claims.get("email").is_none());
    assert_eq!(claims["aud"], json!(["a", "b"]));
    assert_eq!(claims["custom"]["x"], 1);
    assert_eq!(header_of(&token)["typ"], "at+jwt");
    assert!(matches!(idp.verify(&token).await, Err(VerifyError::UnsupportedCritical(_))));

    let unknown_kid = idp.mint(json!({"header": {"kid": "unknown"}})).await;
    assert!(matches!(idp.verify(&unknown_kid).await, Err(VerifyError::UnknownKid(_))));
    let no_kid = idp.mint(json!({"header": {"kid": null}})).await;
    assert!(header_of(&no_kid).get("kid").is_none());
    assert!(idp.verify(&no_kid).await.is_ok(), "a kid-less token is tried against every key");
    // The header may lie about alg: HS256 in the header, RSA signature underneath.
    let lying = idp.mint(json!({"header": {"alg": "HS256"}})).await;
    assert!(idp.verify(&lying).await.is_err());
}

#[tokio::test]
async fn ttl_and_nbf_shape_the_time_window() {
    let idp = start().await;
    let policy = ClaimsPolicy::default();
    let expired = idp.mint(json!({"ttl": -60})).await;
    let verified = idp.verify(&expired).await.unwrap();
    assert_eq!(verified.check_claims(&policy, now()), Err(ClaimsError::Expired));
    assert_eq!(idp.introspect(&expired).await["active"], false);

    let later = idp.mint(json!({"nbf_in": 600})).await;
    let verified = idp.verify(&later).await.unwrap();
    assert_eq!(verified.check_claims(&policy, now()), Err(ClaimsError::NotYetValid));
    assert_eq!(idp.introspect(&later).await["active"], false);

    let short = idp.mint(json!({"ttl": 5})).await;
    let c = claims_of(&short);
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 5);
}

#[tokio::test]
async fn opaque_tokens_work_with_introspection_and_userinfo() {
    let idp = start().await;
    let token = idp.mint(json!({"format": "opaque", "user": "jane", "claims": {"tenant": "t1"}})).await;
    assert_eq!(token.split('.').count(), 1);
    let active = idp.introspect(&token).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["username"], "jane");
    assert_eq!(active["tenant"], "t1");
    let resp = idp.http.get(idp.url("/userinfo")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["preferred_username"], "jane");

    idp.post_basic("/revoke", &[("token", &token)]).await;
    assert_eq!(idp.introspect(&token).await["active"], false);

    let expired = idp.mint(json!({"format": "opaque", "ttl": -1})).await;
    assert_eq!(idp.introspect(&expired).await["active"], false);
    let (status, _) = idp.dev("/_dev/mint", json!({"format": "jwe"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
