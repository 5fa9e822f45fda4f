//! HTTPS upstreams: real TLS to a server with a self-signed certificate.

use super::util::{Gateway, get, post, self_signed_tls, tempdir};
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use std::sync::Arc;

/// A TLS server on 127.0.0.1 that reads the request body and answers `{"tls": true, "path": ...,
/// "len": <body length>}`; returns its port.
pub(super) async fn tls_upstream() -> u16 {
    let config = self_signed_tls(&[b"h2", b"http/1.1"]);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let (parts, body) = req.into_parts();
                    let len = http_body_util::BodyExt::collect(body).await.map(|b| b.to_bytes().len()).ok();
                    let body = json!({"tls": true, "path": parts.uri.path(), "len": len}).to_string();
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(body))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    port
}

#[tokio::test]
async fn https_upstreams_are_verified_unless_tls_verify_is_off() {
    let port = tls_upstream().await;
    let dir = tempdir();
    let gw = Gateway::start(dir.path());
    let a = &gw.admin;
    let url = format!("https://127.0.0.1:{port}/base");
    let (st, s) = post(&format!("{a}/services"), json!({"name": "strict", "url": url, "retries": 0})).await;
    assert_eq!(st, 201, "{s}");
    assert_eq!(s["protocol"], "https");
    post(&format!("{a}/services/strict/routes"), json!({"paths": ["/strict"]})).await;
    let (st, s) = post(&format!("{a}/services"), json!({"name": "lax", "url": url, "tls_verify": false})).await;
    assert_eq!(st, 201, "{s}");
    post(&format!("{a}/services/lax/routes"), json!({"paths": ["/lax"]})).await;

    // A self-signed certificate is refused by default...
    let (st, body) = get(&format!("{}/strict/x", gw.proxy)).await;
    assert_eq!((st, body), (502, json!({"message": "An invalid response was received from the upstream server"})));
    // ...and accepted when the service says so; the request really went over TLS.
    let (st, body) = get(&format!("{}/lax/x", gw.proxy)).await;
    assert_eq!((st, body), (200, json!({"tls": true, "path": "/base/x", "len": 0})));
}
