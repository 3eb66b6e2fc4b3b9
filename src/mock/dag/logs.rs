//! Log generations: every change to an active copy is one numbered
//! generation, a file `E00<generation, 8+ hex digits>.log` (as Exchange
//! names them) in the copy's `logs` directory, holding the operations of
//! one transaction as JSON with the generation, the activation epoch it
//! was written in and when. A file is written atomically and fsynced (with
//! its directory) before the change is committed and acknowledged;
//! passive copies copy the same files and replay them.

use std::io;
use std::path::{Path, PathBuf};

use crate::mock::store::Op;

/// One generation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogRecord {
    pub database: String,
    pub generation: u64,
    pub epoch: u64,
    pub written_unix_ms: u64,
    pub ops: Vec<Op>,
}

/// The largest generation file read: 8 MiB.
const MAX_RECORD: u64 = 8 * 1024 * 1024;

/// A copy's log directory.
#[derive(Debug, Clone)]
pub struct LogDir {
    dir: PathBuf,
}

impl LogDir {
    /// Opens (creating) `dir`. Blocking.
    pub fn open(dir: &Path) -> io::Result<LogDir> {
        std::fs::create_dir_all(dir)?;
        Ok(LogDir {
            dir: dir.to_path_buf(),
        })
    }

    /// The file of `generation`.
    pub fn path(&self, generation: u64) -> PathBuf {
        self.dir.join(format!("E00{generation:08X}.log"))
    }

    /// Writes a generation (replacing a file of the same number), fsynced.
    pub fn write(&self, record: &LogRecord) -> io::Result<()> {
        let bytes = serde_json::to_vec(record).map_err(io::Error::other)?;
        crate::atomic_file::write_atomically(&self.path(record.generation), &bytes)
    }

    /// Generation `generation`, if its file is there.
    pub fn read(&self, generation: u64) -> io::Result<Option<LogRecord>> {
        let path = self.path(generation);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        if len > MAX_RECORD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is larger than {MAX_RECORD} bytes", path.display()),
            ));
        }
        let bytes = std::fs::read(&path)?;
        let record: LogRecord = serde_json::from_slice(&bytes).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        if record.generation != generation {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} holds generation {}", path.display(), record.generation),
            ));
        }
        Ok(Some(record))
    }

    /// The generation numbers on disk, sorted (temporary files ignored).
    pub fn generations(&self) -> io::Result<Vec<u64>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(hex) = name
                .strip_prefix("E00")
                .and_then(|rest| rest.strip_suffix(".log"))
            else {
                continue;
            };
            if let Ok(g) = u64::from_str_radix(hex, 16) {
                found.push(g);
            }
        }
        found.sort_unstable();
        Ok(found)
    }

    /// The last generation of the unbroken run that follows `after`
    /// (`after` itself when `after + 1` is missing).
    pub fn contiguous_from(&self, after: u64) -> io::Result<u64> {
        let mut last = after;
        for g in self.generations()? {
            if g == last + 1 {
                last = g;
            } else if g > last + 1 {
                break;
            }
        }
        Ok(last)
    }

    /// Deletes every generation from `first` on; returns how many.
    pub fn remove_from(&self, first: u64) -> io::Result<u64> {
        let mut removed = 0;
        for g in self.generations()?.into_iter().filter(|g| *g >= first) {
            std::fs::remove_file(self.path(g))?;
            removed += 1;
        }
        if removed > 0 {
            std::fs::File::open(&self.dir)?.sync_all()?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(generation: u64, epoch: u64) -> LogRecord {
        LogRecord {
            database: "DB01".into(),
            generation,
            epoch,
            written_unix_ms: 1,
            ops: vec![Op::MarkRead {
                mailbox: "alice@lab.com".into(),
                id: 3,
            }],
        }
    }

    #[test]
    fn write_read_scan_and_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogDir::open(&dir.path().join("logs")).unwrap();
        assert!(logs.path(26).ends_with("E000000001A.log"));
        for g in [1, 2, 3, 5] {
            logs.write(&record(g, 1)).unwrap();
        }
        std::fs::write(
            dir.path().join("logs").join(".E0000000009.log.1.2.tmp"),
            b"x",
        )
        .unwrap();
        assert_eq!(logs.generations().unwrap(), [1, 2, 3, 5]);
        assert_eq!(logs.contiguous_from(0).unwrap(), 3);
        assert_eq!(logs.contiguous_from(3).unwrap(), 3);
        assert_eq!(logs.contiguous_from(4).unwrap(), 5);
        assert_eq!(logs.read(2).unwrap(), Some(record(2, 1)));
        assert_eq!(logs.read(4).unwrap(), None);
        std::fs::copy(logs.path(1), logs.path(7)).unwrap();
        assert!(logs.read(7).is_err(), "a misnamed generation is refused");
        assert_eq!(logs.remove_from(3).unwrap(), 3);
        assert_eq!(logs.generations().unwrap(), [1, 2]);
    }
}
