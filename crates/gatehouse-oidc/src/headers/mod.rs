//! Claim, token, JWK and session headers, upstream (request) and downstream (response).
//!
//! Built once per plugin instance into a [`HeaderPlan`]; per request the plan turns the outcome of
//! authentication into header values. Kong's rules:
//! - A `*_header` field is a header name, or `authorization:bearer|basic|dpop`, which sets
//!   `Authorization` with that scheme.
//! - Claims are searched in introspection → access token → ID token → userinfo (the last only with
//!   `search_user_info`); `false`, `""`, `[]` and `{}` count as absent and the search goes on.
//! - Encoding: strings as they are, numbers and `true` as text, objects and arrays as compact JSON in
//!   standard padded base64. Whole-object headers (userinfo, introspection, JWKs) are base64 JSON.
//! - Upstream headers replace; downstream headers append.
//!
//! Beyond Kong (docs/compatibility.md):
//! 1. configured names go on the wire with `_` turned into `-`;
//! 2. spoofing guard: every inbound header whose name matches (case-insensitively, `-`, `_` and `.`
//!    alike) a header this instance can set is removed before anything is set;
//! 3. a value with a control character is never sent (a warning names the claim, not the value);
//! 4. size guard: one added header, and all added headers of a message, have a byte cap;
//! 5. per-mapping `encoding`: `kong`, `json` (compact JSON, no base64) or `list` (`a, b, "c,d"`).

use crate::authz::find;
use crate::settings::Settings;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gatehouse_core::plugin::BuildError;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Upstream headers made once for a deterministic source (a verified token, a cached grant, a
/// cached session) on first use, and reused while that source is.
pub type Memo = std::sync::Arc<std::sync::OnceLock<Vec<(HeaderName, HeaderValue)>>>;

/// Where a `*_header` field puts its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `Authorization: <scheme> <value>`.
    Authorization(&'static str),
    /// A named header, value as it is.
    Named(HeaderName),
}

impl Target {
    /// Parses a `*_header` value (the schema has already checked it). Names go on the wire with
    /// `_` turned into `-`.
    pub fn parse(spec: &str) -> Option<Target> {
        Some(match spec {
            "authorization:bearer" => Target::Authorization("Bearer"),
            "authorization:basic" => Target::Authorization("Basic"),
            "authorization:dpop" => Target::Authorization("DPoP"),
            name => Target::Named(wire_name(name)?),
        })
    }

    /// The header's name.
    pub fn name(&self) -> HeaderName {
        match self {
            Target::Authorization(_) => http::header::AUTHORIZATION,
            Target::Named(n) => n.clone(),
        }
    }
}

/// A configured name as sent: lower case, `_` → `-` (`authenticated_user` → `authenticated-user`,
/// which HTTP/1 peers commonly show as `Authenticated-User`).
pub fn wire_name(name: &str) -> Option<HeaderName> {
    HeaderName::from_bytes(name.replace('_', "-").as_bytes()).ok()
}

/// What a `*_header` field sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The access token.
    AccessToken,
    /// The ID token.
    IdToken,
    /// The refresh token.
    RefreshToken,
    /// The userinfo answer, base64 JSON.
    UserInfo,
    /// The userinfo answer as the IdP's JWT.
    UserInfoJwt,
    /// The introspection answer, base64 JSON.
    Introspection,
    /// The introspection answer as the IdP's JWT.
    IntrospectionJwt,
    /// The JWK that verified the access token, base64 JSON.
    AccessTokenJwk,
    /// The JWK that verified the ID token, base64 JSON.
    IdTokenJwk,
    /// The session id.
    SessionId,
}

