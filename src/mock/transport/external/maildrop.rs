//! The external system's mailboxes on disk: `<store>/<local part>/`, one
//! file per message named `<arrival>-<id hash>.eml`, written with the
//! crate's atomic writer (on disk before the `250`). A message whose
//! Message-ID a mailbox already holds is not stored again (a hub's retry
//! or a shadow copy delivered after its primary).

use std::io;
use std::path::{Path, PathBuf};

/// The mailboxes of one domain.
#[derive(Debug, Clone)]
pub struct Maildrops {
    dir: PathBuf,
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub path: PathBuf,
    /// Its unique id (the file name's stem), for UIDL.
    pub uid: String,
    pub size: u64,
}

impl Maildrops {
    /// Opens (creating) the store at `dir`. Blocking.
    pub fn open(dir: &Path) -> io::Result<Maildrops> {
        std::fs::create_dir_all(dir)?;
        Ok(Maildrops {
            dir: dir.to_path_buf(),
        })
    }

    fn mailbox_dir(&self, local: &str) -> PathBuf {
        self.dir.join(local)
    }

    /// Stores `raw` for `local` unless a message with `message_id` is
    /// there; returns whether it was stored. Blocking.
    pub fn store(&self, local: &str, message_id: Option<&str>, raw: &[u8]) -> io::Result<bool> {
        let dir = self.mailbox_dir(local);
        std::fs::create_dir_all(&dir)?;
        let hash = hash_of(message_id.unwrap_or(""), raw, message_id.is_some());
        let suffix = format!("-{hash}.eml");
        if message_id.is_some() {
            for e in std::fs::read_dir(&dir)?.flatten() {
                if e.file_name().to_string_lossy().ends_with(&suffix) {
                    return Ok(false);
                }
            }
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = dir.join(format!("{nanos:024}{suffix}"));
        crate::atomic_file::write_atomically(&path, raw)?;
        Ok(true)
    }

    /// The messages of `local`, oldest first. Blocking.
    pub fn list(&self, local: &str) -> io::Result<Vec<Stored>> {
        let dir = self.mailbox_dir(local);
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(uid) = name.strip_suffix(".eml") else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            out.push(Stored {
                path: e.path(),
                uid: uid.to_string(),
                size: e.metadata()?.len(),
            });
        }
        out.sort_by(|a, b| a.uid.cmp(&b.uid));
        Ok(out)
    }
}

/// 16 hex digits of SHA-256 of the Message-ID (or, without one, of the
/// message, so that nothing is deduplicated by accident).
fn hash_of(message_id: &str, raw: &[u8], by_id: bool) -> String {
    let digest = if by_id {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message_id.trim().as_bytes())
    } else {
        let mut nonce = [0u8; 16];
        let _ = aws_lc_rs::rand::fill(&mut nonce);
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(&nonce);
        ctx.update(raw);
        ctx.finish()
    };
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_once_per_message_id() {
        let dir = tempfile::tempdir().unwrap();
        let m = Maildrops::open(dir.path()).unwrap();
        assert!(m.store("carol", Some("<a@x>"), b"one").unwrap());
        assert!(!m.store("carol", Some("<a@x>"), b"one again").unwrap());
        assert!(m.store("carol", None, b"two").unwrap());
        assert!(m.store("carol", None, b"two").unwrap());
        let list = m.list("carol").unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].size, 3);
        assert!(m.list("dave").unwrap().is_empty());
    }
}
