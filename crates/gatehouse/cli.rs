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
    Start(StartArgs),
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
    // --- identity provider calls (openid-connect) ---
    /// The most bytes read of any identity provider answer (discovery, JWKS, token, introspection,
    /// userinfo); a bigger one is an IdP failure (502). nginx size syntax, more than 0. [default: 1m]
    #[arg(long, env = "GATEHOUSE_IDP_MAX_RESPONSE_SIZE")]
    pub idp_max_response_size: Option<String>,
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
    // identity provider calls (openid-connect)
    idp_max_response_size: Option<String>,
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
    // identity provider calls (openid-connect)
    pub idp_max_response_size: u64,
}

impl Settings {
    /// Resolves flag > environment > file > default, and validates.
    pub fn resolve(args: StartArgs) -> anyhow::Result<Settings> {
        let file: FileSettings = match &args.conf {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("invalid settings file {}", p.display()))?
            }
            None => FileSettings::default(),
        };
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
            idp_max_response_size,
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
            "idp_max_response_size": self.idp_max_response_size,
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
#[allow(dead_code)] // used by the settings that follow
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
    fn unknown_file_keys_and_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("g.toml");
        std::fs::write(&conf, "proxy_lisen = \"127.0.0.1:1\"\n").unwrap();
        assert!(Settings::resolve(StartArgs { conf: Some(conf), ..Default::default() }).is_err());
        assert!(Settings::resolve(StartArgs { database: Some("mysql".into()), ..Default::default() }).is_err());
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
