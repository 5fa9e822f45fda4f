//! The README's quickstart: `gatehouse dev`, then the seed's two HTTPie commands character for
//! character, with a real HTTPie (PyPI, pinned, in a virtual environment under the target dir).
//!
//! The commands name the default ports (`:8001`, `:8000`), which something else on a shared machine
//! may hold, so the whole walkthrough runs in a fresh network namespace (`unshare --net`), where
//! those ports are free and nothing else can be reached.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

const HTTPIE: &str = "httpie==3.2.4";
const PLUGIN: &str = "5f35b796-ced6-4c00-9b2a-90eef745f4f9";

/// HTTPie's `http`, installed once per target directory.
fn httpie() -> PathBuf {
    static ONCE: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut guard = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = &*guard {
        return p.clone();
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("httpie-venv");
    let http = venv.join("bin/http");
    let marker = venv.join(HTTPIE);
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&venv);
        let st = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().expect("python3");
        assert!(st.success(), "python3 -m venv failed");
        let st = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", HTTPIE])
            .status()
            .expect("pip");
        assert!(st.success(), "pip install {HTTPIE} failed");
        std::fs::write(&marker, b"").unwrap();
    }
    *guard = Some(http.clone());
    http
}

/// Splits HTTPie's `--print=hb` output into the status code and the JSON body.
fn response(text: &str) -> (u16, Value) {
    let status = text.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok());
    let body = text.split_once("\n\n").or_else(|| text.split_once("\r\n\r\n")).map(|x| x.1).unwrap_or("");
    (
        status.unwrap_or_else(|| panic!("no status line in: {text}")),
        serde_json::from_str(body.trim()).unwrap_or(Value::Null),
    )
}

#[test]
fn the_seed_transcript_verbatim_with_httpie_against_gatehouse_dev() {
    let http = httpie();
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_gatehouse");
    let bin_dir = http.parent().unwrap().display().to_string();
    // HTTPie's own config (not the commands) makes it behave as in a terminal: print the status
    // line and headers although its output goes to a file, and not wait for a body on stdin.
    std::fs::create_dir_all(dir.path().join("httpie")).unwrap();
    std::fs::write(
        dir.path().join("httpie/config.json"),
        r#"{"default_options": ["--print=hb", "--pretty=none", "--ignore-stdin"]}"#,
    )
    .unwrap();
    let script = format!(
        r#"set -u
ip link set lo up
export PATH="{bin_dir}:$PATH" HTTPIE_CONFIG_DIR="$PWD/httpie"
up() {{ for _ in $(seq 1 100); do grep -q ready "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "not ready: $1"; cat "$2"; return 1; }}
stop() {{ kill -INT "$1"; for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done; wait "$1"; echo "exit $?" >> "$2"; }}

"{bin}" dev > dev1.out 2> dev1.err & DEV=$!
up dev1.out dev1.err || exit 1
http -f patch :8001/plugins/{PLUGIN} config.auth_methods=password config.upstream_headers_claims=preferred_username config.upstream_headers_names=authenticated_user > patch.out 2>&1
http -a john:doe :8000 > get.out 2>&1
http :9000/jwks > jwks.out 2>&1
stop $DEV dev1.out

"{bin}" dev > dev2.out 2> dev2.err & DEV=$!
up dev2.out dev2.err || exit 1
http :8001/plugins/{PLUGIN} > kept.out 2>&1
stop $DEV dev2.out

"{bin}" dev --reset > dev3.out 2> dev3.err & DEV=$!
up dev3.out dev3.err || exit 1
http :8001/plugins/{PLUGIN} > reset.out 2>&1
stop $DEV dev3.out
"#
    );
    let out = Command::new("unshare")
        .args(["--net", "bash", "-c", &script])
        .current_dir(dir.path())
        .output()
        .expect("unshare (util-linux) must be installed");
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
    assert!(
        out.status.success(),
        "the walkthrough script failed ({}): {}{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        read("dev1.err")
    );

    // `gatehouse dev` says what it started and what to type next.
    let banner = read("dev1.out");
    for expected in [
        "proxy=http://127.0.0.1:8000",
        "admin=http://127.0.0.1:8001",
        "idp=http://127.0.0.1:9000",
        "john",
        "http -a john:doe :8000",
        "created",
    ] {
        assert!(banner.contains(expected), "banner lacks {expected:?}:\n{banner}");
    }

    // http -f patch :8001/plugins/5f35b796-... → 200 and the plugin.
    let (st, plugin) = response(&read("patch.out"));
    assert_eq!(st, 200, "{}", read("patch.out"));
    assert_eq!(plugin["id"], PLUGIN);
    assert_eq!(plugin["name"], "openid-connect");
    assert_eq!(plugin["service"]["id"], "5fa9e468-0007-4d7e-9aeb-49ca9edd6ccd");
    assert_eq!(plugin["config"]["auth_methods"], serde_json::json!(["password"]));
    assert_eq!(plugin["config"]["upstream_headers_claims"], serde_json::json!(["preferred_username"]));
    assert_eq!(plugin["config"]["upstream_headers_names"], serde_json::json!(["authenticated_user"]));

    // http -a john:doe :8000 → 200 and the echo of what the upstream got.
    let (st, echo) = response(&read("get.out"));
    assert_eq!(st, 200, "{}", read("get.out"));
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["headers"]["Authenticated-User"], "john");
    let token =
        echo["headers"]["Authorization"].as_str().and_then(|a| a.strip_prefix("Bearer ")).expect("a bearer token");
    let (_, jwks) = response(&read("jwks.out"));
    let keys = gatehouse_jose::KeySet::from_jwks(jwks).unwrap();
    let verified =
        gatehouse_jose::verify(token, &keys, &gatehouse_jose::Policy::default()).expect("a real access token");
    assert_eq!(verified.claims["preferred_username"], "john");
    assert_eq!(verified.claims["scope"], "openid email profile");
    assert_eq!(verified.claims["aud"], "account");

    // Ctrl-C stops everything cleanly; a restart keeps the data; --reset starts afresh.
    assert!(banner.contains("exit 0"), "Ctrl-C must exit 0:\n{banner}\n{}", read("dev1.err"));
    let (st, kept) = response(&read("kept.out"));
    assert_eq!(st, 200);
    assert_eq!(kept["config"]["auth_methods"], serde_json::json!(["password"]), "a restart keeps the data");
    assert!(read("dev2.out").contains("kept"));
    let (st, reset) = response(&read("reset.out"));
    assert_eq!(st, 200);
    assert_eq!(reset["config"]["auth_methods"].as_array().map(Vec::len), Some(9), "--reset restores the defaults");
    assert!(read("dev3.out").contains("created") && read("dev3.out").contains("exit 0"));
}
