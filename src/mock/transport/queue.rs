//! A durable message queue on disk: one directory, two files per message
//! (`<id>.eml`, the data; `<id>.json`, the [`Entry`]). The data is moved
//! in first (it was fsynced while spooled), the directory fsynced, then
//! the entry written with the crate's atomic writer: a message is queued
//! exactly when its entry exists, and a crash leaves at most a data file
//! without one (removed when the queue opens).
//!
//! A hub's own queue (messages it must deliver) and each shadow queue
//! (copies it keeps for another hub) are queues of this kind.

use std::io;
use std::path::{Path, PathBuf};

/// One queued message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub id: String,
    /// The reverse path (empty for `<>`).
    pub from: String,
    /// The recipients not yet delivered.
    pub rcpts: Vec<String>,
    /// The message's Message-ID (delivery deduplicates on it).
    pub message_id: String,
    /// When the hub took it, Unix seconds.
    pub created: i64,
    /// The hub that took it from the client (the primary).
    pub primary: String,
    /// The hub that holds its shadow copy, if one does.
    #[serde(default)]
    pub shadow: Option<String>,
    /// When the primary reported it delivered (Unix seconds): a shadow
    /// copy or a Safety Net copy is then kept for `SAFETY_NET_HOLD`, to be
    /// delivered again (deduplicated) if a lossy database failover or the
    /// primary's death calls for it.
    #[serde(default)]
    pub delivered: Option<i64>,
}

/// A queue directory.
#[derive(Debug, Clone)]
pub struct Queue {
    dir: PathBuf,
}

impl Queue {
    /// Opens (creating) the queue at `dir`, removing data files left
    /// without an entry. Blocking.
    pub fn open(dir: &Path) -> io::Result<Queue> {
        std::fs::create_dir_all(dir)?;
        for e in std::fs::read_dir(dir)? {
            let path = e?.path();
            if path.extension().is_some_and(|x| x == "eml") && !path.with_extension("json").exists()
            {
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(Queue {
            dir: dir.to_path_buf(),
        })
    }

    /// The data file of message `id`.
    pub fn data(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.eml"))
    }

    fn entry_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Queues `entry` with the data in `spooled` (moved; same file system).
    /// Blocking; returns once both are on disk.
    pub fn put(&self, entry: &Entry, spooled: &Path) -> io::Result<()> {
        std::fs::rename(spooled, self.data(&entry.id))?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        self.update(entry)
    }

    /// Queues `entry` with a copy of the data at `data` (fsynced).
    /// Blocking.
    pub fn put_copy(&self, entry: &Entry, data: &Path) -> io::Result<()> {
        let tmp = self.dir.join(format!(".{}.eml.tmp", entry.id));
        std::fs::copy(data, &tmp)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        self.put(entry, &tmp)
    }

    /// Rewrites `entry` (fewer recipients, a shadow named). Blocking.
    pub fn update(&self, entry: &Entry) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(entry).map_err(io::Error::other)?;
        crate::atomic_file::write_atomically(&self.entry_path(&entry.id), &json)
    }

    /// Removes message `id` (entry first). Blocking.
    pub fn remove(&self, id: &str) -> io::Result<()> {
        match std::fs::remove_file(self.entry_path(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let _ = std::fs::remove_file(self.data(id));
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// Every queued entry, oldest first (unreadable entries are logged and
    /// skipped). Blocking.
    pub fn list(&self) -> Vec<Entry> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut entries: Vec<Entry> = dir
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| {
                let bytes = std::fs::read(&p).ok()?;
                match serde_json::from_slice(&bytes) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        tracing::warn!(path = %p.display(), error = %e, "unreadable queue entry");
                        None
                    }
                }
            })
            .collect();
        entries.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_list_update_remove() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("s.eml");
        std::fs::write(&spool, b"Subject: x\r\n\r\nhi\r\n").unwrap();
        std::fs::create_dir_all(dir.path().join("q")).unwrap();
        std::fs::write(dir.path().join("q/orphan.eml"), b"x").unwrap();
        let q = Queue::open(&dir.path().join("q")).unwrap();
        assert!(!dir.path().join("q/orphan.eml").exists());
        let mut e = Entry {
            id: "a1".into(),
            from: "alice@lab.com".into(),
            rcpts: vec!["carol@test.com".into()],
            message_id: "<m@x>".into(),
            created: 5,
            primary: "EX1".into(),
            shadow: None,
            delivered: None,
        };
        q.put(&e, &spool).unwrap();
        assert!(!spool.exists());
        assert_eq!(q.list(), vec![e.clone()]);
        e.shadow = Some("EX2".into());
        q.update(&e).unwrap();
        assert_eq!(q.list()[0].shadow.as_deref(), Some("EX2"));
        assert!(std::fs::read(q.data("a1")).unwrap().ends_with(b"hi\r\n"));
        q.remove("a1").unwrap();
        assert!(q.list().is_empty());
        q.remove("a1").unwrap();
    }
}
