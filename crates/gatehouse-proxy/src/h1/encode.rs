//! The request head as it goes on the wire.

use http::request::Parts;
use http::{HeaderName, Method, header};

/// How the request body is framed on the upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqFraming {
    /// No body and no length header (a `GET` without a body).
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked` (a streamed body of unknown length).
    Chunked,
}

impl ReqFraming {
    /// The framing for a body of `len` bytes known up front. Methods that carry a body get a
    /// `Content-Length` even when it is 0, as do requests whose client sent one.
    pub fn for_length(method: &Method, had_length: bool, len: u64) -> ReqFraming {
        let bodied = matches!(*method, Method::POST | Method::PUT | Method::PATCH);
        if len > 0 || had_length || bodied { ReqFraming::Length(len) } else { ReqFraming::None }
    }
}

/// Framing headers the client sent: the proxy writes its own.
fn is_framing(name: &HeaderName) -> bool {
    name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING
}

/// Appends `METHOD /path?query HTTP/1.1`, the headers and the framing header to `out`. Header
/// names and values come from `http` types, which never hold CR, LF or NUL, so nothing a client
/// or plugin set can split the head.
pub fn encode_head(out: &mut Vec<u8>, parts: &Parts, framing: ReqFraming) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    match parts.uri.path_and_query() {
        Some(pq) if !pq.as_str().is_empty() => out.extend_from_slice(pq.as_str().as_bytes()),
        _ => out.push(b'/'),
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        if is_framing(name) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        ReqFraming::None => {}
        ReqFraming::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa(n, &mut [0u8; 20]));
            out.extend_from_slice(b"\r\n");
        }
        ReqFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// `n` in decimal, written into `buf`.
fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// The line that starts a chunk of `len` bytes: its size in hex and CRLF.
pub fn chunk_prefix(len: usize, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (usize::BITS - len.leading_zeros()).div_ceil(4).max(1);
    for d in (0..digits).rev() {
        out.push(HEX[(len >> (d * 4)) & 0xf]);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Request};

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut r = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            r = r.header(*k, HeaderValue::from_str(v).unwrap());
        }
        r.body(()).unwrap().into_parts().0
    }

    #[test]
    fn heads_carry_our_framing_not_the_clients() {
        let p = parts("POST", "/a?b=1", &[("host", "up"), ("content-length", "999"), ("x-a", "1")]);
        let mut out = Vec::new();
        encode_head(&mut out, &p, ReqFraming::Length(5));
        assert_eq!(out, b"POST /a?b=1 HTTP/1.1\r\nhost: up\r\nx-a: 1\r\ncontent-length: 5\r\n\r\n");
        let mut out = Vec::new();
        encode_head(&mut out, &parts("GET", "/", &[("transfer-encoding", "chunked")]), ReqFraming::Chunked);
        assert_eq!(out, b"GET / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n");
    }

    #[test]
    fn framing_follows_the_method_and_the_length() {
        assert_eq!(ReqFraming::for_length(&Method::GET, false, 0), ReqFraming::None);
        assert_eq!(ReqFraming::for_length(&Method::GET, true, 0), ReqFraming::Length(0));
        assert_eq!(ReqFraming::for_length(&Method::POST, false, 0), ReqFraming::Length(0));
        assert_eq!(ReqFraming::for_length(&Method::DELETE, false, 3), ReqFraming::Length(3));
    }

    #[test]
    fn numbers_and_chunk_sizes() {
        assert_eq!(itoa(0, &mut [0; 20]), b"0");
        assert_eq!(itoa(u64::MAX, &mut [0; 20]), u64::MAX.to_string().as_bytes());
        for (n, hex) in [(0usize, "0"), (1, "1"), (15, "f"), (16, "10"), (4096, "1000"), (0xabcdef, "abcdef")] {
            let mut out = Vec::new();
            chunk_prefix(n, &mut out);
            assert_eq!(out, format!("{hex}\r\n").as_bytes());
        }
    }
}
