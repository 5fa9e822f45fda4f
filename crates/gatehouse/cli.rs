//! Command line, environment and config file → validated settings.
//!
//! Every setting is a flag, a `GATEHOUSE_*` environment variable and a key of the TOML file given
//! with `--conf`, in that order of precedence, then the default.

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Gatehouse: an OpenID Connect API gateway, drop-in for Kong's openid-connect plugin.
#[derive(Parser, Debug)]
#[command(name = "gatehouse", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway: the proxy and the Admin API.
    Start(Box<StartArgs>),
    /// Run an echo upstream for trying things and for tests (answers like httpbin's /anything).
    Echo(EchoArgs),
    /// Run the development OpenID Provider, for development and tests only (never in production).
    ///
    /// Built-in users and clients, in-memory keys and tokens, and /_dev/ knobs that let anyone mint tokens.
    /// See docs/dev-idp.md.
    Idp(IdpArgs),
    /// Try Gatehouse in one command: the gateway (:8000, Admin API :8001), the development IdP
    /// (:9000, user john/doe), the echo upstream (:9090), and a service, a route and an
    /// openid-connect plugin ready for the docs' examples. For development only.
    Dev(DevArgs),
    /// Work with declarative configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate a declarative file (kong.yml, `_format_version: "3.0"`) and print every error with its path.
    Check {
        /// The file to check.
        file: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct EchoArgs {
    /// Address to listen on. [default: 127.0.0.1:9090]
    #[arg(long, env = "GATEHOUSE_ECHO_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Log level (error, warn, info, debug, trace). [default: info]
    #[arg(long, env = "GATEHOUSE_LOG_LEVEL")]
    pub log_level: Option<String>,
}

/// Options of the development OpenID Provider (development and tests only).
#[derive(Args, Debug)]
pub struct IdpArgs {
    /// Address to listen on. [default: 127.0.0.1:9000]
    #[arg(long, env = "GATEHOUSE_IDP_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Issuer URL. [default: http://<bound address>, with the real port when listening on port 0]
    #[arg(long, env = "GATEHOUSE_IDP_ISSUER")]
    pub issuer: Option<String>,
    /// Users and clients file (YAML, or JSON when named *.json) replacing the built-in john/doe, jane/roe.
    #[arg(long, env = "GATEHOUSE_IDP_USERS")]
    pub users: Option<PathBuf>,
    /// Log level (error, warn, info, debug, trace). [default: info]
    #[arg(long, env = "GATEHOUSE_LOG_LEVEL")]
    pub log_level: Option<String>,
}

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Directory of the SQLite store; kept across restarts. [default: ./.gatehouse-dev]
    #[arg(long, env = "GATEHOUSE_DEV_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Start from scratch: delete the data directory first.
    #[arg(long)]
    pub reset: bool,
    /// Proxy listen address.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub proxy_listen: SocketAddr,
    /// Admin API listen address.
    #[arg(long, default_value = "127.0.0.1:8001")]
    pub admin_listen: SocketAddr,
    /// Development IdP listen address.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub idp_listen: SocketAddr,
    /// Echo upstream listen address.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub echo_listen: SocketAddr,
    /// Log level (error, warn, info, debug, trace) or a tracing filter. [default: info]
    #[arg(long, env = "GATEHOUSE_LOG_LEVEL")]
    pub log_level: Option<String>,
}

#[derive(Args, Debug, Default)]
pub struct StartArgs {
    /// TOML file with any of the settings below (keys as the flags, with `_`: `proxy_listen = "..."`).
    #[arg(long, env = "GATEHOUSE_CONF")]
    pub conf: Option<PathBuf>,
    /// Proxy listen address. [default: 127.0.0.1:8000]
    #[arg(long, env = "GATEHOUSE_PROXY_LISTEN")]
    pub proxy_listen: Option<SocketAddr>,
    /// Admin API listen address. [default: 127.0.0.1:8001]
    #[arg(long, env = "GATEHOUSE_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// Where configuration is stored: `sqlite` (embedded file in the data directory) or `off`
    /// (declarative only; Admin API writes answer 405). `postgres` comes with clustering. [default: sqlite]
    #[arg(long, env = "GATEHOUSE_DATABASE")]
    pub database: Option<String>,
    /// Directory holding the SQLite file. [default: ./.gatehouse]
    #[arg(long, env = "GATEHOUSE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Declarative file (kong.yml) loaded when `database = off`.
    #[arg(long, env = "GATEHOUSE_DECLARATIVE_CONFIG")]
    pub declarative_config: Option<PathBuf>,
    /// Log level (error, warn, info, debug, trace) or a tracing filter. [default: info]
    #[arg(long, env = "GATEHOUSE_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Log format: `text` or `json`. [default: text]
    #[arg(long, env = "GATEHOUSE_LOG_FORMAT")]
    pub log_format: Option<String>,

