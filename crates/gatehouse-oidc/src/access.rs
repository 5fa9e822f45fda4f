//! The access phase: find a credential in Kong's fixed precedence (session → bearer →
//! introspection → userinfo → refresh_token → password → client_credentials), authenticate it,
//! authorize, map the consumer, and prepare the upstream request.

use crate::authz;
use crate::cache::{self, Timed, token_key};
use crate::consumer;
use crate::credentials::{self, Args, Found, Pair};
use crate::headers::{self, IDENTITY_HEADERS};
use crate::plugin::Oidc;
use crate::provider::calls::{self, ClaimsAnswer, GrantError, IntrospectionRequest, TokenSet, UserinfoRequest};
use crate::provider::client_auth::{Client, ClientAuth};
use crate::provider::discovery::Discovered;
use crate::respond::Failure;
use crate::session::SessionData;
use crate::tokens::{TokenError, VerifiedJwt};
use gatehouse_core::plugin::{Ctx, Flow};
use gatehouse_session::{OpenError, Session};
use http::{HeaderValue, request::Parts};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::sync::Arc;

/// What authentication established.
#[derive(Default)]
pub(crate) struct Outcome {
    pub method: &'static str,
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
    pub hide: Vec<Found>,
    /// The session to save (new or refreshed), or to touch.
    pub session: Option<SessionWrite>,
    /// The access token's expiry, for a new session.
    pub expires: i64,
    /// The session's id, when the request has or gets a session.
    pub session_id: Option<Arc<str>>,
    /// Upstream headers made once for a deterministic source (a verified bearer token, a cached
    /// grant, a cached session) and reused while that source is.
    pub memo: Option<Memo>,
}

/// Upstream headers, made on first use.
pub(crate) type Memo = Arc<std::sync::OnceLock<Vec<(http::HeaderName, HeaderValue)>>>;

/// A session cookie already opened and decoded, keyed by the request's `Cookie` bytes: the
/// envelope is authenticated, so the same bytes always open to the same session. Its deadlines
/// are checked again on every use.
pub(crate) struct CachedSession {
    session: Session,
    data: SessionData,
    pub(crate) access: Option<Arc<VerifiedJwt>>,
    id: Option<Arc<VerifiedJwt>>,
    session_id: Arc<str>,
    pub(crate) memo: Memo,
}

pub(crate) struct SessionWrite {
    pub session: Session,
    pub previous_chunks: usize,
}

/// A verified token-endpoint answer, as the token cache keeps it.
pub(crate) struct Granted {
    pub ts: TokenSet,
    pub access: Option<Arc<VerifiedJwt>>,
    pub id: Option<Arc<VerifiedJwt>>,
    /// When the access token expires (0: unknown).
    pub expires: i64,
    memo: Memo,
}

impl Granted {
    /// The upstream headers made from this grant, once they were made.
    pub(crate) fn headers(&self) -> Option<&Vec<(http::HeaderName, HeaderValue)>> {
        self.memo.get()
    }

    fn outcome(&self, method: &'static str, client: usize) -> Outcome {
        Outcome {
            method,
            client,
            access_token: Some(self.ts.access_token.clone()),
            id_token: self.ts.id_token.clone(),
            refresh_token: self.ts.refresh_token.clone(),
            access: self.access.clone(),
            id: self.id.clone(),
            expires: self.expires,
            memo: Some(self.memo.clone()),
            ..Outcome::default()
        }
    }
}

/// Per-request state for the response phase.
#[derive(Clone, Default)]
pub(crate) struct Pending {
    pub set_cookies: Vec<HeaderValue>,
    /// The request's `Cookie` headers when it carried a session, so a failure can expire it.
    pub session_cookies: Option<http::HeaderMap>,
    /// The client the request chose (`client_arg`), for the per-client redirect URIs.
    pub client: usize,
    /// Headers for the response (appended in `header_filter`).
    pub downstream: Vec<(http::HeaderName, HeaderValue)>,
}

fn unauthorized_desc(description: &'static str, reason: impl Into<String>) -> Failure {
    Failure::Unauthorized { description: Some(Cow::Borrowed(description)), reason: reason.into() }
}

fn expired(reason: impl Into<String>) -> Failure {
    unauthorized_desc("The access token expired", reason)
}

fn grant_failure(what: &str, e: GrantError) -> Failure {
    match e {
        GrantError::Refused { status, error, description } => Failure::unauthorized(format!(
            "{what}: identity provider refused ({status} {error}{})",
            description.map(|d| format!(": {d}")).unwrap_or_default()
        )),
        GrantError::Idp(e) => Failure::Idp { reason: e.to_string() },
        GrantError::ClientAuth(e) => Failure::Unexpected { reason: e.to_string() },
    }
}

fn token_failure(e: TokenError) -> Failure {
    match e {
        TokenError::Idp(e) => Failure::Idp { reason: e.to_string() },
        e if e.is_expired() => expired("access token expired"),
        e => Failure::Unauthorized { description: Some(Cow::Owned(e.to_string())), reason: e.to_string() },
    }
}

