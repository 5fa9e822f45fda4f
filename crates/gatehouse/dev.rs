//! `gatehouse dev`: the whole thing in one process, for trying Gatehouse and for the docs'
//! walkthrough. The gateway runs as `start` would (SQLite store in a local directory), next to the
//! development IdP and the echo upstream, with a service, a route and an `openid-connect` plugin
//! created on first start under the ids Kong's documentation uses, so its commands work as written.

use crate::cli::{Database, DevArgs, Settings};
use crate::{init_logging, launch, stop_signal, stopped};
use anyhow::{Context, bail};
use axum::body::Body;
use http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::ExitCode;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt as _;

/// The service id in Kong's headers page.
pub const SERVICE_ID: &str = "5fa9e468-0007-4d7e-9aeb-49ca9edd6ccd";
/// The plugin id in Kong's headers page.
pub const PLUGIN_ID: &str = "5f35b796-ced6-4c00-9b2a-90eef745f4f9";
/// The route's id (any fixed one, so a restart finds it).
pub const ROUTE_ID: &str = "9b0c5e71-6c37-4b52-8f0e-2a1d3c4e5f60";

pub async fn dev(args: DevArgs) -> anyhow::Result<ExitCode> {
    init_logging(args.log_level.as_deref().unwrap_or("info"), false);
    let data_dir = args.data_dir.clone().unwrap_or_else(|| ".gatehouse-dev".into());
    if args.reset && data_dir.exists() {
        std::fs::remove_dir_all(&data_dir).with_context(|| format!("cannot reset {}", data_dir.display()))?;
    }
    let bind = |addr: SocketAddr, what: &'static str| async move {
        TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} for the {what}"))
    };
    let idp_listener = bind(args.idp_listen, "development IdP").await?;
    let echo_listener = bind(args.echo_listen, "echo upstream").await?;
    let idp_url = format!("http://{}", idp_listener.local_addr()?);
    let echo_url = format!("http://{}", echo_listener.local_addr()?);

    let (stop_tx, stop_rx) = watch::channel(false);
    let idp = tokio::spawn(gatehouse_devtools::serve_idp(
        idp_listener,
        gatehouse_devtools::IdpConfig::default(),
        stopped(stop_rx.clone()),
    ));
    let echo = tokio::spawn(gatehouse_devtools::serve_echo(echo_listener, stopped(stop_rx)));

    let settings = Settings {
        proxy_listen: args.proxy_listen,
        admin_listen: args.admin_listen,
        database: Database::Sqlite,
        data_dir: data_dir.clone(),
        declarative_config: None,
        log_level: args.log_level.clone().unwrap_or_else(|| "info".into()),
        log_json: false,
        admin_allowed_origins: Vec::new(),
        admin_max_body_size: gatehouse_admin::Guard::default().max_body,
        client: Default::default(),
        idp_max_response_size: gatehouse_core::plugin::IdpMaxResponseSize::default().0,
        real_ip: Default::default(),
    };
    let gw = launch(&settings).await?;
    let created = seed(&gw.admin, &idp_url, &echo_url).await?;

    let proxy = gw.proxy_addr;
    let admin = gw.admin_addr;
    println!("gatehouse dev ready: proxy=http://{proxy} admin=http://{admin} idp={idp_url} echo={echo_url}");
    println!();
    println!("  gateway          http://{proxy}  (Admin API http://{admin}, data in {})", data_dir.display());
    println!("  OpenID Provider  {idp_url}  (development only: user john / doe, client gatehouse / gatehouse-secret)");
    println!("  echo upstream    {echo_url}");
    println!(
        "  {} service {SERVICE_ID} → echo, route / and openid-connect plugin {PLUGIN_ID}",
        if created { "created" } else { "kept" }
    );
    println!();
    // The browser walkthrough: the seed plugin's default auth_methods include authorization_code.
    // `localhost` keeps the gateway's cookies apart from the IdP's (127.0.0.1) in the browser.
    let browse = if proxy.ip().is_loopback() || proxy.ip().is_unspecified() {
        format!("http://localhost:{}", proxy.port())
    } else {
        format!("http://{proxy}")
    };
    println!("Open {browse} in a browser and sign in as john / doe, or try (HTTPie):");
    println!("  http -f patch :8001/plugins/{PLUGIN_ID} \\");
    println!("    config.auth_methods=password config.upstream_headers_claims=preferred_username \\");
    println!("    config.upstream_headers_names=authenticated_user");
    println!("  http -a john:doe :8000");
    println!();
    println!("Ctrl-C stops everything; `gatehouse dev --reset` starts from scratch.");

    stop_signal().await;
    let _ = stop_tx.send(true);
    gw.shutdown().await?;
    idp.await.context("idp task panicked")??;
    echo.await.context("echo task panicked")??;
    Ok(ExitCode::SUCCESS)
}

/// Calls the Admin API in-process (the same validation as over HTTP).
async fn call(
    admin: &axum::Router,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut req = Request::builder().method(method).uri(path);
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(serde_json::to_vec(&b)?)
        }
        None => Body::empty(),
    };
    let resp = admin.clone().oneshot(req.body(body)?).await?;
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await?;
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
}

/// Creates the walkthrough's service, route and plugin unless the plugin already exists (a
/// restart keeps whatever the user changed). Returns whether it created them.
async fn seed(admin: &axum::Router, idp: &str, echo: &str) -> anyhow::Result<bool> {
    let (st, _) = call(admin, Method::GET, &format!("/plugins/{PLUGIN_ID}"), None).await?;
    if st == StatusCode::OK {
        return Ok(false);
    }
    let steps = [
        (format!("/services/{SERVICE_ID}"), json!({"name": "echo", "url": echo})),
        (format!("/routes/{ROUTE_ID}"), json!({"name": "echo", "paths": ["/"], "service": {"id": SERVICE_ID}})),
        (
            format!("/plugins/{PLUGIN_ID}"),
            json!({"name": "openid-connect", "service": {"id": SERVICE_ID},
                "config": {"issuer": idp, "client_id": ["gatehouse"], "client_secret": ["gatehouse-secret"]}}),
        ),
    ];
    for (path, body) in steps {
        let (st, answer) = call(admin, Method::PUT, &path, Some(body)).await?;
        if !st.is_success() {
            bail!("cannot create {path}: {st} {answer}");
        }
    }
    Ok(true)
}
