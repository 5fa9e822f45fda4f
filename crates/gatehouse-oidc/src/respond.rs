//! The plugin's failure answers, shaped as Kong's: `{"message": ...}` bodies, and RFC 6750
//! `WWW-Authenticate` challenges on 401 and 403.

use crate::provider::calls::GrantError;
use crate::tokens::TokenError;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use std::borrow::Cow;

/// Why the plugin refuses a request.
#[derive(Debug, Clone)]
pub enum Failure {
    /// 401: no valid credentials. `description` goes into `error_description` (fixed texts only,
    /// never a client-supplied value); `reason` is for the log and `display_errors`.
    Unauthorized {
        /// The RFC 6750 error description, if one is useful. Fixed texts only.
        description: Option<Cow<'static, str>>,
        /// What went wrong, for logs.
        reason: String,
    },
    /// 403: authenticated, but not allowed (required claims, no consumer).
    Forbidden {
        /// What went wrong, for logs.
        reason: String,
    },
    /// The identity provider could not be reached or gave no usable answer.
    Idp {
        /// What went wrong, for logs.
        reason: String,
    },
    /// A configuration problem discovered at request time (500).
    Unexpected {
        /// What went wrong, for logs.
        reason: String,
    },
}

impl Failure {
    /// A 401 with a reason for the log.
    pub fn unauthorized(reason: impl Into<String>) -> Failure {
        Failure::Unauthorized { description: None, reason: reason.into() }
    }

    /// A 401 with a fixed `error_description`.
    pub fn unauthorized_with(description: &'static str, reason: impl Into<String>) -> Failure {
        Failure::Unauthorized { description: Some(Cow::Borrowed(description)), reason: reason.into() }
    }

    /// Kong's 401 for an expired access token.
    pub fn expired(reason: impl Into<String>) -> Failure {
        Failure::unauthorized_with("The access token expired", reason)
    }

    /// A token that failed verification: 401, or 502 when the keys could not be loaded.
    pub fn of_token(e: TokenError) -> Failure {
        match e {
            TokenError::Idp(e) => Failure::Idp { reason: e.to_string() },
            e if e.is_expired() => Failure::expired("access token expired"),
            e => Failure::Unauthorized { description: Some(Cow::Owned(e.to_string())), reason: e.to_string() },
        }
    }

    /// A failed IdP call for `what`: 401 when the IdP refused, 502 when it could not answer,
    /// 500 when our client config cannot authenticate.
    pub fn of_grant(what: &str, e: GrantError) -> Failure {
        match e {
            GrantError::Refused { status, error, description } => Failure::unauthorized(format!(
                "{what}: identity provider refused ({status} {error}{})",
                description.map(|d| format!(": {d}")).unwrap_or_default()
            )),
            GrantError::Idp(e) => Failure::Idp { reason: e.to_string() },
            GrantError::ClientAuth(e) => Failure::Unexpected { reason: e.to_string() },
            GrantError::Rejected(r) => Failure::of_refusal(r),
        }
    }

    /// The 401 for an answer or token the spec checks refused, with its fixed description.
    pub fn of_refusal(r: crate::claims::Refusal) -> Failure {
        Failure::Unauthorized { description: Some(Cow::Borrowed(r.description())), reason: r.to_string() }
    }

    /// Whether Kong's `anonymous` fallback applies (every 401 and 403).
    pub fn allows_anonymous(&self) -> bool {
        matches!(self, Failure::Unauthorized { .. } | Failure::Forbidden { .. })
    }

    /// The reason, for logs.
    pub fn reason(&self) -> &str {
        match self {
            Failure::Unauthorized { reason, .. }
            | Failure::Forbidden { reason }
            | Failure::Idp { reason }
            | Failure::Unexpected { reason } => reason,
        }
    }
}

