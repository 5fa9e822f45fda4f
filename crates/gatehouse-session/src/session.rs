//! What a session cookie holds once opened.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::codec::random_bytes;

/// Length of a session id in bytes.
pub const ID_LEN: usize = 32;

/// One session: identity, clock marks for the three timeouts, and opaque data.
///
/// Times are Unix seconds supplied by the caller; this crate reads no clock.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// Random identifier; see [`Session::id_string`].
    pub id: [u8; ID_LEN],
    /// Creation time: the absolute timeout counts from here.
    pub created_at: i64,
    /// Time of the last save: the rolling timeout counts from here.
    pub rolled_at: i64,
    /// Time the session was last recorded as used: the idling timeout counts from here.
    pub last_seen: i64,
    /// Which application the session belongs to; opening requires the configured audience.
    pub audience: String,
    /// The issuer whose tokens the session holds; opening requires the configured issuer.
    pub issuer: String,
    /// The client the tokens were obtained for, if any; opening requires one of the configured
    /// clients (none when none are configured).
    pub client: Option<String>,
    /// Who the session is for, if known (Kong stores the token's `sub`).
    pub subject: Option<String>,
    /// Opaque payload; the plugin stores its serialized tokens here.
    pub data: Vec<u8>,
}

impl Session {
    /// A new session created at `now`, with a fresh random id, no issuer and no client.
    pub fn new(now: i64, audience: impl Into<String>, subject: Option<String>, data: Vec<u8>) -> Self {
        Session {
            id: random_bytes(),
            created_at: now,
            rolled_at: now,
            last_seen: now,
            audience: audience.into(),
            issuer: String::new(),
            client: None,
            subject,
            data,
        }
    }

    /// The id as base64url without padding (43 characters), as sent in `upstream_session_id_header`.
    pub fn id_string(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.id)
    }

    /// Replaces the id with a fresh random one, keeping everything else (e.g. after a login, to
    /// defeat session fixation).
    pub fn regenerate_id(&mut self) {
        self.id = random_bytes();
    }
}

/// Leaves out the id and data: they are bearer secrets (the data holds tokens).
impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("created_at", &self.created_at)
            .field("rolled_at", &self.rolled_at)
            .field("last_seen", &self.last_seen)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("client", &self.client)
            .field("subject", &self.subject)
            .field("data_len", &self.data.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_random_and_43_chars() {
        let mut a = Session::new(10, "aud", None, vec![1]);
        let b = Session::new(10, "aud", None, vec![1]);
        assert_ne!(a.id, b.id);
        assert_eq!(a.id_string().len(), 43);
        assert_eq!((a.created_at, a.rolled_at, a.last_seen), (10, 10, 10));
        let before = a.id;
        a.regenerate_id();
        assert_ne!(a.id, before);
        assert_eq!(a.data, vec![1]);
    }

    #[test]
    fn debug_hides_secrets() {
        let s = Session::new(0, "aud", Some("alice".into()), b"token-bytes".to_vec());
        let text = format!("{s:?}");
        assert!(text.contains("alice") && text.contains("data_len: 11"));
        assert!(!text.contains(&s.id_string()) && !text.contains("116"));
    }
}