    // --- Admin API boundary ---
    /// Origins of admin GUIs allowed to write to the Admin API from a browser, comma-separated
    /// (`https://gui.example.com,http://localhost:8002`). Other pages' writes get 403. [default: none]
    #[arg(long, env = "GATEHOUSE_ADMIN_ALLOWED_ORIGINS")]
    pub admin_allowed_origins: Option<String>,
    /// Largest Admin API request body (nginx syntax: `512k`, `10m`); larger ones get 413. [default: 10m]
    #[arg(long, env = "GATEHOUSE_ADMIN_MAX_BODY_SIZE")]
    pub admin_max_body_size: Option<String>,
    // Client side of the proxy: body sizes, timeouts, connection cap (nginx's names).
    /// Largest request body (nginx size: 512, 8k, 1m); larger ones get 413. `0` is unlimited. [default: 0]
    #[arg(long, env = "GATEHOUSE_CLIENT_MAX_BODY_SIZE")]
    pub client_max_body_size: Option<String>,
    /// Most a plugin's body read may buffer (form and JSON bodies only); larger ones get 413. [default: 1m]
    #[arg(long, env = "GATEHOUSE_CLIENT_BODY_BUFFER_SIZE")]
    pub client_body_buffer_size: Option<String>,
    /// Seconds a client has to send a whole request head. [default: 60]
    #[arg(long, env = "GATEHOUSE_CLIENT_HEADER_TIMEOUT")]
    pub client_header_timeout: Option<String>,
    /// Longest wait in seconds between two reads of a request body. [default: 60]
    #[arg(long, env = "GATEHOUSE_CLIENT_BODY_TIMEOUT")]
    pub client_body_timeout: Option<String>,
    /// Seconds a client connection may stay idle between requests. [default: 75]
    #[arg(long, env = "GATEHOUSE_KEEPALIVE_TIMEOUT")]
    pub keepalive_timeout: Option<String>,
    /// Open client connections across the proxy; more are closed at once. [default: 16384]
    #[arg(long, env = "GATEHOUSE_CLIENT_MAX_CONNECTIONS")]
    pub client_max_connections: Option<String>,
    // --- identity provider calls (openid-connect) ---
    /// The most bytes read of any identity provider answer (discovery, JWKS, token, introspection,
    /// userinfo); a bigger one is an IdP failure (502). nginx size syntax, more than 0. [default: 1m]
    #[arg(long, env = "GATEHOUSE_IDP_MAX_RESPONSE_SIZE")]
    pub idp_max_response_size: Option<String>,
    // --- the client behind a proxy (Kong's names) ---
    /// Peers believed about the client behind them: comma-separated IPv4/IPv6 addresses and CIDR
    /// blocks (`0.0.0.0/0,::/0` is everyone; `unix:` is accepted). Their `X-Forwarded-*` headers
    /// go upstream as sent, their `X-Forwarded-Proto: https` makes a request https, and their
    /// `real_ip_header` names the client. [default: none]
    #[arg(long, env = "GATEHOUSE_TRUSTED_IPS")]
    pub trusted_ips: Option<String>,
    /// The header a trusted peer puts the client's address in (`X-Forwarded-For`, or any header
    /// name). [default: X-Real-IP]
    #[arg(long, env = "GATEHOUSE_REAL_IP_HEADER")]
    pub real_ip_header: Option<String>,
    /// `on`: the client is the rightmost untrusted address of `real_ip_header`, not its rightmost
    /// one. [default: off]
    #[arg(long, env = "GATEHOUSE_REAL_IP_RECURSIVE")]
    pub real_ip_recursive: Option<String>,
}

