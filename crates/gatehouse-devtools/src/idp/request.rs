//! Reading an authorization request, wherever its parameters come from: the query or form of
//! `/authorize`, a signed request object (`request`, RFC 9101) or a pushed request
//! (`request_uri`, RFC 9126). Shared by `/authorize` and `/par`.

use gatehouse_jose::{ClaimsPolicy, UnverifiedJwt};
use serde_json::Value;
use std::sync::Arc;

use super::client_auth::verify_client_signed;
use super::state::{Idp, Registered};
use super::web::Params;

/// The longest value of an ordinary parameter (a `state`, a `nonce`, a URI); longer ones are
/// refused rather than echoed into a `Location`.
pub(crate) const MAX_PARAM: usize = 2048;
/// The longest request object.
pub(crate) const MAX_REQUEST_OBJECT: usize = 32 * 1024;
/// The most parameters one request may carry.
pub(crate) const MAX_PARAMS: usize = 64;
/// The prefix of the `request_uri`s `/par` hands out (RFC 9126 section 2.2).
pub(crate) const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// Seconds of clock skew tolerated on a request object's `exp`, `nbf` and `iat`.
const LEEWAY: i64 = 30;
/// Claims of a request object that describe the JWT rather than the request.
const JWT_CLAIMS: [&str; 6] = ["iss", "aud", "exp", "iat", "nbf", "jti"];

/// The algorithms a request object may be signed with: `HS*` with the client secret, the others
/// with a key of the client's `jwks` (what `verify_client_signed` accepts).
pub(crate) const REQUEST_OBJECT_ALGS: [&str; 13] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512",
];

/// Refuses requests with too many or too long parameters.
pub(crate) fn check_bounds(params: &Params) -> Result<(), String> {
    if params.len() > MAX_PARAMS {
        return Err(format!("more than {MAX_PARAMS} parameters"));
    }
    for (name, value) in params.sorted() {
        let max = if name == "request" { MAX_REQUEST_OBJECT } else { MAX_PARAM };
        if name.len() > 64 {
            return Err("a parameter name is too long".into());
        }
        if value.len() > max {
            return Err(format!("parameter '{name}' is longer than {max} bytes"));
        }
    }
    Ok(())
}

/// How the authorization response travels back (OAuth 2.0 Multiple Response Type Encoding
/// Practices, and Form Post Response Mode). A JARM mode (`query.jwt`, ...) travels the same way,
/// as one `response` parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResponseMode {
    Query,
    Fragment,
    FormPost,
}

impl ResponseMode {
    /// The mode asked for, and whether it is a JARM one (JWT Secured Authorization Response
    /// Mode §2.3: `jwt` is `query.jwt` for the code flow); `None` when it is not one of ours
    /// (answered in `query`, the default).
    fn parse(name: Option<&str>) -> Option<(ResponseMode, bool)> {
        let (name, jwt) = match name {
            Some("jwt") => (Some("query"), true),
            Some(n) => n.strip_suffix(".jwt").map_or((Some(n), false), |plain| (Some(plain), true)),
            None => (None, false),
        };
        let mode = match name {
            None | Some("query") => ResponseMode::Query,
            Some("fragment") => ResponseMode::Fragment,
            Some("form_post") => ResponseMode::FormPost,
            Some(_) => return None,
        };
        Some((mode, jwt))
    }
}

/// An authorization request whose client and redirect URI are settled, so that from here on a
/// problem can be told to the client at its redirect URI.
pub(crate) struct Located {
    pub client: Arc<Registered>,
    pub redirect_uri: String,
    pub mode: ResponseMode,
    /// The response goes as a JWT the provider signs (JARM).
    pub jwt: bool,
    pub state: Option<String>,
    /// The parameters in force: the request's own, or those of its request object or pushed request.
    pub params: Params,
    /// Whether they came in a signed request object.
    pub signed: bool,
    /// The `request_uri` they came from, spent when the request is answered.
    pub pushed: Option<String>,
}

/// What the rest of the request asks for, once checked.
pub(crate) struct Checked {
    pub scope: String,
    pub nonce: Option<String>,
    /// `(code_challenge, method)`, method `S256` or `plain`.
    pub challenge: Option<(String, String)>,
    pub max_age: Option<i64>,
    pub prompt_none: bool,
    pub prompt_login: bool,
}

/// Settles the client and the redirect URI of an `/authorize` request, unpacking a pushed request
/// or a request object on the way. An error here can only be shown to the person, never sent to a
/// redirect URI that nothing vouches for.
pub(crate) fn locate(idp: &Idp, raw: &Params, now: i64) -> Result<Located, String> {
    check_bounds(raw)?;
    let client_id = raw.get("client_id").ok_or("Missing client_id.")?;
    let client = idp.client(client_id).ok_or("Unknown client.")?;
    let (params, signed, pushed) = match (raw.get("request_uri"), raw.get("request")) {
        (Some(_), Some(_)) => return Err("Both request and request_uri were given.".into()),
        (Some(uri), None) => {
            let store = idp.store();
            let found = store.pushed(uri, now).ok_or("The request_uri is unknown, expired or already used.")?;
            if found.client_id != client.client.client_id {
                return Err("The request_uri was pushed by another client.".into());
            }
            (Params::from_pairs(found.params.clone()), found.signed, Some(uri.to_owned()))
        }
        (None, Some(jwt)) => {
            let params = request_object(idp, &client, jwt).map_err(|e| format!("Invalid request object: {e}."))?;
            (params, true, None)
        }
        (None, None) => (raw.clone(), false, None),
    };
    let redirect_uri = redirect_uri(&client, &params)?;
    let (mode, jwt) = ResponseMode::parse(params.get("response_mode")).unwrap_or((ResponseMode::Query, false));
    Ok(Located {
        mode,
        jwt,
        state: params.get("state").map(str::to_owned),
        client,
        redirect_uri,
        params,
        signed,
        pushed,
    })
}

