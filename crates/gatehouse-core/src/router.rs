//! Route matching as Kong's default `traditional_compatible` router orders it.
//!
//! Each route is split into one entry per path and the entries are sorted once, at compile time, by
//! Kong's priority (most significant first): number of match fields set, plain hosts only, header
//! count, regex path over prefix path, `regex_priority`, prefix length; then older routes first. A
//! request walks the sorted entries and the first that matches wins.

use crate::plugin::Plugin;
use std::sync::Arc;
use std::time::Duration;

/// Where a matched request goes: the route's settings, its service and its plugin chain.
pub struct RouteTarget {
    /// The route's id.
    pub route_id: Arc<str>,
    /// The route's name, for logs.
    pub route_name: Option<String>,
    /// The upstream service, if the route has one.
    pub service: Option<Arc<ServiceTarget>>,
    /// Whether the matched path prefix is removed.
    pub strip_path: bool,
    /// Whether the client's `Host` goes upstream.
    pub preserve_host: bool,
    /// `path_handling = "v1"`.
    pub path_handling_v1: bool,
    /// Whether the body is read fully before proxying (makes retries possible).
    pub request_buffering: bool,
    /// Plugins to run, highest priority first.
    pub plugins: Vec<Arc<dyn Plugin>>,
    /// Whether any plugin needs the request body.
    pub plugins_need_body: bool,
    /// The route accepts plain HTTP (otherwise Kong answers 426).
    pub allows_http: bool,
}

/// An upstream service, compiled.
#[derive(Debug)]
pub struct ServiceTarget {
    /// The service's id.
    pub id: Arc<str>,
    /// `http` or `https`.
    pub scheme: http::uri::Scheme,
    /// `host:port` for the request URI.
    pub authority: http::uri::Authority,
    /// The `Host` header value sent upstream (port left out when it is the scheme's default).
    pub host_header: http::HeaderValue,
    /// The service's path prefix.
    pub path: Option<String>,
    /// Extra connection attempts on connect failures.
    pub retries: u32,
    /// Time to connect.
    pub connect_timeout: Duration,
    /// Time to send the request.
    pub write_timeout: Duration,
    /// Time to wait for the response head.
    pub read_timeout: Duration,
    /// Whether an `https` upstream's certificate must be valid for its host.
    pub tls_verify: bool,
}

enum HostPat {
    /// Exact host, any port.
    Exact(String),
    /// Exact `host:port`.
    ExactPort(String),
    /// `*.example.com`: the suffix including the dot.
    Suffix(String),
    /// `example.*`: the prefix including the dot.
    Prefix(String),
}

enum PathPat {
    Prefix(String),
    Regex(regex::Regex),
}

struct Entry {
    target: Arc<RouteTarget>,
    hosts: Arc<[HostPat]>,
    methods: Arc<[http::Method]>,
    headers: Arc<[(http::HeaderName, Vec<String>)]>,
    path: Option<PathPat>,
}

/// The compiled routing table. Immutable; a new one is built for every config change.
#[derive(Default)]
pub struct Router {
    entries: Vec<Entry>,
}

/// A successful match.
pub struct RouteMatch<'a> {
    /// The route's target.
    pub target: &'a Arc<RouteTarget>,
    /// How many bytes at the start of the request path the route's path matched.
    pub matched_len: usize,
}

/// One route's match criteria, as given by the entity.
pub struct RouteSpec {
    /// `hosts`
    pub hosts: Vec<String>,
    /// `methods`
    pub methods: Vec<String>,
    /// `headers`
    pub headers: Vec<(String, Vec<String>)>,
    /// `paths`
    pub paths: Vec<String>,
    /// `regex_priority`
    pub regex_priority: i64,
    /// `created_at`, for ties.
    pub created_at: i64,
}

/// Why a route could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("route {route}: {msg}")]
pub struct RouteError {
    route: String,
    msg: String,
}

/// Kong's priority, most significant first: match-field count, plain hosts only, header count, regex
/// path, `regex_priority`, prefix length.
type Priority = (u8, bool, usize, bool, i64, usize);

/// Builds a [`Router`] from routes added in any order.
#[derive(Default)]
pub struct RouterBuilder {
    /// (priority, created_at, insertion order, entry)
    keyed: Vec<(Priority, i64, usize, Entry)>,
}

