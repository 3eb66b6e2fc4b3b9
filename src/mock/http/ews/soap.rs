//! Writing EWS answers: the SOAP 1.1 envelope with `ServerVersionInfo`,
//! response messages with Exchange's response codes, folders, items and
//! mailboxes in the `types` namespace, and the schema-validation fault.

use std::fmt::Write as _;

use crate::mock::format::clock;
use crate::mock::format::xml::escape;
use crate::mock::http::ids;
use crate::mock::store::{FolderCounts, Item};

pub const SOAP_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const MESSAGES_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
pub const TYPES_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
pub const ERRORS_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/errors";

/// The response codes this server answers with (EWS `ResponseCodeType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    NoError,
    ErrorAccessDenied,
    ErrorFolderNotFound,
    ErrorInternalServerError,
    ErrorInvalidIdMalformed,
    ErrorInvalidOperation,
    ErrorInvalidRecipients,
    ErrorInvalidRequest,
    ErrorItemNotFound,
    ErrorMailboxStoreUnavailable,
    ErrorMessageDispositionRequired,
    ErrorUnsupportedPathForQuery,
}

impl Code {
    /// The `ResponseCode` text.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::NoError => "NoError",
            Code::ErrorAccessDenied => "ErrorAccessDenied",
            Code::ErrorFolderNotFound => "ErrorFolderNotFound",
            Code::ErrorInternalServerError => "ErrorInternalServerError",
            Code::ErrorInvalidIdMalformed => "ErrorInvalidIdMalformed",
            Code::ErrorInvalidOperation => "ErrorInvalidOperation",
            Code::ErrorInvalidRecipients => "ErrorInvalidRecipients",
            Code::ErrorInvalidRequest => "ErrorInvalidRequest",
            Code::ErrorItemNotFound => "ErrorItemNotFound",
            Code::ErrorMailboxStoreUnavailable => "ErrorMailboxStoreUnavailable",
            Code::ErrorMessageDispositionRequired => "ErrorMessageDispositionRequired",
            Code::ErrorUnsupportedPathForQuery => "ErrorUnsupportedPathForQuery",
        }
    }

    /// The `MessageText` Exchange sends with the code.
    pub fn message(self) -> &'static str {
        match self {
            Code::NoError => "",
            Code::ErrorAccessDenied => "Access is denied. Check credentials and try again.",
            Code::ErrorFolderNotFound => "The specified folder could not be found in the store.",
            Code::ErrorInternalServerError => {
                "An internal server error occurred. The operation failed."
            }
            Code::ErrorInvalidIdMalformed => "Id is malformed.",
            Code::ErrorInvalidOperation => "The operation isn't supported by this server.",
            Code::ErrorInvalidRecipients => "At least one recipient isn't valid.",
            Code::ErrorInvalidRequest => "The request is invalid.",
            Code::ErrorItemNotFound => "The specified object was not found in the store.",
            Code::ErrorMailboxStoreUnavailable => {
                "The mailbox database is temporarily unavailable."
            }
            Code::ErrorMessageDispositionRequired => "MessageDisposition attribute is required.",
            Code::ErrorUnsupportedPathForQuery => {
                "The property path isn't supported for this query."
            }
        }
    }
}

/// A whole SOAP answer around `body` (the operation's response element).
pub fn envelope(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <s:Envelope xmlns:s=\"{SOAP_NS}\">\
         <s:Header>\
         <h:ServerVersionInfo MajorVersion=\"15\" MinorVersion=\"0\" MajorBuildNumber=\"1497\" \
         MinorBuildNumber=\"2\" Version=\"V2_23\" xmlns:h=\"{TYPES_NS}\" xmlns=\"{TYPES_NS}\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"/>\
         </s:Header>\
         <s:Body xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\">{body}</s:Body>\
         </s:Envelope>"
    )
}

/// `<m:{op}Response>` holding one response message per entry of `messages`.
pub fn operation_response(op: &str, messages: &[String]) -> String {
    let mut out = format!(
        "<m:{op}Response xmlns:m=\"{MESSAGES_NS}\" xmlns:t=\"{TYPES_NS}\"><m:ResponseMessages>"
    );
    for m in messages {
        out.push_str(m);
    }
    let _ = write!(out, "</m:ResponseMessages></m:{op}Response>");
    out
}