/// Keys of the `--conf` TOML file.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    proxy_listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    database: Option<String>,
    data_dir: Option<PathBuf>,
    declarative_config: Option<PathBuf>,
    log_level: Option<String>,
    log_format: Option<String>,
    // Admin API boundary.
    admin_allowed_origins: Option<String>,
    admin_max_body_size: Option<String>,
    // Client side of the proxy.
    client_max_body_size: Option<FileValue>,
    client_body_buffer_size: Option<FileValue>,
    client_header_timeout: Option<FileValue>,
    client_body_timeout: Option<FileValue>,
    keepalive_timeout: Option<FileValue>,
    client_max_connections: Option<FileValue>,
    // identity provider calls (openid-connect)
    idp_max_response_size: Option<String>,
    // The client behind a proxy.
    trusted_ips: Option<FileList>,
    real_ip_header: Option<String>,
    real_ip_recursive: Option<FileValue>,
}

/// A TOML list written as an array (`["10.0.0.0/8", "::1"]`) or as Kong's comma-separated text.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum FileList {
    Items(Vec<String>),
    Text(String),
}

impl FileList {
    fn text(self) -> String {
        match self {
            FileList::Items(items) => items.join(","),
            FileList::Text(t) => t,
        }
    }
}

/// A TOML value written as a number (`60`, `0.5`) or a string (`"1m"`), read as its text.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum FileValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl FileValue {
    fn text(self) -> String {
        match self {
            FileValue::Int(n) => n.to_string(),
            FileValue::Float(x) => x.to_string(),
            FileValue::Bool(b) => b.to_string(),
            FileValue::Text(t) => t,
        }
    }
}

/// Flag or env, else the file's value, else `default`, as text for the parsers.
fn pick(arg: Option<String>, file: Option<FileValue>, default: &str) -> String {
    arg.or_else(|| file.map(FileValue::text)).unwrap_or_else(|| default.to_owned())
}

/// The client side's bounds from their settings, each checked (`name` in the errors).
fn client_limits(args: &mut StartArgs, file: &mut FileSettings) -> anyhow::Result<gatehouse_proxy::ClientLimits> {
    let size = |name: &str, text: String| parse_size(&text).with_context(|| format!("invalid {name}"));
    // A zero timeout would close every connection at once: these have no "off".
    let seconds = |name: &str, text: String| -> anyhow::Result<std::time::Duration> {
        let d = parse_seconds(&text).with_context(|| format!("invalid {name}"))?;
        if d.is_zero() {
            bail!("invalid {name} '{text}': expected seconds above 0");
        }
        Ok(d)
    };
    let max_body =
        size("client_max_body_size", pick(args.client_max_body_size.take(), file.client_max_body_size.take(), "0"))?;
    let buffer = size(
        "client_body_buffer_size",
        pick(args.client_body_buffer_size.take(), file.client_body_buffer_size.take(), "1m"),
    )?;
    let conns_text = pick(args.client_max_connections.take(), file.client_max_connections.take(), "16384");
    let max_connections = match conns_text.trim().parse::<usize>() {
        Ok(n) if n > 0 => n,
        _ => bail!("invalid client_max_connections '{conns_text}': expected a whole number above 0"),
    };
    Ok(gatehouse_proxy::ClientLimits {
        max_body_size: (max_body > 0).then_some(max_body),
        body_buffer_size: buffer,
        header_timeout: seconds(
            "client_header_timeout",
            pick(args.client_header_timeout.take(), file.client_header_timeout.take(), "60"),
        )?,
        body_timeout: seconds(
            "client_body_timeout",
            pick(args.client_body_timeout.take(), file.client_body_timeout.take(), "60"),
        )?,
        keepalive_timeout: seconds(
            "keepalive_timeout",
            pick(args.keepalive_timeout.take(), file.keepalive_timeout.take(), "75"),
        )?,
        max_connections,
    })
}

