//! Issuing signed JWTs: for the development OpenID Provider and for tests.
//!
//! The gateway itself only verifies. This module exists so the dev OP (`gatehouse-devtools`) can
//! issue real, correctly signed ID and access tokens with generated keys and publish the matching
//! public JWKS, and so tests anywhere in the workspace can mint tokens without a third-party IdP.
//! It is not tuned for speed and keeps private keys in memory as aws-lc-rs key pairs.
//!
//! ```
//! use gatehouse_jose::{self as jose, Algorithm, KeySet, Policy, sign::{SigningKey, sign_jwt}};
//! use serde_json::json;
//!
//! let key = SigningKey::generate(Algorithm::Es256).unwrap().with_kid("k1");
//! let token = sign_jwt(&json!({"typ": "JWT"}), &json!({"sub": "alice"}), &key).unwrap();
//! let keys = KeySet::from_jwks(json!({ "keys": [key.public_jwk().unwrap()] })).unwrap();
//! let verified = jose::verify(&token, &keys, &Policy::default()).unwrap();
//! assert_eq!(verified.claims["sub"], "alice");
//! ```

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{self, SystemRandom};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::Algorithm;

/// Why a key could not be made or a token could not be signed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The algorithm can't be used with this kind of key (e.g. ES256 with an RSA key).
    #[error("algorithm {0} does not fit the signing key")]
    AlgorithmMismatch(Algorithm),
    /// The header names an `alg` other than the key's.
    #[error("header alg does not match the signing key's algorithm")]
    HeaderAlgorithm,
    /// The header or the claims are not JSON objects.
    #[error("header and claims must be json objects")]
    NotAnObject,
    /// An HMAC secret was empty.
    #[error("hmac secret must not be empty")]
    EmptySecret,
    /// A PKCS#8 export was asked of an HMAC key.
    #[error("hmac keys have no pkcs#8 form")]
    NotAsymmetric,
    /// aws-lc-rs refused the private key.
    #[error("key rejected: {0}")]
    Rejected(&'static str),
    /// Key generation, export or signing failed inside aws-lc-rs.
    #[error("crypto operation failed")]
    Crypto,
}

impl From<aws_lc_rs::error::Unspecified> for SignError {
    fn from(_: aws_lc_rs::error::Unspecified) -> Self {
        SignError::Crypto
    }
}

impl From<aws_lc_rs::error::KeyRejected> for SignError {
    fn from(e: aws_lc_rs::error::KeyRejected) -> Self {
        SignError::Rejected(e.description_())
    }
}

pub(crate) enum Material {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Hmac(Box<[u8]>),
}

/// A private key bound to one algorithm, with an optional `kid`.
///
/// Cheap to clone (the key pair is shared). An RSA key can be rebound to any `RS*`/`PS*`
/// algorithm and an HMAC secret to any `HS*` with [`SigningKey::with_algorithm`].
#[derive(Clone)]
pub struct SigningKey {
    alg: Algorithm,
    kid: Option<String>,
    material: Arc<Material>,
}

pub(crate) fn ecdsa_signing(alg: Algorithm) -> Option<&'static signature::EcdsaSigningAlgorithm> {
    Some(match alg {
        Algorithm::Es256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        Algorithm::Es384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        Algorithm::Es512 => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
        _ => return None,
    })
}

fn rsa_encoding(alg: Algorithm) -> Option<&'static dyn signature::RsaEncoding> {
    Some(match alg {
        Algorithm::Rs256 => &signature::RSA_PKCS1_SHA256,
        Algorithm::Rs384 => &signature::RSA_PKCS1_SHA384,
        Algorithm::Rs512 => &signature::RSA_PKCS1_SHA512,
        Algorithm::Ps256 => &signature::RSA_PSS_SHA256,
        Algorithm::Ps384 => &signature::RSA_PSS_SHA384,
        Algorithm::Ps512 => &signature::RSA_PSS_SHA512,
        _ => return None,
    })
}

