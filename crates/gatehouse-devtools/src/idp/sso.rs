//! The browser's login session at the provider: after a login at the form, a `gatehouse_idp`
//! cookie names a record kept in memory, so later authorization requests of the same browser are
//! answered without the form (there is no consent screen).
//!
//! The name is neither `session`, `authorization` nor `remember`: cookies ignore ports, so on
//! `127.0.0.1` the gateway's cookies and this one reach both servers.

use http::HeaderValue;

use super::state::Idp;
use super::store::Sso;
use super::util::random_token;
use super::web::Req;

/// The cookie's name.
pub(crate) const COOKIE: &str = "gatehouse_idp";

/// Our cookie values are 43 characters; anything much longer is not one of ours.
const MAX_VALUE: usize = 64;

/// The live login session the request's cookie names, and the cookie's value.
pub(crate) fn find(idp: &Idp, req: &Req, now: i64) -> Option<(String, Sso)> {
    let store = idp.store();
    req.cookies(COOKIE)
        .into_iter()
        .filter(|v| v.len() <= MAX_VALUE)
        .find_map(|v| store.sso(v, now).map(|s| (v.to_owned(), s.clone())))
}

/// Starts a login session for `username` (ending `replaced`, the one the browser had), and returns
/// it with the `Set-Cookie` value that names it.
pub(crate) fn start(idp: &Idp, username: &str, replaced: Option<&str>, now: i64) -> (Sso, Option<HeaderValue>) {
    let id = random_token();
    let sso = Sso {
        username: username.to_owned(),
        auth_time: now,
        sid: uuid::Uuid::new_v4().to_string(),
        exp: now.saturating_add(idp.refresh_token_ttl),
    };
    let mut store = idp.store();
    if let Some(old) = replaced {
        store.remove_sso(old);
    }
    store.insert_sso(id.clone(), sso.clone(), now);
    (sso, cookie(idp, &format!("{COOKIE}={id}")))
}

/// The `Set-Cookie` value that removes the cookie.
pub(crate) fn clear(idp: &Idp) -> Option<HeaderValue> {
    cookie(idp, &format!("{COOKIE}=; Max-Age=0"))
}

/// A session cookie for the issuer's path; `Lax` is enough, since the browser comes back to the
/// provider by top-level navigation.
fn cookie(idp: &Idp, start: &str) -> Option<HeaderValue> {
    let path = if idp.base_path.is_empty() { "/" } else { idp.base_path.as_str() };
    let secure = if idp.issuer.starts_with("https:") { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{start}; Path={path}; HttpOnly; SameSite=Lax{secure}")).ok()
}
