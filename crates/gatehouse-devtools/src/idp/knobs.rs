//! Test knobs: per-endpoint call counters, injected failures and injected delays, answer
//! overrides and one-shot tampering.

use http::StatusCode;
use serde_json::{Map, Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A public endpoint of the provider, as counted and as named in `/_dev/fail` and `/_dev/delay`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Discovery,
    Jwks,
    Token,
    Introspect,
    Userinfo,
    Revoke,
    Authorize,
    Logout,
    Par,
}

impl Endpoint {
    pub const ALL: [Endpoint; 9] = [
        Endpoint::Discovery,
        Endpoint::Jwks,
        Endpoint::Token,
        Endpoint::Introspect,
        Endpoint::Userinfo,
        Endpoint::Revoke,
        Endpoint::Authorize,
        Endpoint::Logout,
        Endpoint::Par,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Discovery => "discovery",
            Endpoint::Jwks => "jwks",
            Endpoint::Token => "token",
            Endpoint::Introspect => "introspect",
            Endpoint::Userinfo => "userinfo",
            Endpoint::Revoke => "revoke",
            Endpoint::Authorize => "authorize",
            Endpoint::Logout => "logout",
            Endpoint::Par => "par",
        }
    }

    /// The endpoints a knob name covers: one, or every one for `all`.
    pub fn selected(name: &str) -> Option<Vec<Endpoint>> {
        if name == "all" {
            return Some(Endpoint::ALL.to_vec());
        }
        Endpoint::ALL.into_iter().find(|e| e.name() == name).map(|e| vec![e])
    }

    /// The endpoint served at `path` (relative to the issuer).
    pub fn for_path(path: &str) -> Option<Endpoint> {
        Some(match path {
            "/.well-known/openid-configuration" => Endpoint::Discovery,
            "/jwks" => Endpoint::Jwks,
            "/token" => Endpoint::Token,
            "/introspect" => Endpoint::Introspect,
            "/userinfo" => Endpoint::Userinfo,
            "/revoke" => Endpoint::Revoke,
            "/authorize" => Endpoint::Authorize,
            "/logout" => Endpoint::Logout,
            "/par" => Endpoint::Par,
            _ => return None,
        })
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The grant types counted under `token_grants`; anything else counts as `other`.
const GRANTS: [&str; 5] = ["password", "client_credentials", "refresh_token", "authorization_code", "other"];

/// The `token_type_hint`s counted under `revoke_hints`: a missing hint counts as `none`, another
/// one as `other`.
const HINTS: [&str; 4] = ["access_token", "refresh_token", "none", "other"];

/// Request counters. Relaxed atomics: each counter is independent and only read by `/_dev/calls`.
#[derive(Default)]
pub(crate) struct Calls {
    endpoints: [AtomicU64; Endpoint::ALL.len()],
    grants: [AtomicU64; GRANTS.len()],
    hints: [AtomicU64; HINTS.len()],
}

/// The index of `name` in `names`, whose last entry counts whatever is not listed.
fn slot(names: &[&str], name: Option<&str>) -> usize {
    let last = names.len() - 1;
    name.and_then(|g| names[..last].iter().position(|n| *n == g)).unwrap_or(last)
}

fn counts(names: &[&str], counters: &[AtomicU64]) -> Value {
    let map: Map<String, Value> =
        names.iter().zip(counters).map(|(n, c)| ((*n).to_owned(), c.load(Ordering::Relaxed).into())).collect();
    map.into()
}

impl Calls {
    pub fn hit(&self, endpoint: Endpoint) {
        self.endpoints[endpoint.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn hit_grant(&self, grant_type: Option<&str>) {
        self.grants[slot(&GRANTS, grant_type)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn hit_revoke_hint(&self, hint: Option<&str>) {
        self.hints[slot(&HINTS, Some(hint.unwrap_or("none")))].fetch_add(1, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        for c in self.endpoints.iter().chain(&self.grants).chain(&self.hints) {
            c.store(0, Ordering::Relaxed);
        }
    }

    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        for e in Endpoint::ALL {
            out.insert(e.name().into(), self.endpoints[e.index()].load(Ordering::Relaxed).into());
        }
        out.insert("token_grants".into(), counts(&GRANTS, &self.grants));
        out.insert("revoke_hints".into(), counts(&HINTS, &self.hints));
        Value::Object(out)
    }
}

/// An injected failure: answer `status`, `remaining` more times (`None`: until reset).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fail {
    pub status: StatusCode,
    pub remaining: Option<u64>,
}

/// Members merged into what the provider answers (`/_dev/override`), for tests of answers that
/// break the specs: a `null` removes a member. Empty maps change nothing.
#[derive(Clone, Debug, Default)]
pub(crate) struct Overrides {
    /// The discovery document.
    pub discovery: Map<String, Value>,
    /// The claims of ID tokens the token endpoint issues.
    pub id_token: Map<String, Value>,
    /// The claims of access tokens the token endpoint issues.
    pub access_token: Map<String, Value>,
    /// Userinfo answers (JSON or JWT).
    pub userinfo: Map<String, Value>,
    /// Introspection answers for active tokens.
    pub introspection: Map<String, Value>,
    /// The parameters of authorization responses (`code`, `state`, `iss`, `error`, ...).
    pub authorization_response: Map<String, Value>,
}

impl Overrides {
    pub fn to_json(&self) -> Value {
        json!({
            "discovery": self.discovery,
            "id_token": self.id_token,
            "access_token": self.access_token,
            "userinfo": self.userinfo,
            "introspection": self.introspection,
            "authorization_response": self.authorization_response,
        })
    }
}

/// One-shot tampering (`/_dev/next`): merged into the next answer of its kind only, after the
/// overrides, then disarmed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Next {
    /// The parameters of the next authorization response (success or error).
    pub authorization_response: Option<Map<String, Value>>,
    /// The claims of the next ID token of the authorization code grant.
    pub code_id_token: Option<Map<String, Value>>,
}

impl Next {
    pub fn to_json(&self) -> Value {
        json!({
            "authorization_response": self.authorization_response,
            "code_id_token": self.code_id_token,
        })
    }
}

/// Injected failures and delays, per endpoint, and the answer overrides.
#[derive(Default)]
pub(crate) struct Knobs {
    fail: [Option<Fail>; Endpoint::ALL.len()],
    delay_ms: [u64; Endpoint::ALL.len()],
    pub overrides: Overrides,
    pub next: Next,
}

impl Knobs {
    pub fn set_fail(&mut self, endpoint: Endpoint, fail: Option<Fail>) {
        self.fail[endpoint.index()] = fail;
    }

    pub fn set_delay(&mut self, endpoint: Endpoint, ms: u64) {
        self.delay_ms[endpoint.index()] = ms;
    }

    pub fn delay(&self, endpoint: Endpoint) -> Option<Duration> {
        Some(self.delay_ms[endpoint.index()]).filter(|ms| *ms > 0).map(Duration::from_millis)
    }

    /// The status to fail this request with, if a failure is armed; uses one of its `times`.
    pub fn take_fail(&mut self, endpoint: Endpoint) -> Option<StatusCode> {
        let slot = &mut self.fail[endpoint.index()];
        let fail = slot.as_mut()?;
        let status = fail.status;
        match &mut fail.remaining {
            None => {}
            Some(0) => {
                *slot = None;
                return None;
            }
            Some(1) => *slot = None,
            Some(n) => *n -= 1,
        }
        Some(status)
    }

    pub fn to_json(&self) -> Value {
        let mut fail = Map::new();
        let mut delay = Map::new();
        for e in Endpoint::ALL {
            if let Some(f) = self.fail[e.index()] {
                fail.insert(e.name().into(), json!({ "status": f.status.as_u16(), "remaining": f.remaining }));
            }
            if self.delay_ms[e.index()] > 0 {
                delay.insert(e.name().into(), self.delay_ms[e.index()].into());
            }
        }
        json!({ "fail": fail, "delay": delay })
    }
}
