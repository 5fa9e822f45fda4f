//! Small helpers: randomness, hashing, base64url and the clock.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Merges `over` into `base`; a `null` removes the member.
pub(crate) fn merge(
    base: &mut serde_json::Map<String, serde_json::Value>,
    over: &serde_json::Map<String, serde_json::Value>,
) {
    for (k, v) in over {
        if v.is_null() {
            base.remove(k);
        } else {
            base.insert(k.clone(), v.clone());
        }
    }
}

/// Unix time in seconds.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `len` random bytes from the system generator. aws-lc-rs only fails here if the OS has no
/// entropy source at all; a uuid v4 (getrandom) is the fallback rather than a panic.
fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        for chunk in bytes.chunks_mut(16) {
            let id = uuid::Uuid::new_v4();
            chunk.copy_from_slice(&id.as_bytes()[..chunk.len()]);
        }
    }
    bytes
}

/// An unguessable opaque value (codes, refresh tokens): 32 random bytes, base64url.
pub(crate) fn random_token() -> String {
    b64(&random_bytes(32))
}

/// A key id: 16 hex digits. Foreign keys in `/_dev/mint` use the same shape, so only the JWKS tells
/// them apart.
pub(crate) fn new_kid() -> String {
    random_bytes(8).iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The `at_hash`/`c_hash` of `data` for a token signed with `alg` (OIDC Core 3.1.3.6, 3.3.2.11):
/// the left half of the hash the algorithm uses, base64url. EdDSA (Ed25519) hashes with SHA-512.
pub(crate) fn half_hash(alg: gatehouse_jose::Algorithm, data: &[u8]) -> String {
    use aws_lc_rs::digest::{SHA256, SHA384, SHA512, digest};
    use gatehouse_jose::Algorithm as A;
    let hash = match alg {
        A::Rs384 | A::Ps384 | A::Es384 | A::Hs384 => &SHA384,
        A::Rs512 | A::Ps512 | A::Es512 | A::Hs512 | A::EdDsa => &SHA512,
        _ => &SHA256,
    };
    let d = digest(hash, data);
    b64(&d.as_ref()[..d.as_ref().len() / 2])
}

/// Unpadded base64url.
pub(crate) fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Compares secrets in time independent of where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Decodes `%XX` escapes and `+` (application/x-www-form-urlencoded), for HTTP Basic credentials
/// which RFC 6749 section 2.3.1 says are form-encoded before base64.
pub(crate) fn form_decode(s: &str) -> String {
    form_urlencoded::parse(format!("v={}", s.replace('&', "%26").replace('=', "%3D")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
