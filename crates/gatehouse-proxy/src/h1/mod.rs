//! Gatehouse's own HTTP/1.1 client for plain-`http` upstreams, with a per-thread connection pool.
//!
//! Why not hyper's client here: hyper drives each connection from a task of its own, so every
//! proxied request crosses tasks three times (request over a channel to the connection task,
//! the response head back over a oneshot, body chunks over another channel), each a wake-up and
//! a scheduler round. This client writes the request and reads the response in the request's
//! own task, and a small body comes back with the head, so the connection is idle again before
//! the response leaves. Measured on the proxy benchmark: see docs/benchmarks.md. HTTPS
//! upstreams (TLS, ALPN, h2) keep using the pooled hyper-util client.
//!
//! The parts: [`encode`] writes the request head, [`decode`] parses the response head (httparse)
//! and decodes chunked bodies, [`body`] streams the rest of the body and puts the connection back.
//!
//! Invariants: a connection is in the pool only between messages (nothing unread, nothing
//! pending); a connection whose message boundary is unknown is closed, never reused.

mod body;
mod decode;
mod encode;

pub use body::ResponseBody;
pub(crate) use decode::drop_length_beside_transfer_encoding;

use crate::client::RequestBody;
use crate::respond::ProxyError;
use crate::upstream::{BodyKind, Progress, may_resend};
use bytes::{Bytes, BytesMut};
use decode::Framing;
use encode::ReqFraming;
use gatehouse_core::router::ServiceTarget;
use http::uri::Authority;
use http::{Method, header};
use http_body_util::BodyExt;
use rustc_hash::FxHashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The most idle connections kept per upstream address on one thread.
const MAX_IDLE_PER_HOST: usize = 256;
/// Idle connections older than this are closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Bodies up to this size are read together with the head.
const READ_WITH_HEAD: u64 = 16 * 1024;
/// Buffered request bodies up to this size go out in the same write as the head.
const WRITE_WITH_HEAD: usize = 16 * 1024;
/// How often a request is sent again when a pooled connection turns out to be closed.
const MAX_RESENDS: u32 = 3;

/// One upstream connection and its read buffer.
pub(crate) struct Conn {
    io: TcpStream,
    buf: BytesMut,
    authority: Authority,
    /// Whether an earlier request used this connection (so a close before any answer is the
    /// upstream dropping an idle keep-alive connection, and the request may be sent again).
    reused: bool,
    idle_since: Instant,
}

impl Conn {
    fn reserve(&mut self) {
        if self.buf.capacity() - self.buf.len() < 2048 {
            self.buf.reserve(8 * 1024);
        }
    }

    /// Whether a pooled connection looks usable: nothing to read on it, which rules out a close
    /// (or stray bytes) the event loop has already seen. No system call is made.
    fn looks_idle(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.io.poll_read_ready(&mut cx).is_pending()
    }
}

/// The idle connections of one proxy thread, by upstream address. Only its own thread uses it,
/// so the lock is never contended, and it is never held across an await.
#[derive(Default)]
pub(crate) struct Idle {
    conns: Mutex<FxHashMap<Authority, Vec<Conn>>>,
}

impl Idle {
    fn checkout(&self, authority: &Authority) -> Option<Conn> {
        let mut map = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let list = map.get_mut(authority)?;
        // Most recently used first: the warmest connection, the least likely to be closed.
        while let Some(c) = list.pop() {
            if c.idle_since.elapsed() >= IDLE_TIMEOUT {
                // The rest are older still.
                list.clear();
                return None;
            }
            if c.looks_idle() {
                return Some(c);
            }
        }
        None
    }

    pub(super) fn checkin(&self, mut conn: Conn) {
        conn.reused = true;
        conn.idle_since = Instant::now();
        let mut map = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let list = match map.get_mut(&conn.authority) {
            Some(l) => l,
            None => map.entry(conn.authority.clone()).or_default(),
        };
        if list.len() < MAX_IDLE_PER_HOST {
            list.push(conn);
        }
    }
}

/// The plain-HTTP upstream client of one proxy thread.
#[derive(Default)]
pub struct H1Pool {
    idle: Arc<Idle>,
}

/// Why one attempt failed.
enum Failure {
    /// A pooled connection turned out to be closed (the upstream dropped it while idle, or as
    /// the request arrived). `progress` says how far the request got, which decides whether it
    /// may go out again.
    Stale {
        progress: Progress,
        error: io::Error,
    },
    Fatal(ProxyError),
}

impl H1Pool {
    async fn connect(&self, svc: &ServiceTarget) -> Result<Conn, ProxyError> {
        let mut failures = 0;
        loop {
            let err = match tokio::time::timeout(svc.connect_timeout, TcpStream::connect(svc.authority.as_str())).await
            {
                Ok(Ok(io)) => {
                    let _ = io.set_nodelay(true);
                    return Ok(Conn {
                        io,
                        buf: BytesMut::with_capacity(8 * 1024),
                        authority: svc.authority.clone(),
                        reused: false,
                        idle_since: Instant::now(),
                    });
                }
                Ok(Err(e)) => (e.to_string(), ProxyError::BadGateway),
                Err(_) => ("connect timed out".to_string(), ProxyError::Timeout),
            };
            if failures < svc.retries {
                failures += 1;
                tracing::debug!(attempt = failures, service = %svc.id, error = %err.0, "retrying upstream connect");
                continue;
            }
            tracing::warn!(service = %svc.id, error = %err.0, "upstream connect failed");
            return Err(err.1);
        }
    }