impl Source {
    const ALL: [(Source, &'static str); 10] = [
        (Source::AccessToken, "access_token_header"),
        (Source::IdToken, "id_token_header"),
        (Source::RefreshToken, "refresh_token_header"),
        (Source::UserInfo, "user_info_header"),
        (Source::UserInfoJwt, "user_info_jwt_header"),
        (Source::Introspection, "introspection_header"),
        (Source::IntrospectionJwt, "introspection_jwt_header"),
        (Source::AccessTokenJwk, "access_token_jwk_header"),
        (Source::IdTokenJwk, "id_token_jwk_header"),
        (Source::SessionId, "session_id_header"),
    ];
}

/// A `session_request_headers` / `session_response_headers` value: what a `Session-*` header
/// tells about the request's session (lua-resty-session's `set_headers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionField {
    /// `Session-Id`: the session id, base64url.
    Id,
    /// `Session-Audience`: `session_audience`.
    Audience,
    /// `Session-Subject`: the session's subject.
    Subject,
    /// `Session-Timeout`: seconds left until the first enabled timeout.
    Timeout,
    /// `Session-Idling-Timeout`: seconds left until the idling timeout.
    IdlingTimeout,
    /// `Session-Rolling-Timeout`: seconds left until the rolling timeout.
    RollingTimeout,
    /// `Session-Absolute-Timeout`: seconds left until the absolute timeout.
    AbsoluteTimeout,
}

impl SessionField {
    const ALL: [(SessionField, &'static str, &'static str); 7] = [
        (SessionField::Id, "id", "session-id"),
        (SessionField::Audience, "audience", "session-audience"),
        (SessionField::Subject, "subject", "session-subject"),
        (SessionField::Timeout, "timeout", "session-timeout"),
        (SessionField::IdlingTimeout, "idling-timeout", "session-idling-timeout"),
        (SessionField::RollingTimeout, "rolling-timeout", "session-rolling-timeout"),
        (SessionField::AbsoluteTimeout, "absolute-timeout", "session-absolute-timeout"),
    ];

    /// Reads Kong's value (`id`, `audience`, …).
    pub fn parse(value: &str) -> Option<SessionField> {
        SessionField::ALL.iter().find(|f| f.1 == value).map(|f| f.0)
    }

    /// The header it sets.
    pub fn header(self) -> HeaderName {
        let name = SessionField::ALL.iter().find(|f| f.0 == self).map_or("session-id", |f| f.2);
        HeaderName::from_static(name)
    }
}

/// The request's session as the `Session-*` headers tell it: after this request's save or
/// touch, if any. Times are seconds left, `None` for a timeout that is off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionFacts {
    /// The session id, base64url.
    pub id: std::sync::Arc<str>,
    /// The subject, if the session has one.
    pub subject: Option<std::sync::Arc<str>>,
    /// Seconds until the idling timeout.
    pub idling: Option<i64>,
    /// Seconds until the rolling timeout.
    pub rolling: Option<i64>,
    /// Seconds until the absolute timeout.
    pub absolute: Option<i64>,
}

impl SessionFacts {
    /// The value of `field`, when it exists (Kong sets a header only then).
    fn value(&self, field: SessionField, audience: &str) -> Option<Cow<'_, str>> {
        let secs = |s: Option<i64>| s.map(|s| Cow::Owned(s.max(0).to_string()));
        match field {
            SessionField::Id => Some(Cow::Borrowed(&self.id)),
            SessionField::Audience => Some(Cow::Owned(audience.to_owned())),
            SessionField::Subject => self.subject.as_deref().map(Cow::Borrowed),
            SessionField::Timeout => secs([self.idling, self.rolling, self.absolute].into_iter().flatten().min()),
            SessionField::IdlingTimeout => secs(self.idling),
            SessionField::RollingTimeout => secs(self.rolling),
            SessionField::AbsoluteTimeout => secs(self.absolute),
        }
    }
}

/// How a claim value becomes a header value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Kong's: objects and arrays as standard base64 of their compact JSON.
    Kong,
    /// Objects and arrays as compact JSON.
    Json,
    /// Arrays as `a, b, "c,d"`; objects as compact JSON.
    List,
}

/// One token/JWK/session header.
#[derive(Clone, Debug)]
pub struct TokenHeader {
    /// What it carries.
    pub source: Source,
    /// Where it goes.
    pub target: Target,
    /// The config field, for warnings.
    pub field: String,
}