fn hmac_algorithm(alg: Algorithm) -> Option<hmac::Algorithm> {
    Some(match alg {
        Algorithm::Hs256 => hmac::HMAC_SHA256,
        Algorithm::Hs384 => hmac::HMAC_SHA384,
        Algorithm::Hs512 => hmac::HMAC_SHA512,
        _ => return None,
    })
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl SigningKey {
    /// Generates a fresh key for `alg`: RSA 2048 for `RS*`/`PS*`, the matching NIST curve for
    /// `ES*`, Ed25519 for `EdDSA`, and a random secret as long as the hash for `HS*`.
    pub fn generate(alg: Algorithm) -> Result<SigningKey, SignError> {
        let material = if alg.is_rsa() {
            Material::Rsa(RsaKeyPair::generate(KeySize::Rsa2048)?)
        } else if let Some(curve) = ecdsa_signing(alg) {
            Material::Ec(EcdsaKeyPair::generate(curve)?)
        } else if alg == Algorithm::EdDsa {
            Material::Ed25519(Ed25519KeyPair::generate()?)
        } else {
            let len = hmac_algorithm(alg).ok_or(SignError::AlgorithmMismatch(alg))?.digest_algorithm().output_len();
            let mut secret = vec![0u8; len];
            rand::fill(&mut secret)?;
            Material::Hmac(secret.into_boxed_slice())
        };
        Ok(SigningKey { alg, kid: None, material: Arc::new(material) })
    }

    /// Loads an unencrypted PKCS#8 private key (as written by [`SigningKey::to_pkcs8`] or
    /// `openssl genpkey`) for `alg`, so the dev OP can keep its keys across restarts.
    pub fn from_pkcs8(alg: Algorithm, der: &[u8]) -> Result<SigningKey, SignError> {
        let material = if alg.is_rsa() {
            Material::Rsa(RsaKeyPair::from_pkcs8(der)?)
        } else if let Some(curve) = ecdsa_signing(alg) {
            Material::Ec(EcdsaKeyPair::from_pkcs8(curve, der)?)
        } else if alg == Algorithm::EdDsa {
            Material::Ed25519(Ed25519KeyPair::from_pkcs8(der)?)
        } else {
            return Err(SignError::AlgorithmMismatch(alg));
        };
        Ok(SigningKey { alg, kid: None, material: Arc::new(material) })
    }

    /// Wraps key material for `alg`, checking that they fit.
    pub(crate) fn from_parts(alg: Algorithm, material: Material) -> Result<SigningKey, SignError> {
        let fits = match &material {
            Material::Rsa(_) => alg.is_rsa(),
            Material::Ec(_) => ecdsa_signing(alg).is_some(),
            Material::Ed25519(_) => alg == Algorithm::EdDsa,
            Material::Hmac(_) => alg.is_hmac(),
        };
        if !fits {
            return Err(SignError::AlgorithmMismatch(alg));
        }
        Ok(SigningKey { alg, kid: None, material: Arc::new(material) })
    }

    pub(crate) fn material(&self) -> &Material {
        &self.material
    }

    /// An HMAC key for an `HS*` algorithm from a shared secret (e.g. a client secret).
    pub fn hmac(alg: Algorithm, secret: &[u8]) -> Result<SigningKey, SignError> {
        if !alg.is_hmac() {
            return Err(SignError::AlgorithmMismatch(alg));
        }
        if secret.is_empty() {
            return Err(SignError::EmptySecret);
        }
        Ok(SigningKey { alg, kid: None, material: Arc::new(Material::Hmac(secret.into())) })
    }

    /// Sets the `kid` that [`sign_jwt`] puts in headers and [`SigningKey::public_jwk`] publishes.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> SigningKey {
        self.kid = Some(kid.into());
        self
    }

    /// The same key bound to another algorithm of its family (RSA: `RS*`/`PS*`; HMAC: `HS*`).
    pub fn with_algorithm(mut self, alg: Algorithm) -> Result<SigningKey, SignError> {
        let fits = match &*self.material {
            Material::Rsa(_) => alg.is_rsa(),
            Material::Hmac(_) => alg.is_hmac(),
            Material::Ec(_) | Material::Ed25519(_) => alg == self.alg,
        };
        if !fits {
            return Err(SignError::AlgorithmMismatch(alg));
        }
        self.alg = alg;
        Ok(self)
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The key id, if set.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Signs `message` (a JWS signing input) and returns the raw JWS signature bytes: PKCS#1 or
    /// PSS for RSA, fixed-width `r || s` for ECDSA, 64 bytes for Ed25519, the tag for HMAC.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match &*self.material {
            Material::Rsa(key) => {
                let encoding = rsa_encoding(self.alg).ok_or(SignError::AlgorithmMismatch(self.alg))?;
                let mut sig = vec![0u8; key.public_modulus_len()];
                key.sign(encoding, &SystemRandom::new(), message, &mut sig)?;
                Ok(sig)
            }
            Material::Ec(key) => Ok(key.sign(&SystemRandom::new(), message)?.as_ref().to_vec()),
            Material::Ed25519(key) => Ok(key.sign(message).as_ref().to_vec()),
            Material::Hmac(secret) => {
                let alg = hmac_algorithm(self.alg).ok_or(SignError::AlgorithmMismatch(self.alg))?;
                Ok(hmac::sign(&hmac::Key::new(alg, secret), message).as_ref().to_vec())
            }
        }
    }

    /// The public JWK to publish in the dev OP's JWKS: `kty`, `kid` (when set), `use: "sig"`,
    /// `alg`, and `n`/`e`, `crv`/`x`/`y` or `crv`/`x`. `None` for HMAC keys, whose only form is the
    /// secret itself and which must never be published.
    pub fn public_jwk(&self) -> Option<Value> {
        let mut jwk = Map::new();
        let kty = match &*self.material {
            Material::Rsa(_) => "RSA",
            Material::Ec(_) => "EC",
            Material::Ed25519(_) => "OKP",
            Material::Hmac(_) => return None,
        };
        jwk.insert("kty".into(), kty.into());
        if let Some(kid) = &self.kid {
            jwk.insert("kid".into(), kid.as_str().into());
        }
        jwk.insert("use".into(), "sig".into());
        jwk.insert("alg".into(), self.alg.as_str().into());
        match &*self.material {
            Material::Rsa(key) => {
                let public = key.public_key();
                jwk.insert("n".into(), b64(public.modulus().big_endian_without_leading_zero()).into());
                jwk.insert("e".into(), b64(public.exponent().big_endian_without_leading_zero()).into());
            }
            Material::Ec(key) => {
                // SEC1 uncompressed: 0x04 || x || y, both coordinates full width.
                let point = key.public_key().as_ref();
                let len = (point.len() - 1) / 2;
                let crv = match self.alg {
                    Algorithm::Es256 => "P-256",
                    Algorithm::Es384 => "P-384",
                    _ => "P-521",
                };
                jwk.insert("crv".into(), crv.into());
                jwk.insert("x".into(), b64(&point[1..1 + len]).into());
                jwk.insert("y".into(), b64(&point[1 + len..]).into());
            }
            Material::Ed25519(key) => {
                jwk.insert("crv".into(), "Ed25519".into());
                jwk.insert("x".into(), b64(key.public_key().as_ref()).into());
            }
            Material::Hmac(_) => return None,
        }
        Some(Value::Object(jwk))
    }

    /// The private key as unencrypted PKCS#8 DER, for [`SigningKey::from_pkcs8`].
    ///
    /// # Security Warning
    /// This is the private key. Write it only where the dev OP keeps its own state.
    pub fn to_pkcs8(&self) -> Result<Vec<u8>, SignError> {
        Ok(match &*self.material {
            Material::Rsa(key) => key.as_der()?.as_ref().to_vec(),
            Material::Ec(key) => key.to_pkcs8v1()?.as_ref().to_vec(),
            Material::Ed25519(key) => key.to_pkcs8()?.as_ref().to_vec(),
            Material::Hmac(_) => return Err(SignError::NotAsymmetric),
        })
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("alg", &self.alg).field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// Signs a JWT in compact form: `b64(header).b64(claims).b64(signature)`.
///
/// `header` is used as given, except that `alg` is filled in from the key when absent (and must
/// equal the key's algorithm when present) and `kid` is filled in when absent and the key has
/// one. `typ` is left to the caller (`JWT` for ID tokens, `at+jwt` for RFC 9068 access tokens).
pub fn sign_jwt(header: &Value, claims: &Value, key: &SigningKey) -> Result<String, SignError> {
    let mut header = header.as_object().ok_or(SignError::NotAnObject)?.clone();
    if !claims.is_object() {
        return Err(SignError::NotAnObject);
    }
    match header.get("alg") {
        None => {
            header.insert("alg".into(), key.alg.as_str().into());
        }
        Some(alg) if alg.as_str() == Some(key.alg.as_str()) => {}
        Some(_) => return Err(SignError::HeaderAlgorithm),
    }
    if let Some(kid) = &key.kid
        && !header.contains_key("kid")
    {
        header.insert("kid".into(), kid.as_str().into());
    }
    // Serializing a `Value` can't fail: its map keys are strings.
    let header = serde_json::to_vec(&header).map_err(|_| SignError::NotAnObject)?;
    let claims = serde_json::to_vec(claims).map_err(|_| SignError::NotAnObject)?;
    let mut token = String::with_capacity((header.len() + claims.len()) * 4 / 3 + 400);
    URL_SAFE_NO_PAD.encode_string(&header, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&claims, &mut token);
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn header_gets_alg_and_kid_from_the_key() {
        let key = SigningKey::generate(Algorithm::EdDsa).unwrap().with_kid("k");
        let token = sign_jwt(&json!({"typ": "JWT"}), &json!({}), &key).unwrap();
        let header = token.split('.').next().unwrap();
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(header, json!({"typ": "JWT", "alg": "EdDSA", "kid": "k"}));
    }

    #[test]
    fn header_alg_other_than_the_keys_is_refused() {
        let key = SigningKey::generate(Algorithm::Es256).unwrap();
        assert_eq!(sign_jwt(&json!({"alg": "ES384"}), &json!({}), &key), Err(SignError::HeaderAlgorithm));
        assert_eq!(sign_jwt(&json!([]), &json!({}), &key), Err(SignError::NotAnObject));
        assert_eq!(sign_jwt(&json!({}), &json!("x"), &key), Err(SignError::NotAnObject));
    }

    #[test]
    fn algorithm_can_only_be_rebound_within_the_key_family() {
        let ec = SigningKey::generate(Algorithm::Es256).unwrap();
        assert_eq!(
            ec.clone().with_algorithm(Algorithm::Es384).unwrap_err(),
            SignError::AlgorithmMismatch(Algorithm::Es384)
        );
        assert!(ec.with_algorithm(Algorithm::Es256).is_ok());
        let hs = SigningKey::hmac(Algorithm::Hs256, b"secret").unwrap();
        assert_eq!(hs.with_algorithm(Algorithm::Hs512).unwrap().algorithm(), Algorithm::Hs512);
        assert_eq!(
            SigningKey::hmac(Algorithm::Rs256, b"x").unwrap_err(),
            SignError::AlgorithmMismatch(Algorithm::Rs256)
        );
        assert_eq!(SigningKey::hmac(Algorithm::Hs256, b"").unwrap_err(), SignError::EmptySecret);
    }

    #[test]
    fn hmac_keys_have_no_public_jwk() {
        let key = SigningKey::generate(Algorithm::Hs384).unwrap();
        assert_eq!(key.public_jwk(), None);
        assert_eq!(key.to_pkcs8(), Err(SignError::NotAsymmetric));
    }

    #[test]
    fn pkcs8_round_trip_keeps_the_public_key() {
        for alg in [Algorithm::Es256, Algorithm::Es512, Algorithm::EdDsa] {
            let key = SigningKey::generate(alg).unwrap();
            let again = SigningKey::from_pkcs8(alg, &key.to_pkcs8().unwrap()).unwrap();
            assert_eq!(key.public_jwk(), again.public_jwk(), "{alg}");
        }
    }

    #[test]
    fn ec_public_jwk_has_full_width_coordinates() {
        let key = SigningKey::generate(Algorithm::Es512).unwrap();
        let jwk = key.public_jwk().unwrap();
        assert_eq!(jwk["crv"], "P-521");
        assert_eq!(URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap().len(), 66);
        assert_eq!(URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap().len(), 66);
    }

    #[test]
    fn debug_output_leaves_out_the_private_key() {
        let key = SigningKey::hmac(Algorithm::Hs256, b"hunter2").unwrap();
        assert!(!format!("{key:?}").contains("hunter2"));
    }
}
