//! The calls made to the identity provider on a request's behalf, with their caches: the token
//! endpoint (password, client_credentials, refresh_token), introspection and userinfo. Everything
//! they send is decided at build time (clients, endpoints, forms, headers, cache keys).

use crate::cache::{self, KeyPrefix, Timed, TimedCache, TtlRule, token_key, unix_now};
use crate::claims::{self, IdContext};
use crate::credentials::Pair;
use crate::headers::{self, Memo};
use crate::method::{Method, Methods};
use crate::outcome::{Outcome, Replay};
use crate::provider::calls::{self, ClaimsAnswer, GrantError, IntrospectionRequest, TokenSet, UserinfoRequest};
use crate::provider::client_auth::{Client, ClientAuth};
use crate::provider::discovery::Provider;
use crate::respond::Failure;
use crate::session::SessionData;
use crate::settings::Settings;
use crate::tokens::{Expect, TokenError, VerifiedJwt, Verifier};
use gatehouse_core::plugin::BuildError;
use gatehouse_jose::Algorithm;
use gatehouse_jose::sign::SigningKey;
use gatehouse_session::Session;
use http::{HeaderMap, HeaderName};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many answers each IdP cache keeps per instance.
const CACHE_ENTRIES: u64 = 16_384;

/// How long, at most, a session's refresh is served to requests still carrying the session's
/// old cookie (seconds). Never longer than the new access token lives.
pub(crate) const REFRESH_GRACE: i64 = 30;

/// A session's refresh, shared by every request of that session that found its access token
/// due: the session with its one new id and the new tokens sealed in its data.
pub(crate) struct Refreshed {
    pub session: Session,
    pub data: SessionData,
}

/// A verified token-endpoint answer, as the token cache keeps it.
pub(crate) struct Granted {
    pub ts: TokenSet,
    pub access: Option<Arc<VerifiedJwt>>,
    pub id: Option<Arc<VerifiedJwt>>,
    /// When the access token expires (0: unknown).
    pub expires: i64,
    pub memo: Memo,
    /// The answer's headers for the client (`token_headers_replay`), when its grant replays them.
    pub replay: Option<Replay>,
}

impl Granted {
    /// The outcome of authenticating with this grant.
    pub fn outcome(&self, method: Method, client: usize) -> Outcome {
        Outcome {
            client,
            access_token: Some(self.ts.access_token.clone()),
            id_token: self.ts.id_token.clone(),
            refresh_token: self.ts.refresh_token.clone(),
            access: self.access.clone(),
            id: self.id.clone(),
            expires: self.expires,
            memo: Some(self.memo.clone()),
            replay: self.replay.clone(),
            ..Outcome::new(method)
        }
    }

    /// Whether the keys that verified its tokens are still published: a grant whose key a
    /// JWKS refresh removed is not served from the cache (a new grant is made).
    pub fn holds_keys(&self, v: &Verifier) -> bool {
        v.holds_keys(&[&self.access, &self.id])
    }

    /// Whether its tokens have expired at `now` (`leeway` after their `expires`).
    pub fn expired(&self, now: i64, leeway: i64) -> bool {
        self.expires != 0 && self.expires.saturating_add(leeway) <= now
    }
}

/// `token_headers_replay`: which headers of the token endpoint's answer go on to the client,
/// under which names, after which grants. Decided at build time.
struct ReplayRule {
    /// `token_headers_grants`; none when it is null (no replay at all, as in Kong).
    grants: Methods,
    /// The names looked up in the answer (case-insensitive), each once.
    lookup: Vec<HeaderName>,
    /// Each `token_headers_replay` name in order: as looked up, and as sent (`token_headers_prefix`
    /// and the name as configured, `_` sent as `-`).
    names: Vec<(HeaderName, HeaderName)>,
    /// `max_added_header_size` and `max_added_headers_size`: an IdP's header is bounded as the
    /// plugin's own are.
    max_one: usize,
    max_total: usize,
}

impl ReplayRule {
    fn build(s: &Settings) -> ReplayRule {
        let prefix = s.token_headers_prefix.as_deref().unwrap_or_default();
        let names: Vec<(HeaderName, HeaderName)> = s
            .token_headers_replay
            .iter()
            .flatten()
            .filter_map(|n| {
                Some((HeaderName::from_bytes(n.as_bytes()).ok()?, headers::wire_name(&format!("{prefix}{n}"))?))
            })
            .collect();
        let mut lookup: Vec<HeaderName> = Vec::new();
        for (n, _) in &names {
            if !lookup.contains(n) {
                lookup.push(n.clone());
            }
        }
        let grants = match &s.token_headers_grants {
            Some(g) if !names.is_empty() => Methods::of(g),
            _ => Methods::default(),
        };
        ReplayRule { grants, lookup, names, max_one: s.max_added_header_size, max_total: s.max_added_headers_size }
    }

