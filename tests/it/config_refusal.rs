//! A config that cannot run is refused where it is written (Admin API, `POST /config`, `config
//! check`) with the field that is wrong, and a stored one (written by an older version) does not
//! stop the node: only the routes it covers fail closed.

use super::util::{Gateway, client, echo, get, json, post, tempdir};
use serde_json::{Value, json};
use std::process::Command;

/// Kong's cookie names are RFC 6265 tokens: a space or `;` would split the `Set-Cookie` header.
const BAD_COOKIE_NAME: &str = "bad name;";

async fn patch(url: &str, body: Value) -> (u16, Value) {
    json(client().patch(url).json(&body).send().await.expect("request")).await
}

/// A service on the echo upstream with routes `/oidc` (an `openid-connect` plugin, cookie name
/// `sess`) and `/open`. Returns the plugin id.
async fn setup(gw: &Gateway, upstream: &str) -> String {
    let a = &gw.admin;
    let (st, b) = post(&format!("{a}/services"), json!({"name": "echo", "url": upstream})).await;
    assert_eq!(st, 201, "{b}");
    for (name, path) in [("oidc", "/oidc"), ("open", "/open")] {
        let (st, b) = post(&format!("{a}/services/echo/routes"), json!({"name": name, "paths": [path]})).await;
        assert_eq!(st, 201, "{b}");
    }
    let config = json!({"issuer": "http://127.0.0.1:9/realms/x", "auth_methods": ["bearer"],
                        "session_cookie_name": "sess"});
    let (st, b) = post(&format!("{a}/routes/oidc/plugins"), json!({"name": "openid-connect", "config": config})).await;
    assert_eq!(st, 201, "{b}");
    b["id"].as_str().expect("id").to_string()
}

/// The issue's case: the PATCH used to answer 200, be stored, and pin the proxy to the last good
/// snapshot, so every later write was silently not applied.
#[tokio::test]
async fn a_cookie_name_that_cannot_run_is_refused_with_its_field_and_nothing_is_stored() {
    let dir = tempdir();
    let up = echo(dir.path());
    let gw = Gateway::start(dir.path());
    let id = setup(&gw, &up.urls[0]).await;
    let a = &gw.admin;

    let (st, body) =
        patch(&format!("{a}/plugins/{id}"), json!({"config": {"session_cookie_name": BAD_COOKIE_NAME}})).await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["code"], 2, "{body}");
    assert_eq!(body["name"], "schema violation");
    let why = body["fields"]["config"]["session_cookie_name"].as_str().unwrap_or_default();
    assert!(why.contains("token characters"), "{body}");
    assert!(body["message"].as_str().unwrap_or_default().contains("config.session_cookie_name"), "{body}");

    let (st, stored) = get(&format!("{a}/plugins/{id}")).await;
    assert_eq!((st, &stored["config"]["session_cookie_name"]), (200, &json!("sess")), "nothing stored");

    // A new plugin with the same config is refused too, and not stored.
    let config = json!({"issuer": "http://127.0.0.1:9/realms/x", "session_cookie_name": BAD_COOKIE_NAME});
    let (st, body) =
        post(&format!("{a}/routes/open/plugins"), json!({"name": "openid-connect", "config": config})).await;
    assert_eq!((st, body["code"].as_i64()), (400, Some(2)), "{body}");
    assert_eq!(get(&format!("{a}/plugins")).await.1["data"].as_array().map(Vec::len), Some(1));
    // `POST /schemas/plugins/validate` runs the same check.
    let (st, body) = post(
        &format!("{a}/schemas/plugins/validate"),
        json!({"name": "openid-connect", "config": {"issuer": "http://127.0.0.1:9/x", "session_cookie_name": BAD_COOKIE_NAME}}),
    )
    .await;
    assert_eq!(st, 400, "{body}");
    assert!(body["fields"]["config"]["session_cookie_name"].is_string(), "{body}");

    // Later writes take effect at once: the proxy was not pinned to an old snapshot.
    let (st, body) = patch(&format!("{a}/plugins/{id}"), json!({"config": {"session_cookie_name": "other"}})).await;
    assert_eq!((st, &body["config"]["session_cookie_name"]), (200, &json!("other")), "{body}");
    let (st, body) = post(
        &format!("{a}/routes/open/plugins"),
        json!({"name": "request-termination", "config": {"status_code": 418, "message": "later write"}}),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(get(&format!("{}/open", gw.proxy)).await, (418, json!({"message": "later write"})));
    assert_eq!(get(&format!("{}/oidc", gw.proxy)).await.0, 401, "the oidc plugin still guards its route");
}

fn kong_yml(upstream: &str, cookie_name: &str) -> String {
    format!(
        r#"_format_version: "3.0"
services:
- name: echo
  url: {upstream}
  routes:
  - name: api
    paths: [/api]
    plugins:
    - name: openid-connect
      config:
        issuer: http://127.0.0.1:9/realms/x
        session_cookie_name: "{cookie_name}"
"#
    )
}

