//! What follows a login (Kong's `login_methods`, `login_action`, `login_tokens`,
//! `login_redirect_mode`, `login_redirect_uri`): on to the upstream (the default), a `200` with
//! the chosen tokens, or a `302` back to where the browser was going (or to the configured URI)
//! with the tokens in its fragment or query. Runs after the session is sealed, so its
//! `Set-Cookie` rides on whichever answer goes out.

use crate::location::{self, ArgsIn};
use crate::method::{Method, Methods};
use crate::outcome::Outcome;
use crate::settings::Settings;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use gatehouse_core::plugin::BuildError;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Map, Value};

/// `login_action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Upstream,
    Response,
    Redirect,
}

/// A `login_tokens` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LoginToken {
    Id,
    Access,
    Refresh,
    Tokens,
    Introspection,
}

impl LoginToken {
    fn from_name(name: &str) -> Option<LoginToken> {
        Some(match name {
            "id_token" => LoginToken::Id,
            "access_token" => LoginToken::Access,
            "refresh_token" => LoginToken::Refresh,
            "tokens" => LoginToken::Tokens,
            "introspection" => LoginToken::Introspection,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            LoginToken::Id => "id_token",
            LoginToken::Access => "access_token",
            LoginToken::Refresh => "refresh_token",
            LoginToken::Tokens => "tokens",
            LoginToken::Introspection => "introspection",
        }
    }
}

/// One instance's login action, decided at build time.
pub(crate) struct Login {
    methods: Methods,
    action: Action,
    tokens: Vec<LoginToken>,
    mode: ArgsIn,
    redirect_uris: Vec<String>,
    preserve_query_args: bool,
}

impl Login {
    /// The login action of a config; `login_redirect_uri` entries must be absolute http(s) URLs.
    pub fn build(s: &Settings) -> Result<Login, BuildError> {
        let redirect_uris = s.login_redirect_uri.clone().unwrap_or_default();
        for uri in &redirect_uris {
            location::checked_target(uri).map_err(|e| BuildError::field("login_redirect_uri", e))?;
        }
        Ok(Login {
            methods: Methods::of(s.login_methods.as_deref().unwrap_or_default()),
            action: match s.login_action.as_str() {
                "response" => Action::Response,
                "redirect" => Action::Redirect,
                _ => Action::Upstream,
            },
            tokens: s.login_tokens.iter().flatten().filter_map(|t| LoginToken::from_name(t)).collect(),
            mode: if s.login_redirect_mode == "query" { ArgsIn::Query } else { ArgsIn::Fragment },
            redirect_uris,
            preserve_query_args: s.preserve_query_args,
        })
    }

    /// Whether a login by `m` is answered here rather than proxied: then nothing that serves
    /// requests without the general path (`fast.rs`) may serve that method.
    pub fn answers(&self, m: Method) -> bool {
        self.action != Action::Upstream && self.methods.contains(m)
    }

    /// Whether a sign-in proxied upstream gets the query it started with (`preserve_query_args`).
    pub fn preserves_query(&self) -> bool {
        self.preserve_query_args
    }

    /// The answer to a login, or `None` to proxy it.
    pub fn answer(&self, o: &Outcome) -> Option<Response<Bytes>> {
        if !self.answers(o.method) {
            return None;
        }
        match self.action {
            Action::Upstream => None,
            Action::Response => Some(self.response(o)),
            Action::Redirect => self.redirect(o),
        }
    }

    /// Kong's body: `login_tokens` read in order up to `tokens`; the introspection answer when
    /// `introspection` came first and there is one, else the whole token endpoint answer when
    /// `tokens` was named, else the named tokens. Nothing to send: `204`.
    fn response(&self, o: &Outcome) -> Response<Bytes> {
        let mut introspection = false;
        let mut tokens = false;
        let mut named = Map::new();
        for t in &self.tokens {
            match t {
                LoginToken::Introspection => introspection = true,
                LoginToken::Tokens => {
                    tokens = true;
                    break;
                }
                t => {
                    if let Some(v) = string_token(o, *t) {
                        named.insert(t.name().to_string(), Value::String(v.to_string()));
                    }
                }
            }
        }
        let body = match (&o.introspection, introspection, tokens) {
            (Some(i), true, _) => Some(i.value.claims.clone()),
            (_, _, true) => Some(whole(o)),
            _ => Some(named),
        }
        .filter(|m| !m.is_empty());
        let mut resp = match body {
            Some(m) => {
                let mut r = Response::new(Bytes::from(serde_json::to_vec(&m).unwrap_or_default()));
                r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                r
            }
            None => {
                let mut r = Response::new(Bytes::new());
                *r.status_mut() = StatusCode::NO_CONTENT;
                r
            }
        };
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }

    /// Kong's redirect: `login_redirect_uri[client]`, else where the sign-in started; with
    /// `preserve_query_args` the original query; then each named token that exists (tables as
    /// base64url JSON) in the fragment or the query. Nowhere to go: proxied (logged).
    fn redirect(&self, o: &Outcome) -> Option<Response<Bytes>> {
        let signin = o.signin.as_deref();
        let base = match self.redirect_uris.get(o.client).or(self.redirect_uris.first()) {
            Some(uri) => uri.as_str(),
            None => match signin {
                Some(s) => s.uri.as_str(),
                None => {
                    tracing::info!("login_action is redirect, but there is nowhere to redirect to: proxied");
                    return None;
                }
            },
        };
        let query = signin.filter(|_| self.preserve_query_args).and_then(|s| s.uri_args.as_deref());
        let mut values: Vec<(&str, String)> = Vec::new();
        for t in &self.tokens {
            let v = match t {
                LoginToken::Tokens => Some(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&whole(o)).unwrap_or_default())),
                LoginToken::Introspection => o
                    .introspection
                    .as_ref()
                    .map(|i| URL_SAFE_NO_PAD.encode(serde_json::to_vec(&i.value.claims).unwrap_or_default())),
                t => string_token(o, *t).map(str::to_string),
            };
            if let Some(v) = v {
                values.push((t.name(), v));
            }
        }
        let args: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let target = location::with_args(base, query, &args, self.mode);
        let Ok(location) = HeaderValue::from_str(&target) else {
            tracing::warn!("the login redirect is not a header value: proxied");
            return None;
        };
        let mut resp = Response::new(Bytes::new());
        *resp.status_mut() = StatusCode::FOUND;
        resp.headers_mut().insert(header::LOCATION, location);
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Some(resp)
    }
}

