//! Pooled keep-alive clients to upstreams, timeouts and connect retries.
//!
//! One hyper client (and so one connection pool) exists per distinct connect timeout and TLS
//! verification setting, because the connector owns them. Clients live beside the snapshots, so a
//! config change keeps pools. The map is published through `ArcSwap`: a request's lookup takes no
//! lock. HTTPS upstreams use rustls (aws-lc-rs) with the system's trust store; ALPN offers h2 and
//! HTTP/1.1.

use crate::respond::ProxyError;
use arc_swap::ArcSwap;
use bytes::Bytes;
use gatehouse_core::router::ServiceTarget;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The body sent upstream by the hyper client: streamed from the client, or buffered (so it can
/// be retried).
pub type UpstreamBody = Either<crate::client::RequestBody, Full<Bytes>>;

/// An upstream's response body: from the HTTPS client, or from our plain-HTTP client.
pub type ResponseBody = Either<Incoming, crate::h1::ResponseBody>;

type HttpClient = Client<HttpsConnector<HttpConnector>, UpstreamBody>;

/// Upstream clients keyed by (connect timeout, verify TLS).
pub struct Clients {
    h1: crate::h1::H1Pool,
    by_key: ArcSwap<HashMap<(Duration, bool), HttpClient>>,
    verified: Arc<rustls::ClientConfig>,
    unverified: Arc<rustls::ClientConfig>,
}

impl Default for Clients {
    fn default() -> Self {
        Clients::new()
    }
}

impl Clients {
    /// Loads the system trust store once; certificates it cannot parse are skipped with a warning.
    pub fn new() -> Clients {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::warn!(error = %e, "could not load a system CA certificate");
        }
        let (_, skipped) = roots.add_parsable_certificates(native.certs);
        if skipped > 0 {
            tracing::warn!(skipped, "skipped unparsable system CA certificates");
        }
        let builder = || {
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .unwrap_or_else(|_| unreachable!("aws-lc-rs supports the default protocol versions"))
        };
        let verified = builder().with_root_certificates(roots).with_no_client_auth();
        let unverified = builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(insecure::AcceptAnyCert(provider.clone())))
            .with_no_client_auth();
        Clients {
            h1: Default::default(),
            by_key: ArcSwap::default(),
            verified: Arc::new(verified),
            unverified: Arc::new(unverified),
        }
    }

    fn get(&self, connect_timeout: Duration, verify: bool) -> HttpClient {
        let key = (connect_timeout, verify);
        if let Some(c) = self.by_key.load().get(&key) {
            return c.clone();
        }
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(60)));
        http.enforce_http(false);
        let tls = if verify { self.verified.clone() } else { self.unverified.clone() };
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(rustls::ClientConfig::clone(&tls))
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        // hyper-util sends a request again only when hyper hands it back unwritten (the pooled
        // connection was found closed before the request was taken up), and only on a reused
        // connection: that is `Progress::NothingWritten`, which `may_resend` always allows.
        // A request hyper began to write fails with the connection, whatever its method.
        let client: HttpClient = Client::builder(TokioExecutor::new())
            .retry_canceled_requests(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        self.by_key.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.entry(key).or_insert_with(|| client.clone());
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
    ) -> Result<http::Response<ResponseBody>, ProxyError> {
        if svc.scheme == http::uri::Scheme::HTTP {
            // The URI is origin-form already (`/path?query`), and `Host` is set.
            return Ok(self.h1.send(svc, parts, body).await?.map(Either::Right));
        }
        // Boxed: every request's future would otherwise carry the pooled client's state.
        Box::pin(self.send_pooled(svc, parts, body)).await
    }

    /// HTTPS upstreams, through hyper-util's pooled client.
    async fn send_pooled(
        &self,
        svc: &ServiceTarget,
        parts: http::request::Parts,
        body: BodyKind,
    ) -> Result<http::Response<ResponseBody>, ProxyError> {
        let client = self.get(svc.connect_timeout, svc.tls_verify);
        // The response head must arrive within write + read timeout (send then wait).
        let deadline = svc.write_timeout + svc.read_timeout;
        let resp = match body {
            BodyKind::Stream(mut b) => {
                // A client body that broke the request (too large, too slow) is the client's fault.
                let failure = b.failure();
                let req = http::Request::from_parts(parts, Either::Left(b));
                once(&client, req, deadline)
                    .await
                    .map_err(|r| failure.get().copied().unwrap_or_else(|| r.into_proxy_error()))
            }
            BodyKind::Buffered(bytes) => {
                // Earlier attempts send a copy of the head; the last possible one takes the original,
                // so a service with `retries = 0` copies nothing.
                let mut attempt = 0;
                loop {
                    let body = Either::Right(Full::new(bytes.clone()));
                    let req = if attempt < svc.retries {
                        let mut head = http::Request::new(body);
                        *head.method_mut() = parts.method.clone();
                        *head.uri_mut() = parts.uri.clone();
                        *head.version_mut() = parts.version;
                        *head.headers_mut() = parts.headers.clone();
                        head
                    } else {
                        break once(&client, http::Request::from_parts(parts, body), deadline)
                            .await
                            .map_err(Retry::into_proxy_error);
                    };
                    match once(&client, req, deadline).await {
                        // A connect failure wrote nothing.
                        Err(Retry::Connect(e)) if may_resend(Progress::NothingWritten, &parts.method, true) => {
                            attempt += 1;
                            tracing::debug!(attempt, service = %svc.id, error = %e, "retrying upstream connect");
                        }
                        other => break other.map_err(Retry::into_proxy_error),
                    }
                }
            }
        };
        let mut resp = resp?;
        // hyper decodes such an answer as chunked (the last coding wins) but leaves the
        // Content-Length, which the response to the client would then be cut to.
        if crate::h1::drop_length_beside_transfer_encoding(resp.headers_mut()) {
            tracing::warn!(service = %svc.id, "upstream sent Content-Length and Transfer-Encoding; using chunked");
        }
        Ok(resp.map(Either::Left))
    }
}

