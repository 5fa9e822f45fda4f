//! Logout (Kong's `logout_*` fields): which requests log out, and what a logout does. The
//! session's tokens are revoked at the IdP (`logout_revoke*`; failures only logged, as in
//! Kong), its cookie is expired and its id refused on this node (`Sessions::revoke`), then the
//! answer: a 302 to the IdP's `end_session_endpoint` (RP-Initiated Logout), else a 302 to
//! `logout_redirect_uri`, else 204; always `Cache-Control: no-store`. A logout request is
//! answered here, with or without a session, and never proxied: `instance.rs` decides it before
//! the front, so no cached authentication can pass it on.

use crate::credentials::Args;
use crate::decision::Trail;
use crate::find::Finder;
use crate::grants::Grants;
use crate::provider::calls::{self, RevocationRequest};
use crate::provider::client_auth::ClientAuth;
use crate::respond::Failure;
use crate::session::SessionData;
use crate::sessions::Sessions;
use crate::settings::Settings;
use bytes::Bytes;
use gatehouse_core::plugin::{BuildError, Ctx};
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode, Version, header};

/// One instance's logout: its triggers and what a logout does, decided at build time.
pub(crate) struct Logout {
    /// `logout_methods`: a request with another method is never a logout.
    methods: Vec<Method>,
    /// `logout_query_arg`: present in the query (any value, even none).
    query_arg: Option<String>,
    /// `logout_uri_suffix`, in the normal form request paths have (`gatehouse_core::path`).
    uri_suffix: Option<String>,
    /// `logout_post_arg`: present in a form body (or a JSON body's string member).
    post_arg: Option<String>,
    /// `logout_revoke` with what it revokes.
    revoke: Option<Revoke>,
    /// `end_session_endpoint`; `None`: the discovered one, if any.
    end_session_endpoint: Option<String>,
    /// `logout_redirect_uri`, each an absolute http(s) URL without userinfo.
    redirect_uris: Vec<String>,
}

/// What `logout_revoke` sends to the revocation endpoint.
struct Revoke {
    access_token: bool,
    refresh_token: bool,
    /// `revocation_endpoint`; `None`: the discovered one.
    endpoint: Option<String>,
    /// `revocation_endpoint_auth_method`; `None`: the client's own.
    auth: Option<ClientAuth>,
    /// `revocation_token_param_name`.
    param_name: String,
}

impl Logout {
    /// The logout of a config: `None` when no trigger is set, so requests pay nothing.
    /// `logout_redirect_uri` is checked even then: a config holding an unusable target is
    /// refused when written, not when a user logs out.
    pub fn build(s: &Settings) -> Result<Option<Logout>, BuildError> {
        let redirect_uris = s.logout_redirect_uri.clone().unwrap_or_default();
        for uri in &redirect_uris {
            crate::location::checked_target(uri).map_err(|e| BuildError::field("logout_redirect_uri", e))?;
        }
        let uri_suffix = match s.logout_uri_suffix.as_deref() {
            Some(suffix) => Some(normal_suffix(suffix).map_err(|e| BuildError::field("logout_uri_suffix", e))?),
            None => None,
        };
        let methods: Vec<Method> = match &s.logout_methods {
            Some(names) => names.iter().filter_map(|m| Method::from_bytes(m.as_bytes()).ok()).collect(),
            None => vec![Method::POST, Method::DELETE],
        };
        let query_arg = s.logout_query_arg.clone().filter(|a| !a.is_empty());
        let post_arg = s.logout_post_arg.clone().filter(|a| !a.is_empty());
        if methods.is_empty() || (query_arg.is_none() && uri_suffix.is_none() && post_arg.is_none()) {
            return Ok(None);
        }
        let revoke = s.logout_revoke.then(|| Revoke {
            access_token: s.logout_revoke_access_token,
            refresh_token: s.logout_revoke_refresh_token,
            endpoint: s.revocation_endpoint.clone(),
            auth: s.revocation_endpoint_auth_method.as_deref().and_then(ClientAuth::from_name),
            param_name: s.revocation_token_param_name.clone().unwrap_or_else(|| "token".into()),
        });
        Ok(Some(Logout {
            methods,
            query_arg,
            uri_suffix,
            post_arg,
            revoke,
            end_session_endpoint: s.end_session_endpoint.clone(),
            redirect_uris,
        }))
    }

