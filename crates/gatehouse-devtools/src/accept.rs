//! The accept loop the development servers share: one hyper connection (HTTP/1.1 or h2c) per
//! accepted socket, a graceful drain on shutdown.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Serves until `shutdown` completes, then lets open connections finish. `handler(peer)` makes
/// the request handler of one connection. Accept errors never end the loop: they are transient
/// (out of file descriptors), and a test server that silently dies is worse than one that retries.
pub(crate) async fn serve<H, F, Fut>(
    name: &'static str,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    handler: H,
) -> io::Result<()>
where
    H: Fn(SocketAddr) -> F,
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(name, e).await;
                    continue;
                }
            },
        };
        // Answers are small single writes; Nagle's algorithm would hold them back waiting for an ACK.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "{name}: could not set TCP_NODELAY");
        }
        let service = service_fn(handler(peer));
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "{name}: connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Errors about one connection are ignored; others (out of descriptors) back off briefly so the
/// loop does not spin.
async fn accept_failed(name: &str, e: io::Error) {
    match e.kind() {
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted => {
            tracing::debug!(error = %e, "{name}: accept failed");
        }
        _ => {
            tracing::warn!(error = %e, "{name}: accept failed, retrying shortly");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
