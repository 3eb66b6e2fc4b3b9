//! EWS `FindItem`: a shallow listing of one or more folders, newest first,
//! filtered by a `Restriction` (`Contains`, `IsEqualTo`, `IsNotEqualTo`,
//! `And`, `Or`, `Not` on `item:Subject` or `item:Body`) and paged by an
//! `IndexedPageItemView` (`MaxEntriesReturned`, `Offset`, `BasePoint`).

use rusqlite::Connection;

use crate::mock::format::xml::Element;
use crate::mock::http::ews::folders::{folder_id_elements, resolve, FolderRef};
use crate::mock::http::ews::soap::{self, Code, Shape};
use crate::mock::store::{self, Item, StoreError};
use crate::mock::users::Mailbox;

const OP: &str = "FindItem";

/// A property a restriction can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Subject,
    Body,
}

/// `ContainmentMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    FullString,
    Prefixed,
    Substring,
    PrefixOnWords,
}

/// A parsed `Restriction`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Restriction {
    Contains {
        field: Field,
        value: String,
        mode: Mode,
        ignore_case: bool,
    },
    /// `IsEqualTo` (`negate` false) or `IsNotEqualTo`; strings compare
    /// case-insensitively, as Exchange does.
    Equal {
        field: Field,
        value: String,
        negate: bool,
    },
    And(Vec<Restriction>),
    Or(Vec<Restriction>),
    Not(Box<Restriction>),
}

/// Deepest restriction nesting accepted: 16.
const MAX_RESTRICTION_DEPTH: usize = 16;

fn field(el: &Element) -> Result<Field, Code> {
    let uri = el
        .child("FieldURI")
        .ok_or(Code::ErrorUnsupportedPathForQuery)?;
    match uri.attr("FieldURI") {
        Some("item:Subject") => Ok(Field::Subject),
        Some("item:Body") => Ok(Field::Body),
        _ => Err(Code::ErrorUnsupportedPathForQuery),
    }
}

fn parse_restriction(el: &Element, depth: usize) -> Result<Restriction, Code> {
    if depth > MAX_RESTRICTION_DEPTH {
        return Err(Code::ErrorInvalidRequest);
    }
    let children = |el: &Element| {
        el.children
            .iter()
            .map(|c| parse_restriction(c, depth + 1))
            .collect::<Result<Vec<_>, _>>()
    };
    match el.name.as_str() {
        "Contains" => {
            let value = el
                .child("Constant")
                .and_then(|c| c.attr("Value"))
                .ok_or(Code::ErrorInvalidRequest)?
                .to_string();
            let mode = match el.attr("ContainmentMode").unwrap_or("FullString") {
                "FullString" => Mode::FullString,
                "Prefixed" => Mode::Prefixed,
                "PrefixOnWords" => Mode::PrefixOnWords,
                // Substring and ExactPhrase.
                _ => Mode::Substring,
            };
            let comparison = el.attr("ContainmentComparison").unwrap_or("Exact");
            let ignore_case = comparison.contains("IgnoreCase") || comparison.starts_with("Loose");
            Ok(Restriction::Contains {
                field: field(el)?,
                value,
                mode,
                ignore_case,
            })
        }
        "IsEqualTo" | "IsNotEqualTo" => {
            let value = el
                .child("FieldURIOrConstant")
                .and_then(|f| f.child("Constant"))
                .and_then(|c| c.attr("Value"))
                .ok_or(Code::ErrorInvalidRequest)?
                .to_string();
            Ok(Restriction::Equal {
                field: field(el)?,
                value,
                negate: el.name == "IsNotEqualTo",
            })
        }
        "And" => Ok(Restriction::And(children(el)?)),
        "Or" => Ok(Restriction::Or(children(el)?)),
        "Not" => {
            let inner = el.children.first().ok_or(Code::ErrorInvalidRequest)?;
            Ok(Restriction::Not(Box::new(parse_restriction(
                inner,
                depth + 1,
            )?)))
        }
        _ => Err(Code::ErrorUnsupportedPathForQuery),
    }
}

