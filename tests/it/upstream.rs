//! The plain-HTTP upstream client: every way a response body can be framed, request bodies
//! streamed with and without a length, keep-alive reuse, and broken or stalled upstreams.

use super::util::{Gateway, client, echo, json, post, tempdir};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIG: usize = 200_000;

/// The canned answer for a request line's path; `None` closes the connection after writing.
fn answer(path: &str) -> (Vec<u8>, bool) {
    let keep = |s: &str| (s.as_bytes().to_vec(), true);
    match path {
        "/chunked" => keep(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n6\r\n world\r\n0\r\nx-t: 1\r\n\r\n",
        ),
        "/big" => {
            let mut v = format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n").into_bytes();
            v.extend(std::iter::repeat_n(b'x', BIG));
            (v, true)
        }
        "/close" => (b"HTTP/1.1 200 OK\r\n\r\nuntil the end".to_vec(), false),
        "/nocontent" => keep("HTTP/1.1 204 No Content\r\n\r\n"),
        "/interim" => keep("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"),
        "/garbage" => (b"SSH-2.0-nonsense\r\n\r\n".to_vec(), false),
        "/conflict" => keep("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nok"),
        "/cut-head" => (b"HTTP/1.1 200 OK\r\nContent-Le".to_vec(), false),
        "/cut-body" => {
            let mut v = format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n").into_bytes();
            v.extend(std::iter::repeat_n(b'x', 1000));
            (v, false)
        }
        _ => keep("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
    }
}

/// A hand-written upstream answering `answer(path)` to bodiless requests, counting connections.
/// `/stall` sends a head and a little of the body, then nothing.
async fn raw_upstream() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = vec![0u8; 8192];
                loop {
                    let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
                        let n = s.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        got.extend_from_slice(&buf[..n]);
                        continue;
                    };
                    let head = String::from_utf8_lossy(&got[..end]).to_string();
                    got.drain(..end + 4);
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    let head_request = head.starts_with("HEAD ");
                    if path == "/stall" {
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nsome").await;
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    let (mut out, keep) = answer(&path);
                    if head_request && let Some(i) = out.windows(4).position(|w| w == b"\r\n\r\n") {
                        out.truncate(i + 4);
                    }
                    if s.write_all(&out).await.is_err() || !keep {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

async fn gateway_to(url: &str, extra: serde_json::Value) -> (tempfile::TempDir, Gateway) {
    let dir = tempdir();
    let gw = Gateway::start(dir.path());
    let mut svc = json!({"name": "up", "url": url});
    svc.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let (st, body) = post(&format!("{}/services", gw.admin), svc).await;
    assert_eq!(st, 201, "{body}");
    let (st, body) = post(&format!("{}/services/up/routes", gw.admin), json!({"paths": ["/"]})).await;
    assert_eq!(st, 201, "{body}");
    (dir, gw)
}

#[tokio::test]
async fn every_response_framing_reaches_the_client_intact_and_connections_are_reused() {
    let (addr, accepted) = raw_upstream().await;
    let (_dir, gw) = gateway_to(&format!("http://{addr}"), json!({})).await;
    let c = client();
    let get = |path: &str| c.get(format!("{}{path}", gw.proxy)).send();
    let r = get("/chunked").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello world");
    let r = get("/big").await.unwrap();
    assert_eq!(r.headers()["content-length"], BIG.to_string().as_str());
    let body = r.bytes().await.unwrap();
    assert!(body.len() == BIG && body.iter().all(|&b| b == b'x'));
    let r = get("/close").await.unwrap();
    assert_eq!(r.text().await.unwrap(), "until the end");
    let r = get("/nocontent").await.unwrap();
    assert_eq!(r.status(), 204);
    let r = get("/interim").await.unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (201, "ok".to_string()));
    let r = c.head(format!("{}/big", gw.proxy)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), 0);

    // Sequential requests on keep-alive responses share one upstream connection per proxy thread.
    let before = accepted.load(Ordering::SeqCst);
    for _ in 0..10 {
        assert_eq!(get("/chunked").await.unwrap().text().await.unwrap(), "hello world");
        assert_eq!(get("/big").await.unwrap().bytes().await.unwrap().len(), BIG);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let opened = accepted.load(Ordering::SeqCst) - before;
    assert!(opened <= threads, "{opened} new upstream connections for 20 keep-alive requests");
}

#[tokio::test]
async fn broken_upstream_responses_are_502_and_cut_bodies_abort_the_client_response() {
    let (addr, _) = raw_upstream().await;
    let (_dir, gw) = gateway_to(&format!("http://{addr}"), json!({})).await;
    let bad = json!({"message": "An invalid response was received from the upstream server"});
    for path in ["/garbage", "/conflict", "/cut-head"] {
        let (st, body) = json(client().get(format!("{}{path}", gw.proxy)).send().await.unwrap()).await;
        assert_eq!((st, &body), (502, &bad), "{path}");
    }
    assert!(gw.proc.logs().contains("bad upstream response"), "{}", gw.proc.logs());
    // The head is on its way already: the client's response ends early (or, when nothing was
    // flushed yet, never comes), never a complete body.
    match client().get(format!("{}/cut-body", gw.proxy)).send().await {
        Ok(r) => assert!(r.bytes().await.is_err(), "a truncated body must not look complete"),
        Err(e) => assert!(e.is_request(), "{e}"),
    }
}

#[tokio::test]
async fn a_stalled_response_body_ends_after_read_timeout() {
    let (addr, _) = raw_upstream().await;
    let (_dir, gw) = gateway_to(&format!("http://{addr}"), json!({"read_timeout": 300})).await;
    let start = Instant::now();
    let r = client().get(format!("{}/stall", gw.proxy)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.is_err());
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    assert!(gw.proc.logs().contains("sent nothing for read_timeout"), "{}", gw.proc.logs());
}

/// Sends `raw` to the gateway on a fresh connection and returns the response body (the request
/// asks for `Connection: close`, so the response ends with the connection).
async fn raw_request(proxy: &str, raw: &[u8]) -> serde_json::Value {
    let mut s = TcpStream::connect(proxy.trim_start_matches("http://")).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The gateway passes the echo's Content-Length on, so the body is plain JSON.
    assert!(head.to_ascii_lowercase().contains("content-length"), "{head}");
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn request_bodies_stream_upstream_chunked_or_with_their_length() {
    let dir = tempdir();
    let up = echo(dir.path());
    let (_dir, gw) = gateway_to(&up.urls[0], json!({})).await;
    // A chunked request body (no length known up front) goes upstream chunked.
    let chunked = b"POST /anything HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n\
        6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n";
    let v = raw_request(&gw.proxy, chunked).await;
    assert_eq!(v["data"], "hello world");
    assert!(v["headers"].get("Content-Length").is_none(), "{v}");
    // Larger than the buffering limit, with a length: streamed with that length.
    let big = "y".repeat(3 * 1024 * 1024);
    let (st, v) = json(client().post(format!("{}/anything", gw.proxy)).body(big.clone()).send().await.unwrap()).await;
    assert_eq!(st, 200);
    assert_eq!(v["headers"]["Content-Length"], big.len().to_string());
    assert_eq!(v["data"].as_str().unwrap().len(), big.len());
    // Small bodies with a length, and an empty POST, which still says `Content-Length: 0`.
    let (_, v) = json(client().post(format!("{}/anything", gw.proxy)).body("abc").send().await.unwrap()).await;
    assert_eq!((&v["data"], &v["headers"]["Content-Length"]), (&json!("abc"), &json!("3")));
    let (_, v) = json(client().post(format!("{}/anything", gw.proxy)).send().await.unwrap()).await;
    assert_eq!(v["headers"]["Content-Length"], "0");
    let (_, v) = json(client().get(format!("{}/anything", gw.proxy)).send().await.unwrap()).await;
    assert!(v["headers"].get("Content-Length").is_none(), "{v}");
}
