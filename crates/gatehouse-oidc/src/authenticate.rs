//! The pipeline's "authenticate" step, in Kong's fixed precedence: session → bearer →
//! introspection → userinfo → refresh_token → password → client_credentials. A request's
//! credential (`find.rs`) becomes an [`Outcome`] naming the method that accepted it, or a
//! [`Failure`].

use crate::claims::IdContext;
use crate::credentials::Args;
use crate::decision::Trail;
use crate::find::{Credential, Finder};
use crate::grants::Grants;
use crate::method::{Method, Methods};
use crate::outcome::{Authenticated, Outcome};
use crate::respond::Failure;
use crate::sessions::Sessions;
use crate::settings::Settings;
use crate::signin::SignIn;
use crate::tokens::{Expect, TokenError, Verifier};
use gatehouse_core::plugin::Ctx;
use http::request::Parts;
use serde_json::Value;
use std::sync::Arc;

/// One instance's authentication: the methods that are on and what each needs.
pub(crate) struct Authenticator {
    pub methods: Methods,
    pub finder: Finder,
    pub verifier: Verifier,
    pub grants: Grants,
    pub sessions: Sessions,
    /// The authorization code flow, when it is on and there is a client to sign in as.
    pub signin: Option<SignIn>,
    /// `introspect_jwt_tokens`: a verified JWT must also be active at introspection.
    pub introspect_jwt_tokens: bool,
}

impl Authenticator {
    /// The authentication of a config, from its parts.
    pub fn build(
        s: &Settings,
        methods: Methods,
        verifier: Verifier,
        grants: Grants,
        sessions: Sessions,
        signin: Option<SignIn>,
    ) -> Authenticator {
        Authenticator {
            methods,
            finder: Finder::build(s, methods),
            verifier,
            grants,
            sessions,
            signin,
            introspect_jwt_tokens: s.introspect_jwt_tokens,
        }
    }

    /// Authenticates one request. Reads it, never changes it: what leaves the request is
    /// decided later and applied in one place (`decision.rs`).
    pub async fn authenticate(
        &self,
        ctx: &Ctx,
        parts: &Parts,
        now: i64,
        trail: &mut Trail,
    ) -> Result<Authenticated, Failure> {
        if self.methods.contains(Method::Session) {
            trail.binding = self.sessions.binding(ctx.forwarded_ip, ctx.https, &parts.headers);
            if let Some(r) =
                self.sessions.authenticate(&parts.headers, now, ctx.https, trail, &self.grants, &self.verifier).await
            {
                return r.map(Authenticated::Outcome);
            }
        }
        let body = ctx.body.clone();
        let args = Args::parse(&parts.uri, &parts.headers, body.as_ref());
        let client = self.finder.client_index(parts, &args);
        trail.client = client;
        let credential = self.finder.find(parts, &args);
        // The sign-in is tried last (Kong), and reads the callback's arguments only then.
        let returned = match (&credential, &self.signin) {
            (None, Some(s)) => Some(s.returned(parts, &args)),
            _ => None,
        };
        drop(args);
        if let (Some(s), Some(ret)) = (&self.signin, returned) {
            return s.sign_in(ctx, parts, ret, client, now, trail, &self.grants, &self.verifier).await;
        }
        self.credential(credential, client, now).await.map(Authenticated::Outcome)
    }

