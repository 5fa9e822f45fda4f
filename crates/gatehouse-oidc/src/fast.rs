//! The front: a cache of authentications in front of the pipeline's "authenticate" step, served
//! synchronously (`Step::Ready`, no boxed future).
//!
//! A repeated credential is the common case behind a gateway. The general path handles it from
//! caches too, but as a boxed future, and for a bearer token through the shared verified-token
//! cache (moka), cloning header values that both proxy threads share, so their reference counts
//! bounce between cores. A hit here is a lookup, the same time checks and the same
//! [`Authorizer::requirements_met`], and then the same [`apply`] as the general path's: there
//! is no second implementation of the request's edits.
//!
//! It serves only configurations where a cached authentication alone decides the outcome
//! (chosen once, in [`Front::for_config`]), and only successes: a miss, an expired entry, a
//! token whose key a JWKS refresh removed (`Verifier::holds_key`) or a failed requirement returns
//! `None`, and the general path answers with the request untouched.
//! An instance holds at most one kind, as their conditions exclude each other:
//! - `Bearer`: each proxy thread keeps its own map from token to what the general path decided
//!   (the verified token, whose `jwk` names the key that verified it, and the upstream headers
//!   copied into that thread);
//! - `Session`: the instance's cache of opened sessions (`sessions.rs`);
//! - `Password`: the instance's token cache, keyed by a hash of the credentials as there.

use crate::authenticate::Authenticator;
use crate::authorize::Authorizer;
use crate::cache::unix_now;
use crate::credentials::{self, Found};
use crate::decision::{Additions, Allow, Decision, Strip, Upstream, apply};
use crate::headers::HeaderPlan;
use crate::method::Method;
use crate::outcome::Outcome;
use crate::tokens::VerifiedJwt;
use gatehouse_core::plugin::{Ctx, Flow};
use http::request::Parts;
use http::{HeaderName, HeaderValue};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use thread_local::ThreadLocal;

/// Tokens remembered per proxy thread. Past this, an arbitrary entry makes room: the general
/// path still answers every token, so this bounds memory (a token and its headers are about
/// 2 KiB) without bounding correctness.
const ENTRIES_PER_THREAD: usize = 2048;

/// Where a bearer token the front serves was: `Authorization`.
static AUTHORIZATION: [Found; 1] = [Found::Headers(&credentials::AUTHORIZATION_HEADER)];

/// The cached authentications a config can serve synchronously.
pub(crate) enum Front {
    None,
    // Boxed: the per-thread table is half a kilobyte, the other variants nothing.
    Bearer(Box<Bearers>),
    Session,
    Password,
}

impl Front {
    /// The front of a config: one kind at most, only where the cached authentication alone
    /// decides (nothing fetched for headers, no consumer, no groups, no downstream headers).
    pub fn for_config(auth: &Authenticator, authz: &Authorizer, plan: &HeaderPlan) -> Front {
        let m = auth.methods;
        // `Session-*` headers change with every request: the front would send stale ones.
        let alone = authz.needs_only_the_outcome()
            && !plan.needs_introspection()
            && !plan.needs_userinfo()
            && plan.downstream_is_empty()
            && plan.upstream.session.is_empty();
        if !alone {
            return Front::None;
        }
        // The token alone decides: `bearer` without `session` (tried first), found in the
        // `Authorization` header first, and not asked about at introspection.
        if m.contains(Method::Bearer)
            && !m.contains(Method::Session)
            && auth.finder.bearer_in_authorization_only()
            && !auth.introspect_jwt_tokens
        {
            return Front::Bearer(Box::default());
        }
        // `session` is the first method the general path tries, so any other may be on.
        if m.contains(Method::Session) {
            return Front::Session;
        }
        // A cached password grant decides when no method is tried before it, Basic credentials
        // are looked for first, and there is one client.
        let before = [Method::Bearer, Method::Introspection, Method::Userinfo, Method::RefreshToken];
        if m.contains(Method::Password)
            && !m.any(&before)
            && auth.grants.tokens.is_some()
            && auth.finder.password_in_basic_first()
            && auth.grants.clients.len() <= 1
        {
            return Front::Password;
        }
        Front::None
    }

