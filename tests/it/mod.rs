mod admin;
mod declarative;
mod proxy;
mod tls;
pub mod util;
