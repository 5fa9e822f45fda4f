//! The pipeline's judgement of an outcome: the required claims, the answers the headers still
//! need (introspection, userinfo), the consumer, the groups and the session's subject.

use crate::authz::{self, Requirement};
use crate::consumer::Mapping;
use crate::decision::Trail;
use crate::grants::Grants;
use crate::headers::{self, HeaderPlan};
use crate::outcome::Outcome;
use crate::respond::Failure;
use crate::settings::Settings;
use gatehouse_core::consumers::ConsumerBy;
use gatehouse_core::entity::Consumer;
use gatehouse_core::plugin::Ctx;
use http::HeaderValue;
use serde_json::{Map, Value};
use std::sync::Arc;

/// What authorization established beside the outcome.
pub(crate) struct Authorized {
    pub consumer: Option<Arc<Consumer>>,
    /// The new session's subject: the consumer, else `credential_claim`.
    pub subject: Option<String>,
    /// `X-Authenticated-Groups`.
    pub groups: Option<HeaderValue>,
}

/// One instance's authorization rules.
pub(crate) struct Authorizer {
    requirements: Vec<Requirement>,
    mapping: Option<Mapping>,
    consumer_optional: bool,
    credential_claim: Option<Vec<String>>,
    groups_claim: Option<Vec<String>>,
    search_user_info: bool,
    /// `verify_claims`: a userinfo answer must be about the token's subject.
    verify_claims: bool,
    /// `hide_credentials`.
    pub hide_credentials: bool,
}

impl Authorizer {
    /// The rules of a config.
    pub fn build(s: &Settings) -> Authorizer {
        let mut requirements = Vec::new();
        for (name, claim, required) in [
            ("scopes", &s.scopes_claim, &s.scopes_required),
            ("audience", &s.audience_claim, &s.audience_required),
            ("groups", &s.groups_claim, &s.groups_required),
            ("roles", &s.roles_claim, &s.roles_required),
        ] {
            if let (Some(claim), Some(required)) = (claim, required)
                && !required.is_empty()
            {
                requirements.push(Requirement { name, claim: claim.clone(), required: required.clone() });
            }
        }
        let claims = match (&s.consumer_claims, &s.consumer_claim) {
            (Some(c), _) if !c.is_empty() => Some(c.clone()),
            (_, Some(c)) if !c.is_empty() => Some(vec![c.clone()]),
            _ => None,
        };
        let mapping = claims.map(|claims| Mapping {
            claims,
            by: s
                .consumer_by
                .as_deref()
                .unwrap_or(&["username".to_string(), "custom_id".to_string()])
                .iter()
                .filter_map(|b| ConsumerBy::from_name(b))
                .collect(),
            ignore_case: s.by_username_ignore_case,
        });
        Authorizer {
            requirements,
            mapping,
            consumer_optional: s.consumer_optional,
            credential_claim: s.credential_claim.clone(),
            groups_claim: s.authenticated_groups_claim.clone(),
            search_user_info: s.search_user_info,
            verify_claims: s.verify_claims,
            hide_credentials: s.hide_credentials,
        }
    }

    /// Whether the outcome's own claims decide everything here: no consumer, no groups, no
    /// userinfo search. With a header plan that needs nothing fetched, a cached authentication
    /// then always gets the same decision (see `fast.rs`).
    pub fn needs_only_the_outcome(&self) -> bool {
        self.mapping.is_none() && self.groups_claim.is_none() && !self.search_user_info
    }

    /// The required claims (`*_required`), looked up in the first source that has each.
    pub fn requirements_met(&self, sources: &[&Map<String, Value>]) -> Result<(), Failure> {
        authz::check(&self.requirements, sources).map_err(|reason| Failure::Forbidden { reason })
    }

