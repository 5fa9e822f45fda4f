//! The node's own key set (Kong's `oic_jwks`): generated once, stored, published as a public JWKS
//! at the Admin API's `/openid-connect/jwks`, and used to sign `private_key_jwt` client
//! assertions for clients without a `client_jwk`.
//!
//! One key per family: RSA 2048 for `RS256`, P-256, P-384 and P-521 for `ES256`/`ES384`/`ES512`,
//! Ed25519 for `EdDSA`. A client whose `client_alg` has no key of its own here (`RS384`, `PS256`,
//! ...) gets the `RS256` key, as Kong falls back to its `RS256` key. Each key's `kid` is its
//! RFC 7638 thumbprint, so an identity provider can tell them apart after a rotation.
//!
//! The stored form is JSON holding each key's algorithm, `kid` and unencrypted PKCS#8 (base64url):
//! it is the private key set, and lives only in the node's private store.

use crate::Algorithm;
use crate::sign::{SignError, SigningKey};
use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::fmt;

/// The algorithms the set holds a key for, the first being the fallback.
const ALGORITHMS: [Algorithm; 5] =
    [Algorithm::Rs256, Algorithm::Es256, Algorithm::Es384, Algorithm::Es512, Algorithm::EdDsa];

/// Marks the stored form, so a later layout can be told apart.
const FORMAT: &str = "gatehouse-own-keys-v1";

/// Why a stored key set could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OwnKeysError {
    /// Not the JSON this module writes.
    #[error("stored key set is malformed: {0}")]
    Malformed(&'static str),
    /// A key did not load.
    #[error("stored key set: {0}")]
    Key(#[from] SignError),
}

/// The node's private key set.
#[derive(Clone)]
pub struct OwnKeys {
    keys: Vec<SigningKey>,
}

impl fmt::Debug for OwnKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.keys.iter().map(|k| (k.algorithm(), k.kid()))).finish()
    }
}

impl OwnKeys {
    /// A fresh set: one new key per algorithm, each with its thumbprint as `kid`.
    pub fn generate() -> Result<OwnKeys, SignError> {
        let mut keys = Vec::with_capacity(ALGORITHMS.len());
        for alg in ALGORITHMS {
            let key = SigningKey::generate(alg)?;
            let kid = key.public_jwk().as_ref().and_then(thumbprint).ok_or(SignError::Crypto)?;
            keys.push(key.with_kid(kid));
        }
        Ok(OwnKeys { keys })
    }

    /// Reads the form [`OwnKeys::to_stored`] wrote.
    pub fn from_stored(text: &str) -> Result<OwnKeys, OwnKeysError> {
        let v: Value = serde_json::from_str(text).map_err(|_| OwnKeysError::Malformed("not json"))?;
        if v.get("format").and_then(Value::as_str) != Some(FORMAT) {
            return Err(OwnKeysError::Malformed("unknown format"));
        }
        let list = v.get("keys").and_then(Value::as_array).ok_or(OwnKeysError::Malformed("no keys"))?;
        let mut keys = Vec::with_capacity(list.len());
        for k in list {
            let field = |name| k.get(name).and_then(Value::as_str).ok_or(OwnKeysError::Malformed("missing field"));
            let alg = Algorithm::from_name(field("alg")?).ok_or(OwnKeysError::Malformed("unknown alg"))?;
            let der = URL_SAFE_NO_PAD.decode(field("pkcs8")?).map_err(|_| OwnKeysError::Malformed("bad base64"))?;
            keys.push(SigningKey::from_pkcs8(alg, &der)?.with_kid(field("kid")?));
        }
        if keys.is_empty() {
            return Err(OwnKeysError::Malformed("no keys"));
        }
        Ok(OwnKeys { keys })
    }

    /// The private set as JSON, for the store only.
    pub fn to_stored(&self) -> Result<String, SignError> {
        let mut list = Vec::with_capacity(self.keys.len());
        for k in &self.keys {
            list.push(json!({
                "alg": k.algorithm().as_str(),
                "kid": k.kid(),
                "pkcs8": URL_SAFE_NO_PAD.encode(k.to_pkcs8()?),
            }));
        }
        Ok(json!({"format": FORMAT, "keys": list}).to_string())
    }

