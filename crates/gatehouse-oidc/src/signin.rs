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

use crate::cache::secs_of;
use crate::credentials::{Args, Found};
use crate::decision::Trail;
use crate::grants::{Grants, IdChecks};
use crate::location;
use crate::method::Method;
use crate::outcome::{Authenticated, SignedIn};
use crate::pending::PendingAuthorization;
use crate::provider::discovery::Provider;
use crate::respond::Failure;
use crate::settings::Settings;
use crate::tokens::Verifier;
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use gatehouse_core::plugin::{BuildError, Ctx};
use gatehouse_session::{SameSite, SessionCodec, SessionConfig, SessionStore};
use http::request::Parts;
use http::{HeaderValue, Response};
use serde_json::Value;
use std::sync::Arc;

/// The parameters of the callback that are stripped before the request goes upstream (Kong's list).
const CALLBACK_ARGS: [&str; 5] = ["code", "state", "session_state", "iss", "response"];

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
}

impl SignIn {
    /// The sign-in of a config, its authorization cookie sealed with `key` (the session's key:
    /// the cookie name in the sealed data keeps the two cookies apart). `None` when the method
    /// is off or no client is configured (there is no one to sign in as).
    pub fn build(s: &Settings, key: SessionCodec, provider: Arc<Provider>) -> Result<Option<SignIn>, BuildError> {
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
        if s.authorization_cookie_name == s.session_cookie_name {
            return Err(BuildError::field("authorization_cookie_name", "must differ from session_cookie_name"));
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
        Ok(Some(SignIn {
            store,
            provider,
            authorization_endpoint: s.authorization_endpoint.clone(),
            response_type: s.response_type.join(" "),
            response_mode: s.response_mode.clone(),
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
        let in_body = post && args.body("state").is_some();
        let client_args = self
            .client_args
            .iter()
            .filter_map(|n| args.query(n).or_else(|| args.body(n)).map(|v| (n.clone(), v.to_string())))
            .collect();
        Returned {
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
        let pending = match self.store.open(&parts.headers, now) {
            Ok(opened) => PendingAuthorization::decode(&opened.session.data),
            Err(e) => {
                tracing::debug!(error = ?e, "no pending authorization");
                None
            }
        };
        let Some(pending) = pending else {
            return self.redirect(ctx, parts, ret.client_args, client, None, now, trail).await;
        };
        let same_state = ret.state.as_deref().is_some_and(|s| {
            aws_lc_rs::constant_time::verify_slices_are_equal(s.as_bytes(), pending.state.as_bytes()).is_ok()
        });
        if !same_state {
            // A second tab, a plain visit mid-flow, a forged or replayed state: the browser goes
            // to the IdP again with the pending values; nothing is exchanged.
            let client = pending.client;
            return self.redirect(ctx, parts, ret.client_args, client, Some(pending), now, trail).await;
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
        let client_id = self.client_ids.get(pending.client).map(String::as_str).unwrap_or_default();
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
        let (mut o, raw) = grants
            .authorization_code(
                v,
                pending.client,
                &code,
                &pending.redirect_uri,
                pending.code_verifier.as_deref(),
                &checks,
                now,
            )
            .await?;
        let names = CALLBACK_ARGS.iter().map(|s| s.to_string()).collect();
        o.strip.push(if ret.in_body { Found::Body(names) } else { Found::Query(names) });
        o.strip.push(Found::Cookie(self.store.config().cookie_name.clone()));
        o.signin = Some(Box::new(SignedIn { uri: pending.uri, uri_args: pending.uri_args, raw: Some(raw) }));
        Ok(Authenticated::Outcome(o))
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

    /// The request's query, kept with `preserve_query_args`.
    fn uri_args(&self, parts: &Parts) -> Option<String> {
        self.preserve_query_args.then(|| parts.uri.query().map(str::to_string)).flatten().filter(|q| !q.is_empty())
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
            let cfg = crate::config::schema().validate(&c, gatehouse_core::schema::Mode::default()).expect("schema");
            let built = Oidc::build(
                &cfg,
                SessionCodec::new(b"k"),
                SessionCodec::new(b"k"),
                &gatehouse_core::plugin::BuildEnv::default(),
            );
            assert!(matches!(built, Err(BuildError::Config(_))), "{field}");
        }
    }
}