    /// The answer headers a grant of `method` keeps: none when it replays nothing.
    fn keep(&self, method: Method) -> &[HeaderName] {
        if self.grants.contains(method) { &self.lookup } else { &[] }
    }

    /// The kept headers as the client gets them, every value of each name in config order. A
    /// value with a control character (TAB included) or that is not UTF-8 is left out, as is
    /// one over the size limits: what the IdP sends is not trusted onto the wire.
    fn headers(&self, kept: &HeaderMap) -> Option<Replay> {
        if kept.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        let mut total = 0usize;
        for (lookup, name) in &self.names {
            for v in kept.get_all(lookup) {
                let Some(value) = std::str::from_utf8(v.as_bytes()).ok().and_then(headers::header_value) else {
                    tracing::warn!(header = %lookup, "token endpoint header not replayed: the value holds a control character or is not UTF-8");
                    continue;
                };
                let size = name.as_str().len().saturating_add(value.len());
                if size > self.max_one || total.saturating_add(size) > self.max_total {
                    tracing::warn!(header = %lookup, bytes = size, "token endpoint header not replayed: too large");
                    continue;
                }
                total += size;
                out.push((name.clone(), value));
            }
        }
        (!out.is_empty()).then(|| out.into())
    }
}

/// What an introspection call sends, besides the token.
struct Introspection {
    endpoint: Option<String>,
    client: Client,
    auth: ClientAuth,
    param_name: String,
    hint: Option<String>,
    accept: String,
    headers: Vec<(String, String)>,
    post_args: Vec<(String, String)>,
    check_active: bool,
    /// With `introspection_check_active` and `verify_claims`: the leeway for the answer's
    /// `exp`/`nbf` window (an answer outside it is inactive).
    window_leeway: Option<i64>,
}

/// What a userinfo call sends, besides the token.
struct Userinfo {
    endpoint: Option<String>,
    accept: String,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
}

/// One instance's IdP calls and their caches.
pub(crate) struct Grants {
    provider: Arc<Provider>,
    /// The configured clients (`client_id[i]` ...).
    pub clients: Vec<Client>,
    token_endpoint: Option<String>,
    token_auth: Option<ClientAuth>,
    token_headers: Vec<(String, String)>,
    replay: ReplayRule,
    /// `scope`, `audience` and `token_post_args`, sent with password and client_credentials grants.
    scoped_form: Vec<(String, String)>,
    /// `token_post_args` alone, sent with the code (the scope went with the authorization request).
    post_args: Vec<(String, String)>,
    salt: String,
    /// Grant cache keys up to the credentials: issuer, grant, salt, scope.
    password_key_prefix: KeyPrefix,
    client_credentials_key_prefix: KeyPrefix,
    /// Grants whose tokens are read without a signature check (`ignore_signature`).
    ignore_signature: Methods,
    verify_signature: bool,
    ttl: TtlRule,
    /// Verified token-endpoint answers (`cache_tokens`).
    pub tokens: Option<TimedCache<[u8; 32], Granted>>,
    /// Session refreshes by refresh token, for [`REFRESH_GRACE`] at most (always on: it is
    /// what keeps concurrent requests of one session from spending its refresh token twice).
    session_refreshes: TimedCache<[u8; 32], Refreshed>,
    introspections: Option<TimedCache<Arc<str>, ClaimsAnswer>>,
    userinfos: Option<TimedCache<Arc<str>, ClaimsAnswer>>,
    introspection: Introspection,
    userinfo: Userinfo,
}

fn pairs(names: &Option<Vec<String>>, values: &Option<Vec<String>>) -> Vec<(String, String)> {
    match (names, values) {
        (Some(n), Some(v)) => n.iter().cloned().zip(v.iter().cloned()).collect(),
        _ => Vec::new(),
    }
}

