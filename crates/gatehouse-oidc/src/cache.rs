//! Per-instance caches of identity provider answers: token-endpoint results (`cache_tokens`),
//! introspection (`cache_introspection`) and userinfo (`cache_user_info`).
//!
//! Each is a bounded moka cache whose entries expire with the answer (`expires_in`, `exp`),
//! never later than `cache_ttl` (Kong's `cache_ttl_max`/`_min` adjust it). `try_get_with` makes
//! identical concurrent requests share one IdP call; failures are not cached. Hits are
//! synchronous (moka's sync cache): a cached grant costs no future and no channel. A config change
//! builds a new plugin instance, so the caches start empty.

use aws_lc_rs::digest;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// A cached value and the moment it stops being served.
#[derive(Debug)]
pub struct Timed<T> {
    /// The value.
    pub value: T,
    /// When the entry expires.
    pub until: Instant,
}

struct UntilField;

impl<K, T> moka::Expiry<K, Arc<Timed<T>>> for UntilField {
    fn expire_after_create(&self, _: &K, v: &Arc<Timed<T>>, now: Instant) -> Option<Duration> {
        Some(v.until.saturating_duration_since(now))
    }
}

/// A bounded cache with per-entry expiry and single-flight loading: a hit is a synchronous hash
/// lookup (no future, no channel); on a miss, one caller per key fetches while the others wait
/// for it. A failed fetch is not cached: the waiters then fetch themselves.
pub struct TimedCache<K, T> {
    cache: moka::sync::Cache<K, Arc<Timed<T>>>,
    inflight: Mutex<HashMap<K, Arc<Notify>>>,
}

/// A cache of at most `entries` entries.
pub fn timed<K, T>(entries: u64) -> TimedCache<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    T: Send + Sync + 'static,
{
    TimedCache {
        cache: moka::sync::Cache::builder().max_capacity(entries).expire_after(UntilField).build(),
        inflight: Mutex::default(),
    }
}

/// A cache of at most `entries` entries that always admits a new one, evicting the least
/// recently used: for records that must not be dropped on arrival. The default policy
/// (TinyLFU) admits a new entry only if it was looked up more often than the one it would
/// evict, so a full cache of often-read entries refuses every new one.
pub fn timed_lru<K, T>(entries: u64) -> TimedCache<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    T: Send + Sync + 'static,
{
    TimedCache {
        cache: moka::sync::Cache::builder()
            .max_capacity(entries)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .expire_after(UntilField)
            .build(),
        inflight: Mutex::default(),
    }
}

/// Removes the in-flight mark and wakes the waiters when the leader finishes, or is dropped
/// (its request cancelled) before it could.
struct Lead<'a, K: Hash + Eq> {
    inflight: &'a Mutex<HashMap<K, Arc<Notify>>>,
    key: &'a K,
}

impl<K: Hash + Eq> Drop for Lead<'_, K> {
    fn drop(&mut self) {
        let n = self.inflight.lock().unwrap_or_else(|e| e.into_inner()).remove(self.key);
        if let Some(n) = n {
            n.notify_waiters();
        }
    }
}

impl<K, T> TimedCache<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    T: Send + Sync + 'static,
{
    /// The cached value, if any (expired entries are gone).
    pub fn get(&self, key: &K) -> Option<Arc<Timed<T>>> {
        self.cache.get(key)
    }

    /// Keeps `value` under `key` until its `until`, replacing any entry.
    pub fn insert(&self, key: K, value: Arc<Timed<T>>) {
        self.cache.insert(key, value);
    }

    /// Drops an entry.
    pub fn invalidate(&self, key: &K) {
        self.cache.invalidate(key);
    }

    /// Applies pending admissions and evictions now (moka defers them).
    #[cfg(test)]
    pub fn settle(&self) {
        self.cache.run_pending_tasks();
    }

    /// The cached value if `keep` says it may still be served, or the one the future `fetch`
    /// makes (called only if this caller ends up fetching). The fetch future is made and boxed
    /// only then: a hit carries none of its size.
    pub async fn try_get_with<E, F>(
        &self,
        key: K,
        keep: impl Fn(&T) -> bool,
        fetch: impl FnOnce() -> F,
    ) -> Result<Arc<Timed<T>>, Arc<E>>
    where
        F: Future<Output = Result<Arc<Timed<T>>, E>>,
    {
        let mut fetch = Some(fetch);
        loop {
            if let Some(v) = self.cache.get(&key) {
                if keep(&v.value) {
                    return Ok(v);
                }
                self.cache.invalidate(&key);
                continue;
            }
            let waiting = {
                let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
                match map.get(&key) {
                    Some(n) => Some(n.clone()),
                    None => {
                        map.insert(key.clone(), Arc::new(Notify::new()));
                        None
                    }
                }
            };
            let Some(n) = waiting else {
                let _lead = Lead { inflight: &self.inflight, key: &key };
                let make = fetch.take().unwrap_or_else(|| unreachable!("a caller leads at most once"));
                let r = Box::pin(make()).await;
                if let Ok(v) = &r {
                    self.cache.insert(key.clone(), v.clone());
                }
                return r.map_err(Arc::new);
            };
            let notified = n.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            // The leader may have finished between the lookups above: look again before waiting.
            let still = {
                let map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
                map.get(&key).is_some_and(|m| Arc::ptr_eq(m, &n))
            };
            if still && self.cache.get(&key).is_none() {
                notified.await;
            }
        }
    }
}

