//! An upstream that describes every request it gets, in the shape of httpbin's `/anything`.
//!
//! Gateway tests need to see exactly what reached the upstream (which headers a plugin added, what the
//! path became after `strip_path`), and benchmarks need an upstream cheap enough not to be the
//! bottleneck. So the answer is written straight into one buffer per request: no intermediate JSON tree
//! except for a JSON request body, which is parsed to normalize it.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The largest request body echoed back; larger ones get `413`. Keeps a stray upload from eating the
/// memory of a test machine, while staying far above anything a test or benchmark sends.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// Serves the echo upstream on `listener` until `shutdown` completes.
///
/// HTTP/1.1 (with keep-alive) and cleartext HTTP/2 (h2c, prior knowledge) are both accepted on the same
/// port, told apart by the connection preface. Once `shutdown` completes the listener is closed, open
/// connections are asked to finish (in-flight requests complete, idle keep-alive connections close) and
/// the function returns when the last one is gone.
///
/// Accept errors do not stop the server: they are either about one connection (reset before accept) or
/// transient (out of file descriptors), and a test upstream that silently dies is worse than one that
/// retries. The `io::Result` is kept so callers need not change if a fatal case is ever added.
pub async fn serve_echo(listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
    crate::accept::serve("echo", listener, shutdown, |peer| {
        // Formatted once per connection, not once per request.
        let origin: Arc<str> = peer.ip().to_canonical().to_string().into();
        move |req| echo(req, Arc::clone(&origin))
    })
    .await
}

/// Answers one request.
async fn echo(req: Request<Incoming>, origin: Arc<str>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let status =
                if e.is::<LengthLimitError>() { StatusCode::PAYLOAD_TOO_LARGE } else { StatusCode::BAD_REQUEST };
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = status;
            return Ok(resp);
        }
    };
    let mut resp = Response::new(Full::new(Bytes::from(render(&parts, &body, &origin))));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // httpbin's `/response-headers?Name=value`: the query becomes response headers, so tests can
    // see how a gateway treats headers the upstream already set.
    if parts.uri.path().ends_with("/response-headers")
        && let Some(q) = parts.uri.query()
    {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            if let (Ok(name), Ok(value)) = (http::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v)) {
                resp.headers_mut().append(name, value);
            }
        }
    }
    Ok(resp)
}

/// Writes the httpbin-style description of a request: `args`, `data`, `files`, `form`, `headers`,
/// `json`, `method`, `origin`, `url`, in that order.
fn render(parts: &Parts, body: &[u8], origin: &str) -> Vec<u8> {
    let data = String::from_utf8_lossy(body);
    let mut out = Vec::with_capacity(512 + 2 * body.len());

    out.extend_from_slice(b"{\"args\":");
    let query = parts.uri.query().unwrap_or_default();
    push_grouped(&mut out, form_urlencoded::parse(query.as_bytes()));

    out.extend_from_slice(b",\"data\":");
    push_str(&mut out, &data);

    out.extend_from_slice(b",\"files\":{},\"form\":");
    if is_form(&parts.headers) {
        push_grouped(&mut out, form_urlencoded::parse(body));
    } else {
        out.extend_from_slice(b"{}");
    }

    out.extend_from_slice(b",\"headers\":");
    push_headers(&mut out, parts);

    out.extend_from_slice(b",\"json\":");
    push_json_body(&mut out, &data);

    out.extend_from_slice(b",\"method\":");
    push_str(&mut out, parts.method.as_str());

    out.extend_from_slice(b",\"origin\":");
    push_str(&mut out, origin);

    out.extend_from_slice(b",\"url\":\"http://");
    push_escaped(&mut out, &host(parts));
    push_escaped(&mut out, parts.uri.path());
    if let Some(q) = parts.uri.query() {
        out.push(b'?');
        push_escaped(&mut out, q);
    }
    out.extend_from_slice(b"\"}");
    out
}

/// The host the client asked for: the `Host` header, or the `:authority` of an HTTP/2 request (which
/// carries no `Host` header).
fn host(parts: &Parts) -> Cow<'_, str> {
    match parts.headers.get(HOST) {
        Some(h) => String::from_utf8_lossy(h.as_bytes()),
        None => Cow::Borrowed(parts.uri.authority().map(|a| a.as_str()).unwrap_or_default()),
    }
}

/// Whether the body is a URL-encoded form, the only kind httpbin parses into `form` besides multipart.
fn is_form(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
        let media_type = ct.split_once(';').map_or(ct, |(m, _)| m);
        media_type.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded")
    })
}

