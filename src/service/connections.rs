//! Admitting and limiting connections (issue 11, item 4): no client may hold every
//! connection, or every file descriptor, of the signer.
//!
//! - **How many** (`Gate`): at most `max` connections at once over all peers, and at most
//!   `max_per_peer` from one peer: a TCP peer's IP address (whatever its ports), a Unix
//!   peer's uid (every process of one user is one peer; the socket's mode and group already
//!   decide which users may connect at all). A connection over either cap is accepted and
//!   closed at once. Not accepting it would leave it in the kernel's backlog, and a full
//!   backlog makes every new client wait until its deadline, the finding's failure itself;
//!   accepted, it holds its file descriptor only until the same poll drops it, so the
//!   process never holds more than `max` connections plus one. Refusals are logged with the
//!   peer's address, at most once per [`REFUSAL_LOG_INTERVAL`], with how many connections
//!   were refused since the last line.
//! - **How long** ([`Admitted`]): a connection that has not sent the whole HTTP/2 client
//!   preface within `handshake_timeout` (a slow-loris), or has had no open stream for
//!   `idle_timeout`, is closed. tonic has no idle timeout (its `max_connection_age` would end
//!   busy connections too), so it is done here, around the accepted socket: when a deadline
//!   has passed and nothing is waiting to be read, a read returns an error and the
//!   connection ends. Bytes received do not count as activity (a client sending HTTP/2
//!   PINGs would otherwise keep an idle connection forever); open streams do. They are
//!   counted by [`TrackStreams`], a layer around the gRPC services that finds each request's
//!   connection through the connect info tonic attaches to the request.
//! - **How many streams, and dead peers**: HTTP/2 itself, set up by [`Limits::server`]:
//!   SETTINGS_MAX_CONCURRENT_STREAMS is advertised and enforced (a stream over it is reset
//!   with REFUSED_STREAM; a client that honours the setting queues instead), and a PING is
//!   sent every `keepalive_interval`; one unanswered within `keepalive_timeout` closes the
//!   connection. That finds a vanished peer while one of its streams is open, when the idle
//!   timeout does not run.
//!
//! The caps and both timeouts apply to the TCP and the Unix socket listener alike.
//! [`Limits::server`] and [`Limits::tcp`] / [`Limits::unix`] go together: the deadlines of
//! an [`Admitted`] connection rely on the layer to learn of its streams.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::time::{Instant, Sleep};
use tokio_stream::Stream;
use tonic::codegen::{http, Service};
use tonic::transport::server::{Connected, TcpConnectInfo, UdsConnectInfo};
use tonic::transport::Server;
use tower_layer::{Layer, Stack};

use super::peer::TlsConnectInfo;
use crate::config::ConnectionsConfig;

/// At most one log line per this interval about refused connections.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How long accepting pauses after an error that is not the peer's (out of file
/// descriptors, of memory): retrying at once would spin while nothing can change.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Connections refused in one poll of the listener before it yields to other tasks.
const REFUSALS_PER_POLL: usize = 64;

/// File descriptors kept for everything but connections: the listener, the ledger, the
/// audit log, the runtime's own (epoll, eventfd, signal pipe), a PKCS#11 module's.
pub const RESERVED_FDS: u64 = 64;

/// Why the server's connection limits cannot be put in place.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error(
        "connections.max = {max} needs {needed} file descriptors, above the hard open-file \
         limit of {hard}: raise the limit (LimitNOFILE= under systemd) or lower connections.max"
    )]
    FdLimit { max: usize, needed: u64, hard: u64 },
    #[error("cannot raise the open-file limit to {needed}: {source}")]
    RaiseFdLimit { needed: u64, source: io::Error },
}

/// The limits of one server: the shared accounting of connections and the timeouts.
pub struct Limits {
    gate: Arc<Gate>,
    cfg: ConnectionsConfig,
}

impl Limits {
    /// Makes sure the process may hold `cfg.max` connections beside its other files (the
    /// soft open-file limit is raised as far as the hard one allows), so the caps, not the
    /// kernel, decide who is served.
    pub fn new(cfg: &ConnectionsConfig) -> Result<Limits, LimitError> {
        ensure_fd_limit(cfg.max)?;
        Ok(Limits {
            gate: Arc::new(Gate {
                max: cfg.max,
                max_per_peer: cfg.max_per_peer,
                held: Mutex::new(Held::default()),
            }),
            cfg: *cfg,
        })
    }

