//! The mailbox store: one SQLite file, `DIR/mailstore.sqlite`, shared by
//! every mock server of a lab, several processes writing at once.
//!
//! WAL journal, `synchronous=FULL` (a message accepted is on disk before the
//! answer), busy timeout 5 s. Each server holds one connection behind a
//! mutex; async callers go through [`Store::run`], which moves the work to
//! tokio's blocking pool.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::users::{Mailbox, LAB_USERS};

/// The store's file name inside `--store DIR`.
pub const STORE_FILE: &str = "mailstore.sqlite";

/// How long a writer waits for another process's lock: 5 s.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often opening retries when another process holds the store: 100
/// times, 100 ms apart (10 s).
const OPEN_RETRIES: u32 = 100;
const OPEN_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Bumped when the seeded content changes.
const SEED_VERSION: &str = "1";

/// The folders every mailbox has: (distinguished id, display name).
pub const MAIL_FOLDERS: &[(&str, &str)] = &[
    ("inbox", "Inbox"),
    ("sentitems", "Sent Items"),
    ("drafts", "Drafts"),
    ("deleteditems", "Deleted Items"),
];

/// What went wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create store directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mail store {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("mail store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("mail store connection lock poisoned")]
    Poisoned,
    #[error("mail store task failed: {0}")]
    Task(String),
}

/// A message body's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    Text,
    Html,
}

impl BodyType {
    /// EWS's spelling: `Text` or `HTML`.
    pub fn as_ews(self) -> &'static str {
        match self {
            BodyType::Text => "Text",
            BodyType::Html => "HTML",
        }
    }

    /// Reads EWS's spelling, case-insensitively; anything else is text.
    pub fn from_ews(s: &str) -> BodyType {
        if s.eq_ignore_ascii_case("html") {
            BodyType::Html
        } else {
            BodyType::Text
        }
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub id: i64,
    /// The owning mailbox's address.
    pub mailbox: String,
    /// The folder's distinguished id (`inbox`, `sentitems`, ...).
    pub folder: String,
    pub subject: String,
    pub body: String,
    pub body_type: BodyType,
    pub from_address: String,
    pub from_name: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// Unix time, seconds.
    pub received: i64,
    pub is_read: bool,
}

/// A message to send or save.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub from: Mailbox,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// Delivered to, never shown.
    pub bcc: Vec<String>,
    pub subject: String,
    pub body: String,
    pub body_type: BodyType,
}

/// The result of sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Delivered to every recipient's inbox; `saved` is the copy's id in the
    /// sender's folder, when one was asked for.
    Delivered { saved: Option<i64> },
    /// Nothing was delivered: these recipients are no mailbox of the store
    /// (or there were no recipients at all: the list is then empty).
    InvalidRecipients(Vec<String>),
}

/// A folder's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FolderCounts {
    pub total: u64,
    pub unread: u64,
}

/// A shared handle on the store's connection.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Creates `dir` if needed, opens `dir/mailstore.sqlite`, creates the
    /// schema and seeds the lab mailboxes (idempotent, safe when several
    /// processes do it at once). Blocking.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(STORE_FILE);
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(open_err)?;
        // Another process creating the store at the same moment can make
        // SQLite answer "busy" without waiting (WAL setup and recovery):
        // retry, boundedly.
        let mut attempt = 0;
        loop {
            let result = configure(&conn)
                .and_then(|()| create_schema(&mut conn))
                .and_then(|()| seed(&mut conn));
            match result {
                Ok(()) => break,
                Err(e) if is_busy(&e) && attempt < OPEN_RETRIES => {
                    attempt += 1;
                    std::thread::sleep(OPEN_RETRY_PAUSE);
                }
                Err(e) => return Err(open_err(e)),
            }
        }
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on tokio's blocking pool.
    pub async fn run<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| StoreError::Poisoned)?;
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode, "mail store is not in WAL mode");
    }
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
    Ok(())
}

