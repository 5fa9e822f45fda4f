//! The typed view of a validated `config`: the fields the plugin honours, read once at build time.
//!
//! [`crate::config::schema`] has already filled every default, so every field is present here;
//! `Option` means Kong's `null`. Fields the plugin accepts but does not act on are not read (see
//! `docs/compatibility.md`).

use gatehouse_core::plugin::BuildError;
use gatehouse_core::schema::{FieldErrors, Seg};
use serde::Deserialize;
use serde_json::Value;

/// One plugin instance's settings, as Kong names them.
#[derive(Debug, Clone, Deserialize)]
#[allow(missing_docs)] // Each field is the Kong field of the same name; docs/compatibility.md describes them.
pub struct Settings {
    pub issuer: String,
    pub using_pseudo_issuer: bool,
    pub discovery_headers_names: Option<Vec<String>>,
    pub discovery_headers_values: Option<Vec<String>>,
    pub extra_jwks_uris: Option<Vec<String>>,
    pub rediscovery_lifetime: f64,
    pub jwks_endpoint: Option<String>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub introspection_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
    pub end_session_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,

    pub auth_methods: Vec<String>,
    pub bearer_token_param_type: Vec<String>,
    pub bearer_token_cookie_name: Option<String>,
    pub bearer_token_header_name: Option<String>,
    pub client_credentials_param_type: Vec<String>,
    pub password_param_type: Vec<String>,
    pub refresh_token_param_type: Vec<String>,
    pub refresh_token_param_name: Option<String>,
    pub id_token_param_type: Vec<String>,
    pub id_token_param_name: Option<String>,

    pub client_id: Option<Vec<String>>,
    pub client_secret: Option<Vec<String>>,
    pub client_auth: Option<Vec<String>>,
    pub client_jwk: Option<Vec<Value>>,
    pub client_alg: Option<Vec<String>>,
    pub client_arg: String,
    pub token_endpoint_auth_method: Option<String>,
    pub introspection_endpoint_auth_method: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub audience: Option<Vec<String>>,
    pub token_post_args_names: Option<Vec<String>>,
    pub token_post_args_values: Option<Vec<String>>,
    pub token_headers_names: Option<Vec<String>>,
    pub token_headers_values: Option<Vec<String>>,
    pub token_headers_replay: Option<Vec<String>>,
    pub token_headers_prefix: Option<String>,
    pub token_headers_grants: Option<Vec<String>>,

    pub verify_signature: bool,
    pub verify_claims: bool,
    pub leeway: f64,
    pub enable_hs_signatures: bool,
    pub issuers_allowed: Option<Vec<String>>,
    pub ignore_signature: Vec<String>,
    pub reverify: bool,
    pub claims_forbidden: Option<Vec<String>>,
    pub scopes_claim: Option<Vec<String>>,
    pub scopes_required: Option<Vec<String>>,
    pub audience_claim: Option<Vec<String>>,
    pub audience_required: Option<Vec<String>>,
    pub groups_claim: Option<Vec<String>>,
    pub groups_required: Option<Vec<String>>,
    pub roles_claim: Option<Vec<String>>,
    pub roles_required: Option<Vec<String>>,

    pub introspection_hint: Option<String>,
    pub introspection_token_param_name: Option<String>,
    pub introspection_check_active: bool,
    pub introspection_accept: Option<String>,
    pub introspection_headers_names: Option<Vec<String>>,
    pub introspection_headers_values: Option<Vec<String>>,
    pub introspection_post_args_names: Option<Vec<String>>,
    pub introspection_post_args_values: Option<Vec<String>>,
    pub introspect_jwt_tokens: bool,
    pub search_user_info: bool,
    pub userinfo_accept: Option<String>,
    pub userinfo_headers_names: Option<Vec<String>>,
    pub userinfo_headers_values: Option<Vec<String>>,
    pub userinfo_query_args_names: Option<Vec<String>>,
    pub userinfo_query_args_values: Option<Vec<String>>,

    pub cache_tokens: bool,
    pub cache_tokens_salt: Option<String>,
    pub token_cache_key_include_scope: bool,
    pub cache_introspection: bool,
    pub cache_user_info: bool,
    pub cache_ttl: f64,
    pub cache_ttl_max: Option<f64>,
    pub cache_ttl_min: Option<f64>,

    pub session_secret: Option<String>,
    pub session_audience: String,
    pub session_cookie_name: String,
    pub session_cookie_path: String,
    pub session_cookie_domain: Option<String>,
    pub session_cookie_same_site: String,
    pub session_cookie_http_only: bool,
    pub session_cookie_secure: Option<bool>,
    pub session_idling_timeout: f64,
    pub session_rolling_timeout: f64,
    pub session_absolute_timeout: f64,
    pub session_remember: bool,
    pub session_remember_cookie_name: String,
    pub session_remember_rolling_timeout: f64,
    pub session_remember_absolute_timeout: f64,
    pub session_bind: Option<Vec<String>>,
    pub session_request_headers: Option<Vec<String>>,
    pub session_response_headers: Option<Vec<String>>,
    pub disable_session: Option<Vec<String>>,
    pub refresh_tokens: bool,
    pub unauthorized_destroy_session: bool,
    pub forbidden_destroy_session: bool,
    pub unauthorized_redirect_uri: Option<Vec<String>>,
    pub forbidden_redirect_uri: Option<Vec<String>>,
    pub unexpected_redirect_uri: Option<Vec<String>>,

