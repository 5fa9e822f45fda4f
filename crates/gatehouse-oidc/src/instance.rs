//! One built `openid-connect` instance and its request pipeline.
//!
//! [`Oidc::build`] consumes the validated config into immutable parts, each deciding at build
//! time what it can; the request path only reads them. A request: the gate → a logout (answered
//! here, never proxied) → the front (a cached authentication) → authenticate (session, else the
//! credential `find.rs` finds) → authorize → the session issued → the headers → one decision,
//! applied by `decision::apply`. ARCHITECTURE.md has the map.

use crate::authenticate::Authenticator;
use crate::authorize::Authorizer;
use crate::cache::{TtlRule, secs_of, unix_now};
use crate::decision::{Additions, Allow, Decision, Strip, Trail, Upstream, apply};
use crate::failures::Refusals;
use crate::fast::Front;
use crate::grants::Grants;
use crate::headers::{self, HeaderPlan, SessionFacts};
use crate::login::Login;
use crate::logout::Logout;
use crate::method::Methods;
use crate::outcome::{Authenticated, Outcome};
use crate::provider::client_auth::{Client, ClientAuth};
use crate::provider::discovery::{self, ProviderKey};
use crate::respond::Failure;
use crate::sessions::Sessions;
use crate::settings::Settings;
use crate::signin::SignIn;
use crate::tokens::Verifier;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use gatehouse_core::plugin::{BuildEnv, BuildError, Ctx, Flow, Step};
use gatehouse_jose::{Jwk, KeySet, Policy};
use gatehouse_session::SessionCodec;
use http::request::Parts;
use std::time::Duration;

/// A built `openid-connect` instance: immutable parts, one per step of the pipeline.
pub struct Oidc {
    /// When the plugin leaves a request alone.
    gate: Gate,
    pub(crate) auth: Authenticator,
    pub(crate) authz: Authorizer,
    refusals: Refusals,
    pub(crate) plan: HeaderPlan,
    pub(crate) front: Front,
    login: Login,
    /// `None` when no logout trigger is configured.
    pub(crate) logout: Option<Logout>,
}

/// Kong's early exits: a preflight (unless `run_on_preflight`), and a request another auth
/// plugin authenticated (with `anonymous` set, Kong's multi-auth "logical OR").
struct Gate {
    run_on_preflight: bool,
    anonymous: bool,
}

impl Gate {
    fn skips(&self, ctx: &Ctx, parts: &Parts) -> bool {
        if !self.run_on_preflight && parts.method == http::Method::OPTIONS {
            return true;
        }
        if self.anonymous && ctx.authenticated {
            tracing::debug!("skipping because user is already authenticated");
            return true;
        }
        false
    }
}

