//! End-to-end checks of `verify`: real keys generated with aws-lc-rs, tokens signed with
//! `sign`, JWKS built from the public halves.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::sign::{SigningKey, sign_jwt};
use super::*;

const NOW: i64 = 1_800_000_000;

/// RSA key generation is slow in debug builds, so the tests share one key.
fn rsa_key() -> SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate(Algorithm::Rs256).unwrap().with_kid("rsa")).clone()
}

fn claims() -> Value {
    json!({ "iss": "https://idp.example", "sub": "alice", "aud": "api", "exp": NOW + 60, "iat": NOW })
}

fn key_set(keys: &[&SigningKey]) -> KeySet {
    let jwks = json!({ "keys": keys.iter().map(|k| k.public_jwk().unwrap()).collect::<Vec<_>>() });
    let set = KeySet::from_jwks(jwks).unwrap();
    assert!(set.skipped().is_empty(), "{:?}", set.skipped());
    set
}

/// Signs whatever header it is given, with no consistency checks: for forging attack tokens.
fn forge(header: Value, claims: &Value, key: &SigningKey) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    );
    let sig = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn hs_enabled() -> Policy {
    Policy { enable_hs_signatures: true, ..Policy::default() }
}

#[test]
fn every_supported_algorithm_verifies() {
    let mut signers: Vec<SigningKey> =
        [Algorithm::Rs256, Algorithm::Rs384, Algorithm::Rs512, Algorithm::Ps256, Algorithm::Ps384, Algorithm::Ps512]
            .into_iter()
            .map(|alg| rsa_key().with_algorithm(alg).unwrap().with_kid(alg.as_str()))
            .collect();
    for alg in [Algorithm::Es256, Algorithm::Es384, Algorithm::Es512, Algorithm::EdDsa] {
        signers.push(SigningKey::generate(alg).unwrap().with_kid(alg.as_str()));
    }
    let mut keys = key_set(&signers.iter().collect::<Vec<_>>());
    for alg in [Algorithm::Hs256, Algorithm::Hs384, Algorithm::Hs512] {
        let secret = format!("a shared secret for {alg} that is long enough");
        signers.push(SigningKey::hmac(alg, secret.as_bytes()).unwrap().with_kid(alg.as_str()));
        keys.push(Jwk::from_hmac_secret(secret.as_bytes(), Some(alg.as_str()), Some(alg)).unwrap());
    }

    for signer in &signers {
        let token = sign_jwt(&json!({ "typ": "JWT" }), &claims(), signer).unwrap();
        let verified = verify(&token, &keys, &hs_enabled()).unwrap_or_else(|e| panic!("{}: {e}", signer.algorithm()));
        assert_eq!(verified.alg, signer.algorithm());
        assert_eq!(verified.key.kid(), signer.kid());
        assert_eq!(verified.header.typ.as_deref(), Some("JWT"));
        assert_eq!(verified.claims["sub"], "alice");
    }
}

#[test]
fn verified_carries_the_very_key_that_verified() {
    let a = SigningKey::generate(Algorithm::Es256).unwrap().with_kid("a");
    let b = SigningKey::generate(Algorithm::Es256).unwrap().with_kid("b");
    let keys = key_set(&[&a, &b]);
    let verified = verify(&sign_jwt(&json!({}), &claims(), &b).unwrap(), &keys, &Policy::default()).unwrap();
    assert_eq!(verified.key.json(), &b.public_jwk().unwrap());
}

#[test]
fn token_without_kid_is_verified_by_the_fitting_key() {
    let ec = SigningKey::generate(Algorithm::Es256).unwrap().with_kid("ec");
    let ed = SigningKey::generate(Algorithm::EdDsa).unwrap().with_kid("ed");
    let keys = key_set(&[&ec, &ed]);
    let token = forge(json!({ "alg": "EdDSA" }), &claims(), &ed);
    assert_eq!(verify(&token, &keys, &Policy::default()).unwrap().key.kid(), Some("ed"));
}

