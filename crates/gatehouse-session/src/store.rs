//! The session cookie jar: opening from a request, saving to `Set-Cookie` values, clearing, hiding.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue};

use crate::binding::Binding;
use crate::codec::{self, CodecError, HEADER_LEN, SessionCodec, TAG_LEN};
use crate::config::{ConfigError, SessionConfig};
use crate::cookies::{self, Found, MAX_CHUNKS};
use crate::envelope;
use crate::session::Session;

/// Longest gap between recorded uses of a session with an idling timeout (see [`SessionStore::needs_save`]).
const TOUCH_THRESHOLD: i64 = 60;

/// `Max-Age` of a remember cookie whose timeouts are all off: browsers cap cookie lifetimes at
/// 400 days, as lua-resty-session does.
const PERSISTENT_CAP: i64 = 400 * 86_400;

/// Which timeout ended a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// Not saved for `rolling_timeout` seconds.
    Rolling,
    /// Not used for `idling_timeout` seconds.
    Idling,
    /// Created more than `absolute_timeout` seconds ago.
    Absolute,
}

/// Why no session came out of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The request has no session cookie (or an empty one).
    #[error("no session cookie")]
    Missing,
    /// The cookie is not something this crate wrote: bad base64, unknown version, too short,
    /// a chunk missing, or an envelope that does not parse.
    #[error("malformed session cookie")]
    Malformed,
    /// The cookie does not authenticate: tampered, sealed with another secret, moved from
    /// another cookie name, or bound to another client address, scheme or user agent.
    #[error("invalid session cookie")]
    Invalid,
    /// The session was genuine but one of its timeouts has passed.
    #[error("session expired ({0:?} timeout)")]
    Expired(Timeout),
    /// The session was sealed for another audience.
    #[error("session audience mismatch")]
    WrongAudience,
    /// The session holds tokens of another issuer.
    #[error("session issuer mismatch")]
    WrongIssuer,
    /// The session was made for a client this store does not serve.
    #[error("session client mismatch")]
    WrongClient,
}

/// Why a session could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SaveError {
    /// The sealed session needs more than 9 cookies of `max_cookie_size` bytes, or a field
    /// outgrows its length prefix (lua-resty-session's "cookie size limit exceeded").
    #[error("session too large for cookies ({bytes} bytes of data): cookie size limit exceeded")]
    TooLarge {
        /// Size of the session's data.
        bytes: usize,
    },
    /// The store binds its sessions (`session_bind`) but was given another binding (or none):
    /// a caller's mistake, refused rather than sealing an unbound cookie.
    #[error("session binding does not match the store's session_bind")]
    Binding,
}

/// When an opened or saved session ends under each enabled timeout (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deadlines {
    /// `last_seen + idling_timeout`.
    pub idling: Option<i64>,
    /// `rolled_at + rolling_timeout`.
    pub rolling: Option<i64>,
    /// `created_at + absolute_timeout`.
    pub absolute: Option<i64>,
}

impl Deadlines {
    /// The earliest of them.
    pub fn first(&self) -> Option<i64> {
        [self.idling, self.rolling, self.absolute].into_iter().flatten().min()
    }
}

/// A session read from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The session.
    pub session: Session,
    /// How many cookies a later save must cover: the chunks read, or more when the request also
    /// carried stray higher chunks. Pass it to [`SessionStore::save`] as `previous_chunks`.
    pub chunks: usize,
    /// Where the session's client is in the configured clients (`None` when it names none), so
    /// a reordered client list still finds the client the tokens belong to.
    pub client: Option<usize>,
}

/// Cookie sessions under one key and one configuration. Build once per plugin configuration;
/// every method is `&self` and does no IO and reads no clock (`now` is Unix seconds).
#[derive(Debug)]
pub struct SessionStore {
    /// Shared with the remember cookie's store: one key, the cookie name in the AAD apart.
    codec: Arc<SessionCodec>,
    config: SessionConfig,
    /// The remember cookie's own store, when `config.remember` is on.
    remember: Option<Box<SessionStore>>,
    /// A remember cookie: never a browser-session cookie.
    persistent: bool,
    /// `; Path=…[; Domain=…]`, fixed for the store's life.
    attrs_head: String,
    /// `[; SameSite=…]`, then `Secure`/`HttpOnly` are added per response.
    attrs_same_site: String,
}

