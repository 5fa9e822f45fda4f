//! The one place Admin API errors become Kong-shaped responses.
//!
//! Bodies follow Kong's `kong/db/errors.lua`: `{"code", "name", "message", "fields"}` for database
//! and schema errors, `{"message"}` for the rest.

use axum::response::{IntoResponse, Response};
use gatehouse_core::schema::{FieldErrors, Seg};
use http::StatusCode;
use serde_json::{Map, Value, json};

/// Everything the Admin API can answer with besides success.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// 404 `{"message":"Not found"}`.
    #[error("not found")]
    NotFound,
    /// 400 with a plain message (bad JSON, bad form keys).
    #[error("{0}")]
    BadRequest(String),
    /// 415: a body encoding Kong does not accept.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 413: the body is larger than the Admin API's limit ([`crate::Guard::max_body`]).
    #[error("payload too large")]
    PayloadTooLarge,
    /// 405 `{"message":"Method not allowed"}`.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 408: the body did not arrive in time ([`crate::Guard::body_timeout`]).
    #[error("request timeout")]
    RequestTimeout,
    /// 400 code 2.
    #[error("schema violation: {0}")]
    Schema(FieldErrors),
    /// 400 code 4: a reference to an entity that does not exist.
    #[error("foreign key violation: {message}")]
    ForeignKey {
        /// Kong's message.
        message: String,
        /// The offending field and value.
        fields: Value,
    },
    /// 400 code 13: a reference by name that does not resolve.
    #[error("{0}")]
    ForeignKeyUnresolved(String, Value),
    /// 409 code 5.
    #[error("unique violation on {0}")]
    Unique(String, Value),
    /// 400 code 7.
    #[error("{0}")]
    InvalidOffset(String),
    /// 400 code 9.
    #[error("{0}")]
    InvalidSize(String),
    /// 400 code 11.
    #[error("{0}")]
    InvalidOptions(String),
    /// 405 code 12 (declarative mode).
    #[error("{0}")]
    Unsupported(String),
    /// 400 code 14 (`POST /config`).
    #[error("invalid declarative configuration")]
    Declarative(FieldErrors),
    /// 403 `{"message"}`: a write from a browser page of another origin.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 500 `{"message":"An unexpected error occurred"}`, Kong's body for a handler that failed
    /// (here: panicked). The detail is logged where it happened.
    #[error("internal error")]
    Internal,
    /// 500 code 8. The detail is logged, not sent.
    #[error("database error: {0}")]
    Database(String),
}

/// Kong's message for schema errors: `@entity` errors first, then fields in sorted order, array
/// positions 1-based (`paths.1`).
pub fn schema_message(errs: &FieldErrors) -> String {
    let mut parts: Vec<(bool, String, String)> = errs
        .errors
        .iter()
        .map(|(path, msg)| {
            let entity = path.last() == Some(&Seg::Key("@entity".into()));
            let p: Vec<String> = path
                .iter()
                .filter(|s| **s != Seg::Key("@entity".into()))
                .map(|s| match s {
                    Seg::Key(k) => k.clone(),
                    Seg::Index(i) => (i + 1).to_string(),
                })
                .collect();
            (!entity, p.join("."), msg.clone())
        })
        .collect();
    parts.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let list: Vec<String> =
        parts.iter().map(|(_, p, m)| if p.is_empty() { m.clone() } else { format!("{p}: {m}") }).collect();
    if list.len() == 1 {
        format!("schema violation ({})", list[0])
    } else {
        format!("{} schema violations ({})", list.len(), list.join("; "))
    }
}

/// Kong's `fields` tree for schema errors.
pub fn schema_fields(errs: &FieldErrors) -> Value {
    let mut root = Value::Object(Map::new());
    for (path, msg) in &errs.errors {
        put(&mut root, path, msg);
    }
    root
}

fn put(node: &mut Value, path: &[Seg], msg: &str) {
    let Some((first, rest)) = path.split_first() else { return };
    if *first == Seg::Key("@entity".into()) {
        if let Value::Object(o) = node {
            let list = o.entry("@entity").or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(a) = list {
                a.push(msg.into());
            }
        }
        return;
    }
    let child = match (node, first) {
        (Value::Object(o), Seg::Key(k)) => {
            o.entry(k.clone()).or_insert(if rest.is_empty() { Value::Null } else { empty_for(&rest[0]) })
        }
        (Value::Array(a), Seg::Index(i)) => {
            if a.len() <= *i {
                a.resize(*i + 1, Value::Null);
            }
            if !rest.is_empty() && a[*i].is_null() {
                a[*i] = empty_for(&rest[0]);
            }
            &mut a[*i]
        }
        _ => return,
    };
    if rest.is_empty() {
        *child = msg.into();
    } else {
        put(child, rest, msg);
    }
}

