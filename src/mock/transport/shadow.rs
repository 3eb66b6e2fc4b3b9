//! Shadow redundancy, as Exchange 2013 and later keep it: a hub answers
//! `250` for a message it still has to deliver only once another hub holds
//! a shadow copy of it. The primary sends the copy to a peer hub over SMTP
//! (`XSHADOW <primary> <id>` before `MAIL`, the message as queued); the
//! peer keeps it in `shadow/<primary>/`, does not deliver it, and drops it
//! on `XDISCARD <primary> <id>` once the primary delivered. A peer that
//! finds the primary unreachable for `peer_dead_after` moves the primary's
//! shadow copies into its own queue and delivers them (delivery
//! deduplicates on Message-ID, so a primary that comes back and delivers
//! too makes no second copy).
//!
//! With no peer configured or none up within `shadow_wait`, the hub
//! accepts anyway and logs that the message has one copy (as Exchange
//! does).

use std::time::Duration;

use super::client::Client;
use super::hub::Hub;
use super::message;
use super::queue::{Entry, Queue};
use super::session::{Envelope, Reply, Spooled};
use crate::mock::format::clock::unix_now;

/// Places a shadow copy of queued `entry` on the first peer hub that takes
/// it within `shadow_wait`; the peer's name.
pub async fn place(hub: &Hub, entry: &Entry) -> Option<String> {
    let Some(peers) = hub.peers.clone() else {
        tracing::info!(hub = %hub.shared.name, id = %entry.id,
            "no peer hub configured: the message has one copy");
        return None;
    };
    let others = tokio::task::spawn_blocking(move || peers.others())
        .await
        .unwrap_or_default();
    let wait = hub.settings.shadow_wait;
    let attempt = async {
        // Peers are tried in turn, again and again, until the wait ends.
        loop {
            for (name, addr) in &others {
                match copy_to(hub, entry, *addr, wait).await {
                    Ok(()) => return Some(name.clone()),
                    Err(e) => tracing::debug!(hub = %hub.shared.name, peer = %name,
                        error = %e, "shadow copy not placed"),
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
            tracing::info!(hub = %hub.shared.name, id = %entry.id, %peer, "shadow copy placed");
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
    addr: std::net::SocketAddr,
    wait: Duration,
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
    let r = c
        .command(&format!("XSHADOW {} {}", entry.primary, entry.id))
        .await?;
    if r.code != 250 {
        return Err(super::client::ClientError::Refused { addr, reply: r });
    }
    let refused = c
        .send(&entry.from, &entry.rcpts, &hub.queue.data(&entry.id))
        .await?;
    c.quit().await;
    match refused.into_iter().next() {
        None => Ok(()),
        Some((_, reply)) => Err(super::client::ClientError::Refused { addr, reply }),
    }
}

/// Keeps a shadow copy received from `primary`.
pub async fn keep(
    hub: &Hub,
    primary: &str,
    id: &str,
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
    };
    let dir = hub.shadow_dir(primary);
    let path = data.path.clone();
    Hub::blocking(move || Queue::open(&dir)?.put(&entry, &path)).await?;
    tracing::info!(hub = %hub.shared.name, %primary, %id, "holding a shadow copy");
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
