//! The synchronous path for a bearer token this thread has already let through.
//!
//! A repeated token is the common case behind a gateway. The general path (`access.rs`) handles
//! it from caches too, but as a boxed future, through the shared verified-token cache (moka),
//! and by cloning header values that both proxy threads share, so their reference counts bounce
//! between cores. Here each proxy thread keeps its own small map from token to what the general
//! path decided: the verified claims and the upstream headers, copied into this thread. A hit is
//! a hash lookup, the same time and `authz` checks as the general path, and header inserts,
//! with no lock, no allocation beyond the header map's and no cross-core traffic.
//!
//! It serves only configurations where a token alone decides the outcome (`Fast::eligible`),
//! and only successes: anything else (a miss, an expired token, a failed requirement) returns
//! `None` and the general path answers, with its errors and logs.
//!
//! A session cookie opened before (`session`) gets the same treatment from the instance's
//! session cache: the checks `access.rs` makes on a cached session, then the headers it would
//! set, without the boxed future. Same rules: successes only, everything else goes the general
//! way with the request as it came.

use crate::access::unix_now;
use crate::credentials::Place;
use crate::plugin::Oidc;
use crate::tokens::VerifiedJwt;
use gatehouse_core::plugin::{Ctx, Flow};
use http::request::Parts;
use http::{HeaderName, HeaderValue};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use thread_local::ThreadLocal;

/// Tokens remembered per proxy thread. Past this, an arbitrary entry makes room: the general
/// path still answers every token, so this bounds memory (a token and its headers are about
/// 2 KiB) without bounding correctness.
const ENTRIES_PER_THREAD: usize = 2048;

/// The synchronous path a config allows. At most one: their conditions exclude each other
/// (bearer needs `session` off; password needs `session` and `bearer` off).
pub(crate) enum Shortcut {
    None,
    // Boxed: the per-thread table is half a kilobyte, the other variants nothing.
    Bearer(Box<Fast>),
    Session,
    Password,
}

impl Shortcut {
    /// The shortcut of a built instance.
    pub(crate) fn for_config(o: &Oidc) -> Shortcut {
        if Fast::eligible(o) {
            Shortcut::Bearer(Box::default())
        } else if Fast::session_eligible(o) {
            Shortcut::Session
        } else if Fast::password_eligible(o) {
            Shortcut::Password
        } else {
            Shortcut::None
        }
    }

    /// Answers the request on the spot, or `None`: the general path answers, with the request
    /// as it came.
    pub(crate) fn access(&self, o: &Oidc, ctx: &mut Ctx, parts: &mut Parts) -> Option<Flow> {
        match self {
            Shortcut::None => None,
            Shortcut::Bearer(fast) => fast.access(o, ctx, parts),
            Shortcut::Session => Fast::session(o, ctx, parts),
            Shortcut::Password => Fast::password(o, ctx, parts),
        }
    }

    /// The bearer maps, for the general path to fill.
    pub(crate) fn bearer(&self) -> Option<&Fast> {
        match self {
            Shortcut::Bearer(fast) => Some(fast),
            _ => None,
        }
    }
}

/// One plugin instance's per-thread maps. Dropped with the instance, so a config change starts
/// empty, as the verified-token cache does.
#[derive(Default)]
pub(crate) struct Fast {
    threads: ThreadLocal<RefCell<Front>>,
}

type Front = HashMap<Box<str>, Entry, foldhash::fast::RandomState>;

struct Entry {
    jwt: Arc<VerifiedJwt>,
    /// Unix seconds after which the verified-token cache would have dropped the token
    /// (`cache_ttl`): the general path then verifies it again.
    until: i64,
    /// The upstream headers, copied for this thread (no value shared with another thread).
    headers: Box<[(HeaderName, HeaderValue)]>,
}