fn empty_for(seg: &Seg) -> Value {
    match seg {
        Seg::Index(_) => Value::Array(Vec::new()),
        Seg::Key(_) => Value::Object(Map::new()),
    }
}

/// Kong's `{name="x"}` rendering of a key, used in unique and foreign-key messages.
pub fn lua_table(fields: &Value) -> String {
    match fields {
        Value::Object(o) => {
            let inner: Vec<String> = o.iter().map(|(k, v)| format!("{k}={}", lua_table(v))).collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::String(s) => format!("\"{s}\""),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

fn db_error(status: StatusCode, code: u8, name: &str, message: String, fields: Option<Value>) -> Response {
    let mut body = json!({"code": code, "name": name, "message": message});
    if let Some(f) = fields {
        body["fields"] = f;
    }
    json_response(status, &body)
}

/// A JSON response with Kong's content type.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(http::header::CONTENT_TYPE, "application/json; charset=utf-8")], body.to_string()).into_response()
}

fn message(status: StatusCode, msg: &str) -> Response {
    json_response(status, &json!({"message": msg}))
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        match self {
            AdminError::NotFound => message(StatusCode::NOT_FOUND, "Not found"),
            AdminError::BadRequest(m) => message(StatusCode::BAD_REQUEST, &m),
            AdminError::UnsupportedMediaType => message(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported Media Type"),
            AdminError::PayloadTooLarge => message(StatusCode::PAYLOAD_TOO_LARGE, "Payload too large"),
            AdminError::MethodNotAllowed => message(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
            AdminError::RequestTimeout => message(StatusCode::REQUEST_TIMEOUT, "Request timeout"),
            AdminError::Schema(errs) => db_error(
                StatusCode::BAD_REQUEST,
                2,
                "schema violation",
                schema_message(&errs),
                Some(schema_fields(&errs)),
            ),
            AdminError::ForeignKey { message, fields } => {
                db_error(StatusCode::BAD_REQUEST, 4, "foreign key violation", message, Some(fields))
            }
            AdminError::ForeignKeyUnresolved(m, fields) => {
                db_error(StatusCode::BAD_REQUEST, 13, "foreign keys unresolved", m, Some(fields))
            }
            AdminError::Unique(m, fields) => {
                db_error(StatusCode::CONFLICT, 5, "unique constraint violation", m, Some(fields))
            }
            AdminError::InvalidOffset(m) => db_error(StatusCode::BAD_REQUEST, 7, "invalid offset", m, None),
            AdminError::InvalidSize(m) => db_error(StatusCode::BAD_REQUEST, 9, "invalid size", m, None),
            AdminError::InvalidOptions(m) => db_error(StatusCode::BAD_REQUEST, 11, "invalid options", m, None),
            AdminError::Unsupported(m) => {
                db_error(StatusCode::METHOD_NOT_ALLOWED, 12, "operation unsupported", m, None)
            }
            AdminError::Declarative(errs) => {
                let lines: Vec<String> = errs.lines().collect();
                db_error(
                    StatusCode::BAD_REQUEST,
                    14,
                    "invalid declarative configuration",
                    format!("declarative config is invalid: {}", lines.join("; ")),
                    Some(schema_fields(&errs)),
                )
            }
            AdminError::Forbidden(m) => message(StatusCode::FORBIDDEN, m),
            AdminError::Internal => message(StatusCode::INTERNAL_SERVER_ERROR, "An unexpected error occurred"),
            AdminError::Database(detail) => {
                tracing::error!(error = %detail, "admin API database error");
                db_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    8,
                    "database error",
                    "An unexpected error occurred".into(),
                    None,
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_errors_render_like_kong() {
        let errs = FieldErrors {
            errors: vec![
                (vec![Seg::Key("port".into())], "value should be between 0 and 65535".into()),
                (vec![Seg::Key("host".into())], "required field missing".into()),
                (vec![Seg::Key("paths".into()), Seg::Index(1)], "bad".into()),
                (vec![Seg::Key("config".into()), Seg::Key("issuer".into())], "required field missing".into()),
                (vec![Seg::Key("@entity".into())], "entity wrong".into()),
            ],
        };
        assert_eq!(
            schema_message(&errs),
            "5 schema violations (entity wrong; config.issuer: required field missing; host: required field missing; paths.2: bad; port: value should be between 0 and 65535)"
        );
        assert_eq!(
            schema_fields(&errs),
            json!({"port": "value should be between 0 and 65535", "host": "required field missing",
                   "paths": [null, "bad"], "config": {"issuer": "required field missing"}, "@entity": ["entity wrong"]})
        );
    }

    #[test]
    fn keys_render_as_lua_tables() {
        assert_eq!(lua_table(&json!({"name": "x"})), "{name=\"x\"}");
        assert_eq!(lua_table(&json!({"id": "u"})), "{id=\"u\"}");
    }
}
