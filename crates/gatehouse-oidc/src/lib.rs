//! The `openid-connect` plugin, split by concern: `config` (Kong's schema and defaults), `jose`
//! (token verification, no IO); discovery/keys, grants, sessions and header mapping follow.
//!
//! Architecture invariant: this crate knows nothing of hyper's server or axum.
#![warn(missing_docs)]

pub mod config;
pub mod jose;
