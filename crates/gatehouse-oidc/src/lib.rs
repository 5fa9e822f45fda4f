//! The `openid-connect` plugin, split by concern: `config` (Kong's schema and defaults);
//! discovery/keys, grants, sessions and header mapping follow. Token verification itself lives in
//! the `gatehouse-jose` crate (no IO).
//!
//! Architecture invariant: this crate knows nothing of hyper's server or axum.
#![warn(missing_docs)]

pub mod config;