/// Whom the proxy believes about the client behind it, from `trusted_ips`, `real_ip_header` and
/// `real_ip_recursive` (Kong's defaults: nobody, `X-Real-IP`, off).
fn real_ip(args: &mut StartArgs, file: &mut FileSettings) -> anyhow::Result<gatehouse_proxy::RealIp> {
    use gatehouse_proxy::{RealIp, TrustedIps};
    let trusted = match args.trusted_ips.take().or_else(|| file.trusted_ips.take().map(FileList::text)) {
        Some(list) => TrustedIps::parse(&list)?,
        None => TrustedIps::default(),
    };
    let header = match args.real_ip_header.take().or_else(|| file.real_ip_header.take()) {
        Some(text) => RealIp::parse_header(&text)?,
        None => RealIp::default().header,
    };
    let recursive =
        RealIp::parse_recursive(&pick(args.real_ip_recursive.take(), file.real_ip_recursive.take(), "off"))?;
    Ok(RealIp { trusted, header, recursive })
}

/// Where configuration lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite,
    Off,
}

/// The effective settings of `gatehouse start`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub proxy_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub database: Database,
    pub data_dir: PathBuf,
    pub declarative_config: Option<PathBuf>,
    pub log_level: String,
    pub log_json: bool,
    // Admin API boundary.
    pub admin_allowed_origins: Vec<String>,
    pub admin_max_body_size: usize,
    /// The proxy's client-side bounds (body sizes, timeouts, connection cap).
    pub client: gatehouse_proxy::ClientLimits,
    // identity provider calls (openid-connect)
    pub idp_max_response_size: u64,
    /// Whom the proxy believes about the client behind it (`trusted_ips`, `real_ip_header`,
    /// `real_ip_recursive`).
    pub real_ip: gatehouse_proxy::RealIp,
}

impl Settings {
    /// Resolves flag > environment > file > default, and validates.
    pub fn resolve(mut args: StartArgs) -> anyhow::Result<Settings> {
        let mut file: FileSettings = match &args.conf {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("invalid settings file {}", p.display()))?
            }
            None => FileSettings::default(),
        };
        let client = client_limits(&mut args, &mut file)?;
        let real_ip = real_ip(&mut args, &mut file)?;
        let database = match args.database.or(file.database).as_deref().unwrap_or("sqlite") {
            "sqlite" => Database::Sqlite,
            "off" => Database::Off,
            "postgres" => bail!("database = postgres is not available yet; use sqlite or off"),
            other => bail!("invalid database '{other}': expected sqlite or off"),
        };
        let log_format = args.log_format.or(file.log_format).unwrap_or_else(|| "text".into());
        let log_json = match log_format.as_str() {
            "text" => false,
            "json" => true,
            other => bail!("invalid log format '{other}': expected text or json"),
        };
        let admin_allowed_origins = match args.admin_allowed_origins.or(file.admin_allowed_origins) {
            Some(list) => list
                .split(',')
                .filter(|o| !o.trim().is_empty())
                .map(|o| gatehouse_admin::parse_origin(o).context("invalid admin_allowed_origins"))
                .collect::<anyhow::Result<Vec<String>>>()?,
            None => Vec::new(),
        };
        let admin_max_body_size = match args.admin_max_body_size.or(file.admin_max_body_size) {
            Some(text) => match parse_size(&text).context("invalid admin_max_body_size")? {
                0 => bail!("invalid admin_max_body_size '0': the Admin API needs a limit"),
                n => usize::try_from(n).context("invalid admin_max_body_size: too large")?,
            },
            None => gatehouse_admin::Guard::default().max_body,
        };
        // identity provider calls (openid-connect)
        let idp_max_response_size = match args.idp_max_response_size.or(file.idp_max_response_size) {
            Some(text) => match parse_size(&text).context("idp_max_response_size")? {
                0 => bail!("idp_max_response_size must be more than 0: IdP answers are always capped"),
                n => n,
            },
            None => gatehouse_core::plugin::IdpMaxResponseSize::default().0,
        };
        let defaults = |s: &str| -> SocketAddr { s.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0))) };
        Ok(Settings {
            proxy_listen: args.proxy_listen.or(file.proxy_listen).unwrap_or_else(|| defaults("127.0.0.1:8000")),
            admin_listen: args.admin_listen.or(file.admin_listen).unwrap_or_else(|| defaults("127.0.0.1:8001")),
            database,
            data_dir: args.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from(".gatehouse")),
            declarative_config: args.declarative_config.or(file.declarative_config),
            log_level: args.log_level.or(file.log_level).unwrap_or_else(|| "info".into()),
            log_json,
            admin_allowed_origins,
            admin_max_body_size,
            client,
            idp_max_response_size,
            real_ip,
        })
    }

    /// The settings as `GET /` shows them.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "proxy_listen": [self.proxy_listen.to_string()],
            "admin_listen": [self.admin_listen.to_string()],
            "database": match self.database { Database::Sqlite => "sqlite", Database::Off => "off" },
            "prefix": self.data_dir.display().to_string(),
            "declarative_config": self.declarative_config.as_ref().map(|p| p.display().to_string()),
            "log_level": self.log_level,
            "admin_allowed_origins": self.admin_allowed_origins,
            "admin_max_body_size": self.admin_max_body_size,
            "client_max_body_size": self.client.max_body_size.unwrap_or(0),
            "client_body_buffer_size": self.client.body_buffer_size,
            "client_header_timeout": self.client.header_timeout.as_secs_f64(),
            "client_body_timeout": self.client.body_timeout.as_secs_f64(),
            "keepalive_timeout": self.client.keepalive_timeout.as_secs_f64(),
            "client_max_connections": self.client.max_connections,
            "idp_max_response_size": self.idp_max_response_size,
            "trusted_ips": self.real_ip.trusted.entries(),
            "real_ip_header": self.real_ip.header.as_str(),
            "real_ip_recursive": if self.real_ip.recursive { "on" } else { "off" },
        })
    }
}