/// One claim header.
#[derive(Clone, Debug)]
pub struct ClaimHeader {
    /// The claim path (one segment for the `*_headers_claims` pairs).
    pub path: Vec<String>,
    /// The header.
    pub name: HeaderName,
    /// How non-string values are encoded.
    pub encoding: Encoding,
}

/// The headers of one direction.
#[derive(Clone, Debug, Default)]
pub struct Direction {
    /// Token, JWK and session-id headers.
    pub tokens: Vec<TokenHeader>,
    /// Claim headers.
    pub claims: Vec<ClaimHeader>,
    /// `Session-*` headers (`session_request_headers` / `session_response_headers`).
    pub session: Vec<SessionField>,
}

impl Direction {
    fn is_empty(&self) -> bool {
        self.tokens.is_empty() && self.claims.is_empty() && self.session.is_empty()
    }

    fn needs(&self, s: Source) -> bool {
        self.tokens.iter().any(|t| t.source == s)
    }
}

/// Everything about headers that one plugin instance decided at build time.
#[derive(Clone, Debug, Default)]
pub struct HeaderPlan {
    /// Request headers.
    pub upstream: Direction,
    /// Response headers.
    pub downstream: Direction,
    /// Normalized names (lower case, `_` and `.` as `-`) of every header this instance can set, for
    /// the spoofing guard. `authorization` is not among them: it is the credential itself.
    spoofable: Vec<Vec<u8>>,
    /// The most bytes (name + value) one added header may have.
    pub max_one: usize,
    /// The most bytes all added headers of one message may have together.
    pub max_total: usize,
    /// Claims may be searched in userinfo.
    pub search_user_info: bool,
    /// `session_audience`, for `Session-Audience`.
    pub session_audience: String,
}

fn normalize(name: &[u8]) -> Vec<u8> {
    name.iter().map(|&b| norm_byte(b)).collect()
}

fn norm_byte(b: u8) -> u8 {
    match b {
        b'_' | b'.' => b'-',
        b => b.to_ascii_lowercase(),
    }
}

/// The identity headers Kong's auth plugins set; always guarded.
pub const IDENTITY_HEADERS: [&str; 6] = [
    "x-consumer-id",
    "x-consumer-custom-id",
    "x-consumer-username",
    "x-anonymous-consumer",
    "x-authenticated-groups",
    "x-credential-identifier",
];

impl HeaderPlan {
    /// Builds the plan from the settings.
    pub fn build(s: &Settings) -> Result<HeaderPlan, BuildError> {
        let mut plan = HeaderPlan {
            max_one: s.max_added_header_size.max(1),
            max_total: s.max_added_headers_size.max(1),
            search_user_info: s.search_user_info,
            session_audience: s.session_audience.clone(),
            ..HeaderPlan::default()
        };
        for (dir, field, values) in [
            (&mut plan.upstream, "session_request_headers", &s.session_request_headers),
            (&mut plan.downstream, "session_response_headers", &s.session_response_headers),
        ] {
            for v in values.iter().flatten() {
                let f =
                    SessionField::parse(v).ok_or_else(|| BuildError::field(field, format!("unknown value '{v}'")))?;
                if !dir.session.contains(&f) {
                    dir.session.push(f);
                }
            }
        }
        for (dir, prefix, pairs, items) in [
            (
                &mut plan.upstream,
                "upstream_",
                (&s.upstream_headers_claims, &s.upstream_headers_names),
                &s.upstream_headers,
            ),
            (
                &mut plan.downstream,
                "downstream_",
                (&s.downstream_headers_claims, &s.downstream_headers_names),
                &s.downstream_headers,
            ),
        ] {
            for (source, field) in Source::ALL {
                let Some(spec) = s.token_header(prefix, field) else { continue };
                let target = Target::parse(spec)
                    .ok_or_else(|| BuildError::field(&format!("{prefix}{field}"), format!("bad header '{spec}'")))?;
                dir.tokens.push(TokenHeader { source, target, field: format!("{prefix}{field}") });
            }
            if let (Some(claims), Some(names)) = pairs {
                for (claim, name) in claims.iter().zip(names) {
                    let name = wire_name(name).ok_or_else(|| {
                        BuildError::field(&format!("{prefix}headers_names"), format!("bad header '{name}'"))
                    })?;
                    dir.claims.push(ClaimHeader { path: vec![claim.clone()], name, encoding: Encoding::Kong });
                }
            }
            for item in items.iter().flatten() {
                let name = wire_name(&item.header).ok_or_else(|| {
                    BuildError::field(&format!("{prefix}headers"), format!("bad header '{}'", item.header))
                })?;
                let encoding = match item.encoding.as_deref() {
                    Some("json") => Encoding::Json,
                    Some("list") => Encoding::List,
                    _ => Encoding::Kong,
                };
                dir.claims.push(ClaimHeader { path: item.path.clone(), name, encoding });
            }
        }
        let mut names: Vec<Vec<u8>> = IDENTITY_HEADERS.iter().map(|n| normalize(n.as_bytes())).collect();
        let mut guard = |name: &HeaderName| {
            // The name and its `X-` form, as Kong's header helpers treat them alike.
            let n = normalize(name.as_str().as_bytes());
            let mut x = b"x-".to_vec();
            x.extend_from_slice(&n);
            names.push(n);
            names.push(x);
        };
        for dir in [&plan.upstream, &plan.downstream] {
            for t in &dir.tokens {
                if let Target::Named(n) = &t.target {
                    guard(n);
                }
            }
            for c in &dir.claims {
                guard(&c.name);
            }
            for f in &dir.session {
                guard(&f.header());
            }
        }
        names.sort();
        names.dedup();
        plan.spoofable = names;
        Ok(plan)
    }

