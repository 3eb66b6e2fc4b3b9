//! Opening a database file: connection settings, the schema, the
//! database's mailboxes and folders, and the replication position kept
//! in `meta`.

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::types::MAIL_FOLDERS;
use crate::mock::directory;

/// Bumped when the schema changes; a file of another version is refused.
pub const SCHEMA_VERSION: &str = "2";

/// Whether SQLite answered "busy" or "locked" (another process holds the
/// file).
pub(super) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// WAL journal, `synchronous=FULL` (a commit is on disk when it returns),
/// foreign keys on, and a busy timeout for other processes' locks.
pub(super) fn configure(conn: &Connection, busy_timeout: Duration) -> rusqlite::Result<()> {
    conn.busy_timeout(busy_timeout)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode, "mail store is not in WAL mode");
    }
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
    Ok(())
}

/// Creates the tables (idempotent) and the rows of `database`'s mailboxes
/// and their folders, the same in every copy.
pub(super) fn create(conn: &mut Connection, database: &str) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (
             key TEXT PRIMARY KEY,
             value TEXT NOT NULL
         );
         CREATE TABLE IF NOT EXISTS mailboxes (
             address TEXT PRIMARY KEY,
             guid TEXT NOT NULL,
             display_name TEXT NOT NULL
         );
         CREATE TABLE IF NOT EXISTS folders (
             mailbox TEXT NOT NULL REFERENCES mailboxes(address),
             name TEXT NOT NULL,
             display_name TEXT NOT NULL,
             PRIMARY KEY (mailbox, name)
         );
         CREATE TABLE IF NOT EXISTS items (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             mailbox TEXT NOT NULL,
             folder TEXT NOT NULL,
             subject TEXT NOT NULL,
             body TEXT NOT NULL,
             body_type TEXT NOT NULL,
             from_address TEXT NOT NULL,
             from_name TEXT NOT NULL,
             to_rcpt TEXT NOT NULL,
             cc_rcpt TEXT NOT NULL,
             received INTEGER NOT NULL,
             is_read INTEGER NOT NULL DEFAULT 0,
             message_id TEXT,
             headers TEXT NOT NULL DEFAULT '',
             FOREIGN KEY (mailbox, folder) REFERENCES folders(mailbox, name)
         );
         CREATE INDEX IF NOT EXISTS items_by_folder ON items(mailbox, folder, received);",
    )?;
    add_message_columns(&tx)?;
    tx.execute_batch(
        "CREATE INDEX IF NOT EXISTS items_by_message_id ON items(mailbox, message_id)",
    )?;
    tx.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?1)",
        [SCHEMA_VERSION],
    )?;
    tx.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('database', ?1)",
        [database],
    )?;
    for mailbox in directory::lab().in_database(database) {
        tx.execute(
            "INSERT OR IGNORE INTO mailboxes (address, guid, display_name) VALUES (?1, ?2, ?3)",
            params![mailbox.address, mailbox.guid, mailbox.display_name],
        )?;
        for (name, display) in MAIL_FOLDERS {
            tx.execute(
                "INSERT OR IGNORE INTO folders (mailbox, name, display_name) VALUES (?1, ?2, ?3)",
                params![mailbox.address, name, display],
            )?;
        }
    }
    tx.commit()
}

/// Adds `message_id` and `headers` to an `items` table made before they
/// existed (mail received by SMTP keeps them; the columns are nullable or
/// defaulted, so older rows stay as they were).
fn add_message_columns(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('items')")?;
    let columns = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if !columns.iter().any(|c| c == "message_id") {
        conn.execute_batch("ALTER TABLE items ADD COLUMN message_id TEXT")?;
    }
    if !columns.iter().any(|c| c == "headers") {
        conn.execute_batch("ALTER TABLE items ADD COLUMN headers TEXT NOT NULL DEFAULT ''")?;
    }
    Ok(())
}

/// A `meta` value.
pub(super) fn meta(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
}

/// Sets a `meta` value.
pub(super) fn set_meta(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

/// Where a copy stands in its database's log stream: the last generation
/// applied to it and the activation epoch that generation was written in
/// (both 0 for a database never written through a log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub generation: u64,
    pub epoch: u64,
}

/// The copy's [`Position`].
pub fn position(conn: &Connection) -> rusqlite::Result<Position> {
    let read = |key| -> rusqlite::Result<u64> {
        Ok(meta(conn, key)?.and_then(|v| v.parse().ok()).unwrap_or(0))
    };
    Ok(Position {
        generation: read("generation")?,
        epoch: read("epoch")?,
    })
}

/// Records the copy's [`Position`] (inside the transaction that applied
/// that generation).
pub fn set_position(conn: &Connection, position: Position) -> rusqlite::Result<()> {
    set_meta(conn, "generation", &position.generation.to_string())?;
    set_meta(conn, "epoch", &position.epoch.to_string())
}
