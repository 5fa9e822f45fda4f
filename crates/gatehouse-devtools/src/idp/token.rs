//! `POST /token`: the password, client credentials, refresh token and authorization code (with
//! PKCE) grants.

use http::{HeaderName, StatusCode};
use serde_json::{Map, Value, json};

use super::claims::{Binding, Issue, Subject, access_claims, id_token_claims, sign, sign_with};
use super::client_auth::{Authenticated, authenticate};
use super::config::Rotation;
use super::state::Idp;
use super::store::{Grant, Stored, Taken};
use super::util::{b64, merge, now, random_token, same_secret, sha256};
use super::web::{OAuthError, Params, Req, Resp};

/// The scope when the request names none.
pub(crate) const DEFAULT_SCOPE: &str = "openid email profile";

/// The scope granted to a user login: what was asked, plus `email` and `profile`, which are always
/// granted as Keycloak's default client scopes are (so Kong's default `scopes: ["openid"]` gives
/// the `openid email profile` tokens Kong's documentation shows).
pub(crate) fn user_scope(requested: Option<&str>) -> String {
    let mut words: Vec<&str> = requested.unwrap_or(DEFAULT_SCOPE).split_whitespace().collect();
    for default in ["email", "profile"] {
        if !words.contains(&default) {
            words.push(default);
        }
    }
    words.join(" ")
}

pub(crate) fn token(idp: &Idp, req: &Req) -> Result<Resp, OAuthError> {
    let params = req.form()?;
    let auth = authenticate(idp, req, &params, &idp.url("/token"))?;
    let grant_type = params.require("grant_type")?;
    tracing::debug!(client = %auth.client.client.client_id, method = auth.method, grant_type, "idp: token request");
    let body = match grant_type {
        "password" => password(idp, &auth, &params)?,
        "client_credentials" => client_credentials(idp, &auth, &params)?,
        "refresh_token" => refresh(idp, &auth, &params)?,
        "authorization_code" => authorization_code(idp, &auth, &params)?,
        _ => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant type '{grant_type}' is not supported"),
            ));
        }
    };
    let mut resp = super::web::json(StatusCode::OK, &body);
    echo_headers(req, &mut resp);
    Ok(resp)
}

/// Test knob: each request header `x-dev-echo-<name>` comes back on the answer as `<name>`, value
/// for value, so a test can make a grant answer carry any header (`token_headers_replay`).
fn echo_headers(req: &Req, resp: &mut Resp) {
    for (name, value) in &req.parts.headers {
        let echoed = name.as_str().strip_prefix("x-dev-echo-").and_then(|n| HeaderName::from_bytes(n.as_bytes()).ok());
        if let Some(echoed) = echoed {
            resp.headers_mut().append(echoed, value.clone());
        }
    }
}

/// `claims` with the `/_dev/override` members for ID tokens (`id`) or access tokens merged in.
fn overridden(idp: &Idp, mut claims: Map<String, Value>, id: bool) -> Map<String, Value> {
    let knobs = idp.knobs();
    merge(&mut claims, if id { &knobs.overrides.id_token } else { &knobs.overrides.access_token });
    claims
}

/// A login session to issue tokens for.
struct Login<'a> {
    username: &'a str,
    scope: &'a str,
    sid: String,
    auth_time: i64,
    nonce: Option<&'a str>,
    /// The code exchanged, for `c_hash`; `None` outside the authorization code grant.
    code: Option<&'a str>,
    /// The code grant the tokens descend from (see `Store::take_code`).
    family: Option<&'a str>,
}

/// What the answer says about the refresh token.
enum RefreshOut<'a> {
    /// A new one.
    New,
    /// The one presented again, valid until its `exp`.
    Same(&'a str, i64),
    /// Nothing: the one presented stays valid.
    Omit,
}