    /// Whether any header needs the userinfo answer (fetched lazily, only then).
    pub fn needs_userinfo(&self) -> bool {
        [&self.upstream, &self.downstream].iter().any(|d| d.needs(Source::UserInfo) || d.needs(Source::UserInfoJwt))
    }

    /// Whether any header needs the introspection answer.
    pub fn needs_introspection(&self) -> bool {
        [&self.upstream, &self.downstream]
            .iter()
            .any(|d| d.needs(Source::Introspection) || d.needs(Source::IntrospectionJwt))
    }

    /// Whether claims are looked up at all.
    pub fn has_claims(&self) -> bool {
        !self.upstream.claims.is_empty() || !self.downstream.claims.is_empty()
    }

    /// Whether the plan sets nothing downstream.
    pub fn downstream_is_empty(&self) -> bool {
        self.downstream.is_empty()
    }

    /// The spoofing guard: removes every request header whose normalized name is one this
    /// instance can set.
    pub fn strip_spoofed(&self, headers: &mut HeaderMap) {
        let spoofed = |k: &&HeaderName| {
            let k = k.as_str().as_bytes();
            self.spoofable.iter().any(|n| n.len() == k.len() && n.iter().zip(k).all(|(a, b)| *a == norm_byte(*b)))
        };
        // Almost no request carries one: look before making the list of names to remove.
        if !headers.keys().any(|k| spoofed(&k)) {
            return;
        }
        let doomed: Vec<HeaderName> = headers.keys().filter(spoofed).cloned().collect();
        for name in doomed {
            headers.remove(&name);
        }
    }
}

/// What header values are made from: the outcome of authentication.
#[derive(Default)]
pub struct Sources<'a> {
    /// Introspection claims.
    pub introspection: Option<&'a Map<String, Value>>,
    /// Introspection JWT.
    pub introspection_jwt: Option<&'a str>,
    /// Access token claims.
    pub access: Option<&'a Map<String, Value>>,
    /// ID token claims.
    pub id: Option<&'a Map<String, Value>>,
    /// Userinfo claims.
    pub userinfo: Option<&'a Map<String, Value>>,
    /// Userinfo JWT.
    pub userinfo_jwt: Option<&'a str>,
    /// The tokens.
    pub access_token: Option<&'a str>,
    /// ID token.
    pub id_token: Option<&'a str>,
    /// Refresh token.
    pub refresh_token: Option<&'a str>,
    /// The JWK that verified the access token.
    pub access_jwk: Option<&'a Value>,
    /// The JWK that verified the ID token.
    pub id_jwk: Option<&'a Value>,
    /// The session id.
    pub session_id: Option<&'a str>,
    /// The session, for the `Session-*` headers.
    pub session: Option<&'a SessionFacts>,
    /// The request's own `Authorization` value when it is exactly `Bearer <access token>`: reused
    /// as it is for `authorization:bearer`, saving a copy of the token per request.
    pub authorization: Option<&'a HeaderValue>,
}

