//! A small schema language shared by entities and plugin configs.
//!
//! Kong describes every entity and every plugin config with one schema DSL and validates them the same
//! way: fields are nullable unless required, defaults are filled in, unknown fields are refused and
//! errors are reported per field. We do the same, so a `config.issuer: required field missing` from the
//! Admin API and a `services[0].routes[1].paths[0]: ...` from `gatehouse config check` come from the same code.
//!
//! Validation takes a `serde_json::Value` (whatever the body encoding was) and returns the normalized
//! value: every field present, in schema order, defaults filled, unset = `null`.

use serde_json::{Map, Value};
use std::fmt;

/// The type of a field's value.
#[derive(Clone, Debug)]
pub enum Type {
    /// A JSON string.
    String,
    /// A whole number.
    Integer,
    /// Any JSON number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// An ordered list whose elements follow the inner field.
    Array(Box<Field>),
    /// A list whose elements follow the inner field and must be distinct.
    Set(Box<Field>),
    /// An object with string keys whose values follow the inner field.
    Map(Box<Field>),
    /// A nested record.
    Record(Record),
    /// A reference to another entity, `{"id": "<uuid>"}`. Names are resolved to ids before validation.
    Foreign(&'static str),
    /// A UUID in its canonical text form.
    Uuid,
    /// Any JSON value, validated by a custom check if one is given.
    Any,
}

/// A custom validator: returns the error message for a bad value.
pub type Check = fn(&Value) -> Result<(), String>;

/// A record-level validator, run after all fields are valid. Errors land under `@entity`.
pub type EntityCheck = fn(&Map<String, Value>) -> Result<(), String>;

/// One field of a record.
#[derive(Clone, Debug)]
pub struct Field {
    /// The field's name as the Admin API spells it.
    pub name: &'static str,
    /// Its type.
    pub ty: Type,
    /// Whether a missing or `null` value is an error (after defaults are applied).
    pub required: bool,
    /// The value used when none is given.
    pub default: Option<Value>,
    /// The allowed values, for enumerations.
    pub one_of: Option<&'static [&'static str]>,
    /// Inclusive bounds for integers.
    pub between: Option<(i64, i64)>,
    /// Minimum length of a string.
    pub len_min: Option<usize>,
    /// Extra check on a non-null value.
    pub check: Option<Check>,
    /// Whether the Admin API output hides the value (write-only shorthands such as a service's `url`).
    pub shorthand: bool,
    /// Whether the value is a secret (logged as redacted).
    pub secret: bool,
}

/// A set of fields plus record-level checks.
#[derive(Clone, Debug, Default)]
pub struct Record {
    /// Fields in output order.
    pub fields: Vec<Field>,
    /// Checks run once every field is valid.
    pub entity_checks: Vec<EntityCheck>,
}

/// One segment of the path to a bad value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    /// A record field or map key.
    Key(String),
    /// An array index (zero-based).
    Index(usize),
}

/// Everything wrong with one input, each with the path to the bad value.
///
/// Entity-level errors use the key `@entity`, as Kong does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors {
    /// `(path, message)` pairs in the order they were found.
    pub errors: Vec<(Vec<Seg>, String)>,
}

/// Options that differ between body encodings.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mode {
    /// Form bodies carry only strings: turn `"5"`, `"true"` and single values into the declared type.
    pub coerce_strings: bool,
}

// === impl Field ===

