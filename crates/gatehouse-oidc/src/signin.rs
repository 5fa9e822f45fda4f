//! The authorization code flow (Kong's `authorization_code` auth method): a request with no
//! other credential is sent to the identity provider's authorization endpoint, with `state`,
//! `nonce` and (when required or offered) a PKCE S256 challenge kept in the sealed authorization
//! cookie; the browser's return is recognised by that cookie, not by its path, as Kong does.
//!
//! The callback, following Kong (docs/design/browser-sign-in.md §2.4):
//! - no authorization cookie that opens: a new authorization request;
//! - a `state` that is absent or not the cookie's (compared in constant time): the request is
//!   sent to the IdP again with the cookie's values (a second tab, a plain visit mid-flow);
//! - the cookie's `state` with an `error`, no `code`, an `iss` that is not the issuer (RFC 9207,
//!   the mix-up defence) or another `client_id`: 401;
//! - otherwise the authorization cookie is expired and the code exchanged (`grants.rs`); the ID
//!   token must carry the cookie's nonce, and `c_hash`/`at_hash`/`auth_time`/`hd` are checked.
//!
//! The authorization request can travel as a signed request object (JAR, RFC 9101) and be pushed
//! to the IdP first (PAR, RFC 9126), each when configured or, with the field `null`, when
//! discovery says the IdP requires it. Kong's request objects are not documented: Gatehouse's
//! carry every parameter plus `iss` (the client), `aud` (the issuer), `iat`, `nbf`, `exp` (60 s)
//! and `jti`, with header `typ: oauth-authz-req+jwt`.
//!
//! With a JARM `response_mode` (`query.jwt`, `form_post.jwt`, `fragment.jwt`, `jwt`) the callback's
//! values are read only from its `response` JWT, verified as `tokens.rs` says; plain `code` and
//! `state` beside it are ignored, so a callback without a valid JWT exchanges nothing.

use crate::cache::secs_of;
use crate::credentials::{Args, Found};
use crate::decision::Trail;
use crate::grants::{Grants, IdChecks};
use crate::location;
use crate::method::Method;
use crate::node::RequestKeys;
use crate::outcome::{Authenticated, SignedIn};
use crate::pending::PendingAuthorization;
use crate::provider::calls;
use crate::provider::client_auth::{Client, ClientAuth};
use crate::provider::discovery::{Discovered, Provider};
use crate::respond::Failure;
use crate::settings::Settings;
use crate::tokens::Verifier;
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use gatehouse_core::plugin::{BuildEnv, BuildError, Ctx};
use gatehouse_jose::sign::sign_jwt;
use gatehouse_session::{SameSite, SessionCodec, SessionConfig, SessionStore};
use http::request::Parts;
use http::{HeaderValue, Response};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The parameters of the callback that are stripped before the request goes upstream (Kong's list).
const CALLBACK_ARGS: [&str; 5] = ["code", "state", "session_state", "iss", "response"];

/// The longest query kept with `preserve_query_args` (bytes).
const MAX_URI_ARGS: usize = 2048;

/// Authorization request parameters the flow itself sets: no `authorization_query_args_*` may
/// name them, or a request could choose where its code is sent (a Gatehouse-defined refusal).
const PROTOCOL_ARGS: [&str; 11] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
    "request",
    "request_uri",
];

/// What the flow needs of a request, read (and owned) while its arguments are parsed.
pub(crate) struct Returned {
    /// `response`: a JARM authorization response, the only source of the others in JARM mode.
    response: Option<String>,
    state: Option<String>,
    code: Option<String>,
    iss: Option<String>,
    client_id: Option<String>,
    error: Option<String>,
    /// `authorization_query_args_client` values the request carries.
    client_args: Vec<(String, String)>,
    /// The callback's values came in a form body (`form_post`).
    in_body: bool,
}

/// How long a request object is good for (seconds): it is used at once, by a redirect.
const REQUEST_OBJECT_LIFETIME: i64 = 60;

/// The `typ` of a request object (RFC 9101 §4).
const REQUEST_OBJECT_TYP: &str = "oauth-authz-req+jwt";

/// PKCE, as configured (`require_proof_key_for_code_exchange`: `null` follows discovery).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pkce {
    Always,
    Never,
    IfOffered,
}

/// One instance's sign-in, decided at build time.
pub(crate) struct SignIn {
    /// The authorization cookie.
    pub store: SessionStore,
    provider: Arc<Provider>,
    authorization_endpoint: Option<String>,
    response_type: String,
    response_mode: String,
    /// A JARM response mode: the callback's values come in one signed `response` JWT.
    jarm: bool,
    scope: String,
    /// `openid` is among the scopes: an ID token must come back.
    wants_id_token: bool,
    redirect_uris: Vec<String>,
    query_args: Vec<(String, String)>,
    client_args: Vec<String>,
    preserve_query_args: bool,
    pkce: Pkce,
    audience: Option<String>,
    max_age: Option<i64>,
    domains: Option<Vec<String>>,
    verify_nonce: bool,
    client_ids: Vec<String>,
    /// `require_pushed_authorization_requests` (`None`: discovery decides).
    par: Option<bool>,
    par_endpoint: Option<String>,
    /// `pushed_authorization_request_endpoint_auth_method` (`None`: the client's).
    par_auth: Option<ClientAuth>,
    /// `require_signed_request_object` (`None`: discovery decides).
    jar: Option<bool>,
    request_keys: RequestKeys,
}

