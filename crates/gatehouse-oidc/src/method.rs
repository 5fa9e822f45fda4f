//! The authentication methods, a closed set named as Kong names them in `auth_methods`,
//! `disable_session` and `ignore_signature`.

/// One way a request can be authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// This plugin's session cookie.
    Session,
    /// A JWT access token verified with the issuer's keys.
    Bearer,
    /// An access token the IdP's introspection endpoint says is active.
    Introspection,
    /// An access token the IdP's userinfo endpoint accepts.
    Userinfo,
    /// A refresh token exchanged at the token endpoint.
    RefreshToken,
    /// Username and password exchanged at the token endpoint.
    Password,
    /// A client id and secret exchanged at the token endpoint.
    ClientCredentials,
    /// A browser sent to the authorization endpoint and back with a code (`signin.rs`).
    AuthorizationCode,
}

impl Method {
    /// Every method Gatehouse runs.
    pub const ALL: [Method; 8] = [
        Method::Session,
        Method::Bearer,
        Method::Introspection,
        Method::Userinfo,
        Method::RefreshToken,
        Method::Password,
        Method::ClientCredentials,
        Method::AuthorizationCode,
    ];

    /// Kong's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Method::Session => "session",
            Method::Bearer => "bearer",
            Method::Introspection => "introspection",
            Method::Userinfo => "userinfo",
            Method::RefreshToken => "refresh_token",
            Method::Password => "password",
            Method::ClientCredentials => "client_credentials",
            Method::AuthorizationCode => "authorization_code",
        }
    }

    /// The method Kong calls `name`; `None` for names Gatehouse does not run: `kong_oauth2`
    /// (Kong's own OAuth 2.0 plugin's tokens).
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of methods (`auth_methods`, `disable_session`, `ignore_signature`), decided at build time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Methods(u8);

impl Methods {
    /// The methods named in a config list; names of methods Gatehouse does not run are left out.
    pub fn of(names: &[String]) -> Methods {
        names.iter().filter_map(|n| Method::from_name(n)).fold(Methods::default(), |set, m| Methods(set.0 | m.bit()))
    }

    /// Whether `m` is in the set.
    pub fn contains(self, m: Method) -> bool {
        self.0 & m.bit() != 0
    }

    /// Whether any of `ms` is in the set.
    pub fn any(self, ms: &[Method]) -> bool {
        ms.iter().any(|m| self.contains(*m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_left_out() {
        for m in Method::ALL {
            assert_eq!(Method::from_name(m.name()), Some(m));
        }
        let set = Methods::of(&["bearer".into(), "kong_oauth2".into(), "session".into()]);
        assert!(set.contains(Method::Bearer) && set.contains(Method::Session));
        assert!(!set.contains(Method::Password));
        assert!(set.any(&[Method::Password, Method::Session]));
        assert_eq!(Methods::of(&[]), Methods::default());
    }
}
