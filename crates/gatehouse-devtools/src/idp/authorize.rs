//! `GET|POST /authorize`: the login form, then a code, sent back in the response mode asked for.
//!
//! A browser that logged in at the form keeps a login session (`sso`): its later requests get a
//! code at once, unless `prompt=login` or a `max_age` older than the login asks for the form
//! again. Errors about the client or the redirect URI are shown as a page, never redirected, so a
//! forged request cannot bounce a browser to a URI nothing vouches for.

use http::header::SET_COOKIE;
use http::{HeaderValue, Method, StatusCode};
use serde_json::{Map, Value};

use super::request::{Checked, Located, ResponseMode, check, locate};
use super::sso;
use super::state::Idp;
use super::store::{Code, Sso};
use super::util::{html_escape, now, random_token, same_secret};
use super::web::{Params, Req, Resp, encode, html, redirect, with_query};

/// Fields of the login form's POST that are not authorization parameters.
const FORM_FIELDS: [&str; 3] = ["username", "password", "cancel"];

pub(crate) fn authorize(idp: &Idp, req: &Req) -> Resp {
    let raw = match req.params() {
        Ok(p) => p,
        Err(e) => return page(StatusCode::BAD_REQUEST, "Bad request", &e.description),
    };
    let now = now();
    let located = match locate(idp, &raw, now) {
        Ok(found) => found,
        Err(why) => return page(StatusCode::BAD_REQUEST, "Bad request", &why),
    };
    let fail = |error: &str, description: &str| {
        let params = [("error", error), ("error_description", description)];
        respond(idp, &located, &params, Vec::new())
    };
    if located.client.client.require_pushed_authorization_requests && located.pushed.is_none() {
        return fail("invalid_request", "this client must push its authorization requests to /par first");
    }
    let checked = match check(&located) {
        Ok(checked) => checked,
        Err((error, description)) => return fail(error, &description),
    };
    if raw.get("cancel").is_some() {
        return fail("access_denied", "the user cancelled the sign-in");
    }
    let session = sso::find(idp, req, now);
    // OIDC Core 3.1.2.1: a login older than max_age must be made again.
    let fresh = |s: &Sso| checked.max_age.is_none_or(|max| now.saturating_sub(s.auth_time) <= max);
    if checked.prompt_none {
        return match session.filter(|(_, s)| fresh(s) && !checked.prompt_login) {
            Some((_, login)) => issue(idp, &located, &checked, &login, Vec::new()),
            None => fail("login_required", "the user is not signed in at the development IdP"),
        };
    }
    if req.method() != Method::POST || raw.get("username").is_none() {
        return match session.filter(|(_, s)| fresh(s) && !checked.prompt_login) {
            Some((_, login)) => issue(idp, &located, &checked, &login, Vec::new()),
            None => login_form(&raw, &located, None),
        };
    }

    let username = raw.get("username").unwrap_or_default();
    let password = raw.get("password").unwrap_or_default();
    let Some(user) = idp.user(username).filter(|u| same_secret(password, &u.password)) else {
        return login_form(&raw, &located, Some("Invalid username or password."));
    };
    let (login, cookies) = sso::start(idp, &user.username, session.as_ref().map(|(id, _)| id.as_str()), now);
    issue(idp, &located, &checked, &login, cookies)
}

/// Answers with a new code for `login`.
fn issue(idp: &Idp, located: &Located, checked: &Checked, login: &Sso, cookies: Vec<HeaderValue>) -> Resp {
    let now = now();
    let code = random_token();
    let data = Code {
        client_id: located.client.client.client_id.clone(),
        redirect_uri: located.redirect_uri.clone(),
        username: login.username.clone(),
        scope: checked.scope.clone(),
        nonce: checked.nonce.clone(),
        challenge: checked.challenge.clone(),
        auth_time: login.auth_time,
        sid: login.sid.clone(),
        exp: now.saturating_add(idp.code_ttl),
    };
    idp.store().insert_code(code.clone(), data, now);
    respond(idp, located, &[("code", code.as_str())], cookies)
}

