//! One read-modify-validate-write cycle on the config file.
//!
//! Edits in this process are serialised by a lock. An edit by another
//! process between our read and our write is detected (the file is read
//! again just before the write) and the edit is redone on the new text, up
//! to three times.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use toml_edit::DocumentMut;

use super::error::DirectoryError;
use crate::atomic_file::write_atomically;
use crate::config;

/// Serialises this process's edits (the admin API may edit while a CLI
/// command runs in another process; that case is the re-read check).
static EDIT_LOCK: Mutex<()> = Mutex::new(());

/// Attempts before giving up on a file that keeps changing.
const ATTEMPTS: usize = 3;

/// What an edit decided.
pub(crate) struct Edit<T> {
    /// The new text, or `None` when nothing changes (nothing is written).
    pub text: Option<String>,
    pub outcome: T,
}

/// Runs `change` on the current text (`None`: no such file) and writes what
/// it returns atomically. `change` validates; it may run more than once.
pub(crate) fn edit_config<T>(
    path: &Path,
    mut change: impl FnMut(Option<&str>) -> Result<Edit<T>, DirectoryError>,
) -> Result<T, DirectoryError> {
    let _guard = EDIT_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    for _ in 0..ATTEMPTS {
        let before = read_optional(path)?;
        let edit = change(before.as_deref())?;
        let Some(text) = edit.text else {
            return Ok(edit.outcome);
        };
        if read_optional(path)? != before {
            continue;
        }
        write_atomically(path, text.as_bytes()).map_err(|error| DirectoryError::Write {
            path: path.to_path_buf(),
            error,
        })?;
        return Ok(edit.outcome);
    }
    Err(DirectoryError::Busy {
        path: path.to_path_buf(),
    })
}

/// The file's text, `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, DirectoryError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(DirectoryError::Read {
            path: path.to_path_buf(),
            error,
        }),
    }
}

/// The text of a file that must exist.
pub(crate) fn existing<'a>(path: &Path, text: Option<&'a str>) -> Result<&'a str, DirectoryError> {
    text.ok_or_else(|| DirectoryError::Read {
        path: path.to_path_buf(),
        error: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
    })
}

/// `text` as an editable document. When it is not TOML, the error is the
/// config parser's, which says where.
pub(crate) fn document(text: &str, path: &Path) -> Result<DocumentMut, DirectoryError> {
    text.parse::<DocumentMut>()
        .map_err(|e| match config::parse(text, path) {
            Err(c) => DirectoryError::Config(c),
            Ok(_) => DirectoryError::Layout {
                path: path.to_path_buf(),
                why: e.message().to_string(),
            },
        })
}

/// Checks an edited text with the config parser.
pub(crate) fn validated(text: String, path: &Path) -> Result<String, DirectoryError> {
    config::parse(&text, path).map_err(DirectoryError::Refused)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let seen = edit_config(&path, |t| {
            Ok(Edit {
                text: None,
                outcome: t.map(str::to_string),
            })
        })
        .unwrap();
        assert_eq!(seen, None);
        assert!(!path.exists());
        edit_config(&path, |_| {
            Ok(Edit {
                text: Some("a = 1\n".into()),
                outcome: (),
            })
        })
        .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a = 1\n");
    }

    #[test]
    fn redoes_the_edit_when_the_file_changes_underneath() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "n = 0\n").unwrap();
        let mut runs = 0;
        edit_config(&path, |t| {
            runs += 1;
            if runs == 1 {
                // Another writer, between our read and our write.
                std::fs::write(&path, "n = 1\n").unwrap();
            }
            Ok(Edit {
                text: Some(format!("{}m = 2\n", t.unwrap())),
                outcome: (),
            })
        })
        .unwrap();
        assert_eq!(runs, 2);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "n = 1\nm = 2\n");
    }

    #[test]
    fn gives_up_on_a_file_that_keeps_changing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let mut n = 0;
        let e = edit_config(&path, |_| {
            n += 1;
            std::fs::write(&path, format!("n = {n}\n")).unwrap();
            Ok(Edit {
                text: Some("x = 1\n".into()),
                outcome: (),
            })
        })
        .unwrap_err();
        assert!(matches!(e, DirectoryError::Busy { .. }));
        assert_eq!(n, ATTEMPTS);
    }
}