impl Grants {
    /// The IdP calls of a config. `salt` keys the token cache (`cache_tokens_salt`, else random).
    pub fn build(s: &Settings, provider: Arc<Provider>, clients: Vec<Client>, salt: String, ttl: TtlRule) -> Grants {
        let auth = |name: &Option<String>| name.as_deref().and_then(ClientAuth::from_name);
        // The scope is part of grant cache keys only with `token_cache_key_include_scope`.
        let scope = s.scopes.as_ref().map(|s| s.join(" ")).unwrap_or_default();
        let scope_key = if s.token_cache_key_include_scope { scope.as_str() } else { "" };
        let key_prefix = |grant| KeyPrefix::new(&[provider.issuer(), grant, &salt, scope_key]);
        let password_key_prefix = key_prefix("password");
        let client_credentials_key_prefix = key_prefix("client_credentials");
        let mut scoped_form = Vec::new();
        if !scope.is_empty() {
            scoped_form.push(("scope".to_string(), scope.clone()));
        }
        if let Some(aud) = s.audience.as_ref().filter(|a| !a.is_empty()) {
            scoped_form.push(("audience".into(), aud.join(" ")));
        }
        let post_args = pairs(&s.token_post_args_names, &s.token_post_args_values);
        scoped_form.extend(post_args.iter().cloned());
        let introspection_client = clients.first().cloned().unwrap_or_else(|| Client {
            id: String::new(),
            secret: None,
            auth: ClientAuth::None,
            key: None,
            alg: None,
        });
        let introspection = Introspection {
            endpoint: s.introspection_endpoint.clone(),
            auth: auth(&s.introspection_endpoint_auth_method).unwrap_or(introspection_client.auth),
            client: introspection_client,
            param_name: s.introspection_token_param_name.clone().unwrap_or_else(|| "token".into()),
            hint: s.introspection_hint.clone(),
            accept: s.introspection_accept.clone().unwrap_or_else(|| "application/json".into()),
            headers: pairs(&s.introspection_headers_names, &s.introspection_headers_values),
            post_args: pairs(&s.introspection_post_args_names, &s.introspection_post_args_values),
            check_active: s.introspection_check_active,
            window_leeway: (s.introspection_check_active && s.verify_claims).then(|| cache::secs_of(s.leeway).max(0)),
        };
        let userinfo = Userinfo {
            endpoint: s.userinfo_endpoint.clone(),
            accept: s.userinfo_accept.clone().unwrap_or_else(|| "application/json".into()),
            headers: pairs(&s.userinfo_headers_names, &s.userinfo_headers_values),
            query: pairs(&s.userinfo_query_args_names, &s.userinfo_query_args_values),
        };
        Grants {
            clients,
            token_endpoint: s.token_endpoint.clone(),
            token_auth: auth(&s.token_endpoint_auth_method),
            token_headers: pairs(&s.token_headers_names, &s.token_headers_values),
            replay: ReplayRule::build(s),
            scoped_form,
            post_args,
            password_key_prefix,
            client_credentials_key_prefix,
            salt,
            ignore_signature: Methods::of(&s.ignore_signature),
            verify_signature: s.verify_signature,
            ttl,
            tokens: s.cache_tokens.then(|| cache::timed(CACHE_ENTRIES)),
            session_refreshes: cache::timed(CACHE_ENTRIES),
            introspections: s.cache_introspection.then(|| cache::timed(CACHE_ENTRIES)),
            userinfos: s.cache_user_info.then(|| cache::timed(CACHE_ENTRIES)),
            introspection,
            userinfo,
            provider,
        }
    }

    /// The client the instance's IdP calls go through.
    pub fn http(&self) -> &crate::provider::client::IdpHttp {
        self.provider.http()
    }

    /// The configured endpoint, else the discovered one.
    pub async fn endpoint(&self, configured: &Option<String>, name: &str, now: i64) -> Result<Option<String>, Failure> {
        if let Some(e) = configured {
            return Ok(Some(e.clone()));
        }
        let discovered = self.provider.get(now).await.map_err(|e| Failure::Idp { reason: e.to_string() })?;
        Ok(discovered.endpoint(name).map(str::to_string))
    }

