//! JSON Web Keys (RFC 7517) parsed once into ready-to-use verifying keys.
//!
//! A JWKS document becomes a [`KeySet`]: every usable key is parsed into its aws-lc-rs form
//! exactly once, here, so that verifying a token never touches key material again. Keys that
//! can't be used for signatures (unknown `kty`, unsupported curve, `use: "enc"`, broken key
//! material) are skipped and reported through [`KeySet::skipped`], rather than failing the whole
//! set: an IdP that adds an encryption key or a post-quantum key must not lock everyone out.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

use super::Algorithm;

/// Base64url for JWK members. Unlike the token segments, key members are accepted with or
/// without padding: some IdPs pad `n`, and there is no malleability concern in a key we were
/// handed out of band.
const B64_KEY: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// RSA keys below this size are refused when the JWKS is loaded (aws-lc-rs would refuse them at
/// every verify anyway; refusing early makes the cause visible).
const RSA_MIN_BITS: usize = 2048;
/// The largest RSA modulus aws-lc-rs verifies with.
const RSA_MAX_BITS: usize = 8192;

/// The `kty` of a JWK.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyType {
    /// `RSA`.
    Rsa,
    /// `EC` (NIST curves).
    Ec,
    /// `OKP` (RFC 8037 octet key pairs; only Ed25519 here).
    Okp,
    /// `oct`: a symmetric (HMAC) secret.
    Oct,
}

impl KeyType {
    /// The registered `kty` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyType::Rsa => "RSA",
            KeyType::Ec => "EC",
            KeyType::Okp => "OKP",
            KeyType::Oct => "oct",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `crv` of an `EC` or `OKP` JWK.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Curve {
    /// `P-256`, used by ES256.
    P256,
    /// `P-384`, used by ES384.
    P384,
    /// `P-521`, used by ES512.
    P521,
    /// `Ed25519`, used by EdDSA.
    Ed25519,
}

impl Curve {
    /// The registered `crv` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
            Curve::Ed25519 => "Ed25519",
        }
    }

    /// Length in bytes of one field element (an EC coordinate, or an Ed25519 public key).
    const fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 | Curve::Ed25519 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why one JWK could not be turned into a verifying key.
///
/// The messages name the offending value: they come from the IdP's JWKS, not from a client, and
/// are meant for logs and the admin API.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwkError {
    /// The entry is not a JSON object.
    #[error("jwk is not a json object")]
    NotAnObject,
    /// A required member is absent.
    #[error("missing jwk parameter: {0}")]
    MissingParameter(&'static str),
    /// A member has the wrong JSON type or is not valid base64url.
    #[error("invalid jwk parameter: {0}")]
    InvalidParameter(&'static str),
    /// `kty` is not one of `RSA`, `EC`, `OKP`, `oct`.
    #[error("unsupported key type: {0}")]
    UnsupportedKeyType(String),
    /// `crv` is not supported for this `kty` (e.g. `secp256k1`, `Ed448`, `X25519`).
    #[error("unsupported curve: {0}")]
    UnsupportedCurve(String),
    /// `alg` names an algorithm this module does not verify (e.g. `RSA-OAEP`, `RS1`).
    #[error("unsupported key algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// `alg` is supported but can't be used with this key's type or curve.
    #[error("key algorithm {0} does not fit the key type")]
    AlgorithmMismatch(Algorithm),
    /// `use` is not `sig`, or `key_ops` lacks `verify`.
    #[error("key is not for signature verification")]
    NotForSignatures,
    /// The RSA modulus is outside 2048..=8192 bits.
    #[error("rsa key size not supported: {0} bits")]
    RsaKeySize(usize),
    /// aws-lc-rs refused the key material (e.g. a point not on the curve).
    #[error("key rejected: {0}")]
    Rejected(&'static str),
}

/// Why a whole JWKS document could not be read. Individual bad keys never cause this; see
/// [`KeySet::skipped`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The document is not JSON.
    #[error("jwks is not valid json")]
    Json(#[source] serde_json::Error),
    /// The document has no `keys` array.
    #[error("jwks has no keys array")]
    MissingKeys,
}

/// The verifying form of a key, built once.
enum Material {
    /// One parsed key per RSA algorithm the JWK may be used with (`RS256`..`PS512`, indexed by
    /// [`Algorithm::index`]). aws-lc-rs binds a `ParsedPublicKey` to one algorithm, so a JWK
    /// without `alg` gets all six; one with `alg` gets only that slot.
    Rsa(Box<[Option<ParsedPublicKey>; 6]>),
    /// An EC key; the curve fixes the algorithm.
    Ec(Algorithm, ParsedPublicKey),
    /// An Ed25519 key.
    Ed25519(ParsedPublicKey),
    /// One HMAC key per `HS*` algorithm the JWK may be used with, indexed from `HS256`.
    Hmac(Box<[Option<hmac::Key>; 3]>),
}

/// A reference to the one prepared key that checks a given algorithm.
pub(crate) enum Verifier<'a> {
    Public(&'a ParsedPublicKey),
    Hmac(&'a hmac::Key),
}

impl Verifier<'_> {
    /// Checks `signature` over `message`; HMAC tags are compared in constant time.
    #[inline]
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Verifier::Public(key) => key.verify_sig(message, signature).is_ok(),
            Verifier::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
        }
    }
}

