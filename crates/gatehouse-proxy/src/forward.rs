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

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), including those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
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

/// Sets Kong's `X-Forwarded-*` and `X-Real-IP` headers. Like Kong with no trusted IPs, the client's
/// own `X-Forwarded-Proto/Host/Port/Path` are replaced, and its address is appended to
/// `X-Forwarded-For`.
pub fn set_forwarded(headers: &mut HeaderMap, client: SocketAddr, host: &str, port: u16, path: &str) {
    let ip = client.ip().to_string();
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.is_empty() => format!("{prev}, {ip}"),
        _ => ip.clone(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    if let Ok(v) = HeaderValue::from_str(&ip) {
        headers.insert(X_REAL_IP.clone(), v);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    let bare_host = gatehouse_core::entity::split_host_port(host).map(|(h, _)| h).unwrap_or_default();
    match HeaderValue::from_str(&bare_host) {
        Ok(v) if !bare_host.is_empty() => {
            headers.insert(X_FORWARDED_HOST.clone(), v);
        }
        _ => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
    headers.insert(X_FORWARDED_PORT.clone(), HeaderValue::from(port));
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
        set_forwarded(&mut h, "127.0.0.2:5555".parse().unwrap(), "example.com:8000", 8000, "/a");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.2");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com");
        assert_eq!(h["x-forwarded-port"], "8000");
        assert_eq!(h["x-forwarded-path"], "/a");
        assert_eq!(h["x-real-ip"], "127.0.0.2");
    }
}
