//! Shadow redundancy and Safety Net, as Exchange 2013 and later keep
//! them: a hub answers `250` only once another hub holds a shadow copy of
//! the message. The primary sends the copy to a peer hub over SMTP
//! (`XSHADOW <primary> <id>` before `MAIL`, then the message; `XSHADOW
//! <primary> <id> DELIVERED` for a message already delivered into its
//! mailbox databases). The peer keeps it in `shadow/<primary>/` and does
//! not deliver it. `XDISCARD <primary> <id>` (the primary delivered a
//! queued message) marks it delivered; a delivered copy is kept for
//! [`SAFETY_NET_HOLD`], then dropped. A peer that finds the primary
//! unreachable for `peer_dead_after` moves the primary's copies, delivered
//! or not, into its own queue and delivers them: a message the primary
//! never delivered is delivered, and one lost by a lossy database failover
//! (a passive copy mounted before it replayed the last logs) is delivered
//! again. Delivery deduplicates on Message-ID, so nothing arrives twice.
//!
//! Peers that failed to take a copy are passed over for [`PEER_BACKOFF`].
//! With no peer configured, or none up, or none taking the copy within
//! `shadow_wait`, the hub accepts anyway and logs that the message has one
//! copy (as Exchange does).

use std::time::{Duration, Instant};

use super::client::Client;
use super::hub::Hub;
use super::message;
use super::queue::{Entry, Queue};
use super::session::{Envelope, Reply, Spooled};
use crate::mock::format::clock::unix_now;

/// How long a delivered message is kept (a shadow copy on a peer, a Safety
/// Net copy on the primary) to be delivered again if needed: 10 minutes.
pub const SAFETY_NET_HOLD: Duration = Duration::from_secs(600);
/// How long a peer that failed to take a shadow copy is passed over: 10 s.
pub const PEER_BACKOFF: Duration = Duration::from_secs(10);

