//! Reading a received message (RFC 5322) for the mailbox store: its header
//! block, the fields the store shows (Subject, From, To, Cc, Message-ID)
//! and its body. Bodies are stored as sent (no MIME decoding); a
//! `text/html` top-level type is shown as HTML.

use crate::mock::directory;
use crate::mock::store::{BodyType, NewMessage};
use crate::mock::users::Mailbox;

/// A message split into what the store keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The header block, CRLF line ends, without the blank line.
    pub headers: String,
    pub subject: String,
    /// The From field's address and display name.
    pub from: Option<(String, String)>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub message_id: Option<String>,
    pub html: bool,
    pub body: String,
}

/// Splits `raw` (a message as received; bytes that are not UTF-8 are
/// replaced).
pub fn parse(raw: &[u8]) -> Parsed {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = match text.find("\r\n\r\n") {
        Some(i) => (&text[..i], &text[i + 4..]),
        None if text.starts_with("\r\n") => ("", &text[2..]),
        None => (&text[..], ""),
    };
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = fields.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let list = |name: &str| field(name).map(|v| addresses(&v)).unwrap_or_default();
    Parsed {
        headers: head.to_string(),
        subject: field("subject").unwrap_or_default(),
        from: field("from").and_then(|v| {
            let address = addresses(&v).into_iter().next()?;
            let name = v
                .split('<')
                .next()
                .map(|n| n.trim().trim_matches('"').to_string())
                .filter(|n| !n.is_empty() && !n.contains('@'))
                .unwrap_or_else(|| address.clone());
            Some((address, name))
        }),
        to: list("to"),
        cc: list("cc"),
        message_id: field("message-id").filter(|v| !v.is_empty()),
        html: field("content-type")
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/html")),
        body: body.to_string(),
    }
}

/// The addresses of an address-list field (`"A" <a@b>, c@d`), lower case.
fn addresses(value: &str) -> Vec<String> {
    value
        .split(',')
        .filter_map(|part| {
            let part = part.trim();
            let addr = match (part.rfind('<'), part.rfind('>')) {
                (Some(l), Some(r)) if l < r => &part[l + 1..r],
                _ => part,
            };
            let addr = addr.trim();
            addr.contains('@').then(|| addr.to_ascii_lowercase())
        })
        .collect()
}

impl Parsed {
    /// The message for the store; `envelope_from` stands in for a missing
    /// From field, `message_id` for a missing Message-ID.
    pub fn to_new_message(&self, envelope_from: &str, message_id: &str) -> NewMessage {
        let (address, name) = self.from.clone().unwrap_or_else(|| {
            (
                envelope_from.to_ascii_lowercase(),
                envelope_from.to_string(),
            )
        });
        let from = directory::lab()
            .find(&address)
            .filter(|m| m.address == address)
            .cloned()
            .unwrap_or_else(|| Mailbox {
                address: address.clone(),
                display_name: name,
                database: String::new(),
                guid: String::new(),
            });
        NewMessage {
            from,
            to: self.to.clone(),
            cc: self.cc.clone(),
            bcc: vec![],
            subject: self.subject.clone(),
            body: self.body.clone(),
            body_type: if self.html {
                BodyType::Html
            } else {
                BodyType::Text
            },
            message_id: Some(
                self.message_id
                    .clone()
                    .unwrap_or_else(|| message_id.to_string()),
            ),
            headers: self.headers.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_fields_and_body() {
        let raw = b"Received: from a ([192.0.2.1]) by ex1.lab.local;\r\n\tThu, 01 Jan 1970\r\n\
Message-ID: <m1@test.com>\r\nFrom: \"Carol C\" <Carol@Test.com>\r\nTo: alice@lab.com, Bob <bob@lab.com>\r\n\
Subject: hi\r\n there\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<b>x</b>\r\n";
        let p = parse(raw);
        assert_eq!(p.subject, "hi there");
        assert_eq!(p.from, Some(("carol@test.com".into(), "Carol C".into())));
        assert_eq!(p.to, ["alice@lab.com", "bob@lab.com"]);
        assert_eq!(p.message_id.as_deref(), Some("<m1@test.com>"));
        assert!(p.html);
        assert_eq!(p.body, "<b>x</b>\r\n");
        assert!(p.headers.starts_with("Received: from a"));
        let m = p.to_new_message("x@y", "<gen@hub>");
        assert_eq!(m.from.display_name, "Carol C");
        assert_eq!(m.message_id.as_deref(), Some("<m1@test.com>"));
        let m = parse(b"Subject: s\r\n\r\nb").to_new_message("alice@lab.com", "<gen@hub>");
        assert_eq!(m.from.display_name, "Alice Anderson");
        assert_eq!(m.message_id.as_deref(), Some("<gen@hub>"));
    }
}
