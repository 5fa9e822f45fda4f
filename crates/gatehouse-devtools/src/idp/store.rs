//! What the provider remembers between requests: authorization codes (and those already
//! redeemed), refresh tokens, opaque access tokens, revoked JWTs, pushed authorization requests
//! and browser login sessions. Kept behind one `std::sync::Mutex`, locked only for map
//! operations, never across an await.

use serde_json::{Map, Value};
use std::collections::HashMap;

/// Past this many entries, expired ones are swept out on the next insert. A dev server has no
/// janitor task; this keeps a long benchmark from growing memory without bound.
const SWEEP_AT: usize = 50_000;

/// The access tokens remembered per code grant (the newest ones), to revoke when its code is
/// replayed. A refresh adds one; older ones have usually expired by the time this many exist.
const FAMILY_ACCESS_MAX: usize = 256;

/// An authorization code waiting to be exchanged.
#[derive(Clone, Debug)]
pub(crate) struct Code {
    pub client_id: String,
    pub redirect_uri: String,
    pub username: String,
    pub scope: String,
    pub nonce: Option<String>,
    /// `(code_challenge, method)`, method `S256` or `plain`.
    pub challenge: Option<(String, String)>,
    pub auth_time: i64,
    pub sid: String,
    pub exp: i64,
}

/// The grant a refresh token stands for.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub client_id: String,
    pub username: String,
    pub scope: String,
    pub sid: String,
    pub auth_time: i64,
    pub iat: i64,
    pub exp: i64,
    /// The code grant this refresh token descends from, if any (see [`Store::take_code`]).
    pub family: Option<String>,
}

/// A pushed authorization request (RFC 9126), waiting for `/authorize?request_uri=`.
#[derive(Clone, Debug)]
pub(crate) struct Pushed {
    pub client_id: String,
    /// The authorization parameters, request object already unpacked.
    pub params: Vec<(String, String)>,
    /// Whether they came in a signed request object.
    pub signed: bool,
    pub exp: i64,
}

/// A browser's login at the form, found again through its `gatehouse_idp` cookie.
#[derive(Clone, Debug)]
pub(crate) struct Sso {
    pub username: String,
    pub auth_time: i64,
    pub sid: String,
    pub exp: i64,
}

/// What taking a code out found.
#[derive(Debug)]
pub(crate) enum Taken {
    /// A code seen for the first time, and the family its tokens join.
    Fresh(Box<Code>, String),
    /// A code already redeemed: its tokens have just been revoked (RFC 6749 section 4.1.2).
    Replayed,
    Unknown,
}

/// The tokens issued from one authorization code, through every refresh.
#[derive(Debug)]
struct Family {
    /// SHA-256 and `exp` of its access tokens, newest last.
    access: Vec<([u8; 32], i64)>,
    revoked: bool,
    /// Kept until then: the last refresh token's expiry.
    until: i64,
}

/// An opaque token the provider issued.
#[derive(Clone, Debug)]
pub(crate) enum Stored {
    /// An opaque access token (from `/_dev/mint` with `format: "opaque"`) and its claims.
    Access(Map<String, Value>),
    /// A refresh token.
    Refresh(Grant),
}

#[derive(Clone, Debug)]
struct Entry {
    token: Stored,
    revoked: bool,
}

impl Stored {
    fn expired(&self, now: i64) -> bool {
        match self {
            Stored::Access(claims) => claims.get("exp").and_then(Value::as_i64).is_some_and(|exp| exp <= now),
            Stored::Refresh(grant) => grant.exp <= now,
        }
    }
}

/// The provider's memory.
#[derive(Default)]
pub(crate) struct Store {
    codes: HashMap<String, Code>,
    tokens: HashMap<String, Entry>,
    /// SHA-256 of revoked JWT access tokens, with their `exp` (or `i64::MAX`).
    revoked_jwts: HashMap<[u8; 32], i64>,
    /// SHA-256 of redeemed codes, with their family and how long to remember them.
    redeemed: HashMap<[u8; 32], (String, i64)>,
    families: HashMap<String, Family>,
    pushed: HashMap<String, Pushed>,
    /// Login sessions by the value of their cookie.
    sso: HashMap<String, Sso>,
}

impl Store {
    /// Keeps a code until it is exchanged or expires.
    pub fn insert_code(&mut self, code: String, data: Code, now: i64) {
        if self.codes.len() >= SWEEP_AT {
            self.codes.retain(|_, c| c.exp > now);
        }
        self.codes.insert(code, data);
    }

    /// Takes a code out: a code works once, whatever the outcome of the exchange. It is then
    /// remembered as redeemed until `until`, so a second try revokes what the first one got.
    pub fn take_code(&mut self, code: &str, now: i64, until: i64) -> Taken {
        let hash = super::util::sha256(code.as_bytes());
        if let Some(data) = self.codes.remove(code) {
            if self.redeemed.len() >= SWEEP_AT {
                self.redeemed.retain(|_, (_, until)| *until > now);
            }
            if self.families.len() >= SWEEP_AT {
                self.families.retain(|_, f| f.until > now);
            }
            let family = uuid::Uuid::new_v4().to_string();
            self.redeemed.insert(hash, (family.clone(), until));
            self.families.insert(family.clone(), Family { access: Vec::new(), revoked: false, until });
            return Taken::Fresh(Box::new(data), family);
        }
        match self.redeemed.get(&hash) {
            Some((family, until)) if *until > now => {
                let family = family.clone();
                self.revoke_family(&family, now);
                Taken::Replayed
            }
            _ => Taken::Unknown,
        }
    }

