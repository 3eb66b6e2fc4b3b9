//! Heartbeats: every `heartbeat_interval` this server pings each other
//! member (`GET /mock/dag/ping?from=ME`, at most one ping in flight per
//! member, each bounded by a third of `failure_timeout`). An answer says
//! the member is alive, confirms its vote from the moment the ping was
//! sent, and carries its report of its copies.

use std::sync::Arc;
use std::time::Duration;

use super::client::request;
use super::definition::Member;
use super::report::PeerView;
use super::{now_ms, Dag};

/// Largest heartbeat answer read: 256 KiB.
const MAX_VIEW: usize = 256 * 1024;

/// Pings the other members until the runtime ends.
pub async fn run(dag: Arc<Dag>) {
    loop {
        let def = dag.def();
        let timeout = (def.failure_timeout / 3).max(Duration::from_millis(100));
        for member in def
            .members
            .iter()
            .filter(|m| !m.name.eq_ignore_ascii_case(dag.me()))
        {
            if dag.peers.begin(&member.name) {
                tokio::spawn(ping(Arc::clone(&dag), member.clone(), timeout));
            }
        }
        tokio::time::sleep(def.heartbeat_interval).await;
    }
}

async fn ping(dag: Arc<Dag>, member: Member, timeout: Duration) {
    let sent = now_ms();
    let path = format!("/mock/dag/ping?from={}", dag.me());
    let result = dag
        .client()
        .call(
            &member,
            request(http::Method::GET, &path, ""),
            timeout,
            MAX_VIEW,
        )
        .await;
    match result {
        Ok(reply) if reply.status.is_success() => {
            match serde_json::from_slice::<PeerView>(&reply.body) {
                Ok(view) if view.server.eq_ignore_ascii_case(&member.name) => {
                    // A peer that knows a newer cluster state (a failover
                    // this server slept through): read it before the
                    // answer counts as a vote, so that quorum never comes
                    // back with a stale view of who is active.
                    if view.state_version > dag.state_version() {
                        let d = Arc::clone(&dag);
                        let fresh = tokio::task::spawn_blocking(move || d.refresh_state()).await;
                        if !matches!(fresh, Ok(Ok(_))) {
                            dag.peers.end(&member.name);
                            return;
                        }
                    }
                    dag.peers.answered(&member.name, sent, now_ms(), view);
                }
                Ok(view) => dag.peers.failed(
                    &member.name,
                    format!("{} answered as {}", member.name, view.server),
                ),
                Err(e) => dag
                    .peers
                    .failed(&member.name, format!("unreadable heartbeat answer: {e}")),
            }
        }
        Ok(reply) => dag
            .peers
            .failed(&member.name, format!("heartbeat answered {}", reply.status)),
        Err(e) => dag.peers.failed(&member.name, e.to_string()),
    }
    dag.peers.end(&member.name);
}
