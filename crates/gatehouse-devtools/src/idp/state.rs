//! The provider's shared state: configuration, clients, keys, the token store and the knobs.
//! Shared behind one `Arc`; every lock in it is a short std lock, never held across an await.

use gatehouse_jose::KeySet;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use super::config::{Client, ConfigError, IdpConfig, User, check_client};
use super::keys::KeyRing;
use super::knobs::{Calls, Knobs};
use super::store::Store;

/// A client with its `jwks` parsed once.
pub(crate) struct Registered {
    pub client: Client,
    pub keys: Option<KeySet>,
}

pub(crate) struct Idp {
    /// The issuer URL, without a trailing slash.
    pub issuer: String,
    /// The issuer's path (`""` or `/realms/x`): endpoints live under it.
    pub base_path: String,
    pub access_token_ttl: i64,
    pub refresh_token_ttl: i64,
    pub code_ttl: i64,
    pub par_ttl: i64,
    users: HashMap<String, User>,
    clients: RwLock<HashMap<String, Arc<Registered>>>,
    keys: RwLock<Arc<KeyRing>>,
    store: Mutex<Store>,
    pub calls: Calls,
    knobs: Mutex<Knobs>,
}

/// Locks a mutex; a panic elsewhere while it was held leaves data that is still usable here.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Idp {
    pub fn new(config: IdpConfig, issuer: String, keys: KeyRing) -> Result<Idp, ConfigError> {
        config.validate()?;
        let issuer = issuer.trim_end_matches('/').to_owned();
        let base_path =
            issuer.parse::<http::Uri>().map(|u| u.path().trim_end_matches('/').to_owned()).unwrap_or_default();
        let mut clients = HashMap::new();
        for client in config.clients {
            let registered = Registered::new(client).map_err(ConfigError::Invalid)?;
            clients.insert(registered.client.client_id.clone(), Arc::new(registered));
        }
        Ok(Idp {
            issuer,
            base_path,
            access_token_ttl: config.access_token_ttl,
            refresh_token_ttl: config.refresh_token_ttl,
            code_ttl: config.code_ttl,
            par_ttl: config.par_ttl,
            users: config.users.into_iter().map(|u| (u.username.clone(), u)).collect(),
            clients: RwLock::new(clients),
            keys: RwLock::new(Arc::new(keys)),
            store: Mutex::default(),
            calls: Calls::default(),
            knobs: Mutex::default(),
        })
    }

    /// The URL of an endpoint: the issuer followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The request path relative to the issuer's path, so `--issuer http://h/realms/x` serves
    /// `/realms/x/token`. A path outside the issuer's is used as it is.
    pub fn route<'a>(&self, path: &'a str) -> &'a str {
        match path.strip_prefix(self.base_path.as_str()) {
            Some(rest) if !self.base_path.is_empty() && (rest.is_empty() || rest.starts_with('/')) => rest,
            _ => path,
        }
    }

    pub fn user(&self, username: &str) -> Option<&User> {
        self.users.get(username)
    }

    pub fn client(&self, client_id: &str) -> Option<Arc<Registered>> {
        self.clients.read().unwrap_or_else(PoisonError::into_inner).get(client_id).cloned()
    }

    /// Every client, for redirect checks that have no client to go by.
    pub fn clients(&self) -> Vec<Arc<Registered>> {
        self.clients.read().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
    }

    /// Registers or replaces a client.
    pub fn register(&self, client: Client) -> Result<(), String> {
        let registered = Arc::new(Registered::new(client)?);
        let id = registered.client.client_id.clone();
        self.clients.write().unwrap_or_else(PoisonError::into_inner).insert(id, registered);
        Ok(())
    }

    /// The lifetime of an access token for `user` (none: a service) of `client`: the user's, else
    /// the client's, else the global one.
    pub fn access_ttl(&self, client: &Client, user: Option<&User>) -> i64 {
        user.and_then(|u| u.access_token_ttl).or(client.access_token_ttl).unwrap_or(self.access_token_ttl)
    }

    /// The lifetime of a refresh token of `client`.
    pub fn refresh_ttl(&self, client: &Client) -> i64 {
        client.refresh_token_ttl.unwrap_or(self.refresh_token_ttl)
    }

    pub fn keys(&self) -> Arc<KeyRing> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the key ring with one built from the current ring, atomically, so two concurrent
    /// rotations both land.
    pub fn update_keys(&self, f: impl FnOnce(&KeyRing) -> KeyRing) -> Arc<KeyRing> {
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        *keys = Arc::new(f(&keys));
        Arc::clone(&keys)
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    pub fn knobs(&self) -> MutexGuard<'_, Knobs> {
        lock(&self.knobs)
    }
}

impl Registered {
    pub fn new(client: Client) -> Result<Registered, String> {
        check_client(&client)?;
        let keys = match &client.jwks {
            Some(jwks) => Some(KeySet::from_jwks(jwks.clone()).map_err(|e| e.to_string())?),
            None => None,
        };
        Ok(Registered { client, keys })
    }

    /// Whether `uri` may receive codes (and logout redirects) for this client: an exact match
    /// with a registered URI, or, with none registered, an `http(s)` URI on a loopback host.
    pub fn allows_redirect(&self, uri: &str) -> bool {
        if !self.client.redirect_uris.is_empty() {
            return self.client.redirect_uris.iter().any(|r| r == uri);
        }
        if uri.contains('#') {
            return false;
        }
        uri.parse::<http::Uri>().is_ok_and(|u| {
            matches!(u.scheme_str(), Some("http" | "https"))
                && matches!(u.host(), Some("localhost" | "127.0.0.1" | "[::1]"))
        })
    }

    /// Whether `/logout` may send the browser to `uri` for this client: an exact match with a
    /// registered post-logout URI, or, with none registered, what [`Registered::allows_redirect`] allows.
    pub fn allows_logout_redirect(&self, uri: &str) -> bool {
        if self.client.post_logout_redirect_uris.is_empty() {
            return self.allows_redirect(uri);
        }
        self.client.post_logout_redirect_uris.iter().any(|r| r == uri)
    }
}