impl Field {
    fn new(name: &'static str, ty: Type) -> Self {
        Field {
            name,
            ty,
            required: false,
            default: None,
            one_of: None,
            between: None,
            len_min: None,
            check: None,
            shorthand: false,
            secret: false,
        }
    }
    /// A string field.
    pub fn string(name: &'static str) -> Self {
        Self::new(name, Type::String)
    }
    /// An integer field.
    pub fn integer(name: &'static str) -> Self {
        Self::new(name, Type::Integer)
    }
    /// A number field.
    pub fn number(name: &'static str) -> Self {
        Self::new(name, Type::Number)
    }
    /// A boolean field.
    pub fn boolean(name: &'static str) -> Self {
        Self::new(name, Type::Boolean)
    }
    /// A UUID field.
    pub fn uuid(name: &'static str) -> Self {
        Self::new(name, Type::Uuid)
    }
    /// A field of any JSON.
    pub fn any(name: &'static str) -> Self {
        Self::new(name, Type::Any)
    }
    /// An array of `elem`.
    pub fn array(name: &'static str, elem: Field) -> Self {
        Self::new(name, Type::Array(Box::new(elem)))
    }
    /// A set of `elem`.
    pub fn set(name: &'static str, elem: Field) -> Self {
        Self::new(name, Type::Set(Box::new(elem)))
    }
    /// A map from strings to `value`.
    pub fn map(name: &'static str, value: Field) -> Self {
        Self::new(name, Type::Map(Box::new(value)))
    }
    /// A nested record.
    pub fn record(name: &'static str, record: Record) -> Self {
        Self::new(name, Type::Record(record))
    }
    /// A foreign key to the entity collection `entity` (e.g. `services`).
    pub fn foreign(name: &'static str, entity: &'static str) -> Self {
        Self::new(name, Type::Foreign(entity))
    }
    /// An array of strings, the most common list shape.
    pub fn strings(name: &'static str) -> Self {
        Self::array(name, Field::string("element"))
    }
    /// Marks the field required.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    /// Sets the default.
    pub fn default(mut self, v: Value) -> Self {
        self.default = Some(v);
        self
    }
    /// Restricts the value to one of `values`.
    pub fn one_of(mut self, values: &'static [&'static str]) -> Self {
        self.one_of = Some(values);
        self
    }
    /// Restricts an integer to `lo..=hi`.
    pub fn between(mut self, lo: i64, hi: i64) -> Self {
        self.between = Some((lo, hi));
        self
    }
    /// Requires a string of at least `n` characters.
    pub fn len_min(mut self, n: usize) -> Self {
        self.len_min = Some(n);
        self
    }
    /// Adds a custom check.
    pub fn check(mut self, f: Check) -> Self {
        self.check = Some(f);
        self
    }
    /// Marks a write-only shorthand: accepted on input, never stored or shown.
    pub fn shorthand(mut self) -> Self {
        self.shorthand = true;
        self
    }
    /// Marks the value secret.
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// The field as Kong's `GET /schemas/...` describes it.
    pub fn describe(&self) -> Value {
        let mut m = Map::new();
        let ty = match &self.ty {
            Type::String | Type::Uuid => "string",
            Type::Integer => "integer",
            Type::Number => "number",
            Type::Boolean => "boolean",
            Type::Array(_) => "array",
            Type::Set(_) => "set",
            Type::Map(_) => "map",
            Type::Record(_) => "record",
            Type::Foreign(_) => "foreign",
            Type::Any => "json",
        };
        m.insert("type".into(), ty.into());
        if let Type::Uuid = self.ty {
            m.insert("uuid".into(), true.into());
        }
        if self.required {
            m.insert("required".into(), true.into());
        }
        if let Some(d) = &self.default {
            m.insert("default".into(), d.clone());
        }
        if let Some(o) = self.one_of {
            m.insert("one_of".into(), o.iter().map(|s| Value::from(*s)).collect());
        }
        if let Some((lo, hi)) = self.between {
            m.insert("between".into(), Value::from(vec![lo, hi]));
        }
        if let Some(n) = self.len_min {
            m.insert("len_min".into(), n.into());
        }
        if self.secret {
            m.insert("encrypted".into(), true.into());
        }
        match &self.ty {
            Type::Array(e) | Type::Set(e) => {
                m.insert("elements".into(), e.describe());
            }
            Type::Map(v) => {
                m.insert("keys".into(), serde_json::json!({"type": "string"}));
                m.insert("values".into(), v.describe());
            }
            Type::Record(r) => {
                m.insert("fields".into(), r.describe());
            }
            Type::Foreign(e) => {
                m.insert("reference".into(), (*e).into());
            }
            _ => {}
        }
        Value::Object(m)
    }
}

// === impl Record ===

impl Record {
    /// A record of `fields` with no entity checks.
    pub fn new(fields: Vec<Field>) -> Self {
        Record { fields, entity_checks: Vec::new() }
    }

