//! Opaque item and folder ids, as EWS and OWA hand them out: base64 of a
//! tagged store key. Clients treat them as opaque strings.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

const ITEM_TAG: &str = "casarray-item:";
const FOLDER_TAG: &str = "casarray-folder:";

/// A change key: the mock keeps no versions, so it is constant.
pub const CHANGE_KEY: &str = "CQAAABYAAAA=";

/// The opaque id of item `id` of `mailbox` (item numbers are per
/// database, so the id names the mailbox too, as Exchange's do).
pub fn item_id(mailbox: &str, id: i64) -> String {
    STANDARD.encode(format!("{ITEM_TAG}{mailbox}:{id}"))
}

/// The mailbox and the item number of an opaque item id.
pub fn parse_item_id(opaque: &str) -> Option<(String, i64)> {
    let raw = STANDARD.decode(opaque.trim()).ok()?;
    let text = std::str::from_utf8(&raw).ok()?;
    let (mailbox, id) = text.strip_prefix(ITEM_TAG)?.rsplit_once(':')?;
    Some((mailbox.to_string(), id.parse().ok()?))
}

/// The item number of an opaque item id, when it is an item of `mailbox`.
pub fn item_of(opaque: &str, mailbox: &str) -> Option<i64> {
    parse_item_id(opaque)
        .filter(|(m, _)| m.eq_ignore_ascii_case(mailbox))
        .map(|(_, id)| id)
}

/// The opaque id of folder `folder` (a distinguished id) of `mailbox`.
pub fn folder_id(mailbox: &str, folder: &str) -> String {
    STANDARD.encode(format!("{FOLDER_TAG}{mailbox}:{folder}"))
}

/// (mailbox, folder) of an opaque folder id.
pub fn parse_folder_id(opaque: &str) -> Option<(String, String)> {
    let raw = STANDARD.decode(opaque.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let rest = text.strip_prefix(FOLDER_TAG)?;
    let (mailbox, folder) = rest.rsplit_once(':')?;
    Some((mailbox.to_string(), folder.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(
            parse_item_id(&item_id("a@b", 42)),
            Some(("a@b".to_string(), 42))
        );
        assert_eq!(item_of(&item_id("a@b", 42), "A@B"), Some(42));
        assert_eq!(item_of(&item_id("a@b", 42), "c@d"), None);
        assert_eq!(parse_item_id("garbage"), None);
        assert_eq!(parse_item_id(&folder_id("a@b", "inbox")), None);
        assert_eq!(
            parse_folder_id(&folder_id("alice@lab.com", "inbox")),
            Some(("alice@lab.com".into(), "inbox".into()))
        );
        assert_eq!(parse_folder_id(&item_id("a@b", 1)), None);
    }
}