    /// The HTTP/2 settings and the stream-counting layer, on top of `server`.
    pub fn server<L>(&self, server: Server<L>) -> Server<Stack<TrackStreamsLayer, L>> {
        server
            .max_concurrent_streams(self.cfg.max_streams_per_connection)
            .http2_keepalive_interval(Some(self.cfg.keepalive_interval))
            .http2_keepalive_timeout(Some(self.cfg.keepalive_timeout))
            .layer(TrackStreamsLayer)
    }

    /// Connections accepted from a TCP listener, admitted under the caps.
    pub fn tcp(&self, listener: TcpListener) -> Incoming<TcpListener> {
        self.incoming(listener)
    }

    /// Connections accepted from a Unix socket listener, admitted under the caps.
    pub fn unix(&self, listener: UnixListener) -> Incoming<UnixListener> {
        self.incoming(listener)
    }

    /// Connections from any other listener (the TLS one), admitted under the caps.
    pub fn incoming<L: Accept>(&self, listener: L) -> Incoming<L> {
        Incoming {
            listener,
            gate: Arc::clone(&self.gate),
            handshake_timeout: self.cfg.handshake_timeout,
            idle_timeout: self.cfg.idle_timeout,
            paused: None,
            error_logged: None,
        }
    }
}

/// Raises the soft RLIMIT_NOFILE to `max` + [`RESERVED_FDS`] when it is lower and the hard
/// limit allows; refuses when the hard limit does not.
fn ensure_fd_limit(max: usize) -> Result<(), LimitError> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let needed = u64::try_from(max)
        .unwrap_or(u64::MAX)
        .saturating_add(RESERVED_FDS);
    let limit = getrlimit(Resource::Nofile);
    // `None` is RLIM_INFINITY.
    if limit.current.is_none_or(|soft| soft >= needed) {
        return Ok(());
    }
    if let Some(hard) = limit.maximum.filter(|&hard| hard < needed) {
        return Err(LimitError::FdLimit { max, needed, hard });
    }
    let raised = Rlimit {
        current: Some(needed),
        maximum: limit.maximum,
    };
    setrlimit(Resource::Nofile, raised).map_err(|e| LimitError::RaiseFdLimit {
        needed,
        source: e.into(),
    })?;
    tracing::info!(
        from = limit.current,
        to = needed,
        "raised the soft open-file limit to hold connections.max connections"
    );
    Ok(())
}

/// Who a connection counts against under `max_per_peer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Peer {
    /// A TCP peer's address, IPv4-mapped IPv6 folded to IPv4.
    Ip(IpAddr),
    /// A Unix socket peer's user; `None` when the kernel gave no credentials (all such
    /// peers share one count).
    Uid(Option<u32>),
}

/// A peer's address as accepted, for log lines.
#[derive(Debug, Clone)]
pub enum PeerAddr {
    Tcp(SocketAddr),
    Unix { uid: Option<u32>, pid: Option<i32> },
}

impl PeerAddr {
    fn peer(&self) -> Peer {
        match self {
            PeerAddr::Tcp(a) => Peer::Ip(a.ip().to_canonical()),
            PeerAddr::Unix { uid, .. } => Peer::Uid(*uid),
        }
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known = |v: Option<String>| v.unwrap_or_else(|| "?".into());
        match self {
            PeerAddr::Tcp(a) => write!(f, "tcp:{a}"),
            PeerAddr::Unix { uid, pid } => write!(
                f,
                "unix:uid={},pid={}",
                known(uid.map(|u| u.to_string())),
                known(pid.map(|p| p.to_string()))
            ),
        }
    }
}

/// Which cap a refused connection was over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Total,
    Peer,
}

/// The connections held, in all and per peer; a [`Slot`] is one of them.
struct Gate {
    max: usize,
    max_per_peer: usize,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    total: usize,
    /// Only peers holding a connection have an entry, so at most `max` entries.
    per_peer: HashMap<Peer, usize>,
    /// Refusals not yet reported, and when the last report was.
    unreported: u64,
    reported_at: Option<Instant>,
}

