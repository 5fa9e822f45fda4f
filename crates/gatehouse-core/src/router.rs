//! Route matching as Kong's default `traditional_compatible` router orders it.
//!
//! Each route is split into one entry per path and the entries are sorted once, at compile time, by
//! Kong's priority (most significant first): number of match fields set, plain hosts only, header
//! count, regex path over prefix path, `regex_priority`, prefix length; then older routes first. The
//! first entry in that order that matches wins.
//!
//! A request does not walk every entry. At compile time the entries are indexed by path: prefix
//! paths in a byte trie, regex paths in one `RegexSet` (when there are many), and the few entries
//! without a path in a list. A request walks the trie along its own path (so only the prefixes it
//! starts with are looked at), asks the regex set once which regex paths match, and checks the
//! path-less entries; from each of those ascending candidate lists only entries before the best
//! match so far are checked. The answer is the one the full walk gives (a test checks both on
//! random tables), at a cost that follows the request's path length rather than the table size.

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
    /// In priority order; the indexes below hold positions in it, each list ascending.
    entries: Vec<Entry>,
    /// Prefix paths, byte by byte.
    prefixes: Trie,
    /// Every regex path, to learn with one search which of them match (when there are many).
    regexes: Option<regex::RegexSet>,
    /// The entries of the regex paths.
    regex_entries: Vec<u32>,
    /// Entries without a path: they match any path.
    pathless: Vec<u32>,
}

/// From how many regex paths on they are searched as one `RegexSet`.
const REGEX_SET_MIN: usize = 8;

/// A byte trie of prefix paths. Node 0 is the root (the empty prefix).
#[derive(Default)]
struct Trie {
    nodes: Vec<Node>,
}

#[derive(Default)]
struct Node {
    /// Sorted by byte.
    children: Vec<(u8, u32)>,
    /// Entries whose prefix path ends here, ascending.
    entries: Vec<u32>,
}

impl Trie {
    fn insert(&mut self, path: &[u8], entry: u32) {
        if self.nodes.is_empty() {
            self.nodes.push(Node::default());
        }
        let mut at = 0usize;
        for &b in path {
            at = match self.nodes[at].children.binary_search_by_key(&b, |c| c.0) {
                Ok(i) => self.nodes[at].children[i].1 as usize,
                Err(i) => {
                    let next = self.nodes.len();
                    self.nodes.push(Node::default());
                    self.nodes[at].children.insert(i, (b, next as u32));
                    next
                }
            };
        }
        self.nodes[at].entries.push(entry);
    }
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
                None => PathPat::Prefix(prefix_path(p)),
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
        let entries: Vec<Entry> = self.keyed.into_iter().map(|k| k.3).collect();
        let mut router = Router { entries, ..Router::default() };
        let mut patterns = Vec::new();
        // Entries are visited in priority order, so every list is built ascending.
        for (i, e) in router.entries.iter().enumerate() {
            let i = i as u32;
            match &e.path {
                Some(PathPat::Prefix(p)) => router.prefixes.insert(p.as_bytes(), i),
                Some(PathPat::Regex(re)) => {
                    patterns.push(re.as_str().to_owned());
                    router.regex_entries.push(i);
                }
                None => router.pathless.push(i),
            }
        }
        // Each pattern compiled on its own already; a set of them can only fail on size, and then
        // every regex entry is simply tried in turn, as it is for a few of them, where that is
        // faster than a set search (a set answers "none" in ~40 ns, "this one" in ~500 ns; each
        // regex on its own takes ~50 ns).
        router.regexes = if patterns.len() < REGEX_SET_MIN { None } else { regex::RegexSet::new(&patterns).ok() };
        router
    }
}

/// A route's prefix path in the form request paths are matched in ([`crate::path::normalize`]),
/// so `/%7Euser` matches a request for `/~user` (both are `/~user` once normalized). A prefix the
/// normalizer refuses (`/..`, a bad escape) is kept as written: no normalized request path can
/// start with it, so the route simply never matches by that path, and the rest of the table
/// still compiles.
fn prefix_path(p: &str) -> String {
    crate::path::normalize(p).map_or_else(|_| p.to_owned(), |n| n.into_owned())
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

/// What a request offers to match on.
struct Request<'r> {
    method: &'r http::Method,
    /// Lowercase, without the port.
    bare_host: &'r str,
    /// Lowercase, as sent.
    host: &'r str,
    path: &'r str,
    headers: &'r http::HeaderMap,
}

