//! Which certificate serves a TLS server name: exact names and `*.` wildcards.

use std::collections::HashMap;

/// Maps DNS names (from certificates' SANs) to certificate indexes.
///
/// Matching is case-insensitive and ignores a trailing dot. A wildcard
/// `*.lab.com` matches exactly one more label (`mail.lab.com`, not
/// `lab.com` nor `a.b.lab.com`). An exact name beats a wildcard; among
/// equals the first inserted wins.
#[derive(Debug, Default, Clone)]
pub(crate) struct NameIndex {
    exact: HashMap<String, usize>,
    /// Keyed by what follows `*.`.
    wildcard: HashMap<String, usize>,
}

impl NameIndex {
    /// Registers `name` for certificate `index`. Names with a `*` anywhere
    /// but a leading `*.` label are ignored.
    pub(crate) fn insert(&mut self, name: &str, index: usize) {
        let name = normalize(name);
        if let Some(suffix) = name.strip_prefix("*.") {
            if !suffix.is_empty() && !suffix.contains('*') {
                self.wildcard.entry(suffix.to_owned()).or_insert(index);
            }
        } else if !name.is_empty() && !name.contains('*') {
            self.exact.entry(name).or_insert(index);
        }
    }

    /// The certificate for `server_name`, if any carries that name.
    pub(crate) fn lookup(&self, server_name: &str) -> Option<usize> {
        let name = normalize(server_name);
        if let Some(index) = self.exact.get(&name) {
            return Some(*index);
        }
        let (label, parent) = name.split_once('.')?;
        if label.is_empty() {
            return None;
        }
        self.wildcard.get(parent).copied()
    }
}

fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> NameIndex {
        let mut index = NameIndex::default();
        index.insert("mail.lab.com", 0);
        index.insert("*.lab.com", 1);
        index.insert("Autodiscover.Lab.Com", 2);
        index.insert("mail.lab.com", 3);
        index.insert("f*o.lab.com", 4);
        index.insert("*.*.lab.com", 5);
        index
    }

    #[test]
    fn exact_names_ignore_case_and_trailing_dot() {
        let index = index();
        assert_eq!(index.lookup("mail.lab.com"), Some(0));
        assert_eq!(index.lookup("MAIL.lab.COM."), Some(0));
        assert_eq!(index.lookup("autodiscover.lab.com"), Some(2));
    }

    #[test]
    fn wildcard_matches_one_label() {
        let index = index();
        assert_eq!(index.lookup("owa.lab.com"), Some(1));
        assert_eq!(index.lookup("OWA.LAB.COM"), Some(1));
        assert_eq!(index.lookup("lab.com"), None);
        assert_eq!(index.lookup("a.b.lab.com"), None);
        assert_eq!(index.lookup(".lab.com"), None);
    }

    #[test]
    fn malformed_wildcards_are_ignored() {
        let index = index();
        assert_eq!(index.lookup("f*o.lab.com"), Some(1), "via *.lab.com");
        assert_eq!(index.lookup("x.y.lab.com"), None);
    }

    #[test]
    fn unknown_names_find_nothing() {
        assert_eq!(index().lookup("example.org"), None);
        assert_eq!(index().lookup(""), None);
    }
}
