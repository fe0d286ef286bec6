//! Issue 11 item 4 on the real binary: one client can no longer exhaust the connections.
//! A flood from one peer (raw TCP connections that send nothing, HTTP/2 connections that
//! send the preface and sit idle) gets `max_per_peer` connections and the rest are closed
//! at once, while a client from another address is served; at the total cap a new
//! connection is closed at once, not left waiting; a slow-loris is closed at the handshake
//! deadline, an idle connection at the idle timeout, a connection with an open stream is
//! not; the stream cap is advertised and enforced; the Unix socket has the same limits.
//!
//! On loopback every 127.0.0.0/8 address is local, so the flood comes from 127.0.0.1 (where
//! the test harness's own client is too) and the well-behaved client from 127.0.0.2.
//!
//! `flood_figure` (ignored) measures the before/after figure of BENCHMARKS.md.

mod common;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream, UnixStream};
use tokio::task::JoinSet;
use tonic::transport::{Channel, Endpoint};
use tron_proto::signer::signer_client::SignerClient;
use tron_proto::signer::{ListKeysRequest, ListKeysResponse};

const FLOOD: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const NORMAL: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Long enough that no deadline of the test depends on the machine's speed.
const GENEROUS: Duration = Duration::from_secs(30);

fn policy() -> String {
    common::policy::one_trx_key("connection limits test policy")
}

/// A signer listening on TCP with `connections` as its `[connections]` section.
async fn start_tcp(connections: &str) -> (Setup, Server, SocketAddr) {
    let setup = Setup::new(&[("hot 1", KEY1_SECRET)], &policy());
    let addr = SocketAddr::new(FLOOD, free_loopback_port());
    setup.write_config_listening(
        &addr.to_string(),
        &format!(
            "insecure_plaintext = true\n{}[connections]\n{connections}\n",
            setup.keystore_section()
        ),
    );
    let server = setup
        .start_via(&[BIN], &addr.to_string())
        .await
        .unwrap_or_else(|log| panic!("signer did not start:\n{log}"));
    (setup, server, addr)
}

/// A TCP connection to `addr` from the local address `from`.
async fn connect_from(from: IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
}

/// A gRPC client whose connection comes from `from`.
async fn client_from(
    from: IpAddr,
    addr: SocketAddr,
) -> Result<SignerClient<Channel>, tonic::transport::Error> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .local_address(Some(from))
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await?;
    Ok(SignerClient::new(channel))
}

/// A fresh client from `from` lists the keys; the error as text otherwise.
async fn served_from(from: IpAddr, addr: SocketAddr) -> Result<ListKeysResponse, String> {
    let mut c = client_from(from, addr).await.map_err(|e| e.to_string())?;
    c.list_keys(ListKeysRequest {})
        .await
        .map(|r| r.into_inner())
        .map_err(|s| s.to_string())
}

/// Reads until the peer closes (end of file or an error such as a reset); false if the
/// connection is still open after `within`.
async fn closed_within(io: &mut (impl AsyncRead + Unpin), within: Duration) -> bool {
    tokio::time::timeout(within, async {
        let mut buf = [0u8; 1024];
        while let Ok(n) = io.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await
    .is_ok()
}

/// Watches `conns` for `within` at once; gives back (closed, still open).
async fn split_closed<S: AsyncRead + Unpin + Send + 'static>(
    conns: Vec<S>,
    within: Duration,
) -> (usize, Vec<S>) {
    let mut watching = JoinSet::new();
    for mut c in conns {
        watching.spawn(async move {
            let closed = closed_within(&mut c, within).await;
            (closed, c)
        });
    }
    let (mut closed, mut open) = (0, Vec::new());
    while let Some(r) = watching.join_next().await {
        match r.expect("watcher") {
            (true, _) => closed += 1,
            (false, c) => open.push(c),
        }
    }
    (closed, open)
}

/// Open file descriptors of a process.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the server's /proc fd directory")
        .count()
}

