//! The Admin API's outer layers: who may write, how much may be sent, and what a panic becomes.
//!
//! Browsers send a form POST to `127.0.0.1:8001` from any page without asking first (a CORS
//! "simple" request), so every web page open on the operator's machine can reach the Admin API.
//! Writes from a page of another origin are refused here, before any handler runs; Kong answers
//! them. Tools that are not browsers (curl, decK, scripts) send neither `Origin` nor
//! `Sec-Fetch-Site` and pass.

use crate::error::AdminError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

/// The limits and trusted origins of one Admin API.
#[derive(Debug, Clone)]
pub struct Guard {
    /// Origins (`https://gui.example.com`) of admin GUIs allowed to write and to read answers
    /// from a browser. Defaults to none.
    pub allowed_origins: Vec<String>,
    /// Largest request body, in bytes. Defaults to Kong's `nginx_admin_client_max_body_size`,
    /// 10 MiB ([`crate::body::DEFAULT_MAX_BODY`]).
    pub max_body: usize,
    /// The longest wait for a request body to arrive whole (nginx's `client_body_timeout`
    /// applies to every server, the Admin API's included). Defaults to 60 s.
    pub body_timeout: std::time::Duration,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            allowed_origins: Vec::new(),
            max_body: crate::body::DEFAULT_MAX_BODY,
            body_timeout: std::time::Duration::from_secs(60),
        }
    }
}

/// The body limit in force for a request, for the handlers that read a body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub usize, pub std::time::Duration);

/// Why a configured origin was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum OriginError {
    /// Not `http://` or `https://` followed by a host.
    #[error("invalid origin '{0}': expected scheme://host[:port], as http://localhost:8002 or https://gui.example.com")]
    Syntax(String),
    /// A wildcard would let every page write; list the GUIs instead.
    #[error("invalid origin '{0}': wildcards are not allowed, list each admin GUI origin")]
    Wildcard(String),
}

/// Normalizes an origin the way browsers send it: lowercase, no trailing slash, no default port.
pub fn parse_origin(text: &str) -> Result<String, OriginError> {
    let t = text.trim().trim_end_matches('/').to_ascii_lowercase();
    let syntax = || OriginError::Syntax(text.to_string());
    if t.contains('*') {
        return Err(OriginError::Wildcard(text.to_string()));
    }
    let (scheme, authority) = t.split_once("://").ok_or_else(syntax)?;
    let default_port = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return Err(syntax()),
    };
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return Err(syntax());
    }
    let host = authority.strip_suffix(default_port).unwrap_or(authority);
    if let Some((_, port)) = host.rsplit_once(':').filter(|_| !host.ends_with(']'))
        && port.parse::<u16>().is_err()
    {
        return Err(syntax());
    }
    Ok(format!("{scheme}://{host}"))
}

