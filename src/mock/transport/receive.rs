//! Local delivery: mail for the lab's domain goes into each recipient's
//! mailbox database, through its active copy (here, or on the server that
//! holds it: `databases::deliver`), deduplicated by Message-ID. A database
//! with no mounted copy now (failing over) does not refuse the mail: its
//! recipients are handed back to be queued and retried.

use std::collections::BTreeMap;

use crate::mock::databases::deliver;
use crate::mock::directory;
use crate::mock::format::clock::unix_now;
use crate::mock::shared::Shared;
use crate::mock::store::NewMessage;

/// Whether `rcpt` is a mailbox of the lab (its exact primary address).
pub fn is_mailbox(rcpt: &str) -> bool {
    directory::lab()
        .find(rcpt)
        .is_some_and(|m| m.address.eq_ignore_ascii_case(rcpt))
}

/// Delivers `msg` to the lab mailboxes `rcpts`; returns the recipients
/// whose database could not take it now (to queue).
pub async fn deliver_local(shared: &Shared, msg: &NewMessage, rcpts: &[String]) -> Vec<String> {
    let dir = directory::lab();
    let mut by_db: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rcpts {
        if let Some(m) = dir.find(r).filter(|m| m.address.eq_ignore_ascii_case(r)) {
            let list = by_db.entry(m.database.clone()).or_default();
            if !list.contains(&m.address) {
                list.push(m.address.clone());
            }
        }
    }
    let mut deferred = Vec::new();
    for (database, list) in by_db {
        match deliver::deliver(shared, &database, msg, &list, unix_now()).await {
            Ok(_) => {
                tracing::info!(hub = %shared.name, database = %database, rcpts = ?list,
                    message_id = ?msg.message_id, "delivered to the mailbox database");
            }
            Err(why) => {
                tracing::warn!(hub = %shared.name, database = %database, reason = %why,
                    "mailbox database cannot take mail now: queued");
                deferred.extend(list);
            }
        }
    }
    deferred
}
