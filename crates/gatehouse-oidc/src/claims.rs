//! The claim checks the OpenID specs require beyond RFC 7519's time window, issuer and audience
//! (those are `gatehouse_jose::check_claims`). Applied while `verify_claims` is on (Kong's
//! default); where they are stricter than Kong, `docs/compatibility.md` says so.
//!
//! - ID tokens (OpenID Connect Core §2, §3.1.3.7): `iss`, `sub`, `aud`, `exp` and `iat` present;
//!   `azp` present when `aud` has several values and, when present, our client; `nonce` equal to
//!   the one sent, when one was; `at_hash`/`c_hash` equal to the left half of the hash of the
//!   access token/code, when present and the token/code is known.
//! - JWT access tokens (RFC 9068 §2.2): `iss`, `exp`, `sub` and `iat` present.
//! - Userinfo (Core §5.3.4): the answer's `sub` is the token's.
//! - Introspection (RFC 7662 §2.2): an answer past its `exp` or before its `nbf` is inactive.
//!
//! Every refusal is a [`Refusal`], whose text is fixed (it goes into `error_description`) and
//! never echoes a claim value.

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_jose::Algorithm;
use serde_json::{Map, Value};

/// Why a token or an answer was refused by the checks of this module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A claim the spec requires is absent (or not of its type).
    #[error("missing {0} claim")]
    Missing(&'static str),
    /// `aud` has several values and no `azp` names the party it was issued to.
    #[error("missing azp claim")]
    MissingAzp,
    /// `azp` is not our client.
    #[error("invalid azp claim")]
    InvalidAzp,
    /// `nonce` is not the one sent.
    #[error("invalid nonce claim")]
    InvalidNonce,
    /// `at_hash` does not match the access token.
    #[error("invalid at_hash claim")]
    InvalidAtHash,
    /// `c_hash` does not match the authorization code.
    #[error("invalid c_hash claim")]
    InvalidCHash,
    /// The userinfo answer is about someone else than the token.
    #[error("userinfo subject does not match the token")]
    UserinfoSubject,
    /// The introspection answer's `exp` has passed.
    #[error("The access token expired")]
    IntrospectionExpired,
    /// The introspection answer's `nbf` has not come yet.
    #[error("token not yet valid")]
    IntrospectionNotYetValid,
    /// `max_age` was asked and the ID token has no `auth_time` (Core §3.1.2.1).
    #[error("missing auth_time claim")]
    MissingAuthTime,
    /// The user signed in longer than `max_age` ago.
    #[error("authentication too old (max_age)")]
    AuthTimeTooOld,
    /// `domains` is set and the ID token's `hd` is absent or not one of them.
    #[error("invalid hd claim")]
    InvalidHostedDomain,
    /// The code flow with `openid` in its scopes returned no ID token (Core §3.1.3.3).
    #[error("missing id token")]
    MissingIdToken,
}

impl Refusal {
    /// The fixed text for `error_description`.
    pub fn description(self) -> &'static str {
        match self {
            Refusal::Missing("iss") => "missing iss claim",
            Refusal::Missing("sub") => "missing sub claim",
            Refusal::Missing("aud") => "missing aud claim",
            Refusal::Missing("exp") => "missing exp claim",
            Refusal::Missing("iat") => "missing iat claim",
            Refusal::Missing(_) => "missing claim",
            Refusal::MissingAzp => "missing azp claim",
            Refusal::InvalidAzp => "invalid azp claim",
            Refusal::InvalidNonce => "invalid nonce claim",
            Refusal::InvalidAtHash => "invalid at_hash claim",
            Refusal::InvalidCHash => "invalid c_hash claim",
            Refusal::UserinfoSubject => "userinfo subject does not match the token",
            Refusal::IntrospectionExpired => "The access token expired",
            Refusal::MissingAuthTime => "missing auth_time claim",
            Refusal::AuthTimeTooOld => "authentication too old",
            Refusal::InvalidHostedDomain => "invalid hd claim",
            Refusal::MissingIdToken => "missing id token",
            Refusal::IntrospectionNotYetValid => "token not yet valid",
        }
    }
}

