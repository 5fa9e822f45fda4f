//! Compact JWS parsing and signature verification (RFC 7515), with the algorithm rules that stop
//! the classic JWT attacks: `alg: none`, RS/HS key confusion, curve substitution, and unknown
//! critical extensions.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::claims::{ClaimsError, ClaimsPolicy, check_claims};
use super::{Algorithm, AlgorithmSet, Jwk, KeySet};

/// Largest signature we accept: an RSA-8192 signature is 1024 bytes.
const MAX_SIGNATURE_LEN: usize = 1024;
/// Headers up to this size decode on the stack; larger ones (rare) fall back to the heap.
const STACK_HEADER_LEN: usize = 512;

/// The JOSE header of a JWS. Members other than these are ignored; in particular `jku`, `x5u`
/// and `jwk` are never used to find a key (that would let the token pick its own key).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Header {
    /// The algorithm name exactly as the token states it (it may be one we refuse).
    pub alg: String,
    /// The key id, used to pick the key.
    #[serde(default)]
    pub kid: Option<String>,
    /// The media type of the whole token, e.g. `JWT` or `at+jwt`.
    #[serde(default)]
    pub typ: Option<String>,
    /// The media type of the payload (`JWT` for nested tokens).
    #[serde(default)]
    pub cty: Option<String>,
    /// Extensions the recipient must understand. We understand none, so any entry is refused.
    #[serde(default)]
    pub crit: Option<Vec<String>>,
}

/// What [`verify`] accepts in the signature stage.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Algorithms a token may use. Defaults to [`AlgorithmSet::all`]; `none` can't be named.
    pub algorithms: AlgorithmSet,
    /// Whether `HS*` tokens are accepted at all (and then only with an `oct` key). Defaults to
    /// `false`, like Kong's `enable_hs_signatures`.
    pub enable_hs_signatures: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { algorithms: AlgorithmSet::all(), enable_hs_signatures: false }
    }
}

/// Why a token failed the structure or signature stage.
///
/// The messages are lowercase and fixed, so they can go into an `error_description` as they are:
/// none of them echoes attacker-controlled text (the refused `alg`, `kid` or `crit` value is kept
/// in the variant for logs, not in the message).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a compact JWS: wrong number of parts, bad base64url, a header that is not a JSON
    /// object, a payload that is not a JSON object.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg` is not a JWS algorithm this module knows.
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm(Box<str>),
    /// `alg` is `none`, outside [`Policy::algorithms`], or `HS*` while
    /// [`Policy::enable_hs_signatures`] is off.
    #[error("algorithm not allowed: {0}")]
    AlgorithmNotAllowed(&'static str),
    /// `crit` names an extension we don't process.
    #[error("unsupported critical header parameter")]
    UnsupportedCritical(Box<str>),
    /// No key has the token's `kid`. The key set may be stale: refetch the JWKS and retry once.
    #[error("unknown key id")]
    UnknownKid(Box<str>),
    /// The key named by `kid` can't be used with the token's `alg` (wrong key type or curve, or
    /// the JWK is bound to another `alg`).
    #[error("key does not fit algorithm {0}")]
    KeyMismatch(Algorithm),
    /// The token has no `kid` and no key fits its `alg`.
    #[error("no key for algorithm {0}")]
    NoMatchingKey(Algorithm),
    /// The signature does not verify with the chosen key(s).
    #[error("invalid signature")]
    InvalidSignature,
}

/// A compact JWS split into its parts, with the header decoded. Nothing in it is trusted yet.
#[derive(Clone, Debug)]
pub struct UnverifiedJwt<'a> {
    header: Header,
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
}

