//! A real browser: Debian's Chromium, headless, driven through `chromedriver` with fantoccini.
//! The harness starts chromedriver on a free port and bounds every wait; the first tests sign in
//! at the development IdP's login form as a person would.

use super::oidc::idp;
use super::util::{echo, first_line_with, tempdir};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long any one wait (chromedriver start, page load, element, URL change) may take.
const WAIT: Duration = Duration::from_secs(20);
/// The fixed window size, so screenshots and layouts are the same on every machine.
const WINDOW: (u32, u32) = (1024, 768);

/// A headless Chromium session behind its own `chromedriver`. [`Browser::close`] ends the
/// session; on drop (also after a panic) chromedriver and the browsers it started are killed.
pub struct Browser {
    driver: Child,
    client: Option<Client>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver runs in its own process group: killing the group also takes Chromium,
        // which would otherwise outlive a killed chromedriver.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Starts chromedriver on a free 127.0.0.1 port and opens a headless Chromium session.
    pub async fn start() -> Browser {
        let chromium = which("chromium");
        let chromedriver = which("chromedriver");
        // chromedriver takes a port number, not port 0: a free one is picked and released, and
        // another process may take it first (chromedriver then exits at once), so it is tried
        // again with a new one.
        let (mut browser, port) = 'spawn: {
            for _ in 0..3 {
                let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
                let mut cmd = Command::new(&chromedriver);
                cmd.arg(format!("--port={port}"))
                    .arg("--allowed-ips=127.0.0.1")
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null());
                std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
                let mut driver = cmd.spawn().expect("spawn chromedriver");
                let started = first_line_with(&mut driver, "started successfully", WAIT);
                let browser = Browser { driver, client: None };
                if started.is_ok() {
                    break 'spawn (browser, port);
                }
            }
            panic!("chromedriver did not start in three tries of {WAIT:?}");
        };

        // fantoccini's rustls connector needs a process-wide provider (the tests link more than one).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let caps = json!({
            "browserName": "chrome",
            "timeouts": {"pageLoad": WAIT.as_millis() as u64, "script": WAIT.as_millis() as u64},
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         format!("--window-size={},{}", WINDOW.0, WINDOW.1)],
            },
        });
        let Value::Object(caps) = caps else { unreachable!() };
        let client = tokio::time::timeout(
            WAIT,
            ClientBuilder::rustls()
                .expect("rustls connector")
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{port}")),
        )
        .await
        .expect("chromedriver session within the time limit")
        .expect("chromedriver session");
        client.set_window_size(WINDOW.0, WINDOW.1).await.expect("window size");
        browser.client = Some(client);
        browser
    }

    /// The WebDriver client.
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("open session")
    }

    /// Loads `url` (bounded by the session's page-load timeout).
    pub async fn goto(&self, url: &str) {
        bounded("page load", self.client().goto(url)).await;
    }

    /// Waits for an element matching the CSS selector.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        bounded(css, self.client().wait().at_most(WAIT).for_element(Locator::Css(css))).await
    }

    /// Types `text` into the field matching the CSS selector.
    pub async fn fill(&self, css: &str, text: &str) {
        bounded(css, self.find(css).await.send_keys(text)).await;
    }

    /// Clicks the element matching the CSS selector.
    pub async fn click(&self, css: &str) {
        bounded(css, self.find(css).await.click()).await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        bounded("current url", self.client().current_url()).await.to_string()
    }

    /// Waits until the current URL starts with `prefix`; returns it.
    pub async fn wait_for_url(&self, prefix: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let url = self.url().await;
            if url.starts_with(prefix) {
                return url;
            }
            assert!(tokio::time::Instant::now() < deadline, "no page at {prefix} within {WAIT:?}; at {url}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The page's HTML.
    pub async fn source(&self) -> String {
        bounded("page source", self.client().source()).await
    }

    /// Writes a PNG of the page to `docs/screenshots/<name>.png`, only when
    /// `GATEHOUSE_SCREENSHOTS=1` (normal runs leave the repository alone).
    pub async fn screenshot(&self, name: &str) {
        if std::env::var("GATEHOUSE_SCREENSHOTS").as_deref() != Ok("1") {
            return;
        }
        let png = bounded("screenshot", self.client().screenshot()).await;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshots dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// Ends the WebDriver session (Chromium exits); chromedriver is killed on drop.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = tokio::time::timeout(WAIT, client.close()).await;
        }
    }
}

/// Awaits a WebDriver command, failing the test on an error or after [`WAIT`].
async fn bounded<T, E: std::fmt::Debug>(what: &str, fut: impl Future<Output = Result<T, E>>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => panic!("{what}: {e:?}"),
        Err(_) => panic!("{what}: no answer within {WAIT:?}"),
    }
}

/// The full path of `name` on PATH (`scripts/test` installs Chromium and chromedriver).
fn which(name: &str) -> String {
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()))
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| {
            panic!("{name} not found on PATH (scripts/test installs Debian's chromium and chromium-driver)")
        })
}

