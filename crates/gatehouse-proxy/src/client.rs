//! The client side's bounds: how long a client may take and how much it may send.
//!
//! Time is kept per connection by a watchdog ([`watchdog`]) that reads the connection's phase
//! from [`ConnClock`]: waiting for a first head (`client_header_timeout`), idle between requests
//! (`keepalive_timeout`), reading a head (`client_header_timeout` from its first byte) or serving
//! requests (no deadline: the body has its own between-reads timeout, [`RequestBody`]). hyper's
//! own `header_read_timeout` is not used: it starts when hyper waits for a head, idle time
//! included, so it cannot tell an idle keep-alive connection from a slow head.

use crate::respond::ProxyError;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// What a client may send and how long it may take, decided at start-up (nginx's names).
#[derive(Debug, Clone)]
pub struct ClientLimits {
    /// `client_max_body_size`: the largest request body; `None` is unlimited (nginx's `0`).
    pub max_body_size: Option<u64>,
    /// `client_body_buffer_size`: the most a plugin's body read may buffer. Defaults to 1 MiB.
    pub body_buffer_size: u64,
    /// `client_header_timeout`: a whole request head must arrive within this. Defaults to 60 s.
    pub header_timeout: Duration,
    /// `client_body_timeout`: the longest wait between two reads of a body. Defaults to 60 s.
    pub body_timeout: Duration,
    /// `keepalive_timeout`: how long a connection may stay idle between requests. Defaults to 75 s.
    pub keepalive_timeout: Duration,
    /// `client_max_connections`: open client connections across all proxy threads; past it new
    /// connections are closed at once. Defaults to 16384.
    pub max_connections: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            max_body_size: None,
            body_buffer_size: 1024 * 1024,
            header_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(75),
            max_connections: 16384,
        }
    }
}

/// Why reading the client's body stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// More than `client_max_body_size` (or the buffer limit) arrived.
    #[error("the request body is larger than allowed")]
    TooLarge,
    /// Nothing arrived within `client_body_timeout`.
    #[error("no request body data within client_body_timeout")]
    Timeout,
    /// The client's stream broke.
    #[error("reading the request body failed")]
    Read(#[source] hyper::Error),
}

impl BodyError {
    /// The answer when no response has started yet.
    pub fn proxy_error(&self) -> ProxyError {
        match self {
            BodyError::TooLarge => ProxyError::PayloadTooLarge,
            BodyError::Timeout => ProxyError::RequestTimeout,
            BodyError::Read(_) => ProxyError::BadRequest,
        }
    }
}

/// Bytes of request bodies held in memory at once, shared by every proxy thread. Each body is
/// bounded on its own, but many slow clients each sending just under a bound would add up (16 384
/// connections × 1 MiB); past this budget a body that was to be buffered for a retry streams
/// instead, and one a plugin must read is refused with 503 until memory is free again.
#[derive(Debug)]
pub struct BufferBudget {
    used: AtomicU64,
    max: u64,
}

impl BufferBudget {
    /// A budget of `max` bytes.
    pub fn new(max: u64) -> Arc<BufferBudget> {
        Arc::new(BufferBudget { used: AtomicU64::new(0), max })
    }

    /// The budget for these limits: 64 plugin-sized bodies (64 MiB by default).
    pub fn for_limits(limits: &ClientLimits) -> Arc<BufferBudget> {
        BufferBudget::new(limits.body_buffer_size.saturating_mul(64))
    }

    /// Takes `n` bytes of the budget until the returned guard drops, or `None` when they are not
    /// there.
    pub fn take(self: &Arc<Self>, n: u64) -> Option<BufferHeld> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= self.max)
            })
            .ok()?;
        Some(BufferHeld { budget: self.clone(), n })
    }
}

/// Bytes taken from a [`BufferBudget`], given back on drop.
#[derive(Debug)]
pub struct BufferHeld {
    budget: Arc<BufferBudget>,
    n: u64,
}

impl Drop for BufferHeld {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.n, Ordering::AcqRel);
    }
}

/// The client's request body with its bounds: at most `remaining` more bytes, and a frame within
/// `timeout` of asking for it. Used for every body, buffered or streamed, so no path reads
/// without them.
pub struct RequestBody {
    inner: Incoming,
    remaining: Option<u64>,
    timeout: Duration,
    // Made on the first wait only: most small bodies arrive with their head.
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
    // Where the failure is told to a sender that loses the error (hyper's h2 client turns it into
    // a stream reset); made only when asked for.
    failure: Option<Arc<OnceLock<ProxyError>>>,
}

