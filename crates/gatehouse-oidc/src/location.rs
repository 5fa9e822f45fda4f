//! URLs the sign-in makes: the request's own URL (the default `redirect_uri`, and where the
//! browser returns), a redirect target with arguments added (`login_redirect_mode`), and the
//! check every configured redirect target passes at build time.
//!
//! The request's URL is built as Kong's `get_redirect_uri` builds it: the forwarded scheme, host,
//! port and path, where "forwarded" values are believed only from a trusted proxy
//! (`Ctx::trusted_proxy`); otherwise the `Host` header's host and the listener's port.

use gatehouse_core::plugin::Ctx;
use http::request::Parts;

/// Where arguments go in a redirect target (`login_redirect_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ArgsIn {
    Query,
    Fragment,
}

/// The first value of a trusted proxy's forwarding header, trimmed.
fn forwarded<'a>(ctx: &Ctx, parts: &'a Parts, name: &str) -> Option<&'a str> {
    if !ctx.trusted_proxy {
        return None;
    }
    let v = parts.headers.get(name)?.to_str().ok()?;
    Some(v.split(',').next().unwrap_or(v).trim()).filter(|v| !v.is_empty())
}

/// Splits `host[:port]` (IPv6 in brackets) into its host and port.
fn split_host(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => (&authority[..=end], authority[end + 1..].strip_prefix(':')),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (authority, None),
    }
}

/// A host name or address literal: nothing that could end the authority or start a path.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':' | b'[' | b']'))
}

/// A path to put in a URL: starts with `/`, printable ASCII; spaces and the characters that would
/// end the path are percent-encoded.
fn url_path(path: &str) -> Option<String> {
    if !path.starts_with('/') || path.starts_with("//") {
        return None;
    }
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            ' ' => out.push_str("%20"),
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            c if c.is_ascii_graphic() => out.push(c),
            _ => return None,
        }
    }
    Some(out)
}

/// The request's own URL without its query (Kong's `get_redirect_uri`): `None` when the request
/// names no usable host.
pub(crate) fn request_url(ctx: &Ctx, parts: &Parts) -> Option<String> {
    let scheme = if ctx.https { "https" } else { "http" };
    let (host, host_port) = match forwarded(ctx, parts, "x-forwarded-host") {
        Some(h) => split_host(h),
        None => match parts.headers.get(http::header::HOST).and_then(|v| v.to_str().ok()) {
            Some(h) => split_host(h.trim()),
            None => (parts.uri.host()?, None),
        },
    };
    if !valid_host(host) {
        return None;
    }
    let port: Option<u16> = match forwarded(ctx, parts, "x-forwarded-port") {
        Some(p) => Some(p.parse().ok()?),
        None if ctx.local_port != 0 => Some(ctx.local_port),
        None => host_port.and_then(|p| p.parse().ok()),
    };
    let path = url_path(forwarded(ctx, parts, "x-forwarded-path").unwrap_or(parts.uri.path()))?;
    let mut url = format!("{scheme}://{host}");
    match (scheme, port) {
        ("http", Some(80)) | ("https", Some(443)) | (_, None) => {}
        (_, Some(p)) => {
            url.push(':');
            url.push_str(&p.to_string());
        }
    }
    url.push_str(&path);
    Some(url)
}

/// `base` with `query` (a raw query string) and `args` added, the args in the query or the
/// fragment (Kong's login redirect: trailing `&`s of the base's query are trimmed).
pub(crate) fn with_args(base: &str, query: Option<&str>, args: &[(&str, &str)], mode: ArgsIn) -> String {
    let (rest, fragment) = match base.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (base, None),
    };
    let (path, base_query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q.trim_end_matches('&'))),
        None => (rest, None),
    };
    let encoded = (!args.is_empty()).then(|| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in args {
            s.append_pair(k, v);
        }
        s.finish()
    });
    let join = |parts: &[Option<&str>]| {
        let joined: Vec<&str> = parts.iter().flatten().copied().filter(|p| !p.is_empty()).collect();
        (!joined.is_empty()).then(|| joined.join("&"))
    };
    let (q_args, f_args) = match mode {
        ArgsIn::Query => (encoded.as_deref(), None),
        ArgsIn::Fragment => (None, encoded.as_deref()),
    };
    let mut out = path.to_string();
    if let Some(q) = join(&[base_query, query, q_args]) {
        out.push('?');
        out.push_str(&q);
    }
    if let Some(f) = join(&[fragment, f_args]) {
        out.push('#');
        out.push_str(&f);
    }
    out
}

