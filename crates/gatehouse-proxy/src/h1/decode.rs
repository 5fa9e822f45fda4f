//! Reading the upstream's response: the head (httparse) and the body framing (RFC 9112 §6).

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};

/// The most header fields a response may have (hyper's default too).
pub const MAX_HEADERS: usize = 100;
/// The largest response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// The longest chunk-size line or trailer section accepted.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

/// Why a response could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not HTTP/1.x, or a malformed head or chunk.
    #[error("invalid response from the upstream: {0}")]
    Invalid(&'static str),
    /// The head is larger than [`MAX_HEAD`] or has more than [`MAX_HEADERS`] fields.
    #[error("the upstream's response head is too large")]
    TooLarge,
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (`HEAD`, 204, 304).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// Whether the connection can take another request once the body is read.
    pub keep_alive: bool,
}

/// Parses one response head from the front of `buf` and removes it. `Ok(None)`: more bytes are
/// needed. Interim 1xx responses are skipped. Header values share the head's memory.
pub fn parse_head(buf: &mut BytesMut, head_request: bool) -> Result<Option<Head>, DecodeError> {
    loop {
        // Uninitialized slots: httparse fills only what it uses, and a head has a handful of
        // fields, so nothing here touches the 100 slots it could have.
        let mut fields = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let len =
            match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, buf, &mut fields) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(DecodeError::TooLarge),
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(httparse::Error::TooManyHeaders) => return Err(DecodeError::TooLarge),
                Err(_) => return Err(DecodeError::Invalid("malformed response head")),
            };
        let code = resp.code.unwrap_or(0);
        if (100..200).contains(&code) {
            if code == 101 {
                return Err(DecodeError::Invalid("unexpected protocol switch"));
            }
            buf.advance(len);
            continue;
        }
        let status = StatusCode::from_u16(code).map_err(|_| DecodeError::Invalid("bad status code"))?;
        let http10 = resp.version == Some(0);
        // Where each field sits in the head, so the values can share its memory once frozen.
        let base = buf.as_ptr() as usize;
        let spans: Vec<(usize, usize, usize, usize)> = resp
            .headers
            .iter()
            .map(|h| {
                let ns = h.name.as_ptr() as usize - base;
                let vs = h.value.as_ptr() as usize - base;
                (ns, ns + h.name.len(), vs, vs + h.value.len())
            })
            .collect();
        let head = buf.split_to(len).freeze();
        let mut headers = HeaderMap::with_capacity(spans.len());
        // Which framing fields are present, noted while the map is built: comparing a standard
        // name is one integer compare, a map lookup hashes the name.
        let mut present = Present::default();
        for &(ns, ne, vs, ve) in &spans {
            let name = HeaderName::from_bytes(&head[ns..ne]).map_err(|_| DecodeError::Invalid("bad header name"))?;
            present.te |= name == header::TRANSFER_ENCODING;
            present.cl |= name == header::CONTENT_LENGTH;
            let value = HeaderValue::from_maybe_shared(head.slice(vs..ve))
                .map_err(|_| DecodeError::Invalid("bad header value"))?;
            headers.append(name, value);
        }
        let framing = framing(&headers, present, status, head_request)?;
        let suspect = suspect_framing(&mut headers, present, status, http10);
        let keep_alive = framing != Framing::Close && !suspect && keeps_alive(&headers, http10);
        return Ok(Some(Head { status, headers, framing, keep_alive }));
    }
}

/// Removes the `Content-Length` of an answer that also has `Transfer-Encoding` (RFC 9112 §6.3:
/// the transfer coding frames the body, and a forwarded length would cut it short). Returns
/// whether there was one.
pub fn drop_length_beside_transfer_encoding(headers: &mut HeaderMap) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) && headers.contains_key(header::CONTENT_LENGTH) {
        headers.remove(header::CONTENT_LENGTH);
        return true;
    }
    false
}

/// Whether the head's framing is doubtful, so the connection must be closed after this answer
/// (RFC 9112 §6.1, §6.3): `Content-Length` beside `Transfer-Encoding` (a sign of response
/// splitting; the length is dropped), `Transfer-Encoding` in HTTP/1.0, or a 204 announcing a
/// body, whose bytes would otherwise be read as the next answer.
fn suspect_framing(headers: &mut HeaderMap, present: Present, status: StatusCode, http10: bool) -> bool {
    // Only when both were seen does the shared rule's lookups run.
    let both = present.te && present.cl && drop_length_beside_transfer_encoding(headers);
    let bodied_204 = status == StatusCode::NO_CONTENT
        && (present.te
            || (present.cl
                && headers.get_all(header::CONTENT_LENGTH).iter().any(|v| v.as_bytes().iter().any(|&b| b != b'0'))));
    both || (present.te && http10) || bodied_204
}

