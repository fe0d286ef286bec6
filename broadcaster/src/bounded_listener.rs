//! A TCP listener for `axum::serve` that bounds what idle or slow clients can hold: at
//! most `max_connections` are open at once (the next accept waits for one to close), and
//! each is closed once its [`Deadline`] passes: a fixed time after it was accepted, or a
//! time without any byte read or written.
//!
//! `axum::serve` itself sets no header timeout and no connection cap, so without this a
//! client that opens connections and never finishes a request keeps each one (and its file
//! descriptor) forever.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// When a connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// This long after it was accepted, busy or not: for a listener whose requests are
    /// short and whose clients reconnect anyway (the metrics scrape).
    Lifetime(Duration),
    /// After this long with no byte read from it or written to it: keep-alive clients
    /// keep their connection while they use it.
    Idle(Duration),
}

impl Deadline {
    fn duration(self) -> Duration {
        match self {
            Deadline::Lifetime(d) | Deadline::Idle(d) => d,
        }
    }
}

/// A [`TcpListener`] with a connection cap and a per-connection [`Deadline`].
pub struct BoundedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    deadline: Deadline,
}

impl BoundedListener {
    /// Wraps `inner`; `max_connections` of at least 1.
    pub fn new(inner: TcpListener, max_connections: usize, deadline: Deadline) -> Self {
        BoundedListener {
            inner,
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
            deadline,
        }
    }
}

impl axum::serve::Listener for BoundedListener {
    type Io = BoundedIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (BoundedIo, SocketAddr) {
        // The semaphore is never closed, so acquiring fails only if that changes; waiting
        // forever then is the safe reading (no connection beyond the cap).
        let Ok(permit) = Arc::clone(&self.slots).acquire_owned().await else {
            return std::future::pending().await;
        };
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let timer = Box::pin(tokio::time::sleep(self.deadline.duration()));
                    return (
                        BoundedIo {
                            stream,
                            timer,
                            idle: match self.deadline {
                                Deadline::Idle(d) => Some(d),
                                Deadline::Lifetime(_) => None,
                            },
                            _permit: permit,
                        },
                        addr,
                    );
                }
                Err(e) => {
                    // Out of descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// An accepted connection: it holds one of the listener's slots until dropped. Once its
/// deadline has passed every read fails with `TimedOut` (which makes hyper close it), and
/// with a lifetime deadline every write too; with an idle deadline each byte moved moves
/// the deadline, and a write is never refused (a response is not idleness).
pub struct BoundedIo {
    stream: TcpStream,
    timer: Pin<Box<Sleep>>,
    /// `Some` for an idle deadline: how far each byte moves it.
    idle: Option<Duration>,
    _permit: OwnedSemaphorePermit,
}

impl BoundedIo {
    /// Whether the deadline has passed. Polling the timer also registers the task to be
    /// woken when it does, so a connection parked in a read is closed on time.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.timer.as_mut().poll(cx).is_ready()
    }

    /// Activity on an idle-deadline connection pushes its deadline back.
    fn active(&mut self) {
        if let Some(d) = self.idle {
            self.timer.as_mut().reset(Instant::now() + d);
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection deadline passed")
}

impl AsyncRead for BoundedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.expired(cx) {
            return Poll::Ready(Err(timed_out()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.active();
        }
        polled
    }
}

impl AsyncWrite for BoundedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.idle.is_none() && this.expired(cx) {
            return Poll::Ready(Err(timed_out()));
        }
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.active();
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use axum::Router;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn server(max: usize, deadline: Deadline) -> SocketAddr {
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = tcp.local_addr().expect("addr");
        let app = Router::new().route("/", get(|| async { "ok" }));
        tokio::spawn(async move {
            let _ = axum::serve(BoundedListener::new(tcp, max, deadline), app).await;
        });
        addr
    }

    /// Reads until the server closes; what it sent.
    async fn read_to_close(s: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_when_its_lifetime_ends() {
        let addr = server(4, Deadline::Lifetime(Duration::from_millis(300))).await;
        let mut idle = TcpStream::connect(addr).await.expect("connect");
        // Without the lifetime this read would never end: the client sends nothing.
        let got = tokio::time::timeout(Duration::from_secs(10), read_to_close(&mut idle))
            .await
            .expect("the server closes an idle connection");
        assert_eq!(
            got, "",
            "nothing is answered to a client that asked nothing"
        );
    }

    #[tokio::test]
    async fn connections_past_the_cap_wait_for_a_slot() {
        let lifetime = Duration::from_millis(500);
        let addr = server(1, Deadline::Lifetime(lifetime)).await;
        let before_idle = tokio::time::Instant::now();
        let mut idle = TcpStream::connect(addr).await.expect("connect");
        // Let the server accept the first connection before the second arrives.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut second = TcpStream::connect(addr)
            .await
            .expect("connect (kernel backlog)");
        second
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .expect("send");
        let (idle_sent, (page, answered_after)) = tokio::join!(read_to_close(&mut idle), async {
            let page = read_to_close(&mut second).await;
            (page, before_idle.elapsed())
        });
        assert_eq!(idle_sent, "", "the idle connection is closed unanswered");
        assert!(
            page.starts_with("HTTP/1.1 200"),
            "the second request is served: {page:?}"
        );
        assert!(page.ends_with("ok"), "with its body: {page:?}");
        // The idle connection's lifetime starts when it is accepted, after `before_idle`; a
        // listener without the cap answers the second request within milliseconds.
        assert!(
            answered_after >= lifetime,
            "with one slot the second request waits for the idle connection's lifetime to end \
             (answered after {answered_after:?})"
        );
    }

    /// Sends `GET /` on `s` (keep-alive) and reads one whole response (its body is "ok").
    async fn one_request(s: &mut TcpStream) -> String {
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("send");
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while !got.ends_with(b"ok") {
            let n = s.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "closed mid-response: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    #[tokio::test]
    async fn an_idle_deadline_spares_a_connection_in_use_and_closes_it_once_idle() {
        let idle = Duration::from_millis(300);
        let addr = server(4, Deadline::Idle(idle)).await;
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let start = tokio::time::Instant::now();
        // Requests every 100 ms for well past one idle period: the connection stays up.
        while start.elapsed() < idle * 3 {
            let page = one_request(&mut s).await;
            assert!(page.starts_with("HTTP/1.1 200"), "{page:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Then nothing: the server closes it.
        let rest = tokio::time::timeout(Duration::from_secs(10), read_to_close(&mut s))
            .await
            .expect("an idle connection is closed");
        assert_eq!(rest, "", "nothing more is sent before the close");
    }
}