/// What an ID token is checked against besides its own claims.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdContext<'a> {
    /// The client the token must be for (`aud`, `azp`); `None` when no `client_id` is configured.
    pub client_id: Option<&'a str>,
    /// The access token that came with it, for `at_hash`.
    pub access_token: Option<&'a str>,
    /// The nonce sent in the authorization request, if one was and `verify_nonce` is on (Kong's
    /// switch for this check). No flow sends one yet: the authorization code flow will.
    pub nonce: Option<&'a str>,
    /// The authorization code it came with, for `c_hash`.
    pub code: Option<&'a str>,
}

/// The claims the spec requires of an ID token (Core §2).
const ID_TOKEN_REQUIRED: [&str; 5] = ["iss", "sub", "aud", "exp", "iat"];
/// The claims RFC 9068 §2.2 requires of a JWT access token (of those Gatehouse can check).
const ACCESS_TOKEN_REQUIRED: [&str; 4] = ["iss", "exp", "sub", "iat"];

/// `iss`/`sub` must be strings, `exp`/`iat` numbers, `aud` a string or an array of strings.
fn present(claims: &Map<String, Value>, name: &'static str) -> Result<(), Refusal> {
    let ok = match (name, claims.get(name)) {
        ("exp" | "iat", Some(v)) => v.is_number(),
        ("aud", Some(Value::Array(a))) => !a.is_empty() && a.iter().all(Value::is_string),
        (_, Some(v)) => v.as_str().is_some_and(|s| !s.is_empty()),
        (_, None) => false,
    };
    if ok { Ok(()) } else { Err(Refusal::Missing(name)) }
}

/// The checks of Core §3.1.3.7 that `gatehouse_jose::check_claims` does not make. `alg` is the
/// token's (verified) header `alg`, which names the hash of `at_hash` and `c_hash`.
pub fn id_token(claims: &Map<String, Value>, alg: &str, cx: &IdContext<'_>) -> Result<(), Refusal> {
    for name in ID_TOKEN_REQUIRED {
        present(claims, name)?;
    }
    // §3.1.3.7 (4, 5): several audiences need an authorized party, and one that is present must
    // be us.
    let several = claims.get("aud").and_then(Value::as_array).is_some_and(|a| a.len() > 1);
    match claims.get("azp") {
        None if several => return Err(Refusal::MissingAzp),
        None => {}
        Some(azp) => {
            let ours = match (azp.as_str(), cx.client_id) {
                (Some(azp), Some(client)) => azp == client,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if !ours {
                return Err(Refusal::InvalidAzp);
            }
        }
    }
    nonce(claims, cx.nonce)?;
    // §3.2.2.9 / §3.3.2.11: checked when present and the value it binds to is known.
    if let (Some(claimed), Some(token)) = (claims.get("at_hash"), cx.access_token)
        && !half_hash_matches(alg, token, claimed)
    {
        return Err(Refusal::InvalidAtHash);
    }
    if let (Some(claimed), Some(code)) = (claims.get("c_hash"), cx.code)
        && !half_hash_matches(alg, code, claimed)
    {
        return Err(Refusal::InvalidCHash);
    }
    Ok(())
}

/// Core §3.1.3.7 (11): only when a nonce was sent; then the token must carry the same one.
pub fn nonce(claims: &Map<String, Value>, sent: Option<&str>) -> Result<(), Refusal> {
    match sent {
        Some(sent) if claims.get("nonce").and_then(Value::as_str) != Some(sent) => Err(Refusal::InvalidNonce),
        _ => Ok(()),
    }
}

/// Core §3.1.3.7 (13): with `max_age` asked, `auth_time` must be present and no older than
/// `max_age` (plus `leeway`, as Kong allows).
pub fn auth_time(claims: &Map<String, Value>, max_age: i64, now: i64, leeway: i64) -> Result<(), Refusal> {
    let at = claims.get("auth_time").and_then(Value::as_f64).ok_or(Refusal::MissingAuthTime)?;
    let age = now.saturating_sub(at as i64);
    if age.saturating_sub(leeway) > max_age { Err(Refusal::AuthTimeTooOld) } else { Ok(()) }
}

/// Kong's `domains`: the ID token's `hd` (Google's hosted domain) must be one of them.
pub fn hosted_domain(claims: &Map<String, Value>, domains: &[String]) -> Result<(), Refusal> {
    match claims.get("hd").and_then(Value::as_str) {
        Some(hd) if domains.iter().any(|d| d == hd) => Ok(()),
        _ => Err(Refusal::InvalidHostedDomain),
    }
}

/// The claims RFC 9068 §2.2 requires of a JWT access token.
pub fn access_token(claims: &Map<String, Value>) -> Result<(), Refusal> {
    ACCESS_TOKEN_REQUIRED.iter().try_for_each(|name| present(claims, name))
}

/// The hash an `alg` names for `at_hash`/`c_hash` (Core §3.1.3.6): the one of its signature.
/// EdDSA has no hash in its name; SHA-512 is what Ed25519 uses, and what the OpenID Connect
/// errata settle on.
fn hash_of(alg: &str) -> Option<&'static digest::Algorithm> {
    Some(match Algorithm::from_name(alg)? {
        Algorithm::Rs256 | Algorithm::Ps256 | Algorithm::Es256 | Algorithm::Hs256 => &digest::SHA256,
        Algorithm::Rs384 | Algorithm::Ps384 | Algorithm::Es384 | Algorithm::Hs384 => &digest::SHA384,
        Algorithm::Rs512 | Algorithm::Ps512 | Algorithm::Es512 | Algorithm::Hs512 | Algorithm::EdDsa => &digest::SHA512,
        _ => return None,
    })
}