/// One `<m:{op}ResponseMessage>`: `NoError` and `content`, or an error
/// with Exchange's message text (and `content`, when the schema wants an
/// empty container even on error).
pub fn response_message(op: &str, code: Code, content: &str) -> String {
    if code == Code::NoError {
        format!(
            "<m:{op}ResponseMessage ResponseClass=\"Success\">\
             <m:ResponseCode>NoError</m:ResponseCode>{content}</m:{op}ResponseMessage>"
        )
    } else {
        format!(
            "<m:{op}ResponseMessage ResponseClass=\"Error\">\
             <m:MessageText>{}</m:MessageText>\
             <m:ResponseCode>{}</m:ResponseCode>\
             <m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>{content}</m:{op}ResponseMessage>",
            escape(code.message()),
            code.as_str()
        )
    }
}

/// The SOAP fault for a request that is not a valid EWS envelope.
pub fn schema_fault(detail: &str) -> String {
    let text = format!("The request failed schema validation: {detail}");
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <s:Envelope xmlns:s=\"{SOAP_NS}\"><s:Body><s:Fault>\
         <faultcode xmlns:a=\"{TYPES_NS}\">a:ErrorSchemaValidation</faultcode>\
         <faultstring xml:lang=\"en-US\">{0}</faultstring>\
         <detail>\
         <e:ResponseCode xmlns:e=\"{ERRORS_NS}\">ErrorSchemaValidation</e:ResponseCode>\
         <e:Message xmlns:e=\"{ERRORS_NS}\">{0}</e:Message>\
         </detail></s:Fault></s:Body></s:Envelope>",
        escape(&text)
    )
}

/// `<t:Mailbox>` with a name and an SMTP address.
pub fn mailbox(name: &str, address: &str) -> String {
    format!(
        "<t:Mailbox><t:Name>{}</t:Name><t:EmailAddress>{}</t:EmailAddress>\
         <t:RoutingType>SMTP</t:RoutingType><t:MailboxType>Mailbox</t:MailboxType></t:Mailbox>",
        escape(name),
        escape(address)
    )
}

/// A folder as `GetFolder` returns it (Default shape).
pub struct FolderView<'a> {
    pub id: String,
    pub parent_id: Option<String>,
    pub display_name: &'a str,
    pub counts: FolderCounts,
    pub child_folders: u64,
}

/// `<t:Folder>` in schema order.
pub fn folder(f: &FolderView<'_>) -> String {
    let mut out = String::from("<t:Folder>");
    let _ = write!(
        out,
        "<t:FolderId Id=\"{}\" ChangeKey=\"{}\"/>",
        escape(&f.id),
        ids::CHANGE_KEY
    );
    if let Some(parent) = &f.parent_id {
        let _ = write!(
            out,
            "<t:ParentFolderId Id=\"{}\" ChangeKey=\"{}\"/>",
            escape(parent),
            ids::CHANGE_KEY
        );
    }
    let _ = write!(
        out,
        "<t:FolderClass>IPF.Note</t:FolderClass><t:DisplayName>{}</t:DisplayName>\
         <t:TotalCount>{}</t:TotalCount><t:ChildFolderCount>{}</t:ChildFolderCount>\
         <t:UnreadCount>{}</t:UnreadCount></t:Folder>",
        escape(f.display_name),
        f.counts.total,
        f.child_folders,
        f.counts.unread
    );
    out
}

/// How much of an item to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `FindItem`: no body, no recipient lists.
    Summary,
    /// `GetItem`: body and recipients too.
    Full,
}

