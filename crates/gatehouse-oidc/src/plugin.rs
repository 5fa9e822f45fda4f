//! The plugin kind and one built instance: everything that can be decided from the config is
//! decided here, once, so the request path only reads.

use crate::authz::Requirement;
use crate::cache::{self, TimedCache, TtlRule};
use crate::consumer::Mapping;
use crate::credentials::Place;
use crate::provider::calls::ClaimsAnswer;
use crate::provider::client_auth::{Client, ClientAuth};
use crate::provider::discovery::{self, Provider, ProviderKey};
use crate::respond::{Responder, realm_of};
use crate::settings::Settings;
use crate::tokens::Verifier;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use gatehouse_core::consumers::ConsumerBy;
use gatehouse_core::entity::PluginEntity;
use gatehouse_core::plugin::{BuildEnv, BuildError, Plugin, PluginFactory};
use gatehouse_core::schema::Record;
use gatehouse_jose::sign::SigningKey;
use gatehouse_jose::{Algorithm, Jwk, KeySet, Policy};
use gatehouse_session::{SameSite, SessionCodec, SessionConfig, SessionStore};
use std::sync::Arc;
use std::time::Duration;

/// Kong's priority for `openid-connect`.
pub const PRIORITY: i32 = 1050;

/// The `openid-connect` plugin kind. What it needs of the node (issuer secrets, its key set)
/// comes with each build's [`BuildEnv`] (see `node.rs`).
#[derive(Default)]
pub struct OidcFactory;

impl PluginFactory for OidcFactory {
    fn name(&self) -> &'static str {
        "openid-connect"
    }

    fn priority(&self) -> i32 {
        PRIORITY
    }

    fn config_schema(&self) -> &Record {
        crate::config::schema()
    }

    fn protocols(&self) -> &'static [&'static str] {
        &["grpc", "grpcs", "http", "https", "ws", "wss"]
    }

    fn build(&self, entity: &PluginEntity, env: &BuildEnv) -> Result<Arc<dyn Plugin>, BuildError> {
        Ok(Arc::new(Oidc::build(&entity.config, crate::node::session_codec(entity, env), env)?))
    }
}

/// Which auth methods are on, as flags.
#[derive(Clone, Copy, Debug, Default)]
pub struct Methods {
    /// `session`.
    pub session: bool,
    /// `bearer`.
    pub bearer: bool,
    /// `introspection`.
    pub introspection: bool,
    /// `userinfo`.
    pub userinfo: bool,
    /// `refresh_token`.
    pub refresh_token: bool,
    /// `password`.
    pub password: bool,
    /// `client_credentials`.
    pub client_credentials: bool,
}

/// A built `openid-connect` instance.
pub struct Oidc {
    pub(crate) s: Settings,
    pub(crate) methods: Methods,
    pub(crate) provider: Arc<Provider>,
    pub(crate) verifier: Verifier,
    pub(crate) clients: Vec<Client>,
    pub(crate) token_auth: Option<ClientAuth>,
    pub(crate) introspection_auth: Option<ClientAuth>,
    pub(crate) bearer_places: Vec<Place>,
    pub(crate) password_places: Vec<Place>,
    pub(crate) client_credentials_places: Vec<Place>,
    pub(crate) refresh_places: Vec<Place>,
    pub(crate) needs_body: bool,
    pub(crate) requirements: Vec<Requirement>,
    pub(crate) mapping: Option<Mapping>,
    pub(crate) sessions: SessionStore,
    pub(crate) responder: Responder,
    pub(crate) salt: String,
    /// Password and client-credentials grant cache keys up to the credentials: issuer, grant,
    /// salt, scope.
    pub(crate) password_key_prefix: crate::cache::KeyPrefix,
    pub(crate) client_credentials_key_prefix: crate::cache::KeyPrefix,
    pub(crate) ttl: TtlRule,
    pub(crate) tokens: Option<TimedCache<[u8; 32], crate::access::Granted>>,
    pub(crate) introspections: Option<TimedCache<Arc<str>, ClaimsAnswer>>,
    pub(crate) userinfos: Option<TimedCache<Arc<str>, ClaimsAnswer>>,
    pub(crate) introspection_headers: Vec<(String, String)>,
    pub(crate) introspection_post_args: Vec<(String, String)>,
    pub(crate) userinfo_headers: Vec<(String, String)>,
    pub(crate) userinfo_query: Vec<(String, String)>,
    pub(crate) token_post_args: Vec<(String, String)>,
    pub(crate) token_headers: Vec<(String, String)>,
    pub(crate) id_token_places: Vec<Place>,
    pub(crate) headers: crate::headers::HeaderPlan,
    /// Opened sessions by cookie bytes (see `access::CachedSession`).
    /// Keyed by whole `Cookie` headers (kilobytes): hashed with foldhash rather than SipHash.
    /// Only cookies that opened (so were sealed by us) are inserted, so clients cannot pick keys.
    pub(crate) session_cache:
        moka::sync::Cache<Box<[u8]>, Arc<crate::access::CachedSession>, foldhash::fast::RandomState>,
    /// The synchronous path for repeated credentials this config allows (`fast.rs`).
    pub(crate) shortcut: crate::fast::Shortcut,
}