/// Places a shadow copy of `entry` (its data at `data`; `delivered` when
/// the primary has delivered it already) on the first peer hub that takes
/// it within `shadow_wait`; the peer's name.
pub async fn place(
    hub: &Hub,
    entry: &Entry,
    data: &std::path::Path,
    delivered: bool,
) -> Option<String> {
    let Some(peers) = hub.peers.clone() else {
        tracing::info!(hub = %hub.shared.name, id = %entry.id,
            "no peer hub configured: the message has one copy");
        return None;
    };
    let all = tokio::task::spawn_blocking(move || peers.others())
        .await
        .unwrap_or_default();
    let now = Instant::now();
    let others: Vec<_> = {
        let down = hub.peers_down.lock().unwrap_or_else(|p| p.into_inner());
        all.into_iter()
            .filter(|(name, _)| down.get(name).is_none_or(|until| *until <= now))
            .collect()
    };
    let wait = hub.settings.shadow_wait;
    let attempt = async {
        // Peers are tried in turn, again and again, until the wait ends.
        loop {
            for (name, addr) in &others {
                match copy_to(hub, entry, data, *addr, wait, delivered).await {
                    Ok(()) => return Some(name.clone()),
                    Err(e) => {
                        tracing::debug!(hub = %hub.shared.name, peer = %name,
                            error = %e, "shadow copy not placed");
                        hub.peers_down
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(name.clone(), Instant::now() + PEER_BACKOFF);
                    }
                }
            }
            if others.is_empty() {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    match tokio::time::timeout(wait, attempt).await {
        Ok(Some(peer)) => {
            hub.peers_down
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&peer);
            tracing::debug!(hub = %hub.shared.name, id = %entry.id, %peer, "shadow copy placed");
            Some(peer)
        }
        _ => {
            tracing::warn!(hub = %hub.shared.name, id = %entry.id,
                "no peer hub took a shadow copy: the message has one copy");
            None
        }
    }
}

async fn copy_to(
    hub: &Hub,
    entry: &Entry,
    data: &std::path::Path,
    addr: std::net::SocketAddr,
    wait: Duration,
    delivered: bool,
) -> Result<(), super::client::ClientError> {
    let mut c = Client::connect(addr, wait).await?;
    let ehlo = c.ehlo(&hub.shared.fqdn).await?;
    if !ehlo.text.lines().any(|l| l.eq_ignore_ascii_case("XSHADOW")) {
        c.quit().await;
        return Err(super::client::ClientError::Refused {
            addr,
            reply: Reply::new(ehlo.code, "no XSHADOW"),
        });
    }
    let flag = if delivered { " DELIVERED" } else { "" };
    let r = c
        .command(&format!("XSHADOW {} {}{flag}", entry.primary, entry.id))
        .await?;
    if r.code != 250 {
        return Err(super::client::ClientError::Refused { addr, reply: r });
    }
    let refused = c.send(&entry.from, &entry.rcpts, data).await?;
    c.quit().await;
    match refused.into_iter().next() {
        None => Ok(()),
        Some((_, reply)) => Err(super::client::ClientError::Refused { addr, reply }),
    }
}

/// Keeps a shadow copy received from `primary` (`delivered`: the primary
/// has delivered it already).
pub async fn keep(
    hub: &Hub,
    primary: &str,
    id: &str,
    delivered: bool,
    env: &Envelope,
    data: &Spooled,
) -> std::io::Result<Reply> {
    let raw = tokio::fs::read(&data.path).await?;
    let message_id = message::parse(&raw).message_id.unwrap_or_default();
    drop(raw);
    let entry = Entry {
        id: id.to_string(),
        from: env.from.clone(),
        rcpts: env.rcpts.clone(),
        message_id,
        created: unix_now(),
        primary: primary.to_string(),
        shadow: None,
        delivered: delivered.then(unix_now),
    };
    let dir = hub.shadow_dir(primary);
    let path = data.path.clone();
    Hub::blocking(move || Queue::open(&dir)?.put(&entry, &path)).await?;
    tracing::debug!(hub = %hub.shared.name, %primary, %id, delivered, "holding a shadow copy");
    Ok(Reply::new(250, "2.6.0 Shadow copy kept"))
}

/// Moves every shadow copy kept for `primary` into the hub's own queue
/// (the primary is gone); returns how many.
pub async fn take_over(hub: &Hub, primary: &str) -> std::io::Result<usize> {
    let dir = hub.shadow_dir(primary);
    let queue = hub.queue.clone();
    let me = hub.shared.name.clone();
    let moved = Hub::blocking(move || {
        let shadows = Queue::open(&dir)?;
        let mut n = 0;
        for mut entry in shadows.list() {
            // The id stays unique: the primary's name goes in front.
            let original = entry.id.clone();
            entry.id = format!("{}_{}", entry.primary, original);
            entry.shadow = None;
            entry.delivered = None;
            entry.primary = me.clone();
            queue.put(&entry, &shadows.data(&original))?;
            shadows.remove(&original)?;
            n += 1;
        }
        Ok(n)
    })
    .await?;
    if moved > 0 {
        tracing::warn!(hub = %hub.shared.name, %primary, moved,
            "primary hub unreachable: delivering its shadow copies");
        hub.wake.notify_one();
    }
    Ok(moved)
}

/// The primaries this hub holds shadow copies for.
pub async fn primaries(hub: &Hub) -> Vec<String> {
    let dir = hub.settings.work.join("shadow");
    tokio::task::spawn_blocking(move || {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        rd.filter_map(Result::ok)
            .filter(|e| {
                std::fs::read_dir(e.path())
                    .map(|mut d| {
                        d.any(|f| {
                            f.is_ok_and(|f| f.path().extension().is_some_and(|x| x == "json"))
                        })
                    })
                    .unwrap_or(false)
            })
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect()
    })
    .await
    .unwrap_or_default()
}

/// Marks the shadow copy of `primary`'s message `id` delivered (it is then
/// kept for [`SAFETY_NET_HOLD`]). Blocking.
pub fn mark_delivered(dir: &std::path::Path, id: &str) -> std::io::Result<()> {
    let q = Queue::open(dir)?;
    if let Some(mut e) = q.list().into_iter().find(|e| e.id == id) {
        e.delivered = Some(unix_now());
        q.update(&e)?;
    }
    Ok(())
}

/// Drops what `queue` holds delivered for longer than [`SAFETY_NET_HOLD`].
/// Blocking.
pub fn expire(queue: &Queue) {
    let hold = i64::try_from(SAFETY_NET_HOLD.as_secs()).unwrap_or(i64::MAX);
    let now = unix_now();
    for e in queue.list() {
        if e.delivered.is_some_and(|at| now - at > hold) {
            let _ = queue.remove(&e.id);
        }
    }
}
