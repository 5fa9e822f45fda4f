//! Verifying JWTs (bearer access tokens, and the tokens a grant returns) against the provider's
//! keys, with a bounded cache of verified tokens.
//!
//! The cache is keyed by the whole token and keeps the verified claims and the key that
//! verified them, so a repeated token costs a hash lookup instead of a signature check. A hit
//! still re-checks `exp` and `nbf` against the clock: the cache never extends a token's life.
//! Entries live no longer than the token (nor `cache_ttl`), and the cache belongs to one plugin
//! instance, so a config change starts empty.
//!
//! Nor does a cache outlive the key: every verified token records the key generation it was
//! checked at (`provider/discovery.rs`), and [`Verifier::holds_key`] is asked on every hit of
//! every cache that holds one (this one, the front, grants, opened sessions). While the
//! generation stands that is one atomic load; after a refresh removed a key, the token's key is
//! looked for once in the current set, and a token whose key is gone is dropped and verified
//! again, which then fails on its unknown `kid`.

use crate::claims::{self, IdContext, Refusal};
use crate::provider::IdpError;
use crate::provider::discovery::{Discovered, Provider};
use gatehouse_jose::{ClaimsError, ClaimsPolicy, Jwk, KeySet, Policy, UnverifiedJwt, VerifyError};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A token whose signature and claims were checked.
#[derive(Debug)]
pub struct VerifiedJwt {
    /// The payload.
    pub claims: Map<String, Value>,
    /// The key that verified it (`None` when signature checks are off for this grant).
    pub jwk: Option<Arc<Jwk>>,
    /// The provider's key generation at which `jwk` was last known to be published.
    key_checked: AtomicU64,
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
    /// Whether `now` is inside the token's `exp`/`nbf` window, `leeway` seconds wide on each
    /// side: what every cache of verified tokens asks again on each hit.
    pub fn window(&self, now: i64, leeway: i64) -> Result<(), ClaimsError> {
        if self.exp.is_some_and(|exp| now >= exp.saturating_add(leeway)) {
            return Err(ClaimsError::Expired);
        }
        if self.nbf.is_some_and(|nbf| now.saturating_add(leeway) < nbf) {
            return Err(ClaimsError::NotYetValid);
        }
        Ok(())
    }

    /// Claims read without a signature check: from our own sealed session, or from a grant listed
    /// in `ignore_signature`.
    pub fn unverified(claims: Map<String, Value>) -> VerifiedJwt {
        let exp = claims.get("exp").and_then(Value::as_f64).map(|f| f as i64);
        let nbf = claims.get("nbf").and_then(Value::as_f64).map(|f| f as i64);
        VerifiedJwt {
            claims,
            jwk: None,
            key_checked: AtomicU64::new(0),
            exp,
            nbf,
            cache_until: Instant::now(),
            upstream_headers: Default::default(),
        }
    }

    /// Reads a JWT's claims without verifying it (see [`VerifiedJwt::unverified`]).
    pub fn read_unverified(token: &str) -> Option<VerifiedJwt> {
        let claims = UnverifiedJwt::parse(token).ok()?.unverified_claims().ok()?;
        Some(VerifiedJwt::unverified(claims))
    }

    /// The key generation at which this token's key was last known to be published.
    pub fn key_checked(&self) -> u64 {
        self.key_checked.load(Ordering::Relaxed)
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
        if !self.holds_key(&hit) {
            // Its key is gone from the JWKS: verified again, it fails on the unknown `kid`.
            self.cache.invalidate(token);
            return Ok(None);
        }
        if self.verify_claims
            && let Err(e) = hit.window(now, self.leeway)
        {
            if matches!(e, ClaimsError::Expired) {
                self.cache.invalidate(token);
            }
            return Err(e.into());
        }
        Ok(Some(hit))
    }