fn pairs(names: &Option<Vec<String>>, values: &Option<Vec<String>>) -> Vec<(String, String)> {
    match (names, values) {
        (Some(n), Some(v)) => n.iter().cloned().zip(v.iter().cloned()).collect(),
        _ => Vec::new(),
    }
}

/// The longest duration any config value means: ten years. Kong's schema leaves these numbers
/// unbounded; clamping here keeps every `now + ttl` and `Instant + Duration` far from overflow.
const MAX_SECS: i64 = 10 * 366 * 24 * 3600;

/// A config number of seconds as whole seconds, clamped to ±[`MAX_SECS`].
fn secs(f: f64) -> i64 {
    if f.is_finite() { (f as i64).clamp(-MAX_SECS, MAX_SECS) } else { 0 }
}

/// A build error message of the form `field: reason` (as the header plan and session config
/// write them) placed at `config.field`; anything else lands on `config` as a whole.
fn config_error(msg: String) -> BuildError {
    match msg.split_once(": ") {
        Some((field, reason)) if crate::config::schema().field(field).is_some() => BuildError::field(field, reason),
        _ => BuildError::Config(gatehouse_core::schema::FieldErrors::one(
            vec![gatehouse_core::schema::Seg::Key("config".into())],
            msg,
        )),
    }
}

/// How many answers each IdP cache keeps per instance.
const CACHE_ENTRIES: u64 = 16_384;