/// `<t:Message>` in schema order. `name_of` gives a display name for an
/// address.
pub fn message(item: &Item, shape: Shape, name_of: &dyn Fn(&str) -> String) -> String {
    let mut out = String::from("<t:Message>");
    let _ = write!(
        out,
        "<t:ItemId Id=\"{}\" ChangeKey=\"{}\"/>\
         <t:ParentFolderId Id=\"{}\" ChangeKey=\"{}\"/>\
         <t:ItemClass>IPM.Note</t:ItemClass><t:Subject>{}</t:Subject>",
        escape(&ids::item_id(&item.mailbox, item.id)),
        ids::CHANGE_KEY,
        escape(&ids::folder_id(&item.mailbox, &item.folder)),
        ids::CHANGE_KEY,
        escape(&item.subject)
    );
    if shape == Shape::Full {
        let _ = write!(
            out,
            "<t:Body BodyType=\"{}\">{}</t:Body>",
            item.body_type.as_ews(),
            escape(&item.body)
        );
    }
    let when = clock::iso8601(item.received);
    let display = |list: &[String]| {
        list.iter()
            .map(|a| name_of(a))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let _ = write!(
        out,
        "<t:DateTimeReceived>{when}</t:DateTimeReceived><t:Size>{}</t:Size>",
        item.subject.len() + item.body.len() + 512,
    );
    if shape == Shape::Full && !item.headers.is_empty() {
        out.push_str(&internet_headers(&item.headers));
    }
    let _ = write!(
        out,
        "<t:DateTimeSent>{when}</t:DateTimeSent><t:DateTimeCreated>{when}</t:DateTimeCreated>\
         <t:DisplayCc>{}</t:DisplayCc><t:DisplayTo>{}</t:DisplayTo>\
         <t:HasAttachments>false</t:HasAttachments>",
        escape(&display(&item.cc)),
        escape(&display(&item.to)),
    );
    let from = mailbox(&item.from_name, &item.from_address);
    if shape == Shape::Full {
        let _ = write!(out, "<t:Sender>{from}</t:Sender>");
        for (tag, list) in [("ToRecipients", &item.to), ("CcRecipients", &item.cc)] {
            if !list.is_empty() {
                let _ = write!(out, "<t:{tag}>");
                for address in list.iter() {
                    out.push_str(&mailbox(&name_of(address), address));
                }
                let _ = write!(out, "</t:{tag}>");
            }
        }
    }
    let _ = write!(out, "<t:From>{from}</t:From>");
    if let Some(id) = &item.message_id {
        let _ = write!(
            out,
            "<t:InternetMessageId>{}</t:InternetMessageId>",
            escape(id)
        );
    }
    let _ = write!(out, "<t:IsRead>{}</t:IsRead></t:Message>", item.is_read);
    out
}

/// `<t:InternetMessageHeaders>`: one `<t:InternetMessageHeader>` per field
/// of a header block as received (folded lines unfolded), in order.
fn internet_headers(block: &str) -> String {
    let mut out = String::from("<t:InternetMessageHeaders>");
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in block.split('\n').map(|l| l.trim_end_matches('\r')) {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    for (name, value) in fields {
        let _ = write!(
            out,
            "<t:InternetMessageHeader HeaderName=\"{}\">{}</t:InternetMessageHeader>",
            escape(&name),
            escape(&value)
        );
    }
    out.push_str("</t:InternetMessageHeaders>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::format::xml;
    use crate::mock::store::BodyType;

    fn item() -> Item {
        Item {
            id: 3,
            mailbox: "alice@lab.com".into(),
            folder: "inbox".into(),
            subject: "R&D <plans>".into(),
            body: "<p>hi</p>".into(),
            body_type: BodyType::Html,
            from_address: "bob@lab.com".into(),
            from_name: "Bob".into(),
            to: vec!["alice@lab.com".into()],
            cc: vec![],
            received: 0,
            is_read: false,
            message_id: None,
            headers: String::new(),
        }
    }

    #[test]
    fn full_message_parses_back() {
        let name_of = |a: &str| format!("Name of {a}");
        let body = operation_response(
            "GetItem",
            &[response_message(
                "GetItem",
                Code::NoError,
                &format!(
                    "<m:Items>{}</m:Items>",
                    message(&item(), Shape::Full, &name_of)
                ),
            )],
        );
        let doc = xml::parse(&envelope(&body)).unwrap();
        assert!(doc.find("ServerVersionInfo").is_some());
        let msg = doc.find("Message").unwrap();
        assert_eq!(msg.child_text("Subject"), Some("R&D <plans>"));
        assert_eq!(msg.child("Body").unwrap().attr("BodyType"), Some("HTML"));
        assert_eq!(msg.child_text("Body"), Some("<p>hi</p>"));
        let to = msg
            .child("ToRecipients")
            .unwrap()
            .find("EmailAddress")
            .unwrap();
        assert_eq!(to.trimmed_text(), "alice@lab.com");
        assert!(msg.child("CcRecipients").is_none());
        assert_eq!(
            msg.child("From")
                .unwrap()
                .find("Name")
                .unwrap()
                .trimmed_text(),
            "Bob"
        );
        assert_eq!(
            msg.child_text("DateTimeReceived"),
            Some("1970-01-01T00:00:00Z")
        );
    }

    #[test]
    fn errors_carry_text_and_code() {
        let m = response_message("GetItem", Code::ErrorItemNotFound, "<m:Items/>");
        let doc = xml::parse(&m).unwrap();
        assert_eq!(doc.attr("ResponseClass"), Some("Error"));
        assert_eq!(doc.child_text("ResponseCode"), Some("ErrorItemNotFound"));
        let fault = xml::parse(&schema_fault("bad <xml>")).unwrap();
        assert_eq!(
            fault.find("Fault").unwrap().child_text("faultcode"),
            Some("a:ErrorSchemaValidation")
        );
    }
}
