//! Request bodies in Kong's three encodings, turned into one JSON value.
//!
//! Form and multipart bodies use Kong's key syntax: dotted keys for nesting (`config.issuer=`),
//! repeated keys, `k[]=` or `k[1]=` for arrays, and an empty value for `null`. Their values are
//! strings, so validation then runs with string coercion on.
//!
//! Everything here runs on input from the network, so it is bounded before it is walked: a body
//! has at most [`MAX_FIELDS`] form fields or parts, a key at most [`MAX_KEY_LEN`] bytes and
//! [`MAX_DEPTH`] levels, and JSON at most [`MAX_DEPTH`] levels of nesting. The tree builder below
//! recurses once per key level, so its depth is [`MAX_DEPTH`] at most. Past a limit the answer is
//! Kong's schema-violation 400 (or "Cannot parse JSON body" for JSON, which is what Kong's cjson
//! says of a document nested too deep).

use crate::error::AdminError;
use bytes::Bytes;
use gatehouse_core::schema::{FieldErrors, Mode, Seg as Path};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Largest body the Admin API reads by default: Kong's `nginx_admin_client_max_body_size`
/// (`10m`). The `admin_max_body_size` setting changes it.
pub const DEFAULT_MAX_BODY: usize = 10 * 1024 * 1024;

/// Most form fields or multipart parts in one body. Kong's `lua_max_post_args` allows at most
/// 1000 (default 100) and silently drops the rest; dropping fields would change what is written,
/// so past this many the body is refused.
pub const MAX_FIELDS: usize = 1000;

/// Deepest nesting of a form key (`a.b[1].c` is 4 levels) or of a JSON body. Kong's deepest
/// schemas (an `openid-connect` config inside a declarative document) need about ten.
pub const MAX_DEPTH: usize = 32;

/// Longest form key, in bytes. Map keys (header names, claim names) are the long ones.
pub const MAX_KEY_LEN: usize = 1024;

const JSON_ERROR: &str = "Cannot parse JSON body";

/// A parsed body and how it must be validated.
pub struct Body {
    /// The body as a JSON object.
    pub value: Map<String, Value>,
    /// Coercion rules for its encoding.
    pub mode: Mode,
}

/// A refusal that answers Kong's schema-violation body, naming no field: the offending key may be
/// thousands of levels deep, and echoing it as a `fields` path would rebuild what was refused.
fn too_much(msg: String) -> AdminError {
    AdminError::Schema(FieldErrors::one(vec![Path::Key("@entity".into())], msg))
}

/// Parses a JSON document after checking, without recursion, that it nests at most
/// [`MAX_DEPTH`] levels; anything else answers Kong's "Cannot parse JSON body".
pub fn json(bytes: &[u8]) -> Result<Value, AdminError> {
    if json_depth(bytes) > MAX_DEPTH {
        return Err(AdminError::BadRequest(JSON_ERROR.into()));
    }
    serde_json::from_slice(bytes).map_err(|_| AdminError::BadRequest(JSON_ERROR.into()))
}

/// The deepest nesting of `[`/`{` outside strings. Malformed input gives some number; the parser
/// then refuses it anyway.
fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Parses `bytes` according to `content_type`.
pub async fn parse(content_type: Option<&str>, bytes: Bytes) -> Result<Body, AdminError> {
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    let form = Mode { coerce_strings: true };
    if bytes.iter().all(u8::is_ascii_whitespace) && !ct.starts_with("multipart/") {
        return Ok(Body { value: Map::new(), mode: Mode::default() });
    }
    if ct.starts_with("application/json") || ct.is_empty() && bytes.first() == Some(&b'{') {
        return match json(&bytes)? {
            Value::Object(o) => Ok(Body { value: o, mode: Mode::default() }),
            _ => Err(AdminError::BadRequest(JSON_ERROR.into())),
        };
    }
    if ct.starts_with("application/x-www-form-urlencoded") || ct.is_empty() {
        let mut pairs = Vec::new();
        for pair in form_urlencoded::parse(&bytes) {
            if pairs.len() == MAX_FIELDS {
                return Err(too_many_fields());
            }
            pairs.push((pair.0.into_owned(), pair.1.into_owned()));
        }
        return Ok(Body { value: from_pairs(pairs)?, mode: form });
    }
    if ct.starts_with("multipart/form-data") {
        // The boundary is case-sensitive: read it from the header as sent, not the lowercased copy.
        let boundary = multer::parse_boundary(content_type.unwrap_or(""))
            .map_err(|_| AdminError::BadRequest("Cannot parse multipart body: missing boundary".into()))?;
        let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(bytes) });
        let mut mp = multer::Multipart::new(stream, boundary);
        let mut pairs = Vec::new();
        loop {
            match mp.next_field().await {
                Ok(Some(field)) => {
                    if pairs.len() == MAX_FIELDS {
                        return Err(too_many_fields());
                    }
                    let name = field.name().unwrap_or_default().to_string();
                    let text = field
                        .text()
                        .await
                        .map_err(|e| AdminError::BadRequest(format!("Cannot parse multipart body: {e}")))?;
                    pairs.push((name, text));
                }
                Ok(None) => break,
                Err(e) => return Err(AdminError::BadRequest(format!("Cannot parse multipart body: {e}"))),
            }
        }
        return Ok(Body { value: from_pairs(pairs)?, mode: form });
    }
    Err(AdminError::UnsupportedMediaType)
}

