//! The session method and the sessions this plugin issues: the cookie store (sealing, chunking,
//! timeouts in `gatehouse-session`), the cache of opened sessions, resuming one (refreshing its
//! tokens when they are due), and issuing one after another method authenticated.

use crate::cache::{TtlRule, secs_of};
use crate::claims::IdContext;
use crate::decision::{Additions, Trail};
use crate::grants::Grants;
use crate::headers::Memo;
use crate::method::{Method, Methods};
use crate::outcome::{Outcome, SessionWrite};
use crate::respond::Failure;
use crate::session::SessionData;
use crate::settings::Settings;
use crate::tokens::{Expect, TokenError, VerifiedJwt, Verifier};
use gatehouse_core::plugin::BuildError;
use gatehouse_session::{OpenError, SameSite, Session, SessionCodec, SessionConfig, SessionStore};
use http::HeaderMap;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

/// How many opened sessions one instance keeps.
const CACHE_BYTES: u64 = 32 << 20;
/// What an entry holds besides its key (the session, its tokens and headers), roughly, for the
/// weigher: 16,384 sessions with small cookies, fewer with large ones.
const SESSION_OVERHEAD: usize = 2048;

/// An opened session's weight in the cache: its key's bytes and [`SESSION_OVERHEAD`].
#[allow(clippy::borrowed_box)] // moka hands the key as stored
fn weigh<V>(key: &Box<[u8]>, _: &V) -> u32 {
    u32::try_from(key.len().saturating_add(SESSION_OVERHEAD)).unwrap_or(u32::MAX)
}

/// A session cookie already opened and decoded, keyed by the request's `Cookie` bytes: the
/// envelope is authenticated, so the same bytes always open to the same session. Its deadlines,
/// and the keys of the verified tokens it holds, are checked again on every use.
pub(crate) struct CachedSession {
    session: Session,
    data: SessionData,
    pub access: Option<Arc<VerifiedJwt>>,
    id: Option<Arc<VerifiedJwt>>,
    session_id: Arc<str>,
    pub memo: Memo,
}

/// One instance's sessions.
pub(crate) struct Sessions {
    /// The cookie store.
    pub store: SessionStore,
    /// Opened sessions by cookie bytes. Keyed by whole `Cookie` headers (kilobytes): hashed with
    /// foldhash rather than SipHash. Only cookies that opened are inserted, but a holder of one
    /// session can vary the other cookies beside it, so the cache is bounded by the bytes of its
    /// keys ([`CACHE_BYTES`]), not only by its count.
    cache: moka::sync::Cache<Box<[u8]>, Arc<CachedSession>, foldhash::fast::RandomState>,
    /// The session method is on: other methods' successes start a session.
    on: bool,
    /// `disable_session`: methods whose successes start none.
    disabled_for: Methods,
    /// `refresh_tokens`.
    refresh_tokens: bool,
    /// `reverify`: a session's tokens are verified again when it is opened, with their
    /// signature checked unless `ignore_signature` names `session`. Off (Kong's default), they
    /// are trusted because this plugin sealed them.
    reverify: Option<Reverify>,
    leeway: i64,
    /// How long a new session's tokens count when the access token says nothing (`cache_ttl`).
    default_lifetime: i64,
    /// `client_id`, so a new session records its client by id, not by position.
    client_ids: Vec<String>,
}

impl Sessions {
    /// The sessions of a config, sealed with `key` (bound to this plugin and its issuer:
    /// `node::session_codec`).
    pub fn build(
        s: &Settings,
        methods: Methods,
        key: SessionCodec,
        leeway: i64,
        ttl: TtlRule,
    ) -> Result<Sessions, BuildError> {
        let session_config = SessionConfig {
            cookie_name: s.session_cookie_name.clone(),
            cookie_path: s.session_cookie_path.clone(),
            cookie_domain: s.session_cookie_domain.clone(),
            same_site: s
                .session_cookie_same_site
                .parse::<SameSite>()
                .map_err(|e| BuildError::field("session_cookie_same_site", e.to_string()))?,
            http_only: s.session_cookie_http_only,
            secure: s.session_cookie_secure,
            rolling_timeout: secs_of(s.session_rolling_timeout).max(0) as u64,
            idling_timeout: secs_of(s.session_idling_timeout).max(0) as u64,
            absolute_timeout: secs_of(s.session_absolute_timeout).max(0) as u64,
            audience: s.session_audience.clone(),
            issuer: s.issuer.clone(),
            clients: s.client_id.clone().unwrap_or_default(),
            ..SessionConfig::default()
        };
        let store = SessionStore::new(key, session_config).map_err(session_error)?;
        Ok(Sessions {
            store,
            // Entries are checked against the session's deadlines on every use; the TTL only
            // bounds how long a cookie no client sends any more stays in memory.
            cache: moka::sync::Cache::builder()
                .weigher(weigh::<Arc<CachedSession>>)
                .max_capacity(CACHE_BYTES)
                .time_to_live(Duration::from_secs(60))
                .build_with_hasher(foldhash::fast::RandomState::default()),
            on: methods.contains(Method::Session),
            disabled_for: Methods::of(s.disable_session.as_deref().unwrap_or_default()),
            refresh_tokens: s.refresh_tokens,
            reverify: s.reverify.then(|| Reverify {
                check_signature: s.verify_signature && !Methods::of(&s.ignore_signature).contains(Method::Session),
            }),
            leeway,
            default_lifetime: i64::try_from(ttl.ttl(None).as_secs()).unwrap_or(i64::MAX),
            client_ids: s.client_id.clone().unwrap_or_default(),
        })
    }