impl SessionStore {
    /// Validates `config` (see [`SessionConfig::validate`]) and precomputes the fixed attributes.
    pub fn new(codec: SessionCodec, config: SessionConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let codec = Arc::new(codec);
        let remember = config.remember.as_ref().map(|r| {
            // Same flags, path, domain, audience, issuer, clients and binding; its own name and
            // timeouts, with no idling timeout (a touch rewrites only the session cookie).
            let c = SessionConfig {
                cookie_name: r.cookie_name.clone(),
                rolling_timeout: r.rolling_timeout,
                idling_timeout: 0,
                absolute_timeout: r.absolute_timeout,
                remember: None,
                ..config.clone()
            };
            Box::new(SessionStore::with_codec(codec.clone(), c, true))
        });
        Ok(SessionStore { remember, ..SessionStore::with_codec(codec, config, false) })
    }

    fn with_codec(codec: Arc<SessionCodec>, config: SessionConfig, persistent: bool) -> SessionStore {
        let mut attrs_head = format!("; Path={}", config.cookie_path);
        if let Some(domain) = &config.cookie_domain {
            attrs_head.push_str("; Domain=");
            attrs_head.push_str(domain);
        }
        let attrs_same_site = config.same_site.attribute().map_or_else(String::new, |s| format!("; SameSite={s}"));
        SessionStore { codec, config, remember: None, persistent, attrs_head, attrs_same_site }
    }

    /// The configuration in force.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The remember cookie's store, when `remember` is configured: open and save the remember
    /// cookie with it. [`SessionStore::strip`] and [`SessionStore::clear`] of this store already
    /// cover it.
    pub fn remember(&self) -> Option<&SessionStore> {
        self.remember.as_deref()
    }

    /// The binding of a request under this store's [`Bind`](crate::Bind) flags
    /// ([`Binding::NONE`] when nothing is bound).
    pub fn binding(&self, ip: IpAddr, https: bool, user_agent: &[u8]) -> Binding {
        Binding::new(self.config.bind, ip, https, user_agent)
    }

    /// A new session for the configured audience and issuer, created at `now`, naming no client.
    pub fn new_session(&self, now: i64, subject: Option<String>, data: Vec<u8>) -> Session {
        self.new_session_for(None, now, subject, data)
    }

    /// A new session for the configured audience and issuer, made for `client` (which must be
    /// one of the configured clients for the session to open again), created at `now`.
    pub fn new_session_for(&self, client: Option<&str>, now: i64, subject: Option<String>, data: Vec<u8>) -> Session {
        let mut session = Session::new(now, self.config.audience.clone(), subject, data);
        session.issuer.clone_from(&self.config.issuer);
        session.client = client.map(str::to_owned);
        session
    }

    /// [`SessionStore::open_bound`] for a store that binds nothing.
    pub fn open(&self, cookie_headers: &HeaderMap, now: i64) -> Result<Opened, OpenError> {
        self.open_bound(cookie_headers, now, &Binding::NONE)
    }

