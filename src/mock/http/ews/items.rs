//! EWS `CreateItem` (messages: `SendOnly`, `SaveOnly`, `SendAndSaveCopy`)
//! and `GetItem`.
//!
//! Sending delivers a copy into the inbox of every recipient; recipients
//! must be mailboxes of the store (`ErrorInvalidRecipients` otherwise,
//! and nothing is delivered). The store commits (fsync) before the answer.

use rusqlite::Connection;

use crate::mock::format::xml::{escape, Element};
use crate::mock::http::ews::folders::{folder_id_elements, resolve, FolderRef};
use crate::mock::http::ews::soap::{self, Code, Shape};
use crate::mock::http::ids;
use crate::mock::store::{self, BodyType, Delivery, NewMessage, StoreError};
use crate::mock::users::Mailbox;

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
    }
}

/// `CreateItem`: one response message per item.
pub fn create_item(
    conn: &mut Connection,
    me: &Mailbox,
    op: &Element,
) -> Result<String, StoreError> {
    const OP: &str = "CreateItem";
    let fail = |code| {
        Ok(soap::operation_response(
            OP,
            &[soap::response_message(OP, code, "<m:Items/>")],
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
        let message = match disposition {
            Disposition::SaveOnly => {
                let id = store::save(conn, &msg, saved_in.unwrap_or("drafts"))?;
                let content = format!(
                    "<m:Items><t:Message><t:ItemId Id=\"{}\" ChangeKey=\"{}\"/></t:Message></m:Items>",
                    escape(&ids::item_id(id)),
                    ids::CHANGE_KEY
                );
                soap::response_message(OP, Code::NoError, &content)
            }
            Disposition::SendOnly | Disposition::SendAndSaveCopy => {
                let copy = (disposition == Disposition::SendAndSaveCopy)
                    .then(|| saved_in.unwrap_or("sentitems"));
                match store::send(conn, &msg, copy)? {
                    Delivery::Delivered { .. } => {
                        tracing::info!(from = %me.address, to = ?msg.to, "EWS message sent");
                        soap::response_message(OP, Code::NoError, "<m:Items/>")
                    }
                    Delivery::InvalidRecipients(bad) => {
                        tracing::info!(from = %me.address, ?bad, "EWS send refused");
                        soap::response_message(OP, Code::ErrorInvalidRecipients, "<m:Items/>")
                    }
                }
            }
        };
        messages.push(message);
    }
    if messages.is_empty() {
        return fail(Code::ErrorInvalidRequest);
    }
    Ok(soap::operation_response(OP, &messages))
}

/// `GetItem`: one response message per `ItemId`.
pub fn get_item(conn: &Connection, me: &Mailbox, op: &Element) -> Result<String, StoreError> {
    const OP: &str = "GetItem";
    let ids_el = op.child("ItemIds");
    let names = store::display_names(conn)?;
    let name_of = |a: &str| names.get(a).cloned().unwrap_or_else(|| a.to_string());
    let mut messages = Vec::new();
    for el in ids_el.iter().flat_map(|i| i.children_named("ItemId")) {
        let Some(id) = el.attr("Id").and_then(ids::parse_item_id) else {
            messages.push(soap::response_message(
                OP,
                Code::ErrorInvalidIdMalformed,
                "<m:Items/>",
            ));
            continue;
        };
        let message = match store::get_item(conn, &me.address, id)? {
            Some(item) => soap::response_message(
                OP,
                Code::NoError,
                &format!(
                    "<m:Items>{}</m:Items>",
                    soap::message(&item, Shape::Full, &name_of)
                ),
            ),
            None => soap::response_message(OP, Code::ErrorItemNotFound, "<m:Items/>"),
        };
        messages.push(message);
    }
    if messages.is_empty() {
        messages.push(soap::response_message(
            OP,
            Code::ErrorInvalidRequest,
            "<m:Items/>",
        ));
    }
    Ok(soap::operation_response(OP, &messages))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::format::xml;

    #[test]
    fn reads_a_message() {
        let me = Mailbox {
            address: "bob@lab.com".into(),
            display_name: "Bob".into(),
            database: "DB02".into(),
        };
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
    }
}
