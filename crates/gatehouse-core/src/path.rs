//! Request path normalization: the path a route is chosen by is the path the upstream is sent.
//!
//! A gateway that matches the path as sent while its upstream resolves dot segments can be walked
//! around: `/public/../private/x` matches an open `/public` route, and the upstream serves
//! `/private/x`. So the proxy normalizes the path once, routes on the result and forwards the
//! result. The rules, in order:
//!
//! 1. Percent-escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, RFC 3986
//!    §6.2.2.2; every other escape stays, with its hex digits in upper case (§6.2.2.1), so `%2f`
//!    becomes `%2F`. An escape that is not `%` and two hex digits is refused, as is `%00` (nginx,
//!    in front of Kong, answers 400 to both).
//! 2. Empty segments are dropped (`//` becomes `/`, Kong's and Envoy's `merge_slashes`), before
//!    dot segments are resolved, as Kong does.
//! 3. Dot segments are removed (§5.2.4). A `..` that would climb above the root is refused rather
//!    than clamped, as nginx does (Kong's own `normalize` clamps, but nginx refuses such a path
//!    before Kong sees it).
//!
//! What is kept as sent, on purpose:
//! - `%2F` (an encoded `/`) and `%5C` (an encoded `\`) are data inside a segment, not separators,
//!   and a raw `\` is an ordinary character. This is Envoy's default
//!   (`path_with_escaped_slashes_action: KEEP_UNCHANGED`) and Kong's. An upstream that decodes
//!   them into separators must not be trusted to enforce per-path access on its own.
//! - `;` path parameters stay part of their segment. But a segment that is a dot segment with
//!   parameters (`..;x`, `.;`) is refused: some servers (Tomcat) drop the parameters and then
//!   resolve the dots, which would reopen the bypass.
//! - Raw non-ASCII (UTF-8) characters stay as they are. No decoding produces a non-ASCII byte (only
//!   unreserved characters are decoded), so the result is always valid UTF-8.
//!
//! Raw control characters and spaces are refused (the HTTP parsers refuse them already; this is
//! the second line). A path longer than [`MAX_LEN`] is refused too.
//!
//! The common path is already normal: [`normalize`] checks that with one scan that allocates
//! nothing and returns it borrowed. Only a path that needs a change is copied.

use std::borrow::Cow;

/// The longest path accepted, in bytes. nginx (so Kong) answers 414 when the request line does
/// not fit its 8 KiB header buffer.
pub const MAX_LEN: usize = 8192;

/// Why a request path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path is longer than [`MAX_LEN`].
    #[error("path longer than {MAX_LEN} bytes")]
    TooLong,
    /// The path does not start with `/`.
    #[error("path does not start with /")]
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    #[error("invalid percent-escape")]
    InvalidEscape,
    /// `%00`: an encoded NUL.
    #[error("encoded NUL (%00)")]
    EncodedNul,
    /// A raw control character or space.
    #[error("control character or space")]
    ControlCharacter,
    /// A `..` segment that would climb above the root.
    #[error("dot segment above the root")]
    AboveRoot,
    /// A dot segment with `;` parameters (`..;x`).
    #[error("dot segment with parameters")]
    DotSegmentParams,
}

/// The normalized form of a request path (no query), or why it is refused. Borrowed when the
/// path is already normal, which is the common case.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if path.len() > MAX_LEN {
        return Err(PathError::TooLong);
    }
    if is_normal(path.as_bytes()) {
        return Ok(Cow::Borrowed(path));
    }
    normalize_slow(path).map(Cow::Owned)
}

/// Whether `path` is its own normal form. Allocates nothing; `false` only says "look closer".
/// One pass: ordinary bytes are skipped by a table lookup, and only `/`, `%`, a `.` starting a
/// segment and refused bytes are looked at.
fn is_normal(path: &[u8]) -> bool {
    if path.first() != Some(&b'/') {
        return false;
    }
    let n = path.len();
    let mut i = 1;
    // At the top of the loop, `i` is the start of a segment.
    while i < n {
        match path[i] {
            // An empty segment with more after it: `//`.
            b'/' => return false,
            b'.' if is_dot_segment(&path[i..]) => return false,
            _ => {}
        }
        while i < n {
            let b = path[i];
            if !SPECIAL[usize::from(b)] {
                i += 1;
            } else if b == b'/' {
                break;
            } else if b == b'%' {
                match escape_at(path, i) {
                    // Normal only when it stays as it is: upper-case hex of a byte not decoded.
                    Some(d) if d != 0 && !is_unreserved(d) && path[i + 1..i + 3] == upper_hex(d) => i += 3,
                    _ => return false,
                }
            } else {
                return false;
            }
        }
        i += 1;
    }
    true
}