/// A configured redirect target (`login_redirect_uri`, `logout_redirect_uri`, `*_redirect_uri`):
/// an absolute `http(s)` URL with a host and no user info, and nothing a header cannot carry.
/// Nothing in a request ever chooses the target, so this is all an open redirect needs.
pub(crate) fn checked_target(uri: &str) -> Result<(), String> {
    if !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("{uri:?} must be a URL of visible ASCII characters (percent-encode the others)"));
    }
    // Browsers read `\` as `/` in http(s) URLs, so it would end the host early.
    let authority = uri.split_once("://").map_or("", |(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""));
    if authority.contains(['\\', '@']) {
        return Err(format!("{uri:?} must not carry user info or a backslash in its host"));
    }
    let url = url::Url::parse(uri).map_err(|e| format!("{uri:?} is not an absolute URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{uri:?} must be an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{uri:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{uri:?} must not carry user info"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ctx(trusted: bool, https: bool, port: u16) -> Ctx {
        let mut c = Ctx::new(
            "127.0.0.1:1".parse().expect("addr"),
            "r".into(),
            None,
            Arc::new(gatehouse_core::consumers::Consumers::new([])),
        );
        c.trusted_proxy = trusted;
        c.https = https;
        c.local_port = port;
        c
    }

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    #[test]
    fn the_request_url_is_kongs_forwarded_url_without_the_query() {
        let p = parts("/anything/a%20b?hello=world", &[("host", "127.0.0.1:8000")]);
        assert_eq!(request_url(&ctx(false, false, 8000), &p).as_deref(), Some("http://127.0.0.1:8000/anything/a%20b"));
        let p = parts("/x", &[("host", "gw.example"), ("x-forwarded-host", "evil.example")]);
        assert_eq!(
            request_url(&ctx(false, false, 80), &p).as_deref(),
            Some("http://gw.example/x"),
            "an untrusted X-Forwarded-Host is not believed, and port 80 is left out"
        );
        let p = parts(
            "/x",
            &[
                ("host", "10.0.0.5:8000"),
                ("x-forwarded-host", "app.example, proxy"),
                ("x-forwarded-port", "443"),
                ("x-forwarded-path", "/app/x"),
            ],
        );
        assert_eq!(request_url(&ctx(true, true, 8000), &p).as_deref(), Some("https://app.example/app/x"));
        let p = parts("/x", &[("host", "[::1]:9000")]);
        assert_eq!(request_url(&ctx(false, false, 9000), &p).as_deref(), Some("http://[::1]:9000/x"));
    }

    #[test]
    fn hostile_hosts_and_paths_make_no_url() {
        for host in ["a/b", "a@b", "a b", "", "x?y", "a\\b"] {
            let p = parts("/x", &[("host", host)]);
            assert_eq!(request_url(&ctx(false, false, 8000), &p), None, "{host:?}");
        }
        let p = parts("/x", &[("host", "h"), ("x-forwarded-path", "//evil.example/")]);
        assert_eq!(request_url(&ctx(true, false, 8000), &p), None, "a path that would be an authority");
        let p = parts("/x", &[("host", "h"), ("x-forwarded-port", "99999")]);
        assert_eq!(request_url(&ctx(true, false, 8000), &p), None);
    }

    #[test]
    fn args_go_in_the_query_or_the_fragment() {
        let a = [("id_token", "x.y.z")];
        assert_eq!(with_args("https://a/b", None, &a, ArgsIn::Fragment), "https://a/b#id_token=x.y.z");
        assert_eq!(
            with_args("https://a/b?c=d&&", Some("e=f"), &a, ArgsIn::Query),
            "https://a/b?c=d&e=f&id_token=x.y.z"
        );
        assert_eq!(
            with_args("https://a/b#top", Some("e=f"), &a, ArgsIn::Fragment),
            "https://a/b?e=f#top&id_token=x.y.z"
        );
        assert_eq!(with_args("https://a/b", None, &[], ArgsIn::Fragment), "https://a/b");
        assert_eq!(with_args("https://a/b", None, &[("v", "a b&c")], ArgsIn::Query), "https://a/b?v=a+b%26c");
    }

    #[test]
    fn redirect_targets_are_absolute_http_urls_without_user_info() {
        assert!(checked_target("https://app.example/after?x=1").is_ok());
        assert!(checked_target("http://127.0.0.1:8000/").is_ok());
        for bad in ["/relative", "//evil.example/", "javascript:alert(1)", "https://user:pw@evil.example/", "ftp://x/"]
        {
            assert!(checked_target(bad).is_err(), "{bad}");
        }
    }
}