    /// Whether the key that verified `v` is still published (or is one of our `HS*` keys, or
    /// there is none: signature checks were off). Asked on every hit of a cache of verified
    /// tokens: one atomic load while the key generation stands.
    #[inline]
    pub fn holds_key(&self, v: &VerifiedJwt) -> bool {
        self.holds_key_at(v, self.provider.key_generation())
    }

    /// [`Verifier::holds_key`] for each of `tokens` (an outcome's access and ID token).
    pub fn holds_keys(&self, tokens: &[&Option<Arc<VerifiedJwt>>]) -> bool {
        let generation = self.provider.key_generation();
        tokens.iter().copied().flatten().all(|t| self.holds_key_at(t, generation))
    }

    /// [`Verifier::holds_key`] with the key generation already read (`generation`).
    #[inline]
    pub fn holds_key_at(&self, v: &VerifiedJwt, generation: u64) -> bool {
        let Some(jwk) = &v.jwk else { return true };
        v.key_checked() == generation || self.key_still_published(v, jwk)
    }

    /// A refresh removed some key since `v` was checked: is `jwk` among the current keys?
    /// Keys a refresh finds again keep their `Arc`, so this compares pointers.
    #[cold]
    fn key_still_published(&self, v: &VerifiedJwt, jwk: &Arc<Jwk>) -> bool {
        let Some(d) = self.provider.current() else { return false };
        let found = |set: &KeySet| set.keys().iter().any(|k| Arc::ptr_eq(k, jwk));
        if found(&d.keys) || found(&self.hs_keys) {
            v.key_checked.fetch_max(d.key_generation, Ordering::Relaxed);
            return true;
        }
        false
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
        // The generation of the keys that verified the token, recorded with it.
        let (claims, jwk, key_generation) = if check_signature {
            let (v, generation) = self.signed(jwt, &discovered, now).await?;
            (v.claims, Some(v.key), generation)
        } else {
            (jwt.unverified_claims()?, None, 0)
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
            key_checked: AtomicU64::new(key_generation),
            exp,
            nbf,
            // Checked: `cache_ttl` comes from the config unbounded (`1e30` for a token without `exp`).
            cache_until: crate::cache::deadline(Instant::now(), ttl),
            upstream_headers: Default::default(),
        })
    }

    /// Checks `jwt`'s signature against `discovered`'s keys, or, for a key it does not hold (the
    /// IdP may have rotated), against keys fetched again once (rate-limited); with the
    /// generation of the keys that verified it.
    async fn signed(
        &self,
        jwt: UnverifiedJwt<'_>,
        discovered: &Discovered,
        now: i64,
    ) -> Result<(gatehouse_jose::Verified, u64), TokenError> {
        match self.check(jwt.clone(), discovered) {
            Err(VerifyError::UnknownKid(_) | VerifyError::NoMatchingKey(_)) => {
                let fresh = self.provider.rediscover(now).await?;
                Ok((self.check(jwt, &fresh)?, fresh.key_generation))
            }
            other => Ok((other?, discovered.key_generation)),
        }
    }

    /// Verifies a JARM authorization response (JWT Secured Authorization Response Mode §4.4) for
    /// `client_id` and returns its claims: signed by the IdP, `iss` the issuer, `aud` the client,
    /// and within `exp`. Always checked, whatever `verify_signature` and `verify_claims` say: an
    /// authorization response taken on trust would let anyone hand the browser a code.
    pub async fn authorization_response(
        &self,
        token: &str,
        client_id: &str,
        now: i64,
    ) -> Result<Map<String, Value>, TokenError> {
        let jwt = UnverifiedJwt::parse(token).map_err(|_| TokenError::NotJwt)?;
        let discovered = self.provider.get(now).await?;
        let now = now.max(crate::cache::unix_now());
        let (v, _) = self.signed(jwt, &discovered, now).await?;
        let policy = ClaimsPolicy {
            leeway: self.leeway,
            require_exp: true,
            issuers: vec![discovered.issuer.clone()],
            audiences: vec![client_id.to_string()],
        };
        gatehouse_jose::check_claims(&v.claims, &policy, now)?;
        Ok(v.claims)
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cache::unix_now;
    use crate::instance::Oidc;
    use gatehouse_jose::Algorithm;
    use gatehouse_jose::sign::{SigningKey, sign_jwt};
    use serde_json::json;
    use std::sync::atomic::AtomicUsize;

    /// An instance whose issuer no other test shares (providers are shared by issuer), with
    /// `config` on top.
    pub(crate) fn oidc(config: Value) -> Oidc {
        static N: AtomicUsize = AtomicUsize::new(0);
        let mut config = config;
        let n = N.fetch_add(1, Ordering::Relaxed);
        config["issuer"] = json!(format!("http://127.0.0.1:9/realms/keys-{}-{n}", std::process::id()));
        Oidc::for_tests(config)
    }

    /// A signing key of the IdP's and its public JWK, as a JWKS fetch parses it.
    pub(crate) fn signing_key(kid: &str) -> (SigningKey, Arc<Jwk>) {
        let k = SigningKey::generate(Algorithm::Es256).unwrap().with_kid(kid);
        let jwk = Arc::new(Jwk::from_json(k.public_jwk().unwrap()).unwrap());
        (k, jwk)
    }

    /// The JWKS the IdP publishes now: each key fetched again (new allocations).
    pub(crate) fn publish(o: &Oidc, keys: &[&Arc<Jwk>]) {
        let fetched: Vec<Arc<Jwk>> = keys.iter().map(|k| Arc::new(Jwk::from_json(k.json().clone()).unwrap())).collect();
        o.auth.verifier.provider.refreshed_for_tests(&fetched, unix_now());
    }

    /// An access token for john, signed by `key`, valid for an hour.
    pub(crate) fn token(o: &Oidc, key: &SigningKey) -> String {
        let now = unix_now();
        let claims = json!({
            "iss": o.auth.verifier.provider.issuer(), "sub": "john", "iat": now, "exp": now + 3600,
            "preferred_username": "john", "scope": "openid",
        });
        sign_jwt(&json!({"typ": "at+jwt"}), &claims, key).unwrap()
    }

    #[tokio::test]
    async fn a_jarm_response_must_be_the_issuers_for_this_client_unexpired_whatever_the_verify_settings() {
        let o = oidc(json!({"verify_signature": false, "verify_claims": false}));
        let v = &o.auth.verifier;
        let ((k1, jwk1), (k2, _)) = (signing_key("k1"), signing_key("k2"));
        publish(&o, &[&jwk1]);
        let now = unix_now();
        let good = json!({"iss": v.provider.issuer(), "aud": "web", "exp": now + 60, "code": "c", "state": "s"});
        let with = |patch: Value| {
            let mut c = good.clone();
            if let (Value::Object(c), Value::Object(p)) = (&mut c, patch) {
                for (k, v) in p {
                    if v.is_null() {
                        c.remove(&k);
                    } else {
                        c.insert(k, v);
                    }
                }
            }
            c
        };
        let jarm = |claims: &Value, key: &SigningKey| sign_jwt(&json!({}), claims, key).unwrap();
        let claims = v.authorization_response(&jarm(&good, &k1), "web", now).await.expect("verified");
        assert_eq!((claims["code"].as_str(), claims["state"].as_str()), (Some("c"), Some("s")));
        for (what, claims, key, client) in [
            ("another client", good.clone(), &k1, "other"),
            ("a key the IdP does not publish", good.clone(), &k2, "web"),
            ("expired", with(json!({"exp": now - 3600})), &k1, "web"),
            ("no exp", with(json!({"exp": null})), &k1, "web"),
            ("another issuer", with(json!({"iss": "https://evil.example"})), &k1, "web"),
            ("no iss", with(json!({"iss": null})), &k1, "web"),
            ("no aud", with(json!({"aud": null})), &k1, "web"),
        ] {
            assert!(v.authorization_response(&jarm(&claims, key), client, now).await.is_err(), "{what}");
        }
        let forged = format!("{}.", jarm(&good, &k1).rsplit_once('.').unwrap().0);
        assert!(v.authorization_response(&forged, "web", now).await.is_err(), "no signature");
        assert!(matches!(v.authorization_response("a.b", "web", now).await, Err(TokenError::NotJwt)));
    }

    #[tokio::test]
    async fn a_key_removed_across_a_forgotten_discovery_cache_is_still_noticed() {
        // `DELETE /openid-connect/issuers` forgets the document; the next fetch has nothing to
        // compare with, so it moves the generation on and every entry looks for its key again.
        let o = oidc(json!({ "auth_methods": ["bearer"] }));
        let v = &o.auth.verifier;
        let ((k1, jwk1), (_, jwk2)) = (signing_key("k1"), signing_key("k2"));
        publish(&o, &[&jwk1]);
        let now = unix_now();
        let t1 = token(&o, &k1);
        v.access_token(&t1, now).await.expect("verified");
        let before = v.provider.key_generation();
        v.provider.forget();
        publish(&o, &[&jwk2]);
        assert_ne!(v.provider.key_generation(), before);
        assert!(v.cached(&t1, now).unwrap().is_none(), "k1 is gone after the forgotten cache was refetched");
    }

    #[tokio::test]
    async fn a_cached_token_is_not_served_once_its_key_is_removed_and_others_are_unaffected() {
        let o = oidc(json!({ "auth_methods": ["bearer"] }));
        let v = &o.auth.verifier;
        let ((k1, jwk1), (k2, jwk2), (_, jwk3)) = (signing_key("k1"), signing_key("k2"), signing_key("k3"));
        publish(&o, &[&jwk1]);
        let now = unix_now();
        let t1 = token(&o, &k1);
        let verified = v.access_token(&t1, now).await.expect("verified");
        let generation = v.provider.key_generation();
        assert_eq!(verified.key_checked(), generation);
        assert!(v.cached(&t1, now).unwrap().is_some());

        // A key added: nothing changes for tokens already verified.
        publish(&o, &[&jwk1, &jwk2]);
        assert_eq!(v.provider.key_generation(), generation, "adding a key is not a removal");
        let t2 = token(&o, &k2);
        v.access_token(&t2, now).await.expect("the new key verifies");
        assert!(v.cached(&t1, now).unwrap().is_some());

        // k1 removed: t1 leaves the cache and no longer verifies; t2 stays.
        publish(&o, &[&jwk2, &jwk3]);
        assert_eq!(v.provider.key_generation(), generation + 1);
        assert!(v.cached(&t1, now).unwrap().is_none(), "its key is gone");
        assert!(v.cache.get(t1.as_str()).is_none(), "and so is the entry");
        let again = v.access_token(&t1, now).await.expect_err("unknown kid now");
        assert!(matches!(again, TokenError::Signature(VerifyError::UnknownKid(_))), "{again:?}");
        let kept = v.cached(&t2, now).unwrap().expect("its key is still published");
        assert_eq!(kept.key_checked(), generation + 1, "checked again once, then one load per hit");
        // Tokens read without a signature check have no key to lose.
        let unverified = VerifiedJwt::read_unverified(&t1).unwrap();
        assert!(v.holds_key(&unverified));
    }

    #[tokio::test]
    async fn hs_keys_made_of_the_client_secret_are_never_removed() {
        let o = oidc(json!({
            "auth_methods": ["bearer"], "enable_hs_signatures": true,
            "client_id": ["c"], "client_secret": ["a secret long enough for HS256 keys"],
        }));
        let v = &o.auth.verifier;
        let (_, jwk1) = signing_key("k1");
        publish(&o, &[&jwk1]);
        let hs = SigningKey::hmac(Algorithm::Hs256, b"a secret long enough for HS256 keys").unwrap();
        let t = token(&o, &hs);
        let now = unix_now();
        v.access_token(&t, now).await.expect("verified with the client secret");
        publish(&o, &[]);
        assert!(v.cached(&t, now).unwrap().is_some());
    }
}
