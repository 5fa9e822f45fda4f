//! The upstream side of the boundary: a request the upstream may have acted on is never sent
//! twice unless its method is idempotent, and an answer's framing is never cut short.
//!
//! Each test runs a hand-written upstream that misbehaves on purpose and counts what reaches it.
//! The client pools its connection to the gateway, so every request of a test is served by the
//! same proxy thread and so meets that thread's pooled upstream connection.

use super::util::{Gateway, json, post, self_signed_tls, tempdir};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the upstream does with one request.
enum Act {
    /// Write these bytes and keep the connection.
    Answer(&'static str),
    /// Close the connection without a byte of an answer (the request was read in full).
    Drop,
}

/// A request as the upstream received it: method, path and which request it was on its
/// connection (0 for the first).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    method: String,
    path: String,
    on_conn: usize,
    conn: usize,
}

type Log = Arc<Mutex<Vec<Seen>>>;
type Rule = fn(&Seen, &[Seen]) -> Act;

/// Starts an upstream (over TLS with `tls`, HTTP/1.1 only) that reads each request (head and
/// `Content-Length` body), records it and does what `act` says.
async fn upstream(act: Rule, tls: bool) -> (std::net::SocketAddr, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let acceptor = tls.then(acceptor);
    tokio::spawn(async move {
        for conn in 0.. {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (log, acceptor) = (log.clone(), acceptor.clone());
            tokio::spawn(async move {
                match acceptor {
                    None => serve(tcp, conn, log, act).await,
                    Some(a) => {
                        if let Ok(s) = a.accept(tcp).await {
                            serve(s, conn, log, act).await
                        }
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// A TLS acceptor with a fresh self-signed certificate, offering only HTTP/1.1.
fn acceptor() -> tokio_rustls::TlsAcceptor {
    let config = self_signed_tls(&[b"http/1.1"]);
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// One upstream connection: each request is read in full, logged, then answered or dropped.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, conn: usize, log: Log, act: Rule) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 8192];
    for on_conn in 0.. {
        // The head, then the body by its length.
        let end = loop {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        };
        let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
        let len: usize =
            head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
        while got.len() < end + 4 + len {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got.drain(..end + 4 + len);
        let mut words = head.split(' ');
        let method = words.next().unwrap_or("").to_uppercase();
        let path = words.next().unwrap_or("/").to_string();
        let req = Seen { method, path, on_conn, conn };
        let what = {
            let mut log = log.lock().unwrap();
            let what = act(&req, &log);
            log.push(req);
            what
        };
        match what {
            Act::Answer(bytes) => {
                if s.write_all(bytes.as_bytes()).await.is_err() || s.flush().await.is_err() {
                    return;
                }
            }
            // Over TLS, close_notify first, as a server closing an idle connection would.
            Act::Drop => {
                let _ = s.shutdown().await;
                return;
            }
        }
    }
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

async fn gateway_to(addr: std::net::SocketAddr, tls: bool) -> (tempfile::TempDir, Gateway) {
    let dir = tempdir();
    let gw = Gateway::start(dir.path());
    let scheme = if tls { "https" } else { "http" };
    let url = format!("{scheme}://{addr}");
    let svc = json!({"name": "up", "url": url, "read_timeout": 5000, "retries": 0, "tls_verify": false});
    let (st, body) = post(&format!("{}/services", gw.admin), svc).await;
    assert_eq!(st, 201, "{body}");
    let (st, body) = post(&format!("{}/services/up/routes", gw.admin), json!({"paths": ["/"]})).await;
    assert_eq!(st, 201, "{body}");
    (dir, gw)
}

/// A client that keeps its one connection to the gateway, so one proxy thread serves it.
fn pooled_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

fn count(seen: &Mutex<Vec<Seen>>, method: &str, path: &str) -> usize {
    seen.lock().unwrap().iter().filter(|s| s.method == method && s.path == path).count()
}

#[tokio::test]
async fn a_post_the_upstream_read_and_dropped_is_delivered_once_and_answered_502() {
    for tls in [false, true] {
        post_dropped_once(tls).await;
    }
}

async fn post_dropped_once(tls: bool) {
    // Every POST and PATCH is read in full and its connection closed without an answer.
    let (addr, seen) =
        upstream(|req, _| if req.method == "POST" || req.method == "PATCH" { Act::Drop } else { Act::Answer(OK) }, tls)
            .await;
    let (_dir, gw) = gateway_to(addr, tls).await;
    let c = pooled_client();
    let bad = json!({"message": "An invalid response was received from the upstream server"});
    for method in [reqwest::Method::POST, reqwest::Method::PATCH] {
        // A keep-alive answer first, so the write goes to a pooled connection: the case that
        // used to be replayed, since it looks like an idle connection the upstream dropped.
        let r = c.get(format!("{}/warm", gw.proxy)).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "ok");
        let (st, body) =
            json(c.request(method.clone(), format!("{}/once", gw.proxy)).body("pay").send().await.unwrap()).await;
        assert_eq!((st, &body), (502, &bad), "{method} tls={tls}");
        assert_eq!(count(&seen, method.as_str(), "/once"), 1, "{method} tls={tls}: {:?}", seen.lock().unwrap());
        let last = seen.lock().unwrap().last().cloned().unwrap();
        assert!(last.on_conn > 0, "{method} went to a fresh connection, not a pooled one: {last:?}");
    }
}

#[tokio::test]
async fn an_idempotent_request_on_a_dropped_pooled_connection_is_sent_again() {
    // The first GET /again is read and its connection closed unanswered; later ones are answered.
    let (addr, seen) = upstream(
        |req, before| {
            let again = |s: &Seen| s.path == "/again";
            if again(req) && !before.iter().any(again) { Act::Drop } else { Act::Answer(OK) }
        },
        false,
    )
    .await;
    let (_dir, gw) = gateway_to(addr, false).await;
    let c = pooled_client();
    let r = c.get(format!("{}/warm", gw.proxy)).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "ok");
    let r = c.get(format!("{}/again", gw.proxy)).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (200, "ok".to_string()));
    let seen = seen.lock().unwrap().clone();
    let again: Vec<_> = seen.iter().filter(|s| s.path == "/again").collect();
    assert_eq!(again.len(), 2, "{seen:?}");
    // Dropped on the pooled connection, answered on a new one.
    assert!(again[0].on_conn > 0 && again[1].conn != again[0].conn, "{seen:?}");
}

#[tokio::test]
async fn an_answer_with_length_and_chunked_arrives_whole_and_its_connection_is_not_reused() {
    for tls in [false, true] {
        length_and_chunked(tls).await;
    }
}

async fn length_and_chunked(tls: bool) {
    const BOTH: &str = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
                        b\r\nhello world\r\n6\r\n again\r\n0\r\n\r\n";
    let (addr, seen) = upstream(|req, _| Act::Answer(if req.path == "/both" { BOTH } else { OK }), tls).await;
    let (_dir, gw) = gateway_to(addr, tls).await;
    let c = pooled_client();
    let r = c.get(format!("{}/both", gw.proxy)).send().await.unwrap();
    assert_eq!(r.status(), 200, "tls={tls}");
    assert_ne!(r.headers().get("content-length").map(|v| v.as_bytes()), Some(&b"5"[..]), "tls={tls}");
    assert_eq!(r.text().await.unwrap(), "hello world again", "tls={tls}");
    if tls {
        // hyper's pool decides reuse on the HTTPS path; its decoder framed the answer as chunked.
        return;
    }
    let r = c.get(format!("{}/next", gw.proxy)).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "ok");
    // A plain keep-alive answer still leaves its connection in the pool.
    let r = c.get(format!("{}/after", gw.proxy)).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "ok");
    let seen = seen.lock().unwrap().clone();
    let at = |i: usize| (seen[i].path.as_str(), seen[i].on_conn);
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(at(1), ("/next", 0), "reused after a doubtful answer: {seen:?}");
    assert_eq!(at(2), ("/after", 1), "{seen:?}");
}