fn is_absent(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Kong's claim search: the first source where the claim is present and not empty.
pub fn search<'a>(s: &Sources<'a>, path: &[String], with_userinfo: bool) -> Option<&'a Value> {
    let order = [s.introspection, s.access, s.id, if with_userinfo { s.userinfo } else { None }];
    order.into_iter().flatten().find_map(|src| find(src, path).filter(|v| !is_absent(v)))
}

fn b64_json(v: &impl serde::Serialize) -> Option<String> {
    serde_json::to_vec(v).ok().map(|j| STANDARD.encode(j))
}

/// A claim value as header text.
pub fn encode(v: &Value, encoding: Encoding) -> Option<Cow<'_, str>> {
    Some(match v {
        Value::String(s) => Cow::Borrowed(s.as_str()),
        Value::Number(n) => Cow::Owned(n.to_string()),
        Value::Bool(true) => Cow::Borrowed("true"),
        Value::Array(items) if encoding == Encoding::List => {
            let parts: Vec<String> = items
                .iter()
                .filter_map(|i| match i {
                    Value::String(s) => Some(quote_list_item(s)),
                    Value::Null => None,
                    other => encode(other, Encoding::Json).map(|c| quote_list_item(&c)),
                })
                .collect();
            Cow::Owned(parts.join(", "))
        }
        Value::Array(_) | Value::Object(_) => match encoding {
            Encoding::Kong => Cow::Owned(b64_json(v)?),
            Encoding::Json | Encoding::List => Cow::Owned(serde_json::to_string(v).ok()?),
        },
        Value::Null | Value::Bool(false) => return None,
    })
}

/// A list element: quoted (with `\` escapes) when it holds the delimiter or a quote.
fn quote_list_item(s: &str) -> String {
    if s.contains([',', '"']) {
        let mut q = String::with_capacity(s.len() + 2);
        q.push('"');
        for c in s.chars() {
            if c == '"' || c == '\\' {
                q.push('\\');
            }
            q.push(c);
        }
        q.push('"');
        q
    } else {
        s.to_string()
    }
}

/// Why a header was left out.
#[derive(Debug, PartialEq, Eq)]
pub enum Skipped {
    /// The value holds a control character.
    Control,
    /// Over the per-header cap.
    TooLarge,
    /// Over the per-message cap.
    TotalTooLarge,
}

/// Checks a value for the wire: no control characters (CR, LF, NUL, any byte below 0x20, DEL);
/// UTF-8 above ASCII passes as it is.
pub fn header_value(v: &str) -> Option<HeaderValue> {
    // `from_bytes` already refuses every control byte but TAB.
    let hv = HeaderValue::from_bytes(v.as_bytes()).ok()?;
    (!v.as_bytes().contains(&b'\t')).then_some(hv)
}

/// Collects the headers of one direction with the guards applied. `label` names what a skipped
/// header carried (claim path or field), never its value.
pub struct Collector {
    max_one: usize,
    max_total: usize,
    total: usize,
    /// The headers to set, in order.
    pub out: Vec<(HeaderName, HeaderValue)>,
}

impl Collector {
    /// An empty collector with the plan's caps.
    pub fn new(plan: &HeaderPlan) -> Collector {
        Collector { max_one: plan.max_one, max_total: plan.max_total, total: 0, out: Vec::new() }
    }

