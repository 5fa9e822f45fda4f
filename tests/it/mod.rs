mod admin;
mod declarative;
mod proxy;
pub mod util;
