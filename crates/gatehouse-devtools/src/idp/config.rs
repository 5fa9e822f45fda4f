//! Who can log in and which clients may ask: the built-in demo set, or a YAML/JSON users file.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Settings of the development OpenID Provider.
///
/// [`Default`] gives the built-in users `john`/`doe` and `jane`/`roe` and the clients `gatehouse`
/// (secret `gatehouse-secret`) and `gatehouse-public` (no secret).
#[derive(Clone, Debug)]
pub struct IdpConfig {
    /// The issuer URL. `None`: `http://<bound address>`, so a listener on port 0 gets its real port.
    pub issuer: Option<String>,
    /// The users who can log in (password grant and the login form).
    pub users: Vec<User>,
    /// The registered clients. More can be added at run time with `POST /_dev/clients`.
    pub clients: Vec<Client>,
    /// Lifetime of access and ID tokens, in seconds.
    pub access_token_ttl: i64,
    /// Lifetime of refresh tokens, in seconds.
    pub refresh_token_ttl: i64,
    /// Lifetime of authorization codes, in seconds.
    pub code_ttl: i64,
    /// Lifetime of pushed authorization requests (`request_uri`), in seconds.
    pub par_ttl: i64,
}

impl Default for IdpConfig {
    fn default() -> Self {
        IdpConfig {
            issuer: None,
            users: builtin_users(),
            clients: builtin_clients(),
            access_token_ttl: 3600,
            refresh_token_ttl: 86400,
            code_ttl: 60,
            par_ttl: 60,
        }
    }
}

/// A user who can log in.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The login name, also the `preferred_username` claim.
    pub username: String,
    /// The password, compared as is.
    pub password: String,
    /// The `sub` claim. `None`: a UUID v5 of the username, so it is stable across restarts.
    #[serde(default)]
    pub sub: Option<String>,
    /// The `given_name` claim.
    #[serde(default)]
    pub given_name: Option<String>,
    /// The `family_name` claim.
    #[serde(default)]
    pub family_name: Option<String>,
    /// The `email` claim.
    #[serde(default)]
    pub email: Option<String>,
    /// The `email_verified` claim, sent when the user has an email. `None` counts as verified.
    #[serde(default)]
    pub email_verified: Option<bool>,
    /// The `groups` claim, left out when empty.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The `roles` claim, left out when empty.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Extra claims for access tokens, ID tokens and userinfo. They never replace protocol claims
    /// (`iss`, `sub`, `aud`, `exp`, ...); use `POST /_dev/mint` for tokens with odd protocol claims.
    #[serde(default)]
    pub claims: Map<String, Value>,
    /// Lifetime of this user's access tokens, in seconds; wins over the client's and the global one.
    #[serde(default)]
    pub access_token_ttl: Option<i64>,
}

impl User {
    /// The `sub` claim: the configured one, or a UUID v5 of the username.
    pub fn subject(&self) -> String {
        match &self.sub {
            Some(sub) => sub.clone(),
            None => {
                let name = format!("urn:gatehouse:dev-idp:user:{}", self.username);
                uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).to_string()
            }
        }
    }

    /// The `name` claim: given and family name joined, when either is set.
    pub fn full_name(&self) -> Option<String> {
        match (&self.given_name, &self.family_name) {
            (Some(g), Some(f)) => Some(format!("{g} {f}")),
            (Some(one), None) | (None, Some(one)) => Some(one.clone()),
            (None, None) => None,
        }
    }
}

/// A client (relying party) registered with the provider.
///
/// How it may authenticate follows from what it has: a `client_secret` allows
/// `client_secret_basic`, `client_secret_post` and `client_secret_jwt`; a `jwks` allows
/// `private_key_jwt`; with neither it is a public client (`none`, `client_id` in the body).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Client {
    /// The client id.
    pub client_id: String,
    /// The shared secret, for a confidential client.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Public keys (`{"keys":[...]}`) that verify its `private_key_jwt` assertions.
    #[serde(default)]
    pub jwks: Option<Value>,
    /// Allowed redirect URIs, matched exactly. Empty: any `http(s)` URI on `localhost`,
    /// `127.0.0.1` or `[::1]`, which suits tests on random ports.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// The `aud` of its access tokens (one value: a string; several: an array). Empty: `"account"`,
    /// as Keycloak does.
    #[serde(default, deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// Where `/logout` may send the browser back, matched exactly. Empty: as `redirect_uris`.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Whether `/authorize` only takes this client's requests through `/par` (RFC 9126 section 6).
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
    /// Whether this client's authorization requests must come as a signed `request` object
    /// (RFC 9101 section 10.5), by value or pushed.
    #[serde(default)]
    pub require_signed_request_object: bool,
    /// Lifetime of this client's access tokens, in seconds. `None`: the global one.
    #[serde(default)]
    pub access_token_ttl: Option<i64>,
    /// Lifetime of this client's refresh tokens, in seconds. `None`: the global one.
    #[serde(default)]
    pub refresh_token_ttl: Option<i64>,
    /// What a refresh does to the refresh token presented.
    #[serde(default)]
    pub refresh_token_rotation: Rotation,
}

/// What the refresh token grant answers about the refresh token it was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rotation {
    /// A new refresh token; the one presented is spent, and presenting it again is `invalid_grant`.
    #[default]
    Rotate,
    /// The same refresh token again; it stays valid.
    Reuse,
    /// No `refresh_token` in the answer; the one presented stays valid.
    Omit,
}

impl Client {
    /// Whether the client has no credentials at all and authenticates with `none`.
    pub fn is_public(&self) -> bool {
        self.client_secret.is_none() && self.jwks.is_none()
    }
}

