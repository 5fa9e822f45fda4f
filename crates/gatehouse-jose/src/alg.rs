//! JWS algorithm names (RFC 7518 section 3) and a small allow-list type.

use std::fmt;
use std::str::FromStr;

/// A JWS signature algorithm this module can verify.
///
/// `none` is deliberately absent: there is no way to name it, so no policy can allow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256 (salt length 32).
    Ps256,
    /// RSASSA-PSS with SHA-384 (salt length 48).
    Ps384,
    /// RSASSA-PSS with SHA-512 (salt length 64).
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// ECDSA on P-521 with SHA-512.
    Es512,
    /// EdDSA; only the Ed25519 curve is supported.
    EdDsa,
    /// HMAC with SHA-256. Only accepted when [`Policy::enable_hs_signatures`](crate::Policy) is set.
    Hs256,
    /// HMAC with SHA-384. Only accepted when [`Policy::enable_hs_signatures`](crate::Policy) is set.
    Hs384,
    /// HMAC with SHA-512. Only accepted when [`Policy::enable_hs_signatures`](crate::Policy) is set.
    Hs512,
}

impl Algorithm {
    /// Every supported algorithm, in a stable order.
    pub const ALL: [Algorithm; 13] = [
        Algorithm::Rs256,
        Algorithm::Rs384,
        Algorithm::Rs512,
        Algorithm::Ps256,
        Algorithm::Ps384,
        Algorithm::Ps512,
        Algorithm::Es256,
        Algorithm::Es384,
        Algorithm::Es512,
        Algorithm::EdDsa,
        Algorithm::Hs256,
        Algorithm::Hs384,
        Algorithm::Hs512,
    ];

    /// The registered JWS name, e.g. `"RS256"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Rs384 => "RS384",
            Algorithm::Rs512 => "RS512",
            Algorithm::Ps256 => "PS256",
            Algorithm::Ps384 => "PS384",
            Algorithm::Ps512 => "PS512",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::Es512 => "ES512",
            Algorithm::EdDsa => "EdDSA",
            Algorithm::Hs256 => "HS256",
            Algorithm::Hs384 => "HS384",
            Algorithm::Hs512 => "HS512",
        }
    }

    /// Parses a registered JWS name (case-sensitive, as RFC 7515 requires).
    ///
    /// Returns `None` for unknown names and for `none`.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Some(match name {
            "RS256" => Algorithm::Rs256,
            "RS384" => Algorithm::Rs384,
            "RS512" => Algorithm::Rs512,
            "PS256" => Algorithm::Ps256,
            "PS384" => Algorithm::Ps384,
            "PS512" => Algorithm::Ps512,
            "ES256" => Algorithm::Es256,
            "ES384" => Algorithm::Es384,
            "ES512" => Algorithm::Es512,
            "EdDSA" => Algorithm::EdDsa,
            "HS256" => Algorithm::Hs256,
            "HS384" => Algorithm::Hs384,
            "HS512" => Algorithm::Hs512,
            _ => return None,
        })
    }

    /// True for the RSA family (`RS*` and `PS*`).
    pub const fn is_rsa(self) -> bool {
        matches!(
            self,
            Algorithm::Rs256
                | Algorithm::Rs384
                | Algorithm::Rs512
                | Algorithm::Ps256
                | Algorithm::Ps384
                | Algorithm::Ps512
        )
    }

    /// True for the ECDSA family (`ES*`).
    pub const fn is_ecdsa(self) -> bool {
        matches!(self, Algorithm::Es256 | Algorithm::Es384 | Algorithm::Es512)
    }

    /// True for the symmetric HMAC family (`HS*`), which needs a shared secret rather than a public key.
    pub const fn is_hmac(self) -> bool {
        matches!(self, Algorithm::Hs256 | Algorithm::Hs384 | Algorithm::Hs512)
    }

    /// Position in [`Algorithm::ALL`]; also the bit in [`AlgorithmSet`].
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an algorithm name that is unknown or `none`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsupported algorithm")]
pub struct UnknownAlgorithm;

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::from_name(s).ok_or(UnknownAlgorithm)
    }
}

/// A set of [`Algorithm`]s, as a bit set: `Copy`, and a membership test is one AND.
///
/// Used as the allow-list in [`Policy`](crate::Policy).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AlgorithmSet(u16);

impl AlgorithmSet {
    /// The empty set: nothing is allowed.
    pub const EMPTY: AlgorithmSet = AlgorithmSet(0);

    /// Every supported algorithm. HMAC algorithms are still gated by
    /// [`Policy::enable_hs_signatures`](crate::Policy).
    pub const fn all() -> AlgorithmSet {
        AlgorithmSet((1 << Algorithm::ALL.len()) - 1)
    }

    /// Every supported asymmetric algorithm (everything except `HS*`).
    pub const fn asymmetric() -> AlgorithmSet {
        AlgorithmSet(
            AlgorithmSet::all().0
                & !(1 << Algorithm::Hs256.index() | 1 << Algorithm::Hs384.index() | 1 << Algorithm::Hs512.index()),
        )
    }

    /// Returns this set with `alg` added.
    #[must_use]
    pub const fn with(self, alg: Algorithm) -> AlgorithmSet {
        AlgorithmSet(self.0 | 1 << alg.index())
    }

    /// Adds `alg`.
    pub fn insert(&mut self, alg: Algorithm) {
        *self = self.with(alg);
    }

    /// Whether `alg` is in the set.
    pub const fn contains(self, alg: Algorithm) -> bool {
        self.0 & (1 << alg.index()) != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The members, in [`Algorithm::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL.into_iter().filter(move |a| self.contains(*a))
    }
}

impl FromIterator<Algorithm> for AlgorithmSet {
    fn from_iter<I: IntoIterator<Item = Algorithm>>(iter: I) -> Self {
        iter.into_iter().fold(AlgorithmSet::EMPTY, AlgorithmSet::with)
    }
}

impl fmt::Debug for AlgorithmSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.as_str()), Some(alg));
            assert_eq!(alg.as_str().parse::<Algorithm>(), Ok(alg));
        }
    }

    #[test]
    fn none_and_wrong_case_are_not_algorithms() {
        assert_eq!(Algorithm::from_name("none"), None);
        assert_eq!(Algorithm::from_name("rs256"), None);
        assert_eq!(Algorithm::from_name("EDDSA"), None);
    }

    #[test]
    fn set_membership() {
        let set: AlgorithmSet = [Algorithm::Rs256, Algorithm::Es384].into_iter().collect();
        assert!(set.contains(Algorithm::Rs256));
        assert!(set.contains(Algorithm::Es384));
        assert!(!set.contains(Algorithm::Hs256));
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![Algorithm::Rs256, Algorithm::Es384]);
        assert!(AlgorithmSet::all().contains(Algorithm::Hs512));
        assert!(!AlgorithmSet::asymmetric().contains(Algorithm::Hs256));
        assert!(AlgorithmSet::asymmetric().contains(Algorithm::EdDsa));
        assert_eq!(AlgorithmSet::all().iter().count(), 13);
        assert!(AlgorithmSet::EMPTY.is_empty());
    }
}