impl Oidc {
    /// Builds an instance from a validated config. The session and the authorization cookie are
    /// sealed with keys bound to this plugin (`node::session_codec`).
    pub fn build(
        config: &serde_json::Value,
        session_key: SessionCodec,
        authorization_key: SessionCodec,
        env: &BuildEnv,
    ) -> Result<Oidc, BuildError> {
        let s = Settings::from_config(config)?;
        let methods = Methods::of(&s.auth_methods);
        let timeout_ms = if s.timeout.is_finite() && s.timeout > 0.0 {
            (s.timeout as u64).clamp(1, crate::cache::MAX_SECS as u64 * 1000)
        } else {
            10_000
        };
        let key = ProviderKey {
            issuer: s.issuer.clone(),
            pseudo: s.using_pseudo_issuer,
            jwks_endpoint: s.jwks_endpoint.clone(),
            extra_jwks_uris: s.extra_jwks_uris.clone().unwrap_or_default(),
            discovery_headers: match (&s.discovery_headers_names, &s.discovery_headers_values) {
                (Some(n), Some(v)) => n.iter().cloned().zip(v.iter().cloned()).collect(),
                _ => Vec::new(),
            },
            timeout_ms,
            ssl_verify: s.ssl_verify,
            keepalive: s.keepalive,
            cache_ttl: secs_of(s.cache_ttl).max(1),
            rediscovery_lifetime: secs_of(s.rediscovery_lifetime).max(0),
            max_response: env.idp_max_response_size.0,
            verify_issuer: s.verify_claims,
            issuers_allowed: s.issuers_allowed.clone().unwrap_or_default(),
        };
        let provider = discovery::provider(key).map_err(BuildError::Resource)?;
        crate::node::watch(&provider, env);
        let mut clients = crate::grants::clients(&s)?;
        let auth = |name: &Option<String>| name.as_deref().and_then(ClientAuth::from_name);
        let endpoint_auth = [
            auth(&s.token_endpoint_auth_method),
            auth(&s.introspection_endpoint_auth_method),
            auth(&s.revocation_endpoint_auth_method),
            auth(&s.pushed_authorization_request_endpoint_auth_method),
        ];
        crate::node::own_keys_for(&mut clients, &endpoint_auth, env);
        let verifier = verifier(&s, provider.clone(), &clients)?;
        let ttl = TtlRule {
            ttl: secs_of(s.cache_ttl),
            max: s.cache_ttl_max.map(secs_of).unwrap_or(0),
            min: s.cache_ttl_min.map(secs_of).unwrap_or(0),
        };
        let salt = match &s.cache_tokens_salt {
            Some(salt) if !salt.is_empty() => salt.clone(),
            _ => random_salt()?,
        };
        let sessions = Sessions::build(&s, methods, session_key, verifier.leeway, ttl)?;
        let signin = SignIn::build(&s, authorization_key, provider.clone(), &clients, env)?;
        let grants = Grants::build(&s, provider, clients, salt, ttl);
        let auth = Authenticator::build(&s, methods, verifier, grants, sessions, signin);
        let authz = Authorizer::build(&s);
        let plan = HeaderPlan::build(&s)?;
        let login = Login::build(&s)?;
        let mut front = Front::for_config(&auth, &authz, &plan);
        // A login the plugin answers itself is never served by the front.
        if matches!(front, Front::Session) && login.answers(crate::method::Method::Session)
            || matches!(front, Front::Password) && login.answers(crate::method::Method::Password)
        {
            front = Front::None;
        }
        // The failure redirects are `Location`s as the login and logout ones are: the same check.
        for (field, list) in [
            ("unauthorized_redirect_uri", &s.unauthorized_redirect_uri),
            ("forbidden_redirect_uri", &s.forbidden_redirect_uri),
            ("unexpected_redirect_uri", &s.unexpected_redirect_uri),
        ] {
            for uri in list.iter().flatten() {
                crate::location::checked_target(uri).map_err(|e| BuildError::field(field, e))?;
            }
        }
        let refusals = Refusals::build(&s);
        let gate = Gate { run_on_preflight: s.run_on_preflight, anonymous: refusals.has_anonymous() };
        let logout = Logout::build(&s)?;
        Ok(Oidc { gate, auth, authz, refusals, plan, front, login, logout })
    }

    /// Whether a credential (or `logout_post_arg`) may be in a form or JSON body.
    pub(crate) fn needs_body(&self) -> bool {
        self.auth.finder.needs_body()
            || self.auth.signin.as_ref().is_some_and(SignIn::needs_body)
            || self.logout.as_ref().is_some_and(Logout::needs_body)
    }

