//! Pooled keep-alive clients to upstreams, timeouts and connect retries.
//!
//! One hyper client (and so one connection pool) exists per distinct connect timeout, because the
//! connector owns that setting. Clients live beside the snapshots, so a config change keeps pools.
//! The map is published through `ArcSwap`: a request's lookup takes no lock.

use crate::respond::ProxyError;
use arc_swap::ArcSwap;
use bytes::Bytes;
use gatehouse_core::router::ServiceTarget;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::time::Duration;

/// The body sent upstream: streamed from the client, or buffered (so it can be retried).
pub type UpstreamBody = Either<Incoming, Full<Bytes>>;

type HttpClient = Client<HttpConnector, UpstreamBody>;

/// Upstream clients keyed by connect timeout.
#[derive(Default)]
pub struct Clients {
    by_timeout: ArcSwap<HashMap<Duration, HttpClient>>,
}

impl Clients {
    fn get(&self, connect_timeout: Duration) -> HttpClient {
        if let Some(c) = self.by_timeout.load().get(&connect_timeout) {
            return c.clone();
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let client: HttpClient = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        self.by_timeout.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.entry(connect_timeout).or_insert_with(|| client.clone());
            m
        });
        client
    }

    /// Sends `req` to `svc`. With a buffered body, connect failures are retried up to
    /// `svc.retries` times, as Kong does; a streamed body is sent once.
    pub async fn send(
        &self,
        svc: &ServiceTarget,
        parts: http::request::Parts,
        body: BodyKind,
    ) -> Result<http::Response<Incoming>, ProxyError> {
        let client = self.get(svc.connect_timeout);
        // The response head must arrive within write + read timeout (send then wait).
        let deadline = svc.write_timeout + svc.read_timeout;
        match body {
            BodyKind::Stream(b) => {
                let req = http::Request::from_parts(parts, Either::Left(b));
                once(&client, req, deadline).await.map_err(Retry::into_proxy_error)
            }
            BodyKind::Buffered(bytes) => {
                let mut attempt = 0;
                loop {
                    let mut req = http::Request::new(Either::Right(Full::new(bytes.clone())));
                    *req.method_mut() = parts.method.clone();
                    *req.uri_mut() = parts.uri.clone();
                    *req.version_mut() = parts.version;
                    *req.headers_mut() = parts.headers.clone();
                    match once(&client, req, deadline).await {
                        Err(Retry::Connect(e)) if attempt < svc.retries => {
                            attempt += 1;
                            tracing::debug!(attempt, service = %svc.id, error = %e, "retrying upstream connect");
                        }
                        other => return other.map_err(Retry::into_proxy_error),
                    }
                }
            }
        }
    }
}

/// How the request body goes upstream.
pub enum BodyKind {
    /// Stream the client's body through.
    Stream(Incoming),
    /// Send these bytes (the body was read fully).
    Buffered(Bytes),
}

enum Retry {
    Connect(String),
    Fatal(ProxyError),
}

impl Retry {
    fn into_proxy_error(self) -> ProxyError {
        match self {
            Retry::Connect(e) => {
                if e.contains("dns error") {
                    ProxyError::NameResolution
                } else if e.contains("timed out") || e.contains("timeout") {
                    ProxyError::Timeout
                } else {
                    ProxyError::BadGateway
                }
            }
            Retry::Fatal(p) => p,
        }
    }
}

impl From<ProxyError> for Retry {
    fn from(p: ProxyError) -> Self {
        Retry::Fatal(p)
    }
}

async fn once(
    client: &HttpClient,
    req: http::Request<UpstreamBody>,
    deadline: Duration,
) -> Result<http::Response<Incoming>, Retry> {
    match tokio::time::timeout(deadline, client.request(req)).await {
        Err(_) => Err(Retry::Fatal(ProxyError::Timeout)),
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(e)) if e.is_connect() => {
            let detail = format!("{e:?}");
            tracing::warn!(error = %detail, "upstream connect failed");
            Err(Retry::Connect(detail))
        }
        Ok(Err(e)) => {
            tracing::warn!(error = ?e, "upstream request failed");
            Err(Retry::Fatal(ProxyError::BadGateway))
        }
    }
}
