//! Normalized paths: the route is chosen by the path the upstream is sent, so dot segments and
//! encodings cannot walk a request around a route's plugins.
//!
//! Requests go out as raw HTTP/1.1 bytes: an HTTP client library resolves `..` and `%2e` in URLs
//! itself, and would never send the hostile forms.

use super::util::{Gateway, Proc, client, echo, echo_service, post, tempdir};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A gateway in front of `gatehouse echo`: service `echo`, an open `/public` route that keeps
/// its path, and a `/private` route whose plugin answers 401 (standing in for authentication).
async fn setup() -> (tempfile::TempDir, Gateway, Proc) {
    let dir = tempdir();
    let up = echo(dir.path());
    let gw = Gateway::start(dir.path());
    let a = &gw.admin;
    let routes = [
        json!({"name": "public", "paths": ["/public"], "strip_path": false}),
        json!({"name": "private", "paths": ["/private"], "strip_path": false}),
    ];
    echo_service(&gw, &up.urls[0], &routes).await;
    let (st, r) = post(
        &format!("{a}/routes/private/plugins"),
        json!({"name": "request-termination", "config": {"status_code": 401, "message": "Unauthorized"}}),
    )
    .await;
    assert_eq!(st, 201, "{r}");
    (dir, gw, up)
}

/// Sends `GET target` as raw bytes on a fresh connection; the status and the JSON body.
async fn raw_get(gw: &Gateway, target: &str) -> (u16, Value) {
    let addr = gw.proxy.trim_start_matches("http://");
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let req = format!("GET {target} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.expect("read");
        out
    };
    let out = tokio::time::timeout(Duration::from_secs(10), exchange).await.expect("answer in time");
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("status in {head}"));
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// The path (and query) the echo upstream received.
fn upstream_path(body: &Value) -> String {
    let url = body["url"].as_str().unwrap_or_else(|| panic!("an echo answer: {body}"));
    let after_scheme = url.trim_start_matches("http://");
    after_scheme[after_scheme.find('/').unwrap_or(after_scheme.len())..].to_string()
}

/// Checks that each target reaches the echo upstream (200) as the expected path and query.
async fn assert_forwarded(gw: &Gateway, cases: &[(&str, &str)]) {
    for &(target, want) in cases {
        let (st, b) = raw_get(gw, target).await;
        assert_eq!((st, upstream_path(&b)), (200, want.to_string()), "{target}: {b}");
    }
}

fn bad_request() -> (u16, Value) {
    (400, json!({"message": "Bad request"}))
}

// Regression: "a gateway nobody can walk around or knock over", route bypass through dot segments.
#[tokio::test]
async fn dot_segments_cannot_walk_from_an_open_route_to_a_protected_one() {
    let (_dir, gw, _up) = setup().await;
    let unauthorized = (401, json!({"message": "Unauthorized"}));
    // Sanity: the two routes are what they claim to be.
    let (st, b) = raw_get(&gw, "/public/x").await;
    assert_eq!((st, upstream_path(&b)), (200, "/public/x".to_string()));
    assert_eq!(raw_get(&gw, "/private/x").await, unauthorized);
    // Every bypass form from the issue is routed by its normalized path, /private/x.
    for target in [
        "/public/../private/x",
        "/public/%2e%2e/private/x",
        "/public/%2E%2e/private/x",
        "/public/.%2e/private/x",
        "/public/./../private/x",
        "/public/x/../../private/x",
        "//public//..//private/x",
        // Absolute-form: the path inside the URI is normalized the same way.
        "http://gw.test/public/%2e%2e/private/x",
    ] {
        assert_eq!(raw_get(&gw, target).await, unauthorized, "{target}");
    }
    // Above the root: refused, not clamped.
    for target in ["/public/../../private/x", "/../private/x", "/public/%2e%2e/%2e%2e/private"] {
        assert_eq!(raw_get(&gw, target).await, bad_request(), "{target}");
    }
}

