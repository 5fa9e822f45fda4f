//! The provider's signing keys: one current RSA key (RS256) and one current EC key (ES256), plus
//! the keys they replaced, which stay published so tokens issued before a rotation still verify.

use gatehouse_jose::sign::{SignError, SigningKey};
use gatehouse_jose::{Algorithm, KeySet};
use serde_json::{Value, json};

use super::util::new_kid;

/// An immutable set of keys. Rotation builds a new one; readers clone the `Arc` and never hold
/// the lock while signing.
pub(crate) struct KeyRing {
    /// Signs access tokens, ID tokens and signed introspection/userinfo answers.
    pub rsa: SigningKey,
    /// The current EC key, for `/_dev/mint` with `key: "ec"`.
    pub ec: SigningKey,
    /// Every published key, current ones first.
    published: Vec<SigningKey>,
    jwks: Value,
    keyset: KeySet,
}

/// A new current pair, made off the async threads (RSA generation takes a while).
pub(crate) struct KeyPair {
    rsa: SigningKey,
    ec: SigningKey,
}

impl KeyPair {
    /// Generates an RSA 2048 and a P-256 key with fresh kids.
    pub fn generate() -> Result<KeyPair, SignError> {
        Ok(KeyPair {
            rsa: SigningKey::generate(Algorithm::Rs256)?.with_kid(new_kid()),
            ec: SigningKey::generate(Algorithm::Es256)?.with_kid(new_kid()),
        })
    }
}

impl KeyRing {
    /// The ring with only `pair` published.
    pub fn new(pair: KeyPair) -> KeyRing {
        KeyRing::build(pair, Vec::new())
    }

    /// The ring after a rotation to `pair`: the old keys stay published unless `drop_old`.
    pub fn rotated(&self, pair: KeyPair, drop_old: bool) -> KeyRing {
        KeyRing::build(pair, if drop_old { Vec::new() } else { self.published.clone() })
    }

    /// The ring with the old keys a rotation kept removed: only the current pair published.
    pub fn retired(&self) -> KeyRing {
        KeyRing::build(KeyPair { rsa: self.rsa.clone(), ec: self.ec.clone() }, Vec::new())
    }

    fn build(pair: KeyPair, older: Vec<SigningKey>) -> KeyRing {
        let mut published = vec![pair.rsa.clone(), pair.ec.clone()];
        published.extend(older);
        let keys: Vec<Value> = published.iter().filter_map(SigningKey::public_jwk).collect();
        let jwks = json!({ "keys": keys });
        // Our own JWKs always parse; an empty set would only make verification fail, not panic.
        let keyset = KeySet::from_jwks(jwks.clone()).unwrap_or_default();
        KeyRing { rsa: pair.rsa, ec: pair.ec, published, jwks, keyset }
    }

    /// The public JWKS document.
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    /// The published keys, ready to verify our own tokens.
    pub fn keyset(&self) -> &KeySet {
        &self.keyset
    }

    /// The published kids, current ones first.
    pub fn kids(&self) -> Vec<String> {
        self.published.iter().filter_map(|k| k.kid().map(str::to_owned)).collect()
    }
}

/// A fresh key for `alg` that is not published anywhere, with a kid of the usual shape.
pub(crate) fn foreign_key(alg: Algorithm) -> Result<SigningKey, SignError> {
    Ok(SigningKey::generate(alg)?.with_kid(new_kid()))
}
