//! The accept loop and the routing of one request: count it, read its body, apply the delay and
//! failure knobs, then hand it to its endpoint.

use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use tokio::net::TcpListener;

use super::knobs::Endpoint;
use super::state::Idp;
use super::web::{OAuthError, Req, Resp, method_not_allowed};
use super::{authorize, dev, discovery, introspect, logout, mint, par, token, userinfo};

/// The largest request body read; OAuth requests are small.
const MAX_BODY: usize = 1024 * 1024;

/// Serves until `shutdown` completes, then lets open connections finish.
pub(crate) async fn serve(
    listener: TcpListener,
    idp: Arc<Idp>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    crate::accept::serve("idp", listener, shutdown, move |_| {
        let idp = Arc::clone(&idp);
        move |req| handle(Arc::clone(&idp), req)
    })
    .await
}

async fn handle(idp: Arc<Idp>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let (parts, body) = req.into_parts();
    let path = idp.route(parts.uri.path()).to_owned();
    let endpoint = Endpoint::for_path(&path);
    // Counted before anything can fail, so tests see every request that reached the provider.
    if let Some(e) = endpoint {
        idp.calls.hit(e);
    }
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let status =
                if e.is::<LengthLimitError>() { StatusCode::PAYLOAD_TOO_LARGE } else { StatusCode::BAD_REQUEST };
            return Ok(OAuthError::new(status, "invalid_request", "cannot read the request body").response());
        }
    };
    let req = Req { parts, body };
    if let Some(e) = endpoint {
        if e == Endpoint::Token {
            let grant_type = req.form().ok().and_then(|p| p.get("grant_type").map(str::to_owned));
            idp.calls.hit_grant(grant_type.as_deref());
        }
        if e == Endpoint::Revoke {
            let hint = req.form().ok().and_then(|p| p.get("token_type_hint").map(str::to_owned));
            idp.calls.hit_revoke_hint(hint.as_deref());
        }
        // The lock is released before sleeping.
        let delay = idp.knobs().delay(e);
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let failure = idp.knobs().take_fail(e);
        if let Some(status) = failure {
            return Ok(dev::injected(status));
        }
    }
    let resp = route(&idp, &path, &req).await;
    tracing::debug!(method = %req.parts.method, path, status = resp.status().as_u16(), "idp: request");
    Ok(resp)
}

async fn route(idp: &Idp, path: &str, req: &Req) -> Resp {
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    let post = req.method() == Method::POST;
    let result = match path {
        "/.well-known/openid-configuration" if get => Ok(discovery::discovery(idp)),
        "/jwks" if get => Ok(discovery::jwks(idp)),
        "/.well-known/openid-configuration" | "/jwks" => Ok(method_not_allowed("GET, HEAD")),
        "/token" if post => token::token(idp, req),
        "/introspect" if post => introspect::introspect(idp, req),
        "/revoke" if post => introspect::revoke(idp, req),
        "/par" if post => par::par(idp, req),
        "/token" | "/introspect" | "/revoke" | "/par" => Ok(method_not_allowed("POST")),
        "/userinfo" if get || post => userinfo::userinfo(idp, req),
        "/authorize" if get || post => Ok(authorize::authorize(idp, req)),
        "/logout" if get || post => Ok(logout::logout(idp, req)),
        "/userinfo" | "/authorize" | "/logout" => Ok(method_not_allowed("GET, POST")),
        "/_dev/calls" if get => Ok(dev::calls(idp)),
        "/_dev/reset" if post => Ok(dev::reset(idp)),
        "/_dev/rotate" if post => dev::rotate(idp, req).await,
        "/_dev/retire" if post => dev::retire(idp, req),
        "/_dev/fail" if post => dev::fail(idp, req),
        "/_dev/delay" if post => dev::delay(idp, req),
        "/_dev/mint" if post => mint::mint(idp, req).await,
        "/_dev/clients" if post => dev::register_client(idp, req),
        "/_dev/override" if post => dev::override_answers(idp, req),
        "/_dev/next" if post => dev::next(idp, req),
        "/_dev/sso" if post => dev::sso(idp, req),
        "/_dev/calls" => Ok(method_not_allowed("GET")),
        "/_dev/reset" | "/_dev/rotate" | "/_dev/retire" | "/_dev/fail" | "/_dev/delay" | "/_dev/mint"
        | "/_dev/clients" | "/_dev/override" | "/_dev/next" | "/_dev/sso" => Ok(method_not_allowed("POST")),
        _ => Err(OAuthError::not_found()),
    };
    result.unwrap_or_else(OAuthError::response)
}
