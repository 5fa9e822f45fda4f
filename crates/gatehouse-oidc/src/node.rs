//! What an instance takes from the node rather than from its config (Kong keeps these in its
//! `oic_issuers` and `oic_jwks` tables): the session key, bound to this plugin and its issuer;
//! the node's own key pair for `private_key_jwt` and request objects without `client_jwk`; and
//! the discovery cache the Admin API shows and clears. All of it is read at build time, never
//! per request (the key set of request objects is parsed on first use, from what the build read).

use crate::cache::unix_now;
use crate::provider::client_auth::{Client, ClientAuth};
use crate::provider::discovery::Provider;
use gatehouse_core::entity::PluginEntity;
use gatehouse_core::plugin::BuildEnv;
use gatehouse_core::secrets::DiscoveryView;
use gatehouse_jose::Algorithm;
use gatehouse_jose::own_keys::{OwnKeys, OwnKeysError};
use gatehouse_jose::sign::SigningKey;
use gatehouse_session::SessionCodec;
use serde_json::Value;
use std::sync::{Arc, OnceLock};

/// The session key of the instance `entity` builds: derived from the plugin's `session_secret`,
/// or, when that is unset, from the secret the node keeps for its issuer (made now, and stored
/// after the compile, when the issuer is new), and bound to the plugin's id and issuer. So no
/// other plugin, and no other issuer, opens this instance's sessions (see `gatehouse-session`).
pub fn session_codec(entity: &PluginEntity, env: &BuildEnv) -> SessionCodec {
    let config = &entity.config;
    let issuer = config.get("issuer").and_then(Value::as_str).unwrap_or_default();
    let binding = binding(entity);
    match config.get("session_secret").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        Some(secret) => SessionCodec::for_instance(secret.as_bytes(), &binding, issuer),
        None => {
            let record = env.secrets.issuer(issuer, unix_now());
            SessionCodec::for_instance(record.secret.as_bytes(), &binding, issuer)
        }
    }
}

/// The settings that decide what a session's tokens were checked against when it was sealed.
/// A session is trusted without checking its tokens again, so a change to any of these (say,
/// `verify_signature` turned back on) must not let sessions sealed under the old rules open.
/// (`client_id` is not among them: a session records its client, and opens only while the
/// plugin still has that client, wherever it now is in the list.)
const TRUST_FIELDS: &[&str] = &[
    "issuers_allowed",
    "verify_signature",
    "verify_claims",
    "verify_nonce",
    "ignore_signature",
    "enable_hs_signatures",
    "using_pseudo_issuer",
    "jwks_endpoint",
    "extra_jwks_uris",
];

/// What a session key is bound to besides the issuer: the plugin id, where it is attached, and a
/// digest of its [`TRUST_FIELDS`]. So a plugin that takes another's id (a reordered `kong.yml`,
/// a PATCH that tightens its checks, a move to another route) opens none of its sessions.
fn binding(entity: &PluginEntity) -> String {
    let scope = |r: &Option<gatehouse_core::entity::ForeignRef>| r.as_ref().map_or("", |r| r.id.as_str()).to_string();
    let trust: serde_json::Map<String, Value> = TRUST_FIELDS
        .iter()
        .map(|f| ((*f).to_string(), entity.config.get(*f).cloned().unwrap_or(Value::Null)))
        .collect();
    // Built in TRUST_FIELDS order, so the same settings always give the same bytes.
    let text = serde_json::json!([entity.id, scope(&entity.route), scope(&entity.service), trust]).to_string();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
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
        c.key = node_key(&keys, c.alg);
    }
}

/// The node's key for a client's `client_alg`: that algorithm's key, else the RS256 one (an
/// `HS*` algorithm signs with the secret, never with a node key).
fn node_key(keys: &OwnKeys, alg: Option<Algorithm>) -> Option<SigningKey> {
    keys.for_alg(alg.filter(|a| !a.is_hmac()))
}

/// The keys request objects (JAR, RFC 9101) are signed with, as Kong picks them: the client's
/// `client_jwk`, else the node's own key for its `client_alg`, else the node's RS256 key.
/// The node's set is parsed on first use, as most instances never sign a request object.
pub struct RequestKeys {
    /// Each client's own key (`client_jwk`, or the node key `own_keys_for` gave it).
    own: Vec<Option<SigningKey>>,
    algs: Vec<Option<Algorithm>>,
    /// The node's stored key set, as the build found it.
    stored: Option<Arc<str>>,
    node: OnceLock<Option<OwnKeys>>,
}