impl Oidc {
    /// The whole access phase for one request.
    pub(crate) async fn access_async(&self, ctx: &mut Ctx, parts: &mut Parts) -> Flow {
        if !self.s.run_on_preflight && parts.method == http::Method::OPTIONS {
            return Flow::Continue;
        }
        if self.s.anonymous.is_some() && ctx.authenticated {
            tracing::debug!("skipping because user is already authenticated");
            return Flow::Continue;
        }
        strip_identity_headers(&mut parts.headers);
        let now = unix_now();
        let mut pending = Pending::default();
        let result = self.authenticate(ctx, parts, now, &mut pending).await;
        let flow = match result {
            Ok(outcome) => {
                // A bearer success the fast path can repeat on its own (see `fast.rs`).
                let remember = match (self.shortcut.bearer(), outcome.method, &outcome.access, &outcome.access_token) {
                    (Some(_), "bearer", Some(v), Some(t)) => Some((v.clone(), t.clone())),
                    _ => None,
                };
                match self.authorize(ctx, parts, outcome, now, &mut pending).await {
                    Ok(()) => {
                        if let (Some(fast), Some((v, t))) = (self.shortcut.bearer(), remember) {
                            fast.remember(&t, &v);
                        }
                        Flow::Continue
                    }
                    Err(f) => self.fail(ctx, parts, f, &mut pending),
                }
            }
            Err(f) => self.fail(ctx, parts, f, &mut pending),
        };
        if !pending.set_cookies.is_empty() || !pending.downstream.is_empty() {
            ctx.extensions.insert(pending.clone());
        }
        match flow {
            Flow::Respond(mut resp) => {
                for c in pending.set_cookies {
                    resp.headers_mut().append(http::header::SET_COOKIE, c);
                }
                Flow::Respond(resp)
            }
            f => f,
        }
    }