    /// The access phase: the gate, then a logout, then the front, else the general path as a
    /// boxed future. A logout is decided before the front, which would pass it on to the upstream.
    pub(crate) fn access<'a>(&'a self, ctx: &'a mut Ctx, parts: &'a mut Parts) -> Step<'a> {
        if self.gate.skips(ctx, parts) {
            return Step::Ready(Flow::Continue);
        }
        if let Some(logout) = &self.logout
            && logout.requested(parts, ctx.body.as_ref())
        {
            return Step::Wait(Box::pin(self.logout_async(logout, ctx, parts)));
        }
        if let Some(flow) = self.front.serve(&self.auth, &self.authz, &self.plan, ctx, parts) {
            return Step::Ready(flow);
        }
        Step::Wait(Box::pin(self.access_async(ctx, parts)))
    }

    /// The general path: authenticate → authorize → the session → the headers → one decision,
    /// applied.
    pub(crate) async fn access_async(&self, ctx: &mut Ctx, parts: &mut Parts) -> Flow {
        let now = unix_now();
        let mut trail = Trail::default();
        let mut o = match self.auth.authenticate(ctx, parts, now, &mut trail).await {
            Ok(Authenticated::Outcome(o)) => o,
            Ok(Authenticated::Redirect(response)) => {
                let additions = std::mem::take(&mut trail.additions);
                return apply(&self.plan, ctx, parts, Decision::Respond { response, additions });
            }
            Err(f) => return self.refuse(ctx, parts, f, &mut trail, &[]),
        };
        let authorized = match self.authz.authorize(ctx, &mut o, now, &self.auth.grants, &self.plan, &mut trail).await {
            Ok(a) => a,
            Err(f) => {
                let hide = if trail.past_requirements { o.hide.as_slice() } else { &[] };
                return self.refuse(ctx, parts, f, &mut trail, hide);
            }
        };
        self.auth.sessions.issue(&mut o, authorized.subject, now, ctx.https, &mut trail);

        let upstream = self.headers(&o, parts, trail.session_facts.as_ref(), &mut trail.additions);
        // `token_headers_replay`: appended after the downstream headers, as Kong does.
        if let Some(replay) = &o.replay {
            trail.additions.downstream.extend(replay.iter().cloned());
        }
        if let Some(response) = self.login.answer(&o) {
            let additions = std::mem::take(&mut trail.additions);
            return apply(&self.plan, ctx, parts, Decision::Respond { response, additions });
        }
        let mut strip = self.strip(&trail, &o.hide);
        strip.always = &o.strip;
        strip.query = o.signin.as_ref().and_then(|s| s.uri_args.as_deref()).filter(|_| self.login.preserves_query());
        let allow = Allow {
            strip,
            consumer: authorized.consumer,
            groups: authorized.groups,
            upstream,
            additions: std::mem::take(&mut trail.additions),
        };
        let flow = apply(&self.plan, ctx, parts, Decision::Allow(allow));
        self.front.remember(&o);
        flow
    }

    /// A logout: the session ended, and the plugin's own answer (with the expired cookies).
    async fn logout_async(&self, logout: &Logout, ctx: &mut Ctx, parts: &mut Parts) -> Flow {
        let mut trail = Trail::default();
        let a = &self.auth;
        match logout.run(&a.sessions, &a.grants, &a.finder, ctx, parts, &mut trail, unix_now()).await {
            Ok(response) => {
                let additions = std::mem::take(&mut trail.additions);
                apply(&self.plan, ctx, parts, Decision::Respond { response, additions })
            }
            Err(f) => self.refuse(ctx, parts, f, &mut trail, &[]),
        }
    }

    /// The header plan's step: the upstream headers (made once and kept when the outcome's
    /// source is deterministic), and the downstream ones into the response additions.
    fn headers<'o>(
        &self,
        o: &'o Outcome,
        parts: &Parts,
        session: Option<&SessionFacts>,
        additions: &mut Additions,
    ) -> Upstream<'o> {
        let plan = &self.plan;
        // The client's `Authorization: Bearer <token>`, sent on unchanged when it is the token.
        // A memoized value outlives this request: it must not keep the request's read buffer
        // alive through a shared slice, so it is made without the request's own header.
        // `Session-*` headers change with every request: never memoized.
        let memo = o.usable_memo().filter(|_| plan.upstream.session.is_empty());
        let authorization = match (memo, &o.access_token, parts.headers.get(http::header::AUTHORIZATION)) {
            (None, Some(t), Some(v)) if v.as_bytes().strip_prefix(b"Bearer ") == Some(t.as_bytes()) => Some(v),
            _ => None,
        };
        let mut src = o.sources(authorization);
        src.session = session;
        if !plan.downstream_is_empty() {
            additions.downstream = headers::build(plan, &plan.downstream, &src);
        }
        match memo {
            Some(memo) => Upstream::Shared(memo.get_or_init(|| headers::build(plan, &plan.upstream, &src))),
            None => Upstream::Owned(headers::build(plan, &plan.upstream, &src)),
        }
    }

    /// What leaves the request: our session cookie when it carried one, the credentials with
    /// `hide_credentials`.
    fn strip<'a>(&'a self, trail: &Trail, found: &'a [crate::credentials::Found]) -> Strip<'a> {
        Strip {
            session: trail.strip_session.then_some(&self.auth.sessions.store),
            hide: if self.authz.hide_credentials { found } else { &[] },
            ..Strip::default()
        }
    }

    fn refuse(
        &self,
        ctx: &mut Ctx,
        parts: &mut Parts,
        f: Failure,
        trail: &mut Trail,
        found: &[crate::credentials::Found],
    ) -> Flow {
        let always = std::mem::take(&mut trail.strip_always);
        let mut strip = self.strip(trail, found);
        strip.always = &always;
        let decision = self.refusals.decide(ctx, f, trail, strip, &self.auth.sessions.store);
        apply(&self.plan, ctx, parts, decision)
    }
}

