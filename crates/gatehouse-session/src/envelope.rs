//! The plaintext inside the seal: fixed-width and length-prefixed fields, big-endian.
//!
//! ```text
//! id (32) | created_at i64 | rolled_at i64 | last_seen i64
//! | audience_len u16 | audience | issuer_len u16 | issuer
//! | flags u8 (bit 0: subject present, bit 1: client present)
//! | [subject_len u16 | subject] | [client_len u16 | client] | data_len u32 | data
//! ```
//!
//! Data comes last so an opened buffer can become `Session::data` without copying the payload.

use std::ops::Range;

use crate::session::{ID_LEN, Session};

const FLAG_SUBJECT: u8 = 1;
const FLAG_CLIENT: u8 = 2;

/// Why a decrypted envelope did not parse. Authenticated input only reaches this when a writer
/// with the same key wrote something else, so one variant is enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadEnvelope;

/// Plaintext length of `session`'s envelope, or `None` if a field outgrows its length prefix.
pub(crate) fn encoded_len(session: &Session) -> Option<usize> {
    let short = |s: &str| s.len() <= usize::from(u16::MAX);
    let optional = |s: &Option<String>| s.as_ref().map_or(0, |s| 2 + s.len());
    let fits = short(&session.audience)
        && short(&session.issuer)
        && session.subject.as_deref().is_none_or(short)
        && session.client.as_deref().is_none_or(short)
        && u32::try_from(session.data.len()).is_ok();
    fits.then(|| {
        ID_LEN
            + 3 * 8
            + 2
            + session.audience.len()
            + 2
            + session.issuer.len()
            + 1
            + optional(&session.subject)
            + optional(&session.client)
            + 4
            + session.data.len()
    })
}

/// Appends the envelope to `out`. The caller has checked [`encoded_len`], so the casts hold.
pub(crate) fn encode_into(session: &Session, out: &mut Vec<u8>) {
    out.extend_from_slice(&session.id);
    out.extend_from_slice(&session.created_at.to_be_bytes());
    out.extend_from_slice(&session.rolled_at.to_be_bytes());
    out.extend_from_slice(&session.last_seen.to_be_bytes());
    let str16 = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    str16(out, &session.audience);
    str16(out, &session.issuer);
    let flags = if session.subject.is_some() { FLAG_SUBJECT } else { 0 }
        | if session.client.is_some() { FLAG_CLIENT } else { 0 };
    out.push(flags);
    for s in [&session.subject, &session.client].into_iter().flatten() {
        str16(out, s);
    }
    out.extend_from_slice(&(session.data.len() as u32).to_be_bytes());
    out.extend_from_slice(&session.data);
}

/// A parsed envelope borrowing from the opened buffer; nothing is allocated until
/// [`View::detach`], so the audience and timeouts are checked first.
pub(crate) struct View<'a> {
    pub id: [u8; ID_LEN],
    pub created_at: i64,
    pub rolled_at: i64,
    pub last_seen: i64,
    pub audience: &'a str,
    pub issuer: &'a str,
    pub subject: Option<&'a str>,
    pub client: Option<&'a str>,
    /// Where `data` lies in the whole buffer given to [`parse`].
    data: Range<usize>,
}

/// Parses `buf[range]`, the plaintext of an opened blob. Trailing bytes are an error.
pub(crate) fn parse(buf: &[u8], range: Range<usize>) -> Result<View<'_>, BadEnvelope> {
    let start = range.start;
    let mut r = Reader { buf: buf.get(range).ok_or(BadEnvelope)?, pos: 0 };
    let id = r.array::<ID_LEN>()?;
    let created_at = i64::from_be_bytes(r.array()?);
    let rolled_at = i64::from_be_bytes(r.array()?);
    let last_seen = i64::from_be_bytes(r.array()?);
    let audience = r.str16()?;
    let issuer = r.str16()?;
    let [flags] = r.array::<1>()?;
    if flags & !(FLAG_SUBJECT | FLAG_CLIENT) != 0 {
        return Err(BadEnvelope);
    }
    let subject = if flags & FLAG_SUBJECT != 0 { Some(r.str16()?) } else { None };
    let client = if flags & FLAG_CLIENT != 0 { Some(r.str16()?) } else { None };
    let data_len = u32::from_be_bytes(r.array()?) as usize;
    let data_start = r.pos;
    r.take(data_len)?;
    if r.pos != r.buf.len() {
        return Err(BadEnvelope);
    }
    let data = start + data_start..start + r.pos;
    Ok(View { id, created_at, rolled_at, last_seen, audience, issuer, subject, client, data })
}

