//! The identity provider's endpoints the plugin calls on a request's behalf: the token endpoint
//! (password, client_credentials, refresh_token grants), introspection (RFC 7662), userinfo,
//! revocation (RFC 7009) and pushed authorization requests (RFC 9126).

use super::client::{IdpError, IdpHttp};
use super::client_auth::{self, Client, ClientAuth};
use http::{HeaderMap, HeaderName};
use serde_json::{Map, Value};
use std::sync::Arc;

/// A token endpoint answer (RFC 6749 §5.1).
#[derive(Clone, Debug)]
pub struct TokenSet {
    /// `access_token`. The tokens are shared, not copied, by every request a cached grant serves.
    pub access_token: Arc<str>,
    /// `id_token`, when the IdP sent one.
    pub id_token: Option<Arc<str>>,
    /// `refresh_token`, when the IdP sent one.
    pub refresh_token: Option<Arc<str>>,
    /// When the access token expires (Unix seconds), from `expires_in`.
    pub expires_at: Option<i64>,
    /// The whole answer, for `login_tokens: tokens` and the token headers.
    pub raw: Map<String, Value>,
    /// The answer's headers that were asked for (`token_headers_replay`), as received.
    pub headers: HeaderMap,
}

/// Why a grant failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GrantError {
    /// The IdP refused the grant (wrong password, revoked refresh token): the client's fault, 401.
    #[error("token endpoint refused the grant: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        /// HTTP status of the answer.
        status: u16,
        /// The OAuth `error` code.
        error: String,
        /// The OAuth `error_description`, if any.
        description: Option<String>,
    },
    /// The IdP could not be asked or gave no usable answer: not the client's fault.
    #[error(transparent)]
    Idp(#[from] IdpError),
    /// The plugin's client configuration cannot authenticate.
    #[error(transparent)]
    ClientAuth(#[from] client_auth::ClientAuthError),
    /// The IdP's answer came, but a check of `claims.rs` refuses it (an introspection answer
    /// past its `exp`): the client's fault, 401 with a fixed description.
    #[error(transparent)]
    Rejected(#[from] crate::claims::Refusal),
}

/// Calls the token endpoint with `params` (which include `grant_type`), keeping the answer's
/// headers named in `keep`.
#[allow(clippy::too_many_arguments)]
pub async fn token(
    http: &IdpHttp,
    endpoint: &str,
    client: &Client,
    method: ClientAuth,
    mut params: Vec<(String, String)>,
    headers: &[(String, String)],
    keep: &[HeaderName],
    now: i64,
) -> Result<TokenSet, GrantError> {
    let mut req = http.post(endpoint).header("accept", "application/json");
    for (n, v) in headers {
        req = req.header(n.as_str(), v.as_str());
    }
    let req = client_auth::apply(client, method, endpoint, now, req, &mut params)?;
    let (status, body, kept) =
        http.json_keeping("token endpoint", req.form(&params), keep).await.map_err(|e| match e {
            // A non-JSON 4xx is still a refusal.
            IdpError::Invalid { reason, .. } if reason.starts_with("status 4") => {
                GrantError::Refused { status: 400, error: "invalid_grant".into(), description: None }
            }
            e => GrantError::Idp(e),
        })?;
    if (400..500).contains(&status) {
        let error = body.get("error").and_then(Value::as_str).unwrap_or("invalid_grant").to_string();
        let description = body.get("error_description").and_then(Value::as_str).map(str::to_string);
        return Err(GrantError::Refused { status, error, description });
    }
    if !(200..300).contains(&status) {
        return Err(IdpError::Status { what: "token endpoint", url: endpoint.into(), status }.into());
    }
    let Value::Object(raw) = body else {
        return Err(invalid(endpoint, "not a JSON object").into());
    };
    let access_token = raw
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid(endpoint, "no access_token"))?
        .into();
    let text = |k: &str| raw.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(Arc::from);
    let expires_in = raw.get("expires_in").and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok()));
    Ok(TokenSet {
        id_token: text("id_token"),
        refresh_token: text("refresh_token"),
        // Saturating: `expires_in` is the IdP's number (`1e300` casts to i64::MAX).
        expires_at: expires_in.map(|s| now.saturating_add(s as i64)),
        access_token,
        raw,
        headers: kept,
    })
}

fn invalid(url: &str, reason: &str) -> IdpError {
    IdpError::Invalid { what: "token endpoint", url: url.into(), reason: reason.into() }
}

