//! The session method and the sessions this plugin issues: the cookie store (sealing, chunking,
//! timeouts, binding and the remember cookie in `gatehouse-session`), the cache of opened
//! sessions, resuming one (refreshing its tokens when they are due), recreating one from the
//! remember cookie, and issuing one after another method authenticated.

use crate::cache::{self, Timed, TimedCache, TtlRule, secs_of};
use crate::claims::IdContext;
use crate::decision::Trail;
use crate::grants::{Granted, Grants, Refreshed};
use crate::headers::{Memo, SessionFacts};
use crate::method::{Method, Methods};
use crate::outcome::{Outcome, SessionWrite};
use crate::respond::Failure;
use crate::session::SessionData;
use crate::settings::Settings;
use crate::tokens::{Expect, TokenError, VerifiedJwt, Verifier};
use gatehouse_core::plugin::BuildError;
use gatehouse_session::{
    Bind, Binding, OpenError, Remember, SameSite, Session, SessionCodec, SessionConfig, SessionStore,
};
use http::HeaderMap;
use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
    /// The binding it opened under: a hit needs the same (`session_bind`).
    pub binding: Binding,
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
    /// Sessions logged out on this node (`logout.rs`).
    revoked: Revoked,
    /// The session method is on: other methods' successes start a session.
    pub on: bool,
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
    /// `session_request_headers` or `session_response_headers` is set: each request records
    /// its session's facts.
    facts: bool,
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
            bind: Bind::from_names(s.session_bind.iter().flatten().map(String::as_str))
                .ok_or_else(|| BuildError::field("session_bind", "expected ip, scheme or user-agent"))?,
            remember: s.session_remember.then(|| Remember {
                cookie_name: s.session_remember_cookie_name.clone(),
                rolling_timeout: secs_of(s.session_remember_rolling_timeout).max(0) as u64,
                absolute_timeout: secs_of(s.session_remember_absolute_timeout).max(0) as u64,
            }),
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
            revoked: Revoked::new(REVOKED_ENTRIES),
            on: methods.contains(Method::Session),
            disabled_for: Methods::of(s.disable_session.as_deref().unwrap_or_default()),
            refresh_tokens: s.refresh_tokens,
            reverify: s.reverify.then(|| Reverify {
                check_signature: s.verify_signature && !Methods::of(&s.ignore_signature).contains(Method::Session),
            }),
            leeway,
            default_lifetime: i64::try_from(ttl.ttl(None).as_secs()).unwrap_or(i64::MAX),
            client_ids: s.client_id.clone().unwrap_or_default(),
            facts: s.session_request_headers.as_ref().is_some_and(|h| !h.is_empty())
                || s.session_response_headers.as_ref().is_some_and(|h| !h.is_empty()),
        })
    }

    /// The request's `session_bind` facts: its client address (the forwarded one, from trusted
    /// proxies), scheme and `User-Agent`. Nothing to compute when nothing is bound.
    pub fn binding(&self, ip: IpAddr, https: bool, headers: &HeaderMap) -> Binding {
        if !self.store.config().bind.any() {
            return Binding::NONE;
        }
        let ua = headers.get(http::header::USER_AGENT).map_or(&[][..], |v| v.as_bytes());
        self.store.binding(ip, https, ua)
    }

    /// The request's session from the cache, if it opened before and is still good as it is:
    /// inside its deadlines, not due for a save, its access token not due for a refresh, and
    /// the keys that verified its tokens still published (an entry never outlives its key).
    pub fn cached(&self, headers: &HeaderMap, now: i64, v: &Verifier) -> Option<Arc<CachedSession>> {
        let key = cookie_key(headers)?;
        let c = self.cache.get(key.as_ref())?;
        if self.still_good(&c, now)
            && !self.is_revoked(&c.session)
            && v.holds_keys(&[&c.access, &c.id])
            && self.reverified_in_time(&c, now, v)
        {
            return Some(c);
        }
        self.cache.invalidate(key.as_ref());
        None
    }

    /// Whether `session` was logged out on this node.
    pub fn is_revoked(&self, session: &Session) -> bool {
        self.revoked.any.load(Ordering::Acquire) && self.revoked.ids.get(&session.id).is_some()
    }

    /// Ends `session` on this node (logout): the opened-session entry of these cookie bytes
    /// goes, and its id is refused for as long as a cookie of it sealed up to now could open
    /// (at most a year). A cookie cannot be recalled from its holders; this refuses the copies.
    pub fn revoke(&self, session: &Session, headers: &HeaderMap, now: i64) {
        if let Some(key) = cookie_key(headers) {
            self.cache.invalidate(key.as_ref());
        }
        let until = cache::deadline(Instant::now(), Duration::from_secs(self.revoked_for(session, now)));
        self.revoked.ids.insert(session.id, Arc::new(Timed { value: (), until }));
        self.revoked.any.store(true, Ordering::Release);
    }

    /// Seconds until no cookie of `session` sealed up to `now` can open: each was saved and
    /// touched at the latest now (`u64::MAX` when no timeout is on). The remember cookie holds
    /// the same id and usually outlives the session cookie, so its deadline counts too.
    fn revoked_for(&self, session: &Session, now: i64) -> u64 {
        let mut latest = session.clone();
        latest.rolled_at = now;
        latest.last_seen = now;
        let left =
            |store: &SessionStore| store.expires_at(&latest).map_or(u64::MAX, |e| e.saturating_sub(now).max(1) as u64);
        let remember = self.store.remember().map_or(0, left);
        left(&self.store).max(remember)
    }

    /// Logout: the request's session, opened under `binding` from its session cookie, else from
    /// its remember cookie, is refused from now on (both cookies' ids). Returns its data when it
    /// opened and was not logged out before, and whether the cookies are this instance's (to be
    /// expired). A cookie that does not open was sealed by another plugin, under another
    /// binding, or is junk: left alone, as a refusal leaves it.
    pub fn end(&self, headers: &HeaderMap, binding: &Binding, now: i64) -> (Option<SessionData>, bool) {
        let mut data = None;
        let mut ours = false;
        let stores = [Some(&self.store), self.store.remember()];
        for store in stores.into_iter().flatten() {
            if store.present_chunks(headers) == 0 {
                continue;
            }
            match store.open_bound(headers, now, binding) {
                Ok(opened) => {
                    ours = true;
                    if self.is_revoked(&opened.session) {
                        continue;
                    }
                    self.revoke(&opened.session, headers, now);
                    if data.is_none() {
                        data = SessionData::decode(&opened.session.data).map(|mut d| {
                            d.client = opened.client.unwrap_or(d.client);
                            d
                        });
                    }
                }
                Err(OpenError::Missing | OpenError::Malformed | OpenError::Invalid) => {}
                // Ours, but expired or no longer for this config: expired in the browser too.
                Err(_) => ours = true,
            }
        }
        (data, ours)
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
        // A cached session opened under another binding is not this client's: it is opened
        // (and refused) below, and the entry stays for the client it belongs to.
        if let Some(c) = self.cached(headers, now, v).filter(|c| c.binding.matches(&trail.binding)) {
            trail.strip_session = true;
            // Ours (it opened before): a refusal may destroy it, as when it was opened now.
            trail.session_cookies = Some(session_cookies(headers));
            self.record(trail, &c.session, now);
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
        trail.remember_chunks = self.store.remember().map_or(0, |r| r.present_chunks(headers));
        if trail.present_chunks == 0 && trail.remember_chunks == 0 {
            return None;
        }
        let opened = match trail.present_chunks {
            0 => Err(OpenError::Missing),
            _ => self.store.open_bound(headers, now, &trail.binding),
        };
        match opened {
            Ok(opened) if self.is_revoked(&opened.session) => {
                tracing::debug!("session cookie of a session that was logged out");
                trail.strip_session = true;
                trail.session_cookies = Some(session_cookies(headers));
                None
            }
            Ok(opened) => {
                trail.strip_session = true;
                trail.session_cookies = Some(session_cookies(headers));
                let mut data = SessionData::decode(&opened.session.data)?;
                // The client the session names, wherever it now is in `client_id`.
                data.client = opened.client.unwrap_or(data.client);
                self.record(trail, &opened.session, now);
                let key = cookie_key(headers).map(|k| k.into_owned().into_boxed_slice());
                Some(self.resume(opened.session, opened.chunks, data, now, https, trail, key, grants, v).await)
            }
            Err(e) => {
                if e != OpenError::Missing {
                    tracing::debug!(error = ?e, "session cookie not usable");
                    not_usable(e, headers, trail);
                }
                // As lua-resty-session: a session cookie that is gone or does not open is
                // recreated from the remember cookie, when there is one.
                if trail.remember_chunks == 0 {
                    return None;
                }
                self.remembered(headers, now, https, trail, grants, v).await
            }
        }
    }

    /// A new session made from the request's remember cookie (a new id, created now, the
    /// remembered tokens and subject), then resumed as an opened one: refreshed when due,
    /// refused when its tokens are over. Both cookies are saved (`issue`).
    async fn remembered(
        &self,
        headers: &HeaderMap,
        now: i64,
        https: bool,
        trail: &mut Trail,
        grants: &Grants,
        v: &Verifier,
    ) -> Option<Result<Outcome, Failure>> {
        let r = self.store.remember()?;
        let opened = match r.open_bound(headers, now, &trail.binding) {
            Ok(opened) => opened,
            Err(e) => {
                tracing::debug!(error = ?e, "remember cookie not usable");
                not_usable(e, headers, trail);
                return None;
            }
        };
        trail.strip_session = true;
        trail.session_cookies = Some(session_cookies(headers));
        // A logged-out session's remember cookie (a copy kept past the logout) makes no new one.
        if self.is_revoked(&opened.session) {
            tracing::debug!("remember cookie of a session that was logged out");
            return None;
        }
        let mut data = SessionData::decode(&opened.session.data)?;
        data.client = opened.client.unwrap_or(data.client);
        let old = opened.session;
        let mut session = self.store.new_session_for(old.client.as_deref(), now, old.subject, Vec::new());
        session.data = old.data;
        trail.remember_since = Some(old.created_at);
        self.record(trail, &session, now);
        let fresh = session.clone();
        let chunks = trail.present_chunks;
        let mut resumed = self.resume(session, chunks, data, now, https, trail, None, grants, v).await;
        // Unrefreshed, the new session is saved as it was made.
        if let Ok(o) = &mut resumed
            && o.session.is_none()
        {
            o.session = Some(SessionWrite { session: fresh, previous_chunks: chunks });
        }
        Some(resumed)
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
            // Made once per refresh, by whichever request of the session refreshes first; the
            // others (same refresh token) get the same session, id and all.
            let renew = |g: &Granted| {
                let next = SessionData {
                    access_token: g.ts.access_token.clone(),
                    // An answer without them keeps the old ones (Kong).
                    id_token: g.ts.id_token.clone().or_else(|| data.id_token.clone()),
                    refresh_token: g.ts.refresh_token.clone().or_else(|| data.refresh_token.clone()),
                    expires: self.expires_of(g.expires, now),
                    ..data.clone()
                };
                let mut session = session.clone();
                session.regenerate_id();
                session.data = next.encode();
                Refreshed { session, data: next }
            };
            match grants.refresh_once(v, client, &rt, now, renew).await {
                // The refresh another request of this session made moments ago, logged out
                // since: a cookie from before that refresh must not bring it back.
                Ok(r) if self.is_revoked(&r.value.session) => {
                    return Err(Failure::unauthorized("the session was logged out"));
                }
                Ok(r) => {
                    session = r.value.session.clone();
                    data = r.value.data.clone();
                    changed = true;
                }
                Err(e) if now < data.expires => {
                    tracing::warn!(
                        reason = e.reason(),
                        "continuing with the non-expired access token despite the refresh failure"
                    );
                }
                // Refused (or its tokens did not verify): 401, which destroys the session. An
                // IdP that cannot answer is a 502 that leaves it (docs/compatibility.md).
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
        let session_id: Arc<str> = session.id_string().into();
        if !changed && self.store.needs_save(&session, now) {
            // Only the idle clock moves: seal it now, so the cached entry below (old cookie bytes →
            // touched session) serves the requests still carrying the old cookie without sealing again.
            self.save(&mut session, now, https, chunks, trail);
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
                binding: trail.binding,
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
    /// `disable_session` names it), and the refreshed or recreated one sealed, with the remember
    /// cookie when it is on.
    pub fn issue(&self, o: &mut Outcome, subject: Option<String>, now: i64, https: bool, trail: &mut Trail) {
        if o.method != Method::Session && self.on && !self.disabled_for.contains(o.method) {
            // A new sign-in starts a new remember cookie too.
            trail.remember_since = Some(now);
            let expires = self.expires_of(o.expires, now);
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
            self.save(&mut w.session, now, https, w.previous_chunks, trail);
            self.save_remember(&w.session, now, https, trail);
        }
    }

    /// When a session's new tokens count as expired: the access token's expiry, else
    /// `cache_ttl` from now (Kong's default `exp`).
    fn expires_of(&self, expires: i64, now: i64) -> i64 {
        if expires != 0 { expires } else { now.saturating_add(self.default_lifetime) }
    }

    /// Seals `session` into the response's `Set-Cookie` headers. A session too large for 9
    /// cookies is logged and the request still served, without it.
    fn save(&self, session: &mut Session, now: i64, https: bool, chunks: usize, trail: &mut Trail) {
        match self.store.save_bound(session, now, https, chunks, &trail.binding) {
            Ok(cookies) => {
                trail.additions.set_cookies.extend(cookies);
                self.record(trail, session, now);
            }
            Err(e) => tracing::warn!(error = %e, "session not saved"),
        }
    }

    /// The remember cookie, saved with the session (as lua-resty-session's `save`; a touch
    /// rewrites only the session cookie). It holds the same session, created when the remember
    /// cookie first was: a new sign-in, else the request's remember cookie, else now.
    fn save_remember(&self, session: &Session, now: i64, https: bool, trail: &mut Trail) {
        let Some(r) = self.store.remember() else { return };
        let since = trail
            .remember_since
            .or_else(|| {
                let cookies = trail.session_cookies.as_ref()?;
                r.open_bound(cookies, now, &trail.binding).ok().map(|o| o.session.created_at)
            })
            .unwrap_or(now);
        let mut remembered = Session { created_at: since, ..session.clone() };
        match r.save_bound(&mut remembered, now, https, trail.remember_chunks, &trail.binding) {
            Ok(cookies) => trail.additions.set_cookies.extend(cookies),
            Err(e) => tracing::warn!(error = %e, "remember cookie not saved"),
        }
    }

    /// Keeps what the `Session-*` headers tell of `session`, when they are configured.
    fn record(&self, trail: &mut Trail, session: &Session, now: i64) {
        if !self.facts {
            return;
        }
        let d = self.store.deadlines_of(session);
        let left = |at: Option<i64>| at.map(|at| at.saturating_sub(now));
        trail.session_facts = Some(SessionFacts {
            id: session.id_string().into(),
            subject: session.subject.as_deref().map(Arc::from),
            idling: left(d.idling),
            rolling: left(d.rolling),
            absolute: left(d.absolute),
        });
    }
}

/// A session or remember cookie that did not open: it never goes upstream. Sealed by this
/// instance but no longer usable (timed out, another audience), a refusal may expire it. One
/// that does not open was sealed by another plugin (the key is per plugin and issuer), under
/// another binding, or is junk; expiring it would sign the user out of that plugin.
fn not_usable(e: OpenError, headers: &HeaderMap, trail: &mut Trail) {
    trail.strip_session = true;
    if !matches!(e, OpenError::Malformed | OpenError::Invalid | OpenError::Missing) {
        trail.session_cookies = Some(session_cookies(headers));
    }
}

/// How many logged-out sessions one instance remembers. Past it the least recently used are
/// forgotten, and their old cookies open again on this node until their own timeouts
/// (docs/security.md, "Logout").
const REVOKED_ENTRIES: u64 = 1 << 17;

/// Session ids logged out on this node. Cookie sessions live in their holders' cookie jars, so
/// a copy of a logged-out cookie is refused by its id until it would have expired anyway.
struct Revoked {
    /// Whether any session was ever logged out: until then a cached hit pays one load.
    any: AtomicBool,
    ids: TimedCache<[u8; gatehouse_session::ID_LEN], ()>,
}

impl Revoked {
    /// Room for `entries` ids. The newest logout always gets in: past the bound the least
    /// recently used id goes (LRU), never the new one (moka's default, TinyLFU, would refuse it
    /// while the set is full of ids read more often, as the copies of logged-out cookies that
    /// keep coming make theirs).
    fn new(entries: u64) -> Revoked {
        Revoked { any: AtomicBool::new(false), ids: cache::timed_lru(entries) }
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
    use crate::cache::unix_now;
    use crate::decision::Additions;
    use crate::fast::Front;
    use crate::fast::tests::request;
    use crate::instance::Oidc;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use gatehouse_core::plugin::{Ctx, Flow, Step};
    use http::request::Parts;
    use serde_json::{Value, json};

    const FIREFOX: &str = "Mozilla/5.0 Firefox";

    fn oidc(extra: Value) -> Oidc {
        let mut cfg = json!({
            "auth_methods": ["session", "password"],
            "upstream_headers_claims": ["preferred_username"],
            "upstream_headers_names": ["x_user"],
        });
        if let (Value::Object(c), Value::Object(e)) = (&mut cfg, extra) {
            c.extend(e);
        }
        Oidc::for_tests(cfg)
    }

    /// A request context from `ip` (the forwarded client address).
    fn ctx_from(ip: &str) -> Ctx {
        Ctx::new(format!("{ip}:1").parse().expect("address"), "route".into(), None, Arc::default())
    }

    /// Session data holding an (unsigned) access token for john that expires at `exp`.
    fn data(exp: i64) -> Vec<u8> {
        let claims = json!({ "preferred_username": "john", "exp": exp });
        let token = format!("{}.{}.sig", B64.encode(br#"{"alg":"RS256"}"#), B64.encode(claims.to_string()));
        SessionData {
            client: 0,
            access_token: token.into(),
            id_token: None,
            refresh_token: None,
            expires: exp,
            auth_method: Method::Password.name().into(),
        }
        .encode()
    }

    /// `name=value` pairs of `Set-Cookie` values, as a `Cookie` header.
    fn as_cookie(set: &[http::HeaderValue]) -> String {
        set.iter().map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string()).collect::<Vec<_>>().join("; ")
    }

    /// A session for john (subject `john`), created `age` seconds ago and saved then, sealed
    /// for a request from `c` with user agent `ua`: the `Cookie` header of its session cookie,
    /// and of its remember cookie when remember is on.
    fn sealed(o: &Oidc, c: &Ctx, ua: &str, age: i64) -> (String, String) {
        let s = &o.auth.sessions;
        let then = unix_now() - age;
        let mut ua_headers = HeaderMap::new();
        ua_headers.insert(http::header::USER_AGENT, ua.parse().expect("ua"));
        let binding = s.binding(c.forwarded_ip, c.https, &ua_headers);
        let mut session = s.store.new_session(then, Some("john".into()), data(unix_now() + 3600));
        let cookie = as_cookie(&s.store.save_bound(&mut session, then, c.https, 0, &binding).expect("saved"));
        let remember = s.store.remember().map_or_else(String::new, |r| {
            as_cookie(&r.save_bound(&mut session, then, c.https, 0, &binding).expect("saved"))
        });
        (cookie, remember)
    }

    struct Answer {
        status: u16,
        /// Answered by the front (a cached session), not the general path.
        front: bool,
        parts: Parts,
        set_cookies: Vec<String>,
        downstream: Vec<(String, String)>,
    }

    impl Answer {
        fn header(&self, name: &str) -> Option<&str> {
            self.parts.headers.get(name).map(|v| v.to_str().unwrap())
        }

        fn set(&self, name: &str) -> Option<&String> {
            self.set_cookies.iter().find(|c| c.starts_with(&format!("{name}=")))
        }
    }

    /// One request through the plugin (front, then the general path), as `c`'s client.
    async fn call(o: &Oidc, mut c: Ctx, headers: &[(&str, &str)]) -> Answer {
        let mut parts = request("GET", headers);
        let (flow, front) = match o.access(&mut c, &mut parts) {
            Step::Ready(f) => (f, true),
            Step::Wait(f) => (f.await, false),
        };
        let status = match flow {
            Flow::Continue => 200,
            Flow::Respond(r) => r.status().as_u16(),
            Flow::Fail => 0,
        };
        let a = c.extensions.get::<Additions>().cloned().unwrap_or_default();
        Answer {
            status,
            front,
            parts,
            set_cookies: a.set_cookies.iter().map(|v| v.to_str().unwrap().to_string()).collect(),
            downstream: a
                .downstream
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap().to_string()))
                .collect(),
        }
    }

    mod bind {
        use super::*;

        #[tokio::test]
        async fn session_bind_refuses_a_copied_cookie_and_leaves_it_to_its_owner() {
            let o = oidc(json!({ "session_bind": ["ip", "user-agent"] }));
            let (cookie, _) = sealed(&o, &ctx_from("192.0.2.1"), FIREFOX, 10);
            let owner = [("cookie", cookie.as_str()), ("user-agent", FIREFOX)];
            let a = call(&o, ctx_from("192.0.2.1"), &owner).await;
            assert_eq!((a.status, a.front, a.header("x-user")), (200, false, Some("john")));
            let a = call(&o, ctx_from("192.0.2.1"), &owner).await;
            assert_eq!((a.status, a.front), (200, true), "cached for its owner");

            // The same bytes from another address, or with another user agent: no session, and
            // the cookie is not expired (it is its owner's).
            for (ip, ua) in [("192.0.2.2", FIREFOX), ("192.0.2.1", "curl/8"), ("192.0.2.1", "")] {
                let mut h = vec![("cookie", cookie.as_str())];
                if !ua.is_empty() {
                    h.push(("user-agent", ua));
                }
                let a = call(&o, ctx_from(ip), &h).await;
                assert_eq!((a.status, a.front), (401, false), "{ip} {ua}");
                assert!(a.set_cookies.is_empty(), "{:?}", a.set_cookies);
            }
            let a = call(&o, ctx_from("192.0.2.1"), &owner).await;
            assert_eq!((a.status, a.front), (200, true), "the owner's entry stays");
        }

        #[tokio::test]
        async fn a_huge_user_agent_is_bound_like_any_other() {
            let o = oidc(json!({ "session_bind": ["user-agent"] }));
            let ua = "x".repeat(60 * 1024);
            let (cookie, _) = sealed(&o, &ctx_from("192.0.2.1"), &ua, 0);
            let a = call(&o, ctx_from("192.0.2.9"), &[("cookie", &cookie), ("user-agent", &ua)]).await;
            assert_eq!(a.status, 200, "the address is not bound");
            let other = format!("{ua}y");
            let a = call(&o, ctx_from("192.0.2.9"), &[("cookie", &cookie), ("user-agent", &other)]).await;
            assert_eq!(a.status, 401);
        }

        #[tokio::test]
        async fn scheme_binding_follows_the_forwarded_scheme() {
            let o = oidc(json!({ "session_bind": ["scheme"] }));
            let mut https = ctx_from("192.0.2.1");
            https.https = true;
            let (cookie, _) = sealed(&o, &https, FIREFOX, 0);
            let mut again = ctx_from("192.0.2.1");
            again.https = true;
            assert_eq!(call(&o, again, &[("cookie", &cookie)]).await.status, 200);
            assert_eq!(call(&o, ctx_from("192.0.2.1"), &[("cookie", &cookie)]).await.status, 401, "over http");
        }
    }

    mod remember {
        use super::*;

        fn remembering(extra: Value) -> Oidc {
            let mut cfg = json!({ "session_remember": true });
            if let (Value::Object(c), Value::Object(e)) = (&mut cfg, extra) {
                c.extend(e);
            }
            oidc(cfg)
        }

        #[tokio::test]
        async fn the_remember_cookie_recreates_a_session_that_is_gone() {
            let o = remembering(json!({}));
            let (old, remember) = sealed(&o, &ctx_from("192.0.2.1"), FIREFOX, 100);
            let old_id = o
                .auth
                .sessions
                .store
                .open(&request("GET", &[("cookie", &old)]).headers, unix_now())
                .expect("opens")
                .session
                .id;
            let cookies = format!("theme=dark; {remember}");
            let a = call(&o, ctx_from("192.0.2.1"), &[("cookie", &cookies)]).await;
            assert_eq!((a.status, a.header("x-user")), (200, Some("john")));
            assert_eq!(a.header("cookie"), Some("theme=dark"), "the remember cookie never reaches the upstream");
            let session = a.set("session").expect("a new session cookie");
            let again = a.set("remember").expect("the remember cookie saved again");
            assert!(again.contains("; Max-Age=604800;"), "its rolling timeout restarts: {again}");

            // The new session opens on its own, with a new id.
            let new = session.split(';').next().unwrap();
            let opened =
                o.auth.sessions.store.open(&request("GET", &[("cookie", new)]).headers, unix_now()).expect("opens");
            assert_ne!(opened.session.id, old_id, "a new id");
            assert_eq!(opened.session.created_at, unix_now(), "a new session");
            let remembered = o.auth.sessions.store.remember().expect("on");
            let r =
                remembered.open(&request("GET", &[("cookie", again.split(';').next().unwrap())]).headers, unix_now());
            assert_eq!(r.expect("opens").session.created_at, unix_now() - 100, "the remember cookie keeps its age");
            assert_eq!(call(&o, ctx_from("192.0.2.1"), &[("cookie", new)]).await.status, 200);
        }

        #[tokio::test]
        async fn a_timed_out_session_cookie_is_recreated_too() {
            // Saved 1000 s ago: past the idling timeout (900 s), not past the remember cookie's.
            let o = remembering(json!({}));
            let (old, remember) = sealed(&o, &ctx_from("192.0.2.1"), FIREFOX, 1000);
            assert_eq!(call(&o, ctx_from("192.0.2.1"), &[("cookie", &old)]).await.status, 401);
            let both = format!("{old}; {remember}");
            let a = call(&o, ctx_from("192.0.2.1"), &[("cookie", &both)]).await;
            assert_eq!(a.status, 200);
            assert!(a.set("session").is_some() && a.set("remember").is_some(), "{:?}", a.set_cookies);
            assert!(a.header("cookie").is_none(), "neither cookie reaches the upstream");
        }

        #[tokio::test]
        async fn a_remember_cookie_past_its_timeout_or_off_is_no_session() {
            let o = remembering(json!({ "session_remember_rolling_timeout": 50 }));
            let (_, remember) = sealed(&o, &ctx_from("192.0.2.1"), FIREFOX, 60);
            let a = call(&o, ctx_from("192.0.2.1"), &[("cookie", &remember)]).await;
            assert_eq!(a.status, 401);
            assert!(a.set("remember").is_some_and(|c| c.contains("Max-Age=0")), "ours, timed out: expired");

            // With remember off, a remember cookie is just another cookie.
            let off = oidc(json!({}));
            let a = call(&off, ctx_from("192.0.2.1"), &[("cookie", &remember)]).await;
            assert_eq!(a.status, 401);
            assert!(a.set_cookies.is_empty());
        }

        #[tokio::test]
        async fn a_remember_cookie_of_another_plugin_is_neither_used_nor_expired() {
            let a_plugin = remembering(json!({}));
            let issuer = "http://127.0.0.1:9/realms/x";
            let cfg = json!({ "issuer": issuer, "auth_methods": ["session"], "session_remember": true });
            let cfg = crate::config::schema().validate(&cfg, gatehouse_core::schema::Mode::default()).expect("valid");
            let key = || SessionCodec::for_instance(b"issuer secret", "plugin-b", issuer);
            let env = gatehouse_core::plugin::BuildEnv::default();
            let b_plugin = Oidc::build(&cfg, key(), key(), &env).expect("builds");
            let (_, remember) = sealed(&a_plugin, &ctx_from("192.0.2.1"), FIREFOX, 0);
            let a = call(&b_plugin, ctx_from("192.0.2.1"), &[("cookie", &remember)]).await;
            assert_eq!(a.status, 401);
            assert!(a.set_cookies.is_empty(), "{:?}", a.set_cookies);
            // Chunk gaps and forged chunk counts are no session either.
            for junk in ["remember=AgIAAAAA; remember3=AAAA", "remember2=AAAA", "remember=AgoAAAAA; remember2=AAAA"] {
                let a = call(&a_plugin, ctx_from("192.0.2.1"), &[("cookie", junk)]).await;
                assert_eq!((a.status, a.set_cookies.len()), (401, 0), "{junk}");
            }
        }

        #[tokio::test]
        async fn a_refusal_expires_both_cookies() {
            let o = remembering(json!({ "consumer_claim": ["preferred_username"] }));
            let (cookie, remember) = sealed(&o, &ctx_from("192.0.2.1"), FIREFOX, 0);
            let both = format!("{cookie}; {remember}");
            let a = call(&o, ctx_from("192.0.2.1"), &[("cookie", &both)]).await;
            assert_eq!(a.status, 403, "no consumer john");
            for name in ["session", "remember"] {
                assert!(a.set(name).is_some_and(|c| c.contains("Max-Age=0")), "{name}: {:?}", a.set_cookies);
            }
        }
    }

    mod headers {
        use super::*;

        #[tokio::test]
        async fn session_headers_tell_the_session_on_every_request_never_from_the_front() {
            let o = oidc(json!({
                "session_request_headers": ["id", "audience", "subject", "timeout", "absolute-timeout"],
                "session_response_headers": ["id", "idling-timeout", "rolling-timeout"],
            }));
            assert!(matches!(o.front, Front::None), "the front would send stale values");
            let (cookie, _) = sealed(&o, &ctx_from("192.0.2.1"), FIREFOX, 30);
            let id = o
                .auth
                .sessions
                .store
                .open(&request("GET", &[("cookie", &cookie)]).headers, unix_now())
                .expect("opens")
                .session
                .id_string();
            for _ in 0..2 {
                let a =
                    call(&o, ctx_from("192.0.2.1"), &[("cookie", &cookie), ("session-absolute-timeout", "1")]).await;
                assert_eq!(a.status, 200);
                assert_eq!(a.header("session-id"), Some(id.as_str()));
                assert_eq!(a.header("session-audience"), Some("default"));
                assert_eq!(a.header("session-subject"), Some("john"));
                // 30 s after the save: the idling timeout (900 s) comes first.
                let left = |v: Option<&str>| v.and_then(|v| v.parse::<i64>().ok()).unwrap_or(-1);
                assert!((869..=870).contains(&left(a.header("session-timeout"))), "{:?}", a.header("session-timeout"));
                assert!(
                    (86_369..=86_370).contains(&left(a.header("session-absolute-timeout"))),
                    "the client's value is gone"
                );
                assert!(a.header("session-rolling-timeout").is_none(), "not asked for upstream");
                let down: Vec<&str> = a.downstream.iter().map(|(n, _)| n.as_str()).collect();
                assert_eq!(down, ["session-id", "session-idling-timeout", "session-rolling-timeout"]);
            }
        }

        #[tokio::test]
        async fn a_touch_or_a_new_session_is_what_the_headers_tell() {
            let o = oidc(json!({ "session_response_headers": ["id", "timeout"] }));
            // 100 s idle: touched now, so a full idling timeout is left.
            let (cookie, _) = sealed(&o, &ctx_from("192.0.2.1"), FIREFOX, 100);
            let a = call(&o, ctx_from("192.0.2.1"), &[("cookie", &cookie)]).await;
            assert!(a.set("session").is_some(), "touched");
            let timeout = a.downstream.iter().find(|(n, _)| n == "session-timeout").map(|(_, v)| v.as_str());
            assert_eq!(timeout, Some("900"));
            // No session, no headers.
            let a = call(&o, ctx_from("192.0.2.1"), &[]).await;
            assert_eq!(a.status, 401);
            assert!(a.downstream.is_empty());
        }
    }

    mod cookie_storage {
        //! `session_store_metadata`, `session_enforce_same_subject`, `session_hash_subject` and
        //! `session_hash_storage_key` act on server-side storage (metadata records, the storage
        //! key) and on cookies shared by several audiences. With cookie storage and one audience
        //! per cookie, Kong's cookie is the same with or without them: so is ours.
        use super::*;

        async fn changes_nothing(field: &str) {
            let plain = oidc(json!({}));
            let flagged = oidc(json!({ field: true }));
            assert_eq!(plain.auth.sessions.store.config(), flagged.auth.sessions.store.config());
            assert!(matches!(flagged.front, Front::Session));
            for (sealer, opener) in [(&plain, &flagged), (&flagged, &plain)] {
                let (cookie, _) = sealed(sealer, &ctx_from("192.0.2.1"), FIREFOX, 100);
                let a = call(opener, ctx_from("192.0.2.1"), &[("cookie", &cookie)]).await;
                assert_eq!(a.status, 200, "{field}");
                let touched = a.set("session").expect("touched");
                assert!(touched.contains("; Path=/; Expires="), "{touched}");
                assert!(touched.ends_with("; Max-Age=900; SameSite=Lax; HttpOnly"), "{touched}");
            }
        }

        #[tokio::test]
        async fn session_store_metadata_changes_nothing_with_cookie_storage() {
            changes_nothing("session_store_metadata").await;
        }

        #[tokio::test]
        async fn session_enforce_same_subject_changes_nothing_with_cookie_storage() {
            changes_nothing("session_enforce_same_subject").await;
        }

        #[tokio::test]
        async fn session_hash_subject_changes_nothing_with_cookie_storage() {
            changes_nothing("session_hash_subject").await;
        }

        #[tokio::test]
        async fn session_hash_storage_key_changes_nothing_with_cookie_storage() {
            changes_nothing("session_hash_storage_key").await;
        }
    }

    #[test]
    fn every_timeout_reaches_the_store_and_zero_is_off() {
        let o = oidc(json!({
            "session_idling_timeout": 0, "session_rolling_timeout": 120, "session_absolute_timeout": 0,
            "session_remember": true, "session_remember_cookie_name": "keep",
            "session_remember_rolling_timeout": 60, "session_remember_absolute_timeout": 0,
        }));
        let c = o.auth.sessions.store.config();
        assert_eq!((c.idling_timeout, c.rolling_timeout, c.absolute_timeout), (0, 120, 0));
        let r = o.auth.sessions.store.remember().expect("on").config();
        assert_eq!(
            (r.cookie_name.as_str(), r.idling_timeout, r.rolling_timeout, r.absolute_timeout),
            ("keep", 0, 60, 0)
        );
    }

    #[test]
    fn the_opened_session_cache_is_bounded_by_bytes_not_only_by_count() {
        // A holder of one session who pads the Cookie header to the 64 KiB head limit with
        // varying junk gets at most a few hundred entries, not 16,384 × 64 KiB.
        let padded = vec![b'x'; 64 * 1024].into_boxed_slice();
        assert!(CACHE_BYTES / u64::from(weigh(&padded, &())) < 600);
        let small = vec![b'x'; 300].into_boxed_slice();
        assert!(CACHE_BYTES / u64::from(weigh(&small, &())) >= 10_000, "ordinary cookies still fit by the thousand");
    }

    #[tokio::test]
    async fn a_cookie_from_before_a_refresh_does_not_bring_back_the_logged_out_session() {
        // Within the refresh's grace, a request with the pre-refresh cookie is given the
        // refreshed session: after that session's logout, it must be refused, not re-issued.
        let body = r#"{"access_token":"opaque-new","refresh_token":"rt-new","expires_in":300}"#;
        let (url, calls) = crate::grants::tests::token_endpoint(body, "", Duration::ZERO).await;
        let o = oidc(json!({
            "token_endpoint": url, "client_id": ["c"], "client_secret": ["s"],
            "logout_uri_suffix": "/logout", "logout_redirect_uri": ["https://app.example/bye"],
        }));
        let s = &o.auth.sessions;
        let now = unix_now();
        let data = SessionData {
            client: 0,
            access_token: "opaque-old".into(),
            id_token: None,
            refresh_token: Some("rt-old".into()),
            expires: now - 10,
            auth_method: Method::Password.name().into(),
        };
        let mut session = s.store.new_session_for(Some("c"), now - 60, None, data.encode());
        let old = as_cookie(&s.store.save(&mut session, now - 60, false, 0).expect("saved"));
        let a = call(&o, ctx_from("192.0.2.1"), &[("cookie", &old)]).await;
        assert_eq!(a.status, 200);
        let refreshed = a.set("session").expect("the refreshed session").split(';').next().unwrap().to_string();

        let mut c = ctx_from("192.0.2.1");
        let mut logout = request("POST", &[("cookie", &refreshed)]);
        logout.uri = "/logout".parse().expect("uri");
        let Step::Wait(f) = o.access(&mut c, &mut logout) else { panic!("a logout is answered") };
        assert!(matches!(f.await, Flow::Respond(_)));
        assert_eq!(call(&o, ctx_from("192.0.2.1"), &[("cookie", &refreshed)]).await.status, 401);
        let a = call(&o, ctx_from("192.0.2.1"), &[("cookie", &old)]).await;
        assert_eq!(a.status, 401, "the pre-refresh cookie is refused too");
        assert!(a.set_cookies.iter().all(|c| c.contains("Max-Age=0")), "no session re-issued: {:?}", a.set_cookies);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1, "the refresh was shared, not repeated");
    }

    #[test]
    fn a_full_revoked_set_still_records_the_newest_logout() {
        let r = Revoked::new(64);
        let until = cache::deadline(Instant::now(), Duration::from_secs(3600));
        let id = |i: u32| {
            let mut id = [0u8; gatehouse_session::ID_LEN];
            id[..4].copy_from_slice(&i.to_be_bytes());
            id
        };
        // Full of ids that are read again and again (copies of logged-out cookies replayed).
        for i in 0..64 {
            r.ids.insert(id(i), Arc::new(Timed { value: (), until }));
        }
        for _ in 0..20 {
            for i in 0..64 {
                assert!(r.ids.get(&id(i)).is_some());
            }
        }
        r.ids.settle();
        r.ids.insert(id(1000), Arc::new(Timed { value: (), until }));
        r.ids.settle();
        assert!(r.ids.get(&id(1000)).is_some(), "the newest logout is recorded");
    }

    #[test]
    fn a_logged_out_session_is_refused_as_long_as_its_remember_cookie_could_open() {
        let o = crate::instance::Oidc::for_tests(serde_json::json!({
            "session_idling_timeout": 900, "session_remember": true,
            "session_remember_rolling_timeout": 604_800, "session_remember_absolute_timeout": 2_592_000,
        }));
        let now = 1_000_000;
        let young = o.auth.sessions.store.new_session(now, None, Vec::new());
        assert_eq!(o.auth.sessions.revoked_for(&young, now), 604_800, "the remember cookie's rolling timeout");
    }

    #[test]
    fn a_logged_out_session_is_refused_until_its_last_copy_would_have_expired() {
        let o = crate::instance::Oidc::for_tests(serde_json::json!({
            "session_absolute_timeout": 86400, "session_rolling_timeout": 3600, "session_idling_timeout": 900,
        }));
        let sessions = &o.auth.sessions;
        let now = 1_000_000;
        let young = sessions.store.new_session(now, None, Vec::new());
        assert_eq!(sessions.revoked_for(&young, now), 900, "a copy touched now idles out last");
        let old = sessions.store.new_session(now - 86_000, None, Vec::new());
        assert_eq!(sessions.revoked_for(&old, now), 400, "the absolute deadline comes first");
        let o = crate::instance::Oidc::for_tests(serde_json::json!({
            "session_absolute_timeout": 0, "session_rolling_timeout": 0, "session_idling_timeout": 0,
        }));
        assert_eq!(o.auth.sessions.revoked_for(&young, now), u64::MAX, "capped at a year by the cache");
        assert!(!o.auth.sessions.is_revoked(&young));
        o.auth.sessions.revoke(&young, &HeaderMap::new(), now);
        assert!(o.auth.sessions.is_revoked(&young));
        assert!(!o.auth.sessions.is_revoked(&old));
    }
}
