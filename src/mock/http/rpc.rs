//! Outlook Anywhere (RPC over HTTP, MS-RPCH) on `/rpc/rpcproxy.dll`: the
//! two long-lived channels a client opens with very large declared
//! lengths.
//!
//! - `RPC_IN_DATA`: the body (typically declared 1 GiB) is consumed as it
//!   streams, never held, and counted; the answer, `200` with the count,
//!   comes when the body ends or the connection closes.
//! - `RPC_OUT_DATA`: the small request body (76 bytes) is read, then the
//!   answer declares `Content-Length: 1073741824` and streams RTS PDUs
//!   (CONN/A3, CONN/C2, then pings paced every `pace_ms`, default 500 ms)
//!   until the client goes away. `?bytes=N` sends exactly N bytes, as fast
//!   as the reader reads, then ends; `?pace_ms=N` sets the pacing (0: none).

use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::mock::http::request::{query_param, read_body};
use crate::mock::http::response::{self, Body};
use crate::mock::shared::Shared;

/// What `RPC_OUT_DATA` declares: 1 GiB, as Outlook's RPC proxy does.
pub const OUT_DECLARED_LENGTH: u64 = 1 << 30;
/// Default pause between ping PDUs on an unbounded `RPC_OUT_DATA`: 500 ms.
const DEFAULT_PACE: Duration = Duration::from_millis(500);
/// Largest chunk written at once when not paced: 64 KiB.
const CHUNK: usize = 64 * 1024;
/// Largest `RPC_OUT_DATA` request body read: 64 KiB.
const MAX_OUT_REQUEST: usize = 64 * 1024;

/// `application/rpc`.
const RPC_CONTENT_TYPE: &str = "application/rpc";

/// Answers `/rpc/...`; `path` is lower case.
pub async fn handle(shared: &Arc<Shared>, path: &str, req: Request<Incoming>) -> Response<Body> {
    if path != "/rpc/rpcproxy.dll" {
        return response::status(StatusCode::NOT_FOUND);
    }
    match req.method().as_str() {
        "RPC_IN_DATA" => rpc_in(shared, req).await,
        "RPC_OUT_DATA" => rpc_out(shared, req).await,
        _ => response::status(StatusCode::METHOD_NOT_ALLOWED),
    }
}

async fn rpc_in(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let stats = &shared.rpc;
    stats.in_active.fetch_add(1, Ordering::Relaxed);
    let mut body = req.into_body();
    let mut count: u64 = 0;
    let mut closed_early = false;
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    count += n;
                    stats.in_bytes_total.fetch_add(n, Ordering::Relaxed);
                }
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, bytes = count, "RPC_IN_DATA channel closed");
                closed_early = true;
                break;
            }
            None => break,
        }
    }
    stats.in_last_bytes.store(count, Ordering::Relaxed);
    stats.in_completed.fetch_add(1, Ordering::Relaxed);
    stats.in_active.fetch_sub(1, Ordering::Relaxed);
    tracing::info!(server = %shared.name, bytes = count, closed_early, "RPC_IN_DATA done");
    response::with_body(
        StatusCode::OK,
        RPC_CONTENT_TYPE,
        format!("bytes={count}\r\n"),
    )
}

async fn rpc_out(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let exact = query_param(req.uri(), "bytes").and_then(|v| v.parse::<u64>().ok());
    let pace = match query_param(req.uri(), "pace_ms").and_then(|v| v.parse::<u64>().ok()) {
        Some(0) => None,
        Some(ms) => Some(Duration::from_millis(ms)),
        None if exact.is_some() => None,
        None => Some(DEFAULT_PACE),
    };
    if let Err(resp) = read_body(req.into_body(), MAX_OUT_REQUEST).await {
        return resp;
    }
    let declared = exact.unwrap_or(OUT_DECLARED_LENGTH);
    shared.rpc.out_active.fetch_add(1, Ordering::Relaxed);
    let body = OutChannel {
        remaining: declared,
        head: Some(rts_opening()),
        pings: ping_block(),
        pace,
        sleep: None,
        shared: Arc::clone(shared),
    };
    let mut resp = Response::new(body.boxed_unsync());
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(RPC_CONTENT_TYPE));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(declared));
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    headers.insert("pragma", HeaderValue::from_static("no-cache"));
    resp
}

