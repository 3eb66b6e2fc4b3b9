//! What this server says about copies: its own (as it reports them to
//! the others in heartbeat answers and in its status) and the others' (as
//! they last reported them).

use super::copy::{self, LocalCopy};
use super::report::{CopyReport, CopyStatus, PeerView};
use super::{now_ms, state, Dag};

impl Dag {
    /// How this server reports its own copy of `database`: `Mounted` only
    /// while it takes writes (mounted at the epoch of record, no
    /// switchover, quorum now).
    pub fn report(&self, copy: &LocalCopy) -> CopyReport {
        let rt = copy.runtime();
        let cluster = self.cluster();
        let st = cluster.db(&copy.database);
        let active_here = st.is_some_and(|s| s.active.eq_ignore_ascii_case(&self.me));
        let serving = rt
            .mounted
            .filter(|m| st.is_some_and(|s| s.epoch == m.epoch && s.moving_to.is_none()))
            .filter(|_| active_here && self.has_quorum())
            .filter(|m| self.still_active(&copy.database, m.epoch));
        let status = if serving.is_some() {
            CopyStatus::Mounted
        } else if active_here {
            CopyStatus::Dismounted
        } else if st.is_some_and(|s| s.is_suspended(&self.me)) {
            CopyStatus::Suspended
        } else {
            match &rt.phase {
                copy::Phase::Initializing => CopyStatus::Initializing,
                copy::Phase::Copying => CopyStatus::Healthy,
                copy::Phase::Failed(_) => CopyStatus::Failed,
            }
        };
        let source_last = if active_here {
            rt.replayed.max(rt.copied)
        } else {
            let active = st
                .and_then(|s| self.peers.view(&s.active))
                .and_then(|v| {
                    v.copies
                        .iter()
                        .find(|(db, _)| db.eq_ignore_ascii_case(&copy.database))
                        .map(|(_, r)| r.source_last.max(r.copied))
                })
                .unwrap_or(0);
            rt.source_last.max(rt.copied).max(active)
        };
        CopyReport {
            status,
            mounted_epoch: rt.mounted.map(|m| m.epoch),
            mounted_since_unix_ms: serving.map(|m| m.since_unix_ms),
            copied: rt.copied,
            replayed: rt.replayed,
            source_last,
            epoch: rt.copied_epoch,
            error: match rt.phase {
                copy::Phase::Failed(e) => Some(e),
                _ => None,
            },
        }
    }

    /// Whether the latest cluster state (read now) still names this server
    /// active for `database` at `epoch`: a claim to be mounted is checked
    /// against it, not against what the last tick read. Blocking (one
    /// small read).
    fn still_active(&self, database: &str, epoch: u64) -> bool {
        match state::read_versioned(&self.def().state) {
            Ok((version, state)) => {
                let ok = state.db(database).is_some_and(|d| {
                    d.active.eq_ignore_ascii_case(&self.me)
                        && d.epoch == epoch
                        && d.moving_to.is_none()
                });
                self.keep_state(version, state);
                ok
            }
            Err(_) => false,
        }
    }

    /// This server's answer to a heartbeat.
    pub fn view(&self) -> PeerView {
        PeerView {
            server: self.me.clone(),
            at_unix_ms: now_ms(),
            state_version: self.state_version(),
            quorum: self.has_quorum(),
            copies: self
                .copies()
                .iter()
                .map(|c| (c.database.clone(), self.report(c)))
                .collect(),
        }
    }

    /// The report of `server`'s copy of `database`: this server's own
    /// copy, or the peer's last report while it is fresher than the quorum
    /// lease (else `None`: `ServiceDown`).
    pub fn report_of(&self, server: &str, database: &str) -> Option<CopyReport> {
        if server.eq_ignore_ascii_case(&self.me) {
            return self.copy(database).map(|c| self.report(&c));
        }
        // A report older than the quorum lease may describe a claim the
        // peer itself no longer holds: the peer counts as down here.
        let lease = u64::try_from(self.def().quorum_lease().as_millis()).unwrap_or(u64::MAX);
        if now_ms().saturating_sub(self.peers.last_heard(server)) > lease {
            return None;
        }
        let view = self.peers.view(server)?;
        view.copies
            .iter()
            .find(|(db, _)| db.eq_ignore_ascii_case(database))
            .map(|(_, r)| r.clone())
    }
}