    /// Sends the request (origin-form URI, `Host` set, hop-by-hop headers gone) to `svc` and
    /// returns the response once its head (and a small body) is read. Connect failures are retried
    /// up to `svc.retries` times. When a pooled connection turns out to be closed before any
    /// answer, the request goes again (up to 3 times) only if [`may_resend`] allows it: nothing
    /// of it was written, or it is idempotent with a buffered body. A POST is never replayed.
    pub async fn send(
        &self,
        svc: &ServiceTarget,
        parts: http::request::Parts,
        body: BodyKind,
    ) -> Result<http::Response<ResponseBody>, ProxyError> {
        let had_length = parts.headers.contains_key(header::CONTENT_LENGTH);
        let (framing, mut stream, buffered) = match body {
            BodyKind::Buffered(b) => (ReqFraming::for_length(&parts.method, had_length, b.len() as u64), None, b),
            BodyKind::Stream(s) => {
                let exact = had_length.then(|| http_body::Body::size_hint(&s).exact()).flatten();
                (exact.map_or(ReqFraming::Chunked, ReqFraming::Length), Some(s), Bytes::new())
            }
        };
        let mut out = Vec::with_capacity(512 + if buffered.len() <= WRITE_WITH_HEAD { buffered.len() } else { 0 });
        encode::encode_head(&mut out, &parts, framing);
        let head_len = out.len();
        let head_request = parts.method == Method::HEAD;
        let mut resends = 0;
        loop {
            let conn = match self.idle.checkout(&svc.authority) {
                Some(c) => c,
                // Boxed, as the other cold paths here: the request future is moved into place on
                // every request, and a connect (with its DNS lookup) is rare.
                None => Box::pin(self.connect(svc)).await?,
            };
            match self.exchange(svc, conn, &mut out, head_len, &buffered, stream.as_mut(), framing, head_request).await
            {
                Ok(resp) => return Ok(resp),
                Err(Failure::Stale { progress, error })
                    if resends < MAX_RESENDS && may_resend(progress, &parts.method, stream.is_none()) =>
                {
                    resends += 1;
                    tracing::debug!(error = %error, ?progress, "pooled upstream connection was closed; resending");
                }
                Err(Failure::Stale { progress, error }) => {
                    let method = &parts.method;
                    tracing::warn!(service = %svc.id, error = %error, ?progress, %method, "upstream closed the connection");
                    return Err(ProxyError::BadGateway);
                }
                Err(Failure::Fatal(e)) => return Err(e),
            }
        }
    }

