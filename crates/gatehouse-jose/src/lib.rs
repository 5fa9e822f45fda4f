//! JOSE for Gatehouse: JWS/JWT verification as pure functions of (token, keys, policy, clock). No IO.
//!
//! The pipeline has two stages, each with its own error type:
//!
//! 1. [`verify`] (signature stage, [`VerifyError`]): split the compact JWS, decode the header,
//!    apply the algorithm [`Policy`], pick the key from a [`KeySet`] by `kid`, check the
//!    signature, then decode the claims. Returns [`Verified`], which carries the very [`Jwk`]
//!    that verified the token.
//! 2. [`check_claims`] (claims stage, [`ClaimsError`]): `exp`/`nbf`/`iat` with leeway against a
//!    `now` the caller passes in, `iss` and `aud` against a [`ClaimsPolicy`].
//!
//! A [`KeySet`] is built once per JWKS fetch: each JWK becomes an aws-lc-rs `ParsedPublicKey`
//! (or HMAC key) up front, so verification never re-parses key material.
//!
//! Data that has not been verified is typed as such ([`UnverifiedJwt`], with
//! `unverified_header`/`unverified_claims`); claims on [`Verified`] are only reachable after the
//! signature holds. Error messages are fixed lowercase strings usable as an OAuth
//! `error_description`.
//!
//! [`sign`] issues tokens for the development OpenID Provider and for tests.
//!
//! Architecture invariant: this module does no IO and reads no clock.

#![warn(missing_docs)]

mod alg;
mod claims;
mod jwk;
mod jws;
pub mod own_keys;
mod private_jwk;
pub mod sign;

#[cfg(test)]
mod tests;

pub use alg::{Algorithm, AlgorithmSet, UnknownAlgorithm};
pub use claims::{ClaimsError, ClaimsPolicy, check_claims};
pub use jwk::{Curve, Jwk, JwkError, JwksError, KeySet, KeyType, SkippedKey};
pub use jws::{Header, Policy, UnverifiedJwt, Verified, VerifyError, verify};