#[test]
fn token_without_kid_and_no_fitting_key_is_refused() {
    let ed = SigningKey::generate(Algorithm::EdDsa).unwrap();
    let keys = key_set(&[&ed]);
    let es = SigningKey::generate(Algorithm::Es256).unwrap();
    let token = forge(json!({ "alg": "ES256" }), &claims(), &es);
    assert_eq!(verify(&token, &keys, &Policy::default()).unwrap_err(), VerifyError::NoMatchingKey(Algorithm::Es256));
}

#[test]
fn tampered_payload_fails_the_signature() {
    let key = SigningKey::generate(Algorithm::Es256).unwrap().with_kid("k");
    let keys = key_set(&[&key]);
    let token = sign_jwt(&json!({}), &claims(), &key).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let mut evil = claims();
    evil["sub"] = "mallory".into();
    let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(evil.to_string()), parts[2]);
    assert_eq!(verify(&tampered, &keys, &Policy::default()).unwrap_err(), VerifyError::InvalidSignature);
    assert_eq!(VerifyError::InvalidSignature.to_string(), "invalid signature");
}

#[test]
fn tampered_rsa_signature_fails() {
    let key = rsa_key();
    let keys = key_set(&[&key]);
    let token = sign_jwt(&json!({}), &claims(), &key).unwrap();
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    sig[10] ^= 1;
    let tampered = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
    assert_eq!(verify(&tampered, &keys, &Policy::default()).unwrap_err(), VerifyError::InvalidSignature);
}

#[test]
fn alg_none_is_always_refused() {
    let key = SigningKey::generate(Algorithm::EdDsa).unwrap().with_kid("k");
    let keys = key_set(&[&key]);
    let everything = Policy { algorithms: AlgorithmSet::all(), enable_hs_signatures: true };
    for none in ["none", "None", "NONE"] {
        let header = URL_SAFE_NO_PAD.encode(json!({ "alg": none, "kid": "k" }).to_string());
        let payload = URL_SAFE_NO_PAD.encode(claims().to_string());
        for token in [format!("{header}.{payload}."), format!("{header}.{payload}.AAAA")] {
            let err = verify(&token, &keys, &everything).unwrap_err();
            assert_eq!(err, VerifyError::AlgorithmNotAllowed("none"));
            assert_eq!(err.to_string(), "algorithm not allowed: none");
        }
    }
}

#[test]
fn hs256_signed_with_the_rsa_public_modulus_is_refused() {
    // The classic RS/HS confusion: an attacker takes the RSA public key and uses it as an HMAC
    // secret, hoping the verifier feeds the same bytes to HMAC.
    let rsa = rsa_key();
    let keys = key_set(&[&rsa]);
    let jwk = rsa.public_jwk().unwrap();
    let modulus = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    let forger = SigningKey::hmac(Algorithm::Hs256, &modulus).unwrap();

    let with_kid = forge(json!({ "alg": "HS256", "kid": "rsa" }), &claims(), &forger);
    assert_eq!(verify(&with_kid, &keys, &hs_enabled()).unwrap_err(), VerifyError::KeyMismatch(Algorithm::Hs256));
    assert_eq!(verify(&with_kid, &keys, &Policy::default()).unwrap_err(), VerifyError::AlgorithmNotAllowed("HS256"));

    let without_kid = forge(json!({ "alg": "HS256" }), &claims(), &forger);
    assert_eq!(verify(&without_kid, &keys, &hs_enabled()).unwrap_err(), VerifyError::NoMatchingKey(Algorithm::Hs256));
}

#[test]
fn hs_tokens_are_refused_unless_enabled() {
    let secret = b"0123456789abcdef0123456789abcdef";
    let signer = SigningKey::hmac(Algorithm::Hs256, secret).unwrap().with_kid("hs");
    let keys = KeySet::from_keys([Jwk::from_hmac_secret(secret, Some("hs"), None).unwrap()]);
    let token = sign_jwt(&json!({}), &claims(), &signer).unwrap();
    let err = verify(&token, &keys, &Policy::default()).unwrap_err();
    assert_eq!(err, VerifyError::AlgorithmNotAllowed("HS256"));
    assert_eq!(err.to_string(), "algorithm not allowed: HS256");
    assert!(verify(&token, &keys, &hs_enabled()).is_ok());
}