/// Whether the head has `Transfer-Encoding` and `Content-Length` fields.
#[derive(Clone, Copy, Default)]
struct Present {
    te: bool,
    cl: bool,
}

fn framing(
    headers: &HeaderMap,
    present: Present,
    status: StatusCode,
    head_request: bool,
) -> Result<Framing, DecodeError> {
    if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok(Framing::Empty);
    }
    if present.te {
        // The last coding decides (RFC 9112 §6.3): chunked is delimited, anything else runs to close.
        let last = headers.get_all(header::TRANSFER_ENCODING).iter().next_back();
        let chunked = last
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
        return Ok(if chunked { Framing::Chunked } else { Framing::Close });
    }
    if !present.cl {
        return Ok(Framing::Close);
    }
    let mut length = None;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        for part in v.to_str().map_err(|_| DecodeError::Invalid("bad content-length"))?.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(DecodeError::Invalid("bad content-length"));
            }
            let n: u64 = part.parse().map_err(|_| DecodeError::Invalid("bad content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(DecodeError::Invalid("conflicting content-length"));
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(0) => Framing::Empty,
        Some(n) => Framing::Length(n),
        None => Framing::Close,
    })
}

fn keeps_alive(headers: &HeaderMap, http10: bool) -> bool {
    let mut close = false;
    let mut keep = false;
    for v in headers.get_all(header::CONNECTION) {
        for token in v.to_str().unwrap_or("close").split(',') {
            let t = token.trim();
            close |= t.eq_ignore_ascii_case("close");
            keep |= t.eq_ignore_ascii_case("keep-alive");
        }
    }
    !close && (!http10 || keep)
}

/// What the chunked decoder produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Body bytes.
    Data(Bytes),
    /// The last chunk and the trailer section are read; the connection is at a message boundary.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataEnd,
    Trailers(usize),
    Done,
}

/// An incremental decoder for `Transfer-Encoding: chunked`. Trailer fields are read and dropped.
#[derive(Debug)]
pub struct Chunked {
    state: State,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked { state: State::Size }
    }
}

impl Chunked {
    /// Takes what it can from the front of `buf`. `Ok(None)`: more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Chunk>, DecodeError> {
        loop {
            match self.state {
                State::Size => {
                    let Some(end) = memchr::memchr(b'\n', buf) else {
                        return if buf.len() > MAX_CHUNK_LINE {
                            Err(DecodeError::Invalid("chunk size line too long"))
                        } else {
                            Ok(None)
                        };
                    };
                    if end >= MAX_CHUNK_LINE {
                        return Err(DecodeError::Invalid("chunk size line too long"));
                    }
                    let line = buf.split_to(end + 1);
                    let size = chunk_size(&line)?;
                    self.state = if size == 0 { State::Trailers(0) } else { State::Data(size) };
                }
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = (buf.len() as u64).min(left) as usize;
                    let data = buf.split_to(n).freeze();
                    self.state = if left == n as u64 { State::DataEnd } else { State::Data(left - n as u64) };
                    return Ok(Some(Chunk::Data(data)));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(DecodeError::Invalid("chunk not followed by CRLF"));
                    }
                    buf.advance(2);
                    self.state = State::Size;
                }
                State::Trailers(seen) => {
                    let Some(end) = memchr::memchr(b'\n', buf) else {
                        return if seen + buf.len() > MAX_TRAILERS {
                            Err(DecodeError::Invalid("trailer section too large"))
                        } else {
                            Ok(None)
                        };
                    };
                    let seen = seen.saturating_add(end + 1);
                    if seen > MAX_TRAILERS {
                        return Err(DecodeError::Invalid("trailer section too large"));
                    }
                    let line = buf.split_to(end + 1);
                    if &line[..] == b"\r\n" || &line[..] == b"\n" {
                        self.state = State::Done;
                    } else {
                        self.state = State::Trailers(seen);
                    }
                }
                State::Done => return Ok(Some(Chunk::End)),
            }
        }
    }
}

