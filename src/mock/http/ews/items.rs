//! EWS `GetItem`: one message per `ItemId`, with its body and
//! recipients.

use rusqlite::Connection;

use crate::mock::directory;
use crate::mock::format::xml::Element;
use crate::mock::http::ews::soap::{self, Code, Shape};
use crate::mock::http::ids;
use crate::mock::store::{self, StoreError};
use crate::mock::users::Mailbox;

/// `GetItem`: one response message per `ItemId`.
pub fn get_item(conn: &Connection, me: &Mailbox, op: &Element) -> Result<String, StoreError> {
    const OP: &str = "GetItem";
    let ids_el = op.child("ItemIds");
    let name_of = |a: &str| {
        directory::lab()
            .display_name(a)
            .map_or_else(|| a.to_string(), str::to_string)
    };
    let mut messages = Vec::new();
    for el in ids_el.iter().flat_map(|i| i.children_named("ItemId")) {
        let Some((owner, id)) = el.attr("Id").and_then(ids::parse_item_id) else {
            messages.push(soap::response_message(
                OP,
                Code::ErrorInvalidIdMalformed,
                "<m:Items/>",
            ));
            continue;
        };
        let found = if owner.eq_ignore_ascii_case(&me.address) {
            store::get_item(conn, &me.address, id)?
        } else {
            None
        };
        let message = match found {
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
