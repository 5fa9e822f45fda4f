//! Everything that talks to the identity provider: the shared HTTP client, discovery and keys,
//! client authentication, and the token, introspection and userinfo endpoints.

pub mod calls;
pub mod client;
pub mod client_auth;
pub mod discovery;

pub use client::IdpError;
