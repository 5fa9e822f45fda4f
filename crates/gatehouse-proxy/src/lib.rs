//! Gatehouse's data path: accept → route → access phase → upstream → header_filter.
//!
//! Architecture invariants: the proxy never awaits the store (it reads the published snapshot),
//! holds no lock per request, and knows nothing of any particular plugin.
#![warn(missing_docs)]

mod client;
mod forward;
mod h1;
mod phases;
pub mod respond;
mod trust;
mod upstream;

pub use client::{BufferBudget, ClientLimits};
use client::{ClockedIo, ConnClock, Slot, Tracked};
use gatehouse_core::snapshot::SnapshotHandle;
use gatehouse_core::stats::ProxyStats;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::TcpListener;
pub use trust::{RealIp, TrustError, TrustedIps};

/// The proxy's shared state: the current config, the upstream connection pools, the client
/// side's bounds and whom it trusts about the client.
pub struct Proxy {
    snapshot: SnapshotHandle,
    clients: upstream::Clients,
    stats: Arc<ProxyStats>,
    limits: Arc<ClientLimits>,
    /// Open client connections, shared by every proxy thread (`client_max_connections`).
    open: Arc<AtomicUsize>,
    /// Memory for buffered request bodies, shared by every proxy thread.
    buffers: Arc<BufferBudget>,
    /// `trusted_ips`, `real_ip_header`, `real_ip_recursive`.
    real_ip: Arc<RealIp>,
}

impl Proxy {
    /// A proxy that reads its config from `snapshot`. `open` counts client connections against
    /// `limits.max_connections`, and `buffers` the memory of buffered request bodies; threads that
    /// share them share the caps. `real_ip` says which peers are believed about the client.
    pub fn new(
        snapshot: SnapshotHandle,
        stats: Arc<ProxyStats>,
        limits: Arc<ClientLimits>,
        open: Arc<AtomicUsize>,
        buffers: Arc<BufferBudget>,
        real_ip: Arc<RealIp>,
    ) -> Arc<Proxy> {
        Arc::new(Proxy { snapshot, clients: upstream::Clients::default(), stats, limits, open, buffers, real_ip })
    }
}

/// The largest request head a client may send (bytes).
const HEAD_LIMIT: usize = 64 * 1024;

/// Binds `threads` listening sockets to `addr` with `SO_REUSEPORT`, so the kernel spreads new
/// connections over them. With port 0, the first socket picks the port and the others share it.
pub fn bind_reuseport(addr: std::net::SocketAddr, threads: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    use socket2::{Domain, Socket, Type};
    let mut out = Vec::with_capacity(threads);
    let mut addr = addr;
    for _ in 0..threads.max(1) {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        s.set_reuse_address(true)?;
        #[cfg(unix)]
        s.set_reuse_port(true)?;
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        s.listen(1024)?;
        let l: std::net::TcpListener = s.into();
        addr = l.local_addr()?;
        out.push(l);
    }
    Ok(out)
}

/// Runs the proxy thread-per-core: one OS thread per listener, each with its own single-threaded
/// tokio runtime and its own upstream connection pools, so a request's client side and upstream
/// side stay on one core with no cross-thread wake-ups. Returns when every thread has drained
/// after `shutdown` turns true.
pub fn serve_threads(
    listeners: Vec<std::net::TcpListener>,
    snapshot: SnapshotHandle,
    stats: Arc<ProxyStats>,
    limits: ClientLimits,
    real_ip: RealIp,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<Vec<std::thread::JoinHandle<std::io::Result<()>>>> {
    let mut handles = Vec::with_capacity(listeners.len());
    let limits = Arc::new(limits);
    let real_ip = Arc::new(real_ip);
    let open = Arc::new(AtomicUsize::new(0));
    let buffers = BufferBudget::for_limits(&limits);
    for (i, l) in listeners.into_iter().enumerate() {
        let proxy =
            Proxy::new(snapshot.clone(), stats.clone(), limits.clone(), open.clone(), buffers.clone(), real_ip.clone());
        let mut stop = shutdown.clone();
        let h = std::thread::Builder::new().name(format!("gatehouse-proxy-{i}")).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                let listener = TcpListener::from_std(l)?;
                serve(listener, proxy, async move {
                    let _ = stop.wait_for(|v| *v).await;
                })
                .await
            })
        })?;
        handles.push(h);
    }
    Ok(handles)
}