impl RequestBody {
    /// Wraps `inner` with `limits`' body size and timeout.
    pub fn new(inner: Incoming, limits: &ClientLimits) -> RequestBody {
        RequestBody {
            inner,
            remaining: limits.max_body_size,
            timeout: limits.body_timeout,
            sleep: None,
            armed: false,
            failure: None,
        }
    }

    /// Where the answer for a failed body read is kept, for senders whose error loses it.
    pub fn failure(&mut self) -> Arc<OnceLock<ProxyError>> {
        self.failure.get_or_insert_with(Default::default).clone()
    }

    fn fail(&self, e: BodyError) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Some(f) = &self.failure {
            let _ = f.set(e.proxy_error());
        }
        Poll::Ready(Some(Err(e)))
    }

    /// Reads the whole body, failing with [`BodyError::TooLarge`] past `limit` bytes.
    pub async fn collect_bounded(mut self, limit: u64) -> Result<Bytes, BodyError> {
        // Room is made as bytes come, not for what the client announced.
        let mut buf = BytesMut::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut self).poll_frame(cx)).await {
            let Ok(data) = frame?.into_data() else { continue };
            let total = (buf.len() as u64).saturating_add(data.len() as u64);
            if total > limit {
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
        Ok(buf.freeze())
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.armed = false;
                if let (Some(data), Some(rem)) = (frame.data_ref(), this.remaining.as_mut()) {
                    match rem.checked_sub(data.len() as u64) {
                        Some(r) => *rem = r,
                        None => return this.fail(BodyError::TooLarge),
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => this.fail(BodyError::Read(e)),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                // The wait is timed from the first time nothing was there, not from each poll.
                if !this.armed {
                    let deadline = tokio::time::Instant::now() + this.timeout;
                    match &mut this.sleep {
                        Some(s) => s.as_mut().reset(deadline),
                        None => this.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                    this.armed = true;
                }
                let Some(sleep) = this.sleep.as_mut() else { return Poll::Pending };
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => this.fail(BodyError::Timeout),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// No head has started since the connection went idle.
const NO_HEAD: u64 = u64::MAX;

/// One client connection's phase, shared by its IO, its requests and its watchdog.
pub struct ConnClock {
    start: Instant,
    /// Requests (h1) or streams (h2) being served, their response bodies included.
    active: AtomicUsize,
    /// Milliseconds since `start` when the connection last went idle.
    idle_since: AtomicU64,
    /// Milliseconds since `start` of the first byte read while idle, or [`NO_HEAD`].
    head_since: AtomicU64,
}

impl ConnClock {
    /// A fresh connection: its first head is timed from the accept, as nginx does.
    pub fn new() -> Arc<ConnClock> {
        Arc::new(ConnClock {
            start: Instant::now(),
            active: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NO_HEAD - 1)
    }

    /// A request's head was read: no deadline until it and every other one has been answered.
    pub fn begin(self: &Arc<Self>) -> Active {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(NO_HEAD, Ordering::Release);
        Active(self.clone())
    }

    fn read_some(&self) {
        if self.active.load(Ordering::Acquire) == 0 && self.head_since.load(Ordering::Acquire) == NO_HEAD {
            self.head_since.store(self.now_ms(), Ordering::Release);
        }
    }

    /// When the connection must be closed, if it stays in its current phase.
    fn deadline(&self, limits: &ClientLimits) -> Option<Instant> {
        if self.active.load(Ordering::Acquire) > 0 {
            return None;
        }
        let head = self.head_since.load(Ordering::Acquire);
        let (since, timeout) = if head == NO_HEAD {
            (self.idle_since.load(Ordering::Acquire), limits.keepalive_timeout)
        } else {
            (head, limits.header_timeout)
        };
        // A deadline beyond what Instant can hold is no deadline.
        self.start.checked_add(Duration::from_millis(since))?.checked_add(timeout)
    }
}

/// A request in flight; dropped when its response body is done (or the request is abandoned).
pub struct Active(Arc<ConnClock>);

impl Drop for Active {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle_since.store(self.0.now_ms(), Ordering::Release);
        }
    }
}

/// Resolves when the connection has stayed idle or in a head for longer than allowed.
///
/// Nothing wakes it when the phase changes: a wake-up per request cost the proxy a fifth of its
/// throughput. Instead it sleeps until the current deadline, but never longer than the shorter
/// timeout, and looks again. A deadline that appears while it sleeps (a head started at `h`,
/// due at `h + header_timeout`; idle since `t`, due at `t + keepalive_timeout`) is never earlier
/// than its next look, so connections are still closed on time.
pub async fn watchdog(clock: Arc<ConnClock>, limits: Arc<ClientLimits>) {
    let period = limits.header_timeout.min(limits.keepalive_timeout).max(Duration::from_millis(1));
    loop {
        let now = Instant::now();
        let next = match clock.deadline(&limits) {
            Some(d) if now >= d => return,
            Some(d) => d.min(now + period),
            None => now + period,
        };
        tokio::time::sleep_until(next.into()).await;
    }
}

/// A response body that keeps its request counted as active until it is done.
pub struct Tracked<B> {
    body: B,
    _active: Active,
}

impl<B> Tracked<B> {
    /// `body`, with `active` released when it is dropped.
    pub fn new(body: B, active: Active) -> Self {
        Tracked { body, _active: active }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The client's socket, telling its [`ConnClock`] when bytes arrive between requests.
pub struct ClockedIo<T> {
    io: T,
    clock: Arc<ConnClock>,
}

impl<T> ClockedIo<T> {
    /// `io`, reporting to `clock`.
    pub fn new(io: T, clock: Arc<ConnClock>) -> Self {
        ClockedIo { io, clock }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ClockedIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.read_some();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ClockedIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// One open client connection counted against `client_max_connections`; released on drop.
pub struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// Takes a slot from `open`, or `None` when `max` are taken.
    pub fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok()?;
        Some(Slot(open.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether a plugin may read this body: form or JSON (`application/json`, `application/*+json`),
/// the types Kong's `kong.request.get_body` parses.
pub fn is_form_or_json(content_type: Option<&http::HeaderValue>) -> bool {
    let Some(ct) = content_type.and_then(|v| v.to_str().ok()) else { return false };
    let media = ct.split(';').next().unwrap_or_default().trim();
    let Some((top, sub)) = media.split_once('/') else { return false };
    top.eq_ignore_ascii_case("application")
        && (sub.eq_ignore_ascii_case("x-www-form-urlencoded")
            || sub.eq_ignore_ascii_case("json")
            || sub.len() > 5 && sub.get(sub.len() - 5..).is_some_and(|s| s.eq_ignore_ascii_case("+json")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_budget_is_shared_and_given_back_on_drop() {
        let budget = BufferBudget::new(100);
        let a = budget.take(60).unwrap();
        assert!(budget.take(41).is_none(), "over the budget");
        let b = budget.take(40).unwrap();
        assert!(budget.take(1).is_none());
        drop(a);
        assert!(budget.take(60).is_some());
        drop(b);
        assert!(budget.take(u64::MAX).is_none(), "no overflow");
        assert!(budget.take(100).is_some());
    }
    use http::HeaderValue;

    #[test]
    fn only_form_and_json_bodies_are_for_plugins() {
        let yes = [
            "application/x-www-form-urlencoded",
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/vnd.api+json",
            " application/x-www-form-urlencoded ;charset=utf-8",
        ];
        for ct in yes {
            assert!(is_form_or_json(Some(&HeaderValue::from_static(ct))), "{ct}");
        }
        let no = ["application/octet-stream", "text/plain", "multipart/form-data; boundary=x", "+json", "json", ""];
        for ct in no {
            assert!(!is_form_or_json(Some(&HeaderValue::from_static(ct))), "{ct}");
        }
        assert!(!is_form_or_json(None));
        assert!(!is_form_or_json(Some(&HeaderValue::from_bytes(b"application/\xffjson").unwrap())));
    }

    proptest::proptest! {
        /// Any header bytes: no panic, and only `application/` types are read for plugins.
        #[test]
        fn content_type_check_never_panics_and_admits_only_application_types(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            if let Ok(v) = HeaderValue::from_bytes(&bytes)
                && is_form_or_json(Some(&v))
            {
                let text = v.to_str().unwrap().trim_start().to_ascii_lowercase();
                proptest::prop_assert!(text.starts_with("application/"));
            }
        }
    }

    #[test]
    fn slots_stop_at_the_cap_and_come_back_when_released() {
        let open = Arc::new(AtomicUsize::new(0));
        let a = Slot::take(&open, 2).unwrap();
        let _b = Slot::take(&open, 2).unwrap();
        assert!(Slot::take(&open, 2).is_none());
        drop(a);
        assert!(Slot::take(&open, 2).is_some());
    }

    #[test]
    fn idle_and_head_deadlines_follow_the_phase() {
        let limits = ClientLimits {
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(100),
            ..Default::default()
        };
        let clock = ConnClock::new();
        // A new connection waits for its first head under the header timeout.
        let first = clock.deadline(&limits).unwrap();
        assert!(first <= clock.start + Duration::from_secs(11));
        let active = clock.begin();
        assert!(clock.deadline(&limits).is_none());
        drop(active);
        // Idle between requests: the keep-alive timeout.
        assert!(clock.deadline(&limits).unwrap() >= clock.start + Duration::from_secs(100));
        clock.read_some();
        assert!(clock.deadline(&limits).unwrap() <= clock.start + Duration::from_secs(11));
    }
}