/// The query parameter `name` of `url`.
fn query_param(url: &str, name: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The authorization request a relying party would send the browser to, with an echo upstream
/// as its redirect URI (the dev IdP's built-in clients accept any loopback URI).
fn authorize_url(issuer: &str, redirect_uri: &str, state: &str) -> String {
    let mut url = reqwest::Url::parse(&format!("{issuer}/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "gatehouse")
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", "openid")
        .append_pair("state", state);
    url.to_string()
}

#[tokio::test]
async fn signing_in_at_the_dev_idp_form_redirects_with_a_code_and_the_state() {
    let dir = tempdir();
    let idp = idp(dir.path(), &[]);
    let up = echo(dir.path());
    let callback = format!("{}/callback", up.urls[0]);
    let browser = Browser::start().await;

    browser.goto(&authorize_url(&idp.urls[0], &callback, "st-4711")).await;
    browser.find("input[name=username]").await;
    browser.screenshot("dev-idp-login").await;
    browser.fill("input[name=username]", "john").await;
    browser.fill("input[name=password]", "doe").await;
    browser.click("button[type=submit]").await;

    let landed = browser.wait_for_url(&callback).await;
    let code = query_param(&landed, "code").expect("a code in the redirect");
    assert!(!code.is_empty());
    assert_eq!(query_param(&landed, "state").as_deref(), Some("st-4711"));
    // The echo upstream answered the redirect: the browser really loaded the callback page.
    assert!(browser.source().await.contains(&code), "callback page shows the code");
    browser.close().await;
}

#[tokio::test]
async fn a_wrong_password_shows_the_form_again_with_an_error_and_no_redirect() {
    let dir = tempdir();
    let idp = idp(dir.path(), &[]);
    let up = echo(dir.path());
    let callback = format!("{}/callback", up.urls[0]);
    let browser = Browser::start().await;

    browser.goto(&authorize_url(&idp.urls[0], &callback, "st-1")).await;
    browser.fill("input[name=username]", "john").await;
    browser.fill("input[name=password]", "wrong").await;
    browser.click("button[type=submit]").await;

    let error = browser.find("p.error[role=alert]").await;
    assert_eq!(bounded("error text", error.text()).await, "Invalid username or password.");
    let url = browser.url().await;
    assert!(url.starts_with(&format!("{}/authorize", idp.urls[0])), "still at the IdP: {url}");
    assert_eq!(query_param(&url, "code"), None);
    // The form is back, the name kept and the password not.
    let username = browser.find("input[name=username]").await;
    assert_eq!(bounded("username", username.prop("value")).await.as_deref(), Some("john"));
    let password = browser.find("input[name=password]").await;
    assert_eq!(bounded("password", password.prop("value")).await.as_deref(), Some(""));
    browser.close().await;
}

/// Kong's authorization-code example (developer.konghq.com, openid-connect
/// examples/authorization-code.yaml) in a real browser against the development IdP: the person
/// lands on the page they asked for, query included, signed in; the upstream sees who they are;
/// a reload rides on the session without a round trip to the IdP.
#[tokio::test]
async fn a_person_signs_in_through_the_gateway_and_lands_on_the_page_they_asked_for() {
    let env = super::oidc::Env::new(json!({
        "client_auth": ["client_secret_post"],
        "auth_methods": ["authorization_code", "session"],
        "preserve_query_args": true,
        "login_action": "redirect",
        "login_tokens": null,
        "upstream_headers_claims": ["preferred_username"],
        "upstream_headers_names": ["authenticated_user"],
    }))
    .await;
    let page = format!("{}/api/anything?hello=world", env.gw.proxy);
    let browser = Browser::start().await;

    browser.goto(&page).await;
    browser.find("input[name=username]").await;
    assert!(browser.url().await.starts_with(&format!("{}/authorize?", env.issuer)), "at the IdP's login page");
    browser.fill("input[name=username]", "john").await;
    browser.fill("input[name=password]", "doe").await;
    browser.click("button[type=submit]").await;

    let landed = browser.wait_for_url(&page).await;
    assert_eq!(landed, page, "the original URL with its query, nothing added");
    let source = browser.source().await;
    assert!(
        source.contains("\"Authenticated-User\": \"john\"") || source.contains("\"Authenticated-User\":\"john\""),
        "{source}"
    );
    assert!(source.contains("\"hello\""), "the query reached the upstream: {source}");
    browser.screenshot("signed-in").await;

    let tokens = env.calls().await["token"].clone();
    browser.goto(&page).await;
    assert_eq!(browser.url().await, page, "a reload stays on the page");
    assert!(browser.source().await.contains("Authenticated-User"));
    assert_eq!(env.calls().await["token"], tokens, "no IdP round trip on a reload");
    browser.close().await;
}