fn create_schema(conn: &mut Connection) -> rusqlite::Result<()> {
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
fn seed(conn: &mut Connection) -> rusqlite::Result<()> {
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

/// The current Unix time in seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

struct ItemRow<'a> {
    mailbox: &'a str,
    folder: &'a str,
    subject: &'a str,
    body: &'a str,
    body_type: BodyType,
    from_address: &'a str,
    from_name: &'a str,
    to: &'a [String],
    cc: &'a [String],
    received: i64,
}

fn insert_item(conn: &Connection, row: &ItemRow<'_>) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO items (mailbox, folder, subject, body, body_type, from_address, from_name,
                            to_rcpt, cc_rcpt, received, is_read)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0)",
        params![
            row.mailbox,
            row.folder,
            row.subject,
            row.body,
            row.body_type.as_ews(),
            row.from_address,
            row.from_name,
            row.to.join("\n"),
            row.cc.join("\n"),
            row.received,
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The mailbox for a logon name: a full address, or the local part of one
/// (case-insensitive).
pub fn find_mailbox(conn: &Connection, logon: &str) -> Result<Option<Mailbox>, StoreError> {
    let logon = logon.trim().to_ascii_lowercase();
    Ok(conn
        .query_row(
            "SELECT address, display_name, database FROM mailboxes
             WHERE lower(address) = ?1
                OR (instr(?1, '@') = 0 AND lower(substr(address, 1, instr(address, '@') - 1)) = ?1)
             ORDER BY address LIMIT 1",
            [&logon],
            |r| {
                Ok(Mailbox {
                    address: r.get(0)?,
                    display_name: r.get(1)?,
                    database: r.get(2)?,
                })
            },
        )
        .optional()?)
}

/// Every mailbox's display name, by address.
pub fn display_names(conn: &Connection) -> Result<HashMap<String, String>, StoreError> {
    let mut stmt = conn.prepare("SELECT address, display_name FROM mailboxes")?;
    let names = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<HashMap<_, _>>>()?;
    Ok(names)
}

/// The mailbox, when `password` is its password.
pub fn authenticate(
    conn: &Connection,
    logon: &str,
    password: &str,
) -> Result<Option<Mailbox>, StoreError> {
    let Some((mailbox, stored)) = mailbox_password(conn, logon)? else {
        return Ok(None);
    };
    let same =
        aws_lc_rs::constant_time::verify_slices_are_equal(stored.as_bytes(), password.as_bytes())
            .is_ok();
    Ok(same.then_some(mailbox))
}

/// The mailbox for a logon name and its password, for challenge-response
/// logins (NTLM), which need the secret itself.
pub fn mailbox_password(
    conn: &Connection,
    logon: &str,
) -> Result<Option<(Mailbox, String)>, StoreError> {
    let Some(mailbox) = find_mailbox(conn, logon)? else {
        return Ok(None);
    };
    let stored: String = conn.query_row(
        "SELECT password FROM mailboxes WHERE address = ?1",
        [&mailbox.address],
        |r| r.get(0),
    )?;
    Ok(Some((mailbox, stored)))
}

/// Total and unread items of a folder.
pub fn folder_counts(
    conn: &Connection,
    mailbox: &str,
    folder: &str,
) -> Result<FolderCounts, StoreError> {
    let (total, unread): (i64, i64) = conn.query_row(
        "SELECT count(*), coalesce(sum(is_read = 0), 0) FROM items WHERE mailbox = ?1 AND folder = ?2",
        [mailbox, folder],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(FolderCounts {
        total: u64::try_from(total).unwrap_or(0),
        unread: u64::try_from(unread).unwrap_or(0),
    })
}

const ITEM_COLUMNS: &str = "id, mailbox, folder, subject, body, body_type, from_address, \
                            from_name, to_rcpt, cc_rcpt, received, is_read";

fn item_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Item> {
    let split = |s: String| -> Vec<String> {
        s.split('\n')
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect()
    };
    Ok(Item {
        id: r.get(0)?,
        mailbox: r.get(1)?,
        folder: r.get(2)?,
        subject: r.get(3)?,
        body: r.get(4)?,
        body_type: BodyType::from_ews(&r.get::<_, String>(5)?),
        from_address: r.get(6)?,
        from_name: r.get(7)?,
        to: split(r.get(8)?),
        cc: split(r.get(9)?),
        received: r.get(10)?,
        is_read: r.get::<_, i64>(11)? != 0,
    })
}

/// A folder's items, newest first.
pub fn list_items(conn: &Connection, mailbox: &str, folder: &str) -> Result<Vec<Item>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ITEM_COLUMNS} FROM items WHERE mailbox = ?1 AND folder = ?2
         ORDER BY received DESC, id DESC"
    ))?;
    let items = stmt
        .query_map([mailbox, folder], item_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(items)
}

