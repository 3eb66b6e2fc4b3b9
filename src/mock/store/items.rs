//! Messages: listing, reading, marking read, sending and saving.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::mailboxes::find_mailbox;
use super::types::{BodyType, Delivery, FolderCounts, Item, NewMessage};
use super::StoreError;
use crate::mock::format::clock::unix_now;

pub(super) struct ItemRow<'a> {
    pub(super) mailbox: &'a str,
    pub(super) folder: &'a str,
    pub(super) subject: &'a str,
    pub(super) body: &'a str,
    pub(super) body_type: BodyType,
    pub(super) from_address: &'a str,
    pub(super) from_name: &'a str,
    pub(super) to: &'a [String],
    pub(super) cc: &'a [String],
    pub(super) received: i64,
}

pub(super) fn insert_item(conn: &Connection, row: &ItemRow<'_>) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO items (mailbox, folder, subject, body, body_type, from_address, from_name,
                            to_rcpt, cc_rcpt, received, is_read)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0)",
        params![
            row.mailbox,
            row.folder,
            row.subject,
            row.body,
            row.body_type.as_ews(),
            row.from_address,
            row.from_name,
            row.to.join("\n"),
            row.cc.join("\n"),
            row.received,
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Total and unread items of a folder.
pub fn folder_counts(
    conn: &Connection,
    mailbox: &str,
    folder: &str,
) -> Result<FolderCounts, StoreError> {
    let (total, unread): (i64, i64) = conn.query_row(
        "SELECT count(*), coalesce(sum(is_read = 0), 0) FROM items WHERE mailbox = ?1 AND folder = ?2",
        [mailbox, folder],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(FolderCounts {
        total: u64::try_from(total).unwrap_or(0),
        unread: u64::try_from(unread).unwrap_or(0),
    })
}

const ITEM_COLUMNS: &str = "id, mailbox, folder, subject, body, body_type, from_address, \
                            from_name, to_rcpt, cc_rcpt, received, is_read";

fn item_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Item> {
    let split = |s: String| -> Vec<String> {
        s.split('\n')
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect()
    };
    Ok(Item {
        id: r.get(0)?,
        mailbox: r.get(1)?,
        folder: r.get(2)?,
        subject: r.get(3)?,
        body: r.get(4)?,
        body_type: BodyType::from_ews(&r.get::<_, String>(5)?),
        from_address: r.get(6)?,
        from_name: r.get(7)?,
        to: split(r.get(8)?),
        cc: split(r.get(9)?),
        received: r.get(10)?,
        is_read: r.get::<_, i64>(11)? != 0,
    })
}

/// A folder's items, newest first.
pub fn list_items(conn: &Connection, mailbox: &str, folder: &str) -> Result<Vec<Item>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ITEM_COLUMNS} FROM items WHERE mailbox = ?1 AND folder = ?2
         ORDER BY received DESC, id DESC"
    ))?;
    let items = stmt
        .query_map([mailbox, folder], item_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(items)
}

/// One item of the mailbox.
pub fn get_item(conn: &Connection, mailbox: &str, id: i64) -> Result<Option<Item>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {ITEM_COLUMNS} FROM items WHERE mailbox = ?1 AND id = ?2"),
            params![mailbox, id],
            item_from_row,
        )
        .optional()?)
}

/// Marks an item read.
pub fn mark_read(conn: &Connection, mailbox: &str, id: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE items SET is_read = 1 WHERE mailbox = ?1 AND id = ?2",
        params![mailbox, id],
    )?;
    Ok(())
}