impl Fast {
    /// Whether the token alone decides the outcome of this config: `bearer` without `session`,
    /// the token looked for in the `Authorization` header first, and nothing that needs another
    /// source (ID token, introspection, userinfo, consumer mapping, groups, downstream headers).
    pub(crate) fn eligible(o: &Oidc) -> bool {
        let s = &o.s;
        o.methods.bearer
            && !o.methods.session
            && o.bearer_places.first() == Some(&Place::Header)
            && s.bearer_token_header_name.is_none()
            && s.id_token_param_name.is_none()
            && !s.introspect_jwt_tokens
            && headers_need_nothing_else(o)
    }

    /// Remembers what the general path decided for `token`, on this thread. `jwt`'s upstream
    /// headers must have been built (the general path builds them on its first success).
    pub(crate) fn remember(&self, token: &str, jwt: &Arc<VerifiedJwt>) {
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
        let mut front = self.threads.get_or_default().borrow_mut();
        if front.len() >= ENTRIES_PER_THREAD
            && !front.contains_key(token)
            && let Some(k) = front.keys().next().cloned()
        {
            front.remove(&k);
        }
        front.insert(token.into(), Entry { jwt: jwt.clone(), until, headers });
    }

    /// Whether a cached session alone decides the outcome of this config: nothing to fetch for
    /// the headers (introspection, userinfo), no consumer mapping, groups or downstream headers.
    /// `session` is the first method the general path tries, so any other methods may be on.
    pub(crate) fn session_eligible(o: &Oidc) -> bool {
        o.methods.session && headers_need_nothing_else(o)
    }

    /// Lets the request through when its `Cookie` opened before to a session that is still good
    /// as it is (not due for a save, a touch or a refresh) and the general path would let it
    /// through. `None`: ask the general path, which finds the request untouched.
    pub(crate) fn session(o: &Oidc, ctx: &mut Ctx, parts: &mut Parts) -> Option<Flow> {
        if general_path_skips(o, ctx, parts) {
            return None;
        }
        let key = crate::access::cookie_key(&parts.headers)?;
        let cached = o.session_cache.get(key.as_ref())?;
        drop(key);
        // Read in place: an outcome made of the entry would clone its shared tokens, reference
        // counts that both proxy threads touch.
        if !o.session_still_good(&cached, unix_now()) {
            return None;
        }
        let claims = cached.access.as_ref().map(|a| &a.claims);
        if crate::authz::check(&o.requirements, claims.as_slice()).is_err() {
            return None;
        }
        let headers = cached.memo.get()?;
        let_through(o, ctx, parts, |parts| o.sessions.strip(&mut parts.headers), headers)
    }

    /// Whether a cached password grant alone decides the outcome of this config: `password`
    /// with its token cache, Basic credentials looked for first, one client, and no other method
    /// the general path would try before it (session, bearer, introspection, userinfo,
    /// refresh_token); the header conditions are `session_eligible`'s.
    pub(crate) fn password_eligible(o: &Oidc) -> bool {
        let m = o.methods;
        m.password
            && !(m.session || m.bearer || m.introspection || m.userinfo || m.refresh_token)
            && o.tokens.is_some()
            && o.password_places.first() == Some(&Place::Header)
            && o.clients.len() <= 1
            && headers_need_nothing_else(o)
    }

    /// Lets the request through when its Basic credentials have a cached grant that the
    /// general path would use as it is. The cache is the instance's token cache, keyed by a
    /// hash of the credentials as there: this path keeps no credentials of its own.
    pub(crate) fn password(o: &Oidc, ctx: &mut Ctx, parts: &mut Parts) -> Option<Flow> {
        if general_path_skips(o, ctx, parts) {
            return None;
        }
        let p = crate::credentials::basic_pair(&parts.headers, "password")?;
        let g = o.tokens.as_ref()?.get(&o.password_key(&p))?;
        let g = &g.value;
        if g.expires != 0 && g.expires.saturating_add(o.verifier.leeway) <= unix_now() {
            return None;
        }
        let claims = g.access.as_ref().map(|a| &a.claims);
        if crate::authz::check(&o.requirements, claims.as_slice()).is_err() {
            return None;
        }
        let headers = g.headers()?;
        let hide = |parts: &mut Parts| {
            if o.s.hide_credentials {
                crate::credentials::hide(&p.found, parts, None);
            }
        };
        let_through(o, ctx, parts, hide, headers)
    }