impl View<'_> {
    /// Copies out the small fields, ending the borrow of the buffer so that
    /// [`Detached::with_data`] can take the buffer itself.
    pub(crate) fn detach(self) -> Detached {
        let session = Session {
            id: self.id,
            created_at: self.created_at,
            rolled_at: self.rolled_at,
            last_seen: self.last_seen,
            audience: self.audience.to_owned(),
            issuer: self.issuer.to_owned(),
            subject: self.subject.map(str::to_owned),
            client: self.client.map(str::to_owned),
            data: Vec::new(),
        };
        Detached { session, data: self.data }
    }
}

/// A parsed session whose data still lies in the opened buffer.
pub(crate) struct Detached {
    session: Session,
    data: Range<usize>,
}

impl Detached {
    /// Turns `buf` itself into the session's data: a move within the buffer, no new allocation.
    pub(crate) fn with_data(mut self, mut buf: Vec<u8>) -> Session {
        buf.truncate(self.data.end);
        buf.drain(..self.data.start);
        self.session.data = buf;
        self.session
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BadEnvelope> {
        let end = self.pos.checked_add(n).ok_or(BadEnvelope)?;
        let out = self.buf.get(self.pos..end).ok_or(BadEnvelope)?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], BadEnvelope> {
        self.take(N)?.try_into().map_err(|_| BadEnvelope)
    }

    fn str16(&mut self) -> Result<&'a str, BadEnvelope> {
        let len = u16::from_be_bytes(self.array()?);
        std::str::from_utf8(self.take(usize::from(len))?).map_err(|_| BadEnvelope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(s: &Session) -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(s, &mut out);
        assert_eq!(Some(out.len()), encoded_len(s));
        out
    }

    #[test]
    fn round_trip_with_and_without_subject_and_client() {
        let optional = [None, Some(String::new()), Some("alice".to_owned())];
        for (subject, client) in optional.iter().flat_map(|s| optional.iter().map(move |c| (s.clone(), c.clone()))) {
            let mut s = Session::new(-5, "aud", subject, b"payload".to_vec());
            s.issuer = "https://idp".into();
            s.client = client;
            s.rolled_at = 7;
            s.last_seen = i64::MAX;
            let mut buf = vec![9, 9, 9];
            buf.extend_from_slice(&encode(&s));
            buf.extend_from_slice(&[1, 2]);
            let view = parse(&buf, 3..buf.len() - 2).expect("parses");
            assert_eq!((view.audience, view.subject), ("aud", s.subject.as_deref()));
            assert_eq!((view.issuer, view.client), ("https://idp", s.client.as_deref()));
            let back = parse(&buf, 3..buf.len() - 2).expect("parses").detach().with_data(buf.clone());
            assert_eq!(back, s);
        }
    }

    #[test]
    fn every_truncation_and_extension_fails() {
        let mut s = Session::new(1, "aud", Some("sub".into()), b"data".to_vec());
        s.issuer = "iss".into();
        s.client = Some("client".into());
        let bytes = encode(&s);
        for n in 0..bytes.len() {
            assert!(parse(&bytes, 0..n).is_err(), "prefix {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(parse(&longer, 0..longer.len()).is_err());
        assert!(parse(&bytes, 0..bytes.len() + 1).is_err());
    }

    #[test]
    fn bad_flags_and_utf8_fail() {
        let s = Session::new(1, "aud", None, Vec::new());
        let mut bytes = encode(&s);
        let flags_at = ID_LEN + 24 + 2 + 3 + 2;
        bytes[flags_at] = 4;
        assert!(parse(&bytes, 0..bytes.len()).is_err());
        let mut bytes = encode(&s);
        bytes[ID_LEN + 24 + 2] = 0xff;
        assert!(parse(&bytes, 0..bytes.len()).is_err());
    }

    #[test]
    fn oversized_fields_are_refused_up_front() {
        let s = Session::new(1, "a".repeat(70_000), None, Vec::new());
        assert_eq!(encoded_len(&s), None);
        let mut s = Session::new(1, "a", None, Vec::new());
        s.issuer = "i".repeat(70_000);
        assert_eq!(encoded_len(&s), None);
        s.issuer = String::new();
        s.client = Some("c".repeat(70_000));
        assert_eq!(encoded_len(&s), None);
    }
}