/// What shapes a failure answer: the plugin's `*_error_message`, `display_errors`,
/// `expose_error_code`, and the realm (the issuer's host).
#[derive(Debug, Clone)]
pub struct Responder {
    /// `unauthorized_error_message`.
    pub unauthorized_message: String,
    /// `forbidden_error_message`.
    pub forbidden_message: String,
    /// `display_errors`.
    pub display_errors: bool,
    /// `expose_error_code`.
    pub expose_error_code: bool,
    /// `realm="..."`.
    pub realm: String,
}

impl Responder {
    /// The response for `failure`.
    pub fn respond(&self, failure: &Failure) -> Response<Bytes> {
        let (status, message, error, description) = match failure {
            Failure::Unauthorized { description, .. } => (
                StatusCode::UNAUTHORIZED,
                self.unauthorized_message.as_str(),
                Some("invalid_token"),
                description.as_deref(),
            ),
            Failure::Forbidden { .. } => {
                (StatusCode::FORBIDDEN, self.forbidden_message.as_str(), Some("insufficient_scope"), None)
            }
            Failure::Idp { .. } => (StatusCode::BAD_GATEWAY, "The identity provider is unavailable", None, None),
            Failure::Unexpected { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "An unexpected error occurred", None, None)
            }
        };
        let message =
            if self.display_errors { format!("{message} ({})", failure.reason()) } else { message.to_string() };
        let body = serde_json::to_vec(&serde_json::json!({ "message": message })).unwrap_or_default();
        let mut resp = Response::new(Bytes::from(body));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
        if let Some(error) = error {
            let mut challenge = format!("Bearer realm=\"{}\"", self.realm);
            if self.expose_error_code {
                challenge.push_str(&format!(", error=\"{error}\""));
                if let Some(d) = description {
                    challenge.push_str(&format!(", error_description=\"{d}\""));
                }
            }
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                h.insert(header::WWW_AUTHENTICATE, v);
            }
        }
        resp
    }
}

/// A `302` to `uri` (the `*_redirect_uri` settings), instead of an error body.
pub fn redirect(uri: &str) -> Response<Bytes> {
    let mut resp = Response::new(Bytes::new());
    *resp.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(uri) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The realm for an issuer URL: its host (Kong's rule), or `gatehouse`.
pub fn realm_of(issuer: &str) -> String {
    issuer
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_string))
        .filter(|h| h.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'))
        .unwrap_or_else(|| "gatehouse".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn responder() -> Responder {
        Responder {
            unauthorized_message: "Unauthorized".into(),
            forbidden_message: "Forbidden".into(),
            display_errors: false,
            expose_error_code: true,
            realm: realm_of("https://idp.example:8443/realms/x"),
        }
    }

    #[test]
    fn unauthorized_has_the_bearer_challenge() {
        let r = responder().respond(&Failure::Unauthorized {
            description: Some("The access token expired".into()),
            reason: "exp".into(),
        });
        assert_eq!(r.status(), 401);
        assert_eq!(r.body().as_ref(), br#"{"message":"Unauthorized"}"#);
        assert_eq!(
            r.headers()["www-authenticate"],
            r#"Bearer realm="idp.example", error="invalid_token", error_description="The access token expired""#
        );
    }

    #[test]
    fn forbidden_and_display_errors_and_no_error_code() {
        let mut resp = responder();
        resp.display_errors = true;
        resp.expose_error_code = false;
        let r = resp.respond(&Failure::Forbidden { reason: "required scopes were not found [ admin ]".into() });
        assert_eq!(r.status(), 403);
        assert_eq!(r.body().as_ref(), br#"{"message":"Forbidden (required scopes were not found [ admin ])"}"#);
        assert_eq!(r.headers()["www-authenticate"], r#"Bearer realm="idp.example""#);
        let r = responder().respond(&Failure::Idp { reason: "down".into() });
        assert_eq!(r.status(), 502);
        assert!(r.headers().get("www-authenticate").is_none());
    }
}
