//! The pipeline's first step after the session: which credential a request carries, in Kong's
//! fixed precedence (bearer → refresh_token → password → client_credentials), looked for only
//! where the config says (`*_param_type`), for the methods that are on.

use crate::credentials::{self, Args, Found, Pair, Place};
use crate::method::{Method, Methods};
use crate::settings::Settings;
use http::request::Parts;

/// A credential found in a request.
pub(crate) enum Credential {
    /// A bearer token (for `bearer`, `introspection`, `userinfo`), and an ID token sent along.
    Bearer { token: String, found: Found, id_token: Option<(String, Found)> },
    /// A refresh token.
    RefreshToken { token: String, found: Found },
    /// A username and password; with the same Basic pair, Kong tries client credentials next.
    Password { pair: Pair, or_client: Option<Pair> },
    /// A client id and secret.
    ClientCredentials(Pair),
}

/// Where this config looks for credentials, decided at build time.
pub(crate) struct Finder {
    methods: Methods,
    bearer_places: Vec<Place>,
    bearer_header: Option<String>,
    bearer_cookie: Option<String>,
    id_token: Option<(Vec<Place>, String)>,
    refresh: Option<(Vec<Place>, String)>,
    password_places: Vec<Place>,
    client_credentials_places: Vec<Place>,
    /// `client_arg` and its `X-` form, for choosing among several clients.
    client_arg: (String, String),
    client_ids: Vec<String>,
    needs_body: bool,
}

const BEARERS: [Method; 3] = [Method::Bearer, Method::Introspection, Method::Userinfo];

impl Finder {
    /// The finder of a config.
    pub fn build(s: &Settings, methods: Methods) -> Finder {
        let bearer_places = Place::list(&s.bearer_token_param_type);
        let password_places = Place::list(&s.password_param_type);
        let client_credentials_places = Place::list(&s.client_credentials_param_type);
        let refresh = s
            .refresh_token_param_name
            .clone()
            .filter(|_| methods.contains(Method::RefreshToken))
            .map(|name| (Place::list(&s.refresh_token_param_type), name));
        let body_used = |p: &[Place]| p.contains(&Place::Body);
        let needs_body = (methods.any(&BEARERS) && body_used(&bearer_places))
            || (methods.contains(Method::Password) && body_used(&password_places))
            || (methods.contains(Method::ClientCredentials) && body_used(&client_credentials_places))
            || refresh.as_ref().is_some_and(|(places, _)| body_used(places));
        Finder {
            methods,
            bearer_places,
            bearer_header: s.bearer_token_header_name.clone(),
            bearer_cookie: s.bearer_token_cookie_name.clone(),
            id_token: s.id_token_param_name.clone().map(|name| (Place::list(&s.id_token_param_type), name)),
            refresh,
            password_places,
            client_credentials_places,
            client_arg: (s.client_arg.clone(), format!("x-{}", s.client_arg)),
            client_ids: s.client_id.clone().unwrap_or_default(),
            needs_body,
        }
    }

    /// Whether a credential may be in the body, so the proxy must buffer form and JSON bodies.
    pub fn needs_body(&self) -> bool {
        self.needs_body
    }

    /// Whether a bearer token is looked for in `Authorization: Bearer` before anywhere else,
    /// and no ID token is looked for beside it: the header's token alone is the credential.
    pub fn bearer_in_authorization_only(&self) -> bool {
        self.bearer_places.first() == Some(&Place::Header) && self.bearer_header.is_none() && self.id_token.is_none()
    }

    /// Whether password credentials are looked for in `Authorization: Basic` first.
    pub fn password_in_basic_first(&self) -> bool {
        self.password_places.first() == Some(&Place::Header)
    }

    /// The request's credential, other than a session, in Kong's precedence.
    pub fn find(&self, parts: &Parts, args: &Args<'_>) -> Option<Credential> {
        let h = &parts.headers;
        if self.methods.any(&BEARERS)
            && let Some((token, found)) = credentials::bearer(
                h,
                args,
                &self.bearer_places,
                self.bearer_header.as_deref(),
                self.bearer_cookie.as_deref(),
            )
        {
            let id_token = self.id_token.as_ref().and_then(|(places, name)| credentials::named(h, args, places, name));
            return Some(Credential::Bearer { token, found, id_token });
        }
        if let Some((places, name)) = &self.refresh
            && let Some((token, found)) = credentials::named(h, args, places, name)
        {
            return Some(Credential::RefreshToken { token, found });
        }
        let client = || {
            self.methods.contains(Method::ClientCredentials).then(|| {
                credentials::pair(
                    h,
                    args,
                    &self.client_credentials_places,
                    Method::ClientCredentials,
                    "client_id",
                    "client_secret",
                )
            })?
        };
        if self.methods.contains(Method::Password)
            && let Some(pair) =
                credentials::pair(h, args, &self.password_places, Method::Password, "username", "password")
        {
            return Some(Credential::Password { pair, or_client: client() });
        }
        client().map(Credential::ClientCredentials)
    }

    /// Kong's `client_arg`: a 1-based index or a client id from a header, the query or the body.
    pub fn client_index(&self, parts: &Parts, args: &Args<'_>) -> usize {
        if self.client_ids.len() < 2 {
            return 0;
        }
        let (name, x) = &self.client_arg;
        let v = parts
            .headers
            .get(name.as_str())
            .or_else(|| parts.headers.get(x.as_str()))
            .and_then(|v| v.to_str().ok())
            .or_else(|| args.query(name))
            .or_else(|| args.body(name));
        match v {
            Some(v) => match v.parse::<usize>() {
                Ok(i) if (1..=self.client_ids.len()).contains(&i) => i - 1,
                _ => self.client_ids.iter().position(|c| c == v).unwrap_or(0),
            },
            None => 0,
        }
    }
}
