//! Discovery and keys: one [`Provider`] per issuer configuration, shared by every plugin instance
//! that names it, so a config change or a second route does not refetch.
//!
//! The request path reads the current [`Discovered`] with one lock-free `ArcSwap` load. Only a
//! missing, expired or key-rotated document takes the async mutex, which makes concurrent
//! requests wait for one fetch instead of each calling the identity provider (no stampede). A
//! failed refresh keeps serving the last good document (the IdP being down must not take
//! verified bearer tokens down with it), and refreshes are rate-limited to one per
//! `rediscovery_lifetime`, which also bounds what a stream of tokens with unknown `kid`s costs.
//!
//! A failed fetch (discovery or keys) starts a backoff: until it ends, requests get that failure
//! (or the stale document, when there is one) without a new fetch. It starts at
//! [`BACKOFF_FIRST`] and doubles with each consecutive failure up to [`BACKOFF_MAX`], so a dead
//! IdP costs one fetch per interval, not one per request, and requests fail fast instead of each
//! waiting out the timeout.

use super::client::{self, IdpError, IdpHttp};
use arc_swap::ArcSwapOption;
use gatehouse_jose::{Jwk, KeySet};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

/// How long requests are answered with a fetch's failure before the next fetch.
pub const BACKOFF_FIRST: Duration = Duration::from_secs(2);
/// The longest backoff, reached after a few consecutive failures.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// What identifies a provider: everything that changes what discovery fetches.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProviderKey {
    /// `issuer` as configured.
    pub issuer: String,
    /// `using_pseudo_issuer`: no discovery document, keys only from `jwks_endpoint`/`extra_jwks_uris`.
    pub pseudo: bool,
    /// `jwks_endpoint`, replacing the discovered `jwks_uri`.
    pub jwks_endpoint: Option<String>,
    /// `extra_jwks_uris`.
    pub extra_jwks_uris: Vec<String>,
    /// `discovery_headers_names`/`_values`.
    pub discovery_headers: Vec<(String, String)>,
    /// `timeout` (ms), `ssl_verify`, `keepalive`.
    pub timeout_ms: u64,
    /// Whether TLS certificates are verified.
    pub ssl_verify: bool,
    /// Whether connections are kept alive.
    pub keepalive: bool,
    /// `cache_ttl` (s): how long a document is fresh.
    pub cache_ttl: i64,
    /// `rediscovery_lifetime` (s): the least time between two fetches.
    pub rediscovery_lifetime: i64,
    /// The node's `idp_max_response_size`: the most bytes read of any IdP answer.
    pub max_response: u64,
    /// `verify_claims`: the document's `issuer` must be the configured one (Discovery §4.3).
    pub verify_issuer: bool,
    /// `issuers_allowed`: other issuers a document may name (Entra ID's multi-tenant endpoints).
    pub issuers_allowed: Vec<String>,
}

/// A fetched discovery document and key set.
pub struct Discovered {
    /// The discovery document (`{}` with a pseudo issuer).
    pub doc: Value,
    /// The issuer tokens must name: the document's `issuer`, else the configured one.
    pub issuer: String,
    /// Every key from `jwks_uri` (or `jwks_endpoint`) and `extra_jwks_uris`.
    pub keys: KeySet,
    /// When it was fetched (Unix seconds).
    pub fetched_at: i64,
    /// The key generation of these keys: it moves on when a refresh removes a key.
    pub key_generation: u64,
}

impl Discovered {
    /// A string endpoint from the document (`token_endpoint`, ...).
    pub fn endpoint(&self, name: &str) -> Option<&str> {
        self.doc.get(name).and_then(Value::as_str)
    }
}

/// One issuer's discovery state.
pub struct Provider {
    key: ProviderKey,
    http: IdpHttp,
    current: ArcSwapOption<Discovered>,
    refresh: tokio::sync::Mutex<()>,
    last_attempt: AtomicI64,
    backoff: Mutex<Option<Backoff>>,
    /// The current document's `key_generation`, stored after the document.
    key_generation: AtomicU64,
}

/// The last fetch failed: until `until`, its error is the answer.
struct Backoff {
    until: Instant,
    failures: u32,
    error: IdpError,
}

