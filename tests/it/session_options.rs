//! Kong's long-lived session options through the real binary, the dev IdP and an echo upstream:
//! cookies split as lua-resty-session splits them, `session_bind`, the remember cookie, the
//! `Session-*` headers, each timeout, and the server-side-storage fields that change nothing for
//! cookies. Sessions come from the password grant (`auth_methods: [password, session]`).

use super::oidc::{Env, base_config, basic, idp, session_cookie};
use super::util::{Gateway, Proc, echo, echo_service, post, tempdir};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::time::Duration;

/// The `Set-Cookie` values of a response whose cookie name starts with `prefix`.
fn set_cookies<'a>(h: &'a HeaderMap, prefix: &str) -> Vec<&'a str> {
    h.get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).filter(|c| c.starts_with(prefix)).collect()
}

/// The `name=value` pairs of those, as a `Cookie` header.
fn cookie_of(h: &HeaderMap, prefix: &str) -> String {
    set_cookies(h, prefix).iter().map(|c| c.split(';').next().unwrap()).collect::<Vec<_>>().join("; ")
}

/// A users file where john carries a `blob` claim of `n` characters in both of his tokens.
fn users_with_blob(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let path = dir.join("users.yaml");
    let file = format!("users:\n  - username: john\n    password: doe\n    claims: {{blob: \"{}\"}}\n", "b".repeat(n));
    std::fs::write(&path, file).unwrap();
    path
}

async fn env_with_blob(n: usize, config: Value) -> Env {
    let users = tempdir();
    let path = users_with_blob(users.path(), n);
    let env = Env::with_idp_args(config, &["--users", path.to_str().unwrap()]).await;
    drop(users);
    env
}

fn password_and_session() -> Value {
    json!({"auth_methods": ["password", "session"]})
}

#[tokio::test]
async fn large_sessions_are_split_into_session_session2_up_to_session9() {
    let env = env_with_blob(3000, password_and_session()).await;
    let (st, body, h) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    assert_eq!(st, 200, "{body}");
    let set = set_cookies(&h, "session");
    assert!((3..=9).contains(&set.len()), "{set:?}");
    for (i, c) in set.iter().enumerate() {
        let name = if i == 0 { "session".to_string() } else { format!("session{}", i + 1) };
        let pair = c.split(';').next().unwrap();
        assert!(pair.starts_with(&format!("{name}=")), "{pair:.40}");
        assert!(pair.len() <= 4096, "{name}: {} bytes", pair.len());
    }
    // The chunks together are the session; none reaches the upstream.
    let cookie = cookie_of(&h, "session");
    let (st, body, _) = env.call(&[("cookie", &format!("theme=dark; {cookie}; session10=mine; session_2=old"))]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["headers"]["Cookie"], "theme=dark; session10=mine; session_2=old", "not ours: passed on");
    // A chunk missing in the middle is no session.
    let gap: Vec<&str> = cookie.split("; ").filter(|c| !c.starts_with("session2=")).collect();
    assert_eq!(env.call(&[("cookie", &gap.join("; "))]).await.0, 401);
}

#[tokio::test]
async fn a_session_too_large_for_nine_cookies_is_not_saved_and_the_request_is_served() {
    let env = env_with_blob(16_000, password_and_session()).await;
    let (st, body, h) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    assert_eq!(st, 200, "served without a session: {body}");
    assert!(set_cookies(&h, "session").is_empty(), "{h:?}");
    assert!(env.gw.proc.logs().contains("cookie size limit exceeded"), "logged");
}

