//! Sealing: AES-256-GCM under a key derived from the operator's secret, base64url on the wire.
//!
//! Sealed blob: `version (1) || chunks (1) || nonce (12) || ciphertext || tag (16)`.
//! The additional authenticated data is `cookie name || version || chunks`, followed for a bound
//! session by its [`Binding`] digest, so neither the cookie name the value travels under, nor its
//! framing, nor the request facts it is bound to can change without the tag failing.

use std::fmt;
use std::ops::Range;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{hkdf, rand};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::binding::Binding;

/// Format version, first byte of every sealed blob. A new layout takes a new number. Version 2
/// added the issuer and client to the envelope; a version 1 cookie is [`CodecError::Version`].
pub(crate) const VERSION: u8 = 2;
/// `version || chunks || nonce`.
pub(crate) const HEADER_LEN: usize = 2 + NONCE_LEN;
/// AES-GCM tag length.
pub(crate) const TAG_LEN: usize = 16;

/// Fixed HKDF inputs. Changing either invalidates every session, like changing the secret.
const HKDF_SALT: &[u8] = b"gatehouse-session";
const HKDF_INFO: &[u8] = b"gatehouse-session v1 aes-256-gcm cookie key";
/// The info of a key bound to one plugin instance and issuer ([`SessionCodec::for_instance`]);
/// the plugin id and issuer follow it, each length-prefixed so no two pairs give the same info.
const HKDF_INFO_INSTANCE: &[u8] = b"gatehouse-session v2 aes-256-gcm cookie key for plugin and issuer";

/// Why a sealed value could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CodecError {
    /// Not base64url without padding.
    #[error("not base64url")]
    Base64,
    /// Shorter than header and tag.
    #[error("too short")]
    TooShort,
    /// A format version this build does not read.
    #[error("unknown format version {0}")]
    Version(u8),
    /// The tag does not verify: tampered, another secret, or another cookie name.
    #[error("authentication failed")]
    Tag,
}

/// The session key: AES-256-GCM, derived with HKDF-SHA256 from the operator's secret.
pub struct SessionCodec {
    key: LessSafeKey,
}

impl fmt::Debug for SessionCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionCodec { .. }")
    }
}

impl SessionCodec {
    /// Derives the key from `secret` (any length; use at least 32 random bytes). The same secret
    /// always yields the same key, so every node given it reads every other node's cookies.
    ///
    /// The key is bound to nothing but the secret: prefer [`SessionCodec::for_instance`] wherever
    /// several users of one secret must not read each other's sessions.
    pub fn new(secret: &[u8]) -> Self {
        SessionCodec::derive(secret, &[HKDF_INFO])
    }

    /// Derives the key of one plugin instance for one issuer: HKDF info names both, so the same
    /// secret gives every (plugin, issuer) pair its own key, and a cookie sealed by one instance
    /// fails authentication ([`OpenError::Invalid`](crate::OpenError::Invalid)) at any other.
    pub fn for_instance(secret: &[u8], plugin_id: &str, issuer: &str) -> Self {
        // u32 prefixes: neither value is bounded by its schema, and 4 GiB is past any config.
        let plugin_len = (plugin_id.len() as u32).to_be_bytes();
        let issuer_len = (issuer.len() as u32).to_be_bytes();
        SessionCodec::derive(
            secret,
            &[HKDF_INFO_INSTANCE, &plugin_len, plugin_id.as_bytes(), &issuer_len, issuer.as_bytes()],
        )
    }

