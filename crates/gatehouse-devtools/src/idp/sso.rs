//! The browser's login session at the provider: after a login at the form, a `gatehouse_idp`
//! cookie names a record kept in memory, so later authorization requests of the same browser are
//! answered without the form (there is no consent screen).
//!
//! The name is neither `session`, `authorization` nor `remember`: cookies ignore ports, so on
//! `127.0.0.1` the gateway's cookies and this one reach both servers. It is set twice, once for the
//! path of `/authorize` and once for `/logout`, the only endpoints that read it, so a browser does
//! not send it to the gateway's other paths (and on to their upstreams).

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

/// The endpoints that read the cookie, one cookie path each.
const PATHS: [&str; 2] = ["/authorize", "/logout"];

/// Starts a login session for `username` (ending `replaced`, the one the browser had), and returns
/// it with the `Set-Cookie` values that name it.
pub(crate) fn start(idp: &Idp, username: &str, replaced: Option<&str>, now: i64) -> (Sso, Vec<HeaderValue>) {
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

/// The `Set-Cookie` values that remove the cookie.
pub(crate) fn clear(idp: &Idp) -> Vec<HeaderValue> {
    cookie(idp, &format!("{COOKIE}=; Max-Age=0"))
}

/// A browser-session cookie for each endpoint that reads it; `Lax` is enough, since the browser
/// comes back to the provider by top-level navigation.
fn cookie(idp: &Idp, start: &str) -> Vec<HeaderValue> {
    let secure = if idp.issuer.starts_with("https:") { "; Secure" } else { "" };
    PATHS
        .iter()
        .filter_map(|path| {
            let path = format!("{}{path}", idp.base_path);
            HeaderValue::from_str(&format!("{start}; Path={path}; HttpOnly; SameSite=Lax{secure}")).ok()
        })
        .collect()
}
