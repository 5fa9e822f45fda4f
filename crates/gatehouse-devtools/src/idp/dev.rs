//! The `/_dev/` test knobs: counters, reset, key rotation and retirement, failure and delay injection, client
//! registration, answer overrides, one-shot tampering and login sessions. (`/_dev/mint` has its own module.)

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::config::Client;
use super::keys::{KeyPair, KeyRing};
use super::knobs::{Endpoint, Fail};
use super::state::Idp;
use super::web::{OAuthError, Req, Resp, json};

pub(crate) fn calls(idp: &Idp) -> Resp {
    json(StatusCode::OK, &idp.calls.to_json())
}

/// Zeroes the counters and disarms every failure, delay and override; keys and tokens stay.
pub(crate) fn reset(idp: &Idp) -> Resp {
    idp.calls.reset();
    *idp.knobs() = Default::default();
    json(StatusCode::OK, &json!({ "reset": true }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    #[serde(default)]
    drop_old: bool,
}

/// Makes a new RSA and EC key current; the old ones stay published unless `drop_old`.
pub(crate) async fn rotate(idp: &Idp, req: &Req) -> Result<Resp, OAuthError> {
    let r: RotateRequest = req.json()?;
    // RSA generation takes long enough to stall other requests on this worker.
    let pair = match tokio::task::spawn_blocking(KeyPair::generate).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(OAuthError::server_error(format!("key generation failed: {e}"))),
        Err(_) => return Err(OAuthError::server_error("key generation failed")),
    };
    let ring = idp.update_keys(|ring| ring.rotated(pair, r.drop_old));
    Ok(published(&ring))
}

/// The answer of a change of keys: the published kids (current ones first) and the current ones.
fn published(ring: &KeyRing) -> Resp {
    json(StatusCode::OK, &json!({ "kids": ring.kids(), "current": { "rsa": ring.rsa.kid(), "ec": ring.ec.kid() } }))
}

/// No options: an empty body or `{}`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RetireRequest {}

/// Removes the old keys from the JWKS, keeping the current pair (a rotation's second half, for
/// tests of what a key's removal does to tokens it signed).
pub(crate) fn retire(idp: &Idp, req: &Req) -> Result<Resp, OAuthError> {
    let RetireRequest {} = req.json()?;
    let ring = idp.update_keys(KeyRing::retired);
    Ok(published(&ring))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FailRequest {
    endpoint: String,
    status: Option<u16>,
    times: Option<u64>,
}

/// Makes an endpoint answer `status` (default 503) `times` times, or until reset.
pub(crate) fn fail(idp: &Idp, req: &Req) -> Result<Resp, OAuthError> {
    let r: FailRequest = req.json()?;
    let endpoints = selected(&r.endpoint)?;
    let status = r.status.unwrap_or(503);
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .ok_or_else(|| OAuthError::invalid_request("status must be between 400 and 599"))?;
    let fail = (r.times != Some(0)).then_some(Fail { status, remaining: r.times });
    let mut knobs = idp.knobs();
    for e in endpoints {
        knobs.set_fail(e, fail);
    }
    Ok(json(StatusCode::OK, &knobs.to_json()))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DelayRequest {
    endpoint: String,
    ms: u64,
}

/// Makes an endpoint wait `ms` milliseconds before answering (`0` removes the delay).
pub(crate) fn delay(idp: &Idp, req: &Req) -> Result<Resp, OAuthError> {
    let r: DelayRequest = req.json()?;
    let endpoints = selected(&r.endpoint)?;
    let mut knobs = idp.knobs();
    for e in endpoints {
        knobs.set_delay(e, r.ms);
    }
    Ok(json(StatusCode::OK, &knobs.to_json()))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OverrideRequest {
    discovery: Option<Map<String, Value>>,
    id_token: Option<Map<String, Value>>,
    access_token: Option<Map<String, Value>>,
    userinfo: Option<Map<String, Value>>,
    introspection: Option<Map<String, Value>>,
    authorization_response: Option<Map<String, Value>>,
}

/// Authorization response parameters are text: a knob for them holds strings, or `null` to remove one.
fn response_params(knob: Option<Map<String, Value>>) -> Result<Option<Map<String, Value>>, OAuthError> {
    if knob.as_ref().is_some_and(|m| m.values().any(|v| !v.is_string() && !v.is_null())) {
        return Err(OAuthError::invalid_request("authorization_response values must be strings or null"));
    }
    Ok(knob)
}

/// Sets the members merged into an answer kind; each kind given replaces its earlier override
/// (`{}` clears it), the others stay.
pub(crate) fn override_answers(idp: &Idp, req: &Req) -> Result<Resp, OAuthError> {
    let r: OverrideRequest = req.json()?;
    let authorization_response = response_params(r.authorization_response)?;
    let mut knobs = idp.knobs();
    let o = &mut knobs.overrides;
    for (slot, new) in [
        (&mut o.discovery, r.discovery),
        (&mut o.id_token, r.id_token),
        (&mut o.access_token, r.access_token),
        (&mut o.userinfo, r.userinfo),
        (&mut o.introspection, r.introspection),
        (&mut o.authorization_response, authorization_response),
    ] {
        if let Some(new) = new {
            *slot = new;
        }
    }
    Ok(json(StatusCode::OK, &o.to_json()))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NextRequest {
    authorization_response: Option<Map<String, Value>>,
    code_id_token: Option<Map<String, Value>>,
}

/// Arms one-shot tampering of the next authorization response or the next ID token of the
/// authorization code grant; each kind given replaces what was armed (`{}` disarms it).
pub(crate) fn next(idp: &Idp, req: &Req) -> Result<Resp, OAuthError> {
    let r: NextRequest = req.json()?;
    let authorization_response = response_params(r.authorization_response)?;
    let mut knobs = idp.knobs();
    let n = &mut knobs.next;
    for (slot, new) in
        [(&mut n.authorization_response, authorization_response), (&mut n.code_id_token, r.code_id_token)]
    {
        if let Some(new) = new {
            *slot = (!new.is_empty()).then_some(new);
        }
    }
    Ok(json(StatusCode::OK, &n.to_json()))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SsoRequest {
    #[serde(default)]
    age: i64,
    #[serde(default)]
    end: bool,
}

/// Ages every browser login session by `age` seconds (for `max_age` tests), or ends them all.
pub(crate) fn sso(idp: &Idp, req: &Req) -> Result<Resp, OAuthError> {
    let r: SsoRequest = req.json()?;
    if r.age < 0 {
        return Err(OAuthError::invalid_request("age must not be negative"));
    }
    let mut store = idp.store();
    let sessions = if r.end { store.clear_sso() } else { store.age_sso(r.age) };
    Ok(json(StatusCode::OK, &json!({ "sessions": sessions, "ended": r.end })))
}

/// Registers or replaces a client.
pub(crate) fn register_client(idp: &Idp, req: &Req) -> Result<Resp, OAuthError> {
    let client: Client = req.json()?;
    let id = client.client_id.clone();
    idp.register(client).map_err(OAuthError::invalid_request)?;
    Ok(json(StatusCode::CREATED, &json!({ "client_id": id })))
}

fn selected(name: &str) -> Result<Vec<Endpoint>, OAuthError> {
    Endpoint::selected(name).ok_or_else(|| {
        OAuthError::invalid_request(
            "endpoint must be discovery, jwks, token, introspect, userinfo, revoke, authorize, logout, par or all",
        )
    })
}

/// The answer of an endpoint whose failure is armed.
pub(crate) fn injected(status: StatusCode) -> Resp {
    let error = match status.as_u16() {
        503 => "temporarily_unavailable",
        401 => "invalid_client",
        s if s >= 500 => "server_error",
        _ => "invalid_request",
    };
    OAuthError::new(status, error, "failure injected by /_dev/fail").response()
}
