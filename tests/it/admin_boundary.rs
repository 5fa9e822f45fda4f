//! The Admin API's boundary: hostile bodies are refused without taking the process down, browser
//! pages of other origins cannot write, and the node's secrets stay private on disk and in output.

use super::util::{Gateway, client, echo, echo_service, get, json, post, tempdir};
use serde_json::{Value, json};

/// POSTs `body` with `content_type` to `url`.
async fn send(url: &str, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    json(client().post(url).header("content-type", content_type).body(body).send().await.expect("request")).await
}

fn multipart(parts: &[(String, &str)]) -> (String, String) {
    let boundary = "Gatehouse-Boundary";
    let mut body = String::new();
    for (name, value) in parts {
        body.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[track_caller]
fn assert_schema_violation(st: u16, body: &Value, needle: &str) {
    assert_eq!((st, body["code"].as_u64(), body["name"].as_str()), (400, Some(2), Some("schema violation")), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains(needle)), "{body}");
}

// The issue: a 6 KB form body with a key 3000 levels deep overflowed the stack and aborted the
// process, proxy included.
#[tokio::test]
async fn hostile_bodies_are_refused_and_the_process_keeps_serving() {
    let dir = tempdir();
    let up = echo(dir.path());
    let gw = Gateway::start(dir.path());
    let a = &gw.admin;
    echo_service(&gw, &up.urls[0], &[json!({"paths": ["/api"]})]).await;

    let form = "application/x-www-form-urlencoded";
    let deep = format!("{}=1", vec!["a"; 3000].join("."));
    let (st, body) = send(&format!("{a}/services"), form, deep).await;
    assert_schema_violation(st, &body, "form key too long");
    let deep = format!("host=h&{}=1", vec!["config"; 40].join("."));
    let (st, body) = send(&format!("{a}/services"), form, deep).await;
    assert_schema_violation(st, &body, "nested too deep");
    let many: Vec<String> = (0..1001).map(|i| format!("tags={i}")).collect();
    let (st, body) = send(&format!("{a}/services"), form, many.join("&")).await;
    assert_schema_violation(st, &body, "too many fields");

    let names: Vec<(String, &str)> = (0..1001).map(|i| (format!("tags[{i}]"), "t")).collect();
    let (ct, body) = multipart(&names);
    let (st, body) = send(&format!("{a}/services"), &ct, body).await;
    assert_schema_violation(st, &body, "too many fields");
    let (ct, body) = multipart(&[("host".into(), "h"), (format!("a{}", "[]".repeat(3000)), "1")]);
    let (st, body) = send(&format!("{a}/services"), &ct, body).await;
    assert_schema_violation(st, &body, "form key");

    let nested = format!("{{\"host\":{}1{}}}", "[".repeat(200_000), "]".repeat(200_000));
    let (st, body) = send(&format!("{a}/services"), "application/json", nested).await;
    assert_eq!((st, body), (400, json!({"message": "Cannot parse JSON body"})));

    // Still up: the Admin API answers, nothing hostile was written, and the proxy serves.
    let (st, list) = get(&format!("{a}/services")).await;
    assert_eq!((st, list["data"].as_array().map(Vec::len)), (200, Some(1)), "{list}");
    let (st, body) = get(&format!("{}/api/x", gw.proxy)).await;
    assert_eq!(st, 200, "{body}");
}

#[tokio::test]
async fn browser_writes_from_other_origins_are_refused() {
    let dir = tempdir();
    let gw = Gateway::start_with(dir.path(), &["--admin-allowed-origins", "https://gui.example.com"], &[]);
    let url = format!("{}/services", gw.admin);
    let form = |origin: Option<&str>, site: Option<&str>| {
        let mut req = client().post(&url).header("content-type", "application/x-www-form-urlencoded").body("host=h");
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(s) = site {
            req = req.header("sec-fetch-site", s);
        }
        req.send()
    };

    // What a page on another site sends with a plain <form method=post>.
    let resp = form(Some("https://evil.example"), Some("cross-site")).await.expect("request");
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    let (st, body) = json(resp).await;
    assert_eq!((st, body), (403, json!({"message": "cross-origin writes to the Admin API are not allowed"})));
    let (st, _) = json(form(None, Some("same-site")).await.expect("request")).await;
    assert_eq!(st, 403);
    assert!(gw.proc.logs().contains("refused a cross-origin Admin API write"));

    // The allowed admin GUI, the Admin API's own pages, and curl-like clients write.
    let resp = form(Some("https://gui.example.com"), Some("cross-site")).await.expect("request");
    let allow = resp.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap_or_default().to_string());
    assert_eq!((resp.status().as_u16(), allow.as_deref()), (201, Some("https://gui.example.com")));
    let own = gw.admin.clone();
    assert_eq!(json(form(Some(&own), Some("same-origin")).await.expect("request")).await.0, 201);
    assert_eq!(json(form(None, None).await.expect("request")).await.0, 201);

    let (_, list) = get(&url).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(3), "only the three allowed writes landed: {list}");
}

