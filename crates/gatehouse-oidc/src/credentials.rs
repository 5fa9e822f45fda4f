//! Finding credentials in a request, where Kong looks for them (`*_param_type`), and removing the
//! one that was used (`hide_credentials`).
//!
//! Locations are tried in the configured order. Header rules follow Kong: `Authorization: Bearer`
//! matches the scheme case-insensitively; `access-token`/`x-access-token` (and `_` spellings) are
//! also bearer headers; Basic credentials count for a grant when no `Grant-Type` header names
//! another grant.

use crate::method::Method;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE};
use http::{HeaderMap, HeaderName};
use std::borrow::Cow;

/// Where a credential may be, in Kong's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// A request header.
    Header,
    /// A cookie.
    Cookie,
    /// A query argument.
    Query,
    /// A form or JSON body field.
    Body,
}

impl Place {
    /// Parses `header`, `cookie`, `query`, `body`.
    pub fn from_name(s: &str) -> Option<Place> {
        Some(match s {
            "header" => Place::Header,
            "cookie" => Place::Cookie,
            "query" => Place::Query,
            "body" => Place::Body,
            _ => return None,
        })
    }

    /// Parses a configured list, skipping unknown names (the schema already refused them).
    pub fn list(names: &[String]) -> Vec<Place> {
        names.iter().filter_map(|n| Place::from_name(n)).collect()
    }
}

/// `Authorization` alone, where a bearer token is found.
pub static AUTHORIZATION_HEADER: [HeaderName; 1] = [AUTHORIZATION];
static ACCESS_TOKEN_HEADERS: [HeaderName; 2] =
    [HeaderName::from_static("access-token"), HeaderName::from_static("access_token")];
static X_ACCESS_TOKEN_HEADERS: [HeaderName; 2] =
    [HeaderName::from_static("x-access-token"), HeaderName::from_static("x_access_token")];
/// A Basic pair and the headers that name its grant.
static BASIC_HEADERS: [HeaderName; 3] =
    [AUTHORIZATION, HeaderName::from_static("grant-type"), HeaderName::from_static("x-grant-type")];

/// Exactly where a credential was found, so `hide_credentials` can remove it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// These headers (all removed).
    Headers(&'static [HeaderName]),
    /// A named header, and its `X-` form.
    NamedHeader(String),
    /// A cookie.
    Cookie(String),
    /// These query arguments.
    Query(Vec<String>),
    /// These body fields.
    Body(Vec<String>),
}

/// The request's query and body arguments, parsed once per request and only when needed.
pub struct Args<'a> {
    query: Option<Vec<(Cow<'a, str>, Cow<'a, str>)>>,
    body: BodyArgs,
}

enum BodyArgs {
    None,
    Form(Vec<(String, String)>),
    /// A JSON object's top-level members: the string ones with their value, the others `None`.
    Json(Vec<(String, Option<String>)>),
}

/// The body formats credentials are read from (Kong's form and JSON bodies). Any other body is
/// never parsed: the plugin must not interpret bytes whose type the client did not declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyKind {
    Form,
    Json,
}

/// The body's kind from `Content-Type`: its media type (before any `;` parameter), compared
/// case-insensitively and exactly, so `application/jsonp` or `text/plain` bodies are ignored.
fn body_kind(headers: &HeaderMap) -> Option<BodyKind> {
    let v = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = v.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Some(BodyKind::Form)
    } else if essence.eq_ignore_ascii_case("application/json") {
        Some(BodyKind::Json)
    } else {
        None
    }
}

