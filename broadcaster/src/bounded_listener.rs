//! A TCP listener for `axum::serve` that bounds what idle or slow clients can hold: at
//! most `max_connections` are open at once (the next accept waits for one to close), and
//! each is closed `lifetime` after it was accepted, whether or not it sent anything.
//!
//! `axum::serve` itself sets no header timeout and no connection cap, so without this a
//! client that opens connections and never finishes a request keeps each one (and its file
//! descriptor) forever. The metrics listener serves one short page per request, so a fixed
//! lifetime costs a scraper no more than a reconnect.

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
use tokio::time::Sleep;

/// A [`TcpListener`] with a connection cap and a per-connection lifetime.
pub struct BoundedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    lifetime: Duration,
}

impl BoundedListener {
    /// Wraps `inner`; `max_connections` of at least 1.
    pub fn new(inner: TcpListener, max_connections: usize, lifetime: Duration) -> Self {
        BoundedListener {
            inner,
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
            lifetime,
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
                    let deadline = Box::pin(tokio::time::sleep(self.lifetime));
                    return (
                        BoundedIo {
                            stream,
                            deadline,
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

/// An accepted connection: it holds one of the listener's slots until dropped, and every
/// read or write after its deadline fails with `TimedOut` (which makes hyper close it).
pub struct BoundedIo {
    stream: TcpStream,
    deadline: Pin<Box<Sleep>>,
    _permit: OwnedSemaphorePermit,
}

impl BoundedIo {
    /// Whether the lifetime is over. Polling the timer also registers the task to be woken
    /// when it ends, so a connection parked in a read is closed on time.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection lifetime over")
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
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for BoundedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.expired(cx) {
            return Poll::Ready(Err(timed_out()));
        }
        Pin::new(&mut this.stream).poll_write(cx, buf)
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

    async fn server(max: usize, lifetime: Duration) -> SocketAddr {
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = tcp.local_addr().expect("addr");
        let app = Router::new().route("/", get(|| async { "ok" }));
        tokio::spawn(async move {
            let _ = axum::serve(BoundedListener::new(tcp, max, lifetime), app).await;
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
        let addr = server(4, Duration::from_millis(300)).await;
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
        let addr = server(1, lifetime).await;
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
}