#[tokio::test]
async fn hostile_session_cookies_never_open_and_never_break_the_request() {
    let env = Env::new(password_and_session()).await;
    let (_, _, h) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    let good = session_cookie(&h);
    let value = good.strip_prefix("session=").unwrap();
    let mut many = format!("session=AgkAAAAA{}", (2..=9).map(|i| format!("; session{i}={value}")).collect::<String>());
    many.push_str(&"; session3=AAAA".repeat(500));
    let hostile = [
        // Forged chunk counts, gaps, a tenth chunk, the old names, the same chunk hundreds of times.
        many,
        "session=AgoAAAAA; session2=AAAA; session10=AAAA".to_string(),
        format!("session=AgMA{}; session3=AAAA", &value[4..]),
        format!("session_2={value}; session_3={value}"),
        format!("session2={value}"),
    ];
    for cookie in &hostile {
        let (st, _, h) = env.call(&[("cookie", cookie)]).await;
        assert_eq!(st, 401, "{cookie:.60}");
        assert!(set_cookies(&h, "session").is_empty(), "not ours: not expired");
        // With a credential the request goes on, and only our cookie names are taken out.
        let (st, body, _) = env.call(&[("cookie", cookie), ("authorization", &basic("john", "doe"))]).await;
        assert_eq!(st, 200);
        let left = body["headers"]["Cookie"].as_str().unwrap_or("");
        assert!(!left.split("; ").any(|c| c.starts_with("session=") || c.starts_with("session3=")), "{left:.80}");
    }
}

/// An echo upstream, the dev IdP and a gateway that trusts 127.0.0.1 as a proxy (so `X-Real-IP`
/// and `X-Forwarded-Proto` say who the client is), with the plugin on service `echo`.
struct Proxied {
    _dir: tempfile::TempDir,
    _idp: Proc,
    _up: Proc,
    gw: Gateway,
}

impl Proxied {
    async fn new(config: Value) -> Proxied {
        let dir = tempdir();
        let idp = idp(dir.path(), &[]);
        let up = echo(dir.path());
        let gw = Gateway::start_with(dir.path(), &[], &[("GATEHOUSE_TRUSTED_IPS", "127.0.0.1")]);
        echo_service(&gw, &up.urls[0], &[json!({"paths": ["/api"]})]).await;
        let mut cfg = base_config(&idp.urls[0]);
        for (k, v) in config.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        let (st, body) =
            post(&format!("{}/services/echo/plugins", gw.admin), json!({"name": "openid-connect", "config": cfg}))
                .await;
        assert_eq!(st, 201, "{body}");
        Proxied { _dir: dir, _idp: idp, _up: up, gw }
    }

    async fn call(&self, headers: &[(&str, &str)]) -> (u16, Value, HeaderMap) {
        super::oidc::call_url(&format!("{}/api/anything", self.gw.proxy), headers).await
    }
}

#[tokio::test]
async fn session_bind_refuses_a_cookie_replayed_from_another_client() {
    let env =
        Proxied::new(json!({"auth_methods": ["password", "session"], "session_bind": ["ip", "scheme", "user-agent"]}))
            .await;
    let me = [("x-real-ip", "192.0.2.10"), ("x-forwarded-proto", "https"), ("user-agent", "Firefox/140")];
    let mut login = me.to_vec();
    let auth = basic("john", "doe");
    login.push(("authorization", &auth));
    let (st, body, h) = env.call(&login).await;
    assert_eq!(st, 200, "{body}");
    let cookie = session_cookie(&h);
    let with = |changes: &[(&'static str, &'static str)]| {
        let mut headers: Vec<(&str, &str)> =
            me.iter().filter(|(k, _)| !changes.iter().any(|(c, _)| c == k)).copied().collect();
        headers.extend(changes.iter().filter(|(_, v)| !v.is_empty()).copied());
        headers
    };
    let mut mine = with(&[]);
    mine.push(("cookie", &cookie));
    for _ in 0..2 {
        assert_eq!(env.call(&mine).await.0, 200, "the client it was made for, opened then cached");
    }
    for change in [("x-real-ip", "192.0.2.11"), ("x-forwarded-proto", ""), ("user-agent", "curl/8"), ("user-agent", "")]
    {
        let mut theirs = with(&[change]);
        theirs.push(("cookie", &cookie));
        let (st, _, h) = env.call(&theirs).await;
        assert_eq!(st, 401, "{change:?}");
        assert!(set_cookies(&h, "session").is_empty(), "the owner's cookie is not expired");
    }
    assert_eq!(env.call(&mine).await.0, 200, "still its owner's");
    // A huge User-Agent binds like any other.
    let huge = "U".repeat(32 * 1024);
    let (_, _, h) = env.call(&[("authorization", &auth), ("user-agent", &huge)]).await;
    let big = session_cookie(&h);
    assert_eq!(env.call(&[("cookie", &big), ("user-agent", &huge)]).await.0, 200);
    assert_eq!(env.call(&[("cookie", &big), ("user-agent", &huge[1..])]).await.0, 401);
}

