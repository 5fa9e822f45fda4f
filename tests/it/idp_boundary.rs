//! The openid-connect plugin at its boundary with the identity provider: a dead IdP is asked
//! once per backoff interval, not once per request; an IdP answer over `idp_max_response_size`
//! is an IdP failure (502) and is not read whole; extreme config values do not reset connections.
//!
//! The misbehaving IdPs are a small HTTP server in the test that counts what it is asked.

use super::oidc::Env;
use super::util::{Gateway, client, post, tempdir};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the fake IdP does with a request.
#[derive(Clone, Debug)]
pub(super) enum Reply {
    /// This status with an empty JSON object.
    Status(u16),
    /// Reads the request and never answers.
    Hang,
    /// 200 with this JSON text.
    Json(String),
    /// 200 with a `Content-Length` of this many bytes (the body is sent as far as it is read).
    Sized(usize),
    /// 200 without a length, this many bytes streamed until the client stops reading.
    Stream(usize),
}

/// A fake IdP: its base URL and counters.
pub(super) struct FakeIdp {
    pub(super) url: String,
    /// Requests read.
    requests: Arc<AtomicUsize>,
    /// Body bytes the client accepted (written before it closed the connection).
    written: Arc<AtomicUsize>,
}

type Route = Arc<dyn Fn(&str, &str) -> Reply + Send + Sync>;

/// Starts a fake IdP; `route(base_url, path)` decides each answer.
pub(super) async fn fake_idp(route: impl Fn(&str, &str) -> Reply + Send + Sync + 'static) -> FakeIdp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let written = Arc::new(AtomicUsize::new(0));
    let route: Route = Arc::new(route);
    let (base, req, wr) = (url.clone(), requests.clone(), written.clone());
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let (base, route, req, wr) = (base.clone(), route.clone(), req.clone(), wr.clone());
            tokio::spawn(serve(conn, base, route, req, wr));
        }
    });
    FakeIdp { url, requests, written }
}

/// Serves one connection: request heads (no bodies are expected beyond what fits) and answers.
async fn serve(mut conn: TcpStream, base: String, route: Route, requests: Arc<AtomicUsize>, written: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 64 * 1024 {
                return;
            }
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        buf.drain(..head_end);
        requests.fetch_add(1, Ordering::SeqCst);
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        let reply = route(&base, &path);
        let ok =
            |len: usize| format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n");
        match reply {
            Reply::Status(code) => {
                let head =
                    format!("HTTP/1.1 {code} Oops\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}");
                if conn.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
            }
            Reply::Hang => {
                // Bounded: the test's runtime ends long before.
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
            Reply::Json(text) => {
                if conn.write_all(format!("{}{text}", ok(text.len())).as_bytes()).await.is_err() {
                    return;
                }
            }
            Reply::Sized(len) => {
                let _ = conn.write_all(ok(len).as_bytes()).await;
                stream_body(&mut conn, len, &written).await;
                return;
            }
            Reply::Stream(len) => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n";
                let _ = conn.write_all(head.as_bytes()).await;
                stream_body(&mut conn, len, &written).await;
                return;
            }
        }
    }
}

/// Writes `len` bytes of JSON whitespace after a `[`, counting what the client accepted.
async fn stream_body(conn: &mut TcpStream, len: usize, written: &AtomicUsize) {
    let mut block = vec![b' '; 64 * 1024];
    block[0] = b'[';
    let mut sent = 0;
    while sent < len {
        let n = block.len().min(len - sent);
        if conn.write_all(&block[..n]).await.is_err() {
            return;
        }
        block[0] = b' ';
        sent += n;
        written.fetch_add(n, Ordering::SeqCst);
    }
}

/// A discovery document naming `base`'s `/jwks`.
fn discovery(base: &str) -> String {
    json!({"issuer": base, "jwks_uri": format!("{base}/jwks"), "token_endpoint": format!("{base}/token")}).to_string()
}