impl Restriction {
    fn matches(&self, item: &Item) -> bool {
        let text = |f: Field| match f {
            Field::Subject => item.subject.as_str(),
            Field::Body => item.body.as_str(),
        };
        match self {
            Restriction::Contains {
                field,
                value,
                mode,
                ignore_case,
            } => {
                let (hay, needle) = if *ignore_case {
                    (text(*field).to_lowercase(), value.to_lowercase())
                } else {
                    (text(*field).to_string(), value.clone())
                };
                match mode {
                    Mode::FullString => hay == needle,
                    Mode::Prefixed => hay.starts_with(&needle),
                    Mode::Substring => hay.contains(&needle),
                    Mode::PrefixOnWords => hay.split_whitespace().any(|w| w.starts_with(&needle)),
                }
            }
            Restriction::Equal {
                field,
                value,
                negate,
            } => (text(*field).to_lowercase() == value.to_lowercase()) != *negate,
            Restriction::And(all) => all.iter().all(|r| r.matches(item)),
            Restriction::Or(any) => any.iter().any(|r| r.matches(item)),
            Restriction::Not(inner) => !inner.matches(item),
        }
    }
}

/// `IndexedPageItemView`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Page {
    max: Option<usize>,
    offset: usize,
    from_end: bool,
}

fn parse_page(op: &Element) -> Result<Page, Code> {
    let Some(view) = op.child("IndexedPageItemView") else {
        return Ok(Page {
            max: None,
            offset: 0,
            from_end: false,
        });
    };
    let number = |name: &str| -> Result<Option<usize>, Code> {
        view.attr(name)
            .map(|v| {
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| Code::ErrorInvalidRequest)
            })
            .transpose()
    };
    let from_end = match view.attr("BasePoint").unwrap_or("Beginning") {
        "Beginning" => false,
        "End" => true,
        _ => return Err(Code::ErrorInvalidRequest),
    };
    Ok(Page {
        max: number("MaxEntriesReturned")?,
        offset: number("Offset")?.unwrap_or(0),
        from_end,
    })
}

/// The page of `items` (newest first) `page` selects, and the
/// `IndexedPagingOffset` to ask for next.
fn apply_page(items: &[Item], page: Page) -> (&[Item], usize) {
    let total = items.len();
    let offset = page.offset.min(total);
    let take = page.max.unwrap_or(total).min(total - offset);
    let range = if page.from_end {
        (total - offset - take)..(total - offset)
    } else {
        offset..(offset + take)
    };
    (&items[range], offset + take)
}

