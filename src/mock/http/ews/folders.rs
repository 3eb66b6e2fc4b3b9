//! EWS folders: resolving `DistinguishedFolderId` / `FolderId` to the
//! store's folders, and `GetFolder`.
//!
//! The hierarchy: `root` holds `msgfolderroot`, which holds the mail
//! folders (`inbox`, `sentitems`, `drafts`, `deleteditems`).

use rusqlite::Connection;

use crate::mock::format::xml::Element;
use crate::mock::http::ews::soap::{self, Code, FolderView};
use crate::mock::http::ids;
use crate::mock::store::{self, StoreError, MAIL_FOLDERS};
use crate::mock::users::Mailbox;

/// A folder of the authenticated mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderRef {
    Root,
    MsgFolderRoot,
    /// A mail folder, by distinguished id.
    Mail(&'static str),
}

impl FolderRef {
    fn distinguished(name: &str) -> Option<FolderRef> {
        match name {
            "root" => Some(FolderRef::Root),
            "msgfolderroot" => Some(FolderRef::MsgFolderRoot),
            other => MAIL_FOLDERS
                .iter()
                .find(|(name, _)| *name == other)
                .map(|(name, _)| FolderRef::Mail(name)),
        }
    }
}

/// Resolves one `DistinguishedFolderId` or `FolderId` element for `me`.
pub fn resolve(el: &Element, me: &Mailbox) -> Result<FolderRef, Code> {
    match el.name.as_str() {
        "DistinguishedFolderId" => {
            if let Some(other) = el
                .child("Mailbox")
                .and_then(|m| m.child_text("EmailAddress"))
            {
                if !other.eq_ignore_ascii_case(&me.address) {
                    return Err(Code::ErrorAccessDenied);
                }
            }
            let id = el.attr("Id").ok_or(Code::ErrorInvalidRequest)?;
            FolderRef::distinguished(id).ok_or(Code::ErrorFolderNotFound)
        }
        "FolderId" => {
            let id = el.attr("Id").ok_or(Code::ErrorInvalidRequest)?;
            let (mailbox, folder) =
                ids::parse_folder_id(id).ok_or(Code::ErrorInvalidIdMalformed)?;
            if !mailbox.eq_ignore_ascii_case(&me.address) {
                return Err(Code::ErrorAccessDenied);
            }
            FolderRef::distinguished(&folder).ok_or(Code::ErrorFolderNotFound)
        }
        _ => Err(Code::ErrorInvalidRequest),
    }
}

/// The folder-id elements (`DistinguishedFolderId`, `FolderId`) under
/// `parent`.
pub fn folder_id_elements(parent: &Element) -> impl Iterator<Item = &Element> {
    parent
        .children
        .iter()
        .filter(|c| c.name == "DistinguishedFolderId" || c.name == "FolderId")
}

/// `GetFolder`: one response message per requested folder.
pub fn get_folder(conn: &Connection, me: &Mailbox, op: &Element) -> Result<String, StoreError> {
    const OP: &str = "GetFolder";
    let Some(ids_el) = op.child("FolderIds") else {
        return Ok(soap::operation_response(
            OP,
            &[soap::response_message(OP, Code::ErrorInvalidRequest, "")],
        ));
    };
    let mut messages = Vec::new();
    for el in folder_id_elements(ids_el) {
        let message = match resolve(el, me) {
            Ok(folder) => {
                let xml = folder_xml(conn, me, &folder)?;
                soap::response_message(OP, Code::NoError, &format!("<m:Folders>{xml}</m:Folders>"))
            }
            Err(code) => soap::response_message(OP, code, ""),
        };
        messages.push(message);
    }
    if messages.is_empty() {
        messages.push(soap::response_message(OP, Code::ErrorInvalidRequest, ""));
    }
    Ok(soap::operation_response(OP, &messages))
}

fn folder_xml(conn: &Connection, me: &Mailbox, folder: &FolderRef) -> Result<String, StoreError> {
    let id = |name: &str| ids::folder_id(&me.address, name);
    let view = match folder {
        FolderRef::Root => FolderView {
            id: id("root"),
            parent_id: None,
            display_name: "Root",
            counts: Default::default(),
            child_folders: 1,
        },
        FolderRef::MsgFolderRoot => FolderView {
            id: id("msgfolderroot"),
            parent_id: Some(id("root")),
            display_name: "Top of Information Store",
            counts: Default::default(),
            child_folders: MAIL_FOLDERS.len() as u64,
        },
        FolderRef::Mail(name) => FolderView {
            id: id(name),
            parent_id: Some(id("msgfolderroot")),
            display_name: MAIL_FOLDERS
                .iter()
                .find(|(n, _)| n == name)
                .map_or(*name, |(_, display)| *display),
            counts: store::folder_counts(conn, &me.address, name)?,
            child_folders: 0,
        },
    };
    Ok(soap::folder(&view))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::format::xml;

    fn me() -> Mailbox {
        Mailbox {
            address: "alice@lab.com".into(),
            display_name: "Alice".into(),
            database: "DB01".into(),
            guid: crate::mock::users::mailbox_guid("alice@lab.com"),
        }
    }

    fn el(s: &str) -> Element {
        xml::parse(s).unwrap()
    }

    #[test]
    fn resolves_ids() {
        let me = me();
        assert_eq!(
            resolve(&el("<t:DistinguishedFolderId Id=\"inbox\"/>"), &me),
            Ok(FolderRef::Mail("inbox"))
        );
        assert_eq!(
            resolve(&el("<DistinguishedFolderId Id=\"root\"/>"), &me),
            Ok(FolderRef::Root)
        );
        assert_eq!(
            resolve(&el("<DistinguishedFolderId Id=\"calendar\"/>"), &me),
            Err(Code::ErrorFolderNotFound)
        );
        let other = "<DistinguishedFolderId Id=\"inbox\"><Mailbox><EmailAddress>bob@lab.com</EmailAddress></Mailbox></DistinguishedFolderId>";
        assert_eq!(resolve(&el(other), &me), Err(Code::ErrorAccessDenied));
        let opaque = ids::folder_id("alice@lab.com", "sentitems");
        assert_eq!(
            resolve(&el(&format!("<FolderId Id=\"{opaque}\"/>")), &me),
            Ok(FolderRef::Mail("sentitems"))
        );
        assert_eq!(
            resolve(&el("<FolderId Id=\"zz\"/>"), &me),
            Err(Code::ErrorInvalidIdMalformed)
        );
    }
}
