//! Kong's `trusted_ips`, `real_ip_header` and `real_ip_recursive` through the real binary: what
//! the upstream is told about the client from untrusted and trusted peers, when a request is
//! https (https-only routes, the session cookie's `Secure`), and where openid-connect may not be
//! attached (Kong's `typedefs.no_consumer`) on every write path.

use super::oidc::{base_config, idp};
use super::util::{Gateway, Proc, client, echo, echo_service, get, json, post, run_bounded, tempdir};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

/// An echo upstream and a gateway started with `args` and `env`, with service `echo`, route
/// `/api` (strips its path, as Kong's default) and the https-only route `/secure`.
async fn gateway(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (Proc, Gateway) {
    let up = echo(dir);
    let gw = Gateway::start_with(dir, args, env);
    echo_service(
        &gw,
        &up.urls[0],
        &[json!({"paths": ["/api"]}), json!({"paths": ["/secure"], "protocols": ["https"]})],
    )
    .await;
    (up, gw)
}

/// `GET {proxy}{path}` with headers: status, the echo's body, the response headers.
async fn call(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> (u16, Value, HeaderMap) {
    let mut req = client().get(format!("{}{path}", gw.proxy));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request");
    let h = resp.headers().clone();
    let (st, body) = json(resp).await;
    (st, body, h)
}

/// What a client (or a proxy in front) claims.
const CLAIMS: [(&str, &str); 7] = [
    ("x-forwarded-for", "10.0.0.1"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "evil.example"),
    ("x-forwarded-port", "443"),
    ("x-forwarded-path", "/admin"),
    ("x-forwarded-prefix", "/evil"),
    ("x-real-ip", "10.0.0.2"),
];

/// The forwarding headers the upstream saw, by their echoed names.
fn forwarded(body: &Value) -> Value {
    let h = &body["headers"];
    json!({
        "for": h["X-Forwarded-For"], "proto": h["X-Forwarded-Proto"], "host": h["X-Forwarded-Host"],
        "port": h["X-Forwarded-Port"], "path": h["X-Forwarded-Path"], "prefix": h["X-Forwarded-Prefix"],
        "real_ip": h["X-Real-Ip"],
    })
}

fn proxy_port(gw: &Gateway) -> String {
    gw.proxy.rsplit(':').next().expect("port").trim_end_matches('/').to_string()
}

#[tokio::test]
async fn an_untrusted_peers_forwarded_headers_are_replaced() {
    // Kong's default (nobody trusted), and trusted_ips that do not include the peer.
    for args in [&[][..], &["--trusted-ips", "10.0.0.0/8,::1"][..]] {
        let dir = tempdir();
        let (_up, gw) = gateway(dir.path(), args, &[]).await;
        let (st, body, _) = call(&gw, "/api/anything", &CLAIMS).await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(
            forwarded(&body),
            json!({"for": "10.0.0.1, 127.0.0.1", "proto": "http", "host": "127.0.0.1", "port": proxy_port(&gw),
                   "path": "/api/anything", "prefix": "/api", "real_ip": "127.0.0.1"}),
            "{args:?}"
        );
        // A claimed X-Forwarded-Proto does not make the request https.
        let (st, body, h) = call(&gw, "/secure", &[("x-forwarded-proto", "https")]).await;
        assert_eq!((st, &body), (426, &json!({"message": "Please use HTTPS protocol"})), "{args:?}");
        assert_eq!(h.get_all("upgrade").iter().collect::<Vec<_>>(), ["TLS/1.2, HTTP/1.1"]);
    }
}

#[tokio::test]
async fn a_trusted_peers_forwarded_headers_and_client_address_are_passed_on() {
    let dir = tempdir();
    let (_up, gw) = gateway(dir.path(), &[], &[("GATEHOUSE_TRUSTED_IPS", "127.0.0.1")]).await;
    let (st, body, _) = call(&gw, "/api/anything", &CLAIMS).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        forwarded(&body),
        json!({"for": "10.0.0.1, 127.0.0.1", "proto": "https", "host": "evil.example", "port": "443",
               "path": "/admin", "prefix": "/evil", "real_ip": "10.0.0.2"})
    );
    // What the proxy in front left out is ours; the client is the one in its X-Real-IP.
    let (st, body, _) = call(&gw, "/api/anything", &[("x-real-ip", "203.0.113.7")]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        forwarded(&body),
        json!({"for": "203.0.113.7", "proto": "http", "host": "127.0.0.1", "port": proxy_port(&gw),
               "path": "/api/anything", "prefix": "/api", "real_ip": "203.0.113.7"})
    );
    // A real-IP header that is no address leaves the peer as the client.
    let (_, body, _) = call(&gw, "/api/anything", &[("x-real-ip", "evil.example")]).await;
    assert_eq!(
        (&body["headers"]["X-Real-Ip"], &body["headers"]["X-Forwarded-For"]),
        (&json!("127.0.0.1"), &json!("127.0.0.1"))
    );
    // https at the proxy in front: the https-only route serves; without it, 426.
    assert_eq!(call(&gw, "/secure", &[("x-forwarded-proto", "https")]).await.0, 200);
    assert_eq!(call(&gw, "/secure", &[("x-forwarded-proto", "http")]).await.0, 426);
    assert_eq!(call(&gw, "/secure", &[]).await.0, 426);
    // `GET /` shows the settings as Kong names them.
    let (_, root) = get(&gw.admin).await;
    assert_eq!(root["configuration"]["trusted_ips"], json!(["127.0.0.1"]));
    assert_eq!(root["configuration"]["real_ip_recursive"], "off");
}

#[tokio::test]
async fn x_forwarded_for_is_walked_recursively_as_kongs_spec_says() {
    let dir = tempdir();
    let args = [
        "--trusted-ips",
        "127.0.0.1,172.16.0.1,192.168.0.1",
        "--real-ip-header",
        "X-Forwarded-For",
        "--real-ip-recursive",
        "on",
    ];
    let (_up, gw) = gateway(dir.path(), &args, &[]).await;
    let xff = "127.0.0.1, 10.0.0.1, 192.168.0.1, 127.0.0.1, 172.16.0.1";
    let (st, body, _) = call(&gw, "/api", &[("x-forwarded-for", xff), ("x-real-ip", "10.0.0.2")]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["headers"]["X-Real-Ip"], "10.0.0.1");
    assert_eq!(body["headers"]["X-Forwarded-For"], format!("{xff}, 127.0.0.1"));
    let (_, body, _) = call(&gw, "/api", &[]).await;
    assert_eq!(
        (&body["headers"]["X-Real-Ip"], &body["headers"]["X-Forwarded-For"]),
        (&json!("127.0.0.1"), &json!("127.0.0.1"))
    );
}

#[test]
fn hostile_trust_settings_stop_the_start_with_their_name() {
    let dir = tempdir();
    for (flag, value, expect) in [
        ("--trusted-ips", "localhost", "trusted_ips must be a comma separated list"),
        ("--trusted-ips", "10.0.0.1/33", "got '10.0.0.1/33'"),
        ("--real-ip-header", "proxy_protocol", "real_ip_header = proxy_protocol"),
        ("--real-ip-header", "two words", "real_ip_header must be"),
        ("--real-ip-recursive", "maybe", "real_ip_recursive must be"),
    ] {
        let out = run_bounded(
            Command::new(env!("CARGO_BIN_EXE_gatehouse"))
                .args(["start", "--proxy-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data-dir"])
                .arg(dir.path().join("data"))
                .args([flag, value]),
            Duration::from_secs(20),
        );
        assert!(!out.status.success(), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{flag} {value}: {err}");
    }
}

/// Every `Set-Cookie` of a response.
fn set_cookies(h: &HeaderMap) -> Vec<String> {
    h.get_all("set-cookie").iter().map(|v| v.to_str().expect("text").to_string()).collect()
}

fn is_secure(cookie: &str) -> bool {
    cookie.split(';').any(|a| a.trim().eq_ignore_ascii_case("secure"))
}

#[tokio::test]
async fn the_session_cookie_is_secure_exactly_when_the_request_was_https() {
    let dir = tempdir();
    let idp = idp(dir.path(), &[]);
    let issuer = idp.urls[0].clone();
    let basic = format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "john:doe"));
    let login = |proto: Option<&'static str>| {
        let mut h = vec![("authorization", basic.clone())];
        if let Some(p) = proto {
            h.push(("x-forwarded-proto", p.to_string()));
        }
        h
    };
    for (env, trusted) in [(&[("GATEHOUSE_TRUSTED_IPS", "127.0.0.1")][..], true), (&[][..], false)] {
        let sub = dir.path().join(format!("trusted-{trusted}"));
        std::fs::create_dir_all(&sub).expect("dir");
        let (_up, gw) = gateway(&sub, &[], env).await;
        let mut cfg = base_config(&issuer);
        cfg["auth_methods"] = json!(["password", "session"]);
        let (st, body) =
            post(&format!("{}/services/echo/plugins", gw.admin), json!({"name": "openid-connect", "config": cfg}))
                .await;
        assert_eq!(st, 201, "{body}");
        let plugin = body["id"].as_str().expect("id").to_string();
        let cookies = |headers: Vec<(&'static str, String)>| {
            let gw = &gw;
            async move {
                let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let (st, body, resp) = call(gw, "/api/anything", &h).await;
                assert_eq!(st, 200, "{body}");
                let set = set_cookies(&resp);
                assert!(!set.is_empty(), "a session is issued");
                set
            }
        };
        // session_cookie_secure null (Kong's default): Secure exactly when https.
        let https = cookies(login(Some("https"))).await;
        assert!(https.iter().all(|c| is_secure(c) == trusted), "trusted={trusted}: {https:?}");
        let http = cookies(login(None)).await;
        assert!(http.iter().all(|c| !is_secure(c)), "{http:?}");
        // The session made over https works over https.
        if trusted {
            let session: Vec<&str> = https.iter().map(|c| c.split(';').next().expect("pair")).collect();
            let (st, body, _) =
                call(&gw, "/api/anything", &[("cookie", session.join("; ").as_str()), ("x-forwarded-proto", "https")])
                    .await;
            assert_eq!(st, 200, "{body}");
        }
        // Set, the setting wins either way.
        for (secure, proto) in [(false, Some("https")), (true, None)] {
            set_secure(&gw, &plugin, json!(secure)).await;
            let set = cookies(login(proto)).await;
            assert!(set.iter().all(|c| is_secure(c) == secure), "secure={secure}: {set:?}");
        }
        set_secure(&gw, &plugin, Value::Null).await;
    }
}

