//! What authentication established: the [`Outcome`] that `authenticate.rs` makes, `authorize.rs`
//! judges and the header plan turns into headers.

use crate::cache::Timed;
use crate::credentials::Found;
use crate::headers::{Memo, Sources};
use crate::method::Method;
use crate::provider::calls::ClaimsAnswer;
use crate::tokens::VerifiedJwt;
use gatehouse_session::Session;
use http::{HeaderName, HeaderValue};
use std::sync::Arc;

/// What authentication established.
pub(crate) struct Outcome {
    /// The method that authenticated.
    pub method: Method,
    /// The client (index in `client_id`) the tokens are for.
    pub client: usize,
    /// The tokens, shared with the cache entry they came from (never copied per request).
    pub access_token: Option<Arc<str>>,
    pub id_token: Option<Arc<str>>,
    pub refresh_token: Option<Arc<str>>,
    /// The access token's claims (verified, or read from our own sealed session), with the
    /// verifying key when there was one.
    pub access: Option<Arc<VerifiedJwt>>,
    /// The ID token's claims, likewise.
    pub id: Option<Arc<VerifiedJwt>>,
    pub introspection: Option<Arc<Timed<ClaimsAnswer>>>,
    pub userinfo: Option<Arc<Timed<ClaimsAnswer>>>,
    /// Where the credentials were, for `hide_credentials`.
    pub hide: Vec<Found>,
    /// What leaves the request whatever `hide_credentials` says: a sign-in's callback arguments
    /// and authorization cookie.
    pub strip: Vec<Found>,
    /// The sign-in this request completed (the authorization code flow).
    pub signin: Option<Box<SignedIn>>,
    /// The session to save (refreshed), when authentication changed it.
    pub session: Option<SessionWrite>,
    /// The access token's expiry, for a new session (0: unknown).
    pub expires: i64,
    /// The session's id, when the request has or gets a session.
    pub session_id: Option<Arc<str>>,
    /// Upstream headers made once for a deterministic source (a verified bearer token, a cached
    /// grant, a cached session) and reused while that source is.
    pub memo: Option<Memo>,
    /// The token endpoint's answer headers replayed to the client (`token_headers_replay`),
    /// named as sent: set by a grant of this request (or its cached answer) whose method is in
    /// `token_headers_grants`, never by a session's refresh.
    pub replay: Option<Replay>,
}

/// What authentication made of a request: an outcome, or the browser sent to sign in.
#[allow(clippy::large_enum_variant)] // The outcome is the common case: boxing it would allocate per request.
pub(crate) enum Authenticated {
    Outcome(Outcome),
    /// A `302` to the identity provider (the authorization cookie is in the trail's additions).
    Redirect(http::Response<bytes::Bytes>),
}

/// A sign-in completed by this request: where the browser was going, for the login action.
pub(crate) struct SignedIn {
    /// The request URL the flow started from, without its query.
    pub uri: String,
    /// Its query, with `preserve_query_args`.
    pub uri_args: Option<String>,
    /// The token endpoint's whole answer (`login_tokens: tokens`).
    pub raw: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Headers for the client's response, ready to append (shared with the cached grant they came
/// with).
pub(crate) type Replay = Arc<[(HeaderName, HeaderValue)]>;

/// A session to seal into `Set-Cookie` headers.
pub(crate) struct SessionWrite {
    pub session: Session,
    /// How many cookies the request carried for it, so the extra ones are expired.
    pub previous_chunks: usize,
}

impl Outcome {
    /// An outcome of `method` with nothing established yet.
    pub fn new(method: Method) -> Outcome {
        Outcome {
            method,
            client: 0,
            access_token: None,
            id_token: None,
            refresh_token: None,
            access: None,
            id: None,
            introspection: None,
            userinfo: None,
            hide: Vec::new(),
            strip: Vec::new(),
            signin: None,
            session: None,
            expires: 0,
            session_id: None,
            memo: None,
            replay: None,
        }
    }

    /// The memoized upstream headers, when they are a function of the memo's source alone: no
    /// introspection or userinfo answer, no session id made for this request, no ID token sent
    /// beside a bearer token.
    pub fn usable_memo(&self) -> Option<&Memo> {
        self.memo.as_ref().filter(|_| {
            self.introspection.is_none()
                && self.userinfo.is_none()
                && (self.method == Method::Session || self.session_id.is_none())
                && (self.method != Method::Bearer || self.id.is_none())
        })
    }

    /// What header values are made from. `authorization` is the request's own
    /// `Authorization: Bearer <access token>`, reused as it is when no memo keeps the headers.
    pub fn sources<'a>(&'a self, authorization: Option<&'a HeaderValue>) -> Sources<'a> {
        Sources {
            introspection: self.introspection.as_ref().map(|a| &a.value.claims),
            introspection_jwt: self.introspection.as_ref().and_then(|a| a.value.jwt.as_deref()),
            access: self.access.as_ref().map(|a| &a.claims),
            id: self.id.as_ref().map(|a| &a.claims),
            userinfo: self.userinfo.as_ref().map(|a| &a.value.claims),
            userinfo_jwt: self.userinfo.as_ref().and_then(|a| a.value.jwt.as_deref()),
            access_token: self.access_token.as_deref(),
            id_token: self.id_token.as_deref(),
            refresh_token: self.refresh_token.as_deref(),
            access_jwk: self.access.as_ref().and_then(|a| a.jwk.as_ref()).map(|k| k.json()),
            id_jwk: self.id.as_ref().and_then(|a| a.jwk.as_ref()).map(|k| k.json()),
            session_id: self.session_id.as_deref(),
            session: None,
            authorization,
        }
    }
}