/// The backoff after `failures` consecutive failures: doubling from the first, capped.
fn backoff_after(failures: u32) -> Duration {
    let factor = 1u32.checked_shl(failures.saturating_sub(1)).unwrap_or(u32::MAX);
    BACKOFF_FIRST.saturating_mul(factor).min(BACKOFF_MAX)
}

static PROVIDERS: LazyLock<Mutex<HashMap<ProviderKey, Weak<Provider>>>> = LazyLock::new(Default::default);

/// The shared provider for `key`, made on first use. Called at build time, never per request.
pub fn provider(key: ProviderKey) -> Result<Arc<Provider>, String> {
    let mut map = PROVIDERS.lock().map_err(|_| "provider registry poisoned".to_string())?;
    map.retain(|_, w| w.strong_count() > 0);
    if let Some(p) = map.get(&key).and_then(Weak::upgrade) {
        return Ok(p);
    }
    let http = client::shared_client(key.timeout_ms, key.ssl_verify, key.keepalive, key.max_response)?;
    let p = Arc::new(Provider {
        key: key.clone(),
        http,
        current: ArcSwapOption::empty(),
        refresh: tokio::sync::Mutex::new(()),
        last_attempt: AtomicI64::new(i64::MIN / 2),
        backoff: Mutex::new(None),
        key_generation: AtomicU64::new(0),
    });
    map.insert(key, Arc::downgrade(&p));
    Ok(p)
}

impl Provider {
    /// The shared HTTP client for this provider's settings.
    pub fn http(&self) -> &IdpHttp {
        &self.http
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.key.issuer
    }

    /// The generation of the current keys: it changes only when a refresh removes a key. Read
    /// on every cache hit of a verified token, so it is one atomic load.
    #[inline]
    pub fn key_generation(&self) -> u64 {
        // Acquire: whoever sees a generation also sees the document stored before it.
        self.key_generation.load(Ordering::Acquire)
    }

    /// The current document, fresh or not, without waiting (`None` before the first fetch).
    pub fn current(&self) -> Option<Arc<Discovered>> {
        self.current.load_full()
    }

    /// The current document if it is still fresh, without waiting. The request path's fast path.
    pub fn fresh(&self, now: i64) -> Option<Arc<Discovered>> {
        let cur = self.current.load_full()?;
        (now.saturating_sub(cur.fetched_at) < self.key.cache_ttl).then_some(cur)
    }

    /// The last fetched document, fresh or not: the Admin API's view of the discovery cache.
    pub fn cached(&self) -> Option<Arc<Discovered>> {
        self.current.load_full()
    }

    /// Drops the cached document, the rate limit and any backoff, so the next request fetches
    /// (`DELETE /openid-connect/issuers`).
    pub fn forget(&self) {
        self.current.store(None);
        self.last_attempt.store(i64::MIN / 2, Ordering::Relaxed);
        *self.backoff.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The current document: fresh from cache, or fetched (one fetch for all waiting requests).
    /// When a refresh fails, the last good document is served.
    pub async fn get(&self, now: i64) -> Result<Arc<Discovered>, IdpError> {
        if let Some(d) = self.fresh(now) {
            return Ok(d);
        }
        // Boxed: the fetch is rare, and its size would otherwise sit in every caller's state.
        Box::pin(self.refresh(now)).await
    }

    /// Refetches because a token names a key we do not have (key rotation). Rate-limited: within
    /// `rediscovery_lifetime` of the last fetch, the current keys are returned as they are.
    pub async fn rediscover(&self, now: i64) -> Result<Arc<Discovered>, IdpError> {
        Box::pin(self.refresh(now)).await
    }

    async fn refresh(&self, now: i64) -> Result<Arc<Discovered>, IdpError> {
        let before = self.current.load_full();
        if let Some(cur) = &before
            && self.rate_limited(now)
        {
            return Ok(cur.clone());
        }
        if let Some(answer) = self.backing_off(&before) {
            return answer;
        }
        let _guard = self.refresh.lock().await;
        let cur = self.current.load_full();
        // Someone else fetched while we waited: use theirs.
        if let Some(c) = &cur
            && before.as_ref().is_none_or(|b| !Arc::ptr_eq(b, c))
        {
            return Ok(c.clone());
        }
        if let Some(c) = &cur
            && self.rate_limited(now)
        {
            return Ok(c.clone());
        }
        // The fetch we waited for failed: share its answer rather than fetching again.
        if let Some(answer) = self.backing_off(&cur) {
            return answer;
        }
        self.last_attempt.store(now, Ordering::Relaxed);
        let result = self.fetch(now, cur.as_deref()).await;
        let mut backoff = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(d) => {
                *backoff = None;
                Ok(self.install(d, cur.as_deref()))
            }
            Err(e) => {
                let failures = backoff.as_ref().map_or(0, |b| b.failures).saturating_add(1);
                let wait = backoff_after(failures);
                *backoff = Some(Backoff { until: Instant::now() + wait, failures, error: e.clone() });
                match cur {
                    Some(c) => {
                        tracing::warn!(issuer = %self.key.issuer, error = %e, retry_in = ?wait, "discovery refresh failed; serving the cached document");
                        Ok(c)
                    }
                    None => {
                        tracing::error!(issuer = %self.key.issuer, error = %e, retry_in = ?wait, "discovery failed and nothing is cached");
                        Err(e)
                    }
                }
            }
        }
    }