    pub consumer_claim: Option<Vec<String>>,
    pub consumer_claims: Option<Vec<Vec<String>>>,
    pub consumer_by: Option<Vec<String>>,
    pub by_username_ignore_case: bool,
    pub consumer_optional: bool,
    pub anonymous: Option<String>,
    pub credential_claim: Option<Vec<String>>,
    pub authenticated_groups_claim: Option<Vec<String>>,

    pub hide_credentials: bool,
    pub unauthorized_error_message: String,
    pub forbidden_error_message: String,
    pub display_errors: bool,
    pub expose_error_code: bool,
    pub run_on_preflight: bool,

    pub ssl_verify: bool,
    pub timeout: f64,
    pub keepalive: bool,

    pub logout_query_arg: Option<String>,
    pub logout_post_arg: Option<String>,
    pub logout_uri_suffix: Option<String>,
    pub logout_methods: Option<Vec<String>>,
    pub logout_revoke: bool,
    pub logout_revoke_access_token: bool,
    pub logout_revoke_refresh_token: bool,
    pub logout_redirect_uri: Option<Vec<String>>,
    pub revocation_token_param_name: Option<String>,
    pub revocation_endpoint_auth_method: Option<String>,

    pub upstream_headers_claims: Option<Vec<String>>,
    pub upstream_headers_names: Option<Vec<String>>,
    pub upstream_headers: Option<Vec<HeaderItem>>,
    pub downstream_headers_claims: Option<Vec<String>>,
    pub downstream_headers_names: Option<Vec<String>>,
    pub downstream_headers: Option<Vec<HeaderItem>>,
    pub max_added_header_size: usize,
    pub max_added_headers_size: usize,

    // The authorization code flow and what follows a sign-in (`signin.rs`, `login.rs`).
    pub response_type: Vec<String>,
    pub response_mode: String,
    pub redirect_uri: Option<Vec<String>>,
    pub authorization_query_args_names: Option<Vec<String>>,
    pub authorization_query_args_values: Option<Vec<String>>,
    pub authorization_query_args_client: Option<Vec<String>>,
    pub authorization_rolling_timeout: f64,
    pub authorization_cookie_name: String,
    pub authorization_cookie_path: String,
    pub authorization_cookie_domain: Option<String>,
    pub authorization_cookie_same_site: String,
    pub authorization_cookie_http_only: bool,
    pub authorization_cookie_secure: Option<bool>,
    pub preserve_query_args: bool,
    pub require_proof_key_for_code_exchange: Option<bool>,
    pub require_pushed_authorization_requests: Option<bool>,
    pub require_signed_request_object: Option<bool>,
    pub pushed_authorization_request_endpoint: Option<String>,
    pub pushed_authorization_request_endpoint_auth_method: Option<String>,
    pub verify_nonce: bool,
    pub max_age: Option<f64>,
    pub domains: Option<Vec<String>>,
    pub login_methods: Option<Vec<String>>,
    pub login_action: String,
    pub login_tokens: Option<Vec<String>>,
    pub login_redirect_mode: String,
    pub login_redirect_uri: Option<Vec<String>>,

    /// Every other field, e.g. the twenty `upstream_*_header`/`downstream_*_header` fields, which
    /// [`Settings::token_headers`] reads by name.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// One `upstream_headers`/`downstream_headers` item.
#[derive(Debug, Clone, Deserialize)]
#[allow(missing_docs)]
pub struct HeaderItem {
    pub header: String,
    pub path: Vec<String>,
    pub encoding: Option<String>,
}

impl Settings {
    /// Reads a config that [`crate::config::schema`] has validated.
    pub fn from_config(config: &Value) -> Result<Settings, BuildError> {
        Settings::deserialize(config)
            .map_err(|e| BuildError::Config(FieldErrors::one(vec![Seg::Key("config".into())], e.to_string())))
    }

    /// The `{prefix}{field}` token header fields that are set (`upstream_` or `downstream_`).
    pub fn token_header(&self, prefix: &str, field: &str) -> Option<&str> {
        self.other.get(&format!("{prefix}{field}")).and_then(Value::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::schema::Mode;
    use serde_json::json;

    #[test]
    fn every_default_config_reads() {
        let cfg = crate::config::schema().validate(&json!({"issuer": "https://idp.example/"}), Mode::default());
        let s = Settings::from_config(&cfg.expect("valid")).expect("typed");
        assert_eq!(s.session_cookie_name, "session");
        assert_eq!(s.bearer_token_param_type, ["header", "query", "body"]);
        let methods = crate::method::Methods::of(&s.auth_methods);
        assert!(methods.contains(crate::method::Method::Password) && methods.contains(crate::method::Method::Session));
        assert_eq!(s.token_header("upstream_", "access_token_header"), Some("authorization:bearer"));
        assert_eq!(s.token_header("downstream_", "access_token_header"), None);
        assert_eq!(s.max_added_header_size, 8192);
        assert_eq!(s.timeout, 10000.0);
    }
}
