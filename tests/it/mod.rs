mod admin;
mod declarative;
mod oidc;
mod proxy;
mod tls;
pub mod util;