impl<'r> Request<'r> {
    fn new(method: &'r http::Method, host: &'r str, path: &'r str, headers: &'r http::HeaderMap) -> Request<'r> {
        let bare_host = match crate::entity::split_host_port(host) {
            Some((h, Some(_))) if !host.ends_with(']') => &host[..h.len()],
            _ => host,
        };
        Request { method, bare_host, host, path, headers }
    }
}

impl Entry {
    /// How many bytes of the path matched, when every criterion of the entry matches.
    fn matches(&self, r: &Request<'_>) -> Option<usize> {
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == r.method) {
            return None;
        }
        if !self.hosts.is_empty() && !self.hosts.iter().any(|h| h.matches(r.bare_host, r.host)) {
            return None;
        }
        for (name, values) in self.headers.iter() {
            let ok = r
                .headers
                .get_all(name)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| values.iter().any(|want| want.eq_ignore_ascii_case(v))));
            if !ok {
                return None;
            }
        }
        match &self.path {
            None => Some(0),
            Some(PathPat::Prefix(p)) => r.path.starts_with(p.as_str()).then_some(p.len()),
            Some(PathPat::Regex(re)) => re.find(r.path).map(|m| m.end()),
        }
    }
}

impl Router {
    /// Finds the route for a request. `host` is the `Host` header (or URI authority), lowercase;
    /// `path` is the request path normalized by [`crate::path::normalize`], the form prefix paths
    /// are kept in, so that what is matched is what the upstream is sent.
    pub fn find<'a>(
        &'a self,
        method: &http::Method,
        host: &str,
        path: &str,
        headers: &http::HeaderMap,
    ) -> Option<RouteMatch<'a>> {
        let req = Request::new(method, host, path, headers);
        // The best (lowest) entry that matched so far, and its matched length.
        let mut best: Option<(u32, usize)> = None;
        let mut try_list = |list: &mut dyn Iterator<Item = u32>| {
            for i in list {
                if best.is_some_and(|(b, _)| b < i) {
                    return;
                }
                if let Some(len) = self.entries[i as usize].matches(&req) {
                    best = Some((i, len));
                    return;
                }
            }
        };
        if let Some(trie) = self.prefixes.nodes.first() {
            try_list(&mut trie.entries.iter().copied());
            let mut node = trie;
            for &b in path.as_bytes() {
                let Ok(c) = node.children.binary_search_by_key(&b, |c| c.0) else { break };
                node = &self.prefixes.nodes[node.children[c].1 as usize];
                try_list(&mut node.entries.iter().copied());
            }
        }
        match &self.regexes {
            // One search for all regex paths; only the ones that match are looked at again (for
            // the other criteria and the match's end).
            Some(set) => {
                if set.is_match(path) {
                    try_list(&mut set.matches(path).into_iter().map(|p| self.regex_entries[p]));
                }
            }
            None => try_list(&mut self.regex_entries.iter().copied()),
        }
        try_list(&mut self.pathless.iter().copied());
        best.map(|(i, matched_len)| RouteMatch { target: &self.entries[i as usize].target, matched_len })
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
/// `None` when the stripped leftover would start a dot segment (the proxy answers 400).
pub fn upstream_path(
    service_path: Option<&str>,
    req_path: &str,
    matched_len: usize,
    strip: bool,
    v1: bool,
) -> Option<String> {
    if strip {
        // The request path is normal, but a prefix can end inside a segment (`/api` matches
        // `/api../x`): its leftover joined after the service path would be a new dot segment
        // (`/svc/../x`) and climb out of the service path. Refused, never forwarded.
        let postfix = req_path.get(matched_len..).unwrap_or("");
        if crate::path::starts_with_dot_segment(postfix.strip_prefix('/').unwrap_or(postfix)) {
            return None;
        }
    }
    Some(join_upstream(service_path, req_path, matched_len, strip, v1))
}

