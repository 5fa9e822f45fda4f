//! The end of the pipeline: what was decided for a request, and [`apply`], the one function that
//! carries it out: the upstream request's edits, in one fixed order, and the response additions,
//! which travel one route (`header_filter`) whatever response goes out.
//!
//! The general path (`instance.rs`) and the per-thread front (`fast.rs`) both end here, so the
//! order of the edits exists once.

use crate::consumer;
use crate::credentials::{self, Found};
use crate::headers::{HeaderPlan, IDENTITY_HEADERS};
use bytes::Bytes;
use gatehouse_core::entity::Consumer;
use gatehouse_core::plugin::{Ctx, Flow};
use gatehouse_session::SessionStore;
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
    /// The request's `Cookie` headers when it carried our session, so a refusal can expire it.
    pub session_cookies: Option<HeaderMap>,
    /// The request carried our session cookie (opened or not): it never goes upstream.
    pub strip_session: bool,
    /// Authorization passed the requirements: from here on the credentials are gone from the
    /// request, even if a later step refuses it and `anonymous` lets it through.
    pub past_requirements: bool,
    /// The client the request chose (`client_arg`), for the per-client redirect URIs.
    pub client: usize,
}

/// What leaves the request before anything is added.
#[derive(Clone, Copy, Default)]
pub(crate) struct Strip<'a> {
    /// Our session cookie, named by this store.
    pub session: Option<&'a SessionStore>,
    /// The credentials that were found (`hide_credentials`).
    pub hide: &'a [Found],
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
    strip_identity_headers(&mut parts.headers);
    if let Some(store) = s.session {
        store.strip(&mut parts.headers);
    }
    for found in s.hide {
        if let Some(b) = credentials::hide(found, parts, ctx.body.as_ref()) {
            ctx.body = Some(b);
        }
    }
    plan.strip_spoofed(&mut parts.headers);
}

/// Identity headers are never taken from the client. One pass over the request's few headers,
/// and lookups only when one is there.
fn strip_identity_headers(headers: &mut HeaderMap) {
    if headers.keys().any(|k| IDENTITY_HEADERS.contains(&k.as_str())) {
        for h in IDENTITY_HEADERS {
            headers.remove(h);
        }
    }
}
