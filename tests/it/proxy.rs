//! The proxy path: routing, path rewriting, forwarding headers, plugins and upstream failures.

use super::util::{Gateway, client, echo, echo_service, get, json, post, tempdir};
use serde_json::{Value, json};

/// A gateway in front of a real `gatehouse echo`, with service `echo` pointing at it.
async fn setup() -> (tempfile::TempDir, Gateway, super::util::Proc) {
    let dir = tempdir();
    let up = echo(dir.path());
    let gw = Gateway::start(dir.path());
    echo_service(&gw, &up.urls[0], &[]).await;
    (dir, gw, up)
}

#[tokio::test]
async fn requests_reach_the_upstream_with_stripped_paths_and_forwarding_headers() {
    let (_dir, gw, up) = setup().await;
    let (st, r) = post(&format!("{}/services/echo/routes", gw.admin), json!({"paths": ["/api"]})).await;
    assert_eq!(st, 201, "{r}");
    // The route is live as soon as the Admin API answered.
    let resp = client()
        .post(format!("{}/api/users?x=1&x=2", gw.proxy))
        .header("x-forwarded-for", "10.1.2.3")
        .header("x-forwarded-proto", "https")
        .json(&json!({"hello": "world"}))
        .send()
        .await
        .unwrap();
    let (st, body) = json(resp).await;
    assert_eq!(st, 200, "{body}");
    let up_host = up.urls[0].trim_start_matches("http://");
    assert_eq!(body["url"], format!("http://{up_host}/users?x=1&x=2"));
    assert_eq!(body["method"], "POST");
    assert_eq!(body["json"], json!({"hello": "world"}));
    assert_eq!(body["args"]["x"], json!(["1", "2"]));
    let h = &body["headers"];
    assert_eq!(h["Host"], up_host);
    assert_eq!(h["X-Forwarded-For"], "10.1.2.3, 127.0.0.1");
    assert_eq!(h["X-Forwarded-Proto"], "http", "the client's claim is replaced");
    assert_eq!(h["X-Forwarded-Host"], "127.0.0.1");
    assert_eq!(h["X-Forwarded-Path"], "/api/users");
    assert_eq!(h["X-Real-Ip"], "127.0.0.1");
    let proxy_port = gw.proxy.rsplit(':').next().unwrap();
    assert_eq!(h["X-Forwarded-Port"], proxy_port);
}

#[tokio::test]
async fn routes_match_by_host_method_and_longest_prefix() {
    let (_dir, gw, _up) = setup().await;
    let a = &gw.admin;
    for (name, body) in [
        ("short", json!({"name": "short", "paths": ["/a"], "strip_path": false})),
        ("long", json!({"name": "long", "paths": ["/a/b"]})),
        ("regex", json!({"name": "regex", "paths": ["~/items/\\d+$"], "strip_path": false})),
        ("hosted", json!({"name": "hosted", "hosts": ["api.example.com"], "paths": ["/a"]})),
        ("posts", json!({"name": "posts", "methods": ["POST"], "paths": ["/a"]})),
    ] {
        let (st, r) = post(&format!("{a}/services/echo/routes"), body).await;
        assert_eq!(st, 201, "{name}: {r}");
    }
    // Each route terminates with its own status so the test sees which one matched.
    for (i, name) in ["short", "long", "regex", "hosted", "posts"].iter().enumerate() {
        let (st, p) = post(
            &format!("{a}/routes/{name}/plugins"),
            json!({"name": "request-termination", "config": {"status_code": 430 + i, "message": name}}),
        )
        .await;
        assert_eq!(st, 201, "{p}");
    }
    let c = client();
    let which = |method: reqwest::Method, path: &str, host: Option<&str>| {
        let mut req = c.request(method, format!("{}{path}", gw.proxy));
        if let Some(h) = host {
            req = req.header("host", h);
        }
        async move { json(req.send().await.unwrap()).await.1["message"].as_str().unwrap_or("none").to_string() }
    };
    assert_eq!(which(reqwest::Method::GET, "/a/x", None).await, "short");
    assert_eq!(which(reqwest::Method::GET, "/a/b/c", None).await, "long");
    assert_eq!(which(reqwest::Method::GET, "/items/12", None).await, "regex");
    assert_eq!(which(reqwest::Method::GET, "/a/x", Some("api.example.com")).await, "hosted");
    assert_eq!(which(reqwest::Method::POST, "/a/x", None).await, "posts");
    let (st, body) = get(&format!("{}/nowhere", gw.proxy)).await;
    assert_eq!((st, body), (404, json!({"message": "no Route matched with those values"})));
}

#[tokio::test]
async fn strip_path_preserve_host_and_service_path_rewrite_the_upstream_request() {
    let (_dir, gw, up) = setup().await;
    let a = &gw.admin;
    let c = client();
    c.patch(format!("{a}/services/echo")).json(&json!({"path": "/base"})).send().await.unwrap();
    post(&format!("{a}/services/echo/routes"), json!({"paths": ["/strip"]})).await;
    post(&format!("{a}/services/echo/routes"), json!({"paths": ["/keep"], "strip_path": false, "preserve_host": true}))
        .await;
    let up_host = up.urls[0].trim_start_matches("http://");

    let (_, b) = get(&format!("{}/strip/x/y", gw.proxy)).await;
    assert_eq!(b["url"], format!("http://{up_host}/base/x/y"));
    let (_, b) = get(&format!("{}/strip", gw.proxy)).await;
    assert_eq!(b["url"], format!("http://{up_host}/base"));
    let (_, b) =
        json(c.get(format!("{}/keep/z", gw.proxy)).header("host", "client.example").send().await.unwrap()).await;
    assert_eq!(b["url"], "http://client.example/base/keep/z");
    assert_eq!(b["headers"]["Host"], "client.example");
}