    /// Whether the body must be buffered to see `logout_post_arg`.
    pub fn needs_body(&self) -> bool {
        self.post_arg.is_some()
    }

    /// Whether the request asks to log out. Kong's triggers, in Kong's order, but each on its
    /// own: Kong looks at `logout_post_arg` only when `logout_uri_suffix` is also set (and did
    /// not match), a quirk not copied (docs/compatibility.md). The method is compared first, so
    /// a request of another method costs one comparison per configured method.
    pub fn requested(&self, parts: &Parts, body: Option<&Bytes>) -> bool {
        if !self.methods.contains(&parts.method) {
            return false;
        }
        if let Some(name) = &self.query_arg
            && let Some(query) = parts.uri.query()
            && form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == name.as_str())
        {
            return true;
        }
        // The proxy has already normalized the path (`gatehouse_core::path`), and the query is
        // not part of it.
        if let Some(suffix) = &self.uri_suffix
            && parts.uri.path().ends_with(suffix.as_str())
        {
            return true;
        }
        match (&self.post_arg, body) {
            (Some(name), Some(body)) if !body.is_empty() => {
                Args::parse(&parts.uri, &parts.headers, Some(body)).body(name).is_some()
            }
            _ => false,
        }
    }

    /// Logs the request's session out and answers. The session (when `session` is on and its
    /// cookie opens) has its tokens revoked, its id refused from now on, and its cookies
    /// expired. `Err` only when the end-session endpoint must be discovered and discovery
    /// fails: the refusal still carries the expired cookies (`trail.additions`).
    #[allow(clippy::too_many_arguments)]
    pub async fn run(
        &self,
        sessions: &Sessions,
        grants: &Grants,
        finder: &Finder,
        ctx: &Ctx,
        parts: &Parts,
        trail: &mut Trail,
        now: i64,
    ) -> Result<Response<Bytes>, Failure> {
        let args = Args::parse(&parts.uri, &parts.headers, ctx.body.as_ref());
        trail.client = finder.client_index(parts, &args);
        drop(args);
        let data = self.end_session(sessions, ctx, parts, trail, now);
        if let Some(data) = &data {
            trail.client = data.client;
            if let Some(r) = &self.revoke {
                r.run(grants, data, now).await;
            }
        }
        let client = trail.client;
        let post_logout = self.redirect_uris.get(client).or(self.redirect_uris.first());
        let end_session = match &self.end_session_endpoint {
            Some(e) => Some(e.clone()),
            None => grants.endpoint(&None, "end_session_endpoint", now).await?,
        };
        let location = match end_session {
            Some(endpoint) => {
                let id_token = data.as_ref().and_then(|d| d.id_token.as_deref());
                let client_id = grants.clients.get(client).map(|c| c.id.as_str());
                let params = [
                    ("id_token_hint", id_token),
                    ("post_logout_redirect_uri", post_logout.map(String::as_str)),
                    ("client_id", client_id),
                ];
                Some(with_query(&endpoint, &params))
            }
            None => post_logout.cloned(),
        };
        respond(location.as_deref(), parts.version)
    }

    /// The request's session ended on this node: its data when it opened (and was not logged
    /// out before), and its cookies expired when they are this instance's. Opened under the
    /// request's `session_bind` binding, as any session request opens it, and from the remember
    /// cookie too: either left alone would sign the browser in again.
    fn end_session(
        &self,
        sessions: &Sessions,
        ctx: &Ctx,
        parts: &Parts,
        trail: &mut Trail,
        now: i64,
    ) -> Option<SessionData> {
        if !sessions.on {
            return None;
        }
        let binding = sessions.binding(ctx.forwarded_ip, ctx.https, &parts.headers);
        let (data, ours) = sessions.end(&parts.headers, &binding, now);
        if ours {
            trail.additions.set_cookies.extend(sessions.store.clear(&parts.headers, ctx.https));
        }
        data
    }
}

