//! JWT verification: the signature check every bearer request pays on a verified-token cache
//! miss, and the claims check it pays on every request (a cache hit still re-checks `exp`).
//!
//! - `verify/cached_keys/<alg>`: `gatehouse_jose::verify` with a `KeySet` built once, as the
//!   provider keeps it between JWKS fetches. This is the signature stage's steady-state cost.
//! - `verify/uncached_keys/<alg>`: `KeySet::from_jwks_slice` on the JWKS bytes, then `verify`, per
//!   iteration: what a verify would cost if keys were parsed per request (the difference to
//!   `cached_keys` is the JWK parse that the key cache saves).
//! - `check_claims`: `exp`/`nbf`/`iat`, `iss` and `aud` on the verified claims.
//!
//! The token is an access token shaped like Keycloak's (registered claims, `scope`, profile and
//! email claims, groups and realm roles): 724 bytes of claims, 1.1 to 1.4 KB of token depending on
//! the signature. Each algorithm has its own one-key JWKS: RS256 and PS256 use RSA-2048, ES256
//! P-256, EdDSA Ed25519.
//!
//! Run with `cargo bench -p gatehouse-jose`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gatehouse_jose::sign::{SigningKey, sign_jwt};
use gatehouse_jose::{Algorithm, ClaimsPolicy, KeySet, Policy, check_claims, verify};
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000;
const ISSUER: &str = "https://sso.example.com/realms/acme";

/// An access token's claims as Keycloak issues them for a logged-in user.
fn access_token_claims() -> Value {
    json!({
        "exp": NOW + 300,
        "iat": NOW,
        "auth_time": NOW - 20,
        "jti": "onrtac:6f1d8c2e-3b4a-4f0e-9c21-7a5d2e8b9f10",
        "iss": ISSUER,
        "aud": ["orders-api", "account"],
        "sub": "f3b1c9a2-5d7e-4e8f-a1b2-c3d4e5f60718",
        "typ": "Bearer",
        "azp": "web-shop",
        "sid": "0b9e7a61-2c4d-4e5f-8a9b-1c2d3e4f5a6b",
        "acr": "1",
        "allowed-origins": ["https://shop.example.com"],
        "realm_access": { "roles": ["default-roles-acme", "offline_access", "uma_authorization", "customer"] },
        "scope": "openid profile email orders:read orders:write",
        "email_verified": true,
        "name": "Alice Liddell",
        "preferred_username": "alice",
        "given_name": "Alice",
        "family_name": "Liddell",
        "email": "alice@example.com",
        "groups": ["/customers", "/customers/premium", "/beta-testers"],
    })
}

struct Case {
    alg: Algorithm,
    token: String,
    jwks: Vec<u8>,
    keys: KeySet,
}

fn case(key: SigningKey) -> Case {
    let alg = key.algorithm();
    let token = sign_jwt(&json!({ "typ": "JWT" }), &access_token_claims(), &key).expect("signs");
    let jwks = serde_json::to_vec(&json!({ "keys": [key.public_jwk().expect("public key")] })).expect("json");
    let keys = KeySet::from_jwks_slice(&jwks).expect("jwks");
    assert!(keys.skipped().is_empty() && keys.len() == 1, "{alg}: {:?}", keys.skipped());
    verify(&token, &keys, &Policy::default()).expect("verifies");
    Case { alg, token, jwks, keys }
}

fn cases() -> Vec<Case> {
    let rsa = SigningKey::generate(Algorithm::Rs256).expect("rsa key");
    vec![
        case(rsa.clone().with_kid("rs256")),
        case(SigningKey::generate(Algorithm::Es256).expect("ec key").with_kid("es256")),
        case(SigningKey::generate(Algorithm::EdDsa).expect("ed25519 key").with_kid("eddsa")),
        case(rsa.with_algorithm(Algorithm::Ps256).expect("pss").with_kid("ps256")),
    ]
}

fn bench_verify(c: &mut Criterion) {
    let policy = Policy::default();
    let cases = cases();
    let mut group = c.benchmark_group("verify");
    for case in &cases {
        group.bench_with_input(BenchmarkId::new("cached_keys", case.alg), case, |b, case| {
            b.iter(|| verify(black_box(&case.token), &case.keys, &policy).expect("verifies"))
        });
    }
    for case in &cases {
        group.bench_with_input(BenchmarkId::new("uncached_keys", case.alg), case, |b, case| {
            b.iter(|| {
                let keys = KeySet::from_jwks_slice(black_box(&case.jwks)).expect("jwks");
                verify(black_box(&case.token), &keys, &policy).expect("verifies")
            })
        });
    }
    group.finish();

    let verified = verify(&cases[0].token, &cases[0].keys, &policy).expect("verifies");
    let claims_policy = ClaimsPolicy {
        leeway: 0,
        require_exp: true,
        issuers: vec![ISSUER.to_string()],
        audiences: vec!["orders-api".to_string()],
    };
    c.bench_function("check_claims", |b| {
        b.iter(|| check_claims(black_box(&verified.claims), &claims_policy, black_box(NOW + 10)).expect("valid"))
    });
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