/// One signature-verification key from a JWKS, with its verifying form prepared.
///
/// Keys are shared as `Arc<Jwk>`: [`Verified::key`](super::Verified) is the very key that
/// verified a token, so a later stage can forward it (see [`Jwk::json`]).
pub struct Jwk {
    kid: Option<String>,
    kty: KeyType,
    alg: Option<Algorithm>,
    key_use: Option<String>,
    crv: Option<Curve>,
    material: Material,
    json: Value,
}

impl Jwk {
    /// Parses one JWK object and prepares its verifying key.
    ///
    /// The JWK is refused when it is not usable for signature verification: see [`JwkError`].
    pub fn from_json(json: Value) -> Result<Jwk, JwkError> {
        let obj = json.as_object().ok_or(JwkError::NotAnObject)?;

        let kty = match str_member(obj, "kty")?.ok_or(JwkError::MissingParameter("kty"))? {
            "RSA" => KeyType::Rsa,
            "EC" => KeyType::Ec,
            "OKP" => KeyType::Okp,
            "oct" => KeyType::Oct,
            other => return Err(JwkError::UnsupportedKeyType(other.to_owned())),
        };
        let kid = str_member(obj, "kid")?.map(str::to_owned);
        let key_use = str_member(obj, "use")?.map(str::to_owned);
        if key_use.as_deref().is_some_and(|u| u != "sig") {
            return Err(JwkError::NotForSignatures);
        }
        if let Some(ops) = obj.get("key_ops") {
            let ops = ops.as_array().ok_or(JwkError::InvalidParameter("key_ops"))?;
            if !ops.iter().any(|op| op.as_str() == Some("verify")) {
                return Err(JwkError::NotForSignatures);
            }
        }
        let alg = match str_member(obj, "alg")? {
            None => None,
            Some(name) => {
                Some(Algorithm::from_name(name).ok_or_else(|| JwkError::UnsupportedAlgorithm(name.to_owned()))?)
            }
        };

        let (crv, material) = match kty {
            KeyType::Rsa => (None, rsa_material(obj, alg)?),
            KeyType::Ec => {
                let (crv, material) = ec_material(obj, alg)?;
                (Some(crv), material)
            }
            KeyType::Okp => (Some(Curve::Ed25519), okp_material(obj, alg)?),
            KeyType::Oct => {
                let secret = b64_member(obj, "k")?;
                (None, hmac_material(&secret, alg)?)
            }
        };

        Ok(Jwk { kid, kty, alg, key_use, crv, material, json })
    }

