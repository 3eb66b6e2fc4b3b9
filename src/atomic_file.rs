//! The crate's one file writer: a temporary file in the same directory,
//! written and fsynced, then renamed over the target (or, for a file that
//! must not exist yet, hard-linked to its name, which fails if the name is
//! taken), then the directory fsynced. Readers see the old file or the new
//! one, never a part; a crash leaves at most a `.name.*.tmp` file.
//!
//! Every writer of state, config, certificates, keys and lab files goes
//! through here.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Makes temporary names unique within the process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Who may read the new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// An existing file's permissions, else the process's default.
    Keep,
    /// Exactly these permission bits (0600 for keys and tokens, 0644 for
    /// certificates), whatever the old file had.
    Exactly(u32),
}

/// Private to its owner: keys, tokens, state that says which members are
/// out of service.
pub(crate) const PRIVATE: Mode = Mode::Exactly(0o600);

/// Writes `contents` to `path` atomically. A symlink is followed (its target
/// is replaced); an existing file's permissions are kept.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    write(path, contents, Mode::Keep, true)
}

/// Like [`write_atomically`], but the new file is private to its owner
/// (0600) whatever the old one was.
pub(crate) fn write_private_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    write(path, contents, PRIVATE, true)
}

/// Replaces (or creates) `path` with `contents` and permissions `mode`.
pub(crate) fn replace(path: &Path, contents: &[u8], mode: Mode) -> io::Result<()> {
    write(path, contents, mode, true)
}

/// Creates `path` with `contents` and permissions `mode`; fails with
/// [`io::ErrorKind::AlreadyExists`] when it exists, checked atomically
/// (a file that appears meanwhile is never overwritten).
pub(crate) fn create(path: &Path, contents: &[u8], mode: Mode) -> io::Result<()> {
    write(path, contents, mode, false)
}

fn write(path: &Path, contents: &[u8], mode: Mode, overwrite: bool) -> io::Result<()> {
    let target = match fs::canonicalize(path) {
        Ok(p) if overwrite => p,
        Ok(_) => return Err(io::Error::from(io::ErrorKind::AlreadyExists)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(e),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write_temporary(&tmp, &target, contents, mode).and_then(|()| {
        if overwrite {
            fs::rename(&tmp, &target)
        } else {
            // link(2) refuses an existing name: the no-overwrite check and
            // the file's appearance are one step.
            fs::hard_link(&tmp, &target).and_then(|()| fs::remove_file(&tmp))
        }
    });
    if result.is_err() {
        // Best effort: the temporary file is ours and useless now.
        let _ = fs::remove_file(&tmp);
    }
    result?;
    File::open(&dir)?.sync_all()
}

fn write_temporary(tmp: &Path, target: &Path, contents: &[u8], mode: Mode) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    if let Mode::Exactly(bits) = mode {
        // From creation: never loosened then tightened.
        options.mode(bits);
    }
    let mut file = options.open(tmp)?;
    match mode {
        Mode::Keep => {
            if let Ok(meta) = fs::metadata(target) {
                file.set_permissions(meta.permissions())?;
            }
        }
        // The umask may have taken bits away from a public mode.
        Mode::Exactly(bits) => file.set_permissions(fs::Permissions::from_mode(bits))?,
    }
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_private_atomically(&path, b"new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        write_atomically(&path, b"one").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "one");
        write_atomically(&path, b"two").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["c.toml"]);
    }

    #[cfg(unix)]
    #[test]
    fn keeps_permissions_and_follows_symlinks() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.toml");
        fs::write(&real, "old").unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomically(&link, b"new").unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_to_string(&real).unwrap(), "new");
        assert_eq!(
            fs::metadata(&real).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }

    #[test]
    fn create_never_overwrites() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        create(&path, b"one", PRIVATE).unwrap();
        let e = create(&path, b"two", PRIVATE).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&path).unwrap(), "one");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        replace(&path, b"three", Mode::Exactly(0o644)).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "three");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["k.key"], "no temporary file left");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir").join("c.toml");
        assert!(write_atomically(&missing, b"x").is_err());
    }
}