impl RouterBuilder {
    /// Adds a route with its criteria.
    pub fn add(&mut self, target: Arc<RouteTarget>, spec: RouteSpec) -> Result<(), RouteError> {
        let err = |msg: String| RouteError { route: target.route_id.to_string(), msg };
        let hosts: Vec<HostPat> = spec.hosts.iter().map(|h| host_pat(h)).collect();
        let plain_hosts =
            !hosts.is_empty() && hosts.iter().all(|h| matches!(h, HostPat::Exact(_) | HostPat::ExactPort(_)));
        let methods = spec
            .methods
            .iter()
            .map(|m| http::Method::from_bytes(m.as_bytes()).map_err(|e| err(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let headers = spec
            .headers
            .iter()
            .map(|(n, v)| {
                let name = http::HeaderName::from_bytes(n.as_bytes()).map_err(|e| err(e.to_string()))?;
                Ok((name, v.iter().map(|s| s.to_ascii_lowercase()).collect()))
            })
            .collect::<Result<Vec<_>, RouteError>>()?;
        let weight = [!hosts.is_empty(), !methods.is_empty(), !headers.is_empty(), !spec.paths.is_empty()]
            .iter()
            .filter(|b| **b)
            .count() as u8;
        let hosts: Arc<[HostPat]> = hosts.into();
        let methods: Arc<[http::Method]> = methods.into();
        let headers: Arc<[(http::HeaderName, Vec<String>)]> = headers.into();
        let header_count = headers.len();
        let mut paths: Vec<Option<PathPat>> = Vec::new();
        for p in &spec.paths {
            paths.push(Some(match p.strip_prefix('~') {
                Some(re) => PathPat::Regex(
                    regex::Regex::new(&format!("^(?:{re})")).map_err(|e| err(format!("invalid regex {re}: {e}")))?,
                ),
                None => PathPat::Prefix(p.clone()),
            }));
        }
        if paths.is_empty() {
            paths.push(None);
        }
        for path in paths {
            let (is_regex, prio, len) = match &path {
                Some(PathPat::Regex(_)) => (true, spec.regex_priority, 0),
                Some(PathPat::Prefix(p)) => (false, 0, p.len()),
                None => (false, 0, 0),
            };
            let entry = Entry {
                target: target.clone(),
                hosts: hosts.clone(),
                methods: methods.clone(),
                headers: headers.clone(),
                path,
            };
            let n = self.keyed.len();
            self.keyed.push(((weight, plain_hosts, header_count, is_regex, prio, len), spec.created_at, n, entry));
        }
        Ok(())
    }

    /// Sorts the entries by priority and freezes the table.
    pub fn build(mut self) -> Router {
        // Higher priority first; among equals, older routes (then insertion order) first.
        self.keyed.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        Router { entries: self.keyed.into_iter().map(|k| k.3).collect() }
    }
}

fn host_pat(h: &str) -> HostPat {
    let h = h.to_ascii_lowercase();
    if let Some(rest) = h.strip_prefix('*') {
        HostPat::Suffix(rest.to_string())
    } else if let Some(rest) = h.strip_suffix('*') {
        HostPat::Prefix(rest.to_string())
    } else if crate::entity::split_host_port(&h).is_some_and(|(_, p)| p.is_some()) {
        HostPat::ExactPort(h)
    } else {
        HostPat::Exact(h)
    }
}

impl HostPat {
    /// `host` is lowercase without port, `full` is the `Host` value as sent (lowercase).
    fn matches(&self, host: &str, full: &str) -> bool {
        match self {
            HostPat::Exact(h) => h == host,
            HostPat::ExactPort(h) => h == full,
            HostPat::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
            HostPat::Prefix(p) => host.len() > p.len() && host.starts_with(p.as_str()),
        }
    }
}

impl Router {
    /// Finds the route for a request. `host` is the `Host` header (or URI authority), lowercase.
    pub fn find<'a>(
        &'a self,
        method: &http::Method,
        host: &str,
        path: &str,
        headers: &http::HeaderMap,
    ) -> Option<RouteMatch<'a>> {
        let bare_host = match crate::entity::split_host_port(host) {
            Some((h, Some(_))) if !host.ends_with(']') => &host[..h.len()],
            _ => host,
        };
        'entries: for e in &self.entries {
            if !e.methods.is_empty() && !e.methods.iter().any(|m| m == method) {
                continue;
            }
            if !e.hosts.is_empty() && !e.hosts.iter().any(|h| h.matches(bare_host, host)) {
                continue;
            }
            for (name, values) in e.headers.iter() {
                let ok = headers
                    .get_all(name)
                    .iter()
                    .any(|v| v.to_str().is_ok_and(|v| values.iter().any(|want| want.eq_ignore_ascii_case(v))));
                if !ok {
                    continue 'entries;
                }
            }
            let matched_len = match &e.path {
                None => 0,
                Some(PathPat::Prefix(p)) => {
                    if !path.starts_with(p.as_str()) {
                        continue;
                    }
                    p.len()
                }
                Some(PathPat::Regex(re)) => match re.find(path) {
                    Some(m) => m.end(),
                    None => continue,
                },
            };
            return Some(RouteMatch { target: &e.target, matched_len });
        }
        None
    }