/// The bytes the scan for a normal path stops at: `/`, `%` and the refused ones.
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = b == b'/' as usize || b == b'%' as usize || is_refused(b as u8);
        b += 1;
    }
    t
};

/// Whether `s` starts with the segment `.` or `..` (a joined path would resolve it).
pub fn starts_with_dot_segment(s: &str) -> bool {
    is_dot_segment(s.as_bytes())
}

/// Whether `s` starts with the segment `.` or `..`, with or without `;` parameters (what follows
/// the dots is the end, a `/` or a `;`).
fn is_dot_segment(s: &[u8]) -> bool {
    let dots = s.iter().take(3).take_while(|&&b| b == b'.').count();
    (dots == 1 || dots == 2) && matches!(s.get(dots), None | Some(b'/' | b';'))
}

fn normalize_slow(path: &str) -> Result<String, PathError> {
    let decoded = decode(path.as_bytes())?;
    let rest = decoded.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    let mut out = String::with_capacity(decoded.len());
    let mut segments = rest.split('/').peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        match seg {
            // A trailing `/`, `/.` or `/..` leaves the path ending in `/`.
            "" | "." => {}
            ".." => {
                let parent = out.rfind('/').ok_or(PathError::AboveRoot)?;
                out.truncate(parent);
            }
            _ if is_dot_segment(seg.as_bytes()) => return Err(PathError::DotSegmentParams),
            _ => {
                out.push('/');
                out.push_str(seg);
                continue;
            }
        }
        if last {
            out.push('/');
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Decodes the escapes of unreserved characters and upper-cases the hex of the others.
fn decode(path: &[u8]) -> Result<String, PathError> {
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        if b == b'%' {
            match escape_at(path, i) {
                None => return Err(PathError::InvalidEscape),
                Some(0) => return Err(PathError::EncodedNul),
                Some(d) if is_unreserved(d) => out.push(char::from(d)),
                Some(d) => {
                    out.push('%');
                    out.extend(upper_hex(d).map(char::from));
                }
            }
            i += 3;
            continue;
        }
        // Copy the run up to the next `%` whole, so UTF-8 sequences stay intact.
        let end = path[i..].iter().position(|&c| c == b'%').map_or(path.len(), |n| i + n);
        let run = &path[i..end];
        if run.iter().any(|&c| is_refused(c)) {
            return Err(PathError::ControlCharacter);
        }
        // The input was a `str` and the run ends before an ASCII `%` or at the end, so it is
        // whole UTF-8; the check cannot fail, and failing safe costs nothing.
        out.push_str(std::str::from_utf8(run).map_err(|_| PathError::ControlCharacter)?);
        i = end;
    }
    Ok(out)
}

/// The byte `%XY` at `i` encodes, when it is a whole escape.
fn escape_at(s: &[u8], i: usize) -> Option<u8> {
    let hi = hex_value(*s.get(i + 1)?)?;
    let lo = hex_value(*s.get(i + 2)?)?;
    Some((hi << 4) | lo)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn upper_hex(b: u8) -> [u8; 2] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]
}

