//! The `openid-connect` plugin's Admin endpoints, as Kong's plugin adds them:
//!
//! - `GET /openid-connect/issuers`: the issuer records with their discovery cache, paginated;
//!   `DELETE` deletes every record.
//! - `GET /openid-connect/issuers/{id or issuer}`; `DELETE` deletes one record.
//! - `GET /openid-connect/jwks`: the node's public keys (`application/jwk-set+json`); `DELETE`
//!   makes a new key set (rotation).
//!
//! A record's secret is never shown. Deleting a record clears its discovery cache and rebuilds the
//! plugins of its issuer, which make a new record with a new secret: their sessions end, as in
//! Kong. Rotating the key set rebuilds every `openid-connect` plugin, so assertions are signed
//! with the new keys from then on. These work in declarative mode too (node state, not config).

use crate::entities::{page_size, result};
use crate::error::json_response;
use crate::{AdminError, AdminState};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_core::secrets::IssuerRecord;
use gatehouse_jose::own_keys::OwnKeys;
use http::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

type St = State<Arc<AdminState>>;

const PLUGIN: &str = "openid-connect";

/// A record as Kong shows it: decoded discovery document and keys, no secret.
fn shown(s: &AdminState, r: &IssuerRecord) -> Value {
    let (configuration, keys) = s.reloader.env().secrets.discovery(&r.issuer).unwrap_or((json!({}), json!([])));
    json!({
        "id": r.id,
        "issuer": r.issuer,
        "created_at": r.created_at,
        "configuration": configuration,
        "keys": keys,
    })
}

/// The record addressed by its id or by its issuer. A segment that does not decode (not UTF-8)
/// addresses nothing.
fn addressed(s: &AdminState, key: &Result<Path<String>, PathRejection>) -> Option<IssuerRecord> {
    let Ok(Path(key)) = key else { return None };
    s.reloader.env().secrets.records().into_iter().find(|r| r.id == *key || r.issuer == *key)
}

/// Whether a stored plugin entity is an `openid-connect` plugin, of `issuer` when given.
fn reads(entity: &Value, issuer: Option<&str>) -> bool {
    entity.get("name").and_then(Value::as_str) == Some(PLUGIN)
        && issuer.is_none_or(|i| entity.pointer("/config/issuer").and_then(Value::as_str) == Some(i))
}

/// Rebuilds the plugins that read what changed, so they take the new secret or keys.
async fn rebuild(s: &AdminState, issuer: Option<&str>) -> Result<(), AdminError> {
    s.reloader.reload_rebuilding(&|v| reads(v, issuer)).await.map(drop).map_err(|e| AdminError::Database(e.to_string()))
}

/// `GET /openid-connect/issuers`
pub async fn list_issuers(State(s): St, Query(q): Query<HashMap<String, String>>) -> Response {
    result((|| {
        let size = page_size(&q)?;
        let start = match q.get("offset") {
            None => 0,
            Some(off) => URL_SAFE_NO_PAD
                .decode(off)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|t| t.parse::<usize>().ok())
                .ok_or_else(|| {
                    AdminError::InvalidOffset(format!("'{off}' is not a valid offset: bad base64 encoding"))
                })?,
        };
        let all = s.reloader.env().secrets.records();
        let data: Vec<Value> = all.iter().skip(start).take(size).map(|r| shown(&s, r)).collect();
        let mut body = json!({"data": data, "next": null});
        let next = start.saturating_add(size);
        if next < all.len() {
            let off = URL_SAFE_NO_PAD.encode(next.to_string());
            body["next"] = format!("/openid-connect/issuers?offset={off}&size={size}").into();
            body["offset"] = off.into();
        }
        Ok(json_response(StatusCode::OK, &body))
    })())
}

/// `GET /openid-connect/issuers/{id or issuer}`
pub async fn read_issuer(State(s): St, key: Result<Path<String>, PathRejection>) -> Response {
    match addressed(&s, &key) {
        Some(r) => json_response(StatusCode::OK, &shown(&s, &r)),
        None => AdminError::NotFound.into_response(),
    }
}

