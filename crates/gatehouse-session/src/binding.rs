//! Binding a session to facts of the request that made it (Kong's `session_bind`).

use std::fmt;
use std::net::IpAddr;

use aws_lc_rs::digest;

use crate::config::Bind;

/// The bound facts of one request: which ones, and a SHA-256 of their values. It joins the
/// additional authenticated data of every seal, so a cookie sealed with one binding fails
/// authentication ([`OpenError::Invalid`](crate::OpenError::Invalid)) under any other.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    bits: u8,
    digest: [u8; 32],
}

impl Binding {
    /// Nothing bound: the binding of a store without [`Bind`] flags.
    pub const NONE: Binding = Binding { bits: 0, digest: [0; 32] };

    /// The binding of a request: SHA-256 over the values `bind` names, in lua-resty-session's
    /// order (client address, scheme, user agent), joined by `|`. Only the user agent can hold
    /// a `|`, and it comes last, so no two sets of values give the same input.
    pub fn new(bind: Bind, ip: IpAddr, https: bool, user_agent: &[u8]) -> Binding {
        if !bind.any() {
            return Binding::NONE;
        }
        let mut ctx = digest::Context::new(&digest::SHA256);
        let mut first = true;
        let mut part = |v: &[u8]| {
            if !std::mem::take(&mut first) {
                ctx.update(b"|");
            }
            ctx.update(v);
        };
        if bind.ip {
            part(ip.to_string().as_bytes());
        }
        if bind.scheme {
            part(if https { b"https" } else { b"http" });
        }
        if bind.user_agent {
            part(user_agent);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Binding { bits: bind.bits(), digest: out }
    }

    /// Which facts are bound (the bits of [`Bind`]).
    pub(crate) fn bits(&self) -> u8 {
        self.bits
    }

    /// What the binding adds to the additional authenticated data: nothing when unbound, so
    /// unbound cookies are sealed exactly as before binding existed.
    pub(crate) fn aad(&self) -> &[u8] {
        if self.bits == 0 { &[] } else { &self.digest }
    }

    /// Compares in constant time, as the digest of a legitimate client is worth keeping to itself.
    pub fn matches(&self, other: &Binding) -> bool {
        self.bits == other.bits
            && aws_lc_rs::constant_time::verify_slices_are_equal(&self.digest, &other.digest).is_ok()
    }
}

impl Default for Binding {
    fn default() -> Self {
        Binding::NONE
    }
}

/// Leaves out the digest.
impl fmt::Debug for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Binding").field("bits", &self.bits).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    #[test]
    fn each_bound_fact_changes_the_binding_and_unbound_ones_do_not() {
        let all = Bind { ip: true, scheme: true, user_agent: true };
        let base = Binding::new(all, IP, true, b"ua");
        assert!(base.matches(&Binding::new(all, IP, true, b"ua")));
        assert!(!base.matches(&Binding::new(all, "192.0.2.2".parse().expect("ip"), true, b"ua")));
        assert!(!base.matches(&Binding::new(all, IP, false, b"ua")));
        assert!(!base.matches(&Binding::new(all, IP, true, b"ub")));
        assert!(!base.matches(&Binding::new(all, IP, true, b"")));

        let ua = Bind { user_agent: true, ..Bind::default() };
        let b = Binding::new(ua, IP, true, b"ua");
        assert!(b.matches(&Binding::new(ua, "::1".parse().expect("ip"), false, b"ua")), "ip and scheme not bound");
        assert!(!b.matches(&base), "other flags, other binding");
    }

    #[test]
    fn unbound_is_none_whatever_the_request() {
        assert_eq!(Binding::new(Bind::default(), IP, true, b"ua"), Binding::NONE);
        assert!(Binding::NONE.aad().is_empty());
        assert_eq!(Binding::new(Bind { ip: true, ..Bind::default() }, IP, true, b"").aad().len(), 32);
    }

    #[test]
    fn the_separator_cannot_shift_values() {
        // With scheme and user agent bound, the scheme can never be moved into the user agent.
        let su = Bind { scheme: true, user_agent: true, ..Bind::default() };
        let a = Binding::new(su, IP, true, b"x");
        let b = Binding::new(su, IP, false, b"s|x");
        assert!(!a.matches(&b));
    }

    #[test]
    fn a_huge_user_agent_is_hashed_like_any_other() {
        let ua = vec![b'a'; 1 << 20];
        let bind = Bind { user_agent: true, ..Bind::default() };
        let b = Binding::new(bind, IP, true, &ua);
        assert!(b.matches(&Binding::new(bind, IP, true, &ua)));
        assert!(!b.matches(&Binding::new(bind, IP, true, &ua[1..])));
        assert!(!format!("{b:?}").contains("digest"));
    }
}