impl Oidc {
    /// Builds an instance from a validated config; `session_key` seals its sessions.
    pub fn build(config: &serde_json::Value, session_key: SessionCodec, env: &BuildEnv) -> Result<Oidc, BuildError> {
        let s = Settings::from_config(config).map_err(config_error)?;
        let methods = Methods {
            session: s.allows("session"),
            bearer: s.allows("bearer"),
            introspection: s.allows("introspection"),
            userinfo: s.allows("userinfo"),
            refresh_token: s.allows("refresh_token"),
            password: s.allows("password"),
            client_credentials: s.allows("client_credentials"),
        };
        let timeout_ms = if s.timeout.is_finite() && s.timeout > 0.0 {
            (s.timeout as u64).clamp(1, MAX_SECS as u64 * 1000)
        } else {
            10_000
        };
        let key = ProviderKey {
            issuer: s.issuer.clone(),
            pseudo: s.using_pseudo_issuer,
            jwks_endpoint: s.jwks_endpoint.clone(),
            extra_jwks_uris: s.extra_jwks_uris.clone().unwrap_or_default(),
            discovery_headers: pairs(&s.discovery_headers_names, &s.discovery_headers_values),
            timeout_ms,
            ssl_verify: s.ssl_verify,
            keepalive: s.keepalive,
            cache_ttl: secs(s.cache_ttl).max(1),
            rediscovery_lifetime: secs(s.rediscovery_lifetime).max(0),
            max_response: env.idp_max_response_size.0,
        };
        let provider = discovery::provider(key).map_err(BuildError::Resource)?;
        crate::node::watch(&provider, env);

        let mut clients = clients(&s)?;
        let mut hs_keys = KeySet::default();
        if s.enable_hs_signatures {
            for c in &clients {
                if let Some(secret) = c.secret.as_deref().filter(|x| !x.is_empty()) {
                    hs_keys.push(
                        Jwk::from_hmac_secret(secret.as_bytes(), None, None)
                            .map_err(|e| BuildError::field("client_secret", e.to_string()))?,
                    );
                }
            }
        }
        let policy = Policy { enable_hs_signatures: s.enable_hs_signatures, ..Policy::default() };
        let cache_ttl = Duration::from_secs(secs(s.cache_ttl).max(0) as u64);
        let mut verifier = Verifier::new(
            provider.clone(),
            policy,
            hs_keys,
            secs(s.leeway),
            s.issuers_allowed.clone().unwrap_or_default(),
            s.verify_claims,
            s.claims_forbidden.clone().unwrap_or_default(),
            cache_ttl,
        );
        verifier.verify_signature = s.verify_signature;

        let auth = |name: &Option<String>| name.as_deref().and_then(ClientAuth::from_name);
        let endpoint_auth = [auth(&s.token_endpoint_auth_method), auth(&s.introspection_endpoint_auth_method)];
        crate::node::own_keys_for(&mut clients, &endpoint_auth, env);
        let bearer_places = Place::list(&s.bearer_token_param_type);
        let password_places = Place::list(&s.password_param_type);
        let client_credentials_places = Place::list(&s.client_credentials_param_type);
        let refresh_places = Place::list(&s.refresh_token_param_type);
        let body_used = |p: &[Place]| p.contains(&Place::Body);
        let needs_body = ((methods.bearer || methods.introspection || methods.userinfo) && body_used(&bearer_places))
            || (methods.password && body_used(&password_places))
            || (methods.client_credentials && body_used(&client_credentials_places))
            || (methods.refresh_token && s.refresh_token_param_name.is_some() && body_used(&refresh_places));

        let mut requirements = Vec::new();
        for (name, claim, required) in [
            ("scopes", &s.scopes_claim, &s.scopes_required),
            ("audience", &s.audience_claim, &s.audience_required),
            ("groups", &s.groups_claim, &s.groups_required),
            ("roles", &s.roles_claim, &s.roles_required),
        ] {
            if let (Some(claim), Some(required)) = (claim, required)
                && !required.is_empty()
            {
                requirements.push(Requirement { name, claim: claim.clone(), required: required.clone() });
            }
        }

        let claims = match (&s.consumer_claims, &s.consumer_claim) {
            (Some(c), _) if !c.is_empty() => Some(c.clone()),
            (_, Some(c)) if !c.is_empty() => Some(vec![c.clone()]),
            _ => None,
        };
        let mapping = claims.map(|claims| Mapping {
            claims,
            by: s
                .consumer_by
                .as_deref()
                .unwrap_or(&["username".to_string(), "custom_id".to_string()])
                .iter()
                .filter_map(|b| ConsumerBy::from_name(b))
                .collect(),
            ignore_case: s.by_username_ignore_case,
        });

        let session_config = SessionConfig {
            cookie_name: s.session_cookie_name.clone(),
            cookie_path: s.session_cookie_path.clone(),
            cookie_domain: s.session_cookie_domain.clone(),
            same_site: s
                .session_cookie_same_site
                .parse::<SameSite>()
                .map_err(|e| BuildError::field("session_cookie_same_site", e.to_string()))?,
            http_only: s.session_cookie_http_only,
            secure: s.session_cookie_secure,
            rolling_timeout: secs(s.session_rolling_timeout).max(0) as u64,
            idling_timeout: secs(s.session_idling_timeout).max(0) as u64,
            absolute_timeout: secs(s.session_absolute_timeout).max(0) as u64,
            audience: s.session_audience.clone(),
            issuer: s.issuer.clone(),
            clients: s.client_id.clone().unwrap_or_default(),
            ..SessionConfig::default()
        };
        let sessions = SessionStore::new(session_key, session_config).map_err(session_error)?;

        let responder = Responder {
            unauthorized_message: s.unauthorized_error_message.clone(),
            forbidden_message: s.forbidden_error_message.clone(),
            display_errors: s.display_errors,
            expose_error_code: s.expose_error_code,
            realm: realm_of(&s.issuer),
        };
        let salt = match &s.cache_tokens_salt {
            Some(salt) if !salt.is_empty() => salt.clone(),
            _ => random_salt().map_err(BuildError::Resource)?,
        };
        let ttl = TtlRule {
            ttl: secs(s.cache_ttl),
            max: s.cache_ttl_max.map(secs).unwrap_or(0),
            min: s.cache_ttl_min.map(secs).unwrap_or(0),
        };
        // The scope is part of grant cache keys only with `token_cache_key_include_scope`.
        let scope_key = match &s.scopes {
            Some(scopes) if s.token_cache_key_include_scope => scopes.join(" "),
            _ => String::new(),
        };
        let key_prefix = |grant| crate::cache::KeyPrefix::new(&[provider.issuer(), grant, &salt, &scope_key]);
        let password_key_prefix = key_prefix("password");
        let client_credentials_key_prefix = key_prefix("client_credentials");
        let mut oidc = Oidc {
            methods,
            provider,
            verifier,
            token_auth: auth(&s.token_endpoint_auth_method),
            introspection_auth: auth(&s.introspection_endpoint_auth_method),
            clients,
            bearer_places,
            password_places,
            client_credentials_places,
            refresh_places,
            needs_body,
            requirements,
            mapping,
            sessions,
            responder,
            salt,
            password_key_prefix,
            client_credentials_key_prefix,
            ttl,
            tokens: s.cache_tokens.then(|| cache::timed(CACHE_ENTRIES)),
            introspections: s.cache_introspection.then(|| cache::timed(CACHE_ENTRIES)),
            userinfos: s.cache_user_info.then(|| cache::timed(CACHE_ENTRIES)),
            introspection_headers: pairs(&s.introspection_headers_names, &s.introspection_headers_values),
            introspection_post_args: pairs(&s.introspection_post_args_names, &s.introspection_post_args_values),
            userinfo_headers: pairs(&s.userinfo_headers_names, &s.userinfo_headers_values),
            userinfo_query: pairs(&s.userinfo_query_args_names, &s.userinfo_query_args_values),
            token_post_args: pairs(&s.token_post_args_names, &s.token_post_args_values),
            token_headers: pairs(&s.token_headers_names, &s.token_headers_values),
            id_token_places: Place::list(&s.id_token_param_type),
            headers: crate::headers::HeaderPlan::build(&s).map_err(config_error)?,
            // Entries are checked against the session's deadlines on every use; the TTL only
            // bounds how long a cookie no client sends any more stays in memory.
            session_cache: moka::sync::Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .time_to_live(Duration::from_secs(60))
                .build_with_hasher(foldhash::fast::RandomState::default()),
            shortcut: crate::fast::Shortcut::None,
            s,
        };
        oidc.shortcut = crate::fast::Shortcut::for_config(&oidc);
        Ok(oidc)
    }
}