    /// Introspects `token`. `Ok(None)`: the IdP says it is not active (or there is no endpoint).
    pub async fn introspect(&self, token: &str, now: i64) -> Result<Option<Arc<Timed<ClaimsAnswer>>>, Failure> {
        let i = &self.introspection;
        let Some(endpoint) = self.endpoint(&i.endpoint, "introspection_endpoint", now).await? else {
            return Ok(None);
        };
        let req = IntrospectionRequest {
            endpoint: &endpoint,
            client: &i.client,
            method: i.auth,
            param_name: &i.param_name,
            hint: i.hint.as_deref(),
            accept: &i.accept,
            headers: &i.headers,
            post_args: &i.post_args,
        };
        let fetch = || async {
            let ans = calls::introspect(self.provider.http(), &req, token, now).await?;
            if i.check_active && ans.claims.get("active") != Some(&Value::Bool(true)) {
                return Err(GrantError::Refused { status: 200, error: "inactive".into(), description: None });
            }
            let left = match i.window_leeway {
                Some(leeway) => claims::introspection_window(&ans.claims, unix_now(), leeway)?,
                // Counted from now, after the call: the cache deadline is.
                None => claims::introspection_lifetime(&ans.claims, unix_now()),
            };
            // Never cached past its `exp`, whatever `cache_ttl_min` says.
            let until = cache::deadline(std::time::Instant::now(), self.ttl.ttl_within(left));
            Ok(Arc::new(Timed { value: ans, until }))
        };
        answer("introspection", cache::through(self.introspections.as_ref(), Arc::from(token), |_| true, fetch).await)
    }

    /// Asks userinfo with `token`. `Ok(None)`: refused (or there is no endpoint).
    pub async fn userinfo(&self, token: &str, now: i64) -> Result<Option<Arc<Timed<ClaimsAnswer>>>, Failure> {
        let u = &self.userinfo;
        let Some(endpoint) = self.endpoint(&u.endpoint, "userinfo_endpoint", now).await? else {
            return Ok(None);
        };
        let req = UserinfoRequest { endpoint: &endpoint, accept: &u.accept, headers: &u.headers, query: &u.query };
        let fetch = || async {
            let ans = calls::userinfo(self.provider.http(), &req, token).await?;
            let until = cache::deadline(std::time::Instant::now(), self.ttl.ttl(None));
            Ok(Arc::new(Timed { value: ans, until }))
        };
        answer("userinfo", cache::through(self.userinfos.as_ref(), Arc::from(token), |_| true, fetch).await)
    }

    /// A password grant for client `client`.
    pub async fn password(&self, v: &Verifier, client: usize, p: &Pair, now: i64) -> Result<Outcome, Failure> {
        let key = self.password_key(p);
        let form = || self.form(Method::Password, &[("username", &p.user), ("password", &p.secret)]);
        let keep = self.replay.keep(Method::Password);
        let g = self.grant(v, Method::Password, self.client(client)?, None, key, form, keep, now).await?;
        Ok(g.value.outcome(Method::Password, client))
    }

    /// A client credentials grant with the request's client id and secret.
    pub async fn client_credentials(
        &self,
        v: &Verifier,
        client: usize,
        p: &Pair,
        now: i64,
    ) -> Result<Outcome, Failure> {
        // The request's client id and secret authenticate to the token endpoint, with the
        // configured client's secret-based method.
        let auth = match self.clients.get(client).map(|c| c.auth) {
            Some(a @ (ClientAuth::SecretBasic | ClientAuth::SecretPost | ClientAuth::SecretJwt)) => a,
            _ => ClientAuth::SecretBasic,
        };
        let as_client = Client { id: p.user.clone(), secret: Some(p.secret.clone()), auth, key: None, alg: None };
        let key = self.client_credentials_key_prefix.key(&[&p.user, &p.secret]);
        let form = || self.form(Method::ClientCredentials, &[]);
        let keep = self.replay.keep(Method::ClientCredentials);
        let g = self.grant(v, Method::ClientCredentials, &as_client, Some(auth), key, form, keep, now).await?;
        Ok(g.value.outcome(Method::ClientCredentials, client))
    }

    /// A refresh token grant for client `client` (never from the cache: a refresh token is
    /// single-use at many IdPs).
    pub async fn refresh(&self, v: &Verifier, client: usize, rt: &str, now: i64) -> Result<Outcome, Failure> {
        let key = token_key(&[self.provider.issuer(), Method::RefreshToken.name(), rt, &self.salt]);
        let form = || self.form(Method::RefreshToken, &[("refresh_token", rt)]);
        let keep = self.replay.keep(Method::RefreshToken);
        let g = self.grant(v, Method::RefreshToken, self.client(client)?, None, key, form, keep, now).await?;
        Ok(g.value.outcome(Method::RefreshToken, client))
    }