impl SignIn {
    /// The sign-in of a config, its authorization cookie sealed with `key` (the session's key:
    /// the cookie name in the sealed data keeps the two cookies apart). `None` when the method
    /// is off or no client is configured (there is no one to sign in as). `clients` are the
    /// configured clients (with the node's key given to `private_key_jwt` ones), whose keys sign
    /// request objects.
    pub fn build(
        s: &Settings,
        key: SessionCodec,
        provider: Arc<Provider>,
        clients: &[Client],
        env: &BuildEnv,
    ) -> Result<Option<SignIn>, BuildError> {
        let client_ids = s.client_id.clone().unwrap_or_default();
        if !crate::method::Methods::of(&s.auth_methods).contains(Method::AuthorizationCode) || client_ids.is_empty() {
            return Ok(None);
        }
        let config = SessionConfig {
            cookie_name: s.authorization_cookie_name.clone(),
            cookie_path: s.authorization_cookie_path.clone(),
            cookie_domain: s.authorization_cookie_domain.clone(),
            same_site: s
                .authorization_cookie_same_site
                .parse::<SameSite>()
                .map_err(|e| BuildError::field("authorization_cookie_same_site", e.to_string()))?,
            http_only: s.authorization_cookie_http_only,
            secure: s.authorization_cookie_secure,
            rolling_timeout: secs_of(s.authorization_rolling_timeout).max(1) as u64,
            idling_timeout: 0,
            absolute_timeout: 0,
            audience: s.session_audience.clone(),
            issuer: s.issuer.clone(),
            clients: client_ids.clone(),
            ..SessionConfig::default()
        };
        // One key seals all three cookies, their names apart: a name (or chunk name, `session2`)
        // shared with the session or remember cookie would let each overwrite and strip the other.
        let mut taken = vec![("session_cookie_name", &s.session_cookie_name)];
        if s.session_remember {
            taken.push(("session_remember_cookie_name", &s.session_remember_cookie_name));
        }
        for (field, name) in taken {
            if gatehouse_session::names_clash(&s.authorization_cookie_name, name) {
                return Err(BuildError::field(
                    "authorization_cookie_name",
                    format!("must differ from {field} and its chunk names ({name}2 … {name}9)"),
                ));
            }
        }
        let store = SessionStore::new(key, config).map_err(|e| {
            let msg = e.to_string();
            let field =
                if msg.starts_with("cookie_path") { "authorization_cookie_path" } else { "authorization_cookie_name" };
            BuildError::field(field, msg)
        })?;
        let pairs = |n: &Option<Vec<String>>, v: &Option<Vec<String>>| match (n, v) {
            (Some(n), Some(v)) => n.iter().cloned().zip(v.iter().cloned()).collect(),
            _ => Vec::new(),
        };
        let query_args: Vec<(String, String)> =
            pairs(&s.authorization_query_args_names, &s.authorization_query_args_values);
        let client_args = s.authorization_query_args_client.clone().unwrap_or_default();
        for (field, name) in query_args
            .iter()
            .map(|(n, _)| ("authorization_query_args_names", n))
            .chain(client_args.iter().map(|n| ("authorization_query_args_client", n)))
        {
            if PROTOCOL_ARGS.contains(&name.as_str()) {
                return Err(BuildError::field(field, format!("{name} is set by the authorization request itself")));
            }
        }
        let scopes = s.scopes.clone().unwrap_or_default();
        let request_keys =
            RequestKeys::build(clients, env, s.require_signed_request_object == Some(true)).map_err(|e| {
                BuildError::field("require_signed_request_object", format!("no key signs request objects: {e}"))
            })?;
        let par_auth = match &s.pushed_authorization_request_endpoint_auth_method {
            Some(name) => Some(ClientAuth::from_name(name).ok_or_else(|| {
                BuildError::field(
                    "pushed_authorization_request_endpoint_auth_method",
                    format!("{name} is not supported (no TLS client certificates yet)"),
                )
            })?),
            None => None,
        };
        Ok(Some(SignIn {
            store,
            provider,
            authorization_endpoint: s.authorization_endpoint.clone(),
            response_type: s.response_type.join(" "),
            response_mode: s.response_mode.clone(),
            jarm: s.response_mode == "jwt" || s.response_mode.ends_with(".jwt"),
            wants_id_token: scopes.iter().any(|x| x == "openid"),
            scope: scopes.join(" "),
            redirect_uris: s.redirect_uri.clone().unwrap_or_default(),
            query_args,
            client_args,
            preserve_query_args: s.preserve_query_args,
            pkce: match s.require_proof_key_for_code_exchange {
                Some(true) => Pkce::Always,
                Some(false) => Pkce::Never,
                None => Pkce::IfOffered,
            },
            audience: s.audience.as_ref().filter(|a| !a.is_empty()).map(|a| a.join(" ")),
            max_age: s.max_age.map(secs_of).filter(|m| *m >= 0),
            domains: s.domains.clone().filter(|d| !d.is_empty()),
            verify_nonce: s.verify_nonce,
            client_ids,
            par: s.require_pushed_authorization_requests,
            par_endpoint: s.pushed_authorization_request_endpoint.clone(),
            par_auth,
            jar: s.require_signed_request_object,
            request_keys,
        }))
    }

    /// Whether callbacks come as form posts, so the proxy must buffer form bodies.
    pub fn needs_body(&self) -> bool {
        self.response_mode.starts_with("form_post")
    }

