//! Reading the request's `Cookie` headers in place, and the few bits of cookie syntax the store writes.

use std::fmt::Write as _;

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

/// Most cookies one session may span, as lua-resty-session: `name`, `name2` … `name9`.
pub(crate) const MAX_CHUNKS: usize = 9;

/// Which chunk `cookie` is for the session cookie `name`: `name` is 1, `nameN` is N for one
/// digit N in 2..=9 (lua-resty-session's names). Anything else, `name10` or `name_2` included,
/// is someone else's cookie.
pub(crate) fn chunk_index(name: &[u8], cookie: &[u8]) -> Option<usize> {
    match cookie.strip_prefix(name)? {
        [] => Some(1),
        &[d @ b'2'..=b'9'] => Some(usize::from(d - b'0')),
        _ => None,
    }
}

/// Whether the cookies (and chunks) of two stores named `a` and `b` can be mistaken for each
/// other: the same name, or one name a chunk name of the other (`session` and `session2`).
pub fn names_clash(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    chunk_index(a, b).is_some() || chunk_index(b, a).is_some()
}

/// The `name=value` pairs of one `Cookie` header value, trimmed, with a value's surrounding
/// quotes removed. Segments without `=` are skipped.
pub(crate) fn pairs(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    segments(header).filter_map(|segment| {
        let eq = memchr::memchr(b'=', segment)?;
        Some((trim(&segment[..eq]), unquote(trim(&segment[eq + 1..]))))
    })
}

/// The `;`-separated segments of a `Cookie` header value. Session values run to kilobytes, so
/// the separator is found with memchr rather than byte by byte.
fn segments(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(header);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memchr(b';', r) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

fn trim(s: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

fn unquote(s: &[u8]) -> &[u8] {
    match s {
        [b'"', inner @ .., b'"'] => inner,
        _ => s,
    }
}

/// The session's chunks present in a request, found in one pass over every `Cookie` header.
/// The first occurrence of a name wins (browsers send the most specific path first).
pub(crate) struct Found<'a> {
    slots: [Option<&'a [u8]>; MAX_CHUNKS + 1],
}

impl<'a> Found<'a> {
    pub(crate) fn collect(headers: &'a HeaderMap, name: &str) -> Self {
        let mut slots = [None; MAX_CHUNKS + 1];
        for header in headers.get_all(COOKIE) {
            for (cookie, value) in pairs(header.as_bytes()) {
                if let Some(i) = chunk_index(name.as_bytes(), cookie) {
                    slots[i].get_or_insert(value);
                }
            }
        }
        Found { slots }
    }

    /// Value of chunk `i` (1-based), if the request has it.
    pub(crate) fn get(&self, i: usize) -> Option<&'a [u8]> {
        self.slots.get(i).copied().flatten()
    }

    /// Indices of every chunk present, ascending.
    pub(crate) fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        (1..=MAX_CHUNKS).filter(|&i| self.slots[i].is_some())
    }
}

