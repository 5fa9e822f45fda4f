//! `GET /.well-known/openid-configuration` and `GET /jwks`.

use http::StatusCode;
use serde_json::json;

use super::request::REQUEST_OBJECT_ALGS;
use super::state::Idp;
use super::util::merge;
use super::web::{Resp, json};

const AUTH_METHODS: [&str; 5] =
    ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"];

const ASSERTION_ALGS: [&str; 12] =
    ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"];

pub(crate) fn discovery(idp: &Idp) -> Resp {
    let mut doc = json!({
            "issuer": idp.issuer,
            "authorization_endpoint": idp.url("/authorize"),
            "token_endpoint": idp.url("/token"),
            "userinfo_endpoint": idp.url("/userinfo"),
            "jwks_uri": idp.url("/jwks"),
            "introspection_endpoint": idp.url("/introspect"),
            "revocation_endpoint": idp.url("/revoke"),
            "end_session_endpoint": idp.url("/logout"),
            "scopes_supported": ["openid", "email", "profile", "offline_access"],
            "response_types_supported": ["code"],
            "response_modes_supported":
                ["query", "form_post", "fragment", "query.jwt", "form_post.jwt", "fragment.jwt", "jwt"],
            "authorization_signing_alg_values_supported": ["RS256"],
            "grant_types_supported": ["authorization_code", "password", "client_credentials", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "userinfo_signing_alg_values_supported": ["RS256"],
            "introspection_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": AUTH_METHODS,
            "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
            "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
            "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
            "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
            "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
            "code_challenge_methods_supported": ["S256", "plain"],
            "claims_supported": [
                "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "c_hash", "sid", "azp",
                "preferred_username", "given_name", "family_name", "name", "email", "email_verified", "groups",
                "roles"
            ],
            "prompt_values_supported": ["none", "login", "consent", "select_account"],
            "claims_parameter_supported": false,
            "request_parameter_supported": true,
            "request_object_signing_alg_values_supported": REQUEST_OBJECT_ALGS,
            // request_uri values other than those /par hands out are not fetched.
            "request_uri_parameter_supported": false,
            "pushed_authorization_request_endpoint": idp.url("/par"),
            "require_pushed_authorization_requests": false,
            "authorization_response_iss_parameter_supported": true,
    });
    if let Some(doc) = doc.as_object_mut() {
        merge(doc, &idp.knobs().overrides.discovery);
    }
    json(StatusCode::OK, &doc)
}

pub(crate) fn jwks(idp: &Idp) -> Resp {
    json(StatusCode::OK, idp.keys().jwks())
}