/// Just enough HTTP/2 (RFC 9113), written by hand, to do what a client library would not:
/// stop after the preface, hold a stream open, open more streams than the server allows.
mod h2 {
    use super::*;
    use tokio::io::AsyncWriteExt;

    pub const MAGIC: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PING: u8 = 0x6;
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const REFUSED_STREAM: u32 = 0x7;

    pub struct Frame {
        pub kind: u8,
        pub flags: u8,
        pub stream: u32,
        pub payload: Vec<u8>,
    }

    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() as u32).to_be_bytes();
        let mut f = vec![len[1], len[2], len[3], kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// HEADERS opening stream `id` for `ListKeys`, the request body still to come. Each
    /// field is an HPACK literal without indexing, names and values under 127 bytes.
    pub fn list_keys(id: u32) -> Vec<u8> {
        let mut block = Vec::new();
        for (name, value) in [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/tronsigner.v1.Signer/ListKeys"),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ] {
            block.push(0x00);
            block.push(name.len() as u8);
            block.extend_from_slice(name.as_bytes());
            block.push(value.len() as u8);
            block.extend_from_slice(value.as_bytes());
        }
        frame(HEADERS, END_HEADERS, id, &block)
    }

    /// The request body of stream `id`: one empty gRPC message (`ListKeysRequest {}`), and
    /// the end of the stream.
    pub fn empty_message(id: u32) -> Vec<u8> {
        frame(DATA, END_STREAM, id, &[0, 0, 0, 0, 0])
    }

    /// What came back on one stream.
    #[derive(Default, Debug)]
    pub struct Answer {
        pub data: Vec<u8>,
        pub reset: Option<u32>,
    }

    pub struct Conn<S> {
        io: S,
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
        /// Sends the client preface (the magic and an empty SETTINGS frame), reads the
        /// server's SETTINGS and acknowledges them; returns them as (identifier, value).
        pub async fn handshake(io: S) -> io::Result<(Conn<S>, Vec<(u16, u32)>)> {
            let mut c = Conn { io };
            c.send(MAGIC).await?;
            c.send(&frame(SETTINGS, 0, 0, &[])).await?;
            loop {
                let f = c.next().await?;
                if f.kind == SETTINGS && f.flags & ACK == 0 {
                    let settings = f
                        .payload
                        .chunks_exact(6)
                        .map(|p| {
                            (
                                u16::from_be_bytes([p[0], p[1]]),
                                u32::from_be_bytes([p[2], p[3], p[4], p[5]]),
                            )
                        })
                        .collect();
                    c.send(&frame(SETTINGS, ACK, 0, &[])).await?;
                    return Ok((c, settings));
                }
            }
        }

        pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.io.write_all(bytes).await
        }

        async fn read_frame(&mut self) -> io::Result<Frame> {
            let mut h = [0u8; 9];
            self.io.read_exact(&mut h).await?;
            let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
            let mut payload = vec![0; len];
            self.io.read_exact(&mut payload).await?;
            Ok(Frame {
                kind: h[3],
                flags: h[4],
                stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
                payload,
            })
        }

        /// The next frame that is not a PING from the server (those are answered here).
        pub async fn next(&mut self) -> io::Result<Frame> {
            loop {
                let f = self.read_frame().await?;
                if f.kind == PING && f.flags & ACK == 0 {
                    self.send(&frame(PING, ACK, 0, &f.payload)).await?;
                    continue;
                }
                return Ok(f);
            }
        }

        /// Whether the server still answers a PING on this connection.
        pub async fn answers_ping(&mut self) -> bool {
            let asked = async {
                self.send(&frame(PING, 0, 0, b"anyoneh?")).await?;
                loop {
                    let f = self.next().await?;
                    if f.kind == PING && f.flags & ACK != 0 {
                        return Ok::<_, io::Error>(());
                    }
                }
            };
            matches!(tokio::time::timeout(GENEROUS, asked).await, Ok(Ok(())))
        }

        /// Reads until the server closes the connection; false if still open after `within`.
        pub async fn closed_within(&mut self, within: Duration) -> bool {
            tokio::time::timeout(within, async { while self.next().await.is_ok() {} })
                .await
                .is_ok()
        }

        /// Reads until each of `ids` has ended (END_STREAM or RST_STREAM); the DATA each
        /// carried, or its reset's error code.
        pub async fn answers(&mut self, ids: &[u32]) -> io::Result<HashMap<u32, Answer>> {
            let mut answers: HashMap<u32, Answer> = HashMap::new();
            let mut open: Vec<u32> = ids.to_vec();
            while !open.is_empty() {
                let f = tokio::time::timeout(GENEROUS, self.next())
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer"))??;
                if !open.contains(&f.stream) {
                    continue;
                }
                let a = answers.entry(f.stream).or_default();
                match f.kind {
                    DATA => a.data.extend_from_slice(&f.payload),
                    RST_STREAM => {
                        a.reset = Some(u32::from_be_bytes([
                            f.payload[0],
                            f.payload[1],
                            f.payload[2],
                            f.payload[3],
                        ]))
                    }
                    _ => {}
                }
                let ended = f.kind == RST_STREAM
                    || ((f.kind == DATA || f.kind == HEADERS) && f.flags & END_STREAM != 0);
                if ended {
                    open.retain(|&id| id != f.stream);
                }
            }
            Ok(answers)
        }
    }

    /// The keys a `ListKeys` answer's DATA holds (one gRPC message: 5-byte prefix, body).
    pub fn keys_in(data: &[u8]) -> usize {
        let body = data.get(5..).expect("a gRPC message");
        ListKeysResponse::decode(body)
            .expect("ListKeysResponse")
            .keys
            .len()
    }
}

