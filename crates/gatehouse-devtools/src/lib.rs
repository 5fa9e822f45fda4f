//! Servers for development and tests, kept out of the gateway itself so the proxy never links them.
//!
//! - [`echo`]: an upstream that answers every request with a JSON description of it, like httpbin's
//!   `/anything`. Tests assert on what the gateway sent upstream; benchmarks use it as a cheap upstream.
#![warn(missing_docs)]

pub mod echo;

pub use echo::{serve_echo, title_case};