    /// Lets the request through when this thread knows its token and the general path would
    /// let it through unchanged. `None`: ask the general path.
    pub(crate) fn access(&self, o: &Oidc, ctx: &mut Ctx, parts: &mut Parts) -> Option<Flow> {
        if general_path_skips(o, ctx, parts) {
            return None;
        }
        let front = self.threads.get()?.borrow();
        let token = crate::credentials::scheme_token(&parts.headers, "bearer")?;
        let e = front.get(token)?;
        let now = unix_now();
        if now >= e.until {
            return None;
        }
        let v = &e.jwt;
        if o.verifier.verify_claims {
            let leeway = o.verifier.leeway;
            if v.exp.is_some_and(|exp| now >= exp.saturating_add(leeway))
                || v.nbf.is_some_and(|nbf| now.saturating_add(leeway) < nbf)
            {
                return None;
            }
        }
        if crate::authz::check(&o.requirements, &[&v.claims]).is_err() {
            return None;
        }
        let hide = |parts: &mut Parts| {
            if o.s.hide_credentials {
                parts.headers.remove(http::header::AUTHORIZATION);
            }
        };
        let_through(o, ctx, parts, hide, &e.headers)
    }
}

/// No header of this config needs more than the credential's own outcome: nothing to fetch
/// (introspection, userinfo), no consumer mapping, groups or downstream headers.
fn headers_need_nothing_else(o: &Oidc) -> bool {
    !o.s.search_user_info
        && !o.headers.needs_introspection()
        && !o.headers.needs_userinfo()
        && o.headers.downstream_is_empty()
        && o.mapping.is_none()
        && o.s.authenticated_groups_claim.is_none()
}

/// The general path's early exits (preflight, already authenticated) stay its own.
fn general_path_skips(o: &Oidc, ctx: &Ctx, parts: &Parts) -> bool {
    (!o.s.run_on_preflight && parts.method == http::Method::OPTIONS) || (o.s.anonymous.is_some() && ctx.authenticated)
}