fn password(idp: &Idp, auth: &Authenticated, params: &Params) -> Result<Value, OAuthError> {
    let username = params.require("username")?;
    let password = params.require("password")?;
    let user = idp
        .user(username)
        .filter(|u| same_secret(password, &u.password))
        .ok_or_else(|| OAuthError::invalid_grant("invalid user credentials"))?;
    let scope = user_scope(params.get("scope"));
    let now = now();
    let login = Login {
        username: &user.username,
        scope: &scope,
        sid: uuid::Uuid::new_v4().to_string(),
        auth_time: now,
        nonce: None,
        code: None,
        family: None,
    };
    issue_for_user(idp, auth, &login, RefreshOut::New, now)
}

fn client_credentials(idp: &Idp, auth: &Authenticated, params: &Params) -> Result<Value, OAuthError> {
    let client = &auth.client.client;
    if client.is_public() {
        return Err(OAuthError::unauthorized_client("public clients cannot use the client_credentials grant"));
    }
    let scope = params.get("scope").unwrap_or(DEFAULT_SCOPE);
    let issue = Issue { client, subject: Subject::Service(&client.client_id), scope, sid: None, now: now() };
    let ttl = idp.access_ttl(client, None);
    let access_token = sign(idp, "JWT", overridden(idp, access_claims(idp, &issue, ttl), false))?;
    Ok(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": scope,
    }))
}

fn refresh(idp: &Idp, auth: &Authenticated, params: &Params) -> Result<Value, OAuthError> {
    let presented = params.require("refresh_token")?;
    let rotation = auth.client.client.refresh_token_rotation;
    let now = now();
    let grant = {
        let mut store = idp.store();
        let grant = match store.active(presented, now) {
            Some(Stored::Refresh(grant)) => grant.clone(),
            _ => return Err(OAuthError::invalid_grant("invalid refresh token")),
        };
        if grant.client_id != auth.client.client.client_id {
            return Err(OAuthError::invalid_grant("refresh token was issued to another client"));
        }
        if rotation == Rotation::Rotate {
            // The presented token is spent whatever happens next.
            store.revoke(presented);
        }
        grant
    };
    let scope = match params.get("scope") {
        None => grant.scope.as_str(),
        Some(asked) => {
            let granted: Vec<&str> = grant.scope.split(' ').collect();
            if !asked.split(' ').filter(|s| !s.is_empty()).all(|s| granted.contains(&s)) {
                return Err(OAuthError::invalid_scope("scope exceeds the original grant"));
            }
            asked
        }
    };
    let login = Login {
        username: &grant.username,
        scope,
        sid: grant.sid.clone(),
        auth_time: grant.auth_time,
        nonce: None,
        code: None,
        family: grant.family.as_deref(),
    };
    let out = match rotation {
        Rotation::Rotate => RefreshOut::New,
        Rotation::Reuse => RefreshOut::Same(presented, grant.exp),
        Rotation::Omit => RefreshOut::Omit,
    };
    issue_for_user(idp, auth, &login, out, now)
}

fn authorization_code(idp: &Idp, auth: &Authenticated, params: &Params) -> Result<Value, OAuthError> {
    let code = params.require("code")?;
    let now = now();
    // A replay is remembered as long as the tokens it could revoke live.
    let until = now.saturating_add(idp.refresh_ttl(&auth.client.client).max(idp.code_ttl));
    let taken = idp.store().take_code(code, now, until);
    let (data, family) = match taken {
        Taken::Fresh(data, family) => (data, family),
        Taken::Replayed => {
            return Err(OAuthError::invalid_grant("authorization code already used; its tokens are revoked"));
        }
        Taken::Unknown => return Err(OAuthError::invalid_grant("invalid authorization code")),
    };
    if data.exp <= now {
        return Err(OAuthError::invalid_grant("authorization code expired"));
    }
    if data.client_id != auth.client.client.client_id {
        return Err(OAuthError::invalid_grant("authorization code was issued to another client"));
    }
    if params.get("redirect_uri") != Some(data.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request"));
    }
    match (&data.challenge, params.get("code_verifier")) {
        (None, None) => {}
        (None, Some(_)) => return Err(OAuthError::invalid_grant("code_verifier sent but no code_challenge was")),
        (Some(_), None) => return Err(OAuthError::invalid_grant("missing code_verifier")),
        (Some((challenge, method)), Some(verifier)) => {
            let computed = if method == "S256" { b64(&sha256(verifier.as_bytes())) } else { verifier.to_owned() };
            if !same_secret(&computed, challenge) {
                return Err(OAuthError::invalid_grant("code_verifier does not match the code_challenge"));
            }
        }
    }
    let login = Login {
        username: &data.username,
        scope: &data.scope,
        sid: data.sid.clone(),
        auth_time: data.auth_time,
        nonce: data.nonce.as_deref(),
        code: Some(code),
        family: Some(&family),
    };
    issue_for_user(idp, auth, &login, RefreshOut::New, now)
}

