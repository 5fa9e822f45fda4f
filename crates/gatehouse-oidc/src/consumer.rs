//! Consumer mapping (`consumer_claim`, `consumer_by`, `by_username_ignore_case`,
//! `consumer_optional`, `anonymous`) and the `X-Consumer-*` headers Kong sets upstream.

use crate::authz::find;
use gatehouse_core::consumers::{ConsumerBy, Consumers};
use gatehouse_core::entity::Consumer;
use http::{HeaderMap, HeaderValue};
use serde_json::{Map, Value};
use std::sync::Arc;

/// The headers Kong sets for a consumer; the spoofing guard removes them from every request.
pub const CONSUMER_HEADERS: [&str; 4] =
    ["x-consumer-id", "x-consumer-custom-id", "x-consumer-username", "x-anonymous-consumer"];

/// How a claim becomes a consumer.
#[derive(Clone, Debug)]
pub struct Mapping {
    /// `consumer_claims` (or `[consumer_claim]`): paths tried in order.
    pub claims: Vec<Vec<String>>,
    /// `consumer_by`: fields tried in order.
    pub by: Vec<ConsumerBy>,
    /// `by_username_ignore_case`.
    pub ignore_case: bool,
}

/// A claim value as a lookup key: strings as they are, numbers as text, arrays joined by spaces.
fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(a) if !a.is_empty() => {
            Some(a.iter().filter_map(key_text).collect::<Vec<_>>().join(" ")).filter(|s| !s.is_empty())
        }
        _ => None,
    }
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes()
            .enumerate()
            .all(|(i, b)| if matches!(i, 8 | 13 | 18 | 23) { b == b'-' } else { b.is_ascii_hexdigit() })
}

impl Mapping {
    /// Finds the consumer named by the first claim found in `sources` (Kong's order:
    /// introspection, ID token, access token, userinfo). `Err` says why none was found.
    pub fn find(&self, consumers: &Consumers, sources: &[&Map<String, Value>]) -> Result<Arc<Consumer>, String> {
        for path in &self.claims {
            let Some(value) = sources.iter().find_map(|s| find(s, path)).and_then(key_text) else { continue };
            for by in &self.by {
                // Kong only tries `id` with a UUID-shaped subject.
                if *by == ConsumerBy::Id && !is_uuid(&value) {
                    continue;
                }
                if let Some(c) = consumers.find(*by, &value, self.ignore_case) {
                    return Ok(c.clone());
                }
            }
            return Err(format!("consumer for claim ({}) was not found", path.join(".")));
        }
        let names: Vec<String> = self.claims.iter().map(|p| p.join(".")).collect();
        Err(format!("claim ({}) was not found for consumer mapping", names.join(", ")))
    }
}

fn set_or_clear(headers: &mut HeaderMap, name: &'static str, value: Option<&str>) {
    match value.and_then(|v| HeaderValue::from_str(v).ok()) {
        Some(v) => {
            headers.insert(name, v);
        }
        None => {
            headers.remove(name);
        }
    }
}

/// Sets the `X-Consumer-*` headers for `consumer` (clearing the ones it has no value for), and
/// `X-Anonymous-Consumer: true` when it is the anonymous fallback. `None` clears them all.
pub fn set_headers(headers: &mut HeaderMap, consumer: Option<&Consumer>, anonymous: bool) {
    set_or_clear(headers, CONSUMER_HEADERS[0], consumer.map(|c| c.id.as_str()));
    set_or_clear(headers, CONSUMER_HEADERS[1], consumer.and_then(|c| c.custom_id.as_deref()));
    set_or_clear(headers, CONSUMER_HEADERS[2], consumer.and_then(|c| c.username.as_deref()));
    set_or_clear(headers, CONSUMER_HEADERS[3], (anonymous && consumer.is_some()).then_some("true"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn consumers() -> Consumers {
        Consumers::new([
            Consumer {
                id: "0b0e2a52-8b1f-4c4e-9d6c-111111111111".into(),
                username: Some("John".into()),
                custom_id: None,
            },
            Consumer { id: "c2".into(), username: Some("svc".into()), custom_id: Some("abc".into()) },
        ])
    }

    fn mapping(claim: &str, by: &[ConsumerBy], ignore_case: bool) -> Mapping {
        Mapping { claims: vec![vec![claim.into()]], by: by.to_vec(), ignore_case }
    }

    #[test]
    fn maps_by_each_field_in_order() {
        let cs = consumers();
        let claims = json!({"preferred_username": "john", "cid": "abc", "sub": "0b0e2a52-8b1f-4c4e-9d6c-111111111111"});
        let claims = claims.as_object().expect("object");
        let m = mapping("preferred_username", &[ConsumerBy::Username, ConsumerBy::CustomId], false);
        assert!(m.find(&cs, &[claims]).is_err());
        let m = mapping("preferred_username", &[ConsumerBy::Username], true);
        assert_eq!(m.find(&cs, &[claims]).expect("found").id, "0b0e2a52-8b1f-4c4e-9d6c-111111111111");
        let m = mapping("cid", &[ConsumerBy::Username, ConsumerBy::CustomId], false);
        assert_eq!(m.find(&cs, &[claims]).expect("found").id, "c2");
        let m = mapping("sub", &[ConsumerBy::Id], false);
        assert!(m.find(&cs, &[claims]).is_ok());
        let m = mapping("missing", &[ConsumerBy::Id], false);
        assert_eq!(m.find(&cs, &[claims]).expect_err("none"), "claim (missing) was not found for consumer mapping");
    }

    #[test]
    fn headers_are_set_and_cleared() {
        let mut h = HeaderMap::new();
        h.insert("x-consumer-custom-id", "spoofed".parse().expect("value"));
        let c = Consumer { id: "1".into(), username: Some("u".into()), custom_id: None };
        set_headers(&mut h, Some(&c), true);
        assert_eq!(h["x-consumer-id"], "1");
        assert_eq!(h["x-consumer-username"], "u");
        assert!(h.get("x-consumer-custom-id").is_none());
        assert_eq!(h["x-anonymous-consumer"], "true");
        set_headers(&mut h, None, false);
        assert!(CONSUMER_HEADERS.iter().all(|n| h.get(*n).is_none()));
    }
}