    /// The request's session from the cache, if it opened before and is still good as it is:
    /// inside its deadlines, not due for a save, its access token not due for a refresh, and
    /// the keys that verified its tokens still published (an entry never outlives its key).
    pub fn cached(&self, headers: &HeaderMap, now: i64, v: &Verifier) -> Option<Arc<CachedSession>> {
        let key = cookie_key(headers)?;
        let c = self.cache.get(key.as_ref())?;
        if self.still_good(&c, now) && v.holds_keys(&[&c.access, &c.id]) && self.reverified_in_time(&c, now, v) {
            return Some(c);
        }
        self.cache.invalidate(key.as_ref());
        None
    }

    /// With `reverify`, a cached session's tokens were verified when it was opened: on a hit
    /// their `exp`/`nbf` are checked again, as opening it again would (an expired ID token
    /// refuses the session, as in Kong). Without `reverify` the session's own deadlines decide.
    fn reverified_in_time(&self, c: &CachedSession, now: i64, v: &Verifier) -> bool {
        if self.reverify.is_none() || !v.verify_claims {
            return true;
        }
        [&c.access, &c.id].into_iter().flatten().all(|t| t.window(now, v.leeway).is_ok())
    }

    fn still_good(&self, c: &CachedSession, now: i64) -> bool {
        if self.store.expires_at(&c.session).is_some_and(|e| now >= e) || self.store.needs_save(&c.session, now) {
            return false;
        }
        !self.due(&c.data, now)
    }

    /// Whether the session's access token is past its time: due for a refresh when it has a
    /// refresh token (`leeway` early), else expired (`leeway` late).
    fn due(&self, data: &SessionData, now: i64) -> bool {
        // `expires` can come from a token's `exp` (any i64): saturate rather than overflow.
        let deadline = if self.refreshable(data) {
            data.expires.saturating_sub(self.leeway)
        } else {
            data.expires.saturating_add(self.leeway)
        };
        data.expires != 0 && now >= deadline
    }

    fn refreshable(&self, data: &SessionData) -> bool {
        self.refresh_tokens && data.refresh_token.is_some()
    }

