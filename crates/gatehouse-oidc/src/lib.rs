//! The `openid-connect` plugin, split by concern:
//! - `config`: Kong's schema and defaults; `settings`: the typed view the plugin reads;
//! - `provider`: the identity provider (HTTP client, discovery and keys, client auth, endpoints);
//! - `credentials`: where credentials are found in a request, and hiding them;
//! - token verification lives in the `gatehouse-jose` crate (no IO); sessions in `gatehouse-session`.
//!
//! Architecture invariant: this crate knows nothing of hyper's server or axum.
#![warn(missing_docs)]

pub mod access;
pub mod authz;
pub mod cache;
pub mod config;
pub mod consumer;
pub mod credentials;
mod fast;
pub mod headers;
pub mod node;
pub mod plugin;
pub mod provider;
pub mod respond;
pub mod session;
pub mod settings;
pub mod tokens;

pub use plugin::{Oidc, OidcFactory};