/// The longest `request_uri` taken from a pushed authorization request's answer: it goes into
/// the browser's `Location`, so an IdP cannot make the redirect arbitrarily large.
pub const MAX_REQUEST_URI: usize = 2048;

/// A pushed authorization request's answer (RFC 9126 §2.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// `request_uri`: non-empty, at most [`MAX_REQUEST_URI`] bytes of printable ASCII (no
    /// space, no control character), as an IdP's value bound for a `Location` must be.
    pub request_uri: String,
    /// `expires_in`, when the IdP sent a number.
    pub expires_in: Option<i64>,
}

/// Pushes the authorization request `form` (which carries its own `client_id`) to `endpoint`,
/// authenticated as `client` with `method`. 200 or 201 with a JSON `request_uri` is success
/// (RFC 9126 says 201; Kong also takes 200); a 4xx is the IdP refusing the request.
pub async fn push_authorization(
    http: &IdpHttp,
    endpoint: &str,
    client: &Client,
    method: ClientAuth,
    mut form: Vec<(String, String)>,
    now: i64,
) -> Result<Pushed, GrantError> {
    const WHAT: &str = "pushed authorization request endpoint";
    let mut auth = Vec::new();
    let req = http.post(endpoint).header("accept", "application/json");
    let req = client_auth::apply(client, method, endpoint, now, req, &mut auth)?;
    // The request already names its client: a method's own `client_id` would send it twice,
    // and a parameter may appear once (RFC 6749 §3.1).
    form.extend(auth.into_iter().filter(|(k, _)| k != "client_id"));
    let (status, url, body) = http.send(WHAT, req.form(&form)).await?;
    let parsed = serde_json::from_slice::<Value>(&body).ok();
    if (400..500).contains(&status) {
        let text = |k: &str| parsed.as_ref().and_then(|b| b.get(k)).and_then(Value::as_str).map(str::to_string);
        let error = text("error").unwrap_or_else(|| "invalid_request".into());
        return Err(GrantError::Refused { status, error, description: text("error_description") });
    }
    if status != 200 && status != 201 {
        return Err(IdpError::Status { what: WHAT, url, status }.into());
    }
    let bad = |reason: &str| IdpError::Invalid { what: WHAT, url: url.clone(), reason: reason.into() };
    let Some(Value::Object(answer)) = parsed else {
        return Err(bad("not a JSON object").into());
    };
    let request_uri = match answer.get("request_uri") {
        Some(Value::String(u)) if u.is_empty() => return Err(bad("empty request_uri").into()),
        Some(Value::String(u)) if u.len() > MAX_REQUEST_URI => return Err(bad("request_uri too long").into()),
        Some(Value::String(u)) if !u.bytes().all(|b| b.is_ascii_graphic()) => {
            return Err(bad("request_uri holds a space, a control character or non-ASCII").into());
        }
        Some(Value::String(u)) => u.clone(),
        _ => return Err(bad("no request_uri").into()),
    };
    let expires_in = answer.get("expires_in").and_then(Value::as_f64).map(|s| s as i64);
    Ok(Pushed { request_uri, expires_in })
}

/// What to send with a revocation call (RFC 7009), from the plugin config.
pub struct RevocationRequest<'a> {
    /// The endpoint.
    pub endpoint: &'a str,
    /// The client the token was issued to.
    pub client: &'a Client,
    /// `revocation_endpoint_auth_method`, else the client's.
    pub method: ClientAuth,
    /// `revocation_token_param_name` (`token`).
    pub param_name: &'a str,
}

/// Revokes `token`, sent with `token_type_hint` (`access_token` or `refresh_token`). Any 2xx
/// is success (RFC 7009 §2.2 says 200; Kong also takes 204); the answer's body is not read
/// beyond the usual cap.
pub async fn revoke(
    http: &IdpHttp,
    r: &RevocationRequest<'_>,
    token: &str,
    hint: &str,
    now: i64,
) -> Result<(), GrantError> {
    let mut form = vec![(r.param_name.to_string(), token.to_string()), ("token_type_hint".into(), hint.into())];
    let req = http.post(r.endpoint).header("accept", "application/json");
    let req = client_auth::apply(r.client, r.method, r.endpoint, now, req, &mut form)?;
    let (status, url, body) = http.send("revocation endpoint", req.form(&form)).await?;
    if (200..300).contains(&status) {
        return Ok(());
    }
    if (400..500).contains(&status) {
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let error = body.get("error").and_then(Value::as_str).unwrap_or("invalid_request").to_string();
        let description = body.get("error_description").and_then(Value::as_str).map(str::to_string);
        return Err(GrantError::Refused { status, error, description });
    }
    Err(IdpError::Status { what: "revocation endpoint", url, status }.into())
}