    /// The authorization code grant of a sign-in (`signin.rs`): never cached, and its ID token
    /// checked against the sign-in's nonce, code, `max_age` and `domains`.
    #[allow(clippy::too_many_arguments)]
    pub async fn authorization_code(
        &self,
        v: &Verifier,
        client: usize,
        code: &str,
        redirect_uri: &str,
        code_verifier: Option<&str>,
        checks: &IdChecks<'_>,
        now: i64,
    ) -> Result<(Outcome, serde_json::Map<String, Value>), Failure> {
        let c = self.client(client)?;
        let form = || {
            let mut fields = vec![("code", code), ("redirect_uri", redirect_uri)];
            if let Some(verifier) = code_verifier {
                fields.push(("code_verifier", verifier));
            }
            let mut form = self.form(Method::AuthorizationCode, &fields);
            form.extend(self.post_args.iter().cloned());
            form
        };
        let keep = self.replay.keep(Method::AuthorizationCode);
        let g = self.grant_checked(v, Method::AuthorizationCode, c, None, [0; 32], form, keep, checks, now).await?;
        let mut o = g.value.outcome(Method::AuthorizationCode, client);
        // Made for this request alone: no memo outlives it.
        o.memo = None;
        Ok((o, g.value.ts.raw.clone()))
    }

    /// A session's refresh: one refresh token grant however many requests of the session ask at
    /// once, its result (`renew` makes the new session from the verified grant, once) kept for
    /// min([`REFRESH_GRACE`], the new access token's life). An IdP that rotates refresh tokens
    /// refuses the old one after the first use: requests still carrying the old cookie (sent
    /// before the new one arrived) get the same new session instead of `invalid_grant`.
    pub async fn refresh_once(
        &self,
        v: &Verifier,
        client: usize,
        rt: &str,
        now: i64,
        renew: impl FnOnce(&Granted) -> Refreshed,
    ) -> Result<Arc<Timed<Refreshed>>, Failure> {
        let key = token_key(&[self.provider.issuer(), "session-refresh", rt, &self.salt]);
        let fetch = || async move {
            let grant_key = token_key(&[self.provider.issuer(), Method::RefreshToken.name(), rt, &self.salt]);
            let form = || self.form(Method::RefreshToken, &[("refresh_token", rt)]);
            // A session's refresh replays nothing (Kong): no header is kept.
            let g = self.grant(v, Method::RefreshToken, self.client(client)?, None, grant_key, form, &[], now).await?;
            let life = if g.value.expires != 0 { g.value.expires.saturating_sub(unix_now()) } else { REFRESH_GRACE };
            let grace = Duration::from_secs(life.clamp(0, REFRESH_GRACE) as u64);
            Ok(Arc::new(Timed { value: renew(&g.value), until: cache::deadline(Instant::now(), grace) }))
        };
        cache::through(Some(&self.session_refreshes), key, |_| true, fetch).await
    }

    /// The configured client a grant is made for. Without any `client_id` there is none: a
    /// config error the request gets as a 500, not a panic.
    fn client(&self, i: usize) -> Result<&Client, Failure> {
        self.clients.get(i).ok_or_else(|| Failure::Unexpected {
            reason: "no client_id is configured, so no grant can be made".to_string(),
        })
    }

    /// The token cache key of a password grant.
    pub fn password_key(&self, p: &Pair) -> [u8; 32] {
        self.password_key_prefix.key(&[&p.user, &p.secret])
    }

    /// A grant's form: `grant_type`, its own fields, then (not for refreshes) `scope`, `audience`
    /// and `token_post_args`. Made only when the token endpoint is called, not on a cache hit.
    fn form(&self, grant: Method, fields: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut form = vec![("grant_type".to_string(), grant.name().to_string())];
        form.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        if !matches!(grant, Method::RefreshToken | Method::AuthorizationCode) {
            form.extend(self.scoped_form.iter().cloned());
        }
        form
    }

    /// One token-endpoint call and the verification of what it returned, through the token cache
    /// (single flight per key) when it is on: a cached grant costs a hash lookup, not a signature check.
    #[allow(clippy::too_many_arguments)]
    async fn grant(
        &self,
        v: &Verifier,
        grant: Method,
        client: &Client,
        method: Option<ClientAuth>,
        key: [u8; 32],
        form: impl FnOnce() -> Vec<(String, String)>,
        keep: &[HeaderName],
        now: i64,
    ) -> Result<Arc<Timed<Granted>>, Failure> {
        self.grant_checked(v, grant, client, method, key, form, keep, &IdChecks::default(), now).await
    }