    /// Builds an `oct` key from a shared secret, e.g. the client secret Kong uses for `HS*`
    /// ID tokens.
    ///
    /// # Security Warning
    /// [`Jwk::json`] of the result contains the secret (as `k`).
    pub fn from_hmac_secret(secret: &[u8], kid: Option<&str>, alg: Option<Algorithm>) -> Result<Jwk, JwkError> {
        let mut obj = Map::new();
        obj.insert("kty".into(), "oct".into());
        if let Some(kid) = kid {
            obj.insert("kid".into(), kid.into());
        }
        if let Some(alg) = alg {
            obj.insert("alg".into(), alg.as_str().into());
        }
        obj.insert("k".into(), B64_KEY.encode(secret).into());
        let material = hmac_material(secret, alg)?;
        Ok(Jwk {
            kid: kid.map(str::to_owned),
            kty: KeyType::Oct,
            alg,
            key_use: None,
            crv: None,
            material,
            json: Value::Object(obj),
        })
    }

    /// The key id (`kid`), if the JWK has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The key type (`kty`).
    pub fn kty(&self) -> KeyType {
        self.kty
    }

    /// The algorithm the key is restricted to (`alg`), if the JWK names one.
    pub fn alg(&self) -> Option<Algorithm> {
        self.alg
    }

    /// The intended use (`use`); always `sig` or absent, since other uses are skipped.
    pub fn key_use(&self) -> Option<&str> {
        self.key_use.as_deref()
    }

    /// The curve (`crv`) of an `EC` or `OKP` key.
    pub fn crv(&self) -> Option<Curve> {
        self.crv
    }

    /// The JWK exactly as the JWKS had it, for forwarding "the key that verified the token".
    ///
    /// # Security Warning
    /// For an `oct` key this contains the shared secret, and a JWKS that (wrongly) publishes
    /// private RSA/EC members keeps them here too. Strip them before sending the key anywhere.
    pub fn json(&self) -> &Value {
        &self.json
    }

    /// Whether this key can verify a token signed with `alg`: its type and curve fit `alg`, and
    /// its own `alg`, if any, equals `alg`.
    pub fn fits(&self, alg: Algorithm) -> bool {
        self.verifier(alg).is_some()
    }

    /// The prepared key for `alg`, or `None` when the key does not fit `alg`.
    #[inline]
    pub(crate) fn verifier(&self, alg: Algorithm) -> Option<Verifier<'_>> {
        if self.alg.is_some_and(|own| own != alg) {
            return None;
        }
        match &self.material {
            Material::Rsa(keys) if alg.is_rsa() => {
                keys[alg.index() - Algorithm::Rs256.index()].as_ref().map(Verifier::Public)
            }
            Material::Ec(own, key) if *own == alg => Some(Verifier::Public(key)),
            Material::Ed25519(key) if alg == Algorithm::EdDsa => Some(Verifier::Public(key)),
            Material::Hmac(keys) if alg.is_hmac() => {
                keys[alg.index() - Algorithm::Hs256.index()].as_ref().map(Verifier::Hmac)
            }
            _ => None,
        }
    }
}

impl fmt::Debug for Jwk {
    // Deliberately leaves out the key material and the JSON: an `oct` key's JSON is a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("kty", &self.kty)
            .field("alg", &self.alg)
            .field("crv", &self.crv)
            .finish_non_exhaustive()
    }
}

/// A string member: `Ok(None)` when absent, an error when present with another JSON type.
fn str_member<'a>(obj: &'a Map<String, Value>, name: &'static str) -> Result<Option<&'a str>, JwkError> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(JwkError::InvalidParameter(name)),
    }
}