/// How far one attempt got before its upstream connection failed: what decides, with the
/// method, whether the request may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// No byte of the request was written (a connect failure, a connection found closed before
    /// the first write): the upstream cannot have seen it.
    NothingWritten,
    /// Some or all of the request was written (a partial write counts) and no byte of an answer
    /// came back: the upstream may have acted on it.
    Written,
    /// Part of an answer came back: the upstream has acted on it.
    AnswerStarted,
}

/// Whether a request whose attempt failed at `progress` may be sent again (RFC 9110 §9.2.2): an
/// unwritten request always; a written one only when its method is idempotent and its body is
/// still at hand (buffered, not streamed from the client); never once an answer has started.
/// nginx's `proxy_next_upstream` default (`error timeout`, no `non_idempotent`) is as strict
/// for POST, LOCK and PATCH; this is stricter for unknown methods, which are not replayed.
pub(crate) fn may_resend(progress: Progress, method: &http::Method, body_replayable: bool) -> bool {
    match progress {
        Progress::NothingWritten => true,
        Progress::Written => body_replayable && is_idempotent(method),
        Progress::AnswerStarted => false,
    }
}

/// The idempotent methods of RFC 9110 §9.2.2.
fn is_idempotent(method: &http::Method) -> bool {
    use http::Method;
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE)
}

/// How the request body goes upstream.
pub enum BodyKind {
    /// Stream the client's body through, within its size and time bounds.
    Stream(crate::client::RequestBody),
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

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn only_unwritten_or_idempotent_buffered_requests_are_sent_again() {
        let ext = Method::from_bytes(b"PURGE").unwrap();
        for m in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE, Method::PUT, Method::DELETE] {
            assert!(may_resend(Progress::NothingWritten, &m, false), "{m}");
            assert!(may_resend(Progress::Written, &m, true), "{m}");
            assert!(!may_resend(Progress::Written, &m, false), "{m} with a streamed body");
            assert!(!may_resend(Progress::AnswerStarted, &m, true), "{m}");
        }
        for m in [Method::POST, Method::PATCH, Method::CONNECT, ext] {
            assert!(may_resend(Progress::NothingWritten, &m, true), "{m}");
            assert!(may_resend(Progress::NothingWritten, &m, false), "{m}");
            assert!(!may_resend(Progress::Written, &m, true), "{m}");
            assert!(!may_resend(Progress::AnswerStarted, &m, true), "{m}");
        }
    }
}

/// `tls_verify = false`: the upstream's certificate is not checked (signatures still are, so the
/// handshake is real). Kong's default; ours only when a service asks for it.
mod insecure {
    use rustls::DigitallySignedStruct;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use std::sync::Arc;

    #[derive(Debug)]
    pub struct AcceptAnyCert(pub Arc<CryptoProvider>);

    impl ServerCertVerifier for AcceptAnyCert {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