impl<'a> Args<'a> {
    /// Parses the query of `uri` and, when it is a form or a JSON object, `body` (the proxy
    /// bounds its size). Of a JSON body only the top level is kept: credentials are top-level
    /// strings, so nested values are skipped without being built.
    pub fn parse(uri: &'a http::Uri, headers: &HeaderMap, body: Option<&Bytes>) -> Args<'a> {
        let query = uri.query().map(|q| form_urlencoded::parse(q.as_bytes()).collect());
        let body = match (body.filter(|b| !b.is_empty()), body_kind(headers)) {
            (Some(b), Some(BodyKind::Form)) => BodyArgs::Form(form_urlencoded::parse(b).into_owned().collect()),
            (Some(b), Some(BodyKind::Json)) => match serde_json::from_slice::<top_level::Members>(b) {
                Ok(m) => BodyArgs::Json(m.0),
                Err(_) => BodyArgs::None,
            },
            _ => BodyArgs::None,
        };
        Args { query, body }
    }

    /// A query argument (the first if repeated).
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.as_ref()?.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_ref())
    }

    /// A body field: a form field, or a JSON string member.
    pub fn body(&self, name: &str) -> Option<&str> {
        match &self.body {
            BodyArgs::Form(f) => f.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()),
            // The last of repeated members, as a JSON object parser keeps it.
            BodyArgs::Json(m) => m.iter().rev().find(|(k, _)| k == name).and_then(|(_, v)| v.as_deref()),
            BodyArgs::None => None,
        }
    }

    fn get(&self, place: Place, name: &str) -> Option<&str> {
        match place {
            Place::Query => self.query(name),
            Place::Body => self.body(name),
            _ => None,
        }
    }
}

/// Reading a JSON object's top level without building its nested values.
mod top_level {
    use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    /// `body` (a JSON object) without its top-level members named in `names`, every other byte
    /// kept as sent. A scan, not a parse: it needs no recursion however deep the other members
    /// nest, so a credential found in a body is always removable (a tree parse would refuse
    /// depth past 128 or a number past f64, and leave the credential in).
    pub(super) fn without(body: &[u8], names: &[String]) -> Option<Vec<u8>> {
        let mut i = skip_ws(body, 0);
        (body.get(i) == Some(&b'{')).then_some(())?;
        i += 1;
        let mut out = Vec::with_capacity(body.len());
        out.push(b'{');
        let mut first = true;
        loop {
            i = skip_ws(body, i);
            match body.get(i)? {
                b'}' if first => break,
                b'"' => {}
                _ => return None,
            }
            let key_start = i;
            let key_end = string_end(body, i)?;
            let key: String = serde_json::from_slice(&body[key_start..key_end]).ok()?;
            i = skip_ws(body, key_end);
            (body.get(i) == Some(&b':')).then_some(())?;
            let value_end = value_end(body, skip_ws(body, i + 1))?;
            if !names.contains(&key) {
                if out.len() > 1 {
                    out.push(b',');
                }
                out.extend_from_slice(&body[key_start..value_end]);
            }
            first = false;
            i = skip_ws(body, value_end);
            match body.get(i)? {
                b',' => i += 1,
                b'}' => break,
                _ => return None,
            }
        }
        (skip_ws(body, i + 1) == body.len()).then_some(())?;
        out.push(b'}');
        Some(out)
    }

