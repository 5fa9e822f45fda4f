//! Kong's `openid-connect` config schema, in our schema language.
//!
//! Every field of Kong 3.15's plugin config is here, with Kong's name, type and default. Array defaults
//! follow the order of Kong's Lua schema, which is the order the Admin API returns (the published JSON
//! schema sorts them). Where Kong validates a value (`one_of` lists, ranges, URLs, cookie paths, hosts),
//! so do we, with Kong's messages.
//!
//! Later code deserializes the normalized JSON ([`Record::validate`] fills every default), so this module
//! holds no typed view of its own.
//!
//! Where we differ from Kong on purpose:
//! - Header fields are checked at config time. A `*_header` field is either one of the special forms
//!   (`authorization:bearer`, `authorization:basic`, `authorization:dpop`) or a header name; the header
//!   names in `upstream_headers`, `*_headers_names` and the like follow Kong's `header_name` rule. Kong
//!   accepts any string there and fails per request instead.
//! - Paired lists (`upstream_headers_claims` and `upstream_headers_names`, every `*_names` and `*_values`)
//!   must have the same length. Kong silently ignores the extra entries.
//! - `upstream_headers[]` and `downstream_headers[]` items take an extra `encoding` (`kong`, `json`,
//!   `list`; default `kong`): how a non-string claim becomes a header value.
//! - `consumer_claim` is kept as a field of its own (Kong 3.14+ turns it into `consumer_claims`), because
//!   the schema language cannot translate one field into another. Code reading the config uses
//!   `consumer_claims`, or else `[consumer_claim]`.
//! - Deprecated aliases that Kong translates (`session_cookie_lifetime`, `session_redis_host`, ...) are
//!   refused with the name to use instead, for the same reason: accepting and dropping them would
//!   silently change behaviour. Aliases that Kong accepts and ignores are accepted and ignored here too.
//! - `cache_tokens_salt` is not generated when missing (Kong fills a random value); whoever uses it must
//!   derive one.
//! - The schema language fills every record whose fields have defaults, given or not, so `redis`,
//!   `cluster_cache_redis`, `principals` and `proof_of_possession_mtls_from_header` always come back
//!   filled. Kong leaves at least the last one `null` when unset; here "not configured" means its
//!   `certificate_header_name` is `null`. `token_exchange` has no direct defaults and stays `null`.

use gatehouse_core::schema::{Field, Record};
use serde_json::{Map, Value, json};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

/// The `openid-connect` config schema.
pub fn schema() -> &'static Record {
    &SCHEMA
}

/// Every grant or credential type the plugin knows, in Kong's order.
const GRANTS: &[&str] = &[
    "password",
    "client_credentials",
    "authorization_code",
    "bearer",
    "introspection",
    "userinfo",
    "kong_oauth2",
    "refresh_token",
    "session",
];

/// Where a credential may be looked for.
const LOCATIONS: &[&str] = &["header", "query", "body"];

/// How Kong authenticates itself to the identity provider.
const CLIENT_AUTH: &[&str] = &[
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
    "tls_client_auth",
    "self_signed_tls_client_auth",
    "none",
];

const ALGORITHMS: &[&str] = &[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA",
];

const SAME_SITE: &[&str] = &["Strict", "Lax", "None", "Default"];

const SESSION_HEADERS: &[&str] =
    &["id", "audience", "subject", "timeout", "idling-timeout", "rolling-timeout", "absolute-timeout"];

const POP_MODES: &[&str] = &["off", "strict", "optional"];

/// The `*_header` values that set `Authorization` with a scheme instead of naming a header.
const AUTHORIZATION_FORMS: &[&str] = &["authorization:bearer", "authorization:basic", "authorization:dpop"];

/// The largest timeout Kong accepts: 2^31 - 2 milliseconds.
const MAX_TIMEOUT: i64 = 2_147_483_646;