#[tokio::test]
async fn post_config_with_a_plugin_that_cannot_run_is_refused_and_the_old_config_stays() {
    let dir = tempdir();
    let up = echo(dir.path());
    let file = dir.path().join("kong.yml");
    std::fs::write(&file, kong_yml(&up.urls[0], "sess")).expect("write");
    let gw = Gateway::start_with(
        dir.path(),
        &["--database", "off", "--declarative-config", file.to_str().expect("utf-8")],
        &[],
    );
    assert_eq!(get(&format!("{}/api", gw.proxy)).await.0, 401);

    let bad = kong_yml(&up.urls[0], BAD_COOKIE_NAME);
    let resp = client().post(format!("{}/config", gw.admin)).form(&[("config", bad.as_str())]).send().await;
    let (st, body) = json(resp.expect("request")).await;
    assert_eq!((st, body["code"].as_i64()), (400, Some(14)), "{body}");
    assert!(body.to_string().contains("session_cookie_name"), "the path is named: {body}");
    assert_eq!(get(&format!("{}/api", gw.proxy)).await.0, 401, "the old config still runs");
    let (_, plugins) = get(&format!("{}/plugins", gw.admin)).await;
    assert_eq!(plugins["data"][0]["config"]["session_cookie_name"], "sess", "the old config is still stored");
}

#[test]
fn config_check_builds_the_plugins_and_names_the_field() {
    let dir = tempdir();
    let file = dir.path().join("kong.yml");
    std::fs::write(&file, kong_yml("http://127.0.0.1:9", BAD_COOKIE_NAME)).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse")).args(["config", "check"]).arg(&file).output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("services[0].routes[0].plugins[0].config.session_cookie_name:"), "{text}");

    std::fs::write(&file, kong_yml("http://127.0.0.1:9", "sess")).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse")).args(["config", "check"]).arg(&file).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// Writes `session_cookie_name` into a stored plugin row, bypassing every check, as a store
/// written by an older version could hold it.
async fn corrupt_plugin(data_dir: &std::path::Path, id: &str, cookie_name: &str) {
    use sqlx::ConnectOptions as _;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(data_dir.join("gatehouse.db"))
        .connect()
        .await
        .expect("open the store");
    let done = sqlx::query("UPDATE plugins SET data = json_set(data, '$.config.session_cookie_name', ?) WHERE id = ?")
        .bind(cookie_name)
        .bind(id)
        .execute(&mut conn)
        .await
        .expect("update");
    assert_eq!(done.rows_affected(), 1);
}

#[tokio::test]
async fn a_stored_plugin_that_cannot_be_built_fails_its_routes_closed_and_the_rest_serve() {
    let dir = tempdir();
    let up = echo(dir.path());
    let id = {
        let gw = Gateway::start(dir.path());
        setup(&gw, &up.urls[0]).await
        // Dropped: the node stops.
    };
    corrupt_plugin(&dir.path().join("data"), &id, BAD_COOKIE_NAME).await;

    let gw = Gateway::start(dir.path());
    let (st, body) = get(&format!("{}/oidc/x", gw.proxy)).await;
    assert_eq!((st, body), (500, json!({"message": "An unexpected error occurred"})), "fails closed");
    let (st, body) = get(&format!("{}/open/x", gw.proxy)).await;
    assert_eq!(st, 200, "every other route serves: {body}");
    let logs = gw.proc.logs();
    assert!(logs.contains(&id) && logs.contains("session_cookie_name"), "the id and reason are logged:\n{logs}");

    // The broken row does not block unrelated writes, and fixing it brings the route back.
    let a = &gw.admin;
    let (st, body) = patch(&format!("{a}/routes/open"), json!({"tags": ["still-writable"]})).await;
    assert_eq!(st, 200, "{body}");
    let (st, body) = patch(&format!("{a}/plugins/{id}"), json!({"config": {"session_cookie_name": "fixed"}})).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(get(&format!("{}/oidc/x", gw.proxy)).await.0, 401, "the plugin runs again");
}

/// The route schema does not check header names; the router does. Such a write used to be
/// stored and answered 201 while the proxy stayed on the old table.
#[tokio::test]
async fn a_route_the_router_cannot_compile_is_refused_and_not_stored() {
    let dir = tempdir();
    let up = echo(dir.path());
    let gw = Gateway::start(dir.path());
    setup(&gw, &up.urls[0]).await;
    let a = &gw.admin;
    let route = json!({"name": "hdr", "paths": ["/hdr"], "headers": {"bad name": ["x"]}});
    let (st, body) = post(&format!("{a}/services/echo/routes"), route).await;
    assert_eq!((st, body["code"].as_i64()), (400, Some(2)), "{body}");
    assert!(body["message"].as_str().unwrap_or_default().contains("invalid HTTP header name"), "{body}");
    assert_eq!(get(&format!("{a}/routes/hdr")).await.0, 404, "rolled back");
    let (st, body) = post(&format!("{a}/services/echo/routes"), json!({"name": "hdr", "paths": ["/hdr"]})).await;
    assert_eq!(st, 201, "the same name is free again: {body}");
    assert_eq!(get(&format!("{}/hdr", gw.proxy)).await.0, 200);
}

#[test]
fn config_check_compiles_the_routes_too() {
    let dir = tempdir();
    let file = dir.path().join("kong.yml");
    let yml = "_format_version: \"3.0\"\nservices:\n- name: s\n  url: http://127.0.0.1:9\n  routes:\n  - name: r\n    paths: [/a]\n    headers:\n      \"bad name\": [x]\n";
    std::fs::write(&file, yml).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse")).args(["config", "check"]).arg(&file).output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("invalid HTTP header name"), "{text}");
}