#[tokio::test]
async fn the_upstream_receives_the_normalized_path_and_the_query_as_sent() {
    let (_dir, gw, _up) = setup().await;
    for (target, want) in [
        ("/public/a/../b", "/public/b"),
        ("/public/./a//b/", "/public/a/b/"),
        ("//public/%7Euser/%41", "/public/~user/A"),
        ("/public/a%2fb", "/public/a%2Fb"),
        ("/public/x?q=/../%2e%2e&r=%41", "/public/x?q=/../%2e%2e&r=%41"),
        ("/private/../public/y?a=1", "/public/y?a=1"),
        ("http://gw.test/public/a/%2e%2e/c?x=1", "/public/c?x=1"),
    ] {
        let (st, b) = raw_get(&gw, target).await;
        assert_eq!((st, upstream_path(&b)), (200, want.to_string()), "{target}: {b}");
        let path = want.split('?').next().unwrap_or(want);
        assert_eq!(b["headers"]["X-Forwarded-Path"], path, "{target}");
    }
}

#[tokio::test]
async fn encoded_slashes_backslashes_and_hostile_paths_have_defined_answers() {
    let (_dir, gw, _up) = setup().await;
    // An encoded `/` or `\` is data, not a separator: still the public route, sent as it came.
    assert_forwarded(
        &gw,
        &[
            ("/public/..%2Fprivate/x", "/public/..%2Fprivate/x"),
            ("/public/..%5cprivate/x", "/public/..%5Cprivate/x"),
            ("/public\\..\\private/x", "/public\\..\\private/x"),
            ("/public;a/../public/b;c", "/public/b;c"),
        ],
    )
    .await;
    for target in [
        "/public/%00/x",
        "/public/%zz",
        "/public/%4",
        "/public/..;/private/x",
        "/public/%2e%2e;x/private/x",
        "/public/.;/x",
    ] {
        assert_eq!(raw_get(&gw, target).await, bad_request(), "{target}");
    }
    let long = format!("/public/{}", "a".repeat(9000));
    assert_eq!(raw_get(&gw, &long).await, (414, json!({"message": "URI too long"})));
    // Still serving after all that.
    let (st, _) = raw_get(&gw, "/public/ok").await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn strip_path_path_handling_and_regex_routes_work_on_the_normalized_path() {
    let (_dir, gw, up) = setup().await;
    let a = &gw.admin;
    let (st, r) = post(&format!("{a}/services"), json!({"name": "based", "url": format!("{}/base", up.urls[0])})).await;
    assert_eq!(st, 201, "{r}");
    for body in [
        json!({"name": "strip0", "paths": ["/s0"], "strip_path": true}),
        json!({"name": "strip1", "paths": ["/s1"], "strip_path": true, "path_handling": "v1"}),
        json!({"name": "keep1", "paths": ["/k1"], "strip_path": false, "path_handling": "v1"}),
        json!({"name": "regex", "paths": ["~/items/\\d+$"], "strip_path": false}),
    ] {
        let (st, r) = post(&format!("{a}/services/based/routes"), body).await;
        assert_eq!(st, 201, "{r}");
    }
    let c = client();
    let (st, _) = super::util::json(c.get(format!("{}/s0/x", gw.proxy)).send().await.unwrap()).await;
    assert_eq!(st, 200);
    assert_forwarded(
        &gw,
        &[
            // The stripped prefix is counted on the normalized path.
            ("/x/../s0/a/./b", "/base/a/b"),
            ("//s0//a", "/base/a"),
            ("/%73%30/a", "/base/a"),
            ("/s1/q/../r", "/base/r"),
            ("/s1/%2e/r", "/base/r"),
            ("/k1/a/../b", "/base/k1/b"),
            ("/items/x/../12", "/base/items/12"),
            ("/items/%31%32", "/base/items/12"),
        ],
    )
    .await;
    // The regex matches the normalized path only: `/items/12/..` is `/items/`, which it does not.
    let (st, b) = raw_get(&gw, "/items/12/..").await;
    assert_eq!((st, b), (404, json!({"message": "no Route matched with those values"})));
    // A prefix that ends inside a segment leaves a leftover that would become a dot segment
    // after the service path (`/base/../admin`): refused, never forwarded out of `/base`.
    for target in ["/s0../admin", "/s0..", "/s0./x", "/s1../admin", "/s1..;/admin"] {
        assert_eq!(raw_get(&gw, target).await, bad_request(), "{target}");
    }
    assert_forwarded(&gw, &[("/s0...x", "/base/...x"), ("/s0.v2/x", "/base/.v2/x")]).await;
}
