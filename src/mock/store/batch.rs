//! Every change to a database is a list of operations applied in one
//! transaction: the same list is what a DAG writes to its log generation
//! and what a passive copy replays, so every copy ends up with the same
//! rows (item ids included).

use rusqlite::{params, Connection, Transaction, TransactionBehavior};

use super::schema::{self, Position};
use super::types::BodyType;
use super::StoreError;

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
// An Op lives for one transaction (and its log line); boxing the item would
// buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Op {
    /// A new item. `id` is filled in when the active copy applies it, so
    /// that replaying it makes the same row.
    Insert(NewItem),
    /// An item was read.
    MarkRead { mailbox: String, id: i64 },
}

/// An item to insert.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewItem {
    #[serde(default)]
    pub id: Option<i64>,
    pub mailbox: String,
    pub folder: String,
    pub subject: String,
    pub body: String,
    pub body_type: BodyType,
    pub from_address: String,
    pub from_name: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// Unix time, seconds.
    pub received: i64,
    pub is_read: bool,
    /// See `NewMessage::message_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// See `NewMessage::headers`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub headers: String,
}

/// Applies `op`, filling in a new item's id; returns the item's id.
fn apply(conn: &Connection, op: &mut Op) -> rusqlite::Result<i64> {
    match op {
        Op::Insert(item) => {
            conn.execute(
                "INSERT INTO items (id, mailbox, folder, subject, body, body_type, from_address,
                                    from_name, to_rcpt, cc_rcpt, received, is_read,
                                    message_id, headers)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    item.id,
                    item.mailbox,
                    item.folder,
                    item.subject,
                    item.body,
                    item.body_type.as_ews(),
                    item.from_address,
                    item.from_name,
                    item.to.join("\n"),
                    item.cc.join("\n"),
                    item.received,
                    item.is_read,
                    item.message_id,
                    item.headers,
                ],
            )?;
            let id = conn.last_insert_rowid();
            item.id = Some(id);
            Ok(id)
        }
        Op::MarkRead { mailbox, id } => {
            conn.execute(
                "UPDATE items SET is_read = 1 WHERE mailbox = ?1 AND id = ?2",
                params![&*mailbox, *id],
            )?;
            Ok(*id)
        }
    }
}

/// The changes of one transaction being made.
pub struct Batch<'c> {
    tx: Transaction<'c>,
    ops: Vec<Op>,
}

impl Batch<'_> {
    /// The connection, to read inside the transaction.
    pub fn conn(&self) -> &Connection {
        &self.tx
    }

    /// Applies `op` and records it; returns the item's id.
    pub fn apply(&mut self, mut op: Op) -> Result<i64, StoreError> {
        let id = apply(&self.tx, &mut op)?;
        self.ops.push(op);
        Ok(id)
    }
}

/// Runs `f` in an immediate transaction. When it applied operations,
/// `seal` runs with them before the commit (a DAG's active copy checks its
/// right to write there and appends the log generation); an error from
/// `f` or `seal` rolls everything back.
pub fn write<R>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Batch<'_>) -> Result<R, StoreError>,
    seal: impl FnOnce(&Connection, &[Op]) -> Result<(), StoreError>,
) -> Result<R, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut batch = Batch {
        tx,
        ops: Vec::new(),
    };
    let result = f(&mut batch)?;
    if !batch.ops.is_empty() {
        seal(&batch.tx, &batch.ops)?;
    }
    batch.tx.commit()?;
    Ok(result)
}

/// Applies log generation `position.generation` (written in
/// `position.epoch`) when it is the next one for this copy; returns
/// whether it did. One transaction: the rows and the new position.
pub fn replay(conn: &mut Connection, position: Position, ops: &[Op]) -> Result<bool, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let at = schema::position(&tx)?;
    if at.generation + 1 != position.generation {
        return Ok(false);
    }
    for op in ops {
        let mut op = op.clone();
        apply(&tx, &mut op)?;
    }
    schema::set_position(&tx, position)?;
    tx.commit()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(subject: &str) -> NewItem {
        NewItem {
            id: None,
            mailbox: "alice@lab.com".into(),
            folder: "inbox".into(),
            subject: subject.into(),
            body: "b".into(),
            body_type: BodyType::Html,
            from_address: "bob@lab.com".into(),
            from_name: "Bob".into(),
            to: vec!["alice@lab.com".into()],
            cc: vec![],
            received: 7,
            is_read: false,
            message_id: None,
            headers: String::new(),
        }
    }

    #[test]
    fn ops_serialize_tagged_and_replay_identically() {
        let dir = tempfile::tempdir().unwrap();
        let a = super::super::Store::open(&dir.path().join("a.sqlite"), "DB01").unwrap();
        let b = super::super::Store::open(&dir.path().join("b.sqlite"), "DB01").unwrap();
        let mut recorded = Vec::new();
        {
            let mut conn = a.lock().unwrap();
            write(
                &mut conn,
                |batch| {
                    let id = batch.apply(Op::Insert(item("one")))?;
                    batch.apply(Op::MarkRead {
                        mailbox: "alice@lab.com".into(),
                        id,
                    })?;
                    Ok(())
                },
                |_, ops| {
                    recorded = ops.to_vec();
                    Ok(())
                },
            )
            .unwrap();
        }
        let json = serde_json::to_string(&recorded).unwrap();
        assert!(json.contains("\"op\":\"insert\"") && json.contains("\"body_type\":\"HTML\""));
        let back: Vec<Op> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, recorded);
        let Op::Insert(first) = &back[0] else {
            panic!("{back:?}")
        };
        assert!(first.id.is_some(), "the id is in the log");

        let mut conn = b.lock().unwrap();
        let at = |generation| Position {
            generation,
            epoch: 1,
        };
        assert!(!replay(&mut conn, at(2), &back).unwrap(), "out of order");
        assert!(replay(&mut conn, at(1), &back).unwrap());
        assert!(!replay(&mut conn, at(1), &back).unwrap(), "once");
        assert_eq!(schema::position(&conn).unwrap(), at(1));
        let items = super::super::list_items(&conn, "alice@lab.com", "inbox").unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(Some(items[0].id), first.id);
        assert!(items[0].is_read);
    }

    #[test]
    fn a_failing_seal_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let a = super::super::Store::open(&dir.path().join("a.sqlite"), "DB01").unwrap();
        let mut conn = a.lock().unwrap();
        let out = write(
            &mut conn,
            |batch| batch.apply(Op::Insert(item("x"))),
            |_, _| Err(StoreError::Fenced("not the active copy".into())),
        );
        assert!(matches!(out, Err(StoreError::Fenced(_))));
        assert!(super::super::list_items(&conn, "alice@lab.com", "inbox")
            .unwrap()
            .is_empty());
    }
}
