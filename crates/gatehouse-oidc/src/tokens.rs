//! Verifying JWTs (bearer access tokens, and the tokens a grant returns) against the provider's
//! keys, with a bounded cache of verified tokens.
//!
//! The cache is keyed by the whole token and keeps the verified claims and the key that
//! verified them, so a repeated token costs a hash lookup instead of a signature check. A hit
//! still re-checks `exp` and `nbf` against the clock: the cache never extends a token's life.
//! Entries live no longer than the token (nor `cache_ttl`), and the cache belongs to one plugin
//! instance, so a config change starts empty.

use crate::claims::{self, IdContext, Refusal};
use crate::provider::IdpError;
use crate::provider::discovery::{Discovered, Provider};
use gatehouse_jose::{ClaimsError, ClaimsPolicy, Jwk, KeySet, Policy, UnverifiedJwt, VerifyError};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A token whose signature and claims were checked.
#[derive(Debug)]
pub struct VerifiedJwt {
    /// The payload.
    pub claims: Map<String, Value>,
    /// The key that verified it (`None` when signature checks are off for this grant).
    pub jwk: Option<Arc<Jwk>>,
    /// `exp`, if present.
    pub exp: Option<i64>,
    /// `nbf`, if present.
    pub nbf: Option<i64>,
    /// Until when the cache may keep it.
    pub(crate) cache_until: Instant,
    /// The upstream headers made from this token alone (when nothing else feeds them), built on
    /// first use: a repeated bearer token then costs no claim lookups and no value copies.
    pub upstream_headers: crate::headers::Memo,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not a compact JWS at all: an opaque token (introspection or userinfo may still accept it).
    #[error("token is not a jwt")]
    NotJwt,
    /// The signature stage failed.
    #[error(transparent)]
    Signature(#[from] VerifyError),
    /// The claims stage failed.
    #[error(transparent)]
    Claims(#[from] ClaimsError),
    /// A claim listed in `claims_forbidden` is present.
    #[error("forbidden claim present")]
    ForbiddenClaim,
    /// A check the OpenID specs add (see `claims.rs`) failed.
    #[error(transparent)]
    Strict(#[from] Refusal),
    /// Keys could not be loaded.
    #[error(transparent)]
    Idp(#[from] IdpError),
}

impl VerifiedJwt {
    /// Claims read without a signature check: from our own sealed session, or from a grant listed
    /// in `ignore_signature`.
    pub fn unverified(claims: Map<String, Value>) -> VerifiedJwt {
        let exp = claims.get("exp").and_then(Value::as_f64).map(|f| f as i64);
        let nbf = claims.get("nbf").and_then(Value::as_f64).map(|f| f as i64);
        VerifiedJwt { claims, jwk: None, exp, nbf, cache_until: Instant::now(), upstream_headers: Default::default() }
    }

    /// Reads a JWT's claims without verifying it (see [`VerifiedJwt::unverified`]).
    pub fn read_unverified(token: &str) -> Option<VerifiedJwt> {
        let claims = UnverifiedJwt::parse(token).ok()?.unverified_claims().ok()?;
        Some(VerifiedJwt::unverified(claims))
    }
}

impl TokenError {
    /// Whether the token is expired (Kong's "The access token expired" description).
    pub fn is_expired(&self) -> bool {
        matches!(self, TokenError::Claims(ClaimsError::Expired))
    }
}

/// What a token is verified as: the claims each kind must carry differ (see `claims.rs`).
#[derive(Clone, Copy, Debug)]
pub enum Expect<'a> {
    /// A JWT access token (RFC 9068).
    Access,
    /// An ID token, and what it is checked against.
    Id(IdContext<'a>),
}

/// How tokens are verified for one plugin instance.
pub struct Verifier {
    /// The issuer's shared discovery state.
    pub provider: Arc<Provider>,
    /// Algorithm policy (`enable_hs_signatures`).
    pub policy: Policy,
    /// HMAC keys made of the client secrets, for `HS*` tokens when `enable_hs_signatures` is on.
    pub hs_keys: KeySet,
    /// `leeway` in seconds.
    pub leeway: i64,
    /// `issuers_allowed`; empty means the discovered issuer.
    pub issuers_allowed: Vec<String>,
    /// `verify_claims`.
    pub verify_claims: bool,
    /// `verify_signature` (Kong's switch; off only for testing against an IdP with broken keys).
    pub verify_signature: bool,
    /// `claims_forbidden`.
    pub claims_forbidden: Vec<String>,
    /// `cache_ttl`, the longest a verified token is cached.
    pub cache_ttl: Duration,
    /// Keyed by whole tokens (hundreds of bytes): hashed with foldhash rather than SipHash.
    cache: moka::sync::Cache<Arc<str>, Arc<VerifiedJwt>, foldhash::fast::RandomState>,
}

struct UntilExpiry;

impl moka::Expiry<Arc<str>, Arc<VerifiedJwt>> for UntilExpiry {
    fn expire_after_create(&self, _: &Arc<str>, v: &Arc<VerifiedJwt>, now: Instant) -> Option<Duration> {
        Some(v.cache_until.saturating_duration_since(now))
    }
}

/// How many verified tokens one plugin instance keeps.
const CACHE_ENTRIES: u64 = 16_384;

impl Verifier {
    /// A verifier with an empty cache.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        provider: Arc<Provider>,
        policy: Policy,
        hs_keys: KeySet,
        leeway: i64,
        issuers_allowed: Vec<String>,
        verify_claims: bool,
        claims_forbidden: Vec<String>,
        cache_ttl: Duration,
    ) -> Verifier {
        let cache = moka::sync::Cache::builder()
            .max_capacity(CACHE_ENTRIES)
            .expire_after(UntilExpiry)
            .build_with_hasher(foldhash::fast::RandomState::default());
        Verifier {
            provider,
            policy,
            hs_keys,
            leeway,
            issuers_allowed,
            verify_claims,
            verify_signature: true,
            claims_forbidden,
            cache_ttl,
            cache,
        }
    }

    /// Verifies a bearer access token, from the cache when it was verified before.
    pub async fn access_token(&self, token: &str, now: i64) -> Result<Arc<VerifiedJwt>, TokenError> {
        if let Some(hit) = self.cached(token, now)? {
            return Ok(hit);
        }
        // Boxed: a miss is rare on the hot path, and verifying may fetch keys.
        let v = Arc::new(Box::pin(self.verify(token, self.verify_signature, Expect::Access, now)).await?);
        self.cache.insert(token.into(), v.clone());
        Ok(v)
    }

    /// The cached verification of `token`, with its time window re-checked. `Ok(None)` on a miss.
    pub fn cached(&self, token: &str, now: i64) -> Result<Option<Arc<VerifiedJwt>>, TokenError> {
        let Some(hit) = self.cache.get(token) else { return Ok(None) };
        if self.verify_claims {
            if hit.exp.is_some_and(|exp| now >= exp.saturating_add(self.leeway)) {
                self.cache.invalidate(token);
                return Err(ClaimsError::Expired.into());
            }
            if hit.nbf.is_some_and(|nbf| now.saturating_add(self.leeway) < nbf) {
                return Err(ClaimsError::NotYetValid.into());
            }
        }
        Ok(Some(hit))
    }

    /// Verifies `token` without the cache (ID tokens are never cached: they come with a grant, or
    /// along with a bearer token). `check_signature` is off for grants listed in
    /// `ignore_signature`; an ID token's client must be in its `aud`.
    pub async fn verify(
        &self,
        token: &str,
        check_signature: bool,
        expect: Expect<'_>,
        now: i64,
    ) -> Result<VerifiedJwt, TokenError> {
        let jwt = UnverifiedJwt::parse(token).map_err(|_| TokenError::NotJwt)?;
        // Authentic once the signature checks out; names the hash of `at_hash` and `c_hash`.
        let alg = jwt.unverified_header().alg.clone();
        let discovered = self.provider.get(now).await?;
        // Fetching keys may have taken a while; check times against the clock as it is now.
        let now = now.max(crate::cache::unix_now());
        let (claims, jwk) = if check_signature {
            let v = match self.check(jwt.clone(), &discovered) {
                Err(VerifyError::UnknownKid(_) | VerifyError::NoMatchingKey(_)) => {
                    // Maybe the IdP rotated its keys: refetch once (rate-limited) and retry.
                    let fresh = self.provider.rediscover(now).await?;
                    if Arc::ptr_eq(&fresh, &discovered) {
                        self.check(jwt, &discovered)?
                    } else {
                        self.check(jwt, &fresh)?
                    }
                }
                other => other?,
            };
            (v.claims, Some(v.key))
        } else {
            (jwt.unverified_claims()?, None)
        };
        if self.verify_claims {
            let issuers = if self.issuers_allowed.is_empty() {
                vec![discovered.issuer.clone()]
            } else {
                self.issuers_allowed.clone()
            };
            let audience = match expect {
                Expect::Id(cx) => cx.client_id,
                Expect::Access => None,
            };
            let policy = ClaimsPolicy {
                leeway: self.leeway,
                // Both kinds need `exp` (Core §2, RFC 9068 §2.2); `claims.rs` says so by name.
                require_exp: false,
                issuers,
                audiences: audience.map(|a| vec![a.to_string()]).unwrap_or_default(),
            };
            gatehouse_jose::check_claims(&claims, &policy, now)?;
            match expect {
                Expect::Access => claims::access_token(&claims)?,
                Expect::Id(cx) => claims::id_token(&claims, &alg, &cx)?,
            }
        }
        if self.claims_forbidden.iter().any(|c| claims.contains_key(c)) {
            return Err(TokenError::ForbiddenClaim);
        }
        let exp = claims.get("exp").and_then(Value::as_f64).map(|f| f as i64);
        let nbf = claims.get("nbf").and_then(Value::as_f64).map(|f| f as i64);
        let mut ttl = self.cache_ttl;
        if let Some(exp) = exp {
            let left = u64::try_from(exp.saturating_add(self.leeway).saturating_sub(now)).unwrap_or(0);
            ttl = ttl.min(Duration::from_secs(left));
        }
        Ok(VerifiedJwt {
            claims,
            jwk,
            exp,
            nbf,
            // Checked: `cache_ttl` comes from the config unbounded (`1e30` for a token without `exp`).
            cache_until: crate::cache::deadline(Instant::now(), ttl),
            upstream_headers: Default::default(),
        })
    }

    fn check(&self, jwt: UnverifiedJwt<'_>, d: &Discovered) -> Result<gatehouse_jose::Verified, VerifyError> {
        let keys = if jwt.unverified_header().alg.starts_with("HS") && !self.hs_keys.is_empty() {
            &self.hs_keys
        } else {
            &d.keys
        };
        jwt.verify(keys, &self.policy)
    }
}