/// An RTS PDU (MS-RPCH 2.2.3.6): the 16-byte common header (version 5.0,
/// type 20, first and last fragment, little-endian), RTS flags, the number
/// of commands, then the commands.
fn rts_pdu(flags: u16, commands: &[(u32, u32)]) -> Bytes {
    let len = 20 + commands.len() * 8;
    let mut b = BytesMut::with_capacity(len);
    b.put_u8(5); // rpc_vers
    b.put_u8(0); // rpc_vers_minor
    b.put_u8(20); // PTYPE: rts
    b.put_u8(0x03); // pfc_flags: first and last fragment
    b.put_slice(&[0x10, 0, 0, 0]); // data representation: little-endian, ASCII, IEEE
    b.put_u16_le(u16::try_from(len).unwrap_or(u16::MAX)); // frag_length
    b.put_u16_le(0); // auth_length
    b.put_u32_le(0); // call_id
    b.put_u16_le(flags);
    b.put_u16_le(u16::try_from(commands.len()).unwrap_or(u16::MAX));
    for (command, value) in commands {
        b.put_u32_le(*command);
        b.put_u32_le(*value);
    }
    b.freeze()
}

/// RTS command types used here.
const CMD_RECEIVE_WINDOW_SIZE: u32 = 0;
const CMD_CONNECTION_TIMEOUT: u32 = 2;
const CMD_VERSION: u32 = 6;
/// RTS_FLAG_PING.
const FLAG_PING: u16 = 0x0001;
/// A ping PDU: header and RTS header, no command: 20 bytes.
const PING_LEN: usize = 20;

/// CONN/A3 then CONN/C2: what a proxy sends first on the OUT channel.
fn rts_opening() -> Bytes {
    let a3 = rts_pdu(0, &[(CMD_CONNECTION_TIMEOUT, 120_000)]);
    let c2 = rts_pdu(
        0,
        &[
            (CMD_VERSION, 1),
            (CMD_RECEIVE_WINDOW_SIZE, 65_536),
            (CMD_CONNECTION_TIMEOUT, 120_000),
        ],
    );
    let mut b = BytesMut::with_capacity(a3.len() + c2.len());
    b.put_slice(&a3);
    b.put_slice(&c2);
    b.freeze()
}

/// 64 KiB of back-to-back ping PDUs (cut at the end).
fn ping_block() -> Bytes {
    let ping = rts_pdu(FLAG_PING, &[]);
    let mut b = BytesMut::with_capacity(CHUNK);
    while b.len() < CHUNK {
        let take = ping.len().min(CHUNK - b.len());
        b.put_slice(&ping[..take]);
    }
    b.freeze()
}

/// The `RPC_OUT_DATA` response body.
struct OutChannel {
    remaining: u64,
    head: Option<Bytes>,
    pings: Bytes,
    pace: Option<Duration>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    shared: Arc<Shared>,
}

impl OutChannel {
    fn emit(&mut self, mut chunk: Bytes) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let max = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        chunk.truncate(max);
        let n = chunk.len() as u64;
        self.remaining -= n;
        self.shared
            .rpc
            .out_bytes_total
            .fetch_add(n, Ordering::Relaxed);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }
}

impl http_body::Body for OutChannel {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        if let Some(head) = this.head.take() {
            return this.emit(head);
        }
        match this.pace {
            None => {
                let chunk = this.pings.clone();
                this.emit(chunk)
            }
            Some(pace) => {
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(pace)));
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                sleep.as_mut().reset(tokio::time::Instant::now() + pace);
                let ping = this.pings.slice(..PING_LEN);
                this.emit(ping)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

impl Drop for OutChannel {
    fn drop(&mut self) {
        let stats = &self.shared.rpc;
        stats.out_active.fetch_sub(1, Ordering::Relaxed);
        stats.out_completed.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rts_pdus_have_the_common_header() {
        let ping = rts_pdu(FLAG_PING, &[]);
        assert_eq!(ping.len(), PING_LEN);
        assert_eq!(&ping[..4], &[5, 0, 20, 3]);
        assert_eq!(u16::from_le_bytes([ping[8], ping[9]]), 20);
        assert_eq!(u16::from_le_bytes([ping[16], ping[17]]), FLAG_PING);
        let opening = rts_opening();
        assert_eq!(opening.len(), 28 + 44);
        assert_eq!(u16::from_le_bytes([opening[28 + 8], opening[28 + 9]]), 44);
        let block = ping_block();
        assert_eq!(block.len(), CHUNK);
        assert_eq!(&block[20..40], &ping[..]);
    }
}
