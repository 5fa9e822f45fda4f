//! One request's path: route → access phase → upstream → header_filter.

use crate::Proxy;
use crate::forward::{set_forwarded, strip_hop_by_hop};
use crate::respond::ProxyError;
use crate::upstream::BodyKind;
use bytes::Bytes;
use gatehouse_core::plugin::{Ctx, Flow, Step};
use gatehouse_core::router::{RouteTarget, upstream_path};
use http::{HeaderValue, Request, Response, header};
use http_body::Body as _;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The body sent to the client: the upstream's, streamed, or one the proxy or a plugin made.
pub type ClientBody = Either<Incoming, Full<Bytes>>;

/// Bodies up to this size are read fully when the route buffers requests, which makes connect
/// retries possible; larger or unknown-length bodies stream.
const BUFFER_LIMIT: u64 = 1024 * 1024;

fn full(r: Response<Bytes>) -> Response<ClientBody> {
    r.map(|b| Either::Right(Full::new(b)))
}

/// Handles one request. Never fails: every error becomes a Kong-shaped response.
pub async fn handle(
    proxy: Arc<Proxy>,
    req: Request<Incoming>,
    client: SocketAddr,
    local_port: u16,
) -> Response<ClientBody> {
    proxy.stats.total_requests.fetch_add(1, Ordering::Relaxed);
    let snapshot = proxy.snapshot.load_full();
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    let lowered;
    let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
        lowered = host.to_ascii_lowercase();
        lowered.as_str()
    } else {
        host
    };
    let Some(m) = snapshot.router.find(req.method(), host, req.uri().path(), req.headers()) else {
        return full(ProxyError::NoRoute.response());
    };
    let target = m.target.clone();
    let matched_len = m.matched_len;
    let host = host.to_string();
    let consumers = snapshot.consumers.clone();
    drop(snapshot);

    if !target.allows_http {
        return full(ProxyError::HttpsRequired.response());
    }
    let (mut parts, body) = req.into_parts();
    let mut ctx = Ctx::new(client, target.route_id.clone(), target.service.as_ref().map(|s| s.id.clone()), consumers);
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
        if let Flow::Respond(resp) = flow {
            return finish(&target, &mut ctx, full(resp));
        }
    }

    let Some(svc) = target.service.as_ref() else {
        return finish(&target, &mut ctx, full(ProxyError::NoService.response()));
    };
    let original_path = parts.uri.path().to_string();
    let mut path =
        upstream_path(svc.path.as_deref(), &original_path, matched_len, target.strip_path, target.path_handling_v1);
    if let Some(q) = parts.uri.query() {
        path.push('?');
        path.push_str(q);
    }
    let uri =
        http::Uri::builder().scheme(svc.scheme.clone()).authority(svc.authority.clone()).path_and_query(path).build();
    let Ok(uri) = uri else {
        return finish(&target, &mut ctx, full(ProxyError::BadRequest.response()));
    };
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    let client_host = if target.preserve_host && !host.is_empty() { HeaderValue::from_str(&host).ok() } else { None };
    parts.headers.insert(header::HOST, client_host.unwrap_or_else(|| svc.host_header.clone()));
    set_forwarded(&mut parts.headers, client, &host, local_port, &original_path);

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
