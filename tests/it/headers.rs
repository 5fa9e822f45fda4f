//! The openid-connect header mapping through the real proxy: the seed transcript, every header field
//! upstream and downstream, Kong's encoding and search order, and our five rules (names with dashes,
//! the spoofing guard, no control characters, the size guard, per-mapping encodings).

use super::oidc::Env;
use super::util::{client, json};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{pass}")))
}

fn b64_json(s: &str) -> Value {
    serde_json::from_slice(&STANDARD.decode(s).unwrap_or_else(|e| panic!("not base64 ({e}): {s}"))).unwrap()
}

fn jwt_claims(t: &str) -> Value {
    let payload = t.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn jwt_kid(t: &str) -> String {
    let header = t.split('.').next().unwrap();
    let h: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    h["kid"].as_str().unwrap().to_string()
}

/// The IdP's published JWK with this kid.
async fn idp_jwk(env: &Env, kid: &str) -> Value {
    let (_, jwks) = json(client().get(format!("{}/jwks", env.issuer)).send().await.unwrap()).await;
    jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).cloned().unwrap()
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn the_seed_transcript() {
    const ID: &str = "5f35b796-ced6-4c00-9b2a-90eef745f4f9";
    let env = Env::new(json!({"auth_methods": ["bearer"]})).await;
    client().delete(format!("{}/plugins/{}", env.gw.admin, env.plugin)).send().await.unwrap();
    // The seed's plugin id, as `gatehouse dev` will create it.
    let resp = client()
        .put(format!("{}/plugins/{ID}", env.gw.admin))
        .json(&json!({"name": "openid-connect", "service": {"name": "echo"},
            "config": {"issuer": env.issuer, "client_id": ["gatehouse"], "client_secret": ["gatehouse-secret"]}}))
        .send()
        .await
        .unwrap();
    let (st, body) = json(resp).await;
    assert!(st == 200 || st == 201, "{body}");
    // http -f patch :8001/plugins/5f35... config.auth_methods=password config.upstream_headers_claims=...
    let resp = client()
        .patch(format!("{}/plugins/{ID}", env.gw.admin))
        .form(&[
            ("config.auth_methods", "password"),
            ("config.upstream_headers_claims", "preferred_username"),
            ("config.upstream_headers_names", "authenticated_user"),
        ])
        .send()
        .await
        .unwrap();
    let (st, plugin) = json(resp).await;
    assert_eq!(st, 200, "{plugin}");
    assert_eq!(plugin["id"], ID);
    assert_eq!(plugin["name"], "openid-connect");
    assert!(plugin["service"]["id"].is_string());
    assert_eq!(plugin["config"]["auth_methods"], json!(["password"]));
    assert_eq!(plugin["config"]["upstream_headers_claims"], json!(["preferred_username"]));
    assert_eq!(plugin["config"]["upstream_headers_names"], json!(["authenticated_user"]));
    // http -a john:doe :8000
    let (st, echo, _) = env.call_path("/api", &[("authorization", &basic("john", "doe"))]).await;
    assert_eq!(st, 200, "{echo}");
    assert_eq!(echo["method"], "GET");
    let auth = echo["headers"]["Authorization"].as_str().unwrap();
    let token = auth.strip_prefix("Bearer ").unwrap();
    assert_eq!(echo["headers"]["Authenticated-User"], "john");
    // The token is a real one: it verifies with the IdP's published key.
    let keys = gatehouse_jose::KeySet::from_jwks(json!({"keys": [idp_jwk(&env, &jwt_kid(token)).await]})).unwrap();
    let v = gatehouse_jose::verify(token, &keys, &gatehouse_jose::Policy::default()).unwrap();
    assert_eq!(v.claims["preferred_username"], "john");
    assert_eq!(v.claims["given_name"], "John");
}

/// Every `*_header` field, upstream and downstream, with the exact value.
#[tokio::test]
async fn every_header_field_upstream_and_downstream() {
    let fields = [
        "access_token_header",
        "id_token_header",
        "refresh_token_header",
        "user_info_header",
        "user_info_jwt_header",
        "introspection_header",
        "introspection_jwt_header",
        "access_token_jwk_header",
        "id_token_jwk_header",
        "session_id_header",
    ];
    let mut config = json!({"auth_methods": ["password", "session"], "max_added_headers_size": 65536,
        "upstream_access_token_header": null});
    for f in fields {
        let name = format!("x-{}", f.trim_end_matches("_header").replace('_', "-"));
        config[format!("upstream_{f}")] = json!(name);
        config[format!("downstream_{f}")] = json!(name);
    }
    // The JWT forms need the IdP to answer with a JWT; they are checked in their own plugin below.
    for (accept, env_field) in [(None, "plain"), (Some(()), "jwt")] {
        let mut config = config.clone();
        if accept.is_some() {
            config["userinfo_accept"] = json!("application/jwt");
            config["introspection_accept"] = json!("application/token-introspection+jwt");
        }
        let env = Env::new(config).await;
        let (st, echo, h) = env.call(&[("authorization", &basic("john", "doe"))]).await;
        assert_eq!(st, 200, "{env_field}: {echo}");
        let up = &echo["headers"];
        let upv = |n: &str| up.get(n).and_then(Value::as_str).map(str::to_string);
        let downv = |n: &str| header(&h, n);
        for (dir, get) in [("upstream", &upv as &dyn Fn(&str) -> Option<String>), ("downstream", &downv)] {
            let at = get(if dir == "upstream" { "X-Access-Token" } else { "x-access-token" }).expect("access token");
            let name = |n: &str| if dir == "upstream" { super::util::title(n) } else { n.to_string() };
            let id = get(&name("x-id-token")).expect("id token");
            let rt = get(&name("x-refresh-token")).expect("refresh token");
            assert_eq!(jwt_claims(&at)["preferred_username"], "john", "{dir}");
            assert_eq!(jwt_claims(&id)["aud"], "gatehouse", "{dir}");
            assert!(!rt.is_empty() && !rt.contains('.'), "{dir}: an opaque refresh token");
            // The JWKs are the very keys that verified the tokens.
            let at_jwk = b64_json(&get(&name("x-access-token-jwk")).expect("at jwk"));
            assert_eq!(at_jwk, idp_jwk(&env, &jwt_kid(&at)).await, "{dir}");
            let id_jwk = b64_json(&get(&name("x-id-token-jwk")).expect("id jwk"));
            assert_eq!(id_jwk, idp_jwk(&env, &jwt_kid(&id)).await, "{dir}");
            // Userinfo and introspection: what the IdP answers for this token.
            let (_, userinfo) =
                json(client().get(format!("{}/userinfo", env.issuer)).bearer_auth(&at).send().await.unwrap()).await;
            let resp = client()
                .post(format!("{}/introspect", env.issuer))
                .basic_auth("gatehouse", Some("gatehouse-secret"))
                .form(&[("token", at.as_str())])
                .send()
                .await
                .unwrap();
            let (_, intro) = json(resp).await;
            if env_field == "plain" {
                assert_eq!(b64_json(&get(&name("x-user-info")).expect("userinfo")), userinfo, "{dir}");
                assert_eq!(b64_json(&get(&name("x-introspection")).expect("introspection")), intro, "{dir}");
                assert!(get(&name("x-user-info-jwt")).is_none(), "{dir}: JSON answers have no JWT form");
                assert!(get(&name("x-introspection-jwt")).is_none(), "{dir}");
            } else {
                let ujwt = get(&name("x-user-info-jwt")).expect("userinfo jwt");
                assert_eq!(jwt_claims(&ujwt)["preferred_username"], "john", "{dir}");
                let ijwt = get(&name("x-introspection-jwt")).expect("introspection jwt");
                assert_eq!(jwt_claims(&ijwt)["token_introspection"]["active"], true, "{dir}");
                // The base64 forms carry the JWT's claims.
                assert_eq!(b64_json(&get(&name("x-user-info")).unwrap())["preferred_username"], "john");
                assert_eq!(b64_json(&get(&name("x-introspection")).unwrap())["active"], true);
            }
            let sid = get(&name("x-session-id")).expect("session id");
            assert_eq!(sid.len(), 43, "{dir}: {sid}");
        }
        // The session id is the session's: the same on both sides, and again when the cookie comes back.
        let sid = header(&h, "x-session-id").unwrap();
        assert_eq!(up["X-Session-Id"], sid);
        let cookie = h.get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_string();
        let (st, echo2, h2) = env.call(&[("cookie", &cookie)]).await;
        assert_eq!(st, 200, "{echo2}");
        assert_eq!(echo2["headers"]["X-Session-Id"], sid);
        assert_eq!(header(&h2, "x-session-id").unwrap(), sid);
        // A new login is a new session.
        let (_, echo3, _) = env.call(&[("authorization", &basic("john", "doe"))]).await;
        assert_ne!(echo3["headers"]["X-Session-Id"], sid);
    }
}

#[tokio::test]
async fn authorization_forms_and_null_token_header() {
    let env = Env::new(json!({"auth_methods": ["bearer"], "upstream_access_token_header": "authorization:dpop",
        "upstream_id_token_header": null}))
    .await;
    let token = env.mint(json!({})).await;
    let (_, echo, _) = env.call(&[("authorization", &bearer(&token))]).await;
    assert_eq!(echo["headers"]["Authorization"], format!("DPoP {token}"));
    env.patch(json!({"upstream_access_token_header": null})).await;
    let (_, echo, _) = env.call(&[("authorization", &bearer(&token))]).await;
    assert!(echo["headers"].get("Authorization").is_none(), "hidden and not re-added: {echo}");
}

/// Kong's encoding of every kind of claim value, with `false`, `""`, `[]`, `{}` absent.
#[tokio::test]
async fn claim_values_are_encoded_as_kong_does() {
    let claims = json!({"s": "text", "n": 1622556713, "f": 1.5, "t": true, "no": false, "e": "", "ea": [], "eo": {},
        "arr": ["a", "b"], "obj": {"name": "li", "groups": ["default", "it"]}, "utf": "Jürgen"});
    let names: Vec<String> = claims.as_object().unwrap().keys().cloned().collect();
    let env = Env::new(json!({"auth_methods": ["bearer"],
        "upstream_headers_claims": names, "upstream_headers_names": names.iter().map(|n| format!("x_c_{n}")).collect::<Vec<_>>()}))
    .await;
    let token = env.mint(json!({"claims": claims})).await;
    let (st, echo, _) = env.call(&[("authorization", &bearer(&token))]).await;
    assert_eq!(st, 200, "{echo}");
    let h = &echo["headers"];
    assert_eq!(h["X-C-S"], "text");
    assert_eq!(h["X-C-N"], "1622556713");
    assert_eq!(h["X-C-F"], "1.5");
    assert_eq!(h["X-C-T"], "true");
    for absent in ["X-C-No", "X-C-E", "X-C-Ea", "X-C-Eo"] {
        assert!(h.get(absent).is_none(), "{absent} must be absent: {h}");
    }
    assert_eq!(h["X-C-Arr"], STANDARD.encode(br#"["a","b"]"#));
    assert_eq!(b64_json(h["X-C-Obj"].as_str().unwrap()), json!({"name": "li", "groups": ["default", "it"]}));
    assert_eq!(h["X-C-Utf"], "Jürgen", "UTF-8 passes as it is");
}

#[tokio::test]
async fn nested_paths_and_the_json_and_list_encodings() {
    let env = Env::new(json!({"auth_methods": ["bearer"], "upstream_headers": [
        {"header": "x-org-id", "path": ["org", "id"]},
        {"header": "x-first-role", "path": ["realm_access", "roles", "1"]},
        {"header": "x-roles-json", "path": ["realm_access", "roles"], "encoding": "json"},
        {"header": "x-roles-list", "path": ["realm_access", "roles"], "encoding": "list"},
        {"header": "x-roles-kong", "path": ["realm_access", "roles"]},
        {"header": "x-missing", "path": ["org", "nope"]},
    ]}))
    .await;
    let token = env
        .mint(json!({"claims": {"org": {"id": 42}, "realm_access": {"roles": ["admin", "r&d, europe", "say \"x\""]}}}))
        .await;
    let (st, echo, _) = env.call(&[("authorization", &bearer(&token))]).await;
    assert_eq!(st, 200, "{echo}");
    let h = &echo["headers"];
    assert_eq!(h["X-Org-Id"], "42");
    assert_eq!(h["X-First-Role"], "admin");
    assert_eq!(h["X-Roles-Json"], r#"["admin","r&d, europe","say \"x\""]"#);
    assert_eq!(h["X-Roles-List"], r#"admin, "r&d, europe", "say \"x\"""#);
    assert_eq!(b64_json(h["X-Roles-Kong"].as_str().unwrap()), json!(["admin", "r&d, europe", "say \"x\""]));
    assert!(h.get("X-Missing").is_none());
}

/// introspection → access token → ID token → userinfo (only with `search_user_info`).
#[tokio::test]
async fn claims_are_searched_in_kongs_order() {
    let names = ["active", "both", "only_id", "empty_at", "email"];
    let env = Env::new(json!({"auth_methods": ["bearer"], "id_token_param_name": "id_token",
        "upstream_headers_claims": names, "upstream_headers_names": names.map(|n| format!("x_{n}"))}))
    .await;
    let at = env.mint(json!({"claims": {"both": "access", "empty_at": "", "email": null}})).await;
    let id = env
        .mint(json!({"claims": {"aud": "gatehouse", "both": "id", "only_id": "id", "empty_at": "id", "email": null}}))
        .await;
    let auth = bearer(&at);
    let hs = [("authorization", auth.as_str()), ("id_token", id.as_str())];
    let (st, echo, _) = env.call(&hs).await;
    assert_eq!(st, 200, "{echo}");
    let h = &echo["headers"];
    assert_eq!(h["X-Both"], "access", "the access token comes before the ID token");
    assert_eq!(h["X-Only-Id"], "id");
    assert_eq!(h["X-Empty-At"], "id", "an empty value is absent: the search goes on");
    assert!(h.get("X-Active").is_none(), "no introspection, no `active`");
    assert!(h.get("X-Email").is_none(), "userinfo is not searched by default");
    assert_eq!(env.calls().await["userinfo"], 0, "nor asked");
    // With introspection, its answer comes first.
    env.patch(json!({"introspect_jwt_tokens": true})).await;
    let (_, echo, _) = env.call(&hs).await;
    assert_eq!(echo["headers"]["X-Active"], "true", "{echo}");
    assert_eq!(env.calls().await["userinfo"], 0);

    // Userinfo comes last, and only with search_user_info.
    env.patch(json!({"auth_methods": ["userinfo"], "introspect_jwt_tokens": false,
        "upstream_headers_claims": ["email", "given_name"], "upstream_headers_names": ["x_email", "x_given_name"]}))
        .await;
    let opaque = env.mint(json!({"format": "opaque"})).await;
    let id = env.mint(json!({"claims": {"aud": "gatehouse", "email": "id@example.com", "given_name": null}})).await;
    let auth = bearer(&opaque);
    let hs = [("authorization", auth.as_str()), ("id_token", id.as_str())];
    let (st, echo, _) = env.call(&hs).await;
    assert_eq!(st, 200, "{echo}");
    assert_eq!(echo["headers"]["X-Email"], "id@example.com", "the ID token comes before userinfo");
    assert!(echo["headers"].get("X-Given-Name").is_none(), "userinfo is not searched by default: {echo}");
    env.patch(json!({"search_user_info": true})).await;
    let (_, echo, _) = env.call(&hs).await;
    assert_eq!(echo["headers"]["X-Email"], "id@example.com");
    assert_eq!(echo["headers"]["X-Given-Name"], "John", "found in userinfo, last: {echo}");
}

/// The spoofing guard, for every auth method, with and without the claim, and for anonymous requests.
#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let env = Env::new(json!({"auth_methods": ["bearer", "password", "session", "introspection"],
        "upstream_headers_claims": ["preferred_username"], "upstream_headers_names": ["authenticated_user"]}))
    .await;
    let spoofs = [
        ("X_Authenticated_User", "evil"),
        ("authenticated.user", "evil"),
        ("AUTHENTICATED-USER", "evil"),
        ("x-consumer-username", "evil"),
        ("X-Anonymous-Consumer", "false"),
        ("x_authenticated_groups", "admins"),
    ];
    let with = |extra: &[(&'static str, String)]| {
        let mut v: Vec<(String, String)> = spoofs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        v.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        v
    };
    let check = |echo: &Value, expect_user: Option<&str>, what: &str| {
        let h = echo["headers"].as_object().unwrap();
        for (k, v) in h {
            assert!(v != "evil" && v != "admins" && !(k == "X-Anonymous-Consumer" && v == "false"), "{what}: {k}: {v}");
        }
        assert_eq!(h.get("Authenticated-User").and_then(Value::as_str), expect_user, "{what}");
    };
    let send = |headers: Vec<(String, String)>| {
        let env = &env;
        async move {
            let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            env.call(&refs).await
        }
    };
    let token = env.mint(json!({})).await;
    let (st, echo, h) = send(with(&[("authorization", bearer(&token))])).await;
    assert_eq!(st, 200);
    check(&echo, Some("john"), "bearer");
    let cookie = header(&h, "set-cookie").unwrap().split(';').next().unwrap().to_string();
    let no_claim = env.mint(json!({"claims": {"preferred_username": null}})).await;
    let (_, echo, _) = send(with(&[("authorization", bearer(&no_claim))])).await;
    check(&echo, None, "bearer without the claim");
    let (_, echo, _) = send(with(&[("authorization", basic("jane", "roe"))])).await;
    check(&echo, Some("jane"), "password");
    let (_, echo, _) = send(with(&[("cookie", cookie)])).await;
    check(&echo, Some("john"), "session");
    let opaque = env.mint(json!({"format": "opaque", "user": "jane"})).await;
    let (_, echo, _) = send(with(&[("authorization", bearer(&opaque))])).await;
    check(&echo, Some("jane"), "introspection");
    // Anonymous.
    let (st, _) = super::util::post(&format!("{}/consumers", env.gw.admin), json!({"username": "guest"})).await;
    assert_eq!(st, 201);
    env.patch(json!({"anonymous": "guest"})).await;
    let (st, echo, _) = send(with(&[])).await;
    assert_eq!(st, 200);
    let h = echo["headers"].as_object().unwrap();
    assert_eq!(h["X-Anonymous-Consumer"], "true");
    assert_eq!(h["X-Consumer-Username"], "guest");
    assert!(h.get("Authenticated-User").is_none() && h.get("X_authenticated_user").is_none(), "anonymous: {h:?}");
}

#[tokio::test]
async fn control_characters_are_never_sent() {
    let env = Env::new(json!({"auth_methods": ["bearer"],
        "upstream_headers_claims": ["evil", "nul", "fine"], "upstream_headers_names": ["x_evil", "x_nul", "x_fine"],
        "downstream_headers_claims": ["evil"], "downstream_headers_names": ["x_evil"]}))
    .await;
    let token = env.mint(json!({"claims": {"evil": "a\r\nX-Injected: 1", "nul": "a\u{0}b", "fine": "ok"}})).await;
    let (st, echo, h) = env.call(&[("authorization", &bearer(&token))]).await;
    assert_eq!(st, 200, "{echo}");
    let up = &echo["headers"];
    assert!(up.get("X-Evil").is_none() && up.get("X-Injected").is_none() && up.get("X-Nul").is_none(), "{up}");
    assert_eq!(up["X-Fine"], "ok");
    assert!(h.get("x-evil").is_none() && h.get("x-injected").is_none());
    let logs = env.gw.proc.logs();
    assert!(logs.contains("control character") && logs.contains("source=\"evil\""), "a warning names the claim");
    assert!(!logs.contains("X-Injected"), "never the value");
}

#[tokio::test]
async fn oversized_headers_are_left_out() {
    let env = Env::new(json!({"auth_methods": ["bearer"], "upstream_access_token_header": null,
        "upstream_headers_claims": ["big", "small", "small2"], "upstream_headers_names": ["x_big", "x_small", "x_small2"],
        "max_added_header_size": 200, "max_added_headers_size": 230}))
    .await;
    let token = env
        .mint(json!({"claims": {"big": "b".repeat(300), "small": "s".repeat(100), "small2": "t".repeat(120)}}))
        .await;
    let (st, echo, _) = env.call(&[("authorization", &bearer(&token))]).await;
    assert_eq!(st, 200, "{echo}");
    let h = &echo["headers"];
    assert!(h.get("X-Big").is_none(), "over the one-header cap");
    assert_eq!(h["X-Small"], "s".repeat(100));
    assert!(h.get("X-Small2").is_none(), "over the total cap");
    let logs = env.gw.proc.logs();
    assert!(logs.contains("too large") && logs.contains("total limit"), "{logs}");
}

#[tokio::test]
async fn downstream_headers_append_and_upstream_headers_replace() {
    let env = Env::new(json!({"auth_methods": ["bearer"],
        "upstream_headers_claims": ["preferred_username"], "upstream_headers_names": ["x_user"],
        "downstream_headers_claims": ["preferred_username"], "downstream_headers_names": ["x_user"]}))
    .await;
    let token = env.mint(json!({})).await;
    let (st, _, h) =
        env.call_path("/api/response-headers?x-user=upstream", &[("authorization", &bearer(&token))]).await;
    assert_eq!(st, 200);
    let all: Vec<&str> = h.get_all("x-user").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(all, ["upstream", "john"], "downstream headers are appended");
}