#[cfg(unix)]
fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_is_private_and_loose_modes_are_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    let data = dir.path().join("data");
    {
        let gw = Gateway::start(dir.path());
        assert_eq!(post(&format!("{}/services", gw.admin), json!({"host": "h"})).await.0, 201);
        assert_eq!(mode(&data), 0o700);
        for f in ["gatehouse.db", "gatehouse.db-wal", "gatehouse.db-shm"] {
            assert_eq!(mode(&data.join(f)), 0o600, "{f}");
        }
        assert!(!gw.proc.logs().contains("tightened"), "a fresh store needs no tightening");
    }
    let loosen =
        |p: &std::path::Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod");
    loosen(&data, 0o755);
    let db = data.join("gatehouse.db");
    loosen(&db, 0o644);
    let gw = Gateway::start(dir.path());
    assert_eq!((mode(&data), mode(&db)), (0o700, 0o600));
    let logs = gw.proc.logs();
    for path in [&data, &db] {
        let line = logs.lines().find(|l| l.contains("tightened permissions") && l.contains(&*path.to_string_lossy()));
        assert!(line.is_some_and(|l| l.contains("WARN")), "no warning naming {}:\n{logs}", path.display());
    }
    assert_eq!(get(&format!("{}/services", gw.admin)).await.1["data"].as_array().map(Vec::len), Some(1));
}

/// The node's secrets, read from its database: every issuer's session secret and the private
/// parts (PKCS#8) of its key set.
async fn stored_secrets(data: &std::path::Path) -> Vec<String> {
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(data.join("gatehouse.db"))
        .read_only(true)
        .connect()
        .await
        .expect("open the store");
    let mut secrets: Vec<String> =
        sqlx::query_scalar("SELECT secret FROM oic_issuers").fetch_all(&mut conn).await.expect("issuer secrets");
    let jwks: String = sqlx::query_scalar("SELECT jwks FROM oic_jwks").fetch_one(&mut conn).await.expect("key set");
    let jwks: serde_json::Value = serde_json::from_str(&jwks).expect("json");
    for k in jwks["keys"].as_array().expect("keys") {
        secrets.push(k["pkcs8"].as_str().expect("pkcs8").to_string());
    }
    secrets
}

#[tokio::test]
async fn the_session_secret_never_shows_in_output_or_logs() {
    let dir = tempdir();
    let gw = Gateway::start_with(dir.path(), &[], &[("GATEHOUSE_LOG_LEVEL", "trace")]);
    let a = &gw.admin;
    let mut seen = Vec::new();
    let (st, p) = post(
        &format!("{a}/plugins"),
        json!({"name": "openid-connect", "config": {"issuer": "http://127.0.0.1:9/", "auth_methods": ["session"]}}),
    )
    .await;
    seen.push(p.to_string());
    assert_eq!(st, 201, "{p}");
    for path in [
        "/",
        "/status",
        "/services",
        "/nope",
        "/plugins/enabled",
        "/schemas/plugins/openid-connect",
        "/openid-connect/issuers",
        "/openid-connect/issuers/http%3A%2F%2F127.0.0.1%3A9%2F",
        "/openid-connect/jwks",
    ] {
        seen.push(client().get(format!("{a}{path}")).send().await.expect("request").text().await.unwrap_or_default());
    }
    for (ct, body) in
        [("application/json", "{\"host\":"), ("application/x-www-form-urlencoded", "a[=1"), ("text/xml", "<x/>")]
    {
        let (_, e) = send(&format!("{a}/services"), ct, body).await;
        seen.push(e.to_string());
    }
    let logs = gw.proc.logs();
    drop(gw);

    let secrets = stored_secrets(&dir.path().join("data")).await;
    assert_eq!(secrets.len(), 1 + 5, "the issuer's secret and the five private keys");
    for secret in &secrets {
        assert!(secret.len() >= 32, "a real secret");
        for out in &seen {
            assert!(!out.contains(secret.as_str()), "a secret shows in an Admin API answer: {out}");
        }
        assert!(!logs.contains(secret.as_str()), "a secret shows in the logs");
    }
    assert!(logs.contains("TRACE") || logs.contains("DEBUG"), "the logs were verbose");
}