    async fn authenticate(
        &self,
        ctx: &mut Ctx,
        parts: &mut Parts,
        now: i64,
        pending: &mut Pending,
    ) -> Result<Outcome, Failure> {
        let m = self.methods;
        if m.session {
            // A cookie seen before skips opening and decoding; the lookup borrows the header
            // bytes (one `Cookie` header, the usual case) and copies nothing.
            let key = cookie_key(&parts.headers);
            if let Some(k) = &key
                && let Some(c) = self.session_cache.get(k.as_ref())
            {
                if let Some(o) = self.cached_session(&c, now) {
                    // A touched cookie went out with the response that touched it; requests still
                    // carrying the old one (in flight then, or a client that ignores cookies) are
                    // served without repeating it. When the entry ages out, the old cookie is opened
                    // and touched again.
                    self.sessions.strip(&mut parts.headers);
                    return Ok(o);
                }
                self.session_cache.invalidate(k.as_ref());
            }
            // Other cookies only: nothing to open, and no key to keep.
            if self.sessions.present_chunks(&parts.headers) > 0 {
                let key: Option<Box<[u8]>> = key.map(|k| k.into_owned().into_boxed_slice());
                let mut cookies = http::HeaderMap::new();
                for v in parts.headers.get_all(http::header::COOKIE) {
                    cookies.append(http::header::COOKIE, v.clone());
                }
                pending.session_cookies = Some(cookies);
                match self.sessions.open(&parts.headers, now) {
                    Ok(opened) => {
                        self.sessions.strip(&mut parts.headers);
                        match SessionData::decode(&opened.session.data) {
                            Some(mut data) => {
                                // The client the session names, wherever it now is in `client_id`.
                                data.client = opened.client.unwrap_or(data.client);
                                return self
                                    .outcome_of_session(
                                        opened.session,
                                        opened.chunks,
                                        data,
                                        now,
                                        pending,
                                        key,
                                        ctx.https,
                                    )
                                    .await;
                            }
                            None => pending.set_cookies.extend(self.sessions.clear(&parts.headers, ctx.https)),
                        }
                    }
                    Err(OpenError::Missing) => {}
                    Err(e) => {
                        tracing::debug!(error = ?e, "session cookie not usable");
                        self.sessions.strip(&mut parts.headers);
                    }
                }
            }
        }

        let body = ctx.body.clone();
        let args = Args::parse(&parts.uri, &parts.headers, body.as_ref());
        let client = self.client_index(parts, &args);
        pending.client = client;
        if m.bearer || m.introspection || m.userinfo {
            let found = credentials::bearer(
                &parts.headers,
                &args,
                &self.bearer_places,
                self.s.bearer_token_header_name.as_deref(),
                self.s.bearer_token_cookie_name.as_deref(),
            );
            if let Some((token, found)) = found {
                let id_token = self
                    .s
                    .id_token_param_name
                    .as_deref()
                    .and_then(|name| credentials::named(&parts.headers, &args, &self.id_token_places, name));
                let mut o = self.bearer(token, now).await?;
                o.hide.push(found);
                if let Some((id, found)) = id_token {
                    // An ID token sent along must be ours, for our client.
                    let aud = self.clients.first().map(|c| c.id.as_str());
                    let v = self.verifier.verify(&id, true, aud, now).await.map_err(token_failure)?;
                    o.id = Some(Arc::new(v));
                    o.id_token = Some(id.into());
                    o.hide.push(found);
                }
                return Ok(o);
            }
        }
        if m.refresh_token
            && let Some(name) = &self.s.refresh_token_param_name
            && let Some((rt, found)) = credentials::named(&parts.headers, &args, &self.refresh_places, name)
        {
            let key = token_key(&[self.provider.issuer(), "refresh_token", &rt, &self.salt]);
            let form = || self.grant_form("refresh_token", &[("refresh_token", &rt)], false);
            let g = self.grant("refresh_token", self.client(client)?, None, key, form, now).await?;
            let mut o = g.value.outcome("refresh_token", client);
            o.hide.push(found);
            return Ok(o);
        }
        let password = m.password.then(|| {
            credentials::pair(&parts.headers, &args, &self.password_places, "password", "username", "password")
        });
        let client_credentials = m.client_credentials.then(|| {
            credentials::pair(
                &parts.headers,
                &args,
                &self.client_credentials_places,
                "client_credentials",
                "client_id",
                "client_secret",
            )
        });
        drop(args);
        let mut last = None;
        if let Some(Some(p)) = password {
            match self.password(client, &p, now).await {
                Ok(mut o) => {
                    o.hide.push(p.found);
                    return Ok(o);
                }
                // With the same Basic pair, Kong tries client_credentials next.
                Err(e @ Failure::Unauthorized { .. }) if client_credentials.as_ref().is_some_and(Option::is_some) => {
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(Some(p)) = client_credentials {
            let mut o = self.client_credentials(client, &p, now).await?;
            o.hide.push(p.found);
            return Ok(o);
        }
        Err(last.unwrap_or_else(|| Failure::unauthorized("no suitable authorization credentials were provided")))
    }

    /// The outcome of a cached session, if it is still good as it is: inside its deadlines, not
    /// due for a save, and its access token not due for a refresh.
    fn cached_session(&self, c: &CachedSession, now: i64) -> Option<Outcome> {
        if !self.session_still_good(c, now) {
            return None;
        }
        Some(Outcome {
            method: "session",
            client: c.data.client,
            access_token: Some(c.data.access_token.clone()),
            id_token: c.data.id_token.clone(),
            refresh_token: c.data.refresh_token.clone(),
            access: c.access.clone(),
            id: c.id.clone(),
            expires: c.data.expires,
            session_id: Some(c.session_id.clone()),
            memo: Some(c.memo.clone()),
            ..Outcome::default()
        })
    }

    /// Whether a cached session can be used as it is: inside its deadlines, not due for a save,
    /// and its access token not due for a refresh.
    pub(crate) fn session_still_good(&self, c: &CachedSession, now: i64) -> bool {
        if self.sessions.expires_at(&c.session).is_some_and(|e| now >= e) || self.sessions.needs_save(&c.session, now) {
            return false;
        }
        let leeway = self.verifier.leeway;
        let refreshable = self.s.refresh_tokens && c.data.refresh_token.is_some();
        // `expires` can come from a token's `exp` (any i64): saturate rather than overflow.
        let deadline =
            if refreshable { c.data.expires.saturating_sub(leeway) } else { c.data.expires.saturating_add(leeway) };
        c.data.expires == 0 || now < deadline
    }

    /// Kong's `client_arg`: a 1-based index or a client id from a header, the query or the body.
    fn client_index(&self, parts: &Parts, args: &Args<'_>) -> usize {
        if self.clients.len() < 2 {
            return 0;
        }
        let name = &self.s.client_arg;
        let x = format!("x-{name}");
        let v = parts
            .headers
            .get(name.as_str())
            .or_else(|| parts.headers.get(x.as_str()))
            .and_then(|v| v.to_str().ok())
            .or_else(|| args.query(name))
            .or_else(|| args.body(name));
        match v {
            Some(v) => match v.parse::<usize>() {
                Ok(i) if (1..=self.clients.len()).contains(&i) => i - 1,
                _ => self.clients.iter().position(|c| c.id == v).unwrap_or(0),
            },
            None => 0,
        }
    }

    async fn discovered(&self, now: i64) -> Result<Arc<Discovered>, Failure> {
        self.provider.get(now).await.map_err(|e| Failure::Idp { reason: e.to_string() })
    }

    async fn endpoint(
        &self,
        configured: &Option<String>,
        name: &'static str,
        now: i64,
    ) -> Result<Option<String>, Failure> {
        if let Some(e) = configured {
            return Ok(Some(e.clone()));
        }
        Ok(self.discovered(now).await?.endpoint(name).map(str::to_string))
    }

    /// A bearer token: a JWT verified locally, else introspection, else userinfo.
    async fn bearer(&self, token: String, now: i64) -> Result<Outcome, Failure> {
        let m = self.methods;
        let mut first: Option<Failure> = None;
        if m.bearer {
            match self.verifier.access_token(&token, now).await {
                Ok(v) => {
                    let mut o = Outcome {
                        method: "bearer",
                        expires: v.exp.unwrap_or(0),
                        memo: Some(v.upstream_headers.clone()),
                        access: Some(v),
                        ..Outcome::default()
                    };
                    if self.s.introspect_jwt_tokens {
                        match self.introspect(&token, now).await? {
                            Some(ans) => o.introspection = Some(ans),
                            None => {
                                return Err(Failure::unauthorized(
                                    "jwt bearer token is not active anymore or has been revoked",
                                ));
                            }
                        }
                    }
                    o.access_token = Some(token.into());
                    return Ok(o);
                }
                Err(TokenError::NotJwt) => {}
                Err(TokenError::Idp(e)) => return Err(Failure::Idp { reason: e.to_string() }),
                Err(e) => first = Some(token_failure(e)),
            }
        }
        if m.introspection {
            match self.introspect(&token, now).await {
                Ok(Some(ans)) => {
                    let exp = ans.value.claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
                    let access = self.verifier.cached(&token, now).ok().flatten();
                    return Ok(Outcome {
                        method: "introspection",
                        access_token: Some(token.into()),
                        introspection: Some(ans),
                        access,
                        expires: exp,
                        ..Outcome::default()
                    });
                }
                Ok(None) => {
                    first.get_or_insert_with(|| Failure::unauthorized("inactive token"));
                }
                Err(f @ Failure::Idp { .. }) if first.is_none() => return Err(f),
                Err(f) => {
                    first.get_or_insert(f);
                }
            }
        }
        if m.userinfo {
            match self.userinfo(&token, now).await {
                Ok(Some(ans)) => {
                    return Ok(Outcome {
                        method: "userinfo",
                        access_token: Some(token.into()),
                        userinfo: Some(ans),
                        ..Outcome::default()
                    });
                }
                Ok(None) => {
                    first.get_or_insert_with(|| Failure::unauthorized("userinfo refused the token"));
                }
                Err(f @ Failure::Idp { .. }) if first.is_none() => return Err(f),
                Err(f) => {
                    first.get_or_insert(f);
                }
            }
        }
        Err(first.unwrap_or_else(|| Failure::unauthorized("invalid bearer token")))
    }

    /// Introspects `token`. `Ok(None)`: the IdP says it is not active (or there is no endpoint).
    pub(crate) async fn introspect(&self, token: &str, now: i64) -> Result<Option<Arc<Timed<ClaimsAnswer>>>, Failure> {
        let Some(endpoint) = self.endpoint(&self.s.introspection_endpoint, "introspection_endpoint", now).await? else {
            return Ok(None);
        };
        let client = &self.clients.first().cloned().unwrap_or_else(|| Client {
            id: String::new(),
            secret: None,
            auth: ClientAuth::None,
            key: None,
            alg: None,
        });
        let req = IntrospectionRequest {
            endpoint: &endpoint,
            client,
            method: self.introspection_auth.unwrap_or(client.auth),
            param_name: self.s.introspection_token_param_name.as_deref().unwrap_or("token"),
            hint: self.s.introspection_hint.as_deref(),
            accept: self.s.introspection_accept.as_deref().unwrap_or("application/json"),
            headers: &self.introspection_headers,
            post_args: &self.introspection_post_args,
        };
        let check_active = self.s.introspection_check_active;
        let fetch = || async {
            let ans = calls::introspect(self.provider.http(), &req, token, now).await?;
            if check_active && ans.claims.get("active") != Some(&Value::Bool(true)) {
                return Err(GrantError::Refused { status: 200, error: "inactive".into(), description: None });
            }
            let exp = ans.claims.get("exp").and_then(Value::as_i64).map(|e| e.saturating_sub(now));
            let until = cache::deadline(std::time::Instant::now(), self.ttl.ttl(exp));
            Ok(Arc::new(Timed { value: ans, until }))
        };
        let result = cache::through(self.introspections.as_ref(), Arc::from(token), fetch).await;
        match result {
            Ok(a) => Ok(Some(a)),
            Err(GrantError::Refused { .. }) => Ok(None),
            Err(e) => Err(grant_failure("introspection", e)),
        }
    }

    /// Asks userinfo with `token`. `Ok(None)`: refused (or there is no endpoint).
    pub(crate) async fn userinfo(&self, token: &str, now: i64) -> Result<Option<Arc<Timed<ClaimsAnswer>>>, Failure> {
        let Some(endpoint) = self.endpoint(&self.s.userinfo_endpoint, "userinfo_endpoint", now).await? else {
            return Ok(None);
        };
        let req = UserinfoRequest {
            endpoint: &endpoint,
            accept: self.s.userinfo_accept.as_deref().unwrap_or("application/json"),
            headers: &self.userinfo_headers,
            query: &self.userinfo_query,
        };
        let fetch = || async {
            let ans = calls::userinfo(self.provider.http(), &req, token).await?;
            let until = cache::deadline(std::time::Instant::now(), self.ttl.ttl(None));
            Ok(Arc::new(Timed { value: ans, until }))
        };
        let result = cache::through(self.userinfos.as_ref(), Arc::from(token), fetch).await;
        match result {
            Ok(a) => Ok(Some(a)),
            Err(GrantError::Refused { .. }) => Ok(None),
            Err(e) => Err(grant_failure("userinfo", e)),
        }
    }

    async fn password(&self, client: usize, p: &Pair, now: i64) -> Result<Outcome, Failure> {
        let key = self.password_key(p);
        let form = || self.grant_form("password", &[("username", &p.user), ("password", &p.secret)], true);
        let g = self.grant("password", self.client(client)?, None, key, form, now).await?;
        Ok(g.value.outcome("password", client))
    }

    async fn client_credentials(&self, client: usize, p: &Pair, now: i64) -> Result<Outcome, Failure> {
        // The request's client id and secret authenticate to the token endpoint, with the
        // configured client's secret-based method.
        let auth = match self.clients.get(client).map(|c| c.auth) {
            Some(a @ (ClientAuth::SecretBasic | ClientAuth::SecretPost | ClientAuth::SecretJwt)) => a,
            _ => ClientAuth::SecretBasic,
        };
        let as_client = Client { id: p.user.clone(), secret: Some(p.secret.clone()), auth, key: None, alg: None };
        let key = self.client_credentials_key_prefix.key(&[&p.user, &p.secret]);
        let form = || self.grant_form("client_credentials", &[], true);
        let g = self.grant("client_credentials", &as_client, Some(auth), key, form, now).await?;
        Ok(g.value.outcome("client_credentials", client))
    }

    /// The configured client a grant is made for. Without any `client_id` there is none: a
    /// config error the request gets as a 500, not a panic.
    fn client(&self, i: usize) -> Result<&Client, Failure> {
        self.clients.get(i).ok_or_else(|| Failure::Unexpected {
            reason: "no client_id is configured, so no grant can be made".to_string(),
        })
    }

    /// The token cache key of a password grant.
    pub(crate) fn password_key(&self, p: &Pair) -> [u8; 32] {
        self.password_key_prefix.key(&[&p.user, &p.secret])
    }

    /// A grant's form: `grant_type`, its own fields, then (`with_scope`) `scope`, `audience` and
    /// `token_post_args`. Made only when the token endpoint is called, not on a cache hit.
    fn grant_form(&self, grant_type: &str, fields: &[(&str, &str)], with_scope: bool) -> Vec<(String, String)> {
        let mut form = vec![("grant_type".to_string(), grant_type.to_string())];
        form.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        if with_scope {
            let scope = self.s.scopes.as_ref().map(|s| s.join(" ")).unwrap_or_default();
            if !scope.is_empty() {
                form.push(("scope".into(), scope));
            }
            if let Some(aud) = &self.s.audience
                && !aud.is_empty()
            {
                form.push(("audience".into(), aud.join(" ")));
            }
            form.extend(self.token_post_args.iter().cloned());
        }
        form
    }

    /// One token-endpoint call and the verification of what it returned, through the token cache
    /// (single flight per key) when it is on: a cached grant costs a hash lookup, not a signature check.
    #[allow(clippy::too_many_arguments)]
    async fn grant(
        &self,
        what: &'static str,
        client: &Client,
        method: Option<ClientAuth>,
        key: [u8; 32],
        form: impl FnOnce() -> Vec<(String, String)>,
        now: i64,
    ) -> Result<Arc<Timed<Granted>>, Failure> {
        let endpoint = self
            .endpoint(&self.s.token_endpoint, "token_endpoint", now)
            .await?
            .ok_or_else(|| Failure::unauthorized("token endpoint was not specified"))?;
        let method = method.or(self.token_auth).unwrap_or(client.auth);
        let fetch = move || async move {
            let ts = calls::token(self.provider.http(), &endpoint, client, method, form(), &self.token_headers, now)
                .await
                .map_err(|e| grant_failure(what, e))?;
            let g = self.verify_grant(what, &client.id, ts, now).await?;
            let lifetime = (g.expires != 0).then(|| g.expires.saturating_sub(now));
            let until = cache::deadline(std::time::Instant::now(), self.ttl.ttl(lifetime));
            Ok(Arc::new(Timed { value: g, until }))
        };
        // A refresh token is single-use at many IdPs: never serve its answer twice.
        let tokens = self.tokens.as_ref().filter(|_| what != "refresh_token");
        let g = cache::through(tokens, key, fetch).await?;
        if g.value.expires != 0 && g.value.expires.saturating_add(self.verifier.leeway) <= now {
            if let Some(c) = &self.tokens {
                c.invalidate(&key);
            }
            return Err(expired("cached token expired"));
        }
        Ok(g)
    }

    /// Verifies what a grant returned.
    /// `client_id` is the client the grant was made for: an ID token must be addressed to it.
    async fn verify_grant(
        &self,
        method: &'static str,
        client_id: &str,
        ts: TokenSet,
        now: i64,
    ) -> Result<Granted, Failure> {
        // The token endpoint call took time: its tokens are checked against the clock as it is now.
        let now = now.max(unix_now());
        let check_sig = self.s.verify_signature && !self.s.ignore_signature.iter().any(|g| g == method);
        let access = match self.verifier.access_token(&ts.access_token, now).await {
            Ok(v) => Some(v),
            // An opaque access token is fine: the IdP just issued it to us.
            Err(TokenError::NotJwt) => None,
            Err(e) if !check_sig && !matches!(e, TokenError::Idp(_)) => {
                VerifiedJwt::read_unverified(&ts.access_token).map(Arc::new)
            }
            Err(e) => return Err(token_failure(e)),
        };
        let id = match &ts.id_token {
            Some(id) => {
                Some(Arc::new(self.verifier.verify(id, check_sig, Some(client_id), now).await.map_err(token_failure)?))
            }
            None => None,
        };
        let expires = access.as_ref().and_then(|a| a.exp).or(ts.expires_at).unwrap_or(0);
        Ok(Granted { ts, access, id, expires, memo: Memo::default() })
    }

    /// A request carrying our session cookie: the tokens come from the session; an expired
    /// access token is refreshed when possible.
    #[allow(clippy::too_many_arguments)]
    async fn outcome_of_session(
        &self,
        mut session: Session,
        chunks: usize,
        mut data: SessionData,
        now: i64,
        pending: &mut Pending,
        key: Option<Box<[u8]>>,
        https: bool,
    ) -> Result<Outcome, Failure> {
        let leeway = self.verifier.leeway;
        let refreshable = self.s.refresh_tokens && data.refresh_token.is_some();
        let deadline =
            if refreshable { data.expires.saturating_sub(leeway) } else { data.expires.saturating_add(leeway) };
        let mut changed = false;
        if data.expires != 0 && now >= deadline {
            if !refreshable {
                return Err(expired(if self.s.refresh_tokens {
                    "access token cannot be refreshed in absence of refresh token"
                } else {
                    "access token has expired and refreshing of tokens was disabled"
                }));
            }
            let client = data.client.min(self.clients.len().saturating_sub(1));
            let rt = data.refresh_token.clone().unwrap_or_default();
            let key = token_key(&[self.provider.issuer(), "refresh_token", &rt, &self.salt]);
            let form = || self.grant_form("refresh_token", &[("refresh_token", &rt)], false);
            match self.grant("refresh_token", self.client(client)?, None, key, form, now).await {
                Ok(g) => {
                    let o = g.value.outcome("refresh_token", client);
                    data.access_token = o.access_token.clone().unwrap_or_default();
                    data.id_token = o.id_token.clone().or(data.id_token.take());
                    data.refresh_token = o.refresh_token.clone().or(data.refresh_token.take());
                    data.expires = o.expires;
                    session.regenerate_id();
                    changed = true;
                }
                Err(e) if now < data.expires => {
                    tracing::warn!(
                        reason = e.reason(),
                        "continuing with the non-expired access token despite the refresh failure"
                    );
                }
                Err(e) => return Err(e),
            }
        }
        let access = match self.verifier.cached(&data.access_token, now).ok().flatten() {
            Some(v) => Some(v),
            None => VerifiedJwt::read_unverified(&data.access_token).map(Arc::new),
        };
        let id = data.id_token.as_deref().and_then(VerifiedJwt::read_unverified).map(Arc::new);
        if changed {
            session.data = data.encode();
        }
        let session_id: Option<Arc<str>> = Some(session.id_string().into());
        let touch = !changed && self.sessions.needs_save(&session, now);
        if touch {
            // Only the idle clock moves: seal it now, so the cached entry below (old cookie bytes →
            // touched session) serves the requests still carrying the old cookie without sealing again.
            match self.sessions.save(&mut session, now, https, chunks) {
                Ok(cookies) => pending.set_cookies.extend(cookies),
                Err(e) => tracing::warn!(error = %e, "session not saved"),
            }
        }
        let mut memo = None;
        if !changed && let Some(key) = key {
            // The next request with these cookie bytes can skip opening and decoding.
            let c = Arc::new(CachedSession {
                session: session.clone(),
                data: data.clone(),
                access: access.clone(),
                id: id.clone(),
                session_id: session.id_string().into(),
                memo: Memo::default(),
            });
            memo = Some(c.memo.clone());
            self.session_cache.insert(key, c);
        }
        let write = changed;
        let session = write.then_some(SessionWrite { session, previous_chunks: chunks });
        let _ = pending;
        Ok(Outcome {
            memo,
            session_id,
            method: "session",
            client: data.client,
            access_token: Some(data.access_token),
            id_token: data.id_token,
            refresh_token: data.refresh_token,
            access,
            id,
            session,
            expires: data.expires,
            ..Outcome::default()
        })
    }

    /// Authorization checks, consumer mapping, and the upstream request changes.
    async fn authorize(
        &self,
        ctx: &mut Ctx,
        parts: &mut Parts,
        mut o: Outcome,
        now: i64,
        pending: &mut Pending,
    ) -> Result<(), Failure> {
        {
            let intro = o.introspection.as_ref().map(|a| &a.value.claims);
            let access = o.access.as_ref().map(|a| &a.claims);
            let checks: Vec<&Map<String, Value>> = [intro, access].into_iter().flatten().collect();
            authz::check(&self.requirements, &checks).map_err(|reason| Failure::Forbidden { reason })?;
        }

        // The client's `Authorization: Bearer <token>`, to send on unchanged when it is the token.
        let authorization = match (&o.access_token, parts.headers.get(http::header::AUTHORIZATION)) {
            (Some(t), Some(v)) if v.as_bytes().strip_prefix(b"Bearer ") == Some(t.as_bytes()) => Some(v.clone()),
            _ => None,
        };
        // From here on the request is authenticated: credentials go, spoofable headers go, and
        // only what this plugin verified is set.
        if self.s.hide_credentials {
            for found in &o.hide {
                if let Some(b) = credentials::hide(found, parts, ctx.body.as_ref()) {
                    ctx.body = Some(b);
                }
            }
        }
        self.headers.strip_spoofed(&mut parts.headers);

        // Userinfo and introspection are fetched for headers only when a header needs them.
        if let Some(token) = &o.access_token {
            if o.introspection.is_none() && self.headers.needs_introspection() {
                let token = token.clone();
                o.introspection = self.introspect(&token, now).await?;
            }
            if o.userinfo.is_none()
                && (self.headers.needs_userinfo() || self.userinfo_needed_for_claims(&o))
                && let Some(token) = o.access_token.clone()
            {
                o.userinfo = self.userinfo(&token, now).await?;
            }
        }

        let intro = o.introspection.as_ref().map(|a| &a.value.claims);
        let access = o.access.as_ref().map(|a| &a.claims);
        let id = o.id.as_ref().map(|a| &a.claims);
        let user = if self.s.search_user_info { o.userinfo.as_ref().map(|a| &a.value.claims) } else { None };
        let sources: Vec<&Map<String, Value>> = [intro, id, access, user].into_iter().flatten().collect();
        let mut subject = None;
        if let Some(mapping) = &self.mapping {
            match mapping.find(&ctx.consumers, &sources) {
                Ok(c) => {
                    consumer::set_headers(&mut parts.headers, Some(&c), false);
                    subject = c.username.clone().or_else(|| c.custom_id.clone()).or_else(|| Some(c.id.clone()));
                    ctx.consumer = Some(c);
                }
                Err(e) if self.s.consumer_optional => tracing::debug!(reason = %e, "kong consumer is optional"),
                Err(e) => return Err(Failure::Forbidden { reason: format!("kong consumer was not found ({e})") }),
            }
        }
        if subject.is_none()
            && let Some(path) = &self.s.credential_claim
        {
            subject = sources.iter().find_map(|s| authz::find(s, path)).and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
        }
        if let Some(path) = &self.s.authenticated_groups_claim {
            let groups = sources.iter().find_map(|s| authz::find(s, path));
            let mut list: Vec<&str> = Vec::new();
            match groups {
                Some(Value::String(s)) => list.extend(s.split_whitespace()),
                Some(Value::Array(a)) => list.extend(a.iter().filter_map(Value::as_str)),
                _ => {}
            }
            let mut seen = std::collections::HashSet::new();
            list.retain(|g| seen.insert(*g));
            if !list.is_empty()
                && let Some(v) = headers::header_value(&list.join(", "))
            {
                parts.headers.insert("x-authenticated-groups", v);
            }
        }

        // Sessions: a new one after any other method (unless disabled for it), or the refreshed
        // or touched one.
        let disabled = self.s.disable_session.as_ref().is_some_and(|d| d.iter().any(|m| m == o.method));
        if o.method != "session" && self.methods.session && !disabled {
            let ttl = i64::try_from(self.ttl.ttl(None).as_secs()).unwrap_or(i64::MAX);
            let expires = if o.expires != 0 { o.expires } else { now.saturating_add(ttl) };
            let data = SessionData {
                client: o.client,
                access_token: o.access_token.clone().unwrap_or_default(),
                id_token: o.id_token.clone(),
                refresh_token: o.refresh_token.clone(),
                expires,
                auth_method: o.method.to_string(),
            };
            let previous_chunks = pending.session_cookies.as_ref().map_or(0, |c| self.sessions.present_chunks(c));
            let client = self.clients.get(o.client).map(|c| c.id.as_str());
            let session = self.sessions.new_session_for(client, now, subject.clone(), data.encode());
            o.session_id = Some(session.id_string().into());
            o.session = Some(SessionWrite { session, previous_chunks });
        }
        if let Some(mut w) = o.session.take() {
            match self.sessions.save(&mut w.session, now, ctx.https, w.previous_chunks) {
                Ok(cookies) => pending.set_cookies.extend(cookies),
                Err(e) => tracing::warn!(error = %e, "session not saved"),
            }
        }

        // With a deterministic source (no introspection or userinfo answer, no freshly made
        // session id), the headers are a function of it: made once and reused.
        let memo = o.memo.as_ref().filter(|_| {
            o.introspection.is_none()
                && o.userinfo.is_none()
                && (o.method == "session" || o.session_id.is_none())
                && (o.method != "bearer" || o.id.is_none())
        });
        let src = headers::Sources {
            introspection: o.introspection.as_ref().map(|a| &a.value.claims),
            introspection_jwt: o.introspection.as_ref().and_then(|a| a.value.jwt.as_deref()),
            access: o.access.as_ref().map(|a| &a.claims),
            id: o.id.as_ref().map(|a| &a.claims),
            userinfo: o.userinfo.as_ref().map(|a| &a.value.claims),
            userinfo_jwt: o.userinfo.as_ref().and_then(|a| a.value.jwt.as_deref()),
            access_token: o.access_token.as_deref(),
            id_token: o.id_token.as_deref(),
            refresh_token: o.refresh_token.as_deref(),
            access_jwk: o.access.as_ref().and_then(|a| a.jwk.as_ref()).map(|k| k.json()),
            id_jwk: o.id.as_ref().and_then(|a| a.jwk.as_ref()).map(|k| k.json()),
            session_id: o.session_id.as_deref(),
            // A memoized value outlives this request: it must not keep the request's read buffer
            // alive through a shared slice, so it is made afresh.
            authorization: if memo.is_some() { None } else { authorization.as_ref() },
        };
        match memo {
            Some(m) => {
                for (name, value) in m.get_or_init(|| headers::build(&self.headers, &self.headers.upstream, &src)) {
                    parts.headers.insert(name.clone(), value.clone());
                }
            }
            None => {
                for (name, value) in headers::build(&self.headers, &self.headers.upstream, &src) {
                    parts.headers.insert(name, value);
                }
            }
        }
        if !self.headers.downstream_is_empty() {
            pending.downstream = headers::build(&self.headers, &self.headers.downstream, &src);
        }
        ctx.authenticated = true;
        Ok(())
    }

    /// Whether a claim header's claim is in none of the other sources, so userinfo must be asked
    /// (only with `search_user_info`).
    fn userinfo_needed_for_claims(&self, o: &Outcome) -> bool {
        if !self.s.search_user_info || !self.headers.has_claims() {
            return false;
        }
        let src = headers::Sources {
            introspection: o.introspection.as_ref().map(|a| &a.value.claims),
            access: o.access.as_ref().map(|a| &a.claims),
            id: o.id.as_ref().map(|a| &a.claims),
            ..headers::Sources::default()
        };
        [&self.headers.upstream, &self.headers.downstream]
            .iter()
            .flat_map(|d| d.claims.iter())
            .any(|c| headers::search(&src, &c.path, false).is_none())
    }

    fn fail(&self, ctx: &mut Ctx, parts: &mut Parts, f: Failure, pending: &mut Pending) -> Flow {
        let client = pending.client;
        match &f {
            Failure::Idp { reason } | Failure::Unexpected { reason } => {
                tracing::error!(reason = %reason, "openid-connect: request refused")
            }
            _ => tracing::info!(reason = f.reason(), "openid-connect: request refused"),
        }
        let destroy = match f {
            Failure::Unauthorized { .. } => self.s.unauthorized_destroy_session,
            Failure::Forbidden { .. } => self.s.forbidden_destroy_session,
            _ => false,
        };
        if destroy && let Some(cookies) = pending.session_cookies.take() {
            pending.set_cookies.extend(self.sessions.clear(&cookies, ctx.https));
        }
        if let Some(anon) = &self.s.anonymous
            && f.allows_anonymous()
        {
            let Some(c) = ctx.consumers.find_anonymous(anon).cloned() else {
                let f = Failure::Unexpected { reason: format!("anonymous consumer {anon} was not found") };
                tracing::error!(reason = f.reason(), "openid-connect: request refused");
                return Flow::Respond(self.responder.respond(&f));
            };
            self.headers.strip_spoofed(&mut parts.headers);
            consumer::set_headers(&mut parts.headers, Some(&c), true);
            ctx.consumer = Some(c);
            return Flow::Continue;
        }
        let redirect = match f {
            Failure::Unauthorized { .. } => &self.s.unauthorized_redirect_uri,
            Failure::Forbidden { .. } => &self.s.forbidden_redirect_uri,
            _ => &self.s.unexpected_redirect_uri,
        };
        if let Some(uri) = redirect.as_ref().and_then(|l| l.get(client).or(l.first())) {
            return Flow::Respond(crate::respond::redirect(uri));
        }
        Flow::Respond(self.responder.respond(&f))
    }
}

/// Identity headers are never taken from the client. One pass over the request's few headers,
/// and lookups only when one is there.
pub(crate) fn strip_identity_headers(headers: &mut http::HeaderMap) {
    if headers.keys().any(|k| IDENTITY_HEADERS.contains(&k.as_str())) {
        for h in IDENTITY_HEADERS {
            headers.remove(h);
        }
    }
}

/// The cache key of a request's session: its `Cookie` header bytes, borrowed when there is one
/// header, joined with `\n` (which no header value holds) when there are several. `None`
/// without cookies.
pub(crate) fn cookie_key(headers: &http::HeaderMap) -> Option<std::borrow::Cow<'_, [u8]>> {
    let mut all = headers.get_all(http::header::COOKIE).iter();
    let first = all.next()?;
    let Some(second) = all.next() else { return Some(first.as_bytes().into()) };
    let mut key = Vec::with_capacity(first.len() + second.len() + 1);
    key.extend_from_slice(first.as_bytes());
    for v in std::iter::once(second).chain(all) {
        key.push(b'\n');
        key.extend_from_slice(v.as_bytes());
    }
    Some(key.into())
}

/// The current Unix time in seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use crate::plugin::Oidc;
    use serde_json::json;

    fn pairs(form: &[(String, String)]) -> Vec<(&str, &str)> {
        form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn grant_forms_carry_scope_audience_and_post_args_except_refreshes() {
        let o = Oidc::for_tests(json!({
            "scopes": ["openid", "email"],
            "audience": ["api", "web"],
            "token_post_args_names": ["resource"],
            "token_post_args_values": ["https://api.example"],
        }));
        let form = o.grant_form("password", &[("username", "john"), ("password", "doe")], true);
        assert_eq!(
            pairs(&form),
            [
                ("grant_type", "password"),
                ("username", "john"),
                ("password", "doe"),
                ("scope", "openid email"),
                ("audience", "api web"),
                ("resource", "https://api.example"),
            ]
        );
        let form = o.grant_form("refresh_token", &[("refresh_token", "rt")], false);
        assert_eq!(pairs(&form), [("grant_type", "refresh_token"), ("refresh_token", "rt")]);
    }

    #[test]
    fn the_scope_is_in_password_keys_only_with_token_cache_key_include_scope() {
        let headers =
            http::HeaderMap::from_iter([(http::header::AUTHORIZATION, "Basic am9objpkb2U=".parse().unwrap())]);
        let p = crate::credentials::basic_pair(&headers, "password").expect("a pair");
        let key = |config: serde_json::Value| {
            let mut config = config;
            config["cache_tokens_salt"] = json!("salt");
            Oidc::for_tests(config).password_key(&p)
        };
        // Off by default, as in Kong.
        assert_eq!(key(json!({ "scopes": ["openid"] })), key(json!({ "scopes": ["openid", "email"] })));
        let with = |scopes| key(json!({ "scopes": scopes, "token_cache_key_include_scope": true }));
        assert_ne!(with(json!(["openid"])), with(json!(["openid", "email"])));
        assert_eq!(
            with(json!(["openid", "email"])),
            crate::cache::token_key(&[
                "http://127.0.0.1:9/realms/x",
                "password",
                "salt",
                "openid email",
                "john",
                "doe"
            ])
        );
    }

    /// A grant as the token cache holds it after a password grant for john.
    async fn cache_grant(o: &Oidc, basic: &str) {
        use super::{Granted, Memo};
        use crate::cache::Timed;
        use crate::provider::calls::TokenSet;
        let now = super::unix_now();
        let claims = json!({ "preferred_username": "john", "exp": now + 3600 });
        let serde_json::Value::Object(claims) = claims else { unreachable!() };
        let headers = http::HeaderMap::from_iter([(http::header::AUTHORIZATION, basic.parse().unwrap())]);
        let p = crate::credentials::basic_pair(&headers, "password").expect("a pair");
        let ts = TokenSet {
            access_token: "at".into(),
            id_token: None,
            refresh_token: None,
            expires_at: None,
            raw: Default::default(),
        };
        let access = Some(std::sync::Arc::new(crate::tokens::VerifiedJwt::unverified(claims)));
        let g = Granted { ts, access, id: None, expires: now + 3600, memo: Memo::default() };
        let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let fetch = || async { Ok::<_, ()>(std::sync::Arc::new(Timed { value: g, until })) };
        o.tokens.as_ref().expect("token cache").try_get_with(o.password_key(&p), fetch).await.expect("cached");
    }

    fn request(headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().uri("/api");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn ctx() -> gatehouse_core::plugin::Ctx {
        gatehouse_core::plugin::Ctx::new("127.0.0.1:1".parse().unwrap(), "r".into(), None, Default::default())
    }

    #[tokio::test]
    async fn a_cached_password_grant_passes_the_fast_way_as_it_would_the_general_way() {
        use crate::fast::Fast;
        use gatehouse_core::plugin::Flow;
        let no_client =
            Oidc::for_tests(json!({ "auth_methods": ["password"], "token_endpoint": "http://127.0.0.1:9/t" }));
        let refused =
            no_client.access_async(&mut ctx(), &mut request(&[("authorization", "Basic am9objpkb2U=")])).await;
        assert!(matches!(refused, Flow::Respond(r) if r.status() == 500), "no client: a 500, not a panic");

        let o = Oidc::for_tests(json!({
            "auth_methods": ["password"],
            "client_id": ["gatehouse"],
            "client_secret": ["secret"],
            "token_endpoint": "http://127.0.0.1:9/token",
            "upstream_headers_claims": ["preferred_username"],
            "upstream_headers_names": ["x_user"],
            "hide_credentials": true,
        }));
        assert!(matches!(o.shortcut, crate::fast::Shortcut::Password));
        let basic = "Basic am9objpkb2U=";
        cache_grant(&o, basic).await;
        let req = || request(&[("authorization", basic), ("x-user", "mallory"), ("x-consumer-id", "1")]);
        // The grant is cached, but its headers are made by the general path's first answer.
        let again = crate::fast::tests::same_as_general(&o, req, Fast::password).await;
        assert_eq!(again.headers["x-user"], "john");
        assert_eq!(again.headers["authorization"], "Bearer at");

        let mut wrong = request(&[("authorization", "Basic am9objp4")]);
        assert!(Fast::password(&o, &mut ctx(), &mut wrong).is_none(), "another password: the general way");
        assert_eq!(wrong.headers["authorization"], "Basic am9objp4");
        let password = |config| matches!(Oidc::for_tests(config).shortcut, crate::fast::Shortcut::Password);
        assert!(!password(json!({ "auth_methods": ["password", "bearer"] })));
        assert!(!password(json!({ "auth_methods": ["password"], "cache_tokens": false })));
    }
}
