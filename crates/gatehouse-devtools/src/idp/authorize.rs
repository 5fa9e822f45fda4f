//! The browser side: `GET|POST /authorize` (a login form, then a code) and `GET|POST /logout`.
//!
//! There is no login session cookie: every authorization request shows the form (`prompt=none`
//! answers `login_required`). Errors about the client or the redirect URI are shown as a page,
//! never redirected, so a forged request cannot bounce a browser to an unregistered URI.

use gatehouse_jose::{Policy, verify};
use http::{Method, StatusCode};
use serde_json::Value;
use std::sync::Arc;

use super::state::{Idp, Registered};
use super::store::Code;
use super::util::{html_escape, now, random_token, same_secret};
use super::web::{Params, Req, Resp, html, redirect, with_query};

/// The hidden fields the login form carries from the authorization request to its POST.
const CARRIED: [&str; 8] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
];

pub(crate) fn authorize(idp: &Idp, req: &Req) -> Resp {
    let params = match req.params() {
        Ok(p) => p,
        Err(e) => return page(StatusCode::BAD_REQUEST, "Bad request", &e.description),
    };
    let (client, redirect_uri) = match client_and_redirect(idp, &params) {
        Ok(found) => found,
        Err(why) => return page(StatusCode::BAD_REQUEST, "Bad request", &why),
    };
    let state = params.get("state");
    let fail = |error: &str, description: &str| {
        let mut query = vec![("error", error), ("error_description", description)];
        if let Some(state) = state {
            query.push(("state", state));
        }
        query.push(("iss", &idp.issuer));
        to(&with_query(&redirect_uri, &query))
    };
    match params.get("response_type") {
        Some("code") => {}
        None => return fail("invalid_request", "missing parameter 'response_type'"),
        Some(_) => return fail("unsupported_response_type", "only response_type=code is supported"),
    }
    let challenge = match (params.get("code_challenge"), params.get("code_challenge_method")) {
        (None, None) => None,
        (None, Some(_)) => return fail("invalid_request", "code_challenge_method without code_challenge"),
        // RFC 7636 section 4.3: the method defaults to plain.
        (Some(c), None | Some("plain")) => Some((c.to_owned(), "plain".to_owned())),
        (Some(c), Some("S256")) => Some((c.to_owned(), "S256".to_owned())),
        (Some(_), Some(_)) => return fail("invalid_request", "code_challenge_method must be S256 or plain"),
    };
    if params.get("prompt").is_some_and(|p| p.split(' ').any(|p| p == "none")) {
        return fail("login_required", "the development IdP keeps no login session");
    }
    if req.method() != Method::POST || params.get("username").is_none() {
        return login_form(&params, &client.client.client_id, &redirect_uri, None);
    }

    let username = params.get("username").unwrap_or_default();
    let password = params.get("password").unwrap_or_default();
    let Some(user) = idp.user(username).filter(|u| same_secret(password, &u.password)) else {
        return login_form(&params, &client.client.client_id, &redirect_uri, Some("Invalid username or password."));
    };
    let now = now();
    let code = random_token();
    let data = Code {
        client_id: client.client.client_id.clone(),
        redirect_uri: redirect_uri.clone(),
        username: user.username.clone(),
        scope: super::token::user_scope(params.get("scope")),
        nonce: params.get("nonce").map(str::to_owned),
        challenge,
        auth_time: now,
        sid: uuid::Uuid::new_v4().to_string(),
        exp: now.saturating_add(idp.code_ttl),
    };
    idp.store().insert_code(code.clone(), data, now);
    let mut query = vec![("code", code.as_str())];
    if let Some(state) = state {
        query.push(("state", state));
    }
    // RFC 9207: the issuer in the response defends against mix-up attacks.
    query.push(("iss", &idp.issuer));
    to(&with_query(&redirect_uri, &query))
}

