//! Per-instance caches of identity provider answers: token-endpoint results (`cache_tokens`),
//! introspection (`cache_introspection`) and userinfo (`cache_user_info`).
//!
//! Each is a bounded moka cache whose entries expire with the answer (`expires_in`, `exp`),
//! never later than `cache_ttl` (Kong's `cache_ttl_max`/`_min` adjust it). `try_get_with` makes
//! identical concurrent requests share one IdP call; failures are not cached. A config change
//! builds a new plugin instance, so the caches start empty.

use aws_lc_rs::digest;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// A bounded cache with per-entry expiry.
pub type TimedCache<K, T> = moka::future::Cache<K, Arc<Timed<T>>>;

/// A cache of at most `entries` entries.
pub fn timed<K, T>(entries: u64) -> TimedCache<K, T>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    T: Send + Sync + 'static,
{
    moka::future::Cache::builder().max_capacity(entries).expire_after(UntilField).build()
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
        Duration::from_secs(t.max(0) as u64)
    }
}

/// The key of a token-endpoint result: a SHA-256 over everything that selects the answer, so a
/// wrong password can never hit a right one's entry, and two plugins (different salts) never
/// share entries.
pub fn token_key(parts: &[&str]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        // Length-prefixed, so ("ab","c") and ("a","bc") differ.
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
