//! EWS `CreateItem` (messages: `SendOnly`, `SaveOnly`, `SendAndSaveCopy`).
//!
//! Every recipient of the lab's domain must be a mailbox of the directory
//! (`ErrorInvalidRecipients` otherwise, and nothing is delivered);
//! recipients of other domains are handed to this server's hub transport
//! by SMTP (`transport::submit`), which queues them for its send connector
//! (`ErrorInvalidRecipients` when the server runs no hub).
//! Recipients in other databases are delivered first (into their
//! database's active copy, here or on another server; a database with no
//! mounted copy gives `ErrorMailboxStoreUnavailable` for that message);
//! then the sender's database gets, in one transaction (one log
//! generation in a DAG), the copies for its own recipients and the saved
//! copy. Everything is on disk before the answer.

use std::collections::BTreeMap;

use crate::mock::databases::{deliver, DbHandle};
use crate::mock::directory;
use crate::mock::format::clock::unix_now;
use crate::mock::format::xml::{escape, Element};
use crate::mock::http::ews::folders::{folder_id_elements, resolve, FolderRef};
use crate::mock::http::ews::soap::{self, Code};
use crate::mock::http::ids;
use crate::mock::shared::Shared;
use crate::mock::store::{self, BodyType, NewMessage, StoreError};
use crate::mock::transport;
use crate::mock::users::Mailbox;

const OP: &str = "CreateItem";

/// `MessageDisposition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposition {
    SaveOnly,
    SendOnly,
    SendAndSaveCopy,
}

