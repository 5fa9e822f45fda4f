mod admin;
mod declarative;
mod headers;
mod oidc;
mod proxy;
mod tls;
pub mod util;
