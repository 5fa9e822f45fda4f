//! Header rules for the hop to the upstream and back: hop-by-hop stripping and `X-Forwarded-*`.

use crate::trust::RealIp;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_FORWARDED_PATH: HeaderName = HeaderName::from_static("x-forwarded-path");
static X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// What the forwarding headers need to know about a client connection, computed once per
/// connection rather than per request: its address, whether it is TLS, and whether it is a
/// trusted proxy (`trusted_ips`) whose `X-Forwarded-*` and real-IP header are believed.
pub struct ConnInfo {
    /// The peer's address (Kong's `kong.client.get_ip()`).
    pub client: SocketAddr,
    /// The peer's IP as a header value (`X-Real-IP`, `X-Forwarded-For`).
    ip: HeaderValue,
    /// The proxy port the client connected to (`X-Forwarded-Port`).
    port: HeaderValue,
    /// The real-IP settings, kept only when the peer is trusted: untrusted peers never have
    /// their headers read.
    trusted: Option<Arc<RealIp>>,
    /// The connection is TLS. No listener sets it yet; a TLS listener passes `true`.
    tls: bool,
    /// The proxy port the client connected to.
    pub local_port: u16,
}

impl ConnInfo {
    /// The header values for a connection from `client` to the proxy's `local_port`, over TLS
    /// or not; whether `client` is trusted is decided here, once.
    pub fn new(client: SocketAddr, local_port: u16, real_ip: &Arc<RealIp>, tls: bool) -> ConnInfo {
        let ip = HeaderValue::try_from(client.ip().to_string()).unwrap_or_else(|_| HeaderValue::from_static(""));
        let trusted = real_ip.trusts(client).then(|| real_ip.clone());
        ConnInfo { client, ip, port: HeaderValue::from(local_port), trusted, tls, local_port }
    }

    /// What this request says about its client, believed only from a trusted peer.
    pub fn request_client(&self, headers: &HeaderMap) -> RequestClient {
        let Some(real_ip) = &self.trusted else {
            return RequestClient { ip: self.client.ip(), ip_value: None, https: self.tls, trusted: false };
        };
        let ip = real_ip.client_ip(self.client.ip(), headers);
        // Kong's `kong.request.get_forwarded_scheme()`: the first value, any case.
        let https = match headers.get(&X_FORWARDED_PROTO) {
            Some(v) => v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"https"),
            None => self.tls,
        };
        RequestClient {
            ip: ip.unwrap_or_else(|| self.client.ip()),
            ip_value: ip.and_then(|ip| HeaderValue::try_from(ip.to_string()).ok()),
            https,
            trusted: true,
        }
    }
}

/// One request's client as far as it can be believed: the connection's peer, or what a trusted
/// proxy in front said.
pub struct RequestClient {
    /// The client's IP (Kong's `kong.client.get_forwarded_ip()`): the real-IP header's address
    /// from a trusted peer, else the peer's.
    pub ip: IpAddr,
    /// `ip` as a header value when it is not the peer's (whose value the connection holds).
    ip_value: Option<HeaderValue>,
    /// The request was https: the connection is TLS, or a trusted peer said
    /// `X-Forwarded-Proto: https`.
    pub https: bool,
    /// The peer is trusted: its `X-Forwarded-*` headers go upstream as it sent them.
    pub trusted: bool,
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

/// What the upstream is told about where a request came from (Kong's `X-Forwarded-*`).
pub struct Origin<'a> {
    /// The routed host (lowercase).
    pub host: &'a str,
    /// The client's `Host` header, when it sent one.
    pub host_value: Option<&'a HeaderValue>,
    /// The path the client asked for (normalized, without the query).
    pub path: &'a str,
    /// The part of the path the route matched and strips (`X-Forwarded-Prefix`), when it strips one.
    pub prefix: Option<&'a str>,
}