/// The base64url of the left-most half of `value`'s hash under `alg` (Core §3.1.3.6).
pub fn half_hash(alg: &str, value: &str) -> Option<String> {
    let d = digest::digest(hash_of(alg)?, value.as_bytes());
    let bytes = d.as_ref();
    Some(URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2]))
}

/// Whether `claimed` is the half hash of `value`. An `alg` whose hash is unknown never matches:
/// a claim that cannot be checked is not taken on trust.
fn half_hash_matches(alg: &str, value: &str, claimed: &Value) -> bool {
    match (claimed.as_str(), half_hash(alg, value)) {
        // Not secrets: a plain comparison. Padding is tolerated, as Kong does.
        (Some(claimed), Some(expected)) => claimed.trim_end_matches('=') == expected,
        _ => false,
    }
}

/// Core §5.3.4: the userinfo answer's `sub` must be the ID token's. Only the ID token's: an
/// access token's `sub` need not be the same identifier (Okta's custom authorization servers put
/// the login there, and the user id in userinfo), so with no ID token there is nothing the spec
/// compares, and the answer stands.
pub fn userinfo_subject(userinfo: &Map<String, Value>, id_token: Option<&Map<String, Value>>) -> Result<(), Refusal> {
    let Some(expected) = id_token.and_then(|c| c.get("sub")) else {
        return Ok(());
    };
    // A `sub` that is no string on either side is never equal (no number-to-string guessing).
    if expected.is_string() && userinfo.get("sub") == Some(expected) {
        return Ok(());
    }
    // The subjects are user identifiers, not secrets, but the log needs no more than the fact.
    tracing::warn!("openid-connect: the userinfo answer is about another subject than the token; not used");
    Err(Refusal::UserinfoSubject)
}

