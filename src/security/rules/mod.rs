//! The shield rules: one file per exploit chain, each rule one type
//! implementing [`Rule`].
//!
//! A rule sees the request head as it arrived ([`Request`]): the method,
//! the normalized target (see `security::normalize`) and the headers. It
//! says whether the request has the shape it refuses; it never changes the
//! request (the one family that removes headers does it through
//! [`routing_headers::strip`]). Rules are pure functions of the head: they
//! keep no state, allocate nothing and cannot panic on what a client sends.
//!
//! | id | file | CVE |
//! |---|---|---|
//! | `proxylogon-anonresource` | proxylogon.rs | CVE-2021-26855 |
//! | `proxylogon-beresource` | proxylogon.rs | CVE-2021-26855 |
//! | `proxylogon-backendcookie` | proxylogon.rs | CVE-2021-26855 |
//! | `proxyshell-explicit-logon` | proxyshell.rs | CVE-2021-34473 |
//! | `proxyshell-rps-cat` | proxyshell.rs | CVE-2021-34523 |
//! | `proxynotshell-autodiscover-powershell` | proxynotshell.rs | CVE-2022-41040 |
//! | `owassrf-powershell` | owassrf.rs | CVE-2022-41080 |
//! | `internal-routing-headers` | routing_headers.rs | (hardening) |

pub mod owassrf;
pub mod proxylogon;
pub mod proxynotshell;
pub mod proxyshell;
pub mod routing_headers;

use http::header::{HeaderMap, COOKIE};
use http::Method;

use super::normalize::Normalized;

/// One shield rule.
pub trait Rule: Send + Sync + 'static {
    /// Stable id: lower case, dash-separated; used in `[security]
    /// disabled_rules`, in the access log and as the `rule` label of
    /// `casarray_blocked_requests_total`.
    fn id(&self) -> &'static str;
    /// What the rule stops, in one sentence.
    fn stops(&self) -> &'static str;
    /// The CVE of the exploit chain the rule is for ("none" for hardening).
    fn cve(&self) -> &'static str;
    /// Whether `req` has the shape this rule refuses (403).
    fn check(&self, req: &Request<'_>) -> bool;
}

/// Every rule, in the order they are checked (cheapest first).
pub static RULES: [&dyn Rule; 8] = [
    &routing_headers::InternalRoutingHeaders,
    &proxylogon::AnonResource,
    &proxylogon::BeResource,
    &proxylogon::BackEndCookie,
    &proxyshell::ExplicitLogon,
    &proxyshell::RpsCat,
    &proxynotshell::AutodiscoverPowershell,
    &owassrf::OwaPowershell,
];

/// The index in [`RULES`] of the rule named `id`.
pub fn index_of(id: &str) -> Option<usize> {
    RULES.iter().position(|r| r.id() == id)
}

/// The request head as a rule sees it.
pub struct Request<'a> {
    pub method: &'a Method,
    pub target: &'a Normalized,
    pub headers: &'a HeaderMap,
}

impl<'a> Request<'a> {
    /// Whether any `Cookie` field holds `word` (lower case), in any case: a
    /// cheap test before parsing the cookies one by one.
    pub fn cookies_mention(&self, word: &[u8]) -> bool {
        self.headers
            .get_all(COOKIE)
            .iter()
            .any(|v| contains_ignore_case(v.as_bytes(), word))
    }

    /// Every cookie of every `Cookie` field, as (name, value) with spaces
    /// around both trimmed. Pairs are split on `;` and also on `,` (old
    /// cookie syntax that ASP.NET still reads), so that no cookie can hide
    /// inside another's value. A pair without `=` has an empty value.
    pub fn cookies(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        self.headers
            .get_all(COOKIE)
            .into_iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b';' || b == b','))
            .filter_map(|pair| {
                let pair = pair.trim_ascii();
                if pair.is_empty() {
                    return None;
                }
                Some(match memchr::memchr(b'=', pair) {
                    Some(i) => (pair[..i].trim_ascii(), pair[i + 1..].trim_ascii()),
                    None => (pair, &b""[..]),
                })
            })
    }
}

/// Whether `hay` holds `needle` (already lower case), ignoring ASCII case.
/// For raw header bytes; the normalized target is lower case already.
pub(crate) fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let upper = first.to_ascii_uppercase();
    let mut at = 0;
    while let Some(i) = memchr::memchr2(first, upper, &hay[at..]) {
        let start = at + i;
        let tail = &hay[start + 1..];
        if tail.len() >= rest.len() && tail[..rest.len()].eq_ignore_ascii_case(rest) {
            return true;
        }
        at = start + 1;
    }
    false
}

