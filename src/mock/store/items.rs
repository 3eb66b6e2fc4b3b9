//! Messages: listing, reading and counting them, and the changes a client
//! makes (delivering, saving a copy, marking read), as operations of a
//! [`Batch`].

use rusqlite::{params, Connection, OptionalExtension};

use super::batch::{Batch, NewItem, Op};
use super::types::{BodyType, FolderCounts, Item, NewMessage};
use super::StoreError;
use crate::mock::directory;

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
                            from_name, to_rcpt, cc_rcpt, received, is_read, message_id, headers";

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
        message_id: r.get(12)?,
        headers: r.get(13)?,
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

/// Marks an item of `mailbox` read, when it exists and is unread (reading
/// an item twice writes nothing).
pub fn mark_read(batch: &mut Batch<'_>, mailbox: &str, id: i64) -> Result<(), StoreError> {
    let unread: Option<bool> = batch
        .conn()
        .query_row(
            "SELECT is_read = 0 FROM items WHERE mailbox = ?1 AND id = ?2",
            params![mailbox, id],
            |r| r.get(0),
        )
        .optional()?;
    if unread == Some(true) {
        batch.apply(Op::MarkRead {
            mailbox: mailbox.to_string(),
            id,
        })?;
    }
    Ok(())
}

fn new_item(
    msg: &NewMessage,
    mailbox: &str,
    folder: &str,
    received: i64,
    is_read: bool,
) -> NewItem {
    NewItem {
        id: None,
        mailbox: mailbox.to_string(),
        folder: folder.to_string(),
        subject: msg.subject.clone(),
        body: msg.body.clone(),
        body_type: msg.body_type,
        from_address: msg.from.address.clone(),
        from_name: msg.from.display_name.clone(),
        to: msg.to.clone(),
        cc: msg.cc.clone(),
        received,
        is_read,
        message_id: msg.message_id.clone(),
        headers: msg.headers.clone(),
    }
}

/// Delivers `msg` into the inbox of each of `recipients` (mailbox
/// addresses of this database), unread, received at `received` (Unix
/// seconds). A message with a `Message-ID` already in a recipient's inbox
/// is not delivered to that recipient again (a hub's retry, or a client's
/// resend of a message cut before its `250`); returns how many copies were
/// written.
pub fn deliver(
    batch: &mut Batch<'_>,
    msg: &NewMessage,
    recipients: &[String],
    received: i64,
) -> Result<usize, StoreError> {
    let mut written = 0;
    for mailbox in recipients {
        if let Some(id) = &msg.message_id {
            if holds_message_id(batch.conn(), mailbox, id)? {
                continue;
            }
        }
        batch.apply(Op::Insert(new_item(msg, mailbox, "inbox", received, false)))?;
        written += 1;
    }
    Ok(written)
}

/// Whether `mailbox`'s inbox holds an item with `Message-ID` `id`.
fn holds_message_id(conn: &Connection, mailbox: &str, id: &str) -> Result<bool, StoreError> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM items WHERE mailbox = ?1 AND message_id = ?2 AND folder = 'inbox'",
        params![mailbox, id],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// Saves `msg` in `folder` of the sender's mailbox, read (a sent copy or a
/// draft); returns its id.
pub fn save(
    batch: &mut Batch<'_>,
    msg: &NewMessage,
    folder: &str,
    received: i64,
) -> Result<i64, StoreError> {
    batch.apply(Op::Insert(new_item(
        msg,
        &msg.from.address,
        folder,
        received,
        true,
    )))
}

/// The welcome message every mailbox of `database` finds in its inbox,
/// dated an hour before `now` (Unix seconds).
pub fn welcome(batch: &mut Batch<'_>, database: &str, now: i64) -> Result<(), StoreError> {
    for mailbox in directory::lab().in_database(database) {
        let body = format!(
            "Hello {},\n\nyour mailbox {} is served by the casarray lab. \
             Any server of the array can open it.",
            mailbox.display_name, mailbox.address
        );
        batch.apply(Op::Insert(NewItem {
            id: None,
            mailbox: mailbox.address.clone(),
            folder: "inbox".into(),
            subject: "Welcome to the casarray lab".into(),
            body,
            body_type: BodyType::Text,
            from_address: "administrator@lab.com".into(),
            from_name: "Administrator".into(),
            to: vec![mailbox.address.clone()],
            cc: vec![],
            received: now - 3600,
            is_read: false,
            message_id: None,
            headers: String::new(),
        }))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{batch, Store};
    use super::*;

    #[test]
    fn deliver_save_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db01.sqlite"), "DB01").unwrap();
        let mut conn = store.lock().unwrap();
        let alice = directory::lab().find("alice@lab.com").unwrap().clone();
        let msg = NewMessage {
            from: alice.clone(),
            to: vec!["alice@lab.com".into()],
            cc: vec!["bob@lab.com".into()],
            bcc: vec![],
            subject: "Hi".into(),
            body: "<b>x</b>".into(),
            body_type: BodyType::Html,
            message_id: None,
            headers: String::new(),
        };
        let saved = batch::write(
            &mut conn,
            |b| {
                welcome(b, "DB01", 10_000)?;
                deliver(b, &msg, &["alice@lab.com".to_string()], 10_001)?;
                save(b, &msg, "sentitems", 10_001)
            },
            |_, ops| {
                assert_eq!(ops.len(), 3);
                Ok(())
            },
        )
        .unwrap();
        let inbox = list_items(&conn, "alice@lab.com", "inbox").unwrap();
        assert_eq!(inbox.len(), 2);
        assert_eq!(inbox[0].subject, "Hi", "newest first");
        assert_eq!(inbox[0].cc, vec!["bob@lab.com".to_string()]);
        assert_eq!(inbox[0].body_type, BodyType::Html);
        assert_eq!(inbox[1].received, 10_000 - 3600);
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

        let id = inbox[0].id;
        let ops = std::cell::Cell::new(0);
        for _ in 0..2 {
            batch::write(
                &mut conn,
                |b| mark_read(b, "alice@lab.com", id),
                |_, o| {
                    ops.set(ops.get() + o.len());
                    Ok(())
                },
            )
            .unwrap();
        }
        assert_eq!(ops.get(), 1, "the second read writes nothing");
        assert!(
            get_item(&conn, "alice@lab.com", id)
                .unwrap()
                .unwrap()
                .is_read
        );
    }
}