/// Through `cache` when there is one (a `cache_*` setting is on), else straight to `fetch`; a
/// cached value is served while `keep` says so. A failure shared with waiting callers comes back
/// as the fetch's own error.
pub async fn through<K, T, E: Clone, F>(
    cache: Option<&TimedCache<K, T>>,
    key: K,
    keep: impl Fn(&T) -> bool,
    fetch: impl FnOnce() -> F,
) -> Result<Arc<Timed<T>>, E>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    T: Send + Sync + 'static,
    F: Future<Output = Result<Arc<Timed<T>>, E>>,
{
    match cache {
        Some(c) => {
            c.try_get_with(key, keep, fetch).await.map_err(|e| Arc::try_unwrap(e).unwrap_or_else(|e| (*e).clone()))
        }
        None => Box::pin(fetch()).await,
    }
}

/// The longest duration any config value means: ten years. Kong's schema leaves these numbers
/// unbounded; clamping keeps every `now + ttl` and `Instant + Duration` far from overflow.
pub const MAX_SECS: i64 = 10 * 366 * 24 * 3600;

/// A config number of seconds as whole seconds, clamped to ±[`MAX_SECS`].
pub fn secs_of(f: f64) -> i64 {
    if f.is_finite() { (f as i64).clamp(-MAX_SECS, MAX_SECS) } else { 0 }
}

/// The current Unix time in seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The longest anything is cached: a year. Config values are not bounded by the schema
/// (`cache_ttl: 1e30` is valid), and `Instant + Duration` panics when it overflows.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// `now + ttl`, with `ttl` capped at [`MAX_TTL`]: never panics, whatever the config says.
pub fn deadline(now: Instant, ttl: Duration) -> Instant {
    let ttl = ttl.min(MAX_TTL);
    now.checked_add(ttl).unwrap_or(now)
}

/// Kong's TTL rule: the answer's own lifetime (`lifetime`, seconds) when it has one, else
/// `cache_ttl`; never above `cache_ttl` nor `cache_ttl_max`, never below `cache_ttl_min`.
#[derive(Clone, Copy, Debug)]
pub struct TtlRule {
    /// `cache_ttl`.
    pub ttl: i64,
    /// `cache_ttl_max` (0 = none).
    pub max: i64,
    /// `cache_ttl_min` (0 = none).
    pub min: i64,
}

impl TtlRule {
    /// How long to keep an answer that lives `lifetime` seconds.
    pub fn ttl(&self, lifetime: Option<i64>) -> Duration {
        let mut t = lifetime.map_or(self.ttl, |l| l.min(self.ttl));
        if self.max > 0 {
            t = t.min(self.max);
        }
        if self.min > 0 {
            t = t.max(self.min.min(if self.max > 0 { self.max } else { i64::MAX }));
        }
        Duration::from_secs(u64::try_from(t).unwrap_or(0)).min(MAX_TTL)
    }

    /// Like [`TtlRule::ttl`], but never longer than `lifetime`, not even for `cache_ttl_min`:
    /// for answers that must not be served once they have expired (introspection's `exp`).
    pub fn ttl_within(&self, lifetime: Option<i64>) -> Duration {
        let t = self.ttl(lifetime);
        match lifetime {
            Some(l) => t.min(Duration::from_secs(u64::try_from(l).unwrap_or(0))),
            None => t,
        }
    }
}

/// The key of a token-endpoint result: a SHA-256 over everything that selects the answer, so a
/// wrong password can never hit a right one's entry, and two plugins (different salts) never
/// share entries.
pub fn token_key(parts: &[&str]) -> [u8; 32] {
    KeyPrefix::new(&[]).key(parts)
}

/// The fixed first parts of token keys (issuer, grant, salt, scope), hashed once per plugin
/// instance, so a request hashes only its own credentials: one SHA-256 block instead of three
/// for a password grant.
#[derive(Clone)]
pub struct KeyPrefix(digest::Context);

impl KeyPrefix {
    /// The hash state after `parts`.
    pub fn new(parts: &[&str]) -> KeyPrefix {
        let mut ctx = digest::Context::new(&digest::SHA256);
        add(&mut ctx, parts);
        KeyPrefix(ctx)
    }

    /// The key of the prefix's parts followed by `parts`.
    pub fn key(&self, parts: &[&str]) -> [u8; 32] {
        let mut ctx = self.0.clone();
        add(&mut ctx, parts);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }
}