    /// Revokes every token of a code's family, and those it will still get.
    fn revoke_family(&mut self, family: &str, now: i64) {
        let Some(f) = self.families.get_mut(family) else { return };
        f.revoked = true;
        let access = std::mem::take(&mut f.access);
        for (hash, exp) in access {
            self.revoked_jwts.insert(hash, exp);
        }
        for entry in self.tokens.values_mut() {
            if let Stored::Refresh(grant) = &entry.token
                && grant.family.as_deref() == Some(family)
            {
                entry.revoked = true;
            }
        }
        if self.revoked_jwts.len() >= SWEEP_AT {
            self.revoked_jwts.retain(|_, exp| *exp > now);
        }
    }

    /// Notes a JWT access token issued in a code's family, which lives on until `until`.
    pub fn add_to_family(&mut self, family: &str, token: &str, exp: i64, until: i64, now: i64) {
        let Some(f) = self.families.get_mut(family) else { return };
        if f.revoked {
            self.revoke_jwt(token, Some(exp), now);
            return;
        }
        if f.access.len() >= FAMILY_ACCESS_MAX {
            f.access.remove(0);
        }
        f.access.push((super::util::sha256(token.as_bytes()), exp));
        f.until = f.until.max(until);
    }

    /// Keeps an opaque token. A refresh token of a revoked family is born revoked.
    pub fn insert_token(&mut self, token: String, data: Stored, now: i64) {
        if self.tokens.len() >= SWEEP_AT {
            self.tokens.retain(|_, e| !e.token.expired(now));
        }
        let revoked = match &data {
            Stored::Refresh(Grant { family: Some(family), .. }) => self.families.get(family).is_some_and(|f| f.revoked),
            _ => false,
        };
        self.tokens.insert(token, Entry { token: data, revoked });
    }

    /// The token if it is known, not revoked and not expired.
    pub fn active(&self, token: &str, now: i64) -> Option<&Stored> {
        self.tokens.get(token).filter(|e| !e.revoked && !e.token.expired(now)).map(|e| &e.token)
    }

    /// Marks an opaque token revoked. Returns whether it was known.
    pub fn revoke(&mut self, token: &str) -> bool {
        self.tokens.get_mut(token).map(|e| e.revoked = true).is_some()
    }

    /// Revokes every refresh token of a login session (logout).
    pub fn revoke_session(&mut self, sid: &str) {
        for entry in self.tokens.values_mut() {
            if let Stored::Refresh(grant) = &entry.token
                && grant.sid == sid
            {
                entry.revoked = true;
            }
        }
    }

    /// Remembers that a JWT access token was revoked until it expires.
    pub fn revoke_jwt(&mut self, token: &str, exp: Option<i64>, now: i64) {
        if self.revoked_jwts.len() >= SWEEP_AT {
            self.revoked_jwts.retain(|_, exp| *exp > now);
        }
        self.revoked_jwts.insert(super::util::sha256(token.as_bytes()), exp.unwrap_or(i64::MAX));
    }

    /// Whether a JWT access token was revoked.
    pub fn jwt_revoked(&self, token: &str) -> bool {
        self.revoked_jwts.contains_key(&super::util::sha256(token.as_bytes()))
    }

    /// Keeps a pushed authorization request under its `request_uri`.
    pub fn insert_pushed(&mut self, request_uri: String, data: Pushed, now: i64) {
        if self.pushed.len() >= SWEEP_AT {
            self.pushed.retain(|_, p| p.exp > now);
        }
        self.pushed.insert(request_uri, data);
    }

    /// A pushed request that has not expired. It stays until [`Store::take_pushed`], so the login
    /// form can be shown (and reloaded) before the answer spends it.
    pub fn pushed(&self, request_uri: &str, now: i64) -> Option<&Pushed> {
        self.pushed.get(request_uri).filter(|p| p.exp > now)
    }

    /// Spends a pushed request: a `request_uri` answers once.
    pub fn take_pushed(&mut self, request_uri: &str) {
        self.pushed.remove(request_uri);
    }

    /// Keeps a login session under the value of its cookie.
    pub fn insert_sso(&mut self, id: String, data: Sso, now: i64) {
        if self.sso.len() >= SWEEP_AT {
            self.sso.retain(|_, s| s.exp > now);
        }
        self.sso.insert(id, data);
    }

    /// The login session of a cookie value, if it has not expired.
    pub fn sso(&self, id: &str, now: i64) -> Option<&Sso> {
        self.sso.get(id).filter(|s| s.exp > now)
    }

    /// Ends a login session; returns it if it existed.
    pub fn remove_sso(&mut self, id: &str) -> Option<Sso> {
        self.sso.remove(id)
    }

    /// Ends every login session of a `sid` (logout from an ID token hint).
    pub fn remove_sso_sid(&mut self, sid: &str) {
        self.sso.retain(|_, s| s.sid != sid);
    }

    /// Moves every login back in time by `seconds` (`/_dev/sso`, for `max_age` tests); returns
    /// how many sessions there are.
    pub fn age_sso(&mut self, seconds: i64) -> usize {
        for s in self.sso.values_mut() {
            s.auth_time = s.auth_time.saturating_sub(seconds);
        }
        self.sso.len()
    }

    /// Ends every login session; returns how many there were.
    pub fn clear_sso(&mut self) -> usize {
        let n = self.sso.len();
        self.sso.clear();
        n
    }
}
