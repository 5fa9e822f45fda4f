//! Registered-claim checks (RFC 7519 section 4.1) on a verified token: time window, issuer,
//! audience. A pure function of the claims, the policy and the current time.

use serde_json::{Map, Value};

/// What [`check_claims`] requires of a token's claims.
#[derive(Clone, Debug)]
pub struct ClaimsPolicy {
    /// Seconds of clock skew tolerated on `exp`, `nbf` and `iat`. Defaults to `0` (Kong's
    /// `leeway` default).
    pub leeway: i64,
    /// Whether a token without `exp` is refused. Defaults to `true`: a bearer token that never
    /// expires is almost always a mistake.
    pub require_exp: bool,
    /// Accepted issuers; `iss` must equal one of them exactly. Empty (the default) skips the
    /// check, for callers that already matched the issuer when they picked the key set.
    pub issuers: Vec<String>,
    /// Required audiences; `aud` (a string or an array of strings) must contain at least one of
    /// them. Empty (the default) skips the check.
    pub audiences: Vec<String>,
}

impl Default for ClaimsPolicy {
    fn default() -> Self {
        ClaimsPolicy { leeway: 0, require_exp: true, issuers: Vec::new(), audiences: Vec::new() }
    }
}

/// Why a token's claims were refused.
///
/// The messages are lowercase and fixed, so they can go into an `error_description` as they are;
/// none of them echoes a claim value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimsError {
    /// `exp` is past, beyond the leeway.
    #[error("token expired")]
    Expired,
    /// `exp` is absent and the policy requires it.
    #[error("missing exp claim")]
    MissingExp,
    /// `nbf` is in the future, beyond the leeway.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future, beyond the leeway.
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `iss` is absent while issuers are required.
    #[error("missing iss claim")]
    MissingIssuer,
    /// `iss` is not one of the accepted issuers.
    #[error("invalid issuer")]
    InvalidIssuer,
    /// `aud` is absent while audiences are required.
    #[error("missing aud claim")]
    MissingAudience,
    /// `aud` contains none of the required audiences.
    #[error("invalid audience")]
    InvalidAudience,
    /// A registered claim has the wrong JSON type (e.g. a string `exp`).
    #[error("invalid {0} claim")]
    InvalidClaim(&'static str),
}

/// Checks `exp`, `nbf`, `iat`, `iss` and `aud` against `policy` at time `now` (Unix seconds).
///
/// Time comes in as a parameter so that tests, and a paused clock, control it. With leeway `L`:
/// the token is expired once `now >= exp + L`, not yet valid while `now + L < nbf`, and refused
/// when `iat > now + L`. Numeric dates may be fractional, as RFC 7519 allows.
pub fn check_claims(claims: &Map<String, Value>, policy: &ClaimsPolicy, now: i64) -> Result<(), ClaimsError> {
    let leeway = policy.leeway.max(0) as f64;
    let now = now as f64;

    match numeric_date(claims, "exp")? {
        Some(exp) if now >= exp + leeway => return Err(ClaimsError::Expired),
        Some(_) => {}
        None if policy.require_exp => return Err(ClaimsError::MissingExp),
        None => {}
    }
    if numeric_date(claims, "nbf")?.is_some_and(|nbf| now + leeway < nbf) {
        return Err(ClaimsError::NotYetValid);
    }
    if numeric_date(claims, "iat")?.is_some_and(|iat| iat > now + leeway) {
        return Err(ClaimsError::IssuedInFuture);
    }

    if !policy.issuers.is_empty() {
        let iss = match claims.get("iss") {
            None => return Err(ClaimsError::MissingIssuer),
            Some(Value::String(iss)) => iss,
            Some(_) => return Err(ClaimsError::InvalidClaim("iss")),
        };
        if !policy.issuers.iter().any(|allowed| allowed == iss) {
            return Err(ClaimsError::InvalidIssuer);
        }
    }

    if !policy.audiences.is_empty() {
        let wanted = |aud: &str| policy.audiences.iter().any(|w| w == aud);
        let found = match claims.get("aud") {
            None => return Err(ClaimsError::MissingAudience),
            Some(Value::String(aud)) => wanted(aud),
            Some(Value::Array(auds)) => {
                let mut found = false;
                for aud in auds {
                    match aud {
                        Value::String(aud) => found |= wanted(aud),
                        _ => return Err(ClaimsError::InvalidClaim("aud")),
                    }
                }
                found
            }
            Some(_) => return Err(ClaimsError::InvalidClaim("aud")),
        };
        if !found {
            return Err(ClaimsError::InvalidAudience);
        }
    }
    Ok(())
}

