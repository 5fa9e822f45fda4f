//! The proxy's client side under hostile clients: half-sent heads, slow bodies, idle keep-alive
//! connections, floods of connections, oversized and unbounded uploads, and memory that stays
//! flat whatever clients upload.

use super::util::{Gateway, Proc, client, echo, echo_service, json, post, tempdir};
use serde_json::{Value, json};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// An echo upstream and a gateway started with `args`, with service `echo` and route `/api`.
struct Env {
    dir: tempfile::TempDir,
    _up: Proc,
    gw: Gateway,
    /// `host:port` of the proxy.
    addr: String,
}

impl Drop for Env {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- gateway log ---\n{}", self.gw.proc.logs());
        }
    }
}

async fn setup(args: &[&str]) -> Env {
    let dir = tempdir();
    let up = echo(dir.path());
    let gw = Gateway::start_with(dir.path(), args, &[]);
    echo_service(&gw, &up.urls[0], &[json!({"paths": ["/api"]})]).await;
    let addr = gw.proxy.trim_start_matches("http://").to_string();
    Env { dir, _up: up, gw, addr }
}

impl Env {
    /// Adds a plugin on the `echo` service.
    async fn plugin(&self, name: &str, config: Value) {
        let (st, body) =
            post(&format!("{}/services/echo/plugins", self.gw.admin), json!({"name": name, "config": config})).await;
        assert_eq!(st, 201, "{body}");
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.addr).expect("connect to the proxy");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
        s
    }
}

/// Reads until the peer closes (EOF or reset) and returns what came and when it closed. Panics
/// if it is still open at the socket's read timeout.
fn until_closed(s: &mut TcpStream, from: Instant) -> (String, Duration) {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("connection still open at the read timeout; got {:?}", String::from_utf8_lossy(&got))
            }
            Err(_) => break, // reset: closed too
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), from.elapsed())
}

/// Reads one response with a `Content-Length` body from a kept-alive connection.
fn read_response(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = s.read(&mut buf).expect("response");
        assert!(n > 0, "closed before a whole response: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .expect("content-length");
            if got.len() >= end + 4 + len {
                return text;
            }
        }
    }
}

fn body_of(resp: &str) -> Value {
    resp.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok()).unwrap_or(Value::Null)
}

const GET: &[u8] = b"GET /api/anything HTTP/1.1\r\nHost: a\r\n\r\n";

