//! What members say about the DAG: the JSON of a mock server's
//! `GET /mock/dag/status` and `GET /mock/directory`, the fields the array
//! reads (others are ignored; missing ones take defaults).

use serde::Deserialize;

/// `GET /mock/dag/status`: one member's view.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StatusView {
    /// The member that answered (its member name).
    pub server: String,
    /// Moves whenever the view changes (the answer's ETag).
    #[serde(default)]
    pub version: u64,
    #[serde(default)]
    pub databases: Vec<DatabaseStatus>,
}

/// One database in a member's view.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DatabaseStatus {
    pub name: String,
    /// The server whose copy is mounted in this view; `None` while none is.
    #[serde(default)]
    pub mounted: Option<String>,
    /// The activation epoch (higher = later).
    #[serde(default)]
    pub epoch: Option<u64>,
    /// A switchover under way, to this server.
    #[serde(default)]
    pub moving_to: Option<String>,
    /// Activations of another copy so far, as this member knows them.
    #[serde(default)]
    pub failovers: u64,
    #[serde(default)]
    pub copies: Vec<CopyStatus>,
}

/// One copy of a database.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CopyStatus {
    pub server: String,
    #[serde(default)]
    pub activation_preference: u32,
    /// Exchange's words: Mounted, Healthy, Suspended, Failed, ServiceDown,
    /// Dismounted, Initializing.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub copy_queue: u64,
    #[serde(default)]
    pub replay_queue: u64,
}

/// `GET /mock/directory`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DirectoryView {
    #[serde(default)]
    pub mailboxes: Vec<MailboxEntry>,
}

/// One mailbox of the directory.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MailboxEntry {
    pub address: String,
    #[serde(default)]
    pub guid: String,
    pub database: String,
}
