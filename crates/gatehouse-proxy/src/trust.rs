//! Which peers are believed about the client behind them: Kong's `trusted_ips`, `real_ip_header`
//! and `real_ip_recursive` node settings (nginx's realip module underneath Kong).
//!
//! Decided at start-up and per connection: a peer outside `trusted_ips` (by default everyone) is the
//! client, and whatever it says in `X-Forwarded-*` or the real-IP header is overwritten. Only a
//! trusted peer's headers are read, per request.

use http::HeaderMap;
use http::header::HeaderName;
use std::net::{IpAddr, SocketAddr};

/// Why a trust setting was refused at start-up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// An entry of `trusted_ips` is no address, CIDR block or `unix:` (Kong's message).
    #[error(
        "trusted_ips must be a comma separated list in the form of IPv4 or IPv6 address or CIDR block or 'unix:', got '{0}'"
    )]
    TrustedIp(String),
    /// `real_ip_header` is no header name.
    #[error("real_ip_header must be a header name or 'proxy_protocol', got '{0}'")]
    Header(String),
    /// `real_ip_header = proxy_protocol` needs a PROXY protocol listener, which the proxy does not have.
    #[error("real_ip_header = proxy_protocol needs a listener with the PROXY protocol, which Gatehouse does not have")]
    ProxyProtocol,
    /// `real_ip_recursive` is neither `on` nor `off`.
    #[error("real_ip_recursive must be 'on' or 'off', got '{0}'")]
    Recursive(String),
}

/// An entry shown back in an error: bounded and with control characters escaped, so a hostile
/// value cannot flood or forge log lines.
fn shown(entry: &str) -> String {
    entry.chars().take(64).flat_map(char::escape_debug).collect()
}

/// One CIDR block, kept masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Block {
    V4 { net: u32, mask: u32 },
    V6 { net: u128, mask: u128 },
}

impl Block {
    /// `addr` or `addr/prefix`, as nginx's `set_real_ip_from` takes them. Host bits under the
    /// prefix are cleared (nginx warns and does the same).
    fn parse(text: &str) -> Option<Block> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => {
                // Digits only: `u8::from_str` would take `+8`.
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (a, Some(p.parse::<u32>().ok()?))
            }
            None => (text, None),
        };
        Some(match addr.parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => {
                let mask = u32::try_from(netmask(prefix.unwrap_or(32), 32)?).ok()?;
                warn_host_bits(text, u32::from(a) & !mask != 0);
                Block::V4 { net: u32::from(a) & mask, mask }
            }
            IpAddr::V6(a) => {
                let mask = netmask(prefix.unwrap_or(128), 128)?;
                warn_host_bits(text, u128::from(a) & !mask != 0);
                Block::V6 { net: u128::from(a) & mask, mask }
            }
        })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (Block::V4 { net, mask }, IpAddr::V4(a)) => u32::from(a) & mask == *net,
            (Block::V6 { net, mask }, IpAddr::V6(a)) => u128::from(a) & mask == *net,
            _ => false,
        }
    }
}

/// `10.0.0.1/0` trusts every IPv4 peer: likely a typo for `/32`, so it is said at start-up (nginx
/// warns too), though the entry is taken as written.
fn warn_host_bits(entry: &str, set: bool) {
    if set {
        tracing::warn!(entry = %shown(entry), "trusted_ips entry has host bits set below its prefix; they are ignored");
    }
}

/// The netmask of a `bits`-long prefix of a `width`-bit address (32 or 128), in the low bits;
/// `None` when the prefix is longer than the address.
fn netmask(bits: u32, width: u32) -> Option<u128> {
    if bits > width {
        return None;
    }
    let all = u128::MAX >> (128 - width);
    Some(if bits == 0 { 0 } else { (all << (width - bits)) & all })
}

/// Kong's `trusted_ips`: the peers known to send correct `X-Forwarded-*` headers and real-IP
/// header. Empty (Kong's default) trusts nobody.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedIps {
    blocks: Vec<Block>,
    /// The entries as written, for `GET /`. `unix:` (every UNIX-domain socket) is among them
    /// but has no block: the proxy listens on TCP only, so it matches nothing yet.
    entries: Vec<String>,
}

