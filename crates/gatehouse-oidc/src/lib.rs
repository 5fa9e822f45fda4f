//! The `openid-connect` plugin. A request goes through one pipeline (see `instance.rs` and
//! ARCHITECTURE.md): find the credential → authenticate → an outcome naming its method →
//! authorize → a decision → one function applies it. The modules, each importing only those
//! listed before it (a test keeps this order, `tests/layers.rs`):
//! - vocabulary: `config` (Kong's schema), `settings` (its typed view, read at build time
//!   only), `method`, `cache`, `authz`, `consumer`, `session`, `provider` (HTTP client, discovery
//!   and keys, client auth, endpoints), `credentials`, `headers`, `tokens`, `respond`;
//! - the pipeline's data: `outcome`, `decision` (and `apply`);
//! - the instance's parts, each built from the settings: `find`, `grants`, `failures`,
//!   `sessions`, `logout`, `authorize`, `authenticate`, `fast` (the front cache);
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
mod logout;
mod method;
pub mod node;
mod outcome;
pub mod plugin;
pub mod provider;
pub mod respond;
pub mod session;
mod sessions;
pub mod settings;
pub mod tokens;

pub use instance::Oidc;
pub use plugin::OidcFactory;