    /// Reads the session from the request's `Cookie` headers (any number of them, any number
    /// of `; `-separated pairs each), reassembling chunks, decrypting under the request's
    /// `binding` ([`SessionStore::binding`]), then checking audience and timeouts. One buffer
    /// is allocated for the decoded value and becomes the session's data.
    pub fn open_bound(&self, cookie_headers: &HeaderMap, now: i64, binding: &Binding) -> Result<Opened, OpenError> {
        let name = &self.config.cookie_name;
        let found = Found::collect(cookie_headers, name);
        let first = found.get(1).filter(|v| !v.is_empty()).ok_or(OpenError::Missing)?;
        let count = usize::from(codec::peek_chunks(first).map_err(malformed)?);
        if count > MAX_CHUNKS {
            return Err(OpenError::Malformed);
        }
        // A binding made under other flags can never match; no need to decrypt.
        if binding.bits() != self.config.bind.bits() {
            return Err(OpenError::Invalid);
        }

        let mut capacity = 0;
        for i in 1..=count {
            capacity += codec::decoded_capacity(found.get(i).ok_or(OpenError::Malformed)?.len());
        }
        let mut buf = Vec::with_capacity(capacity);
        for i in 1..=count {
            let chunk = found.get(i).ok_or(OpenError::Malformed)?;
            codec::decode_append(chunk, &mut buf).map_err(malformed)?;
        }

        let plain = self.codec.open_in_place(name, binding, &mut buf).map_err(|e| match e {
            CodecError::Tag => OpenError::Invalid,
            _ => OpenError::Malformed,
        })?;
        let view = envelope::parse(&buf, plain).map_err(|_| OpenError::Malformed)?;
        if view.audience != self.config.audience {
            return Err(OpenError::WrongAudience);
        }
        // The key already binds the session to its plugin and issuer (when made with
        // `SessionCodec::for_instance`); these checks hold even for a key shared on purpose.
        if view.issuer != self.config.issuer {
            return Err(OpenError::WrongIssuer);
        }
        let client = match view.client {
            Some(c) => Some(self.config.clients.iter().position(|k| k == c).ok_or(OpenError::WrongClient)?),
            None if self.config.clients.is_empty() => None,
            None => return Err(OpenError::WrongClient),
        };
        if let Some(which) = self.expired(view.created_at, view.rolled_at, view.last_seen, now) {
            return Err(OpenError::Expired(which));
        }
        let session = view.detach().with_data(buf);
        let chunks = found.indices().last().unwrap_or(count).max(count);
        Ok(Opened { session, chunks, client })
    }

    /// [`SessionStore::save_bound`] for a store that binds nothing.
    pub fn save(
        &self,
        session: &mut Session,
        now: i64,
        https: bool,
        previous_chunks: usize,
    ) -> Result<Vec<HeaderValue>, SaveError> {
        self.save_bound(session, now, https, previous_chunks, &Binding::NONE)
    }

    /// Seals `session` under the request's `binding` into `Set-Cookie` values: one cookie when
    /// its `name=value` fits `max_cookie_size`, else `name`, `name2` … `name9`, each within the
    /// limit (more is [`SaveError::TooLarge`]). Chunks `count+1..=previous_chunks` left from an
    /// earlier, larger session are expired. Marks the session rolled and seen at `now`. `https`
    /// says how the request arrived, for `secure: None`. The session is sealed with its own
    /// audience, so one made for another audience will not open here.
    pub fn save_bound(
        &self,
        session: &mut Session,
        now: i64,
        https: bool,
        previous_chunks: usize,
        binding: &Binding,
    ) -> Result<Vec<HeaderValue>, SaveError> {
        if binding.bits() != self.config.bind.bits() {
            return Err(SaveError::Binding);
        }
        session.rolled_at = now;
        session.last_seen = now;
        let too_large = SaveError::TooLarge { bytes: session.data.len() };
        let plain_len = envelope::encoded_len(session).ok_or(too_large)?;
        let blob_len = HEADER_LEN + plain_len + TAG_LEN;

        let lengths = self.split(codec::encoded_len(blob_len)).ok_or(too_large)?;
        let attrs = self.attributes(self.max_age(session, now).map(|age| (age, now.saturating_add(age))), https);

        let mut blob = Vec::with_capacity(blob_len);
        blob.resize(HEADER_LEN, 0);
        envelope::encode_into(session, &mut blob);
        // `split` returns at most MAX_CHUNKS (9) lengths.
        self.codec.seal_in_place(&self.config.cookie_name, lengths.len() as u8, binding, &mut blob);
        let text = codec::encode(&blob);

        let stale = lengths.len() + 1..=previous_chunks.min(MAX_CHUNKS);
        let mut out = Vec::with_capacity(lengths.len() + stale.clone().count());
        let mut rest = text.as_str();
        for (i, &len) in lengths.iter().enumerate() {
            let (chunk, tail) = rest.split_at(len);
            out.push(self.cookie(i + 1, chunk, &attrs));
            rest = tail;
        }
        if !stale.is_empty() {
            let expired = self.expired_attributes(https);
            out.extend(stale.map(|i| self.cookie(i, "", &expired)));
        }
        Ok(out)
    }