/// What `access_async`, `authenticate` and `authorize` do to a request they let through, in
/// their order: identity headers out, the credential out (`strip_credential`: the session cookie,
/// or the token with `hide_credentials`), spoofable headers out, this outcome's headers in.
fn let_through(
    o: &Oidc,
    ctx: &mut Ctx,
    parts: &mut Parts,
    strip_credential: impl FnOnce(&mut Parts),
    headers: &[(HeaderName, HeaderValue)],
) -> Option<Flow> {
    crate::access::strip_identity_headers(&mut parts.headers);
    strip_credential(parts);
    o.headers.strip_spoofed(&mut parts.headers);
    for (name, value) in headers {
        parts.headers.insert(name.clone(), value.clone());
    }
    ctx.authenticated = true;
    Some(Flow::Continue)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::headers::{self, Sources};
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

    /// A token as the general path leaves it: verified, cached for a minute, headers built.
    fn verified(o: &Oidc, exp: i64) -> Arc<VerifiedJwt> {
        let claims =
            json!({ "preferred_username": "john", "email": "john@example.com", "exp": exp, "scope": "openid" });
        let Value::Object(claims) = claims else { unreachable!() };
        let mut v = VerifiedJwt::unverified(claims);
        v.cache_until = Instant::now() + Duration::from_secs(60);
        let src = Sources { access: Some(&v.claims), access_token: Some(TOKEN), ..Sources::default() };
        let built = headers::build(&o.headers, &o.headers.upstream, &src);
        v.upstream_headers.set(built).expect("fresh memo");
        Arc::new(v)
    }

    fn request(method: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri("/api");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    fn ctx() -> Ctx {
        Ctx::new("127.0.0.1:1".parse().expect("address"), "route".into(), None, Arc::default())
    }

    /// `req()` through the general path first, then again through `fast`, which must take it
    /// and leave the request as the general path did. Returns that second request.
    pub(crate) async fn same_as_general(
        o: &Oidc,
        req: impl Fn() -> Parts,
        fast: impl Fn(&Oidc, &mut Ctx, &mut Parts) -> Option<Flow>,
    ) -> Parts {
        let mut first = req();
        assert!(fast(o, &mut ctx(), &mut first).is_none(), "nothing cached yet");
        assert!(matches!(o.access_async(&mut ctx(), &mut first).await, Flow::Continue));
        let mut again = req();
        let mut c = ctx();
        assert!(matches!(fast(o, &mut c, &mut again), Some(Flow::Continue)));
        assert!(c.authenticated);
        assert_eq!(again.headers, first.headers, "the same upstream request as the general path's");
        again
    }

    fn run(o: &Oidc, parts: &mut Parts) -> Option<Flow> {
        o.shortcut.bearer().expect("eligible").access(o, &mut ctx(), parts)
    }

    fn later() -> i64 {
        unix_now() + 3600
    }

    #[test]
    fn a_remembered_token_passes_with_its_headers_and_spoofed_ones_gone() {
        let o = oidc(json!({}));
        let fast = o.shortcut.bearer().expect("eligible");
        let bearer = format!("Bearer {TOKEN}");
        let mut parts =
            request("GET", &[("authorization", &bearer), ("x-user", "mallory"), ("x-consumer-id", "admin")]);
        assert!(run(&o, &mut parts).is_none(), "an unknown token goes the general way");

        fast.remember(TOKEN, &verified(&o, later()));
        let mut c = ctx();
        assert!(matches!(fast.access(&o, &mut c, &mut parts), Some(Flow::Continue)));
        assert!(c.authenticated);
        assert_eq!(parts.headers["x-user"], "john");
        assert_eq!(parts.headers.get_all("x-user").iter().count(), 1);
        assert_eq!(parts.headers["x-email"], "john@example.com");
        assert!(parts.headers.get("x-consumer-id").is_none(), "identity headers are never the client's");
        assert_eq!(parts.headers["authorization"], bearer.as_str(), "forwarded as the general path does");

        let mut other = request("GET", &[("authorization", "Bearer another.token.here")]);
        assert!(run(&o, &mut other).is_none());
        let mut basic = request("GET", &[("authorization", "Basic am9objpkb2U=")]);
        assert!(run(&o, &mut basic).is_none());
    }

    #[test]
    fn it_never_decides_what_the_general_path_would_refuse_or_skip() {
        let o = oidc(json!({ "scopes_required": ["admin"] }));
        o.shortcut.bearer().expect("eligible").remember(TOKEN, &verified(&o, later()));
        let bearer = format!("Bearer {TOKEN}");
        assert!(
            run(&o, &mut request("GET", &[("authorization", &bearer)])).is_none(),
            "a missing scope is a 403 there"
        );

        let o = oidc(json!({}));
        let fast = o.shortcut.bearer().expect("eligible");
        fast.remember(TOKEN, &verified(&o, unix_now() - 1));
        assert!(run(&o, &mut request("GET", &[("authorization", &bearer)])).is_none(), "expired");

        let preflight = oidc(json!({ "run_on_preflight": false }));
        preflight.shortcut.bearer().expect("eligible").remember(TOKEN, &verified(&preflight, later()));
        let options = &mut request("OPTIONS", &[("authorization", &bearer)]);
        assert!(run(&preflight, options).is_none(), "preflight passes untouched");
        assert!(run(&preflight, &mut request("GET", &[("authorization", &bearer)])).is_some());

        let mut stale = verified(&o, later());
        Arc::get_mut(&mut stale).expect("unique").cache_until = Instant::now();
        fast.remember(TOKEN, &stale);
        assert!(run(&o, &mut request("GET", &[("authorization", &bearer)])).is_none(), "past cache_ttl: verify again");
    }

    #[test]
    fn hide_credentials_removes_the_token_unless_a_header_sends_it_on() {
        let o = oidc(json!({ "hide_credentials": true, "upstream_access_token_header": null }));
        o.shortcut.bearer().expect("eligible").remember(TOKEN, &verified(&o, later()));
        let mut parts = request("GET", &[("authorization", &format!("Bearer {TOKEN}"))]);
        assert!(run(&o, &mut parts).is_some());
        assert!(parts.headers.get("authorization").is_none());
        assert_eq!(parts.headers["x-user"], "john");
    }

    #[test]
    fn only_configs_where_the_token_alone_decides_are_eligible() {
        assert!(oidc(json!({})).shortcut.bearer().is_some());
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
            assert!(oidc(extra.clone()).shortcut.bearer().is_none(), "{extra}");
        }
    }

    #[test]
    fn each_thread_keeps_at_most_its_share_of_tokens() {
        let o = oidc(json!({}));
        let fast = o.shortcut.bearer().expect("eligible");
        let v = verified(&o, later());
        for i in 0..ENTRIES_PER_THREAD + 10 {
            fast.remember(&format!("token-{i}"), &v);
        }
        let front = fast.threads.get().expect("this thread's map").borrow();
        assert_eq!(front.len(), ENTRIES_PER_THREAD);
        assert!(front.contains_key("token-2057"), "the newest token is kept");
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
            let now = unix_now();
            let claims = json!({ "preferred_username": "john", "exp": now + 3600 });
            let token = format!("{}.{}.sig", B64.encode(br#"{"alg":"RS256"}"#), B64.encode(claims.to_string()));
            let data = SessionData {
                client: 0,
                access_token: token.into(),
                id_token: None,
                refresh_token: None,
                expires: now + 3600,
                auth_method: "password".into(),
            };
            let mut session = o.sessions.new_session(now, None, data.encode());
            let set = o.sessions.save(&mut session, now, false, 0).expect("saved");
            set.iter()
                .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string())
                .collect::<Vec<_>>()
                .join("; ")
        }

        #[tokio::test]
        async fn a_cached_session_passes_without_the_general_path_and_as_it_would() {
            let o = oidc();
            assert!(matches!(o.shortcut, Shortcut::Session));
            let cookies = format!("{}; theme=dark", cookie(&o));
            let req = || request("GET", &[("cookie", &cookies), ("x-user", "mallory"), ("x-consumer-id", "1")]);
            let again = same_as_general(&o, req, Fast::session).await;
            assert_eq!(again.headers["x-user"], "john");
            assert_eq!(again.headers["cookie"], "theme=dark", "the session cookie stays here");
            assert!(again.headers.get("x-consumer-id").is_none());
        }

        #[tokio::test]
        async fn refusals_and_other_configs_go_the_general_way() {
            let o = Oidc::for_tests(json!({ "auth_methods": ["session"], "scopes_required": ["admin"] }));
            let cookies = cookie(&o);
            let mut first = request("GET", &[("cookie", &cookies)]);
            assert!(!matches!(o.access_async(&mut ctx(), &mut first).await, Flow::Continue), "403: no admin scope");
            let mut again = request("GET", &[("cookie", &cookies)]);
            assert!(Fast::session(&o, &mut ctx(), &mut again).is_none());
            assert_eq!(again.headers["cookie"], cookies.as_str(), "left as it came");

            let session = |config| matches!(Oidc::for_tests(config).shortcut, Shortcut::Session);
            assert!(!session(json!({ "auth_methods": ["session"], "consumer_claim": ["sub"] })));
            assert!(!session(json!({ "auth_methods": ["bearer"] })));
            assert!(!session(json!({ "auth_methods": ["session"], "upstream_user_info_header": "x-userinfo" })));
        }
    }
}
