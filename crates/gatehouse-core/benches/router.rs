//! Route matching: `Router::find`, which every proxied request calls once.
//!
//! The router indexes its entries by path (a byte trie of prefixes, a `RegexSet` of regex paths),
//! so a request looks only at the entries its path can match; the answer is the first of those
//! in Kong's priority order. Tables of 10, 100 and 1000 routes, each with one path
//! `/svc-NNNN/api` (fixed width, so ties fall back to age); of every ten routes, number 3 also
//! has a host, number 5 also has methods, and number 7 has a regex path
//! `~/svc-NNNN/items/\d+$` instead. Host and method routes sort first (two match fields), then
//! the regex routes, then the plain prefixes, oldest first.
//!
//! - `hit_last`: the newest plain-prefix route, the last entry (a full walk before the index).
//! - `miss`: no route matches (Kong's 404).
//! - `regex_hit`: the newest regex route, after every host, method and regex entry.
//!
//! Run with `cargo bench -p gatehouse-core`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gatehouse_core::router::{RouteSpec, RouteTarget, Router, RouterBuilder};
use http::header::{ACCEPT, AUTHORIZATION, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method};

const HOST: &str = "api.example.com";

fn target(i: usize) -> Arc<RouteTarget> {
    Arc::new(RouteTarget {
        route_id: format!("route-{i:04}").into(),
        route_name: Some(format!("svc-{i:04}")),
        service: None,
        strip_path: true,
        preserve_host: false,
        path_handling_v1: false,
        request_buffering: true,
        plugins: Vec::new(),
        plugins_need_body: false,
        allows_http: true,
    })
}

fn spec(i: usize) -> RouteSpec {
    let (hosts, methods, path) = match i % 10 {
        3 => (vec![format!("svc-{i:04}.example.com")], vec![], format!("/svc-{i:04}/api")),
        5 => (vec![], vec!["GET".to_string(), "POST".to_string()], format!("/svc-{i:04}/api")),
        7 => (vec![], vec![], format!(r"~/svc-{i:04}/items/\d+$")),
        _ => (vec![], vec![], format!("/svc-{i:04}/api")),
    };
    RouteSpec { hosts, methods, headers: Vec::new(), paths: vec![path], regex_priority: 0, created_at: i as i64 }
}

fn router(n: usize) -> Router {
    let mut b = RouterBuilder::default();
    for i in 0..n {
        b.add(target(i), spec(i)).expect("valid route");
    }
    let router = b.build();
    assert_eq!(router.len(), n);
    router
}

fn request_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(USER_AGENT, HeaderValue::from_static("Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"));
    h.insert(ACCEPT, HeaderValue::from_static("application/json"));
    h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"));
    h
}

fn bench_find(c: &mut Criterion) {
    let headers = request_headers();
    let mut group = c.benchmark_group("router/find");
    for n in [10, 100, 1000] {
        let router = router(n);
        let last = n - 1; // ends in 9: a plain prefix route
        let last_regex = (0..n).rev().find(|i| i % 10 == 7).expect("a regex route");
        let cases = [
            ("hit_last", format!("/svc-{last:04}/api/orders/42"), Some(format!("route-{last:04}"))),
            ("miss", "/nowhere/at/all".to_string(), None),
            ("regex_hit", format!("/svc-{last_regex:04}/items/42"), Some(format!("route-{last_regex:04}"))),
        ];
        for (name, path, want) in cases {
            let found = router.find(&Method::GET, HOST, &path, &headers).map(|m| m.target.route_id.to_string());
            assert_eq!(found, want, "{name} with {n} routes");
            group.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter(|| router.find(&Method::GET, black_box(HOST), black_box(&path), &headers).map(|m| m.matched_len))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_find);
criterion_main!(benches);
