//! Watching certificate and config files for changes.
//!
//! The parent directories are watched, not the files: replacing a file by an
//! atomic rename (how editors, `cp` to a temp name plus `mv`, and ACME
//! clients write) swaps the inode, which a watch on the file itself misses.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::error::TlsError;

/// Quiet time after the last change before the signal is sent (200 ms).
const DEBOUNCE: Duration = Duration::from_millis(200);
/// A signal is sent at the latest after this many debounce periods of
/// continuous changes (2 s in all).
const MAX_DEBOUNCE_ROUNDS: u32 = 10;

/// Keeps a watch alive; dropping it stops watching.
pub struct FileWatcher {
    _watcher: notify::RecommendedWatcher,
    directories: Vec<PathBuf>,
}

impl fmt::Debug for FileWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileWatcher")
            .field("directories", &self.directories)
            .finish()
    }
}

/// Watches the parent directories of `paths` and sends `()` on `tx` when a
/// change touches one of those files: written, created, renamed onto or
/// away, removed (not merely read, nor a permission or time stamp change).
///
/// Changes are debounced (200 ms of quiet, 2 s at most) and coalesced:
/// `try_send`, so a signal still queued covers later changes too. Relative
/// paths are taken from the current directory.
pub fn watch_files(paths: Vec<PathBuf>, tx: mpsc::Sender<()>) -> Result<FileWatcher, TlsError> {
    let targets = Targets::new(&paths)?;
    let directories: Vec<PathBuf> = targets.by_dir.keys().cloned().collect();
    let (changed_tx, changed_rx) = std_mpsc::channel::<()>();

    let mut watcher = notify::recommended_watcher(move |result: notify::Result<Event>| {
        match result {
            Ok(event) if targets.touched_by(&event) => {
                // The debounce thread is gone only when the watch is dropped.
                let _ = changed_tx.send(());
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "file watch error"),
        }
    })
    .map_err(|e| watch_error(paths.first().map(PathBuf::as_path), e))?;
    for dir in &directories {
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|e| watch_error(Some(dir), e))?;
    }

    std::thread::Builder::new()
        .name("casarray-file-watch".into())
        .spawn(move || debounce(&changed_rx, &tx))
        .map_err(|e| TlsError::Watch {
            path: directories.first().cloned().unwrap_or_default(),
            reason: format!("cannot start the watch thread: {e}"),
        })?;

    Ok(FileWatcher {
        _watcher: watcher,
        directories,
    })
}

fn watch_error(path: Option<&Path>, error: notify::Error) -> TlsError {
    TlsError::Watch {
        path: path.map(Path::to_path_buf).unwrap_or_default(),
        reason: error.to_string(),
    }
}

/// Turns bursts of change notices into single signals. Returns when the
/// watcher is dropped (its sender with it) or the receiver of `tx` is gone.
///
/// A change still being debounced when the watcher is dropped is signalled
/// anyway: the caller drops a watch when it replaces it after a reload, and
/// a change made while that reload read the files would otherwise be lost.
fn debounce(changed: &std_mpsc::Receiver<()>, tx: &mpsc::Sender<()>) {
    while changed.recv().is_ok() {
        for _ in 0..MAX_DEBOUNCE_ROUNDS {
            match changed.recv_timeout(DEBOUNCE) {
                Ok(()) => continue,
                Err(std_mpsc::RecvTimeoutError::Timeout) => break,
                Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = tx.try_send(());
                    return;
                }
            }
        }
        if let Err(mpsc::error::TrySendError::Closed(())) = tx.try_send(()) {
            return;
        }
    }
}

/// The watched file names, by absolute parent directory.
#[derive(Debug)]
struct Targets {
    by_dir: HashMap<PathBuf, HashSet<OsString>>,
}

