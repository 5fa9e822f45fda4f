//! The HTTP client every plugin instance uses to talk to identity providers.
//!
//! One pooled `reqwest::Client` per (timeout, ssl_verify, keepalive), shared by every instance
//! with the same settings, so connections to an IdP are reused across plugins and config changes.
//! Clients are picked at build time; the request path only clones an `Arc`.

use http::{HeaderMap, HeaderName};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Why a call to the identity provider did not give a usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IdpError {
    /// No answer: connect error, TLS failure, timeout.
    #[error("{what} at {url} could not be reached: {reason}")]
    Unreachable {
        /// Which call (discovery, token endpoint, ...).
        what: &'static str,
        /// The URL called.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// An answer with an unexpected status.
    #[error("{what} at {url} answered {status}")]
    Status {
        /// Which call.
        what: &'static str,
        /// The URL called.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// An answer that is not what the protocol says.
    #[error("{what} at {url} gave an invalid answer: {reason}")]
    Invalid {
        /// Which call.
        what: &'static str,
        /// The URL called.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The endpoint is neither configured nor discovered.
    #[error("no {0} is configured or discovered")]
    NoEndpoint(&'static str),
    /// An answer larger than the node's `idp_max_response_size`: a misbehaving or hostile IdP
    /// must not make the gateway buffer without bound.
    #[error("{what} at {url} answered more than {limit} bytes")]
    TooLarge {
        /// Which call.
        what: &'static str,
        /// The URL called.
        url: String,
        /// The cap, in bytes.
        limit: u64,
    },
}

/// The default cap on an IdP answer (`idp_max_response_size`): 1 MiB, far above any real
/// discovery document, key set or token answer.
pub const DEFAULT_MAX_RESPONSE: u64 = 1 << 20;

/// A shared client and the cap on the answers it reads. Every IdP call goes through it, so no
/// answer is read without the cap.
#[derive(Clone, Debug)]
pub struct IdpHttp {
    client: reqwest::Client,
    max_body: u64,
}

impl IdpHttp {
    /// A GET request to `url`.
    pub fn get(&self, url: &str) -> reqwest::RequestBuilder {
        self.client.get(url)
    }

    /// A POST request to `url`.
    pub fn post(&self, url: &str) -> reqwest::RequestBuilder {
        self.client.post(url)
    }

    /// The cap on an answer's body, in bytes.
    pub fn max_body(&self) -> u64 {
        self.max_body
    }

    /// Sends `req` and reads a JSON answer (see [`IdpHttp::send`]).
    pub async fn json(
        &self,
        what: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, serde_json::Value), IdpError> {
        self.json_keeping(what, req, &[]).await.map(|(status, v, _)| (status, v))
    }

    /// Sends `req` and reads a JSON answer, with the answer's headers named in `keep` (every
    /// value of each, in the order received; the others are dropped).
    pub async fn json_keeping(
        &self,
        what: &'static str,
        req: reqwest::RequestBuilder,
        keep: &[HeaderName],
    ) -> Result<(u16, serde_json::Value, HeaderMap), IdpError> {
        let (status, url, kept, body) = self.exchange(what, req, keep).await?;
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| IdpError::Invalid {
            what,
            url: url.clone(),
            reason: if (200..300).contains(&status) { format!("not JSON: {e}") } else { format!("status {status}") },
        })?;
        Ok((status, v, kept))
    }

    /// Sends `req` and returns status, URL and body bytes. The body is read chunk by chunk and
    /// refused as soon as it passes the cap (or at once when `Content-Length` says it will).
    pub async fn send(
        &self,
        what: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, String, bytes::Bytes), IdpError> {
        self.exchange(what, req, &[]).await.map(|(status, url, _, body)| (status, url, body))
    }

    /// [`IdpHttp::send`], keeping the answer's headers named in `keep`.
    async fn exchange(
        &self,
        what: &'static str,
        req: reqwest::RequestBuilder,
        keep: &[HeaderName],
    ) -> Result<(u16, String, HeaderMap, bytes::Bytes), IdpError> {
        let mut resp = req.send().await.map_err(|e| {
            let url = e.url().map(|u| u.to_string()).unwrap_or_default();
            IdpError::Unreachable { what, url, reason: error_chain(&e) }
        })?;
        let status = resp.status().as_u16();
        let url = resp.url().to_string();
        let mut kept = HeaderMap::new();
        for name in keep {
            for v in resp.headers().get_all(name) {
                kept.append(name.clone(), v.clone());
            }
        }
        let limit = self.max_body;
        let too_large = |url: &str| IdpError::TooLarge { what, url: url.to_string(), limit };
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large(&url));
        }
        let mut body = bytes::BytesMut::new();
        loop {
            let chunk = resp.chunk().await.map_err(|e| IdpError::Unreachable {
                what,
                url: url.clone(),
                reason: error_chain(&e),
            })?;
            let Some(chunk) = chunk else { break };
            let len = u64::try_from(body.len().saturating_add(chunk.len())).unwrap_or(u64::MAX);
            if len > limit {
                return Err(too_large(&url));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, url, kept, body.freeze()))
    }
}

type Key = (u64, bool, bool);

/// Distinct client settings remembered for sharing.
const MAX_SHARED_CLIENTS: usize = 64;

static CLIENTS: LazyLock<Mutex<HashMap<Key, reqwest::Client>>> = LazyLock::new(Default::default);

/// The shared client for these settings, reading at most `max_body` bytes of an answer.
/// `timeout_ms` bounds connect and the whole exchange.
pub fn shared_client(timeout_ms: u64, ssl_verify: bool, keepalive: bool, max_body: u64) -> Result<IdpHttp, String> {
    let client = pooled(timeout_ms, ssl_verify, keepalive)?;
    Ok(IdpHttp { client, max_body })
}

fn pooled(timeout_ms: u64, ssl_verify: bool, keepalive: bool) -> Result<reqwest::Client, String> {
    let key = (timeout_ms, ssl_verify, keepalive);
    let mut map = CLIENTS.lock().map_err(|_| "http client registry poisoned".to_string())?;
    if let Some(c) = map.get(&key) {
        return Ok(c.clone());
    }
    let timeout = Duration::from_millis(timeout_ms.max(1));
    let mut b = reqwest::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        // An IdP redirect is never followed: a token endpoint that redirects is misconfigured,
        // and following it could leak credentials to another host.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
        .tls_danger_accept_invalid_certs(!ssl_verify);
    if !keepalive {
        b = b.pool_max_idle_per_host(0);
    }
    let client = b.build().map_err(|e| format!("http client: {e}"))?;
    // Every Admin write builds its plugin, so each distinct `timeout` ever written would stay here.
    // Forgetting them all past a bound is safe: instances keep their own clones, and only the
    // sharing of idle connections between later instances is lost.
    if map.len() >= MAX_SHARED_CLIENTS {
        map.clear();
    }
    map.insert(key, client.clone());
    Ok(client)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers one request with `head` and then `body_len` bytes of `x` (as far
    /// as they are read); returns its URL.
    async fn server(head: String, body_len: usize) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let Ok((mut conn, _)) = listener.accept().await else { return };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf).await;
            let _ = conn.write_all(head.as_bytes()).await;
            let block = vec![b'x'; 16 * 1024];
            let mut sent = 0;
            while sent < body_len {
                let n = block.len().min(body_len - sent);
                if conn.write_all(&block[..n]).await.is_err() {
                    return;
                }
                sent += n;
            }
        });
        url
    }

    async fn fetch(head: &str, body_len: usize, cap: u64) -> Result<usize, IdpError> {
        let url = server(head.to_string(), body_len).await;
        let http = shared_client(2000, true, false, cap).expect("client");
        http.send("userinfo", http.get(&url)).await.map(|(_, _, body)| body.len())
    }

    #[tokio::test]
    async fn answers_over_the_cap_are_refused_whether_announced_or_streamed() {
        let sized = |n: usize| format!("HTTP/1.1 200 OK\r\ncontent-length: {n}\r\n\r\n");
        let streamed = "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n";
        let chunked = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4000\r\n";
        assert_eq!(fetch(&sized(1000), 1000, 1000).await.expect("at the cap"), 1000);
        assert_eq!(fetch(streamed, 1000, 1000).await.expect("at the cap"), 1000);
        for (head, len) in [(sized(1001), 1001), (sized(1 << 30), 1 << 20), (streamed.into(), 1 << 20)] {
            let e = fetch(&head, len, 1000).await.expect_err("over the cap");
            assert!(matches!(e, IdpError::TooLarge { what: "userinfo", limit: 1000, .. }), "{e}");
        }
        // A chunked body that grows past the cap (its first chunk already does).
        let e = fetch(chunked, 16 * 1024, 1000).await.expect_err("over the cap");
        assert!(matches!(e, IdpError::TooLarge { .. }), "{e}");
    }
}
