//! The `gatehouse` binary: settings → store → snapshot → proxy and Admin API; plus `echo` and
//! `config check`. `anyhow` lives here only; the libraries return typed errors.

mod cli;
mod dev;

use anyhow::Context;
use clap::Parser;
use cli::{Cli, Command, ConfigCommand, Database, Settings};
use gatehouse_core::plugin::{BuildEnv, Registry};
use gatehouse_core::secrets::NodeSecrets;
use gatehouse_core::snapshot::SnapshotHandle;
use gatehouse_core::stats::ProxyStats;
use gatehouse_jose::own_keys::OwnKeys;
use gatehouse_store::Store;
use gatehouse_store::reload::Reloader;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// mimalloc: the proxy allocates small, short-lived buffers on every request from several
/// threads; glibc malloc spent ~14% of the gateway's CPU on them (perf, password scenario).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    no_transparent_huge_pages();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gatehouse: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Start(args) => start(Settings::resolve(*args)?).await,
            Command::Echo(args) => echo(args).await,
            Command::Idp(args) => idp(args).await,
            Command::Dev(args) => dev::dev(args).await,
            Command::Config(ConfigCommand::Check { file }) => config_check(&file),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gatehouse: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// mimalloc asks for transparent huge pages on its arenas (`MADV_HUGEPAGE`), so a 2 MiB page is
/// resident as soon as one byte of it is touched: under load that was 35 of the proxy's 62 MiB
/// of RSS. The proxy's working set is small and its allocations short-lived, so it gains little
/// from huge pages; the memory a container limit sees matters more. Turned off for this process
/// before the runtime starts; the kernel then maps 4 KiB pages even where mimalloc asked.
fn no_transparent_huge_pages() {
    // PR_SET_THP_DISABLE: for the whole process, not only this thread.
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("gatehouse: cannot turn transparent huge pages off ({e}); memory use will be higher");
    }
}