#[tokio::test]
async fn a_down_upstream_gives_502_json_and_a_log_line() {
    let dir = tempdir();
    let gw = Gateway::start(dir.path());
    // Bind and drop a listener: nothing listens on that port afterwards.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    post(
        &format!("{}/services", gw.admin),
        json!({"name": "down", "url": format!("http://127.0.0.1:{port}"), "retries": 1}),
    )
    .await;
    post(&format!("{}/services/down/routes", gw.admin), json!({"paths": ["/down"]})).await;
    let (st, body) = get(&format!("{}/down", gw.proxy)).await;
    assert_eq!((st, body), (502, json!({"message": "An invalid response was received from the upstream server"})));
    assert!(gw.proc.logs().contains("upstream"), "{}", gw.proc.logs());
}

#[tokio::test]
async fn a_slow_upstream_gives_504() {
    let dir = tempdir();
    let gw = Gateway::start(dir.path());
    // Accepts connections but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    post(
        &format!("{}/services", gw.admin),
        json!({"name": "slow", "url": format!("http://127.0.0.1:{port}"), "read_timeout": 300, "write_timeout": 100}),
    )
    .await;
    post(&format!("{}/services/slow/routes", gw.admin), json!({"paths": ["/slow"]})).await;
    let (st, body) = get(&format!("{}/slow", gw.proxy)).await;
    assert_eq!((st, body), (504, json!({"message": "The upstream server is timing out"})));
    drop(silent);
}

#[tokio::test]
async fn plugins_follow_kongs_scope_precedence_and_phases() {
    let (_dir, gw, _up) = setup().await;
    let a = &gw.admin;
    post(&format!("{a}/services/echo/routes"), json!({"name": "r", "paths": ["/p"]})).await;
    post(&format!("{a}/services/echo/routes"), json!({"name": "other", "paths": ["/o"]})).await;
    // A global correlation-id echoes its header to the client and sends it upstream.
    let (st, body) = post(
        &format!("{a}/plugins"),
        json!({"name": "correlation-id", "config": {"header_name": "X-Req", "echo_downstream": true}}),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    let resp = client().get(format!("{}/o", gw.proxy)).send().await.unwrap();
    let sent = resp.headers().get("x-req").map(|v| v.to_str().unwrap().to_string());
    let (_, body) = json(resp).await;
    assert!(sent.is_some(), "echoed downstream");
    assert_eq!(body["headers"]["X-Req"].as_str(), sent.as_deref(), "same id upstream");

    // A service-scoped termination applies to both routes; a route-scoped one wins on its route.
    post(
        &format!("{a}/services/echo/plugins"),
        json!({"name": "request-termination", "config": {"status_code": 403, "message": "svc"}}),
    )
    .await;
    let (st, p) = post(
        &format!("{a}/routes/r/plugins"),
        json!({"name": "request-termination", "config": {"status_code": 410, "message": "route"}}),
    )
    .await;
    assert_eq!(st, 201, "{p}");
    assert_eq!(get(&format!("{}/p", gw.proxy)).await, (410, json!({"message": "route"})));
    assert_eq!(get(&format!("{}/o", gw.proxy)).await, (403, json!({"message": "svc"})));
    // Disabling the route plugin hands the route back to the service plugin at once.
    let pid = p["id"].as_str().unwrap();
    let (st, _) =
        json(client().patch(format!("{a}/plugins/{pid}")).json(&json!({"enabled": false})).send().await.unwrap()).await;
    assert_eq!(st, 200);
    assert_eq!(get(&format!("{}/p", gw.proxy)).await, (403, json!({"message": "svc"})));
    let v: Value = get(&format!("{a}/status")).await.1;
    assert!(v["server"]["total_requests"].as_u64().unwrap() >= 4);
}

/// An upstream that answers each request on a connection and then closes it without saying so
/// (no `Connection: close`), as servers do with idle keep-alive connections. Every request through
/// the gateway must still succeed, on a fresh connection when the pooled one is gone.
#[tokio::test]
async fn upstream_closing_keep_alive_connections_is_invisible_to_clients() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
                // Close right away: the gateway's pooled connection is dead from now on.
            });
        }
    });
    let dir = tempdir();
    let gw = Gateway::start(dir.path());
    let (st, body) =
        post(&format!("{}/services", gw.admin), json!({"name": "flaky", "url": format!("http://{addr}")})).await;
    assert_eq!(st, 201, "{body}");
    let (st, body) = post(&format!("{}/services/flaky/routes", gw.admin), json!({"paths": ["/"]})).await;
    assert_eq!(st, 201, "{body}");
    let c = reqwest::Client::new();
    for i in 0..20 {
        let resp = c.get(format!("{}/x", gw.proxy)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
        assert_eq!(resp.text().await.unwrap(), "ok");
        if i % 2 == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    assert!(accepted.load(std::sync::atomic::Ordering::SeqCst) >= 20, "one connection per request");
}

/// mimalloc asks for transparent huge pages; the binary turns them off for itself, or a few
/// touched bytes keep whole 2 MiB pages resident (RSS 62 MiB instead of 41 MiB under the benchmark).
#[cfg(target_os = "linux")]
#[test]
fn the_gateway_runs_without_transparent_huge_pages() {
    let dir = tempdir();
    let gw = Gateway::start(dir.path());
    let status = std::fs::read_to_string(format!("/proc/{}/status", gw.proc.pid())).unwrap();
    let line = status.lines().find(|l| l.starts_with("THP_enabled:")).expect("a kernel that reports THP_enabled");
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
}