/// A NumericDate claim: `Ok(None)` when absent, an error when present but not a number.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<f64>, ClaimsError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or(ClaimsError::InvalidClaim(name)),
        Some(_) => Err(ClaimsError::InvalidClaim(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    #[track_caller]
    fn check(claims: Value, policy: &ClaimsPolicy, expected: Result<(), ClaimsError>) {
        let Value::Object(claims) = claims else { panic!("claims must be an object") };
        assert_eq!(check_claims(&claims, policy, NOW), expected);
    }

    fn leeway(seconds: i64) -> ClaimsPolicy {
        ClaimsPolicy { leeway: seconds, ..ClaimsPolicy::default() }
    }

    #[test]
    fn unexpired_token_passes() {
        check(json!({ "exp": NOW + 1 }), &ClaimsPolicy::default(), Ok(()));
    }

    #[test]
    fn expired_token_is_refused() {
        check(json!({ "exp": NOW - 1 }), &ClaimsPolicy::default(), Err(ClaimsError::Expired));
        check(json!({ "exp": NOW }), &ClaimsPolicy::default(), Err(ClaimsError::Expired));
    }

    #[test]
    fn expiry_leeway_is_honoured() {
        check(json!({ "exp": NOW - 30 }), &leeway(31), Ok(()));
        check(json!({ "exp": NOW - 30 }), &leeway(30), Err(ClaimsError::Expired));
    }

    #[test]
    fn fractional_exp_is_accepted() {
        check(json!({ "exp": NOW as f64 + 0.5 }), &ClaimsPolicy::default(), Ok(()));
        check(json!({ "exp": NOW as f64 - 0.5 }), &ClaimsPolicy::default(), Err(ClaimsError::Expired));
    }

    #[test]
    fn missing_exp_is_refused_only_when_required() {
        check(json!({}), &ClaimsPolicy::default(), Err(ClaimsError::MissingExp));
        check(json!({}), &ClaimsPolicy { require_exp: false, ..ClaimsPolicy::default() }, Ok(()));
    }

    #[test]
    fn non_numeric_dates_are_refused() {
        check(json!({ "exp": "tomorrow" }), &ClaimsPolicy::default(), Err(ClaimsError::InvalidClaim("exp")));
        check(json!({ "exp": NOW + 10, "nbf": null }), &ClaimsPolicy::default(), Err(ClaimsError::InvalidClaim("nbf")));
    }

    #[test]
    fn nbf_in_the_future_is_refused_with_leeway_honoured() {
        check(json!({ "exp": NOW + 100, "nbf": NOW + 10 }), &ClaimsPolicy::default(), Err(ClaimsError::NotYetValid));
        check(json!({ "exp": NOW + 100, "nbf": NOW + 10 }), &leeway(10), Ok(()));
        check(json!({ "exp": NOW + 100, "nbf": NOW + 11 }), &leeway(10), Err(ClaimsError::NotYetValid));
        check(json!({ "exp": NOW + 100, "nbf": NOW }), &ClaimsPolicy::default(), Ok(()));
    }

    #[test]
    fn iat_in_the_future_is_refused_with_leeway_honoured() {
        check(json!({ "exp": NOW + 100, "iat": NOW + 5 }), &ClaimsPolicy::default(), Err(ClaimsError::IssuedInFuture));
        check(json!({ "exp": NOW + 100, "iat": NOW + 5 }), &leeway(5), Ok(()));
        check(json!({ "exp": NOW + 100, "iat": NOW - 5000 }), &ClaimsPolicy::default(), Ok(()));
    }

    #[test]
    fn issuer_must_be_one_of_the_allowed() {
        let policy = ClaimsPolicy {
            issuers: vec!["https://a.example".into(), "https://b.example".into()],
            ..ClaimsPolicy::default()
        };
        check(json!({ "exp": NOW + 1, "iss": "https://b.example" }), &policy, Ok(()));
        check(json!({ "exp": NOW + 1, "iss": "https://b.example/" }), &policy, Err(ClaimsError::InvalidIssuer));
        check(json!({ "exp": NOW + 1 }), &policy, Err(ClaimsError::MissingIssuer));
        check(json!({ "exp": NOW + 1, "iss": 1 }), &policy, Err(ClaimsError::InvalidClaim("iss")));
        check(json!({ "exp": NOW + 1, "iss": "https://evil.example" }), &ClaimsPolicy::default(), Ok(()));
    }

    #[test]
    fn audience_string_or_array_must_contain_a_required_one() {
        let policy = ClaimsPolicy { audiences: vec!["api".into(), "web".into()], ..ClaimsPolicy::default() };
        check(json!({ "exp": NOW + 1, "aud": "web" }), &policy, Ok(()));
        check(json!({ "exp": NOW + 1, "aud": ["other", "api"] }), &policy, Ok(()));
        check(json!({ "exp": NOW + 1, "aud": "other" }), &policy, Err(ClaimsError::InvalidAudience));
        check(json!({ "exp": NOW + 1, "aud": [] }), &policy, Err(ClaimsError::InvalidAudience));
        check(json!({ "exp": NOW + 1 }), &policy, Err(ClaimsError::MissingAudience));
        check(json!({ "exp": NOW + 1, "aud": ["api", 3] }), &policy, Err(ClaimsError::InvalidClaim("aud")));
        check(json!({ "exp": NOW + 1, "aud": {"api": true} }), &policy, Err(ClaimsError::InvalidClaim("aud")));
    }

    #[test]
    fn messages_are_usable_as_error_descriptions() {
        assert_eq!(ClaimsError::Expired.to_string(), "token expired");
        assert_eq!(ClaimsError::InvalidClaim("exp").to_string(), "invalid exp claim");
    }
}
