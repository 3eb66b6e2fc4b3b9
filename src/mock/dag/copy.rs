//! One server's copy of one database: its store file and its log
//! directory (`<store>/<DB>/<DB>.sqlite`, `<store>/<DB>/logs/`), where it
//! stands (generations copied and replayed), and whether it is mounted.
//!
//! The active copy writes through [`LocalCopy::write`]: in one SQLite
//! transaction the change is applied, the server's right to write is
//! checked (the fence: mounted at the epoch of record, quorum still
//! valid), the log generation is written and fsynced, then the
//! transaction commits; only then is the client answered. A passive copy
//! stores the generations it copies ([`LocalCopy::store_copied`]) and
//! replays them ([`LocalCopy::replay_pending`]).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::logs::{LogDir, LogRecord};
use crate::mock::store::{self, batch, Batch, Position, Store, StoreError};

/// A mounted copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mount {
    pub epoch: u64,
    pub since_unix_ms: u64,
}

/// What a copy is doing, besides being mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Opened, not copying yet, or being seeded.
    Initializing,
    /// Copying and replaying (or ready to).
    Copying,
    /// Copying failed; the reason.
    Failed(String),
}

/// Where a copy stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    pub mounted: Option<Mount>,
    /// Last generation on disk in an unbroken run.
    pub copied: u64,
    pub copied_epoch: u64,
    /// Last generation applied to the store.
    pub replayed: u64,
    pub replayed_epoch: u64,
    /// The position the copy was seeded at.
    pub base: Position,
    /// The last generation of the active copy this copy knows of.
    pub source_last: u64,
    pub phase: Phase,
    /// A new copy, to be seeded from the active copy before copying.
    pub needs_seed: bool,
}

/// The replication task of a passive copy and its stop switch.
#[derive(Debug)]
pub struct Task {
    pub stop: watch::Sender<bool>,
    pub handle: JoinHandle<()>,
}

/// One database copy of this server.
#[derive(Debug)]
pub struct LocalCopy {
    pub database: String,
    pub store: Store,
    pub logs: LogDir,
    dir: PathBuf,
    rt: Mutex<Runtime>,
    generation: watch::Sender<u64>,
    pub task: Mutex<Option<Task>>,
}

impl LocalCopy {
    /// Opens (creating) the copy of `database` under the store directory
    /// `store_dir`. A copy whose file did not exist is marked to be seeded.
    /// Blocking.
    pub fn open(store_dir: &Path, database: &str) -> Result<LocalCopy, StoreError> {
        let path = store::database_file(store_dir, database);
        let existed = path.exists();
        let store = Store::open(&path, database)?;
        let dir = path
            .parent()
            .map_or_else(|| store_dir.to_path_buf(), Path::to_path_buf);
        let logs = LogDir::open(&dir.join("logs"))?;
        let position = store.position()?;
        let base = store.base()?;
        let copied = logs.contiguous_from(position.generation)?;
        let copied_epoch = match logs.read(copied)? {
            Some(r) => r.epoch,
            None => position.epoch,
        };
        let (generation, _) = watch::channel(copied);
        Ok(LocalCopy {
            database: database.to_string(),
            store,
            logs,
            dir,
            rt: Mutex::new(Runtime {
                mounted: None,
                copied,
                copied_epoch,
                replayed: position.generation,
                replayed_epoch: position.epoch,
                base,
                source_last: copied,
                phase: Phase::Initializing,
                needs_seed: !existed,
            }),
            generation,
            task: Mutex::new(None),
        })
    }

    fn rt(&self) -> MutexGuard<'_, Runtime> {
        self.rt.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A snapshot of where the copy stands.
    pub fn runtime(&self) -> Runtime {
        self.rt().clone()
    }

    /// The mount, if mounted.
    pub fn mounted(&self) -> Option<Mount> {
        self.rt().mounted
    }

    /// Changes the runtime.
    pub fn update(&self, f: impl FnOnce(&mut Runtime)) {
        f(&mut self.rt());
    }

    /// Waits for a generation after `after` to be on disk, at most until
    /// `wait` has passed.
    pub async fn wait_beyond(&self, after: u64, wait: std::time::Duration) {
        let mut rx = self.generation.subscribe();
        let _ = tokio::time::timeout(wait, rx.wait_for(|g| *g > after)).await;
    }

    /// The epoch generation `generation` was written in, if this copy can
    /// tell (its file, or the position it was seeded at or stands at).
    pub fn epoch_of(&self, generation: u64) -> io::Result<Option<u64>> {
        if generation == 0 {
            return Ok(Some(0));
        }
        if let Some(r) = self.logs.read(generation)? {
            return Ok(Some(r.epoch));
        }
        let rt = self.runtime();
        Ok(if generation == rt.base.generation {
            Some(rt.base.epoch)
        } else if generation == rt.replayed {
            Some(rt.replayed_epoch)
        } else {
            None
        })
    }

