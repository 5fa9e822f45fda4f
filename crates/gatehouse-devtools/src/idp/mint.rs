//! `POST /_dev/mint`: tokens of any shape, for attack and edge-case tests.
//!
//! The compact form is built here rather than with `sign_jwt`, so the header may say anything
//! (another `alg`, an unknown `kid`, `crit`) whatever key actually signed.

use gatehouse_jose::Algorithm;
use gatehouse_jose::sign::SigningKey;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::claims::{Issue, Subject, access_claims};
use super::keys::foreign_key;
use super::state::Idp;
use super::store::Stored;
use super::token::DEFAULT_SCOPE;
use super::util::{b64, merge, now, random_token};
use super::web::{OAuthError, Req, Resp};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MintRequest {
    user: Option<String>,
    client_id: Option<String>,
    scope: Option<String>,
    claims: Option<Map<String, Value>>,
    header: Option<Map<String, Value>>,
    key: Option<String>,
    alg: Option<String>,
    hs_secret: Option<String>,
    ttl: Option<i64>,
    nbf_in: Option<i64>,
    format: Option<String>,
}

/// Which key signs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    Ec,
    Foreign,
    Hs,
    None,
}

impl KeyKind {
    fn parse(name: &str) -> Option<KeyKind> {
        Some(match name {
            "rsa" => KeyKind::Rsa,
            "ec" => KeyKind::Ec,
            "foreign" => KeyKind::Foreign,
            "hs" => KeyKind::Hs,
            "none" => KeyKind::None,
            _ => return None,
        })
    }

    /// The kind an `alg` alone implies: the published key that can make it, else a foreign one.
    fn for_alg(alg: &str) -> KeyKind {
        match Algorithm::from_name(alg) {
            _ if alg == "none" => KeyKind::None,
            Some(a) if a.is_rsa() => KeyKind::Rsa,
            Some(Algorithm::Es256) => KeyKind::Ec,
            Some(a) if a.is_hmac() => KeyKind::Hs,
            _ => KeyKind::Foreign,
        }
    }

    fn default_alg(self) -> &'static str {
        match self {
            KeyKind::Rsa | KeyKind::Foreign => "RS256",
            KeyKind::Ec => "ES256",
            KeyKind::Hs => "HS256",
            KeyKind::None => "none",
        }
    }
}

pub(crate) async fn mint(idp: &Idp, req: &Req) -> Result<Resp, OAuthError> {
    let r: MintRequest = req.json()?;
    let username = r.user.as_deref().unwrap_or("john");
    let user = idp.user(username).ok_or_else(|| OAuthError::invalid_request(format!("unknown user '{username}'")))?;
    let client_id = r.client_id.as_deref().unwrap_or("gatehouse");
    let client =
        idp.client(client_id).ok_or_else(|| OAuthError::invalid_request(format!("unknown client '{client_id}'")))?;

    let now = now();
    let sid = uuid::Uuid::new_v4().to_string();
    let scope = r.scope.as_deref().unwrap_or(DEFAULT_SCOPE);
    let issue = Issue { client: &client.client, subject: Subject::User(user), scope, sid: Some(&sid), now };
    let mut claims = access_claims(idp, &issue, r.ttl.unwrap_or(idp.access_token_ttl));
    if let Some(nbf_in) = r.nbf_in {
        claims.insert("nbf".into(), now.saturating_add(nbf_in).into());
    }
    merge(&mut claims, &r.claims.unwrap_or_default());

    match r.format.as_deref().unwrap_or("jwt") {
        "jwt" => {}
        "opaque" => {
            let token = random_token();
            idp.store().insert_token(token.clone(), Stored::Access(claims.clone()), now);
            return Ok(super::web::json(StatusCode::OK, &json!({ "token": token, "claims": claims })));
        }
        other => return Err(OAuthError::invalid_request(format!("format must be jwt or opaque, not '{other}'"))),
    }

    let kind = match (r.key.as_deref(), r.alg.as_deref()) {
        (Some(name), _) => KeyKind::parse(name)
            .ok_or_else(|| OAuthError::invalid_request("key must be rsa, ec, foreign, hs or none"))?,
        (None, Some(alg)) => KeyKind::for_alg(alg),
        (None, None) => KeyKind::Rsa,
    };
    let alg_name = r.alg.as_deref().unwrap_or(kind.default_alg());
    let signer = if kind == KeyKind::None || alg_name == "none" {
        None
    } else {
        let alg = Algorithm::from_name(alg_name)
            .ok_or_else(|| OAuthError::invalid_request(format!("unsupported alg '{alg_name}'")))?;
        let secret = r.hs_secret.as_deref().or(client.client.client_secret.as_deref());
        Some(signing_key(idp, kind, alg, secret).await?)
    };

    let mut header = Map::new();
    header.insert("alg".into(), alg_name.into());
    header.insert("typ".into(), "JWT".into());
    if let Some(kid) = signer.as_ref().and_then(SigningKey::kid) {
        header.insert("kid".into(), kid.into());
    }
    merge(&mut header, &r.header.unwrap_or_default());

    let mut token = format!(
        "{}.{}",
        b64(Value::Object(header.clone()).to_string().as_bytes()),
        b64(Value::Object(claims.clone()).to_string().as_bytes())
    );
    let signature = match &signer {
        Some(key) => key.sign(token.as_bytes()).map_err(|e| OAuthError::server_error(e.to_string()))?,
        None => Vec::new(),
    };
    token.push('.');
    token.push_str(&b64(&signature));
    Ok(super::web::json(StatusCode::OK, &json!({ "token": token, "header": header, "claims": claims })))
}

/// The key for `kind` and `alg`. A published key signs when it can (an RSA key takes any `RS*`/
/// `PS*`); otherwise a fresh, unpublished key for `alg` does.
async fn signing_key(idp: &Idp, kind: KeyKind, alg: Algorithm, secret: Option<&str>) -> Result<SigningKey, OAuthError> {
    let keys = idp.keys();
    let published = match kind {
        KeyKind::Rsa if alg.is_rsa() => Some(keys.rsa.clone()),
        KeyKind::Ec if alg == Algorithm::Es256 => Some(keys.ec.clone()),
        KeyKind::Hs => {
            if !alg.is_hmac() {
                return Err(OAuthError::invalid_request("key hs signs HS256/HS384/HS512 only; set header.alg to lie"));
            }
            let secret =
                secret.ok_or_else(|| OAuthError::invalid_request("key hs needs hs_secret or a client secret"))?;
            let key =
                SigningKey::hmac(alg, secret.as_bytes()).map_err(|e| OAuthError::invalid_request(e.to_string()))?;
            return Ok(key);
        }
        _ => None,
    };
    if let Some(key) = published {
        return key.with_algorithm(alg).map_err(|e| OAuthError::server_error(e.to_string()));
    }
    // RSA generation takes long enough to stall other requests on this worker.
    match tokio::task::spawn_blocking(move || foreign_key(alg)).await {
        Ok(Ok(key)) => Ok(key),
        Ok(Err(e)) => Err(OAuthError::invalid_request(format!("cannot make a key for {alg}: {e}"))),
        Err(_) => Err(OAuthError::server_error("key generation failed")),
    }
}