impl Gate {
    /// A poisoned lock still holds correct counts: every update is one step.
    fn lock(&self) -> MutexGuard<'_, Held> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn admit(self: &Arc<Self>, peer: Peer) -> Result<Slot, Refusal> {
        let mut held = self.lock();
        // The total first, so a refused peer gets no entry.
        if held.total >= self.max {
            return Err(Refusal::Total);
        }
        let of_peer = held.per_peer.entry(peer).or_insert(0);
        if *of_peer >= self.max_per_peer {
            return Err(Refusal::Peer);
        }
        *of_peer += 1;
        held.total += 1;
        Ok(Slot {
            gate: Arc::clone(self),
            peer,
        })
    }

    /// Counts a refusal and logs it, at most once per [`REFUSAL_LOG_INTERVAL`].
    fn refused(&self, why: Refusal, addr: &PeerAddr) {
        let now = Instant::now();
        let report = {
            let mut held = self.lock();
            held.unreported += 1;
            let due = held
                .reported_at
                .is_none_or(|at| now.duration_since(at) >= REFUSAL_LOG_INTERVAL);
            if due {
                held.reported_at = Some(now);
                Some(std::mem::take(&mut held.unreported))
            } else {
                None
            }
        };
        let Some(refused) = report else { return };
        match why {
            Refusal::Total => tracing::warn!(
                peer = %addr,
                max = self.max,
                refused_since_last_report = refused,
                "connection refused and closed: the server holds connections.max connections"
            ),
            Refusal::Peer => tracing::warn!(
                peer = %addr,
                max_per_peer = self.max_per_peer,
                refused_since_last_report = refused,
                "connection refused and closed: this peer holds connections.max_per_peer connections"
            ),
        }
    }
}

/// One admitted connection's place under the caps, given back when dropped.
struct Slot {
    gate: Arc<Gate>,
    peer: Peer,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.gate.lock();
        held.total = held.total.saturating_sub(1);
        if let Some(n) = held.per_peer.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.per_peer.remove(&self.peer);
            }
        }
    }
}

/// A listener tonic can take connections from.
pub trait Accept {
    type Io;
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(Self::Io, PeerAddr)>>;
}

impl Accept for TcpListener {
    type Io = TcpStream;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, PeerAddr)>> {
        let (stream, addr) = ready!(TcpListener::poll_accept(self, cx))?;
        // gRPC messages are small and latency-bound (tonic's TcpIncoming did the same).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(peer = %addr, "cannot set TCP_NODELAY: {e}");
        }
        Poll::Ready(Ok((stream, PeerAddr::Tcp(addr))))
    }
}

impl Accept for UnixListener {
    type Io = UnixStream;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(UnixStream, PeerAddr)>> {
        let (stream, _) = ready!(UnixListener::poll_accept(self, cx))?;
        let cred = stream.peer_cred().ok();
        let addr = PeerAddr::Unix {
            uid: cred.map(|c| c.uid()),
            pid: cred.and_then(|c| c.pid()),
        };
        Poll::Ready(Ok((stream, addr)))
    }
}

/// The stream of admitted connections tonic serves (`serve_with_incoming_shutdown`).
/// Accept errors never reach tonic, which would retry at once: a peer's error (it reset
/// the connection before it was accepted) is skipped, any other pauses accepting for
/// `ACCEPT_ERROR_PAUSE` and is logged at most once per [`REFUSAL_LOG_INTERVAL`].
pub struct Incoming<L> {
    listener: L,
    gate: Arc<Gate>,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    paused: Option<Pin<Box<Sleep>>>,
    error_logged: Option<Instant>,
}

/// An error of the one connection being accepted, not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

