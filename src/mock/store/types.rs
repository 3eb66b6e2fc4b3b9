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
    /// The message's `Message-ID` (with its angle brackets), when it came
    /// with one (mail received by SMTP).
    pub message_id: Option<String>,
    /// The message's header block as received (CRLF line ends), empty for
    /// mail that never travelled by SMTP.
    pub headers: String,
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
    /// `Message-ID` (with its angle brackets): a mailbox never holds two
    /// inbox items with the same one (delivery deduplicates). Default none.
    #[serde(default)]
    pub message_id: Option<String>,
    /// The header block as received by SMTP (`Received:` lines first);
    /// default empty.
    #[serde(default)]
    pub headers: String,
}

/// A folder's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FolderCounts {
    pub total: u64,
    pub unread: u64,
}
