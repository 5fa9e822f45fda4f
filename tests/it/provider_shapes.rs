//! Shapes real providers and proxies give: Okta's userinfo subject, Keycloak behind an internal URL, HAProxy's
//! extra `X-Forwarded-For` line.

use super::oidc::Env;
use serde_json::json;

/// Okta's custom authorization server: a user's access token has `sub` = the login (email) and
/// `uid` = the user id; userinfo's `sub` is the user id (`docs/providers.md`, Okta). Core §5.3.4
/// compares userinfo's `sub` with the ID token's only. With a bearer JWT and no ID token, a
/// userinfo answer for that very token must still be usable.
#[tokio::test]
async fn an_okta_shaped_userinfo_answer_is_used_for_a_bearer_token() {
    let env = Env::new(json!({"auth_methods": ["bearer"], "upstream_user_info_header": "x-userinfo"})).await;
    env.dev("override", json!({"userinfo": {"sub": "00u1john"}})).await;
    let token = env.mint(json!({"claims": {"sub": "john@example.com", "uid": "00u1john"}})).await;
    let (st, body, _) = env.call(&[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(st, 200, "{body}");
}

/// Kong does not compare the discovery document's `issuer` with `config.issuer`; Gatehouse does
/// (Discovery §4.3). A gateway that reaches Keycloak on its in-cluster URL while Keycloak's
/// `hostname` names the public one gets a document and tokens whose issuer is the public URL:
/// refused (502, as a failed discovery), and working once `issuers_allowed` lists the public
/// issuer, as `docs/providers.md` and the upgrade note in `docs/compatibility.md` say.
#[tokio::test]
async fn a_provider_reached_on_an_internal_url_discovers_with_issuers_allowed() {
    let env = Env::new(json!({"auth_methods": ["bearer"]})).await;
    let public = "https://sso.example.com/realms/demo";
    env.dev("override", json!({"discovery": {"issuer": public}})).await;
    let token = env.mint(json!({"claims": {"iss": public}})).await;
    let (st, body, _) = env.call(&[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(st, 502, "{body}");
    env.patch(json!({"issuers_allowed": [public]})).await;
    let (st, body, _) = env.call(&[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(st, 200, "{body}");
}

/// HAProxy's `option forwardfor` adds its own `X-Forwarded-For` line after the client's (its
/// docs tell servers to read the last occurrence). Gatehouse finds the client there, and the
/// upstream gets every line, joined, then the proxy's address (once it got only the first line).
#[tokio::test]
async fn a_trusted_proxys_own_x_forwarded_for_line_reaches_the_upstream() {
    use super::util::{Gateway, client, echo, echo_service, json as read, tempdir};
    let dir = tempdir();
    let up = echo(dir.path());
    let gw = Gateway::start_with(
        dir.path(),
        &[],
        &[("GATEHOUSE_TRUSTED_IPS", "127.0.0.1"), ("GATEHOUSE_REAL_IP_HEADER", "X-Forwarded-For")],
    );
    echo_service(&gw, &up.urls[0], &[json!({"paths": ["/api"]})]).await;
    let resp = client()
        .get(format!("{}/api/x", gw.proxy))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .expect("request");
    let (st, body) = read(resp).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["headers"]["X-Real-Ip"], "203.0.113.7", "the gateway's own view: {body}");
    assert_eq!(body["headers"]["X-Forwarded-For"], "6.6.6.6, 203.0.113.7, 127.0.0.1", "{body}");
}