    /// What the flow reads of a request, before its parsed arguments go.
    pub fn returned(&self, parts: &Parts, args: &Args<'_>) -> Returned {
        let post = parts.method == http::Method::POST;
        // Kong: the query, and for a POST the form body, which wins.
        let arg = |name: &str| -> Option<String> {
            let v = if post { args.body(name).or_else(|| args.query(name)) } else { args.query(name) };
            v.map(str::to_string)
        };
        let in_body = post && (args.body("state").is_some() || args.body("response").is_some());
        let client_args = self
            .client_args
            .iter()
            .filter_map(|n| args.query(n).or_else(|| args.body(n)).map(|v| (n.clone(), v.to_string())))
            .collect();
        Returned {
            response: arg("response"),
            state: arg("state"),
            code: arg("code"),
            iss: arg("iss"),
            client_id: arg("client_id"),
            error: arg("error"),
            client_args,
            in_body,
        }
    }

    /// The flow for a request without other credentials: a redirect to the IdP, or the
    /// outcome of a checked callback's code exchange.
    #[allow(clippy::too_many_arguments)]
    pub async fn sign_in(
        &self,
        ctx: &Ctx,
        parts: &Parts,
        ret: Returned,
        client: usize,
        now: i64,
        trail: &mut Trail,
        grants: &Grants,
        v: &Verifier,
    ) -> Result<Authenticated, Failure> {
        trail.strip_always = self.callback_parts(&ret, parts);
        let pending = match self.store.open(&parts.headers, now) {
            // The client the sealed envelope names, wherever it now is in `client_id`.
            Ok(opened) => PendingAuthorization::decode(&opened.session.data).map(|mut p| {
                p.client = opened.client.unwrap_or(p.client);
                p
            }),
            Err(e) => {
                tracing::debug!(error = ?e, "no pending authorization");
                None
            }
        };
        let Some(pending) = pending else {
            return self.redirect(ctx, parts, ret.client_args, client, None, grants, now, trail).await;
        };
        let client_id = self.client_ids.get(pending.client).map(String::as_str).unwrap_or_default();
        let ret = if self.jarm { jarm_values(ret, client_id, v, now).await? } else { ret };
        let same_state = ret.state.as_deref().is_some_and(|s| {
            aws_lc_rs::constant_time::verify_slices_are_equal(s.as_bytes(), pending.state.as_bytes()).is_ok()
        });
        if !same_state {
            // A second tab, a plain visit mid-flow, a forged or replayed state: the browser goes
            // to the IdP again with the pending values; nothing is exchanged.
            let client = pending.client;
            return self.redirect(ctx, parts, ret.client_args, client, Some(pending), grants, now, trail).await;
        }
        if let Some(error) = &ret.error {
            return Err(Failure::unauthorized(format!("authorization failed at the identity provider: {error:?}")));
        }
        let Some(code) = ret.code.filter(|c| !c.is_empty()) else {
            return Err(Failure::unauthorized("authorization code not present"));
        };
        if let Some(iss) = &ret.iss {
            let discovered = self.provider.get(now).await.map_err(|e| Failure::Idp { reason: e.to_string() })?;
            if *iss != discovered.issuer {
                return Err(Failure::unauthorized(format!("authorization response issuer mismatch: {iss:?}")));
            }
        }
        if ret.client_id.as_deref().is_some_and(|c| c != client_id) {
            return Err(Failure::unauthorized("authorization response client mismatch"));
        }
        // The flow is over whatever the exchange says: the cookie goes now (Kong).
        trail.additions.set_cookies.extend(self.store.clear(&parts.headers, ctx.https));
        let checks = IdChecks {
            nonce: self.verify_nonce.then_some(pending.nonce.as_str()),
            code: Some(&code),
            max_age: self.max_age,
            domains: self.domains.as_deref(),
            id_token_required: self.wants_id_token,
        };
        // The redirect_uri the code was issued for is the one the callback came to (Kong): the
        // configured one, else this request's own URL. The cookie's is the latest request's, and
        // a second tab mid-flow (Restart) rewrote it with its own URL.
        let redirect_uri = match self.redirect_uris.get(pending.client).or(self.redirect_uris.first()) {
            Some(configured) => configured.clone(),
            None => location::request_url(ctx, parts).unwrap_or_else(|| pending.redirect_uri.clone()),
        };
        let (mut o, raw) = grants
            .authorization_code(v, pending.client, &code, &redirect_uri, pending.code_verifier.as_deref(), &checks, now)
            .await?;
        o.strip = std::mem::take(&mut trail.strip_always);
        o.signin = Some(Box::new(SignedIn { uri: pending.uri, uri_args: pending.uri_args, raw: Some(raw) }));
        Ok(Authenticated::Outcome(o))
    }

    /// What of a callback never goes upstream: its own arguments (from the form body of a
    /// `form_post`) and every chunk of the authorization cookie (`authorization2` …).
    fn callback_parts(&self, ret: &Returned, parts: &Parts) -> Vec<Found> {
        let chunks = self.store.present_chunks(&parts.headers);
        if chunks == 0 {
            // No flow of ours is pending: the request's own arguments are its own.
            return Vec::new();
        }
        let names = CALLBACK_ARGS.iter().map(|s| s.to_string()).collect();
        let mut out = vec![if ret.in_body { Found::Body(names) } else { Found::Query(names) }];
        let name = &self.store.config().cookie_name;
        for i in 1..=chunks {
            out.push(Found::Cookie(if i == 1 { name.clone() } else { format!("{name}{i}") }));
        }
        out
    }

