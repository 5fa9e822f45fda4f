//! `GET|POST /userinfo`: the profile behind an access token, as JSON or as a signed JWT.

use http::header::AUTHORIZATION;
use http::{Method, StatusCode};
use serde_json::Value;

use super::claims::{sign, userinfo as view};
use super::introspect::active_access;
use super::state::Idp;
use super::util::merge;
use super::web::{OAuthError, Req, Resp, jwt};

pub(crate) fn userinfo(idp: &Idp, req: &Req) -> Result<Resp, OAuthError> {
    let token = bearer(req)?;
    let claims = active_access(idp, &token).ok_or_else(|| OAuthError::invalid_token("the access token is invalid"))?;
    let mut info = view(&claims);
    merge(&mut info, &idp.knobs().overrides.userinfo);
    if req.accepts("application/jwt") {
        // OIDC Core 5.3.2: a signed answer carries iss and aud.
        info.insert("iss".into(), idp.issuer.clone().into());
        if let Some(aud) = claims.get("azp").or_else(|| claims.get("client_id")) {
            info.insert("aud".into(), aud.clone());
        }
        return Ok(jwt("application/jwt", sign(idp, "JWT", info)?));
    }
    Ok(super::web::json(StatusCode::OK, &Value::Object(info)))
}

/// The bearer token: `Authorization: Bearer`, or the `access_token` form field of a POST
/// (RFC 6750 section 2.2).
fn bearer(req: &Req) -> Result<String, OAuthError> {
    if let Some(value) = req.header(AUTHORIZATION) {
        return match value.trim().split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
                Ok(token.trim().to_owned())
            }
            _ => Err(OAuthError::invalid_token("the Authorization header is not a Bearer token")),
        };
    }
    if req.method() == Method::POST
        && let Ok(params) = req.form()
        && let Some(token) = params.get("access_token")
    {
        return Ok(token.to_owned());
    }
    let mut missing = OAuthError::invalid_token("missing access token");
    // RFC 6750 section 3.1: a request without credentials gets a bare challenge.
    missing.challenge = Some("Bearer realm=\"gatehouse-dev-idp\"".into());
    Err(missing)
}