/// Serves proxy traffic on `listener` (HTTP/1.1 and h2c) until `shutdown` resolves, then lets
/// in-flight requests finish. Each connection is closed when it stays idle or in a request head
/// too long ([`ClientLimits`]); past `max_connections` new ones are closed at once.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let local_port = listener.local_addr()?.port();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A request head is at most 64 KiB (hyper's default is ~400 KiB; nginx's is 4 × 8 KiB): past it
    // hyper answers 431. h2c: at most 128 streams per connection (nginx's default), each with its
    // own bounded body.
    builder.http1().max_buf_size(HEAD_LIMIT);
    builder.http2().max_concurrent_streams(128);
    let mut refused_log = RateLimitedLog::default();
    tokio::pin!(shutdown);
    loop {
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Past the cap the connection is accepted and closed at once: left in the backlog it
        // would only wait there, and crowd out clients that come when a slot frees up.
        let Some(slot) = Slot::take(&proxy.open, proxy.limits.max_connections) else {
            drop(stream);
            refused_log.warn(proxy.limits.max_connections);
            continue;
        };
        let _ = stream.set_nodelay(true);
        proxy.stats.connections_accepted.fetch_add(1, Ordering::Relaxed);
        let clock = ConnClock::new();
        let p = proxy.clone();
        // Plain TCP: `tls` is false. A TLS listener passes true, so requests on it are https.
        let info = Arc::new(forward::ConnInfo::new(client, local_port, &proxy.real_ip, false));
        let req_clock = clock.clone();
        let svc = service_fn(move |req| {
            let (p, info) = (p.clone(), info.clone());
            let active = req_clock.begin();
            async move {
                let resp = phases::handle(p, req, info).await;
                Ok::<_, std::convert::Infallible>(resp.map(|b| Tracked::new(b, active)))
            }
        });
        let io = TokioIo::new(ClockedIo::new(stream, clock.clone()));
        let conn = builder.serve_connection_with_upgrades(io, svc).into_owned();
        let conn = graceful.watch(conn);
        let stats = proxy.stats.clone();
        let limits = proxy.limits.clone();
        // The watchdog is a task of its own, not a `select!` beside the connection: the connection
        // is polled several times per request, and each poll would poll the watchdog's timer too.
        let ended = Arc::new(tokio::sync::Notify::new());
        let conn_ended = ended.clone();
        let served = tokio::spawn(async move {
            // Counted and freed however the task ends, the watchdog's abort included.
            let _closed = Closed { stats, _slot: slot };
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "client connection ended with an error");
            }
            conn_ended.notify_one();
        });
        tokio::spawn(async move {
            tokio::select! {
                () = client::watchdog(clock, limits) => {
                    tracing::debug!("closing a client connection idle or in a request head too long");
                    // Dropping the connection future closes the socket; its slot is freed as the
                    // task is torn down.
                    served.abort();
                }
                () = ended.notified() => {}
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(std::time::Duration::from_secs(10)) => {
            tracing::warn!("in-flight requests still running after 10s; closing");
        }
    }
    Ok(())
}

/// A client connection's end: counted in `/status` and its slot freed, when its task ends or is
/// aborted.
struct Closed {
    stats: Arc<ProxyStats>,
    _slot: Slot,
}

impl Drop for Closed {
    fn drop(&mut self) {
        self.stats.connections_closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Logs refused connections at most once a second per thread, with how many since the last line:
/// a flood must not turn into a flood of log lines.
#[derive(Default)]
struct RateLimitedLog {
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    fn warn(&mut self, max: usize) {
        let now = std::time::Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < std::time::Duration::from_secs(1)) {
            self.suppressed = self.suppressed.saturating_add(1);
            return;
        }
        tracing::warn!(
            client_max_connections = max,
            refused = self.suppressed.saturating_add(1),
            "client connection refused: client_max_connections reached"
        );
        self.last = Some(now);
        self.suppressed = 0;
    }
}