    /// Whether a session just opened should be saved again although nothing changed:
    /// - rolling timeout on, and at least 3/4 of it spent since the last save (as Kong does), or
    /// - idling timeout on, and the last recorded use older than `min(60 s, idling_timeout / 4)`
    ///   (at least 1 s).
    ///
    /// So a busy client is re-sealed about once a minute, not on every request, and an idle one
    /// still expires no more than a quarter of the idling timeout early.
    pub fn needs_save(&self, session: &Session, now: i64) -> bool {
        let c = &self.config;
        let rolling = secs(c.rolling_timeout);
        let idling = secs(c.idling_timeout);
        let rolled_for = now.saturating_sub(session.rolled_at);
        let idle_for = now.saturating_sub(session.last_seen);
        (rolling > 0 && rolled_for >= rolling - rolling / 4)
            || (idling > 0 && idle_for >= (idling / 4).clamp(1, TOUCH_THRESHOLD))
    }

    /// When `session` ends under the current timeouts, unless saved or used again; `None` when
    /// all timeouts are disabled.
    pub fn expires_at(&self, session: &Session) -> Option<i64> {
        self.deadlines_of(session).first()
    }

    /// When `session` ends under each enabled timeout, unless saved or used again.
    pub fn deadlines_of(&self, session: &Session) -> Deadlines {
        let [absolute, rolling, idling] =
            self.deadlines(session.created_at, session.rolled_at, session.last_seen).map(|d| d.map(|(_, at)| at));
        Deadlines { idling, rolling, absolute }
    }

    /// `Set-Cookie` values expiring every chunk of this session present in the request
    /// (`Max-Age=0` and an `Expires` in 1970), and of its remember cookie. Empty when there is
    /// none.
    pub fn clear(&self, cookie_headers: &HeaderMap, https: bool) -> Vec<HeaderValue> {
        let found = Found::collect(cookie_headers, &self.config.cookie_name);
        let expired = self.expired_attributes(https);
        let mut out: Vec<HeaderValue> = found.indices().map(|i| self.cookie(i, "", &expired)).collect();
        if let Some(r) = &self.remember {
            out.extend(r.clear(cookie_headers, https));
        }
        out
    }

    /// Highest chunk index of this session present in the request (0 when none), for
    /// `previous_chunks` when saving over a session that could not be opened.
    pub fn present_chunks(&self, cookie_headers: &HeaderMap) -> usize {
        Found::collect(cookie_headers, &self.config.cookie_name).indices().last().unwrap_or(0)
    }

    /// Removes this session's cookies (all chunks, and the remember cookie's) from the
    /// request's `Cookie` headers so they do not reach the upstream. Other cookies stay
    /// byte-exact; an emptied header is removed.
    pub fn strip(&self, headers: &mut HeaderMap) {
        match &self.remember {
            Some(r) => cookies::strip(headers, &[&self.config.cookie_name, &r.config.cookie_name]),
            None => cookies::strip(headers, &[&self.config.cookie_name]),
        }
    }

    /// Each enabled timeout with the moment it ends.
    fn deadlines(&self, created_at: i64, rolled_at: i64, last_seen: i64) -> [Option<(Timeout, i64)>; 3] {
        let c = &self.config;
        let at = |from: i64, t: u64| (t > 0).then(|| from.saturating_add(secs(t)));
        [
            at(created_at, c.absolute_timeout).map(|d| (Timeout::Absolute, d)),
            at(rolled_at, c.rolling_timeout).map(|d| (Timeout::Rolling, d)),
            at(last_seen, c.idling_timeout).map(|d| (Timeout::Idling, d)),
        ]
    }