impl Guard {
    fn allows(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether `origin` is the Admin API's own: the scheme and the `Host` the browser addressed. A
/// page of another site cannot choose the `Host` of its request, only its `Origin` is its own.
fn same_origin(headers: &HeaderMap, origin: &str) -> bool {
    let Some(host) = header(headers, &header::HOST) else { return false };
    ["http://", "https://"].iter().any(|s| {
        origin.len() == s.len() + host.len()
            && origin[..s.len()].eq_ignore_ascii_case(s)
            && origin[s.len()..].eq_ignore_ascii_case(host)
    })
}

const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// The browser's word that the request comes from a page of another site.
fn cross_site(headers: &HeaderMap) -> bool {
    matches!(header(headers, &SEC_FETCH_SITE), Some("cross-site" | "same-site"))
}

/// Whether a page sent the request (not a typed URL, not a tool): browsers mark those.
fn from_a_page(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN) || header(headers, &SEC_FETCH_SITE).is_some_and(|s| s != "none")
}

/// Whether the `Host` is an address or `localhost`. A page that rebinds its own DNS name to
/// 127.0.0.1 is "same-origin" with the Admin API in the browser's eyes, but its requests carry
/// its own name as `Host`.
fn host_is_an_address(headers: &HeaderMap) -> bool {
    let Some(host) = header(headers, &header::HOST) else { return false };
    let name = match host.strip_prefix('[') {
        Some(v6) => return v6.split_once(']').is_some_and(|(ip, _)| ip.parse::<std::net::Ipv6Addr>().is_ok()),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

const ALLOWED_METHODS: &str = "GET, HEAD, PUT, PATCH, POST, DELETE, OPTIONS";

fn forbidden_host() -> Response {
    AdminError::Forbidden(
        "browser pages may reach the Admin API only by address or localhost, or from admin_allowed_origins",
    )
    .into_response()
}

fn forbidden() -> Response {
    AdminError::Forbidden("cross-origin writes to the Admin API are not allowed").into_response()
}

/// Answers CORS for allowed origins only, refuses writes from other origins, and bounds bodies.
pub(crate) async fn origin_check(State(guard): State<Arc<Guard>>, mut req: Request, next: Next) -> Response {
    req.extensions_mut().insert(BodyLimit(guard.max_body, guard.body_timeout));
    let headers = req.headers();
    let origin = header(headers, &header::ORIGIN).map(str::to_string);
    let allowed = origin.as_deref().is_some_and(|o| guard.allows(o));
    let method = req.method().clone();
    if method == Method::OPTIONS && origin.is_some() && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        if !allowed {
            return forbidden();
        }
        let mut resp = StatusCode::NO_CONTENT.into_response();
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOWED_METHODS));
        if let Some(asked) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
        }
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("3600"));
        grant(h, origin.as_deref());
        return resp;
    }
    if !allowed && from_a_page(headers) && !host_is_an_address(headers) {
        tracing::warn!(%method, host = header(headers, &header::HOST).unwrap_or(""), path = req.uri().path(),
            "refused a page's Admin API request addressed by a name (DNS rebinding?)");
        return forbidden_host();
    }
    let safe = matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && !allowed {
        let foreign_origin = origin.as_deref().is_some_and(|o| !same_origin(headers, o));
        if cross_site(headers) || foreign_origin {
            tracing::warn!(%method, origin = origin.as_deref().unwrap_or(""), path = req.uri().path(),
                "refused a cross-origin Admin API write");
            return forbidden();
        }
    }
    let mut resp = next.run(req).await;
    // The handlers set no CORS header; only an allowed origin gets one, so no other page can read.
    if allowed {
        grant(resp.headers_mut(), origin.as_deref());
    }
    resp
}