    fn skip_ws(b: &[u8], mut i: usize) -> usize {
        while b.get(i).is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r')) {
            i += 1;
        }
        i
    }

    /// The index after the string starting at `i` (at its opening quote).
    fn string_end(b: &[u8], i: usize) -> Option<usize> {
        let mut j = i.checked_add(1)?;
        while let Some(c) = b.get(j) {
            match c {
                b'\\' => j += 2,
                b'"' => return Some(j + 1),
                _ => j += 1,
            }
        }
        None
    }

    /// The index after the value starting at `i`: a string, a container (brackets counted, not
    /// recursed into), or a scalar running to the next delimiter.
    fn value_end(b: &[u8], i: usize) -> Option<usize> {
        let mut depth = 0usize;
        let mut j = i;
        loop {
            let c = *b.get(j)?;
            match c {
                b'"' => {
                    j = string_end(b, j)?;
                    if depth == 0 {
                        return Some(j);
                    }
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth == 0 => return (j > i).then_some(j),
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(j + 1);
                    }
                }
                b',' | b' ' | b'\t' | b'\n' | b'\r' if depth == 0 => return (j > i).then_some(j),
                _ => {}
            }
            j += 1;
        }
    }

    /// The members of a JSON object: string values kept, others `None`.
    pub(super) struct Members(pub(super) Vec<(String, Option<String>)>);

    impl<'de> Deserialize<'de> for Members {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(MembersVisitor)
        }
    }

    struct MembersVisitor;

    impl<'de> Visitor<'de> for MembersVisitor {
        type Value = Members;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
            let mut out = Vec::new();
            while let Some(k) = map.next_key::<String>()? {
                let Text(v) = map.next_value()?;
                out.push((k, v));
            }
            Ok(Members(out))
        }
    }

    /// A member's value: its text when it is a string; anything else is skipped (`IgnoredAny`
    /// builds nothing, and serde_json skips nested values without recursing).
    struct Text(Option<String>);

    impl<'de> Deserialize<'de> for Text {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(TextVisitor)
        }
    }

    struct TextVisitor;

    impl<'de> Visitor<'de> for TextVisitor {
        type Value = Text;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_str<E>(self, v: &str) -> Result<Text, E> {
            Ok(Text(Some(v.to_owned())))
        }
        fn visit_string<E>(self, v: String) -> Result<Text, E> {
            Ok(Text(Some(v)))
        }
        fn visit_bool<E>(self, _: bool) -> Result<Text, E> {
            Ok(Text(None))
        }
        fn visit_i64<E>(self, _: i64) -> Result<Text, E> {
            Ok(Text(None))
        }
        fn visit_u64<E>(self, _: u64) -> Result<Text, E> {
            Ok(Text(None))
        }
        fn visit_f64<E>(self, _: f64) -> Result<Text, E> {
            Ok(Text(None))
        }
        fn visit_unit<E>(self) -> Result<Text, E> {
            Ok(Text(None))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Text(None))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Text(None))
        }
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|s| !s.is_empty())
}

/// A cookie's value from every `Cookie` header.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The token of an `Authorization: <scheme> <token>` header, the scheme compared case-insensitively.
pub(crate) fn scheme_token<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    let v = header(headers, AUTHORIZATION.as_str())?;
    let (s, rest) = v.split_at_checked(scheme.len())?;
    if !s.eq_ignore_ascii_case(scheme) || !rest.starts_with(' ') {
        return None;
    }
    Some(rest.trim()).filter(|t| !t.is_empty())
}

/// A bearer token (for `bearer`, `introspection`, `userinfo`).
pub fn bearer(
    headers: &HeaderMap,
    args: &Args<'_>,
    places: &[Place],
    header_name: Option<&str>,
    cookie_name: Option<&str>,
) -> Option<(String, Found)> {
    for place in places {
        match place {
            Place::Header => {
                if let Some(name) = header_name {
                    // Kong 3.15: only that header is looked at; a `Bearer ` prefix is allowed.
                    if let Some(v) = header(headers, name) {
                        let t = strip_bearer(v);
                        return Some((t.to_string(), Found::NamedHeader(name.to_string())));
                    }
                    continue;
                }
                if let Some(t) = scheme_token(headers, "bearer") {
                    return Some((t.to_string(), Found::Headers(&AUTHORIZATION_HEADER)));
                }
                for pair in [&ACCESS_TOKEN_HEADERS, &X_ACCESS_TOKEN_HEADERS] {
                    for name in pair {
                        if let Some(t) = headers.get(name).and_then(|v| v.to_str().ok()) {
                            return Some((t.to_string(), Found::Headers(pair)));
                        }
                    }
                }
            }
            Place::Cookie => {
                if let Some(name) = cookie_name
                    && let Some(t) = cookie(headers, name)
                {
                    return Some((t.to_string(), Found::Cookie(name.to_string())));
                }
            }
            Place::Query | Place::Body => {
                if let Some(t) = args.get(*place, "access_token").filter(|t| !t.is_empty()) {
                    let names = vec!["access_token".to_string()];
                    return Some((t.to_string(), found_arg(*place, names)));
                }
            }
        }
    }
    None
}

