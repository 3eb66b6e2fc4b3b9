//! One Autodiscover `<Protocol>` element, rewritten whole.
//!
//! - In the `EXCH` protocol, `<Server>` becomes the RPC client access
//!   server of the database named by `<MdbDN>` (`.../cn=Databases/cn=DB01`,
//!   before or after `<Server>`). A database unknown or left unset keeps
//!   what the server said, as Exchange does: the one place a member's name
//!   survives.
//! - In any protocol, member names inside `<ServerDN>` become the array
//!   name (`.../cn=Servers/cn=CASARRAY01`).
//! - Everything else gets the generic rewrite (member names to the public
//!   name).

use std::ops::Range;

use bytes::BytesMut;
use memchr::memmem;

use super::plan::RewritePlan;

/// What becomes of one element's text.
#[derive(Debug)]
pub(super) enum Edit<'a> {
    Keep,
    Replace(&'a str),
    ServerDn,
}

/// Rewrites `element` (from `<Protocol` through `</Protocol>`) into `out`;
/// returns the replacements made.
pub(crate) fn rewrite_protocol(element: &[u8], plan: &RewritePlan, out: &mut BytesMut) -> usize {
    let mut edits: Vec<(Range<usize>, Edit<'_>)> = Vec::new();
    let is_exch = text_of(element, b"<Type>", b"</Type>", 0)
        .is_some_and(|r| element[r].trim_ascii().eq_ignore_ascii_case(b"EXCH"));
    if is_exch {
        if let Some(server) = text_of(element, b"<Server>", b"</Server>", 0) {
            let target = database_of(element).and_then(|db| plan.rpc_client_access_server(db));
            let edit = target.map_or(Edit::Keep, Edit::Replace);
            edits.push((server, edit));
        }
    }
    let mut from = 0;
    while let Some(dn) = text_of(element, b"<ServerDN>", b"</ServerDN>", from) {
        from = dn.end;
        edits.push((dn, Edit::ServerDn));
    }
    apply(element, edits, plan, out)
}

/// Writes `element` into `out` with `edits` made to its ranges and the
/// generic rewrite (member names to the public name) everywhere else;
/// returns the replacements made.
pub(super) fn apply(
    element: &[u8],
    mut edits: Vec<(Range<usize>, Edit<'_>)>,
    plan: &RewritePlan,
    out: &mut BytesMut,
) -> usize {
    edits.sort_by_key(|(r, _)| r.start);
    let mut replaced = 0;
    let mut at = 0;
    for (range, edit) in edits {
        if range.start < at {
            continue;
        }
        replaced += plan.to_public().rewrite_all(&element[at..range.start], out);
        let text = &element[range.clone()];
        match edit {
            Edit::Keep => out.extend_from_slice(text),
            Edit::Replace(value) => {
                let start = out.len();
                escape_into(value, out);
                if out[start..] != *text {
                    replaced += 1;
                }
            }
            Edit::ServerDn => replaced += plan.to_array().rewrite_all(text, out),
        }
        at = range.end;
    }
    replaced + plan.to_public().rewrite_all(&element[at..], out)
}

/// The text between the first `open` at or after `from` and the `close`
/// after it.
pub(super) fn text_of(
    element: &[u8],
    open: &[u8],
    close: &[u8],
    from: usize,
) -> Option<Range<usize>> {
    let start = from + memmem::find(element.get(from..)?, open)? + open.len();
    let end = start + memmem::find(&element[start..], close)?;
    Some(start..end)
}

/// The database named by `<MdbDN>`: what follows `cn=Databases/cn=`
/// (any case) up to the next `/`.
fn database_of(element: &[u8]) -> Option<&str> {
    database_in_dn(&element[text_of(element, b"<MdbDN>", b"</MdbDN>", 0)?])
}

/// The database a database DN names: what follows `cn=Databases/cn=` (any
/// case) up to the next `/`.
pub(super) fn database_in_dn(dn: &[u8]) -> Option<&str> {
    const MARK: &[u8] = b"cn=databases/cn=";
    let at = dn
        .windows(MARK.len())
        .position(|w| w.eq_ignore_ascii_case(MARK))?
        + MARK.len();
    let rest = &dn[at..];
    let name = &rest[..memchr::memchr(b'/', rest).unwrap_or(rest.len())];
    let name = std::str::from_utf8(name.trim_ascii()).ok()?;
    (!name.is_empty()).then_some(name)
}

/// Writes `value` as XML text.
fn escape_into(value: &str, out: &mut BytesMut) {
    for b in value.bytes() {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            _ => out.extend_from_slice(&[b]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::plan::names_member;
    use crate::rewrite::plan::tests::lab_plan;

    const DN: &str =
        "/o=casarray lab/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Configuration";

    fn exch(db: &str, mdb_first: bool) -> String {
        let mdb = format!("<MdbDN>{DN}/cn=Databases/cn={db}</MdbDN>");
        let server =
            format!("<Server>ex1.lab.local</Server><ServerDN>{DN}/cn=Servers/cn=EX1</ServerDN>");
        let (a, b) = if mdb_first {
            (&mdb, &server)
        } else {
            (&server, &mdb)
        };
        format!(
            "<Protocol><Type>EXCH</Type>{a}<ServerVersion>738180DA</ServerVersion>{b}\
             <AD>dc1.lab.local</AD><ASUrl>https://ex1.lab.local/EWS/Exchange.asmx</ASUrl></Protocol>"
        )
    }

    fn run(element: &str) -> (String, usize) {
        let mut out = BytesMut::new();
        let n = rewrite_protocol(element.as_bytes(), &lab_plan(), &mut out);
        (String::from_utf8(out.to_vec()).unwrap(), n)
    }

    #[test]
    fn database_set_names_its_rpc_client_access_server() {
        for mdb_first in [false, true] {
            let (out, n) = run(&exch("db01", mdb_first));
            assert!(out.contains("<Server>outlook.lab.com</Server>"), "{out}");
            assert!(
                out.contains("/cn=Servers/cn=CASARRAY01</ServerDN>"),
                "{out}"
            );
            assert!(out.contains("<ASUrl>https://mail.lab.com/EWS/"), "{out}");
            assert!(!names_member(&lab_plan(), out.as_bytes()), "{out}");
            assert_eq!(n, 3);
        }
    }

    #[test]
    fn database_unset_or_unknown_keeps_the_server() {
        for db in ["DB02", "DB99"] {
            let (out, n) = run(&exch(db, false));
            assert!(out.contains("<Server>ex1.lab.local</Server>"), "{out}");
            assert!(
                out.contains("/cn=Servers/cn=CASARRAY01</ServerDN>"),
                "{out}"
            );
            assert!(out.contains("<ASUrl>https://mail.lab.com/EWS/"), "{out}");
            assert_eq!(n, 2);
        }
    }

    #[test]
    fn other_protocols_get_the_generic_rewrite() {
        let (out, n) = run("<Protocol><Type>EXPR</Type><Server>ex1.lab.local</Server>\
             <MdbDN>/cn=Databases/cn=DB01</MdbDN></Protocol>");
        assert_eq!(
            out,
            "<Protocol><Type>EXPR</Type><Server>mail.lab.com</Server>\
             <MdbDN>/cn=Databases/cn=DB01</MdbDN></Protocol>"
        );
        assert_eq!(n, 1);
    }

    #[test]
    fn database_name_is_read_from_mdbdn() {
        let e = b"<MdbDN>/o=x/CN=DATABASES/CN= DB01 /x</MdbDN>";
        assert_eq!(database_of(e), Some("DB01"));
        assert_eq!(database_of(b"<MdbDN>/o=x</MdbDN>"), None);
        assert_eq!(database_of(b"<MdbDN>cn=Databases/cn=</MdbDN>"), None);
        assert_eq!(database_of(b"no mdb"), None);
    }

    #[test]
    fn replacement_is_escaped() {
        let mut out = BytesMut::new();
        escape_into("a&b<c>", &mut out);
        assert_eq!(&out[..], b"a&amp;b&lt;c&gt;");
    }
}