#[tokio::test]
async fn the_remember_cookie_recreates_the_session_and_is_expired_with_it() {
    let env = Env::new(json!({"auth_methods": ["password", "session"], "session_remember": true})).await;
    let (st, _, h) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    assert_eq!(st, 200);
    let session = cookie_of(&h, "session");
    let remember = cookie_of(&h, "remember");
    let persistent = set_cookies(&h, "remember");
    assert!(persistent[0].contains("; Max-Age=604800;"), "{persistent:?}");
    assert!(!session.is_empty() && !remember.is_empty());
    let token_calls = env.calls().await["token"].clone();

    // The browser closed: only the remember cookie is left. A new session (another cookie,
    // another id) and the remember cookie again; neither reaches the upstream.
    let (st, body, h) = env.call(&[("cookie", &format!("theme=dark; {remember}"))]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["headers"]["Cookie"], "theme=dark");
    let recreated = cookie_of(&h, "session");
    assert!(!recreated.is_empty() && recreated != session, "{h:?}");
    assert!(!cookie_of(&h, "remember").is_empty());
    assert_eq!(env.calls().await["token"], token_calls, "no IdP call: the remembered tokens are used");
    assert_eq!(env.call(&[("cookie", &recreated)]).await.0, 200, "the new session works alone");

    // A refusal destroys both cookies.
    env.patch(json!({"scopes_required": ["admin"]})).await;
    let (st, _, h) = env.call(&[("cookie", &format!("{recreated}; {remember}"))]).await;
    assert_eq!(st, 403);
    for name in ["session", "remember"] {
        assert!(set_cookies(&h, name).iter().all(|c| c.contains("Max-Age=0")), "{h:?}");
        assert!(!set_cookies(&h, name).is_empty(), "{name} expired: {h:?}");
    }
}

