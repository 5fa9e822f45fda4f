//! Header rules for the hop to the upstream and back: hop-by-hop stripping and `X-Forwarded-*`.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::SocketAddr;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_FORWARDED_PATH: HeaderName = HeaderName::from_static("x-forwarded-path");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// What the forwarding headers need to know about a client connection, computed once per
/// connection rather than per request.
pub struct ConnInfo {
    /// The client's address.
    pub client: SocketAddr,
    /// The client's IP as a header value (`X-Real-IP`, `X-Forwarded-For`).
    ip: HeaderValue,
    /// The proxy port the client connected to (`X-Forwarded-Port`).
    port: HeaderValue,
}

impl ConnInfo {
    /// The header values for a connection from `client` to the proxy's `local_port`.
    pub fn new(client: SocketAddr, local_port: u16) -> ConnInfo {
        let ip = HeaderValue::try_from(client.ip().to_string()).unwrap_or_else(|_| HeaderValue::from_static(""));
        ConnInfo { client, ip, port: HeaderValue::from(local_port) }
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TE
        || name == header::TRAILER
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), including those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the few headers a request has is cheaper than seven lookups, and most
    // requests carry none of them.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if let Some(conn) = headers.get(header::CONNECTION).cloned()
        && let Ok(list) = conn.to_str()
    {
        for name in list.split(',') {
            let name = name.trim();
            if !name.is_empty() && !name.eq_ignore_ascii_case("close") && !name.eq_ignore_ascii_case("keep-alive") {
                headers.remove(name);
            }
        }
    }
    for h in [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ] {
        headers.remove(h);
    }
}

/// The host part of a `Host` value (`host`, `host:port`, `[v6]`, `[v6]:port`); `None` when the
/// port is not a number.
fn bare_host(host: &str) -> Option<&str> {
    if host.starts_with('[') {
        let end = host.find(']')?;
        let after = &host[end + 1..];
        return match after.strip_prefix(':') {
            Some(p) => p.parse::<u16>().ok().map(|_| &host[..=end]),
            None => after.is_empty().then_some(host),
        };
    }
    match host.rsplit_once(':') {
        Some((h, p)) => p.parse::<u16>().ok().map(|_| h),
        None => Some(host),
    }
}

/// Sets Kong's `X-Forwarded-*` and `X-Real-IP` headers. Like Kong with no trusted IPs, the client's
/// own `X-Forwarded-Proto/Host/Port/Path` are replaced, and its address is appended to
/// `X-Forwarded-For`. `host_value` is the client's `Host` header, when it sent one.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    conn: &ConnInfo,
    host: &str,
    host_value: Option<&HeaderValue>,
    path: &str,
) {
    let xff = match headers.get(&X_FORWARDED_FOR).map(HeaderValue::as_bytes) {
        Some(prev) if !prev.is_empty() => {
            let mut v = Vec::with_capacity(prev.len() + 2 + conn.ip.len());
            v.extend_from_slice(prev);
            v.extend_from_slice(b", ");
            v.extend_from_slice(conn.ip.as_bytes());
            HeaderValue::from_maybe_shared(bytes::Bytes::from(v)).ok()
        }
        _ => Some(conn.ip.clone()),
    };
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    headers.insert(X_REAL_IP.clone(), conn.ip.clone());
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    let forwarded_host = match bare_host(host) {
        // The client's own value when it is the bare host already: no copy.
        Some(h) if h.len() == host.len() && !h.is_empty() => {
            host_value.cloned().or_else(|| HeaderValue::from_str(h).ok())
        }
        Some(h) if !h.is_empty() => HeaderValue::from_str(h).ok(),
        _ => None,
    };
    match forwarded_host {
        Some(v) => {
            headers.insert(X_FORWARDED_HOST.clone(), v);
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
    headers.insert(X_FORWARDED_PORT.clone(), conn.port.clone());
    match HeaderValue::from_str(path) {
        Ok(v) => {
            headers.insert(X_FORWARDED_PATH.clone(), v);
        }
        Err(_) => {
            headers.remove(&X_FORWARDED_PATH);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-ok", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-ok"));
    }

    #[test]
    fn forwarded_headers_replace_client_claims_and_append_the_address() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let conn = ConnInfo::new("127.0.0.2:5555".parse().unwrap(), 8000);
        set_forwarded(&mut h, &conn, "example.com:8000", None, "/a");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.2");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com");
        assert_eq!(h["x-forwarded-port"], "8000");
        assert_eq!(h["x-forwarded-path"], "/a");
        assert_eq!(h["x-real-ip"], "127.0.0.2");
    }

    #[test]
    fn forwarded_host_is_the_bare_host() {
        for (host, want) in [
            ("example.com", Some("example.com")),
            ("example.com:8000", Some("example.com")),
            ("[::1]", Some("[::1]")),
            ("[::1]:8000", Some("[::1]")),
            ("example.com:port", None),
            ("[::1]x", None),
            ("", Some("")),
        ] {
            assert_eq!(bare_host(host), want, "{host}");
        }
        let conn = ConnInfo::new("[::1]:5555".parse().unwrap(), 443);
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-host", HeaderValue::from_static("evil.example"));
        set_forwarded(&mut h, &conn, "example.com:bad", None, "/");
        assert!(!h.contains_key("x-forwarded-host"), "a bad Host leaves no client-sent value");
        assert_eq!(h["x-forwarded-for"], "::1");
        assert_eq!(h["x-forwarded-port"], "443");
    }

    #[test]
    fn requests_without_hop_by_hop_headers_are_left_alone() {
        let mut h = HeaderMap::new();
        h.insert("x-ok", HeaderValue::from_static("1"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
    }
}