/// The redirect URI a request names, or the client's only one; it must be allowed for the client.
pub(crate) fn redirect_uri(client: &Registered, params: &Params) -> Result<String, String> {
    let redirect_uri = match (params.get("redirect_uri"), client.client.redirect_uris.as_slice()) {
        (Some(uri), _) => uri.to_owned(),
        // OIDC makes redirect_uri required; plain OAuth allows leaving out the only registered one.
        (None, [only]) => only.clone(),
        (None, _) => return Err("Missing redirect_uri.".into()),
    };
    if !client.allows_redirect(&redirect_uri) {
        return Err("The redirect_uri is not registered for this client.".into());
    }
    Ok(redirect_uri)
}

/// Checks the rest of a located request; an error is `(error code, description)` for the client.
pub(crate) fn check(located: &Located) -> Result<Checked, (&'static str, String)> {
    let params = &located.params;
    let invalid = |d: &str| Err(("invalid_request", d.to_owned()));
    if located.client.client.require_signed_request_object && !located.signed {
        return invalid("this client must send its authorization requests as a signed request object");
    }
    if ResponseMode::parse(params.get("response_mode")).is_none() {
        return invalid("response_mode must be query, fragment or form_post, or one of them with .jwt, or jwt");
    }
    match params.get("response_type") {
        Some("code") => {}
        None => return invalid("missing parameter 'response_type'"),
        Some(_) => return Err(("unsupported_response_type", "only response_type=code is supported".into())),
    }
    let challenge = match (params.get("code_challenge"), params.get("code_challenge_method")) {
        (None, None) => None,
        (None, Some(_)) => return invalid("code_challenge_method without code_challenge"),
        // RFC 7636 section 4.3: the method defaults to plain.
        (Some(c), None | Some("plain")) => Some((c.to_owned(), "plain".to_owned())),
        (Some(c), Some("S256")) => Some((c.to_owned(), "S256".to_owned())),
        (Some(_), Some(_)) => return invalid("code_challenge_method must be S256 or plain"),
    };
    let max_age = match params.get("max_age") {
        None => None,
        Some(m) => match m.parse::<u32>() {
            Ok(m) => Some(i64::from(m)),
            Err(_) => return invalid("max_age must be a number of seconds"),
        },
    };
    let prompts: Vec<&str> = params.get("prompt").unwrap_or_default().split(' ').filter(|p| !p.is_empty()).collect();
    let prompt_none = prompts.contains(&"none");
    if prompt_none && prompts.len() > 1 {
        return invalid("prompt=none cannot be combined with other values");
    }
    Ok(Checked {
        scope: super::token::user_scope(params.get("scope")),
        nonce: params.get("nonce").map(str::to_owned),
        challenge,
        max_age,
        prompt_none,
        // OIDC Core 3.1.2.1: max_age=0 asks for a new login, as prompt=login does.
        prompt_login: prompts.contains(&"login") || max_age == Some(0),
    })
}

/// Unpacks a request object `client` signed: checks its signature, `iss` (the client), `aud` (the
/// issuer), its time claims when present and its `client_id`; its other claims are the parameters.
pub(crate) fn request_object(idp: &Idp, client: &Registered, jwt: &str) -> Result<Params, String> {
    if jwt.len() > MAX_REQUEST_OBJECT {
        return Err("too long".into());
    }
    let parsed = UnverifiedJwt::parse(jwt).map_err(|e| e.to_string())?;
    let (_, verified) = verify_client_signed(client, parsed)?;
    let client_id = client.client.client_id.as_str();
    let policy = ClaimsPolicy {
        leeway: LEEWAY,
        require_exp: false,
        issuers: vec![client_id.to_owned()],
        audiences: vec![idp.issuer.clone()],
    };
    verified.check_claims(&policy, super::util::now()).map_err(|e| e.to_string())?;
    let mut pairs = Vec::new();
    for (name, value) in verified.claims {
        if JWT_CLAIMS.contains(&name.as_str()) {
            continue;
        }
        if name == "request" || name == "request_uri" {
            return Err(format!("it holds '{name}'"));
        }
        let text = match value {
            Value::Null => continue,
            Value::String(s) => s,
            // max_age may come as a number; `claims` as an object: both as their JSON text.
            other => other.to_string(),
        };
        if name == "client_id" && text != client_id {
            return Err("its client_id is not the client_id of the request".into());
        }
        pairs.push((name, text));
    }
    pairs.push(("client_id".to_owned(), client_id.to_owned()));
    let params = Params::from_pairs(pairs);
    check_bounds(&params)?;
    Ok(params)
}