/// Writes name/value pairs as an object, keys in order of first appearance; a repeated key becomes an
/// array of its values, as httpbin does.
fn push_grouped<'a>(out: &mut Vec<u8>, pairs: impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)>) {
    let pairs: Vec<_> = pairs.collect();
    // A stable sort by key puts repeats next to each other, in request order, without a hash map.
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by(|&a, &b| pairs[a].0.cmp(&pairs[b].0));
    let mut groups: Vec<&[usize]> = order.chunk_by(|&a, &b| pairs[a].0 == pairs[b].0).collect();
    groups.sort_unstable_by_key(|g| g[0]);

    out.push(b'{');
    for (n, group) in groups.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        push_str(out, &pairs[group[0]].0);
        out.push(b':');
        if let [only] = group {
            push_str(out, &pairs[*only].1);
            continue;
        }
        out.push(b'[');
        for (i, &idx) in group.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_str(out, &pairs[idx].1);
        }
        out.push(b']');
    }
    out.push(b'}');
}

/// Writes the request headers as an object of Title-Case names; repeated headers are joined with `,`.
fn push_headers(out: &mut Vec<u8>, parts: &Parts) {
    out.push(b'{');
    let mut first = true;
    if !parts.headers.contains_key(HOST)
        && let Some(authority) = parts.uri.authority()
    {
        // Shown for HTTP/2 too, so tests see the same headers whatever the protocol.
        out.extend_from_slice(b"\"Host\":");
        push_str(out, authority.as_str());
        first = false;
    }
    for name in parts.headers.keys() {
        if !first {
            out.push(b',');
        }
        first = false;
        // Header names are tokens: no character in them needs escaping.
        out.push(b'"');
        push_title_case(out, name.as_str());
        out.extend_from_slice(b"\":\"");
        for (i, value) in parts.headers.get_all(name).iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_escaped(out, &String::from_utf8_lossy(value.as_bytes()));
        }
        out.push(b'"');
    }
    out.push(b'}');
}

/// Writes the body parsed as JSON, or `null` if it is not JSON, whatever its `Content-Type` (as
/// httpbin). Parsing into a tree and writing it back normalizes it, so a body that is JSON by grammar but
/// not by value (a lone surrogate, `1e999`) becomes `null` instead of making the whole answer invalid.
fn push_json_body(out: &mut Vec<u8>, body: &str) {
    let start = out.len();
    let written = match body.trim_ascii() {
        "" => false,
        text => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v) => serde_json::to_writer(&mut *out, &v).is_ok(),
            Err(_) => false,
        },
    };
    if !written {
        out.truncate(start);
        out.extend_from_slice(b"null");
    }
}

/// Converts a header name to the canonical Title-Case form httpbin shows: the first letter and every
/// letter after a `-` upper case, all others lower case (`x-forwarded-for` → `X-Forwarded-For`).
pub fn title_case(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let mapped = if upper { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() };
            upper = c == '-';
            mapped
        })
        .collect()
}

/// [`title_case`] written straight into the output, for the ASCII names hyper hands us.
fn push_title_case(out: &mut Vec<u8>, name: &str) {
    let mut upper = true;
    out.extend(name.bytes().map(|b| {
        let mapped = if upper { b.to_ascii_uppercase() } else { b.to_ascii_lowercase() };
        upper = b == b'-';
        mapped
    }));
}

/// Writes `s` as a JSON string, quotes included.
fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    push_escaped(out, s);
    out.push(b'"');
}