    /// Judges `o`: the required claims, then what the headers need fetched, the consumer, the
    /// groups and the subject.
    pub async fn authorize(
        &self,
        ctx: &Ctx,
        o: &mut Outcome,
        now: i64,
        grants: &Grants,
        plan: &HeaderPlan,
        trail: &mut Trail,
    ) -> Result<Authorized, Failure> {
        {
            let intro = o.introspection.as_ref().map(|a| &a.value.claims);
            let access = o.access.as_ref().map(|a| &a.claims);
            let checks: Vec<&Map<String, Value>> = [intro, access].into_iter().flatten().collect();
            self.requirements_met(&checks)?;
        }
        trail.past_requirements = true;

        // Userinfo and introspection are fetched for headers only when a header needs them.
        if let Some(token) = o.access_token.clone() {
            if o.introspection.is_none() && plan.needs_introspection() {
                o.introspection = grants.introspect(&token, now).await?;
            }
            if o.userinfo.is_none() && (plan.needs_userinfo() || self.userinfo_needed_for_claims(plan, o)) {
                o.userinfo = grants.userinfo(&token, now).await?;
            }
        }
        if self.verify_claims
            && let Some(u) = &o.userinfo
        {
            let id = o.id.as_ref().map(|v| &v.claims);
            crate::claims::userinfo_subject(&u.value.claims, id).map_err(Failure::of_refusal)?;
        }

        let intro = o.introspection.as_ref().map(|a| &a.value.claims);
        let access = o.access.as_ref().map(|a| &a.claims);
        let id = o.id.as_ref().map(|a| &a.claims);
        let user = if self.search_user_info { o.userinfo.as_ref().map(|a| &a.value.claims) } else { None };
        let sources: Vec<&Map<String, Value>> = [intro, id, access, user].into_iter().flatten().collect();
        let mut consumer = None;
        let mut subject = None;
        if let Some(mapping) = &self.mapping {
            match mapping.find(&ctx.consumers, &sources) {
                Ok(c) => {
                    subject = c.username.clone().or_else(|| c.custom_id.clone()).or_else(|| Some(c.id.clone()));
                    consumer = Some(c);
                }
                Err(e) if self.consumer_optional => tracing::debug!(reason = %e, "kong consumer is optional"),
                Err(e) => return Err(Failure::Forbidden { reason: format!("kong consumer was not found ({e})") }),
            }
        }
        if subject.is_none()
            && let Some(path) = &self.credential_claim
        {
            subject = sources.iter().find_map(|s| authz::find(s, path)).and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
        }
        let groups = self.groups_claim.as_ref().and_then(|path| groups(&sources, path));
        Ok(Authorized { consumer, subject, groups })
    }

    /// Whether a claim header's claim is in none of the other sources, so userinfo must be asked
    /// (only with `search_user_info`).
    fn userinfo_needed_for_claims(&self, plan: &HeaderPlan, o: &Outcome) -> bool {
        if !self.search_user_info || !plan.has_claims() {
            return false;
        }
        let src = headers::Sources {
            introspection: o.introspection.as_ref().map(|a| &a.value.claims),
            access: o.access.as_ref().map(|a| &a.claims),
            id: o.id.as_ref().map(|a| &a.claims),
            ..headers::Sources::default()
        };
        [&plan.upstream, &plan.downstream]
            .iter()
            .flat_map(|d| d.claims.iter())
            .any(|c| headers::search(&src, &c.path, false).is_none())
    }
}

/// `X-Authenticated-Groups`: the claim's words or items, each once, comma-separated.
fn groups(sources: &[&Map<String, Value>], path: &[String]) -> Option<HeaderValue> {
    let mut list: Vec<&str> = Vec::new();
    match sources.iter().find_map(|s| authz::find(s, path)) {
        Some(Value::String(s)) => list.extend(s.split_whitespace()),
        Some(Value::Array(a)) => list.extend(a.iter().filter_map(Value::as_str)),
        _ => {}
    }
    let mut seen = std::collections::HashSet::new();
    list.retain(|g| seen.insert(*g));
    if list.is_empty() {
        return None;
    }
    headers::header_value(&list.join(", "))
}