    fn derive(secret: &[u8], info: &[&[u8]]) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(secret);
        // 32 bytes is far below HKDF-SHA256's limit of 255 * 32, the only way `expand` fails.
        let okm = prk.expand(info, &AES_256_GCM).expect("a 32-byte HKDF output is always possible");
        SessionCodec { key: LessSafeKey::new(UnboundKey::from(okm)) }
    }

    /// A codec with a fresh random secret: sessions only this process can read, and only until
    /// it exits (what Kong does when `session_secret` is not set).
    pub fn random() -> Self {
        SessionCodec::new(&random_bytes::<32>())
    }

    /// Seals `buf` in place. On entry `buf` is `HEADER_LEN` bytes of any value followed by the
    /// plaintext; on return it is the sealed blob (header filled in, tag appended).
    pub(crate) fn seal_in_place(&self, cookie_name: &str, chunks: u8, binding: &Binding, buf: &mut Vec<u8>) {
        let nonce = random_bytes::<NONCE_LEN>();
        buf[0] = VERSION;
        buf[1] = chunks;
        buf[2..HEADER_LEN].copy_from_slice(&nonce);
        let aad = aad(cookie_name, VERSION, chunks, binding);
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf[HEADER_LEN..])
            // AES-GCM refuses only inputs of many gigabytes; the store caps sessions far below.
            .expect("AES-GCM seals any session-sized input");
        buf.extend_from_slice(tag.as_ref());
    }

    /// Verifies and decrypts a sealed blob in place; returns where the plaintext lies in `buf`.
    pub(crate) fn open_in_place(
        &self,
        cookie_name: &str,
        binding: &Binding,
        buf: &mut [u8],
    ) -> Result<Range<usize>, CodecError> {
        if buf.len() < HEADER_LEN + TAG_LEN {
            return Err(CodecError::TooShort);
        }
        if buf[0] != VERSION {
            return Err(CodecError::Version(buf[0]));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&buf[2..HEADER_LEN]);
        let aad = aad(cookie_name, buf[0], buf[1], binding);
        let plain = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf[HEADER_LEN..])
            .map_err(|_| CodecError::Tag)?;
        Ok(HEADER_LEN..HEADER_LEN + plain.len())
    }
}

/// Reads version and chunk count from the first four base64 characters of a value, before the
/// rest is collected. The count is authenticated later, when the whole blob is opened.
pub(crate) fn peek_chunks(first: &[u8]) -> Result<u8, CodecError> {
    let head = first.get(..4).ok_or(CodecError::TooShort)?;
    let mut out = [0u8; 3];
    URL_SAFE_NO_PAD.decode_slice(head, &mut out).map_err(|_| CodecError::Base64)?;
    match out {
        [VERSION, 0, _] => Err(CodecError::TooShort),
        [VERSION, chunks, _] => Ok(chunks),
        [v, _, _] => Err(CodecError::Version(v)),
    }
}

/// Decodes one chunk of text, appending to `buf`.
pub(crate) fn decode_append(text: &[u8], buf: &mut Vec<u8>) -> Result<(), CodecError> {
    URL_SAFE_NO_PAD.decode_vec(text, buf).map_err(|_| CodecError::Base64)
}

/// Room `decode_append` may use for `text_len` characters (it sizes its output by this bound).
pub(crate) fn decoded_capacity(text_len: usize) -> usize {
    text_len.div_ceil(4) * 3
}

/// Length of the base64url text for `blob_len` bytes.
pub(crate) fn encoded_len(blob_len: usize) -> usize {
    (blob_len * 4).div_ceil(3)
}

/// Base64url text of a sealed blob.
pub(crate) fn encode(blob: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(blob)
}

/// `N` bytes from the system generator. AWS-LC aborts the process itself if its generator
/// fails, so the error arm is unreachable in practice; a session without randomness must not exist.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::fill(&mut out).expect("system random generator");
    out
}

