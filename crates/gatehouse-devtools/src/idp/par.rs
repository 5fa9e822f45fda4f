//! `POST /par`: pushed authorization requests (RFC 9126).

use http::StatusCode;
use serde_json::json;

use super::client_auth::authenticate;
use super::request::{Located, REQUEST_URI_PREFIX, ResponseMode, check, check_bounds, redirect_uri, request_object};
use super::state::Idp;
use super::store::Pushed;
use super::util::{now, random_token};
use super::web::{OAuthError, Req, Resp};

/// Client authentication parameters, which are not part of the authorization request.
const CLIENT_AUTH: [&str; 3] = ["client_secret", "client_assertion", "client_assertion_type"];

/// Takes an authorization request from an authenticated client, checks it as `/authorize` would,
/// and answers `201` with the `request_uri` that stands for it.
pub(crate) fn par(idp: &Idp, req: &Req) -> Result<Resp, OAuthError> {
    let raw = req.form()?;
    let auth = authenticate(idp, req, &raw, &idp.url("/par"))?;
    check_bounds(&raw).map_err(OAuthError::invalid_request)?;
    if raw.get("request_uri").is_some() {
        return Err(OAuthError::invalid_request("request_uri cannot be pushed"));
    }
    let client = auth.client;
    let (params, signed) = match raw.get("request") {
        Some(jwt) => {
            let params = request_object(idp, &client, jwt)
                .map_err(|e| OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request_object", e))?;
            (params, true)
        }
        None => {
            let mut params = raw.clone();
            for name in CLIENT_AUTH {
                params.remove(name);
            }
            params.insert("client_id", &client.client.client_id);
            (params, false)
        }
    };
    let located = Located {
        redirect_uri: redirect_uri(&client, &params).map_err(OAuthError::invalid_request)?,
        mode: ResponseMode::Query,
        jwt: false,
        state: None,
        client,
        params,
        signed,
        pushed: None,
    };
    check(&located).map_err(|(error, description)| OAuthError::new(StatusCode::BAD_REQUEST, error, description))?;

    let now = now();
    let request_uri = format!("{REQUEST_URI_PREFIX}{}", random_token());
    let pushed = Pushed {
        client_id: located.client.client.client_id.clone(),
        params: located.params.sorted().into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        signed,
        exp: now.saturating_add(idp.par_ttl),
    };
    idp.store().insert_pushed(request_uri.clone(), pushed, now);
    Ok(super::web::json(StatusCode::CREATED, &json!({ "request_uri": request_uri, "expires_in": idp.par_ttl })))
}
