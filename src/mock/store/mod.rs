//! The mail store: one SQLite file per mailbox database copy,
//! `DIR/<DB>/<DB>.sqlite` (`DIR` is `--store`), holding that database's
//! mailboxes, folders and items.
//!
//! Without a DAG, every server of a lab opens the same files (several
//! processes writing at once). In a DAG each server keeps its own copy of
//! each database it hosts, and every change goes through a [`Batch`]
//! whose operations the DAG writes to its log.
//!
//! WAL journal, `synchronous=FULL` (a message accepted is on disk before the
//! answer), busy timeout 5 s. Each copy is one connection behind a mutex;
//! async callers go through [`Store::run`], which moves the work to tokio's
//! blocking pool.

pub mod batch;
mod items;
pub mod schema;
mod types;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;

pub use batch::{Batch, Op};
pub use items::{deliver, folder_counts, get_item, list_items, mark_read, save, welcome};
pub use schema::Position;
pub use types::{BodyType, FolderCounts, Item, NewMessage, MAIL_FOLDERS};

/// The file of the store before databases had their own files (and
/// copies): a directory holding it is refused.
pub const LEGACY_STORE_FILE: &str = "mailstore.sqlite";

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
    #[error("mail store {path} holds {found}, not {expected}")]
    WrongDatabase {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error(
        "{0} holds a mail store of an older casarray (one shared {LEGACY_STORE_FILE}); \
         this version keeps one file per database copy: remove it or pass another --store"
    )]
    Legacy(PathBuf),
    #[error("mail store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("mail store log: {0}")]
    Log(#[from] std::io::Error),
    /// A DAG copy may not write now (not the mounted active copy, or no
    /// quorum); the reason says which.
    #[error("{0}")]
    Fenced(String),
    #[error("mail store connection lock poisoned")]
    Poisoned,
    #[error("mail store task failed: {0}")]
    Task(String),
}

/// The file of database `database` under the store directory `dir`:
/// `dir/<database>/<database>.sqlite`.
pub fn database_file(dir: &Path, database: &str) -> PathBuf {
    dir.join(database).join(format!("{database}.sqlite"))
}

/// Refuses a store directory of the single-file layout.
pub fn refuse_legacy(dir: &Path) -> Result<(), StoreError> {
    if dir.join(LEGACY_STORE_FILE).exists() {
        return Err(StoreError::Legacy(dir.to_path_buf()));
    }
    Ok(())
}

/// A shared handle on one database copy's connection.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    database: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

/// Opens `path` with the settings and the schema (retrying, boundedly,
/// while another process holds the file).
fn open_configured(path: &Path, database: &str) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut conn = Connection::open(path).map_err(open_err)?;
    // Another process creating the store at the same moment can make
    // SQLite answer "busy" without waiting (WAL setup and recovery).
    let mut attempt = 0;
    loop {
        let result = schema::configure(&conn, BUSY_TIMEOUT)
            .and_then(|()| schema::create(&mut conn, database));
        match result {
            Ok(()) => break,
            Err(e) if schema::is_busy(&e) && attempt < OPEN_RETRIES => {
                attempt += 1;
                std::thread::sleep(OPEN_RETRY_PAUSE);
            }
            Err(e) => return Err(open_err(e)),
        }
    }
    let found = schema::meta(&conn, "database")
        .map_err(open_err)?
        .unwrap_or_default();
    if !found.eq_ignore_ascii_case(database) {
        return Err(StoreError::WrongDatabase {
            path: path.to_path_buf(),
            found,
            expected: database.to_string(),
        });
    }
    Ok(conn)
}