    /// Adds a record-level check.
    pub fn entity_check(mut self, f: EntityCheck) -> Self {
        self.entity_checks.push(f);
        self
    }

    /// The field named `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The record as Kong's schema endpoint describes it: a list of one-key objects.
    pub fn describe(&self) -> Value {
        self.fields
            .iter()
            .map(|f| {
                let mut m = Map::new();
                m.insert(f.name.into(), f.describe());
                Value::Object(m)
            })
            .collect()
    }

    /// Validates `input` and returns it normalized: every field present in schema order, defaults
    /// filled in, unset fields `null`, shorthands dropped.
    pub fn validate(&self, input: &Value, mode: Mode) -> Result<Value, FieldErrors> {
        let mut errs = FieldErrors::default();
        let mut path = Vec::new();
        let out = self.validate_at(input, mode, &mut path, &mut errs);
        if errs.errors.is_empty() { Ok(out) } else { Err(errs) }
    }

    fn validate_at(&self, input: &Value, mode: Mode, path: &mut Vec<Seg>, errs: &mut FieldErrors) -> Value {
        let empty = Map::new();
        let obj = match input {
            Value::Object(o) => o,
            Value::Null => &empty,
            _ => {
                errs.push(path, "expected a record");
                return Value::Null;
            }
        };
        for key in obj.keys() {
            if self.field(key).is_none() {
                path.push(Seg::Key(key.clone()));
                errs.push(path, "unknown field");
                path.pop();
            }
        }
        let before = errs.errors.len();
        let mut out = Map::with_capacity(self.fields.len());
        for f in &self.fields {
            path.push(Seg::Key(f.name.to_string()));
            let v = f.validate_value(obj.get(f.name), mode, path, errs);
            path.pop();
            if !f.shorthand {
                out.insert(f.name.to_string(), v);
            }
        }
        if errs.errors.len() == before {
            for check in &self.entity_checks {
                if let Err(msg) = check(&out) {
                    path.push(Seg::Key("@entity".into()));
                    errs.push(path, msg);
                    path.pop();
                }
            }
        }
        Value::Object(out)
    }
}

impl Field {
    /// `v` is `None` when the input did not mention the field. As in Kong, a missing field takes its
    /// default while an explicit `null` stays `null` (a way to switch an optional feature off), unless
    /// the field is required.
    fn validate_value(&self, v: Option<&Value>, mode: Mode, path: &mut Vec<Seg>, errs: &mut FieldErrors) -> Value {
        let v = match (v, &self.default) {
            (None, Some(d)) => d.clone(),
            (Some(Value::Null), Some(d)) if self.required => d.clone(),
            (None | Some(Value::Null), _) => {
                // Records without a value still get their nested defaults, as Kong fills `config`.
                if let Type::Record(r) = &self.ty
                    && (self.required || r.fields.iter().any(|f| f.default.is_some() || f.required))
                {
                    return r.validate_at(&Value::Null, mode, path, errs);
                }
                if self.required {
                    errs.push(path, "required field missing");
                }
                return Value::Null;
            }
            (Some(v), _) => v.clone(),
        };
        let v = match self.coerce(v, mode, path, errs) {
            Some(v) => v,
            None => return Value::Null,
        };
        if let Some(allowed) = self.one_of {
            let ok = match &v {
                Value::String(s) => allowed.contains(&s.as_str()),
                Value::Number(n) => allowed.contains(&n.to_string().as_str()),
                _ => false,
            };
            if !ok {
                errs.push(path, format!("expected one of: {}", allowed.join(", ")));
                return v;
            }
        }
        if let (Some((lo, hi)), Some(n)) = (self.between, v.as_i64())
            && (n < lo || n > hi)
        {
            errs.push(path, format!("value should be between {lo} and {hi}"));
            return v;
        }
        if let (Some(min), Some(s)) = (self.len_min, v.as_str())
            && s.chars().count() < min
        {
            errs.push(path, format!("length must be at least {min}"));
            return v;
        }
        if let Some(check) = self.check
            && let Err(msg) = check(&v)
        {
            errs.push(path, msg);
        }
        v
    }

