//! Setting token and claim headers on the upstream request and the downstream response.
//!
//! A `*_header` field is either one of Kong's special forms (`authorization:bearer`,
//! `authorization:basic`, `authorization:dpop`), which set `Authorization` with that scheme, or a
//! header name used as it is.

use http::{HeaderMap, HeaderName, HeaderValue};

/// Where a `*_header` field puts its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `Authorization: <scheme> <value>`.
    Authorization(&'static str),
    /// A named header, value as it is.
    Named(HeaderName),
}

impl Target {
    /// Parses a `*_header` value (the schema has already checked it).
    pub fn parse(spec: &str) -> Option<Target> {
        Some(match spec {
            "authorization:bearer" => Target::Authorization("Bearer"),
            "authorization:basic" => Target::Authorization("Basic"),
            "authorization:dpop" => Target::Authorization("DPoP"),
            name => Target::Named(HeaderName::from_bytes(name.as_bytes()).ok()?),
        })
    }

    /// The header name and the full value for `value`. `None` if the value cannot be a header
    /// value (control characters).
    pub fn render(&self, value: &str) -> Option<(HeaderName, HeaderValue)> {
        match self {
            Target::Authorization(scheme) => {
                Some((http::header::AUTHORIZATION, HeaderValue::from_str(&format!("{scheme} {value}")).ok()?))
            }
            Target::Named(name) => Some((name.clone(), HeaderValue::from_str(value).ok()?)),
        }
    }
}

/// Sets (replaces) the header `spec` names to `token`.
pub fn set_token(headers: &mut HeaderMap, spec: &str, token: &str) {
    match Target::parse(spec).and_then(|t| t.render(token)) {
        Some((name, value)) => {
            headers.insert(name, value);
        }
        None => tracing::warn!(header = spec, "token not sent: it cannot be a header value"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_forms_and_names() {
        let mut h = HeaderMap::new();
        set_token(&mut h, "authorization:bearer", "t1");
        assert_eq!(h["authorization"], "Bearer t1");
        set_token(&mut h, "authorization:dpop", "t2");
        assert_eq!(h["authorization"], "DPoP t2");
        set_token(&mut h, "x-access-token", "t3");
        assert_eq!(h["x-access-token"], "t3");
        set_token(&mut h, "x-bad", "a\r\nb");
        assert!(h.get("x-bad").is_none());
    }
}
