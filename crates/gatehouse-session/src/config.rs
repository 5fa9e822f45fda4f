//! Cookie and timeout settings, validated once when a [`SessionStore`](crate::SessionStore) is built.

use std::fmt;
use std::str::FromStr;

/// Smallest payload, in base64 characters, that one cookie must be able to carry besides its
/// name. Below this, splitting would need absurdly many cookies.
const MIN_CHUNK_PAYLOAD: usize = 64;

/// lua-resty-session's (and browsers') limit on one cookie's `name=value`, in bytes; the
/// attributes do not count.
pub const MAX_COOKIE_SIZE: usize = 4096;

/// Longest cookie name accepted. Browsers cap name plus value at about 4096 bytes; a name this
/// long already leaves little room, and the name is also authenticated data of every seal.
pub(crate) const MAX_NAME_LEN: usize = 128;

/// The `SameSite` attribute of the session cookie (Kong's `session_cookie_same_site`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SameSite {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax` (Kong's default).
    #[default]
    Lax,
    /// `SameSite=None`. Browsers drop such a cookie unless it is also `Secure`.
    None,
    /// No `SameSite` attribute at all: the browser's own default applies.
    Default,
}

impl SameSite {
    /// The attribute text, `None` for [`SameSite::Default`].
    pub fn attribute(self) -> Option<&'static str> {
        match self {
            SameSite::Strict => Some("Strict"),
            SameSite::Lax => Some("Lax"),
            SameSite::None => Some("None"),
            SameSite::Default => Option::None,
        }
    }
}

impl FromStr for SameSite {
    type Err = ConfigError;

    /// Parses Kong's spelling: `Strict`, `Lax`, `None` or `Default` (case-sensitive, like its schema).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Strict" => Ok(SameSite::Strict),
            "Lax" => Ok(SameSite::Lax),
            "None" => Ok(SameSite::None),
            "Default" => Ok(SameSite::Default),
            _ => Err(ConfigError::SameSite(s.to_owned())),
        }
    }
}

/// Which facts of the request a session is bound to (Kong's `session_bind`): a session sealed
/// for one client address, scheme or user agent does not open for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bind {
    /// `ip`: the client address (the forwarded one, from trusted proxies).
    pub ip: bool,
    /// `scheme`: `http` or `https`.
    pub scheme: bool,
    /// `user-agent`: the `User-Agent` header (empty when absent).
    pub user_agent: bool,
}

impl Bind {
    /// Reads Kong's values (`ip`, `scheme`, `user-agent`); `None` for anything else.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<Bind> {
        let mut b = Bind::default();
        for n in names {
            match n {
                "ip" => b.ip = true,
                "scheme" => b.scheme = true,
                "user-agent" => b.user_agent = true,
                _ => return None,
            }
        }
        Some(b)
    }

    /// Whether anything is bound.
    pub fn any(self) -> bool {
        self.ip || self.scheme || self.user_agent
    }

    /// One bit per fact, in lua-resty-session's order (ip, scheme, user agent).
    pub(crate) fn bits(self) -> u8 {
        u8::from(self.ip) | u8::from(self.scheme) << 1 | u8::from(self.user_agent) << 2
    }
}

/// The persistent "remember me" cookie (Kong's `session_remember*`): a second cookie holding
/// the same session, with its own name and timeouts, that outlives the browser session and
/// recreates the session when the session cookie is gone or timed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remember {
    /// Cookie name (`session_remember_cookie_name`, "remember"); chunks as the session's.
    pub cookie_name: String,
    /// Seconds it lives after its last save, also its `Max-Age`; 0 disables
    /// (`session_remember_rolling_timeout`, 604800).
    pub rolling_timeout: u64,
    /// Seconds it lives after its creation, however often saved; 0 disables
    /// (`session_remember_absolute_timeout`, 2592000).
    pub absolute_timeout: u64,
}

impl Default for Remember {
    /// Kong's defaults.
    fn default() -> Self {
        Remember { cookie_name: "remember".into(), rolling_timeout: 604_800, absolute_timeout: 2_592_000 }
    }
}