    /// The session method: `None` when the request carries no session of ours that opens (the
    /// next credential is looked for), else the session's outcome or why it is refused.
    #[allow(clippy::too_many_arguments)]
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        now: i64,
        https: bool,
        trail: &mut Trail,
        grants: &Grants,
        v: &Verifier,
    ) -> Option<Result<Outcome, Failure>> {
        // A cookie seen before skips opening and decoding. A touched cookie went out with the
        // response that touched it; requests still carrying the old one (in flight then, or a
        // client that ignores cookies) are served without repeating it. When the entry ages
        // out, the old cookie is opened and touched again.
        if let Some(c) = self.cached(headers, now, v) {
            trail.strip_session = true;
            // Ours (it opened before): a refusal may destroy it, as when it was opened now.
            trail.session_cookies = Some(session_cookies(headers));
            return Some(Ok(Outcome {
                client: c.data.client,
                access_token: Some(c.data.access_token.clone()),
                id_token: c.data.id_token.clone(),
                refresh_token: c.data.refresh_token.clone(),
                access: c.access.clone(),
                id: c.id.clone(),
                expires: c.data.expires,
                session_id: Some(c.session_id.clone()),
                memo: Some(c.memo.clone()),
                ..Outcome::new(Method::Session)
            }));
        }
        // Other cookies only: nothing to open, and no key to keep.
        trail.present_chunks = self.store.present_chunks(headers);
        if trail.present_chunks == 0 {
            return None;
        }
        match self.store.open(headers, now) {
            Ok(opened) => {
                trail.strip_session = true;
                trail.session_cookies = Some(session_cookies(headers));
                let mut data = SessionData::decode(&opened.session.data)?;
                // The client the session names, wherever it now is in `client_id`.
                data.client = opened.client.unwrap_or(data.client);
                let key = cookie_key(headers).map(|k| k.into_owned().into_boxed_slice());
                Some(self.resume(opened.session, opened.chunks, data, now, https, trail, key, grants, v).await)
            }
            Err(OpenError::Missing) => None,
            Err(e) => {
                tracing::debug!(error = ?e, "session cookie not usable");
                trail.strip_session = true;
                // Sealed by this instance but no longer usable: a refusal may expire it. One that
                // does not open was sealed by another plugin (the key is per plugin and issuer)
                // or is junk; expiring it would sign the user out of that plugin.
                if !matches!(e, OpenError::Malformed | OpenError::Invalid) {
                    trail.session_cookies = Some(session_cookies(headers));
                }
                None
            }
        }
    }

    /// A session just opened: its tokens, refreshed when due; a touch sealed now; the entry
    /// cached for the next request with the same cookie bytes.
    #[allow(clippy::too_many_arguments)]
    async fn resume(
        &self,
        mut session: Session,
        chunks: usize,
        mut data: SessionData,
        now: i64,
        https: bool,
        trail: &mut Trail,
        key: Option<Box<[u8]>>,
        grants: &Grants,
        v: &Verifier,
    ) -> Result<Outcome, Failure> {
        let mut changed = false;
        if self.due(&data, now) {
            if !self.refreshable(&data) {
                return Err(Failure::expired(if self.refresh_tokens {
                    "access token cannot be refreshed in absence of refresh token"
                } else {
                    "access token has expired and refreshing of tokens was disabled"
                }));
            }
            let client = data.client.min(grants.clients.len().saturating_sub(1));
            let rt = data.refresh_token.clone().unwrap_or_default();
            match grants.refresh(v, client, &rt, now).await {
                Ok(o) => {
                    data.access_token = o.access_token.clone().unwrap_or_default();
                    data.id_token = o.id_token.clone().or(data.id_token.take());
                    data.refresh_token = o.refresh_token.clone().or(data.refresh_token.take());
                    data.expires = o.expires;
                    session.regenerate_id();
                    changed = true;
                }
                Err(e) if now < data.expires => {
                    tracing::warn!(
                        reason = e.reason(),
                        "continuing with the non-expired access token despite the refresh failure"
                    );
                }
                Err(e) => return Err(e),
            }
        }
        let (access, id) = match &self.reverify {
            Some(r) => r.verify(&data, now, grants, v).await?,
            // The session's tokens were sealed by this plugin: read without another signature
            // check. (A verified token from the cache keeps its key, and so its entry below
            // never outlives that key; the session itself does, as in Kong.)
            None => {
                let access = match v.cached(&data.access_token, now).ok().flatten() {
                    Some(a) => Some(a),
                    None => VerifiedJwt::read_unverified(&data.access_token).map(Arc::new),
                };
                (access, data.id_token.as_deref().and_then(VerifiedJwt::read_unverified).map(Arc::new))
            }
        };
        if changed {
            session.data = data.encode();
        }
        let session_id: Arc<str> = session.id_string().into();
        if !changed && self.store.needs_save(&session, now) {
            // Only the idle clock moves: seal it now, so the cached entry below (old cookie bytes →
            // touched session) serves the requests still carrying the old cookie without sealing again.
            self.save(&mut session, now, https, chunks, &mut trail.additions);
        }
        let mut memo = None;
        if !changed && let Some(key) = key {
            let c = Arc::new(CachedSession {
                session: session.clone(),
                data: data.clone(),
                access: access.clone(),
                id: id.clone(),
                session_id: session_id.clone(),
                memo: Memo::default(),
            });
            memo = Some(c.memo.clone());
            self.cache.insert(key, c);
        }
        Ok(Outcome {
            memo,
            session_id: Some(session_id),
            client: data.client,
            access_token: Some(data.access_token),
            id_token: data.id_token,
            refresh_token: data.refresh_token,
            access,
            id,
            session: changed.then_some(SessionWrite { session, previous_chunks: chunks }),
            expires: data.expires,
            ..Outcome::new(Method::Session)
        })
    }

    /// After authorization: a new session when another method authenticated (unless
    /// `disable_session` names it), and the refreshed one sealed.
    pub fn issue(&self, o: &mut Outcome, subject: Option<String>, now: i64, https: bool, trail: &mut Trail) {
        if o.method != Method::Session && self.on && !self.disabled_for.contains(o.method) {
            let expires = if o.expires != 0 { o.expires } else { now.saturating_add(self.default_lifetime) };
            let data = SessionData {
                client: o.client,
                access_token: o.access_token.clone().unwrap_or_default(),
                id_token: o.id_token.clone(),
                refresh_token: o.refresh_token.clone(),
                expires,
                auth_method: o.method.name().to_string(),
            };
            let previous_chunks = trail.present_chunks;
            let session = self.store.new_session_for(
                self.client_ids.get(o.client).map(String::as_str),
                now,
                subject,
                data.encode(),
            );
            o.session_id = Some(session.id_string().into());
            o.session = Some(SessionWrite { session, previous_chunks });
        }
        if let Some(mut w) = o.session.take() {
            self.save(&mut w.session, now, https, w.previous_chunks, &mut trail.additions);
        }
    }

    fn save(&self, session: &mut Session, now: i64, https: bool, chunks: usize, additions: &mut Additions) {
        match self.store.save(session, now, https, chunks) {
            Ok(cookies) => additions.set_cookies.extend(cookies),
            Err(e) => tracing::warn!(error = %e, "session not saved"),
        }
    }
}