    /// One attempt on one connection: write the request, read the response head.
    #[allow(clippy::too_many_arguments)]
    async fn exchange(
        &self,
        svc: &ServiceTarget,
        mut conn: Conn,
        out: &mut Vec<u8>,
        head_len: usize,
        buffered: &Bytes,
        stream: Option<&mut RequestBody>,
        framing: ReqFraming,
        head_request: bool,
    ) -> Result<http::Response<ResponseBody>, Failure> {
        let reused = conn.reused;
        // The head, with a small buffered body in the same write.
        out.truncate(head_len);
        let body_with_head = buffered.len() <= WRITE_WITH_HEAD;
        if body_with_head {
            out.extend_from_slice(buffered);
        }
        // Usually the socket takes the whole head at once: then no timer is set up for it.
        // `sent` counts every byte the socket took, so a write that failed part way is known to
        // have delivered something.
        let mut sent = match conn.io.try_write(out) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => {
                return Err(failed(svc, e, reused, Progress::NothingWritten, "sending the request upstream failed"));
            }
        };
        if sent < out.len() || !body_with_head {
            let write = async {
                while sent < out.len() {
                    match tokio::io::AsyncWriteExt::write(&mut conn.io, &out[sent..]).await? {
                        0 => return Err(io::ErrorKind::WriteZero.into()),
                        n => sent += n,
                    }
                }
                if !body_with_head {
                    conn.io.write_all(buffered).await?;
                }
                io::Result::Ok(())
            };
            let result = tokio::time::timeout(svc.write_timeout, write).await;
            let progress = if sent == 0 { Progress::NothingWritten } else { Progress::Written };
            match result {
                Err(_) => return Err(Failure::Fatal(ProxyError::Timeout)),
                Ok(Err(e)) => return Err(failed(svc, e, reused, progress, "sending the request upstream failed")),
                Ok(Ok(())) => {}
            }
        }
        if let Some(s) = stream {
            Box::pin(stream_body(&mut conn.io, s, framing, svc.write_timeout)).await.map_err(Failure::Fatal)?;
        }
        // The response head. `answered`: some byte of an answer came (an interim 1xx counts,
        // though the buffer no longer holds it).
        let mut answered = false;
        let head = loop {
            match decode::parse_head(&mut conn.buf, head_request) {
                Ok(Some(h)) => break h,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(service = %svc.id, error = %e, "bad upstream response");
                    return Err(Failure::Fatal(ProxyError::BadGateway));
                }
            }
            conn.reserve();
            match tokio::time::timeout(svc.read_timeout, tokio::io::AsyncReadExt::read_buf(&mut conn.io, &mut conn.buf))
                .await
            {
                Err(_) => return Err(Failure::Fatal(ProxyError::Timeout)),
                Ok(Ok(0)) if !answered => {
                    let eof = io::ErrorKind::UnexpectedEof.into();
                    let what = "upstream closed the connection without answering";
                    return Err(failed(svc, eof, reused, Progress::Written, what));
                }
                Ok(Ok(0)) => {
                    tracing::warn!(service = %svc.id, "upstream closed the connection in the response head");
                    return Err(Failure::Fatal(ProxyError::BadGateway));
                }
                Ok(Ok(_)) => answered = true,
                Ok(Err(e)) => {
                    let progress = if answered { Progress::AnswerStarted } else { Progress::Written };
                    return Err(failed(svc, e, reused, progress, "reading the upstream response failed"));
                }
            }
        };
        // The body: read now when small, streamed otherwise.
        let body = match head.framing {
            Framing::Empty => {
                self.release(conn, head.keep_alive);
                ResponseBody::full(Bytes::new())
            }
            Framing::Length(n) if n <= READ_WITH_HEAD => {
                let n = n as usize;
                while conn.buf.len() < n {
                    conn.reserve();
                    let read = tokio::io::AsyncReadExt::read_buf(&mut conn.io, &mut conn.buf);
                    match tokio::time::timeout(svc.read_timeout, read).await {
                        Err(_) => return Err(Failure::Fatal(ProxyError::Timeout)),
                        Ok(Ok(0)) | Ok(Err(_)) => {
                            tracing::warn!(service = %svc.id, "upstream closed the connection in the response body");
                            return Err(Failure::Fatal(ProxyError::BadGateway));
                        }
                        Ok(Ok(_)) => {}
                    }
                }
                let b = conn.buf.split_to(n).freeze();
                self.release(conn, head.keep_alive);
                ResponseBody::full(b)
            }
            framing => ResponseBody::streaming(conn, framing, head.keep_alive, self.idle.clone(), svc.read_timeout),
        };
        let mut resp = http::Response::new(body);
        *resp.status_mut() = head.status;
        *resp.headers_mut() = head.headers;
        Ok(resp)
    }

    /// A connection whose response is fully read goes back to the pool when it can be reused.
    fn release(&self, conn: Conn, keep_alive: bool) {
        if keep_alive && conn.buf.is_empty() {
            self.idle.checkin(conn);
        }
    }
}

/// Streams the client's body upstream, framed as announced in the head. Each write must finish
/// within `timeout` (Kong's `write_timeout` is the longest gap between two writes).
async fn stream_body(
    io: &mut TcpStream,
    body: &mut RequestBody,
    framing: ReqFraming,
    timeout: Duration,
) -> Result<(), ProxyError> {
    let chunked = framing == ReqFraming::Chunked;
    let mut prefix = Vec::with_capacity(20);
    loop {
        let frame = match body.frame().await {
            None => break,
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "reading the client's body failed");
                return Err(e.proxy_error());
            }
        };
        let Ok(data) = frame.into_data() else { continue };
        if data.is_empty() {
            continue;
        }
        let write = async {
            if chunked {
                prefix.clear();
                encode::chunk_prefix(data.len(), &mut prefix);
                io.write_all(&prefix).await?;
                io.write_all(&data).await?;
                io.write_all(b"\r\n").await
            } else {
                io.write_all(&data).await
            }
        };
        write_within(timeout, write).await?;
    }
    if chunked {
        write_within(timeout, io.write_all(b"0\r\n\r\n")).await?;
    }
    Ok(())
}

async fn write_within(timeout: Duration, write: impl Future<Output = io::Result<()>>) -> Result<(), ProxyError> {
    match tokio::time::timeout(timeout, write).await {
        Err(_) => Err(ProxyError::Timeout),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "sending the request body upstream failed");
            Err(ProxyError::BadGateway)
        }
        Ok(Ok(())) => Ok(()),
    }
}

/// An I/O error at `progress`. A pooled connection the upstream had closed is
/// [`Failure::Stale`] (the caller decides whether the request goes again); anything else is a
/// 502, logged with `what`.
fn failed(svc: &ServiceTarget, e: io::Error, reused: bool, progress: Progress, what: &'static str) -> Failure {
    if reused && progress != Progress::AnswerStarted && is_disconnect(&e) {
        return Failure::Stale { progress, error: e };
    }
    tracing::warn!(service = %svc.id, error = %e, "{what}");
    Failure::Fatal(ProxyError::BadGateway)
}

/// Errors meaning the peer had closed the connection.
fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}