/// An introspection or userinfo answer: the claims, and the JWT when the IdP answered in that form.
#[derive(Clone, Debug)]
pub struct ClaimsAnswer {
    /// The claims (for introspection, the RFC 7662 members).
    pub claims: Map<String, Value>,
    /// The answer as a JWT (`application/jwt`, `application/token-introspection+jwt`).
    pub jwt: Option<String>,
}

/// What to send with an introspection call, from the plugin config.
pub struct IntrospectionRequest<'a> {
    /// The endpoint.
    pub endpoint: &'a str,
    /// The client and its auth method for this endpoint.
    pub client: &'a Client,
    /// `introspection_endpoint_auth_method`, else the client's.
    pub method: ClientAuth,
    /// `introspection_token_param_name` (`token`).
    pub param_name: &'a str,
    /// `introspection_hint` (`access_token`), sent as `token_type_hint`.
    pub hint: Option<&'a str>,
    /// `introspection_accept`.
    pub accept: &'a str,
    /// `introspection_headers_names`/`_values`.
    pub headers: &'a [(String, String)],
    /// `introspection_post_args_names`/`_values`.
    pub post_args: &'a [(String, String)],
}

/// Calls the introspection endpoint for `token`. The caller decides what `active` means.
pub async fn introspect(
    http: &IdpHttp,
    r: &IntrospectionRequest<'_>,
    token: &str,
    now: i64,
) -> Result<ClaimsAnswer, GrantError> {
    let mut form = vec![(r.param_name.to_string(), token.to_string())];
    if let Some(h) = r.hint {
        form.push(("token_type_hint".into(), h.into()));
    }
    form.extend(r.post_args.iter().cloned());
    let mut req = http.post(r.endpoint).header("accept", r.accept);
    for (n, v) in r.headers {
        req = req.header(n.as_str(), v.as_str());
    }
    let req = client_auth::apply(r.client, r.method, r.endpoint, now, req, &mut form)?;
    let resp = claims_answer(http, "introspection", r.endpoint, req.form(&form)).await?;
    Ok(resp)
}

/// What to send with a userinfo call.
pub struct UserinfoRequest<'a> {
    /// The endpoint.
    pub endpoint: &'a str,
    /// `userinfo_accept`.
    pub accept: &'a str,
    /// `userinfo_headers_names`/`_values`.
    pub headers: &'a [(String, String)],
    /// `userinfo_query_args_names`/`_values`.
    pub query: &'a [(String, String)],
}

/// Calls the userinfo endpoint with `access_token`. A 401/403 answer means the token is not valid.
pub async fn userinfo(http: &IdpHttp, r: &UserinfoRequest<'_>, access_token: &str) -> Result<ClaimsAnswer, GrantError> {
    let mut req = http.get(r.endpoint).bearer_auth(access_token).header("accept", r.accept);
    for (n, v) in r.headers {
        req = req.header(n.as_str(), v.as_str());
    }
    if !r.query.is_empty() {
        req = req.query(r.query);
    }
    claims_answer(http, "userinfo", r.endpoint, req).await
}