/// The finding: a flood of connections from one client. It gets its `max_per_peer` (3 here,
/// the harness's client holding the fourth) and every other connection is closed at once,
/// so the signer's descriptors stay bounded by the caps; a client from another address is
/// served meanwhile. Long timeouts: only the caps are at work.
#[tokio::test]
async fn a_flood_from_one_peer_gets_its_cap_and_another_client_is_served() {
    let (_setup, server, addr) =
        start_tcp("max = 16\nmax_per_peer = 4\nhandshake_timeout = \"1h\"\nidle_timeout = \"1h\"")
            .await;
    let pid = server.child.id();
    let fds_before = open_fds(pid);

    let mut raw = Vec::new();
    for _ in 0..100 {
        raw.push(connect_from(FLOOD, addr).await.expect("TCP connect"));
    }
    let mut idle = Vec::new();
    let mut idle_refused = 0;
    for _ in 0..20 {
        let s = connect_from(FLOOD, addr).await.expect("TCP connect");
        match h2::Conn::handshake(s).await {
            Ok((c, _)) => idle.push(c),
            Err(_) => idle_refused += 1,
        }
    }
    let (raw_closed, raw_open) = split_closed(raw, Duration::from_secs(5)).await;
    let mut held_idle = 0;
    for c in &mut idle {
        held_idle += usize::from(c.answers_ping().await);
    }
    assert_eq!(
        raw_open.len() + held_idle,
        3,
        "the flood holds its cap of 4 with the harness's client: {} raw and {held_idle} \
         HTTP/2 connections open ({raw_closed} raw and {idle_refused} HTTP/2 closed)",
        raw_open.len()
    );
    assert_eq!(raw_closed + idle_refused, 117);

    // Served while the flood holds its connections.
    let keys = tokio::time::timeout(GENEROUS, served_from(NORMAL, addr))
        .await
        .expect("served before the deadline")
        .expect("the other client is served");
    assert_eq!(keys.keys.len(), 1);
    let fds_during = open_fds(pid);
    assert!(
        fds_during <= fds_before + 16,
        "120 connections from the flood took {} descriptors, beyond connections.max = 16",
        fds_during - fds_before
    );

    let log = server.log_text();
    assert!(
        log.contains("this peer holds connections.max_per_peer connections"),
        "{log}"
    );
    assert!(log.contains("tcp:127.0.0.1:"), "{log}");
    drop((raw_open, idle));
}

