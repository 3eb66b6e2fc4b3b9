//! The send connector and the queue's delivery: a task per hub that goes
//! through the hub's queue when something is queued and every
//! [`RETRY_EVERY`] — local recipients into their mailbox database, other
//! domains to the mail host the connector routes them to — and keeps
//! what could not be delivered for the next round. A delivered message
//! leaves the queue and its shadow copy is marked delivered on the peer.
//! The same task watches the primaries whose shadow copies the hub holds
//! (taking their copies over when a primary stays unreachable: `shadow`),
//! watches which server holds each database's active copy (Safety Net:
//! delivering again what went into a database whose active copy moved),
//! and drops delivered copies held past `shadow::SAFETY_NET_HOLD`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client::Client;
use super::command::domain_of;
use super::hub::Hub;
use super::queue::{Entry, Queue};
use super::receive::deliver_local;
use super::{message, shadow, LAB_DOMAIN};
use crate::mock::dag::Located;
use crate::mock::users::LAB_DATABASES;

/// How often the queue is tried again and the primaries looked at: 1 s.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Bound on reaching a primary for the heartbeat: 1 s.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs the connector of `hub` for the life of the process.
pub async fn run(hub: Arc<Hub>) {
    let mut last_seen: HashMap<String, Instant> = HashMap::new();
    let mut actives: HashMap<String, String> = HashMap::new();
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
        watch_actives(&hub, &mut actives).await;
        expire(&hub).await;
    }
}

/// Safety Net: when a database's active copy moves to another server, what
/// this hub delivered into it lately is delivered again (a lossy failover
/// may have lost it; delivery deduplicates).
async fn watch_actives(hub: &Hub, actives: &mut HashMap<String, String>) {
    let Some(dag) = hub.shared.databases.dag() else {
        return;
    };
    for (database, _) in LAB_DATABASES {
        let now = match dag.locate(database) {
            Located::Local(_) => hub.shared.name.clone(),
            Located::Remote(m) => m.name,
            // Between two servers: the move is seen when it ends.
            Located::Unavailable(_) => continue,
        };
        let before = actives.insert((*database).to_string(), now.clone());
        if before.is_some_and(|b| b != now) {
            let (net, queue, db) = (
                hub.safety_net.clone(),
                hub.queue.clone(),
                database.to_string(),
            );
            let moved = Hub::blocking(move || resubmit(&net, &queue, &db)).await;
            match moved {
                Ok(n) => {
                    tracing::info!(hub = %hub.shared.name, %database, active = %now, resubmitted = n,
                        "database moved: Safety Net copies delivered again");
                    hub.wake.notify_one();
                }
                Err(e) => {
                    tracing::error!(hub = %hub.shared.name, error = %e, "Safety Net resubmission")
                }
            }
        }
    }
}

/// Queues again the Safety Net copies with recipients in `database`.
/// Blocking.
fn resubmit(net: &Queue, queue: &Queue, database: &str) -> std::io::Result<usize> {
    let dir = crate::mock::directory::lab();
    let mut n = 0;
    for e in net.list() {
        let rcpts: Vec<String> = e
            .rcpts
            .iter()
            .filter(|r| {
                dir.find(r)
                    .is_some_and(|m| m.database.eq_ignore_ascii_case(database))
            })
            .cloned()
            .collect();
        if rcpts.is_empty() {
            continue;
        }
        let again = Entry {
            id: format!(
                "{}-r{}",
                e.id,
                super::new_id().rsplit('-').next().unwrap_or("0")
            ),
            rcpts,
            shadow: None,
            delivered: None,
            ..e.clone()
        };
        queue.put_copy(&again, &net.data(&e.id))?;
        n += 1;
    }
    Ok(n)
}

/// Drops Safety Net and shadow copies held past `SAFETY_NET_HOLD`.
async fn expire(hub: &Hub) {
    let net = hub.safety_net.clone();
    let shadows = hub.settings.work.join("shadow");
    let _ = tokio::task::spawn_blocking(move || {
        shadow::expire(&net);
        if let Ok(rd) = std::fs::read_dir(&shadows) {
            for e in rd.flatten() {
                if let Ok(q) = Queue::open(&e.path()) {
                    shadow::expire(&q);
                }
            }
        }
    })
    .await;
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
                let deferred = deliver_local(&hub.shared, &msg, &local).await;
                let delivered: Vec<String> = local
                    .iter()
                    .filter(|r| !deferred.contains(r))
                    .cloned()
                    .collect();
                if !delivered.is_empty() {
                    let kept = Entry {
                        rcpts: delivered,
                        delivered: Some(crate::mock::format::clock::unix_now()),
                        shadow: None,
                        ..entry.clone()
                    };
                    let (net, path) = (hub.safety_net.clone(), data.clone());
                    if let Err(e) = Hub::blocking(move || net.put_copy(&kept, &path)).await {
                        tracing::warn!(hub = %hub.shared.name, error = %e, "Safety Net copy");
                    }
                }
                remaining.extend(deferred);
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