/// `name || version || chunks [|| bits || binding digest]`, on the stack for every name a valid
/// config allows. The bits tell bindings of different facts apart even if their digests agreed.
fn aad(cookie_name: &str, version: u8, chunks: u8, binding: &Binding) -> AadBuf {
    let name = cookie_name.as_bytes();
    let bound = binding.aad();
    let bits: &[u8] = if bound.is_empty() { &[] } else { &[binding.bits()] };
    let len = name.len() + 2 + bits.len() + bound.len();
    let mut stack = [0u8; AAD_STACK];
    let fill = |dst: &mut [u8]| {
        let (n, rest) = dst.split_at_mut(name.len());
        n.copy_from_slice(name);
        let (framing, rest) = rest.split_at_mut(2);
        framing.copy_from_slice(&[version, chunks]);
        let (b, digest) = rest.split_at_mut(bits.len());
        b.copy_from_slice(bits);
        digest.copy_from_slice(bound);
    };
    if let Some(dst) = stack.get_mut(..len) {
        fill(dst);
        AadBuf::Stack(stack, len)
    } else {
        let mut v = vec![0u8; len];
        fill(&mut v);
        AadBuf::Heap(v)
    }
}

const AAD_STACK: usize = crate::config::MAX_NAME_LEN + 2 + 1 + 32;

enum AadBuf {
    Stack([u8; AAD_STACK], usize),
    Heap(Vec<u8>),
}

