//! Token state: finding out whether a token is active (`/introspect`, `/userinfo`) and revoking it
//! (`/revoke`).

use gatehouse_jose::{ClaimsPolicy, Policy, verify};
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::claims::sign;
use super::client_auth::authenticate;
use super::state::Idp;
use super::store::Stored;
use super::util::{merge, now};
use super::web::{OAuthError, Req, Resp, jwt};

/// What an active token stands for.
pub(crate) enum Active {
    /// An access token (JWT or opaque) and its claims.
    Access(Map<String, Value>),
    /// A refresh token, described as claims.
    Refresh(Map<String, Value>),
}

/// The claims of an active access token: a JWT signed by a published key, from this issuer,
/// inside its `nbf`/`exp` window and not revoked; or a known opaque access token.
pub(crate) fn active_access(idp: &Idp, token: &str) -> Option<Map<String, Value>> {
    let now = now();
    if token.bytes().filter(|b| *b == b'.').count() == 2 {
        let keys = idp.keys();
        let verified = verify(token, keys.keyset(), &Policy::default()).ok()?;
        let policy = ClaimsPolicy { require_exp: false, issuers: vec![idp.issuer.clone()], ..ClaimsPolicy::default() };
        verified.check_claims(&policy, now).ok()?;
        return (!idp.store().jwt_revoked(token)).then_some(verified.claims);
    }
    match idp.store().active(token, now)? {
        Stored::Access(claims) => {
            let not_yet = claims.get("nbf").and_then(Value::as_i64).is_some_and(|nbf| nbf > now);
            (!not_yet).then(|| claims.clone())
        }
        Stored::Refresh(_) => None,
    }
}

fn active(idp: &Idp, token: &str, hint: Option<&str>) -> Option<Active> {
    let refresh = || {
        let now = now();
        match idp.store().active(token, now)? {
            Stored::Refresh(g) => Some(Active::Refresh(
                json!({
                    "iss": idp.issuer,
                    "sub": idp.user(&g.username).map(|u| u.subject()),
                    "aud": idp.issuer,
                    "exp": g.exp,
                    "iat": g.iat,
                    "typ": "Refresh",
                    "azp": g.client_id,
                    "sid": g.sid,
                    "scope": g.scope,
                    "preferred_username": g.username,
                })
                .as_object()
                .cloned()
                .unwrap_or_default(),
            )),
            Stored::Access(_) => None,
        }
    };
    // The hint only decides the order of the lookups (RFC 7662 section 2.1).
    if hint == Some("refresh_token") {
        refresh().or_else(|| active_access(idp, token).map(Active::Access))
    } else {
        active_access(idp, token).map(Active::Access).or_else(refresh)
    }
}

/// `POST /introspect` (RFC 7662), and the signed JWT answer of RFC 9701 when asked for.
pub(crate) fn introspect(idp: &Idp, req: &Req) -> Result<Resp, OAuthError> {
    let params = req.form()?;
    let auth = authenticate(idp, req, &params, &idp.url("/introspect"))?;
    let token = params.require("token")?;
    let mut body = Map::new();
    match active(idp, token, params.get("token_type_hint")) {
        None => {
            body.insert("active".into(), false.into());
        }
        Some(found) => {
            let (claims, token_type) = match found {
                Active::Access(claims) => (claims, "Bearer"),
                Active::Refresh(claims) => (claims, "Refresh"),
            };
            body.insert("active".into(), true.into());
            let client_id = claims.get("client_id").or_else(|| claims.get("azp")).cloned();
            let username = claims.get("preferred_username").cloned();
            body.extend(claims);
            if let Some(id) = client_id {
                body.insert("client_id".into(), id);
            }
            if let Some(name) = username {
                body.insert("username".into(), name);
            }
            body.insert("token_type".into(), token_type.into());
            merge(&mut body, &idp.knobs().overrides.introspection);
        }
    }
    for media_type in ["application/token-introspection+jwt", "application/jwt"] {
        if req.accepts(media_type) {
            let claims = json!({
                "iss": idp.issuer,
                "aud": auth.client.client.client_id,
                "iat": now(),
                "token_introspection": body,
            });
            let token = sign(idp, "token-introspection+jwt", claims.as_object().cloned().unwrap_or_default())?;
            let content_type =
                if media_type == "application/jwt" { "application/jwt" } else { "application/token-introspection+jwt" };
            return Ok(jwt(content_type, token));
        }
    }
    Ok(super::web::json(StatusCode::OK, &Value::Object(body)))
}

/// `POST /revoke` (RFC 7009): any authenticated client may revoke any token; unknown tokens are
/// ignored, so the answer is `200` either way.
pub(crate) fn revoke(idp: &Idp, req: &Req) -> Result<Resp, OAuthError> {
    let params = req.form()?;
    authenticate(idp, req, &params, &idp.url("/revoke"))?;
    let token = params.require("token")?;
    let revoked_opaque = idp.store().revoke(token);
    if !revoked_opaque && let Some(claims) = active_access(idp, token) {
        let exp = claims.get("exp").and_then(Value::as_i64);
        idp.store().revoke_jwt(token, exp, now());
    }
    Ok(super::web::json(StatusCode::OK, &json!({})))
}