/// One item of the mailbox.
pub fn get_item(conn: &Connection, mailbox: &str, id: i64) -> Result<Option<Item>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {ITEM_COLUMNS} FROM items WHERE mailbox = ?1 AND id = ?2"),
            params![mailbox, id],
            item_from_row,
        )
        .optional()?)
}

/// Marks an item read.
pub fn mark_read(conn: &Connection, mailbox: &str, id: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE items SET is_read = 1 WHERE mailbox = ?1 AND id = ?2",
        params![mailbox, id],
    )?;
    Ok(())
}

/// Sends `msg`: one copy in every recipient's inbox and, with
/// `save_copy_in`, one in that folder of the sender's mailbox; all in one
/// transaction, durable when this returns.
pub fn send(
    conn: &mut Connection,
    msg: &NewMessage,
    save_copy_in: Option<&str>,
) -> Result<Delivery, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut recipients: Vec<String> = Vec::new();
    let mut invalid = Vec::new();
    for address in msg.to.iter().chain(&msg.cc).chain(&msg.bcc) {
        match find_mailbox(&tx, address)? {
            Some(mb) if address.contains('@') => {
                if !recipients.contains(&mb.address) {
                    recipients.push(mb.address);
                }
            }
            _ => invalid.push(address.clone()),
        }
    }
    if !invalid.is_empty() || recipients.is_empty() {
        return Ok(Delivery::InvalidRecipients(invalid));
    }
    let now = unix_now();
    let row = |mailbox: &'_ str, folder: &'_ str| -> rusqlite::Result<i64> {
        insert_item(
            &tx,
            &ItemRow {
                mailbox,
                folder,
                subject: &msg.subject,
                body: &msg.body,
                body_type: msg.body_type,
                from_address: &msg.from.address,
                from_name: &msg.from.display_name,
                to: &msg.to,
                cc: &msg.cc,
                received: now,
            },
        )
    };
    for mailbox in &recipients {
        row(mailbox, "inbox")?;
    }
    let saved = match save_copy_in {
        Some(folder) => {
            let id = row(&msg.from.address, folder)?;
            mark_read(&tx, &msg.from.address, id)?;
            Some(id)
        }
        None => None,
    };
    tx.commit()?;
    Ok(Delivery::Delivered { saved })
}