impl Revoke {
    /// Revokes the session's refresh token, then its access token (Kong's order). Failures are
    /// logged and the logout goes on: the session is ended here either way.
    async fn run(&self, grants: &Grants, data: &SessionData, now: i64) {
        let tokens = [
            (self.refresh_token, data.refresh_token.as_deref(), "refresh_token"),
            (self.access_token, Some(&*data.access_token).filter(|t| !t.is_empty()), "access_token"),
        ];
        if !tokens.iter().any(|(on, token, _)| *on && token.is_some()) {
            return;
        }
        let Some(client) = grants.clients.get(data.client) else {
            tracing::warn!("logout: no client_id is configured, so no token is revoked");
            return;
        };
        let endpoint = match grants.endpoint(&self.endpoint, "revocation_endpoint", now).await {
            Ok(Some(e)) => e,
            Ok(None) => {
                tracing::warn!("logout: the identity provider has no revocation endpoint, so no token is revoked");
                return;
            }
            Err(f) => {
                tracing::warn!(reason = f.reason(), "logout: tokens not revoked");
                return;
            }
        };
        let request = RevocationRequest {
            endpoint: &endpoint,
            client,
            method: self.auth.unwrap_or(client.auth),
            param_name: &self.param_name,
        };
        for (on, token, hint) in tokens {
            let Some(token) = token.filter(|_| on) else { continue };
            if let Err(e) = calls::revoke(grants.http(), &request, token, hint, now).await {
                tracing::warn!(error = %e, token_type = hint, "logout: token not revoked");
            }
        }
    }
}