fn join_upstream(service_path: Option<&str>, req_path: &str, matched_len: usize, strip: bool, v1: bool) -> String {
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

    /// A small deterministic generator (xorshift64*), so a failure replays.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[(self.next() % from.len() as u64) as usize]
        }
        fn some<'a>(&mut self, from: &[&'a str], max: u64) -> Vec<&'a str> {
            (0..self.next() % (max + 1)).map(|_| self.pick(from)).collect()
        }
    }

    #[test]
    fn the_index_finds_what_walking_every_entry_finds() {
        const PATHS: &[&str] = &[
            "/",
            "/a",
            "/ab",
            "/a/",
            "/a/b",
            "/a/bc",
            "/b",
            "/ba/c",
            "/abc/d",
            "~/a/\\d+$",
            "~/b",
            "~/(a|b)/c",
            "~/.*x$",
        ];
        const HOSTS: &[&str] = &["h.example", "*.example", "h.*", "h.example:8000", "other"];
        const METHODS: &[&str] = &["GET", "POST", "PUT"];
        const REQ_PATHS: &[&str] =
            &["/", "/a", "/ab", "/abc/d", "/a/12", "/a/b", "/a/bc/x", "/b", "/ba/c", "/b/c", "/x", "/zx", ""];
        const REQ_HOSTS: &[&str] = &["h.example", "h.example:8000", "a.example", "h.org", "other", "x"];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for table in 0..300 {
            let mut b = RouterBuilder::default();
            for r in 0..(rng.next() % 40) {
                let mut sp = spec(&rng.some(HOSTS, 2), &rng.some(METHODS, 2), &rng.some(PATHS, 3), 0, 0);
                sp.regex_priority = (rng.next() % 3) as i64;
                sp.created_at = (rng.next() % 5) as i64;
                if rng.next().is_multiple_of(5) {
                    sp.headers = vec![("x-v".into(), vec!["1".into()])];
                }
                b.add(target(&format!("t{table}-r{r}")), sp).unwrap();
            }
            let router = b.build();
            for _ in 0..100 {
                let method: http::Method = rng.pick(METHODS).parse().unwrap();
                let (host, path) = (rng.pick(REQ_HOSTS), rng.pick(REQ_PATHS));
                let mut headers = http::HeaderMap::new();
                if rng.next().is_multiple_of(2) {
                    headers.insert("x-v", http::HeaderValue::from_static("1"));
                }
                let got =
                    router.find(&method, host, path, &headers).map(|m| (m.target.route_id.clone(), m.matched_len));
                // What the index must agree with: the first entry, in order, that matches.
                let req = Request::new(&method, host, path, &headers);
                let want =
                    router.entries.iter().find_map(|e| e.matches(&req).map(|len| (e.target.route_id.clone(), len)));
                assert_eq!(got, want, "table {table}: {method} {host} {path}");
            }
        }
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
    fn prefix_paths_are_kept_in_normal_form() {
        let mut b = RouterBuilder::default();
        b.add(target("tilde"), spec(&[], &[], &["/%7euser", "/a%2fb", "/x/./y"], 0, 1)).unwrap();
        b.add(target("odd"), spec(&[], &[], &["/.."], 0, 2)).unwrap();
        let r = b.build();
        let find = |p: &str| r.find(&http::Method::GET, "h", p, &http::HeaderMap::new()).map(|m| m.matched_len);
        assert_eq!(find("/~user/z"), Some(6));
        assert_eq!(find("/a%2Fb"), Some(6));
        assert_eq!(find("/x/y/z"), Some(4));
        assert_eq!(find("/"), None);
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
            assert_eq!(
                upstream_path(Some(svc), req, route.len(), strip, false).as_deref(),
                Some(want),
                "{svc} {route} {req}"
            );
        }
        assert_eq!(upstream_path(None, "/a/b", 2, false, false).as_deref(), Some("/a/b"));
        assert_eq!(upstream_path(Some("/s"), "/tv1req", 4, true, true).as_deref(), Some("/sreq"));
    }

    #[test]
    fn a_stripped_leftover_never_starts_a_dot_segment() {
        for (req, v1) in [("/api../x", false), ("/api..", false), ("/api./x", false), ("/api..;/x", true)] {
            for svc in ["/s", "/s/"] {
                assert_eq!(upstream_path(Some(svc), req, 4, true, v1), None, "{svc} {req}");
            }
        }
        // Dots that are part of a longer name, or a leftover that is not stripped, are data.
        assert_eq!(upstream_path(Some("/s"), "/api...x", 4, true, false).as_deref(), Some("/s/...x"));
        assert_eq!(upstream_path(Some("/s"), "/api.v2", 4, true, false).as_deref(), Some("/s/.v2"));
        assert_eq!(upstream_path(Some("/s"), "/api../x", 4, false, false).as_deref(), Some("/s/api../x"));
    }
}