/// The authorization response: `params` plus `state` and (RFC 9207, against mix-up attacks)
/// `iss`, reshaped by the `/_dev/` knobs, in the request's response mode; with JARM, those are
/// the claims of the one `response` JWT. Spends a pushed request.
fn respond(idp: &Idp, located: &Located, params: &[(&str, &str)], cookies: Vec<HeaderValue>) -> Resp {
    let mut out: Vec<(String, String)> = params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    if let Some(state) = &located.state {
        out.push(("state".into(), state.clone()));
    }
    out.push(("iss".into(), idp.issuer.clone()));
    {
        let mut knobs = idp.knobs();
        reshape(&mut out, &knobs.overrides.authorization_response);
        if let Some(next) = knobs.next.authorization_response.take() {
            reshape(&mut out, &next);
        }
    }
    if let Some(uri) = &located.pushed {
        idp.store().take_pushed(uri);
    }
    if located.jwt {
        out = match jarm(idp, located, out) {
            Ok(jwt) => vec![("response".into(), jwt)],
            Err(e) => return page(StatusCode::INTERNAL_SERVER_ERROR, "Server error", &e.description),
        };
    }
    let uri = &located.redirect_uri;
    let mut resp = match located.mode {
        ResponseMode::Query => to(&with_query(uri, &out)),
        ResponseMode::Fragment => to(&format!("{uri}#{}", encode(&out))),
        ResponseMode::FormPost => form_post(uri, &out),
    };
    for cookie in cookies {
        resp.headers_mut().append(SET_COOKIE, cookie);
    }
    resp
}

/// How long a JARM response is good for, in seconds (JARM §2.1 asks for a short lifetime).
const JARM_LIFETIME: i64 = 600;

/// The JARM response JWT (JWT Secured Authorization Response Mode §2.1): the response parameters
/// as claims (as reshaped by the knobs: one removed is not in the JWT either), with `aud` the
/// client and `exp`, signed with the provider's current RSA key.
fn jarm(idp: &Idp, located: &Located, params: Vec<(String, String)>) -> Result<String, super::web::OAuthError> {
    let mut claims: Map<String, Value> = params.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    claims.insert("aud".into(), Value::String(located.client.client.client_id.clone()));
    claims.insert("exp".into(), now().saturating_add(JARM_LIFETIME).into());
    super::claims::sign(idp, "JWT", claims)
}

/// Applies a knob to response parameters: a string sets one, `null` removes it.
fn reshape(params: &mut Vec<(String, String)>, knob: &Map<String, Value>) {
    for (name, value) in knob {
        params.retain(|(k, _)| k != name);
        if let Value::String(v) = value {
            params.push((name.clone(), v.clone()));
        }
    }
}

fn to(location: &str) -> Resp {
    redirect(location).unwrap_or_else(|| page(StatusCode::BAD_REQUEST, "Bad request", "Invalid redirect URI."))
}

/// `response_mode=form_post`: a page that posts the response to the redirect URI by itself, with a
/// button for browsers without JavaScript.
fn form_post(uri: &str, params: &[(String, String)]) -> Resp {
    let mut hidden = String::new();
    for (name, value) in params {
        hidden.push_str(&hidden_input(name, value));
    }
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Continue - Gatehouse development IdP</title></head><body>\n\
         <form id=\"response\" method=\"post\" action=\"{action}\">\n{hidden}\
         <noscript><p>JavaScript is off: press Continue to go back to the application.</p>\
         <button type=\"submit\">Continue</button></noscript>\n</form>\n\
         <script>document.getElementById(\"response\").submit();</script>\n</body></html>\n",
        action = html_escape(uri),
    );
    html(StatusCode::OK, body)
}

fn hidden_input(name: &str, value: &str) -> String {
    format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">\n", html_escape(name), html_escape(value))
}

/// The login form. It carries the request's own parameters (a `request_uri` or `request` stays
/// as it came), so its POST is checked exactly as the first request was; Cancel sends them with
/// `cancel`.
fn login_form(raw: &Params, located: &Located, error: Option<&str>) -> Resp {
    let carried: Vec<(&str, &str)> = raw.sorted().into_iter().filter(|(k, _)| !FORM_FIELDS.contains(k)).collect();
    let mut hidden = String::new();
    for (name, value) in &carried {
        hidden.push_str(&hidden_input(name, value));
    }
    let mut cancel = carried.clone();
    cancel.push(("cancel", "1"));
    let error =
        error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>\n", html_escape(e))).unwrap_or_default();
    let username = raw.get("username").map(html_escape).unwrap_or_default();
    let body = format!(
        "<h2>Sign in to {client}</h2>\n{error}<form method=\"post\">\n{hidden}\
         <label>Username <input name=\"username\" value=\"{username}\" autofocus></label>\n\
         <label>Password <input name=\"password\" type=\"password\"></label>\n\
         <button type=\"submit\">Sign in</button>\n\
         <a id=\"cancel\" href=\"?{cancel}\">Cancel</a>\n</form>",
        client = html_escape(&located.client.client.client_id),
        cancel = html_escape(&encode(&cancel)),
    );
    html(StatusCode::OK, layout("Sign in", &body))
}

pub(crate) fn page(status: StatusCode, title: &str, message: &str) -> Resp {
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