/// Why a users file or a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is not valid YAML/JSON of the expected shape.
    #[error("invalid users file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The content is well formed but not usable (duplicate names, bad values).
    #[error("invalid idp configuration: {0}")]
    Invalid(String),
}

/// The users file: each section present replaces the built-in one, a missing section keeps it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    users: Option<Vec<User>>,
    #[serde(default)]
    clients: Option<Vec<Client>>,
    #[serde(default)]
    access_token_ttl: Option<i64>,
    #[serde(default)]
    refresh_token_ttl: Option<i64>,
}

impl IdpConfig {
    /// Reads a users file: JSON when the name ends in `.json`, YAML otherwise. Keys: `users`,
    /// `clients`, and optionally `issuer`, `access_token_ttl`, `refresh_token_ttl`. A section the
    /// file leaves out keeps its built-in value.
    pub fn from_file(path: impl AsRef<Path>) -> Result<IdpConfig, ConfigError> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let parse_error = |message: String| ConfigError::Parse { path: path.to_path_buf(), message };
        let file: UsersFile = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
            serde_json::from_str(&text).map_err(|e| parse_error(e.to_string()))?
        } else {
            serde_norway::from_str(&text).map_err(|e| parse_error(e.to_string()))?
        };
        let defaults = IdpConfig::default();
        let config = IdpConfig {
            issuer: file.issuer,
            users: file.users.unwrap_or(defaults.users),
            clients: file.clients.unwrap_or(defaults.clients),
            access_token_ttl: file.access_token_ttl.unwrap_or(defaults.access_token_ttl),
            refresh_token_ttl: file.refresh_token_ttl.unwrap_or(defaults.refresh_token_ttl),
            code_ttl: defaults.code_ttl,
            par_ttl: defaults.par_ttl,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: unique non-empty names, positive lifetimes, usable client keys and
    /// an `http(s)` issuer without query or fragment.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let mut seen = std::collections::HashSet::new();
        for user in &self.users {
            if user.username.is_empty() {
                return invalid("a user has an empty username".into());
            }
            if !seen.insert(user.username.as_str()) {
                return invalid(format!("user '{}' is listed twice", user.username));
            }
            if user.access_token_ttl.is_some_and(|t| t <= 0) {
                return invalid(format!("user '{}' has an access_token_ttl that is not positive", user.username));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for client in &self.clients {
            check_client(client).map_err(ConfigError::Invalid)?;
            if !seen.insert(client.client_id.as_str()) {
                return invalid(format!("client '{}' is listed twice", client.client_id));
            }
        }
        for (name, ttl) in [
            ("access_token_ttl", self.access_token_ttl),
            ("refresh_token_ttl", self.refresh_token_ttl),
            ("code_ttl", self.code_ttl),
            ("par_ttl", self.par_ttl),
        ] {
            if ttl <= 0 {
                return invalid(format!("{name} must be positive"));
            }
        }
        if let Some(issuer) = &self.issuer {
            let ok = issuer.parse::<http::Uri>().is_ok_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() && u.query().is_none()
            });
            if !ok || issuer.contains('#') {
                return invalid(format!("issuer '{issuer}' must be an http(s) URL without query or fragment"));
            }
        }
        Ok(())
    }
}

/// Checks one client, from the config or from `POST /_dev/clients`.
pub(crate) fn check_client(client: &Client) -> Result<(), String> {
    if client.client_id.is_empty() {
        return Err("a client has an empty client_id".into());
    }
    if client.client_secret.as_deref() == Some("") {
        return Err(format!("client '{}' has an empty client_secret", client.client_id));
    }
    if let Some(jwks) = &client.jwks {
        let keys = gatehouse_jose::KeySet::from_jwks(jwks.clone())
            .map_err(|e| format!("client '{}' has an invalid jwks: {e}", client.client_id))?;
        if keys.is_empty() {
            return Err(format!("client '{}' has a jwks without a usable signing key", client.client_id));
        }
    }
    for uri in client.redirect_uris.iter().chain(&client.post_logout_redirect_uris) {
        if !uri.parse::<http::Uri>().is_ok_and(|u| u.scheme().is_some() && u.host().is_some()) || uri.contains('#') {
            return Err(format!("client '{}' has an invalid redirect uri '{uri}'", client.client_id));
        }
    }
    for (name, ttl) in [("access_token_ttl", client.access_token_ttl), ("refresh_token_ttl", client.refresh_token_ttl)]
    {
        if ttl.is_some_and(|t| t <= 0) {
            return Err(format!("client '{}' has a {name} that is not positive", client.client_id));
        }
    }
    Ok(())
}

fn builtin_users() -> Vec<User> {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        User {
            username: "john".into(),
            password: "doe".into(),
            given_name: Some("John".into()),
            family_name: Some("Doe".into()),
            email: Some("john@example.com".into()),
            groups: strings(&["users"]),
            ..User::default()
        },
        User {
            username: "jane".into(),
            password: "roe".into(),
            given_name: Some("Jane".into()),
            family_name: Some("Roe".into()),
            email: Some("jane@example.com".into()),
            groups: strings(&["users", "admins"]),
            roles: strings(&["admin"]),
            ..User::default()
        },
    ]
}

fn builtin_clients() -> Vec<Client> {
    vec![
        Client { client_id: "gatehouse".into(), client_secret: Some("gatehouse-secret".into()), ..Client::default() },
        Client { client_id: "gatehouse-public".into(), ..Client::default() },
    ]
}

/// `audience: "api"` and `audience: ["a", "b"]` both work.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(one)) => vec![one],
        Some(OneOrMany::Many(many)) => many,
    })
}