    /// The redirect to the authorization endpoint, with a new pending authorization (or the
    /// `reuse`d one's values) sealed in the authorization cookie.
    #[allow(clippy::too_many_arguments)]
    async fn redirect(
        &self,
        ctx: &Ctx,
        parts: &Parts,
        client_args: Vec<(String, String)>,
        client: usize,
        reuse: Option<PendingAuthorization>,
        grants: &Grants,
        now: i64,
        trail: &mut Trail,
    ) -> Result<Authenticated, Failure> {
        let Some(client_id) = self.client_ids.get(client) else {
            return Err(Failure::unauthorized("no client to sign in with"));
        };
        let Some(uri) = location::request_url(ctx, parts) else {
            return Err(Failure::unauthorized("the request names no host to return to"));
        };
        let discovered = self.provider.get(now).await.map_err(|e| Failure::Idp { reason: e.to_string() })?;
        let endpoint = match self.authorization_endpoint.as_deref().or(discovered.endpoint("authorization_endpoint")) {
            Some(e) => e.to_string(),
            None => {
                tracing::debug!("no authorization endpoint: the code flow cannot start");
                return Err(Failure::unauthorized("no suitable authorization credentials were provided"));
            }
        };
        let redirect_uri =
            self.redirect_uris.get(client).or(self.redirect_uris.first()).cloned().unwrap_or_else(|| uri.clone());
        let pending = match reuse {
            Some(p) => PendingAuthorization {
                uri,
                uri_args: self.uri_args(parts),
                redirect_uri,
                client: p.client,
                state: p.state,
                nonce: p.nonce,
                code_verifier: p.code_verifier,
            },
            None => PendingAuthorization {
                uri,
                uri_args: self.uri_args(parts),
                redirect_uri,
                client,
                state: random_text::<18>()?,
                nonce: random_text::<18>()?,
                code_verifier: match self.challenge_method(&discovered.doc) {
                    Some(_) => Some(random_text::<32>()?),
                    None => None,
                },
            },
        };
        let mut params: Vec<(&str, String)> = vec![
            ("response_type", self.response_type.clone()),
            ("client_id", client_id.clone()),
            ("redirect_uri", pending.redirect_uri.clone()),
            ("scope", self.scope.clone()),
            ("state", pending.state.clone()),
            ("nonce", pending.nonce.clone()),
        ];
        if let Some(verifier) = &pending.code_verifier {
            let method = self.challenge_method(&discovered.doc).unwrap_or(Challenge::S256);
            params.push(("code_challenge", method.challenge(verifier)));
            params.push(("code_challenge_method", method.name().to_string()));
        }
        params.push(("response_mode", self.response_mode.clone()));
        if let Some(max_age) = self.max_age {
            params.push(("max_age", max_age.to_string()));
        }
        if let Some(aud) = &self.audience {
            params.push(("audience", aud.clone()));
        }
        for (k, v) in &self.query_args {
            params.push((k, v.clone()));
        }
        for (k, v) in &client_args {
            params.push((k, v.clone()));
        }
        let params = self.delivered(params, client, client_id, &discovered, grants, now).await?;
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &params {
            query.append_pair(k, v);
        }
        let sep = if endpoint.contains('?') { '&' } else { '?' };
        let location = format!("{endpoint}{sep}{}", query.finish());
        let location = HeaderValue::from_str(&location)
            .map_err(|_| Failure::Unexpected { reason: "the authorization URL is not a header value".into() })?;

        let mut session = self.store.new_session_for(Some(client_id), now, None, pending.encode());
        let present = self.store.present_chunks(&parts.headers);
        match self.store.save(&mut session, now, ctx.https, present) {
            Ok(cookies) => trail.additions.set_cookies.extend(cookies),
            Err(e) => return Err(Failure::Unexpected { reason: format!("authorization cookie not saved: {e}") }),
        }
        let mut resp = Response::new(Bytes::new());
        *resp.status_mut() = http::StatusCode::FOUND;
        resp.headers_mut().insert(http::header::LOCATION, location);
        resp.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if parts.version <= http::Version::HTTP_10 {
            resp.headers_mut().insert(http::header::PRAGMA, HeaderValue::from_static("no-cache"));
        }
        Ok(Authenticated::Redirect(resp))
    }

    /// What the redirect carries for the authorization request `params`: the parameters
    /// themselves; with JAR, a signed `request` instead (`client_id`, `response_type` and `scope`
    /// stay beside it, as OpenID Connect Core §6.1 asks); with PAR, the pushed request's
    /// `client_id` and `request_uri` only.
    async fn delivered<'a>(
        &self,
        params: Vec<(&'a str, String)>,
        client: usize,
        client_id: &str,
        discovered: &Discovered,
        grants: &Grants,
        now: i64,
    ) -> Result<Vec<(&'a str, String)>, Failure> {
        let required = |field: Option<bool>, name: &str| {
            field.unwrap_or_else(|| discovered.doc.get(name) == Some(&Value::Bool(true)))
        };
        let par = required(self.par, "require_pushed_authorization_requests");
        let mut params = params;
        if required(self.jar, "require_signed_request_object") {
            let request = self.request_object(&params, client, client_id, &discovered.issuer, now)?;
            let kept: &[&str] = if par { &["client_id"] } else { &["client_id", "response_type", "scope"] };
            params.retain(|(k, _)| kept.contains(k));
            params.push(("request", request));
        }
        if !par {
            return Ok(params);
        }
        let Some(c) = grants.clients.get(client) else {
            return Err(Failure::unauthorized("no client to sign in with"));
        };
        let endpoint =
            match self.par_endpoint.as_deref().or(discovered.endpoint("pushed_authorization_request_endpoint")) {
                Some(e) => e,
                None => {
                    let e = crate::provider::IdpError::NoEndpoint("pushed_authorization_request_endpoint");
                    return Err(Failure::Idp { reason: e.to_string() });
                }
            };
        let form = params.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let method = self.par_auth.unwrap_or(c.auth);
        let pushed = calls::push_authorization(grants.http(), endpoint, c, method, form, now)
            .await
            .map_err(|e| Failure::of_grant("pushed authorization request", e))?;
        Ok(vec![("client_id", client_id.to_string()), ("request_uri", pushed.request_uri)])
    }

