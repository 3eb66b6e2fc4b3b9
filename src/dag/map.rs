//! [`DagMap`]: where each database's active copy is, and which database
//! holds each mailbox, as one immutable value swapped whole (arc-swap) when
//! the members report a change. A lookup takes no lock and allocates
//! nothing: keys are lower-case and the request's identity already is.

use std::collections::HashMap;

use crate::api::CopyView;

/// One database as the array knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub name: String,
    /// The member whose copy is mounted (as that member itself says);
    /// `None` while no copy is (a failover under way, or quorum lost).
    pub mounted: Option<String>,
    pub epoch: u64,
    /// Activations seen by the members (the highest any reported).
    pub failovers: u64,
    pub copies: Vec<CopyView>,
}

/// A database's active copy as another instance learned it (through
/// `[cluster]`): the member it is mounted on at `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learned {
    pub database: String,
    pub mounted: String,
    pub epoch: u64,
}

/// Where a request's mailbox lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// No DAG, or a mailbox the directory does not know.
    Unknown,
    /// Mounted on this member.
    Active(&'a str),
    /// The mailbox's database has no mounted copy now (its name).
    NoMountedCopy(&'a str),
}

/// The DAG as the array knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DagMap {
    databases: Vec<Database>,
    /// Mailbox keys (address, alias, `domain\alias`, GUID) to an index in
    /// `databases`.
    mailboxes: HashMap<String, usize>,
}

impl DagMap {
    /// A map of `databases` and their mailboxes: (address, GUID, database
    /// name) triples; mailboxes of an unknown database are left out.
    pub fn new(mut databases: Vec<Database>, mailboxes: &[(String, String, String)]) -> Self {
        databases.sort_by(|a, b| a.name.cmp(&b.name));
        let mut map = HashMap::new();
        for (address, guid, database) in mailboxes {
            let Some(db) = databases
                .iter()
                .position(|d| d.name.eq_ignore_ascii_case(database))
            else {
                continue;
            };
            let address = address.to_ascii_lowercase();
            if let Some((alias, domain)) = address.split_once('@') {
                map.insert(alias.to_owned(), db);
                if let Some(first) = domain.split('.').next() {
                    map.insert(format!("{first}\\{alias}"), db);
                }
            }
            map.insert(address, db);
            if !guid.is_empty() {
                map.insert(guid.to_ascii_lowercase(), db);
            }
        }
        DagMap {
            databases,
            mailboxes: map,
        }
    }

    /// Whether the members run a DAG at all.
    pub fn is_empty(&self) -> bool {
        self.databases.is_empty()
    }

    pub fn databases(&self) -> &[Database] {
        &self.databases
    }

    pub fn database(&self, name: &str) -> Option<&Database> {
        self.databases
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(name))
    }

    /// Where the mailbox `id` (lower-case: an address, `<guid>@domain`, a
    /// GUID, an alias or `domain\alias`) lives.
    pub fn route(&self, id: &str) -> Route<'_> {
        let Some(&db) = self.lookup(id) else {
            return Route::Unknown;
        };
        let db = &self.databases[db];
        match &db.mounted {
            Some(server) => Route::Active(server),
            None => Route::NoMountedCopy(&db.name),
        }
    }

    /// This map with each of `learned` that is newer (a higher epoch) than
    /// its database here laid over it: the database mounted on the learned
    /// member (its copy there `Mounted`, another said `Mounted`
    /// `Dismounted`). A database this map does not have is left out.
    pub fn overlaid(&self, learned: &[Learned]) -> DagMap {
        let mut out = self.clone();
        for l in learned {
            let Some(db) = out
                .databases
                .iter_mut()
                .find(|d| d.name.eq_ignore_ascii_case(&l.database))
            else {
                continue;
            };
            if l.epoch <= db.epoch {
                continue;
            }
            db.epoch = l.epoch;
            db.mounted = Some(l.mounted.clone());
            for c in &mut db.copies {
                if c.server.eq_ignore_ascii_case(&l.mounted) {
                    c.status = "Mounted".to_owned();
                } else if c.status == "Mounted" {
                    c.status = "Dismounted".to_owned();
                }
            }
        }
        out
    }

    fn lookup(&self, id: &str) -> Option<&usize> {
        if let Some(db) = self.mailboxes.get(id) {
            return Some(db);
        }
        // `<guid>@domain` (MAPI, Outlook Anywhere): the GUID.
        let local = id.split('@').next()?;
        self.mailboxes.get(local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn two_databases() -> DagMap {
        let db = |name: &str, mounted: Option<&str>| Database {
            name: name.into(),
            mounted: mounted.map(Into::into),
            epoch: 1,
            failovers: 0,
            copies: Vec::new(),
        };
        DagMap::new(
            vec![db("DB02", None), db("DB01", Some("EX1"))],
            &[
                (
                    "Alice@lab.com".into(),
                    "5E0B6D1C-8F1A-4C5E-9B2A-3D4E5F60718A".into(),
                    "DB01".into(),
                ),
                ("bob@lab.com".into(), "".into(), "db02".into()),
                ("carol@lab.com".into(), "".into(), "DB09".into()),
            ],
        )
    }

    #[test]
    fn a_newer_learned_copy_is_laid_over_an_older_never() {
        let m = two_databases();
        let learned = |db: &str, on: &str, epoch| Learned {
            database: db.into(),
            mounted: on.into(),
            epoch,
        };
        // Same epoch or older: the map's own word stands.
        let same = m.overlaid(&[learned("db01", "EX2", 1), learned("DB09", "EX2", 9)]);
        assert_eq!(same, m);
        // Newer: routed to the learned member.
        let moved = m.overlaid(&[learned("db01", "EX2", 2), learned("DB02", "EX1", 5)]);
        assert_eq!(moved.route("alice"), Route::Active("EX2"));
        assert_eq!(moved.route("bob"), Route::Active("EX1"));
        assert_eq!(moved.database("DB01").map(|d| d.epoch), Some(2));
    }

    #[test]
    fn every_spelling_of_a_mailbox_finds_its_database() {
        let m = two_databases();
        for id in [
            "alice@lab.com",
            "alice",
            "lab\\alice",
            "5e0b6d1c-8f1a-4c5e-9b2a-3d4e5f60718a",
            "5e0b6d1c-8f1a-4c5e-9b2a-3d4e5f60718a@lab.com",
        ] {
            assert_eq!(m.route(id), Route::Active("EX1"), "{id}");
        }
        assert_eq!(m.route("bob"), Route::NoMountedCopy("DB02"));
        assert_eq!(m.route("carol@lab.com"), Route::Unknown);
        assert_eq!(m.route("nobody"), Route::Unknown);
        assert_eq!(m.databases()[0].name, "DB01");
        assert!(DagMap::default().is_empty());
    }
}