/// Why a [`SessionConfig`] was refused. Each message names the Kong field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The cookie name is empty, too long, or has characters outside an RFC 6265 token.
    #[error("session_cookie_name: must be 1 to 128 token characters (letters, digits, !#$%&'*+-.^_`|~)")]
    CookieName,
    /// The path is empty, does not start with `/`, or has a character not allowed in a cookie attribute.
    #[error("session_cookie_path: must start with / and hold only visible ASCII other than ;")]
    CookiePath,
    /// The domain is empty or has characters other than letters, digits, `-` and `.`.
    #[error("session_cookie_domain: must hold only letters, digits, - and .")]
    CookieDomain,
    /// The audience is longer than the envelope can hold.
    #[error("session_audience: must be at most 65535 bytes")]
    Audience,
    /// The issuer is longer than the envelope can hold.
    #[error("issuer: must be at most 65535 bytes")]
    Issuer,
    /// A client id is longer than the envelope can hold.
    #[error("client_id: must be at most 65535 bytes")]
    Client,
    /// Not one of Kong's `SameSite` values.
    #[error("session_cookie_same_site: unknown value {0:?} (expected Strict, Lax, None or Default)")]
    SameSite(String),
    /// The remember cookie's name is not a token, or it is the session cookie's name or one of
    /// its chunks' (or the other way round), so the two would overwrite each other.
    #[error(
        "session_remember_cookie_name: must be 1 to 128 token characters, and neither the session cookie's name nor one of its chunks' (name2 to name9)"
    )]
    RememberCookieName,
    /// The size limit leaves no room for a useful chunk once the name is counted.
    #[error("max_cookie_size: {size} bytes leave no room for the value (at least {needed} needed)")]
    MaxCookieSize {
        /// The configured limit.
        size: usize,
        /// The smallest limit that works with this name, path and domain.
        needed: usize,
    },
}

/// Session cookie settings, mapped from Kong's `session_*` fields. Build it once per plugin
/// configuration; [`SessionStore::new`](crate::SessionStore::new) validates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Cookie name; further chunks are `{name}2` … `{name}9` (`session_cookie_name`, "session").
    pub cookie_name: String,
    /// `Path` attribute (`session_cookie_path`, "/").
    pub cookie_path: String,
    /// `Domain` attribute; `None` makes a host-only cookie (`session_cookie_domain`).
    pub cookie_domain: Option<String>,
    /// `SameSite` attribute (`session_cookie_same_site`, Lax).
    pub same_site: SameSite,
    /// `HttpOnly` attribute (`session_cookie_http_only`, true).
    pub http_only: bool,
    /// `Secure` attribute; `None` sets it exactly when the request came over https
    /// (`session_cookie_secure`, unset). A `__Secure-` or `__Host-` name always gets it.
    pub secure: Option<bool>,
    /// Seconds a session lives after its last save; 0 disables (`session_rolling_timeout`, 3600).
    pub rolling_timeout: u64,
    /// Seconds a session lives without being used; 0 disables (`session_idling_timeout`, 900).
    pub idling_timeout: u64,
    /// Seconds a session lives after its creation, however used; 0 disables
    /// (`session_absolute_timeout`, 86400).
    pub absolute_timeout: u64,
    /// Audience stamped into and required of every session (`session_audience`, "default").
    pub audience: String,
    /// Largest `name=value` of one cookie, in bytes (attributes not counted), before the session
    /// is split across several cookies ([`MAX_COOKIE_SIZE`], 4096, as lua-resty-session).
    pub max_cookie_size: usize,
    /// The issuer stamped into and required of every session (the plugin's `issuer`; empty by
    /// default).
    pub issuer: String,
    /// The clients a session may have been made for (the plugin's `client_id`). With none, a
    /// session must name no client.
    pub clients: Vec<String>,
    /// What each session is bound to (`session_bind`; nothing by default).
    pub bind: Bind,
    /// The remember cookie, when on (`session_remember`, off by default).
    pub remember: Option<Remember>,
}