impl AsRef<[u8]> for AadBuf {
    fn as_ref(&self) -> &[u8] {
        match self {
            AadBuf::Stack(b, n) => &b[..*n],
            AadBuf::Heap(v) => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(codec: &SessionCodec, name: &str, chunks: u8, plain: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; HEADER_LEN];
        buf.extend_from_slice(plain);
        codec.seal_in_place(name, chunks, &Binding::NONE, &mut buf);
        buf
    }

    fn open(codec: &SessionCodec, name: &str, blob: Vec<u8>) -> Result<Vec<u8>, CodecError> {
        open_bound(codec, name, &Binding::NONE, blob)
    }

    fn open_bound(codec: &SessionCodec, name: &str, b: &Binding, mut blob: Vec<u8>) -> Result<Vec<u8>, CodecError> {
        let range = codec.open_in_place(name, b, &mut blob)?;
        Ok(blob[range].to_vec())
    }

    #[test]
    fn a_bound_seal_opens_only_with_its_binding() {
        use crate::config::Bind;
        let codec = SessionCodec::new(b"secret");
        let ip = "192.0.2.1".parse().expect("ip");
        let all = Bind { ip: true, scheme: true, user_agent: true };
        let bound = Binding::new(all, ip, true, b"ua");
        let mut blob = vec![0u8; HEADER_LEN];
        blob.extend_from_slice(b"data");
        codec.seal_in_place("session", 1, &bound, &mut blob);
        assert_eq!(open_bound(&codec, "session", &bound, blob.clone()), Ok(b"data".to_vec()));
        assert_eq!(
            open_bound(&codec, "session", &Binding::new(all, ip, true, b"ub"), blob.clone()),
            Err(CodecError::Tag)
        );
        assert_eq!(open(&codec, "session", blob.clone()), Err(CodecError::Tag), "an unbound open fails");
        // And an unbound seal does not open bound: the binding cannot be added afterwards.
        let unbound = seal(&codec, "session", 1, b"data");
        assert_eq!(open_bound(&codec, "session", &bound, unbound), Err(CodecError::Tag));
        // The longest name with a binding still fits the stack buffer, and a longer one the heap.
        for name in ["n".repeat(crate::config::MAX_NAME_LEN), "n".repeat(300)] {
            let mut blob = vec![0u8; HEADER_LEN];
            codec.seal_in_place(&name, 1, &bound, &mut blob);
            assert_eq!(open_bound(&codec, &name, &bound, blob), Ok(Vec::new()));
        }
    }

    #[test]
    fn round_trip_through_base64() {
        let codec = SessionCodec::new(b"secret");
        let blob = seal(&codec, "session", 1, b"hello");
        assert_eq!(blob.len(), HEADER_LEN + 5 + TAG_LEN);
        let text = encode(&blob);
        assert_eq!(text.len(), encoded_len(blob.len()));
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(peek_chunks(text.as_bytes()), Ok(1));
        let mut back = Vec::with_capacity(decoded_capacity(text.len()));
        decode_append(text.as_bytes(), &mut back).expect("decodes");
        assert_eq!(open(&codec, "session", back), Ok(b"hello".to_vec()));
    }

    #[test]
    fn nonces_differ_between_seals() {
        let codec = SessionCodec::new(b"secret");
        assert_ne!(seal(&codec, "s", 1, b"x"), seal(&codec, "s", 1, b"x"));
    }

    #[test]
    fn any_flipped_bit_fails() {
        let codec = SessionCodec::new(b"secret");
        let blob = seal(&codec, "session", 1, b"some plaintext");
        for i in 0..blob.len() {
            for bit in [0x01, 0x80] {
                let mut t = blob.clone();
                t[i] ^= bit;
                let expected = if i == 0 { CodecError::Version(t[0]) } else { CodecError::Tag };
                assert_eq!(open(&codec, "session", t), Err(expected), "byte {i}");
            }
        }
    }

    #[test]
    fn other_name_other_secret_or_truncation_fail() {
        let codec = SessionCodec::new(b"secret");
        let blob = seal(&codec, "session", 1, b"data");
        assert_eq!(open(&codec, "session_2", blob.clone()), Err(CodecError::Tag));
        assert_eq!(open(&SessionCodec::new(b"secret2"), "session", blob.clone()), Err(CodecError::Tag));
        assert_eq!(open(&codec, "session", blob[..blob.len() - 1].to_vec()), Err(CodecError::Tag));
        assert_eq!(open(&codec, "session", blob[..HEADER_LEN + TAG_LEN - 1].to_vec()), Err(CodecError::TooShort));
        // Same secret, different codec instance: same key.
        assert_eq!(open(&SessionCodec::new(b"secret"), "session", blob), Ok(b"data".to_vec()));
    }

    #[test]
    fn instance_keys_differ_per_plugin_and_issuer() {
        let secret = b"issuer secret";
        let blob = seal(&SessionCodec::for_instance(secret, "p1", "https://a"), "session", 1, b"data");
        let open_with =
            |plugin, issuer| open(&SessionCodec::for_instance(secret, plugin, issuer), "session", blob.clone());
        assert_eq!(open_with("p1", "https://a"), Ok(b"data".to_vec()));
        assert_eq!(open_with("p2", "https://a"), Err(CodecError::Tag));
        assert_eq!(open_with("p1", "https://b"), Err(CodecError::Tag));
        // The length prefixes keep a shifted boundary from giving the same info.
        assert_eq!(open_with("p1h", "ttps://a"), Err(CodecError::Tag));
        assert_eq!(open(&SessionCodec::new(secret), "session", blob), Err(CodecError::Tag));
    }

    #[test]
    fn long_names_use_the_heap_path() {
        let codec = SessionCodec::new(b"");
        let name = "n".repeat(300);
        let blob = seal(&codec, &name, 1, b"data");
        assert_eq!(open(&codec, &name, blob.clone()), Ok(b"data".to_vec()));
        assert_eq!(open(&codec, &name[1..], blob), Err(CodecError::Tag));
    }

    #[test]
    fn peek_rejects_garbage() {
        assert_eq!(peek_chunks(b"AQ"), Err(CodecError::TooShort));
        assert_eq!(peek_chunks(b"A*AA"), Err(CodecError::Base64));
        assert_eq!(peek_chunks(b"AwEA"), Err(CodecError::Version(3)));
        assert_eq!(peek_chunks(b"AQMA"), Err(CodecError::Version(1)), "version 1 cookies are no longer read");
        assert_eq!(peek_chunks(b"AgAA"), Err(CodecError::TooShort));
        assert_eq!(peek_chunks(b"AgMA"), Ok(3));
        let mut buf = Vec::new();
        assert_eq!(decode_append(b"A", &mut buf), Err(CodecError::Base64));
        assert_eq!(decode_append(b"AQ==", &mut buf), Err(CodecError::Base64));
    }
}