#[cfg(test)]
impl Oidc {
    /// An instance of `config` (plus an unreachable issuer), with Kong's defaults filled in.
    pub(crate) fn for_tests(mut config: serde_json::Value) -> Oidc {
        if let serde_json::Value::Object(c) = &mut config {
            c.entry("issuer").or_insert_with(|| "http://127.0.0.1:9/realms/x".into());
        }
        let cfg =
            crate::config::schema().validate(&config, gatehouse_core::schema::Mode::default()).expect("valid config");
        Oidc::build(&cfg, SessionCodec::new(b"node secret"), &BuildEnv::default()).expect("builds")
    }
}

/// The session config's errors, each at the field it is about.
fn session_error(e: gatehouse_session::ConfigError) -> BuildError {
    use gatehouse_session::ConfigError as E;
    let field = match &e {
        E::CookieName => "session_cookie_name",
        E::CookiePath => "session_cookie_path",
        E::CookieDomain => "session_cookie_domain",
        E::Audience => "session_audience",
        E::Issuer => "issuer",
        E::Client => "client_id",
        E::SameSite(_) => "session_cookie_same_site",
        // The cookie's fixed overhead outgrows the size limit only with a long path or domain.
        E::MaxCookieSize { .. } => "session_cookie_path",
    };
    // The session crate prefixes its messages with the field name; the path already says it.
    let msg = e.to_string();
    let msg = msg.strip_prefix(field).and_then(|m| m.strip_prefix(": ")).map_or(msg.clone(), str::to_string);
    BuildError::field(field, msg)
}