    /// Checks the type of a non-null value, coercing form strings where allowed.
    fn coerce(&self, v: Value, mode: Mode, path: &mut Vec<Seg>, errs: &mut FieldErrors) -> Option<Value> {
        let c = mode.coerce_strings;
        match (&self.ty, v) {
            (Type::String, Value::String(s)) => Some(Value::String(s)),
            (Type::String, _) => errs.fail(path, "expected a string"),
            (Type::Uuid, Value::String(s)) => {
                if uuid::Uuid::parse_str(&s).is_ok() {
                    Some(Value::String(s.to_ascii_lowercase()))
                } else {
                    errs.fail(path, "expected a valid UUID")
                }
            }
            (Type::Uuid, _) => errs.fail(path, "expected a string"),
            (Type::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => Some(Value::Number(n)),
            (Type::Integer, Value::Number(n)) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
                Some(Value::from(n.as_f64().unwrap_or_default() as i64))
            }
            (Type::Integer, Value::String(s)) if c && s.trim().parse::<i64>().is_ok() => {
                Some(Value::from(s.trim().parse::<i64>().unwrap_or_default()))
            }
            (Type::Integer, _) => errs.fail(path, "expected an integer"),
            (Type::Number, Value::Number(n)) => Some(Value::Number(n)),
            (Type::Number, Value::String(s)) if c && s.trim().parse::<f64>().is_ok() => {
                let f = s.trim().parse::<f64>().unwrap_or_default();
                Some(serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null))
            }
            (Type::Number, _) => errs.fail(path, "expected a number"),
            (Type::Boolean, Value::Bool(b)) => Some(Value::Bool(b)),
            (Type::Boolean, Value::String(s)) if c && (s == "true" || s == "false") => Some(Value::Bool(s == "true")),
            (Type::Boolean, _) => errs.fail(path, "expected a boolean"),
            (Type::Array(elem) | Type::Set(elem), v) => {
                let items = match v {
                    Value::Array(a) => a,
                    // A form body carries a one-element list as a plain value.
                    other @ (Value::String(_) | Value::Number(_) | Value::Bool(_)) if c => vec![other],
                    // An empty JSON object is how some clients (and Kong's Lua side) spell an empty list.
                    Value::Object(o) if o.is_empty() => Vec::new(),
                    _ => return errs.fail(path, "expected an array"),
                };
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    path.push(Seg::Index(i));
                    if item.is_null() {
                        errs.push(path, "required field missing");
                    } else {
                        let item = elem.validate_value(Some(&item), mode, path, errs);
                        if matches!(self.ty, Type::Set(_)) && out.contains(&item) {
                            // Kong removes duplicates from sets silently.
                        } else {
                            out.push(item);
                        }
                    }
                    path.pop();
                }
                Some(Value::Array(out))
            }
            (Type::Map(val), Value::Object(o)) => {
                let mut out = Map::with_capacity(o.len());
                for (k, item) in o {
                    path.push(Seg::Key(k.clone()));
                    let item = val.validate_value(Some(&item), mode, path, errs);
                    path.pop();
                    out.insert(k, item);
                }
                Some(Value::Object(out))
            }
            (Type::Map(_), _) => errs.fail(path, "expected a map"),
            (Type::Record(r), v @ Value::Object(_)) => Some(r.validate_at(&v, mode, path, errs)),
            (Type::Record(_), _) => errs.fail(path, "expected a record"),
            (Type::Foreign(_), Value::Object(o)) => {
                let mut out = Map::new();
                for (k, item) in o {
                    path.push(Seg::Key(k.clone()));
                    match (k.as_str(), item) {
                        ("id", Value::String(s)) if uuid::Uuid::parse_str(&s).is_ok() => {
                            out.insert("id".into(), Value::String(s.to_ascii_lowercase()));
                        }
                        ("id", _) => errs.push(path, "expected a valid UUID"),
                        _ => errs.push(path, "unknown field"),
                    }
                    path.pop();
                }
                if out.is_empty() && errs.errors.is_empty() {
                    path.push(Seg::Key("id".into()));
                    errs.push(path, "required field missing");
                    path.pop();
                }
                Some(Value::Object(out))
            }
            (Type::Foreign(_), _) => errs.fail(path, "expected a record"),
            (Type::Any, v) => Some(v),
        }
    }
}

