//! A per-thread HTTP/1.1 connection pool for plain-`http` upstreams.
//!
//! Why not hyper-util's pooled client here: with one runtime per core, each proxy thread owns its
//! upstream connections, so the pool needs no cross-thread machinery; taking a connection first
//! and sending second means a connect failure leaves the request untouched, so connect retries
//! copy nothing; and the request is sent on the connection directly instead of through the pooled
//! client's extra channel. Measured on the proxy benchmark: see docs/benchmarks.md. HTTPS
//! upstreams (TLS, ALPN, h2) keep using the pooled hyper-util client.
//!
//! A connection is put back as soon as its request is sent. It is busy until the response body
//! has been read, so checkout only takes connections that are ready now; busy ones stay in the
//! list, closed ones are dropped.

use crate::respond::ProxyError;
use crate::upstream::UpstreamBody;
use gatehouse_core::router::ServiceTarget;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The most connections kept per upstream address on one thread.
const MAX_PER_HOST: usize = 256;

/// Idle and busy HTTP/1.1 connections by upstream authority. One per proxy thread; its lock is
/// never contended (only its own thread uses it), and never held across an await.
#[derive(Default)]
pub struct H1Pool {
    conns: Mutex<HashMap<http::uri::Authority, Vec<SendRequest<UpstreamBody>>>>,
}

impl H1Pool {
    fn checkout(&self, authority: &http::uri::Authority) -> Option<SendRequest<UpstreamBody>> {
        let mut map = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let list = map.get_mut(authority)?;
        list.retain(|s| !s.is_closed());
        let i = list.iter().rposition(SendRequest::is_ready)?;
        Some(list.swap_remove(i))
    }

    fn checkin(&self, authority: &http::uri::Authority, sender: SendRequest<UpstreamBody>) {
        let mut map = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let list = map.entry(authority.clone()).or_default();
        if list.len() < MAX_PER_HOST {
            list.push(sender);
        }
    }

    async fn connect(&self, svc: &ServiceTarget) -> Result<SendRequest<UpstreamBody>, String> {
        let addr = svc.authority.as_str();
        let stream = match tokio::time::timeout(svc.connect_timeout, tokio::net::TcpStream::connect(addr)).await {
            Err(_) => return Err("connect timed out".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Sends `req` (origin-form URI, `Host` set) to `svc`. Connect failures are retried up to
    /// `svc.retries` times, and a request the connection never took is sent again on another one.
    pub async fn send(
        &self,
        svc: &ServiceTarget,
        mut req: http::Request<UpstreamBody>,
    ) -> Result<http::Response<Incoming>, ProxyError> {
        let deadline: Duration = svc.write_timeout + svc.read_timeout;
        let mut connect_failures = 0;
        let mut resends = 0;
        loop {
            let mut sender = match self.checkout(&svc.authority) {
                Some(s) => s,
                None => match self.connect(svc).await {
                    Ok(s) => s,
                    Err(e) if connect_failures < svc.retries => {
                        connect_failures += 1;
                        tracing::debug!(attempt = connect_failures, service = %svc.id, error = %e, "retrying upstream connect");
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(service = %svc.id, error = %e, "upstream connect failed");
                        return Err(if e.contains("timed out") { ProxyError::Timeout } else { ProxyError::BadGateway });
                    }
                },
            };
            let sent = sender.try_send_request(req);
            self.checkin(&svc.authority, sender);
            match tokio::time::timeout(deadline, sent).await {
                Err(_) => return Err(ProxyError::Timeout),
                Ok(Ok(resp)) => return Ok(resp),
                Ok(Err(mut e)) => match e.take_message() {
                    // The connection closed before taking the request (an idle keep-alive the
                    // upstream had just dropped): send it on another one.
                    Some(back) if resends < 3 => {
                        resends += 1;
                        tracing::debug!(error = %e.error(), "upstream connection was not usable; retrying the request");
                        req = back;
                    }
                    _ => {
                        tracing::warn!(service = %svc.id, error = %e.error(), "upstream request failed");
                        return Err(ProxyError::BadGateway);
                    }
                },
            }
        }
    }
}
