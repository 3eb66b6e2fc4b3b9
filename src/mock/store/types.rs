//! What the store holds: folders, messages and their formats.

use crate::mock::users::Mailbox;

/// The folders every mailbox has: (distinguished id, display name).
pub const MAIL_FOLDERS: &[(&str, &str)] = &[
    ("inbox", "Inbox"),
    ("sentitems", "Sent Items"),
    ("drafts", "Drafts"),
    ("deleteditems", "Deleted Items"),
];

/// A message body's format (serialized as EWS spells it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BodyType {
    Text,
    #[serde(rename = "HTML")]
    Html,
}

impl BodyType {
    /// EWS's spelling: `Text` or `HTML`.
    pub fn as_ews(self) -> &'static str {
        match self {
            BodyType::Text => "Text",
            BodyType::Html => "HTML",
        }
    }

    /// Reads EWS's spelling, case-insensitively; anything else is text.
    pub fn from_ews(s: &str) -> BodyType {
        if s.eq_ignore_ascii_case("html") {
            BodyType::Html
        } else {
            BodyType::Text
        }
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub id: i64,
    /// The owning mailbox's address.
    pub mailbox: String,
    /// The folder's distinguished id (`inbox`, `sentitems`, ...).
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
}

/// A message to send or save.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewMessage {
    pub from: Mailbox,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// Delivered to, never shown.
    pub bcc: Vec<String>,
    pub subject: String,
    pub body: String,
    pub body_type: BodyType,
}

/// A folder's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FolderCounts {
    pub total: u64,
    pub unread: u64,
}
