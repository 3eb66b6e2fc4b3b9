//! A small, tolerant XML reader for the requests the mock server answers
//! (Autodiscover POX, EWS SOAP), and XML escaping for its answers.
//!
//! Namespace prefixes vary between clients (`soap:`, `s:`, `m:`, none), so
//! elements and attributes are matched by their local name only. Comments,
//! processing instructions, CDATA and DOCTYPE declarations are accepted;
//! entities are limited to the five predefined ones and character
//! references, so no external entity is ever resolved.

use std::fmt::Write as _;

/// Deepest element nesting accepted: 64 levels.
const MAX_DEPTH: usize = 64;

/// Why a document could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("unexpected end of document")]
    UnexpectedEnd,
    #[error("malformed markup at byte {0}")]
    Malformed(usize),
    #[error("end tag </{found}> does not close <{open}>")]
    MismatchedEnd { open: String, found: String },
    #[error("unknown entity &{0};")]
    UnknownEntity(String),
    #[error("elements nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("no root element")]
    NoRoot,
    #[error("content after the root element")]
    TrailingContent,
}

/// One element: its local name, attributes (local names), child elements
/// and its own text (the concatenation of its direct text and CDATA).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    /// The first direct child named `name` (local name, case-sensitive as
    /// XML is).
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every direct child named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The first element named `name` below this one, depth first.
    #[cfg(test)]
    pub fn find(&self, name: &str) -> Option<&Element> {
        self.children.iter().find_map(|c| {
            if c.name == name {
                Some(c)
            } else {
                c.find(name)
            }
        })
    }

    /// The value of the attribute whose local name is `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The text of this element, trimmed.
    pub fn trimmed_text(&self) -> &str {
        self.text.trim()
    }

    /// The trimmed text of the direct child named `name`.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(Element::trimmed_text)
    }
}

/// Reads a whole document and returns its root element.
pub fn parse(input: &str) -> Result<Element, XmlError> {
    let mut reader = Reader { s: input, pos: 0 };
    reader.skip_prolog()?;
    if reader.rest().is_empty() {
        return Err(XmlError::NoRoot);
    }
    let root = reader.element(0)?;
    reader.skip_misc()?;
    if !reader.rest().is_empty() {
        return Err(XmlError::TrailingContent);
    }
    Ok(root)
}

/// Escapes text for an element body or an attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all are dropped.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// The local part of a possibly prefixed name (`soap:Body` -> `Body`).
fn local(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(_, l)| l)
}

struct Reader<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.s.len() - trimmed.len();
    }

    /// Skips past `end`, which must occur later in the input.
    fn skip_past(&mut self, end: &str) -> Result<&'a str, XmlError> {
        let rest = self.rest();
        let i = rest.find(end).ok_or(XmlError::UnexpectedEnd)?;
        self.pos += i + end.len();
        Ok(&rest[..i])
    }

    /// Skips a byte-order mark, the XML declaration, comments, processing
    /// instructions and a DOCTYPE before the root.
    fn skip_prolog(&mut self) -> Result<(), XmlError> {
        if let Some(rest) = self.rest().strip_prefix('\u{feff}') {
            self.pos = self.s.len() - rest.len();
        }
        loop {
            self.skip_ws();
            let rest = self.rest();
            if rest.starts_with("<?") {
                self.skip_past("?>")?;
            } else if rest.starts_with("<!--") {
                self.skip_past("-->")?;
            } else if rest.starts_with("<!DOCTYPE") {
                self.skip_doctype()?;
            } else {
                return Ok(());
            }
        }
    }

    /// Skips what may follow the root: whitespace, comments, PIs.
    fn skip_misc(&mut self) -> Result<(), XmlError> {
        loop {
            self.skip_ws();
            let rest = self.rest();
            if rest.starts_with("<?") {
                self.skip_past("?>")?;
            } else if rest.starts_with("<!--") {
                self.skip_past("-->")?;
            } else {
                return Ok(());
            }
        }
    }

    /// A DOCTYPE, with an optional internal subset in brackets (ignored).
    fn skip_doctype(&mut self) -> Result<(), XmlError> {
        let mut depth = 0usize;
        for (i, c) in self.rest().char_indices() {
            match c {
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                '>' if depth == 0 => {
                    self.pos += i + 1;
                    return Ok(());
                }
                _ => {}
            }
        }
        Err(XmlError::UnexpectedEnd)
    }

    fn name(&mut self) -> Result<&'a str, XmlError> {
        let rest = self.rest();
        let end = rest
            .find(|c: char| c.is_whitespace() || matches!(c, '>' | '/' | '=' | '<'))
            .unwrap_or(rest.len());
        if end == 0 {
            return Err(XmlError::Malformed(self.pos));
        }
        self.pos += end;
        Ok(&rest[..end])
    }

    /// An element starting at `<`, up to and including its end tag.
    fn element(&mut self, depth: usize) -> Result<Element, XmlError> {
        if depth >= MAX_DEPTH {
            return Err(XmlError::TooDeep);
        }
        if !self.rest().starts_with('<') {
            return Err(XmlError::Malformed(self.pos));
        }
        self.pos += 1;
        let qname = self.name()?;
        let mut el = Element {
            name: local(qname).to_string(),
            ..Element::default()
        };
        loop {
            self.skip_ws();
            let rest = self.rest();
            if let Some(after) = rest.strip_prefix("/>") {
                self.pos = self.s.len() - after.len();
                return Ok(el);
            }
            if let Some(after) = rest.strip_prefix('>') {
                self.pos = self.s.len() - after.len();
                break;
            }
            if rest.is_empty() {
                return Err(XmlError::UnexpectedEnd);
            }
            let attr = self.name()?;
            self.skip_ws();
            if !self.rest().starts_with('=') {
                return Err(XmlError::Malformed(self.pos));
            }
            self.pos += 1;
            self.skip_ws();
            let quote = self.rest().chars().next().ok_or(XmlError::UnexpectedEnd)?;
            if quote != '"' && quote != '\'' {
                return Err(XmlError::Malformed(self.pos));
            }
            self.pos += 1;
            let raw = self.skip_past(if quote == '"' { "\"" } else { "'" })?;
            if attr == "xmlns" || attr.starts_with("xmlns:") {
                continue;
            }
            el.attrs.push((local(attr).to_string(), unescape(raw)?));
        }
        self.content(&mut el, qname, depth)?;
        Ok(el)
    }

    /// Children and text up to the end tag of `qname`.
    fn content(&mut self, el: &mut Element, qname: &str, depth: usize) -> Result<(), XmlError> {
        loop {
            let rest = self.rest();
            let lt = rest.find('<').ok_or(XmlError::UnexpectedEnd)?;
            el.text.push_str(&unescape(&rest[..lt])?);
            self.pos += lt;
            let rest = self.rest();
            if rest.starts_with("</") {
                self.pos += 2;
                let end = self.name()?;
                self.skip_ws();
                if !self.rest().starts_with('>') {
                    return Err(XmlError::Malformed(self.pos));
                }
                self.pos += 1;
                if end != qname {
                    return Err(XmlError::MismatchedEnd {
                        open: qname.to_string(),
                        found: end.to_string(),
                    });
                }
                return Ok(());
            } else if rest.starts_with("<!--") {
                self.skip_past("-->")?;
            } else if rest.starts_with("<![CDATA[") {
                self.pos += "<![CDATA[".len();
                let data = self.skip_past("]]>")?;
                el.text.push_str(data);
            } else if rest.starts_with("<?") {
                self.skip_past("?>")?;
            } else if rest.starts_with("<!") {
                return Err(XmlError::Malformed(self.pos));
            } else {
                let child = self.element(depth + 1)?;
                el.children.push(child);
            }
        }
    }
}