fn too_many_fields() -> AdminError {
    too_much(format!("too many fields: at most {MAX_FIELDS} form fields or parts are accepted"))
}

enum Node {
    Leaf(Vec<Value>),
    Obj(BTreeMap<String, Node>, Vec<String>),
    Arr(BTreeMap<usize, Node>, Vec<Node>),
}

enum Seg {
    Key(String),
    Index(usize),
    Push,
}

/// Splits a form key into its levels, refusing keys longer than [`MAX_KEY_LEN`] or deeper than
/// [`MAX_DEPTH`] before building anything from them.
fn segments(key: &str) -> Result<Vec<Seg>, AdminError> {
    if key.len() > MAX_KEY_LEN {
        return Err(too_much(format!("form key too long: at most {MAX_KEY_LEN} bytes are accepted")));
    }
    let shown: String = key.chars().take(64).collect();
    let bad = || AdminError::BadRequest(format!("invalid form key: '{shown}'"));
    let too_deep = || too_much(format!("form key nested too deep: at most {MAX_DEPTH} levels are accepted"));
    let mut out = Vec::new();
    for part in key.split('.') {
        if out.len() >= MAX_DEPTH {
            return Err(too_deep());
        }
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if name.is_empty() {
            return Err(bad());
        }
        out.push(Seg::Key(name.to_string()));
        while let Some(r) = rest.strip_prefix('[') {
            if out.len() >= MAX_DEPTH {
                return Err(too_deep());
            }
            let end = r.find(']').ok_or_else(bad)?;
            let inner = &r[..end];
            out.push(if inner.is_empty() { Seg::Push } else { Seg::Index(inner.parse().map_err(|_| bad())?) });
            rest = &r[end + 1..];
        }
        if !rest.is_empty() {
            return Err(bad());
        }
    }
    Ok(out)
}

/// Recursive, one level per key segment: [`segments`] bounds that to [`MAX_DEPTH`].
fn insert(node: &mut Node, segs: &[Seg], value: Value) -> Result<(), AdminError> {
    let conflict = || AdminError::BadRequest("form keys mix a value and a nested object for the same field".into());
    let Some((first, rest)) = segs.split_first() else {
        match node {
            Node::Leaf(v) => v.push(value),
            _ => return Err(conflict()),
        }
        return Ok(());
    };
    let fresh = |rest: &[Seg]| match rest.first() {
        None => Node::Leaf(Vec::new()),
        Some(Seg::Key(_)) => Node::Obj(BTreeMap::new(), Vec::new()),
        Some(_) => Node::Arr(BTreeMap::new(), Vec::new()),
    };
    match (node, first) {
        (Node::Obj(map, order), Seg::Key(k)) => {
            if !map.contains_key(k) {
                order.push(k.clone());
                map.insert(k.clone(), fresh(rest));
            }
            insert(map.get_mut(k).ok_or_else(conflict)?, rest, value)
        }
        (Node::Arr(map, _), Seg::Index(i)) => insert(map.entry(*i).or_insert_with(|| fresh(rest)), rest, value),
        (Node::Arr(_, pushed), Seg::Push) => {
            let mut n = fresh(rest);
            insert(&mut n, rest, value)?;
            pushed.push(n);
            Ok(())
        }
        // `k=a` then `k[]=b`: treat the plain values as array elements too.
        (n @ Node::Leaf(_), Seg::Index(_) | Seg::Push) => {
            let Node::Leaf(vals) = std::mem::replace(n, Node::Arr(BTreeMap::new(), Vec::new())) else {
                return Err(conflict());
            };
            if let Node::Arr(_, pushed) = n {
                pushed.extend(vals.into_iter().map(|v| Node::Leaf(vec![v])));
            }
            insert(n, segs, value)
        }
        _ => Err(conflict()),
    }
}

