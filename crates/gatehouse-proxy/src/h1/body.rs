//! The upstream response body as the client receives it.
//!
//! Small bodies are read with the head, so the connection is back in the pool before the
//! response leaves; the rest stream from the connection, which goes back to the pool when its
//! last byte is read. A body dropped early (the client went away) closes its connection.

use super::decode::{Chunk, Chunked, DecodeError, Framing};
use super::{Conn, Idle};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// A response body from a plain-HTTP upstream.
pub struct ResponseBody(Inner);

enum Inner {
    Full(Option<Bytes>),
    Stream(Box<Streaming>),
}

impl ResponseBody {
    /// A body that is all here.
    pub fn full(b: Bytes) -> ResponseBody {
        ResponseBody(Inner::Full((!b.is_empty()).then_some(b)))
    }

    /// A body still on `conn`, delimited by `framing` (`Length`, `Chunked` or `Close`).
    pub(super) fn streaming(
        conn: Conn,
        framing: Framing,
        keep_alive: bool,
        idle: Arc<Idle>,
        timeout: Duration,
    ) -> Self {
        let decoding = match framing {
            Framing::Length(n) => Decoding::Length(n),
            Framing::Chunked => Decoding::Chunked(Chunked::default()),
            Framing::Empty => Decoding::Length(0),
            Framing::Close => Decoding::Close,
        };
        ResponseBody(Inner::Stream(Box::new(Streaming {
            conn: Some(conn),
            decoding,
            keep_alive,
            idle,
            timeout,
            sleep: Box::pin(tokio::time::sleep_until(Instant::now() + timeout)),
            armed: false,
        })))
    }
}

enum Decoding {
    Length(u64),
    Chunked(Chunked),
    Close,
}

struct Streaming {
    conn: Option<Conn>,
    decoding: Decoding,
    keep_alive: bool,
    idle: Arc<Idle>,
    /// Kong's `read_timeout`: the longest wait between two reads.
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    armed: bool,
}

fn invalid(e: DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Streaming {
    /// The body is complete: the connection goes back to the pool if it can take another request.
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take()
            && self.keep_alive
            && conn.buf.is_empty()
        {
            self.idle.checkin(conn);
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        enum Step {
            Data(Bytes, bool),
            End,
            Read,
        }
        loop {
            let Some(conn) = self.conn.as_mut() else { return Poll::Ready(None) };
            let buf = &mut conn.buf;
            let step = match &mut self.decoding {
                Decoding::Length(0) => Step::End,
                Decoding::Length(left) if !buf.is_empty() => {
                    let n = (buf.len() as u64).min(*left) as usize;
                    *left -= n as u64;
                    Step::Data(buf.split_to(n).freeze(), *left == 0)
                }
                Decoding::Chunked(d) => match d.decode(buf).map_err(invalid)? {
                    Some(Chunk::Data(b)) => Step::Data(b, false),
                    Some(Chunk::End) => Step::End,
                    None => Step::Read,
                },
                Decoding::Close if !buf.is_empty() => Step::Data(buf.split().freeze(), false),
                _ => Step::Read,
            };
            match step {
                Step::Data(data, last) => {
                    if last {
                        self.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Step::End => {
                    self.finish();
                    return Poll::Ready(None);
                }
                Step::Read => {}
            }
            // More bytes are needed.
            conn.reserve();
            match tokio_util::io::poll_read_buf(Pin::new(&mut conn.io), cx, &mut conn.buf) {
                Poll::Ready(Ok(0)) => {
                    self.conn = None;
                    return match self.decoding {
                        Decoding::Close => Poll::Ready(None),
                        _ => Poll::Ready(Some(Err(io::ErrorKind::UnexpectedEof.into()))),
                    };
                }
                Poll::Ready(Ok(_)) => self.armed = false,
                Poll::Ready(Err(e)) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Pending => {
                    if !self.armed {
                        self.armed = true;
                        self.sleep.as_mut().reset(Instant::now() + self.timeout);
                    }
                    ready!(self.sleep.as_mut().poll(cx));
                    self.conn = None;
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the upstream sent nothing for read_timeout",
                    ))));
                }
            }
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match &mut self.get_mut().0 {
            Inner::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Inner::Stream(s) => {
                let r = s.poll_next(cx);
                if let Poll::Ready(Some(Err(e))) = &r {
                    tracing::warn!(error = %e, "upstream response body failed");
                }
                r
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Inner::Full(b) => b.is_none(),
            Inner::Stream(s) => s.conn.is_none() || matches!(s.decoding, Decoding::Length(0)),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Inner::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Inner::Stream(s) => match s.decoding {
                Decoding::Length(n) => SizeHint::with_exact(n),
                _ => SizeHint::default(),
            },
        }
    }
}