/// The size on a chunk-size line (`1a3f;ext=1\r\n`). Extensions are ignored, but must follow
/// a `;` and hold no control characters (a stray CR there is a framing disagreement waiting to
/// happen); whitespace may precede them (RFC 9112 §7.1.1's BWS).
fn chunk_size(line: &[u8]) -> Result<u64, DecodeError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(DecodeError::Invalid("bad chunk size"));
    }
    let rest = &line[digits..];
    let rest = &rest[rest.iter().take_while(|&&b| b == b' ' || b == b'\t').count()..];
    let ext_ok = rest.is_empty() || (rest[0] == b';' && rest.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f)));
    if !ext_ok {
        return Err(DecodeError::Invalid("bad chunk size"));
    }
    let hex = std::str::from_utf8(&line[..digits]).map_err(|_| DecodeError::Invalid("bad chunk size"))?;
    u64::from_str_radix(hex, 16).map_err(|_| DecodeError::Invalid("bad chunk size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str, head_request: bool) -> Result<Option<Head>, DecodeError> {
        parse_head(&mut BytesMut::from(raw), head_request)
    }

    #[test]
    fn heads_parse_with_their_framing_and_keep_alive() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\nX-A: 2\r\n\r\nok", false).unwrap().unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.framing, Framing::Length(2));
        assert!(h.keep_alive);
        assert_eq!(h.headers.get_all("x-a").iter().count(), 2);
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false).unwrap().unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false).unwrap().unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Close, false));
        let h = head("HTTP/1.1 200 OK\r\n\r\n", false).unwrap().unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Close, false));
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).unwrap().unwrap();
        assert_eq!(h.framing, Framing::Empty);
        let h = head("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", false).unwrap().unwrap();
        assert_eq!(h.framing, Framing::Empty);
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n", false).unwrap().unwrap();
        assert!(!h.keep_alive);
        let h = head("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n", false).unwrap().unwrap();
        assert!(!h.keep_alive);
        let h = head("HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n", false).unwrap().unwrap();
        assert!(h.keep_alive);
    }

    #[test]
    fn transfer_encoding_beats_content_length_and_the_connection_is_not_reused() {
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        let h = head(raw, false).unwrap().unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        assert!(!h.keep_alive);
        assert!(!h.headers.contains_key(header::CONTENT_LENGTH));
        // Not chunked last: read to close, and still no length passed on.
        let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\nContent-Length: 5\r\n\r\n";
        let h = head(raw, false).unwrap().unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Close, false));
        assert!(!h.headers.contains_key(header::CONTENT_LENGTH));
        // Transfer-Encoding in HTTP/1.0 (RFC 9112 §6.1): the connection is closed afterwards.
        let raw = "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n";
        let h = head(raw, false).unwrap().unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, false));
        // Differing lengths are refused even when split over one field.
        assert!(head("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n", false).is_err());
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", false).unwrap().unwrap();
        assert_eq!(h.framing, Framing::Length(5));
    }

    #[test]
    fn bodiless_answers_that_announce_a_body_are_not_reused() {
        // A 204 with a length or a coding: its bytes would be read as the next answer.
        for raw in [
            "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
            "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            let h = head(raw, false).unwrap().unwrap();
            assert_eq!((h.framing, h.keep_alive), (Framing::Empty, false), "{raw:?}");
        }
        // A HEAD answer's length and a 304's are the representation's, not a body.
        let h = head("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", false).unwrap().unwrap();
        assert!(h.keep_alive);
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).unwrap().unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Empty, true));
        let h = head("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", false).unwrap().unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Empty, true));
    }

    #[test]
    fn interim_responses_are_skipped_and_partial_heads_wait() {
        let mut buf = BytesMut::from("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
        let h = parse_head(&mut buf, false).unwrap().unwrap();
        assert_eq!(h.status, 201);
        assert!(buf.is_empty());
        assert!(head("HTTP/1.1 200 OK\r\nContent-Len", false).unwrap().is_none());
        assert!(head("HTTP/1.1 101 Switching Protocols\r\n\r\n", false).is_err());
    }

    #[test]
    fn bad_heads_are_refused() {
        for raw in [
            "SSH-2.0-OpenSSH\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
        ] {
            assert!(head(raw, false).is_err(), "{raw:?}");
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: 1\r\n")).collect();
        assert!(matches!(head(&format!("HTTP/1.1 200 OK\r\n{many}\r\n"), false), Err(DecodeError::TooLarge)));
        let huge = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_HEAD + 1));
        assert!(matches!(head(&huge, false), Err(DecodeError::TooLarge)));
    }

    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, bool), DecodeError> {
        let mut d = Chunked::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in input.chunks(step) {
            buf.extend_from_slice(piece);
            while let Some(c) = d.decode(&mut buf)? {
                match c {
                    Chunk::Data(b) => out.extend_from_slice(&b),
                    Chunk::End => return Ok((out, buf.is_empty())),
                }
            }
        }
        Ok((out, false))
    }

    #[test]
    fn chunked_bodies_decode_in_any_split() {
        let body = b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: 1\r\n\r\n";
        for step in 1..body.len() {
            let (out, at_boundary) = decode_all(body, step).unwrap();
            assert_eq!(out, b"helloabcdefghijklmnopqrstuvwxyz", "step {step}");
            assert!(at_boundary);
        }
    }

    #[test]
    fn bad_chunks_are_refused() {
        for bad in [&b"g\r\n"[..], b"5\r\nhelloXX", b"\r\n", b"11111111111111111\r\n", b"5x\r\n"] {
            assert!(decode_all(bad, bad.len()).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(decode_all(&[b'1'; MAX_CHUNK_LINE + 1], MAX_CHUNK_LINE + 1).is_err());
    }

    #[test]
    fn chunk_lines_and_trailers_are_bounded_and_extensions_checked() {
        for ok in [
            &b"5;a=1\r\nhello\r\n0\r\n\r\n"[..],
            b"5 ;a=\"q \\\" x\"\r\nhello\r\n0\r\n\r\n",
            b"5\t\r\nhello\r\n0\r\n\r\n",
        ] {
            assert_eq!(decode_all(ok, ok.len()).unwrap().0, b"hello", "{:?}", String::from_utf8_lossy(ok));
        }
        for bad in [&b"5 x\r\nhello\r\n0\r\n\r\n"[..], b"5;a\rb\r\nhello\r\n0\r\n\r\n", b"5;a\0\r\nhello\r\n0\r\n\r\n"]
        {
            assert!(decode_all(bad, bad.len()).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        // A long line is refused even when its LF arrives in the same read.
        let mut long = b"5;".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_CHUNK_LINE));
        long.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        assert!(decode_all(&long, long.len()).is_err());
        // Many short trailer lines add up to the limit.
        let mut trailers = b"0\r\n".to_vec();
        while trailers.len() <= MAX_TRAILERS {
            trailers.extend_from_slice(b"x-t: 1\r\n");
        }
        trailers.extend_from_slice(b"\r\n");
        assert!(decode_all(&trailers, trailers.len()).is_err());
    }

    mod props {
        use super::super::*;
        use super::decode_all;
        use proptest::collection::vec;
        use proptest::prelude::*;

        /// `pieces` as a chunked stream with optional extensions, upper-case hex, leading
        /// zeros and trailer fields.
        fn chunked(pieces: &[Vec<u8>], ext: bool, upper: bool, zeros: usize, trailers: &[(String, String)]) -> Vec<u8> {
            let mut out = Vec::new();
            for p in pieces {
                let size = if upper { format!("{:X}", p.len()) } else { format!("{:x}", p.len()) };
                out.extend_from_slice("0".repeat(zeros).as_bytes());
                out.extend_from_slice(size.as_bytes());
                if ext {
                    out.extend_from_slice(b" ; name=\"v;\\\"x\"");
                }
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(p);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n");
            for (k, v) in trailers {
                out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            out
        }

        /// Feeds `input` in reads of the sizes in `cuts` (cycled); returns the body, whether the
        /// end was reached and what was left after it.
        fn feed(input: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, Option<Vec<u8>>), DecodeError> {
            let mut d = Chunked::default();
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            let mut at = 0;
            let mut i = 0;
            loop {
                while let Some(c) = d.decode(&mut buf)? {
                    match c {
                        Chunk::Data(b) => out.extend_from_slice(&b),
                        Chunk::End => return Ok((out, Some(buf.to_vec()))),
                    }
                }
                if at == input.len() {
                    return Ok((out, None));
                }
                let n = cuts[i % cuts.len()].min(input.len() - at);
                buf.extend_from_slice(&input[at..at + n]);
                at += n;
                i += 1;
            }
        }

        proptest! {

            #[test]
            fn any_split_of_a_valid_stream_decodes_to_its_body(
                pieces in vec(vec(any::<u8>(), 1..80), 0..6),
                ext in any::<bool>(),
                upper in any::<bool>(),
                zeros in 0usize..3,
                trailers in vec(("[a-z][a-z0-9-]{0,8}", "[ -~]{0,16}"), 0..3),
                cuts in vec(1usize..40, 1..8),
                next in vec(any::<u8>(), 0..16),
            ) {
                let mut stream = chunked(&pieces, ext, upper, zeros, &trailers);
                stream.extend_from_slice(&next);
                let (body, rest) = feed(&stream, &cuts).unwrap();
                prop_assert_eq!(body, pieces.concat());
                // The decoder stops at the message boundary: the next message's bytes stay.
                let rest = rest.unwrap();
                prop_assert!(next.starts_with(&rest));
            }

            #[test]
            fn random_bytes_never_panic_nor_yield_more_than_sent(
                input in vec(any::<u8>(), 0..600),
                cuts in vec(1usize..64, 1..4),
            ) {
                if let Ok((body, _)) = feed(&input, &cuts) {
                    prop_assert!(body.len() <= input.len());
                }
            }

            #[test]
            fn damaged_streams_never_yield_more_than_sent(
                pieces in vec(vec(any::<u8>(), 1..80), 1..6),
                flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
                cuts in vec(1usize..40, 1..4),
            ) {
                let mut stream = chunked(&pieces, false, false, 0, &[]);
                for (at, byte) in flips {
                    let i = at.index(stream.len());
                    stream[i] = byte;
                }
                if let Ok((body, _)) = feed(&stream, &cuts) {
                    prop_assert!(body.len() <= stream.len());
                }
            }

            #[test]
            fn chunk_sizes_past_64_bits_are_refused(digits in "[1-9a-fA-F][0-9a-fA-F]{16,40}") {
                let line = format!("{digits}\r\n");
                prop_assert!(decode_all(line.as_bytes(), line.len()).is_err());
            }

            #[test]
            fn random_heads_never_panic(input in vec(any::<u8>(), 0..400), head_request in any::<bool>()) {
                let mut buf = BytesMut::from(&input[..]);
                let _ = parse_head(&mut buf, head_request);
                let mut prefixed = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
                prefixed.extend_from_slice(&input);
                prefixed.extend_from_slice(b"\r\n\r\n");
                let _ = parse_head(&mut prefixed, head_request);
            }

            #[test]
            fn head_framing_follows_rfc_9112(
                status in prop::sample::select(vec![200u16, 204, 304, 404]),
                http10 in any::<bool>(),
                fields in vec(prop::sample::select(vec![
                    "Content-Length: 5", "Content-Length: 7", "Content-Length: 5, 5", "Content-Length: x",
                    "Transfer-Encoding: chunked", "Transfer-Encoding: gzip", "Transfer-Encoding: gzip, chunked",
                    "Connection: close", "Connection: keep-alive", "X-Other: 1",
                ]), 0..5),
                head_request in any::<bool>(),
            ) {
                let version = if http10 { "1.0" } else { "1.1" };
                let mut raw = format!("HTTP/{version} {status} X\r\n");
                for f in &fields {
                    raw.push_str(f);
                    raw.push_str("\r\n");
                }
                raw.push_str("\r\n");
                let te = fields.iter().any(|f| f.starts_with("Transfer"));
                let cl = fields.iter().any(|f| f.starts_with("Content"));
                let Ok(parsed) = parse_head(&mut BytesMut::from(raw.as_str()), head_request) else {
                    // Only a bad or conflicting length is refused, and only when it frames the body.
                    prop_assert!(cl && !te && !head_request && status != 204 && status != 304);
                    return Ok(());
                };
                let h = parsed.unwrap();
                // The length never travels beside a transfer coding.
                prop_assert!(!(h.headers.contains_key(header::TRANSFER_ENCODING)
                    && h.headers.contains_key(header::CONTENT_LENGTH)));
                if te && cl {
                    prop_assert!(!h.keep_alive);
                }
                if head_request || status == 204 || status == 304 {
                    prop_assert_eq!(h.framing, Framing::Empty);
                } else if te {
                    let last_chunked = fields.iter().rev().find(|f| f.starts_with("Transfer"))
                        .is_some_and(|f| f.ends_with("chunked"));
                    prop_assert_eq!(h.framing, if last_chunked { Framing::Chunked } else { Framing::Close });
                } else if let Framing::Length(n) = h.framing {
                    prop_assert!(n == 5 || n == 7);
                }
                if h.framing == Framing::Close {
                    prop_assert!(!h.keep_alive);
                }
            }
        }
    }
}