/// Recursive over a tree that [`insert`] built, so at most [`MAX_DEPTH`] levels deep.
fn finish(node: Node) -> Value {
    match node {
        Node::Leaf(mut v) if v.len() == 1 => v.pop().unwrap_or(Value::Null),
        Node::Leaf(v) => Value::Array(v),
        Node::Obj(mut map, order) => {
            let mut out = Map::new();
            for k in order {
                if let Some(n) = map.remove(&k) {
                    out.insert(k, finish(n));
                }
            }
            Value::Object(out)
        }
        Node::Arr(map, pushed) => Value::Array(map.into_values().chain(pushed).map(finish).collect()),
    }
}

/// Builds the nested value from decoded `key=value` pairs.
pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<Map<String, Value>, AdminError> {
    let mut root = Node::Obj(BTreeMap::new(), Vec::new());
    for (k, v) in pairs {
        let value = if v.is_empty() { Value::Null } else { Value::String(v) };
        insert(&mut root, &segments(&k)?, value)?;
    }
    match finish(root) {
        Value::Object(o) => Ok(o),
        _ => Ok(Map::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn check(form: &str, expect: Value) {
        assert_eq!(Value::Object(from_pairs(pairs_of(form)).unwrap()), expect);
    }

    #[test]
    fn form_keys_follow_kongs_syntax() {
        check("name=x&config.auth_methods=password", json!({"name": "x", "config": {"auth_methods": "password"}}));
        check("paths=/a&paths=/b", json!({"paths": ["/a", "/b"]}));
        check("paths[]=/a&paths[]=/b", json!({"paths": ["/a", "/b"]}));
        check("paths[2]=/b&paths[1]=/a", json!({"paths": ["/a", "/b"]}));
        check("config.hosts[1]=h&config.x=", json!({"config": {"hosts": ["h"], "x": null}}));
        check("service.id=abc", json!({"service": {"id": "abc"}}));
    }

    #[test]
    fn malformed_form_keys_are_refused() {
        for bad in ["a[=1", "a..b=1", "a[x]=1", "a=1&a.b=2"] {
            assert!(from_pairs(pairs_of(bad)).is_err(), "{bad}");
        }
    }

    fn pairs_of(form: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(form.as_bytes()).into_owned().collect()
    }

    /// The body of Kong's schema violation for a refusal, or `None` for anything else.
    fn refusal(e: AdminError) -> Option<String> {
        match e {
            AdminError::Schema(errs) => Some(crate::error::schema_message(&errs)),
            _ => None,
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(f)
    }

    fn multipart(parts: &[(&str, &str)]) -> (String, Bytes) {
        let boundary = "XyZzY-Boundary";
        let mut body = String::new();
        for (name, value) in parts {
            body.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str(&format!("--{boundary}--\r\n"));
        (format!("multipart/form-data; boundary={boundary}"), Bytes::from(body))
    }

    // The issue: `a.a.a….a=1`, 3000 levels, overflowed the stack and aborted the process.
    #[test]
    fn a_key_3000_levels_deep_is_refused_without_recursion() {
        let key = vec!["a"; 3000].join(".");
        let err = from_pairs(vec![(key, "1".into())]).err().and_then(refusal);
        assert_eq!(err.as_deref(), Some("schema violation (form key too long: at most 1024 bytes are accepted)"));
        let key = vec!["a"; MAX_DEPTH + 1].join(".");
        let err = from_pairs(vec![(key, "1".into())]).err().and_then(refusal);
        assert_eq!(err.as_deref(), Some("schema violation (form key nested too deep: at most 32 levels are accepted)"));
        let key = format!("a{}", "[]".repeat(MAX_DEPTH));
        assert!(from_pairs(vec![(key, "1".into())]).err().and_then(refusal).is_some());
        let key = vec!["a"; MAX_DEPTH].join(".");
        assert!(from_pairs(vec![(key, "1".into())]).is_ok(), "exactly the limit is accepted");
    }

    #[test]
    fn too_many_form_fields_or_parts_are_refused() {
        let form: Vec<String> = (0..=MAX_FIELDS).map(|i| format!("k{i}=v")).collect();
        let err = block_on(parse(Some("application/x-www-form-urlencoded"), Bytes::from(form.join("&"))));
        assert!(err.err().and_then(refusal).is_some_and(|m| m.contains("too many fields")));
        let names: Vec<String> = (0..=MAX_FIELDS).map(|i| format!("k{i}")).collect();
        let parts: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
        let (ct, body) = multipart(&parts);
        let err = block_on(parse(Some(&ct), body));
        assert!(err.err().and_then(refusal).is_some_and(|m| m.contains("too many fields")));
        let ok = block_on(parse(Some(&ct), multipart(&parts[..MAX_FIELDS]).1));
        assert_eq!(ok.map(|b| b.value.len()).ok(), Some(MAX_FIELDS));
    }

    #[test]
    fn json_nested_past_the_limit_cannot_be_parsed() {
        let deep = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n - 1), "]".repeat(n - 1));
        assert!(json(deep(MAX_DEPTH).as_bytes()).is_ok());
        for n in [MAX_DEPTH + 1, 100_000] {
            let err = json(deep(n).as_bytes()).err().map(|e| e.to_string());
            assert_eq!(err.as_deref(), Some(JSON_ERROR));
        }
        // Brackets inside strings are not nesting.
        let text = format!("{{\"a\":\"{}\\\"{}\"}}", "[".repeat(100), "{".repeat(100));
        assert!(json(text.as_bytes()).is_ok());
    }

    #[test]
    fn multipart_boundaries_keep_their_case() {
        let (ct, body) = multipart(&[("name", "x"), ("config.a", "b")]);
        let b = block_on(parse(Some(&ct), body)).map(|b| Value::Object(b.value)).ok();
        assert_eq!(b, Some(json!({"name": "x", "config": {"a": "b"}})));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Values a form can carry: objects and arrays that are not empty, non-empty strings.
        fn form_value() -> impl Strategy<Value = Value> {
            let leaf = "[a-zA-Z0-9 /:_-]{1,8}".prop_map(Value::String);
            leaf.prop_recursive(4, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 1..4).prop_map(Value::Array),
                    prop::collection::btree_map("[a-z_]{1,6}", inner, 1..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn root() -> impl Strategy<Value = Map<String, Value>> {
            prop::collection::btree_map("[a-z_]{1,6}", form_value(), 1..4).prop_map(|m| m.into_iter().collect())
        }

        /// Kong's form encoding of `v` under `key`: dotted objects, 1-based indexes.
        fn encode(key: &str, v: &Value, out: &mut Vec<(String, String)>) {
            match v {
                Value::Object(o) => o.iter().for_each(|(k, v)| encode(&format!("{key}.{k}"), v, out)),
                Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| encode(&format!("{key}[{}]", i + 1), v, out)),
                Value::String(s) => out.push((key.to_string(), s.clone())),
                other => out.push((key.to_string(), other.to_string())),
            }
        }

        fn encoded(m: &Map<String, Value>) -> Vec<(String, String)> {
            let mut out = Vec::new();
            m.iter().for_each(|(k, v)| encode(k, v, &mut out));
            out
        }

        proptest! {

            #[test]
            fn urlencoded_forms_round_trip(m in root()) {
                let mut ser = form_urlencoded::Serializer::new(String::new());
                encoded(&m).iter().for_each(|(k, v)| { ser.append_pair(k, v); });
                let body = block_on(parse(Some("application/x-www-form-urlencoded"), Bytes::from(ser.finish())));
                prop_assert_eq!(body.map(|b| b.value).ok(), Some(m));
            }

            #[test]
            fn multipart_forms_round_trip(m in root()) {
                let pairs = encoded(&m);
                let parts: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let (ct, body) = multipart(&parts);
                prop_assert_eq!(block_on(parse(Some(&ct), body)).map(|b| b.value).ok(), Some(m));
            }

            #[test]
            fn any_form_body_parses_or_is_refused_without_panicking(
                raw in prop::collection::vec(any::<u8>(), 0..512),
                keys in prop::collection::vec("[a-z.\\[\\]0-9]{0,40}", 0..16),
            ) {
                let _ = block_on(parse(Some("application/x-www-form-urlencoded"), Bytes::from(raw.clone())));
                let _ = block_on(parse(Some("multipart/form-data; boundary=b"), Bytes::from(raw.clone())));
                let _ = block_on(parse(None, Bytes::from(raw)));
                let _ = from_pairs(keys.into_iter().map(|k| (k, "v".to_string())).collect());
            }

            #[test]
            fn deep_or_long_keys_are_refused_cleanly(depth in (MAX_DEPTH + 1)..400, arrays in any::<bool>()) {
                let key = if arrays { format!("k{}", "[1]".repeat(depth)) } else { vec!["k"; depth].join(".") };
                let form = format!("{}=1", key);
                let err = block_on(parse(Some("application/x-www-form-urlencoded"), Bytes::from(form)));
                prop_assert!(err.err().and_then(refusal).is_some());
                let (ct, body) = multipart(&[(&key, "1")]);
                prop_assert!(block_on(parse(Some(&ct), body)).err().and_then(refusal).is_some());
            }

            #[test]
            fn json_nesting_is_refused_past_the_limit(depth in 1usize..200) {
                let text = format!("{{\"a\":{}1{}}}", "[".repeat(depth), "]".repeat(depth));
                prop_assert_eq!(json(text.as_bytes()).is_ok(), depth < MAX_DEPTH);
            }
        }
    }
}