fn grant(h: &mut HeaderMap, origin: Option<&str>) {
    if let Some(v) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// Turns a panic in a handler into Kong's 500 for that request alone, and logs it.
pub(crate) async fn catch_panic(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    match AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(resp) => resp,
        Err(payload) => {
            let detail = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(%method, path, panic = detail, "an Admin API handler panicked");
            AdminError::Internal.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    async fn boom() -> &'static str {
        panic!("a handler bug")
    }

    fn app(guard: Guard) -> Router {
        let r = Router::new()
            .route("/boom", get(boom))
            .route("/services", post(|| async { "written" }).get(|| async { "listed" }));
        crate::layers(r, guard)
    }

    async fn send(app: Router, req: http::Request<Body>) -> (u16, HeaderMap, String) {
        let resp = app.oneshot(req).await.expect("infallible");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = http_body_util::BodyExt::collect(resp.into_body()).await.expect("body").to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    fn req(method: &str, path: &str, headers: &[(&str, &str)]) -> http::Request<Body> {
        let mut b = http::Request::builder().method(method).uri(path).header("host", "127.0.0.1:8001");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Body::empty()).expect("request")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_kongs_500_and_the_router_keeps_serving() {
        let app = app(Guard::default());
        let (st, _, body) = send(app.clone(), req("GET", "/boom", &[])).await;
        assert_eq!((st, body.as_str()), (500, r#"{"message":"An unexpected error occurred"}"#));
        let (st, _, body) = send(app, req("GET", "/services", &[])).await;
        assert_eq!((st, body.as_str()), (200, "listed"));
    }

    #[tokio::test]
    async fn writes_from_other_origins_are_refused_and_tools_pass() {
        let guard = Guard { allowed_origins: vec!["https://gui.example.com".into()], ..Guard::default() };
        let app = app(guard);
        let refused = r#"{"message":"cross-origin writes to the Admin API are not allowed"}"#;
        for h in [
            &[("origin", "https://evil.example")][..],
            &[("sec-fetch-site", "cross-site")],
            &[("sec-fetch-site", "same-site"), ("origin", "http://127.0.0.1:8001")],
            &[("origin", "null")],
            &[("origin", "http://127.0.0.1:8002")],
        ] {
            let (st, _, body) = send(app.clone(), req("POST", "/services", h)).await;
            assert_eq!((st, body.as_str()), (403, refused), "{h:?}");
        }
        for h in [
            &[][..],
            &[("origin", "http://127.0.0.1:8001"), ("sec-fetch-site", "same-origin")],
            &[("sec-fetch-site", "none")],
            &[("origin", "https://gui.example.com"), ("sec-fetch-site", "cross-site")],
        ] {
            let (st, _, body) = send(app.clone(), req("POST", "/services", h)).await;
            assert_eq!((st, body.as_str()), (200, "written"), "{h:?}");
        }
        // Reads answer, but only an allowed origin is told it may read the answer.
        let (st, h, _) = send(app.clone(), req("GET", "/services", &[("origin", "https://evil.example")])).await;
        assert_eq!((st, h.get("access-control-allow-origin")), (200, None));
        let (_, h, _) = send(app.clone(), req("GET", "/services", &[("origin", "https://gui.example.com")])).await;
        assert_eq!(h.get("access-control-allow-origin").map(|v| v.as_bytes()), Some(&b"https://gui.example.com"[..]));
    }

    #[tokio::test]
    async fn pages_that_address_the_admin_api_by_a_name_are_refused() {
        let app = app(Guard::default());
        let named = |method, site, origin: Option<&str>, host| {
            let mut b = http::Request::builder().method(method).uri("/services").header("host", host);
            if let Some(s) = site {
                b = b.header("sec-fetch-site", s);
            }
            if let Some(o) = origin {
                b = b.header("origin", o);
            }
            b.body(Body::empty()).expect("request")
        };
        // A rebound name: the browser calls it same-origin.
        let o = Some("http://evil.example:8001");
        let (st, _, _) = send(app.clone(), named("POST", Some("same-origin"), o, "evil.example:8001")).await;
        assert_eq!(st, 403);
        let (st, _, _) = send(app.clone(), named("GET", Some("same-origin"), None, "evil.example:8001")).await;
        assert_eq!(st, 403);
        // Addresses and localhost, typed URLs, and tools pass.
        for (site, host) in [
            (Some("same-origin"), "localhost:8001"),
            (Some("same-origin"), "[::1]:8001"),
            (Some("none"), "admin.internal:8001"),
            (None, "admin.internal:8001"),
        ] {
            let (st, _, _) = send(app.clone(), named("GET", site, None, host)).await;
            assert_eq!(st, 200, "{site:?} {host}");
        }
        let own = Some("http://localhost:8001");
        let (st, _, _) = send(app, named("POST", Some("same-origin"), own, "localhost:8001")).await;
        assert_eq!(st, 200);
    }

    #[tokio::test]
    async fn preflights_are_answered_for_allowed_origins_only() {
        let guard = Guard { allowed_origins: vec!["https://gui.example.com".into()], ..Guard::default() };
        let app = app(guard);
        let ask = |origin| {
            req(
                "OPTIONS",
                "/services",
                &[
                    ("origin", origin),
                    ("access-control-request-method", "POST"),
                    ("access-control-request-headers", "content-type"),
                ],
            )
        };
        let (st, h, _) = send(app.clone(), ask("https://gui.example.com")).await;
        assert_eq!(st, 204);
        assert_eq!(h.get("access-control-allow-origin").map(|v| v.as_bytes()), Some(&b"https://gui.example.com"[..]));
        assert_eq!(h.get("access-control-allow-headers").map(|v| v.as_bytes()), Some(&b"content-type"[..]));
        let (st, h, _) = send(app, ask("https://evil.example")).await;
        assert_eq!((st, h.get("access-control-allow-origin")), (403, None));
    }

    #[test]
    fn origins_are_normalized_and_hostile_ones_refused() {
        assert_eq!(parse_origin("HTTPS://Gui.Example.com/").as_deref(), Ok("https://gui.example.com"));
        assert_eq!(parse_origin("https://gui.example.com:443").as_deref(), Ok("https://gui.example.com"));
        assert_eq!(parse_origin("http://localhost:8002").as_deref(), Ok("http://localhost:8002"));
        assert_eq!(parse_origin("http://[::1]:8002").as_deref(), Ok("http://[::1]:8002"));
        assert!(matches!(parse_origin("*"), Err(OriginError::Wildcard(_))));
        assert!(matches!(parse_origin("https://*.example.com"), Err(OriginError::Wildcard(_))));
        for bad in [
            "",
            "null",
            "gui.example.com",
            "ftp://x",
            "https://",
            "https://x/path",
            "https://u@x",
            "http://x:99999",
            "http://x:y",
        ] {
            assert!(matches!(parse_origin(bad), Err(OriginError::Syntax(_))), "{bad:?}");
        }
    }
}
