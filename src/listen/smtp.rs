//! `listen.smtp`: SMTP balanced at L4 over the members' hub transport, as
//! the NLB port rules of the lesson (and every Exchange load-balancer guide)
//! do, plus one thing a plain L4 balancer does not: a banner-verified
//! connect.
//!
//! For each client connection the array picks a hub (`smtp` service: a
//! member with an `smtp` address, healthy for SMTP, not draining, fewest
//! sessions), connects, sends a PROXY v2 header when `[smtp]
//! proxy_protocol` is on, and reads the hub's greeting. Only a `220`
//! greeting is passed to the client, and from then on bytes are copied both
//! ways untouched (STARTTLS included: the hubs present the shared
//! certificate). A hub that refuses, does not greet within `[smtp]
//! banner_timeout`, or greets with anything else (421, 554) is skipped, taken
//! out of SMTP until a probe says it is back, and the next hub is tried: a
//! new session never lands on a dead or sick hub. With no hub left the
//! client is told `421` and the connection closes, as a hub would.
//!
//! A session lives on its own sockets: a reload that removes its hub, or a
//! drain, does not cut it; a stop waits for it within `proxy.drain_timeout`
//! ([`Drain`]). Sessions quiet both ways for `[smtp] idle_timeout` end.

use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderMap;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::copy::copy_with_idle;
use super::drain::{Drain, DrainGuard};
use super::https::Active;
use super::Listener;
use crate::errors::error_chain;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use crate::upstream::dial::MemberStream;
use crate::upstream::proxy_protocol;
use crate::upstream::selection::Keys;
use crate::upstream::smtp::read_reply;

/// What the client is told when no hub can take it.
const NO_HUB: &[u8] = b"421 4.3.2 Service not available, closing transmission channel\r\n";

/// The SMTP listener.
pub struct SmtpListener {
    live: Arc<Live>,
    drain: Arc<Drain>,
}

impl SmtpListener {
    /// `drain` tracks the sessions, for the stop.
    pub fn new(live: Arc<Live>, drain: Arc<Drain>) -> Self {
        SmtpListener { live, drain }
    }
}

impl Listener for SmtpListener {
    fn accept(&self, stream: TcpStream, peer: SocketAddr) {
        let Some(active) = Active::take(&self.live) else {
            return;
        };
        let guard = self.drain.track();
        tokio::spawn(session(stream, peer, Arc::clone(&self.live), active, guard));
    }
}

/// A hub's connection, its 220 greeting read (and not yet passed on).
struct Greeted {
    io: MemberStream,
    greeting: Vec<u8>,
}

/// One client session: a hub, its greeting, then bytes both ways.
async fn session(
    mut client: TcpStream,
    peer: SocketAddr,
    live: Arc<Live>,
    _active: Active,
    _guard: DrainGuard,
) {
    let _ = client.set_nodelay(true);
    let Ok(local) = client.local_addr() else {
        return;
    };
    let snap = live.snapshot.load_full();
    let metrics = &live.metrics;
    let Some((m, mut hub)) = pick_hub(&snap, metrics, peer, local).await else {
        metrics
            .smtp_connections
            .with_label_values(&["none", "no_member"])
            .inc();
        tracing::warn!(%peer, "SMTP: no hub can take the session: 421");
        let _ = client.write_all(NO_HUB).await;
        let _ = client.shutdown().await;
        return;
    };
    let member = &snap.upstreams.members()[m];
    let _session = member.state.begin_session();
    if let Err(e) = client.write_all(&hub.greeting).await {
        tracing::debug!(%peer, "SMTP client gone before the greeting: {e}");
        return;
    }
    match copy_with_idle(&mut client, &mut hub.io, snap.cfg.smtp.idle_timeout).await {
        Ok((up, down)) => {
            tracing::debug!(%peer, member = %member.name, up, down, "SMTP session ended")
        }
        Err(e) => tracing::debug!(%peer, member = %member.name, "SMTP session ended: {e}"),
    }
}

/// The first hub, in the SMTP service's order, that greets with 220 within
/// the banner timeout. Hubs that do not are counted, taken out of SMTP and
/// passed over.
async fn pick_hub(
    snap: &Snapshot,
    metrics: &Metrics,
    peer: SocketAddr,
    local: SocketAddr,
) -> Option<(usize, Greeted)> {
    let upstreams = &snap.upstreams;
    let s = upstreams.smtp_service()?;
    let headers = HeaderMap::new();
    let selection = upstreams.select(
        s,
        Keys {
            headers: &headers,
            client: peer.ip(),
            preferred: None,
        },
    );
    for m in selection {
        let member = &upstreams.members()[m];
        let Some(target) = member.service(s).target else {
            continue;
        };
        let (result, outcome) = match greet(snap, target, peer, local).await {
            Ok(greeted) => ("ok", Ok(greeted)),
            Err((result, why)) => (result, Err(why)),
        };
        metrics
            .smtp_connections
            .with_label_values(&[&member.name, result])
            .inc();
        match outcome {
            Ok(greeted) => return Some((m, greeted)),
            Err(why) => upstreams.eject(m, s, &why),
        }
    }
    None
}

/// Connects to the hub at `target` and reads its greeting; the error is the
/// result label and the reason.
async fn greet(
    snap: &Snapshot,
    target: SocketAddr,
    peer: SocketAddr,
    local: SocketAddr,
) -> Result<Greeted, (&'static str, String)> {
    let cfg = &snap.cfg.smtp;
    let mut io = snap
        .upstreams
        .connector()
        .dialer()
        .dial(target, None)
        .await
        .map_err(|e| ("refused", error_chain(&e)))?;
    if cfg.proxy_protocol {
        io.write_all(&proxy_protocol::v2_proxy(peer, local))
            .await
            .map_err(|e| ("refused", format!("PROXY header: {e}")))?;
    }
    let greeting = tokio::time::timeout(cfg.banner_timeout, read_reply(&mut io))
        .await
        .map_err(|_| {
            let why = format!(
                "no greeting within {:?} (smtp.banner_timeout)",
                cfg.banner_timeout
            );
            ("timeout", why)
        })?
        .map_err(|e| ("rejected", format!("greeting: {}", error_chain(&e))))?;
    if greeting.code != 220 {
        let why = format!("greeted {} {}", greeting.code, greeting.text());
        return Err(("rejected", why));
    }
    Ok(Greeted {
        io,
        greeting: greeting.raw,
    })
}
