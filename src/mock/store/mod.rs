//! The mailbox store: one SQLite file, `DIR/mailstore.sqlite`, shared by
//! every mock server of a lab, several processes writing at once.
//!
//! WAL journal, `synchronous=FULL` (a message accepted is on disk before the
//! answer), busy timeout 5 s. Each server holds one connection behind a
//! mutex; async callers go through [`Store::run`], which moves the work to
//! tokio's blocking pool.

mod items;
mod mailboxes;
mod schema;
mod types;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

pub use items::{folder_counts, get_item, list_items, mark_read, save, send};
pub use mailboxes::{authenticate, display_names, find_mailbox, mailbox_password};
pub use types::{BodyType, Delivery, FolderCounts, Item, NewMessage, MAIL_FOLDERS};

/// The store's file name inside `--store DIR`.
pub const STORE_FILE: &str = "mailstore.sqlite";

/// How long a writer waits for another process's lock: 5 s.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often opening retries when another process holds the store: 100
/// times, 100 ms apart (10 s).
const OPEN_RETRIES: u32 = 100;
const OPEN_RETRY_PAUSE: Duration = Duration::from_millis(100);

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
            let result = schema::configure(&conn, BUSY_TIMEOUT)
                .and_then(|()| schema::create_schema(&mut conn))
                .and_then(|()| schema::seed(&mut conn));
            match result {
                Ok(()) => break,
                Err(e) if schema::is_busy(&e) && attempt < OPEN_RETRIES => {
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

#[cfg(test)]
mod tests {
    use super::*;

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