    /// The public JWKS: `{"keys": [...]}`, no private parts.
    pub fn public_jwks(&self) -> Value {
        json!({"keys": self.keys.iter().filter_map(SigningKey::public_jwk).collect::<Vec<_>>()})
    }

    /// The key for `alg`, else the `RS256` key (Kong's fallback), else the first.
    pub fn for_alg(&self, alg: Option<Algorithm>) -> Option<SigningKey> {
        let find = |a| self.keys.iter().find(|k| k.algorithm() == a);
        alg.and_then(find).or_else(|| find(Algorithm::Rs256)).or_else(|| self.keys.first()).cloned()
    }
}

/// The RFC 7638 thumbprint (SHA-256, base64url) of a public JWK: the hash of its required
/// members in lexicographic order, without whitespace. `None` for a key type it does not know.
pub fn thumbprint(jwk: &Value) -> Option<String> {
    let s = |name| jwk.get(name).and_then(Value::as_str);
    // serde_json writes strings with RFC 8259 escaping; the members are base64url or fixed names.
    let canonical = match s("kty")? {
        "RSA" => format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, json!(s("e")?), json!(s("n")?)),
        "EC" => format!(r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#, json!(s("crv")?), json!(s("x")?), json!(s("y")?)),
        "OKP" => format!(r#"{{"crv":{},"kty":"OKP","x":{}}}"#, json!(s("crv")?), json!(s("x")?)),
        _ => return None,
    };
    Some(URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::sign_jwt;
    use crate::{KeySet, Policy, verify};

    #[test]
    fn rfc7638_example_thumbprint() {
        // RFC 7638 §3.1.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(thumbprint(&jwk).as_deref(), Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"));
        assert_eq!(thumbprint(&json!({"kty": "oct", "k": "x"})), None);
    }

    #[test]
    fn a_set_survives_its_stored_form_and_signs_for_each_algorithm() {
        let keys = OwnKeys::generate().expect("generates");
        let back = OwnKeys::from_stored(&keys.to_stored().expect("stores")).expect("loads");
        assert_eq!(back.public_jwks(), keys.public_jwks());
        let public = KeySet::from_jwks(keys.public_jwks()).expect("a jwks");
        assert_eq!(public.len(), 5);
        for alg in ALGORITHMS {
            let key = back.for_alg(Some(alg)).expect("a key");
            assert_eq!(key.algorithm(), alg);
            let token = sign_jwt(&json!({}), &json!({"sub": "gw"}), &key).expect("signs");
            assert!(verify(&token, &public, &Policy::default()).is_ok(), "{alg:?}");
        }
        // No key of its own: Kong's RS256 fallback.
        assert_eq!(back.for_alg(Some(Algorithm::Ps256)).map(|k| k.algorithm()), Some(Algorithm::Rs256));
        assert_eq!(back.for_alg(None).map(|k| k.algorithm()), Some(Algorithm::Rs256));
    }

    #[test]
    fn public_jwks_holds_no_private_parts() {
        let jwks = OwnKeys::generate().expect("generates").public_jwks();
        for k in jwks["keys"].as_array().expect("keys") {
            for private in ["d", "p", "q", "dp", "dq", "qi", "k", "pkcs8"] {
                assert!(k.get(private).is_none(), "{private} in {k}");
            }
            assert_eq!(k["kid"].as_str(), thumbprint(k).as_deref());
        }
    }

    #[test]
    fn bad_stored_forms_are_errors_not_panics() {
        for text in [
            "",
            "[]",
            "{}",
            r#"{"format":"other","keys":[]}"#,
            r#"{"format":"gatehouse-own-keys-v1","keys":[]}"#,
            r#"{"format":"gatehouse-own-keys-v1","keys":[{"alg":"RS256","kid":"a","pkcs8":"!!"}]}"#,
            r#"{"format":"gatehouse-own-keys-v1","keys":[{"alg":"RS256","kid":"a","pkcs8":"AAAA"}]}"#,
            r#"{"format":"gatehouse-own-keys-v1","keys":[{"alg":"XX1","kid":"a","pkcs8":"AAAA"}]}"#,
            r#"{"format":"gatehouse-own-keys-v1","keys":[{"alg":"HS256","kid":"a","pkcs8":"AAAA"}]}"#,
        ] {
            assert!(OwnKeys::from_stored(text).is_err(), "{text}");
        }
    }
}
