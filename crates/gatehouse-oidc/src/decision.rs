//! The end of the pipeline: what was decided for a request, and [`apply`], the one function that
//! carries it out: the upstream request's edits, in one fixed order, and the response additions,
//! which travel one route (`header_filter`) whatever response goes out.
//!
//! The general path (`instance.rs`) and the per-thread front (`fast.rs`) both end here, so the
//! order of the edits exists once.

use crate::consumer;
use crate::credentials::{self, Found};
use crate::headers::{HeaderPlan, SessionFacts};
use bytes::Bytes;
use gatehouse_core::entity::Consumer;
use gatehouse_core::plugin::{Ctx, Flow};
use gatehouse_session::{Binding, SessionStore};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Response};
use std::sync::Arc;

/// Headers made for one message.
pub(crate) type HeaderList = Vec<(HeaderName, HeaderValue)>;

/// What the response gets: `Set-Cookie` headers and downstream headers. Kept in the request's
/// extensions and added by `header_filter`, to the upstream's answer or to this plugin's own.
#[derive(Clone, Default)]
pub(crate) struct Additions {
    pub set_cookies: Vec<HeaderValue>,
    pub downstream: HeaderList,
}

impl Additions {
    fn is_empty(&self) -> bool {
        self.set_cookies.is_empty() && self.downstream.is_empty()
    }
}

/// What one request collected on its way to a decision, whatever that decision is.
#[derive(Default)]
pub(crate) struct Trail {
    /// The response additions so far (a touched or cleared session).
    pub additions: Additions,
    /// The request's `Cookie` headers when it carried a session this instance sealed (it
    /// opened, or was ours but expired), so a refusal can expire it. A cookie of the same name
    /// that does not open is another plugin's (or junk) and is left alone.
    pub session_cookies: Option<HeaderMap>,
    /// The highest chunk index of a session cookie the request carried, ours or not, so a new
    /// session written over it also clears its extra chunks.
    pub present_chunks: usize,
    /// The request carried our session cookie (opened or not): it never goes upstream.
    pub strip_session: bool,
    /// Authorization passed the requirements: from here on the credentials are gone from the
    /// request, even if a later step refuses it and `anonymous` lets it through.
    pub past_requirements: bool,
    /// The client the request chose (`client_arg`), for the per-client redirect URIs.
    pub client: usize,
    /// What leaves the request whatever happens next: a sign-in callback's arguments and
    /// authorization cookie, so a refused callback let through as `anonymous` carries neither.
    pub strip_always: Vec<Found>,
    /// The request's `session_bind` facts (nothing bound by default): every session cookie
    /// this request opens or saves is sealed under it.
    pub binding: Binding,
    /// The highest chunk index of a remember cookie the request carried, so a new one written
    /// over it also clears its extra chunks.
    pub remember_chunks: usize,
    /// When the remember cookie that recreated this request's session was first made: its
    /// absolute timeout keeps counting from there when it is saved again.
    pub remember_since: Option<i64>,
    /// The session as the `Session-*` headers tell it, when they are configured.
    pub session_facts: Option<SessionFacts>,
}

/// What leaves the request before anything is added.
#[derive(Clone, Copy, Default)]
pub(crate) struct Strip<'a> {
    /// Our session cookie, named by this store.
    pub session: Option<&'a SessionStore>,
    /// The credentials that were found (`hide_credentials`).
    pub hide: &'a [Found],
    /// What leaves whatever `hide_credentials` says: a sign-in's callback arguments and
    /// authorization cookie.
    pub always: &'a [Found],
    /// The query the upstream gets instead of the request's (`preserve_query_args` after a
    /// sign-in: the query the flow started with).
    pub query: Option<&'a str>,
}

/// The upstream headers of an allowed request.
pub(crate) enum Upstream<'a> {
    /// Made before and kept (a memo, or a proxy thread's copy): inserted as clones.
    Shared(&'a [(HeaderName, HeaderValue)]),
    /// Made for this request.
    Owned(HeaderList),
}