/// The answer for a user: access token, refresh token, and an ID token when `openid` is asked.
fn issue_for_user(
    idp: &Idp,
    auth: &Authenticated,
    login: &Login<'_>,
    refresh: RefreshOut<'_>,
    now: i64,
) -> Result<Value, OAuthError> {
    let client = &auth.client.client;
    let user = idp.user(login.username).ok_or_else(|| OAuthError::invalid_grant("the user no longer exists"))?;
    let issue = Issue { client, subject: Subject::User(user), scope: login.scope, sid: Some(&login.sid), now };
    let ttl = idp.access_ttl(client, Some(user));
    let refresh_ttl = idp.refresh_ttl(client);
    // One snapshot of the keys, so the hashes follow the algorithm that signs.
    let keys = idp.keys();
    let access_token = sign_with(&keys.rsa, "JWT", overridden(idp, access_claims(idp, &issue, ttl), false))?;
    if let Some(family) = login.family {
        let (exp, until) = (now.saturating_add(ttl), now.saturating_add(refresh_ttl));
        idp.store().add_to_family(family, &access_token, exp, until, now);
    }

    let refresh = match refresh {
        RefreshOut::New => {
            let token = random_token();
            let grant = Grant {
                client_id: client.client_id.clone(),
                username: user.username.clone(),
                scope: login.scope.to_owned(),
                sid: login.sid.clone(),
                auth_time: login.auth_time,
                iat: now,
                exp: now.saturating_add(refresh_ttl),
                family: login.family.map(str::to_owned),
            };
            idp.store().insert_token(token.clone(), Stored::Refresh(grant), now);
            Some((token, refresh_ttl))
        }
        RefreshOut::Same(token, exp) => Some((token.to_owned(), exp.saturating_sub(now))),
        RefreshOut::Omit => None,
    };

    let mut body = Map::new();
    if login.scope.split(' ').any(|s| s == "openid") {
        let bound = Binding {
            auth_time: login.auth_time,
            nonce: login.nonce,
            access_token: &access_token,
            code: login.code,
            alg: keys.rsa.algorithm(),
        };
        let mut claims = overridden(idp, id_token_claims(idp, &issue, user, &bound), true);
        if login.code.is_some()
            && let Some(next) = idp.knobs().next.code_id_token.take()
        {
            merge(&mut claims, &next);
        }
        body.insert("id_token".into(), sign_with(&keys.rsa, "JWT", claims)?.into());
    }
    body.insert("access_token".into(), access_token.into());
    body.insert("token_type".into(), "Bearer".into());
    body.insert("expires_in".into(), ttl.into());
    if let Some((token, expires_in)) = refresh {
        body.insert("refresh_token".into(), token.into());
        body.insert("refresh_expires_in".into(), expires_in.into());
    }
    body.insert("scope".into(), login.scope.into());
    body.insert("session_state".into(), login.sid.clone().into());
    Ok(Value::Object(body))
}
