//! Authorization checks on claims: `scopes_required`, `audience_required`, `groups_required`,
//! `roles_required`, each read at its `*_claim` path.
//!
//! Kong's semantics: the claim value (a space-separated string, an array, or a scalar) becomes a
//! set of words. The required list is an OR of entries; the words inside one entry are ANDed:
//! `["employee marketing", "admin"]` passes for someone who is (employee AND marketing) OR admin.

use serde_json::{Map, Value};

/// Walks `path` from the top of `claims`. A numeric segment indexes an array (1-based, as Kong's
/// Lua tables are).
pub fn find<'a>(claims: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut v = claims.get(first)?;
    for seg in rest {
        v = match v {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?.checked_sub(1)?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// The words a claim value stands for.
fn words(v: &Value) -> Vec<&str> {
    fn push<'a>(out: &mut Vec<&'a str>, v: &'a Value) {
        match v {
            Value::String(s) => out.extend(s.split_whitespace()),
            Value::Array(a) => a.iter().for_each(|x| push(out, x)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    push(&mut out, v);
    out
}

/// Whether `value` satisfies `required` (OR of entries, AND of the words of an entry). Numbers
/// and booleans compare as their text.
pub fn satisfies(value: &Value, required: &[String]) -> bool {
    let owned;
    let have: Vec<&str> = match value {
        Value::Number(_) | Value::Bool(_) => {
            owned = value.to_string();
            vec![owned.as_str()]
        }
        v => words(v),
    };
    required.iter().any(|entry| {
        let mut any = false;
        let all = entry.split_whitespace().all(|w| {
            any = true;
            have.contains(&w)
        });
        any && all
    })
}

/// One configured check.
#[derive(Clone, Debug)]
pub struct Requirement {
    /// The check's name in logs (`scopes`, `audience`, `groups`, `roles`).
    pub name: &'static str,
    /// The claim path.
    pub claim: Vec<String>,
    /// The required entries.
    pub required: Vec<String>,
}

/// Runs every requirement against the first source that has the claim (introspection, then the
/// access token). Returns the failing requirement's log message.
pub fn check(reqs: &[Requirement], sources: &[&Map<String, Value>]) -> Result<(), String> {
    for r in reqs {
        let value = sources.iter().find_map(|s| find(s, &r.claim));
        match value {
            None => return Err(format!("{} required but no {} found", r.name, r.name)),
            Some(v) if !satisfies(v, &r.required) => {
                return Err(format!("required {} were not found [ {} ]", r.name, r.required.join(", ")));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    fn req(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn or_of_entries_and_of_words() {
        let scope = json!("openid email profile");
        assert!(satisfies(&scope, &req(&["email"])));
        assert!(satisfies(&scope, &req(&["email profile"])));
        assert!(!satisfies(&scope, &req(&["email admin"])));
        assert!(satisfies(&scope, &req(&["email admin", "openid"])));
        assert!(!satisfies(&scope, &req(&["admin", "write"])));
        assert!(!satisfies(&scope, &req(&[""])));
        let groups = json!(["users", "admins"]);
        assert!(satisfies(&groups, &req(&["admins users"])));
        assert!(!satisfies(&groups, &req(&["root"])));
        assert!(satisfies(&json!(42), &req(&["42"])));
    }

    #[test]
    fn paths_walk_objects_and_arrays() {
        let c = obj(json!({"realm_access": {"roles": ["a", "b"]}, "list": [{"x": "y"}]}));
        let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(find(&c, &path(&["realm_access", "roles"])), Some(&json!(["a", "b"])));
        assert_eq!(find(&c, &path(&["list", "1", "x"])), Some(&json!("y")));
        assert_eq!(find(&c, &path(&["list", "0", "x"])), None);
        assert_eq!(find(&c, &path(&["nope"])), None);
    }

    #[test]
    fn first_source_with_the_claim_decides() {
        let intro = obj(json!({"scope": "read"}));
        let at = obj(json!({"scope": "read write", "aud": "account"}));
        let r = |name, claim: &str, required: &[&str]| Requirement {
            name,
            claim: vec![claim.into()],
            required: req(required),
        };
        assert!(check(&[r("scopes", "scope", &["write"])], &[&at]).is_ok());
        assert!(check(&[r("scopes", "scope", &["write"])], &[&intro, &at]).is_err());
        assert!(check(&[r("audience", "aud", &["account"])], &[&intro, &at]).is_ok());
        let e = check(&[r("groups", "groups", &["x"])], &[&at]).expect_err("missing");
        assert_eq!(e, "groups required but no groups found");
    }
}