/// Sends `msg`: one copy in every recipient's inbox and, with
/// `save_copy_in`, one in that folder of the sender's mailbox; all in one
/// transaction, durable when this returns.
pub fn send(
    conn: &mut Connection,
    msg: &NewMessage,
    save_copy_in: Option<&str>,
) -> Result<Delivery, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut recipients: Vec<String> = Vec::new();
    let mut invalid = Vec::new();
    for address in msg.to.iter().chain(&msg.cc).chain(&msg.bcc) {
        match find_mailbox(&tx, address)? {
            Some(mb) if address.contains('@') => {
                if !recipients.contains(&mb.address) {
                    recipients.push(mb.address);
                }
            }
            _ => invalid.push(address.clone()),
        }
    }
    if !invalid.is_empty() || recipients.is_empty() {
        return Ok(Delivery::InvalidRecipients(invalid));
    }
    let now = unix_now();
    let row = |mailbox: &'_ str, folder: &'_ str| -> rusqlite::Result<i64> {
        insert_item(
            &tx,
            &ItemRow {
                mailbox,
                folder,
                subject: &msg.subject,
                body: &msg.body,
                body_type: msg.body_type,
                from_address: &msg.from.address,
                from_name: &msg.from.display_name,
                to: &msg.to,
                cc: &msg.cc,
                received: now,
            },
        )
    };
    for mailbox in &recipients {
        row(mailbox, "inbox")?;
    }
    let saved = match save_copy_in {
        Some(folder) => {
            let id = row(&msg.from.address, folder)?;
            mark_read(&tx, &msg.from.address, id)?;
            Some(id)
        }
        None => None,
    };
    tx.commit()?;
    Ok(Delivery::Delivered { saved })
}

/// Saves `msg` unsent (a draft) in `folder` of the sender's mailbox.
pub fn save(conn: &mut Connection, msg: &NewMessage, folder: &str) -> Result<i64, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let id = insert_item(
        &tx,
        &ItemRow {
            mailbox: &msg.from.address,
            folder,
            subject: &msg.subject,
            body: &msg.body,
            body_type: msg.body_type,
            from_address: &msg.from.address,
            from_name: &msg.from.display_name,
            to: &msg.to,
            cc: &msg.cc,
            received: unix_now(),
        },
    )?;
    mark_read(&tx, &msg.from.address, id)?;
    tx.commit()?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::super::{find_mailbox, Store};
    use super::*;
    use crate::mock::users::Mailbox;

    fn alice(conn: &Connection) -> Mailbox {
        find_mailbox(conn, "alice@lab.com").unwrap().unwrap()
    }

    #[test]
    fn send_delivers_and_saves_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut conn = store.conn.lock().unwrap();
        let msg = NewMessage {
            from: alice(&conn),
            to: vec!["bob@lab.com".into()],
            cc: vec!["alice@lab.com".into()],
            bcc: vec!["bob@lab.com".into()],
            subject: "Hi".into(),
            body: "<b>x</b>".into(),
            body_type: BodyType::Html,
        };
        let out = send(&mut conn, &msg, Some("sentitems")).unwrap();
        let Delivery::Delivered { saved: Some(saved) } = out else {
            panic!("{out:?}")
        };
        let bob = list_items(&conn, "bob@lab.com", "inbox").unwrap();
        assert_eq!(bob.len(), 2, "one copy although also in Bcc");
        assert_eq!(bob[0].subject, "Hi");
        assert_eq!(bob[0].cc, vec!["alice@lab.com".to_string()]);
        assert_eq!(bob[0].body_type, BodyType::Html);
        assert_eq!(
            folder_counts(&conn, "alice@lab.com", "inbox")
                .unwrap()
                .unread,
            2
        );
        let copy = get_item(&conn, "alice@lab.com", saved).unwrap().unwrap();
        assert_eq!(copy.folder, "sentitems");
        assert!(copy.is_read);
        assert!(get_item(&conn, "bob@lab.com", saved).unwrap().is_none());

        let bad = NewMessage {
            to: vec!["nobody@elsewhere.example".into()],
            ..msg.clone()
        };
        assert_eq!(
            send(&mut conn, &bad, None).unwrap(),
            Delivery::InvalidRecipients(vec!["nobody@elsewhere.example".into()])
        );
        let none = NewMessage {
            to: vec![],
            cc: vec![],
            bcc: vec![],
            ..msg.clone()
        };
        assert_eq!(
            send(&mut conn, &none, None).unwrap(),
            Delivery::InvalidRecipients(vec![])
        );
        let draft = save(&mut conn, &msg, "drafts").unwrap();
        assert_eq!(
            get_item(&conn, "alice@lab.com", draft)
                .unwrap()
                .unwrap()
                .folder,
            "drafts"
        );
    }
}