/// Whether `hay` holds `needle`, byte for byte.
pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

/// A fixed word searched in every request target: built once, searched
/// with memchr's rare-byte prefilter (a first-byte scan is slow for words
/// starting with a common letter, like `autodiscover`).
pub(crate) struct Word(std::sync::LazyLock<memchr::memmem::Finder<'static>>);

impl Word {
    pub(crate) const fn new(build: fn() -> memchr::memmem::Finder<'static>) -> Self {
        Word(std::sync::LazyLock::new(build))
    }

    pub(crate) fn is_in(&self, hay: &[u8]) -> bool {
        self.0.find(hay).is_some()
    }
}

/// Where `needle` starts in `hay`. A scan for its first byte: for the short
/// haystacks of request targets this beats building a `memmem::Finder` on
/// each call (its setup costs more than the search).
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let Some((&first, rest)) = needle.split_first() else {
        return Some(0);
    };
    memchr::memchr_iter(first, hay).find(|&i| hay[i + 1..].starts_with(rest))
}

/// The segments of a normalized path, without the empty one before the
/// leading `/`.
pub(crate) fn segments(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/').filter(|s| !s.is_empty())
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Requests for the rules' unit tests.

    use http::header::{HeaderMap, HeaderName, HeaderValue};
    use http::Method;

    use super::{Request, Rule};
    use crate::security::normalize::normalize;

    /// Whether `rule` refuses a `method` request for `target` with `headers`.
    pub fn hits(rule: &dyn Rule, method: &str, target: &str, headers: &[(&str, &str)]) -> bool {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let target = normalize(target.as_bytes());
        rule.check(&Request {
            method: &method,
            target: &target,
            headers: &map,
        })
    }

    /// `hits` for a GET without headers.
    pub fn get(rule: &dyn Rule, target: &str) -> bool {
        hits(rule, "GET", target, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn ids_are_the_ones_the_config_takes() {
        let ids: Vec<&str> = RULES.iter().map(|r| r.id()).collect();
        assert_eq!(ids, crate::config::SHIELD_RULE_IDS);
    }

    #[test]
    fn ids_are_stable_lower_case_and_unique() {
        let ids: Vec<&str> = RULES.iter().map(|r| r.id()).collect();
        assert_eq!(
            ids,
            [
                "internal-routing-headers",
                "proxylogon-anonresource",
                "proxylogon-beresource",
                "proxylogon-backendcookie",
                "proxyshell-explicit-logon",
                "proxyshell-rps-cat",
                "proxynotshell-autodiscover-powershell",
                "owassrf-powershell",
            ]
        );
        for r in RULES {
            let id = r.id();
            assert!(
                id.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') && !id.starts_with('-'),
                "{id}"
            );
            assert!(!r.stops().is_empty() && !r.cve().is_empty(), "{id}");
            assert_eq!(index_of(id).map(|i| RULES[i].id()), Some(id));
        }
        assert_eq!(index_of("nope"), None);
    }

    #[test]
    fn cookies_come_from_every_field_and_both_separators() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; B = 2 ;; c"));
        headers.append(COOKIE, HeaderValue::from_static("d=x=y, e=3"));
        let method = Method::GET;
        let target = crate::security::normalize::normalize(b"/");
        let req = Request {
            method: &method,
            target: &target,
            headers: &headers,
        };
        let got: Vec<(String, String)> = req
            .cookies()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect();
        let want = [("a", "1"), ("B", "2"), ("c", ""), ("d", "x=y"), ("e", "3")];
        assert_eq!(
            got,
            want.map(|(k, v)| (k.to_string(), v.to_string())).to_vec()
        );
    }

    #[test]
    fn case_insensitive_search() {
        assert!(contains_ignore_case(
            b"a=1; X-AnonResource=true",
            b"x-anonresource"
        ));
        assert!(contains_ignore_case(b"xX-ANONRESOURCE", b"x-anonresource"));
        assert!(!contains_ignore_case(b"x-anonresourc", b"x-anonresource"));
        assert!(contains_ignore_case(b"", b""));
        assert!(!contains_ignore_case(b"", b"x"));
        assert_eq!(find(b"/a/autodiscover.json", b"autodiscover.json"), Some(3));
        assert_eq!(find(b"autodiscove", b"autodiscover"), None);
        assert_eq!(find(b"xx", b""), Some(0));
        let segs: Vec<&[u8]> = segments(b"/owa/x/").collect();
        assert_eq!(segs, [&b"owa"[..], b"x"]);
    }
}
