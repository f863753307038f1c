//! Copying bytes both ways between two streams, the way a TCP proxy must (linkerd2-proxy's
//! `duplex`): each direction runs until its reader reaches end of stream, then shuts down the
//! opposite writer (a TCP FIN, or a TLS close_notify followed by one) and the other direction
//! carries on, so half-closed connections work. Both directions are driven by one future, with
//! no task and no lock per connection, and bytes are counted as they are written, so long-lived
//! connections show up in the counters while they last.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::poll_read_buf;

use crate::metrics::Counter;

#[cfg(test)]
mod tests;

/// Per direction, while bytes are moving. A TLS record carries at most 16 KiB; half of that
/// keeps busy sidecars small while bulk copies still move whole socket buffers in few calls.
/// A direction with nothing to read gives its buffer back, so an idle connection holds none
/// (most of a sidecar's connections are idle keep-alives).
const BUFFER: usize = 8 * 1024;

/// Copies `a` → `b` and `b` → `a` until both directions have ended, counting bytes written in
/// `a_to_b` and `b_to_a`. An error in either direction ends both: the caller drops the streams.
pub(crate) async fn duplex<A, B>(
    a: &mut A,
    b: &mut B,
    a_to_b: &Counter,
    b_to_a: &Counter,
) -> io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let mut forward = HalfDuplex::new(a_to_b);
    let mut backward = HalfDuplex::new(b_to_a);
    poll_fn(|cx| {
        let forward_done = forward.poll_copy(cx, a, b)?.is_ready();
        let backward_done = backward.poll_copy(cx, b, a)?.is_ready();
        if forward_done && backward_done {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// One direction: read into the buffer, write it all out, repeat; at end of stream shut the
/// writer down.
struct HalfDuplex<'a> {
    /// Empty, and without an allocation, whenever the reader has nothing for us.
    buf: BytesMut,
    /// How much of `buf` was written out.
    pos: usize,
    read_done: bool,
    needs_flush: bool,
    done: bool,
    bytes: &'a Counter,
}

impl<'a> HalfDuplex<'a> {
    fn new(bytes: &'a Counter) -> Self {
        HalfDuplex {
            buf: BytesMut::new(),
            pos: 0,
            read_done: false,
            needs_flush: false,
            done: false,
            bytes,
        }
    }

    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        loop {
            while self.pos < self.buf.len() {
                let n = ready!(Pin::new(&mut *writer).poll_write(cx, &self.buf[self.pos..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.pos += n;
                self.needs_flush = true;
                self.bytes.add(n as u64);
            }
            if self.read_done {
                // Shutting down flushes first.
                ready!(Pin::new(&mut *writer).poll_shutdown(cx))?;
                self.done = true;
                return Poll::Ready(Ok(()));
            }
            self.buf.clear();
            self.pos = 0;
            if self.buf.capacity() == 0 {
                self.buf.reserve(BUFFER);
            }
            match poll_read_buf(Pin::new(&mut *reader), cx, &mut self.buf) {
                Poll::Ready(Ok(0)) => self.read_done = true,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.buf = BytesMut::new();
                    // Nothing more to read for now: push out what the writer buffered (a TLS
                    // writer holds records until flushed).
                    if self.needs_flush {
                        ready!(Pin::new(&mut *writer).poll_flush(cx))?;
                        self.needs_flush = false;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}