    /// The timeout that ended first, if any has (a session is valid while `now < deadline`).
    fn expired(&self, created_at: i64, rolled_at: i64, last_seen: i64, now: i64) -> Option<Timeout> {
        let passed = self.deadlines(created_at, rolled_at, last_seen).into_iter().flatten().filter(|d| now >= d.1);
        passed.min_by_key(|d| d.1).map(|d| d.0)
    }

    /// Seconds the cookie should live: to the earliest deadline, never negative. A remember
    /// cookie without deadlines lives as long as browsers allow.
    fn max_age(&self, session: &Session, now: i64) -> Option<i64> {
        match self.expires_at(session) {
            Some(d) => Some(d.saturating_sub(now).max(0)),
            None => self.persistent.then_some(PERSISTENT_CAP),
        }
    }

    /// Attribute string for a live cookie; `expiry` is `(max_age, expires_at)`, `None` for a
    /// browser-session cookie.
    fn attributes(&self, expiry: Option<(i64, i64)>, https: bool) -> String {
        let mut s = String::with_capacity(128);
        s.push_str(&self.attrs_head);
        if let Some((max_age, expires)) = expiry {
            s.push_str("; Expires=");
            cookies::write_http_date(&mut s, expires);
            s.push_str("; Max-Age=");
            s.push_str(&max_age.to_string());
        }
        self.push_flags(&mut s, https);
        s
    }

    fn expired_attributes(&self, https: bool) -> String {
        let mut s = format!("{}; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0", self.attrs_head);
        self.push_flags(&mut s, https);
        s
    }

    fn push_flags(&self, s: &mut String, https: bool) {
        s.push_str(&self.attrs_same_site);
        if self.config.secure_for(https) {
            s.push_str("; Secure");
        }
        if self.config.http_only {
            s.push_str("; HttpOnly");
        }
    }

    /// Lengths of the chunks `text_len` base64 characters are cut into, so that each cookie's
    /// `name=value` fits `max_cookie_size` (lua-resty-session: chunk 1 holds the limit less the
    /// name and `=`, chunks 2 to 9 one byte less for their digit). Every chunk but the last holds
    /// a multiple of 4 characters, so each decodes on its own. `None` past [`MAX_CHUNKS`].
    fn split(&self, text_len: usize) -> Option<Vec<usize>> {
        let fixed = self.config.cookie_name.len() + 1;
        // Validation guarantees room for 64 characters even with the digit of `name9`.
        let room = |i: usize| self.config.max_cookie_size.saturating_sub(fixed + suffix_len(i));
        let mut lengths = Vec::new();
        let mut left = text_len;
        loop {
            let i = lengths.len() + 1;
            if i > MAX_CHUNKS {
                return None;
            }
            if left <= room(i) {
                lengths.push(left);
                return Some(lengths);
            }
            let take = room(i) & !3;
            if take == 0 {
                return None;
            }
            lengths.push(take);
            left -= take;
        }
    }

    /// One `Set-Cookie` value for chunk `index` (1 is the bare name).
    fn cookie(&self, index: usize, value: &str, attrs: &str) -> HeaderValue {
        let name = &self.config.cookie_name;
        let mut s = String::with_capacity(name.len() + suffix_len(index) + 1 + value.len() + attrs.len());
        s.push_str(name);
        if index > 1 {
            // `index` is at most MAX_CHUNKS (9): one digit.
            s.push(char::from(b'0' + index as u8));
        }
        s.push('=');
        s.push_str(value);
        s.push_str(attrs);
        // Name, path and domain were validated as visible ASCII; values are base64url.
        HeaderValue::try_from(s).expect("cookie text is visible ASCII")
    }
}

/// Length of the digit after the name of chunk `i` (none for the first).
fn suffix_len(i: usize) -> usize {
    usize::from(i > 1)
}

/// Timeout seconds as a signed offset, saturating.
fn secs(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

fn malformed(_: CodecError) -> OpenError {
    OpenError::Malformed
}

#[cfg(test)]
mod tests;