/// How tokens are verified: the issuer's keys, the client secrets as HS keys when
/// `enable_hs_signatures` is on, and the claim rules.
fn verifier(
    s: &Settings,
    provider: std::sync::Arc<discovery::Provider>,
    clients: &[Client],
) -> Result<Verifier, BuildError> {
    let mut hs_keys = KeySet::default();
    if s.enable_hs_signatures {
        for c in clients {
            if let Some(secret) = c.secret.as_deref().filter(|x| !x.is_empty()) {
                hs_keys.push(
                    Jwk::from_hmac_secret(secret.as_bytes(), None, None)
                        .map_err(|e| BuildError::field("client_secret", e.to_string()))?,
                );
            }
        }
    }
    let policy = Policy { enable_hs_signatures: s.enable_hs_signatures, ..Policy::default() };
    let mut verifier = Verifier::new(
        provider,
        policy,
        hs_keys,
        // A negative leeway would move refresh deadlines past `exp`: Kong's is a tolerance, never a
        // head start.
        secs_of(s.leeway).max(0),
        s.issuers_allowed.clone().unwrap_or_default(),
        s.verify_claims,
        s.claims_forbidden.clone().unwrap_or_default(),
        Duration::from_secs(secs_of(s.cache_ttl).max(0) as u64),
    );
    verifier.verify_signature = s.verify_signature;
    Ok(verifier)
}

fn random_salt() -> Result<String, BuildError> {
    let mut b = [0u8; 16];
    SystemRandom::new().fill(&mut b).map_err(|_| BuildError::Resource("no randomness".to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[cfg(test)]
impl Oidc {
    /// An instance of `config` (plus an unreachable issuer), with Kong's defaults filled in.
    pub(crate) fn for_tests(mut config: serde_json::Value) -> Oidc {
        if let serde_json::Value::Object(c) = &mut config {
            c.entry("issuer").or_insert_with(|| "http://127.0.0.1:9/realms/x".into());
        }
        let cfg =
            crate::config::schema().validate(&config, gatehouse_core::schema::Mode::default()).expect("valid config");
        let key = || gatehouse_session::SessionCodec::new(b"node secret");
        Oidc::build(&cfg, key(), key(), &BuildEnv::default()).expect("builds")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::schema::{Mode, Seg};
    use serde_json::json;

    fn build_error(config: serde_json::Value) -> Vec<(Vec<Seg>, String)> {
        let cfg = crate::config::schema().validate(&config, Mode::default()).expect("the schema accepts it");
        let key = || gatehouse_session::SessionCodec::new(b"node secret");
        match Oidc::build(&cfg, key(), key(), &BuildEnv::default()) {
            Err(BuildError::Config(errs)) => errs.errors,
            Err(other) => panic!("not a config error: {other}"),
            Ok(_) => panic!("built"),
        }
    }

    fn path(field: &str) -> Vec<Seg> {
        vec![Seg::Key("config".into()), Seg::Key(field.into())]
    }

    #[test]
    fn build_errors_name_the_config_field() {
        let issuer = "http://127.0.0.1:9/realms/x";
        let e = build_error(json!({"issuer": issuer, "session_cookie_name": "bad name;"}));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, path("session_cookie_name"));
        assert!(e[0].1.starts_with("must be 1 to 128 token characters"), "{}", e[0].1);

        let e = build_error(json!({"issuer": issuer, "session_cookie_domain": "a b"}));
        assert_eq!(e[0].0, path("session_cookie_domain"));
    }

    #[test]
    fn failure_redirects_are_checked_as_login_and_logout_ones() {
        let issuer = "http://127.0.0.1:9/realms/x";
        for field in ["unauthorized_redirect_uri", "forbidden_redirect_uri", "unexpected_redirect_uri"] {
            for bad in ["javascript://x/%0aalert(1)", "https://app.example@evil.example/", "data://text/html,x"] {
                let e = build_error(json!({"issuer": issuer, field: ["https://app.example/", bad]}));
                assert_eq!(e.len(), 1, "{field} {bad}: {e:?}");
                assert_eq!(e[0].0, path(field), "{bad}");
            }
        }
        Oidc::for_tests(json!({"unauthorized_redirect_uri": ["https://app.example/login?x=1"]}));
    }

    #[test]
    fn huge_durations_are_clamped_to_ten_years() {
        let o = Oidc::for_tests(json!({"cache_ttl": 1e300, "leeway": -1e300, "timeout": 1e300}));
        assert_eq!(o.auth.verifier.leeway, 0, "a negative leeway is none");
    }
}
