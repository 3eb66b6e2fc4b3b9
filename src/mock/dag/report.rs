//! What a server tells the others about its copies in every heartbeat
//! answer (`GET /mock/dag/ping`), and the copy status words.

use std::collections::BTreeMap;

/// A copy's status, in Exchange's words (`Get-MailboxDatabaseCopyStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CopyStatus {
    /// The active copy, taking writes.
    Mounted,
    /// A passive copy, copying and replaying.
    Healthy,
    /// A passive copy whose copying was suspended.
    Suspended,
    /// Copying failed.
    Failed,
    /// Its server is unreachable.
    ServiceDown,
    /// The active copy of record, not taking writes (no quorum, a
    /// switchover under way, or waiting to mount).
    Dismounted,
    /// Being opened or seeded.
    Initializing,
}

/// One copy as its own server reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CopyReport {
    pub status: CopyStatus,
    /// The epoch it is mounted at, when mounted.
    pub mounted_epoch: Option<u64>,
    pub mounted_since_unix_ms: Option<u64>,
    /// Generations on disk.
    pub copied: u64,
    /// Generations replayed.
    pub replayed: u64,
    /// The last generation of the active copy it knows of.
    pub source_last: u64,
    /// The epoch of its last copied generation.
    pub epoch: u64,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CopyReport {
    /// Generations the active copy has that this one has not copied.
    pub fn copy_queue(&self) -> u64 {
        self.source_last.saturating_sub(self.copied)
    }

    /// Generations copied, not replayed.
    pub fn replay_queue(&self) -> u64 {
        self.copied.saturating_sub(self.replayed)
    }
}

/// A server's answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerView {
    pub server: String,
    pub at_unix_ms: u64,
    /// The version of the cluster state it knows.
    #[serde(default)]
    pub state_version: u64,
    /// Whether it has quorum.
    pub quorum: bool,
    /// Its copies, by database.
    pub copies: BTreeMap<String, CopyReport>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_and_json() {
        let r = CopyReport {
            status: CopyStatus::Healthy,
            mounted_epoch: None,
            mounted_since_unix_ms: None,
            copied: 8,
            replayed: 5,
            source_last: 10,
            epoch: 2,
            error: None,
        };
        assert_eq!((r.copy_queue(), r.replay_queue()), (2, 3));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["status"], "Healthy");
        assert!(json.get("error").is_none());
        assert_eq!(
            serde_json::to_value(CopyStatus::ServiceDown).unwrap(),
            "ServiceDown"
        );
    }
}
