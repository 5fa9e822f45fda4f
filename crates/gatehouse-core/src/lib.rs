//! Gatehouse's shared vocabulary: entity schemas, the schema language, the plugin trait, the router
//! and the compiled config snapshot.
//!
//! Architecture invariant: this crate does no IO. It knows nothing of sockets, databases or Kong's
//! JSON error bodies; those live in `gatehouse-proxy`, `gatehouse-store` and `gatehouse-admin`.
#![warn(missing_docs)]

pub mod consumers;
pub mod entity;
pub mod path;
pub mod plugin;
pub mod router;
pub mod schema;
pub mod secrets;
pub mod snapshot;
pub mod stats;