impl TrustedIps {
    /// A comma-separated list of IPv4 or IPv6 addresses, CIDR blocks and `unix:`; `0.0.0.0/0,::/0`
    /// trusts everyone. Blanks around entries and empty entries are ignored.
    pub fn parse(list: &str) -> Result<TrustedIps, TrustError> {
        let mut out = TrustedIps::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry != "unix:" {
                out.blocks.push(Block::parse(entry).ok_or_else(|| TrustError::TrustedIp(shown(entry)))?);
            }
            out.entries.push(entry.to_owned());
        }
        Ok(out)
    }

    /// Whether no peer is trusted.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Whether `ip` is a trusted peer. An IPv4-mapped IPv6 address (a dual-stack listener's view
    /// of an IPv4 peer) is matched as the IPv4 address it is.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.blocks.iter().any(|b| b.contains(ip))
    }

    /// The entries as written, as Kong shows them on `GET /`.
    pub fn entries(&self) -> &[String] {
        &self.entries
    }
}

/// The node's real-IP settings: whom to believe, and where they put the client's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealIp {
    /// `trusted_ips`.
    pub trusted: TrustedIps,
    /// `real_ip_header`: the header a trusted peer puts the client's address in. Kong's default
    /// is `X-Real-IP`.
    pub header: HeaderName,
    /// `real_ip_recursive`: skip trusted addresses from the right of the header's list, so the
    /// client is the last untrusted one. Off by default.
    pub recursive: bool,
}

impl Default for RealIp {
    fn default() -> Self {
        RealIp { trusted: TrustedIps::default(), header: HeaderName::from_static("x-real-ip"), recursive: false }
    }
}

impl RealIp {
    /// Parses `real_ip_header` (`proxy_protocol` is refused: there is no PROXY protocol listener).
    pub fn parse_header(text: &str) -> Result<HeaderName, TrustError> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("proxy_protocol") {
            return Err(TrustError::ProxyProtocol);
        }
        HeaderName::from_bytes(t.as_bytes()).map_err(|_| TrustError::Header(shown(text)))
    }

    /// Parses `real_ip_recursive`: nginx's `on`/`off` (and the booleans Kong's config also takes).
    pub fn parse_recursive(text: &str) -> Result<bool, TrustError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "on" | "true" => Ok(true),
            "off" | "false" => Ok(false),
            _ => Err(TrustError::Recursive(shown(text))),
        }
    }

    /// Whether a connection from `peer` is trusted: decided once per connection.
    pub fn trusts(&self, peer: SocketAddr) -> bool {
        self.trusted.contains(peer.ip())
    }

    /// The client's address as nginx's realip module finds it, for a request from a trusted
    /// peer: the rightmost address of the real-IP header (`addr`, `addr:port` or `[v6]:port`,
    /// separated by commas or spaces; every `X-Forwarded-For` line, the first line of any other
    /// header); with `recursive`, the rightmost one that is not itself trusted. `None` when the
    /// header is absent or its last entry is no address: the peer is the client then.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> Option<IpAddr> {
        let mut values = headers.get_all(&self.header).iter();
        let lines: Vec<&[u8]> = if self.header == "x-forwarded-for" {
            values.map(http::HeaderValue::as_bytes).collect()
        } else {
            values.next().map(http::HeaderValue::as_bytes).into_iter().collect()
        };
        let mut found = None;
        let mut current = peer;
        let entries =
            lines.iter().rev().flat_map(|line| line.rsplit(|&b| b == b',' || b == b' ').filter(|e| !e.is_empty()));
        for entry in entries {
            if !self.trusted.contains(current) {
                break;
            }
            let Some(ip) = parse_addr(entry) else { break };
            current = ip;
            found = Some(ip);
            if !self.recursive {
                break;
            }
        }
        found
    }
}

