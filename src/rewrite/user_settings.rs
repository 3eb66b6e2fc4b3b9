//! One SOAP Autodiscover `<UserResponse>` element (MS-OXWSADISC
//! `GetUserSettings`), rewritten whole.
//!
//! - The `InternalRpcClientServer` setting becomes the RPC client access
//!   server of the database the `MailboxDN` setting names
//!   (`.../cn=Databases/cn=DB01`, before or after it). A database unknown
//!   or left unset keeps what the server said, as the POX `<Server>` does.
//! - Member names inside the `InternalMailboxServerDN` setting become the
//!   array name (`.../cn=Servers/cn=CASARRAY01`).
//! - Everything else gets the generic rewrite.

use std::ops::Range;

use bytes::BytesMut;
use memchr::memmem;

use super::plan::RewritePlan;
use super::protocol::{apply, database_in_dn, text_of, Edit};

/// One `<UserSetting>`: its name and the range of its `<Value>` text.
struct Setting<'a> {
    name: &'a [u8],
    value: Range<usize>,
}

/// Every string setting (one with a `<Value>`) of `element`: each
/// `<UserSetting>` or `<UserSetting ...>` start tag (not `<UserSettings>`
/// nor `<UserSettingErrors>`) up to its end tag.
fn settings(element: &[u8]) -> Vec<Setting<'_>> {
    const OPEN: &[u8] = b"<UserSetting";
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = memmem::find(&element[from..], OPEN) {
        let start = from + at + OPEN.len();
        from = start;
        if !matches!(
            element.get(start),
            Some(b' ' | b'>' | b'\t' | b'\r' | b'\n')
        ) {
            continue;
        }
        let Some(len) = memmem::find(&element[start..], b"</UserSetting>") else {
            break;
        };
        let body = start..start + len;
        from = body.end;
        let block = &element[body.clone()];
        let (Some(name), Some(value)) = (
            text_of(block, b"<Name>", b"</Name>", 0),
            text_of(block, b"<Value>", b"</Value>", 0),
        ) else {
            continue;
        };
        out.push(Setting {
            name: block[name].trim_ascii(),
            value: body.start + value.start..body.start + value.end,
        });
    }
    out
}

/// Rewrites `element` (from `<UserResponse` through `</UserResponse>`)
/// into `out`; returns the replacements made.
pub(crate) fn rewrite_user_response(
    element: &[u8],
    plan: &RewritePlan,
    out: &mut BytesMut,
) -> usize {
    let settings = settings(element);
    let database = settings
        .iter()
        .find(|s| s.name == b"MailboxDN")
        .and_then(|s| database_in_dn(&element[s.value.clone()]));
    let target = database.and_then(|db| plan.rpc_client_access_server(db));
    let mut edits = Vec::new();
    for s in settings {
        match s.name {
            b"InternalRpcClientServer" => {
                edits.push((s.value, target.map_or(Edit::Keep, Edit::Replace)));
            }
            b"InternalMailboxServerDN" => edits.push((s.value, Edit::ServerDn)),
            _ => {}
        }
    }
    apply(element, edits, plan, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::plan::names_member;
    use crate::rewrite::plan::tests::{lab_plan, lab_plan_on};

    const DN: &str =
        "/o=casarray lab/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Configuration";

    fn setting(name: &str, value: &str) -> String {
        format!(
            "<UserSetting i:type=\"StringSetting\"><Name>{name}</Name><Value>{value}</Value></UserSetting>"
        )
    }

    fn response(db: &str, mdb_first: bool) -> String {
        let mdb = setting("MailboxDN", &format!("{DN}/cn=Databases/cn={db}"));
        let rpc = setting("InternalRpcClientServer", "ex1.lab.local");
        let (a, b) = if mdb_first {
            (&mdb, &rpc)
        } else {
            (&rpc, &mdb)
        };
        format!(
            "<UserResponse><ErrorCode>NoError</ErrorCode><UserSettings>{a}{b}{}{}{}</UserSettings></UserResponse>",
            setting("InternalMailboxServerDN", &format!("{DN}/cn=Servers/cn=EX1")),
            setting("ExternalEwsUrl", "https://EX1.lab.local/EWS/Exchange.asmx"),
            setting("ExternalMailboxServer", "ex1.lab.local"),
        )
    }

    fn run(text: &str, port: u16) -> (String, usize) {
        let plan = if port == 443 {
            lab_plan()
        } else {
            lab_plan_on(port)
        };
        let mut out = BytesMut::new();
        let n = rewrite_user_response(text.as_bytes(), &plan, &mut out);
        (String::from_utf8(out.to_vec()).unwrap(), n)
    }

    #[test]
    fn rpc_client_server_follows_the_database_before_or_after() {
        for mdb_first in [true, false] {
            let (out, n) = run(&response("DB01", mdb_first), 8443);
            assert!(
                out.contains("<Name>InternalRpcClientServer</Name><Value>outlook.lab.com</Value>"),
                "{out}"
            );
            assert!(out.contains("cn=Servers/cn=CASARRAY01<"), "{out}");
            assert!(
                out.contains("<Value>https://mail.lab.com:8443/EWS/Exchange.asmx</Value>"),
                "{out}"
            );
            assert!(
                out.contains("<Name>ExternalMailboxServer</Name><Value>mail.lab.com</Value>"),
                "{out}"
            );
            assert!(!names_member(&lab_plan(), out.as_bytes()), "{out}");
            assert_eq!(n, 4);
        }
    }

    #[test]
    fn unset_database_keeps_the_server() {
        let (out, _) = run(&response("DB02", true), 443);
        assert!(
            out.contains("<Name>InternalRpcClientServer</Name><Value>ex1.lab.local</Value>"),
            "{out}"
        );
        let (out, _) = run(&response("NOPE", false), 443);
        assert!(out.contains("<Value>ex1.lab.local</Value>"), "{out}");
    }

    #[test]
    fn containers_are_not_settings() {
        let text = format!(
            "<UserResponse><UserSettingErrors><UserSettingError><SettingName>X</SettingName>\
             </UserSettingError></UserSettingErrors><UserSettings>{}{}</UserSettings></UserResponse>",
            setting("InternalRpcClientServer", "ex1.lab.local"),
            setting("MailboxDN", &format!("{DN}/cn=Databases/cn=DB01")),
        );
        let (out, _) = run(&text, 443);
        assert!(out.contains("<Value>outlook.lab.com</Value>"), "{out}");
        assert_eq!(settings(text.as_bytes()).len(), 2);
    }

    #[test]
    fn malformed_settings_get_the_generic_rewrite() {
        let text = "<UserResponse><UserSetting><Name>InternalRpcClientServer</Name>\
                    <Value>ex1.lab.local</UserResponse>";
        let (out, n) = run(text, 443);
        assert!(!names_member(&lab_plan(), out.as_bytes()), "{out}");
        assert_eq!(n, 1);
    }
}
