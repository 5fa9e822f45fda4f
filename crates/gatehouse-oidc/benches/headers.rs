//! Claim headers and the spoofing guard of the `openid-connect` plugin.
//!
//! Per authenticated request the plugin removes inbound headers it could set itself
//! (`HeaderPlan::strip_spoofed`) and builds the headers it sends upstream (`headers::build`):
//! Kong's claim search, the encoding of each value, and the control-character and size guards.
//! With only the access token as a source the built headers are cached with the verified token,
//! so `build` runs once per token; `strip_spoofed` runs on every request.
//!
//! The plan is built once, as the plugin does, from a config validated by
//! `config::schema().validate` and read by `Settings::from_config`; the default
//! `upstream_access_token_header` (`authorization:bearer`) stays on, reusing the request's own
//! `Authorization` value. Claims are those of a Keycloak access token.
//! - `build/claims5`: five `upstream_headers_claims` (`sub`, `preferred_username`, `email`,
//!   `scope`, and `groups`, an array sent as base64 JSON, Kong's encoding).
//! - `build/items_list_json_nested`: three `upstream_headers` items: `groups` with
//!   `encoding: list`, `realm_access` with `encoding: json`, and the nested path
//!   `realm_access.roles` with `encoding: list`.
//! - `strip_spoofed/clean`: a browser-like request of 10 headers, none of them spoofed (the
//!   common case: every header is compared and none removed).
//! - `strip_spoofed/one_spoofed`: the same with `X-Consumer-Username` among the 10, which is removed
//!   (the map is cloned outside the timed part).
//!
//! Run with `cargo bench -p gatehouse-oidc`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use gatehouse_core::schema::Mode;
use gatehouse_oidc::headers::{self, HeaderPlan, Sources};
use gatehouse_oidc::settings::Settings;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

const TOKEN: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InJzMjU2In0.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";

fn plan(extra: Value) -> HeaderPlan {
    let mut config = json!({ "issuer": "https://sso.example.com/realms/acme/" });
    if let (Value::Object(config), Value::Object(extra)) = (&mut config, extra) {
        config.extend(extra);
    }
    let config = gatehouse_oidc::config::schema().validate(&config, Mode::default()).expect("valid config");
    HeaderPlan::build(&Settings::from_config(&config).expect("settings")).expect("plan")
}

fn access_claims() -> Map<String, Value> {
    let claims = json!({
        "exp": 1_800_000_300,
        "iat": 1_800_000_000,
        "jti": "onrtac:6f1d8c2e-3b4a-4f0e-9c21-7a5d2e8b9f10",
        "iss": "https://sso.example.com/realms/acme",
        "aud": ["orders-api", "account"],
        "sub": "f3b1c9a2-5d7e-4e8f-a1b2-c3d4e5f60718",
        "typ": "Bearer",
        "azp": "web-shop",
        "realm_access": { "roles": ["default-roles-acme", "offline_access", "uma_authorization", "customer"] },
        "scope": "openid profile email orders:read orders:write",
        "email_verified": true,
        "name": "Alice Liddell",
        "preferred_username": "alice",
        "given_name": "Alice",
        "family_name": "Liddell",
        "email": "alice@example.com",
        "groups": ["/customers", "/customers/premium", "/beta-testers"],
    });
    claims.as_object().cloned().expect("object")
}

fn request_headers(spoofed: bool) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut add = |name: &'static str, value: &'static str| {
        h.append(HeaderName::from_static(name), HeaderValue::from_static(value));
    };
    add("host", "api.example.com");
    add("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0");
    add("accept", "application/json, text/plain, */*");
    add("accept-language", "en-GB,en;q=0.9");
    add("accept-encoding", "gzip, deflate, br");
    add("authorization", "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln");
    add("origin", "https://shop.example.com");
    add("referer", "https://shop.example.com/orders");
    add("x-request-id", "5d3c2b1a-0f9e-4d8c-b7a6-112233445566");
    if spoofed {
        add("x-consumer-username", "admin");
    } else {
        add("x-forwarded-for", "203.0.113.7");
    }
    assert_eq!(h.len(), 10);
    h
}

fn bench_build(c: &mut Criterion) {
    let claims = access_claims();
    let authorization = HeaderValue::from_str(&format!("Bearer {TOKEN}")).expect("header value");
    let sources = Sources {
        access: Some(&claims),
        access_token: Some(TOKEN),
        authorization: Some(&authorization),
        ..Sources::default()
    };

    let claims5 = plan(json!({
        "upstream_headers_claims": ["sub", "preferred_username", "email", "scope", "groups"],
        "upstream_headers_names": ["x-user-id", "x-username", "x-email", "x-scope", "x-groups"],
    }));
    let items = plan(json!({
        "upstream_headers": [
            { "header": "x-groups", "path": ["groups"], "encoding": "list" },
            { "header": "x-realm-access", "path": ["realm_access"], "encoding": "json" },
            { "header": "x-roles", "path": ["realm_access", "roles"], "encoding": "list" },
        ],
    }));
    // One header for the token plus one per claim: every claim is found and passes the guards.
    assert_eq!(headers::build(&claims5, &claims5.upstream, &sources).len(), 6);
    assert_eq!(headers::build(&items, &items.upstream, &sources).len(), 4);

    let mut group = c.benchmark_group("headers/build");
    group.bench_function("claims5", |b| b.iter(|| headers::build(&claims5, &claims5.upstream, black_box(&sources))));
    group.bench_function("items_list_json_nested", |b| {
        b.iter(|| headers::build(&items, &items.upstream, black_box(&sources)))
    });
    group.finish();

    let mut group = c.benchmark_group("headers/strip_spoofed");
    let mut clean = request_headers(false);
    claims5.strip_spoofed(&mut clean);
    assert_eq!(clean.len(), 10);
    group.bench_function("clean", |b| b.iter(|| claims5.strip_spoofed(black_box(&mut clean))));
    let spoofed = request_headers(true);
    group.bench_function("one_spoofed", |b| {
        b.iter_batched_ref(
            || spoofed.clone(),
            |h| {
                claims5.strip_spoofed(h);
                debug_assert_eq!(h.len(), 9);
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_build);
criterion_main!(benches);