    /// The signed request object (RFC 9101) for `params`, for client `client`: every parameter
    /// as a claim (`max_age` as a number, as OpenID Connect Core §6.1 shows it), then the JWT's
    /// own claims, which no configured parameter can replace.
    fn request_object(
        &self,
        params: &[(&str, String)],
        client: usize,
        client_id: &str,
        issuer: &str,
        now: i64,
    ) -> Result<String, Failure> {
        let Some(key) = self.request_keys.key(client) else {
            return Err(Failure::Unexpected {
                reason: format!(
                    "client {client_id} has no key to sign request objects (client_jwk, or the node's key set)"
                ),
            });
        };
        let mut claims = Map::new();
        for (k, v) in params {
            let value = match (*k, v.parse::<i64>()) {
                ("max_age", Ok(n)) => json!(n),
                _ => json!(v),
            };
            claims.insert(k.to_string(), value);
        }
        for (k, v) in [
            ("iss", json!(client_id)),
            ("aud", json!(issuer)),
            ("iat", json!(now)),
            ("nbf", json!(now)),
            ("exp", json!(now.saturating_add(REQUEST_OBJECT_LIFETIME))),
            ("jti", json!(random_text::<16>()?)),
        ] {
            claims.insert(k.to_string(), v);
        }
        sign_jwt(&json!({"typ": REQUEST_OBJECT_TYP}), &Value::Object(claims), &key)
            .map_err(|e| Failure::Unexpected { reason: format!("request object not signed: {e}") })
    }

    /// The request's query, kept with `preserve_query_args`.
    /// Without a callback's own arguments (a callback that starts the flow again must not land
    /// the browser, or the upstream, on a spent code), and only up to [`MAX_URI_ARGS`] bytes: the
    /// authorization cookie stays one cookie whatever link started the flow.
    fn uri_args(&self, parts: &Parts) -> Option<String> {
        if !self.preserve_query_args {
            return None;
        }
        let q = parts.uri.query().filter(|q| !q.is_empty())?;
        let kept: Vec<&str> = q
            .split('&')
            .filter(|pair| {
                let name = pair.split('=').next().unwrap_or_default();
                !CALLBACK_ARGS.contains(&name) && !pair.is_empty()
            })
            .collect();
        let kept = kept.join("&");
        if kept.len() > MAX_URI_ARGS {
            tracing::info!(bytes = kept.len(), "the query is too long to keep through the sign-in: dropped");
            return None;
        }
        (!kept.is_empty()).then_some(kept)
    }

    /// The PKCE method to use, if any: always S256 when required; when `null`, what discovery
    /// offers (S256 before plain, as Kong prefers the strongest), or S256 when it says PKCE is
    /// required.
    fn challenge_method(&self, doc: &Value) -> Option<Challenge> {
        match self.pkce {
            Pkce::Always => Some(Challenge::S256),
            Pkce::Never => None,
            Pkce::IfOffered => {
                let offered = doc.get("code_challenge_methods_supported").and_then(Value::as_array);
                let offers = |m: &str| offered.is_some_and(|l| l.iter().any(|x| x.as_str() == Some(m)));
                if offers("S256") {
                    Some(Challenge::S256)
                } else if offers("plain") {
                    Some(Challenge::Plain)
                } else if offered.is_some_and(|l| !l.is_empty())
                    || doc.get("require_proof_key_for_code_exchange") == Some(&Value::Bool(true))
                {
                    Some(Challenge::S256)
                } else {
                    None
                }
            }
        }
    }
}

/// The callback's values of a JARM response: those of its `response` JWT once verified for
/// `client_id`, none without one (the "no state" case: the browser goes to the IdP again). A
/// `response` that does not verify is a 401; keys that cannot be fetched, a 502.
async fn jarm_values(ret: Returned, client_id: &str, v: &Verifier, now: i64) -> Result<Returned, Failure> {
    let mut out = Returned {
        response: None,
        state: None,
        code: None,
        iss: None,
        client_id: None,
        error: None,
        client_args: ret.client_args,
        in_body: ret.in_body,
    };
    let Some(response) = ret.response else { return Ok(out) };
    let claims = v.authorization_response(&response, client_id, now).await.map_err(|e| match e {
        crate::tokens::TokenError::Idp(e) => Failure::Idp { reason: e.to_string() },
        e => Failure::unauthorized(format!("authorization response JWT refused: {e}")),
    })?;
    let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
    (out.state, out.code, out.iss, out.error) = (text("state"), text("code"), text("iss"), text("error"));
    Ok(out)
}

/// A PKCE challenge method (RFC 7636).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Challenge {
    S256,
    Plain,
}

impl Challenge {
    fn name(self) -> &'static str {
        match self {
            Challenge::S256 => "S256",
            Challenge::Plain => "plain",
        }
    }

    fn challenge(self, verifier: &str) -> String {
        match self {
            Challenge::S256 => URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes())),
            Challenge::Plain => verifier.to_string(),
        }
    }
}

