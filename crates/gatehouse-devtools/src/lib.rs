//! Servers for development and tests, kept out of the gateway itself so the proxy never links them.
//!
//! - [`echo`]: an upstream that answers every request with a JSON description of it, like httpbin's
//!   `/anything`. Tests assert on what the gateway sent upstream; benchmarks use it as a cheap upstream.
//! - [`idp`]: the development OpenID Provider, an in-memory OIDC provider with test knobs. For
//!   development and tests only.
#![warn(missing_docs)]

mod accept;
pub mod echo;
pub mod idp;

pub use echo::{serve_echo, title_case};
pub use idp::{IdpConfig, serve_idp};
