//! The Admin API's listener: axum's router behind hyper's connection builder, so a connection
//! that sends no complete request head in time is closed (a slowloris on the Admin port would
//! otherwise hold file descriptors the proxy shares), as nginx does for Kong's Admin server.

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;

/// Serves `router` on `listener` until `shutdown` resolves, then lets requests in flight finish
/// (for at most 10 s). Each connection must send a whole request head within `header_timeout`
/// of waiting for one (idle keep-alive time included); bodies are bounded by the [`crate::Guard`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // HTTP/1.1 only, as Kong's Admin API: the header timeout is an HTTP/1 setting, and an h2c
    // connection that sent its preface would otherwise stay open with nothing to time it.
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(router.clone());
        // `serve_connection`, not `_with_upgrades`: only it keeps to `http1_only`.
        let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "admin connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("admin requests still running after 10s; closing");
        }
    }
    Ok(())
}