    /// Makes a fetched document current: the document first, then its key generation, so
    /// whoever reads the new generation finds the keys it belongs to.
    fn install(&self, d: Discovered, before: Option<&Discovered>) -> Arc<Discovered> {
        let d = Arc::new(d);
        tracing::debug!(issuer = %self.key.issuer, keys = d.keys.len(), "discovery refreshed");
        if before.is_some_and(|b| b.key_generation != d.key_generation) {
            tracing::info!(
                issuer = %self.key.issuer,
                "signing keys were removed from the JWKS; tokens they verified are no longer accepted"
            );
        }
        self.current.store(Some(d.clone()));
        self.key_generation.store(d.key_generation, Ordering::Release);
        d
    }

    /// Whether the last fetch was less than `rediscovery_lifetime` ago.
    fn rate_limited(&self, now: i64) -> bool {
        now.saturating_sub(self.last_attempt.load(Ordering::Relaxed)) < self.key.rediscovery_lifetime
    }

    /// During a backoff, the answer without a fetch: the stale document, else the failure.
    fn backing_off(&self, cur: &Option<Arc<Discovered>>) -> Option<Result<Arc<Discovered>, IdpError>> {
        let backoff = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        let b = backoff.as_ref().filter(|b| Instant::now() < b.until)?;
        Some(match cur {
            Some(c) => Ok(c.clone()),
            None => Err(b.error.clone()),
        })
    }

    /// Fetches the document and keys. Keys that `before` holds too are carried over (the same
    /// `Arc`), and the key generation moves on when one of `before`'s keys is gone.
    async fn fetch(&self, now: i64, before: Option<&Discovered>) -> Result<Discovered, IdpError> {
        let k = &self.key;
        let doc = if k.pseudo {
            Value::Object(Default::default())
        } else {
            let url = discovery_url(&k.issuer);
            let mut req = self.http.get(&url).header("accept", "application/json");
            for (n, v) in &k.discovery_headers {
                req = req.header(n.as_str(), v.as_str());
            }
            let (status, doc) = self.http.json("discovery", req).await?;
            if !(200..300).contains(&status) {
                return Err(IdpError::Status { what: "discovery", url, status });
            }
            if !doc.is_object() {
                return Err(IdpError::Invalid { what: "discovery", url, reason: "not a JSON object".into() });
            }
            if k.verify_issuer
                && let Err(reason) = check_issuer(&k.issuer, doc.get("issuer"), &k.issuers_allowed)
            {
                // Not used: a document for another issuer would name its endpoints and keys.
                return Err(IdpError::Invalid { what: "discovery", url, reason });
            }
            doc
        };
        let issuer = doc.get("issuer").and_then(Value::as_str).unwrap_or(&k.issuer).to_string();
        let jwks_uri = k.jwks_endpoint.as_deref().or_else(|| doc.get("jwks_uri").and_then(Value::as_str));
        let mut fetched = Vec::new();
        if let Some(uri) = jwks_uri {
            fetched.extend(self.fetch_jwks(uri).await?.keys().iter().cloned());
        }
        for uri in &k.extra_jwks_uris {
            // An extra key source that fails is logged and skipped: the issuer's own keys still
            // work. Its keys count as removed until it answers again.
            match self.fetch_jwks(uri).await {
                Ok(set) => fetched.extend(set.keys().iter().cloned()),
                Err(e) => tracing::warn!(issuer = %k.issuer, error = %e, "extra JWKS fetch failed"),
            }
        }
        // With nothing to compare (the first fetch, or after `forget`), the generation still moves
        // on: entries verified before `forget` must look for their key again.
        let (keys, key_generation) = carry_over(before, fetched, self.key_generation().wrapping_add(1));
        Ok(Discovered { doc, issuer, keys, fetched_at: now, key_generation })
    }