fn strip_bearer(v: &str) -> &str {
    match v.split_at_checked(7) {
        Some((s, rest)) if s.eq_ignore_ascii_case("bearer ") => rest.trim(),
        _ => v,
    }
}

fn found_arg(place: Place, names: Vec<String>) -> Found {
    if place == Place::Query { Found::Query(names) } else { Found::Body(names) }
}

/// A pair of secrets for a grant: username/password or client id/secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    /// Username or client id.
    pub user: String,
    /// Password or client secret.
    pub secret: String,
    /// Where they were.
    pub found: Found,
}

/// A pair from `Authorization: Basic`, unless a `Grant-Type` header names another grant.
pub fn basic_pair(headers: &HeaderMap, grant: Method) -> Option<Pair> {
    let gt = header(headers, "grant-type").or_else(|| header(headers, "x-grant-type"));
    if gt.is_some_and(|g| g != grant.name()) {
        return None;
    }
    let b = scheme_token(headers, "basic")?;
    // Kong uses the raw text when it is not base64.
    let decoded = STANDARD.decode(b).ok().and_then(|d| String::from_utf8(d).ok());
    let text = decoded.as_deref().unwrap_or(b);
    let (u, s) = text.split_once(':')?;
    let found = Found::Headers(&BASIC_HEADERS);
    Some(Pair { user: u.to_string(), secret: s.to_string(), found })
}

/// Credentials for `grant` (`password` or `client_credentials`): Basic header when no
/// `Grant-Type` header names another grant, else `user_arg`/`secret_arg` arguments when no
/// `grant_type` argument names another grant.
pub fn pair(
    headers: &HeaderMap,
    args: &Args<'_>,
    places: &[Place],
    grant: Method,
    user_arg: &str,
    secret_arg: &str,
) -> Option<Pair> {
    for place in places {
        match place {
            Place::Header => {
                if let Some(p) = basic_pair(headers, grant) {
                    return Some(p);
                }
            }
            Place::Query | Place::Body => {
                if args.get(*place, "grant_type").is_some_and(|g| g != grant.name()) {
                    continue;
                }
                if let (Some(u), Some(s)) = (args.get(*place, user_arg), args.get(*place, secret_arg))
                    && !u.is_empty()
                {
                    let names = vec![user_arg.to_string(), secret_arg.to_string(), "grant_type".to_string()];
                    return Some(Pair { user: u.to_string(), secret: s.to_string(), found: found_arg(*place, names) });
                }
            }
            Place::Cookie => {}
        }
    }
    None
}

/// A named parameter (`refresh_token_param_name`, `id_token_param_name`): the header (or its `X-`
/// form; a `Bearer ` prefix is dropped), the query, or the body.
pub fn named(headers: &HeaderMap, args: &Args<'_>, places: &[Place], name: &str) -> Option<(String, Found)> {
    for place in places {
        match place {
            Place::Header => {
                // As OpenResty's header lookup, `_` and `-` are the same in the name.
                for n in header_spellings(name) {
                    if let Some(v) = header(headers, &n) {
                        return Some((strip_bearer(v).to_string(), Found::NamedHeader(name.to_string())));
                    }
                }
            }
            Place::Query | Place::Body => {
                if let Some(v) = args.get(*place, name).filter(|v| !v.is_empty()) {
                    return Some((v.to_string(), found_arg(*place, vec![name.to_string()])));
                }
            }
            Place::Cookie => {}
        }
    }
    None
}

/// `name`, its `X-` form, and both with `_` and `-` swapped.
fn header_spellings(name: &str) -> [String; 4] {
    let dashed = name.replace('_', "-");
    let under = name.replace('-', "_");
    [dashed.clone(), format!("x-{dashed}"), under.clone(), format!("x-{under}")]
}