/// RFC 3986 §2.3.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Raw bytes no request path may hold: controls, space and DEL.
const fn is_refused(b: u8) -> bool {
    b <= b' ' || b == 0x7f
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[track_caller]
    fn check(input: &str, expect: Result<&str, PathError>) {
        let got = normalize(input);
        assert_eq!(got.as_deref().map_err(|e| *e), expect, "{input:?}");
    }

    #[track_caller]
    fn borrowed(input: &str) {
        assert!(matches!(normalize(input), Ok(Cow::Borrowed(p)) if p == input), "{input:?} should be left as is");
    }

    #[test]
    fn normal_paths_are_borrowed_unchanged() {
        for p in
            ["/", "/a", "/a/", "/a/b/c", "/.well-known/x", "/a.b/..c/...", "/a%2Fb", "/%C3%A9", "/é", "/a;b", "/a\\b"]
        {
            borrowed(p);
        }
    }

    #[test]
    fn dot_segments_are_removed() {
        check("/public/../private/x", Ok("/private/x"));
        check("/public/./../private/x", Ok("/private/x"));
        check("/public/x/../../private", Ok("/private"));
        check("/a/./b", Ok("/a/b"));
        check("/a/.", Ok("/a/"));
        check("/a/..", Ok("/"));
        check("/a/b/..", Ok("/a/"));
        check("/.", Ok("/"));
        check("/a/b/../c/./d/", Ok("/a/c/d/"));
    }

    #[test]
    fn encoded_dots_are_dots() {
        check("/public/%2e%2e/private/x", Ok("/private/x"));
        check("/public/%2E%2e/private/x", Ok("/private/x"));
        check("/public/.%2E/private", Ok("/private"));
        check("/public/%2e/x", Ok("/public/x"));
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_upper_cased() {
        check("/%7Euser/%41%62%63", Ok("/~user/Abc"));
        check("/a%2fb", Ok("/a%2Fb"));
        check("/a%5cb", Ok("/a%5Cb"));
        check("/%c3%a9", Ok("/%C3%A9"));
        check("/a%20b", Ok("/a%20b"));
        check("/%3b", Ok("/%3B"));
    }

    #[test]
    fn encoded_slashes_and_backslashes_are_not_separators() {
        check("/public/..%2Fprivate", Ok("/public/..%2Fprivate"));
        check("/public/..%2fprivate", Ok("/public/..%2Fprivate"));
        check("/public\\..\\private", Ok("/public\\..\\private"));
        check("/public/%2e%2e%5Cprivate", Ok("/public/..%5Cprivate"));
    }

    #[test]
    fn slashes_are_merged_before_dots() {
        check("//a", Ok("/a"));
        check("/a//b///c", Ok("/a/b/c"));
        check("/a//", Ok("/a/"));
        check("/a//../b", Ok("/b"));
        check("//", Ok("/"));
    }

    #[test]
    fn climbing_above_the_root_is_refused() {
        check("/..", Err(PathError::AboveRoot));
        check("/../x", Err(PathError::AboveRoot));
        check("/a/../..", Err(PathError::AboveRoot));
        check("/a/../../b", Err(PathError::AboveRoot));
        check("/%2e%2e/etc/passwd", Err(PathError::AboveRoot));
        check("//../x", Err(PathError::AboveRoot));
    }

    #[test]
    fn hostile_paths_have_a_defined_answer() {
        check("/a%00b", Err(PathError::EncodedNul));
        check("/a\0b", Err(PathError::ControlCharacter));
        check("/a\tb", Err(PathError::ControlCharacter));
        check("/a b", Err(PathError::ControlCharacter));
        check("/a\x7fb", Err(PathError::ControlCharacter));
        check("/a%", Err(PathError::InvalidEscape));
        check("/a%4", Err(PathError::InvalidEscape));
        check("/a%zz", Err(PathError::InvalidEscape));
        check("/a%%41", Err(PathError::InvalidEscape));
        check("/a%01", Ok("/a%01"));
        check("/%ff%fe", Ok("/%FF%FE"));
        check("a/b", Err(PathError::NotAbsolute));
        check("", Err(PathError::NotAbsolute));
        check("*", Err(PathError::NotAbsolute));
        check("/public/..;/private", Err(PathError::DotSegmentParams));
        check("/public/.;x/private", Err(PathError::DotSegmentParams));
        check("/public/%2e%2e;/private", Err(PathError::DotSegmentParams));
        check("/public;x/../private", Ok("/private"));
        check("/a;b/./c;d", Ok("/a;b/c;d"));
        check("/é/../ü", Ok("/ü"));
        let long = format!("/{}", "a".repeat(MAX_LEN));
        check(&long, Err(PathError::TooLong));
        let at_limit = format!("/{}", "a".repeat(MAX_LEN - 1));
        borrowed(&at_limit);
        // Deep nesting costs time linear in the length, and never recursion.
        let deep = "/a".repeat(MAX_LEN / 5) + &"/..".repeat(MAX_LEN / 5);
        check(&deep, Ok("/"));
    }

    /// A segment of a generated path: names, dots plain and encoded, empties, parameters.
    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just(".".to_string()),
            Just("..".to_string()),
            Just("%2e".to_string()),
            Just("%2E%2e".to_string()),
            Just(".%2E".to_string()),
            Just("..;".to_string()),
            Just("a;b".to_string()),
            "[a-z.~%;\\\\]{1,6}",
            "(%[0-9a-fA-F]{2}){1,3}",
            "[a-zé.]{1,4}",
        ]
    }

    fn path() -> impl Strategy<Value = String> {
        prop::collection::vec(segment(), 0..12).prop_map(|segs| format!("/{}", segs.join("/")))
    }

    /// The same rules, written as plainly as possible over a list of decoded segments.
    fn model(path: &str) -> Result<String, PathError> {
        let decoded = decode(path.as_bytes())?;
        let segs: Vec<&str> = decoded[1..].split('/').collect();
        let mut stack: Vec<&str> = Vec::new();
        let mut trailing = false;
        for (i, s) in segs.iter().enumerate() {
            let last = i + 1 == segs.len();
            trailing = false;
            match *s {
                "" | "." => trailing = last,
                ".." => {
                    stack.pop().ok_or(PathError::AboveRoot)?;
                    trailing = last;
                }
                s if s.starts_with(".;") || s.starts_with("..;") => return Err(PathError::DotSegmentParams),
                s => stack.push(s),
            }
        }
        let mut out = String::new();
        for s in &stack {
            out.push('/');
            out.push_str(s);
        }
        if trailing || out.is_empty() {
            out.push('/');
        }
        Ok(out)
    }

    proptest! {

        #[test]
        fn normalization_agrees_with_the_plain_model(p in path()) {
            prop_assert_eq!(normalize(&p).map(Cow::into_owned), model(&p));
        }

        #[test]
        fn normalization_is_idempotent_and_its_output_is_normal(p in path()) {
            if let Ok(once) = normalize(&p) {
                prop_assert!(is_normal(once.as_bytes()), "{:?} -> {:?} is not normal", p, once);
                let twice = normalize(&once);
                prop_assert!(matches!(twice, Ok(Cow::Borrowed(_))), "{:?} -> {:?} changed again", p, once);
            }
        }

        #[test]
        fn the_fast_check_never_skips_a_needed_change(p in path()) {
            // The borrowed answer must be the one the full normalization gives.
            if is_normal(p.as_bytes()) {
                prop_assert_eq!(normalize_slow(&p), Ok(p.clone()));
            }
        }

        #[test]
        fn normal_output_has_no_dot_or_empty_segments(p in path()) {
            if let Ok(out) = normalize(&p) {
                prop_assert!(out.starts_with('/'));
                let segs: Vec<&str> = out[1..].split('/').collect();
                for (i, s) in segs.iter().enumerate() {
                    prop_assert!(!is_dot_segment(s.as_bytes()), "{:?} -> {:?}", p, out);
                    prop_assert!(!s.is_empty() || i + 1 == segs.len(), "{:?} -> {:?}", p, out);
                }
            }
        }

        #[test]
        fn nothing_climbs_above_the_root(p in path(), extra in 1usize..4) {
            // However deep `p` is, that many `..` and more must be refused, never clamped.
            if let Ok(out) = normalize(&p) {
                let depth = out[1..].split('/').filter(|s| !s.is_empty()).count();
                let climb = format!("{p}{}", "/..".repeat(depth + extra));
                prop_assert_eq!(normalize(&climb), Err(PathError::AboveRoot));
                let to_root = format!("{p}{}", "/..".repeat(depth));
                prop_assert!(normalize(&to_root).is_ok());
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC{0,40}", raw in prop::collection::vec(any::<char>(), 0..40)) {
            let _ = normalize(&s);
            let _ = normalize(&format!("/{}", raw.into_iter().collect::<String>()));
        }
    }
}