impl<'a> UnverifiedJwt<'a> {
    /// Splits `token` and decodes its header. Checks only structure: algorithms and keys are
    /// [`UnverifiedJwt::verify`]'s job.
    pub fn parse(token: &'a str) -> Result<UnverifiedJwt<'a>, VerifyError> {
        let Some((signing_input, signature)) = token.rsplit_once('.') else {
            return Err(VerifyError::Malformed("not a compact jws"));
        };
        let Some((header, payload)) = signing_input.split_once('.') else {
            return Err(VerifyError::Malformed("not a compact jws"));
        };
        if payload.contains('.') {
            // Five parts is a JWE; anything else is garbage.
            return Err(VerifyError::Malformed(if payload.bytes().filter(|b| *b == b'.').count() == 2 {
                "encrypted tokens are not supported"
            } else {
                "not a compact jws"
            }));
        }

        let mut stack = [0u8; STACK_HEADER_LEN];
        let mut heap = Vec::new();
        let header =
            decode_segment(header, &mut stack, &mut heap).ok_or(VerifyError::Malformed("invalid header encoding"))?;
        let header: Header = serde_json::from_slice(header).map_err(|_| VerifyError::Malformed("invalid header"))?;
        Ok(UnverifiedJwt { header, signing_input, payload, signature })
    }

    /// The header, not yet backed by a signature check.
    pub fn unverified_header(&self) -> &Header {
        &self.header
    }

    /// Decodes the claims without checking anything, e.g. to read `iss` and pick the issuer's
    /// key set before verifying. Never authorize anything on this.
    pub fn unverified_claims(&self) -> Result<Map<String, Value>, VerifyError> {
        decode_claims(self.payload)
    }

    /// The bytes the signature covers: `b64(header).b64(payload)`.
    pub fn signing_input(&self) -> &'a [u8] {
        self.signing_input.as_bytes()
    }

    /// Verifies the token against `keys` under `policy`. See [`verify`].
    pub fn verify(self, keys: &KeySet, policy: &Policy) -> Result<Verified, VerifyError> {
        let alg = allowed_algorithm(&self.header.alg, policy)?;
        if let Some(crit) = &self.header.crit {
            // We implement no JWS extension, so every critical one is unknown to us.
            match crit.first() {
                None => return Err(VerifyError::Malformed("empty crit")),
                Some(name) => return Err(VerifyError::UnsupportedCritical(name.as_str().into())),
            }
        }

        let mut sig_buf = [0u8; MAX_SIGNATURE_LEN + 3];
        let mut no_heap = Vec::new();
        if self.signature.len() > (MAX_SIGNATURE_LEN * 4).div_ceil(3) {
            return Err(VerifyError::Malformed("signature too long"));
        }
        let signature = decode_segment(self.signature, &mut sig_buf, &mut no_heap)
            .ok_or(VerifyError::Malformed("invalid signature encoding"))?;

        let key = self.find_verifying_key(keys, alg, signature)?;
        let claims = decode_claims(self.payload)?;
        Ok(Verified { header: self.header, alg, claims, key })
    }

    /// Picks the key by `kid` (or tries every fitting key when there is none) and checks the
    /// signature with it.
    fn find_verifying_key(&self, keys: &KeySet, alg: Algorithm, signature: &[u8]) -> Result<Arc<Jwk>, VerifyError> {
        let message = self.signing_input.as_bytes();
        let verifies = |key: &Jwk| key.verifier(alg).map(|v| v.verify(message, signature));

        let Some(kid) = self.header.kid.as_deref() else {
            let mut fitted = false;
            for key in keys.keys() {
                match verifies(key) {
                    Some(true) => return Ok(Arc::clone(key)),
                    Some(false) => fitted = true,
                    None => {}
                }
            }
            return Err(if fitted { VerifyError::InvalidSignature } else { VerifyError::NoMatchingKey(alg) });
        };

        let named = keys.get(kid);
        if named.is_empty() {
            // A JWKS whose keys carry no `kid` can't be addressed by one; try those keys before
            // declaring the kid unknown. Failing them still says `UnknownKid`, so the caller
            // refetches: the token may be signed with a key published since.
            for key in keys.keys_without_kid() {
                if verifies(key) == Some(true) {
                    return Ok(Arc::clone(key));
                }
            }
            return Err(VerifyError::UnknownKid(kid.into()));
        }
        let mut fitted = false;
        for key in named {
            match verifies(key) {
                Some(true) => return Ok(Arc::clone(key)),
                Some(false) => fitted = true,
                None => {}
            }
        }
        Err(if fitted { VerifyError::InvalidSignature } else { VerifyError::KeyMismatch(alg) })
    }
}