    /// [`Grants::grant`], with the ID token checked against what the sign-in sent (`checks`).
    #[allow(clippy::too_many_arguments)]
    async fn grant_checked(
        &self,
        v: &Verifier,
        grant: Method,
        client: &Client,
        method: Option<ClientAuth>,
        key: [u8; 32],
        form: impl FnOnce() -> Vec<(String, String)>,
        keep: &[HeaderName],
        checks: &IdChecks<'_>,
        now: i64,
    ) -> Result<Arc<Timed<Granted>>, Failure> {
        let endpoint = self
            .endpoint(&self.token_endpoint, "token_endpoint", now)
            .await?
            .ok_or_else(|| Failure::unauthorized("token endpoint was not specified"))?;
        let method = method.or(self.token_auth).unwrap_or(client.auth);
        let fetch = move || async move {
            let http = self.provider.http();
            let mut ts = calls::token(http, &endpoint, client, method, form(), &self.token_headers, keep, now)
                .await
                .map_err(|e| Failure::of_grant(grant.name(), e))?;
            let kept = std::mem::take(&mut ts.headers);
            let mut g = self.verify(v, grant, &client.id, ts, checks, now).await?;
            g.replay = self.replay.headers(&kept);
            let lifetime = (g.expires != 0).then(|| g.expires.saturating_sub(now));
            let until = cache::deadline(std::time::Instant::now(), self.ttl.ttl(lifetime));
            Ok(Arc::new(Timed { value: g, until }))
        };
        // A refresh token is single-use at many IdPs, and a code always is: never from the cache.
        let tokens =
            self.tokens.as_ref().filter(|_| !matches!(grant, Method::RefreshToken | Method::AuthorizationCode));
        let g = cache::through(tokens, key, |g: &Granted| g.holds_keys(v), fetch).await?;
        if g.value.expired(now, v.leeway) {
            if let Some(c) = &self.tokens {
                c.invalidate(&key);
            }
            return Err(Failure::expired("cached token expired"));
        }
        Ok(g)
    }

    /// Verifies what a grant returned. `client_id` is the client the grant was made for: an ID
    /// token must be addressed to it.
    async fn verify(
        &self,
        v: &Verifier,
        grant: Method,
        client_id: &str,
        ts: TokenSet,
        checks: &IdChecks<'_>,
        now: i64,
    ) -> Result<Granted, Failure> {
        // The token endpoint call took time: its tokens are checked against the clock as it is now.
        let now = now.max(unix_now());
        let check_sig = self.verify_signature && !self.ignore_signature.contains(grant);
        let access = match v.access_token(&ts.access_token, now).await {
            Ok(v) => Some(v),
            // An opaque access token is fine: the IdP just issued it to us.
            Err(TokenError::NotJwt) => None,
            Err(e) if !check_sig && !matches!(e, TokenError::Idp(_)) => {
                VerifiedJwt::read_unverified(&ts.access_token).map(Arc::new)
            }
            Err(e) => return Err(Failure::of_token(e)),
        };
        let id = match &ts.id_token {
            Some(id) => {
                let cx = IdContext {
                    client_id: Some(client_id),
                    access_token: Some(&ts.access_token),
                    nonce: checks.nonce,
                    code: checks.code,
                };
                let id = v.verify(id, check_sig, Expect::Id(cx), now).await.map_err(Failure::of_token)?;
                // The nonce is `verify_nonce`'s alone, as in Kong: with `verify_claims` off it is
                // still what ties a sign-in's code to the browser that started it (PKCE may be off).
                if !v.verify_claims {
                    claims::nonce(&id.claims, checks.nonce).map_err(Failure::of_refusal)?;
                }
                if v.verify_claims {
                    if let Some(max_age) = checks.max_age {
                        claims::auth_time(&id.claims, max_age, now, v.leeway).map_err(Failure::of_refusal)?;
                    }
                    if let Some(domains) = checks.domains {
                        claims::hosted_domain(&id.claims, domains).map_err(Failure::of_refusal)?;
                    }
                }
                Some(Arc::new(id))
            }
            None if checks.id_token_required => return Err(Failure::of_refusal(claims::Refusal::MissingIdToken)),
            None => None,
        };
        let expires = access.as_ref().and_then(|a| a.exp).or(ts.expires_at).unwrap_or(0);
        Ok(Granted { ts, access, id, expires, memo: Memo::default(), replay: None })
    }
}

/// What a sign-in's ID token is checked against besides the usual claims.
#[derive(Default)]
pub(crate) struct IdChecks<'a> {
    /// The nonce sent (with `verify_nonce`).
    pub nonce: Option<&'a str>,
    /// The code exchanged, for `c_hash`.
    pub code: Option<&'a str>,
    /// `max_age`: `auth_time` must be no older.
    pub max_age: Option<i64>,
    /// `domains`: `hd` must be one of them.
    pub domains: Option<&'a [String]>,
    /// An ID token must come back (`openid` was asked for).
    pub id_token_required: bool,
}

