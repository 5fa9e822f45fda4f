//! Starting the real binary and talking to it.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The first line of `child`'s piped stdout that contains `needle`, within `wait`; the rest of
/// its stdout is read and dropped, so the child never blocks on a full pipe.
pub fn first_line_with(
    child: &mut Child,
    needle: &'static str,
    wait: Duration,
) -> Result<String, mpsc::RecvTimeoutError> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains(needle) {
                let _ = tx.send(line);
            }
        }
    });
    rx.recv_timeout(wait)
}

/// Runs `cmd` to its end and returns its output; a process still running after `wait` (a
/// `gatehouse start` that should have refused its settings and is serving instead) is killed
/// and the test fails, rather than hanging the run.
pub fn run_bounded(cmd: &mut Command, wait: Duration) -> std::process::Output {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let deadline = std::time::Instant::now() + wait;
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("still running after {wait:?}; stderr:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// A running `gatehouse` process, killed on drop.
pub struct Proc {
    child: Child,
    /// Base URL(s) parsed from its ready line.
    pub urls: Vec<String>,
    /// Where its stderr (logs) goes.
    pub log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Runs `gatehouse ARGS` and waits for its ready line (the line starting with `ready_prefix`).
    pub fn spawn(args: &[&str], env: &[(&str, &str)], log: &Path) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        cmd.args(args)
            .env_remove("GATEHOUSE_PROXY_LISTEN")
            .env_remove("GATEHOUSE_ADMIN_LISTEN")
            .env_remove("GATEHOUSE_DATABASE")
            .env_remove("GATEHOUSE_DATA_DIR")
            .env_remove("GATEHOUSE_DECLARATIVE_CONFIG")
            .env("GATEHOUSE_LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("log file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn gatehouse");
        let line = match first_line_with(&mut child, "ready", Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("gatehouse did not become ready; log:\n{}", std::fs::read_to_string(log).unwrap_or_default());
            }
        };
        let urls = line.split_whitespace().filter_map(|w| w.find("http://").map(|i| w[i..].to_string())).collect();
        Proc { child, urls, log: log.to_path_buf() }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's logs so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A gateway with its proxy and admin URLs.
pub struct Gateway {
    pub proc: Proc,
    pub proxy: String,
    pub admin: String,
}

impl Gateway {
    /// Starts `gatehouse start` on free ports with its SQLite store in `dir`.
    pub fn start(dir: &Path) -> Gateway {
        Self::start_with(dir, &[], &[])
    }

    /// Starts with extra arguments and environment.
    pub fn start_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Gateway {
        let data = dir.join("data");
        let data = data.to_str().expect("utf-8 path");
        let mut all =
            vec!["start", "--proxy-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data-dir", data];
        all.extend_from_slice(args);
        let proc = Proc::spawn(&all, env, &dir.join("gatehouse.log"));
        let proxy = proc.urls[0].clone();
        let admin = proc.urls[1].clone();
        Gateway { proc, proxy, admin }
    }
}

/// Starts `gatehouse echo` on a free port; returns the process and its URL.
pub fn echo(dir: &Path) -> Proc {
    Proc::spawn(&["echo", "--listen", "127.0.0.1:0"], &[], &dir.join("echo.log"))
}

/// A fresh temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// An HTTP client that does not pool (each test talks to its own short-lived servers).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client")
}

/// The response status and its JSON body (`Null` when the body is empty or not JSON).
pub async fn json(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// POSTs JSON and returns status and body.
pub async fn post(url: &str, body: Value) -> (u16, Value) {
    json(client().post(url).json(&body).send().await.expect("request")).await
}

/// Creates service `echo` for `upstream` on `gw`, and one route on it per entry of `routes`
/// (route bodies as the Admin API takes them); every write must answer 201.
pub async fn echo_service(gw: &Gateway, upstream: &str, routes: &[Value]) {
    let a = &gw.admin;
    let (st, body) = post(&format!("{a}/services"), serde_json::json!({"name": "echo", "url": upstream})).await;
    assert_eq!(st, 201, "{body}");
    for route in routes {
        let (st, body) = post(&format!("{a}/services/echo/routes"), route.clone()).await;
        assert_eq!(st, 201, "{body}");
    }
}

/// GETs and returns status and body.
pub async fn get(url: &str) -> (u16, Value) {
    json(client().get(url).send().await.expect("request")).await
}

/// `x-user-info` → `X-User-Info`: how the echo upstream shows a header name.
pub fn title(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect::<String>()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// A rustls server config with a fresh self-signed certificate for 127.0.0.1 and localhost,
/// offering `alpn`.
pub fn self_signed_tls(alpn: &[&[u8]]) -> rustls::ServerConfig {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}