/// A well-formed JWT (its signature checks nothing): enough for the plugin to ask for keys.
fn some_jwt() -> String {
    let part = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.c2ln", part(json!({"alg": "RS256", "kid": "k1"})), part(json!({"sub": "john"})))
}

/// A gateway with one route per `(path, issuer)`, each with a bearer-only plugin for `issuer`
/// (`timeout` 1000 ms). The service is never reached: every request here fails at the IdP.
async fn gateway(dir: &std::path::Path, args: &[&str], routes: &[(&str, &str)]) -> Gateway {
    let gw = Gateway::start_with(dir, args, &[]);
    let (st, body) = post(&format!("{}/services", gw.admin), json!({"name": "s", "url": "http://127.0.0.1:9"})).await;
    assert_eq!(st, 201, "{body}");
    for (i, (path, issuer)) in routes.iter().enumerate() {
        let route = format!("r{i}");
        let (st, body) =
            post(&format!("{}/services/s/routes", gw.admin), json!({"name": route, "paths": [path]})).await;
        assert_eq!(st, 201, "{body}");
        let config = json!({
            "issuer": issuer, "client_id": ["c"], "client_secret": ["s"],
            "auth_methods": ["bearer"], "timeout": 1000,
        });
        let (st, body) =
            post(&format!("{}/routes/{route}/plugins", gw.admin), json!({"name": "openid-connect", "config": config}))
                .await;
        assert_eq!(st, 201, "{body}");
    }
    gw
}

/// `GET url` with the bearer token; the status and JSON body. A reset connection fails the test.
async fn call(url: &str) -> (u16, Value) {
    let resp = client()
        .get(url)
        .bearer_auth(some_jwt())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let st = resp.status().as_u16();
    (st, resp.json().await.unwrap_or(Value::Null))
}

/// 20 concurrent, then 20 sequential requests; each must be the IdP failure.
async fn forty_requests_fail_at_the_idp(url: &str) -> Duration {
    let concurrent: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn({
                let url = url.to_string();
                async move { call(&url).await }
            })
        })
        .collect();
    for t in concurrent {
        let (st, body) = t.await.unwrap();
        assert_eq!((st, &body), (502, &json!({"message": "The identity provider is unavailable"})));
    }
    let started = Instant::now();
    for _ in 0..20 {
        let (st, _) = call(url).await;
        assert_eq!(st, 502);
    }
    started.elapsed()
}

#[tokio::test]
async fn a_failing_idp_is_asked_once_per_backoff_not_once_per_request() {
    let dir = tempdir();
    let idp = fake_idp(|_, _| Reply::Status(500)).await;
    let gw = gateway(dir.path(), &[], &[("/a", &idp.url)]).await;
    let before = idp.requests.load(Ordering::SeqCst);
    let sequential = forty_requests_fail_at_the_idp(&format!("{}/a", gw.proxy)).await;
    let asked = idp.requests.load(Ordering::SeqCst) - before;
    assert!(asked <= 2, "40 requests asked the dead IdP {asked} times; log:\n{}", gw.proc.logs());
    assert!(sequential < Duration::from_secs(2), "failing fast took {sequential:?}");
}

#[tokio::test]
async fn a_hanging_idp_costs_one_timeout_shared_by_concurrent_requests() {
    let dir = tempdir();
    let idp = fake_idp(|_, _| Reply::Hang).await;
    let gw = gateway(dir.path(), &[], &[("/a", &idp.url)]).await;
    let started = Instant::now();
    let sequential = forty_requests_fail_at_the_idp(&format!("{}/a", gw.proxy)).await;
    // One fetch waited out the 1 s timeout for all 20 concurrent requests; the rest failed fast.
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(sequential < Duration::from_secs(2), "failing fast took {sequential:?}");
    let asked = idp.requests.load(Ordering::SeqCst);
    assert!(asked <= 2, "40 requests asked the hanging IdP {asked} times; log:\n{}", gw.proc.logs());
}