/// Removes the cookies of every name in `names` (each `name` / `nameN`) from the `Cookie`
/// headers. Other cookies keep their bytes and order; separators become `; `; an emptied header
/// is dropped.
pub(crate) fn strip(headers: &mut HeaderMap, names: &[&str]) {
    let ours = |segment: &[u8]| {
        let cookie = trim(memchr::memchr(b'=', segment).map_or(segment, |eq| &segment[..eq]));
        names.iter().any(|name| chunk_index(name.as_bytes(), cookie).is_some())
    };
    let has_ours = |v: &HeaderValue| segments(v.as_bytes()).any(ours);
    if !headers.get_all(COOKIE).iter().any(has_ours) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| {
            if !has_ours(v) {
                return Some(v.clone());
            }
            let mut out = Vec::with_capacity(v.len());
            for segment in segments(v.as_bytes()).map(trim).filter(|s| !s.is_empty() && !ours(s)) {
                if !out.is_empty() {
                    out.extend_from_slice(b"; ");
                }
                out.extend_from_slice(segment);
            }
            // Bytes taken from a valid header value plus "; " always form a valid one.
            (!out.is_empty()).then(|| HeaderValue::from_bytes(&out).ok()).flatten()
        })
        .collect();
    headers.remove(COOKIE);
    for v in kept {
        headers.append(COOKIE, v);
    }
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Appends `ts` (Unix seconds, clamped to years 1970..=9999) as an IMF-fixdate for `Expires`.
pub(crate) fn write_http_date(out: &mut String, ts: i64) {
    let ts = ts.clamp(0, 253_402_300_799);
    let (days, secs) = (ts / 86_400, ts % 86_400);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = WEEKDAYS[((days + 4) % 7) as usize];
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let _ = write!(out, "{weekday}, {day:02} {} {year:04} {h:02}:{m:02}:{s:02} GMT", MONTHS[month - 1]);
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, usize, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as usize, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(COOKIE, HeaderValue::from_str(v).expect("valid header"));
        }
        h
    }

    #[test]
    fn chunk_names() {
        let n = b"session";
        assert_eq!(chunk_index(n, b"session"), Some(1));
        assert_eq!(chunk_index(n, b"session2"), Some(2));
        assert_eq!(chunk_index(n, b"session9"), Some(9));
        for other in
            ["session1", "session0", "session02", "session10", "session99", "session_2", "session_", "sessions", "sess"]
        {
            assert_eq!(chunk_index(n, other.as_bytes()), None, "{other}");
        }
    }

    #[test]
    fn pairs_trim_and_unquote() {
        let got: Vec<_> = pairs(b" a=1;b = \"2\" ;;c;d=;e=x=y").collect();
        let want: Vec<(&[u8], &[u8])> = vec![(b"a", b"1"), (b"b", b"2"), (b"d", b""), (b"e", b"x=y")];
        assert_eq!(got, want);
    }

    #[test]
    fn found_spans_headers_and_keeps_first() {
        let h = headers(&["a=1; session=one", "session3=three; session=dup", "session2=two"]);
        let f = Found::collect(&h, "session");
        assert_eq!(f.get(1), Some(&b"one"[..]));
        assert_eq!(f.get(2), Some(&b"two"[..]));
        assert_eq!(f.get(3), Some(&b"three"[..]));
        assert_eq!(f.get(4), None);
        assert_eq!(f.get(1000), None);
        assert_eq!(f.indices().collect::<Vec<_>>(), vec![1, 2, 3]);
    }

    #[test]
    fn strip_keeps_others_byte_exact() {
        let mut h =
            headers(&["a=\"q v\";session=x;  b=2", "session2=y", "c=3", "session3=z; session_2=keep; session10=k"]);
        strip(&mut h, &["session"]);
        let left: Vec<_> = h.get_all(COOKIE).iter().map(|v| v.to_str().expect("ascii")).collect();
        assert_eq!(left, vec!["a=\"q v\"; b=2", "c=3", "session_2=keep; session10=k"]);

        let mut only = headers(&["session=x", "session2=y"]);
        strip(&mut only, &["session"]);
        assert!(only.get(COOKIE).is_none());

        let mut untouched = headers(&["a=1;b=2"]);
        strip(&mut untouched, &["session"]);
        assert_eq!(untouched.get(COOKIE).map(HeaderValue::as_bytes), Some(&b"a=1;b=2"[..]));

        let mut two = headers(&["remember=r; a=1; session=s; remember2=r2"]);
        strip(&mut two, &["session", "remember"]);
        assert_eq!(two.get(COOKIE).map(HeaderValue::as_bytes), Some(&b"a=1"[..]));
    }

    #[test]
    fn http_dates() {
        let date = |ts| {
            let mut s = String::new();
            write_http_date(&mut s, ts);
            s
        };
        assert_eq!(date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(date(-5), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(date(1_709_164_799), "Wed, 28 Feb 2024 23:59:59 GMT");
        assert_eq!(date(i64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }
}