fn string_token(o: &Outcome, t: LoginToken) -> Option<&str> {
    match t {
        LoginToken::Id => o.id_token.as_deref(),
        LoginToken::Access => o.access_token.as_deref(),
        LoginToken::Refresh => o.refresh_token.as_deref(),
        LoginToken::Tokens | LoginToken::Introspection => None,
    }
}

/// The token endpoint's whole answer when this request got one, else the tokens there are.
fn whole(o: &Outcome) -> Map<String, Value> {
    if let Some(raw) = o.signin.as_ref().and_then(|s| s.raw.as_ref()) {
        return raw.clone();
    }
    let mut m = Map::new();
    for t in [LoginToken::Id, LoginToken::Access, LoginToken::Refresh] {
        if let Some(v) = string_token(o, t) {
            m.insert(t.name().to_string(), Value::String(v.to_string()));
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::SignedIn;
    use serde_json::json;

    fn login(config: Value) -> Login {
        let mut c = json!({ "issuer": "https://idp.example/" });
        if let (Value::Object(base), Value::Object(extra)) = (&mut c, config) {
            base.extend(extra);
        }
        let cfg = crate::config::schema().validate(&c, gatehouse_core::schema::Mode::default()).expect("valid");
        Login::build(&Settings::from_config(&cfg).expect("typed")).expect("builds")
    }

    fn signed_in() -> Outcome {
        let mut o = Outcome::new(Method::AuthorizationCode);
        o.access_token = Some("at".into());
        o.id_token = Some("it".into());
        o.signin = Some(Box::new(SignedIn {
            uri: "http://gw.example/anything".into(),
            uri_args: Some("hello=world".into()),
            raw: Some(json!({"access_token": "at", "token_type": "Bearer"}).as_object().cloned().expect("object")),
        }));
        o
    }

    fn location(r: &Response<Bytes>) -> &str {
        r.headers()[header::LOCATION].to_str().expect("text")
    }

    #[test]
    fn upstream_is_the_default_and_other_methods_are_left_alone() {
        assert!(login(json!({})).answer(&signed_in()).is_none());
        let l = login(json!({"login_action": "redirect"}));
        assert!(l.answer(&Outcome::new(Method::Session)).is_none(), "a session request is no login");
        assert!(l.answers(Method::AuthorizationCode) && !l.answers(Method::Password));
    }

    #[test]
    fn kongs_authorization_code_example_redirects_to_the_original_url_with_its_query() {
        let l = login(json!({"login_action": "redirect", "preserve_query_args": true, "login_tokens": null}));
        let r = l.answer(&signed_in()).expect("a redirect");
        assert_eq!(r.status(), StatusCode::FOUND);
        assert_eq!(location(&r), "http://gw.example/anything?hello=world");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn tokens_go_in_the_fragment_or_the_query() {
        let l = login(json!({"login_action": "redirect", "login_redirect_uri": ["https://app.example/cb#x"]}));
        assert_eq!(location(&l.answer(&signed_in()).expect("302")), "https://app.example/cb#x&id_token=it");
        let l = login(json!({
            "login_action": "redirect",
            "login_redirect_mode": "query",
            "login_tokens": ["access_token", "tokens"],
            "login_redirect_uri": ["https://app.example/cb"],
        }));
        let tokens = URL_SAFE_NO_PAD.encode(br#"{"access_token":"at","token_type":"Bearer"}"#);
        assert_eq!(
            location(&l.answer(&signed_in()).expect("302")),
            format!("https://app.example/cb?access_token=at&tokens={tokens}")
        );
    }

    #[test]
    fn response_bodies_follow_login_tokens() {
        let l = login(json!({"login_action": "response", "login_tokens": ["id_token", "access_token"]}));
        let r = l.answer(&signed_in()).expect("200");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            serde_json::from_slice::<Value>(r.body()).expect("json"),
            json!({"id_token": "it", "access_token": "at"})
        );
        let l = login(json!({"login_action": "response", "login_tokens": ["tokens", "id_token"]}));
        let r = l.answer(&signed_in()).expect("200");
        assert_eq!(serde_json::from_slice::<Value>(r.body()).expect("json")["token_type"], "Bearer");
        let l = login(json!({"login_action": "response", "login_tokens": ["refresh_token"]}));
        assert_eq!(l.answer(&signed_in()).expect("204").status(), StatusCode::NO_CONTENT);
    }

    #[test]
    fn login_redirect_uris_must_be_absolute_http_urls() {
        for bad in ["/relative", "javascript:alert(1)", "https://u:p@evil.example/"] {
            let c = json!({ "issuer": "https://idp.example/", "login_redirect_uri": [bad] });
            let Ok(cfg) = crate::config::schema().validate(&c, gatehouse_core::schema::Mode::default()) else {
                continue; // the schema's url check refused it already
            };
            assert!(Login::build(&Settings::from_config(&cfg).expect("typed")).is_err(), "{bad}");
        }
    }
}
