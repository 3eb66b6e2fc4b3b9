//! Mailbox-aware routing: the member a request for a mailbox should reach
//! first, the way Exchange 2013+ front ends proxy to the server holding the
//! mailbox's active copy, and what to do while that copy is moving.
//!
//! - The database's active copy is on a member that can take the service:
//!   that member (`active`).
//! - It is on a member that is draining, or on a server the array does not
//!   front: the service's ordinary rule (`fallback`; any member answers for
//!   every mailbox, at the cost of a hop).
//! - It has no mounted copy, or it is on a member that is down (the DAG has
//!   not moved it yet): the request waits for the activation, refreshing the
//!   map, at most `[proxy] failover_wait`; then it goes to the new active
//!   member, or gets 503 with Retry-After when no copy was mounted in time
//!   (an active member still down at the end: the ordinary rule).
//! - No mailbox found, or no DAG: the ordinary rule (`unknown`).

use std::time::{Duration, Instant};

use super::mailbox::MailboxId;
use crate::dag::{Dag, Route};
use crate::snapshot::Snapshot;

/// How often a held request looks at the map again when nothing wakes it:
/// 250 ms.
const RECHECK: Duration = Duration::from_millis(250);

/// How a request's mailbox chose its first member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routing {
    /// The member holding the active copy, to try first.
    pub preferred: Option<usize>,
    /// `casarray_mailbox_routing_total`'s result: `active`, `fallback` or
    /// `unknown`.
    pub result: &'static str,
    /// How long the request waited for a failover.
    pub held: Duration,
}

impl Routing {
    pub const UNKNOWN: Routing = Routing {
        preferred: None,
        result: "unknown",
        held: Duration::ZERO,
    };
}

/// No copy of the mailbox's database was mounted within the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotMounted {
    pub held: Duration,
}

/// The routing of a request for `id` (or none) to service `s`; `down` is a
/// member the request already failed to reach.
pub async fn route(
    snap: &Snapshot,
    dag: &Dag,
    id: Option<&MailboxId>,
    s: usize,
    down: Option<usize>,
) -> Result<Routing, NotMounted> {
    let Some(id) = id else {
        return Ok(Routing::UNKNOWN);
    };
    let upstreams = &snap.upstreams;
    let started = Instant::now();
    let deadline = started + snap.cfg.proxy.failover_wait;
    loop {
        let mounted = {
            let map = dag.map();
            match map.route(id.as_str()) {
                Route::Unknown => return Ok(Routing::UNKNOWN),
                Route::Active(server) => {
                    let done = |preferred, result| {
                        Ok(Routing {
                            preferred,
                            result,
                            held: started.elapsed(),
                        })
                    };
                    let Some(m) = upstreams.find(server) else {
                        return done(None, "fallback");
                    };
                    let member = &upstreams.members()[m];
                    if Some(m) != down && member.eligible(s) {
                        return done(Some(m), "active");
                    }
                    if member.state.is_draining() || Instant::now() >= deadline {
                        return done(None, "fallback");
                    }
                    true
                }
                Route::NoMountedCopy(_) => false,
            }
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(NotMounted {
                held: started.elapsed(),
            });
        }
        if !mounted {
            tracing::debug!(mailbox = %id.as_str(), "no mounted copy: waiting for the activation");
        }
        dag.refresh();
        tokio::select! {
            () = dag.changed() => {}
            () = tokio::time::sleep(RECHECK.min(deadline - now)) => {}
        }
    }
}
