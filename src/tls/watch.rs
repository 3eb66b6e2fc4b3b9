//! Watching certificate and config files for changes.
//!
//! The parent directories are watched, not the files: replacing a file by an
//! atomic rename (how editors, `cp` to a temp name plus `mv`, and ACME
//! clients write) swaps the inode, which a watch on the file itself misses.
//!
//! A path that goes through symlinks is watched through to what it reads:
//! Kubernetes mounts Secrets and ConfigMaps as `tls.crt -> ..data/tls.crt`,
//! `..data -> ..2026_11_24_10_00_00.123456789`, and updates them by renaming
//! a new `..data` over the old one, an event that names neither `tls.crt`
//! nor anything in the directory the file really lives in. So every
//! directory entry the resolution passes through that can change what the
//! path reads (each symlink, where each one leads, the file itself) is
//! watched in its own directory.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::path::{Component, Path, PathBuf};
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
/// Symlinks followed while resolving one watched path, Linux's own limit:
/// a loop stops there instead of running forever.
const MAX_SYMLINK_HOPS: u32 = 40;

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
/// A path that goes through symlinks is also watched at every hop (see the
/// module doc), so swapping a link it goes through counts as a change.
///
/// Changes are debounced (200 ms of quiet, 2 s at most) and coalesced:
/// `try_send`, so a signal still queued covers later changes too. Relative
/// paths are taken from the current directory.
///
/// Links are resolved here, once: after a swap the caller builds a new
/// watch so that it follows the links to their new targets (the swap itself
/// is seen either way, the links being watched). A hop's directory that
/// cannot be watched (a dangling link) is skipped; it is an error only when
/// none of a path's directories can be watched.
pub fn watch_files(paths: Vec<PathBuf>, tx: mpsc::Sender<()>) -> Result<FileWatcher, TlsError> {
    let mut targets = Targets::new(&paths)?;
    let dirs_by_path = std::mem::take(&mut targets.dirs_by_path);
    let mut wanted: Vec<PathBuf> = targets.by_dir.keys().cloned().collect();
    wanted.sort();
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
    let mut directories = Vec::new();
    let mut failed = HashMap::new();
    for dir in wanted {
        match watcher.watch(&dir, RecursiveMode::NonRecursive) {
            Ok(()) => directories.push(dir),
            Err(e) => {
                failed.insert(dir, e);
            }
        }
    }
    // A path none of whose directories is watched would never be seen to
    // change: that is the caller's to report.
    for dirs in &dirs_by_path {
        if dirs.iter().any(|dir| directories.contains(dir)) {
            continue;
        }
        if let Some((dir, error)) = dirs.first().and_then(|dir| failed.remove_entry(dir)) {
            return Err(watch_error(Some(&dir), error));
        }
    }
    for (dir, error) in &failed {
        tracing::debug!(dir = %dir.display(), %error, "not watching a symlink's directory");
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

/// The watched directory entries, by directory; every directory is
/// absolute and free of symlinks, as are the paths in the events of a watch
/// on it.
#[derive(Debug)]
struct Targets {
    by_dir: HashMap<PathBuf, HashSet<OsString>>,
    /// For each watched path, the directories its entries are in, in the
    /// order its resolution meets them.
    dirs_by_path: Vec<Vec<PathBuf>>,
}

impl Targets {
    fn new(paths: &[PathBuf]) -> Result<Self, TlsError> {
        let mut by_dir: HashMap<PathBuf, HashSet<OsString>> = HashMap::new();
        let mut dirs_by_path = Vec::new();
        for path in paths {
            let absolute = std::path::absolute(path).map_err(|e| TlsError::Watch {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            if absolute.file_name().is_none() {
                return Err(TlsError::Watch {
                    path: path.clone(),
                    reason: "not a file path".into(),
                });
            }
            let mut dirs: Vec<PathBuf> = Vec::new();
            for entry in Resolution::of(&absolute) {
                let (Some(dir), Some(name)) = (entry.parent(), entry.file_name()) else {
                    // `/` itself, where a link to the root leads.
                    continue;
                };
                if !dirs.iter().any(|d| d == dir) {
                    dirs.push(dir.to_path_buf());
                }
                by_dir
                    .entry(dir.to_path_buf())
                    .or_default()
                    .insert(name.to_os_string());
            }
            dirs_by_path.push(dirs);
        }
        Ok(Self {
            by_dir,
            dirs_by_path,
        })
    }

    /// Whether `event` changes one of the watched files, or one of the links
    /// or directories they are reached through. A lost-events notice counts
    /// as a change.
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

/// Resolves a path as opening it would, one component at a time, noting
/// the directory entries whose change changes what it reads: each symlink
/// passed (its swap repoints the path), the entry each one leads to (its
/// replacement or removal does too) and the file reached. Real directories
/// on the way are not noted: the file's own directory is watched anyway, and
/// the ancestors above it are not where files get swapped.
struct Resolution {
    entries: Vec<PathBuf>,
    hops: u32,
}

impl Resolution {
    /// The noted entries for `absolute`, the entry it names first, the file
    /// it leads to last. Best effort: a component that cannot be read (it is
    /// missing, or a link loop ran out of hops) is kept as written.
    fn of(absolute: &Path) -> Vec<PathBuf> {
        let mut resolution = Self {
            entries: Vec::new(),
            hops: 0,
        };
        let file = resolution.resolve(absolute);
        resolution.entries.push(file);
        resolution.entries
    }

    /// `path` with every symlink in it replaced by its target. `..` after a
    /// resolved component goes up from where that component really is, as
    /// the kernel does.
    fn resolve(&mut self, path: &Path) -> PathBuf {
        let mut resolved = PathBuf::new();
        for component in path.components() {
            match component {
                Component::Prefix(_) | Component::RootDir => resolved.push(component),
                Component::CurDir => {}
                Component::ParentDir => {
                    resolved.pop();
                }
                Component::Normal(name) => resolved = self.follow(resolved.join(name)),
            }
        }
        resolved
    }

    /// Where `entry` (whose directory is resolved) leads: itself, unless it
    /// is a symlink.
    fn follow(&mut self, entry: PathBuf) -> PathBuf {
        let is_link = std::fs::symlink_metadata(&entry).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link || self.hops >= MAX_SYMLINK_HOPS {
            return entry;
        }
        let Ok(target) = std::fs::read_link(&entry) else {
            return entry;
        };
        self.hops += 1;
        // A relative target is taken from the link's directory; `join` with
        // an absolute one is that one.
        let from = entry.parent().map(Path::to_path_buf).unwrap_or_default();
        self.entries.push(entry);
        let landed = self.resolve(&from.join(target));
        self.entries.push(landed.clone());
        landed
    }
}

#[cfg(test)]
mod tests {
    use notify::event::{CreateKind, DataChange, MetadataKind, RemoveKind, RenameMode};

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

    /// A temp dir by its real path, as the events of a watch name it.
    fn real_tempdir() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        (dir, real)
    }

    /// What Kubernetes' atomic writer leaves in a mounted volume: the files
    /// in a timestamped directory, `..data` pointing at it, and one link
    /// per file (or top-level directory) going through `..data`.
    fn kubernetes_volume(root: &Path, files: &[&str]) {
        let stamped = root.join("..2026_11_24_10_00_00.1");
        for file in files {
            let path = stamped.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "v1").unwrap();
        }
        std::os::unix::fs::symlink("..2026_11_24_10_00_00.1", root.join("..data")).unwrap();
        let mut top: Vec<&str> = files.iter().map(|f| f.split('/').next().unwrap()).collect();
        top.dedup();
        for name in top {
            std::os::unix::fs::symlink(Path::new("..data").join(name), root.join(name)).unwrap();
        }
    }

    #[test]
    fn a_swap_of_data_counts_and_unrelated_entries_do_not() {
        let (_dir, root) = real_tempdir();
        kubernetes_volume(&root, &["mail.crt", "mail.key"]);
        let targets = Targets::new(&[root.join("mail.crt")]).unwrap();
        let stamped = root.join("..2026_11_24_10_00_00.1");

        let renamed_onto = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        let created = EventKind::Create(CreateKind::Any);
        let removed = EventKind::Remove(RemoveKind::Any);
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        // The swap, the old directory going away, the link itself replaced,
        // the file written where it really is.
        assert!(targets.touched_by(&event(renamed_onto, &root.join("..data"))));
        assert!(targets.touched_by(&event(removed, &stamped)));
        assert!(targets.touched_by(&event(renamed_onto, &root.join("mail.crt"))));
        assert!(targets.touched_by(&event(write, &stamped.join("mail.crt"))));
        // The writer's preparation, other files, the new directory's files.
        let next = root.join("..2026_11_24_10_05_00.2");
        assert!(!targets.touched_by(&event(created, &next)));
        assert!(!targets.touched_by(&event(write, &next.join("mail.crt"))));
        assert!(!targets.touched_by(&event(created, &root.join("..data_tmp"))));
        assert!(!targets.touched_by(&event(write, &stamped.join("mail.key"))));
        assert!(!targets.touched_by(&event(renamed_onto, &root.join("mail.key"))));

        let mut watched: Vec<&PathBuf> = targets.by_dir.keys().collect();
        watched.sort();
        assert_eq!(watched, [&root, &stamped]);
    }

    #[test]
    fn a_linked_parent_directory_is_followed() {
        // A projected volume with `path: certs/mail.crt` links the directory.
        let (_dir, root) = real_tempdir();
        kubernetes_volume(&root, &["certs/mail.crt"]);
        let targets = Targets::new(&[root.join("certs").join("mail.crt")]).unwrap();
        let stamped = root.join("..2026_11_24_10_00_00.1");
        let renamed_onto = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(targets.touched_by(&event(renamed_onto, &root.join("..data"))));
        assert!(targets.touched_by(&event(renamed_onto, &root.join("certs"))));
        assert!(targets.touched_by(&event(renamed_onto, &stamped.join("certs"))));
        assert!(targets.touched_by(&event(write, &stamped.join("certs").join("mail.crt"))));
        assert!(!targets.touched_by(&event(write, &root.join("certs").join("mail.crt"))));
        assert!(!targets.touched_by(&event(write, &stamped.join("certs").join("other.crt"))));
    }

    #[test]
    fn absolute_and_dot_dot_targets_resolve_from_where_the_link_is() {
        // live/mail.crt -> ../archive/mail3.crt, live -> <root>/current,
        // current/../archive being <root>/archive.
        let (_dir, root) = real_tempdir();
        std::fs::create_dir_all(root.join("current")).unwrap();
        std::fs::create_dir_all(root.join("archive")).unwrap();
        std::fs::write(root.join("archive").join("mail3.crt"), "v3").unwrap();
        std::os::unix::fs::symlink(root.join("current"), root.join("live")).unwrap();
        std::os::unix::fs::symlink(
            "../archive/mail3.crt",
            root.join("current").join("mail.crt"),
        )
        .unwrap();
        let targets = Targets::new(&[root.join("live").join("mail.crt")]).unwrap();
        let renamed_onto = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(targets.touched_by(&event(renamed_onto, &root.join("live"))));
        assert!(targets.touched_by(&event(renamed_onto, &root.join("current"))));
        assert!(targets.touched_by(&event(renamed_onto, &root.join("current").join("mail.crt"))));
        assert!(targets.touched_by(&event(write, &root.join("archive").join("mail3.crt"))));
        assert!(!targets.touched_by(&event(write, &root.join("archive").join("mail4.crt"))));
    }

    #[test]
    fn link_loops_and_dangling_links_do_not_stop_the_watch() {
        let (_dir, root) = real_tempdir();
        std::os::unix::fs::symlink("b.crt", root.join("a.crt")).unwrap();
        std::os::unix::fs::symlink("a.crt", root.join("b.crt")).unwrap();
        std::os::unix::fs::symlink("absent/c.crt", root.join("c.crt")).unwrap();
        let targets = Targets::new(&[root.join("a.crt"), root.join("c.crt")]).unwrap();
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(targets.touched_by(&event(write, &root.join("a.crt"))));
        assert!(targets.touched_by(&event(write, &root.join("c.crt"))));
        // The missing directory cannot be watched; the link's own can.
        let (tx, _rx) = mpsc::channel(1);
        let watcher = watch_files(vec![root.join("c.crt")], tx).unwrap();
        assert_eq!(watcher.directories, std::slice::from_ref(&root));
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
    async fn sees_a_swap_of_data_then_writes_where_it_now_leads() {
        let (_dir, root) = real_tempdir();
        kubernetes_volume(&root, &["mail.crt"]);
        let cert = root.join("mail.crt");
        let (tx, mut rx) = mpsc::channel(1);
        let watcher = watch_files(vec![cert.clone()], tx.clone()).unwrap();

        let next = root.join("..2026_11_24_10_05_00.2");
        std::fs::create_dir(&next).unwrap();
        std::fs::write(next.join("mail.crt"), "v2").unwrap();
        std::os::unix::fs::symlink("..2026_11_24_10_05_00.2", root.join("..data_tmp")).unwrap();
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
        assert_eq!(next_signal(&mut rx).await, Some(()));
        assert_eq!(std::fs::read_to_string(&cert).unwrap(), "v2");

        // As the caller does after a reload: a new watch follows the new
        // link, so an in-place write in the new directory counts.
        drop(watcher);
        while rx.try_recv().is_ok() {}
        let _watcher = watch_files(vec![cert], tx).unwrap();
        std::fs::write(next.join("mail.crt"), "v3").unwrap();
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