/// `reverify`: how a session's tokens are verified when it is opened.
struct Reverify {
    /// `verify_signature`, unless `ignore_signature` names `session`.
    check_signature: bool,
}

impl Reverify {
    /// The session's access token (a JWT; an opaque one is left as it is) and ID token,
    /// verified as a grant's are. The opened session then holds them with their keys, so it
    /// is dropped from the cache when a JWKS refresh removes one, and opening it again fails.
    async fn verify(
        &self,
        data: &SessionData,
        now: i64,
        grants: &Grants,
        v: &Verifier,
    ) -> Result<(Option<Arc<VerifiedJwt>>, Option<Arc<VerifiedJwt>>), Failure> {
        let access = if self.check_signature {
            v.access_token(&data.access_token, now).await
        } else {
            v.verify(&data.access_token, false, Expect::Access, now).await.map(Arc::new)
        };
        let access = match access {
            Ok(a) => Some(a),
            Err(TokenError::NotJwt) => None,
            Err(e) => return Err(Failure::of_token(e)),
        };
        let Some(id) = data.id_token.as_deref() else { return Ok((access, None)) };
        let cx = IdContext {
            client_id: grants.clients.get(data.client).map(|c| c.id.as_str()),
            access_token: Some(&data.access_token),
            ..IdContext::default()
        };
        let id = v.verify(id, self.check_signature, Expect::Id(cx), now).await.map_err(Failure::of_token)?;
        Ok((access, Some(Arc::new(id))))
    }
}

/// A copy of the request's `Cookie` headers (shared bytes, no copy of the values).
fn session_cookies(headers: &HeaderMap) -> HeaderMap {
    let mut cookies = HeaderMap::new();
    for value in headers.get_all(http::header::COOKIE) {
        cookies.append(http::header::COOKIE, value.clone());
    }
    cookies
}

/// The cache key of a request's session: its `Cookie` header bytes, borrowed when there is one
/// header, joined with `\n` (which no header value holds) when there are several. `None`
/// without cookies.
fn cookie_key(headers: &HeaderMap) -> Option<Cow<'_, [u8]>> {
    let mut all = headers.get_all(http::header::COOKIE).iter();
    let first = all.next()?;
    let Some(second) = all.next() else { return Some(first.as_bytes().into()) };
    let mut key = Vec::with_capacity(first.len() + second.len() + 1);
    key.extend_from_slice(first.as_bytes());
    for v in std::iter::once(second).chain(all) {
        key.push(b'\n');
        key.extend_from_slice(v.as_bytes());
    }
    Some(key.into())
}

/// The session config's errors, each at the field it is about.
fn session_error(e: gatehouse_session::ConfigError) -> BuildError {
    use gatehouse_session::ConfigError as E;
    let field = match &e {
        E::CookieName => "session_cookie_name",
        E::CookiePath => "session_cookie_path",
        E::CookieDomain => "session_cookie_domain",
        E::Audience => "session_audience",
        E::Issuer => "issuer",
        E::Client => "client_id",
        E::SameSite(_) => "session_cookie_same_site",
        E::RememberCookieName => "session_remember_cookie_name",
        // The cookie's fixed overhead outgrows the size limit only with a long path or domain.
        E::MaxCookieSize { .. } => "session_cookie_path",
    };
    // The session crate prefixes its messages with the field name; the path already says it.
    let msg = e.to_string();
    let msg = msg.strip_prefix(field).and_then(|m| m.strip_prefix(": ")).map_or(msg.clone(), str::to_string);
    BuildError::field(field, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_opened_session_cache_is_bounded_by_bytes_not_only_by_count() {
        // A holder of one session who pads the Cookie header to the 64 KiB head limit with
        // varying junk gets at most a few hundred entries, not 16,384 × 64 KiB.
        let padded = vec![b'x'; 64 * 1024].into_boxed_slice();
        assert!(CACHE_BYTES / u64::from(weigh(&padded, &())) < 600);
        let small = vec![b'x'; 300].into_boxed_slice();
        assert!(CACHE_BYTES / u64::from(weigh(&small, &())) >= 10_000, "ordinary cookies still fit by the thousand");
    }
}