/// A token whose signature checked out under a [`Policy`]. Its claims are not checked yet: run
/// [`Verified::check_claims`] (or [`check_claims`]) next.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Verified {
    /// The protected header.
    pub header: Header,
    /// The algorithm the signature was checked with.
    pub alg: Algorithm,
    /// The payload, a JSON object.
    pub claims: Map<String, Value>,
    /// The key that verified the signature, with its original JWK JSON.
    pub key: Arc<Jwk>,
}

impl Verified {
    /// Checks the registered claims at time `now` (Unix seconds). See [`check_claims`].
    pub fn check_claims(&self, policy: &ClaimsPolicy, now: i64) -> Result<(), ClaimsError> {
        check_claims(&self.claims, policy, now)
    }
}

/// Verifies a compact JWS `token`: structure, algorithm policy, key choice, signature; then
/// decodes the claims. Pure and allocation-light: keys in `keys` are already parsed, the header
/// and signature decode on the stack, and the payload is only parsed after the signature holds.
///
/// Rules, in order:
/// - `alg` `none` is always refused, as is any `alg` outside [`Policy::algorithms`], and `HS*`
///   unless [`Policy::enable_hs_signatures`] is set.
/// - Any `crit` entry is refused.
/// - With a `kid`, only the keys with that `kid` are used (or, when none has it, keys without a
///   `kid`); otherwise every key that fits `alg` is tried in JWKS order.
/// - A key fits `alg` only by type and curve (`RS*`/`PS*`: RSA; `ES256`/`ES384`/`ES512`: P-256,
///   P-384, P-521; `EdDSA`: Ed25519; `HS*`: `oct`), and only if its own `alg`, when present,
///   equals the token's.
pub fn verify(token: &str, keys: &KeySet, policy: &Policy) -> Result<Verified, VerifyError> {
    UnverifiedJwt::parse(token)?.verify(keys, policy)
}

fn allowed_algorithm(name: &str, policy: &Policy) -> Result<Algorithm, VerifyError> {
    if name.eq_ignore_ascii_case("none") {
        return Err(VerifyError::AlgorithmNotAllowed("none"));
    }
    let alg = Algorithm::from_name(name).ok_or_else(|| VerifyError::UnsupportedAlgorithm(name.into()))?;
    if !policy.algorithms.contains(alg) || (alg.is_hmac() && !policy.enable_hs_signatures) {
        return Err(VerifyError::AlgorithmNotAllowed(alg.as_str()));
    }
    Ok(alg)
}

/// Decodes unpadded base64url into `stack` when it fits, else into `heap`. `None` on bad input
/// (including padding and non-canonical trailing bits, which would make tokens malleable).
fn decode_segment<'b>(segment: &str, stack: &'b mut [u8], heap: &'b mut Vec<u8>) -> Option<&'b [u8]> {
    if base64::decoded_len_estimate(segment.len()) <= stack.len() {
        let len = URL_SAFE_NO_PAD.decode_slice(segment, stack).ok()?;
        Some(&stack[..len])
    } else {
        URL_SAFE_NO_PAD.decode_vec(segment, heap).ok()?;
        Some(heap)
    }
}

fn decode_claims(payload: &str) -> Result<Map<String, Value>, VerifyError> {
    let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| VerifyError::Malformed("invalid payload encoding"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(claims)) => Ok(claims),
        Ok(_) => Err(VerifyError::Malformed("payload is not a json object")),
        Err(_) => Err(VerifyError::Malformed("invalid payload")),
    }
}