    /// Adds a value already checked for the wire (the client's own `Authorization`), under the caps.
    fn reuse(&mut self, name: HeaderName, hv: HeaderValue, label: &str) {
        let size = name.as_str().len() + hv.len();
        if size > self.max_one || self.total + size > self.max_total {
            tracing::warn!(header = %name, source = label, bytes = size, "header not sent: too large");
            return;
        }
        self.total += size;
        self.out.push((name, hv));
    }

    /// Adds `name: prefix value` unless a guard refuses it (then logs a warning and skips it).
    pub fn add(&mut self, name: HeaderName, prefix: &str, value: &str, label: &str) -> Result<(), Skipped> {
        let full: Cow<'_, str> =
            if prefix.is_empty() { Cow::Borrowed(value) } else { Cow::Owned(format!("{prefix} {value}")) };
        let Some(hv) = header_value(&full) else {
            tracing::warn!(header = %name, source = label, "header not sent: the value holds a control character");
            return Err(Skipped::Control);
        };
        let size = name.as_str().len() + hv.len();
        if size > self.max_one {
            tracing::warn!(header = %name, source = label, bytes = size, limit = self.max_one, "header not sent: too large");
            return Err(Skipped::TooLarge);
        }
        if self.total + size > self.max_total {
            tracing::warn!(header = %name, source = label, bytes = size, limit = self.max_total, "header not sent: the added headers would exceed their total limit");
            return Err(Skipped::TotalTooLarge);
        }
        self.total += size;
        self.out.push((name, hv));
        Ok(())
    }
}

/// Makes the headers of `dir` from `src`.
pub fn build(plan: &HeaderPlan, dir: &Direction, src: &Sources<'_>) -> Vec<(HeaderName, HeaderValue)> {
    let mut c = Collector::new(plan);
    for t in &dir.tokens {
        let value: Option<Cow<'_, str>> = match t.source {
            Source::AccessToken => src.access_token.map(Cow::Borrowed),
            Source::IdToken => src.id_token.map(Cow::Borrowed),
            Source::RefreshToken => src.refresh_token.map(Cow::Borrowed),
            Source::UserInfo => src.userinfo.and_then(b64_json).map(Cow::Owned),
            Source::UserInfoJwt => src.userinfo_jwt.map(Cow::Borrowed),
            Source::Introspection => src.introspection.and_then(b64_json).map(Cow::Owned),
            Source::IntrospectionJwt => src.introspection_jwt.map(Cow::Borrowed),
            Source::AccessTokenJwk => src.access_jwk.and_then(public_jwk).map(Cow::Owned),
            Source::IdTokenJwk => src.id_jwk.and_then(public_jwk).map(Cow::Owned),
            Source::SessionId => src.session_id.map(Cow::Borrowed),
        };
        let Some(value) = value else { continue };
        let prefix = match &t.target {
            Target::Authorization(scheme) => scheme,
            Target::Named(_) => "",
        };
        if let (Source::AccessToken, Target::Authorization("Bearer"), Some(original)) =
            (t.source, &t.target, src.authorization)
        {
            c.reuse(http::header::AUTHORIZATION, original.clone(), &t.field);
            continue;
        }
        let _ = c.add(t.target.name(), prefix, &value, &t.field);
    }
    for h in &dir.claims {
        let Some(v) = search(src, &h.path, plan.search_user_info) else { continue };
        let Some(text) = encode(v, h.encoding) else { continue };
        let _ = c.add(h.name.clone(), "", &text, &h.path.join("."));
    }
    if let Some(facts) = src.session {
        for &f in &dir.session {
            let Some(value) = facts.value(f, &plan.session_audience) else { continue };
            let _ = c.add(f.header(), "", &value, "session");
        }
    }
    c.out
}

/// A JWK as base64 JSON, unless it is a symmetric key: an `oct` JWK is the secret itself and is never sent.
fn public_jwk(jwk: &Value) -> Option<String> {
    if jwk.get("kty").and_then(Value::as_str) == Some("oct") || jwk.get("d").is_some() {
        tracing::warn!("JWK header not sent: the verifying key is secret");
        return None;
    }
    b64_json(jwk)
}

#[cfg(test)]
mod tests;
