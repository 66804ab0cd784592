//! Whether a polling answer reached a live peer.
//!
//! A GET that takes packets from the session's queue has handed them over only once its bytes went
//! out on a connection whose client was still there. A client may leave (send its FIN) just as its
//! GET is answered: the runtime has not told the HTTP server yet, which writes the answer into the dead
//! connection, the write succeeds, and the packets would be lost while the session lives on. So the
//! connections [`crate::serve_connection`] serves run on an [`AnswerIo`]: while a polling answer is
//! pending on it, the first write asks the kernel (a non-blocking peek, which does not wait for the
//! runtime to report readiness) whether the peer already sent EOF; EOF, a write error, or the
//! connection dropped before the answer was written and flushed end the session with "transport error"
//! (a recoverable reason: with connection state recovery on, the client gets the packets again when
//! it comes back). Other requests, and connections upgraded to websocket, pay one atomic load per
//! write.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use ferrio_proto::engine::CloseReason;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::engine::Socket;

/// `HTTP/1.1 200 OK\r\n\r\n`: no answer's head is shorter.
const MIN_HEAD_LEN: usize = 19;

/// One connection's pending polling answer, shared by its IO (which writes it) and its requests
/// (which arm it): put in each request's extensions by `serve_connection`.
#[derive(Clone, Default)]
pub(crate) struct AnswerWatch(Arc<WatchInner>);

#[derive(Default)]
struct WatchInner {
    /// Fast path: whether `pending` holds something.
    armed: AtomicBool,
    pending: Mutex<Option<Pending>>,
}

struct Pending {
    session: Arc<Socket>,
    /// The answer's body length: a flush before that many bytes were written is not the end of it.
    body_len: usize,
    written: usize,
    /// Whether the peer was checked for EOF (once, before the first write).
    checked: bool,
}

impl AnswerWatch {
    /// The answer to a GET of `session`, `body_len` bytes long, is about to be written on this
    /// connection: it counts as delivered once written and flushed.
    pub(crate) fn arm(&self, session: Arc<Socket>, body_len: usize) {
        // An answer still pending here (pipelined requests) is ahead of this one in the same byte
        // stream: this one's fate is also its.
        *self.0.pending.lock() = Some(Pending {
            session,
            body_len,
            written: 0,
            checked: false,
        });
        self.0.armed.store(true, Ordering::Release);
    }

    fn is_armed(&self) -> bool {
        self.0.armed.load(Ordering::Acquire)
    }

    /// The pending answer did not reach the client.
    fn fail(&self) {
        self.0.armed.store(false, Ordering::Release);
        if let Some(p) = self.0.pending.lock().take() {
            p.fail();
        }
    }
}

impl Pending {
    fn fail(self) {
        tracing::debug!(
            sid = self.session.id(),
            "polling answer not delivered: the client left"
        );
        self.session.close_with(CloseReason::TransportError);
    }
}

/// A connection's IO that tells a session when the polling answer written on it did not reach the
/// client (see the module's documentation).
pub(crate) struct AnswerIo<I> {
    inner: I,
    watch: WatchGuard,
}

/// Fails the answer in progress when the connection goes away (dropped, or handed to a websocket).
struct WatchGuard(AnswerWatch);

impl std::ops::Deref for WatchGuard {
    type Target = AnswerWatch;
    fn deref(&self) -> &AnswerWatch {
        &self.0
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        if self.0.is_armed() {
            self.0.fail();
        }
    }
}

impl<I: 'static> AnswerIo<I> {
    pub(crate) fn new(inner: I, watch: AnswerWatch) -> Self {
        AnswerIo {
            inner,
            watch: WatchGuard(watch),
        }
    }

    /// The connection itself, for a websocket that needs no answer watch (nor its indirection).
    pub(crate) fn into_inner(self) -> I {
        self.inner
    }

    /// Before the first byte of an answer: fails it if the peer is known to be gone.
    fn check_peer(&self) -> io::Result<()> {
        let mut pending = self.watch.0.0.pending.lock();
        let Some(p) = pending.as_mut() else {
            return Ok(());
        };
        if p.checked {
            return Ok(());
        }
        p.checked = true;
        drop(pending);
        if peer_sent_eof(&self.inner) {
            self.watch.fail();
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the client closed the connection before its answer",
            ));
        }
        Ok(())
    }

    fn wrote(&self, result: &Poll<io::Result<usize>>) {
        match result {
            Poll::Ready(Ok(n)) => {
                if let Some(p) = self.watch.0.0.pending.lock().as_mut() {
                    p.written += n;
                }
            }
            Poll::Ready(Err(_)) => self.watch.fail(),
            Poll::Pending => {}
        }
    }
}

/// Whether the kernel already holds the peer's EOF, asked directly (a runtime's readiness may lag).
/// Only TCP streams can be asked; other streams (TLS, in-memory) report no EOF.
fn peer_sent_eof<I: 'static>(io: &I) -> bool {
    let Some(tcp) = (io as &dyn std::any::Any).downcast_ref::<tokio::net::TcpStream>() else {
        return false;
    };
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    // The socket is non-blocking under tokio: no data and no EOF is `WouldBlock`.
    match socket2::SockRef::from(tcp).peek(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::Interrupted,
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for AnswerIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin + 'static> AsyncWrite for AnswerIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if !self.watch.is_armed() {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        }
        self.check_peer()?;
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if !self.watch.is_armed() {
            return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        }
        self.check_peer()?;
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        if self.watch.is_armed() {
            match &r {
                Poll::Ready(Ok(())) => {
                    let mut pending = self.watch.0.0.pending.lock();
                    // Written and flushed: delivered, as far as the server can know. (The HTTP
                    // servers flush once after a whole answer; a flush before the body's bytes are
                    // out is not it.)
                    if pending
                        .as_ref()
                        .is_some_and(|p| p.written >= p.body_len + MIN_HEAD_LEN)
                    {
                        *pending = None;
                        self.watch.0.0.armed.store(false, Ordering::Release);
                    }
                }
                Poll::Ready(Err(_)) => self.watch.fail(),
                Poll::Pending => {}
            }
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
