//! What the authorization cookie holds while a browser is away at the identity provider: the
//! values the callback is checked against and where the browser came from. Sealed like a session
//! (`gatehouse-session`), under the authorization cookie's name, so neither cookie opens as the
//! other.

use serde::{Deserialize, Serialize};

/// One authorization request in flight (Kong keeps `uri`, `args`, `client`, `state`, `nonce`,
/// `code_verifier`, `uri_args`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct PendingAuthorization {
    /// The request's own URL without its query: where the browser was going.
    pub uri: String,
    /// The request's query, kept with `preserve_query_args`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_args: Option<String>,
    /// The `redirect_uri` of the latest authorization request. The code exchange sends the
    /// callback's own (`signin.rs`), which is this one unless another tab restarted the flow.
    pub redirect_uri: String,
    /// The client (index in `client_id`) the request was made for.
    pub client: usize,
    /// `state`: the callback must carry it back.
    pub state: String,
    /// `nonce`: the ID token must carry it.
    pub nonce: String,
    /// The PKCE verifier, when a challenge was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_verifier: Option<String>,
}

impl PendingAuthorization {
    /// Serialized for the envelope.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parsed from the envelope.
    pub fn decode(bytes: &[u8]) -> Option<PendingAuthorization> {
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_junk() {
        let p = PendingAuthorization {
            uri: "http://127.0.0.1:8000/anything".into(),
            uri_args: Some("hello=world".into()),
            redirect_uri: "http://127.0.0.1:8000/anything".into(),
            client: 1,
            state: "s".into(),
            nonce: "n".into(),
            code_verifier: None,
        };
        assert_eq!(PendingAuthorization::decode(&p.encode()), Some(p));
        assert_eq!(PendingAuthorization::decode(b"{\"uri\":1}"), None);
        assert_eq!(PendingAuthorization::decode(b"\xff"), None);
    }
}
