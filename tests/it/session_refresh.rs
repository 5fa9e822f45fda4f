//! A session's expired access token refreshed once for all the requests that carry its cookie at
//! the same time, with the IdP's rotated refresh token stored back (the dev IdP spends a refresh
//! token on its first use).

use super::oidc::{Env, basic, call_url, session_cookie};
use super::util::tempdir;
use serde_json::json;
use std::time::Duration;

fn header(h: &reqwest::header::HeaderMap, name: &str) -> String {
    h.get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

#[tokio::test]
async fn parallel_requests_of_an_expired_session_make_one_refresh_and_share_its_session() {
    let files = tempdir();
    let users = files.path().join("users.yaml");
    std::fs::write(&users, "access_token_ttl: 2\n").unwrap();
    let config = json!({"auth_methods": ["password", "session"], "downstream_session_id_header": "x-session-id"});
    let env = Env::with_idp_args(config, &["--users", users.to_str().unwrap()]).await;
    let (st, body, h) = env.call(&[("authorization", &basic("john", "doe"))]).await;
    assert_eq!(st, 200, "{body}");
    let cookie = session_cookie(&h);
    let first_id = header(&h, "x-session-id");
    let first_token = body["headers"]["Authorization"].as_str().unwrap().to_string();
    assert!(!cookie.is_empty() && !first_id.is_empty(), "{h:?}");
    // `exp` is whole seconds: 3 s on, the access token has expired for sure. The IdP answers
    // refreshes slowly, so the eight requests are all waiting at once.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    // The refreshed tokens live 6 s: long enough for every check below on a busy machine, before
    // the grace ends.
    let client = json!({"client_id": "gatehouse", "client_secret": "gatehouse-secret", "access_token_ttl": 6});
    env.dev("clients", client).await;
    env.dev("delay", json!({"endpoint": "token", "ms": 300})).await;
    let url = format!("{}/api/anything", env.gw.proxy);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (url, cookie) = (url.clone(), cookie.clone());
        tasks.spawn(async move { call_url(&url, &[("cookie", &cookie)]).await });
    }
    let answers = tasks.join_all().await;
    env.dev("delay", json!({"endpoint": "token", "ms": 0})).await;
    assert_eq!(env.calls().await["token_grants"]["refresh_token"], 1, "one refresh token grant at the IdP");
    let mut ids = Vec::new();
    let mut cookies = Vec::new();
    for (st, body, h) in &answers {
        assert_eq!(*st, 200, "{body}");
        let token = body["headers"]["Authorization"].as_str().unwrap();
        assert_ne!(token, first_token, "the upstream sees the new access token");
        assert_eq!(token, answers[0].1["headers"]["Authorization"], "the same new access token for all");
        ids.push(header(h, "x-session-id"));
        let c = session_cookie(h);
        assert!(!c.is_empty(), "each answer saves the refreshed session: {h:?}");
        cookies.push(c);
    }
    assert!(ids.iter().all(|id| id == &ids[0]), "one new session for all: {ids:?}");
    assert_ne!(ids[0], first_id, "a refresh gives the session a new id");
    // Every Set-Cookie opens to that session, with its rotated refresh token stored: no other refresh.
    for c in &cookies {
        let (st, body, h) = env.call(&[("cookie", c)]).await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(header(&h, "x-session-id"), ids[0]);
    }
    assert_eq!(env.calls().await["token_grants"]["refresh_token"], 1);
    // The old cookie was served the new session only for a grace of min(30 s, the new token's
    // 6 s life); past it, its spent refresh token is refused and the session destroyed.
    tokio::time::sleep(Duration::from_millis(6100)).await;
    let (st, body, h) = env.call(&[("cookie", &cookie)]).await;
    assert_eq!(st, 401, "{body}");
    let cleared = h.get_all("set-cookie").iter().any(|v| v.to_str().unwrap().contains("Max-Age=0"));
    assert!(cleared, "the session is destroyed: {h:?}");
    assert_eq!(env.calls().await["token_grants"]["refresh_token"], 2);
    // The rotated refresh token, stored back, refreshes the new session.
    let (st, body, h) = env.call(&[("cookie", &cookies[0])]).await;
    assert_eq!(st, 200, "{body}");
    assert_ne!(header(&h, "x-session-id"), ids[0]);
    assert_eq!(env.calls().await["token_grants"]["refresh_token"], 3);
}