impl RequestKeys {
    /// The keys for `clients`. With `required` (`require_signed_request_object: true`), a
    /// keyless client whose node key set does not load refuses the build. Without a stored set
    /// (as in `check`, which builds without the node's secrets) the build passes: a running
    /// node always has one.
    pub fn build(clients: &[Client], env: &BuildEnv, required: bool) -> Result<RequestKeys, OwnKeysError> {
        let keys = RequestKeys {
            own: clients.iter().map(|c| c.key.clone()).collect(),
            algs: clients.iter().map(|c| c.alg).collect(),
            stored: env.secrets.client_keys(),
            node: OnceLock::new(),
        };
        if required
            && keys.own.iter().any(Option::is_none)
            && let Some(stored) = &keys.stored
        {
            let parsed = OwnKeys::from_stored(stored)?;
            let _ = keys.node.set(Some(parsed));
        }
        Ok(keys)
    }

    /// The key client `i` signs its request objects with, if it has one.
    pub fn key(&self, i: usize) -> Option<SigningKey> {
        if let Some(k) = self.own.get(i)?.clone() {
            return Some(k);
        }
        let node = self.node.get_or_init(|| {
            let parsed = OwnKeys::from_stored(self.stored.as_deref()?);
            parsed.inspect_err(|e| tracing::error!(error = %e, "the node's key set does not load")).ok()
        });
        node_key(node.as_ref()?, self.algs.get(i).copied().flatten())
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

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::secrets::NodeSecrets;
    use gatehouse_jose::Algorithm;
    use gatehouse_session::{OpenError, SessionConfig, SessionStore};
    use http::{HeaderMap, HeaderValue};
    use serde_json::json;

    fn entity(id: &str, config: Value) -> PluginEntity {
        PluginEntity::global(id, "openid-connect", config)
    }

    /// Seals a session with `a`'s key and opens it with `b`'s.
    fn opens(a: SessionCodec, b: SessionCodec) -> Result<(), OpenError> {
        let (a, b) = (SessionStore::new(a, SessionConfig::default()), SessionStore::new(b, SessionConfig::default()));
        let (a, b) = (a.expect("valid"), b.expect("valid"));
        let mut session = a.new_session(0, None, Vec::new());
        let set = a.save(&mut session, 0, false, 0).expect("saved");
        let mut h = HeaderMap::new();
        let pair = set[0].to_str().expect("ascii").split(';').next().expect("pair").to_string();
        h.insert(http::header::COOKIE, HeaderValue::from_str(&pair).expect("header"));
        b.open(&h, 0).map(drop)
    }

    #[test]
    fn the_session_key_follows_the_trust_settings_and_the_scope_but_not_the_rest() {
        let env = BuildEnv::default();
        let base = json!({"issuer": "https://idp", "session_secret": "s", "verify_signature": false,
                          "client_id": ["a"], "upstream_headers_names": ["x"]});
        let with = |patch: Value| {
            let mut c = base.clone();
            if let (Value::Object(c), Value::Object(p)) = (&mut c, patch) {
                c.extend(p);
            }
            entity("p1", c)
        };
        let key = |e: &PluginEntity| session_codec(e, &env);
        let same = |e: PluginEntity| opens(key(&with(json!({}))), key(&e)).is_ok();
        assert!(same(with(json!({}))), "the same plugin opens its own sessions");
        assert!(same(with(json!({"upstream_headers_names": ["y"]}))), "a header change keeps sessions");
        assert!(same(with(json!({"client_id": ["b", "a"]}))), "clients are checked by the session itself");
        assert!(!same(with(json!({"verify_signature": true}))), "tightened checks end old sessions");
        assert!(!same(with(json!({"ignore_signature": ["session"]}))));
        assert!(!same(with(json!({"issuers_allowed": ["https://other"]}))));
        let mut moved = with(json!({}));
        moved.route = Some(gatehouse_core::entity::ForeignRef { id: "r2".into() });
        assert!(!same(moved), "a plugin moved to another route is another binding");
    }

    #[test]
    fn the_session_key_is_per_plugin_and_from_the_issuer_record_unless_a_secret_is_set() {
        let env = BuildEnv::default();
        let issuer = json!({"issuer": "https://idp"});
        assert_eq!(
            opens(
                session_codec(&entity("p1", issuer.clone()), &env),
                session_codec(&entity("p1", issuer.clone()), &env)
            ),
            Ok(())
        );
        assert!(env.secrets.get("https://idp").is_some(), "the build made the issuer's record");
        assert_eq!(
            opens(
                session_codec(&entity("p1", issuer.clone()), &env),
                session_codec(&entity("p2", issuer.clone()), &env)
            ),
            Err(OpenError::Invalid)
        );
        // Another node state (another issuer secret): another key.
        let other = BuildEnv::default();
        assert_eq!(
            opens(session_codec(&entity("p1", issuer.clone()), &env), session_codec(&entity("p1", issuer), &other)),
            Err(OpenError::Invalid)
        );
        // With session_secret, the node's record is not read; the key is still per plugin.
        let with = |id| entity(id, json!({"issuer": "https://other", "session_secret": "s3cret"}));
        assert_eq!(opens(session_codec(&with("p1"), &env), session_codec(&with("p1"), &other)), Ok(()));
        assert_eq!(opens(session_codec(&with("p1"), &env), session_codec(&with("p2"), &env)), Err(OpenError::Invalid));
        assert!(env.secrets.get("https://other").is_none());
    }

    #[test]
    fn keyless_private_key_jwt_clients_get_the_node_key_for_their_alg() {
        let client = |auth, alg| Client { id: "c".into(), secret: Some("s".into()), auth, key: None, alg };
        let mut clients = vec![
            client(ClientAuth::PrivateKeyJwt, None),
            client(ClientAuth::PrivateKeyJwt, Some(Algorithm::Es384)),
            client(ClientAuth::SecretBasic, None),
        ];
        // No key set (as in `check`): nothing to give.
        own_keys_for(&mut clients, &[None, None], &BuildEnv::default());
        assert!(clients.iter().all(|c| c.key.is_none()));
        let stored = OwnKeys::generate().and_then(|k| k.to_stored()).expect("keys");
        let env = BuildEnv { secrets: Arc::new(NodeSecrets::load(Vec::new(), Some(stored))), ..BuildEnv::default() };
        own_keys_for(&mut clients, &[None, None], &env);
        let algs: Vec<_> = clients.iter().map(|c| c.key.as_ref().map(|k| k.algorithm())).collect();
        assert_eq!(algs, [Some(Algorithm::Rs256), Some(Algorithm::Es384), None]);
        // private_key_jwt at an endpoint: every keyless client gets one.
        own_keys_for(&mut clients, &[None, Some(ClientAuth::PrivateKeyJwt)], &env);
        assert_eq!(clients[2].key.as_ref().map(|k| k.algorithm()), Some(Algorithm::Rs256));
    }

    #[test]
    fn request_objects_are_signed_with_the_clients_key_else_the_node_key_for_its_alg() {
        let stored = OwnKeys::generate().and_then(|k| k.to_stored()).expect("keys");
        let env = BuildEnv { secrets: Arc::new(NodeSecrets::load(Vec::new(), Some(stored))), ..BuildEnv::default() };
        let own = SigningKey::generate(Algorithm::Es256).expect("key").with_kid("mine");
        let client =
            |key: Option<SigningKey>, alg| Client { id: "c".into(), secret: None, auth: ClientAuth::None, key, alg };
        let clients =
            [client(Some(own), None), client(None, Some(Algorithm::Es384)), client(None, Some(Algorithm::Hs256))];
        let keys = RequestKeys::build(&clients, &env, false).expect("builds");
        assert_eq!(keys.key(0).and_then(|k| k.kid().map(str::to_string)).as_deref(), Some("mine"));
        assert_eq!(keys.key(1).map(|k| k.algorithm()), Some(Algorithm::Es384));
        assert_eq!(keys.key(2).map(|k| k.algorithm()), Some(Algorithm::Rs256), "HS*: the RS256 key, as Kong");
        assert!(keys.key(3).is_none(), "no such client");
        // Without the node's set (`check`): no key, and the build still passes when required.
        let keys = RequestKeys::build(&clients, &BuildEnv::default(), true).expect("check passes");
        assert!(keys.key(1).is_none());
        // A set that does not load: refused when required, keyless otherwise.
        let broken = BuildEnv {
            secrets: Arc::new(NodeSecrets::load(Vec::new(), Some("{not keys".into()))),
            ..BuildEnv::default()
        };
        assert!(RequestKeys::build(&clients, &broken, true).is_err());
        assert!(RequestKeys::build(&clients[..1], &broken, true).is_ok(), "every client has its own key");
        assert!(RequestKeys::build(&clients, &broken, false).expect("builds").key(1).is_none());
    }
}