async fn claims_answer(
    http: &IdpHttp,
    what: &'static str,
    url: &str,
    req: reqwest::RequestBuilder,
) -> Result<ClaimsAnswer, GrantError> {
    let (status, _, body) = http.send(what, req).await?;
    if status == 400 || status == 401 || status == 403 {
        return Err(GrantError::Refused { status, error: "invalid_token".into(), description: None });
    }
    if !(200..300).contains(&status) {
        return Err(IdpError::Status { what, url: url.into(), status }.into());
    }
    let bad = |reason: &str| IdpError::Invalid { what, url: url.into(), reason: reason.into() };
    if let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(&body) {
        return Ok(ClaimsAnswer { claims, jwt: None });
    }
    // A JWT answer. Its claims are read without verifying the signature: it came straight from
    // the IdP over the connection the plugin opened (the same trust as a JSON answer).
    let text = std::str::from_utf8(&body).map_err(|_| bad("not JSON or a JWT"))?.trim();
    let jwt = gatehouse_jose::UnverifiedJwt::parse(text).map_err(|_| bad("not JSON or a JWT"))?;
    let mut claims = jwt.unverified_claims().map_err(|_| bad("JWT payload is not a JSON object"))?;
    // RFC 9701 wraps the introspection members in `token_introspection`.
    if let Some(Value::Object(inner)) = claims.remove("token_introspection") {
        claims = inner;
    }
    Ok(ClaimsAnswer { claims, jwt: Some(text.to_string()) })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Reads one request, head and the body its `content-length` announces, as text.
    pub(crate) async fn read_request(conn: &mut tokio::net::TcpStream) -> String {
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = conn.read(&mut buf).await {
            req.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&req).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_string))
                    .and_then(|l| l.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= len {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        String::from_utf8_lossy(&req).to_string()
    }

    /// A server answering one request with `answer`; returns its URL and the request it read.
    async fn server(answer: impl Into<String>) -> (String, tokio::task::JoinHandle<String>) {
        let answer = answer.into();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/revoke", listener.local_addr().expect("addr"));
        let seen = tokio::spawn(async move {
            let Ok((mut conn, _)) = listener.accept().await else { return String::new() };
            let req = read_request(&mut conn).await;
            let _ = conn.write_all(answer.as_bytes()).await;
            req
        });
        (url, seen)
    }

    fn client(auth: ClientAuth) -> Client {
        Client { id: "app".into(), secret: Some("s3cret".into()), auth, key: None, alg: None }
    }

    async fn revoke_at(answer: &'static str, auth: ClientAuth) -> (Result<(), GrantError>, String) {
        let (url, seen) = server(answer).await;
        let http = super::super::client::shared_client(2000, true, false, 1 << 20).expect("client");
        let c = client(auth);
        let r = RevocationRequest { endpoint: &url, client: &c, method: c.auth, param_name: "the_token" };
        let result = revoke(&http, &r, "rt 1", "refresh_token", 1000).await;
        (result, seen.await.expect("served"))
    }

    #[tokio::test]
    async fn revocation_sends_the_named_token_its_hint_and_the_client_auth() {
        let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        let (r, seen) = revoke_at(ok, ClientAuth::SecretPost).await;
        assert!(r.is_ok(), "{r:?}");
        assert!(seen.starts_with("POST /revoke "), "{seen}");
        assert!(
            seen.ends_with("the_token=rt+1&token_type_hint=refresh_token&client_id=app&client_secret=s3cret"),
            "{seen}"
        );
        let (r, seen) = revoke_at("HTTP/1.1 204 No Content\r\n\r\n", ClientAuth::SecretBasic).await;
        assert!(r.is_ok(), "{r:?}");
        assert!(seen.to_ascii_lowercase().contains("authorization: basic "), "{seen}");
    }

    #[tokio::test]
    async fn revocation_refusals_and_failures_are_errors() {
        let refused = "HTTP/1.1 400 Bad Request\r\ncontent-length: 36\r\n\r\n{\"error\":\"unsupported_token_type\"}  ";
        let (r, _) = revoke_at(refused, ClientAuth::SecretPost).await;
        assert!(
            matches!(r, Err(GrantError::Refused { status: 400, ref error, .. }) if error == "unsupported_token_type")
        );
        let garbage = "HTTP/1.1 401 Unauthorized\r\ncontent-length: 5\r\n\r\n<x>{]";
        let (r, _) = revoke_at(garbage, ClientAuth::SecretPost).await;
        assert!(matches!(r, Err(GrantError::Refused { status: 401, ref error, .. }) if error == "invalid_request"));
        let (r, _) = revoke_at("HTTP/1.1 503 Unavailable\r\ncontent-length: 0\r\n\r\n", ClientAuth::SecretPost).await;
        assert!(matches!(r, Err(GrantError::Idp(IdpError::Status { status: 503, .. }))), "{r:?}");
        let (r, _) =
            revoke_at("HTTP/1.1 302 Found\r\nlocation: /x\r\ncontent-length: 0\r\n\r\n", ClientAuth::None).await;
        assert!(matches!(r, Err(GrantError::Idp(IdpError::Status { status: 302, .. }))), "not followed: {r:?}");
    }

    /// An answer with a JSON body.
    fn answer(status: &str, body: &str) -> String {
        format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len())
    }

    async fn push_at(answer: String, auth: ClientAuth, cap: u64) -> (Result<Pushed, GrantError>, String) {
        let (url, seen) = server(answer).await;
        let http = super::super::client::shared_client(2000, true, false, cap).expect("client");
        let c = client(auth);
        let form = vec![("response_type".to_string(), "code".to_string()), ("client_id".into(), "app".into())];
        let result = push_authorization(&http, &url, &c, c.auth, form, 1000).await;
        (result, seen.await.expect("served"))
    }

    #[tokio::test]
    async fn a_pushed_request_sends_the_form_with_one_client_id_and_the_client_auth() {
        let ok = answer("201 Created", r#"{"request_uri":"urn:ietf:params:oauth:request_uri:abc","expires_in":60}"#);
        let (r, seen) = push_at(ok, ClientAuth::SecretPost, 1 << 20).await;
        let pushed = r.expect("pushed");
        assert_eq!(pushed.request_uri, "urn:ietf:params:oauth:request_uri:abc");
        assert_eq!(pushed.expires_in, Some(60));
        assert!(seen.starts_with("POST /revoke "), "{seen}");
        assert!(seen.ends_with("response_type=code&client_id=app&client_secret=s3cret"), "client_id once: {seen}");
        // 200 is taken too (Kong); with Basic the form keeps its own client_id.
        let ok = answer("200 OK", r#"{"request_uri":"urn:x"}"#);
        let (r, seen) = push_at(ok, ClientAuth::SecretBasic, 1 << 20).await;
        assert_eq!(r.expect("pushed"), Pushed { request_uri: "urn:x".into(), expires_in: None });
        assert!(seen.to_ascii_lowercase().contains("authorization: basic "), "{seen}");
        assert!(seen.ends_with("response_type=code&client_id=app"), "{seen}");
    }

    #[tokio::test]
    async fn hostile_pushed_request_answers_are_refused() {
        let invalid = |r: &Result<Pushed, GrantError>| matches!(r, Err(GrantError::Idp(IdpError::Invalid { .. })));
        let long = format!(r#"{{"request_uri":"urn:{}"}}"#, "x".repeat(MAX_REQUEST_URI));
        for body in [
            r#"{"expires_in":60}"#,
            r#"{"request_uri":""}"#,
            r#"{"request_uri":42}"#,
            r#"{"request_uri":"urn:x
Set-Cookie: a=b"}"#,
            r#"{"request_uri":"urn:x y"}"#,
            r#"{"request_uri":"urn:é"}"#,
            r#"["request_uri"]"#,
            "<html>request_uri</html>",
            long.as_str(),
        ] {
            let (r, _) = push_at(answer("201 Created", body), ClientAuth::SecretPost, 1 << 20).await;
            assert!(invalid(&r), "{body}: {r:?}");
        }
        // Larger than the node's cap: refused, whether announced or not.
        let huge = format!(r#"{{"request_uri":"urn:x","pad":"{}"}}"#, "x".repeat(5000));
        let (r, _) = push_at(answer("201 Created", &huge), ClientAuth::SecretPost, 1000).await;
        assert!(matches!(r, Err(GrantError::Idp(IdpError::TooLarge { .. }))), "{r:?}");
    }

    #[tokio::test]
    async fn pushed_request_refusals_are_the_clients_and_failures_the_idps() {
        let refused = answer("400 Bad Request", r#"{"error":"invalid_request_object","error_description":"bad"}"#);
        let (r, _) = push_at(refused, ClientAuth::SecretPost, 1 << 20).await;
        assert!(
            matches!(r, Err(GrantError::Refused { status: 400, ref error, .. }) if error == "invalid_request_object"),
            "{r:?}"
        );
        let (r, _) = push_at(answer("401 Unauthorized", "<x>"), ClientAuth::SecretPost, 1 << 20).await;
        assert!(matches!(r, Err(GrantError::Refused { status: 401, ref error, .. }) if error == "invalid_request"));
        for status in ["503 Unavailable", "204 No Content", "302 Found"] {
            let (r, _) = push_at(answer(status, ""), ClientAuth::SecretPost, 1 << 20).await;
            assert!(matches!(r, Err(GrantError::Idp(IdpError::Status { .. }))), "{status}: {r:?}");
        }
    }
}