    /// Runs `f` as one logged change of the active copy. `fence(epoch)`
    /// decides, inside the transaction and before the log is written,
    /// whether this server may still write at the epoch it mounted the
    /// copy at. Returns what `f` returned and the generation written (0
    /// when `f` changed nothing). Blocking.
    pub fn write<R>(
        &self,
        fence: impl FnOnce(u64) -> Result<(), StoreError>,
        f: impl FnOnce(&mut Batch<'_>) -> Result<R, StoreError>,
    ) -> Result<(R, u64), StoreError> {
        let mount = self.mounted().ok_or_else(|| {
            StoreError::Fenced(format!("{} is not mounted on this server", self.database))
        })?;
        let mut written = 0;
        let mut conn = self.store.lock()?;
        let result = batch::write(&mut conn, f, |conn, ops| {
            fence(mount.epoch)?;
            let at = store::schema::position(conn)?;
            let generation = at.generation + 1;
            self.logs.write(&LogRecord {
                database: self.database.clone(),
                generation,
                epoch: mount.epoch,
                written_unix_ms: super::now_ms(),
                ops: ops.to_vec(),
            })?;
            store::schema::set_position(
                conn,
                Position {
                    generation,
                    epoch: mount.epoch,
                },
            )?;
            written = generation;
            Ok(())
        });
        drop(conn);
        match result {
            Ok(r) => {
                if written > 0 {
                    self.update(|rt| {
                        rt.copied = written;
                        rt.copied_epoch = mount.epoch;
                        rt.replayed = written;
                        rt.replayed_epoch = mount.epoch;
                        rt.source_last = written;
                    });
                    self.generation.send_replace(written);
                }
                Ok((r, written))
            }
            Err(e) => {
                if written > 0 {
                    // The generation is on disk but the commit failed:
                    // stop writing; mounting again replays it.
                    tracing::error!(database = %self.database, generation = written, error = %e,
                        "commit failed after the log generation was written: dismounting");
                    self.update(|rt| rt.mounted = None);
                }
                Err(e)
            }
        }
    }

    /// Stores generations copied from the active copy, in order, each
    /// fsynced; stops at the first that does not follow. Returns how many
    /// were stored. Blocking.
    pub fn store_copied(&self, records: &[LogRecord]) -> Result<u64, StoreError> {
        let mut stored = 0;
        for record in records {
            let next = self.rt().copied + 1;
            if record.generation != next {
                break;
            }
            self.logs.write(record)?;
            self.update(|rt| {
                rt.copied = record.generation;
                rt.copied_epoch = record.epoch;
            });
            self.generation.send_replace(record.generation);
            stored += 1;
        }
        Ok(stored)
    }

    /// Replays every copied generation not replayed yet; returns how many.
    /// Blocking.
    pub fn replay_pending(&self) -> Result<u64, StoreError> {
        let mut count = 0;
        loop {
            let (next, copied) = {
                let rt = self.rt();
                (rt.replayed + 1, rt.copied)
            };
            if next > copied {
                return Ok(count);
            }
            let Some(record) = self.logs.read(next)? else {
                return Ok(count);
            };
            let position = Position {
                generation: record.generation,
                epoch: record.epoch,
            };
            let mut conn = self.store.lock()?;
            batch::replay(&mut conn, position, &record.ops)?;
            drop(conn);
            self.update(|rt| {
                rt.replayed = position.generation;
                rt.replayed_epoch = position.epoch;
            });
            count += 1;
        }
    }

    /// Mounts the copy at `epoch` after replaying everything copied;
    /// returns the generations replayed now and the generation it starts
    /// from. Blocking.
    pub fn mount(&self, epoch: u64) -> Result<(u64, u64), StoreError> {
        let replayed = self.replay_pending()?;
        let generation = self.update_get(|rt| {
            rt.mounted = Some(Mount {
                epoch,
                since_unix_ms: super::now_ms(),
            });
            rt.source_last = rt.replayed;
            rt.phase = Phase::Copying;
            rt.replayed
        });
        Ok((replayed, generation))
    }

    fn update_get<T>(&self, f: impl FnOnce(&mut Runtime) -> T) -> T {
        f(&mut self.rt())
    }

    /// Dismounts, after any write under way has finished (so that the
    /// last generation is final when this returns); returns the mount it
    /// had. Blocking (briefly: one write).
    pub fn dismount(&self) -> Option<Mount> {
        let _writes = self.store.lock();
        self.rt().mounted.take()
    }

    /// Deletes the generations from `first` on (they are not part of the
    /// active copy's history); returns how many. Blocking.
    pub fn discard_from(&self, first: u64) -> Result<u64, StoreError> {
        let removed = self.logs.remove_from(first)?;
        let replayed = self.rt().replayed;
        let copied = self.logs.contiguous_from(replayed)?;
        let epoch = match self.logs.read(copied)? {
            Some(r) => r.epoch,
            None => self.rt().replayed_epoch,
        };
        self.update(|rt| {
            rt.copied = copied;
            rt.copied_epoch = epoch;
        });
        Ok(removed)
    }

    /// A temporary file name in the copy's directory.
    pub fn temp_file(&self, what: &str) -> PathBuf {
        self.dir.join(format!(
            ".{}.{what}.{}.{}.tmp",
            self.database,
            std::process::id(),
            super::now_ms()
        ))
    }

    /// Replaces the copy with the snapshot in `file` taken at `position`,
    /// and forgets every log generation. Blocking.
    pub fn install_seed(&self, file: &Path) -> Result<Position, StoreError> {
        let position = self.store.replace_with(file)?;
        self.store.set_base(position)?;
        self.logs.remove_from(0)?;
        self.update(|rt| {
            rt.copied = position.generation;
            rt.copied_epoch = position.epoch;
            rt.replayed = position.generation;
            rt.replayed_epoch = position.epoch;
            rt.base = position;
            rt.source_last = position.generation;
            rt.needs_seed = false;
        });
        self.generation.send_replace(position.generation);
        Ok(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::store::{deliver, list_items, NewMessage};

    fn message() -> NewMessage {
        NewMessage {
            from: crate::mock::directory::lab()
                .find("bob@lab.com")
                .unwrap()
                .clone(),
            to: vec!["alice@lab.com".into()],
            cc: vec![],
            bcc: vec![],
            subject: "logged".into(),
            body: String::new(),
            body_type: crate::mock::store::BodyType::Text,
            message_id: None,
            headers: String::new(),
        }
    }

    fn send(copy: &LocalCopy) -> Result<(usize, u64), StoreError> {
        let msg = message();
        copy.write(
            |_| Ok(()),
            |b| deliver(b, &msg, &["alice@lab.com".to_string()], 5),
        )
    }

    #[test]
    fn active_writes_generations_passive_copies_and_replays() {
        let dir = tempfile::tempdir().unwrap();
        let active = LocalCopy::open(&dir.path().join("ex1"), "DB01").unwrap();
        assert!(active.runtime().needs_seed);
        assert!(
            matches!(send(&active), Err(StoreError::Fenced(_))),
            "not mounted"
        );
        active.mount(1).unwrap();
        assert_eq!(send(&active).unwrap().1, 1);
        assert_eq!(send(&active).unwrap().1, 2);
        let fenced = active.write(
            |_| Err(StoreError::Fenced("no quorum".into())),
            |b| deliver(b, &message(), &["alice@lab.com".to_string()], 5),
        );
        assert!(matches!(fenced, Err(StoreError::Fenced(_))));
        assert_eq!(active.logs.generations().unwrap(), [1, 2], "nothing logged");
        assert_eq!(active.epoch_of(2).unwrap(), Some(1));

        let passive = LocalCopy::open(&dir.path().join("ex2"), "DB01").unwrap();
        let records: Vec<_> = (1..=2)
            .map(|g| active.logs.read(g).unwrap().unwrap())
            .collect();
        assert_eq!(
            passive.store_copied(&records[1..]).unwrap(),
            0,
            "out of order"
        );
        assert_eq!(passive.store_copied(&records).unwrap(), 2);
        let rt = passive.runtime();
        assert_eq!((rt.copied, rt.replayed), (2, 0));
        assert_eq!(passive.replay_pending().unwrap(), 2);
        let conn = passive.store.lock().unwrap();
        let a = list_items(&conn, "alice@lab.com", "inbox").unwrap();
        let b = list_items(&active.store.lock().unwrap(), "alice@lab.com", "inbox").unwrap();
        assert_eq!(a, b, "same rows, same ids");
        drop(conn);

        // Reopening finds the same position.
        drop(passive);
        let passive = LocalCopy::open(&dir.path().join("ex2"), "DB01").unwrap();
        let rt = passive.runtime();
        assert_eq!((rt.copied, rt.replayed, rt.replayed_epoch), (2, 2, 1));
        assert!(!rt.needs_seed);
        assert_eq!(passive.discard_from(2).unwrap(), 1);
        assert_eq!(passive.runtime().copied, 2, "replayed stays");
    }

    #[test]
    fn seeding_replaces_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let active = LocalCopy::open(&dir.path().join("ex1"), "DB01").unwrap();
        active.mount(3).unwrap();
        send(&active).unwrap();
        send(&active).unwrap();
        let snap = active.temp_file("seed");
        let at = active.store.snapshot_into(&snap).unwrap();
        assert_eq!(at.generation, 2);
        let fresh = LocalCopy::open(&dir.path().join("ex3"), "DB01").unwrap();
        let target = fresh.temp_file("seed");
        std::fs::rename(&snap, &target).unwrap();
        let position = fresh.install_seed(&target).unwrap();
        assert_eq!(
            position,
            Position {
                generation: 2,
                epoch: 3
            }
        );
        let rt = fresh.runtime();
        assert_eq!((rt.copied, rt.replayed, rt.base.generation), (2, 2, 2));
        assert_eq!(fresh.epoch_of(2).unwrap(), Some(3));
        assert_eq!(fresh.epoch_of(1).unwrap(), None, "before the seed");
        let conn = fresh.store.lock().unwrap();
        assert_eq!(
            list_items(&conn, "alice@lab.com", "inbox").unwrap().len(),
            2
        );
    }
}