/// Writes `s` escaped for the inside of a JSON string, copying unescaped runs in one go.
fn push_escaped(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use serde_json::{Value, json};
    use std::net::SocketAddr;
    use std::time::Duration;
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    fn describe(req: Request<&'static str>) -> Value {
        let (parts, body) = req.into_parts();
        let out = render(&parts, body.as_bytes(), "10.1.2.3");
        serde_json::from_slice(&out).expect("the answer is valid JSON")
    }

    /// Asks the server to stop and checks that it finishes, even with pooled client connections open.
    async fn stop_and_wait(stop: oneshot::Sender<()>, server: JoinHandle<io::Result<()>>) {
        stop.send(()).expect("server still running");
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("shutdown finishes")
            .expect("server task")
            .expect("server result");
    }

    async fn start() -> (SocketAddr, oneshot::Sender<()>, JoinHandle<io::Result<()>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve_echo(listener, async move {
            let _ = stopped.await;
        }));
        (addr, stop, server)
    }

    #[test]
    fn title_case_capitalizes_each_dash_separated_word() {
        assert_eq!(title_case("authenticated-user"), "Authenticated-User");
        assert_eq!(title_case("x-forwarded-for"), "X-Forwarded-For");
        assert_eq!(title_case("HOST"), "Host");
        assert_eq!(title_case("www-authenticate"), "Www-Authenticate");
        assert_eq!(title_case("x-b3-traceid"), "X-B3-Traceid");
        assert_eq!(title_case(""), "");
        assert_eq!(title_case("-a--b-"), "-A--B-");
    }

    #[test]
    fn answer_keys_come_in_httpbin_order() {
        let v = describe(Request::get("/").header("host", "h").body("").expect("request"));
        let keys: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
        assert_eq!(keys, ["args", "data", "files", "form", "headers", "json", "method", "origin", "url"]);
    }

    #[test]
    fn repeated_query_args_become_arrays_in_first_seen_order() {
        let v = describe(Request::get("/p?b=1&a=x%20y&b=2&c&b=3").header("host", "h").body("").expect("request"));
        assert_eq!(v["args"], json!({"b": ["1", "2", "3"], "a": "x y", "c": ""}));
        let keys: Vec<&str> = v["args"].as_object().expect("object").keys().map(String::as_str).collect();
        assert_eq!(keys, ["b", "a", "c"]);
        assert_eq!(v["url"], "http://h/p?b=1&a=x%20y&b=2&c&b=3");
    }

    #[test]
    fn an_empty_request_shows_empty_data_and_null_json() {
        let v = describe(Request::get("/x").header("host", "example.test:8000").body("").expect("request"));
        assert_eq!(v["args"], json!({}));
        assert_eq!(v["data"], "");
        assert_eq!(v["files"], json!({}));
        assert_eq!(v["form"], json!({}));
        assert_eq!(v["json"], Value::Null);
        assert_eq!(v["method"], "GET");
        assert_eq!(v["origin"], "10.1.2.3");
        assert_eq!(v["url"], "http://example.test:8000/x");
    }

    #[test]
    fn url_encoded_bodies_are_parsed_into_form() {
        let req = Request::post("/")
            .header("content-type", "Application/X-WWW-Form-Urlencoded; charset=utf-8")
            .body("a=1&b=two+words&a=2")
            .expect("request");
        let v = describe(req);
        assert_eq!(v["form"], json!({"a": ["1", "2"], "b": "two words"}));
        assert_eq!(v["data"], "a=1&b=two+words&a=2");
        assert_eq!(v["json"], Value::Null);
    }

    #[test]
    fn json_bodies_are_parsed_whatever_the_content_type() {
        let v =
            describe(Request::post("/").header("content-type", "text/plain").body(" {\"k\": [1, null]}\n").expect("r"));
        assert_eq!(v["json"], json!({"k": [1, null]}));
        assert_eq!(v["form"], json!({}));
        let v = describe(Request::post("/").body("{\"s\": \"\\ud800\"}").expect("request"));
        assert_eq!(v["json"], Value::Null, "JSON a strict parser refuses is not passed through");
        let v = describe(Request::post("/").body("not json").expect("request"));
        assert_eq!(v["json"], Value::Null);
    }

    #[test]
    fn headers_are_title_cased_and_repeats_joined_with_commas() {
        let req = Request::get("/")
            .header("x-forwarded-for", "1.1.1.1")
            .header("x-multi", "a")
            .header("x-multi", "b")
            .header("x-quote", "say \"hi\"\\")
            .body("")
            .expect("request");
        let v = describe(req);
        assert_eq!(v["headers"], json!({"X-Forwarded-For": "1.1.1.1", "X-Multi": "a,b", "X-Quote": "say \"hi\"\\"}));
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut out = Vec::new();
        push_str(&mut out, "a\u{1}b\n\t\r\"\\é");
        assert_eq!(String::from_utf8(out).expect("utf-8"), r#""a\u0001b\n\t\r\"\\é""#);
    }

    #[test]
    fn non_utf8_bodies_are_shown_lossily() {
        let (parts, ()) = Request::post("/").body(()).expect("request").into_parts();
        let out = render(&parts, b"a\xffb", "::1");
        let v: Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(v["data"], "a\u{fffd}b");
        assert_eq!(v["json"], Value::Null);
    }

    #[tokio::test]
    async fn serves_http1_requests_over_tcp() {
        let (addr, stop, server) = start().await;
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let req = Request::post(format!("http://{addr}/some/path?a=1&a=2&b=x"))
            .header("authenticated-user", "alice")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(br#"{"k":[1,true]}"#)))
            .expect("request");
        let resp = client.request(req).await.expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let v: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(v["args"], json!({"a": ["1", "2"], "b": "x"}));
        assert_eq!(v["data"], r#"{"k":[1,true]}"#);
        assert_eq!(v["json"], json!({"k": [1, true]}));
        assert_eq!(v["headers"]["Authenticated-User"], "alice");
        assert_eq!(v["headers"]["Host"], addr.to_string());
        assert_eq!(v["method"], "POST");
        assert_eq!(v["origin"], "127.0.0.1");
        assert_eq!(v["url"], format!("http://{addr}/some/path?a=1&a=2&b=x"));

        // The client keeps its connection alive in its pool; shutting down must still finish.
        stop_and_wait(stop, server).await;
    }

    #[tokio::test]
    async fn serves_h2c_requests_on_the_same_port() {
        let (addr, stop, server) = start().await;
        let client = Client::builder(TokioExecutor::new()).http2_only(true).build_http::<Full<Bytes>>();
        let req = Request::put(format!("http://{addr}/h2")).body(Full::new(Bytes::new())).expect("request");
        let resp = client.request(req).await.expect("response");
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let v: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(v["method"], "PUT");
        assert_eq!(v["headers"]["Host"], addr.to_string());
        assert_eq!(v["url"], format!("http://{addr}/h2"));

        stop_and_wait(stop, server).await;
    }
}