#[tokio::test]
async fn half_sent_head_and_silent_connection_are_closed_after_client_header_timeout() {
    let env = setup(&["--client-header-timeout", "0.5", "--keepalive-timeout", "30"]).await;
    let start = Instant::now();
    let mut half = env.connect();
    half.write_all(b"GET /api/anything HTTP/1.1\r\nHost: a\r\nX-Slow: ").unwrap();
    let mut silent = env.connect();
    let (got, took) = until_closed(&mut half, start);
    assert!(got.is_empty(), "no answer to a half head: {got}");
    assert!(took >= Duration::from_millis(400) && took < Duration::from_secs(3), "closed after {took:?}");
    let (_, took) = until_closed(&mut silent, start);
    assert!(took < Duration::from_secs(3), "a connection that never sends is closed too: {took:?}");
    // A whole head in time is served.
    let mut ok = env.connect();
    ok.write_all(GET).unwrap();
    assert!(read_response(&mut ok).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn a_later_half_sent_head_on_a_kept_alive_connection_is_timed_from_its_first_byte() {
    let env = setup(&["--client-header-timeout", "0.8", "--keepalive-timeout", "30"]).await;
    let mut s = env.connect();
    s.write_all(GET).unwrap();
    assert!(read_response(&mut s).starts_with("HTTP/1.1 200"));
    // Idle for a while (under both timeouts), then half a head: the header timeout runs from its
    // first byte, not from the connection's start nor from when it went idle.
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    s.write_all(b"GET /api/anything HTTP/1.1\r\nHost: a\r\nX-Slow: ").unwrap();
    let (got, took) = until_closed(&mut s, started);
    assert!(got.is_empty(), "{got}");
    assert!(took >= Duration::from_millis(700) && took < Duration::from_secs(3), "closed after {took:?}");
}

#[tokio::test]
async fn h2c_connection_without_a_request_is_closed_after_client_header_timeout() {
    let env = setup(&["--client-header-timeout", "0.5", "--keepalive-timeout", "30"]).await;
    let start = Instant::now();
    let mut s = env.connect();
    // The h2 preface and an empty SETTINGS frame, then nothing.
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").unwrap();
    let (got, took) = until_closed(&mut s, start);
    assert!(!got.is_empty(), "the server's SETTINGS came first");
    assert!(took >= Duration::from_millis(400) && took < Duration::from_secs(3), "closed after {took:?}");
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_after_keepalive_timeout() {
    let env = setup(&["--client-header-timeout", "30", "--keepalive-timeout", "0.5"]).await;
    let mut s = env.connect();
    s.write_all(GET).unwrap();
    assert!(read_response(&mut s).starts_with("HTTP/1.1 200"));
    // Still open right after the answer: a second request on it is served.
    s.write_all(GET).unwrap();
    assert!(read_response(&mut s).starts_with("HTTP/1.1 200"));
    let idle = Instant::now();
    let (got, took) = until_closed(&mut s, idle);
    assert!(got.is_empty(), "{got}");
    // The header timeout (30 s) did not close it: the keep-alive timeout did.
    assert!(took >= Duration::from_millis(400) && took < Duration::from_secs(3), "closed after {took:?}");
}

#[tokio::test]
async fn slow_body_gets_408_after_client_body_timeout_buffered_or_streamed() {
    let env = setup(&["--client-body-timeout", "0.5"]).await;
    // 100 bytes announced (buffered: small, request_buffering) and 2 MiB (streamed upstream).
    for len in [100usize, 2 << 20] {
        let start = Instant::now();
        let mut s = env.connect();
        let head = format!("POST /api/anything HTTP/1.1\r\nHost: a\r\nContent-Length: {len}\r\n\r\n0123456789");
        s.write_all(head.as_bytes()).unwrap();
        let (got, took) = until_closed(&mut s, start);
        assert!(got.starts_with("HTTP/1.1 408"), "{len}: {got}");
        assert_eq!(body_of(&got), json!({"message": "Request timeout"}), "{len}");
        assert!(took >= Duration::from_millis(400) && took < Duration::from_secs(3), "{len}: {took:?}");
    }
}

/// The Admin API's listener is bounded by the same client timeouts (nginx applies them to every
/// server): a half-sent head is closed, a late body gets 408 and changes nothing. Before, a
/// slowloris on the Admin port held file descriptors for ever (the proxy shares the limit).
#[tokio::test]
async fn the_admin_listener_closes_half_sent_heads_and_times_out_slow_bodies() {
    let env = setup(&["--client-header-timeout", "0.5", "--client-body-timeout", "0.5"]).await;
    let admin = env.gw.admin.trim_start_matches("http://").to_string();
    let connect = || {
        let s = TcpStream::connect(&admin).expect("connect to the Admin API");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
        s
    };
    let start = Instant::now();
    let mut half = connect();
    half.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").unwrap();
    let (got, took) = until_closed(&mut half, start);
    assert!(got.is_empty() || got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(took >= Duration::from_millis(400) && took < Duration::from_secs(3), "closed after {took:?}");
    // The Admin API speaks HTTP/1.1 only: an h2c preface followed by silence does not hold the
    // connection open.
    let start = Instant::now();
    let mut h2 = connect();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    let (_, took) = until_closed(&mut h2, start);
    assert!(took < Duration::from_secs(3), "h2c preface: closed after {took:?}");

    let start = Instant::now();
    let mut slow = connect();
    let head = "POST /services HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                Content-Length: 100\r\n\r\n{\"name\": \"late\", ";
    slow.write_all(head.as_bytes()).unwrap();
    let resp = read_response(&mut slow);
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
    assert_eq!(body_of(&resp), json!({"message": "Request timeout"}));
    assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());
    let (st, body) = super::util::get(&format!("{}/services/late", env.gw.admin)).await;
    assert_eq!(st, 404, "nothing was written: {body}");
    // A whole request in time is served.
    let (st, _) = super::util::get(&format!("{}/services", env.gw.admin)).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn slowloris_connections_do_not_starve_other_clients() {
    let env = setup(&["--client-header-timeout", "20"]).await;
    let mut held = Vec::with_capacity(300);
    for i in 0..300 {
        let mut s = env.connect();
        s.write_all(format!("GET /api/anything HTTP/1.1\r\nHost: a\r\nX-Slow-{i}: ").as_bytes()).unwrap();
        held.push(s);
    }
    let http = client();
    let start = Instant::now();
    for _ in 0..20 {
        let one = Instant::now();
        let resp = http.get(format!("{}/api/anything", env.gw.proxy)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(one.elapsed() < Duration::from_secs(2), "a request took {:?}", one.elapsed());
    }
    assert!(start.elapsed() < Duration::from_secs(5), "20 requests took {:?}", start.elapsed());
    // The slow ones were held, not dropped, all along.
    for s in &mut held {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        assert!(matches!(s.read(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock));
    }
}

#[tokio::test]
async fn connection_cap_refuses_the_next_connection_and_serves_again_when_one_closes() {
    let env = setup(&["--client-max-connections", "2", "--keepalive-timeout", "30"]).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut s = env.connect();
        s.write_all(GET).unwrap();
        assert!(read_response(&mut s).starts_with("HTTP/1.1 200"));
        open.push(s);
    }
    let start = Instant::now();
    let mut third = env.connect();
    let _ = third.write_all(GET);
    let (got, took) = until_closed(&mut third, start);
    assert!(got.is_empty(), "connection past the cap was served: {got}");
    assert!(took < Duration::from_secs(2), "refused at once, not after {took:?}");
    // The ones already open are still served.
    open[1].write_all(GET).unwrap();
    assert!(read_response(&mut open[1]).starts_with("HTTP/1.1 200"));
    drop(open.remove(0));
    // The slot comes back once the gateway has seen the close.
    let mut served = false;
    for _ in 0..50 {
        let mut s = env.connect();
        if s.write_all(GET).is_ok() && until_closed_or_response(&mut s) {
            served = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(served, "a connection after one closed was never served");
    assert!(env.gw.proc.logs().contains("client_max_connections reached"));
}

/// Whether a response starts on `s` (false when it is closed without one).
fn until_closed_or_response(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 12];
    matches!(s.read(&mut buf), Ok(n) if n > 0 && buf.starts_with(b"HTTP/1.1 200"))
}

fn chunked(body_len: usize, chunk: usize) -> Vec<u8> {
    let full = vec![b'a'; chunk];
    let mut out = Vec::with_capacity(body_len + body_len / chunk.max(1) * 12 + 16);
    let mut left = body_len;
    while left > 0 {
        let n = left.min(chunk);
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend_from_slice(&full[..n]);
        out.extend_from_slice(b"\r\n");
        left -= n;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Sends a POST with `ctype` and a body of `len` bytes of `a` (`Content-Length` or chunked), and
/// returns the response as text. The body is written from another thread: the gateway may
/// answer and close before reading it.
fn upload(env: &Env, ctype: &str, len: usize, with_length: bool, extra: &str) -> String {
    upload_to(env, "/api/anything", ctype, len, with_length, extra)
}

fn upload_to(env: &Env, path: &str, ctype: &str, len: usize, with_length: bool, extra: &str) -> String {
    let mut s = env.connect();
    // Long enough for a 96 MiB body read whole, so such a regression fails on its memory.
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let framing = if with_length { format!("Content-Length: {len}") } else { "Transfer-Encoding: chunked".into() };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: a\r\nContent-Type: {ctype}\r\n{framing}\r\n{extra}Connection: close\r\n\r\n"
    );
    let body = if with_length { vec![b'a'; len] } else { chunked(len, 64 * 1024) };
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(head.as_bytes()).and_then(|()| w.write_all(&body));
    });
    let (got, _) = until_closed(&mut s, Instant::now());
    let _ = writer.join();
    got
}

#[tokio::test]
async fn body_over_client_max_body_size_gets_413_by_length_and_by_counting() {
    let env = setup(&["--client-max-body-size", "1k"]).await;
    for with_length in [true, false] {
        let got = upload(&env, "application/octet-stream", 2000, with_length, "");
        assert!(got.starts_with("HTTP/1.1 413"), "with_length={with_length}: {got}");
        assert_eq!(body_of(&got), json!({"message": "Payload too large"}));
        let got = upload(&env, "application/octet-stream", 1000, with_length, "");
        assert!(got.starts_with("HTTP/1.1 200"), "with_length={with_length}: {got}");
        assert_eq!(body_of(&got)["data"].as_str().map(str::len), Some(1000));
    }
}

// Multi-threaded: the upstream runs in this process while the test blocks on its socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_client_max_body_size_gets_413_through_an_https_upstream_too() {
    let env = setup(&["--client-max-body-size", "1k"]).await;
    let port = super::tls::tls_upstream().await;
    let url = format!("https://127.0.0.1:{port}/");
    let (st, s) =
        post(&format!("{}/services", env.gw.admin), json!({"name": "tls", "url": url, "tls_verify": false})).await;
    assert_eq!(st, 201, "{s}");
    let (st, s) = post(&format!("{}/services/tls/routes", env.gw.admin), json!({"paths": ["/tls"]})).await;
    assert_eq!(st, 201, "{s}");
    // Chunked: counted while it streams through hyper's pooled client.
    let got = upload_to(&env, "/tls", "application/octet-stream", 4000, false, "");
    assert!(got.starts_with("HTTP/1.1 413"), "{got}");
    assert_eq!(body_of(&got), json!({"message": "Payload too large"}));
    let got = upload_to(&env, "/tls", "application/octet-stream", 1000, false, "");
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert_eq!(body_of(&got)["len"], 1000);
}

#[tokio::test]
async fn plugins_read_only_form_and_json_bodies_and_only_up_to_client_body_buffer_size() {
    let env = setup(&["--client-body-buffer-size", "64k"]).await;
    // request-termination with `echo` needs the body: it shows what it read as `raw_body`.
    env.plugin("request-termination", json!({"status_code": 200, "echo": true})).await;
    let small = upload(&env, "application/x-www-form-urlencoded", 100, true, "");
    assert_eq!(body_of(&small)["request"]["raw_body"].as_str().map(str::len), Some(100), "{small}");
    let small = upload(&env, "application/json", 100, false, "");
    assert_eq!(body_of(&small)["request"]["raw_body"].as_str().map(str::len), Some(100), "{small}");
    for (ctype, with_length) in [
        ("application/x-www-form-urlencoded", true),
        ("application/x-www-form-urlencoded", false),
        ("application/vnd.x+json", false),
    ] {
        let got = upload(&env, ctype, 2 << 20, with_length, "");
        assert!(got.starts_with("HTTP/1.1 413"), "{ctype} with_length={with_length}: {got}");
        assert_eq!(body_of(&got), json!({"message": "Payload too large"}));
    }
    // Not a form or JSON: not read for the plugin, whatever its size.
    for with_length in [true, false] {
        let got = upload(&env, "application/octet-stream", 2 << 20, with_length, "");
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
        assert_eq!(body_of(&got)["request"]["raw_body"], Value::Null);
    }
}

/// A gateway with an `openid-connect` plugin in its default config in front of the dev IdP.
async fn oidc_env(args: &[&str]) -> (Env, Proc) {
    let env = setup(args).await;
    let idp = super::oidc::idp(env.dir.path(), &[]);
    env.plugin("openid-connect", super::oidc::base_config(&idp.urls[0])).await;
    (env, idp)
}

#[tokio::test]
async fn large_non_form_upload_streams_through_openid_connect_and_a_large_form_gets_413() {
    let (env, idp) = oidc_env(&[]).await;
    let (st, minted) =
        json(client().post(format!("{}/_dev/mint", idp.urls[0])).json(&json!({})).send().await.unwrap()).await;
    assert_eq!(st, 200, "{minted}");
    let auth = format!("Authorization: Bearer {}\r\n", minted["token"].as_str().unwrap());
    // 3 MiB, past the 1 MiB buffer: streamed to the upstream whole.
    for with_length in [true, false] {
        let got = upload(&env, "application/octet-stream", 3 << 20, with_length, &auth);
        assert!(got.starts_with("HTTP/1.1 200"), "{}", &got[..got.len().min(300)]);
        assert_eq!(body_of(&got)["data"].as_str().map(str::len), Some(3 << 20));
    }
    let got = upload(&env, "application/x-www-form-urlencoded", 3 << 20, true, &auth);
    assert!(got.starts_with("HTTP/1.1 413"), "{got}");
    assert_eq!(body_of(&got), json!({"message": "Payload too large"}));
}

/// `VmRSS` or `VmHWM` of `pid`, in bytes.
fn mem(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.trim_start_matches(':').split_whitespace().next()))
        .and_then(|v| v.parse::<u64>().ok())
        .expect(field);
    kb * 1024
}

/// The measure: 96 MiB uploads without a token through openid-connect with its default
/// config (`bearer_token_param_type` includes `body`) were read whole before the 401.
#[tokio::test]
async fn peak_memory_stays_flat_under_96_mib_uploads_without_a_token() {
    let (env, _idp) = oidc_env(&[]).await;
    let warm = upload(&env, "application/x-www-form-urlencoded", 10, true, "");
    // Kong's default `auth_methods` include the code flow: no credential is a redirect to the IdP.
    assert!(warm.starts_with("HTTP/1.1 302"), "{warm}");
    let pid = env.gw.proc.pid();
    let idle = mem(pid, "VmRSS");
    const MIB96: usize = 96 << 20;
    let kinds = [
        ("application/x-www-form-urlencoded", true),
        ("application/x-www-form-urlencoded", false),
        ("application/octet-stream", true),
        ("application/octet-stream", false),
    ];
    for round in 0..2 {
        std::thread::scope(|s| {
            for (ctype, with_length) in kinds {
                let env = &env;
                s.spawn(move || {
                    let t = Instant::now();
                    let got = upload(env, ctype, MIB96, with_length, "");
                    eprintln!("{ctype} {with_length} {:?} {}", t.elapsed(), &got[..got.len().min(12)]);
                    // Refused (302 to the IdP, 413) or cut off: never accepted.
                    assert!(!got.starts_with("HTTP/1.1 200"), "round {round} {ctype}: {got}");
                });
            }
        });
    }
    let peak = mem(pid, "VmHWM");
    eprintln!("idle RSS {} KiB, peak {} KiB", idle >> 10, peak >> 10);
    assert!(peak < idle + (32 << 20), "peak RSS {} MiB against {} MiB idle", peak >> 20, idle >> 20);
}

#[tokio::test]
async fn buffered_bodies_share_one_memory_budget_and_past_it_plugins_get_503() {
    // 1 KiB per plugin body: the budget is 64 of them.
    let env = setup(&["--client-body-buffer-size", "1k"]).await;
    env.plugin("request-termination", json!({"status_code": 200, "echo": true})).await;
    let head = b"POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: 1024\r\n\r\na=1";
    // 64 slow clients each hold a plugin body's share while they trickle.
    let mut held = Vec::new();
    for _ in 0..64 {
        let mut s = env.connect();
        s.write_all(head).unwrap();
        held.push(s);
    }
    // The 64 heads reach the gateway in their own time on a busy machine: ask until one is refused
    // (a request that still got a share waits for its body; it is given up after a second).
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        let mut s = env.connect();
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        s.write_all(head).unwrap();
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(n) if n > 0 => break String::from_utf8_lossy(&buf[..n]).into_owned(),
            _ if Instant::now() < deadline => held.push(s),
            _ => panic!("no request was refused for lack of buffer memory"),
        }
    };
    assert!(got.starts_with("HTTP/1.1 503"), "{got}");
    assert_eq!(body_of(&got), json!({"message": "Service temporarily unavailable"}));
    assert!(env.gw.proc.logs().contains("memory budget exhausted"));
    // When they are gone, the memory is back.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = upload(&env, "application/x-www-form-urlencoded", 100, true, "");
        if ok.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "the memory did not come back: {ok}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn a_request_head_over_64_kib_gets_431() {
    let env = setup(&[]).await;
    let mut s = env.connect();
    let big = format!("GET /api/x HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "a".repeat(70 * 1024));
    let _ = s.write_all(big.as_bytes());
    let (got, _) = until_closed(&mut s, Instant::now());
    assert!(got.starts_with("HTTP/1.1 431"), "{got}");
    // A large but allowed head still passes.
    let mut s = env.connect();
    let ok = format!("GET /api/x HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "a".repeat(32 * 1024));
    s.write_all(ok.as_bytes()).unwrap();
    assert!(read_response(&mut s).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn a_body_with_a_transfer_coding_other_than_chunked_gets_501() {
    let env = setup(&[]).await;
    for te in ["gzip, chunked", "chunked, chunked", "identity, chunked"] {
        let mut s = env.connect();
        let req = format!("POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let got = read_response(&mut s);
        assert!(got.starts_with("HTTP/1.1 501"), "{te}: {got}");
        assert_eq!(body_of(&got), json!({"message": "Not implemented"}));
    }
    let mut s = env.connect();
    s.write_all(b"POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n").unwrap();
    let got = read_response(&mut s);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert_eq!(body_of(&got)["data"], "abc");
}