/// At the total cap a new connection, from any peer, is accepted and closed at once (its
/// client fails fast instead of waiting in the kernel's backlog); once a connection leaves,
/// new ones are served again.
#[tokio::test]
async fn at_the_total_cap_a_new_connection_is_closed_at_once_until_one_leaves() {
    let (_setup, server, addr) =
        start_tcp("max = 4\nmax_per_peer = 4\nhandshake_timeout = \"1h\"\nidle_timeout = \"1h\"")
            .await;
    // The harness's client holds one; three idle HTTP/2 connections from a third address
    // take the rest.
    let third = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    let mut held = Vec::new();
    for _ in 0..3 {
        let s = connect_from(third, addr).await.expect("TCP connect");
        let (mut c, _) = h2::Conn::handshake(s).await.expect("admitted");
        assert!(c.answers_ping().await);
        held.push(c);
    }
    let s = connect_from(NORMAL, addr).await.expect("TCP connect");
    let refused = tokio::time::timeout(GENEROUS, h2::Conn::handshake(s))
        .await
        .expect("closed at once, not left waiting");
    assert!(refused.is_err(), "a fifth connection was served");
    let attempt = tokio::time::timeout(GENEROUS, served_from(NORMAL, addr))
        .await
        .expect("the client fails fast");
    assert!(attempt.is_err(), "{attempt:?}");

    drop(held.pop());
    let deadline = Instant::now() + GENEROUS;
    loop {
        match served_from(NORMAL, addr).await {
            Ok(keys) => {
                assert_eq!(keys.keys.len(), 1);
                break;
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "not served after a connection left: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = server.log_text();
    assert!(
        log.contains("the server holds connections.max connections"),
        "{log}"
    );
    assert!(log.contains("tcp:127.0.0.2:"), "{log}");
}

/// A client that never completes the HTTP/2 preface (here: half the magic, or nothing) is
/// closed at the handshake deadline; one that completed it is then under the idle timeout
/// (an hour here) and stays.
#[tokio::test]
async fn a_slow_loris_is_closed_at_the_handshake_deadline() {
    let (_setup, _server, addr) =
        start_tcp("handshake_timeout = \"1s\"\nidle_timeout = \"1h\"").await;
    let mut loris = connect_from(FLOOD, addr).await.expect("TCP connect");
    tokio::io::AsyncWriteExt::write_all(&mut loris, b"PRI * HTTP/2.0\r\n")
        .await
        .expect("half a preface");
    let mut silent = connect_from(FLOOD, addr).await.expect("TCP connect");
    let s = connect_from(FLOOD, addr).await.expect("TCP connect");
    let (mut idle, _) = h2::Conn::handshake(s).await.expect("handshake");
    assert!(
        closed_within(&mut loris, GENEROUS).await,
        "half a preface: still open long after a 1 s handshake deadline"
    );
    assert!(
        closed_within(&mut silent, GENEROUS).await,
        "no preface: still open long after a 1 s handshake deadline"
    );
    assert!(
        idle.answers_ping().await,
        "a connection that sent its preface was closed at the handshake deadline"
    );
}

/// A connection with no open stream is closed after the idle timeout, whatever it sends
/// (PINGs are answered, and do not count); one whose stream is open stays open, however
/// long, and is closed once its last stream has ended. A gRPC client whose connection was
/// closed as idle is served again on its next call.
#[tokio::test]
async fn an_idle_connection_is_closed_and_one_with_an_open_stream_is_not() {
    let (_setup, _server, addr) = start_tcp("idle_timeout = \"2s\"").await;
    let mut client = client_from(NORMAL, addr).await.expect("client");
    client
        .list_keys(ListKeysRequest {})
        .await
        .expect("served before it idles");
    let s = connect_from(FLOOD, addr).await.expect("TCP connect");
    let (mut busy, _) = h2::Conn::handshake(s).await.expect("handshake");
    // The request's body never comes: the server waits for it, its stream open.
    busy.send(&h2::list_keys(1)).await.expect("HEADERS");
    let s = connect_from(FLOOD, addr).await.expect("TCP connect");
    let (mut idle, _) = h2::Conn::handshake(s).await.expect("handshake");
    assert!(idle.answers_ping().await, "PINGs are answered");
    assert!(
        idle.closed_within(GENEROUS).await,
        "an idle connection still open long after a 2 s idle timeout"
    );
    // Another idle timeout and more: the busy connection is not idle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        busy.answers_ping().await,
        "a connection with an open stream was closed as idle"
    );
    busy.send(&h2::empty_message(1)).await.expect("DATA");
    let answers = busy.answers(&[1]).await.expect("an answer");
    assert_eq!(answers[&1].reset, None);
    assert_eq!(h2::keys_in(&answers[&1].data), 1);
    assert!(
        busy.closed_within(GENEROUS).await,
        "still open long after its last stream ended"
    );
    // By now the gRPC client's connection has been closed as idle too.
    let keys = client
        .list_keys(ListKeysRequest {})
        .await
        .expect("served again after its idle connection was closed");
    assert_eq!(keys.into_inner().keys.len(), 1);
}

/// SETTINGS_MAX_CONCURRENT_STREAMS carries `max_streams_per_connection`, and the server
/// enforces it on a client that ignores it: a stream over the cap is refused with
/// REFUSED_STREAM, the open ones are answered, and then a new stream is accepted.
#[tokio::test]
async fn the_stream_cap_is_advertised_and_a_stream_over_it_refused() {
    let (_setup, _server, addr) = start_tcp("max_streams_per_connection = 2").await;
    let s = connect_from(FLOOD, addr).await.expect("TCP connect");
    let (mut c, settings) = h2::Conn::handshake(s).await.expect("handshake");
    assert!(
        settings.contains(&(h2::SETTINGS_MAX_CONCURRENT_STREAMS, 2)),
        "{settings:?}"
    );
    for id in [1, 3, 5] {
        c.send(&h2::list_keys(id)).await.expect("HEADERS");
    }
    let refused = c.answers(&[5]).await.expect("stream 5 ends");
    assert_eq!(refused[&5].reset, Some(h2::REFUSED_STREAM));
    for id in [1, 3] {
        c.send(&h2::empty_message(id)).await.expect("DATA");
    }
    let answered = c.answers(&[1, 3]).await.expect("answers");
    for id in [1, 3] {
        assert_eq!(answered[&id].reset, None, "stream {id}");
        assert_eq!(h2::keys_in(&answered[&id].data), 1, "stream {id}");
    }
    c.send(&h2::list_keys(7)).await.expect("HEADERS");
    c.send(&h2::empty_message(7)).await.expect("DATA");
    let later = c.answers(&[7]).await.expect("answer");
    assert_eq!(h2::keys_in(&later[&7].data), 1);
}

/// On the Unix socket the caps hold too, per uid (every connection of this test is one
/// uid): of five more connections beside the harness's client, two are admitted and three
/// closed at once. Restarted with a short idle timeout, the default stream cap (100) is
/// advertised and an idle connection is closed at the idle timeout.
#[tokio::test]
async fn on_the_unix_socket_the_caps_count_per_uid_and_idle_connections_close() {
    let setup = Setup::new(&[("hot 1", KEY1_SECRET)], &policy());
    setup.write_config(&format!(
        "{}[connections]\nmax = 8\nmax_per_peer = 3\nhandshake_timeout = \"1h\"\n\
         idle_timeout = \"1h\"\n",
        setup.keystore_section()
    ));
    let server = setup.start().await;
    let mut conns = Vec::new();
    for _ in 0..5 {
        conns.push(UnixStream::connect(&setup.socket).await.expect("connect"));
    }
    let (closed, open) = split_closed(conns, Duration::from_secs(5)).await;
    assert_eq!((closed, open.len()), (3, 2));
    let uid = std::fs::metadata(&setup.socket)
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .expect("socket owner");
    let log = server.log_text();
    assert!(log.contains(&format!("unix:uid={uid},pid=")), "{log}");
    assert!(
        log.contains("this peer holds connections.max_per_peer connections"),
        "{log}"
    );
    drop(open);
    server.stop();

    setup.write_config(&format!(
        "{}[connections]\nidle_timeout = \"2s\"\n",
        setup.keystore_section()
    ));
    let _server = setup.start().await;
    let s = UnixStream::connect(&setup.socket).await.expect("connect");
    let (mut idle, settings) = h2::Conn::handshake(s).await.expect("handshake");
    assert!(
        settings.contains(&(h2::SETTINGS_MAX_CONCURRENT_STREAMS, 100)),
        "{settings:?}"
    );
    assert!(
        idle.closed_within(GENEROUS).await,
        "an idle connection on the socket still open long after a 2 s idle timeout"
    );
}

/// `connections.max` must fit under the open-file limit with the signer's own files: a
/// hard limit too low refuses the start (`fd_limit_too_low`), a low soft limit is raised.
#[tokio::test]
async fn a_cap_above_the_open_file_limit_refuses_to_start_and_a_low_soft_limit_is_raised() {
    let setup = Setup::new(&[("hot 1", KEY1_SECRET)], &policy());
    let (status, out) =
        setup.serve_until_exit_via(&["prlimit", "--nofile=256:256", BIN], Some(PASSPHRASE));
    assert!(!status.success(), "{out}");
    assert!(out.contains("fd_limit_too_low"), "{out}");
    assert!(
        out.contains("connections.max = 512 needs 576 file descriptors"),
        "{out}"
    );
    let server = setup
        .start_via(&["prlimit", "--nofile=256:4096", BIN], &setup.endpoint())
        .await
        .unwrap_or_else(|log| panic!("did not start with a raisable soft limit:\n{log}"));
    assert!(
        server
            .log_text()
            .contains("raised the soft open-file limit"),
        "{}",
        server.log_text()
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.child.id()))
        .expect("the server's limits");
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    assert_eq!(
        open_files.split_whitespace().collect::<Vec<_>>()[3..5],
        ["576", "4096"],
        "{open_files}"
    );
}

/// An environment variable's value, or `default`.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

/// The `i`th address of a /16 on loopback (`base` is its first two octets), from .0.1 on.
fn loopback(base: [u8; 2], i: usize) -> IpAddr {
    let n = i + 1;
    IpAddr::V4(Ipv4Addr::new(
        base[0],
        base[1],
        (n / 250) as u8,
        (n % 250) as u8 + 1,
    ))
}

/// CPU time (user + system) a process has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime and stime are the
    // 12th and 13th of them.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// One flooding connection, over and over: connect from `from`, send the HTTP/2 preface,
/// sit idle until the server closes it, then (after `retry`) again, until `stop`.
async fn flood_one(
    from: IpAddr,
    addr: SocketAddr,
    retry: Duration,
    held: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use std::sync::atomic::Ordering;
    while !*stop.borrow() {
        let attempt = async {
            let s = tokio::time::timeout(Duration::from_secs(2), connect_from(from, addr))
                .await
                .ok()?
                .ok()?;
            tokio::time::timeout(Duration::from_secs(5), h2::Conn::handshake(s))
                .await
                .ok()?
                .ok()
        };
        let conn = tokio::select! {
            c = attempt => c,
            _ = stop.changed() => return,
        };
        if let Some((mut c, _)) = conn {
            held.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                _ = c.closed_within(Duration::from_secs(3600)) => {}
                _ = stop.changed() => {}
            }
            held.fetch_sub(1, Ordering::Relaxed);
        }
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The before/after figure of BENCHMARKS.md ("Issue 11 item 4: connection flood"): with a
/// flood of idle HTTP/2 connections running, how many of N new clients, each from its own
/// address, get a `ListKeys` answer within the deadline. The signer runs on its default
/// `[connections]` (no section, so a build from before the limits runs the same config)
/// under a low open-file limit, so the flood reaches it quickly. Knobs (environment):
/// `FLOOD_SIGNER_BIN` (the binary, default this build's), `FLOOD_NOFILE` (1024),
/// `FLOOD_CONNECTIONS` (2000), `FLOOD_PEERS` (1: all from 127.0.0.1; k: from
/// 127.1.0.1 up), `FLOOD_RETRY_MS` (100, before a closed flood connection reconnects),
/// `FLOOD_CLIENTS` (100), `FLOOD_DEADLINE_MS` (5000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: run by hand, see BENCHMARKS.md"]
async fn flood_figure() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let bin: String = env_or("FLOOD_SIGNER_BIN", BIN.to_owned());
    let nofile: u64 = env_or("FLOOD_NOFILE", 1024);
    let connections: usize = env_or("FLOOD_CONNECTIONS", 2000);
    let peers: usize = env_or("FLOOD_PEERS", 1);
    let retry = Duration::from_millis(env_or("FLOOD_RETRY_MS", 100));
    let clients: usize = env_or("FLOOD_CLIENTS", 100);
    let deadline = Duration::from_millis(env_or("FLOOD_DEADLINE_MS", 5000));

    let setup = Setup::new(&[("hot 1", KEY1_SECRET)], &policy());
    let addr = SocketAddr::new(FLOOD, free_loopback_port());
    setup.write_config_listening(
        &addr.to_string(),
        &format!("insecure_plaintext = true\n{}", setup.keystore_section()),
    );
    let limit = format!("--nofile={nofile}:{nofile}");
    let mut server = setup
        .start_via(&["prlimit", &limit, &bin], &addr.to_string())
        .await
        .unwrap_or_else(|log| panic!("signer did not start:\n{log}"));
    let pid = server.child.id();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let held = Arc::new(AtomicUsize::new(0));
    let mut flood = JoinSet::new();
    for i in 0..connections {
        let from = if peers <= 1 {
            FLOOD
        } else {
            loopback([127, 1], i % peers)
        };
        flood.spawn(flood_one(
            from,
            addr,
            retry,
            Arc::clone(&held),
            stop_rx.clone(),
        ));
    }
    // Let the flood reach its steady state, then measure the server's CPU over the rest.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let ticks_before = cpu_ticks(pid);
    let cpu_from = Instant::now();
    let held_now = held.load(Ordering::Relaxed);
    let fds = open_fds(pid);

    let existing = tokio::time::timeout(deadline, server.client.list_keys(ListKeysRequest {}))
        .await
        .is_ok_and(|r| r.is_ok());
    let mut normal = JoinSet::new();
    for i in 0..clients {
        let from = loopback([127, 2], i);
        normal.spawn(async move {
            let started = Instant::now();
            let served = tokio::time::timeout(deadline, served_from(from, addr))
                .await
                .is_ok_and(|r| r.is_ok());
            served.then(|| started.elapsed())
        });
    }
    let mut latencies = Vec::new();
    while let Some(r) = normal.join_next().await {
        if let Some(latency) = r.expect("client task") {
            latencies.push(latency);
        }
    }
    let ticks = cpu_ticks(pid).saturating_sub(ticks_before);
    let cpu_seconds = cpu_from.elapsed().as_secs_f64();
    latencies.sort();
    let p50 = latencies
        .get(latencies.len() / 2)
        .map_or("-".to_owned(), |d| format!("{} ms", d.as_millis()));
    let worst = latencies
        .last()
        .map_or("-".to_owned(), |d| format!("{} ms", d.as_millis()));
    let _ = stop_tx.send(true);
    while flood.join_next().await.is_some() {}

    println!(
        "FLOOD bin={bin} nofile={nofile} flood={connections} connections from {peers} \
         peer(s), retry {} ms\n  \
         flood connections held by the server: {held_now}; server open fds: {fds}\n  \
         new clients served: {}/{clients} within {} ms (p50 {p50}, slowest {worst})\n  \
         the harness's existing connection served: {existing}\n  \
         server CPU during the clients' run: {:.0} % of one core",
        retry.as_millis(),
        latencies.len(),
        deadline.as_millis(),
        // Linux clock ticks are 100 per second on every platform it runs this on.
        ticks as f64 / 100.0 / cpu_seconds * 100.0,
    );
    server.stop();
}