/// The configured clients: `client_id[i]` with `client_secret[i]`, `client_auth[i]`,
/// `client_jwk[i]`, `client_alg[i]` (a shorter list repeats its last entry, as Kong does).
pub fn clients(s: &Settings) -> Result<Vec<Client>, BuildError> {
    let ids = s.client_id.clone().unwrap_or_default();
    let pick = |list: &Option<Vec<String>>, i: usize| -> Option<String> {
        list.as_ref().and_then(|l| l.get(i).or(l.last())).cloned()
    };
    let mut out = Vec::with_capacity(ids.len());
    for (i, id) in ids.into_iter().enumerate() {
        let secret = pick(&s.client_secret, i);
        let alg = pick(&s.client_alg, i).and_then(|a| Algorithm::from_name(&a));
        let jwk = s.client_jwk.as_ref().and_then(|l| l.get(i).or(l.last()));
        let key = match jwk {
            Some(j) => Some(
                SigningKey::from_private_jwk(j, alg.filter(|a| !a.is_hmac()))
                    .map_err(|e| BuildError::field("client_jwk", format!("client {}: {e}", i + 1)))?,
            ),
            None => None,
        };
        let auth = match pick(&s.client_auth, i) {
            Some(name) => ClientAuth::from_name(&name).ok_or_else(|| {
                BuildError::field("client_auth", format!("{name} is not supported (no TLS client certificates yet)"))
            })?,
            None if secret.is_none() && key.is_some() => ClientAuth::PrivateKeyJwt,
            None if secret.is_none() => ClientAuth::None,
            None => ClientAuth::SecretBasic,
        };
        out.push(Client { id, secret, auth, key, alg });
    }
    Ok(out)
}

