//! `GET|POST /logout`, the end session endpoint (OIDC RP-Initiated Logout 1.0).

use gatehouse_jose::{Policy, verify};
use http::StatusCode;
use http::header::SET_COOKIE;
use serde_json::Value;

use super::authorize::page;
use super::request::check_bounds;
use super::sso;
use super::state::Idp;
use super::web::{Req, Resp, redirect, with_query};

/// Ends the browser's login session (its `gatehouse_idp` cookie) and the session named by
/// `id_token_hint`: their records go and their refresh tokens are revoked. Then redirects to
/// `post_logout_redirect_uri` with `state`, or shows a page. Every check comes first, so a refused
/// request ends nothing.
pub(crate) fn logout(idp: &Idp, req: &Req) -> Resp {
    let bad = |why: &str| page(StatusCode::BAD_REQUEST, "Bad request", why);
    let params = match req.params() {
        Ok(p) => p,
        Err(e) => return bad(&e.description),
    };
    if let Err(why) = check_bounds(&params) {
        return bad(&why);
    }
    let mut client_id = params.get("client_id").map(str::to_owned);
    let mut sids = Vec::new();
    if let Some(hint) = params.get("id_token_hint") {
        // The hint may be expired (logging out late is normal), so only its signature and
        // issuer count.
        let keys = idp.keys();
        let claims = match verify(hint, keys.keyset(), &Policy::default()) {
            Ok(verified) if verified.claims.get("iss").and_then(Value::as_str) == Some(idp.issuer.as_str()) => {
                verified.claims
            }
            _ => return bad("Invalid id_token_hint."),
        };
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(aud)) => vec![aud.as_str()],
            Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        match (&client_id, audiences.first()) {
            (Some(id), _) if !audiences.contains(&id.as_str()) => {
                return bad("The client_id is not the audience of the id_token_hint.");
            }
            (None, Some(aud)) => client_id = Some((*aud).to_owned()),
            _ => {}
        }
        if let Some(Value::String(sid)) = claims.get("sid") {
            sids.push(sid.clone());
        }
    }
    let target = params.get("post_logout_redirect_uri");
    if let Some(target) = target {
        let allowed = match client_id.as_deref().map(|id| idp.client(id)) {
            Some(Some(client)) => client.allows_logout_redirect(target),
            Some(None) => false,
            None => idp.clients().iter().any(|c| c.allows_logout_redirect(target)),
        };
        if !allowed {
            return bad("The post_logout_redirect_uri is not registered.");
        }
    }

    let cookies = req.cookies(sso::COOKIE);
    {
        let mut store = idp.store();
        for id in &cookies {
            if let Some(ended) = store.remove_sso(id) {
                sids.push(ended.sid);
            }
        }
        for sid in &sids {
            store.revoke_session(sid);
            store.remove_sso_sid(sid);
        }
    }
    let mut resp = match (target, params.get("state")) {
        (Some(target), Some(state)) => redirect(&with_query(target, &[("state", state)])),
        (Some(target), None) => redirect(target),
        (None, _) => None,
    }
    .unwrap_or_else(|| page(StatusCode::OK, "Signed out", "You are signed out of the Gatehouse development IdP."));
    if !cookies.is_empty() {
        for clear in sso::clear(idp) {
            resp.headers_mut().append(SET_COOKIE, clear);
        }
    }
    resp
}