/// `N` random bytes, base64url (Kong: 18 for `state` and `nonce`, 32 for the PKCE verifier).
fn random_text<const N: usize>() -> Result<String, Failure> {
    let mut b = [0u8; N];
    SystemRandom::new().fill(&mut b).map_err(|_| Failure::Unexpected { reason: "no randomness".into() })?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::Oidc;
    use serde_json::json;

    fn signin(config: Value) -> Oidc {
        let mut c = json!({ "client_id": ["web"], "client_secret": ["s"] });
        if let (Value::Object(base), Value::Object(extra)) = (&mut c, config) {
            base.extend(extra);
        }
        Oidc::for_tests(c)
    }

    /// Builds `config` as a node without its secrets would (`check`).
    fn build(config: &Value) -> Result<Oidc, BuildError> {
        let cfg = crate::config::schema().validate(config, gatehouse_core::schema::Mode::default()).expect("schema");
        let env = gatehouse_core::plugin::BuildEnv::default();
        Oidc::build(&cfg, SessionCodec::new(b"k"), SessionCodec::new(b"k"), &env)
    }

    #[test]
    fn the_kept_query_drops_a_callbacks_arguments_and_stays_small() {
        let o = signin(json!({"preserve_query_args": true}));
        let s = o.auth.signin.as_ref().expect("on");
        let parts = |q: &str| http::Request::get(format!("/a?{q}")).body(()).expect("request").into_parts().0;
        assert_eq!(
            s.uri_args(&parts("code=c&hello=world&state=s&iss=i&session_state=x")).as_deref(),
            Some("hello=world")
        );
        assert_eq!(s.uri_args(&parts("code=c&state=s")), None);
        let long = format!("a={}", "x".repeat(MAX_URI_ARGS));
        assert_eq!(s.uri_args(&parts(&long)), None, "too long to keep: dropped");
        let off = signin(json!({}));
        assert_eq!(off.auth.signin.as_ref().expect("on").uri_args(&parts("hello=world")), None);
    }

    #[test]
    fn pkce_follows_the_setting_then_discovery() {
        let o = signin(json!({}));
        let s = o.auth.signin.as_ref().expect("on by default");
        assert_eq!(s.challenge_method(&json!({})), None);
        assert_eq!(
            s.challenge_method(&json!({"code_challenge_methods_supported": ["plain", "S256"]})),
            Some(Challenge::S256)
        );
        assert_eq!(s.challenge_method(&json!({"code_challenge_methods_supported": ["plain"]})), Some(Challenge::Plain));
        assert_eq!(s.challenge_method(&json!({"require_proof_key_for_code_exchange": true})), Some(Challenge::S256));
        let o = signin(json!({"require_proof_key_for_code_exchange": true}));
        assert_eq!(o.auth.signin.as_ref().expect("on").challenge_method(&json!({})), Some(Challenge::S256));
        let o = signin(json!({"require_proof_key_for_code_exchange": false}));
        let doc = json!({"code_challenge_methods_supported": ["S256"]});
        assert_eq!(o.auth.signin.as_ref().expect("on").challenge_method(&doc), None);
    }

    #[test]
    fn s256_is_rfc_7636s_example() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(Challenge::S256.challenge(verifier), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn the_flow_is_off_without_a_client_or_the_method() {
        assert!(Oidc::for_tests(json!({})).auth.signin.is_none(), "no client_id");
        assert!(signin(json!({"auth_methods": ["bearer"]})).auth.signin.is_none());
    }

    #[test]
    fn the_authorization_cookie_name_clashes_with_no_session_or_remember_cookie() {
        let build = |extra: Value| {
            let mut c = json!({ "issuer": "http://127.0.0.1:9/realms/x", "client_id": ["web"] });
            if let (Value::Object(base), Value::Object(extra)) = (&mut c, extra) {
                base.extend(extra);
            }
            let cfg = crate::config::schema().validate(&c, gatehouse_core::schema::Mode::default()).expect("schema");
            let key = || SessionCodec::new(b"k");
            Oidc::build(&cfg, key(), key(), &gatehouse_core::plugin::BuildEnv::default()).map(|_| ())
        };
        for bad in [
            json!({"authorization_cookie_name": "session"}),
            json!({"authorization_cookie_name": "session2"}),
            json!({"session_cookie_name": "authorization9"}),
            json!({"session_remember": true, "session_remember_cookie_name": "authorization"}),
            json!({"session_remember": true, "authorization_cookie_name": "remember3"}),
        ] {
            assert!(matches!(build(bad.clone()), Err(BuildError::Config(_))), "{bad}");
        }
        for ok in [
            json!({"authorization_cookie_name": "session_2"}),
            json!({"authorization_cookie_name": "remember"}),
            json!({"session_remember": true, "authorization_cookie_name": "remember10"}),
        ] {
            assert!(build(ok.clone()).is_ok(), "{ok}");
        }
    }

    #[test]
    fn protocol_parameters_cannot_be_configured_as_extra_arguments() {
        for (field, names) in [
            ("authorization_query_args_client", json!(["redirect_uri"])),
            ("authorization_query_args_names", json!(["state"])),
        ] {
            let mut c = json!({ "issuer": "http://127.0.0.1:9/realms/x", "client_id": ["web"] });
            if field == "authorization_query_args_names" {
                c["authorization_query_args_values"] = json!(["x"]);
            }
            c[field] = names;
            assert!(matches!(build(&c), Err(BuildError::Config(_))), "{field}");
        }
    }

    /// A discovery document as the provider would have fetched it.
    fn discovered(doc: Value) -> Discovered {
        Discovered {
            doc,
            issuer: "https://idp.example".into(),
            keys: gatehouse_jose::KeySet::default(),
            fetched_at: 0,
            key_generation: 0,
        }
    }

    /// The parameters the redirect builds, in its order.
    fn params() -> Vec<(&'static str, String)> {
        [
            ("response_type", "code"),
            ("client_id", "web"),
            ("redirect_uri", "https://app.example/cb"),
            ("scope", "openid email"),
            ("state", "st"),
            ("nonce", "no"),
            ("response_mode", "query"),
            ("max_age", "300"),
            ("iss", "https://forged.example"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect()
    }

    fn names(p: &[(&str, String)]) -> Vec<String> {
        p.iter().map(|(k, _)| k.to_string()).collect()
    }

    /// A pushed authorization request endpoint answering every request with `status` and `body`;
    /// its URL and the bodies of the requests it got.
    async fn par_endpoint(status: &'static str, body: String) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/par", listener.local_addr().expect("addr"));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let req = crate::provider::calls::tests::read_request(&mut conn).await;
                let form = req.split_once("\r\n\r\n").map(|(_, f)| f.to_string()).unwrap_or_default();
                log.lock().expect("log").push(form);
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            }
        });
        (url, seen)
    }

    fn keyed(extra: Value) -> (Oidc, gatehouse_jose::sign::SigningKey) {
        let key =
            gatehouse_jose::sign::SigningKey::generate(gatehouse_jose::Algorithm::Es256).expect("key").with_kid("k1");
        let mut c = json!({"client_jwk": [key.private_jwk().expect("private")]});
        if let (Value::Object(base), Value::Object(extra)) = (&mut c, extra) {
            base.extend(extra);
        }
        (signin(c), key)
    }

    #[test]
    fn a_request_object_carries_the_parameters_and_its_own_claims_signed_with_the_client_key() {
        let (o, key) = keyed(json!({}));
        let s = o.auth.signin.as_ref().expect("on");
        let jwt = s.request_object(&params(), 0, "web", "https://idp.example", 1000).expect("signed");
        let keys =
            gatehouse_jose::KeySet::from_keys([
                gatehouse_jose::Jwk::from_json(key.public_jwk().expect("public")).expect("jwk")
            ]);
        let v = gatehouse_jose::verify(&jwt, &keys, &gatehouse_jose::Policy::default())
            .expect("verifies with the client key");
        assert_eq!(v.header.typ.as_deref(), Some("oauth-authz-req+jwt"));
        assert_eq!(v.header.alg, "ES256");
        assert_eq!(v.header.kid.as_deref(), Some("k1"));
        let c = &v.claims;
        assert_eq!(c["iss"], "web", "the client, not a configured parameter");
        assert_eq!(c["aud"], "https://idp.example");
        assert_eq!((c["iat"].clone(), c["nbf"].clone(), c["exp"].clone()), (json!(1000), json!(1000), json!(1060)));
        assert!(c["jti"].as_str().is_some_and(|j| j.len() == 22), "{c:?}");
        for (k, v) in params().into_iter().filter(|(k, _)| !["max_age", "iss"].contains(k)) {
            assert_eq!(c[k], v, "{k}");
        }
        assert_eq!(c["max_age"], 300, "a number, as OpenID Connect Core shows it");
        let again = s.request_object(&params(), 0, "web", "https://idp.example", 1000).expect("signed");
        let jti = |t: &str| {
            gatehouse_jose::UnverifiedJwt::parse(t).expect("jwt").unverified_claims().expect("claims")["jti"].clone()
        };
        assert_ne!(jti(&jwt), jti(&again), "a fresh jti each time");
    }

    #[test]
    fn a_request_object_without_any_key_is_a_500_not_an_unsigned_request() {
        // No client_jwk and no node key set (as in `check`).
        let o = signin(json!({"require_signed_request_object": true}));
        let s = o.auth.signin.as_ref().expect("on");
        let r = s.request_object(&params(), 0, "web", "https://idp.example", 1000);
        assert!(matches!(r, Err(Failure::Unexpected { .. })), "{:?}", r.err().map(|f| f.reason().to_string()));
    }

    #[tokio::test]
    async fn the_switches_follow_the_config_then_discovery() {
        let (url, seen) =
            par_endpoint("201 Created", r#"{"request_uri":"urn:ietf:params:oauth:request_uri:r1"}"#.into()).await;
        let run = |config: Value, doc: Value| {
            let url = url.clone();
            async move {
                let mut config = config;
                config["pushed_authorization_request_endpoint"] = json!(url);
                let (o, _) = keyed(config);
                let s = o.auth.signin.as_ref().expect("on");
                let out = s.delivered(params(), 0, "web", &discovered(doc), &o.auth.grants, 1000).await;
                out.map_err(|f| f.reason().to_string())
            }
        };
        let all = names(&params());
        // Nothing required: the parameters as they are.
        assert_eq!(names(&run(json!({}), json!({})).await.expect("plain")), all);
        let off = json!({"require_pushed_authorization_requests": false, "require_signed_request_object": false});
        let says = json!({"require_pushed_authorization_requests": true, "require_signed_request_object": true});
        assert_eq!(names(&run(off, says.clone()).await.expect("false wins over discovery")), all);
        assert!(seen.lock().expect("log").is_empty(), "nothing pushed");
        // JAR from discovery: the request object, with client_id, response_type and scope beside it.
        let jar = run(json!({}), json!({"require_signed_request_object": true})).await.expect("jar");
        assert_eq!(names(&jar), ["response_type", "client_id", "scope", "request"]);
        let jar = run(json!({"require_signed_request_object": true}), json!({})).await.expect("jar by config");
        assert_eq!(names(&jar), ["response_type", "client_id", "scope", "request"]);
        // PAR from discovery: only client_id and the request_uri; every parameter was pushed.
        let par = run(json!({}), json!({"require_pushed_authorization_requests": true})).await.expect("par");
        assert_eq!(
            par,
            [("client_id", "web".to_string()), ("request_uri", "urn:ietf:params:oauth:request_uri:r1".to_string())]
        );
        let pushed = seen.lock().expect("log").pop().expect("pushed");
        let form: Vec<(String, String)> = form_urlencoded::parse(pushed.as_bytes()).into_owned().collect();
        let mut expected: Vec<(String, String)> = params().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        // The default client_auth with a secret: Basic, so the form is the parameters alone.
        assert_eq!(form, expected, "{pushed}");
        // Both: the request object is what is pushed, beside client_id only.
        let both =
            run(json!({"require_pushed_authorization_requests": true}), json!({"require_signed_request_object": true}));
        assert_eq!(names(&both.await.expect("both")), ["client_id", "request_uri"]);
        let pushed = seen.lock().expect("log").pop().expect("pushed");
        let form: Vec<(String, String)> = form_urlencoded::parse(pushed.as_bytes()).into_owned().collect();
        assert_eq!(form.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["client_id", "request"]);
        // client_secret_post at the PAR endpoint: the secret in the form, client_id once.
        let post = json!({"require_pushed_authorization_requests": true, "pushed_authorization_request_endpoint_auth_method": "client_secret_post"});
        run(post, json!({})).await.expect("par");
        let pushed = seen.lock().expect("log").pop().expect("pushed");
        let form: Vec<(String, String)> = form_urlencoded::parse(pushed.as_bytes()).into_owned().collect();
        expected.push(("client_secret".into(), "s".into()));
        assert_eq!(form, expected);
    }

    #[tokio::test]
    async fn par_without_an_endpoint_or_with_a_hostile_answer_is_the_idps_failure_and_no_redirect() {
        let (o, _) = keyed(json!({"require_pushed_authorization_requests": true}));
        let s = o.auth.signin.as_ref().expect("on");
        let r = s.delivered(params(), 0, "web", &discovered(json!({})), &o.auth.grants, 1000).await;
        assert!(matches!(r, Err(Failure::Idp { .. })), "no endpoint configured or discovered");
        for (status, body) in [
            ("201 Created", r#"{"expires_in":60}"#.to_string()),
            ("201 Created", r#"{"request_uri":"urn:x\r\nLocation: https://evil.example"}"#.to_string()),
            ("201 Created", "not json".to_string()),
            ("201 Created", format!(r#"{{"request_uri":"urn:x","pad":"{}"}}"#, "x".repeat(2 << 20))),
            ("500 Internal Server Error", "{}".to_string()),
        ] {
            let (url, _) = par_endpoint(status, body.clone()).await;
            let doc = json!({"pushed_authorization_request_endpoint": url});
            let r = s.delivered(params(), 0, "web", &discovered(doc), &o.auth.grants, 1000).await;
            assert!(matches!(r, Err(Failure::Idp { .. })), "{status} {}", &body[..body.len().min(80)]);
        }
        let (url, _) = par_endpoint("400 Bad Request", r#"{"error":"invalid_request"}"#.into()).await;
        let doc = json!({"pushed_authorization_request_endpoint": url});
        let r = s.delivered(params(), 0, "web", &discovered(doc), &o.auth.grants, 1000).await;
        assert!(matches!(r, Err(Failure::Unauthorized { .. })), "the IdP refused it: 401");
    }

    #[tokio::test]
    async fn in_jarm_mode_only_the_verified_response_jwt_counts() {
        use crate::tokens::tests::{oidc, publish, signing_key};
        let o = oidc(json!({"client_id": ["web"], "response_mode": "query.jwt"}));
        assert!(o.auth.signin.as_ref().expect("on").jarm);
        let v = &o.auth.verifier;
        let (key, jwk) = signing_key("k1");
        publish(&o, &[&jwk]);
        let now = crate::cache::unix_now();
        let plain = |response: Option<String>| Returned {
            response,
            state: Some("plain-state".into()),
            code: Some("plain-code".into()),
            iss: None,
            client_id: Some("web".into()),
            error: None,
            client_args: Vec::new(),
            in_body: false,
        };
        // Plain values without a response JWT: nothing, so the browser goes to the IdP again.
        let out = jarm_values(plain(None), "web", v, now).await.map_err(|f| f.reason().to_string()).expect("ok");
        assert!(out.state.is_none() && out.code.is_none() && out.client_id.is_none());
        let claims = json!({"iss": v.provider.issuer(), "aud": "web", "exp": now + 60, "code": "c", "state": "s"});
        let jwt = sign_jwt(&json!({}), &claims, &key).expect("signed");
        let out = jarm_values(plain(Some(jwt.clone())), "web", v, now).await.map_err(|f| f.reason().to_string());
        let out = out.expect("verified");
        assert_eq!((out.state.as_deref(), out.code.as_deref()), (Some("s"), Some("c")), "the JWT's, not the query's");
        assert_eq!(out.iss.as_deref(), Some(v.provider.issuer()));
        // Addressed to another client: 401.
        let r = jarm_values(plain(Some(jwt)), "other", v, now).await;
        assert!(matches!(r, Err(Failure::Unauthorized { .. })));
    }

    #[test]
    fn a_tls_method_for_the_par_endpoint_is_refused_at_build() {
        let c = json!({"issuer": "http://127.0.0.1:9/realms/x", "client_id": ["web"], "client_secret": ["s"],
            "pushed_authorization_request_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_cert_id": "4e8d95d4-40f2-4818-adcb-30e00c349618"});
        let e = build(&c).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("pushed_authorization_request_endpoint_auth_method"), "{e}");
    }
}
