//! One request's path: route → access phase → upstream → header_filter.

use crate::Proxy;
use crate::client::{BufferHeld, RequestBody, is_form_or_json};
use crate::forward::{ConnInfo, Origin, set_forwarded, strip_hop_by_hop};
use crate::respond::ProxyError;
use crate::upstream::{BodyKind, ResponseBody};
use bytes::Bytes;
use gatehouse_core::path::{PathError, normalize};
use gatehouse_core::plugin::{Ctx, Flow, Step};
use gatehouse_core::router::{RouteTarget, ServiceTarget, upstream_path};
use http::{HeaderValue, Request, Response, Uri, header};
use http_body::Body as _;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The body sent to the client: the upstream's, streamed, or one the proxy or a plugin made.
pub type ClientBody = Either<ResponseBody, Full<Bytes>>;

/// Bodies up to this size are read fully when the route buffers requests, which makes connect
/// retries possible; larger or unknown-length bodies stream.
const BUFFER_LIMIT: u64 = 1024 * 1024;

fn full(r: Response<Bytes>) -> Response<ClientBody> {
    r.map(|b| Either::Right(Full::new(b)))
}

/// Handles one request. Never fails: every error becomes a Kong-shaped response.
pub async fn handle(proxy: Arc<Proxy>, mut req: Request<Incoming>, conn: Arc<ConnInfo>) -> Response<ClientBody> {
    proxy.stats.total_requests.fetch_add(1, Ordering::Relaxed);
    // Route on the normalized path and carry it in the request from here on, so the route,
    // the plugins, `X-Forwarded-Path` and the upstream all see the one path that is served.
    // An already normal path (the common case) is left alone, without a copy.
    match normalized_uri(req.uri()) {
        Ok(None) => {}
        Ok(Some(uri)) => *req.uri_mut() = uri,
        Err(e) => return full(e.response()),
    }
    let snapshot = proxy.snapshot.load_full();
    // The client's Host (a cheap shared copy), lowercased only when it has capitals. Nothing
    // here borrows the request, which is taken apart below.
    let host_value = req.headers().get(header::HOST).cloned();
    let uri_host: String;
    let raw_host = match host_value.as_ref().and_then(|h| h.to_str().ok()) {
        Some(h) => h,
        None => {
            uri_host = req.uri().authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
            &uri_host
        }
    };
    let host: std::borrow::Cow<'_, str> = if raw_host.bytes().any(|b| b.is_ascii_uppercase()) {
        raw_host.to_ascii_lowercase().into()
    } else {
        raw_host.into()
    };
    let Some(m) = snapshot.router.find(req.method(), &host, req.uri().path(), req.headers()) else {
        return full(ProxyError::NoRoute.response());
    };
    let target = m.target.clone();
    let matched_len = m.matched_len;
    let consumers = snapshot.consumers.clone();
    drop(snapshot);

    // Who the client is and whether it came over https, believed only from a trusted proxy.
    let client = conn.request_client(req.headers());
    // Kong's rule: an https-only route takes a request that is https, here or at a trusted proxy.
    if !target.allows_http && !client.https {
        return full(ProxyError::HttpsRequired.response());
    }
    let (mut parts, body) = req.into_parts();
    // hyper decodes `chunked` only; a body under any other coding would reach the upstream still
    // coded but with the coding's header stripped (hop-by-hop). nginx answers 501 too.
    // A request without a body has no coding to look for (one lookup saved per GET).
    if !body.is_end_stream()
        && let Some(te) = parts.headers.get(header::TRANSFER_ENCODING)
        && !te.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked")
    {
        return full(ProxyError::NotImplemented.response());
    }
    // Room for what the proxy and plugins add (six forwarding headers, claim and identity
    // headers), so the map grows once here rather than rehashing at each doubling.
    parts.headers.reserve(16);
    let mut ctx =
        Ctx::new(conn.client, target.route_id.clone(), target.service.as_ref().map(|s| s.id.clone()), consumers);
    ctx.forwarded_ip = client.ip;
    ctx.https = client.https;
    ctx.trusted_proxy = client.trusted;
    ctx.local_port = conn.local_port;
    // `_held` keeps a buffered body's share of the memory budget until the request is done.
    // A request without a body (most of them) skips `read_body`'s future altogether: building
    // and moving it cost two copies of its state per request.
    let (body, for_plugins, _held) = if body.is_end_stream() {
        let for_plugins = target.plugins_need_body && is_form_or_json(parts.headers.get(header::CONTENT_TYPE));
        (BodyKind::Buffered(Bytes::new()), for_plugins, None)
    } else {
        match read_body(&target, &proxy, &parts.headers, body).await {
            Ok(b) => b,
            Err(e) => return full(e.response()),
        }
    };
    if let (BodyKind::Buffered(b), true) = (&body, for_plugins) {
        ctx.body = Some(b.clone());
    }

    // Access phase: each plugin may change the request or answer on its own.
    for plugin in &target.plugins {
        let flow = match plugin.access(&mut ctx, &mut parts) {
            Step::Ready(f) => f,
            Step::Wait(fut) => fut.await,
        };
        match flow {
            Flow::Continue => {}
            Flow::Respond(resp) => return finish(&target, &mut ctx, full(resp)),
            // A plugin that could not be built: its route fails closed.
            Flow::Fail => return finish(&target, &mut ctx, full(ProxyError::Internal.response())),
        }
    }

    let Some(svc) = target.service.as_ref() else {
        return finish(&target, &mut ctx, full(ProxyError::NoService.response()));
    };
    let Some(uri) = upstream_uri(svc, &parts.uri, matched_len, &target) else {
        return finish(&target, &mut ctx, full(ProxyError::BadRequest.response()));
    };
    let original = std::mem::replace(&mut parts.uri, uri);
    parts.version = http::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    let host: &str = &host;
    let client_host = if target.preserve_host && !host.is_empty() {
        match &host_value {
            Some(v) if v.as_bytes() == host.as_bytes() => Some(v.clone()),
            _ => HeaderValue::from_str(host).ok(),
        }
    } else {
        None
    };
    parts.headers.insert(header::HOST, client_host.unwrap_or_else(|| svc.host_header.clone()));
    let path = original.path();
    // Kong's `X-Forwarded-Prefix`: the part of the path the route strips.
    let prefix = if target.strip_path { path.get(..matched_len) } else { None };
    let origin = Origin { host, host_value: host_value.as_ref(), path, prefix };
    set_forwarded(&mut parts.headers, &conn, &client, &origin);

    let body = match (body, ctx.body.take()) {
        // A plugin may have replaced the buffered body.
        (BodyKind::Buffered(_), Some(b)) => BodyKind::Buffered(b),
        (b, _) => b,
    };
    match proxy.clients.send(svc, parts, body).await {
        Ok(resp) => {
            let (mut rparts, rbody) = resp.into_parts();
            strip_hop_by_hop(&mut rparts.headers);
            finish(&target, &mut ctx, Response::from_parts(rparts, Either::Left(rbody)))
        }
        Err(e) => {
            tracing::warn!(route = %target.route_id, service = %svc.id, status = e.parts().0.as_u16(), "upstream error");
            finish(&target, &mut ctx, full(e.response()))
        }
    }
}