/// An introspection or userinfo answer: `Ok(None)` when the IdP refused the token.
fn answer(
    what: &str,
    r: Result<Arc<Timed<ClaimsAnswer>>, GrantError>,
) -> Result<Option<Arc<Timed<ClaimsAnswer>>>, Failure> {
    match r {
        Ok(a) => Ok(Some(a)),
        Err(GrantError::Refused { .. }) => Ok(None),
        Err(e) => Err(Failure::of_grant(what, e)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::instance::Oidc;
    use serde_json::json;

    /// A token endpoint on a free port that answers every request after `delay` with `body` and
    /// the extra header lines `head` (each ending in CRLF); returns its URL and a call counter.
    pub(crate) async fn token_endpoint(
        body: &'static str,
        head: &'static str,
        delay: std::time::Duration,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/token", listener.local_addr().expect("addr"));
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let calls = counted.clone();
                tokio::spawn(async move {
                    // The whole request: head, then as many body bytes as it announces.
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = conn.read(&mut chunk).await else { return };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let len = text[..end]
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + len {
                                break;
                            }
                        }
                    }
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{head}connection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(resp.as_bytes()).await;
                });
            }
        });
        (url, calls)
    }

    /// A new session for a refreshed grant, as `sessions.rs` makes one.
    fn renewed(g: &Granted) -> Refreshed {
        let data = SessionData {
            client: 0,
            access_token: g.ts.access_token.clone(),
            id_token: None,
            refresh_token: g.ts.refresh_token.clone(),
            expires: g.expires,
            auth_method: "password".into(),
        };
        Refreshed { session: Session::new(0, "aud", None, data.encode()), data }
    }

    /// An instance whose token endpoint is `url`.
    fn with_token_endpoint(url: &str) -> Oidc {
        Oidc::for_tests(json!({"token_endpoint": url, "client_id": ["c"], "client_secret": ["s"]}))
    }

    #[tokio::test]
    async fn concurrent_refreshes_of_one_session_make_one_idp_call_and_share_the_new_session() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let body = r#"{"access_token":"opaque-new","refresh_token":"rt-new","expires_in":300}"#;
        let (url, calls) = token_endpoint(body, "", std::time::Duration::from_millis(200)).await;
        let o = Arc::new(with_token_endpoint(&url));
        let renewals = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (o, renewals) = (o.clone(), renewals.clone());
            tasks.spawn(async move {
                let renew = |g: &Granted| {
                    renewals.fetch_add(1, Ordering::SeqCst);
                    renewed(g)
                };
                let r = o.auth.grants.refresh_once(&o.auth.verifier, 0, "rt-old", unix_now(), renew).await;
                let r = r.map_err(|f| f.reason().to_string()).expect("refreshed");
                (r.value.session.id_string(), r.value.data.refresh_token.clone())
            });
        }
        let got = tasks.join_all().await;
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one refresh token grant at the IdP");
        assert_eq!(renewals.load(Ordering::SeqCst), 1, "one new session");
        assert!(got.iter().all(|g| g == &got[0]), "every request gets the same session: {got:?}");
        assert_eq!(got[0].1.as_deref(), Some("rt-new"));
        // A request still carrying the old cookie a moment later: served from the grace entry.
        let r = o.auth.grants.refresh_once(&o.auth.verifier, 0, "rt-old", unix_now(), |_| unreachable!()).await;
        assert_eq!(r.map(|r| r.value.session.id_string()).ok(), Some(got[0].0.clone()));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Another refresh token is another refresh.
        assert!(o.auth.grants.refresh_once(&o.auth.verifier, 0, "rt-other", unix_now(), renewed).await.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refresh_is_shared_no_longer_than_the_new_access_token_lives() {
        let body = r#"{"access_token":"opaque-new","refresh_token":"rt-new","expires_in":1}"#;
        let (url, calls) = token_endpoint(body, "", std::time::Duration::ZERO).await;
        let o = with_token_endpoint(&url);
        let g = &o.auth.grants;
        assert!(g.refresh_once(&o.auth.verifier, 0, "rt", unix_now(), renewed).await.is_ok());
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        assert!(g.refresh_once(&o.auth.verifier, 0, "rt", unix_now(), renewed).await.is_ok());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2, "the 1 s grace is over");
    }

    #[test]
    fn token_headers_are_replayed_only_after_the_grants_named_and_under_the_prefix() {
        let rule = |grants: serde_json::Value| {
            let cfg = json!({"issuer": "http://127.0.0.1:9/x", "token_headers_replay": ["X-Trace_Id", "x-rate"],
                "token_headers_prefix": "idp_", "token_headers_grants": grants});
            let s = crate::config::schema().validate(&cfg, Default::default()).expect("valid");
            ReplayRule::build(&Settings::from_config(&s).expect("typed"))
        };
        let r = rule(json!(["password", "refresh_token"]));
        assert_eq!(r.keep(Method::Password), ["x-trace_id", "x-rate"]);
        assert!(r.keep(Method::RefreshToken).len() == 2 && r.keep(Method::ClientCredentials).is_empty());
        // Null grants: nothing is kept, whatever `token_headers_replay` says (Kong).
        assert!(rule(serde_json::Value::Null).keep(Method::Password).is_empty());
        let mut kept = HeaderMap::new();
        let v = |b: &[u8]| http::HeaderValue::from_bytes(b).expect("a value hyper would have parsed");
        kept.append("x-trace_id", v(b"abc"));
        kept.append("x-rate", v(b"10"));
        kept.append("x-rate", v(b"a\tb"));
        kept.append("x-rate", v(&[b'a', 0xff]));
        kept.append("x-rate", v("é".as_bytes()));
        kept.append("x-rate", v(&vec![b'x'; 9000]));
        kept.append("x-rate", v(b"20"));
        let out: Vec<(String, String)> = r
            .headers(&kept)
            .expect("some")
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().map(str::to_string).unwrap_or_else(|_| "<utf-8>".into())))
            .collect();
        let pair = |n: &str, v: &str| (n.to_string(), v.to_string());
        // TAB, bytes that are not UTF-8 and a value over `max_added_header_size` stay out.
        assert_eq!(
            out,
            [
                pair("idp-x-trace-id", "abc"),
                pair("idp-x-rate", "10"),
                pair("idp-x-rate", "<utf-8>"),
                pair("idp-x-rate", "20")
            ]
        );
        assert!(r.headers(&HeaderMap::new()).is_none());
    }

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
        let g = &o.auth.grants;
        let form = g.form(Method::Password, &[("username", "john"), ("password", "doe")]);
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
        let form = g.form(Method::RefreshToken, &[("refresh_token", "rt")]);
        assert_eq!(pairs(&form), [("grant_type", "refresh_token"), ("refresh_token", "rt")]);
    }

    #[test]
    fn the_scope_is_in_password_keys_only_with_token_cache_key_include_scope() {
        let headers =
            http::HeaderMap::from_iter([(http::header::AUTHORIZATION, "Basic am9objpkb2U=".parse().unwrap())]);
        let p = crate::credentials::basic_pair(&headers, Method::Password).expect("a pair");
        let key = |config: serde_json::Value| {
            let mut config = config;
            config["cache_tokens_salt"] = json!("salt");
            Oidc::for_tests(config).auth.grants.password_key(&p)
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
}