impl<L: Accept + Unpin> Stream for Incoming<L> {
    type Item = Result<Admitted<L::Io>, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(pause) = this.paused.as_mut() {
            ready!(pause.as_mut().poll(cx));
            this.paused = None;
        }
        for _ in 0..REFUSALS_PER_POLL {
            match ready!(this.listener.poll_accept(cx)) {
                Ok((io, addr)) => match this.gate.admit(addr.peer()) {
                    Ok(slot) => {
                        let admitted = Admitted::new(
                            io,
                            slot,
                            addr,
                            this.handshake_timeout,
                            this.idle_timeout,
                        );
                        return Poll::Ready(Some(Ok(admitted)));
                    }
                    // Dropping `io` here closes the socket: the fd is back at once.
                    Err(why) => this.gate.refused(why, &addr),
                },
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    let now = Instant::now();
                    if this
                        .error_logged
                        .is_none_or(|at| now.duration_since(at) >= REFUSAL_LOG_INTERVAL)
                    {
                        this.error_logged = Some(now);
                        tracing::error!("accepting a connection failed, pausing accepts: {e}");
                    }
                    this.paused = Some(Box::pin(tokio::time::sleep(ACCEPT_ERROR_PAUSE)));
                    // Polled again at once, the pause registers this task's waker.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
        }
        // A flood of refused connections must not keep this task from the shutdown signal.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// What an HTTP/2 client sends first: a fixed 24-byte magic string, then a SETTINGS frame
/// (a 9-byte frame header whose first 3 bytes are the payload length, then the payload).
/// Only the lengths are followed here; the HTTP/2 library checks the content and closes a
/// connection that sends anything else.
#[derive(Debug)]
struct Preface {
    seen: usize,
    header: [u8; FRAME_HEADER_LEN],
    /// The preface's length, once the SETTINGS frame's header has said it.
    len: Option<usize>,
}

const MAGIC_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;

impl Preface {
    fn new() -> Preface {
        Preface {
            seen: 0,
            header: [0; FRAME_HEADER_LEN],
            len: None,
        }
    }

    fn done(&self) -> bool {
        self.len.is_some_and(|len| self.seen >= len)
    }

    /// Notes bytes just received; true when they complete the preface.
    fn saw(&mut self, bytes: &[u8]) -> bool {
        if self.done() {
            return false;
        }
        for &b in bytes {
            if let Some(i) = self.seen.checked_sub(MAGIC_LEN) {
                if let Some(slot) = self.header.get_mut(i) {
                    *slot = b;
                }
            }
            self.seen += 1;
            if self.seen == MAGIC_LEN + FRAME_HEADER_LEN {
                let [a, b, c, ..] = self.header;
                let payload = u32::from_be_bytes([0, a, b, c]) as usize;
                self.len = Some(MAGIC_LEN + FRAME_HEADER_LEN + payload);
            }
            if self.done() {
                return true;
            }
        }
        false
    }
}

/// The open streams of one connection, and since when none is open.
struct Streams {
    state: Mutex<StreamsState>,
}

struct StreamsState {
    open: usize,
    idle_since: Instant,
}

impl Streams {
    fn lock(&self) -> MutexGuard<'_, StreamsState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn open(self: &Arc<Self>) -> StreamOpen {
        self.lock().open += 1;
        StreamOpen(Arc::clone(self))
    }

    /// `None` while a stream is open.
    fn idle_since(&self) -> Option<Instant> {
        let state = self.lock();
        (state.open == 0).then_some(state.idle_since)
    }
}

/// One open stream; the connection's idle time starts again when the last one is dropped.
pub struct StreamOpen(Arc<Streams>);

impl Drop for StreamOpen {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.open = state.open.saturating_sub(1);
        if state.open == 0 {
            state.idle_since = Instant::now();
        }
    }
}

/// Why a connection's time ran out.
#[derive(Debug, Clone, Copy)]
enum Expired {
    Handshake,
    Idle,
}

/// `t + d`, or a time too far ahead to matter when that does not fit.
fn after(t: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 86_400);
    t.checked_add(d).unwrap_or_else(|| t + FAR)
}

/// An admitted connection: the socket, its place under the caps (released when tonic
/// drops the connection) and its deadlines. Reads and writes pass through untouched; a
/// deadline is only looked at when the socket has nothing for a read (or no room for a
/// write), so bytes already received are always served before a connection is closed.
pub struct Admitted<IO> {
    io: IO,
    streams: Arc<Streams>,
    preface: Preface,
    accepted: Instant,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    /// Fires at the next moment a deadline may have passed; see [`Admitted::next_check`].
    check: Pin<Box<Sleep>>,
    peer: PeerAddr,
    _slot: Slot,
}

