//! The `openid-connect` plugin. A request goes through one pipeline (see `instance.rs` and
//! ARCHITECTURE.md): find the credential → authenticate → an outcome naming its method →
//! authorize → a decision → one function applies it. The modules, each importing only those
//! listed before it (a test keeps this order, `tests/layers.rs`):
//! - vocabulary: `config` (Kong's schema), `settings` (its typed view, read at build time
//!   only), `method`, `cache`, `authz`, `consumer`, `session`, `pending` (the authorization
//!   cookie's contents), `provider` (HTTP client, discovery and keys, client auth, endpoints),
//!   `credentials`, `location` (the request's URL, redirect targets), `headers`, `tokens`,
//!   `respond`;
//! - the pipeline's data: `outcome`, `decision` (and `apply`);
//! - the instance's parts, each built from the settings: `find`, `grants`, `failures`,
//!   `sessions`, `signin` (the authorization code flow), `login` (login actions), `logout`,
//!   `authorize`, `authenticate`, `fast` (the front cache);
//! - `instance` (the built instance and its pipeline), `plugin` (the plugin kind and phases).
//!
//! Architecture invariant: this crate knows nothing of hyper's server or axum.
#![warn(missing_docs)]

mod authenticate;
mod authorize;
pub mod authz;
pub mod cache;
pub mod claims;
pub mod config;
pub mod consumer;
pub mod credentials;
mod decision;
mod failures;
mod fast;
mod find;
mod grants;
pub mod headers;
mod instance;
mod location;
mod login;
mod logout;
mod method;
pub mod node;
mod outcome;
mod pending;
pub mod plugin;
pub mod provider;
pub mod respond;
pub mod session;
mod sessions;
pub mod settings;
mod signin;
pub mod tokens;

pub use instance::Oidc;
pub use plugin::OidcFactory;