    async fn fetch_jwks(&self, uri: &str) -> Result<KeySet, IdpError> {
        let (status, url, body) =
            self.http.send("jwks", self.http.get(uri).header("accept", "application/json")).await?;
        if !(200..300).contains(&status) {
            return Err(IdpError::Status { what: "jwks", url, status });
        }
        let set = KeySet::from_jwks_slice(&body).map_err(|e| IdpError::Invalid {
            what: "jwks",
            url,
            reason: e.to_string(),
        })?;
        for skipped in set.skipped() {
            tracing::warn!(issuer = %self.key.issuer, key = ?skipped, "JWKS key skipped");
        }
        Ok(set)
    }
}

/// The key set of a refresh: each fetched key that `before` holds (the same kid and JWK) is
/// `before`'s own `Arc`, so cached verifications can find their key by pointer. The generation
/// is `before`'s, one more when one of `before`'s keys is not among `fetched`; `fresh` when
/// there is no `before`.
fn carry_over(before: Option<&Discovered>, fetched: Vec<Arc<Jwk>>, fresh: u64) -> (KeySet, u64) {
    let set = |keys: Vec<Arc<Jwk>>| {
        let mut set = KeySet::default();
        keys.into_iter().for_each(|k| set.push(k));
        set
    };
    let Some(before) = before else { return (set(fetched), fresh) };
    let old = &before.keys;
    let same = |a: &Jwk, b: &Jwk| a.kid() == b.kid() && a.json() == b.json();
    let keys: Vec<Arc<Jwk>> = fetched
        .into_iter()
        .map(|key| {
            let known = match key.kid() {
                Some(kid) => old.get(kid).iter().find(|o| same(o, &key)),
                None => old.keys_without_kid().find(|o| same(o, &key)),
            };
            known.cloned().unwrap_or(key)
        })
        .collect();
    let removed = old.keys().iter().any(|o| !keys.iter().any(|k| Arc::ptr_eq(k, o)));
    let generation = before.key_generation.wrapping_add(u64::from(removed));
    (set(keys), generation)
}

/// An issuer as compared: without `/.well-known/openid-configuration` (or RFC 8414's
/// `/.well-known/oauth-authorization-server`) and without one trailing slash, as Kong compares
/// token issuers.
pub fn issuer_base(issuer: &str) -> &str {
    let s = issuer
        .strip_suffix("/.well-known/openid-configuration")
        .or_else(|| issuer.strip_suffix("/.well-known/oauth-authorization-server"))
        .unwrap_or(issuer);
    s.strip_suffix('/').unwrap_or(s)
}

/// OpenID Connect Discovery §4.3: the document's `issuer` must be the issuer it was fetched for
/// (compared by [`issuer_base`]), or one of `allowed`. `Err` says why, for the log: the value is
/// the IdP's, so it is quoted (escaped) and cut short.
pub fn check_issuer(configured: &str, document: Option<&Value>, allowed: &[String]) -> Result<(), String> {
    let Some(Value::String(found)) = document else {
        return Err("the document has no issuer".into());
    };
    let base = issuer_base(found);
    if base == issuer_base(configured) || allowed.iter().any(|a| issuer_base(a) == base) {
        return Ok(());
    }
    let shown: String = found.chars().take(200).collect();
    Err(format!("the document's issuer {shown:?} is neither the configured issuer nor in issuers_allowed"))
}