#[test]
fn hs_token_with_the_wrong_secret_fails_the_signature() {
    let signer = SigningKey::hmac(Algorithm::Hs256, b"right").unwrap().with_kid("hs");
    let keys = KeySet::from_keys([Jwk::from_hmac_secret(b"wrong", Some("hs"), None).unwrap()]);
    let token = sign_jwt(&json!({}), &claims(), &signer).unwrap();
    assert_eq!(verify(&token, &keys, &hs_enabled()).unwrap_err(), VerifyError::InvalidSignature);
}

#[test]
fn es256_header_with_a_p384_key_is_refused() {
    let p384 = SigningKey::generate(Algorithm::Es384).unwrap().with_kid("p384");
    let mut jwk = p384.public_jwk().unwrap();
    jwk.as_object_mut().unwrap().remove("alg");
    let keys = KeySet::from_jwks(json!({ "keys": [jwk] })).unwrap();
    let token = forge(json!({ "alg": "ES256", "kid": "p384" }), &claims(), &p384);
    let err = verify(&token, &keys, &Policy::default()).unwrap_err();
    assert_eq!(err, VerifyError::KeyMismatch(Algorithm::Es256));
    assert_eq!(err.to_string(), "key does not fit algorithm ES256");
}

#[test]
fn jwk_alg_must_equal_the_header_alg() {
    let rs = rsa_key().with_kid("rs");
    let keys = key_set(&[&rs]); // the JWK says RS256
    let ps = rs.clone().with_algorithm(Algorithm::Ps256).unwrap();
    let token = sign_jwt(&json!({}), &claims(), &ps).unwrap();
    assert_eq!(verify(&token, &keys, &Policy::default()).unwrap_err(), VerifyError::KeyMismatch(Algorithm::Ps256));
}

#[test]
fn unknown_kid_is_its_own_error() {
    let known = SigningKey::generate(Algorithm::EdDsa).unwrap().with_kid("old");
    let rotated = SigningKey::generate(Algorithm::EdDsa).unwrap().with_kid("new");
    let keys = key_set(&[&known]);
    let token = sign_jwt(&json!({}), &claims(), &rotated).unwrap();
    let err = verify(&token, &keys, &Policy::default()).unwrap_err();
    assert_eq!(err, VerifyError::UnknownKid("new".into()));
    assert_eq!(err.to_string(), "unknown key id");
}

#[test]
fn token_kid_falls_back_to_keys_without_kid() {
    let key = SigningKey::generate(Algorithm::Es256).unwrap(); // published without a kid
    let keys = key_set(&[&key]);
    let token = forge(json!({ "alg": "ES256", "kid": "whatever" }), &claims(), &key);
    assert!(verify(&token, &keys, &Policy::default()).is_ok());
    let other = SigningKey::generate(Algorithm::Es256).unwrap();
    let token = forge(json!({ "alg": "ES256", "kid": "whatever" }), &claims(), &other);
    assert_eq!(verify(&token, &keys, &Policy::default()).unwrap_err(), VerifyError::UnknownKid("whatever".into()));
}

#[test]
fn unknown_crit_is_refused() {
    let key = SigningKey::generate(Algorithm::EdDsa).unwrap().with_kid("k");
    let keys = key_set(&[&key]);
    let token = sign_jwt(&json!({ "crit": ["exp"], "exp": 1 }), &claims(), &key).unwrap();
    assert_eq!(verify(&token, &keys, &Policy::default()).unwrap_err(), VerifyError::UnsupportedCritical("exp".into()));
    let token = sign_jwt(&json!({ "crit": [] }), &claims(), &key).unwrap();
    assert_eq!(verify(&token, &keys, &Policy::default()).unwrap_err(), VerifyError::Malformed("empty crit"));
}

#[test]
fn algorithm_outside_the_policy_is_refused() {
    let key = SigningKey::generate(Algorithm::Es256).unwrap().with_kid("k");
    let keys = key_set(&[&key]);
    let token = sign_jwt(&json!({}), &claims(), &key).unwrap();
    let rsa_only = Policy { algorithms: [Algorithm::Rs256].into_iter().collect(), ..Policy::default() };
    assert_eq!(verify(&token, &keys, &rsa_only).unwrap_err(), VerifyError::AlgorithmNotAllowed("ES256"));
}