/// Sets Kong's `X-Forwarded-*` and `X-Real-IP` headers. From an untrusted peer (by default every
/// one) the client's own `X-Forwarded-Proto/Host/Port/Path/Prefix` and `X-Real-IP` are replaced;
/// a trusted peer's are passed on, ours filling in only what it left out. Either way the peer's
/// address is appended to the `X-Forwarded-For` it sent, and `X-Real-IP` is the client's.
pub fn set_forwarded(headers: &mut HeaderMap, conn: &ConnInfo, client: &RequestClient, origin: &Origin<'_>) {
    let real_ip = client.ip_value.as_ref().unwrap_or(&conn.ip);
    // Every line the client sent, joined as nginx's `$http_x_forwarded_for` (what Kong appends
    // to) joins them: a proxy in front may have added its own line after a spoofed one.
    let mut v = Vec::new();
    for line in headers.get_all(&X_FORWARDED_FOR).iter().map(HeaderValue::as_bytes).filter(|l| !l.is_empty()) {
        if v.is_empty() {
            v.reserve(line.len() + 2 + conn.ip.len());
        } else {
            v.extend_from_slice(b", ");
        }
        v.extend_from_slice(line);
    }
    let xff = if v.is_empty() {
        Some(real_ip.clone())
    } else {
        v.extend_from_slice(b", ");
        v.extend_from_slice(conn.ip.as_bytes());
        HeaderValue::from_maybe_shared(bytes::Bytes::from(v)).ok()
    };
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    headers.insert(X_REAL_IP.clone(), real_ip.clone());
    // A trusted proxy's own value stands; `keep` says so for each header.
    let keep = |headers: &HeaderMap, name: &HeaderName| client.trusted && headers.contains_key(name);
    if !keep(headers, &X_FORWARDED_PROTO) {
        let proto = if conn.tls { "https" } else { "http" };
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    }
    if !keep(headers, &X_FORWARDED_HOST) {
        let host = origin.host;
        let forwarded_host = match bare_host(host) {
            // The client's own value when it is the bare host already: no copy.
            Some(h) if h.len() == host.len() && !h.is_empty() => {
                origin.host_value.cloned().or_else(|| HeaderValue::from_str(h).ok())
            }
            Some(h) if !h.is_empty() => HeaderValue::from_str(h).ok(),
            _ => None,
        };
        set_or_remove(headers, &X_FORWARDED_HOST, forwarded_host);
    }
    if !keep(headers, &X_FORWARDED_PORT) {
        headers.insert(X_FORWARDED_PORT.clone(), conn.port.clone());
    }
    if !keep(headers, &X_FORWARDED_PATH) {
        set_or_remove(headers, &X_FORWARDED_PATH, HeaderValue::from_str(origin.path).ok());
    }
    if !keep(headers, &X_FORWARDED_PREFIX) {
        let prefix = origin.prefix.filter(|p| !p.is_empty() && *p != "/").and_then(|p| HeaderValue::from_str(p).ok());
        set_or_remove(headers, &X_FORWARDED_PREFIX, prefix);
    }
}

