//! What the provider remembers between requests: authorization codes, refresh tokens, opaque
//! access tokens and revoked JWTs. Kept behind one `std::sync::Mutex`, locked only for map
//! operations, never across an await.

use serde_json::{Map, Value};
use std::collections::HashMap;

/// Past this many entries, expired ones are swept out on the next insert. A dev server has no
/// janitor task; this keeps a long benchmark from growing memory without bound.
const SWEEP_AT: usize = 50_000;

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
}

impl Store {
    /// Keeps a code until it is exchanged or expires.
    pub fn insert_code(&mut self, code: String, data: Code, now: i64) {
        if self.codes.len() >= SWEEP_AT {
            self.codes.retain(|_, c| c.exp > now);
        }
        self.codes.insert(code, data);
    }

    /// Takes a code out: a code works once, whatever the outcome of the exchange.
    pub fn take_code(&mut self, code: &str) -> Option<Code> {
        self.codes.remove(code)
    }

    /// Keeps an opaque token.
    pub fn insert_token(&mut self, token: String, data: Stored, now: i64) {
        if self.tokens.len() >= SWEEP_AT {
            self.tokens.retain(|_, e| !e.token.expired(now));
        }
        self.tokens.insert(token, Entry { token: data, revoked: false });
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
}