#[test]
fn unsupported_algorithm_is_refused_without_echoing_it() {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS1\r\nX: y"}"#);
    let token = format!("{header}.e30.AAAA");
    let err = verify(&token, &KeySet::default(), &Policy::default()).unwrap_err();
    assert_eq!(err, VerifyError::UnsupportedAlgorithm("RS1\r\nX: y".into()));
    assert_eq!(err.to_string(), "unsupported algorithm");
}

#[test]
fn malformed_tokens_are_refused() {
    let key = SigningKey::generate(Algorithm::EdDsa).unwrap().with_kid("k");
    let keys = key_set(&[&key]);
    let good = sign_jwt(&json!({}), &claims(), &key).unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    let padded_sig = base64::engine::general_purpose::URL_SAFE.encode(URL_SAFE_NO_PAD.decode(parts[2]).unwrap());
    let cases = [
        ("", "not a compact jws"),
        ("abc", "not a compact jws"),
        ("a.b", "not a compact jws"),
        ("a.b.c.d", "not a compact jws"),
        ("a.b.c.d.e", "encrypted tokens are not supported"),
        ("!!!.e30.AAAA", "invalid header encoding"),
        (&format!("{}.e30.AAAA", URL_SAFE_NO_PAD.encode("[1]")), "invalid header"),
        (&format!("{}.e30.AAAA", URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","alg":"none"}"#)), "invalid header"),
        (&format!("{}.{}.{padded_sig}", parts[0], parts[1]), "invalid signature encoding"),
        (&format!("{}.{}.{}", parts[0], parts[1], "A".repeat(2000)), "signature too long"),
    ];
    for (token, why) in cases {
        assert_eq!(verify(token, &keys, &Policy::default()).unwrap_err(), VerifyError::Malformed(why), "{token}");
    }
}

#[test]
fn signed_payload_that_is_not_an_object_is_refused() {
    let key = SigningKey::generate(Algorithm::EdDsa).unwrap().with_kid("k");
    let keys = key_set(&[&key]);
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","kid":"k"}"#), URL_SAFE_NO_PAD.encode("[1,2]"));
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()).unwrap()));
    assert_eq!(
        verify(&token, &keys, &Policy::default()).unwrap_err(),
        VerifyError::Malformed("payload is not a json object")
    );
}

#[test]
fn large_header_is_decoded_off_the_stack() {
    let key = SigningKey::generate(Algorithm::EdDsa).unwrap().with_kid("k");
    let keys = key_set(&[&key]);
    let token = sign_jwt(&json!({ "x-padding": "p".repeat(2000) }), &claims(), &key).unwrap();
    assert!(verify(&token, &keys, &Policy::default()).is_ok());
}

#[test]
fn unverified_parts_are_readable_before_verification() {
    let key = SigningKey::generate(Algorithm::Es256).unwrap().with_kid("k");
    let token = sign_jwt(&json!({ "typ": "at+jwt" }), &claims(), &key).unwrap();
    let jwt = UnverifiedJwt::parse(&token).unwrap();
    assert_eq!(jwt.unverified_header().kid.as_deref(), Some("k"));
    assert_eq!(jwt.unverified_header().typ.as_deref(), Some("at+jwt"));
    assert_eq!(jwt.unverified_claims().unwrap()["iss"], "https://idp.example");
    assert_eq!(jwt.signing_input(), token.rsplit_once('.').unwrap().0.as_bytes());
}

#[test]
fn claims_stage_runs_on_the_verified_token() {
    let key = SigningKey::generate(Algorithm::EdDsa).unwrap().with_kid("k");
    let keys = key_set(&[&key]);
    let policy = ClaimsPolicy {
        leeway: 5,
        issuers: vec!["https://idp.example".into()],
        audiences: vec!["api".into()],
        ..ClaimsPolicy::default()
    };
    let verified = verify(&sign_jwt(&json!({}), &claims(), &key).unwrap(), &keys, &Policy::default()).unwrap();
    assert_eq!(verified.check_claims(&policy, NOW), Ok(()));
    assert_eq!(verified.check_claims(&policy, NOW + 64), Ok(()));
    assert_eq!(verified.check_claims(&policy, NOW + 65), Err(ClaimsError::Expired));

    let mut future = claims();
    future["nbf"] = (NOW + 30).into();
    let verified = verify(&sign_jwt(&json!({}), &future, &key).unwrap(), &keys, &Policy::default()).unwrap();
    assert_eq!(verified.check_claims(&policy, NOW), Err(ClaimsError::NotYetValid));
    assert_eq!(verified.check_claims(&policy, NOW + 25), Ok(()));

    let wrong_iss = ClaimsPolicy { issuers: vec!["https://other.example".into()], ..policy.clone() };
    assert_eq!(verified.check_claims(&wrong_iss, NOW + 30), Err(ClaimsError::InvalidIssuer));
    let wrong_aud = ClaimsPolicy { audiences: vec!["billing".into()], ..policy };
    assert_eq!(verified.check_claims(&wrong_aud, NOW + 30), Err(ClaimsError::InvalidAudience));
}