/// Sets `name` to `value`, or removes what the client sent when there is no value of ours.
fn set_or_remove(headers: &mut HeaderMap, name: &HeaderName, value: Option<HeaderValue>) {
    match value {
        Some(v) => {
            headers.insert(name.clone(), v);
        }
        None => {
            headers.remove(name);
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

    fn conn(peer: &str, port: u16, trusted: &str) -> ConnInfo {
        let real_ip = RealIp { trusted: crate::trust::TrustedIps::parse(trusted).unwrap(), ..RealIp::default() };
        ConnInfo::new(peer.parse().unwrap(), port, &Arc::new(real_ip), false)
    }

    fn forward(h: &mut HeaderMap, conn: &ConnInfo, host: &str, path: &str, prefix: Option<&str>) -> RequestClient {
        let client = conn.request_client(h);
        set_forwarded(h, conn, &client, &Origin { host, host_value: None, path, prefix });
        client
    }

    fn spoofed() -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-port", "443"),
            ("x-forwarded-path", "/admin"),
            ("x-forwarded-prefix", "/evil"),
            ("x-real-ip", "10.0.0.2"),
        ] {
            h.insert(k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn forwarded_headers_replace_client_claims_and_append_the_address() {
        let mut h = spoofed();
        let client = forward(&mut h, &conn("127.0.0.2:5555", 8000, ""), "example.com:8000", "/a", None);
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.2");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com");
        assert_eq!(h["x-forwarded-port"], "8000");
        assert_eq!(h["x-forwarded-path"], "/a");
        assert!(!h.contains_key("x-forwarded-prefix"), "an untrusted client's prefix is removed");
        assert_eq!(h["x-real-ip"], "127.0.0.2");
        assert!(!client.https, "an untrusted X-Forwarded-Proto is not believed");
        assert_eq!(client.ip, "127.0.0.2".parse::<IpAddr>().unwrap());
        // A peer outside trusted_ips is as untrusted as with none.
        let mut h = spoofed();
        assert!(!forward(&mut h, &conn("127.0.0.2:5555", 8000, "127.0.0.1"), "h", "/a", None).https);
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-real-ip"], "127.0.0.2");
    }

    #[test]
    fn a_trusted_peers_forwarded_headers_are_passed_on() {
        let mut h = spoofed();
        let client = forward(&mut h, &conn("127.0.0.1:5555", 8000, "127.0.0.1"), "example.com", "/a", Some("/a"));
        assert!(client.https);
        assert_eq!(client.ip, "10.0.0.2".parse::<IpAddr>().unwrap(), "X-Real-IP is the real_ip_header");
        assert_eq!(h["x-real-ip"], "10.0.0.2");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1", "the peer is appended");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "evil.example");
        assert_eq!(h["x-forwarded-port"], "443");
        assert_eq!(h["x-forwarded-path"], "/admin");
        assert_eq!(h["x-forwarded-prefix"], "/evil");
        // What the trusted peer left out is ours; no X-Forwarded-For: the real IP.
        let mut h = HeaderMap::new();
        h.insert("x-real-ip", HeaderValue::from_static("10.0.0.3"));
        let client = forward(&mut h, &conn("127.0.0.1:5555", 8000, "127.0.0.1"), "example.com", "/a/b", Some("/a"));
        assert!(!client.https, "no X-Forwarded-Proto: the connection's scheme");
        assert_eq!(h["x-forwarded-for"], "10.0.0.3");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com");
        assert_eq!(h["x-forwarded-port"], "8000");
        assert_eq!(h["x-forwarded-path"], "/a/b");
        assert_eq!(h["x-forwarded-prefix"], "/a");
        // X-Forwarded-Proto in any case, and only https is https.
        for (proto, https) in [("HTTPS", true), (" https ", true), ("http", false), ("https, http", false), ("", false)]
        {
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-proto", HeaderValue::from_str(proto).unwrap());
            assert_eq!(conn("127.0.0.1:1", 80, "127.0.0.1").request_client(&h).https, https, "{proto:?}");
        }
    }

    #[test]
    fn the_prefix_is_the_stripped_part_except_the_root() {
        let c = conn("127.0.0.2:5555", 8000, "");
        for (prefix, want) in [(Some("/foo"), Some("/foo")), (Some("/"), None), (Some(""), None), (None, None)] {
            let mut h = HeaderMap::new();
            forward(&mut h, &c, "h", "/foo/x", prefix);
            assert_eq!(h.get("x-forwarded-prefix").map(|v| v.to_str().unwrap()), want, "{prefix:?}");
        }
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
        let conn = conn("[::1]:5555", 443, "");
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-host", HeaderValue::from_static("evil.example"));
        forward(&mut h, &conn, "example.com:bad", "/", None);
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

/// X-Forwarded-* headers that arrive on several lines.
#[cfg(test)]
mod shapes {
    use super::*;

    fn trusted_conn(header: &str) -> ConnInfo {
        let real_ip = RealIp {
            trusted: crate::trust::TrustedIps::parse("127.0.0.1").unwrap(),
            header: RealIp::parse_header(header).unwrap(),
            recursive: false,
        };
        ConnInfo::new("127.0.0.1:5555".parse().unwrap(), 8000, &Arc::new(real_ip), false)
    }

    /// A trusted proxy that adds its own `X-Forwarded-For` line (HAProxy's `option forwardfor`)
    /// after the client's spoofed one. The gateway itself finds the client in the last line,
    /// but the upstream must not be told a chain without it: nginx's `$http_x_forwarded_for`
    /// (what Kong appends to) joins every line with ", ".
    #[test]
    fn every_x_forwarded_for_line_reaches_the_upstream() {
        let conn = trusted_conn("X-Forwarded-For");
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.append("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        let client = conn.request_client(&h);
        assert_eq!(client.ip, "1.2.3.4".parse::<IpAddr>().unwrap(), "the gateway reads the last line");
        set_forwarded(&mut h, &conn, &client, &Origin { host: "h", host_value: None, path: "/", prefix: None });
        assert_eq!(h["x-real-ip"], "1.2.3.4");
        let xff: Vec<_> = h.get_all("x-forwarded-for").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        assert_eq!(xff, ["6.6.6.6, 1.2.3.4, 127.0.0.1"], "the trusted proxy's line is dropped");
    }

    /// Same from an untrusted client: the chain the upstream sees must be the one nginx builds.
    #[test]
    fn every_x_forwarded_for_line_is_kept_for_an_untrusted_peer_too() {
        let conn = ConnInfo::new("127.0.0.2:5555".parse().unwrap(), 8000, &Arc::new(RealIp::default()), false);
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        let client = conn.request_client(&h);
        set_forwarded(&mut h, &conn, &client, &Origin { host: "h", host_value: None, path: "/", prefix: None });
        let xff: Vec<_> = h.get_all("x-forwarded-for").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        assert_eq!(xff, ["10.0.0.1, 10.0.0.2, 127.0.0.2"]);
    }
}
