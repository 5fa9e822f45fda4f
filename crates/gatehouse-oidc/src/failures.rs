//! What a refusal becomes: the `anonymous` consumer, a redirect (`*_redirect_uri`), or Kong's
//! answer; and whether it destroys the session (`*_destroy_session`).

use crate::decision::{Decision, Strip, Trail};
use crate::respond::{Failure, Responder, realm_of};
use crate::settings::Settings;
use gatehouse_core::plugin::Ctx;
use gatehouse_session::SessionStore;

/// One instance's refusal rules.
pub(crate) struct Refusals {
    responder: Responder,
    anonymous: Option<String>,
    unauthorized_redirect: Option<Vec<String>>,
    forbidden_redirect: Option<Vec<String>>,
    unexpected_redirect: Option<Vec<String>>,
    unauthorized_destroy_session: bool,
    forbidden_destroy_session: bool,
}

impl Refusals {
    /// The rules of a config.
    pub fn build(s: &Settings) -> Refusals {
        Refusals {
            responder: Responder {
                unauthorized_message: s.unauthorized_error_message.clone(),
                forbidden_message: s.forbidden_error_message.clone(),
                display_errors: s.display_errors,
                expose_error_code: s.expose_error_code,
                realm: realm_of(&s.issuer),
            },
            anonymous: s.anonymous.clone(),
            unauthorized_redirect: s.unauthorized_redirect_uri.clone(),
            forbidden_redirect: s.forbidden_redirect_uri.clone(),
            unexpected_redirect: s.unexpected_redirect_uri.clone(),
            unauthorized_destroy_session: s.unauthorized_destroy_session,
            forbidden_destroy_session: s.forbidden_destroy_session,
        }
    }

    /// Whether `anonymous` is set: then a request another plugin authenticated is left alone.
    pub fn has_anonymous(&self) -> bool {
        self.anonymous.is_some()
    }

    /// The decision for a refused request. `strip` is what already left the request on its way
    /// here (our session cookie, credentials hidden after the requirements passed): with
    /// `anonymous` the request goes on without them.
    pub fn decide<'a>(
        &self,
        ctx: &Ctx,
        f: Failure,
        trail: &mut Trail,
        strip: Strip<'a>,
        sessions: &SessionStore,
    ) -> Decision<'a> {
        match &f {
            Failure::Idp { reason } | Failure::Unexpected { reason } => {
                tracing::error!(reason = %reason, "openid-connect: request refused")
            }
            _ => tracing::info!(reason = f.reason(), "openid-connect: request refused"),
        }
        let destroy = match f {
            Failure::Unauthorized { .. } => self.unauthorized_destroy_session,
            Failure::Forbidden { .. } => self.forbidden_destroy_session,
            _ => false,
        };
        if destroy && let Some(cookies) = trail.session_cookies.take() {
            trail.additions.set_cookies.extend(sessions.clear(&cookies, ctx.https));
        }
        let additions = std::mem::take(&mut trail.additions);
        if let Some(anon) = &self.anonymous
            && f.allows_anonymous()
        {
            let Some(consumer) = ctx.consumers.find_anonymous(anon).cloned() else {
                let f = Failure::Unexpected { reason: format!("anonymous consumer {anon} was not found") };
                tracing::error!(reason = f.reason(), "openid-connect: request refused");
                return Decision::Respond { response: self.responder.respond(&f), additions };
            };
            return Decision::Anonymous { strip, consumer, additions };
        }
        let redirect = match f {
            Failure::Unauthorized { .. } => &self.unauthorized_redirect,
            Failure::Forbidden { .. } => &self.forbidden_redirect,
            _ => &self.unexpected_redirect,
        };
        let response = match redirect.as_ref().and_then(|l| l.get(trail.client).or(l.first())) {
            Some(uri) => crate::respond::redirect(uri),
            None => self.responder.respond(&f),
        };
        Decision::Respond { response, additions }
    }
}
