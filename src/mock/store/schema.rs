//! Opening a store file: connection settings, the schema and the seeded
//! lab mailboxes.

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::items::{insert_item, ItemRow};
use super::types::{BodyType, MAIL_FOLDERS};
use crate::mock::format::clock::unix_now;
use crate::mock::users::LAB_USERS;

/// Bumped when the seeded content changes.
const SEED_VERSION: &str = "1";

pub(super) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

pub(super) fn configure(conn: &Connection, busy_timeout: Duration) -> rusqlite::Result<()> {
    conn.busy_timeout(busy_timeout)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode, "mail store is not in WAL mode");
    }
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
    Ok(())
}

pub(super) fn create_schema(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (
             key TEXT PRIMARY KEY,
             value TEXT NOT NULL
         );
         CREATE TABLE IF NOT EXISTS mailboxes (
             address TEXT PRIMARY KEY,
             password TEXT NOT NULL,
             display_name TEXT NOT NULL,
             database TEXT NOT NULL
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
             FOREIGN KEY (mailbox, folder) REFERENCES folders(mailbox, name)
         );
         CREATE INDEX IF NOT EXISTS items_by_folder ON items(mailbox, folder, received);",
    )?;
    tx.commit()
}

/// Seeds the lab mailboxes, their folders and a few messages, once.
pub(super) fn seed(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (address, password, display_name, database) in LAB_USERS {
        tx.execute(
            "INSERT OR IGNORE INTO mailboxes (address, password, display_name, database)
             VALUES (?1, ?2, ?3, ?4)",
            params![address, password, display_name, database],
        )?;
        for (name, display) in MAIL_FOLDERS {
            tx.execute(
                "INSERT OR IGNORE INTO folders (mailbox, name, display_name) VALUES (?1, ?2, ?3)",
                params![address, name, display],
            )?;
        }
    }
    let seeded: Option<String> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'seed_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if seeded.is_none() {
        let now = unix_now();
        for (address, _, display_name, _) in LAB_USERS {
            let body = format!(
                "Hello {display_name},\n\nyour mailbox {address} is served by the casarray lab. \
                 Any server of the array can open it."
            );
            insert_item(
                &tx,
                &ItemRow {
                    mailbox: address,
                    folder: "inbox",
                    subject: "Welcome to the casarray lab",
                    body: &body,
                    body_type: BodyType::Text,
                    from_address: "administrator@lab.com",
                    from_name: "Administrator",
                    to: &[address.to_string()],
                    cc: &[],
                    received: now - 3600,
                },
            )?;
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('seed_version', ?1)",
            [SEED_VERSION],
        )?;
    }
    tx.commit()
}
