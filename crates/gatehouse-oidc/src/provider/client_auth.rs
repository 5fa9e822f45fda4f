//! How the plugin authenticates itself to the identity provider's token and introspection
//! endpoints (RFC 6749 §2.3, OpenID Connect Core §9): Kong's `client_auth` values.

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse_jose::Algorithm;
use gatehouse_jose::sign::{SigningKey, sign_jwt};
use serde_json::json;

/// A client authentication method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic` with the form-encoded id and secret.
    SecretBasic,
    /// `client_id` and `client_secret` in the form body.
    SecretPost,
    /// A JWT assertion signed with the client secret (HS*).
    SecretJwt,
    /// A JWT assertion signed with the client's private key (`client_jwk`).
    PrivateKeyJwt,
    /// A public client: only `client_id` in the body.
    None,
}

impl ClientAuth {
    /// Kong's name for it. `tls_client_auth` methods are refused at build time.
    pub fn from_name(s: &str) -> Option<ClientAuth> {
        Some(match s {
            "client_secret_basic" => ClientAuth::SecretBasic,
            "client_secret_post" => ClientAuth::SecretPost,
            "client_secret_jwt" => ClientAuth::SecretJwt,
            "private_key_jwt" => ClientAuth::PrivateKeyJwt,
            "none" => ClientAuth::None,
            _ => return None,
        })
    }
}

/// One configured client (Kong's `client_id[i]`, `client_secret[i]`, `client_auth[i]`, ...).
#[derive(Clone)]
pub struct Client {
    /// `client_id`.
    pub id: String,
    /// `client_secret`.
    pub secret: Option<String>,
    /// `client_auth`, defaulting to `client_secret_basic` (or `private_key_jwt` when only a key is given).
    pub auth: ClientAuth,
    /// The key for `private_key_jwt` (`client_jwk`).
    pub key: Option<SigningKey>,
    /// `client_alg`: the assertion's algorithm.
    pub alg: Option<Algorithm>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.debug_struct("Client").field("id", &self.id).field("auth", &self.auth).finish_non_exhaustive()
    }
}

/// Why a client cannot authenticate as configured.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientAuthError {
    /// The method needs a secret and none is set.
    #[error("client {0} has no client_secret for {1}")]
    NoSecret(String, &'static str),
    /// `private_key_jwt` without a usable `client_jwk`.
    #[error("client {0} has no client_jwk for private_key_jwt")]
    NoKey(String),
    /// Signing the assertion failed.
    #[error("client assertion: {0}")]
    Sign(String),
}

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Adds the client's credentials to a token/introspection/revocation request: a header and/or
/// form fields. `audience` is the endpoint URL, the `aud` of a client assertion.
pub fn apply(
    client: &Client,
    method: ClientAuth,
    audience: &str,
    now: i64,
    req: reqwest::RequestBuilder,
    form: &mut Vec<(String, String)>,
) -> Result<reqwest::RequestBuilder, ClientAuthError> {
    let secret = |name| client.secret.as_deref().ok_or_else(|| ClientAuthError::NoSecret(client.id.clone(), name));
    Ok(match method {
        ClientAuth::SecretBasic => {
            // RFC 6749 §2.3.1: both parts are form-encoded before base64.
            let pair = format!("{}:{}", form_encode(&client.id), form_encode(secret("client_secret_basic")?));
            req.header("authorization", format!("Basic {}", STANDARD.encode(pair)))
        }
        ClientAuth::SecretPost => {
            form.push(("client_id".into(), client.id.clone()));
            form.push(("client_secret".into(), secret("client_secret_post")?.to_string()));
            req
        }
        ClientAuth::SecretJwt => {
            let alg = client.alg.filter(|a| a.is_hmac()).unwrap_or(Algorithm::Hs256);
            let key = SigningKey::hmac(alg, secret("client_secret_jwt")?.as_bytes())
                .map_err(|e| ClientAuthError::Sign(e.to_string()))?;
            push_assertion(client, &key, audience, now, form)?;
            req
        }
        ClientAuth::PrivateKeyJwt => {
            let key = client.key.as_ref().ok_or_else(|| ClientAuthError::NoKey(client.id.clone()))?;
            push_assertion(client, key, audience, now, form)?;
            req
        }
        ClientAuth::None => {
            form.push(("client_id".into(), client.id.clone()));
            req
        }
    })
}