fn recipients(message: &Element, list: &str) -> Vec<String> {
    message
        .child(list)
        .map(|l| {
            l.children_named("Mailbox")
                .filter_map(|m| m.child_text("EmailAddress"))
                .filter(|a| !a.is_empty())
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default()
}

fn new_message(me: &Mailbox, el: &Element) -> NewMessage {
    let body = el.child("Body");
    NewMessage {
        from: me.clone(),
        to: recipients(el, "ToRecipients"),
        cc: recipients(el, "CcRecipients"),
        bcc: recipients(el, "BccRecipients"),
        subject: el.child_text("Subject").unwrap_or_default().to_string(),
        body: body.map(|b| b.text.clone()).unwrap_or_default(),
        body_type: BodyType::from_ews(body.and_then(|b| b.attr("BodyType")).unwrap_or("Text")),
        message_id: None,
        headers: String::new(),
    }
}

/// The recipients' mailboxes by database, or the addresses that are no
/// mailbox (all of To, Cc and Bcc; each mailbox once).
fn resolve_recipients(msg: &NewMessage) -> Result<BTreeMap<String, Vec<String>>, Vec<String>> {
    let dir = directory::lab();
    let mut by_db: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut invalid = Vec::new();
    for address in msg.to.iter().chain(&msg.cc).chain(&msg.bcc) {
        match dir.find(address) {
            Some(mb) if address.contains('@') => {
                let list = by_db.entry(mb.database.clone()).or_default();
                if !list.contains(&mb.address) {
                    list.push(mb.address.clone());
                }
            }
            _ => invalid.push(address.clone()),
        }
    }
    if !invalid.is_empty() || by_db.is_empty() {
        return Err(invalid);
    }
    Ok(by_db)
}

/// `CreateItem`: one response message per item; also the last log
/// generation written to the sender's database (0 when none).
pub async fn create_item(
    shared: &Shared,
    db: &DbHandle,
    me: &Mailbox,
    op: &Element,
) -> Result<(String, u64), StoreError> {
    let fail = |code| {
        Ok((
            soap::operation_response(OP, &[soap::response_message(OP, code, "<m:Items/>")]),
            0,
        ))
    };
    let Some(items) = op.child("Items") else {
        return fail(Code::ErrorInvalidRequest);
    };
    let disposition = match op.attr("MessageDisposition") {
        Some("SaveOnly") => Some(Disposition::SaveOnly),
        Some("SendOnly") => Some(Disposition::SendOnly),
        Some("SendAndSaveCopy") => Some(Disposition::SendAndSaveCopy),
        Some(_) => return fail(Code::ErrorInvalidRequest),
        None => None,
    };
    let saved_in = match op
        .child("SavedItemFolderId")
        .map(|s| folder_id_elements(s).next())
    {
        None => None,
        Some(None) => return fail(Code::ErrorInvalidRequest),
        Some(Some(el)) => match resolve(el, me) {
            Ok(FolderRef::Mail(name)) => Some(name),
            Ok(_) => return fail(Code::ErrorInvalidOperation),
            Err(code) => return fail(code),
        },
    };
    let mut messages = Vec::new();
    let mut generation = 0;
    for el in &items.children {
        if el.name != "Message" {
            messages.push(soap::response_message(
                OP,
                Code::ErrorInvalidOperation,
                "<m:Items/>",
            ));
            continue;
        }
        let Some(disposition) = disposition else {
            messages.push(soap::response_message(
                OP,
                Code::ErrorMessageDispositionRequired,
                "<m:Items/>",
            ));
            continue;
        };
        let msg = new_message(me, el);
        let now = unix_now();
        let message = match disposition {
            Disposition::SaveOnly => {
                let folder = saved_in.unwrap_or("drafts");
                let m = msg.clone();
                let (id, g) = db.write(move |b| store::save(b, &m, folder, now)).await?;
                generation = generation.max(g);
                let content = format!(
                    "<m:Items><t:Message><t:ItemId Id=\"{}\" ChangeKey=\"{}\"/></t:Message></m:Items>",
                    escape(&ids::item_id(&me.address, id)),
                    ids::CHANGE_KEY
                );
                soap::response_message(OP, Code::NoError, &content)
            }
            Disposition::SendOnly | Disposition::SendAndSaveCopy => {
                let copy = (disposition == Disposition::SendAndSaveCopy)
                    .then(|| saved_in.unwrap_or("sentitems"));
                match send(shared, db, &msg, copy, now).await? {
                    Ok(g) => {
                        generation = generation.max(g);
                        tracing::info!(from = %me.address, to = ?msg.to, "EWS message sent");
                        soap::response_message(OP, Code::NoError, "<m:Items/>")
                    }
                    Err(code) => soap::response_message(OP, code, "<m:Items/>"),
                }
            }
        };
        messages.push(message);
    }
    if messages.is_empty() {
        return fail(Code::ErrorInvalidRequest);
    }
    Ok((soap::operation_response(OP, &messages), generation))
}

/// Sends one message: `Ok(Ok(generation))` when delivered everywhere,
/// `Ok(Err(code))` for a refusal, `Err` when the sender's database failed.
async fn send(
    shared: &Shared,
    db: &DbHandle,
    msg: &NewMessage,
    copy: Option<&'static str>,
    now: i64,
) -> Result<Result<u64, Code>, StoreError> {
    // Recipients of other domains go out through this server's hub
    // transport (the send connector), when it runs one.
    let (external, internal) = transport::submit::split(msg);
    let mut by_db = if internal.to.is_empty() && internal.cc.is_empty() && internal.bcc.is_empty() {
        BTreeMap::new()
    } else {
        match resolve_recipients(&internal) {
            Ok(map) => map,
            Err(bad) => {
                tracing::info!(from = %msg.from.address, ?bad, "EWS send refused");
                return Ok(Err(Code::ErrorInvalidRecipients));
            }
        }
    };
    if !external.is_empty() {
        let Some(hub) = shared.hub.get().copied() else {
            tracing::info!(from = %msg.from.address, ?external,
                "EWS send refused: no hub transport for other domains");
            return Ok(Err(Code::ErrorInvalidRecipients));
        };
        if let Err(why) = transport::submit::submit(hub, &shared.fqdn, msg, &external, now).await {
            tracing::warn!(from = %msg.from.address, ?external, reason = %why,
                "the hub transport did not take the message");
            return Ok(Err(Code::ErrorMailboxStoreUnavailable));
        }
    }
    let own_key = by_db
        .keys()
        .find(|k| k.eq_ignore_ascii_case(db.database()))
        .cloned();
    let local = own_key.and_then(|k| by_db.remove(&k)).unwrap_or_default();
    for (database, rcpts) in &by_db {
        if let Err(why) = deliver::deliver(shared, database, msg, rcpts, now).await {
            tracing::warn!(from = %msg.from.address, database = %database, reason = %why,
                "delivery to another database failed");
            return Ok(Err(Code::ErrorMailboxStoreUnavailable));
        }
    }
    if local.is_empty() && copy.is_none() {
        return Ok(Ok(0));
    }
    let m = msg.clone();
    let ((), generation) = db
        .write(move |b| {
            store::deliver(b, &m, &local, now)?;
            if let Some(folder) = copy {
                store::save(b, &m, folder, now)?;
            }
            Ok(())
        })
        .await?;
    Ok(Ok(generation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::format::xml;

    #[test]
    fn reads_a_message() {
        let me = directory::lab().find("bob@lab.com").unwrap().clone();
        let el = xml::parse(
            r#"<t:Message><t:Subject>Hi</t:Subject><t:Body BodyType="HTML">&lt;b&gt;x&lt;/b&gt;</t:Body>
               <t:ToRecipients><t:Mailbox><t:EmailAddress>Alice@Lab.com</t:EmailAddress></t:Mailbox></t:ToRecipients>
               <t:CcRecipients><t:Mailbox><t:Name>B</t:Name><t:EmailAddress>bob@lab.com</t:EmailAddress></t:Mailbox></t:CcRecipients>
               </t:Message>"#,
        )
        .unwrap();
        let msg = new_message(&me, &el);
        assert_eq!(msg.subject, "Hi");
        assert_eq!(msg.body, "<b>x</b>");
        assert_eq!(msg.body_type, BodyType::Html);
        assert_eq!(msg.to, vec!["alice@lab.com".to_string()]);
        assert_eq!(msg.cc, vec!["bob@lab.com".to_string()]);
        assert!(msg.bcc.is_empty());
        let by_db = resolve_recipients(&msg).unwrap();
        assert_eq!(by_db["DB01"], ["alice@lab.com"]);
        assert_eq!(by_db["DB02"], ["bob@lab.com"]);
        let bad = NewMessage {
            to: vec!["nobody@elsewhere.example".into()],
            cc: vec![],
            ..msg.clone()
        };
        assert_eq!(
            resolve_recipients(&bad).unwrap_err(),
            ["nobody@elsewhere.example"]
        );
        let none = NewMessage {
            to: vec![],
            cc: vec![],
            ..msg
        };
        assert!(resolve_recipients(&none).unwrap_err().is_empty());
    }

    #[tokio::test]
    async fn sends_across_databases() {
        let (_dir, shared) = Shared::for_tests();
        let bob = directory::lab().find("bob@lab.com").unwrap().clone();
        let db = shared.databases.local("DB02").unwrap();
        let op = xml::parse(
            r#"<m:CreateItem MessageDisposition="SendAndSaveCopy"><m:Items><t:Message>
               <t:Subject>Across</t:Subject>
               <t:ToRecipients><t:Mailbox><t:EmailAddress>alice@lab.com</t:EmailAddress></t:Mailbox></t:ToRecipients>
               </t:Message></m:Items></m:CreateItem>"#,
        )
        .unwrap();
        let (xml, _) = create_item(&shared, &db, &bob, &op).await.unwrap();
        assert!(xml.contains("ResponseClass=\"Success\""), "{xml}");
        let alice = shared.databases.local("DB01").unwrap();
        let inbox = alice
            .read(|c| store::list_items(c, "alice@lab.com", "inbox"))
            .await
            .unwrap();
        assert_eq!(inbox[0].subject, "Across");
        let sent = db
            .read(|c| store::list_items(c, "bob@lab.com", "sentitems"))
            .await
            .unwrap();
        assert_eq!(sent.len(), 1);
    }
}
