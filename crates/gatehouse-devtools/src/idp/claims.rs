//! The shape of what the provider issues: access-token claims in Keycloak's style (as in Kong's
//! documentation), ID-token claims, the userinfo view, and signing with the current RSA key.

use gatehouse_jose::Algorithm;
use gatehouse_jose::sign::{SigningKey, sign_jwt};
use serde_json::{Map, Value, json};

use super::config::{Client, User};
use super::state::Idp;
use super::util::half_hash;
use super::web::OAuthError;

/// Claims that describe the token rather than the user: a user's extra claims never replace
/// them, and the userinfo view leaves them out.
const PROTOCOL_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "typ",
    "azp",
    "client_id",
    "scope",
    "sid",
    "auth_time",
    "nonce",
    "at_hash",
    "c_hash",
    "session_state",
    "acr",
];

/// Whom a token is about.
#[derive(Clone, Copy)]
pub(crate) enum Subject<'a> {
    User(&'a User),
    /// The client itself (client credentials).
    Service(&'a str),
}

/// The facts of one issuance shared by the access and the ID token.
pub(crate) struct Issue<'a> {
    pub client: &'a Client,
    pub subject: Subject<'a>,
    pub scope: &'a str,
    /// The login session, absent for client credentials.
    pub sid: Option<&'a str>,
    pub now: i64,
}

/// The profile claims of a user: `email_verified`, `preferred_username`, names, `email`,
/// `groups`/`roles` when non-empty, then the user's extra claims.
pub(crate) fn profile(user: &User) -> Map<String, Value> {
    let mut m = Map::new();
    if user.email.is_some() {
        m.insert("email_verified".into(), user.email_verified.unwrap_or(true).into());
    }
    m.insert("preferred_username".into(), user.username.clone().into());
    for (name, value) in [
        ("given_name", user.given_name.clone()),
        ("family_name", user.family_name.clone()),
        ("name", user.full_name()),
        ("email", user.email.clone()),
    ] {
        if let Some(v) = value {
            m.insert(name.into(), v.into());
        }
    }
    if !user.groups.is_empty() {
        m.insert("groups".into(), user.groups.clone().into());
    }
    if !user.roles.is_empty() {
        m.insert("roles".into(), user.roles.clone().into());
    }
    for (k, v) in &user.claims {
        if !PROTOCOL_CLAIMS.contains(&k.as_str()) {
            m.insert(k.clone(), v.clone());
        }
    }
    m
}

/// The access token's `aud`: the client's audience, or Keycloak's `account`.
fn audience(client: &Client) -> Value {
    match client.audience.as_slice() {
        [] => "account".into(),
        [one] => one.as_str().into(),
        many => many.to_vec().into(),
    }
}

/// The claims of an access token valid for `ttl` seconds.
pub(crate) fn access_claims(idp: &Idp, issue: &Issue<'_>, ttl: i64) -> Map<String, Value> {
    let client_id = issue.client.client_id.as_str();
    let mut m = Map::new();
    m.insert("iss".into(), idp.issuer.clone().into());
    let sub = match issue.subject {
        Subject::User(user) => user.subject(),
        Subject::Service(id) => id.to_owned(),
    };
    m.insert("sub".into(), sub.into());
    m.insert("aud".into(), audience(issue.client));
    m.insert("exp".into(), issue.now.saturating_add(ttl).into());
    m.insert("iat".into(), issue.now.into());
    m.insert("jti".into(), uuid::Uuid::new_v4().to_string().into());
    m.insert("typ".into(), "Bearer".into());
    m.insert("azp".into(), client_id.into());
    m.insert("client_id".into(), client_id.into());
    if let Some(sid) = issue.sid {
        m.insert("sid".into(), sid.into());
    }
    m.insert("scope".into(), issue.scope.into());
    match issue.subject {
        Subject::User(user) => m.extend(profile(user)),
        Subject::Service(id) => {
            m.insert("preferred_username".into(), format!("service-account-{id}").into());
        }
    }
    m
}

/// What binds an ID token to the rest of its answer.
pub(crate) struct Binding<'a> {
    pub auth_time: i64,
    pub nonce: Option<&'a str>,
    pub access_token: &'a str,
    /// The authorization code it was issued for, hashed into `c_hash`.
    pub code: Option<&'a str>,
    /// The algorithm the ID token is signed with, which picks the hash.
    pub alg: Algorithm,
}

/// The claims of an ID token for `user`, bound to its access token by `at_hash` and to its code
/// by `c_hash`.
pub(crate) fn id_token_claims(idp: &Idp, issue: &Issue<'_>, user: &User, bound: &Binding<'_>) -> Map<String, Value> {
    let client_id = issue.client.client_id.as_str();
    let mut m = Map::new();
    m.insert("iss".into(), idp.issuer.clone().into());
    m.insert("sub".into(), user.subject().into());
    m.insert("aud".into(), client_id.into());
    m.insert("exp".into(), issue.now.saturating_add(idp.access_token_ttl).into());
    m.insert("iat".into(), issue.now.into());
    m.insert("auth_time".into(), bound.auth_time.into());
    m.insert("jti".into(), uuid::Uuid::new_v4().to_string().into());
    m.insert("typ".into(), "ID".into());
    m.insert("azp".into(), client_id.into());
    if let Some(nonce) = bound.nonce {
        m.insert("nonce".into(), nonce.into());
    }
    if let Some(sid) = issue.sid {
        m.insert("sid".into(), sid.into());
    }
    // OIDC Core 3.1.3.6 and 3.3.2.11: the left half of the hash of the signing algorithm.
    m.insert("at_hash".into(), half_hash(bound.alg, bound.access_token.as_bytes()).into());
    if let Some(code) = bound.code {
        m.insert("c_hash".into(), half_hash(bound.alg, code.as_bytes()).into());
    }
    m.extend(profile(user));
    m
}

/// What `/userinfo` shows for an access token: its claims without the protocol ones.
pub(crate) fn userinfo(claims: &Map<String, Value>) -> Map<String, Value> {
    claims
        .iter()
        .filter(|(k, _)| *k == "sub" || !PROTOCOL_CLAIMS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Signs `claims` with the current RSA key and the given `typ`.
pub(crate) fn sign(idp: &Idp, typ: &str, claims: Map<String, Value>) -> Result<String, OAuthError> {
    sign_with(&idp.keys().rsa, typ, claims)
}

/// Signs `claims` with `key` and the given `typ`.
pub(crate) fn sign_with(key: &SigningKey, typ: &str, claims: Map<String, Value>) -> Result<String, OAuthError> {
    sign_jwt(&json!({ "alg": key.algorithm().as_str(), "typ": typ }), &Value::Object(claims), key).map_err(|e| {
        tracing::error!(error = %e, "idp: signing failed");
        OAuthError::server_error("An unexpected error occurred")
    })
}
