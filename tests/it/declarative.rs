//! Declarative mode (`database = off`) and `gatehouse config check`.

use super::util::{Gateway, client, echo, get, json, post, tempdir};
use serde_json::json;
use std::process::Command;

fn kong_yml(upstream: &str) -> String {
    format!(
        r#"_format_version: "3.0"
services:
- name: echo
  url: {upstream}
  routes:
  - name: echo-route
    paths: [/echo]
    plugins:
    - name: correlation-id
      config:
        header_name: X-Trace
        echo_downstream: true
consumers:
- username: alice
plugins:
- name: request-termination
  route: blocked
  config: {{status_code: 451, message: blocked}}
routes:
- name: blocked
  service: echo
  paths: [/blocked]
"#
    )
}

#[tokio::test]
async fn a_kong_yml_is_served_and_writes_answer_405() {
    let dir = tempdir();
    let up = echo(dir.path());
    let file = dir.path().join("kong.yml");
    std::fs::write(&file, kong_yml(&up.urls[0])).unwrap();
    let gw =
        Gateway::start_with(dir.path(), &["--database", "off", "--declarative-config", file.to_str().unwrap()], &[]);

    let resp = client().get(format!("{}/echo/hi", gw.proxy)).send().await.unwrap();
    assert!(resp.headers().contains_key("x-trace"));
    let (st, body) = json(resp).await;
    assert_eq!(st, 200, "{body}");
    assert!(body["url"].as_str().unwrap().ends_with("/hi"));
    assert_eq!(get(&format!("{}/blocked", gw.proxy)).await, (451, json!({"message": "blocked"})));

    let a = &gw.admin;
    assert_eq!(get(&format!("{a}/services/echo")).await.0, 200);
    assert_eq!(get(&format!("{a}/consumers/alice")).await.0, 200);
    assert_eq!(get(&format!("{a}/routes")).await.1["data"].as_array().unwrap().len(), 2);
    let (st, e) = post(&format!("{a}/routes"), json!({"paths": ["/x"]})).await;
    assert_eq!(
        (st, e),
        (
            405,
            json!({"code": 12, "name": "operation unsupported",
                     "message": "cannot create 'routes' entities when not using a database"})
        )
    );
    let c = client();
    let (st, e) = json(c.patch(format!("{a}/services/echo")).json(&json!({"port": 1})).send().await.unwrap()).await;
    assert_eq!((st, e["message"].as_str()), (405, Some("cannot update 'services' entities when not using a database")));
    let (st, e) = json(c.delete(format!("{a}/services/echo")).send().await.unwrap()).await;
    assert_eq!((st, e["message"].as_str()), (405, Some("cannot remove 'services' entities when not using a database")));

    // POST /config replaces everything at once.
    let next = format!(
        "_format_version: \"3.0\"\nservices:\n- name: only\n  url: {}\n  routes:\n  - paths: [/only]\n",
        up.urls[0]
    );
    let (st, _) = json(c.post(format!("{a}/config")).form(&[("config", next.as_str())]).send().await.unwrap()).await;
    assert_eq!(st, 201);
    assert_eq!(get(&format!("{}/only", gw.proxy)).await.0, 200);
    assert_eq!(get(&format!("{}/echo", gw.proxy)).await.0, 404);
    let (st, e) = json(
        c.post(format!("{a}/config"))
            .form(&[("config", "_format_version: \"3.0\"\nservices: [{host: 5}]")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((st, e["code"].as_i64()), (400, Some(14)));
    assert_eq!(get(&format!("{}/only", gw.proxy)).await.0, 200, "a bad config changes nothing");
}

#[test]
fn config_check_prints_every_error_with_its_path() {
    let dir = tempdir();
    let good = dir.path().join("good.yml");
    std::fs::write(&good, kong_yml("http://127.0.0.1:9")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse")).args(["config", "check"]).arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 services, 2 routes, 1 consumers, 2 plugins)"));

    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "_format_version: \"3.0\"\nservices:\n- name: s\n  host: h\n  port: 0.5\n  routes:\n  - paths: [x]\n    methods: [get]\nplugins:\n- name: mystery\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse")).args(["config", "check"]).arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for expect in [
        "services[0].port: expected an integer",
        "services[0].routes[0].methods[0]: invalid value: get",
        "services[0].routes[0].paths[0]: should start with: / (fixed path) or ~/ (regex path)",
        "plugins[0].name: plugin 'mystery' not enabled",
    ] {
        assert!(text.contains(expect), "missing {expect:?} in:\n{text}");
    }
}
