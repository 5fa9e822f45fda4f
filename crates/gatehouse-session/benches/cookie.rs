//! Session cookies: sealing (`SessionStore::save`) and opening (`SessionStore::open`).
//!
//! A browser that logged in through the `openid-connect` plugin sends its session cookie on every
//! request, so `open` (base64url decode, AES-256-GCM open, envelope parse, timeout checks) is on
//! the request path of every session-authenticated request; `save` (envelope, seal, base64url,
//! `Set-Cookie` values) runs on login, on refresh and about once a minute per active session.
//!
//! Payloads are what the plugin stores: JSON holding an access token, an ID token and a refresh
//! token.
//! - `typical` (~1.5 KB of data): fits one cookie of 4096 bytes (lua-resty-session's limit).
//! - `large` (~8 KB, e.g. tokens carrying many groups): split across three cookies.
//!
//! Run with `cargo bench -p gatehouse-session`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gatehouse_session::{SessionCodec, SessionConfig, SessionStore};
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

const NOW: i64 = 1_800_000_000;

/// Deterministic base64url-looking text of `len` characters, standing in for a token segment.
fn filler(len: usize, seed: u64) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(ALPHABET[(x >> 58) as usize])
        })
        .collect()
}

/// A JWT-shaped string (`header.payload.signature`) of about `len` characters.
fn jwt(len: usize, seed: u64) -> String {
    let sig = 342; // an RS256 signature in base64url
    format!("{}.{}.{}", filler(36, seed), filler(len.saturating_sub(sig + 38), seed + 1), filler(sig, seed + 2))
}

/// The plugin's session data (`SessionData` serialized as JSON) with tokens of the given sizes.
fn session_data(access: usize, id: usize, refresh: usize) -> Vec<u8> {
    format!(
        r#"{{"client":0,"access_token":"{}","id_token":"{}","refresh_token":"{}","expires":{},"auth_method":"authorization_code"}}"#,
        jwt(access, 1),
        jwt(id, 2),
        filler(refresh, 3),
        NOW + 300
    )
    .into_bytes()
}

/// The `Cookie` header a browser sends back for the given `Set-Cookie` values, after a cookie of
/// another application.
fn cookie_header(set_cookies: &[HeaderValue]) -> HeaderMap {
    let mut text = String::from("_ga=GA1.2.1234567890.1700000000");
    for v in set_cookies {
        let v = v.to_str().expect("ascii");
        text.push_str("; ");
        text.push_str(v.split_once(';').map_or(v, |(pair, _)| pair));
    }
    let mut headers = HeaderMap::new();
    headers.insert(COOKIE, HeaderValue::from_str(&text).expect("cookie header"));
    headers
}

fn bench_cookie(c: &mut Criterion) {
    let store =
        SessionStore::new(SessionCodec::new(b"a session secret of the operator's choosing"), SessionConfig::default())
            .expect("valid config");
    // (name, data, cookies it takes)
    let payloads = [("typical", session_data(900, 400, 150), 1), ("large", session_data(4600, 2600, 600), 3)];

    let mut group = c.benchmark_group("session");
    for (name, data, cookies) in payloads {
        let mut session = store.new_session(NOW, Some("f3b1c9a2-5d7e-4e8f-a1b2-c3d4e5f60718".into()), data.clone());
        let set_cookies = store.save(&mut session, NOW, true, 0).expect("saves");
        let request = cookie_header(&set_cookies);
        let opened = store.open(&request, NOW + 10).expect("opens");
        assert_eq!(opened.session.data, data);
        assert_eq!(set_cookies.len(), cookies, "{name}: {} bytes", data.len());

        group.bench_function(BenchmarkId::new("save", name), |b| {
            b.iter(|| store.save(black_box(&mut session), NOW + 10, true, 0).expect("saves"))
        });
        group.bench_function(BenchmarkId::new("open", name), |b| {
            b.iter(|| store.open(black_box(&request), NOW + 10).expect("opens"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_cookie);
criterion_main!(benches);