    /// Number of entries (routes × paths).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no route is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The upstream path for a request, following Kong's `path_handling` rules.
///
/// `matched_len` bytes of `req_path` were matched by the route; `strip` removes them.
pub fn upstream_path(service_path: Option<&str>, req_path: &str, matched_len: usize, strip: bool, v1: bool) -> String {
    let base = service_path.unwrap_or("/");
    if !strip {
        if v1 {
            return join_v1(base, req_path);
        }
        return if base.ends_with('/') {
            format!("{base}{}", &req_path[1.min(req_path.len())..])
        } else if req_path == "/" {
            base.to_string()
        } else {
            format!("{base}{req_path}")
        };
    }
    let postfix = req_path.get(matched_len..).unwrap_or("");
    if v1 {
        return join_v1(base, postfix);
    }
    if base.ends_with('/') {
        if postfix.is_empty() {
            if base == "/" || req_path.ends_with('/') {
                base.to_string()
            } else {
                base.strip_suffix('/').unwrap_or(base).to_string()
            }
        } else if let Some(rest) = postfix.strip_prefix('/') {
            format!("{base}{rest}")
        } else {
            format!("{base}{postfix}")
        }
    } else if postfix.is_empty() {
        if req_path.len() > 1 && req_path.ends_with('/') { format!("{base}/") } else { base.to_string() }
    } else if postfix.starts_with('/') {
        format!("{base}{postfix}")
    } else {
        format!("{base}/{postfix}")
    }
}

fn join_v1(base: &str, rest: &str) -> String {
    let out = if base.ends_with('/') && rest.starts_with('/') {
        format!("{base}{}", &rest[1..])
    } else {
        format!("{base}{rest}")
    };
    if out.is_empty() { "/".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(id: &str) -> Arc<RouteTarget> {
        Arc::new(RouteTarget {
            route_id: id.into(),
            route_name: None,
            service: None,
            strip_path: true,
            preserve_host: false,
            path_handling_v1: false,
            request_buffering: true,
            plugins: Vec::new(),
            plugins_need_body: false,
            allows_http: true,
        })
    }

    fn spec(hosts: &[&str], methods: &[&str], paths: &[&str], prio: i64, created: i64) -> RouteSpec {
        RouteSpec {
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            methods: methods.iter().map(|s| s.to_string()).collect(),
            headers: Vec::new(),
            paths: paths.iter().map(|s| s.to_string()).collect(),
            regex_priority: prio,
            created_at: created,
        }
    }

    fn router() -> Router {
        let mut b = RouterBuilder::default();
        b.add(target("root"), spec(&[], &[], &["/"], 0, 1)).unwrap();
        b.add(target("api"), spec(&[], &[], &["/api"], 0, 2)).unwrap();
        b.add(target("api-v1"), spec(&[], &[], &["/api/v1"], 0, 3)).unwrap();
        b.add(target("users-re"), spec(&[], &[], &["~/api/users/\\d+$"], 0, 4)).unwrap();
        b.add(target("host"), spec(&["example.com"], &[], &["/api"], 0, 5)).unwrap();
        b.add(target("wild"), spec(&["*.example.org"], &[], &["/"], 0, 6)).unwrap();
        b.add(target("post"), spec(&[], &["POST"], &["/api"], 0, 7)).unwrap();
        b.build()
    }

    #[track_caller]
    fn check(method: &str, host: &str, path: &str, expect: Option<(&str, usize)>) {
        let r = router();
        let m = r.find(&method.parse().unwrap(), host, path, &http::HeaderMap::new());
        assert_eq!(m.map(|m| (&*m.target.route_id, m.matched_len)), expect);
    }

    #[test]
    fn routes_match_in_kong_priority_order() {
        check("GET", "x", "/api/v1/things", Some(("api-v1", 7)));
        check("GET", "x", "/api/x", Some(("api", 4)));
        check("GET", "x", "/apix", Some(("api", 4)));
        check("GET", "x", "/api/users/42", Some(("users-re", 13)));
        check("GET", "x", "/other", Some(("root", 1)));
        check("GET", "example.com:8000", "/api/x", Some(("host", 4)));
        check("GET", "a.example.org", "/nothing", Some(("wild", 1)));
        check("GET", "example.org", "/x", Some(("root", 1)));
        check("POST", "x", "/api", Some(("post", 4)));
    }

    #[test]
    fn nothing_matches_without_a_catch_all() {
        let mut b = RouterBuilder::default();
        b.add(target("api"), spec(&[], &["GET"], &["/api"], 0, 1)).unwrap();
        let r = b.build();
        assert!(r.find(&http::Method::GET, "h", "/x", &http::HeaderMap::new()).is_none());
        assert!(r.find(&http::Method::PUT, "h", "/api", &http::HeaderMap::new()).is_none());
    }

    #[test]
    fn upstream_paths_follow_kongs_v0_table() {
        // Kong's documented table: (service path, route path, strip, request) -> upstream.
        let cases = [
            ("/s", "/fv0", false, "/fv0req", "/s/fv0req"),
            ("/s", "/tv0", true, "/tv0req", "/s/req"),
            ("/s", "/fv0/", false, "/fv0/req", "/s/fv0/req"),
            ("/s", "/tv0/", true, "/tv0/req", "/s/req"),
            ("/", "/api", true, "/api/users", "/users"),
            ("/", "/api", true, "/api", "/"),
            ("/s", "/api", true, "/api", "/s"),
            ("/s/", "/api", true, "/api/x", "/s/x"),
        ];
        for (svc, route, strip, req, want) in cases {
            assert_eq!(upstream_path(Some(svc), req, route.len(), strip, false), want, "{svc} {route} {req}");
        }
        assert_eq!(upstream_path(None, "/a/b", 2, false, false), "/a/b");
        assert_eq!(upstream_path(Some("/s"), "/tv1req", 4, true, true), "/sreq");
    }
}