static SCHEMA: LazyLock<Record> = LazyLock::new(|| {
    let mut f = Vec::with_capacity(256);

    // Issuer, discovery and endpoint overrides.
    f.extend([
        url("issuer").required(),
        boolean("using_pseudo_issuer", false),
        header_names("discovery_headers_names"),
        strs("discovery_headers_values"),
        Field::set("extra_jwks_uris", url("element")),
        number("rediscovery_lifetime", json!(30)),
        url("jwks_endpoint"),
        url("authorization_endpoint"),
        url("token_endpoint"),
        url("introspection_endpoint"),
        url("revocation_endpoint"),
        url("end_session_endpoint"),
        url("userinfo_endpoint"),
        url("pushed_authorization_request_endpoint"),
        url("token_exchange_endpoint"),
        url("mtls_token_endpoint"),
        url("mtls_introspection_endpoint"),
        url("mtls_revocation_endpoint"),
    ]);

    // Which credentials are accepted, and where they are looked for.
    f.extend([
        one_of_strs("auth_methods", GRANTS).default(json!(GRANTS)),
        one_of_strs("bearer_token_param_type", &["header", "cookie", "query", "body"])
            .default(json!(["header", "query", "body"])),
        s("bearer_token_cookie_name"),
        header_name("bearer_token_header_name"),
        one_of_strs("client_credentials_param_type", LOCATIONS).default(json!(LOCATIONS)),
        one_of_strs("password_param_type", LOCATIONS).default(json!(LOCATIONS)),
        one_of_strs("id_token_param_type", LOCATIONS).default(json!(LOCATIONS)),
        s("id_token_param_name"),
        one_of_strs("refresh_token_param_type", LOCATIONS).default(json!(LOCATIONS)),
        s("refresh_token_param_name"),
        boolean("refresh_tokens", true),
        s("client_arg").default(json!("client_id")),
        // Kong 3.14 changed this default from false to true for new plugins.
        boolean("hide_credentials", true),
        boolean("run_on_preflight", true),
    ]);

    // How the plugin authenticates to the identity provider.
    f.extend([
        strs("client_id").secret(),
        strs("client_secret").secret(),
        one_of_strs("client_auth", CLIENT_AUTH),
        Field::array("client_jwk", Field::record("element", jwk())),
        one_of_strs("client_alg", ALGORITHMS),
        s("token_endpoint_auth_method").one_of(CLIENT_AUTH),
        s("introspection_endpoint_auth_method").one_of(CLIENT_AUTH),
        s("revocation_endpoint_auth_method").one_of(CLIENT_AUTH),
        s("pushed_authorization_request_endpoint_auth_method").one_of(CLIENT_AUTH),
        Field::uuid("tls_client_auth_cert_id"),
        boolean("tls_client_auth_ssl_verify", true),
    ]);

    // The HTTP client that talks to the identity provider.
    f.extend([
        // Kong 3.14 changed this default from false to true.
        boolean("ssl_verify", true),
        number("timeout", json!(10000)),
        boolean("keepalive", true),
        Field::number("http_version").default(json!(1.1)).check(check_http_version),
        url("http_proxy"),
        s("http_proxy_authorization").secret(),
        url("https_proxy"),
        s("https_proxy_authorization").secret(),
        s("no_proxy"),
    ]);

    // What is sent to the token endpoint.
    f.extend([
        strs("scopes").default(json!(["openid"])),
        strs("audience"),
        strs("token_post_args_names"),
        strs("token_post_args_values"),
        strs("token_post_args_client"),
        header_names("token_headers_names"),
        strs("token_headers_values"),
        header_names("token_headers_client"),
    ]);

    // Token verification.
    f.extend([
        boolean("verify_signature", true),
        boolean("verify_claims", true),
        boolean("verify_nonce", true),
        boolean("verify_parameters", false),
        number("leeway", json!(0)),
        Field::number("max_age"),
        strs("domains"),
        boolean("enable_hs_signatures", false),
        one_of_strs(
            "ignore_signature",
            &[
                "password",
                "client_credentials",
                "authorization_code",
                "refresh_token",
                "session",
                "introspection",
                "userinfo",
            ],
        )
        .default(json!([])),
        boolean("reverify", false),
        strs("issuers_allowed"),
        strs("claims_forbidden"),
        s("jwt_session_cookie"),
        s("jwt_session_claim").default(json!("sid")),
        boolean("resolve_distributed_claims", false),
    ]);

    // Authorization: required values and the claim (a path) they are read from.
    f.extend([
        strs("scopes_required"),
        strs("scopes_claim").default(json!(["scope"])),
        strs("audience_required"),
        strs("audience_claim").default(json!(["aud"])),
        strs("groups_required"),
        strs("groups_claim").default(json!(["groups"])),
        strs("roles_required"),
        strs("roles_claim").default(json!(["roles"])),
        strs("authenticated_groups_claim"),
    ]);

    // Caching.
    f.extend([
        number("cache_ttl", json!(3600)),
        Field::number("cache_ttl_max"),
        Field::number("cache_ttl_min"),
        Field::number("cache_ttl_neg"),
        Field::number("cache_ttl_resurrect"),
        boolean("cache_tokens", true),
        s("cache_tokens_salt"),
        boolean("token_cache_key_include_scope", false),
        boolean("cache_introspection", true),
        boolean("cache_user_info", true),
        boolean("cache_token_exchange", true),
        s("cluster_cache_strategy").default(json!("off")).one_of(&["off", "redis"]),
        Field::set("cluster_cache_items", s("element").one_of(&["introspection", "tokens"]))
            .default(json!(["introspection"])),
        Field::record("cluster_cache_redis", redis(false)),
    ]);

    // Introspection (RFC 7662).
    f.extend([
        s("introspection_hint").default(json!("access_token")),
        s("introspection_token_param_name").default(json!("token")),
        boolean("introspection_check_active", true),
        s("introspection_accept").default(json!("application/json")).one_of(&[
            "application/json",
            "application/token-introspection+jwt",
            "application/jwt",
        ]),
        header_names("introspection_headers_names"),
        strs("introspection_headers_values").secret(),
        header_names("introspection_headers_client"),
        strs("introspection_post_args_names"),
        strs("introspection_post_args_values"),
        strs("introspection_post_args_client"),
        header_names("introspection_post_args_client_headers"),
        boolean("introspect_jwt_tokens", false),
    ]);

    // Userinfo.
    f.extend([
        s("userinfo_accept").default(json!("application/json")).one_of(&["application/json", "application/jwt"]),
        header_names("userinfo_headers_names"),
        strs("userinfo_headers_values"),
        header_names("userinfo_headers_client"),
        strs("userinfo_query_args_names"),
        strs("userinfo_query_args_values"),
        strs("userinfo_query_args_client"),
        boolean("search_user_info", false),
    ]);

    // Consumer mapping.
    f.extend([
        strs("consumer_claim"),
        Field::array("consumer_claims", strs("element")),
        one_of_strs("consumer_by", &["id", "username", "custom_id"]).default(json!(["username", "custom_id"])),
        boolean("by_username_ignore_case", false),
        boolean("consumer_optional", false),
        strs("consumer_groups_claim"),
        boolean("consumer_groups_optional", false),
        strs("credential_claim").default(json!(["sub"])),
        s("anonymous"),
        Field::record("principals", principals()),
    ]);

    // Sessions.
    f.extend([
        s("session_secret").secret(),
        s("session_audience").default(json!("default")),
        s("session_cookie_name").default(json!("session")),
        s("session_cookie_path").default(json!("/")).check(check_cookie_path),
        s("session_cookie_domain"),
        s("session_cookie_same_site").default(json!("Lax")).one_of(SAME_SITE),
        boolean("session_cookie_http_only", true),
        Field::boolean("session_cookie_secure"),
        boolean("session_remember", false),
        s("session_remember_cookie_name").default(json!("remember")),
        number("session_remember_rolling_timeout", json!(604800)),
        number("session_remember_absolute_timeout", json!(2592000)),
        number("session_idling_timeout", json!(900)),
        number("session_rolling_timeout", json!(3600)),
        number("session_absolute_timeout", json!(86400)),
        s("session_storage").default(json!("cookie")).one_of(&["cookie", "memcache", "memcached", "redis"]),
        boolean("session_store_metadata", false),
        boolean("session_enforce_same_subject", false),
        boolean("session_hash_subject", false),
        boolean("session_hash_storage_key", false),
        one_of_strs("session_bind", &["ip", "scheme", "user-agent"]),
        s("session_memcached_prefix"),
        s("session_memcached_socket"),
        s("session_memcached_host").default(json!("127.0.0.1")),
        port("session_memcached_port", 11211),
        Field::boolean("session_memcached_ssl"),
        boolean("session_memcached_ssl_verify", true),
        Field::record("redis", redis(true)),
        one_of_strs("disable_session", GRANTS),
    ]);

    // The authorization code flow.
    f.extend([
        strs("response_type").default(json!(["code"])),
        s("response_mode").default(json!("query")).one_of(&[
            "query",
            "form_post",
            "fragment",
            "query.jwt",
            "form_post.jwt",
            "fragment.jwt",
            "jwt",
        ]),
        urls("redirect_uri"),
        strs("authorization_query_args_names"),
        strs("authorization_query_args_values"),
        strs("authorization_query_args_client"),
        number("authorization_rolling_timeout", json!(600)),
        s("authorization_cookie_name").default(json!("authorization")),
        s("authorization_cookie_path").default(json!("/")).check(check_cookie_path),
        s("authorization_cookie_domain"),
        s("authorization_cookie_same_site").default(json!("Default")).one_of(SAME_SITE),
        boolean("authorization_cookie_http_only", true),
        Field::boolean("authorization_cookie_secure"),
        boolean("preserve_query_args", false),
        Field::boolean("require_proof_key_for_code_exchange"),
        Field::boolean("require_pushed_authorization_requests"),
        Field::boolean("require_signed_request_object"),
    ]);

    // What happens after a successful login.
    f.extend([
        one_of_strs("login_methods", GRANTS).default(json!(["authorization_code"])),
        s("login_action").default(json!("upstream")).one_of(&["upstream", "response", "redirect"]),
        one_of_strs("login_tokens", &["id_token", "access_token", "refresh_token", "tokens", "introspection"])
            .default(json!(["id_token"])),
        s("login_redirect_mode").default(json!("fragment")).one_of(&["query", "fragment"]),
        urls("login_redirect_uri"),
    ]);

    // Logout.
    f.extend([
        s("logout_query_arg"),
        s("logout_post_arg"),
        s("logout_uri_suffix"),
        one_of_strs("logout_methods", &["POST", "GET", "DELETE"]).default(json!(["POST", "DELETE"])),
        boolean("logout_revoke", false),
        boolean("logout_revoke_access_token", true),
        boolean("logout_revoke_refresh_token", true),
        urls("logout_redirect_uri"),
        s("revocation_token_param_name").default(json!("token")),
    ]);

    // Failures.
    f.extend([
        s("unauthorized_error_message").default(json!("Unauthorized")),
        urls("unauthorized_redirect_uri"),
        boolean("unauthorized_destroy_session", true),
        s("forbidden_error_message").default(json!("Forbidden")),
        urls("forbidden_redirect_uri"),
        boolean("forbidden_destroy_session", true),
        urls("unexpected_redirect_uri"),
        boolean("display_errors", false),
        boolean("expose_error_code", true),
    ]);

    // Headers set on the upstream request and on the client response.
    f.extend([
        header_target("upstream_access_token_header").default(json!("authorization:bearer")),
        header_target("upstream_access_token_jwk_header"),
        header_target("upstream_id_token_header"),
        header_target("upstream_id_token_jwk_header"),
        header_target("upstream_refresh_token_header"),
        header_target("upstream_user_info_header"),
        header_target("upstream_user_info_jwt_header"),
        header_target("upstream_introspection_header"),
        header_target("upstream_introspection_jwt_header"),
        header_target("upstream_session_id_header"),
        strs("upstream_headers_claims"),
        header_names("upstream_headers_names"),
        Field::array("upstream_headers", Field::record("element", claim_header())),
        header_target("downstream_access_token_header"),
        header_target("downstream_access_token_jwk_header"),
        header_target("downstream_id_token_header"),
        header_target("downstream_id_token_jwk_header"),
        header_target("downstream_refresh_token_header"),
        header_target("downstream_user_info_header"),
        header_target("downstream_user_info_jwt_header"),
        header_target("downstream_introspection_header"),
        header_target("downstream_introspection_jwt_header"),
        header_target("downstream_session_id_header"),
        strs("downstream_headers_claims"),
        header_names("downstream_headers_names"),
        Field::array("downstream_headers", Field::record("element", claim_header())),
        // Our extension: the size guard. One added header (name and value) and all the headers the
        // plugin adds to one message stay under these byte counts; over them a header is left out
        // with a warning, rather than the upstream answering 431.
        Field::integer("max_added_header_size").required().default(json!(8192)).between(1, 65536),
        Field::integer("max_added_headers_size").required().default(json!(16384)).between(1, 262144),
    ]);
    f.extend([
        one_of_strs("session_request_headers", SESSION_HEADERS),
        one_of_strs("session_response_headers", SESSION_HEADERS),
        header_names("token_headers_replay"),
        s("token_headers_prefix").check(check_header_name),
        one_of_strs("token_headers_grants", &["password", "client_credentials", "authorization_code", "refresh_token"]),
    ]);

    // Proof of possession: mTLS certificate-bound tokens and DPoP.
    f.extend([
        s("proof_of_possession_mtls").default(json!("off")).one_of(POP_MODES),
        Field::record("proof_of_possession_mtls_from_header", mtls_from_header()),
        boolean("proof_of_possession_auth_methods_validation", true),
        s("proof_of_possession_dpop").default(json!("off")).one_of(POP_MODES),
        boolean("dpop_use_nonce", false),
        number("dpop_proof_lifetime", json!(300)),
    ]);

    // Token exchange (RFC 8693) of tokens from other issuers.
    f.push(Field::record("token_exchange", token_exchange()));

    // Deprecated aliases. Kong translates these to the field named in the message; we refuse them
    // rather than accept and drop them.
    f.extend([
        renamed(Field::number("authorization_cookie_lifetime"), |_| moved("authorization_rolling_timeout")),
        renamed(Field::string("authorization_cookie_samesite"), |_| moved("authorization_cookie_same_site")),
        renamed(Field::boolean("authorization_cookie_httponly"), |_| moved("authorization_cookie_http_only")),
        renamed(Field::number("session_cookie_lifetime"), |_| moved("session_rolling_timeout")),
        renamed(Field::number("session_cookie_idletime"), |_| moved("session_idling_timeout")),
        renamed(Field::string("session_cookie_samesite"), |_| moved("session_cookie_same_site")),
        renamed(Field::boolean("session_cookie_httponly"), |_| moved("session_cookie_http_only")),
        renamed(Field::string("session_memcache_prefix"), |_| moved("session_memcached_prefix")),
        renamed(Field::string("session_memcache_socket"), |_| moved("session_memcached_socket")),
        renamed(Field::string("session_memcache_host"), |_| moved("session_memcached_host")),
        renamed(Field::integer("session_memcache_port"), |_| moved("session_memcached_port")),
        renamed(Field::string("session_redis_prefix"), |_| moved("redis.prefix")),
        renamed(Field::string("session_redis_socket"), |_| moved("redis.socket")),
        renamed(Field::string("session_redis_host"), |_| moved("redis.host")),
        renamed(Field::integer("session_redis_port"), |_| moved("redis.port")),
        renamed(Field::string("session_redis_username"), |_| moved("redis.username")),
        renamed(Field::string("session_redis_password").secret(), |_| moved("redis.password")),
        renamed(Field::integer("session_redis_connect_timeout"), |_| moved("redis.connect_timeout")),
        renamed(Field::integer("session_redis_read_timeout"), |_| moved("redis.read_timeout")),
        renamed(Field::integer("session_redis_send_timeout"), |_| moved("redis.send_timeout")),
        renamed(Field::boolean("session_redis_ssl"), |_| moved("redis.ssl")),
        renamed(Field::boolean("session_redis_ssl_verify"), |_| moved("redis.ssl_verify")),
        renamed(Field::string("session_redis_server_name"), |_| moved("redis.server_name")),
        renamed(Field::array("session_redis_cluster_nodes", Field::any("element")), |_| moved("redis.cluster_nodes")),
        renamed(Field::integer("session_redis_cluster_max_redirections"), |_| moved("redis.cluster_max_redirections")),
        renamed(Field::integer("session_redis_cluster_maxredirections"), |_| moved("redis.cluster_max_redirections")),
    ]);
    // Options that no longer exist: Kong accepts and ignores them, and so do we.
    f.extend([
        Field::number("session_cookie_renew").shorthand(),
        Field::integer("session_cookie_maxsize").shorthand(),
        Field::string("session_strategy").shorthand(),
        Field::string("session_compressor").shorthand(),
    ]);

    Record::new(f)
        .entity_check(|m| same_len(m, "upstream_headers_claims", "upstream_headers_names"))
        .entity_check(|m| same_len(m, "downstream_headers_claims", "downstream_headers_names"))
        .entity_check(|m| same_len(m, "discovery_headers_names", "discovery_headers_values"))
        .entity_check(|m| same_len(m, "token_post_args_names", "token_post_args_values"))
        .entity_check(|m| same_len(m, "token_headers_names", "token_headers_values"))
        .entity_check(|m| same_len(m, "introspection_headers_names", "introspection_headers_values"))
        .entity_check(|m| same_len(m, "introspection_post_args_names", "introspection_post_args_values"))
        .entity_check(|m| same_len(m, "userinfo_headers_names", "userinfo_headers_values"))
        .entity_check(|m| same_len(m, "userinfo_query_args_names", "userinfo_query_args_values"))
        .entity_check(|m| same_len(m, "authorization_query_args_names", "authorization_query_args_values"))
        .entity_check(check_tls_client_auth)
        .entity_check(check_pop_auth_methods)
});

