//! The DAG lock: `flock(2)` on `<dag.toml>.lock`, held for the few
//! microseconds of a read-modify-write of a shared file (the witness
//! lease, the cluster state, `dag.toml`).
//!
//! The kernel releases it when the holder closes the file or dies (kill
//! -9), so a lost server never leaves it held. A server *stopped*
//! (SIGSTOP) inside the critical section keeps it until it runs again:
//! the others then cannot take the lock, so they decide nothing (safety
//! holds, failover waits). Taking it is non-blocking and retried for a
//! bounded time, so no task waits forever.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long taking the lock is retried: 2 s.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);
/// Pause between attempts: 2 ms.
const RETRY_PAUSE: Duration = Duration::from_millis(2);

/// The lock file next to `dag.toml`: `dag.toml.lock`.
pub fn lock_path(definition: &Path) -> PathBuf {
    let mut name = definition.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct DagLock {
    _file: File,
}

/// Takes the lock at `path` (creating the file), waiting at most `wait`.
/// Blocking.
pub fn lock(path: &Path, wait: Duration) -> io::Result<DagLock> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let deadline = Instant::now() + wait;
    loop {
        // SAFETY: flock(2) on a descriptor this function owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(DagLock { _file: file });
        }
        let err = io::Error::last_os_error();
        let busy = err.raw_os_error() == Some(libc::EWOULDBLOCK)
            || err.kind() == io::ErrorKind::Interrupted;
        if !busy {
            return Err(err);
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{} is held by another server", path.display()),
            ));
        }
        std::thread::sleep(RETRY_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path(&dir.path().join("dag.toml"));
        assert!(path.ends_with("dag.toml.lock"));
        let held = lock(&path, LOCK_WAIT).unwrap();
        let err = lock(&path, Duration::from_millis(20)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(held);
        lock(&path, Duration::from_millis(20)).unwrap();
    }
}
