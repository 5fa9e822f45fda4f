//! The HTTP toolkit the endpoints share: a buffered request, parameter parsing, the answers
//! (JSON, JWT, HTML, redirects) and OAuth error bodies (RFC 6749 section 5.2).

use bytes::Bytes;
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, HeaderName, LOCATION, PRAGMA, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Every answer is a complete buffer: nothing the provider sends is large.
pub(crate) type Resp = Response<Full<Bytes>>;

/// A request with its body read.
pub(crate) struct Req {
    pub parts: Parts,
    pub body: Bytes,
}

impl Req {
    pub fn method(&self) -> &Method {
        &self.parts.method
    }

    /// A header as text; `None` when absent or not visible ASCII.
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The query string parameters.
    pub fn query(&self) -> Result<Params, OAuthError> {
        Params::parse(self.parts.uri.query().unwrap_or_default().as_bytes())
    }

    /// The form body. Another content type is refused, since OAuth endpoints take forms only.
    pub fn form(&self) -> Result<Params, OAuthError> {
        if self.body.is_empty() {
            return Ok(Params::default());
        }
        let media_type = self.header(CONTENT_TYPE).map(|ct| ct.split(';').next().unwrap_or_default().trim());
        match media_type {
            Some(m) if m.eq_ignore_ascii_case("application/x-www-form-urlencoded") => Params::parse(&self.body),
            _ => Err(OAuthError::invalid_request("the body must be application/x-www-form-urlencoded")),
        }
    }

    /// The parameters of a GET (query) or POST (form) request, for endpoints that take both.
    pub fn params(&self) -> Result<Params, OAuthError> {
        if self.method() == Method::POST { self.form() } else { self.query() }
    }

    /// The JSON body of a `/_dev/` call; an empty body is `T::default()`.
    pub fn json<T: DeserializeOwned + Default>(&self) -> Result<T, OAuthError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(T::default());
        }
        serde_json::from_slice(&self.body).map_err(|e| OAuthError::invalid_request(format!("invalid JSON body: {e}")))
    }

    /// The values of every cookie named `name` (browsers send one per matching path).
    pub fn cookies(&self, name: &str) -> Vec<&str> {
        self.parts
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.trim_matches('"'))
            .collect()
    }

    /// Whether the `Accept` header names `media_type` (parameters and q-values ignored).
    pub fn accepts(&self, media_type: &str) -> bool {
        self.parts.headers.get_all(ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| {
            v.split(',').any(|item| item.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case(media_type)))
        })
    }
}

/// Form or query parameters. RFC 6749 section 3.1: an empty value counts as absent, and a
/// parameter must not be repeated.
#[derive(Clone, Debug, Default)]
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(bytes: &[u8]) -> Result<Params, OAuthError> {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(bytes) {
            if v.is_empty() {
                continue;
            }
            if map.insert(k.clone().into_owned(), v.into_owned()).is_some() {
                return Err(OAuthError::invalid_request(format!("parameter '{k}' is repeated")));
            }
        }
        Ok(Params(map))
    }

    /// Parameters from pairs known to be unique (a stored request); empty values are dropped.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Params {
        Params(pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Every parameter, sorted by name so what is built from them is stable.
    pub fn sorted(&self) -> Vec<(&str, &str)> {
        let mut all: Vec<(&str, &str)> = self.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.sort_unstable();
        all
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn remove(&mut self, name: &str) {
        self.0.remove(name);
    }

    pub fn insert(&mut self, name: &str, value: &str) {
        self.0.insert(name.to_owned(), value.to_owned());
    }

    /// A parameter that must be present.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| OAuthError::invalid_request(format!("missing parameter '{name}'")))
    }
}

/// An OAuth error answer.
#[derive(Debug)]
pub(crate) struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// The `WWW-Authenticate` value, for 401 answers.
    pub challenge: Option<String>,
}

/// The realm named in challenges.
const REALM: &str = "gatehouse-dev-idp";

impl OAuthError {
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError { status, error, description: description.into(), challenge: None }
    }

    pub fn invalid_request(d: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }

    /// RFC 6749 section 5.2: 401 with a challenge, as the client may have used HTTP Basic.
    pub fn invalid_client(d: impl Into<String>) -> OAuthError {
        let mut e = OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", d);
        e.challenge = Some(format!("Basic realm=\"{REALM}\""));
        e
    }

    pub fn invalid_grant(d: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }

    pub fn unauthorized_client(d: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "unauthorized_client", d)
    }

    pub fn invalid_scope(d: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_scope", d)
    }

    /// RFC 6750 section 3.1: a bearer token that is missing (no error code) or bad.
    pub fn invalid_token(d: impl Into<String>) -> OAuthError {
        let d = d.into();
        let mut e = OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_token", d.clone());
        e.challenge = Some(format!(
            "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
            d.replace(['"', '\\'], "'")
        ));
        e
    }

    pub fn server_error(d: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", d)
    }

    pub fn not_found() -> OAuthError {
        OAuthError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
    }

    pub fn response(self) -> Resp {
        let mut resp = json(self.status, &json!({ "error": self.error, "error_description": self.description }));
        if let Some(challenge) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().insert(WWW_AUTHENTICATE, challenge);
        }
        resp
    }
}

/// A `405` naming the allowed methods.
pub(crate) fn method_not_allowed(allow: &'static str) -> Resp {
    let mut resp = OAuthError::new(StatusCode::METHOD_NOT_ALLOWED, "invalid_request", "method not allowed").response();
    resp.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static(allow));
    resp
}

fn with_body(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // RFC 6749 section 5.1 asks this of token answers; nothing else here is worth caching either.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// A JSON answer.
pub(crate) fn json(status: StatusCode, body: &Value) -> Resp {
    with_body(status, "application/json", body.to_string())
}

/// A signed JWT answer (`application/jwt` or `application/token-introspection+jwt`).
pub(crate) fn jwt(content_type: &'static str, token: String) -> Resp {
    with_body(StatusCode::OK, content_type, token)
}

/// An HTML page.
pub(crate) fn html(status: StatusCode, body: String) -> Resp {
    with_body(status, "text/html; charset=utf-8", body)
}

/// A `302 Found` to `location`; `None` when it cannot be a header value.
pub(crate) fn redirect(location: &str) -> Option<Resp> {
    let value = HeaderValue::from_str(location).ok()?;
    let mut resp = with_body(StatusCode::FOUND, "text/plain; charset=utf-8", Bytes::new());
    resp.headers_mut().insert(LOCATION, value);
    Some(resp)
}

/// `params` form-encoded.
pub(crate) fn encode<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        query.append_pair(k.as_ref(), v.as_ref());
    }
    query.finish()
}

/// `uri` with `params` added to its query string.
pub(crate) fn with_query<K: AsRef<str>, V: AsRef<str>>(uri: &str, params: &[(K, V)]) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", encode(params))
}