// `POST /config` takes YAML and JSON: an alias bomb, deep JSON and deep YAML nesting (libyaml scans
// flow nesting in time quadratic in its depth: 20 000 levels took ~10 s) are refused at once.
#[tokio::test]
async fn hostile_declarative_documents_are_refused_and_the_process_keeps_serving() {
    let dir = tempdir();
    let gw = Gateway::start_with(dir.path(), &["--database", "off"], &[]);
    let url = format!("{}/config", gw.admin);
    let mut bomb = String::from("_format_version: \"3.0\"\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        bomb.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
    }
    let (st, e) = send(&url, "application/x-yaml", bomb).await;
    assert_eq!((st, e["code"].as_u64()), (400, Some(14)), "{e}");
    assert!(e["message"].as_str().is_some_and(|m| m.ends_with("repetition limit exceeded")), "{e}");
    let nested = format!("{{\"config\":{}1{}}}", "[".repeat(200_000), "]".repeat(200_000));
    let (st, e) = send(&url, "application/json", nested).await;
    assert_eq!((st, e), (400, json!({"message": "Cannot parse JSON body"})));
    let open = "[".repeat(200_000);
    let head = "_format_version: \"3.0\"\n";
    for (deep, deeper) in [
        (format!("{head}services: {open}x{}\n", "]".repeat(200_000)), true),
        // Closing brackets hidden in a quoted scalar do not lower the depth that is counted.
        (format!("{head}x: [\"{}\", {open}\n", "]".repeat(100_000)), true),
        // Forms that fooled a byte scanner's guesses about where quotes and comments start: in
        // flow context `a:"` and `-"` are plain scalars, a tag or anchor precedes a real quote,
        // `#` right after a quoted scalar starts no comment, an apostrophe in a plain scalar
        // opens nothing even across lines.
        (format!("[a:\"{open}"), false),
        (format!("[-\"{open}"), false),
        (format!("{head}x: {}", "[!t \"]\", ".repeat(200_000)), true),
        (format!("{head}x: {}", "[&a \"]\", ".repeat(200_000)), true),
        (format!("{head}x: [!t \" #\", {open}"), false),
        (format!("{head}x: a '\ny: {open}\nz: '\n"), false),
        (format!("{head}x: a\n  '\ny: {open}\nz: '\n"), false),
        (format!("{head}x:\n{}1\n", "- ".repeat(200_000)), true),
    ] {
        let started = std::time::Instant::now();
        let (st, e) = send(&url, "application/x-yaml", deep.clone()).await;
        assert_eq!((st, e["code"].as_u64()), (400, Some(14)), "{e}");
        let message = e["message"].as_str().unwrap_or_default();
        assert!(!deeper || message.contains("nested deeper than 64"), "{e}");
        // The same text inside a JSON body's `config` field takes the same path.
        let (st, e) = send(&url, "application/json", json!({ "config": deep }).to_string()).await;
        assert_eq!((st, e["code"].as_u64()), (400, Some(14)), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(4), "refused before libyaml scans it");
    }
    let (st, e) = get(&format!("{}/status", gw.admin)).await;
    assert_eq!(st, 200, "{e}");
    assert_eq!(get(&format!("{}/nowhere", gw.proxy)).await.0, 404, "the proxy still answers");
}
