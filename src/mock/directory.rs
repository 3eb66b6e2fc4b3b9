//! The lab's "Active Directory" for mailboxes: every mailbox with its
//! password, GUID, display name and database. It is fixed (built from
//! [`LAB_USERS`]) and the same in every process, so a server authenticates
//! a user and finds the mailbox's database without touching a store, as an
//! Exchange server asks AD, not the mailbox database.

use std::sync::OnceLock;

use crate::mock::users::{mailbox_guid, Mailbox, LAB_USERS};

/// One directory entry.
#[derive(Debug, Clone)]
struct Entry {
    mailbox: Mailbox,
    password: String,
}

/// Every mailbox of the lab.
#[derive(Debug)]
pub struct Directory {
    entries: Vec<Entry>,
}

/// The lab's directory (built once per process).
pub fn lab() -> &'static Directory {
    static LAB: OnceLock<Directory> = OnceLock::new();
    LAB.get_or_init(|| Directory {
        entries: LAB_USERS
            .iter()
            .map(|(address, password, display_name, database)| Entry {
                mailbox: Mailbox {
                    address: address.to_ascii_lowercase(),
                    display_name: (*display_name).to_string(),
                    database: (*database).to_string(),
                    guid: mailbox_guid(address),
                },
                password: (*password).to_string(),
            })
            .collect(),
    })
}

impl Directory {
    fn entry(&self, logon: &str) -> Option<&Entry> {
        let logon = logon.trim().to_ascii_lowercase();
        let exact = self.entries.iter().find(|e| e.mailbox.address == logon);
        exact.or_else(|| {
            if logon.contains('@') {
                return None;
            }
            self.entries
                .iter()
                .find(|e| e.mailbox.address.split('@').next() == Some(logon.as_str()))
        })
    }

    /// The mailbox for a logon name: a full address, or the local part of
    /// one (case-insensitive).
    pub fn find(&self, logon: &str) -> Option<&Mailbox> {
        self.entry(logon).map(|e| &e.mailbox)
    }

    /// The mailbox a MAPI/HTTP `MailboxId` or an Outlook Anywhere server
    /// name designates: `<guid>@<domain>` (case-insensitive), or a plain
    /// address.
    pub fn by_mailbox_id(&self, id: &str) -> Option<&Mailbox> {
        let id = id.trim();
        let (local, _) = id.split_once('@')?;
        self.entries
            .iter()
            .map(|e| &e.mailbox)
            .find(|m| m.guid.eq_ignore_ascii_case(local))
            .or_else(|| self.find(id))
    }

    /// The mailbox when `password` is its password (compared in constant
    /// time).
    pub fn authenticate(&self, logon: &str, password: &str) -> Option<Mailbox> {
        let entry = self.entry(logon)?;
        let same = aws_lc_rs::constant_time::verify_slices_are_equal(
            entry.password.as_bytes(),
            password.as_bytes(),
        )
        .is_ok();
        same.then(|| entry.mailbox.clone())
    }

    /// The mailbox and its password, for challenge-response logins (NTLM),
    /// which need the secret itself.
    pub fn with_password(&self, logon: &str) -> Option<(Mailbox, String)> {
        self.entry(logon)
            .map(|e| (e.mailbox.clone(), e.password.clone()))
    }

    /// The display name of `address`, if it is a mailbox.
    pub fn display_name(&self, address: &str) -> Option<&str> {
        self.find(address)
            .filter(|m| m.address.eq_ignore_ascii_case(address.trim()))
            .map(|m| m.display_name.as_str())
    }

    /// The mailboxes of database `database`.
    pub fn in_database<'a>(&'a self, database: &'a str) -> impl Iterator<Item = &'a Mailbox> {
        self.all()
            .filter(move |m| m.database.eq_ignore_ascii_case(database))
    }

    /// Every mailbox, in the order of [`LAB_USERS`].
    pub fn all(&self) -> impl Iterator<Item = &Mailbox> {
        self.entries.iter().map(|e| &e.mailbox)
    }

    /// The directory as `GET /mock/directory` shows it: `{"mailboxes":
    /// [{"address", "guid", "display_name", "database"}]}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mailboxes: Vec<_> = self
            .all()
            .map(|m| {
                serde_json::json!({
                    "address": m.address,
                    "guid": m.guid,
                    "display_name": m.display_name,
                    "database": m.database,
                })
            })
            .collect();
        serde_json::json!({ "mailboxes": mailboxes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_address_local_part_and_guid() {
        let dir = lab();
        let alice = dir.find("Alice@Lab.com").unwrap();
        assert_eq!(alice.database, "DB01");
        assert_eq!(dir.find("BOB").unwrap().address, "bob@lab.com");
        assert!(dir.find("carol@lab.com").is_none());
        assert!(dir.find("alice@other.example").is_none());
        let id = format!("{}@lab.com", alice.guid.to_ascii_uppercase());
        assert_eq!(dir.by_mailbox_id(&id).unwrap().address, "alice@lab.com");
        assert_eq!(
            dir.by_mailbox_id("bob@lab.com").unwrap().address,
            "bob@lab.com"
        );
        assert!(dir.by_mailbox_id("nobody").is_none());
        assert_eq!(dir.display_name("bob@lab.com"), Some("Bob Brown"));
        assert_eq!(dir.display_name("bob"), None);
        assert_eq!(dir.in_database("db02").count(), 1);
    }

    #[test]
    fn passwords() {
        let dir = lab();
        assert!(dir.authenticate("alice", "Alice!lab1").is_some());
        assert!(dir.authenticate("alice", "wrong").is_none());
        assert!(dir.authenticate("nobody", "Alice!lab1").is_none());
        assert_eq!(
            dir.with_password("LAB\\bob".rsplit('\\').next().unwrap())
                .unwrap()
                .1,
            "Bob!lab1"
        );
        let json = dir.to_json();
        assert_eq!(json["mailboxes"][1]["database"], "DB02");
        assert_eq!(json["mailboxes"][0]["guid"].as_str().unwrap().len(), 36);
    }
}