impl Targets {
    fn new(paths: &[PathBuf]) -> Result<Self, TlsError> {
        let mut by_dir: HashMap<PathBuf, HashSet<OsString>> = HashMap::new();
        for path in paths {
            let absolute = std::path::absolute(path).map_err(|e| TlsError::Watch {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let (Some(dir), Some(name)) = (absolute.parent(), absolute.file_name()) else {
                return Err(TlsError::Watch {
                    path: path.clone(),
                    reason: "not a file path".into(),
                });
            };
            by_dir
                .entry(dir.to_path_buf())
                .or_default()
                .insert(name.to_os_string());
        }
        Ok(Self { by_dir })
    }

    /// Whether `event` changes one of the watched files. A lost-events
    /// notice counts as a change.
    fn touched_by(&self, event: &Event) -> bool {
        if event.need_rescan() {
            return true;
        }
        let changes = match event.kind {
            EventKind::Create(_) | EventKind::Remove(_) | EventKind::Any => true,
            EventKind::Modify(ModifyKind::Metadata(_)) => false,
            EventKind::Modify(_) => true,
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            EventKind::Access(_) | EventKind::Other => false,
        };
        changes && event.paths.iter().any(|path| self.contains(path))
    }

    fn contains(&self, path: &Path) -> bool {
        match (path.parent(), path.file_name()) {
            (Some(dir), Some(name)) => self
                .by_dir
                .get(dir)
                .is_some_and(|names| names.contains(name)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use notify::event::{CreateKind, DataChange, MetadataKind, RenameMode};

    use super::*;

    fn event(kind: EventKind, path: &Path) -> Event {
        Event::new(kind).add_path(path.to_path_buf())
    }

    #[test]
    fn only_changes_to_watched_names_count() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("mail.crt");
        let targets = Targets::new(std::slice::from_ref(&cert)).unwrap();
        let other = dir.path().join("other.crt");
        let elsewhere = dir.path().join("sub").join("mail.crt");

        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(targets.touched_by(&event(write, &cert)));
        assert!(!targets.touched_by(&event(write, &other)));
        assert!(!targets.touched_by(&event(write, &elsewhere)));
        let renamed_onto = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert!(targets.touched_by(&event(renamed_onto, &cert)));
        assert!(targets.touched_by(&event(EventKind::Create(CreateKind::File), &cert)));
        let closed_after_write = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert!(targets.touched_by(&event(closed_after_write, &cert)));
    }

    #[test]
    fn reading_or_chmod_is_no_change() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("mail.crt");
        let targets = Targets::new(std::slice::from_ref(&cert)).unwrap();
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Permissions)),
        ] {
            assert!(!targets.touched_by(&event(kind, &cert)), "{kind:?}");
        }
    }

    #[test]
    fn a_change_pending_when_the_watch_is_dropped_is_still_signalled() {
        let (changed_tx, changed_rx) = std_mpsc::channel();
        let (tx, mut rx) = mpsc::channel(1);
        changed_tx.send(()).unwrap();
        drop(changed_tx);
        debounce(&changed_rx, &tx);
        assert_eq!(rx.try_recv(), Ok(()));
    }

    async fn next_signal(rx: &mut mpsc::Receiver<()>) -> Option<()> {
        tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("no signal within 20 s")
    }

    #[tokio::test]
    async fn sees_atomic_replacement_and_in_place_writes() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("mail.crt");
        let key = dir.path().join("mail.key");
        std::fs::write(&cert, "old").unwrap();
        std::fs::write(&key, "old").unwrap();
        let (tx, mut rx) = mpsc::channel(1);
        let watcher = watch_files(vec![cert.clone(), key.clone()], tx).unwrap();
        assert!(format!("{watcher:?}").contains("directories"));

        let staged = dir.path().join(".mail.crt.tmp");
        std::fs::write(&staged, "new").unwrap();
        std::fs::rename(&staged, &cert).unwrap();
        assert_eq!(next_signal(&mut rx).await, Some(()));

        std::fs::write(&key, "new").unwrap();
        assert_eq!(next_signal(&mut rx).await, Some(()));
    }

    #[tokio::test]
    async fn dropping_the_watcher_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("mail.crt");
        std::fs::write(&cert, "old").unwrap();
        let (tx, mut rx) = mpsc::channel(1);
        let watcher = watch_files(vec![cert], tx).unwrap();
        drop(watcher);
        // The debounce thread ends and drops the only sender.
        assert_eq!(next_signal(&mut rx).await, None);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent").join("mail.crt");
        let (tx, _rx) = mpsc::channel(1);
        let err = watch_files(vec![missing], tx).unwrap_err();
        assert!(err.to_string().contains("absent: cannot watch"), "{err}");
    }
}
