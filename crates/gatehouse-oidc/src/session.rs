//! What the plugin keeps in its session cookie, on top of `gatehouse-session`'s encrypted
//! envelope: the tokens of the grant that opened the session and when the access token expires.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The session's payload (Kong stores `client`, `tokens`, `expires`, `auth_method`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionData {
    /// Index of the client (in `client_id`) that obtained the tokens.
    pub client: usize,
    /// The access token.
    pub access_token: Arc<str>,
    /// The ID token, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<Arc<str>>,
    /// The refresh token, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Arc<str>>,
    /// When the access token expires (Unix seconds; 0 = unknown, never refreshed).
    pub expires: i64,
    /// The auth method that opened the session.
    pub auth_method: String,
}

impl SessionData {
    /// Serialized for the envelope.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parsed from the envelope.
    pub fn decode(bytes: &[u8]) -> Option<SessionData> {
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let d = SessionData {
            client: 0,
            access_token: "a".into(),
            id_token: None,
            refresh_token: Some("r".into()),
            expires: 5,
            auth_method: "password".into(),
        };
        assert_eq!(SessionData::decode(&d.encode()), Some(d));
        assert_eq!(SessionData::decode(b"garbage"), None);
    }
}