// === nested records ===

/// One `upstream_headers` / `downstream_headers` item: the claim at `path` goes into `header`.
fn claim_header() -> Record {
    Record::new(vec![
        header_name("header").required(),
        strs("path").required().check(non_empty),
        // Our extension: how a non-string value becomes the header value. `kong` is Kong's rule (objects
        // and arrays as base64 of their JSON, other scalars as text), `json` sends the compact JSON as is,
        // `list` joins an array's items with ", ".
        s("encoding").required().default(json!("kong")).one_of(&["kong", "json", "list"]),
    ])
}

/// A JSON Web Key, as `client_jwk` holds them. The private parts are secret.
fn jwk() -> Record {
    Record::new(vec![
        s("issuer"),
        s("kty"),
        s("use"),
        strs("key_ops"),
        s("alg"),
        s("kid"),
        s("x5u"),
        strs("x5c"),
        s("x5t"),
        s("x5t#S256"),
        s("k").secret(),
        s("x"),
        s("y"),
        s("crv"),
        s("n"),
        s("e"),
        s("d").secret(),
        s("p").secret(),
        s("q").secret(),
        s("dp").secret(),
        s("dq").secret(),
        s("qi").secret(),
        s("oth").secret(),
        s("r").secret(),
        s("t").secret(),
    ])
}