/// RFC 7662 §2.2: an introspection answer whose `exp` has passed or whose `nbf` has not come is
/// inactive, whatever its `active` says. `Ok` carries the seconds the answer has left (from
/// `exp`), which bound how long it may be cached.
pub fn introspection_window(claims: &Map<String, Value>, now: i64, leeway: i64) -> Result<Option<i64>, Refusal> {
    // Present but no number: refused rather than taken as absent (which would mean "no expiry").
    let num = |name: &str, bad: Refusal| match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(|f| Some(f as i64)).ok_or(bad),
    };
    let leeway = leeway.max(0);
    let exp = num("exp", Refusal::IntrospectionExpired)?;
    if exp.is_some_and(|exp| now >= exp.saturating_add(leeway)) {
        return Err(Refusal::IntrospectionExpired);
    }
    if num("nbf", Refusal::IntrospectionNotYetValid)?.is_some_and(|nbf| now.saturating_add(leeway) < nbf) {
        return Err(Refusal::IntrospectionNotYetValid);
    }
    Ok(exp.map(|exp| exp.saturating_sub(now)))
}

/// The seconds an introspection answer has left, from `exp`, for its cache entry; no check.
pub fn introspection_lifetime(claims: &Map<String, Value>, now: i64) -> Option<i64> {
    match claims.get("exp") {
        None | Some(Value::Null) => None,
        // An `exp` that is no number gives the answer no cache life at all.
        Some(v) => Some(v.as_f64().map_or(0, |f| (f as i64).saturating_sub(now))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn max_age_needs_a_recent_auth_time() {
        let at = |t: Value| obj(json!({ "auth_time": t }));
        assert_eq!(auth_time(&at(json!(NOW - 100)), 300, NOW, 0), Ok(()));
        assert_eq!(auth_time(&at(json!(NOW - 301)), 300, NOW, 0), Err(Refusal::AuthTimeTooOld));
        assert_eq!(auth_time(&at(json!(NOW - 301)), 300, NOW, 5), Ok(()), "leeway");
        assert_eq!(auth_time(&obj(json!({})), 300, NOW, 0), Err(Refusal::MissingAuthTime));
        assert_eq!(auth_time(&at(json!("recent")), 300, NOW, 0), Err(Refusal::MissingAuthTime));
        assert_eq!(auth_time(&at(json!(-1e300)), 300, NOW, 0), Err(Refusal::AuthTimeTooOld), "no overflow");
    }

    #[test]
    fn domains_need_a_listed_hd() {
        let d = ["example.com".to_string()];
        assert_eq!(hosted_domain(&obj(json!({"hd": "example.com"})), &d), Ok(()));
        assert_eq!(hosted_domain(&obj(json!({"hd": "evil.com"})), &d), Err(Refusal::InvalidHostedDomain));
        assert_eq!(hosted_domain(&obj(json!({})), &d), Err(Refusal::InvalidHostedDomain));
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn id(extra: Value) -> Map<String, Value> {
        let mut m = obj(json!({"iss": "https://idp", "sub": "u1", "aud": "app", "exp": NOW + 60, "iat": NOW}));
        for (k, v) in obj(extra) {
            if v.is_null() {
                m.remove(&k);
            } else {
                m.insert(k, v);
            }
        }
        m
    }

    fn cx() -> IdContext<'static> {
        IdContext { client_id: Some("app"), ..IdContext::default() }
    }

    #[test]
    fn an_id_token_needs_every_required_claim() {
        assert_eq!(id_token(&id(json!({})), "RS256", &cx()), Ok(()));
        for name in ID_TOKEN_REQUIRED {
            let c = id(json!({ name: null }));
            assert_eq!(id_token(&c, "RS256", &cx()), Err(Refusal::Missing(name)), "{name}");
        }
        // Present but of the wrong type, or empty, counts as missing.
        for (name, bad) in [
            ("sub", json!(5)),
            ("sub", json!("")),
            ("iat", json!("now")),
            ("aud", json!([])),
            ("aud", json!([1])),
            ("exp", json!(null)),
        ] {
            let mut c = id(json!({}));
            c.insert(name.into(), bad.clone());
            assert!(id_token(&c, "RS256", &cx()).is_err(), "{name}: {bad}");
        }
    }

    #[test]
    fn several_audiences_need_our_azp() {
        let several = json!(["app", "other"]);
        assert_eq!(id_token(&id(json!({"aud": several})), "RS256", &cx()), Err(Refusal::MissingAzp));
        assert_eq!(id_token(&id(json!({"aud": several, "azp": "app"})), "RS256", &cx()), Ok(()));
        assert_eq!(id_token(&id(json!({"aud": several, "azp": "other"})), "RS256", &cx()), Err(Refusal::InvalidAzp));
        // One audience: azp optional, but when present it must be us.
        assert_eq!(id_token(&id(json!({"aud": ["app"]})), "RS256", &cx()), Ok(()));
        assert_eq!(id_token(&id(json!({"azp": "other"})), "RS256", &cx()), Err(Refusal::InvalidAzp));
        assert_eq!(id_token(&id(json!({"azp": 7})), "RS256", &cx()), Err(Refusal::InvalidAzp));
        // Without a configured client only the presence rules apply.
        let none = IdContext::default();
        assert_eq!(id_token(&id(json!({"aud": several, "azp": "other"})), "RS256", &none), Ok(()));
        assert_eq!(id_token(&id(json!({"aud": several})), "RS256", &none), Err(Refusal::MissingAzp));
    }

    #[test]
    fn a_nonce_is_checked_only_when_one_was_sent() {
        let with = IdContext { nonce: Some("n-1"), ..cx() };
        assert_eq!(id_token(&id(json!({"nonce": "n-1"})), "RS256", &with), Ok(()));
        assert_eq!(id_token(&id(json!({"nonce": "n-2"})), "RS256", &with), Err(Refusal::InvalidNonce));
        assert_eq!(id_token(&id(json!({})), "RS256", &with), Err(Refusal::InvalidNonce));
        assert_eq!(id_token(&id(json!({"nonce": 1})), "RS256", &with), Err(Refusal::InvalidNonce));
        assert_eq!(id_token(&id(json!({"nonce": "anything"})), "RS256", &cx()), Ok(()));
    }

    #[test]
    fn half_hashes_follow_the_algorithm() {
        // OpenID Connect Core A.3 and A.4: the example access token and code of the spec, RS256.
        let at = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
        assert_eq!(half_hash("RS256", at).as_deref(), Some("77QmUPtjPfzWtF2AnpK9RQ"));
        let code = "Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk";
        assert_eq!(half_hash("RS256", code).as_deref(), Some("LDktKdoQak3Pk0cnXxCltA"));
        assert_eq!(half_hash("ES384", "x").map(|h| h.len()), Some(32), "24 bytes of SHA-384");
        assert_eq!(half_hash("EdDSA", "x").map(|h| h.len()), Some(43), "32 bytes of SHA-512");
        assert_eq!(half_hash("none", "x"), None);
        assert_eq!(half_hash("XX999", "x"), None);
    }

    #[test]
    fn at_hash_and_c_hash_are_checked_when_present_and_known() {
        let at = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
        let with = IdContext { access_token: Some(at), code: Some("c0de"), ..cx() };
        let good = id(json!({"at_hash": "77QmUPtjPfzWtF2AnpK9RQ"}));
        assert_eq!(id_token(&good, "RS256", &with), Ok(()));
        // Padded base64url is the same value.
        assert_eq!(id_token(&id(json!({"at_hash": "77QmUPtjPfzWtF2AnpK9RQ=="})), "RS256", &with), Ok(()));
        assert_eq!(id_token(&good, "RS384", &with), Err(Refusal::InvalidAtHash), "another hash");
        assert_eq!(id_token(&good, "none", &with), Err(Refusal::InvalidAtHash), "no known hash");
        assert_eq!(id_token(&id(json!({"at_hash": "wrong"})), "RS256", &with), Err(Refusal::InvalidAtHash));
        assert_eq!(id_token(&id(json!({"at_hash": 1})), "RS256", &with), Err(Refusal::InvalidAtHash));
        // Without the access token there is nothing to bind to.
        assert_eq!(id_token(&id(json!({"at_hash": "wrong"})), "RS256", &cx()), Ok(()));
        let c_hash = half_hash("RS256", "c0de").unwrap();
        assert_eq!(id_token(&id(json!({"c_hash": c_hash})), "RS256", &with), Ok(()));
        assert_eq!(id_token(&id(json!({"c_hash": "AAAA"})), "RS256", &with), Err(Refusal::InvalidCHash));
        assert_eq!(id_token(&id(json!({"c_hash": "AAAA"})), "RS256", &cx()), Ok(()));
    }

    #[test]
    fn a_jwt_access_token_needs_iss_exp_sub_and_iat() {
        let full = obj(json!({"iss": "https://idp", "sub": "u1", "exp": NOW + 60, "iat": NOW, "aud": "api"}));
        assert_eq!(access_token(&full), Ok(()));
        for name in ACCESS_TOKEN_REQUIRED {
            let mut c = full.clone();
            c.remove(name);
            assert_eq!(access_token(&c), Err(Refusal::Missing(name)), "{name}");
        }
        let mut no_aud = full.clone();
        no_aud.remove("aud");
        assert_eq!(access_token(&no_aud), Ok(()), "aud is checked by audience_required, not here");
    }

    #[test]
    fn userinfo_must_be_about_the_tokens_subject() {
        let u = obj(json!({"sub": "u1", "email": "a@b"}));
        let idt = obj(json!({"sub": "u1"}));
        let other = obj(json!({"sub": "u2"}));
        assert_eq!(userinfo_subject(&u, Some(&idt)), Ok(()));
        assert_eq!(userinfo_subject(&u, Some(&other)), Err(Refusal::UserinfoSubject));
        assert_eq!(userinfo_subject(&obj(json!({"email": "a@b"})), Some(&idt)), Err(Refusal::UserinfoSubject));
        assert_eq!(userinfo_subject(&obj(json!({"sub": 1})), Some(&idt)), Err(Refusal::UserinfoSubject));
        // A numeric `sub` equal on both sides is still no string subject.
        let n = obj(json!({"sub": 7}));
        assert_eq!(userinfo_subject(&n, Some(&n)), Err(Refusal::UserinfoSubject));
        // No ID token: nothing the spec compares (an opaque or JWT access token alone).
        assert_eq!(userinfo_subject(&u, None), Ok(()));
        assert_eq!(userinfo_subject(&u, Some(&obj(json!({})))), Ok(()));
    }

    #[test]
    fn introspection_answers_outside_their_window_are_inactive() {
        let w = |v: Value, leeway| introspection_window(&obj(v), NOW, leeway);
        assert_eq!(w(json!({"active": true, "exp": NOW + 30}), 0), Ok(Some(30)));
        assert_eq!(w(json!({"active": true}), 0), Ok(None));
        assert_eq!(w(json!({"exp": NOW}), 0), Err(Refusal::IntrospectionExpired));
        assert_eq!(w(json!({"exp": NOW - 5}), 10), Ok(Some(-5)), "leeway");
        assert_eq!(w(json!({"nbf": NOW + 5}), 0), Err(Refusal::IntrospectionNotYetValid));
        assert_eq!(w(json!({"nbf": NOW + 5}), 5), Ok(None));
        // Hostile numbers neither panic nor pass.
        assert_eq!(w(json!({"exp": i64::MIN}), i64::MAX), Err(Refusal::IntrospectionExpired));
        assert_eq!(w(json!({"exp": -1e300}), 0), Err(Refusal::IntrospectionExpired));
        assert_eq!(w(json!({"nbf": 1e300}), i64::MIN), Err(Refusal::IntrospectionNotYetValid));
        // Present but no number (RFC 7662 says integer): refused, and no cache life.
        assert_eq!(w(json!({"exp": "soon"}), 0), Err(Refusal::IntrospectionExpired));
        assert_eq!(w(json!({"nbf": [1]}), 0), Err(Refusal::IntrospectionNotYetValid));
        assert_eq!(w(json!({"exp": null}), 0), Ok(None));
        assert_eq!(introspection_lifetime(&obj(json!({"exp": NOW + 9})), NOW), Some(9));
        assert_eq!(introspection_lifetime(&obj(json!({"exp": "soon"})), NOW), Some(0));
    }

    #[test]
    fn descriptions_are_fixed_texts() {
        for r in [
            Refusal::Missing("iat"),
            Refusal::MissingAzp,
            Refusal::InvalidAzp,
            Refusal::InvalidNonce,
            Refusal::InvalidAtHash,
            Refusal::InvalidCHash,
            Refusal::UserinfoSubject,
            Refusal::IntrospectionExpired,
            Refusal::IntrospectionNotYetValid,
        ] {
            assert_eq!(r.description(), r.to_string());
            assert!(
                r.description().bytes().all(|b| b.is_ascii_graphic() || b == b' ') && !r.description().contains('"')
            );
        }
    }
}

/// Shapes real providers and hostile inputs give.
#[cfg(test)]
mod shapes {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    /// Okta's custom authorization servers: a user access token's `sub` is the login, `uid` the
    /// user id; userinfo's `sub` is the user id (as is the ID token's). Core §5.3.4 asks the
    /// userinfo `sub` to equal the *ID token's*; with no ID token there is nothing the spec
    /// compares, and this answer is about the token's own user.
    #[test]
    fn userinfo_is_compared_with_the_id_tokens_subject_only() {
        let userinfo = obj(json!({"sub": "00u1john", "email": "john@example.com"}));
        let access = obj(json!({"sub": "john@example.com", "uid": "00u1john", "iss": "https://x/oauth2/default"}));
        let _ = &access;
        assert_eq!(userinfo_subject(&userinfo, None), Ok(()));
    }

    /// Odd claim shapes never panic and never pass.
    #[test]
    fn odd_claim_shapes_are_refused_without_panicking() {
        let base = json!({"iss": "https://idp", "sub": "u", "aud": "app", "exp": 1e300, "iat": -1e300});
        let cx = IdContext { client_id: Some("app"), access_token: Some("tok"), ..IdContext::default() };
        for (extra, want) in [
            (json!({"azp": 1}), Err(Refusal::InvalidAzp)),
            (json!({"azp": null}), Err(Refusal::InvalidAzp)),
            (json!({"aud": ["app", 1]}), Err(Refusal::Missing("aud"))),
            (json!({"aud": []}), Err(Refusal::Missing("aud"))),
            (json!({"exp": "1"}), Err(Refusal::Missing("exp"))),
            (json!({"at_hash": 5}), Err(Refusal::InvalidAtHash)),
            (json!({"at_hash": "%%%"}), Err(Refusal::InvalidAtHash)),
        ] {
            let mut c = obj(base.clone());
            c.extend(obj(extra.clone()));
            assert_eq!(id_token(&c, "RS256", &cx), want, "{extra}");
        }
        for alg in ["none", "", "XX", "rs256", "HS1"] {
            let mut c = obj(base.clone());
            c.insert("at_hash".into(), json!(half_hash("RS256", "tok").unwrap()));
            assert_eq!(id_token(&c, alg, &cx), Err(Refusal::InvalidAtHash), "{alg}");
        }
        let now = 1_800_000_000;
        for (c, want) in [
            (json!({"exp": 1e300}), Ok(Some(i64::MAX - now))),
            (json!({"exp": -1e300}), Err(Refusal::IntrospectionExpired)),
            (json!({"nbf": 1e300}), Err(Refusal::IntrospectionNotYetValid)),
            (json!({"exp": u64::MAX}), Ok(Some(i64::MAX - now))),
        ] {
            assert_eq!(introspection_window(&obj(c.clone()), now, 60), want, "{c}");
        }
    }

    /// RFC 7662 §2.2: `exp` is a NumericDate. An answer whose `exp` is there but not a number
    /// cannot be shown to be inside its window; taking it as "no exp" accepts a past one and caches
    /// it for `cache_ttl`.
    #[test]
    fn an_introspection_exp_that_is_no_number_is_not_taken_as_absent() {
        let now = 1_800_000_000;
        let past = (now - 3600).to_string();
        assert!(introspection_window(&obj(json!({"active": true, "exp": past})), now, 0).is_err());
    }
}