impl<IO> Admitted<IO> {
    fn new(
        io: IO,
        slot: Slot,
        peer: PeerAddr,
        handshake_timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
        let now = Instant::now();
        Admitted {
            io,
            streams: Arc::new(Streams {
                state: Mutex::new(StreamsState {
                    open: 0,
                    idle_since: now,
                }),
            }),
            preface: Preface::new(),
            accepted: now,
            handshake_timeout,
            idle_timeout,
            check: Box::pin(tokio::time::sleep_until(after(now, handshake_timeout))),
            peer,
            _slot: slot,
        }
    }

    /// When to look again, or why the connection's time is up. Until the preface is in, the
    /// handshake deadline counts; then the idle one, from when the last stream closed (or
    /// from the accept). While a stream is open there is no deadline: look again in one
    /// idle timeout, so a connection that goes idle meanwhile is closed on time.
    fn next_check(&self, now: Instant) -> Result<Instant, Expired> {
        let (due, why) = if !self.preface.done() {
            (
                after(self.accepted, self.handshake_timeout),
                Expired::Handshake,
            )
        } else {
            match self.streams.idle_since() {
                Some(since) => (after(since, self.idle_timeout), Expired::Idle),
                None => return Ok(after(now, self.idle_timeout)),
            }
        };
        if now >= due {
            Err(why)
        } else {
            Ok(due)
        }
    }

    /// Ready with an error once a deadline has passed; registers the task's waker for the
    /// next check otherwise.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            ready!(self.check.as_mut().poll(cx));
            match self.next_check(Instant::now()) {
                Ok(at) => self.check.as_mut().reset(at),
                Err(why) => {
                    let message = match why {
                        Expired::Handshake => {
                            "no complete HTTP/2 preface within connections.handshake_timeout"
                        }
                        Expired::Idle => "no open stream for connections.idle_timeout",
                    };
                    tracing::debug!(peer = %self.peer, "closing a connection: {message}");
                    return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, message));
                }
            }
        }
    }

    /// Passes a pending socket operation through, or ends it with the deadline's error.
    fn pending_or_expired<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        self.poll_expired(cx).map(Err)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Admitted<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if this.preface.saw(&buf.filled()[before..]) {
                    // The idle deadline may come before the handshake one the timer holds.
                    let now = Instant::now();
                    let at = this.next_check(now).unwrap_or(now);
                    this.check.as_mut().reset(at);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.pending_or_expired(cx),
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Admitted<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Pending => this.pending_or_expired(cx),
            done => done,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.pending_or_expired(cx),
            done => done,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Pending => this.pending_or_expired(cx),
            done => done,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The connect info of an [`Admitted`] connection: the socket's own (peer address or
/// credentials), and the connection's stream count for [`TrackStreams`].
#[derive(Clone)]
pub struct Tracked<I> {
    info: I,
    streams: Arc<Streams>,
}

impl<IO: Connected> Connected for Admitted<IO> {
    type ConnectInfo = Tracked<IO::ConnectInfo>;

    fn connect_info(&self) -> Self::ConnectInfo {
        Tracked {
            info: self.io.connect_info(),
            streams: Arc::clone(&self.streams),
        }
    }
}

/// Counts each request as an open stream of its connection, from the moment it reaches
/// the services until its response body is done (so a streaming response counts for as
/// long as it streams). It also puts the socket's own connect info back on the request,
/// where `Request::remote_addr` and the caller's identity are read from.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrackStreamsLayer;

impl<S> Layer<S> for TrackStreamsLayer {
    type Service = TrackStreams<S>;

    fn layer(&self, inner: S) -> TrackStreams<S> {
        TrackStreams { inner }
    }
}

/// See [`TrackStreamsLayer`].
#[derive(Debug, Clone)]
pub struct TrackStreams<S> {
    inner: S,
}

/// Takes the [`Tracked`] info of either listener off a request, leaves the socket's own
/// info in its place, and opens a stream on its connection.
fn open_stream(ext: &mut http::Extensions) -> Option<StreamOpen> {
    fn untrack<I: Clone + Send + Sync + 'static>(ext: &mut http::Extensions) -> Option<StreamOpen> {
        let Tracked { info, streams } = ext.remove::<Tracked<I>>()?;
        ext.insert(info);
        Some(streams.open())
    }
    untrack::<TcpConnectInfo>(ext)
        .or_else(|| untrack::<UdsConnectInfo>(ext))
        .or_else(|| untrack::<TlsConnectInfo>(ext))
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for TrackStreams<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    ResBody: 'static,
{
    type Response = http::Response<Counted<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        let open = open_stream(req.extensions_mut());
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| Counted { body, _open: open }))
        })
    }
}