/// A required base64url member, decoded.
fn b64_member(obj: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>, JwkError> {
    let s = str_member(obj, name)?.ok_or(JwkError::MissingParameter(name))?;
    B64_KEY.decode(s).map_err(|_| JwkError::InvalidParameter(name))
}

fn rejected(e: aws_lc_rs::error::KeyRejected) -> JwkError {
    JwkError::Rejected(e.description_())
}

fn rsa_params(alg: Algorithm) -> Option<&'static signature::RsaParameters> {
    Some(match alg {
        Algorithm::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

fn rsa_material(obj: &Map<String, Value>, alg: Option<Algorithm>) -> Result<Material, JwkError> {
    if let Some(alg) = alg.filter(|a| !a.is_rsa()) {
        return Err(JwkError::AlgorithmMismatch(alg));
    }
    let n = b64_member(obj, "n")?;
    let e = b64_member(obj, "e")?;
    // aws-lc-rs wants big-endian integers without leading zeros; some encoders add a sign byte.
    let n = strip_leading_zeros(&n);
    let e = strip_leading_zeros(&e);
    if n.is_empty() {
        return Err(JwkError::InvalidParameter("n"));
    }
    if e.is_empty() {
        return Err(JwkError::InvalidParameter("e"));
    }
    let bits = n.len() * 8 - n[0].leading_zeros() as usize;
    if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
        return Err(JwkError::RsaKeySize(bits));
    }
    let components = RsaPublicKeyComponents { n, e };
    let mut keys: [Option<ParsedPublicKey>; 6] = Default::default();
    for (slot, each) in keys.iter_mut().zip(Algorithm::ALL) {
        if alg.is_none_or(|a| a == each)
            && let Some(params) = rsa_params(each)
        {
            *slot = Some(components.to_parsed_public_key(params).map_err(rejected)?);
        }
    }
    Ok(Material::Rsa(Box::new(keys)))
}

fn ec_material(obj: &Map<String, Value>, alg: Option<Algorithm>) -> Result<(Curve, Material), JwkError> {
    let crv_name = str_member(obj, "crv")?.ok_or(JwkError::MissingParameter("crv"))?;
    let (crv, own_alg, verification): (_, _, &'static signature::EcdsaVerificationAlgorithm) = match crv_name {
        "P-256" => (Curve::P256, Algorithm::Es256, &signature::ECDSA_P256_SHA256_FIXED),
        "P-384" => (Curve::P384, Algorithm::Es384, &signature::ECDSA_P384_SHA384_FIXED),
        "P-521" => (Curve::P521, Algorithm::Es512, &signature::ECDSA_P521_SHA512_FIXED),
        other => return Err(JwkError::UnsupportedCurve(other.to_owned())),
    };
    if let Some(alg) = alg.filter(|a| *a != own_alg) {
        return Err(JwkError::AlgorithmMismatch(alg));
    }
    let len = crv.coordinate_len();
    let x = b64_member(obj, "x")?;
    let y = b64_member(obj, "y")?;
    // RFC 7518 wants full-length coordinates; a shorter one only lost leading zeros, so pad it.
    if x.len() > len {
        return Err(JwkError::InvalidParameter("x"));
    }
    if y.len() > len {
        return Err(JwkError::InvalidParameter("y"));
    }
    let mut point = vec![0u8; 1 + 2 * len];
    point[0] = 0x04; // SEC1 uncompressed
    point[1 + len - x.len()..1 + len].copy_from_slice(&x);
    point[1 + 2 * len - y.len()..].copy_from_slice(&y);
    let key = ParsedPublicKey::new(verification, &point).map_err(rejected)?;
    Ok((crv, Material::Ec(own_alg, key)))
}

fn okp_material(obj: &Map<String, Value>, alg: Option<Algorithm>) -> Result<Material, JwkError> {
    match str_member(obj, "crv")?.ok_or(JwkError::MissingParameter("crv"))? {
        "Ed25519" => {}
        other => return Err(JwkError::UnsupportedCurve(other.to_owned())),
    }
    if let Some(alg) = alg.filter(|a| *a != Algorithm::EdDsa) {
        return Err(JwkError::AlgorithmMismatch(alg));
    }
    let x = b64_member(obj, "x")?;
    if x.len() != Curve::Ed25519.coordinate_len() {
        return Err(JwkError::InvalidParameter("x"));
    }
    let key = ParsedPublicKey::new(&signature::ED25519, &x).map_err(rejected)?;
    Ok(Material::Ed25519(key))
}

fn hmac_material(secret: &[u8], alg: Option<Algorithm>) -> Result<Material, JwkError> {
    if let Some(alg) = alg.filter(|a| !a.is_hmac()) {
        return Err(JwkError::AlgorithmMismatch(alg));
    }
    if secret.is_empty() {
        return Err(JwkError::InvalidParameter("k"));
    }
    let digests = [
        (Algorithm::Hs256, hmac::HMAC_SHA256),
        (Algorithm::Hs384, hmac::HMAC_SHA384),
        (Algorithm::Hs512, hmac::HMAC_SHA512),
    ];
    let keys = digests.map(|(each, digest)| alg.is_none_or(|a| a == each).then(|| hmac::Key::new(digest, secret)));
    Ok(Material::Hmac(Box::new(keys)))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// A JWK that was left out of a [`KeySet`], and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedKey {
    /// Position in the JWKS `keys` array.
    pub index: usize,
    /// The entry's `kid`, when it had a string one.
    pub kid: Option<String>,
    /// Why it was skipped.
    pub error: JwkError,
}

/// The verification keys of one issuer, ready for [`verify`](super::verify).
///
/// Lookup is by `kid` (a hash map) plus a list in JWKS order for tokens without a `kid`. Build it
/// once per JWKS fetch, off the request path, and share it (e.g. behind an `Arc`); it is
/// immutable and `Send + Sync`.
#[derive(Clone, Default)]
pub struct KeySet {
    by_kid: HashMap<String, Vec<Arc<Jwk>>>,
    all: Vec<Arc<Jwk>>,
    skipped: Vec<SkippedKey>,
}

impl KeySet {
    /// Parses a JWKS document (`{"keys":[...]}`) from bytes, e.g. an HTTP response body.
    pub fn from_jwks_slice(bytes: &[u8]) -> Result<KeySet, JwksError> {
        let value: Value = serde_json::from_slice(bytes).map_err(JwksError::Json)?;
        KeySet::from_jwks(value)
    }

    /// Parses a JWKS document already read as JSON. Unusable keys are skipped and listed in
    /// [`KeySet::skipped`]; only a document without a `keys` array is an error.
    pub fn from_jwks(value: Value) -> Result<KeySet, JwksError> {
        let Value::Object(mut obj) = value else {
            return Err(JwksError::MissingKeys);
        };
        let Some(Value::Array(entries)) = obj.remove("keys") else {
            return Err(JwksError::MissingKeys);
        };
        let mut set = KeySet::default();
        for (index, entry) in entries.into_iter().enumerate() {
            let kid = entry.get("kid").and_then(Value::as_str).map(str::to_owned);
            match Jwk::from_json(entry) {
                Ok(key) => set.push(key),
                Err(error) => set.skipped.push(SkippedKey { index, kid, error }),
            }
        }
        Ok(set)
    }

    /// Builds a set from keys already parsed, e.g. an `oct` key made from a client secret.
    pub fn from_keys<I: IntoIterator<Item = Jwk>>(keys: I) -> KeySet {
        let mut set = KeySet::default();
        for key in keys {
            set.push(key);
        }
        set
    }

    /// Adds a key. Keys sharing a `kid` are all kept, in insertion order (some IdPs publish the
    /// same `kid` once per algorithm).
    pub fn push(&mut self, key: impl Into<Arc<Jwk>>) {
        let key = key.into();
        if let Some(kid) = key.kid() {
            self.by_kid.entry(kid.to_owned()).or_default().push(Arc::clone(&key));
        }
        self.all.push(key);
    }

    /// The keys with this `kid` (usually one; empty when unknown).
    pub fn get(&self, kid: &str) -> &[Arc<Jwk>] {
        self.by_kid.get(kid).map_or(&[], Vec::as_slice)
    }

    /// Every key, in JWKS order.
    pub fn keys(&self) -> &[Arc<Jwk>] {
        &self.all
    }

    /// The keys that have no `kid`, in JWKS order.
    pub fn keys_without_kid(&self) -> impl Iterator<Item = &Arc<Jwk>> {
        self.all.iter().filter(|k| k.kid.is_none())
    }

    /// The JWKS entries that were left out, with the reason. Log them: a skipped key whose `kid`
    /// later shows up in a token will fail as [`VerifyError::UnknownKid`](super::VerifyError).
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether there is no usable key.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet").field("keys", &self.all).field("skipped", &self.skipped).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::SigningKey;
    use serde_json::json;

    #[track_caller]
    fn check_skipped(jwk: Value, expected: JwkError) {
        let set = KeySet::from_jwks(json!({ "keys": [jwk] })).unwrap();
        assert!(set.is_empty());
        assert_eq!(set.skipped().len(), 1);
        assert_eq!(set.skipped()[0].error, expected);
    }

    #[test]
    fn jwks_without_keys_array_is_an_error() {
        assert!(matches!(KeySet::from_jwks(json!({})), Err(JwksError::MissingKeys)));
        assert!(matches!(KeySet::from_jwks(json!({"keys": {}})), Err(JwksError::MissingKeys)));
        assert!(matches!(KeySet::from_jwks_slice(b"not json"), Err(JwksError::Json(_))));
    }

    #[test]
    fn each_supported_key_type_is_parsed_with_its_fields() {
        let ec = SigningKey::generate(Algorithm::Es384).unwrap().with_kid("ec");
        let ed = SigningKey::generate(Algorithm::EdDsa).unwrap().with_kid("ed");
        let mut ec_jwk = ec.public_jwk().unwrap();
        ec_jwk.as_object_mut().unwrap().remove("alg");
        let jwks = json!({ "keys": [
            ec_jwk,
            ed.public_jwk().unwrap(),
            { "kty": "oct", "kid": "hs", "k": "c2VjcmV0", "alg": "HS256" },
        ]});
        let set = KeySet::from_jwks(jwks).unwrap();
        assert_eq!(set.len(), 3);
        assert!(set.skipped().is_empty());

        let ec = &set.get("ec")[0];
        assert_eq!((ec.kty(), ec.crv(), ec.alg()), (KeyType::Ec, Some(Curve::P384), None));
        assert!(ec.fits(Algorithm::Es384));
        assert!(!ec.fits(Algorithm::Es256));

        let ed = &set.get("ed")[0];
        assert_eq!((ed.kty(), ed.crv(), ed.key_use()), (KeyType::Okp, Some(Curve::Ed25519), Some("sig")));
        assert!(ed.fits(Algorithm::EdDsa));

        let hs = &set.get("hs")[0];
        assert_eq!((hs.kty(), hs.alg()), (KeyType::Oct, Some(Algorithm::Hs256)));
        assert!(hs.fits(Algorithm::Hs256));
        assert!(!hs.fits(Algorithm::Hs512));
    }

    #[test]
    fn original_json_is_kept_verbatim() {
        let jwk = json!({ "kty": "oct", "kid": "a", "k": "c2VjcmV0", "x-custom": [1, 2] });
        let key = Jwk::from_json(jwk.clone()).unwrap();
        assert_eq!(key.json(), &jwk);
    }

    #[test]
    fn rsa_key_without_alg_fits_every_rsa_algorithm_and_nothing_else() {
        let rsa = SigningKey::generate(Algorithm::Rs256).unwrap();
        let mut jwk = rsa.public_jwk().unwrap();
        jwk.as_object_mut().unwrap().remove("alg");
        let key = Jwk::from_json(jwk).unwrap();
        for alg in Algorithm::ALL {
            assert_eq!(key.fits(alg), alg.is_rsa(), "{alg}");
        }
    }

    #[test]
    fn rsa_key_with_alg_fits_only_that_algorithm() {
        let rsa = SigningKey::generate(Algorithm::Ps384).unwrap();
        let key = Jwk::from_json(rsa.public_jwk().unwrap()).unwrap();
        assert_eq!(key.alg(), Some(Algorithm::Ps384));
        assert!(key.fits(Algorithm::Ps384));
        assert!(!key.fits(Algorithm::Rs256));
    }

    #[test]
    fn unusable_keys_are_skipped_and_reported_without_failing_the_set() {
        let ed = SigningKey::generate(Algorithm::EdDsa).unwrap().with_kid("good");
        let jwks = json!({ "keys": [
            { "kty": "EC", "kid": "k1", "crv": "secp256k1", "x": "AA", "y": "AA" },
            ed.public_jwk().unwrap(),
            { "kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB" },
            { "kty": "AKP", "kid": "pq" },
            "not an object",
        ]});
        let set = KeySet::from_jwks(jwks).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.get("good").len(), 1);
        let skipped: Vec<_> = set.skipped().iter().map(|s| (s.index, s.kid.as_deref(), s.error.clone())).collect();
        assert_eq!(
            skipped,
            vec![
                (0, Some("k1"), JwkError::UnsupportedCurve("secp256k1".into())),
                (2, Some("enc"), JwkError::NotForSignatures),
                (3, Some("pq"), JwkError::UnsupportedKeyType("AKP".into())),
                (4, None, JwkError::NotAnObject),
            ]
        );
    }

    #[test]
    fn key_ops_without_verify_is_skipped() {
        check_skipped(json!({ "kty": "oct", "k": "c2VjcmV0", "key_ops": ["sign"] }), JwkError::NotForSignatures);
    }

    #[test]
    fn unsupported_okp_curve_is_skipped() {
        check_skipped(json!({ "kty": "OKP", "crv": "X25519", "x": "AA" }), JwkError::UnsupportedCurve("X25519".into()));
    }

    #[test]
    fn key_alg_that_contradicts_the_curve_is_skipped() {
        let ec = SigningKey::generate(Algorithm::Es256).unwrap();
        let mut jwk = ec.public_jwk().unwrap();
        jwk["alg"] = "ES384".into();
        check_skipped(jwk, JwkError::AlgorithmMismatch(Algorithm::Es384));
    }

    #[test]
    fn encryption_alg_is_skipped() {
        check_skipped(
            json!({ "kty": "RSA", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB" }),
            JwkError::UnsupportedAlgorithm("RSA-OAEP".into()),
        );
    }

    #[test]
    fn small_rsa_key_is_skipped() {
        let n = B64_KEY.encode([0xffu8; 128]);
        check_skipped(json!({ "kty": "RSA", "n": n, "e": "AQAB" }), JwkError::RsaKeySize(1024));
    }

    #[test]
    fn ec_point_off_the_curve_is_skipped() {
        let coord = B64_KEY.encode([1u8; 32]);
        let set =
            KeySet::from_jwks(json!({ "keys": [{ "kty": "EC", "crv": "P-256", "x": coord, "y": coord }] })).unwrap();
        assert!(matches!(set.skipped()[0].error, JwkError::Rejected(_)));
    }

    #[test]
    fn missing_and_malformed_members_are_reported_by_name() {
        check_skipped(json!({ "kty": "RSA", "e": "AQAB" }), JwkError::MissingParameter("n"));
        check_skipped(json!({ "kty": "RSA", "n": "!!", "e": "AQAB" }), JwkError::InvalidParameter("n"));
        check_skipped(json!({ "kty": "oct", "kid": 7, "k": "AA" }), JwkError::InvalidParameter("kid"));
        check_skipped(json!({ "kid": "x" }), JwkError::MissingParameter("kty"));
    }

    #[test]
    fn padded_and_leading_zero_rsa_members_are_accepted() {
        let rsa = SigningKey::generate(Algorithm::Rs256).unwrap();
        let jwk = rsa.public_jwk().unwrap();
        let n = B64_KEY.decode(jwk["n"].as_str().unwrap()).unwrap();
        let mut padded_n = vec![0u8];
        padded_n.extend_from_slice(&n);
        let padded = base64::engine::general_purpose::URL_SAFE.encode(&padded_n);
        let key = Jwk::from_json(json!({ "kty": "RSA", "n": padded, "e": jwk["e"] })).unwrap();
        assert!(key.fits(Algorithm::Rs256));
    }

    #[test]
    fn duplicate_kids_are_all_kept() {
        let a = SigningKey::generate(Algorithm::Es256).unwrap().with_kid("same");
        let b = SigningKey::generate(Algorithm::EdDsa).unwrap().with_kid("same");
        let set = KeySet::from_jwks(json!({ "keys": [a.public_jwk().unwrap(), b.public_jwk().unwrap()] })).unwrap();
        assert_eq!(set.get("same").len(), 2);
        assert_eq!(set.get("other").len(), 0);
    }

    #[test]
    fn debug_output_leaves_out_secrets() {
        let key = Jwk::from_hmac_secret(b"super-secret", Some("k"), None).unwrap();
        let debug = format!("{key:?}");
        assert!(!debug.contains("c3VwZXItc2VjcmV0"), "{debug}");
        assert!(debug.contains("Oct"));
    }
}
