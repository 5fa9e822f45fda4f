//! The development OpenID Provider ("dev IdP"): a small, in-memory OpenID Connect provider for
//! development and tests. **Not for production**: passwords are plain text, keys live in memory,
//! and the `/_dev/` endpoints let anyone mint tokens.
//!
//! It gives Gatehouse's `openid-connect` plugin and its tests a real provider on `127.0.0.1:0`:
//! discovery, a JWKS with an RSA and an EC key, the token endpoint (password, client credentials,
//! refresh token, authorization code with PKCE), introspection, userinfo, revocation, a login form
//! with a login session cookie and three response modes, pushed authorization requests, signed
//! request objects and logout; plus knobs under `/_dev/` to count calls, inject failures and
//! delays, rotate keys, register clients, mint tokens of any shape and tamper with authorization
//! responses and ID tokens. `docs/dev-idp.md` describes the HTTP interface.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use gatehouse_devtools::idp::{IdpConfig, serve_idp};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! serve_idp(listener, IdpConfig::default(), std::future::pending()).await
//! # }
//! ```
//!
//! Layout: `server` accepts and routes; one module per endpoint group (`discovery`, `token`,
//! `introspect`, `userinfo`, `authorize`, `par`, `logout`, `dev`, `mint`); `client_auth`, `claims`,
//! `request` (reading authorization requests) and `sso` (the login session cookie) are shared by
//! them; `state`, `keys`, `store` and `knobs` hold what lives between requests.

mod authorize;
mod claims;
mod client_auth;
mod config;
mod dev;
mod discovery;
mod introspect;
mod keys;
mod knobs;
mod logout;
mod mint;
mod par;
mod request;
mod server;
mod sso;
mod state;
mod store;
mod token;
mod userinfo;
mod util;
mod web;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::io;
use std::sync::Arc;
use tokio::net::TcpListener;

pub use config::{Client, ConfigError, IdpConfig, Rotation, User};

/// Serves the development OpenID Provider on `listener` until `shutdown` completes.
///
/// The issuer is `config.issuer`, or `http://<the listener's address>` (so a listener bound to
/// port 0 publishes its real port). Endpoints live under the issuer's path. Keys (one RSA 2048,
/// one P-256) are generated at start; all state is in memory and is lost on return.
///
/// Fails at once with `InvalidInput` when the configuration is invalid (see
/// [`IdpConfig::validate`]).
pub async fn serve_idp(
    listener: TcpListener,
    config: IdpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let issuer = match &config.issuer {
        Some(issuer) => issuer.clone(),
        None => format!("http://{}", listener.local_addr()?),
    };
    let pair = tokio::task::spawn_blocking(keys::KeyPair::generate)
        .await
        .map_err(io::Error::other)?
        .map_err(io::Error::other)?;
    let idp = state::Idp::new(config, issuer, keys::KeyRing::new(pair))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    tracing::info!(issuer = %idp.issuer, "development IdP started (not for production)");
    server::serve(listener, Arc::new(idp), shutdown).await
}