// === impl FieldErrors ===

impl FieldErrors {
    /// An error list with one entry.
    pub fn one(path: Vec<Seg>, msg: impl Into<String>) -> Self {
        FieldErrors { errors: vec![(path, msg.into())] }
    }

    /// Records `msg` at `path`.
    pub fn push(&mut self, path: &[Seg], msg: impl Into<String>) {
        self.errors.push((path.to_vec(), msg.into()));
    }

    fn fail<T>(&mut self, path: &[Seg], msg: &str) -> Option<T> {
        self.push(path, msg);
        None
    }

    /// Whether nothing went wrong.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Adds `other`'s errors under the prefix `prefix`.
    pub fn extend_under(&mut self, prefix: &[Seg], other: FieldErrors) {
        for (p, m) in other.errors {
            let mut full = prefix.to_vec();
            full.extend(p);
            self.errors.push((full, m));
        }
    }

    /// Each error as `path: message`, paths written `a.b[0].c`.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.errors.iter().map(|(p, m)| format!("{}: {m}", path_string(p)))
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.lines().collect();
        f.write_str(&lines.join("; "))
    }
}

/// Writes a path as `a.b[0].c`.
pub fn path_string(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => {
                s.push('[');
                s.push_str(&i.to_string());
                s.push(']');
            }
        }
    }
    s
}

/// Merges `patch` into `base` the way a Kong PATCH does: objects merge key by key (recursively, so
/// `config` merges field by field), everything else is replaced.
pub fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(slot @ Value::Object(_)) if v.is_object() => merge(slot, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Record {
        Record::new(vec![
            Field::string("name").required(),
            Field::integer("port").default(json!(80)).between(0, 65535),
            Field::boolean("on").default(json!(true)),
            Field::strings("methods"),
            Field::string("kind").one_of(&["a", "b"]),
            Field::record("config", Record::new(vec![Field::integer("ttl").default(json!(5))])),
        ])
    }

    #[track_caller]
    fn check_err(input: Value, mode: Mode, expect: &[&str]) {
        let errs = schema().validate(&input, mode).expect_err("should fail");
        let got: Vec<String> = errs.lines().collect();
        assert_eq!(got, expect);
    }

    #[test]
    fn defaults_are_filled_and_unset_fields_are_null() {
        let out = schema().validate(&json!({"name": "x"}), Mode::default()).unwrap();
        assert_eq!(
            out,
            json!({"name": "x", "port": 80, "on": true, "methods": null, "kind": null, "config": {"ttl": 5}})
        );
    }

    #[test]
    fn every_error_is_reported_with_its_path() {
        check_err(
            json!({"port": "x", "bogus": 1, "methods": [1], "kind": "c", "config": {"ttl": true}}),
            Mode::default(),
            &[
                "bogus: unknown field",
                "name: required field missing",
                "port: expected an integer",
                "methods[0]: expected a string",
                "kind: expected one of: a, b",
                "config.ttl: expected an integer",
            ],
        );
        check_err(json!({"name": "x", "port": 70000}), Mode::default(), &["port: value should be between 0 and 65535"]);
    }

    #[test]
    fn form_strings_are_coerced_only_in_form_mode() {
        let form = Mode { coerce_strings: true };
        let out =
            schema().validate(&json!({"name": "x", "port": "81", "on": "false", "methods": "GET"}), form).unwrap();
        assert_eq!(out["port"], 81);
        assert_eq!(out["on"], false);
        assert_eq!(out["methods"], json!(["GET"]));
        check_err(json!({"name": "x", "port": "81"}), Mode::default(), &["port: expected an integer"]);
    }

    #[test]
    fn explicit_null_switches_an_optional_default_off() {
        let out = schema().validate(&json!({"name": "x", "port": null}), Mode::default()).unwrap();
        assert_eq!(out["port"], Value::Null);
    }

    #[test]
    fn patch_merges_nested_records_field_by_field() {
        let mut base = json!({"a": 1, "config": {"x": 1, "y": 2}});
        merge(&mut base, &json!({"config": {"y": 3}, "b": null}));
        assert_eq!(base, json!({"a": 1, "config": {"x": 1, "y": 3}, "b": null}));
    }
}