impl Default for SessionConfig {
    /// Kong's defaults.
    fn default() -> Self {
        SessionConfig {
            cookie_name: "session".into(),
            cookie_path: "/".into(),
            cookie_domain: None,
            same_site: SameSite::Lax,
            http_only: true,
            secure: None,
            rolling_timeout: 3600,
            idling_timeout: 900,
            absolute_timeout: 86400,
            audience: "default".into(),
            max_cookie_size: MAX_COOKIE_SIZE,
            issuer: String::new(),
            clients: Vec::new(),
            bind: Bind::default(),
            remember: None,
        }
    }
}

impl SessionConfig {
    /// Checks every field so that building a `Set-Cookie` value later cannot fail.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !is_cookie_name(&self.cookie_name) {
            return Err(ConfigError::CookieName);
        }
        if let Some(r) = &self.remember
            && (!is_cookie_name(&r.cookie_name) || crate::cookies::names_clash(&self.cookie_name, &r.cookie_name))
        {
            return Err(ConfigError::RememberCookieName);
        }
        let path = self.cookie_path.as_bytes();
        if path.first() != Some(&b'/') || !path.iter().all(|&b| b.is_ascii_graphic() && b != b';') {
            return Err(ConfigError::CookiePath);
        }
        if let Some(domain) = &self.cookie_domain
            && (domain.is_empty() || !domain.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
        {
            return Err(ConfigError::CookieDomain);
        }
        if self.audience.len() > usize::from(u16::MAX) {
            return Err(ConfigError::Audience);
        }
        if self.issuer.len() > usize::from(u16::MAX) {
            return Err(ConfigError::Issuer);
        }
        if self.clients.iter().any(|c| c.len() > usize::from(u16::MAX)) {
            return Err(ConfigError::Client);
        }
        // The longest name: a chunk's (one digit more), of either cookie.
        let longest = self.remember.as_ref().map_or(0, |r| r.cookie_name.len()).max(self.cookie_name.len());
        let needed = longest + "9=".len() + MIN_CHUNK_PAYLOAD;
        if self.max_cookie_size < needed {
            return Err(ConfigError::MaxCookieSize { size: self.max_cookie_size, needed });
        }
        Ok(())
    }

    /// Whether cookies carry `Secure`, given how the request arrived.
    pub(crate) fn secure_for(&self, https: bool) -> bool {
        // Browsers refuse prefixed names without Secure, so the prefix wins over the setting.
        let prefixed = self.cookie_name.starts_with("__Secure-") || self.cookie_name.starts_with("__Host-");
        prefixed || self.secure.unwrap_or(https)
    }
}

/// 1 to [`MAX_NAME_LEN`] token characters.
fn is_cookie_name(name: &str) -> bool {
    let name = name.as_bytes();
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.iter().all(|&b| is_token(b))
}

