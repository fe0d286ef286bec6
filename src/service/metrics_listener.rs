//! The opt-in metrics listener: plain HTTP/1.1 `GET /metrics` on its own TCP address, never
//! the signing socket. It serves the Prometheus text format and nothing else: no request
//! body is read, a request head larger than [`MAX_HEAD`] or slower than [`HEAD_TIMEOUT`] is
//! dropped, and every other path is 404. What it shows is counters and the policy's own
//! names (keys, windows, hash); it carries no secret and accepts no input that matters.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Core;

/// The most bytes of a request head read before the request is dropped.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapes served at once; more wait in the accept backlog.
const MAX_CONCURRENT: usize = 8;

/// Binds `addr` (so a taken port stops the start) and returns the bound listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves scrapes on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, core: Arc<Core>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let core = Arc::clone(&core);
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(HEAD_TIMEOUT, answer(stream, &core)).await;
        });
    }
}

/// Reads one request head and writes the response; the connection is closed after it.
async fn answer(mut stream: TcpStream, core: &Core) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return respond(&mut stream, "431 Request Header Fields Too Large", TEXT, "").await;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let (method, path) = (parts.next(), parts.next());
    match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => {
            core.publish_metrics();
            let body = crate::metrics::global().encode();
            respond(&mut stream, "200 OK", METRICS_TYPE, &body).await
        }
        (Some(b"GET"), _) => respond(&mut stream, "404 Not Found", TEXT, "only /metrics\n").await,
        _ => {
            respond(
                &mut stream,
                "405 Method Not Allowed",
                TEXT,
                "GET /metrics\n",
            )
            .await
        }
    }
}

const METRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
