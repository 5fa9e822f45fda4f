//! Client authentication at the token, introspection and revocation endpoints: HTTP Basic, secret
//! in the body, JWT assertions signed with the secret or with the client's key (RFC 7523), and
//! `none` for public clients.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gatehouse_jose::{AlgorithmSet, ClaimsPolicy, Jwk, KeySet, Policy, UnverifiedJwt, Verified};
use http::header::AUTHORIZATION;
use std::sync::Arc;

use super::state::{Idp, Registered};
use super::util::{form_decode, now, same_secret};
use super::web::{OAuthError, Params, Req};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Seconds of clock skew tolerated on assertion `exp`/`nbf`/`iat`.
const ASSERTION_LEEWAY: i64 = 30;

/// A client that proved who it is.
pub(crate) struct Authenticated {
    pub client: Arc<Registered>,
    /// The method it used, as named in discovery.
    pub method: &'static str,
}

/// Authenticates the client of a request to `endpoint` (its URL, accepted as assertion audience
/// besides the token endpoint and the issuer).
pub(crate) fn authenticate(idp: &Idp, req: &Req, params: &Params, endpoint: &str) -> Result<Authenticated, OAuthError> {
    let basic = basic_credentials(req)?;
    let assertion = params.get("client_assertion");
    let body_secret = params.get("client_secret");
    let body_id = params.get("client_id");

    if [basic.is_some(), assertion.is_some(), body_secret.is_some()].iter().filter(|b| **b).count() > 1 {
        return Err(OAuthError::invalid_request("more than one client authentication method used"));
    }

    if let Some((id, secret)) = basic {
        if body_id.is_some_and(|b| b != id) {
            return Err(OAuthError::invalid_request("client_id does not match the Authorization header"));
        }
        return with_secret(idp, &id, &secret, "client_secret_basic");
    }
    if let Some(assertion) = assertion {
        if params.get("client_assertion_type") != Some(JWT_BEARER) {
            return Err(OAuthError::invalid_request(format!("client_assertion_type must be {JWT_BEARER}")));
        }
        return with_assertion(idp, assertion, body_id, endpoint);
    }
    let Some(id) = body_id else {
        return Err(OAuthError::invalid_client("client authentication required"));
    };
    if let Some(secret) = body_secret {
        return with_secret(idp, id, secret, "client_secret_post");
    }
    let client = idp.client(id).ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
    if !client.client.is_public() {
        return Err(OAuthError::invalid_client("client authentication required"));
    }
    Ok(Authenticated { client, method: "none" })
}

/// `Authorization: Basic` credentials, form-decoded as RFC 6749 section 2.3.1 asks. `None` when
/// there is no Basic header.
fn basic_credentials(req: &Req) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = req.header(AUTHORIZATION) else { return Ok(None) };
    let Some((scheme, encoded)) = value.trim().split_once(' ') else { return Ok(None) };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|d| String::from_utf8(d).ok())
        .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
    let (id, secret) =
        decoded.split_once(':').ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
    Ok(Some((form_decode(id), secret.to_owned())))
}

fn with_secret(idp: &Idp, id: &str, secret: &str, method: &'static str) -> Result<Authenticated, OAuthError> {
    let client = idp.client(id).ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
    let Some(expected) = client.client.client_secret.as_deref() else {
        // A public client presenting an empty Basic password is still just naming itself.
        if method == "client_secret_basic" && secret.is_empty() && client.client.is_public() {
            return Ok(Authenticated { client, method: "none" });
        }
        return Err(OAuthError::invalid_client("client has no secret"));
    };
    // Most clients send the secret as is; the form-decoded form is what RFC 6749 specifies.
    let matches = same_secret(secret, expected)
        || (method == "client_secret_basic" && same_secret(&form_decode(secret), expected));
    if !matches {
        return Err(OAuthError::invalid_client("invalid client credentials"));
    }
    Ok(Authenticated { client, method })
}

fn with_assertion(
    idp: &Idp,
    assertion: &str,
    body_id: Option<&str>,
    endpoint: &str,
) -> Result<Authenticated, OAuthError> {
    let bad = |why: &str| OAuthError::invalid_client(format!("invalid client assertion: {why}"));
    let jwt = UnverifiedJwt::parse(assertion).map_err(|e| bad(&e.to_string()))?;
    let claims = jwt.unverified_claims().map_err(|e| bad(&e.to_string()))?;
    let iss = claims.get("iss").and_then(|v| v.as_str()).ok_or_else(|| bad("missing iss"))?;
    if claims.get("sub").and_then(|v| v.as_str()) != Some(iss) {
        return Err(bad("sub must equal iss"));
    }
    if body_id.is_some_and(|id| id != iss) {
        return Err(bad("iss does not match client_id"));
    }
    let client = idp.client(iss).ok_or_else(|| OAuthError::invalid_client("unknown client"))?;

    let (method, verified) = verify_client_signed(&client, jwt).map_err(|e| bad(&e))?;
    let policy = ClaimsPolicy {
        leeway: ASSERTION_LEEWAY,
        require_exp: true,
        issuers: vec![client.client.client_id.clone()],
        audiences: vec![idp.url("/token"), idp.issuer.clone(), endpoint.to_owned()],
    };
    verified.check_claims(&policy, now()).map_err(|e| bad(&e.to_string()))?;
    Ok(Authenticated { client, method })
}

/// Verifies a JWT `client` signed: `HS*` with its secret (`client_secret_jwt`), anything else with
/// a key of its registered `jwks` (`private_key_jwt`). Returns the method and the verified token.
pub(crate) fn verify_client_signed(
    client: &Registered,
    jwt: UnverifiedJwt<'_>,
) -> Result<(&'static str, Verified), String> {
    let hs = gatehouse_jose::Algorithm::from_name(&jwt.unverified_header().alg).is_some_and(|a| a.is_hmac());
    let (method, verified) = if hs {
        let secret = client.client.client_secret.as_deref().ok_or("client has no secret")?;
        let key = Jwk::from_hmac_secret(secret.as_bytes(), None, None).map_err(|e| e.to_string())?;
        let policy = Policy { algorithms: AlgorithmSet::all(), enable_hs_signatures: true };
        ("client_secret_jwt", jwt.verify(&KeySet::from_keys([key]), &policy))
    } else {
        let keys = client.keys.as_ref().ok_or("client has no registered jwks")?;
        let policy = Policy { algorithms: AlgorithmSet::asymmetric(), enable_hs_signatures: false };
        ("private_key_jwt", jwt.verify(keys, &policy))
    };
    Ok((method, verified.map_err(|e| e.to_string())?))
}