    /// Serves the request from a cached authentication, or `None`: the general path answers,
    /// with the request as it came.
    pub fn serve(
        &self,
        auth: &Authenticator,
        authz: &Authorizer,
        plan: &HeaderPlan,
        ctx: &mut Ctx,
        parts: &mut Parts,
    ) -> Option<Flow> {
        match self {
            Front::None => None,
            Front::Bearer(bearers) => {
                let cell = bearers.threads.get()?;
                let map = cell.borrow();
                let token = credentials::scheme_token(&parts.headers, "bearer")?;
                let e = map.get(token)?;
                let now = unix_now();
                if now >= e.until {
                    return None;
                }
                let (v, verifier) = (&e.jwt, &auth.verifier);
                // The key that verified it must still be published: the one extra load of a hit.
                let generation = verifier.provider.key_generation();
                if e.key_checked.get() != generation {
                    if !verifier.holds_key_at(v, generation) {
                        drop(map);
                        cell.borrow_mut().remove(token);
                        return None;
                    }
                    e.key_checked.set(generation);
                }
                if verifier.verify_claims && v.window(now, verifier.leeway).is_err() {
                    return None;
                }
                authz.requirements_met(&[&v.claims]).ok()?;
                let hide: &[Found] = if authz.hide_credentials { &AUTHORIZATION } else { &[] };
                Some(allow(
                    plan,
                    ctx,
                    parts,
                    Strip { session: None, hide, ..Strip::default() },
                    &e.headers,
                    Additions::default(),
                ))
            }
            Front::Session => {
                let cached = auth.sessions.cached(&parts.headers, unix_now(), &auth.verifier)?;
                // `session_bind`: a copied cookie from another client is the general path's to refuse.
                if !cached.binding.matches(&auth.sessions.binding(ctx.forwarded_ip, ctx.https, &parts.headers)) {
                    return None;
                }
                // Read in place: an outcome made of the entry would clone its shared tokens,
                // reference counts that both proxy threads touch.
                let claims = cached.access.as_ref().map(|a| &a.claims);
                authz.requirements_met(claims.as_slice()).ok()?;
                let headers = cached.memo.get()?;
                let strip = Strip { session: Some(&auth.sessions.store), ..Strip::default() };
                Some(allow(plan, ctx, parts, strip, headers, Additions::default()))
            }
            Front::Password => {
                let p = credentials::basic_pair(&parts.headers, Method::Password)?;
                let g = auth.grants.tokens.as_ref()?.get(&auth.grants.password_key(&p))?;
                let g = &g.value;
                if g.expired(unix_now(), auth.verifier.leeway) || !g.holds_keys(&auth.verifier) {
                    return None;
                }
                let claims = g.access.as_ref().map(|a| &a.claims);
                authz.requirements_met(claims.as_slice()).ok()?;
                let headers = g.memo.get()?;
                let hide = if authz.hide_credentials { std::slice::from_ref(&p.found) } else { &[] };
                // A cached grant replays the headers its answer came with, as the general path does.
                let additions = Additions {
                    downstream: g.replay.as_deref().map(<[_]>::to_vec).unwrap_or_default(),
                    ..Additions::default()
                };
                Some(allow(plan, ctx, parts, Strip { session: None, hide, ..Strip::default() }, headers, additions))
            }
        }
    }

    /// Remembers what the general path allowed, when this front serves it from its own map.
    pub fn remember(&self, o: &Outcome) {
        if let (Front::Bearer(bearers), Method::Bearer, Some(jwt), Some(token)) =
            (self, o.method, &o.access, &o.access_token)
        {
            bearers.remember(token, jwt);
        }
    }
}

/// A cached authentication's decision, applied as the general path applies its own.
fn allow(
    plan: &HeaderPlan,
    ctx: &mut Ctx,
    parts: &mut Parts,
    strip: Strip<'_>,
    headers: &[(HeaderName, HeaderValue)],
    additions: Additions,
) -> Flow {
    let allow = Allow { strip, consumer: None, groups: None, upstream: Upstream::Shared(headers), additions };
    apply(plan, ctx, parts, Decision::Allow(allow))
}

/// One plugin instance's per-thread bearer maps. Dropped with the instance, so a config change
/// starts empty, as the verified-token cache does.
#[derive(Default)]
pub(crate) struct Bearers {
    threads: ThreadLocal<RefCell<Map>>,
}

type Map = HashMap<Box<str>, Entry, foldhash::fast::RandomState>;

struct Entry {
    /// The verified token; its `jwk` is the key that verified it.
    jwt: Arc<VerifiedJwt>,
    /// The provider's key generation at which `jwt`'s key was last known to be published: a
    /// copy on this thread, so a hit reads nothing another core writes.
    key_checked: Cell<u64>,
    /// Unix seconds after which the verified-token cache would have dropped the token
    /// (`cache_ttl`): the general path then verifies it again.
    until: i64,
    /// The upstream headers, copied for this thread (no value shared with another thread).
    headers: Box<[(HeaderName, HeaderValue)]>,
}