#[test]
fn errors_stay_small() {
    assert!(std::mem::size_of::<VerifyError>() <= 24);
    assert!(std::mem::size_of::<ClaimsError>() <= 24);
}

#[test]
fn key_sets_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<KeySet>();
    assert_send_sync::<Verified>();
    assert_send_sync::<SigningKey>();
}

/// Property tests of compact JWS parsing: any text is parsed or refused without a panic, and
/// nothing but the very token a key signed verifies.
mod properties {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn hs_key() -> (SigningKey, KeySet) {
        let secret = b"a shared secret that is long enough for HS256";
        let signer = SigningKey::hmac(Algorithm::Hs256, secret).unwrap();
        (signer, KeySet::from_keys([Jwk::from_hmac_secret(secret, None, None).unwrap()]))
    }

    /// Everything `parse` and `verify` may be asked about `token`; only checks nothing panics.
    fn exercise(token: &str, keys: &KeySet) -> Option<Verified> {
        if let Ok(jwt) = UnverifiedJwt::parse(token) {
            let _ = jwt.unverified_claims();
            let _ = jwt.signing_input();
        }
        verify(token, keys, &hs_enabled()).ok()
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    proptest! {

        #[test]
        fn any_text_is_refused_without_panic(token in "\\PC{0,300}") {
            let (_, keys) = hs_key();
            prop_assert!(exercise(&token, &keys).is_none());
        }

        #[test]
        fn dotted_base64_segments_are_refused_without_panic(
            parts in vec(vec(any::<u8>(), 0..120), 1..7),
        ) {
            let (_, keys) = hs_key();
            let token = parts.iter().map(|p| b64(p)).collect::<Vec<_>>().join(".");
            prop_assert!(exercise(&token, &keys).is_none());
        }

        #[test]
        fn json_headers_with_random_members_are_refused_without_panic(
            alg in prop_oneof![Just("HS256".to_string()), Just("none".to_string()), Just("RS256".to_string()), "[A-Za-z0-9]{0,8}"],
            kid in proptest::option::of("\\PC{0,20}"),
            crit in proptest::option::of(vec("[a-z]{0,6}", 0..3)),
            payload in vec(any::<u8>(), 0..200),
            signature in vec(any::<u8>(), 0..80),
        ) {
            let (_, keys) = hs_key();
            let header = json!({ "alg": alg, "kid": kid, "crit": crit });
            let token = format!("{}.{}.{}", b64(&serde_json::to_vec(&header).unwrap()), b64(&payload), b64(&signature));
            prop_assert!(exercise(&token, &keys).is_none());
        }

        #[test]
        fn a_signed_token_verifies_and_any_changed_character_does_not(
            sub in "\\PC{0,40}",
            at in any::<prop::sample::Index>(),
            with in "[A-Za-z0-9_.-]",
        ) {
            let (signer, keys) = hs_key();
            let token = sign_jwt(&json!({ "typ": "JWT" }), &json!({ "sub": sub }), &signer).unwrap();
            let verified = exercise(&token, &keys).expect("verifies");
            prop_assert_eq!(&verified.claims["sub"], &json!(sub));
            let i = at.index(token.len());
            let mutated = format!("{}{}{}", &token[..i], with, &token[i + 1..]);
            prop_assume!(mutated != token);
            prop_assert!(exercise(&mutated, &keys).is_none(), "{} verified", mutated);
        }
    }
}