/// A response body that keeps its stream counted as open until it is dropped.
pub struct Counted<B> {
    body: B,
    _open: Option<StreamOpen>,
}

impl<B: Body + Unpin> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(max: usize, max_per_peer: usize) -> Arc<Gate> {
        Arc::new(Gate {
            max,
            max_per_peer,
            held: Mutex::new(Held::default()),
        })
    }

    fn ip(s: &str) -> Peer {
        Peer::Ip(s.parse().unwrap())
    }

    fn addr() -> PeerAddr {
        PeerAddr::Tcp("10.0.0.1:5".parse().unwrap())
    }

    #[test]
    fn caps_per_peer_and_in_all_and_slots_come_back() {
        let g = gate(3, 2);
        let a1 = g.admit(ip("127.0.0.1")).unwrap();
        let _a2 = g.admit(ip("127.0.0.1")).unwrap();
        assert_eq!(g.admit(ip("127.0.0.1")).err(), Some(Refusal::Peer));
        let b1 = g.admit(ip("127.0.0.2")).unwrap();
        assert_eq!(g.admit(ip("127.0.0.3")).err(), Some(Refusal::Total));
        drop(b1);
        let _c1 = g.admit(ip("127.0.0.3")).unwrap();
        drop(a1);
        let _a3 = g.admit(ip("127.0.0.1")).unwrap();
        assert_eq!(g.admit(ip("127.0.0.4")).err(), Some(Refusal::Total));
        let held = g.lock();
        assert_eq!(held.total, 3);
        assert_eq!(held.per_peer.len(), 2, "{:?}", held.per_peer);
    }

    #[test]
    fn peers_leave_no_entries_behind() {
        let g = gate(2, 1);
        let addr = PeerAddr::Tcp("10.0.0.1:5".parse().unwrap());
        let s = g.admit(addr.peer()).unwrap();
        drop(s);
        assert!(g.lock().per_peer.is_empty());
        let _full = [
            g.admit(ip("10.0.0.2")).unwrap(),
            g.admit(ip("10.0.0.3")).unwrap(),
        ];
        // Refused at the total: no entry for the new peer.
        assert_eq!(g.admit(addr.peer()).err(), Some(Refusal::Total));
        assert_eq!(g.lock().per_peer.len(), 2);
    }

    #[test]
    fn ipv4_mapped_ipv6_is_the_same_peer_and_unix_peers_are_uids() {
        let v4 = PeerAddr::Tcp("192.0.2.1:1".parse().unwrap());
        let mapped = PeerAddr::Tcp("[::ffff:192.0.2.1]:2".parse().unwrap());
        assert_eq!(v4.peer(), mapped.peer());
        let u = |uid, pid| PeerAddr::Unix { uid, pid };
        assert_eq!(u(Some(7), Some(1)).peer(), u(Some(7), Some(2)).peer());
        assert_ne!(u(Some(7), None).peer(), u(Some(8), None).peer());
        assert_eq!(u(Some(7), Some(9)).to_string(), "unix:uid=7,pid=9");
        assert_eq!(u(None, None).to_string(), "unix:uid=?,pid=?");
        assert_eq!(mapped.to_string(), "tcp:[::ffff:192.0.2.1]:2");
    }

    #[test]
    fn refusals_are_reported_at_most_once_per_interval() {
        let g = gate(1, 1);
        let addr = PeerAddr::Tcp("10.0.0.1:5".parse().unwrap());
        g.refused(Refusal::Peer, &addr);
        assert_eq!(g.lock().unreported, 0, "the first one is reported at once");
        g.refused(Refusal::Peer, &addr);
        g.refused(Refusal::Total, &addr);
        assert_eq!(
            g.lock().unreported,
            2,
            "the next ones wait for the interval"
        );
    }

    /// A client preface: the magic, then a SETTINGS frame with `payload` bytes.
    fn preface(payload: usize) -> Vec<u8> {
        let mut p = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        let len = (payload as u32).to_be_bytes();
        p.extend_from_slice(&[len[1], len[2], len[3], 0x4, 0, 0, 0, 0, 0]);
        p.extend(std::iter::repeat_n(0u8, payload));
        p
    }

    #[test]
    fn preface_is_done_after_the_settings_frame_in_any_split() {
        for payload in [0, 6, 18] {
            let bytes = preface(payload);
            assert_eq!(bytes.len(), MAGIC_LEN + FRAME_HEADER_LEN + payload);
            for split in 0..bytes.len() {
                let mut p = Preface::new();
                let (a, b) = bytes.split_at(split);
                assert!(!p.saw(a) || a.len() == bytes.len());
                assert!(!p.done());
                // The preface and what follows it, in one read.
                let mut rest = b.to_vec();
                rest.extend_from_slice(b"next frame");
                assert!(p.saw(&rest), "payload {payload}, split {split}");
                assert!(p.done());
                assert!(!p.saw(b"more"), "completes once");
            }
        }
        let mut p = Preface::new();
        assert!(!p.saw(&preface(6)[..MAGIC_LEN + FRAME_HEADER_LEN + 5]));
        assert!(!p.done(), "one byte of the SETTINGS payload missing");
    }

    #[tokio::test]
    async fn deadlines_handshake_then_idle_and_none_while_a_stream_is_open() {
        let g = gate(1, 1);
        let slot = g.admit(ip("10.0.0.1")).unwrap();
        let (io, _peer) = tokio::io::duplex(64);
        let handshake = Duration::from_secs(10);
        let idle = Duration::from_secs(60);
        let mut c = Admitted::new(io, slot, addr(), handshake, idle);
        let t0 = c.accepted;
        assert_eq!(c.next_check(t0).unwrap(), t0 + handshake);
        assert!(matches!(
            c.next_check(t0 + handshake),
            Err(Expired::Handshake)
        ));
        c.preface.saw(&preface(0));
        assert_eq!(c.next_check(t0).unwrap(), t0 + idle, "idle from the accept");
        assert!(matches!(c.next_check(t0 + idle), Err(Expired::Idle)));
        let open = c.streams.open();
        let t1 = t0 + idle * 5;
        assert_eq!(c.next_check(t1).unwrap(), t1 + idle, "busy: no deadline");
        let before_close = Instant::now();
        drop(open);
        let since = c.streams.idle_since().expect("idle again");
        assert!(since >= before_close, "idle from the last stream");
        assert_eq!(c.next_check(since).unwrap(), since + idle);
        assert!(matches!(c.next_check(since + idle), Err(Expired::Idle)));
        drop(c);
        assert_eq!(g.lock().total, 0, "the slot comes back with the connection");
    }

    #[tokio::test]
    async fn an_idle_connection_read_fails_at_its_deadline_after_pending_bytes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let g = gate(1, 1);
        let (io, mut peer) = tokio::io::duplex(1024);
        let idle = Duration::from_millis(200);
        let mut c = Admitted::new(
            io,
            g.admit(ip("10.0.0.1")).unwrap(),
            addr(),
            Duration::from_secs(60),
            idle,
        );
        peer.write_all(&preface(0)).await.unwrap();
        let mut buf = [0u8; 64];
        let n = c.read(&mut buf).await.unwrap();
        assert_eq!(n, MAGIC_LEN + FRAME_HEADER_LEN);
        // The idle deadline, not the handshake one the timer held, ends the next read.
        let e = tokio::time::timeout(Duration::from_secs(30), c.read(&mut buf))
            .await
            .expect("closed long before the handshake deadline")
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(Instant::now() >= c.accepted + idle);
        // Bytes that arrived are still read after the deadline.
        peer.write_all(b"x").await.unwrap();
        assert_eq!(c.read(&mut buf).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_connection_without_a_preface_fails_at_the_handshake_deadline() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let g = gate(1, 1);
        let (io, mut peer) = tokio::io::duplex(1024);
        let handshake = Duration::from_millis(200);
        let mut c = Admitted::new(
            io,
            g.admit(ip("10.0.0.1")).unwrap(),
            addr(),
            handshake,
            Duration::from_secs(3600),
        );
        peer.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(c.read(&mut buf).await.unwrap(), 16);
        let e = tokio::time::timeout(Duration::from_secs(30), c.read(&mut buf))
            .await
            .expect("closed at the handshake deadline")
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("handshake_timeout"), "{e}");
        assert!(Instant::now() >= c.accepted + handshake);
    }
}