/// Kong's shared Redis settings; the session store (`redis`) also has `prefix` and `socket`.
fn redis(session_store: bool) -> Record {
    let node = |host: &'static str| {
        Field::record(
            "element",
            Record::new(vec![s(host).required().default(json!("127.0.0.1")).check(check_host), port("port", 6379)]),
        )
    };
    let mut f = vec![
        s("host").default(json!("127.0.0.1")).check(check_host),
        port("port", 6379),
        timeout("connect_timeout", 2000),
        timeout("send_timeout", 2000),
        timeout("read_timeout", 2000),
        s("username"),
        s("password").secret(),
        s("sentinel_username"),
        s("sentinel_password").secret(),
        Field::integer("database").default(json!(0)),
        Field::integer("keepalive_pool_size").default(json!(256)).between(1, MAX_TIMEOUT),
        Field::integer("keepalive_backlog").between(0, MAX_TIMEOUT),
        s("sentinel_master"),
        s("sentinel_role").one_of(&["master", "slave", "any"]),
        Field::array("sentinel_nodes", node("host")).check(non_empty),
        Field::array("cluster_nodes", node("ip")).check(non_empty),
        boolean("ssl", false),
        boolean("ssl_verify", true),
        s("server_name"),
        Field::integer("cluster_max_redirections").default(json!(5)),
        boolean("connection_is_proxied", false),
        Field::record(
            "cloud_authentication",
            Record::new(vec![
                s("auth_provider").one_of(&["aws", "gcp", "azure"]),
                s("aws_access_key_id").secret(),
                s("aws_secret_access_key").secret(),
                s("aws_assume_role_arn").secret(),
                s("aws_role_session_name").secret(),
                s("aws_region"),
                s("aws_cache_name"),
                boolean("aws_is_serverless", true),
                s("azure_client_id").secret(),
                s("azure_client_secret").secret(),
                s("azure_tenant_id").secret(),
                s("gcp_service_account_json").secret(),
            ]),
        ),
    ];
    if session_store {
        f.extend([s("prefix"), s("socket")]);
    }
    Record::new(f)
}

/// Kong Identity principal lookup after token verification (3.15).
fn principals() -> Record {
    Record::new(vec![
        boolean("enabled", false),
        s("directory").default(json!("default")),
        strs("principal_claim").check(non_empty),
        s("principal_by"),
        boolean("error_on_miss", true),
        boolean("match_consumer", true),
        boolean("match_consumer_groups", true),
    ])
}

/// Reading the client certificate for mTLS proof of possession from a header set by a TLS-terminating
/// proxy. Kong requires `certificate_header_name` and `ca_certificates` whenever the record is given;
/// as the record is always filled (see the module docs), we require both as soon as either is set.
fn mtls_from_header() -> Record {
    Record::new(vec![
        header_name("certificate_header_name"),
        s("certificate_header_format").default(json!("url_encoded")).one_of(&["url_encoded", "base64_encoded"]),
        Field::array("ca_certificates", Field::uuid("element")),
        boolean("secure_source", true),
        boolean("allow_partial_chain", false),
        boolean("ssl_verify", true),
        s("revocation_check_mode").default(json!("IGNORE_CA_ERROR")).one_of(&["SKIP", "IGNORE_CA_ERROR", "STRICT"]),
        number("cert_cache_ttl", json!(60000)),
        number("http_timeout", json!(30000)),
        s("http_proxy_host").check(check_host),
        Field::integer("http_proxy_port").between(0, 65535),
        s("https_proxy_host").check(check_host),
        Field::integer("https_proxy_port").between(0, 65535),
    ])
    .entity_check(|m| {
        let set = |k: &str| m.get(k).is_some_and(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()));
        if set("certificate_header_name") == set("ca_certificates") {
            Ok(())
        } else {
            Err("certificate_header_name and ca_certificates are both required to read the client certificate from a header"
                .into())
        }
    })
}