impl Bearers {
    /// Remembers what the general path decided for `token`, on this thread. `jwt`'s upstream
    /// headers must have been built (the general path builds them on its first success).
    fn remember(&self, token: &str, jwt: &Arc<VerifiedJwt>) {
        let Some(headers) = jwt.upstream_headers.get() else { return };
        let headers = headers
            .iter()
            .map(|(n, v)| {
                let n = HeaderName::from_bytes(n.as_str().as_bytes()).unwrap_or_else(|_| n.clone());
                let mut copy = HeaderValue::from_bytes(v.as_bytes()).unwrap_or_else(|_| v.clone());
                copy.set_sensitive(v.is_sensitive());
                (n, copy)
            })
            .collect();
        let left = jwt.cache_until.saturating_duration_since(Instant::now()).as_secs();
        let until = unix_now().saturating_add(i64::try_from(left).unwrap_or(i64::MAX));
        let mut map = self.threads.get_or_default().borrow_mut();
        if map.len() >= ENTRIES_PER_THREAD
            && !map.contains_key(token)
            && let Some(k) = map.keys().next().cloned()
        {
            map.remove(&k);
        }
        let key_checked = Cell::new(jwt.key_checked());
        map.insert(token.into(), Entry { jwt: jwt.clone(), key_checked, until, headers });
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::headers::{self, Sources};
    use crate::instance::Oidc;
    use serde_json::{Value, json};
    use std::time::Duration;

    const TOKEN: &str = "header.payload.signature";

    fn oidc(extra: Value) -> Oidc {
        let mut cfg = json!({
            "auth_methods": ["bearer"],
            "upstream_headers_claims": ["preferred_username", "email"],
            "upstream_headers_names": ["x_user", "x_email"],
        });
        if let (Value::Object(c), Value::Object(e)) = (&mut cfg, extra) {
            c.extend(e);
        }
        Oidc::for_tests(cfg)
    }

    fn bearers(o: &Oidc) -> &Bearers {
        match &o.front {
            Front::Bearer(b) => b,
            _ => panic!("not a bearer front"),
        }
    }

    /// A token as the general path leaves it: verified, cached for a minute, headers built.
    fn verified(o: &Oidc, exp: i64) -> Arc<VerifiedJwt> {
        let claims =
            json!({ "preferred_username": "john", "email": "john@example.com", "exp": exp, "scope": "openid" });
        let Value::Object(claims) = claims else { unreachable!() };
        let mut v = VerifiedJwt::unverified(claims);
        v.cache_until = Instant::now() + Duration::from_secs(60);
        let src = Sources { access: Some(&v.claims), access_token: Some(TOKEN), ..Sources::default() };
        let built = headers::build(&o.plan, &o.plan.upstream, &src);
        v.upstream_headers.set(built).expect("fresh memo");
        Arc::new(v)
    }

    pub(crate) fn request(method: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri("/api");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    pub(crate) fn ctx() -> Ctx {
        Ctx::new("127.0.0.1:1".parse().expect("address"), "route".into(), None, Arc::default())
    }

    fn serve(o: &Oidc, c: &mut Ctx, parts: &mut Parts) -> Option<Flow> {
        o.front.serve(&o.auth, &o.authz, &o.plan, c, parts)
    }

    fn run(o: &Oidc, parts: &mut Parts) -> Option<Flow> {
        serve(o, &mut ctx(), parts)
    }

    /// `req()` through the general path first, then again through the front, which must serve
    /// it and leave the request as the general path did (both end in the same `apply`).
    /// Returns that second request.
    pub(crate) async fn served_after_the_general_path(o: &Oidc, req: impl Fn() -> Parts) -> Parts {
        let mut first = req();
        assert!(run(o, &mut first).is_none(), "nothing cached yet");
        assert!(matches!(o.access_async(&mut ctx(), &mut first).await, Flow::Continue));
        let mut again = req();
        let mut c = ctx();
        assert!(matches!(serve(o, &mut c, &mut again), Some(Flow::Continue)));
        assert!(c.authenticated);
        assert_eq!(again.headers, first.headers, "the same upstream request as the general path's");
        again
    }

    fn later() -> i64 {
        unix_now() + 3600
    }

    #[test]
    fn a_remembered_token_passes_with_its_headers_and_spoofed_ones_gone() {
        let o = oidc(json!({}));
        let bearer = format!("Bearer {TOKEN}");
        let mut parts =
            request("GET", &[("authorization", &bearer), ("x-user", "mallory"), ("x-consumer-id", "admin")]);
        assert!(run(&o, &mut parts).is_none(), "an unknown token goes the general way");

        bearers(&o).remember(TOKEN, &verified(&o, later()));
        let mut c = ctx();
        assert!(matches!(serve(&o, &mut c, &mut parts), Some(Flow::Continue)));
        assert!(c.authenticated);
        assert_eq!(parts.headers["x-user"], "john");
        assert_eq!(parts.headers.get_all("x-user").iter().count(), 1);
        assert_eq!(parts.headers["x-email"], "john@example.com");
        assert!(parts.headers.get("x-consumer-id").is_none(), "identity headers are never the client's");
        assert_eq!(parts.headers["authorization"], bearer.as_str(), "forwarded as the general path does");
        assert!(c.extensions.get::<crate::decision::Additions>().is_none(), "nothing for the response");

        let mut other = request("GET", &[("authorization", "Bearer another.token.here")]);
        assert!(run(&o, &mut other).is_none());
        let mut basic = request("GET", &[("authorization", "Basic am9objpkb2U=")]);
        assert!(run(&o, &mut basic).is_none());
    }

    #[test]
    fn it_never_decides_what_the_general_path_would_refuse() {
        let o = oidc(json!({ "scopes_required": ["admin"] }));
        bearers(&o).remember(TOKEN, &verified(&o, later()));
        let bearer = format!("Bearer {TOKEN}");
        assert!(
            run(&o, &mut request("GET", &[("authorization", &bearer)])).is_none(),
            "a missing scope is a 403 there"
        );

        let o = oidc(json!({}));
        bearers(&o).remember(TOKEN, &verified(&o, unix_now() - 1));
        assert!(run(&o, &mut request("GET", &[("authorization", &bearer)])).is_none(), "expired");

        let mut stale = verified(&o, later());
        Arc::get_mut(&mut stale).expect("unique").cache_until = Instant::now();
        bearers(&o).remember(TOKEN, &stale);
        assert!(run(&o, &mut request("GET", &[("authorization", &bearer)])).is_none(), "past cache_ttl: verify again");
    }

    #[test]
    fn a_preflight_is_left_alone_before_the_front() {
        let o = oidc(json!({ "run_on_preflight": false }));
        bearers(&o).remember(TOKEN, &verified(&o, later()));
        let bearer = format!("Bearer {TOKEN}");
        let mut options = request("OPTIONS", &[("authorization", &bearer), ("x-user", "mallory")]);
        let mut c = ctx();
        assert!(matches!(o.access(&mut c, &mut options), gatehouse_core::plugin::Step::Ready(Flow::Continue)));
        assert!(!c.authenticated);
        assert_eq!(options.headers["x-user"], "mallory", "untouched");
        let mut get = request("GET", &[("authorization", &bearer)]);
        assert!(matches!(o.access(&mut ctx(), &mut get), gatehouse_core::plugin::Step::Ready(Flow::Continue)));
        assert_eq!(get.headers["x-user"], "john");
    }

    #[test]
    fn hide_credentials_removes_the_token_unless_a_header_sends_it_on() {
        let o = oidc(json!({ "hide_credentials": true, "upstream_access_token_header": null }));
        bearers(&o).remember(TOKEN, &verified(&o, later()));
        let mut parts = request("GET", &[("authorization", &format!("Bearer {TOKEN}"))]);
        assert!(run(&o, &mut parts).is_some());
        assert!(parts.headers.get("authorization").is_none());
        assert_eq!(parts.headers["x-user"], "john");
    }

    #[test]
    fn only_configs_where_the_token_alone_decides_get_a_bearer_front() {
        assert!(matches!(oidc(json!({})).front, Front::Bearer(_)));
        for extra in [
            json!({ "auth_methods": ["bearer", "session"] }),
            json!({ "auth_methods": ["introspection"] }),
            json!({ "bearer_token_param_type": ["query", "header"] }),
            json!({ "introspect_jwt_tokens": true }),
            json!({ "id_token_param_name": "id_token" }),
            json!({ "downstream_headers_claims": ["sub"], "downstream_headers_names": ["x_sub"] }),
            json!({ "consumer_claim": ["sub"] }),
            json!({ "authenticated_groups_claim": ["groups"] }),
            json!({ "search_user_info": true }),
        ] {
            assert!(!matches!(oidc(extra.clone()).front, Front::Bearer(_)), "{extra}");
        }
    }

    #[tokio::test]
    async fn a_token_whose_key_was_removed_is_not_served_and_others_are() {
        use crate::tokens::tests::{oidc as fresh_issuer, publish, signing_key, token};
        let o = fresh_issuer(json!({
            "auth_methods": ["bearer"],
            "upstream_headers_claims": ["preferred_username"],
            "upstream_headers_names": ["x_user"],
        }));
        assert!(matches!(o.front, Front::Bearer(_)));
        let ((k1, jwk1), (k2, jwk2)) = (signing_key("k1"), signing_key("k2"));
        publish(&o, &[&jwk1, &jwk2]);
        let (t1, t2) = (bearer_of(&token(&o, &k1)), bearer_of(&token(&o, &k2)));
        for t in [&t1, &t2] {
            served_after_the_general_path(&o, || request("GET", &[("authorization", t)])).await;
        }
        publish(&o, &[&jwk1, &jwk2, &signing_key("k3").1]);
        assert!(run(&o, &mut request("GET", &[("authorization", &t1)])).is_some(), "a key added changes nothing");

        publish(&o, &[&jwk2]);
        let mut parts = request("GET", &[("authorization", &t1), ("x-user", "mallory")]);
        assert!(run(&o, &mut parts).is_none(), "k1 is gone: the general way");
        assert_eq!(parts.headers["x-user"], "mallory", "untouched");
        let token1 = t1.strip_prefix("Bearer ").unwrap();
        assert!(!bearers(&o).threads.get().unwrap().borrow().contains_key(token1), "the entry is dropped");
        let refused = o.access_async(&mut ctx(), &mut parts).await;
        assert!(matches!(refused, Flow::Respond(r) if r.status() == 401), "and there its kid is unknown");
        let mut kept = request("GET", &[("authorization", &t2)]);
        assert!(run(&o, &mut kept).is_some(), "k2 is still published");
        assert_eq!(kept.headers["x-user"], "john");
    }

    fn bearer_of(token: &str) -> String {
        format!("Bearer {token}")
    }

    #[test]
    fn each_thread_keeps_at_most_its_share_of_tokens() {
        let o = oidc(json!({}));
        let b = bearers(&o);
        let v = verified(&o, later());
        for i in 0..ENTRIES_PER_THREAD + 10 {
            b.remember(&format!("token-{i}"), &v);
        }
        let map = b.threads.get().expect("this thread's map").borrow();
        assert_eq!(map.len(), ENTRIES_PER_THREAD);
        assert!(map.contains_key("token-2057"), "the newest token is kept");
    }

    mod session {
        use super::*;
        use crate::session::SessionData;
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

        fn oidc() -> Oidc {
            Oidc::for_tests(json!({
                "auth_methods": ["session", "password"],
                "upstream_headers_claims": ["preferred_username"],
                "upstream_headers_names": ["x_user"],
            }))
        }

        /// The `Cookie` header of a fresh session holding an access token for john.
        fn cookie(o: &Oidc) -> String {
            let claims = json!({ "preferred_username": "john", "exp": unix_now() + 3600 });
            let token = format!("{}.{}.sig", B64.encode(br#"{"alg":"RS256"}"#), B64.encode(claims.to_string()));
            cookie_with(o, token)
        }

        /// The `Cookie` header of a fresh session holding `token`.
        fn cookie_with(o: &Oidc, token: String) -> String {
            let now = unix_now();
            let data = SessionData {
                client: 0,
                access_token: token.into(),
                id_token: None,
                refresh_token: None,
                expires: now + 3600,
                auth_method: Method::Password.name().into(),
            };
            let store = &o.auth.sessions.store;
            let mut session = store.new_session(now, None, data.encode());
            let set = store.save(&mut session, now, false, 0).expect("saved");
            set.iter()
                .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string())
                .collect::<Vec<_>>()
                .join("; ")
        }

        #[tokio::test]
        async fn a_cached_session_is_served_by_the_front_as_the_general_path_serves_it() {
            let o = oidc();
            assert!(matches!(o.front, Front::Session));
            let cookies = format!("{}; theme=dark", cookie(&o));
            let req = || request("GET", &[("cookie", &cookies), ("x-user", "mallory"), ("x-consumer-id", "1")]);
            let again = served_after_the_general_path(&o, req).await;
            assert_eq!(again.headers["x-user"], "john");
            assert_eq!(again.headers["cookie"], "theme=dark", "the session cookie stays here");
            assert!(again.headers.get("x-consumer-id").is_none());
        }

        /// Sessions (with `config` on top) holding a token signed by k1, which is removed after
        /// the first request: the opened session never outlives k1 in the cache. What opening
        /// the cookie again gives (`then`) is `reverify`'s to say.
        async fn key_removed(config: Value, then: u16) {
            use crate::tokens::tests::{oidc as fresh_issuer, publish, signing_key, token};
            let mut cfg = json!({
                "auth_methods": ["session"],
                "upstream_headers_claims": ["preferred_username"],
                "upstream_headers_names": ["x_user"],
            });
            if let (Value::Object(c), Value::Object(e)) = (&mut cfg, config) {
                c.extend(e);
            }
            let o = fresh_issuer(cfg);
            let (k1, jwk1) = signing_key("k1");
            publish(&o, &[&jwk1]);
            let t1 = token(&o, &k1);
            // Verified before (as a grant's token is), so the opened session holds its key.
            o.auth.verifier.access_token(&t1, unix_now()).await.expect("verified");
            let cookies = cookie_with(&o, t1);
            let req = || request("GET", &[("cookie", &cookies)]);
            served_after_the_general_path(&o, req).await;

            publish(&o, &[&signing_key("k2").1]);
            assert!(run(&o, &mut req()).is_none(), "the opened session is not served past its key");
            let flow = o.access_async(&mut ctx(), &mut req()).await;
            let status = match flow {
                Flow::Continue => 200,
                Flow::Respond(r) => r.status().as_u16(),
                Flow::Fail => 0,
            };
            assert_eq!(status, then);
        }

        #[tokio::test]
        async fn a_key_removal_ends_a_session_only_with_reverify() {
            // Kong's default: the session's tokens are trusted because we sealed them.
            key_removed(json!({}), 200).await;
            key_removed(json!({ "reverify": true }), 401).await;
        }

        #[tokio::test]
        async fn with_reverify_a_cached_session_is_not_served_past_its_tokens_exp() {
            use crate::tokens::tests::{oidc as fresh_issuer, publish, signing_key};
            let o = fresh_issuer(json!({
                "auth_methods": ["session"], "reverify": true,
                "upstream_headers_claims": ["preferred_username"], "upstream_headers_names": ["x_user"],
            }));
            let (k1, jwk1) = signing_key("k1");
            publish(&o, &[&jwk1]);
            let now = unix_now();
            let claims = json!({
                "iss": o.auth.verifier.provider.issuer(), "sub": "john", "iat": now, "exp": now + 1,
                "preferred_username": "john",
            });
            let short = gatehouse_jose::sign::sign_jwt(&json!({"typ": "at+jwt"}), &claims, &k1).unwrap();
            // The session itself lasts an hour; only its access token is short.
            let cookies = cookie_with(&o, short);
            let req = || request("GET", &[("cookie", &cookies)]);
            served_after_the_general_path(&o, req).await;
            tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
            assert!(run(&o, &mut req()).is_none(), "the cached session is not served past its token's exp");
            let flow = o.access_async(&mut ctx(), &mut req()).await;
            assert!(matches!(flow, Flow::Respond(ref r) if r.status() == 401), "opened again, reverify refuses it");
        }

        #[tokio::test]
        async fn reverify_refuses_tokens_that_do_not_verify_and_leaves_opaque_ones() {
            use crate::tokens::tests::{oidc as fresh_issuer, publish, signing_key};
            let o = fresh_issuer(json!({ "auth_methods": ["session"], "reverify": true }));
            publish(&o, &[&signing_key("k1").1]);
            let status = |cookies: String| {
                let o = &o;
                async move {
                    match o.access_async(&mut ctx(), &mut request("GET", &[("cookie", &cookies)])).await {
                        Flow::Continue => 200,
                        Flow::Respond(r) => r.status().as_u16(),
                        Flow::Fail => 0,
                    }
                }
            };
            // A forged signature, `alg: none`, or an opaque access token (nothing to verify).
            assert_eq!(status(cookie(&o)).await, 401);
            let claims = json!({ "preferred_username": "john", "exp": unix_now() + 3600 });
            let none = format!("{}.{}.", B64.encode(br#"{"alg":"none"}"#), B64.encode(claims.to_string()));
            assert_eq!(status(cookie_with(&o, none)).await, 401);
            assert_eq!(status(cookie_with(&o, "opaque-token".into())).await, 200);
        }

        /// `forbidden_destroy_session` (default true) must expire the session cookie on
        /// every 403 the session gets, not only on the request that opened the cookie. The second
        /// request is answered from the cache of opened sessions (filled by the first, refused,
        /// request), whose path never records `trail.session_cookies`.
        #[tokio::test]
        async fn a_refused_session_is_destroyed_also_when_it_comes_from_the_cache() {
            let o = Oidc::for_tests(json!({ "auth_methods": ["session"], "consumer_claim": ["preferred_username"] }));
            let cookies = cookie(&o);
            let cleared = |c: &Ctx| {
                c.extensions.get::<crate::decision::Additions>().map_or(0, |a| {
                    a.set_cookies.iter().filter(|v| v.to_str().unwrap_or("").contains("Max-Age=0")).count()
                })
            };
            for round in ["opened", "cached"] {
                let mut c = ctx();
                let flow = o.access_async(&mut c, &mut request("GET", &[("cookie", &cookies)])).await;
                assert!(matches!(flow, Flow::Respond(ref r) if r.status() == 403), "{round}: no consumer: 403");
                assert_eq!(cleared(&c), 1, "{round}: the 403 expires the session cookie");
            }
        }

        /// With sessions bound to their plugin, two route plugins of one issuer share the
        /// cookie name and `Path=/`, so the browser sends plugin A's cookie to B's route. B cannot
        /// open it, yet its 401 (`unauthorized_destroy_session`, default true) expires it: any
        /// request to B's route (an `<img src=/b>` on any page) logs the user out of A.
        #[tokio::test]
        async fn a_plugin_does_not_expire_a_session_cookie_it_cannot_open() {
            let issuer = "http://127.0.0.1:9/realms/x";
            let build = |id: &str| {
                let cfg = json!({ "issuer": issuer, "auth_methods": ["session", "bearer"] });
                let cfg = crate::config::schema()
                    .validate(&cfg, gatehouse_core::schema::Mode::default())
                    .expect("valid config");
                let key = || gatehouse_session::SessionCodec::for_instance(b"issuer secret", id, issuer);
                Oidc::build(&cfg, key(), key(), &gatehouse_core::plugin::BuildEnv::default()).expect("builds")
            };
            let (a, b) = (build("plugin-a"), build("plugin-b"));
            let cookies = cookie(&a);
            let flow = a.access_async(&mut ctx(), &mut request("GET", &[("cookie", &cookies)])).await;
            assert!(matches!(flow, Flow::Continue), "A's own session passes at A");

            let mut c = ctx();
            let flow = b.access_async(&mut c, &mut request("GET", &[("cookie", &cookies)])).await;
            assert!(matches!(flow, Flow::Respond(ref r) if r.status() == 401), "B does not open A's session");
            let expired = c.extensions.get::<crate::decision::Additions>().map_or(0, |x| x.set_cookies.len());
            assert_eq!(expired, 0, "B's 401 expires A's session cookie (Set-Cookie: session=; Max-Age=0)");
        }

        #[tokio::test]
        async fn refusals_and_other_configs_go_the_general_way() {
            let o = Oidc::for_tests(json!({ "auth_methods": ["session"], "scopes_required": ["admin"] }));
            let cookies = cookie(&o);
            let mut first = request("GET", &[("cookie", &cookies)]);
            assert!(!matches!(o.access_async(&mut ctx(), &mut first).await, Flow::Continue), "403: no admin scope");
            let mut again = request("GET", &[("cookie", &cookies)]);
            assert!(run(&o, &mut again).is_none());
            assert_eq!(again.headers["cookie"], cookies.as_str(), "left as it came");

            let session = |config| matches!(Oidc::for_tests(config).front, Front::Session);
            assert!(!session(json!({ "auth_methods": ["session"], "consumer_claim": ["sub"] })));
            assert!(!session(json!({ "auth_methods": ["bearer"] })));
            assert!(!session(json!({ "auth_methods": ["session"], "upstream_user_info_header": "x-userinfo" })));
        }
    }

    mod password {
        use super::*;
        use crate::cache::Timed;
        use crate::grants::Granted;
        use crate::outcome::Replay;
        use crate::provider::calls::TokenSet;

        /// A grant as the token cache holds it after a password grant for john.
        async fn cache_grant(o: &Oidc, basic: &str) {
            let claims = json!({ "preferred_username": "john", "exp": unix_now() + 3600 });
            let Value::Object(claims) = claims else { unreachable!() };
            cache_grant_of(o, basic, Arc::new(VerifiedJwt::unverified(claims))).await;
        }

        /// A grant whose access token is `access`, as the token cache holds it.
        async fn cache_grant_of(o: &Oidc, basic: &str, access: Arc<VerifiedJwt>) {
            cache_grant_replaying(o, basic, access, None).await;
        }

        /// A grant whose answer came with the headers `replay` for the client.
        async fn cache_grant_replaying(o: &Oidc, basic: &str, access: Arc<VerifiedJwt>, replay: Option<Replay>) {
            let now = unix_now();
            let headers = http::HeaderMap::from_iter([(http::header::AUTHORIZATION, basic.parse().unwrap())]);
            let p = credentials::basic_pair(&headers, Method::Password).expect("a pair");
            let ts = TokenSet {
                access_token: "at".into(),
                id_token: None,
                refresh_token: None,
                expires_at: None,
                raw: Default::default(),
                headers: Default::default(),
            };
            let access = Some(access);
            let g = Granted { ts, access, id: None, expires: now + 3600, memo: Default::default(), replay };
            let until = Instant::now() + Duration::from_secs(60);
            let fetch = || async { Ok::<_, ()>(Arc::new(Timed { value: g, until })) };
            let tokens = o.auth.grants.tokens.as_ref().expect("token cache");
            tokens.try_get_with(o.auth.grants.password_key(&p), |_| true, fetch).await.expect("cached");
        }

        /// Password grants with one client, at a token endpoint that is down.
        fn config() -> Value {
            json!({
                "auth_methods": ["password"],
                "client_id": ["gatehouse"],
                "client_secret": ["secret"],
                "token_endpoint": "http://127.0.0.1:9/token",
                "upstream_headers_claims": ["preferred_username"],
                "upstream_headers_names": ["x_user"],
            })
        }

        #[tokio::test]
        async fn a_cached_password_grant_is_served_by_the_front_as_the_general_path_serves_it() {
            let no_client =
                Oidc::for_tests(json!({ "auth_methods": ["password"], "token_endpoint": "http://127.0.0.1:9/t" }));
            let refused = no_client
                .access_async(&mut ctx(), &mut request("GET", &[("authorization", "Basic am9objpkb2U=")]))
                .await;
            assert!(matches!(refused, Flow::Respond(r) if r.status() == 500), "no client: a 500, not a panic");

            let mut config = config();
            config["hide_credentials"] = json!(true);
            let o = Oidc::for_tests(config);
            assert!(matches!(o.front, Front::Password));
            let basic = "Basic am9objpkb2U=";
            cache_grant(&o, basic).await;
            let req = || request("GET", &[("authorization", basic), ("x-user", "mallory"), ("x-consumer-id", "1")]);
            // The grant is cached, but its headers are made by the general path's first answer.
            let again = served_after_the_general_path(&o, req).await;
            assert_eq!(again.headers["x-user"], "john");
            assert_eq!(again.headers["authorization"], "Bearer at");

            let mut wrong = request("GET", &[("authorization", "Basic am9objp4")]);
            assert!(run(&o, &mut wrong).is_none(), "another password: the general way");
            assert_eq!(wrong.headers["authorization"], "Basic am9objp4");
            let password = |config| matches!(Oidc::for_tests(config).front, Front::Password);
            assert!(!password(json!({ "auth_methods": ["password", "bearer"] })));
            assert!(!password(json!({ "auth_methods": ["password"], "cache_tokens": false })));
        }

        #[tokio::test]
        async fn a_cached_grant_replays_its_token_endpoint_headers_from_the_front_too() {
            let o = Oidc::for_tests(config());
            assert!(matches!(o.front, Front::Password));
            let basic = "Basic am9objpkb2U=";
            let claims = json!({ "preferred_username": "john", "exp": unix_now() + 3600 });
            let Value::Object(claims) = claims else { unreachable!() };
            let replay = vec![(HeaderName::from_static("idp-x-rate"), HeaderValue::from_static("10"))];
            let access = Arc::new(VerifiedJwt::unverified(claims));
            cache_grant_replaying(&o, basic, access, Some(replay.clone().into())).await;
            let downstream = |c: &Ctx| c.extensions.get::<Additions>().map(|a| a.downstream.clone());
            let mut first = request("GET", &[("authorization", basic)]);
            let mut c = ctx();
            assert!(matches!(o.access_async(&mut c, &mut first).await, Flow::Continue));
            assert_eq!(downstream(&c), Some(replay.clone()), "the general path");
            let mut again = request("GET", &[("authorization", basic)]);
            let mut c = ctx();
            assert!(matches!(serve(&o, &mut c, &mut again), Some(Flow::Continue)));
            assert_eq!(downstream(&c), Some(replay), "the front");
        }

        #[tokio::test]
        async fn a_grant_whose_key_was_removed_is_not_served_from_any_cache() {
            use crate::tokens::tests::{oidc as fresh_issuer, publish, signing_key, token};
            let o = fresh_issuer(config());
            let (k1, jwk1) = signing_key("k1");
            publish(&o, &[&jwk1]);
            let access = o.auth.verifier.access_token(&token(&o, &k1), unix_now()).await.expect("verified");
            let basic = "Basic am9objpkb2U=";
            cache_grant_of(&o, basic, access).await;
            let req = || request("GET", &[("authorization", basic)]);
            served_after_the_general_path(&o, req).await;

            publish(&o, &[&signing_key("k2").1]);
            assert!(run(&o, &mut req()).is_none(), "k1 is gone: not from the front");
            // The general path drops the grant and asks the token endpoint again (down here).
            let flow = o.access_async(&mut ctx(), &mut req()).await;
            assert!(matches!(flow, Flow::Respond(r) if r.status() == 502), "a new grant, not the cached one");
            let headers = http::HeaderMap::from_iter([(http::header::AUTHORIZATION, basic.parse().unwrap())]);
            let p = credentials::basic_pair(&headers, Method::Password).unwrap();
            let tokens = o.auth.grants.tokens.as_ref().unwrap();
            assert!(tokens.get(&o.auth.grants.password_key(&p)).is_none(), "the grant left the cache");
        }
    }
}