/// `PATCH` the plugin's `session_cookie_secure`.
async fn set_secure(gw: &Gateway, plugin: &str, secure: Value) {
    let resp = client()
        .patch(format!("{}/plugins/{plugin}", gw.admin))
        .json(&json!({"config": {"session_cookie_secure": secure}}))
        .send()
        .await
        .expect("patch");
    assert_eq!(resp.status(), 200);
}

/// Kong's answer to an openid-connect plugin with a consumer.
fn no_consumer() -> Value {
    json!({"code": 2, "name": "schema violation", "message": "schema violation (consumer: value must be null)",
           "fields": {"consumer": "value must be null"}})
}

fn oidc_config() -> Value {
    json!({"issuer": "http://127.0.0.1:9/realms/x", "auth_methods": ["bearer"]})
}

#[tokio::test]
async fn a_consumer_scoped_openid_connect_plugin_is_refused_by_the_admin_api() {
    let dir = tempdir();
    let (_up, gw) = gateway(dir.path(), &[], &[]).await;
    let a = &gw.admin;
    let (st, alice) = post(&format!("{a}/consumers"), json!({"username": "alice"})).await;
    assert_eq!(st, 201, "{alice}");
    let alice_id = alice["id"].as_str().expect("id");
    let plugin = |extra: Value| {
        let mut p = json!({"name": "openid-connect", "config": oidc_config()});
        for (k, v) in extra.as_object().expect("object") {
            p[k] = v.clone();
        }
        p
    };
    let c = client();
    assert_eq!(post(&format!("{a}/consumers/alice/plugins"), plugin(json!({}))).await, (400, no_consumer()));
    let by_id = json!({"consumer": {"id": alice_id}});
    assert_eq!(post(&format!("{a}/plugins"), plugin(by_id.clone())).await, (400, no_consumer()));
    let by_name = json!({"consumer": {"name": "alice"}, "service": {"name": "echo"}});
    assert_eq!(post(&format!("{a}/plugins"), plugin(by_name)).await.0, 400);
    let put = c
        .put(format!("{a}/plugins/00000000-0000-4000-8000-0000000000c1"))
        .json(&plugin(by_id.clone()))
        .send()
        .await
        .expect("put");
    assert_eq!(json(put).await, (400, no_consumer()));
    let form = c
        .post(format!("{a}/consumers/alice/plugins"))
        .form(&[("name", "openid-connect"), ("config.issuer", "http://127.0.0.1:9/realms/x")])
        .send()
        .await
        .expect("form");
    assert_eq!(json(form).await, (400, no_consumer()));
    let (st, body) = post(&format!("{a}/schemas/plugins/validate"), plugin(by_id.clone())).await;
    assert_eq!((st, &body["fields"]), (400, &json!({"consumer": "value must be null"})), "{body}");

    // On a service it is fine, and cannot be moved onto a consumer.
    let (st, ok) = post(&format!("{a}/services/echo/plugins"), plugin(json!({}))).await;
    assert_eq!(st, 201, "{ok}");
    let id = ok["id"].as_str().expect("id");
    let patch = c.patch(format!("{a}/plugins/{id}")).json(&by_id).send().await.expect("patch");
    assert_eq!(json(patch).await, (400, no_consumer()));
    let (_, stored) = get(&format!("{a}/plugins/{id}")).await;
    assert_eq!(stored["consumer"], Value::Null);
    assert_eq!(get(&format!("{a}/plugins")).await.1["data"].as_array().map(Vec::len), Some(1), "nothing else stored");
    // Other kinds may still be scoped to a consumer.
    let (st, body) = post(
        &format!("{a}/consumers/alice/plugins"),
        json!({"name": "request-termination", "config": {"status_code": 403}}),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    // The schema says so, as Kong's does.
    let (_, schema) = get(&format!("{a}/schemas/plugins/openid-connect")).await;
    let consumer = schema["fields"].as_array().expect("fields").iter().find_map(|f| f.get("consumer")).cloned();
    assert_eq!(consumer.and_then(|c| c.get("eq").cloned()), Some(Value::Null), "{schema}");
}

fn kong_yml(upstream: &str, consumer_plugin: bool) -> String {
    let mut yml = format!(
        "_format_version: \"3.0\"\nservices:\n- name: echo\n  url: {upstream}\n  routes:\n  - name: r\n    paths: [/echo]\n\
         consumers:\n- username: bob\n"
    );
    if consumer_plugin {
        yml.push_str(
            "  plugins:\n  - name: openid-connect\n    config: {issuer: \"http://127.0.0.1:9/realms/x\"}\n\
             plugins:\n- name: openid-connect\n  consumer: bob\n  route: r\n  config: {issuer: \"http://127.0.0.1:9/realms/y\"}\n",
        );
    }
    yml
}

#[tokio::test]
async fn a_consumer_scoped_openid_connect_plugin_is_refused_in_declarative_config() {
    let dir = tempdir();
    let up = echo(dir.path());
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, kong_yml(&up.urls[0], true)).expect("write");
    let want = ["consumers[0].plugins[0].consumer: value must be null", "plugins[0].consumer: value must be null"];

    // `config check`.
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse")).args(["config", "check"]).arg(&bad).output().expect("runs");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for w in want {
        assert!(text.contains(w), "missing {w:?} in:\n{text}");
    }
    // Loading it at start.
    let out = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["start", "--proxy-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--database", "off"])
            .arg("--declarative-config")
            .arg(&bad),
        Duration::from_secs(20),
    );
    assert!(!out.status.success(), "the node does not start");
    let err = String::from_utf8_lossy(&out.stderr);
    for w in want {
        assert!(err.contains(w), "missing {w:?} in:\n{err}");
    }
    // `POST /config`.
    let good = dir.path().join("good.yml");
    std::fs::write(&good, kong_yml(&up.urls[0], false)).expect("write");
    let gw = Gateway::start_with(
        dir.path(),
        &["--database", "off", "--declarative-config", good.to_str().expect("utf-8")],
        &[],
    );
    let resp = client()
        .post(format!("{}/config", gw.admin))
        .form(&[("config", kong_yml(&up.urls[0], true).as_str())])
        .send()
        .await
        .expect("post");
    let (st, body) = json(resp).await;
    assert_eq!((st, body["code"].as_i64()), (400, Some(14)), "{body}");
    assert_eq!(body["fields"]["consumers"][0]["plugins"][0]["consumer"], "value must be null", "{body}");
    assert_eq!(body["fields"]["plugins"][0]["consumer"], "value must be null", "{body}");
    assert_eq!(get(&format!("{}/echo", gw.proxy)).await.0, 200, "the running config is unchanged");
    assert_eq!(get(&format!("{}/plugins", gw.admin)).await.1["data"], json!([]));
}
