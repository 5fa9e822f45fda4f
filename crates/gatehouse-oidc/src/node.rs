//! What an instance takes from the node rather than from its config (Kong keeps these in its
//! `oic_issuers` and `oic_jwks` tables): the session key, bound to this plugin and its issuer;
//! the node's own key pair for `private_key_jwt` without `client_jwk`; and the discovery cache
//! the Admin API shows and clears. All of it is read at build time, never per request.

use crate::provider::client_auth::{Client, ClientAuth};
use crate::provider::discovery::Provider;
use gatehouse_core::entity::PluginEntity;
use gatehouse_core::plugin::BuildEnv;
use gatehouse_core::secrets::DiscoveryView;
use gatehouse_jose::own_keys::OwnKeys;
use gatehouse_session::SessionCodec;
use serde_json::Value;
use std::sync::Arc;

/// The session key of the instance `entity` builds: derived from the plugin's `session_secret`,
/// or, when that is unset, from the secret the node keeps for its issuer (made now, and stored
/// after the compile, when the issuer is new), and bound to the plugin's id and issuer. So no
/// other plugin, and no other issuer, opens this instance's sessions (see `gatehouse-session`).
pub fn session_codec(entity: &PluginEntity, env: &BuildEnv) -> SessionCodec {
    let config = &entity.config;
    let issuer = config.get("issuer").and_then(Value::as_str).unwrap_or_default();
    match config.get("session_secret").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        Some(secret) => SessionCodec::for_instance(secret.as_bytes(), &entity.id, issuer),
        None => {
            let record = env.secrets.issuer(issuer, unix_now());
            SessionCodec::for_instance(record.secret.as_bytes(), &entity.id, issuer)
        }
    }
}

/// Gives the node's own key (for the client's `client_alg`, else its RS256 key, as Kong does)
/// to every client that may authenticate with `private_key_jwt` and has no `client_jwk`.
/// Without a stored key set (as in `check`) they stay keyless and such a call fails.
pub fn own_keys_for(clients: &mut [Client], endpoint_methods: &[Option<ClientAuth>], env: &BuildEnv) {
    let endpoint_pkj = endpoint_methods.contains(&Some(ClientAuth::PrivateKeyJwt));
    let wants = |c: &Client| c.key.is_none() && (endpoint_pkj || c.auth == ClientAuth::PrivateKeyJwt);
    if !clients.iter().any(wants) {
        return;
    }
    let Some(stored) = env.secrets.client_keys() else { return };
    let keys = match OwnKeys::from_stored(&stored) {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "the node's key set does not load; private_key_jwt without client_jwk fails");
            return;
        }
    };
    for c in clients.iter_mut().filter(|c| wants(c)) {
        c.key = keys.for_alg(c.alg.filter(|a| !a.is_hmac()));
    }
}

/// Lets the Admin API show and clear `provider`'s discovery cache.
pub fn watch(provider: &Arc<Provider>, env: &BuildEnv) {
    let view: Arc<dyn DiscoveryView> = provider.clone();
    env.secrets.watch_discovery(provider.issuer(), Arc::downgrade(&view));
}

impl DiscoveryView for Provider {
    fn current(&self) -> Option<(Value, Value)> {
        let d = self.cached()?;
        let keys = d.keys.keys().iter().map(|k| k.json().clone()).collect();
        Some((d.doc.clone(), Value::Array(keys)))
    }

    fn forget(&self) {
        Provider::forget(self);
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