/// The client and the redirect URI, or why the request can't even be answered by redirect.
fn client_and_redirect(idp: &Idp, params: &Params) -> Result<(Arc<Registered>, String), String> {
    let client_id = params.get("client_id").ok_or("Missing client_id.")?;
    let client = idp.client(client_id).ok_or("Unknown client.")?;
    let redirect_uri = match (params.get("redirect_uri"), client.client.redirect_uris.as_slice()) {
        (Some(uri), _) => uri.to_owned(),
        // OIDC makes redirect_uri required; plain OAuth allows leaving out the only registered one.
        (None, [only]) => only.clone(),
        (None, _) => return Err("Missing redirect_uri.".into()),
    };
    if !client.allows_redirect(&redirect_uri) {
        return Err("The redirect_uri is not registered for this client.".into());
    }
    Ok((client, redirect_uri))
}

fn to(location: &str) -> Resp {
    redirect(location).unwrap_or_else(|| page(StatusCode::BAD_REQUEST, "Bad request", "Invalid redirect URI."))
}

fn login_form(params: &Params, client_id: &str, redirect_uri: &str, error: Option<&str>) -> Resp {
    let mut hidden = String::new();
    for name in CARRIED {
        let value = match name {
            "client_id" => Some(client_id),
            "redirect_uri" => Some(redirect_uri),
            _ => params.get(name),
        };
        if let Some(value) = value {
            hidden.push_str(&format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">\n", html_escape(value)));
        }
    }
    let error =
        error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>\n", html_escape(e))).unwrap_or_default();
    let username = params.get("username").map(html_escape).unwrap_or_default();
    let body = format!(
        "<h2>Sign in to {client}</h2>\n{error}<form method=\"post\">\n{hidden}\
         <label>Username <input name=\"username\" value=\"{username}\" autofocus></label>\n\
         <label>Password <input name=\"password\" type=\"password\"></label>\n\
         <button type=\"submit\">Sign in</button>\n</form>",
        client = html_escape(client_id),
    );
    html(StatusCode::OK, layout("Sign in", &body))
}

/// `GET|POST /logout` (OIDC RP-Initiated Logout): ends the session named by `id_token_hint`
/// (its refresh tokens are revoked), then redirects to `post_logout_redirect_uri` or shows a page.
pub(crate) fn logout(idp: &Idp, req: &Req) -> Resp {
    let params = match req.params() {
        Ok(p) => p,
        Err(e) => return page(StatusCode::BAD_REQUEST, "Bad request", &e.description),
    };
    let mut client_id = params.get("client_id").map(str::to_owned);
    if let Some(hint) = params.get("id_token_hint") {
        // The hint may be expired (logging out late is normal), so only the signature counts.
        let keys = idp.keys();
        let Ok(verified) = verify(hint, keys.keyset(), &Policy::default()) else {
            return page(StatusCode::BAD_REQUEST, "Bad request", "Invalid id_token_hint.");
        };
        if let Some(Value::String(aud)) = verified.claims.get("aud") {
            client_id.get_or_insert_with(|| aud.clone());
        }
        if let Some(Value::String(sid)) = verified.claims.get("sid") {
            idp.store().revoke_session(sid);
        }
    }
    let Some(target) = params.get("post_logout_redirect_uri") else {
        return page(StatusCode::OK, "Signed out", "You are signed out of the Gatehouse development IdP.");
    };
    let allowed = match client_id.as_deref().map(|id| idp.client(id)) {
        Some(Some(client)) => client.allows_redirect(target),
        Some(None) => false,
        None => idp.clients().iter().any(|c| c.allows_redirect(target)),
    };
    if !allowed {
        return page(StatusCode::BAD_REQUEST, "Bad request", "The post_logout_redirect_uri is not registered.");
    }
    match params.get("state") {
        Some(state) => to(&with_query(target, &[("state", state)])),
        None => to(target),
    }
}

fn page(status: StatusCode, title: &str, message: &str) -> Resp {
    html(status, layout(title, &format!("<h2>{}</h2>\n<p>{}</p>", html_escape(title), html_escape(message))))
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} - Gatehouse development IdP</title>\
         <style>body{{font-family:sans-serif;max-width:28em;margin:3em auto}}label{{display:block;margin:.5em 0}}\
         .banner{{background:#fde68a;padding:.5em}}.error{{color:#b91c1c}}</style></head><body>\n\
         <p class=\"banner\"><strong>Gatehouse development IdP — not for production</strong></p>\n{body}\n</body></html>\n",
        title = html_escape(title),
    )
}