/// Removes a used credential from the upstream request (`hide_credentials`). A changed body
/// is returned so the caller can replace the buffered one.
pub fn hide(found: &Found, parts: &mut http::request::Parts, body: Option<&Bytes>) -> Option<Bytes> {
    match found {
        Found::Headers(names) => {
            for n in *names {
                parts.headers.remove(n);
            }
            None
        }
        Found::NamedHeader(name) => {
            for n in header_spellings(name) {
                parts.headers.remove(n.as_str());
            }
            None
        }
        Found::Cookie(name) => {
            remove_cookie(&mut parts.headers, name);
            None
        }
        Found::Query(names) => {
            let q = parts.uri.query()?;
            let kept: String = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form_urlencoded::parse(q.as_bytes()).filter(|(k, _)| !names.iter().any(|n| n == k)))
                .finish();
            let path = parts.uri.path();
            let pq = if kept.is_empty() { path.to_string() } else { format!("{path}?{kept}") };
            let mut uri = std::mem::take(&mut parts.uri).into_parts();
            uri.path_and_query = pq.parse().ok();
            parts.uri = http::Uri::from_parts(uri).unwrap_or_default();
            None
        }
        Found::Body(names) => {
            let body = body?;
            let new = match body_kind(&parts.headers) {
                Some(BodyKind::Json) => Bytes::from(top_level::without(body, names)?),
                Some(BodyKind::Form) => {
                    let kept: String = form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(form_urlencoded::parse(body).filter(|(k, _)| !names.iter().any(|n| n == k)))
                        .finish();
                    Bytes::from(kept)
                }
                // Only form and JSON bodies are read, so only they can hold a found credential.
                None => return None,
            };
            parts.headers.insert(CONTENT_LENGTH, new.len().into());
            Some(new)
        }
    }
}

/// Replaces the request's query with `query` (a raw query string; empty: none).
pub fn replace_query(parts: &mut http::request::Parts, query: &str) {
    let path = parts.uri.path();
    let pq = if query.is_empty() { path.to_string() } else { format!("{path}?{query}") };
    // A query that does not parse (it came through a URI once, so it should) leaves the URI as it is.
    let Ok(pq) = pq.parse::<http::uri::PathAndQuery>() else { return };
    let mut uri = parts.uri.clone().into_parts();
    uri.path_and_query = Some(pq);
    if let Ok(u) = http::Uri::from_parts(uri) {
        parts.uri = u;
    }
}