/// `{issuer}/.well-known/openid-configuration`, unless the issuer already is that URL.
pub fn discovery_url(issuer: &str) -> String {
    const WELL_KNOWN: &str = "/.well-known/openid-configuration";
    if issuer.ends_with(WELL_KNOWN) {
        issuer.to_string()
    } else {
        format!("{}{WELL_KNOWN}", issuer.trim_end_matches('/'))
    }
}

#[cfg(test)]
impl Provider {
    /// Makes `keys` current as a refresh that fetched them at `now` would (no document).
    pub(crate) fn refreshed_for_tests(&self, keys: &[Arc<Jwk>], now: i64) -> Arc<Discovered> {
        // As fetched just now: rediscovery is rate-limited, so tests make no network call.
        self.last_attempt.store(now, Ordering::Relaxed);
        let before = self.current.load_full();
        let (keys, key_generation) =
            carry_over(before.as_deref(), keys.to_vec(), self.key_generation().wrapping_add(1));
        let d = Discovered {
            doc: Value::Object(Default::default()),
            issuer: self.key.issuer.clone(),
            keys,
            fetched_at: now,
            key_generation,
        };
        self.install(d, before.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_jose::Algorithm;
    use gatehouse_jose::sign::SigningKey;

    /// A fresh public key, parsed as a JWKS fetch parses it.
    fn key(kid: Option<&str>) -> Arc<Jwk> {
        let mut k = SigningKey::generate(Algorithm::Es256).unwrap();
        if let Some(kid) = kid {
            k = k.with_kid(kid);
        }
        Arc::new(Jwk::from_json(k.public_jwk().unwrap()).unwrap())
    }

    /// The same key as fetched again: an equal JWK, another allocation.
    fn refetched(k: &Arc<Jwk>) -> Arc<Jwk> {
        Arc::new(Jwk::from_json(k.json().clone()).unwrap())
    }

    fn discovered(keys: Vec<Arc<Jwk>>, key_generation: u64) -> Discovered {
        let (keys, _) = carry_over(None, keys, 0);
        Discovered { doc: Value::Null, issuer: String::new(), keys, fetched_at: 0, key_generation }
    }

    #[test]
    fn keys_found_again_keep_their_arc_and_only_a_removal_moves_the_generation() {
        let (a, b, c, anon) = (key(Some("a")), key(Some("b")), key(Some("c")), key(None));
        let (first, generation) = carry_over(None, vec![a.clone(), anon.clone()], 3);
        assert_eq!(generation, 3, "with nothing before, the generation it is given");
        assert!(Arc::ptr_eq(&first.keys()[0], &a));
        let before = discovered(vec![a.clone(), b.clone(), anon.clone()], 7);

        // The same keys, fetched again and reordered: the old Arcs, the same generation.
        let (keys, generation) = carry_over(Some(&before), vec![refetched(&b), refetched(&anon), refetched(&a)], 99);
        assert_eq!(generation, 7);
        for (k, old) in keys.keys().iter().zip([&b, &anon, &a]) {
            assert!(Arc::ptr_eq(k, old));
        }
        // A key added: the same generation, the new key as fetched.
        let new = refetched(&c);
        let (keys, generation) =
            carry_over(Some(&before), vec![refetched(&a), refetched(&b), refetched(&anon), new.clone()], 99);
        assert_eq!(generation, 7);
        assert!(Arc::ptr_eq(&keys.keys()[3], &new));
        // A key gone (with or without a kid): the next generation.
        assert_eq!(carry_over(Some(&before), vec![refetched(&a), refetched(&anon)], 99).1, 8);
        assert_eq!(carry_over(Some(&before), vec![refetched(&a), refetched(&b)], 99).1, 8);
        assert_eq!(carry_over(Some(&before), vec![], 99).1, 8);
        // The same kid with other key material is another key: the old one is gone.
        let (keys, generation) = carry_over(Some(&before), vec![key(Some("a")), refetched(&b), refetched(&anon)], 99);
        assert_eq!(generation, 8);
        assert!(!Arc::ptr_eq(&keys.keys()[0], &a));
        // The generation never overflows into a panic.
        let last = discovered(vec![a.clone()], u64::MAX);
        assert_eq!(carry_over(Some(&last), vec![], 99).1, 0);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_never_overflows() {
        assert_eq!(backoff_after(1), BACKOFF_FIRST);
        assert_eq!(backoff_after(2), BACKOFF_FIRST * 2);
        assert_eq!(backoff_after(3), BACKOFF_FIRST * 4);
        for n in [0, 6, 31, 32, 33, 1000, u32::MAX] {
            assert!(backoff_after(n) <= BACKOFF_MAX, "{n}");
            assert!(backoff_after(n) >= BACKOFF_FIRST.min(BACKOFF_MAX), "{n}");
        }
        assert_eq!(backoff_after(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn the_documents_issuer_must_be_the_configured_one() {
        let doc = |v: &str| Some(Value::String(v.into()));
        let ok = |configured: &str, found: &str| check_issuer(configured, doc(found).as_ref(), &[]).is_ok();
        assert!(ok("https://a/realms/x", "https://a/realms/x"));
        assert!(ok("https://a/realms/x/", "https://a/realms/x"));
        assert!(ok("https://a/realms/x", "https://a/realms/x/"));
        assert!(ok("https://a/realms/x/.well-known/openid-configuration", "https://a/realms/x"));
        assert!(ok("https://a/.well-known/oauth-authorization-server", "https://a"));
        assert!(!ok("https://a/realms/x", "https://a/realms/y"));
        assert!(!ok("https://a/realms/x", "https://a/realms/x//"));
        assert!(!ok("https://a/realms/x", "http://a/realms/x"));
        assert!(!ok("https://a/realms/x", "https://a/realms/X"));
        assert!(!ok("https://a/realms/x", ""));
        // Entra ID's multi-tenant endpoint names a templated issuer.
        let common = "https://login.microsoftonline.com/common/v2.0";
        let templated = "https://login.microsoftonline.com/{tenantid}/v2.0";
        assert!(!ok(common, templated));
        assert!(check_issuer(common, doc(templated).as_ref(), &[templated.to_string()]).is_ok());
        assert!(check_issuer(common, doc(templated).as_ref(), &[format!("{templated}/")]).is_ok());
        // Absent or not a string: refused.
        assert!(check_issuer(common, None, &[]).is_err());
        assert!(check_issuer(common, Some(&serde_json::json!(["x"])), &[]).is_err());
        // What the log shows is escaped and short.
        let hostile = format!("https://evil\n\u{1b}[31m{}", "x".repeat(10_000));
        let e = check_issuer(common, doc(&hostile).as_ref(), &[]).unwrap_err();
        assert!(e.len() < 400 && !e.contains('\u{1b}') && !e.contains('\n'), "{e}");
    }

    #[test]
    fn discovery_url_appends_well_known_once() {
        assert_eq!(discovery_url("https://a/realms/x"), "https://a/realms/x/.well-known/openid-configuration");
        assert_eq!(discovery_url("https://a/realms/x/"), "https://a/realms/x/.well-known/openid-configuration");
        assert_eq!(
            discovery_url("https://a/.well-known/openid-configuration"),
            "https://a/.well-known/openid-configuration"
        );
    }
}

/// Shapes real providers and hostile inputs give.
#[cfg(test)]
mod shapes {
    use super::*;

    /// Entra ID's v1 endpoint: `config.issuer=https://login.microsoftonline.com/TENANT_ID` serves
    /// a document whose `issuer` is `https://sts.windows.net/TENANT_ID/`. Not identical, so it is
    /// refused unless `issuers_allowed` lists it, as `docs/providers.md` says to.
    #[test]
    fn the_documented_entra_v1_recipe_discovers_with_issuers_allowed() {
        let doc = Value::String("https://sts.windows.net/TENANT_ID/".into());
        let configured = "https://login.microsoftonline.com/TENANT_ID";
        assert!(check_issuer(configured, Some(&doc), &[]).is_err());
        assert!(check_issuer(configured, Some(&doc), &["https://sts.windows.net/TENANT_ID/".into()]).is_ok());
    }
}
