//! Mailboxes: finding one by logon name, display names, passwords.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension};

use super::StoreError;
use crate::mock::users::Mailbox;

/// The mailbox for a logon name: a full address, or the local part of one
/// (case-insensitive).
pub fn find_mailbox(conn: &Connection, logon: &str) -> Result<Option<Mailbox>, StoreError> {
    let logon = logon.trim().to_ascii_lowercase();
    Ok(conn
        .query_row(
            "SELECT address, display_name, database FROM mailboxes
             WHERE lower(address) = ?1
                OR (instr(?1, '@') = 0 AND lower(substr(address, 1, instr(address, '@') - 1)) = ?1)
             ORDER BY address LIMIT 1",
            [&logon],
            |r| {
                Ok(Mailbox {
                    address: r.get(0)?,
                    display_name: r.get(1)?,
                    database: r.get(2)?,
                })
            },
        )
        .optional()?)
}

/// Every mailbox's display name, by address.
pub fn display_names(conn: &Connection) -> Result<HashMap<String, String>, StoreError> {
    let mut stmt = conn.prepare("SELECT address, display_name FROM mailboxes")?;
    let names = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<HashMap<_, _>>>()?;
    Ok(names)
}

/// The mailbox, when `password` is its password.
pub fn authenticate(
    conn: &Connection,
    logon: &str,
    password: &str,
) -> Result<Option<Mailbox>, StoreError> {
    let Some((mailbox, stored)) = mailbox_password(conn, logon)? else {
        return Ok(None);
    };
    let same =
        aws_lc_rs::constant_time::verify_slices_are_equal(stored.as_bytes(), password.as_bytes())
            .is_ok();
    Ok(same.then_some(mailbox))
}

/// The mailbox for a logon name and its password, for challenge-response
/// logins (NTLM), which need the secret itself.
pub fn mailbox_password(
    conn: &Connection,
    logon: &str,
) -> Result<Option<(Mailbox, String)>, StoreError> {
    let Some(mailbox) = find_mailbox(conn, logon)? else {
        return Ok(None);
    };
    let stored: String = conn.query_row(
        "SELECT password FROM mailboxes WHERE address = ?1",
        [&mailbox.address],
        |r| r.get(0),
    )?;
    Ok(Some((mailbox, stored)))
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::*;

    fn alice(conn: &Connection) -> Mailbox {
        find_mailbox(conn, "alice@lab.com").unwrap().unwrap()
    }

    #[test]
    fn logon_names_and_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let conn = store.conn.lock().unwrap();
        assert_eq!(alice(&conn).database, "DB01");
        assert_eq!(
            find_mailbox(&conn, "BOB").unwrap().unwrap().address,
            "bob@lab.com"
        );
        assert!(find_mailbox(&conn, "carol@lab.com").unwrap().is_none());
        assert_eq!(display_names(&conn).unwrap()["bob@lab.com"], "Bob Brown");
        assert!(authenticate(&conn, "alice", "Alice!lab1")
            .unwrap()
            .is_some());
        assert!(authenticate(&conn, "alice", "wrong").unwrap().is_none());
        assert!(authenticate(&conn, "nobody", "Alice!lab1")
            .unwrap()
            .is_none());
    }
}