/// RFC 7230 `tchar`, which RFC 6265 requires of cookie names.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl fmt::Display for SameSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.attribute().unwrap_or("Default"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kongs_and_valid() {
        let c = SessionConfig::default();
        assert_eq!((c.rolling_timeout, c.idling_timeout, c.absolute_timeout), (3600, 900, 86400));
        assert_eq!((c.cookie_name.as_str(), c.audience.as_str(), c.same_site), ("session", "default", SameSite::Lax));
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn same_site_parses_kong_spelling_only() {
        for (s, v) in [("Strict", SameSite::Strict), ("Lax", SameSite::Lax), ("None", SameSite::None)] {
            assert_eq!(s.parse::<SameSite>(), Ok(v));
            assert_eq!(v.to_string(), s);
        }
        assert_eq!("Default".parse::<SameSite>(), Ok(SameSite::Default));
        assert_eq!(SameSite::Default.attribute(), None);
        assert!("lax".parse::<SameSite>().is_err());
    }

    #[test]
    fn rejects_what_cannot_go_into_a_header() {
        let bad = |f: fn(&mut SessionConfig)| {
            let mut c = SessionConfig::default();
            f(&mut c);
            c.validate().expect_err("should be refused")
        };
        assert_eq!(bad(|c| c.cookie_name = String::new()), ConfigError::CookieName);
        assert_eq!(bad(|c| c.cookie_name = "a b".into()), ConfigError::CookieName);
        assert_eq!(bad(|c| c.cookie_name = "a=b".into()), ConfigError::CookieName);
        assert_eq!(bad(|c| c.cookie_name = "x".repeat(129)), ConfigError::CookieName);
        assert_eq!(bad(|c| c.cookie_path = "nope".into()), ConfigError::CookiePath);
        assert_eq!(bad(|c| c.cookie_path = "/a;b".into()), ConfigError::CookiePath);
        assert_eq!(bad(|c| c.cookie_path = "/a\nb".into()), ConfigError::CookiePath);
        assert_eq!(bad(|c| c.cookie_domain = Some(String::new())), ConfigError::CookieDomain);
        assert_eq!(bad(|c| c.cookie_domain = Some("a.com; x".into())), ConfigError::CookieDomain);
        assert_eq!(bad(|c| c.audience = "a".repeat(70_000)), ConfigError::Audience);
        assert_eq!(bad(|c| c.issuer = "i".repeat(70_000)), ConfigError::Issuer);
        assert_eq!(bad(|c| c.clients = vec!["ok".into(), "c".repeat(70_000)]), ConfigError::Client);
        assert!(matches!(bad(|c| c.max_cookie_size = 70), ConfigError::MaxCookieSize { size: 70, .. }));
        let long_remember = |c: &mut SessionConfig| {
            c.max_cookie_size = 80;
            c.remember = Some(Remember { cookie_name: "r".repeat(20), ..Remember::default() });
        };
        assert!(matches!(bad(long_remember), ConfigError::MaxCookieSize { size: 80, needed: 86 }));
    }

    #[test]
    fn the_size_limit_counts_the_name_not_the_attributes() {
        let mut c =
            SessionConfig { max_cookie_size: "session9=".len() + MIN_CHUNK_PAYLOAD, ..SessionConfig::default() };
        c.cookie_path = format!("/{}", "p".repeat(3000));
        c.cookie_domain = Some("d".repeat(1000));
        assert_eq!(c.validate(), Ok(()), "long attributes do not count against name=value");
        c.max_cookie_size -= 1;
        assert!(c.validate().is_err());
    }

    #[test]
    fn the_remember_cookie_never_shares_a_name_with_the_session_cookie() {
        let with = |session: &str, remember: &str| SessionConfig {
            cookie_name: session.into(),
            remember: Some(Remember { cookie_name: remember.into(), ..Remember::default() }),
            ..SessionConfig::default()
        };
        assert_eq!(with("session", "remember").validate(), Ok(()));
        assert_eq!(with("session", "session10").validate(), Ok(()), "not a chunk name: chunks stop at 9");
        for (s, r) in
            [("session", "session"), ("session", "session2"), ("session9", "session"), ("s", "a b"), ("s", "")]
        {
            assert_eq!(with(s, r).validate(), Err(ConfigError::RememberCookieName), "{s} / {r}");
        }
    }

    #[test]
    fn bind_reads_kong_names_only() {
        assert_eq!(Bind::from_names([]), Some(Bind::default()));
        let all = Bind::from_names(["ip", "scheme", "user-agent"]).expect("known");
        assert!(all.ip && all.scheme && all.user_agent && all.any());
        assert_eq!(all.bits(), 7);
        assert_eq!(Bind::from_names(["user-agent"]).map(Bind::bits), Some(4));
        assert_eq!(Bind::from_names(["ip", "host"]), None);
        assert!(!Bind::default().any());
    }

    #[test]
    fn secure_follows_setting_then_scheme_and_prefixes_force_it() {
        let mut c = SessionConfig::default();
        assert!(c.secure_for(true) && !c.secure_for(false));
        c.secure = Some(false);
        assert!(!c.secure_for(true));
        c.secure = Some(true);
        assert!(c.secure_for(false));
        c.secure = Some(false);
        c.cookie_name = "__Host-session".into();
        assert!(c.secure_for(false));
    }
}
