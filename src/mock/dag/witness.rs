//! The witness: a lease in a file of the lab directory, the DAG's
//! tie-breaking vote (Exchange's file share witness).
//!
//! The lease is `{"holder": "EX1", "acquired_unix_ms": …,
//! "expires_unix_ms": …}`, a value changed by compare-and-swap in the lab
//! directory (`witness.json.<version>` files, `witness.json` pointing at
//! the latest; see `versioned` for why no lock). The protocol:
//!
//! 1. A server that needs the witness's vote (it would lack a majority
//!    without it) reads the latest lease and writes a new version naming
//!    itself, expiring `witness_lease` from now, **only if** there is none,
//!    it has expired, or it already names this server. Two servers racing
//!    for a free lease both try to write the same next version; one wins,
//!    the other re-reads and finds it held.
//! 2. The holder renews the same way while it still needs the vote; it
//!    simply stops renewing when it does not (the lease runs out).
//! 3. A lease is a vote only until its expiry, measured on the wall clock
//!    that every process of the lab shares. The holder counts it only
//!    while `now < expires`, from the expiry it wrote itself, so a server
//!    stopped with SIGSTOP while holding it wakes up knowing that the vote
//!    is gone, without reading anything; nobody else can take it before
//!    that same expiry; and a renewal it had under way when it was stopped
//!    cannot win when it wakes (the version it would write is taken). The
//!    vote is never held twice at once.

use std::io;
use std::path::Path;

use super::versioned::{Updated, Versioned};

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

/// The lease in force or not, if any was ever written. Blocking.
pub fn read(path: &Path) -> Option<Lease> {
    Versioned::<Lease>::new(path).read().ok()?.1
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
/// (Unix ms). Blocking.
pub fn acquire(path: &Path, me: &str, now: u64, duration_ms: u64) -> io::Result<Outcome> {
    let out = Versioned::<Lease>::new(path).update(|current| match current {
        Some(l) if l.valid_at(now) && !l.holder.eq_ignore_ascii_case(me) => {
            (None, Outcome::HeldBy(l.clone()))
        }
        _ => {
            let renewing = current.filter(|l| l.holder.eq_ignore_ascii_case(me) && l.valid_at(now));
            let lease = Lease {
                holder: me.to_string(),
                acquired_unix_ms: renewing.map_or(now, |p| p.acquired_unix_ms),
                expires_unix_ms: now.saturating_add(duration_ms),
            };
            (Some(lease.clone()), Outcome::Held(lease))
        }
    })?;
    Ok(match out {
        Updated::Written(_, o) | Updated::Unchanged(o) => o,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_until_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("witness.json");
        assert_eq!(read(&path), None);
        let Outcome::Held(a) = acquire(&path, "EX1", 1_000, 3_000).unwrap() else {
            panic!("free lease not taken")
        };
        assert_eq!(a.expires_unix_ms, 4_000);
        assert!(a.valid_at(3_999) && !a.valid_at(4_000));
        assert_eq!(
            acquire(&path, "EX2", 3_999, 3_000).unwrap(),
            Outcome::HeldBy(a.clone())
        );
        let Outcome::Held(renewed) = acquire(&path, "ex1", 2_000, 3_000).unwrap() else {
            panic!("holder could not renew")
        };
        assert_eq!(renewed.acquired_unix_ms, 1_000);
        assert_eq!(renewed.expires_unix_ms, 5_000);
        let Outcome::Held(b) = acquire(&path, "EX2", 5_000, 3_000).unwrap() else {
            panic!("expired lease not taken")
        };
        assert_eq!(b.holder, "EX2");
        assert_eq!(b.acquired_unix_ms, 5_000);
        assert_eq!(read(&path).unwrap().holder, "EX2");
    }
}