#[tokio::test]
async fn an_idp_answer_over_the_cap_is_an_idp_failure_and_is_not_read_whole() {
    const HUGE: usize = 64 << 20;
    let dir = tempdir();
    let idp = fake_idp(|base, path| match path {
        // Says its size up front.
        "/big-doc/.well-known/openid-configuration" => Reply::Sized(HUGE),
        // Keys streamed without a length.
        "/big-keys/.well-known/openid-configuration" => Reply::Json(discovery(&format!("{base}/big-keys"))),
        "/big-keys/jwks" => Reply::Stream(HUGE),
        // Under the cap: the keys are read, and the token is refused for its signature.
        "/small/.well-known/openid-configuration" => Reply::Json(discovery(&format!("{base}/small"))),
        "/small/jwks" => Reply::Json(json!({"keys": []}).to_string()),
        _ => Reply::Status(404),
    })
    .await;
    let issuers = [format!("{}/big-doc", idp.url), format!("{}/big-keys", idp.url), format!("{}/small", idp.url)];
    let routes = [("/doc", issuers[0].as_str()), ("/keys", issuers[1].as_str()), ("/small", issuers[2].as_str())];
    let gw = gateway(dir.path(), &["--idp-max-response-size", "64k"], &routes).await;

    for path in ["/doc", "/keys"] {
        let (st, body) = call(&format!("{}{path}", gw.proxy)).await;
        assert_eq!((st, body), (502, json!({"message": "The identity provider is unavailable"})), "{path}");
    }
    let (st, _) = call(&format!("{}/small", gw.proxy)).await;
    assert_eq!(st, 401, "an answer under the cap is read; log:\n{}", gw.proc.logs());

    let logs = gw.proc.logs();
    assert!(logs.contains("discovery at") && logs.contains("answered more than 65536 bytes"), "{logs}");
    assert!(logs.contains("jwks at"), "{logs}");
    // The gateway stopped reading near the cap: what it accepted is socket buffers, not 64 MiB.
    let written = idp.written.load(Ordering::SeqCst);
    assert!(written < 16 << 20, "the gateway read {written} bytes of a 64k-capped answer");
}

#[tokio::test]
async fn an_enormous_cache_ttl_with_a_token_without_exp_is_answered() {
    // verify_claims off: with it on, a JWT access token without `exp` is refused (RFC 9068).
    let env = Env::new(json!({"auth_methods": ["bearer"], "cache_ttl": 1e30, "verify_claims": false})).await;
    let token = env.mint(json!({"claims": {"exp": null}})).await;
    // Twice: the first verifies and caches the token, the second is served from the cache.
    for _ in 0..2 {
        let (st, body, _) = env.call(&[("authorization", &format!("Bearer {token}"))]).await;
        assert_eq!(st, 200, "{body}");
    }
}

#[tokio::test]
async fn body_credentials_are_read_only_from_form_and_json_and_always_hidden() {
    let env = Env::new(json!({"auth_methods": ["bearer"]})).await;
    let token = env.mint(json!({})).await;
    let send = |content_type: &'static str, body: String| {
        client().post(format!("{}/api/x", env.gw.proxy)).header("content-type", content_type).body(body).send()
    };
    // Nested deeper than a JSON tree parser goes (128): the token is found, and removed.
    let deep = format!(r#"{{"access_token":"{token}","x":{}1{}}}"#, "[".repeat(200), "]".repeat(200));
    let (st, body) = super::util::json(send("application/json", deep.clone()).await.unwrap()).await;
    assert_eq!(st, 200, "{body}");
    let data = body["data"].as_str().unwrap_or_default();
    assert!(!data.contains(&token), "hide_credentials left the token in: {data:.200}");
    assert_eq!(data.len(), deep.len() - format!(r#""access_token":"{token}","#).len(), "the rest is kept");
    // Another media type is not read, even when its body would parse.
    for content_type in ["application/jsonp", "text/plain"] {
        let resp = send(content_type, format!(r#"{{"access_token":"{token}"}}"#)).await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{content_type}");
    }
    let resp = send("text/plain", format!("access_token={token}")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}