/// Exchanging tokens from other issuers for tokens of this one.
fn token_exchange() -> Record {
    let issuer = Record::new(vec![
        s("issuer").required(),
        Field::record(
            "conditions",
            Record::new(vec![
                strs("has_audience"),
                strs("missing_audience"),
                strs("has_scopes"),
                strs("missing_scopes"),
            ]),
        ),
        url("jwks_uri"),
        boolean("verify_signature", false),
    ]);
    Record::new(vec![
        // Required by Kong once `token_exchange` is given. Marking it required here would make the whole
        // record required (the schema language fills records that have required fields), hence the check.
        Field::array("subject_token_issuers", Field::record("element", issuer)).check(non_empty),
        Field::record(
            "request",
            Record::new(vec![
                strs("audience"),
                strs("scopes"),
                boolean("empty_audience", false),
                boolean("empty_scopes", false),
            ]),
        ),
        Field::record("cache", Record::new(vec![boolean("enabled", true), Field::integer("ttl")])),
    ])
    .entity_check(|m| match m.get("subject_token_issuers") {
        Some(Value::Array(_)) => Ok(()),
        _ => Err("subject_token_issuers is required".into()),
    })
}

// === field helpers ===

/// A string field. As in Kong, an empty string is refused.
fn s(name: &'static str) -> Field {
    Field::string(name).len_min(1)
}

/// An array of non-empty strings.
fn strs(name: &'static str) -> Field {
    Field::array(name, s("element"))
}

/// An array whose items are each one of `values`.
fn one_of_strs(name: &'static str, values: &'static [&'static str]) -> Field {
    Field::array(name, s("element").one_of(values))
}

fn boolean(name: &'static str, default: bool) -> Field {
    Field::boolean(name).default(json!(default))
}

fn number(name: &'static str, default: Value) -> Field {
    Field::number(name).default(default)
}

fn port(name: &'static str, default: u16) -> Field {
    Field::integer(name).default(json!(default)).between(0, 65535)
}

fn timeout(name: &'static str, default: u32) -> Field {
    Field::integer(name).default(json!(default)).between(0, MAX_TIMEOUT)
}

/// A URL, checked as Kong's `typedefs.url` does.
fn url(name: &'static str) -> Field {
    s(name).check(check_url)
}

fn urls(name: &'static str) -> Field {
    Field::array(name, url("element"))
}

fn header_name(name: &'static str) -> Field {
    s(name).check(check_header_name)
}

fn header_names(name: &'static str) -> Field {
    Field::array(name, header_name("element"))
}

/// A `*_header` field: a header name or one of the `authorization:<scheme>` forms.
fn header_target(name: &'static str) -> Field {
    s(name).check(check_header_target)
}

/// A deprecated alias that Kong translates to another field: refused with `why` (see the module docs).
fn renamed(field: Field, why: gatehouse_core::schema::Check) -> Field {
    field.shorthand().check(why)
}

fn moved(to: &str) -> Result<(), String> {
    Err(format!("deprecated alias of config.{to}, which Gatehouse does not translate; set config.{to} instead"))
}

// === checks ===

/// Kong's `typedefs.url`: the value must parse with a host and a scheme (checked in that order, with
/// Kong's messages). Any scheme is allowed.
fn check_url(v: &Value) -> Result<(), String> {
    let s = v.as_str().unwrap_or_default();
    if s.starts_with("{vault://") {
        return Err("vault references are not supported yet".into());
    }
    let s = s.split('#').next().unwrap_or_default();
    let (scheme, rest) = match s.split_once(':') {
        Some((scheme, rest)) if is_scheme(scheme) => (Some(scheme), rest),
        _ => (None, s),
    };
    let host = rest.strip_prefix("//").and_then(|r| {
        let authority = r.split(['/', '?']).next().unwrap_or_default();
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        // A trailing `:port` (anything without `:` or `]`) is not part of the host.
        let host = match host_port.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => h,
            _ => host_port,
        };
        (!host.is_empty()).then_some(host)
    });
    if host.is_none() {
        return Err("missing host in url".into());
    }
    if scheme.is_none() {
        return Err("missing scheme in url".into());
    }
    Ok(())
}

fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Kong's `typedefs.header_name` rule.
fn check_header_name(v: &Value) -> Result<(), String> {
    let s = v.as_str().unwrap_or_default();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        Ok(())
    } else {
        Err(format!("bad header name '{s}', allowed characters are A-Z, a-z, 0-9, '_', and '-'"))
    }
}

/// A `*_header` value. Kong matches the `authorization:<scheme>` forms exactly (lower case); anything
/// else is used as the header name.
fn check_header_target(v: &Value) -> Result<(), String> {
    let s = v.as_str().unwrap_or_default();
    if AUTHORIZATION_FORMS.contains(&s) {
        return Ok(());
    }
    check_header_name(v).map_err(|e| format!("{e}; or one of: {}", AUTHORIZATION_FORMS.join(", ")))
}

/// Kong's `typedefs.path`, used for cookie paths.
fn check_cookie_path(v: &Value) -> Result<(), String> {
    let s = v.as_str().unwrap_or_default();
    if !s.starts_with('/') {
        return Err("should start with: /".into());
    }
    if s.contains("//") {
        return Err("must not have empty segments".into());
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~' | b'/' | b'%')) {
        return Err(format!("invalid path: '{s}' (characters outside of the reserved list of RFC 3986 found)"));
    }
    let bytes = s.as_bytes();
    for (i, _) in s.match_indices('%') {
        let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        if hex.is_none() {
            let end = (i + 3).min(s.len());
            return Err(format!("invalid url-encoded value: '{}'", &s[i..end]));
        }
    }
    Ok(())
}

/// Kong's `typedefs.host`: a name or an IP address, without a port.
fn check_host(v: &Value) -> Result<(), String> {
    let s = v.as_str().unwrap_or_default();
    let bracketed = s.strip_prefix('[').and_then(|r| r.strip_suffix(']'));
    if s.parse::<Ipv4Addr>().is_ok()
        || s.parse::<Ipv6Addr>().is_ok()
        || bracketed.is_some_and(|r| r.parse::<Ipv6Addr>().is_ok())
    {
        return Ok(());
    }
    if s.contains(':') {
        return Err("must not have a port".into());
    }
    if s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')) {
        Ok(())
    } else {
        Err(format!("invalid value: {s}"))
    }
}

fn check_http_version(v: &Value) -> Result<(), String> {
    match v.as_f64() {
        Some(n) if n == 1.0 || n == 1.1 => Ok(()),
        _ => Err("must be 1.0 or 1.1".into()),
    }
}

fn non_empty(v: &Value) -> Result<(), String> {
    match v {
        Value::Array(a) if a.is_empty() => Err("length must be at least 1".into()),
        _ => Ok(()),
    }
}

/// Lists matched by index must be the same length; a missing list counts as empty.
fn same_len(m: &Map<String, Value>, a: &str, b: &str) -> Result<(), String> {
    let len = |k: &str| m.get(k).and_then(Value::as_array).map_or(0, Vec::len);
    let (la, lb) = (len(a), len(b));
    if la == lb { Ok(()) } else { Err(format!("{a} and {b} must have the same number of elements ({la} and {lb})")) }
}