impl Store {
    /// Creates the directory if needed, opens the copy of `database` at
    /// `path`, creates the schema and the database's mailboxes and folders
    /// (idempotent, safe when several processes do it at once). Blocking.
    pub fn open(path: &Path, database: &str) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = open_configured(path, database)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_path_buf(),
            database: database.to_string(),
        })
    }

    /// Opens database `database` under a store directory shared by several
    /// servers (no DAG) and seeds its welcome messages once. Blocking.
    pub fn open_shared(dir: &Path, database: &str) -> Result<Store, StoreError> {
        refuse_legacy(dir)?;
        let store = Store::open(&database_file(dir, database), database)?;
        {
            let mut conn = store.lock()?;
            batch::write(
                &mut conn,
                |b| {
                    if schema::meta(b.conn(), "welcomed")?.is_none() {
                        schema::set_meta(b.conn(), "welcomed", "1")?;
                        welcome(b, database, crate::mock::format::clock::unix_now())?;
                    }
                    Ok(())
                },
                |_, _| Ok(()),
            )?;
        }
        Ok(store)
    }

    /// The database this is a copy of.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The connection, for blocking callers.
    pub fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
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

    /// The copy's replication [`Position`].
    pub fn position(&self) -> Result<Position, StoreError> {
        Ok(schema::position(&*self.lock()?)?)
    }

    /// The position this copy was seeded at (no log generation of it
    /// exists at or before it); zero for a copy that started empty.
    pub fn base(&self) -> Result<Position, StoreError> {
        let conn = self.lock()?;
        let read = |key| -> Result<u64, StoreError> {
            Ok(schema::meta(&conn, key)?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0))
        };
        Ok(Position {
            generation: read("base_generation")?,
            epoch: read("base_epoch")?,
        })
    }

    /// Records the position this copy was seeded at.
    pub fn set_base(&self, base: Position) -> Result<(), StoreError> {
        let conn = self.lock()?;
        schema::set_meta(&conn, "base_generation", &base.generation.to_string())?;
        schema::set_meta(&conn, "base_epoch", &base.epoch.to_string())?;
        Ok(())
    }

    /// Writes a consistent copy of the database to `file` (which must not
    /// exist): what seeds a new copy. Blocking.
    pub fn snapshot_into(&self, file: &Path) -> Result<Position, StoreError> {
        let conn = self.lock()?;
        let position = schema::position(&conn)?;
        conn.execute("VACUUM INTO ?1", [file.to_string_lossy()])?;
        Ok(position)
    }

    /// Replaces this copy's file with `file` (a snapshot from
    /// [`Store::snapshot_into`], fsynced by the caller) and reopens it.
    /// Blocking.
    pub fn replace_with(&self, file: &Path) -> Result<Position, StoreError> {
        let mut conn = self.lock()?;
        // Close the file (checkpointing its WAL) before it is replaced.
        *conn = Connection::open_in_memory()?;
        for suffix in ["-wal", "-shm"] {
            let mut side = self.path.clone().into_os_string();
            side.push(suffix);
            match std::fs::remove_file(&side) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        std::fs::rename(file, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        *conn = open_configured(&self.path, &self.database)?;
        Ok(schema::position(&conn)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_open_seeds_once_per_database() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_shared(dir.path(), "DB01").unwrap();
        let again = Store::open_shared(dir.path(), "DB01").unwrap();
        drop(again);
        let conn = store.lock().unwrap();
        let inbox = list_items(&conn, "alice@lab.com", "inbox").unwrap();
        assert_eq!(inbox.len(), 1, "seeded exactly once");
        assert_eq!(inbox[0].subject, "Welcome to the casarray lab");
        assert!(
            list_items(&conn, "bob@lab.com", "inbox")
                .unwrap()
                .is_empty(),
            "bob lives in DB02"
        );
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
        assert!(database_file(dir.path(), "DB01").exists());
    }

    #[test]
    fn refuses_other_databases_and_the_old_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sqlite");
        Store::open(&path, "DB01").unwrap();
        assert!(matches!(
            Store::open(&path, "DB02"),
            Err(StoreError::WrongDatabase { .. })
        ));
        std::fs::write(dir.path().join(LEGACY_STORE_FILE), b"").unwrap();
        let err = Store::open_shared(dir.path(), "DB01").unwrap_err();
        assert!(err.to_string().contains("older casarray"), "{err}");
    }

    #[test]
    fn snapshot_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open_shared(&dir.path().join("a"), "DB02").unwrap();
        let b = Store::open(&dir.path().join("b.sqlite"), "DB02").unwrap();
        let snap = dir.path().join("snap.sqlite");
        a.snapshot_into(&snap).unwrap();
        b.replace_with(&snap).unwrap();
        let conn = b.lock().unwrap();
        assert_eq!(list_items(&conn, "bob@lab.com", "inbox").unwrap().len(), 1);
        assert!(!snap.exists());
    }

    #[test]
    fn concurrent_openers_and_writers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let threads: Vec<_> = (0..4)
            .map(|n| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let store = Store::open_shared(&path, "DB01").unwrap();
                    let mut conn = store.lock().unwrap();
                    let from = crate::mock::directory::lab()
                        .find("bob@lab.com")
                        .unwrap()
                        .clone();
                    for i in 0..10 {
                        let msg = NewMessage {
                            from: from.clone(),
                            to: vec!["alice@lab.com".into()],
                            cc: vec![],
                            bcc: vec![],
                            subject: format!("t{n}-{i}"),
                            body: String::new(),
                            body_type: BodyType::Text,
                            message_id: None,
                            headers: String::new(),
                        };
                        batch::write(
                            &mut conn,
                            |b| deliver(b, &msg, &["alice@lab.com".to_string()], 1),
                            |_, _| Ok(()),
                        )
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let store = Store::open_shared(&path, "DB01").unwrap();
        let conn = store.lock().unwrap();
        assert_eq!(
            list_items(&conn, "alice@lab.com", "inbox").unwrap().len(),
            41
        );
    }
}