/// A size in nginx's syntax: bytes, or a number with `k` or `m` (`8k`, `1m`); `0` is zero bytes
/// (callers decide whether that means "unlimited", as nginx's `client_max_body_size 0` does).
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let (digits, unit) = match t.as_bytes().last() {
        Some(b'k' | b'K') => (&t[..t.len() - 1], 1024u64),
        Some(b'm' | b'M') => (&t[..t.len() - 1], 1024 * 1024),
        Some(b'g' | b'G') => (&t[..t.len() - 1], 1024 * 1024 * 1024),
        _ => (t, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        bail!("invalid size '{text}': expected bytes or a number with k, m or g (8k, 1m)");
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| anyhow::anyhow!("invalid size '{text}': too large"))
}

/// A duration in seconds, possibly fractional (`60`, `0.5`), at most one day. `0` is allowed;
/// callers decide whether it means "off".
pub fn parse_seconds(text: &str) -> anyhow::Result<std::time::Duration> {
    let t = text.trim();
    let secs: f64 = t.parse().map_err(|_| anyhow::anyhow!("invalid duration '{text}': expected seconds (60, 0.5)"))?;
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        bail!("invalid duration '{text}': expected seconds between 0 and 86400");
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_nginx_syntax_and_hostile_ones_are_refused() {
        assert_eq!(parse_size("0").unwrap(), 0);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("8k").unwrap(), 8192);
        assert_eq!(parse_size("1m").unwrap(), 1 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        for bad in ["", "k", "-1", "1.5m", "1t", "99999999999999999999", "18014398509481984k", " m"] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn durations_parse_as_seconds_and_hostile_ones_are_refused() {
        assert_eq!(parse_seconds("60").unwrap(), std::time::Duration::from_secs(60));
        assert_eq!(parse_seconds("0.5").unwrap(), std::time::Duration::from_millis(500));
        assert_eq!(parse_seconds("0").unwrap(), std::time::Duration::ZERO);
        for bad in ["", "-1", "NaN", "inf", "1e30", "86401", "ten"] {
            assert!(parse_seconds(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("g.toml");
        std::fs::write(&conf, "proxy_listen = \"127.0.0.1:1\"\nadmin_listen = \"127.0.0.1:2\"\ndatabase = \"off\"\n")
            .unwrap();
        let args =
            StartArgs { conf: Some(conf), proxy_listen: Some("127.0.0.1:3".parse().unwrap()), ..Default::default() };
        let s = Settings::resolve(args).unwrap();
        assert_eq!(s.proxy_listen.port(), 3);
        assert_eq!(s.admin_listen.port(), 2);
        assert_eq!(s.database, Database::Off);
        assert_eq!(s.log_level, "info");
    }

    #[test]
    fn admin_boundary_settings_resolve_and_hostile_values_are_refused() {
        let s = Settings::resolve(StartArgs::default()).unwrap();
        assert_eq!((s.admin_allowed_origins.len(), s.admin_max_body_size), (0, 10 << 20));
        let args = StartArgs {
            admin_allowed_origins: Some(" https://GUI.example.com/ , http://localhost:8002,".into()),
            admin_max_body_size: Some("512k".into()),
            ..Default::default()
        };
        let s = Settings::resolve(args).unwrap();
        assert_eq!(s.admin_allowed_origins, ["https://gui.example.com", "http://localhost:8002"]);
        assert_eq!(s.admin_max_body_size, 512 << 10);
        assert_eq!(s.to_json()["admin_allowed_origins"][0], "https://gui.example.com");
        for bad in ["*", "null", "gui.example.com", "https://x/admin"] {
            let args = StartArgs { admin_allowed_origins: Some(bad.into()), ..Default::default() };
            assert!(Settings::resolve(args).is_err(), "{bad:?}");
        }
        for bad in ["0", "-1", "ten", "99999999999999999999g"] {
            let args = StartArgs { admin_max_body_size: Some(bad.into()), ..Default::default() };
            assert!(Settings::resolve(args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn client_limits_default_to_nginx_and_come_from_flags_or_the_file() {
        let s = Settings::resolve(StartArgs::default()).unwrap();
        assert_eq!(s.client.max_body_size, None);
        assert_eq!(s.client.body_buffer_size, 1 << 20);
        assert_eq!(s.client.header_timeout, std::time::Duration::from_secs(60));
        assert_eq!(s.client.body_timeout, std::time::Duration::from_secs(60));
        assert_eq!(s.client.keepalive_timeout, std::time::Duration::from_secs(75));
        assert_eq!(s.client.max_connections, 16384);

        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("g.toml");
        std::fs::write(
            &conf,
            "client_max_body_size = \"8k\"\nclient_header_timeout = 0.5\nkeepalive_timeout = 3\n\
             client_max_connections = 10\nclient_body_buffer_size = 100\n",
        )
        .unwrap();
        let args = StartArgs { conf: Some(conf), client_body_timeout: Some("2".into()), ..Default::default() };
        let s = Settings::resolve(args).unwrap();
        assert_eq!(s.client.max_body_size, Some(8192));
        assert_eq!(s.client.body_buffer_size, 100);
        assert_eq!(s.client.header_timeout, std::time::Duration::from_millis(500));
        assert_eq!(s.client.body_timeout, std::time::Duration::from_secs(2));
        assert_eq!(s.client.keepalive_timeout, std::time::Duration::from_secs(3));
        assert_eq!(s.client.max_connections, 10);
        assert_eq!(s.to_json()["client_max_body_size"], 8192);
    }

    #[test]
    fn hostile_client_limits_are_refused_with_their_name() {
        type Set = fn(&mut StartArgs, String);
        let cases: [(&str, Set); 4] = [
            ("client_max_body_size", |a, v| a.client_max_body_size = Some(v)),
            ("client_header_timeout", |a, v| a.client_header_timeout = Some(v)),
            ("keepalive_timeout", |a, v| a.keepalive_timeout = Some(v)),
            ("client_max_connections", |a, v| a.client_max_connections = Some(v)),
        ];
        for (name, set) in cases {
            for bad in ["-1", "NaN", "garbage", "1e400", "99999999999999999999999", "0"] {
                if name == "client_max_body_size" && bad == "0" {
                    continue; // 0 is "unlimited"
                }
                let mut args = StartArgs::default();
                set(&mut args, bad.into());
                let err = format!("{:#}", Settings::resolve(args).unwrap_err());
                assert!(err.contains(name), "{name}={bad}: {err}");
            }
        }
    }

    #[test]
    fn unknown_file_keys_and_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("g.toml");
        std::fs::write(&conf, "proxy_lisen = \"127.0.0.1:1\"\n").unwrap();
        assert!(Settings::resolve(StartArgs { conf: Some(conf), ..Default::default() }).is_err());
        assert!(Settings::resolve(StartArgs { database: Some("mysql".into()), ..Default::default() }).is_err());
    }

    #[test]
    fn real_ip_settings_default_to_kongs_and_come_from_flags_env_or_the_file() {
        let s = Settings::resolve(StartArgs::default()).unwrap();
        assert_eq!(s.real_ip, gatehouse_proxy::RealIp::default());
        assert!(s.real_ip.trusted.is_empty(), "nobody is trusted by default");
        assert_eq!(s.to_json()["trusted_ips"], serde_json::json!([]));
        assert_eq!(s.to_json()["real_ip_header"], "x-real-ip");
        assert_eq!(s.to_json()["real_ip_recursive"], "off");

        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("g.toml");
        std::fs::write(
            &conf,
            "trusted_ips = [\"10.0.0.0/8\", \"::1\"]\nreal_ip_header = \"X-Forwarded-For\"\nreal_ip_recursive = true\n",
        )
        .unwrap();
        let s = Settings::resolve(StartArgs { conf: Some(conf.clone()), ..Default::default() }).unwrap();
        assert_eq!(s.real_ip.trusted.entries(), ["10.0.0.0/8", "::1"]);
        assert_eq!(s.real_ip.header, "x-forwarded-for");
        assert!(s.real_ip.recursive);
        // The flag (or its environment variable) wins over the file; Kong's comma-separated text.
        let args = StartArgs {
            conf: Some(conf),
            trusted_ips: Some("0.0.0.0/0, ::/0".into()),
            real_ip_recursive: Some("off".into()),
            ..Default::default()
        };
        let s = Settings::resolve(args).unwrap();
        assert_eq!(s.real_ip.trusted.entries(), ["0.0.0.0/0", "::/0"]);
        assert!(!s.real_ip.recursive);
        std::fs::write(dir.path().join("h.toml"), "trusted_ips = \"127.0.0.1,unix:\"\n").unwrap();
        let s = Settings::resolve(StartArgs { conf: Some(dir.path().join("h.toml")), ..Default::default() }).unwrap();
        assert_eq!(s.real_ip.trusted.entries(), ["127.0.0.1", "unix:"]);
    }

    #[test]
    fn hostile_real_ip_settings_are_refused_with_their_name() {
        type Set = fn(&mut StartArgs, String);
        let cases: [(&str, Set, &[&str]); 3] = [
            ("trusted_ips", |a, v| a.trusted_ips = Some(v), &["localhost", "10.0.0.1/33", "1.2.3.4,evil", "::/999"]),
            ("real_ip_header", |a, v| a.real_ip_header = Some(v), &["", "a b", "x\ny", "proxy_protocol"]),
            ("real_ip_recursive", |a, v| a.real_ip_recursive = Some(v), &["", "yes", "2"]),
        ];
        for (name, set, bad) in cases {
            for bad in bad {
                let mut args = StartArgs::default();
                set(&mut args, (*bad).into());
                let err = format!("{:#}", Settings::resolve(args).unwrap_err());
                assert!(err.contains(name), "{name}={bad:?}: {err}");
            }
        }
    }

    #[test]
    fn idp_max_response_size_defaults_to_1m_and_refuses_zero_and_garbage() {
        let s = Settings::resolve(StartArgs::default()).unwrap();
        assert_eq!(s.idp_max_response_size, 1 << 20);
        let size = |v: &str| StartArgs { idp_max_response_size: Some(v.into()), ..Default::default() };
        assert_eq!(Settings::resolve(size("64k")).unwrap().idp_max_response_size, 64 << 10);
        for bad in ["0", "-1", "1e30", "lots", "99999999999999999999m"] {
            assert!(Settings::resolve(size(bad)).is_err(), "{bad:?} should be refused");
        }
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("g.toml");
        std::fs::write(&conf, "idp_max_response_size = \"2m\"\n").unwrap();
        let s = Settings::resolve(StartArgs { conf: Some(conf), ..Default::default() }).unwrap();
        assert_eq!(s.idp_max_response_size, 2 << 20);
        assert_eq!(s.to_json()["idp_max_response_size"], 2 << 20);
    }
}