fn push_assertion(
    client: &Client,
    key: &SigningKey,
    audience: &str,
    now: i64,
    form: &mut Vec<(String, String)>,
) -> Result<(), ClientAuthError> {
    let mut jti = [0u8; 16];
    SystemRandom::new().fill(&mut jti).map_err(|_| ClientAuthError::Sign("no randomness".into()))?;
    let claims = json!({
        "iss": client.id, "sub": client.id, "aud": audience,
        "jti": URL_SAFE_NO_PAD.encode(jti), "iat": now, "exp": now + 60,
    });
    let token = sign_jwt(&json!({"typ": "JWT"}), &claims, key).map_err(|e| ClientAuthError::Sign(e.to_string()))?;
    form.push(("client_id".into(), client.id.clone()));
    form.push(("client_assertion_type".into(), ASSERTION_TYPE.into()));
    form.push(("client_assertion".into(), token));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(auth: ClientAuth) -> Client {
        Client { id: "my app".into(), secret: Some("s:3/cret".into()), auth, key: None, alg: None }
    }

    fn run(c: &Client) -> (reqwest::Request, Vec<(String, String)>) {
        let mut form = Vec::new();
        let req = reqwest::Client::new().post("http://idp.test/token");
        let req = apply(c, c.auth, "http://idp.test/token", 1000, req, &mut form).expect("apply");
        (req.build().expect("request"), form)
    }

    #[test]
    fn basic_form_encodes_before_base64() {
        let (req, form) = run(&client(ClientAuth::SecretBasic));
        let h = req.headers()["authorization"].to_str().expect("ascii");
        let decoded = STANDARD.decode(h.trim_start_matches("Basic ")).expect("b64");
        assert_eq!(decoded, b"my+app:s%3A3%2Fcret");
        assert!(form.is_empty());
    }

    #[test]
    fn post_and_none_put_fields_in_the_body() {
        let (_, form) = run(&client(ClientAuth::SecretPost));
        assert_eq!(form, [("client_id".into(), "my app".into()), ("client_secret".into(), "s:3/cret".into())]);
        let (_, form) = run(&client(ClientAuth::None));
        assert_eq!(form, [("client_id".to_string(), "my app".to_string())]);
    }

    #[test]
    fn secret_jwt_assertion_verifies_with_the_secret() {
        let (_, form) = run(&client(ClientAuth::SecretJwt));
        let assertion = &form.iter().find(|(k, _)| k == "client_assertion").expect("assertion").1;
        let keys = gatehouse_jose::KeySet::from_keys([
            gatehouse_jose::Jwk::from_hmac_secret(b"s:3/cret", None, None).expect("jwk")
        ]);
        let policy = gatehouse_jose::Policy { enable_hs_signatures: true, ..Default::default() };
        let v = gatehouse_jose::verify(assertion, &keys, &policy).expect("verifies");
        assert_eq!(v.claims["iss"], "my app");
        assert_eq!(v.claims["aud"], "http://idp.test/token");
        assert_eq!(v.claims["exp"], 1060);
    }

    #[test]
    fn missing_secret_or_key_is_an_error() {
        let mut c = client(ClientAuth::SecretBasic);
        c.secret = None;
        let mut form = Vec::new();
        let req = reqwest::Client::new().post("http://x");
        assert!(apply(&c, ClientAuth::SecretBasic, "a", 0, req, &mut form).is_err());
        let req = reqwest::Client::new().post("http://x");
        assert!(apply(&c, ClientAuth::PrivateKeyJwt, "a", 0, req, &mut form).is_err());
    }
}