fn add(ctx: &mut digest::Context, parts: &[&str]) {
    for p in parts {
        // Length-prefixed, so ("ab","c") and ("a","bc") differ.
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_are_clamped_to_ten_years() {
        assert_eq!(secs_of(1e30), MAX_SECS);
        assert_eq!(secs_of(-1e30), -MAX_SECS);
        assert_eq!(secs_of(f64::NAN), 0);
        assert_eq!(secs_of(1.5), 1);
    }

    #[test]
    fn ttl_rule() {
        let r = TtlRule { ttl: 3600, max: 0, min: 0 };
        assert_eq!(r.ttl(None), Duration::from_secs(3600));
        assert_eq!(r.ttl(Some(300)), Duration::from_secs(300));
        assert_eq!(r.ttl(Some(7200)), Duration::from_secs(3600));
        assert_eq!(r.ttl(Some(-5)), Duration::ZERO);
        let r = TtlRule { ttl: 3600, max: 100, min: 10 };
        assert_eq!(r.ttl(Some(300)), Duration::from_secs(100));
        assert_eq!(r.ttl(Some(2)), Duration::from_secs(10));
        // `cache_ttl_min` never keeps an answer past its own end.
        assert_eq!(r.ttl_within(Some(2)), Duration::from_secs(2));
        assert_eq!(r.ttl_within(Some(300)), Duration::from_secs(100));
        assert_eq!(r.ttl_within(Some(-5)), Duration::ZERO);
        assert_eq!(r.ttl_within(Some(i64::MIN)), Duration::ZERO);
        assert_eq!(r.ttl_within(None), Duration::from_secs(100));
    }

    #[test]
    fn extreme_ttls_neither_panic_nor_exceed_the_cap() {
        // What `cache_ttl: 1e30` becomes after the float-to-int conversion, and its opposite.
        for (ttl, max, min) in [(i64::MAX, 0, 0), (i64::MAX, i64::MAX, i64::MAX), (i64::MIN, i64::MIN, i64::MIN)] {
            let r = TtlRule { ttl, max, min };
            for lifetime in [None, Some(i64::MAX), Some(i64::MIN), Some(0)] {
                let t = r.ttl(lifetime);
                assert!(t <= MAX_TTL, "{r:?} {lifetime:?} gave {t:?}");
                let now = Instant::now();
                assert!(deadline(now, t) >= now);
            }
        }
        let now = Instant::now();
        assert_eq!(deadline(now, Duration::MAX), now + MAX_TTL);
        assert_eq!(deadline(now, Duration::from_secs(5)), now + Duration::from_secs(5));
    }

    #[tokio::test]
    async fn one_fetch_for_concurrent_misses_and_failures_are_not_cached() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let cache: Arc<TimedCache<u32, u32>> = Arc::new(timed(10));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .try_get_with(
                        1,
                        |_| true,
                        || async {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok::<_, ()>(Arc::new(Timed { value: 7, until: Instant::now() + Duration::from_secs(60) }))
                        },
                    )
                    .await
                    .map(|t| t.value)
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task"), Ok(7));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let r = cache.try_get_with(2, |_| true, || async { Err::<Arc<Timed<u32>>, _>("down") }).await;
        assert_eq!(r.map(|t| t.value), Err(Arc::new("down")));
        assert!(cache.get(&2).is_none(), "errors are not cached");
        // A cancelled leader does not leave waiters hanging.
        let slow = cache.try_get_with(
            3,
            |_| true,
            || async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, ()>(Arc::new(Timed { value: 0, until: Instant::now() }))
            },
        );
        assert!(tokio::time::timeout(Duration::from_millis(20), slow).await.is_err());
        let quick = cache.try_get_with(
            3,
            |_| true,
            || async { Ok::<_, ()>(Arc::new(Timed { value: 3, until: Instant::now() + Duration::from_secs(60) })) },
        );
        let got = tokio::time::timeout(Duration::from_secs(1), quick).await.expect("not stuck");
        assert_eq!(got.map(|t| t.value), Ok(3));
    }

    #[test]
    fn a_prefix_gives_the_key_of_all_the_parts() {
        let prefix = KeyPrefix::new(&["iss", "password", "salt"]);
        assert_eq!(prefix.key(&["john", "doe"]), token_key(&["iss", "password", "salt", "john", "doe"]));
        assert_ne!(prefix.key(&["john", "doe"]), prefix.key(&["john", "doe2"]));
        assert_ne!(prefix.key(&["john", "doe"]), KeyPrefix::new(&["iss", "password", "salt2"]).key(&["john", "doe"]));
    }

    #[test]
    fn token_keys_differ_by_every_part() {
        let a = token_key(&["iss", "password", "john", "doe", "salt"]);
        assert_ne!(a, token_key(&["iss", "password", "john", "doe2", "salt"]));
        assert_ne!(a, token_key(&["iss", "password", "john", "doe", "salt2"]));
        assert_ne!(token_key(&["ab", "c"]), token_key(&["a", "bc"]));
        assert_eq!(a, token_key(&["iss", "password", "john", "doe", "salt"]));
    }
}