/// Removes the cookies named `name` from the request, keeping every other cookie as sent: a
/// header without one is left byte for byte, whatever bytes its values hold (browsers send
/// UTF-8 in cookie values, which `HeaderValue::to_str` refuses).
pub fn remove_cookie(headers: &mut HeaderMap, name: &str) {
    fn pairs(v: &http::HeaderValue) -> Vec<&[u8]> {
        v.as_bytes().split(|&b| b == b';').map(<[u8]>::trim_ascii).filter(|p| !p.is_empty()).collect()
    }
    let named = |pair: &[u8]| pair.split(|&b| b == b'=').next() == Some(name.as_bytes()) && pair.contains(&b'=');
    if !headers.get_all(COOKIE).iter().any(|v| pairs(v).into_iter().any(named)) {
        return;
    }
    let values: Vec<http::HeaderValue> = headers.get_all(COOKIE).iter().cloned().collect();
    headers.remove(COOKIE);
    for v in values {
        let all = pairs(&v);
        if !all.iter().any(|p| named(p)) {
            headers.append(COOKIE, v);
            continue;
        }
        let kept: Vec<&[u8]> = all.into_iter().filter(|p| !named(p)).collect();
        if !kept.is_empty()
            && let Ok(hv) = http::HeaderValue::from_bytes(&kept.join(&b"; "[..]))
        {
            headers.append(COOKIE, hv);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::get(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    const ALL: [Place; 3] = [Place::Header, Place::Query, Place::Body];

    #[test]
    fn bearer_from_each_place_in_order() {
        let p = req("/?access_token=q", &[("authorization", "BEARER  h ")]);
        let args = Args::parse(&p.uri, &p.headers, None);
        assert_eq!(bearer(&p.headers, &args, &ALL, None, None).map(|x| x.0).as_deref(), Some("h"));
        assert_eq!(
            bearer(&p.headers, &args, &[Place::Query, Place::Header], None, None).map(|x| x.0).as_deref(),
            Some("q")
        );
        let p = req("/", &[("x_access_token", "x")]);
        let args = Args::parse(&p.uri, &p.headers, None);
        assert_eq!(bearer(&p.headers, &args, &ALL, None, None).map(|x| x.0).as_deref(), Some("x"));
        // A Basic header is not a bearer token.
        let p = req("/", &[("authorization", "Basic am9objpkb2U=")]);
        let args = Args::parse(&p.uri, &p.headers, None);
        assert!(bearer(&p.headers, &args, &ALL, None, None).is_none());
        // "Bearertoken" without the space is not a bearer header.
        let p = req("/", &[("authorization", "Bearerabc")]);
        let args = Args::parse(&p.uri, &p.headers, None);
        assert!(bearer(&p.headers, &args, &ALL, None, None).is_none());
    }

    #[test]
    fn bearer_from_body_and_cookie_and_named_header() {
        let mut p = req("/", &[("content-type", "application/json"), ("cookie", "a=1; tok=c")]);
        let body = Bytes::from_static(br#"{"access_token":"b"}"#);
        let args = Args::parse(&p.uri, &p.headers, Some(&body));
        assert_eq!(bearer(&p.headers, &args, &ALL, None, None).map(|x| x.0).as_deref(), Some("b"));
        assert_eq!(bearer(&p.headers, &args, &[Place::Cookie], None, Some("tok")).map(|x| x.0).as_deref(), Some("c"));
        p.headers.insert("x-my-token", "Bearer n".parse().expect("value"));
        let (t, _) = bearer(&p.headers, &args, &ALL, Some("x-my-token"), None).expect("found");
        assert_eq!(t, "n");
    }

    #[test]
    fn basic_pair_respects_grant_type() {
        let p = req("/", &[("authorization", "Basic am9objpkOm9l")]);
        let args = Args::parse(&p.uri, &p.headers, None);
        let got = pair(&p.headers, &args, &ALL, Method::Password, "username", "password").expect("pair");
        assert_eq!((got.user.as_str(), got.secret.as_str()), ("john", "d:oe"));
        let p = req("/", &[("authorization", "Basic am9objpkb2U="), ("grant-type", "client_credentials")]);
        let args = Args::parse(&p.uri, &p.headers, None);
        assert!(pair(&p.headers, &args, &ALL, Method::Password, "username", "password").is_none());
        assert!(pair(&p.headers, &args, &ALL, Method::ClientCredentials, "client_id", "client_secret").is_some());
        let p = req("/?username=u&password=p", &[]);
        let args = Args::parse(&p.uri, &p.headers, None);
        let got = pair(&p.headers, &args, &ALL, Method::Password, "username", "password").expect("query pair");
        assert_eq!(got.found, Found::Query(vec!["username".into(), "password".into(), "grant_type".into()]));
        let p = req("/?username=u&password=p&grant_type=refresh_token", &[]);
        let args = Args::parse(&p.uri, &p.headers, None);
        assert!(pair(&p.headers, &args, &ALL, Method::Password, "username", "password").is_none());
    }

    #[test]
    fn hide_removes_only_the_used_credential() {
        let mut p = req("/x?a=1&access_token=t&b=2", &[("cookie", "keep=1; tok=x; other=2")]);
        hide(&Found::Query(vec!["access_token".into()]), &mut p, None);
        assert_eq!(p.uri.to_string(), "/x?a=1&b=2");
        hide(&Found::Cookie("tok".into()), &mut p, None);
        assert_eq!(p.headers["cookie"], "keep=1; other=2");
        let mut p = req("/", &[("content-type", "application/x-www-form-urlencoded")]);
        let body = Bytes::from_static(b"username=u&password=p&x=1");
        let new = hide(&Found::Body(vec!["username".into(), "password".into()]), &mut p, Some(&body)).expect("body");
        assert_eq!(new, "x=1");
        assert_eq!(p.headers["content-length"], "3");
    }

    #[test]
    fn hiding_a_cookie_keeps_the_others_whatever_bytes_they_hold() {
        // Browsers send cookie values with UTF-8 (and other opaque bytes) in them: a header that
        // is not visible ASCII keeps its other cookies, byte for byte.
        let mut p = req("/", &[]);
        let mixed =
            http::HeaderValue::from_bytes("lang=fran\u{e7}ais; tok=x; cart=\u{2603}".as_bytes()).expect("value");
        p.headers.append(COOKIE, mixed);
        p.headers.append(COOKIE, http::HeaderValue::from_static("tok=y"));
        p.headers.append(COOKIE, http::HeaderValue::from_static("a=1"));
        hide(&Found::Cookie("tok".into()), &mut p, None);
        let left: Vec<&[u8]> = p.headers.get_all(COOKIE).iter().map(|v| v.as_bytes()).collect();
        assert_eq!(left, ["lang=fran\u{e7}ais; cart=\u{2603}".as_bytes(), b"a=1"]);
    }

    fn hide_json(body: &str, names: &[&str]) -> Option<String> {
        let mut p = req("/", &[("content-type", "application/json")]);
        let names = names.iter().map(|n| n.to_string()).collect();
        let new = hide(&Found::Body(names), &mut p, Some(&Bytes::copy_from_slice(body.as_bytes())))?;
        assert_eq!(p.headers["content-length"], new.len().to_string().as_str());
        Some(String::from_utf8(new.to_vec()).expect("utf-8"))
    }

    #[test]
    fn hide_removes_json_members_and_keeps_every_other_byte() {
        let h = |body: &str| hide_json(body, &["username", "password"]);
        assert_eq!(h(r#"{"username":"u","password":"p","x":1}"#).as_deref(), Some(r#"{"x":1}"#));
        assert_eq!(
            h(r#" { "a" : 1.50 , "password":"p", "b":[1, {"c":"}"}] } "#).as_deref(),
            Some(r#"{"a" : 1.50,"b":[1, {"c":"}"}]}"#)
        );
        assert_eq!(h(r#"{"password":"p"}"#).as_deref(), Some("{}"));
        assert_eq!(h(r#"{}"#).as_deref(), Some("{}"));
        assert_eq!(
            h(r#"{"pass\u0077ord":"p","username":"u","username":"v","k":"a\"b"}"#).as_deref(),
            Some(r#"{"k":"a\"b"}"#)
        );
        assert_eq!(h(r#"{"x":true,"password":null,"y":-1e400}"#).as_deref(), Some(r#"{"x":true,"y":-1e400}"#));
        // Where a tree parse gives up (depth, number range), the credential is still removed.
        let deep = format!(r#"{{"password":"p","x":{}{}}}"#, "[".repeat(10_000), "]".repeat(10_000));
        let kept = h(&deep).expect("hidden");
        assert!(!kept.contains("password") && kept.len() == deep.len() - r#""password":"p","#.len());
        for bad in ["", "[]", "{", r#"{"a""#, r#"{"a":}"#, r#"{"a":1"#, r#"{"a":1}x"#, r#"{"a" 1}"#, r#"{,}"#] {
            assert_eq!(h(bad), None, "{bad}");
        }
    }

    fn body_bearer(content_type: &str, body: &[u8]) -> Option<String> {
        let p = req("/", &[("content-type", content_type)]);
        let body = Bytes::copy_from_slice(body);
        let args = Args::parse(&p.uri, &p.headers, Some(&body));
        bearer(&p.headers, &args, &[Place::Body], None, None).map(|x| x.0)
    }

    #[test]
    fn only_form_and_json_bodies_are_read() {
        assert_eq!(body_bearer("application/x-www-form-urlencoded", b"access_token=f").as_deref(), Some("f"));
        assert_eq!(body_bearer("Application/JSON; charset=utf-8", br#"{"access_token":"j"}"#).as_deref(), Some("j"));
        assert_eq!(body_bearer(" application/x-www-form-urlencoded ;x=y", b"access_token=f").as_deref(), Some("f"));
        // Bodies of any other type are not looked at, even when they would parse.
        for ct in ["text/plain", "application/jsonp", "application/json-seq", "multipart/form-data", "", "json"] {
            assert_eq!(body_bearer(ct, b"access_token=f"), None, "{ct}");
            assert_eq!(body_bearer(ct, br#"{"access_token":"j"}"#), None, "{ct}");
        }
        let p = req("/", &[]);
        let body = Bytes::from_static(b"access_token=f");
        let args = Args::parse(&p.uri, &p.headers, Some(&body));
        assert_eq!(bearer(&p.headers, &args, &[Place::Body], None, None), None, "no content type");
    }

    #[test]
    fn json_bodies_give_top_level_strings_only_and_hostile_ones_give_nothing() {
        let json = "application/json";
        assert_eq!(body_bearer(json, br#"{"x":{"access_token":"nested"}}"#), None);
        assert_eq!(body_bearer(json, br#"{"access_token":42}"#), None);
        assert_eq!(body_bearer(json, br#"["access_token","t"]"#), None);
        assert_eq!(body_bearer(json, br#""access_token""#), None);
        assert_eq!(body_bearer(json, br#"{"access_token":"a","access_token":"b"}"#).as_deref(), Some("b"));
        assert_eq!(body_bearer(json, br#"{"access_token":"a","access_token":null}"#), None);
        assert_eq!(body_bearer(json, br#"{"access_token":"t","x":[1,{"y":[true,null]}]}"#).as_deref(), Some("t"));
        // Deep nesting is skipped without recursion (no stack overflow), and the member still found.
        let deep = format!(r#"{{"access_token":"t","x":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(body_bearer(json, deep.as_bytes()).as_deref(), Some("t"));
        let unclosed = format!(r#"{{"access_token":"t","x":{}"#, "{\"a\":".repeat(100_000));
        assert_eq!(body_bearer(json, unclosed.as_bytes()), None);
        for bad in [&b"{"[..], b"{\"access_token\":\"t\"", b"\xff\xfe", b"{\"a\":\"\\ud800\"}", b"null"] {
            assert_eq!(body_bearer(json, bad), None);
        }
    }

    mod properties {
        use super::super::top_level::without;
        use proptest::prelude::*;
        use serde_json::Value;

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                "\\PC{0,8}".prop_map(Value::String),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    proptest::collection::vec(("[a-c\"\\\\]{0,3}", inner), 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {

            #[test]
            fn removing_members_equals_removing_them_from_the_parsed_object(
                members in proptest::collection::vec(("[a-c\"\\\\]{0,3}", json()), 0..6),
                pretty in any::<bool>(),
                names in proptest::collection::vec("[a-c]{0,2}", 0..3),
            ) {
                let mut object: serde_json::Map<String, Value> = members.into_iter().collect();
                let text = if pretty {
                    serde_json::to_vec_pretty(&object).unwrap()
                } else {
                    serde_json::to_vec(&object).unwrap()
                };
                let kept = without(&text, &names).expect("a JSON object");
                object.retain(|k, _| !names.contains(k));
                let parsed: serde_json::Map<String, Value> = serde_json::from_slice(&kept).expect("still JSON");
                prop_assert_eq!(parsed, object);
            }
        }
    }
}