/// Replaces the predefined entities and character references.
fn unescape(raw: &str) -> Result<String, XmlError> {
    if !raw.contains('&') {
        return Ok(raw.to_string());
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let semi = after
            .find(';')
            .ok_or_else(|| XmlError::UnknownEntity(after.chars().take(10).collect()))?;
        let entity = &after[..semi];
        match entity {
            "lt" => out.push('<'),
            "gt" => out.push('>'),
            "amp" => out.push('&'),
            "quot" => out.push('"'),
            "apos" => out.push('\''),
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse::<u32>().ok()
                } else {
                    None
                };
                let c = code
                    .and_then(char::from_u32)
                    .ok_or_else(|| XmlError::UnknownEntity(entity.to_string()))?;
                out.push(c);
            }
        }
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Appends `<name>escaped text</name>` to `out`.
pub fn push_text_element(out: &mut String, name: &str, text: &str) {
    let _ = write!(out, "<{name}>{}</{name}>", escape(text));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prefixed_soap() {
        let doc = r#"<?xml version="1.0" encoding="utf-8"?>
<!-- a comment -->
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:t="urn:t">
  <soap:Header><t:RequestServerVersion Version="Exchange2013"/></soap:Header>
  <soap:Body>
    <FindItem Traversal='Shallow'>
      <t:Constant Value="a &amp; b &#x41;&#66;"/>
      <t:Subject><![CDATA[<raw>]]> &lt;x&gt;</t:Subject>
    </FindItem>
  </soap:Body>
</soap:Envelope>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "Envelope");
        let v = root.find("RequestServerVersion").unwrap();
        assert_eq!(v.attr("Version"), Some("Exchange2013"));
        let fi = root.child("Body").unwrap().child("FindItem").unwrap();
        assert_eq!(fi.attr("Traversal"), Some("Shallow"));
        assert_eq!(
            fi.child("Constant").unwrap().attr("Value"),
            Some("a & b AB")
        );
        assert_eq!(fi.child_text("Subject"), Some("<raw> <x>"));
        assert!(root.attrs.is_empty(), "xmlns attributes are not kept");
    }

    #[test]
    fn rejects_broken_documents() {
        assert_eq!(parse(""), Err(XmlError::NoRoot));
        assert!(matches!(
            parse("<a><b></a>"),
            Err(XmlError::MismatchedEnd { .. })
        ));
        assert_eq!(parse("<a>"), Err(XmlError::UnexpectedEnd));
        assert_eq!(parse("<a/><b/>"), Err(XmlError::TrailingContent));
        assert!(matches!(
            parse("<a>&bogus;</a>"),
            Err(XmlError::UnknownEntity(_))
        ));
        assert!(matches!(parse("<a x=1/>"), Err(XmlError::Malformed(_))));
        assert!(parse("not xml").is_err());
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert_eq!(parse(&deep), Err(XmlError::TooDeep));
    }

    #[test]
    fn doctype_subset_is_skipped_not_expanded() {
        let doc = r#"<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>"#;
        assert!(matches!(parse(doc), Err(XmlError::UnknownEntity(_))));
        let doc = "<!DOCTYPE a><a>ok</a>";
        assert_eq!(parse(doc).unwrap().text, "ok");
    }

    #[test]
    fn escape_round_trips() {
        let s = "<a href=\"x\">Tom & 'Jerry'</a>\u{1}";
        let e = escape(s);
        assert_eq!(
            e,
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &apos;Jerry&apos;&lt;/a&gt;"
        );
        let doc = format!("<v>{e}</v>");
        assert_eq!(parse(&doc).unwrap().text, &s[..s.len() - 1]);
    }
}