/// Saves `msg` unsent (a draft) in `folder` of the sender's mailbox.
pub fn save(conn: &mut Connection, msg: &NewMessage, folder: &str) -> Result<i64, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let id = insert_item(
        &tx,
        &ItemRow {
            mailbox: &msg.from.address,
            folder,
            subject: &msg.subject,
            body: &msg.body,
            body_type: msg.body_type,
            from_address: &msg.from.address,
            from_name: &msg.from.display_name,
            to: &msg.to,
            cc: &msg.cc,
            received: unix_now(),
        },
    )?;
    mark_read(&tx, &msg.from.address, id)?;
    tx.commit()?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice(conn: &Connection) -> Mailbox {
        find_mailbox(conn, "alice@lab.com").unwrap().unwrap()
    }

    #[test]
    fn open_seeds_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let again = Store::open(dir.path()).unwrap();
        drop(again);
        let conn = store.conn.lock().unwrap();
        let inbox = list_items(&conn, "alice@lab.com", "inbox").unwrap();
        assert_eq!(inbox.len(), 1, "seeded exactly once");
        assert_eq!(inbox[0].subject, "Welcome to the casarray lab");
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
    }

    #[test]
    fn logon_names_and_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let conn = store.conn.lock().unwrap();
        assert_eq!(alice(&conn).database, "DB01");
        assert_eq!(
            find_mailbox(&conn, "BOB").unwrap().unwrap().address,
            "bob@lab.com"
        );
        assert!(find_mailbox(&conn, "carol@lab.com").unwrap().is_none());
        assert_eq!(display_names(&conn).unwrap()["bob@lab.com"], "Bob Brown");
        assert!(authenticate(&conn, "alice", "Alice!lab1")
            .unwrap()
            .is_some());
        assert!(authenticate(&conn, "alice", "wrong").unwrap().is_none());
        assert!(authenticate(&conn, "nobody", "Alice!lab1")
            .unwrap()
            .is_none());
    }

    #[test]
    fn send_delivers_and_saves_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut conn = store.conn.lock().unwrap();
        let msg = NewMessage {
            from: alice(&conn),
            to: vec!["bob@lab.com".into()],
            cc: vec!["alice@lab.com".into()],
            bcc: vec!["bob@lab.com".into()],
            subject: "Hi".into(),
            body: "<b>x</b>".into(),
            body_type: BodyType::Html,
        };
        let out = send(&mut conn, &msg, Some("sentitems")).unwrap();
        let Delivery::Delivered { saved: Some(saved) } = out else {
            panic!("{out:?}")
        };
        let bob = list_items(&conn, "bob@lab.com", "inbox").unwrap();
        assert_eq!(bob.len(), 2, "one copy although also in Bcc");
        assert_eq!(bob[0].subject, "Hi");
        assert_eq!(bob[0].cc, vec!["alice@lab.com".to_string()]);
        assert_eq!(bob[0].body_type, BodyType::Html);
        assert_eq!(
            folder_counts(&conn, "alice@lab.com", "inbox")
                .unwrap()
                .unread,
            2
        );
        let copy = get_item(&conn, "alice@lab.com", saved).unwrap().unwrap();
        assert_eq!(copy.folder, "sentitems");
        assert!(copy.is_read);
        assert!(get_item(&conn, "bob@lab.com", saved).unwrap().is_none());

        let bad = NewMessage {
            to: vec!["nobody@elsewhere.example".into()],
            ..msg.clone()
        };
        assert_eq!(
            send(&mut conn, &bad, None).unwrap(),
            Delivery::InvalidRecipients(vec!["nobody@elsewhere.example".into()])
        );
        let none = NewMessage {
            to: vec![],
            cc: vec![],
            bcc: vec![],
            ..msg.clone()
        };
        assert_eq!(
            send(&mut conn, &none, None).unwrap(),
            Delivery::InvalidRecipients(vec![])
        );
        let draft = save(&mut conn, &msg, "drafts").unwrap();
        assert_eq!(
            get_item(&conn, "alice@lab.com", draft)
                .unwrap()
                .unwrap()
                .folder,
            "drafts"
        );
    }

    #[test]
    fn concurrent_openers_and_writers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let threads: Vec<_> = (0..4)
            .map(|n| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let store = Store::open(&path).unwrap();
                    let mut conn = store.conn.lock().unwrap();
                    let from = find_mailbox(&conn, "bob@lab.com").unwrap().unwrap();
                    for i in 0..10 {
                        let msg = NewMessage {
                            from: from.clone(),
                            to: vec!["alice@lab.com".into()],
                            cc: vec![],
                            bcc: vec![],
                            subject: format!("t{n}-{i}"),
                            body: String::new(),
                            body_type: BodyType::Text,
                        };
                        send(&mut conn, &msg, None).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let store = Store::open(&path).unwrap();
        let conn = store.conn.lock().unwrap();
        assert_eq!(
            list_items(&conn, "alice@lab.com", "inbox").unwrap().len(),
            41
        );
    }
}
