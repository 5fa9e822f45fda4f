mod admin;
mod declarative;
mod headers;
mod interop;
mod oidc;
mod proxy;
mod quickstart;
mod tls;
pub mod util;