/// An address as nginx's `ngx_parse_addr_port` takes it: `1.2.3.4`, `1.2.3.4:80`, `::1`,
/// `[::1]`, `[::1]:80`. Zone ids and host names are not addresses.
fn parse_addr(entry: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(entry).ok()?;
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    s.strip_prefix('[')?.strip_suffix(']')?.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn real_ip(trusted: &str, header: &str, recursive: bool) -> RealIp {
        RealIp {
            trusted: TrustedIps::parse(trusted).expect("trusted_ips"),
            header: RealIp::parse_header(header).expect("header"),
            recursive,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).expect("name"), HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn trusted_ips_take_addresses_blocks_and_unix() {
        let t = TrustedIps::parse(" 10.0.0.1, 192.168.0.0/16 ,2001:db8::/32,unix:,,").expect("parses");
        assert!(t.contains(ip("10.0.0.1")));
        assert!(!t.contains(ip("10.0.0.2")));
        assert!(t.contains(ip("192.168.255.7")));
        assert!(!t.contains(ip("192.169.0.1")));
        assert!(t.contains(ip("2001:db8::1")));
        assert!(!t.contains(ip("2001:db9::1")));
        // A dual-stack listener shows IPv4 peers as mapped addresses.
        assert!(t.contains(ip("::ffff:10.0.0.1")));
        assert_eq!(t.entries(), ["10.0.0.1", "192.168.0.0/16", "2001:db8::/32", "unix:"]);
        let all = TrustedIps::parse("0.0.0.0/0,::/0").expect("parses");
        assert!(all.contains(ip("203.0.113.9")) && all.contains(ip("2001:db8::9")));
        // Host bits under the prefix are cleared, as nginx does.
        assert!(TrustedIps::parse("10.1.2.3/8").expect("parses").contains(ip("10.200.0.1")));
        assert!(TrustedIps::parse("").expect("empty").is_empty());
        assert!(!TrustedIps::default().contains(ip("127.0.0.1")), "nobody is trusted by default");
    }

    #[test]
    fn hostile_trusted_ips_are_refused_with_kongs_message() {
        for bad in [
            "localhost",
            "10.0.0.1/33",
            "::/129",
            "10.0.0.1/",
            "10.0.0.1/+8",
            "10.0.0.1/-1",
            "10.0.0.1/8/8",
            "10.0.0.1/0008",
            "010.0.0.1",
            "10.0.0",
            "10.0.0.1:80",
            "[::1]",
            "fe80::1%eth0",
            "unix:/tmp/x",
            "*",
            "all",
            "1.2.3.4\u{0}",
            "1.2.3.4\n5.6.7.8",
        ] {
            let err = TrustedIps::parse(bad).expect_err(bad).to_string();
            assert!(err.starts_with("trusted_ips must be a comma separated list"), "{bad:?}: {err}");
            assert!(!err.contains('\n') && !err.contains('\0'), "control characters are escaped: {err:?}");
        }
        let long = "x".repeat(100_000);
        assert!(TrustedIps::parse(&long).expect_err("long").to_string().len() < 300, "the echo is bounded");
    }

    #[test]
    fn real_ip_header_and_recursive_are_checked() {
        assert_eq!(RealIp::parse_header("X-Forwarded-For").expect("name"), "x-forwarded-for");
        assert!(matches!(RealIp::parse_header("proxy_protocol"), Err(TrustError::ProxyProtocol)));
        for bad in ["", "two words", "x:y", "é", "a\nb"] {
            assert!(matches!(RealIp::parse_header(bad), Err(TrustError::Header(_))), "{bad:?}");
        }
        assert!(RealIp::parse_recursive("on").expect("on"));
        assert!(!RealIp::parse_recursive(" OFF ").expect("off"));
        for bad in ["", "yes", "1", "onn"] {
            assert!(RealIp::parse_recursive(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_real_ip_comes_from_a_trusted_peer_only() {
        let r = real_ip("127.0.0.1", "X-Real-IP", false);
        let h = headers(&[("x-real-ip", "10.0.0.1")]);
        assert_eq!(r.client_ip(ip("127.0.0.1"), &h), Some(ip("10.0.0.1")));
        assert_eq!(r.client_ip(ip("127.0.0.2"), &h), None, "an untrusted peer is the client");
        assert_eq!(r.client_ip(ip("127.0.0.1"), &HeaderMap::new()), None);
        // Not an address: the peer stays the client.
        for bad in ["evil.example", "", "10.0.0.1%", "[::1", "1.2.3.4:99999"] {
            assert_eq!(r.client_ip(ip("127.0.0.1"), &headers(&[("x-real-ip", bad)])), None, "{bad:?}");
        }
        // Ports and brackets, as nginx takes them.
        for (v, want) in [("10.0.0.1:80", "10.0.0.1"), ("[::1]:80", "::1"), ("[::2]", "::2"), ("::3", "::3")] {
            assert_eq!(r.client_ip(ip("127.0.0.1"), &headers(&[("x-real-ip", v)])), Some(ip(want)), "{v}");
        }
    }

    #[test]
    fn x_forwarded_for_is_read_from_the_right_as_kongs_spec_says() {
        // Kong's spec (03-upstream_headers_spec.lua): recursive, trusted.
        let r = real_ip("127.0.0.1,172.16.0.1,192.168.0.1", "X-Forwarded-For", true);
        let h = headers(&[("x-forwarded-for", "127.0.0.1, 10.0.0.1, 192.168.0.1, 127.0.0.1, 172.16.0.1")]);
        assert_eq!(r.client_ip(ip("127.0.0.1"), &h), Some(ip("10.0.0.1")));
        let h =
            headers(&[("x-forwarded-for", "127.0.0.1:14, 10.0.0.1:15, 192.168.0.1:16, 127.0.0.1:17, 172.16.0.1:18")]);
        assert_eq!(r.client_ip(ip("127.0.0.1"), &h), Some(ip("10.0.0.1")));
        // Recursive, the peer not trusted.
        let r2 = real_ip("10.0.0.1,172.16.0.1,192.168.0.1", "X-Forwarded-For", true);
        assert_eq!(r2.client_ip(ip("127.0.0.1"), &h), None);
        // Not recursive: the rightmost entry, trusted or not.
        let r3 = real_ip("127.0.0.1,172.16.0.1", "X-Forwarded-For", false);
        let h = headers(&[("x-forwarded-for", "10.0.0.1, 172.16.0.1")]);
        assert_eq!(r3.client_ip(ip("127.0.0.1"), &h), Some(ip("172.16.0.1")));
        // Every line of X-Forwarded-For counts, the last line last.
        let h = headers(&[("x-forwarded-for", "10.0.0.9"), ("x-forwarded-for", "172.16.0.1")]);
        assert_eq!(r.client_ip(ip("127.0.0.1"), &h), Some(ip("10.0.0.9")));
        // All trusted: the leftmost.
        let h = headers(&[("x-forwarded-for", "172.16.0.1, 192.168.0.1")]);
        assert_eq!(r.client_ip(ip("127.0.0.1"), &h), Some(ip("172.16.0.1")));
        // A bad entry stops the walk at the last good one.
        let h = headers(&[("x-forwarded-for", "10.0.0.1, junk, 172.16.0.1")]);
        assert_eq!(r.client_ip(ip("127.0.0.1"), &h), Some(ip("172.16.0.1")));
    }

    #[test]
    fn any_header_value_is_read_without_panicking() {
        use proptest::prelude::*;
        let r = real_ip("0.0.0.0/0,::/0", "X-Forwarded-For", true);
        proptest!(|(v in proptest::collection::vec(any::<u8>(), 0..200))| {
            if let Ok(v) = HeaderValue::from_bytes(&v) {
                let mut h = HeaderMap::new();
                h.insert("x-forwarded-for", v);
                let _ = r.client_ip(ip("127.0.0.1"), &h);
            }
        });
        proptest!(|(s in ".{0,80}")| {
            let _ = TrustedIps::parse(&s);
            let _ = RealIp::parse_header(&s);
        });
    }
}
