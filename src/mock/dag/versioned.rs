//! A JSON value shared by the lab's processes through files, changed by
//! compare-and-swap without any lock: the witness lease and the cluster
//! state live in such files.
//!
//! Each version is a file `<name>.<version>` (`witness.json.00000042`)
//! next to `<name>`, never rewritten. To change the value a server reads
//! the latest version v, writes the new value to a temporary file
//! (fsynced), and `link(2)`s it to `<name>.<v+1>`: the link fails when
//! that name exists, so of two servers racing from v only one wins; the
//! other reads again and retries. Then the directory is fsynced, `<name>`
//! is pointed at the new version (a symlink, for people to read; it may
//! lag) and the version 16 below is deleted.
//!
//! Why not a lock: a server can be stopped (SIGSTOP) at any instant, also
//! while it holds a lock, and then nobody else could take over. Here a
//! stopped writer blocks nobody, and when it wakes up its late write
//! cannot win: either the name it links already exists, or (if that name
//! was deleted as an old version) the check that follows finds versions
//! above its own that do not descend from it, and the write counts as
//! failed.

use std::fs;
use std::io::{self, Write as _};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Old versions kept: 16.
const KEEP: u64 = 16;
/// Attempts of one update before giving up: 64.
const ATTEMPTS: u32 = 64;
/// Largest version file read: 1 MiB.
const MAX_FILE: u64 = 1024 * 1024;

static TEMP: AtomicU64 = AtomicU64::new(0);

/// A versioned value at `<dir>/<name>`.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    dir: PathBuf,
    name: String,
    _t: PhantomData<fn() -> T>,
}

/// The outcome of [`Versioned::update`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Updated<R> {
    /// Written as this version; `R` is what the change returned.
    Written(u64, R),
    /// The change decided to write nothing.
    Unchanged(R),
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored<T> {
    version: u64,
    value: T,
}

