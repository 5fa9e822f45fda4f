//! A real browser: Debian's Chromium, headless, driven through `chromedriver` with fantoccini.
//! The harness starts chromedriver on a free port and bounds every wait. The tests sign in at the
//! development IdP's login form as a person would, through Kong's authorization-code example:
//! landing on the page asked for, a reload, a refresh of an expired access token, logout through
//! the IdP and back, and Cancel at the IdP. `interop.rs` does the same against oidc-provider.

use super::oidc::{Env, Provider, idp};
use super::util::{echo, first_line_with, post, tempdir};
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
    /// A share of [`BROWSERS`], held while this browser lives.
    _turn: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// How many Chromiums run at once: the tests run in parallel on small machines, and a Chromium
/// starting beside several others can miss its start-up bound.
static BROWSERS: std::sync::LazyLock<std::sync::Arc<tokio::sync::Semaphore>> =
    std::sync::LazyLock::new(|| std::sync::Arc::new(tokio::sync::Semaphore::new(2)));

/// How long a browser session may take to start (Chromium's start-up on a loaded machine).
const START: Duration = Duration::from_secs(60);

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
        let turn = BROWSERS.clone().acquire_owned().await.expect("the browser semaphore is never closed");
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
                let browser = Browser { driver, client: None, _turn: None };
                if started.is_ok() {
                    break 'spawn (browser, port);
                }
            }
            panic!("chromedriver did not start in three tries of {WAIT:?}");
        };
        browser._turn = Some(turn);

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
            START,
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

    /// Reloads the page as the browser's reload button does (the same request again).
    pub async fn reload(&self) {
        bounded("reload", self.client().refresh()).await;
    }

    /// The JSON the page shows (Chromium wraps a JSON answer in a `<pre>`); `Null` when the
    /// page is not JSON.
    pub async fn json(&self) -> Value {
        let text = bounded(
            "page text",
            self.client().execute("return (document.querySelector('pre') || document.body).innerText", vec![]),
        )
        .await;
        text.as_str().and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null)
    }

    /// The cookies the browser would send to the current page, as a `Cookie` header value
    /// (HttpOnly ones included), sorted by name.
    pub async fn cookie_header(&self) -> String {
        let mut cookies: Vec<String> = bounded("cookies", self.client().get_all_cookies())
            .await
            .iter()
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect();
        cookies.sort();
        cookies.join("; ")
    }

    /// Indents the JSON the page shows, as Chromium's "Pretty-print" box would (the box is out
    /// of a script's reach), so a screenshot of a JSON answer is readable. The data stay the same.
    pub async fn pretty_print(&self) {
        let indent = "const p = document.querySelector('pre'); \
                      if (p) { p.textContent = JSON.stringify(JSON.parse(p.textContent), null, 2); }";
        bounded("pretty-print", self.client().execute(indent, vec![])).await;
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
/// examples/authorization-code.yaml) exactly as published, issuer and client aside: the IdP
/// answers by `form_post`, the callback is the requested path itself, and `login_action:
/// redirect` with `preserve_query_args` sends the browser back to the URL it asked for.
pub fn kong_authorization_code_example() -> Value {
    json!({
        "client_auth": ["client_secret_post"],
        "auth_methods": ["authorization_code", "session"],
        "response_mode": "form_post",
        "preserve_query_args": true,
        "login_action": "redirect",
        "login_tokens": null,
    })
}

/// Kong's example with `extra` on top, in front of the development IdP.
async fn kong_example_at_the_dev_idp(extra: Value) -> Env {
    let mut config = kong_authorization_code_example();
    if let (Value::Object(c), Value::Object(e)) = (&mut config, extra) {
        c.extend(e);
    }
    Env::new(config).await
}

/// The page the person asks for: behind the plugin, with a query to keep.
fn page(env: &Env) -> String {
    format!("{}/api/anything?hello=world", env.gw.proxy)
}

/// The claims of the bearer token the upstream received, as the echo shows them.
pub fn upstream_claims(echo: &Value) -> Value {
    use base64::Engine as _;
    let auth = echo["headers"]["Authorization"].as_str().unwrap_or_else(|| panic!("no Authorization: {echo}"));
    let token = auth.strip_prefix("Bearer ").unwrap_or_else(|| panic!("not a bearer token: {auth}"));
    let payload = token.split('.').nth(1).unwrap_or_else(|| panic!("not a JWT: {token}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url claims");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// What the upstream must have seen for a signed-in GET of the page: the original query, john's
/// access token, and none of the gateway's own cookies.
pub fn assert_upstream_saw_john(echo: &Value) {
    assert_eq!(echo["method"], "GET", "{echo}");
    assert_eq!(echo["args"], json!({"hello": "world"}), "the query reached the upstream: {echo}");
    assert_eq!(upstream_claims(echo)["preferred_username"], "john", "{echo}");
    let cookies = echo["headers"]["Cookie"].as_str().unwrap_or_default();
    assert!(!has_cookie(cookies, "session") && !has_cookie(cookies, "authorization"), "ours stay here: {echo}");
}

/// Whether a `Cookie` header value holds a cookie named `name` (not merely a name ending so, as
/// oidc-provider's `_session`).
pub fn has_cookie(header: &str, name: &str) -> bool {
    header.split("; ").any(|c| c.split_once('=').is_some_and(|(n, _)| n == name))
}

/// Opens `page`, is sent to the dev IdP's login form, signs in as john and lands back on
/// `page` exactly; returns what the upstream echoed.
async fn sign_in_at_the_dev_idp(browser: &Browser, env: &Env, page: &str) -> Value {
    browser.goto(page).await;
    browser.find("input[name=username]").await;
    let at = browser.url().await;
    assert!(at.starts_with(&format!("{}/authorize?", env.issuer)), "at the IdP's login page: {at}");
    assert_eq!(query_param(&at, "response_mode").as_deref(), Some("form_post"), "{at}");
    browser.fill("input[name=username]", "john").await;
    browser.fill("input[name=password]", "doe").await;
    browser.click("button[type=submit]").await;
    let landed = browser.wait_for_url(page).await;
    assert_eq!(landed, page, "the original URL with its query, nothing added");
    let echo = browser.json().await;
    assert_upstream_saw_john(&echo);
    echo
}

/// Counters of the dev IdP: a `/_dev/calls` member, or a `token_grants` one.
fn count(calls: &Value, what: &str) -> i64 {
    calls[what].as_i64().or_else(|| calls["token_grants"][what].as_i64()).unwrap_or_else(|| panic!("{what}: {calls}"))
}

/// Kong's authorization-code example in a real browser against the development IdP: the person
/// lands on the page they asked for, query included, signed in; the upstream sees who they are;
/// a reload rides on the session without a round trip to the IdP.
#[tokio::test]
async fn a_person_signs_in_through_the_gateway_and_lands_on_the_page_they_asked_for() {
    let env = kong_example_at_the_dev_idp(json!({})).await;
    let page = page(&env);
    let browser = Browser::start().await;

    sign_in_at_the_dev_idp(&browser, &env, &page).await;
    browser.pretty_print().await;
    assert_upstream_saw_john(&browser.json().await);
    browser.screenshot("signed-in").await;
    let calls = env.calls().await;
    assert_eq!(count(&calls, "authorization_code"), 1, "{calls}");
    assert!(has_cookie(&browser.cookie_header().await, "session"), "signed in with a session cookie");

    browser.reload().await;
    assert_eq!(browser.url().await, page, "a reload stays on the page");
    assert_upstream_saw_john(&browser.json().await);
    let after = env.calls().await;
    assert_eq!(count(&after, "token"), count(&calls, "token"), "no IdP round trip on a reload: {after}");
    assert_eq!(count(&after, "authorize"), count(&calls, "authorize"), "{after}");
    browser.close().await;
}

/// A session outlives its access token: the gateway refreshes it with the session's refresh
/// token on the next request, and the person never notices.
#[tokio::test]
async fn an_expired_access_token_is_refreshed_without_the_person_noticing() {
    let env = kong_example_at_the_dev_idp(json!({})).await;
    env.dev("clients", json!({"client_id": "gatehouse", "client_secret": "gatehouse-secret", "access_token_ttl": 2}))
        .await;
    let page = page(&env);
    let browser = Browser::start().await;

    let first = sign_in_at_the_dev_idp(&browser, &env, &page).await;
    let claims = upstream_claims(&first);
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 2, "{claims}");
    let before = env.calls().await;
    let cookie = browser.cookie_header().await;

    // The one fixed wait: past the access token's 2 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    browser.reload().await;
    assert_eq!(browser.url().await, page, "still on the page, no trip to the IdP's form");
    let echo = browser.json().await;
    assert_upstream_saw_john(&echo);
    assert_ne!(echo["headers"]["Authorization"], first["headers"]["Authorization"], "a new access token");
    let after = env.calls().await;
    assert_eq!(count(&after, "refresh_token") - count(&before, "refresh_token"), 1, "one refresh: {after}");
    assert_eq!(count(&after, "authorize"), count(&before, "authorize"), "no new sign-in: {after}");

    // The refreshed session (new id, rotated refresh token) went back to the browser. (Not shown
    // by another reload: on a busy machine the new 2 s token may have expired by then.)
    let refreshed = browser.cookie_header().await;
    assert!(has_cookie(&refreshed, "session") && refreshed != cookie, "a new session cookie: {refreshed}");
    browser.close().await;
}

/// A route of the echo upstream without the plugin, where the IdP sends the browser after logout.
pub async fn signed_out_page<P: Provider>(env: &Env<P>) -> String {
    let a = &env.gw.admin;
    let (st, body) = post(&format!("{a}/services"), json!({"name": "public", "url": env._up.urls[0]})).await;
    assert_eq!(st, 201, "{body}");
    let (st, body) = post(&format!("{a}/services/public/routes"), json!({"paths": ["/signed-out"]})).await;
    assert_eq!(st, 201, "{body}");
    format!("{}/signed-out", env.gw.proxy)
}

/// The old session cookie, replayed after logout, opens nothing: the gateway answers (401, or a
/// redirect to the IdP to sign in anew), and the upstream never does.
pub async fn assert_refused(url: &str, cookie: &str, issuer: &str) {
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(url)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let location = resp.headers().get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let body = resp.text().await.unwrap();
    assert!(
        status == 401 || (status == 302 && location.starts_with(&format!("{issuer}/"))),
        "the old cookie is refused: {status} {location} {body}"
    );
    let echoed = serde_json::from_str::<Value>(&body).ok().and_then(|v| v.get("headers").cloned());
    assert!(echoed.is_none(), "the upstream was not called: {body}");
}

/// RP-initiated logout in a browser: the gateway ends the session and sends the browser to the
/// IdP's end-session endpoint, which ends its login session and sends it back to
/// `logout_redirect_uri`. The old cookie opens nothing, and the next visit needs the form again.
#[tokio::test]
async fn logging_out_goes_through_the_idp_and_back_and_the_old_cookie_is_refused() {
    let env = kong_example_at_the_dev_idp(json!({})).await;
    let signed_out = signed_out_page(&env).await;
    env.patch(json!({
        "logout_uri_suffix": "/logout",
        "logout_methods": ["GET", "POST"],
        "logout_redirect_uri": [signed_out],
    }))
    .await;
    env.dev(
        "clients",
        json!({"client_id": "gatehouse", "client_secret": "gatehouse-secret", "post_logout_redirect_uris": [signed_out]}),
    )
    .await;
    let page = page(&env);
    let browser = Browser::start().await;

    sign_in_at_the_dev_idp(&browser, &env, &page).await;
    let old = browser.cookie_header().await;
    assert!(has_cookie(&old, "session"), "{old}");
    let before = env.calls().await;

    browser.goto(&format!("{}/api/logout", env.gw.proxy)).await;
    let back = browser.wait_for_url(&signed_out).await;
    assert_eq!(back, signed_out, "back at logout_redirect_uri, no state was sent");
    let echo = browser.json().await;
    assert_eq!(echo["method"], "GET", "the upstream's page, not the plugin's: {echo}");
    assert!(echo["headers"].get("Authorization").is_none(), "no longer signed in: {echo}");
    assert_eq!(count(&env.calls().await, "logout") - count(&before, "logout"), 1, "through the IdP's end session");
    assert!(!has_cookie(&browser.cookie_header().await, "session"), "the browser's session cookie is gone");

    assert_refused(&page, &old, &env.issuer).await;

    // The IdP's login session ended too: the next visit shows the form, not the page.
    browser.goto(&page).await;
    browser.find("input[name=username]").await;
    assert!(browser.url().await.starts_with(&format!("{}/authorize?", env.issuer)));
    browser.close().await;
}

/// The person cancels at the IdP: the IdP answers `access_denied` with the flow's state, and the
/// gateway answers 401 as Kong does, with no session made.
#[tokio::test]
async fn cancelling_at_the_idp_is_answered_401_with_no_session() {
    let env = kong_example_at_the_dev_idp(json!({})).await;
    let page = page(&env);
    let browser = Browser::start().await;

    browser.goto(&page).await;
    browser.click("a#cancel").await;
    // form_post: the answer is the gateway's to the IdP's POST, at the callback (the page's path).
    let at = browser.wait_for_url(&format!("{}/api/anything", env.gw.proxy)).await;
    assert!(!at.contains("hello=world"), "not the page: {at}");
    let deadline = tokio::time::Instant::now() + WAIT;
    let answer = loop {
        let v = browser.json().await;
        if !v.is_null() || tokio::time::Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(answer, json!({"message": "Unauthorized"}));
    assert!(!has_cookie(&browser.cookie_header().await, "session"), "no session cookie");
    let calls = env.calls().await;
    assert_eq!(count(&calls, "token"), 0, "nothing exchanged: {calls}");
    browser.close().await;
}

/// The README's browser walkthrough: `gatehouse dev` (on free ports here), then a browser opens
/// the proxy at `localhost`. The seed plugin has Kong's defaults, whose `auth_methods` include
/// `authorization_code`: the dev IdP's form, john / doe, and back at the gateway, which proxies
/// the callback (`login_action: upstream`) without its code, state and iss.
#[tokio::test]
async fn the_readme_browser_walkthrough_signs_in_at_gatehouse_dev() {
    let dir = tempdir();
    let data = dir.path().join("dev");
    let dev = super::util::Proc::spawn(
        &[
            "dev",
            "--data-dir",
            data.to_str().unwrap(),
            "--proxy-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--idp-listen",
            "127.0.0.1:0",
            "--echo-listen",
            "127.0.0.1:0",
        ],
        &[],
        &dir.path().join("dev.log"),
    );
    let [proxy, _admin, idp, _echo] = &dev.urls[..] else { panic!("four URLs in the ready line: {:?}", dev.urls) };
    let home = format!("{}/", proxy.replace("127.0.0.1", "localhost"));
    let browser = Browser::start().await;

    browser.goto(&home).await;
    browser.find("input[name=username]").await;
    assert!(browser.url().await.starts_with(&format!("{idp}/authorize?")), "at the dev IdP's form");
    browser.fill("input[name=username]", "john").await;
    browser.fill("input[name=password]", "doe").await;
    browser.click("button[type=submit]").await;

    let landed = browser.wait_for_url(&home).await;
    assert!(query_param(&landed, "code").is_some(), "the callback is the page itself: {landed}");
    let echo = browser.json().await;
    assert_eq!(echo["args"], json!({}), "code, state and iss stay at the gateway: {echo}");
    assert_eq!(upstream_claims(&echo)["preferred_username"], "john", "{echo}");
    // Opening the home page again rides on the session.
    browser.goto(&home).await;
    assert_eq!(upstream_claims(&browser.json().await)["preferred_username"], "john");
    assert_eq!(browser.url().await, home);
    browser.close().await;
}
