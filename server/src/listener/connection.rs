//! An admitted connection: it holds its place under the caps until
//! dropped, and is cut when nothing moves on it either way for too long.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::caps::Place;

/// A connection that holds its place under the caps until dropped (also
/// after an upgrade to a stream, which keeps the connection). A connection
/// on which nothing moved for the idle time, neither a byte read nor one
/// written, is disconnected: an idle stream must not hold a place for
/// ever. Writes count so that a long replay, during which the client has
/// nothing to say, is not cut.
pub struct Counted {
    stream: TcpStream,
    _place: Place,
    idle: Duration,
    /// When a byte last moved (writes only note it: they are the hot path).
    last_moved: tokio::time::Instant,
    silent_until: Pin<Box<tokio::time::Sleep>>,
}

impl Counted {
    pub fn new(stream: TcpStream, place: Place, idle: Duration) -> Counted {
        Counted {
            stream,
            _place: place,
            idle,
            last_moved: tokio::time::Instant::now(),
            silent_until: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn moved(&mut self) {
        self.last_moved = tokio::time::Instant::now();
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            match Pin::new(&mut this.stream).poll_read(cx, buf) {
                Poll::Ready(result) => {
                    this.moved();
                    return Poll::Ready(result);
                }
                Poll::Pending => {}
            }
            if this.silent_until.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // The timer went off: only idle if nothing moved since it was set.
            let deadline = this.last_moved + this.idle;
            if deadline <= tokio::time::Instant::now() {
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "nothing moved on the connection for too long",
                )));
            }
            this.silent_until.as_mut().reset(deadline);
        }
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A connection under a cap, accepted from a real loopback client.
    async fn counted(idle: Duration) -> (Counted, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let client = TcpStream::connect(address).await.expect("connect");
        let (stream, _) = listener.accept().await.expect("accept");
        (Counted::new(stream, Place::alone(), idle), client)
    }

    #[tokio::test]
    async fn a_connection_is_idle_only_when_nothing_moves_either_way() {
        let idle = Duration::from_millis(300);
        // The client says nothing while the server keeps writing (a long
        // replay): for four idle times, the read stays open.
        let (mut server_side, _client) = counted(idle).await;
        let mut buffer = [0u8; 16];
        let started = tokio::time::Instant::now();
        let mut read_at = None;
        let mut writes = 0;
        while started.elapsed() < idle * 4 {
            tokio::select! {
                read = server_side.read(&mut buffer) => {
                    read_at = Some((started.elapsed(), read.map_err(|e| e.kind())));
                    break;
                }
                () = tokio::time::sleep(idle / 6) => {
                    server_side.write_all(b"frame").await.expect("write");
                    writes += 1;
                }
            }
        }
        assert!(
            read_at.is_none(),
            "cut while writing: {read_at:?} after {writes} writes"
        );
        // Once nothing moves, the idle time later the read fails.
        let read = tokio::time::timeout(idle * 4, server_side.read(&mut buffer))
            .await
            .expect("the idle connection was not cut");
        assert_eq!(
            read.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::TimedOut)
        );
        // A client that speaks keeps it open, of course.
        let (mut server_side, mut client2) = counted(idle).await;
        for _ in 0..8 {
            tokio::time::sleep(idle / 3).await;
            client2.write_all(b"pong").await.expect("write");
            let n = server_side.read(&mut buffer).await.expect("read");
            assert!(n > 0);
        }
    }
}