impl<T: Serialize + DeserializeOwned> Versioned<T> {
    /// The value named by `path` (its versions live next to it).
    pub fn new(path: &Path) -> Versioned<T> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .map_or_else(|| "value".to_string(), |n| n.to_string_lossy().into_owned());
        Versioned {
            dir,
            name,
            _t: PhantomData,
        }
    }

    fn version_path(&self, version: u64) -> PathBuf {
        self.dir.join(format!("{}.{version:08}", self.name))
    }

    /// The version numbers on disk, sorted.
    fn versions(&self) -> io::Result<Vec<u64>> {
        let prefix = format!("{}.", self.name);
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let name = entry?.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                continue;
            };
            if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(v) = rest.parse() {
                    out.push(v);
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn read_version(&self, version: u64) -> io::Result<Option<T>> {
        let path = self.version_path(version);
        let file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if file.metadata()?.len() > MAX_FILE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is too large", path.display()),
            ));
        }
        let bytes = fs::read(&path)?;
        let stored: Stored<T> = serde_json::from_slice(&bytes).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        Ok(Some(stored.value))
    }

    /// The latest version and its value (`(0, None)` before the first
    /// write).
    pub fn read(&self) -> io::Result<(u64, Option<T>)> {
        for _ in 0..ATTEMPTS {
            let Some(&latest) = self.versions()?.last() else {
                return Ok((0, None));
            };
            // It can vanish only if it stopped being the latest: list again.
            if let Some(value) = self.read_version(latest)? {
                return Ok((latest, Some(value)));
            }
        }
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("{}: versions keep changing", self.name),
        ))
    }

    /// Applies `change` to the latest value until its result is written
    /// as the next version; `change` returns the new value (or `None` to
    /// write nothing) and a result. It may run several times (after losing
    /// a race it sees the newer value). Blocking.
    pub fn update<R>(
        &self,
        mut change: impl FnMut(Option<&T>) -> (Option<T>, R),
    ) -> io::Result<Updated<R>> {
        fs::create_dir_all(&self.dir)?;
        for _ in 0..ATTEMPTS {
            let (version, current) = self.read()?;
            let (new, result) = change(current.as_ref());
            let Some(new) = new else {
                return Ok(Updated::Unchanged(result));
            };
            let next = version + 1;
            let tmp = self.dir.join(format!(
                ".{}.{}.{}.tmp",
                self.name,
                std::process::id(),
                TEMP.fetch_add(1, Ordering::Relaxed)
            ));
            let bytes = serde_json::to_vec_pretty(&Stored {
                version: next,
                value: new,
            })
            .map_err(io::Error::other)?;
            let written = (|| {
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&tmp)?;
                f.write_all(&bytes)?;
                f.sync_all()
            })();
            if let Err(e) = written {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
            let linked = fs::hard_link(&tmp, self.version_path(next));
            let _ = fs::remove_file(&tmp);
            match linked {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
            fs::File::open(&self.dir)?.sync_all()?;
            // A late writer may have linked a number below the latest
            // (an old version deleted meanwhile): it did not win unless
            // every version above it is still there, built on it.
            let versions = self.versions()?;
            let latest = versions.last().copied().unwrap_or(next);
            let unbroken = (next..=latest).all(|v| versions.binary_search(&v).is_ok());
            if !unbroken {
                continue;
            }
            self.point_at(next);
            if next > KEEP {
                let _ = fs::remove_file(self.version_path(next - KEEP));
            }
            return Ok(Updated::Written(next, result));
        }
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("{}: too many concurrent changes", self.name),
        ))
    }

    /// Points `<name>` at version `version` (best effort: it is for people
    /// to read).
    fn point_at(&self, version: u64) {
        let link = self.dir.join(&self.name);
        let tmp = self.dir.join(format!(
            ".{}.link.{}.{}",
            self.name,
            std::process::id(),
            TEMP.fetch_add(1, Ordering::Relaxed)
        ));
        let target = format!("{}.{version:08}", self.name);
        if std::os::unix::fs::symlink(&target, &tmp).is_ok() && fs::rename(&tmp, &link).is_err() {
            let _ = fs::remove_file(&tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_advance_and_old_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let v: Versioned<u64> = Versioned::new(&dir.path().join("count.json"));
        assert_eq!(v.read().unwrap(), (0, None));
        for i in 1..=20u64 {
            let out = v
                .update(|cur| (Some(cur.copied().unwrap_or(0) + 1), ()))
                .unwrap();
            assert_eq!(out, Updated::Written(i, ()));
        }
        assert_eq!(v.read().unwrap(), (20, Some(20)));
        assert_eq!(v.update(|_| (None, 7)).unwrap(), Updated::Unchanged(7));
        let versions = v.versions().unwrap();
        assert_eq!(versions.first(), Some(&5), "{versions:?}");
        let shown = fs::read_to_string(dir.path().join("count.json")).unwrap();
        assert!(shown.contains("\"version\": 20"), "{shown}");
    }

    #[test]
    fn racing_writers_lose_no_update() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("count.json");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let v: Versioned<u64> = Versioned::new(&path);
                    for _ in 0..25 {
                        v.update(|cur| (Some(cur.copied().unwrap_or(0) + 1), ()))
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let v: Versioned<u64> = Versioned::new(&path);
        assert_eq!(v.read().unwrap(), (100, Some(100)));
    }

    #[test]
    fn a_late_writer_below_the_latest_does_not_win() {
        let dir = tempfile::tempdir().unwrap();
        let v: Versioned<u64> = Versioned::new(&dir.path().join("x.json"));
        for _ in 0..40 {
            v.update(|cur| (Some(cur.copied().unwrap_or(0) + 1), ()))
                .unwrap();
        }
        // A writer that read version 3 long ago links version 4, long gone.
        let stale = Stored {
            version: 4,
            value: 999u64,
        };
        fs::write(v.version_path(4), serde_json::to_vec(&stale).unwrap()).unwrap();
        let versions = v.versions().unwrap();
        let unbroken = (4..=40).all(|x| versions.binary_search(&x).is_ok());
        assert!(!unbroken, "the check sees the gap");
        assert_eq!(v.read().unwrap(), (40, Some(40)), "the latest wins");
    }
}
