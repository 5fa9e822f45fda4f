//! Encrypted, authenticated cookie sessions: Gatehouse's counterpart of lua-resty-session v4,
//! which Kong's openid-connect plugin uses. No IO and no clock: callers pass `now` (Unix seconds).
//!
//! # Use
//!
//! Build a [`SessionStore`] once per plugin configuration from a [`SessionCodec`] (the key,
//! [`SessionCodec::for_instance`]) and a [`SessionConfig`] (Kong's `session_*` fields, the issuer
//! and the clients). Per request:
//!
//! 1. [`SessionStore::open`] reads the session from the `Cookie` headers, or says why not
//!    ([`OpenError`]).
//! 2. [`SessionStore::strip`] removes the session cookies before the request goes upstream.
//! 3. If the session changed, or [`SessionStore::needs_save`] says so, [`SessionStore::save`]
//!    returns the `Set-Cookie` values; pass it [`Opened::chunks`] so leftover chunks are expired.
//! 4. On logout or a broken session, [`SessionStore::clear`] expires every chunk present.
//!
//! With [`SessionConfig::remember`], the store has a second store for Kong's "remember me"
//! cookie ([`SessionStore::remember`]): its own name and timeouts, the same key; `strip` and
//! `clear` cover both. A second store built on its own serves the short-lived authorization
//! state of the code flow.
//!
//! With [`SessionConfig::bind`] (Kong's `session_bind`), open and save with
//! [`SessionStore::open_bound`] / [`SessionStore::save_bound`] and the request's
//! [`SessionStore::binding`]: the plain `open`/`save` refuse a bound store's cookies.
//!
//! # Why a session's tokens are trusted
//!
//! The openid-connect plugin keeps the tokens of a grant in the session and, on later requests,
//! reads them from it **without verifying them again** (an opaque access token cannot be
//! verified at all without a call to the identity provider). That is sound only because the
//! cookie is authenticated: AES-GCM's tag proves that *this* key sealed the value, and the
//! plugin sealed it right after it verified the tokens (or got them from the token endpoint).
//! So the trust is exactly as narrow as the key:
//!
//! - A key shared by two plugin instances would let a cookie made by one be read by the other,
//!   whose issuer, clients, audience checks and required claims may be different: the second
//!   would pass upstream tokens it never verified. So the key is derived per plugin instance
//!   *and* issuer ([`SessionCodec::for_instance`]: HKDF info naming both), from the issuer's own
//!   generated secret (Kong's per-issuer secret) or the plugin's `session_secret`.
//! - The envelope also records the issuer and client the tokens were obtained for, and opening
//!   checks them against the configuration ([`OpenError::WrongIssuer`],
//!   [`OpenError::WrongClient`]): a second line that holds even if an operator gives two plugins
//!   one secret on purpose.
//! - Anything that changes the key ends every session sealed with the old one: a new
//!   `session_secret`, a rotated issuer secret (`DELETE /openid-connect/issuers/{id}`), or a new
//!   plugin id (deleting and re-creating the plugin; declarative plugins keep their id, a UUID v5
//!   of their place in `kong.yml`). Users then log in again; nothing is read unverified.
//!
//! # Format (version 2)
//!
//! - **Key**: HKDF-SHA256 over the secret (any length), salt `gatehouse-session`. Info
//!   `gatehouse-session v2 aes-256-gcm cookie key for plugin and issuer` followed by the plugin id
//!   and the issuer, each prefixed by its length (u32 big-endian), for [`SessionCodec::for_instance`];
//!   `gatehouse-session v1 aes-256-gcm cookie key` for an unbound [`SessionCodec::new`]. Either
//!   gives a 256-bit AES-GCM key.
//! - **Sealed value**: `version (1) || chunks (1) || nonce (12) || ciphertext || tag (16)`,
//!   AES-256-GCM with a random 96-bit nonce. The additional authenticated data is
//!   `cookie name || version || chunks`: a value moved to another cookie name, or given another
//!   chunk count, fails to open. A bound session's AAD goes on with `bits (1) || SHA-256 of the
//!   bound values` (client address, `http`/`https`, `User-Agent`, the bound ones in that order,
//!   joined by `|`): the cookie does not open for another client address, scheme or user agent.
//! - **On the wire**: base64url without padding, so a cookie value never holds anything but
//!   `A-Z a-z 0-9 - _`.
//! - **Plaintext envelope** (big-endian, length-prefixed, no JSON): `id (32) | created_at i64 |
//!   rolled_at i64 | last_seen i64 | audience_len u16 | audience | issuer_len u16 | issuer |
//!   flags u8 (bit 0: subject, bit 1: client) | [subject_len u16 | subject] |
//!   [client_len u16 | client] | data_len u32 | data`. Version 1 (no issuer, no client) is no
//!   longer read: such a cookie is [`OpenError::Malformed`].
//! - **Chunks**, named as lua-resty-session's: when one cookie's `name=value` would exceed
//!   `max_cookie_size` (4096 bytes; attributes do not count), the base64 text is cut into pieces
//!   sent as `name`, `name2` … `name9` (at most 9: more is [`SaveError::TooLarge`]). Every piece
//!   but the last holds a multiple of 4 characters, so each decodes on its own straight into one
//!   buffer. The reader learns the count from the first 4 characters of `name` (the version and
//!   chunk bytes); a missing chunk is [`OpenError::Malformed`], and a forged count fails
//!   authentication. Saving a smaller session expires the chunks it no longer uses. The names
//!   of releases before 1.0 (`name_2`, …) are not read.
//! - **Attributes**: `Path`, `Domain`, `Expires` and `Max-Age` (to the earliest enabled
//!   deadline; neither when every timeout is 0, making a browser-session cookie, except for the
//!   remember cookie, which then lives 400 days), `SameSite` (none for [`SameSite::Default`]),
//!   `Secure`, `HttpOnly`.
//!
//! # Timeouts and the touch rule
//!
//! A session records when it was created, last saved (`rolled_at`) and last recorded as used
//! (`last_seen`); deadlines are computed from the *current* configuration, as lua-resty-session
//! does, so shortening a timeout applies at once to sessions already issued. A session is valid
//! while `now` is before every enabled deadline: `created_at + absolute_timeout`,
//! `rolled_at + rolling_timeout`, `last_seen + idling_timeout` (0 disables each).
//!
//! [`SessionStore::needs_save`] asks for a save when 3/4 of the rolling timeout is spent (Kong's
//! rule), or when the idling timeout is on and the last recorded use is older than
//! `min(60 s, idling_timeout / 4)` (at least 1 s). A busy client is re-sealed about once a
//! minute rather than on every request, and an idle one expires at most a quarter of the idling
//! timeout early.
//!
//! # Differences from lua-resty-session v4
//!
//! - **Not wire-compatible.** The key derivation, header, envelope and chunk framing are this
//!   crate's own; sessions issued by Kong cannot be read, so users log in once after a migration.
//! - One audience per cookie: lua-resty-session can keep several audiences in one cookie; here a
//!   session of another audience is [`OpenError::WrongAudience`]. Give applications that share a
//!   domain different cookie names.
//! - Cookie storage only (no Redis/Memcached), and no fallback secrets for key rotation.
//! - The id is kept across saves (lua-resty-session issues a new one on every save); call
//!   [`Session::regenerate_id`] where a new id is wanted, e.g. after login.
//! - A touch re-seals the whole value (lua-resty-session rewrites only a MAC'd header); with the
//!   touch threshold this costs one AES-GCM pass over a few kilobytes about once a minute.
//!
//! # Choices beyond the original design
//!
//! - The chunk count sits in the sealed header and the additional data, so truncation is detected
//!   before decryption and a forged count cannot authenticate.
//! - The rolling timeout is tracked as `rolled_at` rather than a stored expiry, so configuration
//!   changes apply to live sessions (see above); [`SessionStore::expires_at`] gives the deadline.
//! - [`SessionStore::save`] returns a [`Result`]: a session needing more than 9 cookies is
//!   [`SaveError::TooLarge`] rather than a silently broken cookie.
//! - The session cookie carries `Expires`/`Max-Age` (lua-resty-session sends a browser-session
//!   cookie and enforces the timeouts only when opening): the browser drops it when it could no
//!   longer open anyway.
//! - [`SessionStore::present_chunks`] counts chunks in a request whose session did not open, so a
//!   new session saved over it still expires the old chunks.
//! - A `__Secure-` or `__Host-` cookie name always gets `Secure` (browsers refuse it otherwise).
//! - `Debug` for [`Session`] and [`SessionCodec`] leaves out the id, data and key.
//!
//! # Limits
//!
//! Random 96-bit nonces: keep a secret under about 2^32 seals (saves) to hold the nonce
//! collision risk below 2^-32, and rotate it beyond. The version byte leaves room for a
//! different construction later.

#![warn(missing_docs)]

mod binding;
mod codec;
mod config;
mod cookies;
mod envelope;
mod session;
mod store;

pub use binding::Binding;
pub use codec::SessionCodec;
pub use config::{Bind, ConfigError, MAX_COOKIE_SIZE, Remember, SameSite, SessionConfig};
pub use cookies::names_clash;
pub use session::{ID_LEN, Session};
pub use store::{Deadlines, OpenError, Opened, SaveError, SessionStore, Timeout};