/// The logout's answer: a 302 to `location`, else 204; never stored by a cache.
fn respond(location: Option<&str>, version: Version) -> Result<Response<Bytes>, Failure> {
    let mut resp = Response::new(Bytes::new());
    match location {
        Some(l) => {
            let v = HeaderValue::from_str(l).map_err(|_| Failure::Unexpected {
                reason: "the end_session_endpoint is not a valid Location".to_string(),
            })?;
            *resp.status_mut() = StatusCode::FOUND;
            resp.headers_mut().insert(header::LOCATION, v);
        }
        None => *resp.status_mut() = StatusCode::NO_CONTENT,
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if version <= Version::HTTP_10 {
        resp.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    Ok(resp)
}

/// `url` with the present `params` added to its query (form-encoded), before any fragment:
/// `?` starts the query unless `url` has one, then `&` joins.
fn with_query(url: &str, params: &[(&str, Option<&str>)]) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let mut out = String::with_capacity(url.len() + 64);
    out.push_str(base);
    let mut separator = match base.find('?') {
        None => Some('?'),
        // An empty query, or one ending with its separator, takes the first pair as it is.
        Some(_) if base.ends_with(['?', '&']) => None,
        Some(_) => Some('&'),
    };
    for (name, value) in params {
        let Some(value) = value else { continue };
        out.extend(separator);
        separator = Some('&');
        out.push_str(name);
        out.push('=');
        out.extend(form_urlencoded::byte_serialize(value.as_bytes()));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// `logout_uri_suffix` in the normal form of request paths, so `/log%6Fut` matches `/logout`
/// as the proxy presents it. A suffix without a leading `/` stays without one (Kong compares
/// the path's last characters). Refused when no request path could end with it.
fn normal_suffix(suffix: &str) -> Result<String, String> {
    if suffix.contains(['?', '#']) {
        return Err("is compared with the path, which never holds `?` or `#`".into());
    }
    let rooted = suffix.starts_with('/');
    let path = if rooted { suffix.to_string() } else { format!("/{suffix}") };
    let normal = gatehouse_core::path::normalize(&path).map_err(|e| format!("is not a path suffix: {e}"))?;
    let normal = if rooted { normal.into_owned() } else { normal.get(1..).unwrap_or_default().to_string() };
    if normal.is_empty() {
        return Err("is empty once normalized, so every path would end with it".into());
    }
    Ok(normal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::unix_now;
    use crate::decision::Additions;
    use crate::instance::Oidc;
    use gatehouse_core::plugin::{Flow, Step};
    use serde_json::{Value, json};

    fn logout(config: Value) -> Logout {
        Oidc::for_tests(config).logout.expect("a logout is configured")
    }

    fn parts(method: &str, uri: &str, content_type: Option<&str>) -> Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        b.body(()).expect("request").into_parts().0
    }

    fn asks(l: &Logout, method: &str, uri: &str) -> bool {
        l.requested(&parts(method, uri, None), None)
    }

    fn asks_with_body(l: &Logout, content_type: &str, body: &[u8]) -> bool {
        l.requested(&parts("POST", "/api/x", Some(content_type)), Some(&Bytes::copy_from_slice(body)))
    }

    #[test]
    fn nothing_to_trigger_it_is_no_logout() {
        let o = Oidc::for_tests(json!({"logout_redirect_uri": ["https://app.example/"]}));
        assert!(o.logout.is_none());
        let o = Oidc::for_tests(json!({"logout_uri_suffix": "/logout", "logout_methods": []}));
        assert!(o.logout.is_none(), "no method can log out");
    }

    #[test]
    fn the_uri_suffix_matches_the_normalized_path_not_the_query() {
        let l = logout(json!({"logout_uri_suffix": "/logout"}));
        assert!(asks(&l, "POST", "/api/logout"));
        assert!(asks(&l, "DELETE", "/logout"));
        assert!(asks(&l, "POST", "/api/logout?next=/elsewhere"), "the query is not part of the path");
        assert!(!asks(&l, "GET", "/api/logout"), "GET is not in the default logout_methods");
        assert!(!asks(&l, "POST", "/api/logout/"));
        assert!(!asks(&l, "POST", "/api/xlogout"));
        assert!(!asks(&l, "POST", "/api/x?/logout"));
        // The suffix is kept in the normal form the proxy gives request paths.
        let l = logout(json!({"logout_uri_suffix": "/a//log%6Fut", "logout_methods": ["GET"]}));
        assert_eq!(l.uri_suffix.as_deref(), Some("/a/logout"));
        assert!(asks(&l, "GET", "/x/a/logout"));
        // Without a leading `/`, Kong compares the path's last characters.
        let l = logout(json!({"logout_uri_suffix": "logout"}));
        assert_eq!(l.uri_suffix.as_deref(), Some("logout"));
        assert!(asks(&l, "POST", "/api/xlogout"));
    }

    #[test]
    fn the_query_arg_counts_when_present_whatever_its_value() {
        let l = logout(json!({"logout_query_arg": "bye", "logout_methods": ["GET", "POST"]}));
        for uri in ["/x?bye", "/x?bye=", "/x?a=1&bye=0", "/x?%62ye=1", "/x?a=%zz&bye"] {
            assert!(asks(&l, "GET", uri), "{uri}");
        }
        for uri in ["/x", "/x?byebye=1", "/x?a=bye", "/x/bye", "/x?b%zzye"] {
            assert!(!asks(&l, "GET", uri), "{uri}");
        }
        assert!(!asks(&l, "DELETE", "/x?bye"), "DELETE is not listed");
        assert!(!l.needs_body());
    }

    #[test]
    fn the_post_arg_works_without_a_uri_suffix() {
        // Kong looks at the body only when `logout_uri_suffix` is set too; here each counts alone.
        let l = logout(json!({"logout_post_arg": "bye"}));
        assert!(l.needs_body());
        assert!(asks_with_body(&l, "application/x-www-form-urlencoded", b"a=1&bye=1"));
        assert!(asks_with_body(&l, "application/x-www-form-urlencoded; charset=utf-8", b"bye"));
        assert!(asks_with_body(&l, "application/json", br#"{"bye": "yes"}"#));
        assert!(!asks_with_body(&l, "text/plain", b"bye=1"), "only form and JSON bodies are read");
        assert!(!asks_with_body(&l, "application/x-www-form-urlencoded", b"byebye=1"));
        assert!(!asks(&l, "POST", "/x?bye=1"), "the query is not the body");
        assert!(!l.requested(&parts("POST", "/x", Some("application/x-www-form-urlencoded")), None));
        let l = logout(json!({"logout_post_arg": "bye", "logout_uri_suffix": "/logout"}));
        assert!(asks_with_body(&l, "application/x-www-form-urlencoded", b"bye=1"));
    }

    #[test]
    fn hostile_queries_and_bodies_are_no_logout_and_no_panic() {
        let l = logout(json!({"logout_post_arg": "bye", "logout_query_arg": "q"}));
        // Near the longest URI `http` takes (the proxy's head limit is about as large).
        let many = "a=b&".repeat(15 * 1024);
        assert!(!asks(&l, "POST", &format!("/x?{many}")));
        assert!(asks(&l, "POST", &format!("/x?{many}q")), "found after 15k other arguments");
        assert!(!asks(&l, "POST", "/x?%ff%fe=%00&%=&&==&q%"));
        let form = "application/x-www-form-urlencoded";
        let huge = "x=".to_string() + &"y".repeat(4 << 20);
        assert!(!asks_with_body(&l, form, huge.as_bytes()));
        assert!(asks_with_body(&l, form, format!("{huge}&bye").as_bytes()));
        let garbage: Vec<u8> = (0..64 * 1024).map(|i| (i * 7919 % 251) as u8).collect();
        assert!(!asks_with_body(&l, form, &garbage));
        assert!(!asks_with_body(&l, "application/json", &garbage));
        assert!(!asks_with_body(&l, "application/json", &b"[".repeat(100_000)));
        assert!(!asks_with_body(&l, "application/json", br#"{"bye": {"nested": 1}}"#));
    }

    /// The build errors of `config`, as `(field, message)`.
    fn refused(config: Value) -> Vec<(String, String)> {
        let mut config = config;
        config["issuer"] = json!("http://127.0.0.1:9/realms/x");
        let mode = gatehouse_core::schema::Mode::default();
        let cfg = match crate::config::schema().validate(&config, mode) {
            Ok(cfg) => cfg,
            Err(e) => return e.errors.iter().map(|(p, m)| (format!("{p:?}"), m.clone())).collect(),
        };
        let env = gatehouse_core::plugin::BuildEnv::default();
        let key = || gatehouse_session::SessionCodec::new(b"k");
        match Oidc::build(&cfg, key(), key(), &env) {
            Err(BuildError::Config(e)) => e.errors.iter().map(|(p, m)| (format!("{p:?}"), m.clone())).collect(),
            Err(e) => panic!("not a config error: {e}"),
            Ok(_) => Vec::new(),
        }
    }

    #[test]
    fn logout_redirect_uris_must_be_absolute_http_urls_without_userinfo() {
        for ok in ["https://app.example/bye", "http://127.0.0.1:8000/after?x=1#top", "HTTPS://other.example"] {
            assert_eq!(refused(json!({"logout_redirect_uri": [ok]})), [], "{ok}");
        }
        for bad in [
            "javascript://x/%0aalert(1)",
            "https://app.example@evil.example/",
            "https://evil.example\\@app.example/",
            "https://:443/x",
            "https://app.example/a b",
            "data://text/html,x",
        ] {
            let e = refused(json!({"logout_redirect_uri": ["https://app.example/", bad]}));
            assert_eq!(e.len(), 1, "{bad}: {e:?}");
            assert!(e[0].0.contains("logout_redirect_uri"), "{bad}: {e:?}");
        }
        // Relative targets and `javascript:` without an authority fail the schema's URL check.
        for bad in ["/after-logout", "javascript:alert(1)"] {
            let e = refused(json!({"logout_redirect_uri": [bad]}));
            assert!(e.iter().any(|(p, _)| p.contains("logout_redirect_uri")), "{bad}: {e:?}");
        }
        assert_eq!(crate::location::checked_target("https://app.example/ok"), Ok(()));
    }

    #[test]
    fn uri_suffixes_no_path_can_end_with_are_refused() {
        for bad in ["/../logout", "/logout?x", "/logout#x", ".", "a/.."] {
            let e = refused(json!({"logout_uri_suffix": bad}));
            assert_eq!(e.len(), 1, "{bad}: {e:?}");
            assert!(e[0].0.contains("logout_uri_suffix"), "{bad}: {e:?}");
        }
    }

    #[test]
    fn end_session_urls_keep_the_endpoint_query_and_encode_the_values() {
        let params = [
            ("id_token_hint", Some("h.p.s")),
            ("post_logout_redirect_uri", Some("https://app.example/a?b=c&d=e f")),
            ("client_id", Some("my app")),
        ];
        let tail = "id_token_hint=h.p.s&post_logout_redirect_uri=https%3A%2F%2Fapp.example%2Fa%3Fb%3Dc%26d%3De+f\
                    &client_id=my+app";
        assert_eq!(with_query("https://idp.example/logout", &params), format!("https://idp.example/logout?{tail}"));
        assert_eq!(with_query("https://idp.example/l?x=1", &params), format!("https://idp.example/l?x=1&{tail}"));
        assert_eq!(with_query("https://idp.example/l?", &params), format!("https://idp.example/l?{tail}"));
        assert_eq!(with_query("https://idp.example/l?x=1&", &params), format!("https://idp.example/l?x=1&{tail}"));
        assert_eq!(with_query("https://idp.example/l#f", &params), format!("https://idp.example/l?{tail}#f"));
        let some = [("id_token_hint", None), ("post_logout_redirect_uri", None), ("client_id", Some("c"))];
        assert_eq!(with_query("https://idp.example/l", &some), "https://idp.example/l?client_id=c");
        assert_eq!(with_query("https://idp.example/l?x", &[("a", None)]), "https://idp.example/l?x");
    }

    mod pipeline {
        use super::*;
        use crate::fast::tests::{ctx, request};
        use crate::method::Method;
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
        use http::HeaderMap;

        fn oidc(extra: Value) -> Oidc {
            let mut cfg = json!({
                "auth_methods": ["session", "password"],
                "client_id": ["app"],
                "client_secret": ["s"],
                "logout_uri_suffix": "/logout",
                "end_session_endpoint": "https://idp.example/end?x=1",
                "logout_redirect_uri": ["https://app.example/bye"],
                "upstream_headers_claims": ["preferred_username"],
                "upstream_headers_names": ["x_user"],
            });
            if let (Value::Object(c), Value::Object(e)) = (&mut cfg, extra) {
                c.extend(e);
            }
            Oidc::for_tests(cfg)
        }

        fn jwt(claims: Value) -> String {
            format!("{}.{}.sig", B64.encode(br#"{"alg":"RS256"}"#), B64.encode(claims.to_string()))
        }

        /// The `Cookie` header of a fresh session of client `app` with an access and an ID token.
        fn cookie(o: &Oidc) -> (String, String) {
            let now = unix_now();
            let id_token = jwt(json!({"sub": "john", "aud": "app", "exp": now + 3600}));
            let data = SessionData {
                client: 0,
                access_token: jwt(json!({"preferred_username": "john", "exp": now + 3600})).into(),
                id_token: Some(id_token.clone().into()),
                refresh_token: None,
                expires: now + 3600,
                auth_method: Method::Password.name().into(),
            };
            let store = &o.auth.sessions.store;
            let mut session = store.new_session_for(Some("app"), now, None, data.encode());
            let set = store.save(&mut session, now, false, 0).expect("saved");
            let cookie = set.iter().map(|c| c.to_str().unwrap().split(';').next().unwrap()).collect::<Vec<_>>();
            (cookie.join("; "), id_token)
        }

        async fn run(o: &Oidc, c: &mut Ctx, parts: &mut Parts) -> Flow {
            match o.access(c, parts) {
                Step::Ready(flow) => flow,
                Step::Wait(f) => f.await,
            }
        }

        fn expired_cookies(c: &Ctx) -> usize {
            c.extensions
                .get::<Additions>()
                .map_or(0, |a| a.set_cookies.iter().filter(|v| v.to_str().unwrap_or("").contains("Max-Age=0")).count())
        }

        #[tokio::test]
        async fn a_logout_ends_a_cached_session_and_is_never_passed_on() {
            let o = oidc(json!({}));
            let (cookies, id_token) = cookie(&o);
            let get = || request("GET", &[("cookie", &cookies)]);
            // Opened by the general path, then served by the front from the cache.
            assert!(matches!(run(&o, &mut ctx(), &mut get()).await, Flow::Continue));
            assert!(matches!(o.access(&mut ctx(), &mut get()), Step::Ready(Flow::Continue)), "the front serves it");
            // The same session under other cookie bytes: another entry of the cache.
            let other_bytes = format!("theme=dark; {cookies}");
            let other = || request("GET", &[("cookie", &other_bytes)]);
            assert!(matches!(run(&o, &mut ctx(), &mut other()).await, Flow::Continue));
            assert!(matches!(o.access(&mut ctx(), &mut other()), Step::Ready(Flow::Continue)));

            let mut logout = request("POST", &[("cookie", &cookies)]);
            logout.uri = "/api/logout".parse().unwrap();
            let mut c = ctx();
            let Step::Wait(f) = o.access(&mut c, &mut logout) else { panic!("the front must not answer a logout") };
            let Flow::Respond(resp) = f.await else { panic!("a logout is answered, never proxied") };
            assert_eq!(resp.status(), 302);
            let hint = format!("id_token_hint={id_token}");
            let bye = "post_logout_redirect_uri=https%3A%2F%2Fapp.example%2Fbye";
            assert_eq!(resp.headers()["location"], format!("https://idp.example/end?x=1&{hint}&{bye}&client_id=app"));
            assert_eq!(resp.headers()["cache-control"], "no-store");
            assert!(resp.headers().get("pragma").is_none(), "HTTP/1.1");
            assert!(resp.body().is_empty());
            assert_eq!(expired_cookies(&c), 1, "the session cookie is expired");
            assert!(!c.authenticated);

            // The old cookie opens no more: not from the front's cache, not opened again.
            assert!(matches!(o.access(&mut ctx(), &mut get()), Step::Wait(_)), "not from the front");
            assert!(matches!(o.access(&mut ctx(), &mut other()), Step::Wait(_)), "its id is refused on a hit");
            let Flow::Respond(resp) = run(&o, &mut ctx(), &mut other()).await else { panic!("refused") };
            assert_eq!(resp.status(), 401);
            let mut c = ctx();
            let Flow::Respond(resp) = run(&o, &mut c, &mut get()).await else { panic!("refused") };
            assert_eq!(resp.status(), 401);
            assert_eq!(expired_cookies(&c), 1, "and is expired again");
            // A second logout with it revokes nothing and still answers, without a hint.
            let mut c = ctx();
            let Flow::Respond(resp) = run(&o, &mut c, &mut logout).await else { panic!("answered") };
            assert_eq!(resp.headers()["location"], format!("https://idp.example/end?x=1&{bye}&client_id=app"));
        }

        #[tokio::test]
        async fn without_a_session_a_logout_is_still_answered_and_not_proxied() {
            let o = oidc(json!({"logout_methods": ["GET"], "logout_query_arg": "bye"}));
            // Valid-looking credentials beside it change nothing: the logout is answered first.
            let mut parts = request("GET", &[("cookie", "theme=dark"), ("authorization", "Basic am9objpkb2U=")]);
            parts.uri = "/api/x?bye".parse().unwrap();
            parts.version = http::Version::HTTP_10;
            let mut c = ctx();
            let Flow::Respond(resp) = run(&o, &mut c, &mut parts).await else { panic!("answered") };
            assert_eq!(resp.status(), 302);
            let bye = "post_logout_redirect_uri=https%3A%2F%2Fapp.example%2Fbye";
            assert_eq!(resp.headers()["location"], format!("https://idp.example/end?x=1&{bye}&client_id=app"));
            assert_eq!(resp.headers()["pragma"], "no-cache", "HTTP/1.0");
            assert_eq!(expired_cookies(&c), 0, "no cookie of ours to expire");
            assert_eq!(parts.headers["authorization"], "Basic am9objpkb2U=", "the request is not edited");
        }

        /// `cookie`'s session sealed under the binding of `c`'s requests (`session_bind`), with
        /// its remember cookie when remember is on: `(session cookie, remember cookie)`.
        fn bound_cookies(o: &Oidc, c: &Ctx) -> (String, String) {
            let now = unix_now();
            let s = &o.auth.sessions;
            let binding = s.binding(c.forwarded_ip, c.https, &HeaderMap::new());
            let data = SessionData {
                client: 0,
                access_token: jwt(json!({"preferred_username": "john", "exp": now + 3600})).into(),
                id_token: None,
                refresh_token: None,
                expires: now + 3600,
                auth_method: Method::Password.name().into(),
            };
            let mut session = s.store.new_session_for(Some("app"), now, None, data.encode());
            let pairs = |set: Vec<HeaderValue>| {
                set.iter().map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string()).collect::<Vec<_>>()
            };
            let cookie = pairs(s.store.save_bound(&mut session, now, false, 0, &binding).expect("saved")).join("; ");
            let remember = s.store.remember().map_or_else(String::new, |r| {
                pairs(r.save_bound(&mut session, now, false, 0, &binding).expect("saved")).join("; ")
            });
            (cookie, remember)
        }

        async fn status(o: &Oidc, cookies: &str) -> u16 {
            match run(o, &mut ctx(), &mut request("GET", &[("cookie", cookies)])).await {
                Flow::Continue => 200,
                Flow::Respond(r) => r.status().as_u16(),
                Flow::Fail => 0,
            }
        }

        async fn log_out(o: &Oidc, cookies: &str) -> Ctx {
            let mut parts = request("POST", &[("cookie", cookies)]);
            parts.uri = "/logout".parse().unwrap();
            let mut c = ctx();
            let Flow::Respond(resp) = run(o, &mut c, &mut parts).await else { panic!("answered") };
            assert_eq!(resp.status(), 302);
            c
        }

        #[tokio::test]
        async fn a_logout_ends_a_bound_session() {
            // With `session_bind`, the logout must open the cookie under the request's binding:
            // opened unbound it is "not ours", and the session would outlive its logout.
            let o = oidc(json!({"session_bind": ["ip", "user-agent"]}));
            let (cookies, _) = bound_cookies(&o, &ctx());
            assert_eq!(status(&o, &cookies).await, 200);
            let c = log_out(&o, &cookies).await;
            assert_eq!(expired_cookies(&c), 1, "the session cookie is expired");
            assert_eq!(status(&o, &cookies).await, 401, "the old cookie is refused");
        }

        #[tokio::test]
        async fn a_logout_ends_the_remember_cookie_too_and_its_copies_are_refused() {
            let o = oidc(json!({"session_remember": true}));
            let (cookie, remember) = bound_cookies(&o, &ctx());
            let both = format!("{cookie}; {remember}");
            assert_eq!(status(&o, &both).await, 200);
            let c = log_out(&o, &both).await;
            assert_eq!(expired_cookies(&c), 2, "session and remember cookies expired");
            assert_eq!(status(&o, &both).await, 401);
            // A copy of the remember cookie alone must not make a new session of the old one.
            assert_eq!(status(&o, &remember).await, 401, "the remember cookie is refused");
        }

        #[tokio::test]
        async fn a_logout_with_only_the_remember_cookie_ends_it() {
            // The browser dropped the session cookie (closed), the remember cookie lives on: a
            // logout must end it, or the next request signs the user in again.
            let o = oidc(json!({"session_remember": true}));
            let (_, remember) = bound_cookies(&o, &ctx());
            let c = log_out(&o, &remember).await;
            assert_eq!(expired_cookies(&c), 1, "the remember cookie is expired");
            assert_eq!(status(&o, &remember).await, 401, "and its copies refused");
        }

        #[tokio::test]
        async fn an_unreachable_idp_without_end_session_endpoint_still_ends_the_session() {
            let o = oidc(json!({"end_session_endpoint": null}));
            let (cookies, _) = cookie(&o);
            let mut parts = request("DELETE", &[("cookie", &cookies)]);
            parts.uri = "/logout".parse().unwrap();
            let mut c = ctx();
            let Flow::Respond(resp) = run(&o, &mut c, &mut parts).await else { panic!("answered") };
            assert_eq!(resp.status(), 502, "the end-session endpoint is unknown");
            assert_eq!(expired_cookies(&c), 1, "the session is ended here anyway");
            let Flow::Respond(resp) = run(&o, &mut ctx(), &mut request("GET", &[("cookie", &cookies)])).await else {
                panic!("refused")
            };
            assert_eq!(resp.status(), 401);
        }
    }
}
