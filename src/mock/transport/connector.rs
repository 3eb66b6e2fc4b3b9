//! The send connector and the queue's delivery: a task per hub that goes
//! through the hub's queue when something is queued and every
//! [`RETRY_EVERY`] — local recipients into their mailbox database, other
//! domains to the mail host the connector routes them to — and keeps
//! what could not be delivered for the next round. A delivered message
//! leaves the queue and its shadow copy is discarded on the peer. The same
//! task watches the primaries whose shadow copies the hub holds, and takes
//! their copies over when a primary stays unreachable (`shadow`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client::Client;
use super::command::domain_of;
use super::hub::Hub;
use super::queue::Entry;
use super::receive::deliver_local;
use super::{message, shadow, LAB_DOMAIN};

/// How often the queue is tried again and the primaries looked at: 1 s.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Bound on reaching a primary for the heartbeat: 1 s.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs the connector of `hub` for the life of the process.
pub async fn run(hub: Arc<Hub>) {
    let mut last_seen: HashMap<String, Instant> = HashMap::new();
    loop {
        tokio::select! {
            () = hub.wake.notified() => {}
            () = tokio::time::sleep(RETRY_EVERY) => {}
        }
        let queue = hub.queue.clone();
        let entries = tokio::task::spawn_blocking(move || queue.list())
            .await
            .unwrap_or_default();
        for entry in entries {
            attempt(&hub, entry).await;
        }
        watch_primaries(&hub, &mut last_seen).await;
    }
}

/// One delivery attempt of a queued message.
async fn attempt(hub: &Hub, mut entry: Entry) {
    let data = hub.queue.data(&entry.id);
    let (local, remote): (Vec<String>, Vec<String>) = entry
        .rcpts
        .iter()
        .cloned()
        .partition(|r| domain_of(r) == LAB_DOMAIN);
    let mut remaining = Vec::new();
    if !local.is_empty() {
        match tokio::fs::read(&data).await {
            Ok(raw) => {
                let msg = message::parse(&raw).to_new_message(&entry.from, &entry.message_id);
                remaining.extend(deliver_local(&hub.shared, &msg, &local).await);
            }
            Err(e) => {
                tracing::error!(hub = %hub.shared.name, id = %entry.id, error = %e,
                    "queued message unreadable");
                remaining.extend(local);
            }
        }
    }
    let mut by_domain: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in remote {
        by_domain.entry(domain_of(&r)).or_default().push(r);
    }
    for (domain, rcpts) in by_domain {
        let Some(addr) = hub.settings.routes.get(&domain).copied() else {
            tracing::warn!(hub = %hub.shared.name, %domain, ?rcpts,
                "no send connector route for the domain: dropped");
            continue;
        };
        match send(hub, addr, &entry, &rcpts, &data).await {
            Ok(refused) => {
                for (rcpt, reply) in refused {
                    if reply.code >= 500 {
                        tracing::warn!(hub = %hub.shared.name, %rcpt, code = reply.code,
                            text = %reply.text, "recipient refused for good: dropped");
                    } else {
                        remaining.push(rcpt);
                    }
                }
                tracing::info!(hub = %hub.shared.name, id = %entry.id, %domain, %addr,
                    message_id = %entry.message_id, "delivered by the send connector");
            }
            Err(e) => {
                tracing::info!(hub = %hub.shared.name, id = %entry.id, %domain, error = %e,
                    "delivery failed: will retry");
                remaining.extend(rcpts);
            }
        }
    }
    if remaining.is_empty() {
        let queue = hub.queue.clone();
        let id = entry.id.clone();
        if let Err(e) = Hub::blocking(move || queue.remove(&id)).await {
            tracing::error!(hub = %hub.shared.name, error = %e, "cannot dequeue");
        }
        if let Some(peer) = &entry.shadow {
            discard(hub, peer, &entry).await;
        }
    } else if remaining.len() != entry.rcpts.len() {
        entry.rcpts = remaining;
        let queue = hub.queue.clone();
        if let Err(e) = Hub::blocking(move || queue.update(&entry)).await {
            tracing::error!(hub = %hub.shared.name, error = %e, "cannot update the queue");
        }
    }
}

async fn send(
    hub: &Hub,
    addr: std::net::SocketAddr,
    entry: &Entry,
    rcpts: &[String],
    data: &std::path::Path,
) -> Result<Vec<(String, super::session::Reply)>, super::client::ClientError> {
    let mut c = Client::connect(addr, super::client::STEP_TIMEOUT).await?;
    c.ehlo(&hub.shared.fqdn).await?;
    let refused = c.send(&entry.from, rcpts, data).await?;
    c.quit().await;
    Ok(refused)
}

/// Tells the peer holding the shadow copy that the message was delivered
/// (best effort: a copy left behind is delivered again only if this hub
/// then dies, and delivery deduplicates).
async fn discard(hub: &Hub, peer: &str, entry: &Entry) {
    let Some(peers) = hub.peers.clone() else {
        return;
    };
    let name = peer.to_string();
    let Some(addr) = tokio::task::spawn_blocking(move || peers.address(&name))
        .await
        .ok()
        .flatten()
    else {
        return;
    };
    let result = async {
        let mut c = Client::connect(addr, Duration::from_secs(5)).await?;
        c.ehlo(&hub.shared.fqdn).await?;
        let r = c
            .command(&format!("XDISCARD {} {}", entry.primary, entry.id))
            .await?;
        c.quit().await;
        Ok::<_, super::client::ClientError>(r)
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(hub = %hub.shared.name, %peer, error = %e, "XDISCARD failed");
    }
}

/// The heartbeat: each primary this hub holds shadow copies for is
/// reached over TCP; one unreachable for `peer_dead_after` is taken over.
async fn watch_primaries(hub: &Hub, last_seen: &mut HashMap<String, Instant>) {
    let now = Instant::now();
    for primary in shadow::primaries(hub).await {
        let addr = match hub.peers.clone() {
            Some(peers) => {
                let p = primary.clone();
                tokio::task::spawn_blocking(move || peers.address(&p))
                    .await
                    .ok()
                    .flatten()
            }
            None => None,
        };
        let alive = match addr {
            Some(addr) => matches!(
                tokio::time::timeout(HEARTBEAT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await,
                Ok(Ok(_))
            ),
            None => false,
        };
        let seen = last_seen.entry(primary.clone()).or_insert(now);
        if alive {
            *seen = now;
        } else if now.duration_since(*seen) >= hub.settings.peer_dead_after {
            if let Err(e) = shadow::take_over(hub, &primary).await {
                tracing::error!(hub = %hub.shared.name, %primary, error = %e,
                    "cannot take over shadow copies");
            }
        }
    }
}
