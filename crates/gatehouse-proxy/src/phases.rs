//! One request's path: route → access phase → upstream → header_filter.

use crate::Proxy;
use crate::forward::{ConnInfo, set_forwarded, strip_hop_by_hop};
use crate::respond::ProxyError;
use crate::upstream::{BodyKind, ResponseBody};
use bytes::Bytes;
use gatehouse_core::plugin::{Ctx, Flow, Step};
use gatehouse_core::router::{RouteTarget, ServiceTarget, upstream_path};
use http::{HeaderValue, Request, Response, Uri, header};
use http_body::Body as _;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
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
pub async fn handle(proxy: Arc<Proxy>, req: Request<Incoming>, conn: Arc<ConnInfo>) -> Response<ClientBody> {
    proxy.stats.total_requests.fetch_add(1, Ordering::Relaxed);
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

    if !target.allows_http {
        return full(ProxyError::HttpsRequired.response());
    }
    let (mut parts, body) = req.into_parts();
    // Room for what the proxy and plugins add (six forwarding headers, claim and identity
    // headers), so the map grows once here rather than rehashing at each doubling.
    parts.headers.reserve(16);
    let mut ctx =
        Ctx::new(conn.client, target.route_id.clone(), target.service.as_ref().map(|s| s.id.clone()), consumers);
    let body = match read_body(&target, body).await {
        Ok(b) => b,
        Err(e) => return full(e.response()),
    };
    if let BodyKind::Buffered(b) = &body {
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
    set_forwarded(&mut parts.headers, &conn, host, host_value.as_ref(), original.path());

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

/// The request URI for the upstream: origin-form (`/path?query`) for plain HTTP, where the
/// request goes out on our own HTTP/1.1 connection; absolute for the pooled HTTPS client, which
/// picks the connection from it.
fn upstream_uri(svc: &ServiceTarget, original: &Uri, matched_len: usize, target: &RouteTarget) -> Option<Uri> {
    let mut path =
        upstream_path(svc.path.as_deref(), original.path(), matched_len, target.strip_path, target.path_handling_v1);
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

async fn read_body(target: &RouteTarget, body: Incoming) -> Result<BodyKind, ProxyError> {
    if body.is_end_stream() {
        return Ok(BodyKind::Buffered(Bytes::new()));
    }
    let small = body.size_hint().upper().is_some_and(|n| n <= BUFFER_LIMIT);
    if target.plugins_need_body || (target.request_buffering && small) {
        return match body.collect().await {
            Ok(c) => Ok(BodyKind::Buffered(c.to_bytes())),
            Err(_) => Err(ProxyError::BadRequest),
        };
    }
    Ok(BodyKind::Stream(body))
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