/// `FindItem`: one response message per parent folder.
pub fn find_item(conn: &Connection, me: &Mailbox, op: &Element) -> Result<String, StoreError> {
    let fail = |code| {
        Ok(soap::operation_response(
            OP,
            &[soap::response_message(OP, code, "")],
        ))
    };
    let Some(parents) = op.child("ParentFolderIds") else {
        return fail(Code::ErrorInvalidRequest);
    };
    let restriction = match op.child("Restriction").map(|r| r.children.first()) {
        None => None,
        Some(None) => return fail(Code::ErrorInvalidRequest),
        Some(Some(el)) => match parse_restriction(el, 0) {
            Ok(r) => Some(r),
            Err(code) => return fail(code),
        },
    };
    let page = match parse_page(op) {
        Ok(p) => p,
        Err(code) => return fail(code),
    };
    let name_of = |a: &str| {
        crate::mock::directory::lab()
            .display_name(a)
            .map_or_else(|| a.to_string(), str::to_string)
    };
    let mut messages = Vec::new();
    for el in folder_id_elements(parents) {
        let folder = match resolve(el, me) {
            Ok(f) => f,
            Err(code) => {
                messages.push(soap::response_message(OP, code, ""));
                continue;
            }
        };
        let items = match folder {
            FolderRef::Mail(name) => store::list_items(conn, &me.address, name)?,
            FolderRef::Root | FolderRef::MsgFolderRoot => Vec::new(),
        };
        let items: Vec<Item> = match &restriction {
            Some(r) => items.into_iter().filter(|i| r.matches(i)).collect(),
            None => items,
        };
        let (selected, next) = apply_page(&items, page);
        let mut xml = format!(
            "<m:RootFolder IndexedPagingOffset=\"{next}\" TotalItemsInView=\"{}\" IncludesLastItemInRange=\"{}\"><t:Items>",
            items.len(),
            next >= items.len()
        );
        for item in selected {
            xml.push_str(&soap::message(item, Shape::Summary, &name_of));
        }
        xml.push_str("</t:Items></m:RootFolder>");
        messages.push(soap::response_message(OP, Code::NoError, &xml));
    }
    if messages.is_empty() {
        return fail(Code::ErrorInvalidRequest);
    }
    Ok(soap::operation_response(OP, &messages))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::format::xml;
    use crate::mock::store::BodyType;

    fn item(subject: &str) -> Item {
        Item {
            id: 1,
            mailbox: "a@b".into(),
            folder: "inbox".into(),
            subject: subject.into(),
            body: "Body text".into(),
            body_type: BodyType::Text,
            from_address: String::new(),
            from_name: String::new(),
            to: vec![],
            cc: vec![],
            received: 0,
            is_read: false,
            message_id: None,
            headers: String::new(),
        }
    }

    fn restriction(s: &str) -> Result<Restriction, Code> {
        parse_restriction(&xml::parse(s).unwrap(), 0)
    }

    #[test]
    fn contains_and_equality() {
        let r = restriction(
            r#"<t:Contains ContainmentMode="Substring" ContainmentComparison="IgnoreCase"><t:FieldURI FieldURI="item:Subject"/><t:Constant Value="QUARTERLY"/></t:Contains>"#,
        )
        .unwrap();
        assert!(r.matches(&item("The quarterly report")));
        assert!(!r.matches(&item("Lunch")));
        let exact = restriction(
            r#"<Contains ContainmentMode="Prefixed" ContainmentComparison="Exact"><FieldURI FieldURI="item:Subject"/><Constant Value="The"/></Contains>"#,
        )
        .unwrap();
        assert!(exact.matches(&item("The report")));
        assert!(!exact.matches(&item("the report")));
        let eq = restriction(
            r#"<IsEqualTo><FieldURI FieldURI="item:Subject"/><FieldURIOrConstant><Constant Value="lunch"/></FieldURIOrConstant></IsEqualTo>"#,
        )
        .unwrap();
        assert!(eq.matches(&item("Lunch")));
        assert!(!eq.matches(&item("Lunch?")));
        let not = restriction(&format!(
            "<Not>{}</Not>",
            r#"<IsEqualTo><FieldURI FieldURI="item:Subject"/><FieldURIOrConstant><Constant Value="lunch"/></FieldURIOrConstant></IsEqualTo>"#
        ))
        .unwrap();
        assert!(not.matches(&item("Dinner")));
        assert_eq!(
            restriction(
                r#"<IsEqualTo><FieldURI FieldURI="message:From"/><FieldURIOrConstant><Constant Value="x"/></FieldURIOrConstant></IsEqualTo>"#
            ),
            Err(Code::ErrorUnsupportedPathForQuery)
        );
        assert_eq!(
            restriction("<Exists/>"),
            Err(Code::ErrorUnsupportedPathForQuery)
        );
    }

    #[test]
    fn paging_from_both_ends() {
        let items: Vec<Item> = (0..5).map(|i| item(&i.to_string())).collect();
        let page = |max, offset, from_end| Page {
            max,
            offset,
            from_end,
        };
        let (sel, next) = apply_page(&items, page(Some(2), 0, false));
        assert_eq!((sel.len(), sel[0].subject.as_str(), next), (2, "0", 2));
        let (sel, next) = apply_page(&items, page(Some(2), 4, false));
        assert_eq!((sel.len(), sel[0].subject.as_str(), next), (1, "4", 5));
        let (sel, next) = apply_page(&items, page(Some(2), 9, false));
        assert_eq!((sel.len(), next), (0, 5));
        let (sel, _) = apply_page(&items, page(Some(2), 0, true));
        assert_eq!(sel[0].subject, "3");
        let (sel, next) = apply_page(&items, page(None, 0, false));
        assert_eq!((sel.len(), next), (5, 5));
    }
}
