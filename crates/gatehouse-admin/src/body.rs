//! Request bodies in Kong's three encodings, turned into one JSON value.
//!
//! Form and multipart bodies use Kong's key syntax: dotted keys for nesting (`config.issuer=`),
//! repeated keys, `k[]=` or `k[1]=` for arrays, and an empty value for `null`. Their values are
//! strings, so validation then runs with string coercion on.

use crate::error::AdminError;
use bytes::Bytes;
use gatehouse_core::schema::Mode;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Largest body the Admin API reads.
pub const MAX_BODY: usize = 1024 * 1024;

/// A parsed body and how it must be validated.
pub struct Body {
    /// The body as a JSON object.
    pub value: Map<String, Value>,
    /// Coercion rules for its encoding.
    pub mode: Mode,
}

/// Parses `bytes` according to `content_type`.
pub async fn parse(content_type: Option<&str>, bytes: Bytes) -> Result<Body, AdminError> {
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    let form = Mode { coerce_strings: true };
    if bytes.iter().all(u8::is_ascii_whitespace) && !ct.starts_with("multipart/") {
        return Ok(Body { value: Map::new(), mode: Mode::default() });
    }
    if ct.starts_with("application/json") || ct.is_empty() && bytes.first() == Some(&b'{') {
        return match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(o)) => Ok(Body { value: o, mode: Mode::default() }),
            _ => Err(AdminError::BadRequest("Cannot parse JSON body".into())),
        };
    }
    if ct.starts_with("application/x-www-form-urlencoded") || ct.is_empty() {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(&bytes).into_owned().collect();
        return Ok(Body { value: from_pairs(pairs)?, mode: form });
    }
    if ct.starts_with("multipart/form-data") {
        let boundary = multer::parse_boundary(&ct)
            .map_err(|_| AdminError::BadRequest("Cannot parse multipart body: missing boundary".into()))?;
        let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(bytes) });
        let mut mp = multer::Multipart::new(stream, boundary);
        let mut pairs = Vec::new();
        loop {
            match mp.next_field().await {
                Ok(Some(field)) => {
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

fn segments(key: &str) -> Result<Vec<Seg>, AdminError> {
    let bad = || AdminError::BadRequest(format!("invalid form key: '{key}'"));
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if name.is_empty() {
            return Err(bad());
        }
        out.push(Seg::Key(name.to_string()));
        while let Some(r) = rest.strip_prefix('[') {
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
        let pairs = form_urlencoded::parse(form.as_bytes()).into_owned().collect();
        assert_eq!(Value::Object(from_pairs(pairs).unwrap()), expect);
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
            let pairs = form_urlencoded::parse(bad.as_bytes()).into_owned().collect();
            assert!(from_pairs(pairs).is_err(), "{bad}");
        }
    }
}
