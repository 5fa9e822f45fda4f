//! The only place a proxy error becomes a response: Kong's status codes and `{"message"}` bodies.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

/// Why the proxy answered instead of the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// No route matched: 404.
    NoRoute,
    /// The route has no service: 503.
    NoService,
    /// The route only allows HTTPS: 426.
    HttpsRequired,
    /// The upstream host did not resolve: 503.
    NameResolution,
    /// The upstream refused, reset or sent garbage: 502.
    BadGateway,
    /// The upstream did not answer in time: 504.
    Timeout,
    /// The client's request could not be read, or its path is refused: 400.
    BadRequest,
    /// The request path is longer than the gateway accepts: 414.
    UriTooLong,
    /// The request body is larger than `client_max_body_size`, or than `client_body_buffer_size`
    /// when a plugin reads it: 413.
    PayloadTooLarge,
    /// The client sent nothing within `client_body_timeout`: 408.
    RequestTimeout,
    /// The request's body has a transfer coding other than `chunked`: 501.
    NotImplemented,
    /// The memory for request bodies is spoken for (many large bodies at once): 503.
    Overloaded,
    /// The gateway cannot serve the route (a plugin on it could not be built): 500.
    Internal,
}

impl ProxyError {
    /// The status and Kong's message.
    pub fn parts(self) -> (StatusCode, &'static str) {
        match self {
            ProxyError::NoRoute => (StatusCode::NOT_FOUND, "no Route matched with those values"),
            ProxyError::NoService => (StatusCode::SERVICE_UNAVAILABLE, "no Service found with those values"),
            ProxyError::HttpsRequired => (StatusCode::UPGRADE_REQUIRED, "Please use HTTPS protocol"),
            ProxyError::NameResolution => (StatusCode::SERVICE_UNAVAILABLE, "name resolution failed"),
            ProxyError::BadGateway => {
                (StatusCode::BAD_GATEWAY, "An invalid response was received from the upstream server")
            }
            ProxyError::Timeout => (StatusCode::GATEWAY_TIMEOUT, "The upstream server is timing out"),
            ProxyError::BadRequest => (StatusCode::BAD_REQUEST, "Bad request"),
            ProxyError::UriTooLong => (StatusCode::URI_TOO_LONG, "URI too long"),
            // Kong's error_handlers.lua bodies for nginx's own 413 and 408.
            ProxyError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "Payload too large"),
            ProxyError::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "Request timeout"),
            ProxyError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "An unexpected error occurred"),
            ProxyError::NotImplemented => (StatusCode::NOT_IMPLEMENTED, "Not implemented"),
            ProxyError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "Service temporarily unavailable"),
        }
    }

    /// The Kong-shaped response.
    pub fn response(self) -> Response<Bytes> {
        let (status, msg) = self.parts();
        let mut r = json(status, msg);
        if self == ProxyError::HttpsRequired {
            r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            r.headers_mut().insert(header::UPGRADE, HeaderValue::from_static("TLS/1.2, HTTP/1.1"));
        }
        r
    }
}

/// A `{"message": msg}` response.
pub fn json(status: StatusCode, msg: &str) -> Response<Bytes> {
    let body = serde_json::json!({ "message": msg }).to_string();
    let mut r = Response::new(Bytes::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    r
}