/// An authenticated and authorized request.
pub(crate) struct Allow<'a> {
    pub strip: Strip<'a>,
    /// The mapped consumer.
    pub consumer: Option<Arc<Consumer>>,
    /// `X-Authenticated-Groups`.
    pub groups: Option<HeaderValue>,
    pub upstream: Upstream<'a>,
    pub additions: Additions,
}

/// What the access phase decided.
pub(crate) enum Decision<'a> {
    /// On to the upstream, authenticated.
    Allow(Allow<'a>),
    /// On to the upstream as the `anonymous` consumer.
    Anonymous { strip: Strip<'a>, consumer: Arc<Consumer>, additions: Additions },
    /// This plugin answers.
    Respond { response: Response<Bytes>, additions: Additions },
}

/// Carries out `decision`: the request's edits (identity headers out, our session cookie out,
/// the credentials out, spoofable headers out, then this outcome's headers in) and the response
/// additions, kept for [`add_to_response`].
pub(crate) fn apply(plan: &HeaderPlan, ctx: &mut Ctx, parts: &mut Parts, decision: Decision<'_>) -> Flow {
    let (flow, additions) = match decision {
        Decision::Allow(a) => {
            strip(plan, ctx, parts, a.strip);
            if let Some(c) = &a.consumer {
                consumer::set_headers(&mut parts.headers, Some(c), false);
            }
            if let Some(groups) = a.groups {
                parts.headers.insert("x-authenticated-groups", groups);
            }
            match a.upstream {
                Upstream::Shared(list) => {
                    for (name, value) in list {
                        parts.headers.insert(name.clone(), value.clone());
                    }
                }
                Upstream::Owned(list) => {
                    for (name, value) in list {
                        parts.headers.insert(name, value);
                    }
                }
            }
            if a.consumer.is_some() {
                ctx.consumer = a.consumer;
            }
            ctx.authenticated = true;
            (Flow::Continue, a.additions)
        }
        Decision::Anonymous { strip: s, consumer, additions } => {
            strip(plan, ctx, parts, s);
            consumer::set_headers(&mut parts.headers, Some(&consumer), true);
            ctx.consumer = Some(consumer);
            (Flow::Continue, additions)
        }
        Decision::Respond { response, additions } => (Flow::Respond(response), additions),
    };
    if !additions.is_empty() {
        ctx.extensions.insert(additions);
    }
    flow
}

/// The response phase: the additions of this request's decision, each added once. Downstream
/// headers append, as Kong's do.
pub(crate) fn add_to_response(ctx: &mut Ctx, resp: &mut http::response::Parts) {
    if let Some(a) = ctx.extensions.remove::<Additions>() {
        for c in a.set_cookies {
            resp.headers.append(http::header::SET_COOKIE, c);
        }
        for (name, value) in a.downstream {
            resp.headers.append(name, value);
        }
    }
}

fn strip(plan: &HeaderPlan, ctx: &mut Ctx, parts: &mut Parts, s: Strip<'_>) {
    if let Some(store) = s.session {
        store.strip(&mut parts.headers);
    }
    for found in s.always.iter().chain(s.hide) {
        if let Some(b) = credentials::hide(found, parts, ctx.body.as_ref()) {
            ctx.body = Some(b);
        }
    }
    if let Some(q) = s.query {
        credentials::replace_query(parts, q);
    }
    plan.strip_spoofed(&mut parts.headers);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::Oidc;
    use gatehouse_core::consumers::Consumers;
    use serde_json::json;

    fn request() -> Parts {
        let req = http::Request::builder()
            .uri("/api")
            .header("authorization", "Bearer t")
            .header("cookie", "session=abc; theme=dark")
            .header("x-consumer-id", "admin")
            .header("x-user", "mallory")
            .body(())
            .expect("request");
        req.into_parts().0
    }

    fn ctx() -> Ctx {
        let guest = Consumer { id: "g1".into(), username: Some("guest".into()), custom_id: None };
        Ctx::new("127.0.0.1:1".parse().expect("address"), "route".into(), None, Arc::new(Consumers::new([guest])))
    }

    fn oidc() -> Oidc {
        Oidc::for_tests(json!({
            "auth_methods": ["bearer", "session"],
            "upstream_headers_claims": ["preferred_username"],
            "upstream_headers_names": ["x_user"],
        }))
    }

    fn cookie(v: &str) -> Additions {
        Additions { set_cookies: vec![HeaderValue::from_str(v).expect("value")], downstream: Vec::new() }
    }

    #[test]
    fn anonymous_strips_what_left_the_request_and_adds_the_consumer() {
        let o = oidc();
        let (mut c, mut parts) = (ctx(), request());
        let found = [Found::Headers(&crate::credentials::AUTHORIZATION_HEADER)];
        let strip = Strip { session: Some(&o.auth.sessions.store), hide: &found, ..Strip::default() };
        let consumer = c.consumers.find_anonymous("guest").cloned().expect("guest");
        let flow =
            apply(&o.plan, &mut c, &mut parts, Decision::Anonymous { strip, consumer, additions: cookie("a=1") });
        assert!(matches!(flow, Flow::Continue));
        assert!(parts.headers.get("authorization").is_none());
        assert_eq!(parts.headers["cookie"], "theme=dark");
        assert!(parts.headers.get("x-user").is_none(), "spoofable headers go");
        assert_eq!(parts.headers["x-consumer-id"], "g1");
        assert_eq!(parts.headers["x-anonymous-consumer"], "true");
        assert!(!c.authenticated);
        assert_eq!(c.consumer.as_ref().map(|c| c.id.as_str()), Some("g1"));
    }

    #[test]
    fn response_additions_are_added_once_whatever_response_goes_out() {
        let o = oidc();
        let (mut c, mut parts) = (ctx(), request());
        let mut response = Response::new(Bytes::new());
        response.headers_mut().insert(http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        let flow = apply(&o.plan, &mut c, &mut parts, Decision::Respond { response, additions: cookie("session=") });
        let Flow::Respond(response) = flow else { panic!("not a response") };
        assert!(response.headers().get(http::header::SET_COOKIE).is_none(), "only header_filter adds them");
        assert_eq!(parts.headers["x-consumer-id"], "admin", "a refused request is not edited");
        let (mut head, _) = response.into_parts();
        add_to_response(&mut c, &mut head);
        add_to_response(&mut c, &mut head);
        assert_eq!(head.headers.get_all(http::header::SET_COOKIE).iter().count(), 1);
        assert_eq!(head.headers.get_all(http::header::WWW_AUTHENTICATE).iter().count(), 1);
    }

    #[test]
    fn an_allowed_request_gets_its_headers_after_the_spoofed_ones_went() {
        let o = oidc();
        let (mut c, mut parts) = (ctx(), request());
        let made = [(HeaderName::from_static("x-user"), HeaderValue::from_static("john"))];
        let allow = Allow {
            strip: Strip { session: Some(&o.auth.sessions.store), ..Strip::default() },
            consumer: None,
            groups: HeaderValue::from_str("a, b").ok(),
            upstream: Upstream::Shared(&made),
            additions: Additions::default(),
        };
        assert!(matches!(apply(&o.plan, &mut c, &mut parts, Decision::Allow(allow)), Flow::Continue));
        assert!(c.authenticated);
        assert_eq!(parts.headers.get_all("x-user").iter().collect::<Vec<_>>(), ["john"]);
        assert_eq!(parts.headers["x-authenticated-groups"], "a, b");
        assert_eq!(parts.headers["authorization"], "Bearer t", "kept without hide_credentials");
        assert_eq!(parts.headers["cookie"], "theme=dark");
        assert!(parts.headers.get("x-consumer-id").is_none());
        assert!(c.extensions.get::<Additions>().is_none(), "nothing to add, nothing kept");
    }
}