#[tokio::test]
async fn session_headers_reach_the_upstream_and_the_client() {
    let env = Env::new(json!({
        "auth_methods": ["password", "session"],
        "session_audience": "shop",
        "session_request_headers": ["id", "audience", "subject", "timeout", "idling-timeout", "rolling-timeout", "absolute-timeout"],
        "session_response_headers": ["id", "timeout"],
    }))
    .await;
    let (st, body, h) = env.call(&[("authorization", &basic("john", "doe")), ("session-subject", "admin")]).await;
    assert_eq!(st, 200, "{body}");
    let up = &body["headers"];
    let id = up["Session-Id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 43);
    assert_eq!(up["Session-Audience"], "shop");
    assert_ne!(up["Session-Subject"], "admin", "never the client's own");
    assert_eq!(up["Session-Idling-Timeout"], "900");
    assert_eq!(up["Session-Timeout"], "900");
    assert_eq!(up["Session-Rolling-Timeout"], "3600");
    assert_eq!(up["Session-Absolute-Timeout"], "86400");
    assert_eq!(h["session-id"], id.as_str());
    assert_eq!(h["session-timeout"], "900");

    // The next request tells the same session, its clock moved on.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (st, body, h) = env.call(&[("cookie", &session_cookie(&h))]).await;
    assert_eq!(st, 200);
    assert_eq!(body["headers"]["Session-Id"], id.as_str());
    let left: i64 = body["headers"]["Session-Absolute-Timeout"].as_str().unwrap().parse().unwrap();
    assert!((86_397..86_400).contains(&left), "{left}");
    assert_eq!(h["session-id"], id.as_str());
}

#[tokio::test]
async fn session_idling_timeout_ends_an_unused_session() {
    let env = Env::new(json!({"auth_methods": ["password", "session"], "session_idling_timeout": 3})).await;
    let (_, _, h) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    let cookie = session_cookie(&h);
    assert_eq!(env.call(&[("cookie", &cookie)]).await.0, 200);
    // Unused for 4 s or more on the clock.
    tokio::time::sleep(Duration::from_millis(4100)).await;
    let (st, _, h) = env.call(&[("cookie", &cookie)]).await;
    assert_eq!(st, 401);
    assert!(set_cookies(&h, "session").iter().any(|c| c.contains("Max-Age=0")), "ours, timed out: expired");
}

#[tokio::test]
async fn session_rolling_timeout_ends_a_session_not_saved_again() {
    // Timestamps are whole seconds: every wait leaves a second of slack. Rolling 8 s: a use
    // 6 s or more after the save saves again. Two sessions: one used early only, one used late.
    let env = Env::new(json!({
        "auth_methods": ["password", "session"],
        "session_rolling_timeout": 8, "session_idling_timeout": 0, "session_absolute_timeout": 0,
    }))
    .await;
    let (_, _, h) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    let early = session_cookie(&h);
    assert!(set_cookies(&h, "session")[0].contains("Max-Age=8;"), "{h:?}");
    let (_, _, h) = env.call(&[("authorization", &basic("jane", "roe"))]).await;
    let late = session_cookie(&h);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (st, _, h) = env.call(&[("cookie", &early)]).await;
    assert_eq!(st, 200);
    assert!(set_cookies(&h, "session").is_empty(), "not due: no idling timeout, 1 s of 8");
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let (st, _, h) = env.call(&[("cookie", &late)]).await;
    assert_eq!(st, 200);
    let saved = session_cookie(&h);
    assert!(!saved.is_empty() && saved != late, "3/4 of the rolling timeout spent: saved again");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(env.call(&[("cookie", &early)]).await.0, 401, "8 s after its only save");
    assert_eq!(env.call(&[("cookie", &saved)]).await.0, 200, "rolled on");
}

#[tokio::test]
async fn session_absolute_timeout_ends_a_session_however_used() {
    // Idling 4 s touches every use a second or more after the last; absolute 7 s ends it anyway.
    let env = Env::new(json!({
        "auth_methods": ["password", "session"],
        "session_idling_timeout": 4, "session_rolling_timeout": 0, "session_absolute_timeout": 7,
    }))
    .await;
    let (_, _, h) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    let mut cookie = session_cookie(&h);
    for wait in [2200, 2200] {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let (st, _, h) = env.call(&[("cookie", &cookie)]).await;
        assert_eq!(st, 200);
        let touched = session_cookie(&h);
        assert!(!touched.is_empty(), "touched");
        cookie = touched;
    }
    // 2.7 s after the last touch (idle for at most 3 s of 4), 7 s or more after the sign-in.
    tokio::time::sleep(Duration::from_millis(2700)).await;
    assert_eq!(env.call(&[("cookie", &cookie)]).await.0, 401);
}

#[tokio::test]
async fn server_side_storage_fields_leave_the_cookie_as_it_is() {
    // session_store_metadata, session_enforce_same_subject, session_hash_subject and
    // session_hash_storage_key act on server-side storage: with cookies, nothing changes.
    let plain = Env::new(password_and_session()).await;
    let (_, _, h) = plain.call(&[("authorization", &basic("john", "doe"))]).await;
    let attributes = |h: &HeaderMap| {
        let set = set_cookies(h, "session")[0].to_string();
        set.split_once(';').unwrap().1.split("; ").filter(|a| !a.starts_with("Expires")).collect::<Vec<_>>().join(";")
    };
    let want = attributes(&h);
    let flagged = Env::new(json!({
        "auth_methods": ["password", "session"],
        "session_store_metadata": true, "session_enforce_same_subject": true,
        "session_hash_subject": true, "session_hash_storage_key": true,
    }))
    .await;
    let (st, _, h) = flagged.call(&[("authorization", &basic("john", "doe"))]).await;
    assert_eq!(st, 200);
    assert_eq!(attributes(&h), want);
    let cookie = session_cookie(&h);
    assert_eq!(set_cookies(&h, "session").len(), 1);
    let (st, body, _) = flagged.call(&[("cookie", &cookie)]).await;
    assert_eq!(st, 200);
    assert!(body["headers"]["Authorization"].as_str().unwrap().starts_with("Bearer "));
}
