//! The witness: a lease in a file of the lab directory, the DAG's
//! tie-breaking vote (Exchange's file share witness).
//!
//! The file holds `{"holder": "EX1", "acquired_unix_ms": …,
//! "expires_unix_ms": …}`. The protocol:
//!
//! 1. A server that needs the witness's vote (it would lack a majority
//!    without it) takes the DAG lock (`flock`, see `lock`), reads the
//!    file, and writes a new lease naming itself, expiring `witness_lease`
//!    from now, **only if** the file is absent, unreadable as a lease,
//!    expired, or already names it. It releases the lock. The write is
//!    atomic (temporary file, fsync, rename, fsync of the directory), so a
//!    reader never sees half a lease.
//! 2. The holder renews the same way while it still needs the vote; it
//!    simply stops renewing when it does not (the lease runs out).
//! 3. A lease is a vote only until its expiry, measured on the wall clock
//!    that every process of the lab shares. The holder counts it only
//!    while `now < expires`, from the expiry it wrote itself, so a server
//!    stopped with SIGSTOP while holding it wakes up knowing that the vote
//!    is gone, without reading anything; and nobody else can take it
//!    before that same expiry. The vote is never held twice at once.

use std::io;
use std::path::Path;

use super::lock::{self, LOCK_WAIT};

/// A witness lease.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lease {
    pub holder: String,
    pub acquired_unix_ms: u64,
    pub expires_unix_ms: u64,
}

impl Lease {
    /// Whether the lease is in force at `now` (Unix ms).
    pub fn valid_at(&self, now: u64) -> bool {
        now < self.expires_unix_ms
    }
}

/// The lease in `path`, if the file holds one (absent or unreadable: none).
pub fn read(path: &Path) -> Option<Lease> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// What [`acquire`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `me` holds the lease (new or renewed).
    Held(Lease),
    /// Another server holds it until its expiry.
    HeldBy(Lease),
}

/// Takes or renews the lease for `me` for `duration_ms` from `now`
/// (Unix ms), under the DAG lock at `lock_file`. Blocking.
pub fn acquire(
    lock_file: &Path,
    path: &Path,
    me: &str,
    now: u64,
    duration_ms: u64,
) -> io::Result<Outcome> {
    let _guard = lock::lock(lock_file, LOCK_WAIT)?;
    if let Some(current) = read(path) {
        if current.valid_at(now) && !current.holder.eq_ignore_ascii_case(me) {
            return Ok(Outcome::HeldBy(current));
        }
    }
    let previous = read(path).filter(|l| l.holder.eq_ignore_ascii_case(me) && l.valid_at(now));
    let lease = Lease {
        holder: me.to_string(),
        acquired_unix_ms: previous.map_or(now, |p| p.acquired_unix_ms),
        expires_unix_ms: now.saturating_add(duration_ms),
    };
    let bytes = serde_json::to_vec_pretty(&lease).map_err(io::Error::other)?;
    crate::atomic_file::write_atomically(path, &bytes)?;
    Ok(Outcome::Held(lease))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_until_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("dag.toml.lock");
        let path = dir.path().join("witness.json");
        assert_eq!(read(&path), None);
        let Outcome::Held(a) = acquire(&lock, &path, "EX1", 1_000, 3_000).unwrap() else {
            panic!("free lease not taken")
        };
        assert_eq!(a.expires_unix_ms, 4_000);
        assert!(a.valid_at(3_999) && !a.valid_at(4_000));
        assert_eq!(
            acquire(&lock, &path, "EX2", 3_999, 3_000).unwrap(),
            Outcome::HeldBy(a.clone())
        );
        let Outcome::Held(renewed) = acquire(&lock, &path, "ex1", 2_000, 3_000).unwrap() else {
            panic!("holder could not renew")
        };
        assert_eq!(renewed.acquired_unix_ms, 1_000);
        assert_eq!(renewed.expires_unix_ms, 5_000);
        let Outcome::Held(b) = acquire(&lock, &path, "EX2", 5_000, 3_000).unwrap() else {
            panic!("expired lease not taken")
        };
        assert_eq!(b.holder, "EX2");
        assert_eq!(b.acquired_unix_ms, 5_000);
        std::fs::write(&path, b"garbage").unwrap();
        assert!(matches!(
            acquire(&lock, &path, "EX1", 5_001, 3_000).unwrap(),
            Outcome::Held(_)
        ));
    }
}