    /// The outcome of the credential `find.rs` found.
    async fn credential(&self, credential: Option<Credential>, client: usize, now: i64) -> Result<Outcome, Failure> {
        let v = &self.verifier;
        match credential {
            Some(Credential::Bearer { token, found, id_token }) => {
                let mut o = self.bearer(token, now).await?;
                o.hide.push(found);
                if let Some((id, found)) = id_token {
                    // An ID token sent along must be ours, for our client.
                    let cx = IdContext {
                        client_id: self.grants.clients.get(client).map(|c| c.id.as_str()),
                        access_token: o.access_token.as_deref(),
                        ..IdContext::default()
                    };
                    let verified = v.verify(&id, true, Expect::Id(cx), now).await.map_err(Failure::of_token)?;
                    o.id = Some(Arc::new(verified));
                    o.id_token = Some(id.into());
                    o.hide.push(found);
                }
                Ok(o)
            }
            Some(Credential::RefreshToken { token, found }) => {
                let mut o = self.grants.refresh(v, client, &token, now).await?;
                o.hide.push(found);
                Ok(o)
            }
            Some(Credential::Password { pair, or_client }) => match self.grants.password(v, client, &pair, now).await {
                Ok(mut o) => {
                    o.hide.push(pair.found);
                    Ok(o)
                }
                // With the same Basic pair, Kong tries client_credentials next.
                Err(e @ Failure::Unauthorized { .. }) => match or_client {
                    Some(p) => {
                        let mut o = self.grants.client_credentials(v, client, &p, now).await?;
                        o.hide.push(p.found);
                        Ok(o)
                    }
                    None => Err(e),
                },
                Err(e) => Err(e),
            },
            Some(Credential::ClientCredentials(p)) => {
                let mut o = self.grants.client_credentials(v, client, &p, now).await?;
                o.hide.push(p.found);
                Ok(o)
            }
            None => Err(Failure::unauthorized("no suitable authorization credentials were provided")),
        }
    }

    /// A bearer token: a JWT verified locally, else introspection, else userinfo.
    async fn bearer(&self, token: String, now: i64) -> Result<Outcome, Failure> {
        let m = self.methods;
        let mut first: Option<Failure> = None;
        if m.contains(Method::Bearer) {
            match self.verifier.access_token(&token, now).await {
                Ok(v) => {
                    let mut o = Outcome {
                        expires: v.exp.unwrap_or(0),
                        memo: Some(v.upstream_headers.clone()),
                        access: Some(v),
                        ..Outcome::new(Method::Bearer)
                    };
                    if self.introspect_jwt_tokens {
                        match self.grants.introspect(&token, now).await? {
                            Some(ans) => o.introspection = Some(ans),
                            None => {
                                return Err(Failure::unauthorized(
                                    "jwt bearer token is not active anymore or has been revoked",
                                ));
                            }
                        }
                    }
                    o.access_token = Some(token.into());
                    return Ok(o);
                }
                Err(TokenError::NotJwt) => {}
                Err(TokenError::Idp(e)) => return Err(Failure::Idp { reason: e.to_string() }),
                Err(e) => first = Some(Failure::of_token(e)),
            }
        }
        if m.contains(Method::Introspection)
            && let Some(ans) = fallback(&mut first, self.grants.introspect(&token, now).await, "inactive token")?
        {
            let exp = ans.value.claims.get("exp").and_then(Value::as_f64).map_or(0, |f| f as i64);
            let access = self.verifier.cached(&token, now).ok().flatten();
            return Ok(Outcome {
                access_token: Some(token.into()),
                introspection: Some(ans),
                access,
                expires: exp,
                ..Outcome::new(Method::Introspection)
            });
        }
        if m.contains(Method::Userinfo)
            && let Some(ans) =
                fallback(&mut first, self.grants.userinfo(&token, now).await, "userinfo refused the token")?
        {
            return Ok(Outcome {
                access_token: Some(token.into()),
                userinfo: Some(ans),
                ..Outcome::new(Method::Userinfo)
            });
        }
        Err(first.unwrap_or_else(|| Failure::unauthorized("invalid bearer token")))
    }
}

/// The answer of a method tried after another refused the token (introspection, userinfo):
/// `Some` when it accepts it. A refusal is kept in `first` unless one is there already; an IdP
/// that cannot answer answers the request at once when nothing refused the token before.
fn fallback<T>(
    first: &mut Option<Failure>,
    r: Result<Option<T>, Failure>,
    refused: &str,
) -> Result<Option<T>, Failure> {
    match r {
        Ok(Some(ans)) => Ok(Some(ans)),
        Ok(None) => {
            first.get_or_insert_with(|| Failure::unauthorized(refused));
            Ok(None)
        }
        Err(f @ Failure::Idp { .. }) if first.is_none() => Err(f),
        Err(f) => {
            first.get_or_insert(f);
            Ok(None)
        }
    }
}
