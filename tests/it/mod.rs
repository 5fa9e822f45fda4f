mod admin;
mod declarative;
mod headers;
mod interop;
mod oidc;
mod proxy;
mod tls;
pub mod util;