/// The request URI with its path normalized (query and authority as sent), or `None` when the
/// path is normal already.
fn normalized_uri(uri: &Uri) -> Result<Option<Uri>, ProxyError> {
    let path = match normalize(uri.path()) {
        Ok(Cow::Borrowed(_)) => return Ok(None),
        Ok(Cow::Owned(p)) => p,
        Err(PathError::TooLong) => return Err(ProxyError::UriTooLong),
        Err(e) => {
            tracing::debug!(error = %e, "request path refused");
            return Err(ProxyError::BadRequest);
        }
    };
    let mut pq = path;
    if let Some(q) = uri.query() {
        pq.push('?');
        pq.push_str(q);
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query =
        Some(http::uri::PathAndQuery::from_maybe_shared(Bytes::from(pq)).map_err(|_| ProxyError::BadRequest)?);
    Uri::from_parts(parts).map(Some).map_err(|_| ProxyError::BadRequest)
}

/// The request URI for the upstream: origin-form (`/path?query`) for plain HTTP, where the
/// request goes out on our own HTTP/1.1 connection; absolute for the pooled HTTPS client, which
/// picks the connection from it.
fn upstream_uri(svc: &ServiceTarget, original: &Uri, matched_len: usize, target: &RouteTarget) -> Option<Uri> {
    let mut path =
        upstream_path(svc.path.as_deref(), original.path(), matched_len, target.strip_path, target.path_handling_v1)?;
    if let Some(q) = original.query() {
        path.push('?');
        path.push_str(q);
    }
    let pq = http::uri::PathAndQuery::from_maybe_shared(Bytes::from(path)).ok()?;
    if svc.scheme == http::uri::Scheme::HTTP {
        return Some(Uri::from(pq));
    }
    Uri::builder().scheme(svc.scheme.clone()).authority(svc.authority.clone()).path_and_query(pq).build().ok()
}

/// Reads or wraps the client's body (one that is not already at its end) within [`ClientLimits`]. A body is buffered for plugins
/// (`needs_body`) only when it is a form or JSON, up to `client_body_buffer_size`; any other
/// type streams untouched and plugins see no body. Returns the body and whether plugins get it.
async fn read_body(
    target: &RouteTarget,
    proxy: &Proxy,
    headers: &http::HeaderMap,
    body: Incoming,
) -> Result<(BodyKind, bool, Option<BufferHeld>), ProxyError> {
    let limits = &proxy.limits;
    let for_plugins = target.plugins_need_body && is_form_or_json(headers.get(header::CONTENT_TYPE));
    let hint = body.size_hint();
    // A Content-Length over a limit is refused before a byte of the body is read.
    if limits.max_body_size.is_some_and(|max| hint.lower() > max) {
        return Err(ProxyError::PayloadTooLarge);
    }
    let body = RequestBody::new(body, limits);
    if for_plugins {
        if hint.lower() > limits.body_buffer_size {
            return Err(ProxyError::PayloadTooLarge);
        }
        let room = hint.upper().unwrap_or(limits.body_buffer_size).min(limits.body_buffer_size);
        let Some(held) = proxy.buffers.take(room) else {
            tracing::warn!(route = %target.route_id, "request body memory budget exhausted; answering 503");
            return Err(ProxyError::Overloaded);
        };
        let bytes = body.collect_bounded(room).await.map_err(|e| e.proxy_error())?;
        return Ok((BodyKind::Buffered(bytes), true, Some(held)));
    }
    if target.request_buffering
        && let Some(n) = hint.upper().filter(|&n| n <= BUFFER_LIMIT)
        && let Some(held) = proxy.buffers.take(n)
    {
        let bytes = body.collect_bounded(n).await.map_err(|e| e.proxy_error())?;
        return Ok((BodyKind::Buffered(bytes), false, Some(held)));
    }
    // Streamed: no retry is possible, but nothing is held.
    Ok((BodyKind::Stream(body), false, None))
}

/// Runs the header_filter phase on the response going to the client.
fn finish(target: &RouteTarget, ctx: &mut Ctx, resp: Response<ClientBody>) -> Response<ClientBody> {
    if target.plugins.is_empty() {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    for plugin in &target.plugins {
        plugin.header_filter(ctx, &mut parts);
    }
    Response::from_parts(parts, body)
}