fn str_at<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

/// Kong's rule: a TLS client authentication method needs the client certificate.
fn check_tls_client_auth(m: &Map<String, Value>) -> Result<(), String> {
    let uses = |method: &str| {
        m.get("client_auth").and_then(Value::as_array).is_some_and(|a| a.iter().any(|v| v.as_str() == Some(method)))
            || ["token_endpoint_auth_method", "introspection_endpoint_auth_method", "revocation_endpoint_auth_method"]
                .iter()
                .any(|k| str_at(m, k) == Some(method))
    };
    let tls = uses("tls_client_auth") || uses("self_signed_tls_client_auth");
    if tls && m.get("tls_client_auth_cert_id").is_none_or(Value::is_null) {
        return Err("tls_client_auth_cert_id is required when tls client auth is enabled".into());
    }
    Ok(())
}

/// Kong's rule: with proof of possession on (and the validation not switched off), only the auth
/// methods that can carry a bound token are allowed.
fn check_pop_auth_methods(m: &Map<String, Value>) -> Result<(), String> {
    let on = |k: &str| str_at(m, k).is_some_and(|v| v != "off");
    if !(on("proof_of_possession_mtls") || on("proof_of_possession_dpop")) {
        return Ok(());
    }
    if m.get("proof_of_possession_auth_methods_validation") != Some(&Value::Bool(true)) {
        return Ok(());
    }
    let compatible = m
        .get("auth_methods")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().all(|v| matches!(v.as_str(), Some("bearer" | "introspection" | "session"))));
    if compatible {
        Ok(())
    } else {
        Err("mTLS-proof-of-possession or Demonstrating Proof-of-Possession (DPoP) only supports 'bearer', \
             'introspection', 'session' auth methods when proof_of_possession_auth_methods_validation is set to true."
            .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::schema::{FieldErrors, Mode, Type};

    const ISSUER: &str = "https://idp.example/realms/x";

    fn validate(input: Value) -> Result<Value, FieldErrors> {
        schema().validate(&input, Mode::default())
    }

    fn config(extra: Value) -> Value {
        let mut cfg = json!({ "issuer": ISSUER });
        if let (Value::Object(c), Value::Object(e)) = (&mut cfg, extra) {
            c.extend(e);
        }
        cfg
    }

    #[track_caller]
    fn errors(extra: Value) -> Vec<String> {
        validate(config(extra)).expect_err("should be refused").lines().collect()
    }

    #[test]
    fn a_minimal_config_gets_kongs_defaults() {
        let out = validate(json!({ "issuer": ISSUER })).unwrap();
        assert_eq!(out["issuer"], ISSUER);
        assert_eq!(
            out["auth_methods"],
            json!([
                "password",
                "client_credentials",
                "authorization_code",
                "bearer",
                "introspection",
                "userinfo",
                "kong_oauth2",
                "refresh_token",
                "session"
            ])
        );
        assert_eq!(out["bearer_token_param_type"], json!(["header", "query", "body"]));
        assert_eq!(out["password_param_type"], json!(["header", "query", "body"]));
        assert_eq!(out["consumer_by"], json!(["username", "custom_id"]));
        assert_eq!(out["logout_methods"], json!(["POST", "DELETE"]));
        assert_eq!(out["upstream_access_token_header"], "authorization:bearer");
        assert_eq!(out["downstream_access_token_header"], Value::Null);
        assert_eq!(out["upstream_headers"], Value::Null);
        assert_eq!(out["session_cookie_name"], "session");
        assert_eq!(out["session_cookie_same_site"], "Lax");
        assert_eq!(out["authorization_cookie_same_site"], "Default");
        assert_eq!(out["session_rolling_timeout"], 3600);
        assert_eq!(out["cache_ttl"], 3600);
        assert_eq!(out["leeway"], 0);
        assert_eq!(out["scopes"], json!(["openid"]));
        assert_eq!(out["credential_claim"], json!(["sub"]));
        assert_eq!(out["ignore_signature"], json!([]));
        assert_eq!(out["hide_credentials"], true);
        assert_eq!(out["ssl_verify"], true);
        assert_eq!(out["http_version"], 1.1);
        assert_eq!(out["redis"]["port"], 6379);
        assert_eq!(out["token_exchange"], Value::Null);
        assert_eq!(out["client_secret"], Value::Null);
        // Every field is present, and the dropped aliases are not.
        let obj = out.as_object().unwrap();
        assert_eq!(obj.len(), schema().fields.iter().filter(|f| !f.shorthand).count());
        assert!(!obj.contains_key("session_cookie_lifetime"));
    }

    #[test]
    fn issuer_is_required() {
        let errs: Vec<String> = validate(json!({})).unwrap_err().lines().collect();
        assert_eq!(errs, ["issuer: required field missing"]);
        let errs: Vec<String> = validate(json!({ "issuer": null })).unwrap_err().lines().collect();
        assert_eq!(errs, ["issuer: required field missing"]);
    }

    #[test]
    fn url_fields_need_a_scheme_and_a_host() {
        assert_eq!(errors(json!({ "issuer": "idp.example/realms/x" })), ["issuer: missing host in url"]);
        assert_eq!(errors(json!({ "issuer": "//idp.example/realms/x" })), ["issuer: missing scheme in url"]);
        assert_eq!(errors(json!({ "issuer": "https://" })), ["issuer: missing host in url"]);
        assert_eq!(errors(json!({ "issuer": "" })), ["issuer: length must be at least 1"]);
        assert_eq!(
            errors(json!({ "redirect_uri": ["https://a.example/cb", "cb"] })),
            ["redirect_uri[1]: missing host in url"]
        );
        for ok in ["http://127.0.0.1:8080/realms/x", "https://user@[::1]:8443", "https://idp.example?x=1"] {
            validate(config(json!({ "token_endpoint": ok }))).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn values_outside_the_allowed_lists_are_refused() {
        assert_eq!(
            errors(json!({ "auth_methods": ["bearer", "magic"] })),
            [format!("auth_methods[1]: expected one of: {}", GRANTS.join(", "))]
        );
        assert_eq!(
            errors(json!({ "session_cookie_same_site": "lax" })),
            ["session_cookie_same_site: expected one of: Strict, Lax, None, Default"]
        );
        assert_eq!(
            errors(json!({ "client_auth": ["basic"] })),
            [format!("client_auth[0]: expected one of: {}", CLIENT_AUTH.join(", "))]
        );
        assert_eq!(errors(json!({ "http_version": 2 })), ["http_version: must be 1.0 or 1.1"]);
        assert_eq!(errors(json!({ "redis": { "port": 70000 } })), ["redis.port: value should be between 0 and 65535"]);
        assert_eq!(errors(json!({ "bogus": 1 })), ["bogus: unknown field"]);
    }

    #[test]
    fn form_values_are_coerced_to_lists_and_numbers() {
        let form = Mode { coerce_strings: true };
        let input = config(json!({ "auth_methods": "password", "leeway": "5", "verify_nonce": "false" }));
        let out = schema().validate(&input, form).unwrap();
        assert_eq!(out["auth_methods"], json!(["password"]));
        assert_eq!(out["leeway"], 5.0);
        assert_eq!(out["verify_nonce"], false);
        assert!(validate(config(json!({ "auth_methods": "password" }))).is_err(), "JSON bodies are not coerced");
    }

    #[test]
    fn header_claims_and_names_must_pair_up() {
        assert_eq!(
            errors(json!({ "upstream_headers_claims": ["sub", "email"], "upstream_headers_names": ["x-sub"] })),
            [
                "@entity: upstream_headers_claims and upstream_headers_names must have the same number of elements (2 and 1)"
            ]
        );
        assert_eq!(
            errors(json!({ "downstream_headers_names": ["x-sub"] })),
            [
                "@entity: downstream_headers_claims and downstream_headers_names must have the same number of elements (0 and 1)"
            ]
        );
        assert_eq!(
            errors(json!({ "introspection_headers_names": ["x-a"], "introspection_headers_values": [] })),
            [
                "@entity: introspection_headers_names and introspection_headers_values must have the same number of elements (1 and 0)"
            ]
        );
        let out = validate(config(json!({
            "upstream_headers_claims": ["sub"],
            "upstream_headers_names": ["x-sub"],
        })))
        .unwrap();
        assert_eq!(out["upstream_headers_names"], json!(["x-sub"]));
    }

    #[test]
    fn claim_header_mappings_need_a_header_and_a_path() {
        let out =
            validate(config(json!({ "upstream_headers": [{ "header": "X-User", "path": ["preferred_username"] }] })))
                .unwrap();
        assert_eq!(
            out["upstream_headers"],
            json!([{ "header": "X-User", "path": ["preferred_username"], "encoding": "kong" }])
        );
        assert_eq!(
            errors(
                json!({ "downstream_headers": [{ "path": [] }, { "header": "x y", "path": ["a"], "encoding": "csv" }] })
            ),
            [
                "downstream_headers[0].header: required field missing",
                "downstream_headers[0].path: length must be at least 1",
                "downstream_headers[1].header: bad header name 'x y', allowed characters are A-Z, a-z, 0-9, '_', and '-'",
                "downstream_headers[1].encoding: expected one of: kong, json, list",
            ]
        );
    }

    #[test]
    fn header_fields_take_a_header_name_or_an_authorization_form() {
        let out = validate(config(json!({
            "upstream_access_token_header": "x-access-token",
            "upstream_id_token_header": "authorization:basic",
            "downstream_access_token_header": "authorization:dpop",
        })))
        .unwrap();
        assert_eq!(out["upstream_access_token_header"], "x-access-token");
        // An explicit null switches the default off, as in Kong.
        let out = validate(config(json!({ "upstream_access_token_header": null }))).unwrap();
        assert_eq!(out["upstream_access_token_header"], Value::Null);
        assert_eq!(
            errors(json!({ "upstream_access_token_header": "Authorization:Bearer" })),
            [
                "upstream_access_token_header: bad header name 'Authorization:Bearer', allowed characters are A-Z, a-z, 0-9, \
             '_', and '-'; or one of: authorization:bearer, authorization:basic, authorization:dpop"
            ]
        );
    }

    #[test]
    fn cookie_paths_and_hosts_follow_kongs_typedefs() {
        assert_eq!(errors(json!({ "session_cookie_path": "app" })), ["session_cookie_path: should start with: /"]);
        assert_eq!(
            errors(json!({ "authorization_cookie_path": "/a//b" })),
            ["authorization_cookie_path: must not have empty segments"]
        );
        assert_eq!(
            errors(json!({ "session_cookie_path": "/a%zz" })),
            ["session_cookie_path: invalid url-encoded value: '%zz'"]
        );
        assert_eq!(errors(json!({ "redis": { "host": "redis:6379" } })), ["redis.host: must not have a port"]);
        validate(config(json!({ "redis": { "host": "::1" }, "session_cookie_path": "/a%20b" }))).unwrap();
    }

    #[test]
    fn tls_client_auth_needs_a_certificate() {
        assert_eq!(
            errors(json!({ "token_endpoint_auth_method": "tls_client_auth" })),
            ["@entity: tls_client_auth_cert_id is required when tls client auth is enabled"]
        );
        validate(config(json!({
            "client_auth": ["self_signed_tls_client_auth"],
            "tls_client_auth_cert_id": "8f3c2c1e-5a4b-4c5d-9e6f-7a8b9c0d1e2f",
        })))
        .unwrap();
    }

    #[test]
    fn proof_of_possession_limits_the_auth_methods() {
        let errs = errors(json!({ "proof_of_possession_dpop": "strict" }));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("@entity: mTLS-proof-of-possession or Demonstrating"), "{errs:?}");
        validate(config(json!({ "proof_of_possession_dpop": "optional", "auth_methods": ["bearer", "session"] })))
            .unwrap();
        validate(config(json!({
            "proof_of_possession_mtls": "strict",
            "proof_of_possession_auth_methods_validation": false,
        })))
        .unwrap();
    }

    #[test]
    fn optional_records_are_checked_only_when_given() {
        assert_eq!(
            errors(json!({ "token_exchange": {} })),
            ["token_exchange.@entity: subject_token_issuers is required"]
        );
        let out =
            validate(config(json!({ "token_exchange": { "subject_token_issuers": [{ "issuer": "https://other" }] } })))
                .unwrap();
        assert_eq!(out["token_exchange"]["cache"]["enabled"], true);
        assert_eq!(out["token_exchange"]["subject_token_issuers"][0]["verify_signature"], false);
        assert_eq!(
            errors(json!({ "proof_of_possession_mtls_from_header": { "certificate_header_name": "x-cert" } })),
            [
                "proof_of_possession_mtls_from_header.@entity: certificate_header_name and ca_certificates are both required \
             to read the client certificate from a header"
            ]
        );
    }

    #[test]
    fn deprecated_aliases_name_their_replacement_and_removed_options_are_ignored() {
        assert_eq!(
            errors(json!({ "session_cookie_lifetime": 600 })),
            ["session_cookie_lifetime: deprecated alias of config.session_rolling_timeout, which Gatehouse does not \
             translate; set config.session_rolling_timeout instead"]
        );
        assert_eq!(
            errors(json!({ "session_redis_host": "r" })),
            ["session_redis_host: deprecated alias of config.redis.host, which Gatehouse does not translate; set \
             config.redis.host instead"]
        );
        let out =
            validate(config(json!({ "session_strategy": "regenerate", "session_cookie_maxsize": 4000 }))).unwrap();
        assert!(out.get("session_strategy").is_none());
        // The consumer claim keeps both of Kong's spellings.
        let out = validate(config(json!({ "consumer_claim": ["sub"] }))).unwrap();
        assert_eq!(out["consumer_claim"], json!(["sub"]));
        assert_eq!(out["consumer_claims"], Value::Null);
    }

    #[test]
    fn credentials_are_marked_secret() {
        let secret = |name: &str| schema().field(name).is_some_and(|f| f.secret);
        for name in ["client_id", "client_secret", "session_secret", "introspection_headers_values"] {
            assert!(secret(name), "{name}");
        }
        let Some(Type::Record(redis)) = schema().field("redis").map(|f| &f.ty) else { panic!("redis is a record") };
        assert!(redis.field("password").is_some_and(|f| f.secret));
        assert!(!secret("issuer"));
    }

    /// Kong 3.15's config fields, from its published JSON schema.
    const KONG_3_15: &str = "
        anonymous audience audience_claim audience_required auth_methods authenticated_groups_claim
        authorization_cookie_domain authorization_cookie_http_only authorization_cookie_name
        authorization_cookie_path authorization_cookie_same_site authorization_cookie_secure authorization_endpoint
        authorization_query_args_client authorization_query_args_names authorization_query_args_values
        authorization_rolling_timeout bearer_token_cookie_name bearer_token_header_name bearer_token_param_type
        by_username_ignore_case cache_introspection cache_token_exchange cache_tokens cache_tokens_salt cache_ttl
        cache_ttl_max cache_ttl_min cache_ttl_neg cache_ttl_resurrect cache_user_info claims_forbidden client_alg
        client_arg client_auth client_credentials_param_type client_id client_jwk client_secret cluster_cache_items
        cluster_cache_redis cluster_cache_strategy consumer_by consumer_claims consumer_groups_claim
        consumer_groups_optional consumer_optional credential_claim disable_session discovery_headers_names
        discovery_headers_values display_errors domains downstream_access_token_header
        downstream_access_token_jwk_header downstream_headers downstream_headers_claims downstream_headers_names
        downstream_id_token_header downstream_id_token_jwk_header downstream_introspection_header
        downstream_introspection_jwt_header downstream_refresh_token_header downstream_session_id_header
        downstream_user_info_header downstream_user_info_jwt_header dpop_proof_lifetime dpop_use_nonce
        enable_hs_signatures end_session_endpoint expose_error_code extra_jwks_uris forbidden_destroy_session
        forbidden_error_message forbidden_redirect_uri groups_claim groups_required hide_credentials http_proxy
        http_proxy_authorization http_version https_proxy https_proxy_authorization id_token_param_name
        id_token_param_type ignore_signature introspect_jwt_tokens introspection_accept introspection_check_active
        introspection_endpoint introspection_endpoint_auth_method introspection_headers_client
        introspection_headers_names introspection_headers_values introspection_hint introspection_post_args_client
        introspection_post_args_client_headers introspection_post_args_names introspection_post_args_values
        introspection_token_param_name issuer issuers_allowed jwks_endpoint jwt_session_claim jwt_session_cookie
        keepalive leeway login_action login_methods login_redirect_mode login_redirect_uri login_tokens
        logout_methods logout_post_arg logout_query_arg logout_redirect_uri logout_revoke
        logout_revoke_access_token logout_revoke_refresh_token logout_uri_suffix max_age
        mtls_introspection_endpoint mtls_revocation_endpoint mtls_token_endpoint no_proxy password_param_type
        preserve_query_args principals proof_of_possession_auth_methods_validation proof_of_possession_dpop
        proof_of_possession_mtls proof_of_possession_mtls_from_header pushed_authorization_request_endpoint
        pushed_authorization_request_endpoint_auth_method redirect_uri redis rediscovery_lifetime
        refresh_token_param_name refresh_token_param_type refresh_tokens require_proof_key_for_code_exchange
        require_pushed_authorization_requests require_signed_request_object resolve_distributed_claims
        response_mode response_type reverify revocation_endpoint revocation_endpoint_auth_method
        revocation_token_param_name roles_claim roles_required run_on_preflight scopes scopes_claim scopes_required
        search_user_info session_absolute_timeout session_audience session_bind session_cookie_domain
        session_cookie_http_only session_cookie_name session_cookie_path session_cookie_same_site
        session_cookie_secure session_enforce_same_subject session_hash_storage_key session_hash_subject
        session_idling_timeout session_memcached_host session_memcached_port session_memcached_prefix
        session_memcached_socket session_memcached_ssl session_memcached_ssl_verify session_remember
        session_remember_absolute_timeout session_remember_cookie_name session_remember_rolling_timeout
        session_request_headers session_response_headers session_rolling_timeout session_secret session_storage
        session_store_metadata ssl_verify timeout tls_client_auth_cert_id tls_client_auth_ssl_verify
        token_cache_key_include_scope token_endpoint token_endpoint_auth_method token_exchange
        token_exchange_endpoint token_headers_client token_headers_grants token_headers_names token_headers_prefix
        token_headers_replay token_headers_values token_post_args_client token_post_args_names
        token_post_args_values unauthorized_destroy_session unauthorized_error_message unauthorized_redirect_uri
        unexpected_redirect_uri upstream_access_token_header upstream_access_token_jwk_header upstream_headers
        upstream_headers_claims upstream_headers_names upstream_id_token_header upstream_id_token_jwk_header
        upstream_introspection_header upstream_introspection_jwt_header upstream_refresh_token_header
        upstream_session_id_header upstream_user_info_header upstream_user_info_jwt_header userinfo_accept
        userinfo_endpoint userinfo_headers_client userinfo_headers_names userinfo_headers_values
        userinfo_query_args_client userinfo_query_args_names userinfo_query_args_values using_pseudo_issuer
        verify_claims verify_nonce verify_parameters verify_signature
    ";

    #[test]
    fn every_kong_field_is_in_the_schema_once() {
        let fields: Vec<&str> = schema().fields.iter().filter(|f| !f.shorthand).map(|f| f.name).collect();
        let kong: Vec<&str> = KONG_3_15.split_whitespace().collect();
        assert_eq!(kong.len(), 234);
        for name in &kong {
            assert!(fields.contains(name), "missing {name}");
        }
        let mut extra: Vec<&str> = fields.iter().copied().filter(|f| !kong.contains(f)).collect();
        extra.sort_unstable();
        assert_eq!(
            extra,
            ["consumer_claim", "max_added_header_size", "max_added_headers_size"],
            "fields Kong 3.15 does not list"
        );
        let mut sorted = fields.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), fields.len(), "a field is declared twice");
    }

    #[test]
    fn every_field_is_in_the_compatibility_doc() {
        let doc = include_str!("../../../docs/compatibility.md");
        for f in &schema().fields {
            assert!(doc.contains(&format!("| `{}` |", f.name)), "docs/compatibility.md lacks a row for `{}`", f.name);
        }
    }
}
