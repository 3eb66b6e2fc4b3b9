//! Following the cluster: load every key under the prefix, then watch
//! from the revision after; on any failure (etcd unreachable, no leader,
//! the watch cancelled) mark the cluster disconnected, wait a little and
//! load everything again. The view is replaced whole on each load, so a
//! change missed while disconnected is never lost.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{ConnectOptions, EventType, GetOptions, WatchOptions};

use super::client::{self, bounded, ClusterError};
use super::{ClusterView, Shared};
use crate::errors::error_chain;

/// First wait before trying again: 100 ms, doubled up to 1 s.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Runs until the cluster is dropped.
pub async fn run(shared: Arc<Shared>, opts: ConnectOptions) {
    let mut backoff = BACKOFF_FIRST;
    let mut logged_down = false;
    loop {
        let error = follow(&shared, &opts, &mut backoff).await;
        let was = shared.connected.load(std::sync::atomic::Ordering::SeqCst);
        shared.set_connected(false);
        if was || !logged_down {
            tracing::warn!(
                endpoints = ?shared.cfg.endpoints,
                "cluster: etcd unreachable, serving with the last known state; admin changes answer 503 until it is back: {}",
                error_chain(&error)
            );
            logged_down = true;
        } else {
            tracing::debug!("cluster: still unreachable: {}", error_chain(&error));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
        if was {
            logged_down = true;
        }
    }
}

/// One connection: load, then watch until something fails.
async fn follow(shared: &Shared, opts: &ConnectOptions, backoff: &mut Duration) -> ClusterError {
    match follow_inner(shared, opts, backoff).await {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

async fn follow_inner(
    shared: &Shared,
    opts: &ConnectOptions,
    backoff: &mut Duration,
) -> Result<std::convert::Infallible, ClusterError> {
    let cfg = &shared.cfg;
    let mut client = match shared.client.load_full() {
        Some(c) => (*c).clone(),
        None => {
            let c = client::connect(cfg, opts.clone()).await?;
            shared.client.store(Some(Arc::new(c.clone())));
            c
        }
    };
    let dir = format!("{}/", cfg.prefix);
    let resp = bounded(
        cfg.request_timeout,
        client.get(dir.clone(), Some(GetOptions::new().with_prefix())),
    )
    .await?;
    let revision = resp.header().map_or(0, |h| h.revision());
    let mut view = ClusterView {
        revision,
        ..ClusterView::default()
    };
    for kv in resp.kvs() {
        view.apply(&cfg.prefix, kv.key(), Some(kv.value()), kv.mod_revision());
    }
    let keys = resp.kvs().len();
    let mut stream = bounded(
        cfg.request_timeout,
        client.watch(
            dir,
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision + 1),
            ),
        ),
    )
    .await?;
    shared.store(view);
    shared.set_connected(true);
    *backoff = super::sync::BACKOFF_FIRST;
    tracing::info!(revision, keys, "cluster: following etcd");
    loop {
        let Some(msg) = stream.message().await? else {
            return Err(ClusterError::WatchEnded("closed by etcd".into()));
        };
        if msg.canceled() {
            return Err(ClusterError::WatchEnded(format!(
                "cancelled: {}",
                msg.cancel_reason()
            )));
        }
        if msg.events().is_empty() {
            continue;
        }
        let revision = msg.header().map(|h| h.revision());
        shared.edit(|view| {
            for ev in msg.events() {
                let Some(kv) = ev.kv() else { continue };
                let value = match ev.event_type() {
                    EventType::Put => Some(kv.value()),
                    EventType::Delete => None,
                };
                view.apply(&cfg.prefix, kv.key(), value, kv.mod_revision());
            }
            if let Some(r) = revision {
                view.revision = view.revision.max(r);
            }
        });
    }
}