fn random_salt() -> Result<String, String> {
    let mut b = [0u8; 16];
    SystemRandom::new().fill(&mut b).map_err(|_| "no randomness".to_string())?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// The configured clients: `client_id[i]` with `client_secret[i]`, `client_auth[i]`,
/// `client_jwk[i]`, `client_alg[i]` (a shorter list repeats its last entry, as Kong does).
fn clients(s: &Settings) -> Result<Vec<Client>, BuildError> {
    let ids = s.client_id.clone().unwrap_or_default();
    let pick = |list: &Option<Vec<String>>, i: usize| -> Option<String> {
        list.as_ref().and_then(|l| l.get(i).or(l.last())).cloned()
    };
    let mut out = Vec::with_capacity(ids.len());
    for (i, id) in ids.into_iter().enumerate() {
        let secret = pick(&s.client_secret, i);
        let alg = pick(&s.client_alg, i).and_then(|a| Algorithm::from_name(&a));
        let jwk = s.client_jwk.as_ref().and_then(|l| l.get(i).or(l.last()));
        let key = match jwk {
            Some(j) => Some(
                SigningKey::from_private_jwk(j, alg.filter(|a| !a.is_hmac()))
                    .map_err(|e| BuildError::field("client_jwk", format!("client {}: {e}", i + 1)))?,
            ),
            None => None,
        };
        let auth = match pick(&s.client_auth, i) {
            Some(name) => ClientAuth::from_name(&name).ok_or_else(|| {
                BuildError::field("client_auth", format!("{name} is not supported (no TLS client certificates yet)"))
            })?,
            None if secret.is_none() && key.is_some() => ClientAuth::PrivateKeyJwt,
            None if secret.is_none() => ClientAuth::None,
            None => ClientAuth::SecretBasic,
        };
        out.push(Client { id, secret, auth, key, alg });
    }
    Ok(out)
}

impl Plugin for Oidc {
    fn needs_body(&self) -> bool {
        self.needs_body
    }

    fn access<'a>(
        &'a self,
        ctx: &'a mut gatehouse_core::plugin::Ctx,
        req: &'a mut http::request::Parts,
    ) -> gatehouse_core::plugin::Step<'a> {
        if let Some(flow) = self.shortcut.access(self, ctx, req) {
            return gatehouse_core::plugin::Step::Ready(flow);
        }
        gatehouse_core::plugin::Step::Wait(Box::pin(self.access_async(ctx, req)))
    }

    fn header_filter(&self, ctx: &mut gatehouse_core::plugin::Ctx, resp: &mut http::response::Parts) {
        if let Some(p) = ctx.extensions.remove::<crate::access::Pending>() {
            for c in p.set_cookies {
                resp.headers.append(http::header::SET_COOKIE, c);
            }
            // Downstream headers append, as Kong's do.
            for (name, value) in p.downstream {
                resp.headers.append(name, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::schema::{Mode, Seg};
    use serde_json::json;

    fn build_error(config: serde_json::Value) -> Vec<(Vec<Seg>, String)> {
        let cfg = crate::config::schema().validate(&config, Mode::default()).expect("the schema accepts it");
        match Oidc::build(&cfg, SessionCodec::new(b"node secret"), &BuildEnv::default()) {
            Err(BuildError::Config(errs)) => errs.errors,
            Err(other) => panic!("not a config error: {other}"),
            Ok(_) => panic!("built"),
        }
    }

    fn path(field: &str) -> Vec<Seg> {
        vec![Seg::Key("config".into()), Seg::Key(field.into())]
    }

    #[test]
    fn build_errors_name_the_config_field() {
        let issuer = "http://127.0.0.1:9/realms/x";
        let e = build_error(json!({"issuer": issuer, "session_cookie_name": "bad name;"}));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, path("session_cookie_name"));
        assert!(e[0].1.starts_with("must be 1 to 128 token characters"), "{}", e[0].1);

        let e = build_error(json!({"issuer": issuer, "session_cookie_domain": "a b"}));
        assert_eq!(e[0].0, path("session_cookie_domain"));
    }

    #[test]
    fn huge_durations_are_clamped_to_ten_years() {
        assert_eq!(secs(1e30), MAX_SECS);
        assert_eq!(secs(-1e30), -MAX_SECS);
        assert_eq!(secs(f64::NAN), 0);
        assert_eq!(secs(1.5), 1);
        let o = Oidc::for_tests(json!({"cache_ttl": 1e300, "leeway": -1e300, "timeout": 1e300}));
        assert_eq!(o.verifier.leeway, -MAX_SECS);
    }
}