/// `DELETE /openid-connect/issuers/{id or issuer}`: 204 whether or not it existed, as Kong's
/// entity deletes answer.
pub async fn delete_issuer(State(s): St, key: Result<Path<String>, PathRejection>) -> Response {
    result(
        async {
            let _writing = s.reloader.write_lock().await;
            if let Some(r) = addressed(&s, &key) {
                forget(&s, &r).await?;
                if let Err(e) = rebuild(&s, Some(&r.issuer)).await {
                    restore(&s, &[r]).await;
                    return Err(e);
                }
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

/// `DELETE /openid-connect/issuers`
pub async fn delete_issuers(State(s): St) -> Response {
    result(
        async {
            let _writing = s.reloader.write_lock().await;
            let mut gone = Vec::new();
            for r in s.reloader.env().secrets.records() {
                if let Err(e) = forget(&s, &r).await {
                    restore(&s, &gone).await;
                    return Err(e);
                }
                gone.push(r);
            }
            if let Err(e) = rebuild(&s, None).await {
                restore(&s, &gone).await;
                return Err(e);
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

/// Deletes a record from the store and the node, with its discovery cache.
async fn forget(s: &AdminState, r: &IssuerRecord) -> Result<(), AdminError> {
    s.store.issuer_delete(&r.id).await.map_err(|e| AdminError::Database(e.to_string()))?;
    s.reloader.env().secrets.remove(&r.issuer);
    tracing::info!(issuer = %r.issuer, "issuer record deleted; its sessions end and its discovery is fetched again");
    Ok(())
}

/// Puts back records whose plugins could not be rebuilt: those plugins still seal with the old
/// secrets, so the records must stay (the answer is the error, and nothing changed).
async fn restore(s: &AdminState, records: &[IssuerRecord]) {
    for r in records {
        if let Err(e) = s.store.issuer_insert(r).await {
            tracing::error!(issuer = %r.issuer, error = %e, "cannot restore an issuer record after a failed rebuild");
        }
        s.reloader.env().secrets.set(r.clone());
    }
}

/// `GET /openid-connect/jwks`
pub async fn read_jwks(State(s): St) -> Response {
    let Some(stored) = s.reloader.env().secrets.client_keys() else {
        return AdminError::NotFound.into_response();
    };
    match OwnKeys::from_stored(&stored) {
        Ok(keys) => {
            let body = keys.public_jwks().to_string();
            (StatusCode::OK, [(http::header::CONTENT_TYPE, "application/jwk-set+json")], body).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "the node's key set does not load");
            AdminError::Database(e.to_string()).into_response()
        }
    }
}

/// `DELETE /openid-connect/jwks`: a new key set replaces the old one.
pub async fn rotate_jwks(State(s): St) -> Response {
    result(
        async {
            let _writing = s.reloader.write_lock().await;
            let stored = new_key_set().await?;
            let secrets = &s.reloader.env().secrets;
            let old = secrets.client_keys();
            s.store.set_own_keys(&stored).await.map_err(|e| AdminError::Database(e.to_string()))?;
            secrets.set_client_keys(Some(stored));
            if let Err(e) = rebuild(&s, None).await {
                // The plugins still sign with the old keys: keep publishing those.
                if let Some(old) = &old
                    && let Err(back) = s.store.set_own_keys(old).await
                {
                    tracing::error!(error = %back, "cannot restore the node's key set after a failed rebuild");
                }
                secrets.set_client_keys(old.map(|k| k.to_string()));
                return Err(e);
            }
            tracing::info!("the node's key set was rotated");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

/// A fresh key set in its stored form. RSA key generation takes a while: off the runtime's threads.
async fn new_key_set() -> Result<String, AdminError> {
    let made = tokio::task::spawn_blocking(|| OwnKeys::generate().and_then(|k| k.to_stored())).await;
    match made {
        Ok(Ok(stored)) => Ok(stored),
        Ok(Err(e)) => Err(AdminError::Database(format!("cannot make a key set: {e}"))),
        Err(e) => Err(AdminError::Database(format!("cannot make a key set: {e}"))),
    }
}