fn init_logging(level: &str, json: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a terminal: log files and CI output stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Every plugin kind this build knows.
fn registry() -> Registry {
    let mut reg = Registry::default();
    gatehouse_plugins::register_bundled(&mut reg);
    reg.register(Arc::new(gatehouse_oidc::OidcFactory));
    reg
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Opens the store and builds the registry. Without a database the issuer secrets and the key
/// set live in memory, new per process: db-less clusters set `session_secret` in the plugin.
async fn open_store(s: &Settings) -> anyhow::Result<(Arc<dyn Store>, String, Registry)> {
    match s.database {
        Database::Sqlite => {
            let store = gatehouse_store::sqlite::SqliteStore::open(&s.data_dir)
                .await
                .with_context(|| format!("cannot open the SQLite store in {}", s.data_dir.display()))?;
            let node_id = store.setting_or_insert("node_id", &uuid_v4()).await?;
            Ok((Arc::new(store), node_id, registry()))
        }
        Database::Off => {
            let reg = registry();
            let reg = &reg;
            let set = match &s.declarative_config {
                Some(path) => {
                    let text =
                        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
                    let doc = gatehouse_store::declarative::parse(&text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    gatehouse_store::declarative::load(&doc, reg, now()).map_err(|errs| {
                        let lines: Vec<String> = errs.lines().collect();
                        anyhow::anyhow!("{} is invalid:\n  {}", path.display(), lines.join("\n  "))
                    })?
                }
                None => Default::default(),
            };
            Ok((Arc::new(gatehouse_store::memory::MemoryStore::new(set)), uuid_v4(), reg.clone()))
        }
    }
}

fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn start(s: Settings) -> anyhow::Result<ExitCode> {
    init_logging(&s.log_level, s.log_json);
    let gw = launch(&s).await?;
    // Tests and scripts read this line to learn the bound ports.
    println!("gatehouse ready: proxy=http://{} admin=http://{}", gw.proxy_addr, gw.admin_addr);
    stop_signal().await;
    gw.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

/// A running gateway: its bound addresses, its Admin API (callable in-process), and its tasks.
pub(crate) struct Running {
    pub proxy_addr: std::net::SocketAddr,
    pub admin_addr: std::net::SocketAddr,
    pub admin: axum::Router,
    stop_tx: watch::Sender<bool>,
    proxy_threads: Vec<std::thread::JoinHandle<std::io::Result<()>>>,
    admin_task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops accepting, drains, and waits for both servers.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        tracing::info!("shutting down");
        let _ = self.stop_tx.send(true);
        let threads = self.proxy_threads;
        let proxies = tokio::task::spawn_blocking(move || {
            threads
                .into_iter()
                .map(|t| t.join().map_err(|_| anyhow::anyhow!("a proxy thread panicked"))?.map_err(Into::into))
                .collect::<anyhow::Result<Vec<()>>>()
        });
        let (p, a) = tokio::join!(proxies, self.admin_task);
        p.context("proxy threads")??;
        a.context("admin task panicked")??;
        Ok(())
    }
}

/// The node's issuer records and key set, from the store; the key set is made (and stored) on
/// the first start.
async fn node_secrets(store: &dyn Store) -> anyhow::Result<NodeSecrets> {
    let records = store.issuers().await.context("cannot read the issuer records")?;
    let keys = match store.own_keys().await.context("cannot read the node's key set")? {
        Some(k) => k,
        None => {
            let made = tokio::task::spawn_blocking(|| OwnKeys::generate().and_then(|k| k.to_stored()))
                .await
                .context("key generation")?
                .context("cannot make the node's key set")?;
            store.set_own_keys(&made).await.context("cannot store the node's key set")?;
            tracing::info!("made the node's key set (GET /openid-connect/jwks)");
            made
        }
    };
    if let Err(e) = OwnKeys::from_stored(&keys) {
        // Kept as it is (not replaced): private_key_jwt without client_jwk fails until it is rotated.
        tracing::error!(error = %e, "the stored key set does not load; DELETE /openid-connect/jwks makes a new one");
    }
    Ok(NodeSecrets::load(records, Some(keys)))
}

/// Opens the store, compiles the config, binds both listeners and starts serving.
pub(crate) async fn launch(s: &Settings) -> anyhow::Result<Running> {
    let (store, node_id, reg) = open_store(s).await?;
    let handle: SnapshotHandle = Default::default();
    let env = BuildEnv {
        idp_max_response_size: gatehouse_core::plugin::IdpMaxResponseSize(s.idp_max_response_size),
        secrets: Arc::new(node_secrets(store.as_ref()).await?),
    };
    let reloader = Arc::new(Reloader::new(store.clone(), reg.clone(), env, handle.clone()));
    reloader.reload().await.context("cannot compile the stored configuration")?;

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let proxy_listeners = gatehouse_proxy::bind_reuseport(s.proxy_listen, threads)
        .with_context(|| format!("cannot listen on {}", s.proxy_listen))?;
    let admin_listener =
        TcpListener::bind(s.admin_listen).await.with_context(|| format!("cannot listen on {}", s.admin_listen))?;
    let proxy_addr = proxy_listeners[0].local_addr()?;
    let admin_addr = admin_listener.local_addr()?;

    let stats = Arc::new(ProxyStats::default());
    let admin_state = Arc::new(gatehouse_admin::AdminState {
        store: store.clone(),
        registry: reg,
        reloader: reloader.clone(),
        stats: stats.clone(),
        node_id,
        configuration: s.to_json(),
    });
    // nginx's client timeouts apply to every server, Kong's Admin API included.
    let guard = gatehouse_admin::Guard {
        allowed_origins: s.admin_allowed_origins.clone(),
        max_body: s.admin_max_body_size,
        body_timeout: s.client.body_timeout,
    };
    let admin = gatehouse_admin::router_with(admin_state, guard);
    let (stop_tx, stop_rx) = watch::channel(false);
    let proxy_threads = gatehouse_proxy::serve_threads(
        proxy_listeners,
        handle,
        stats,
        s.client.clone(),
        s.real_ip.clone(),
        stop_rx.clone(),
    )?;
    let admin_task =
        tokio::spawn(gatehouse_admin::serve(admin_listener, admin.clone(), s.client.header_timeout, stopped(stop_rx)));
    tracing::info!(proxy = %proxy_addr, admin = %admin_addr, database = ?s.database, "gatehouse started");
    Ok(Running { proxy_addr, admin_addr, admin, stop_tx, proxy_threads, admin_task })
}

/// Resolves once `rx` turns true.
pub(crate) async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

async fn echo(args: cli::EchoArgs) -> anyhow::Result<ExitCode> {
    init_logging(args.log_level.as_deref().unwrap_or("info"), false);
    let addr = args.listen.unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 9090)));
    let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    println!("gatehouse echo ready: http://{}", listener.local_addr()?);
    gatehouse_devtools::serve_echo(listener, stop_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn idp(args: cli::IdpArgs) -> anyhow::Result<ExitCode> {
    init_logging(args.log_level.as_deref().unwrap_or("info"), false);
    let mut config = match &args.users {
        Some(path) => gatehouse_devtools::IdpConfig::from_file(path)?,
        None => gatehouse_devtools::IdpConfig::default(),
    };
    if args.issuer.is_some() {
        config.issuer = args.issuer;
    }
    config.validate()?;
    let addr = args.listen.unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 9000)));
    let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    println!("gatehouse idp ready: http://{}", listener.local_addr()?);
    gatehouse_devtools::serve_idp(listener, config, stop_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

fn config_check(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let doc = match gatehouse_store::declarative::parse(&text) {
        Ok(d) => d,
        Err(e) => {
            println!("{}: {e}", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let reg = registry();
    match gatehouse_store::declarative::load(&doc, &reg, now()) {
        Ok(set) => {
            // Compile as `start` would, so what only the routing table or a build can refuse is
            // reported here too, not at the next start.
            match gatehouse_core::snapshot::compile(&set, &reg, &BuildEnv::default(), None, 1) {
                Ok(snapshot) if snapshot.broken.is_empty() => {}
                Ok(snapshot) => {
                    for b in &snapshot.broken {
                        println!("{}: plugin {} ({}): {}", file.display(), b.name, b.id, b.reason);
                    }
                    return Ok(ExitCode::FAILURE);
                }
                Err(e) => {
                    println!("{}: {e}", file.display());
                    return Ok(ExitCode::FAILURE);
                }
            }
            println!(
                "{}: ok ({} services, {} routes, {} consumers, {} plugins)",
                file.display(),
                set.services.len(),
                set.routes.len(),
                set.consumers.len(),
                set.plugins.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errs) => {
            for line in errs.lines() {
                println!("{}: {line}", file.display());
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
