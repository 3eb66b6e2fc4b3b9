//! ProxyShell (CVE-2021-34473, CVE-2021-34523): path confusion through
//! Autodiscover's explicit-logon URLs, then Exchange PowerShell as the
//! caller named in `X-Rps-CAT`.
//!
//! The front end took `/autodiscover/autodiscover.json?@<anything>/<path>`
//! (with `Email=autodiscover/autodiscover.json?@...` so that it matched
//! its own explicit-logon pattern) as an explicit logon, cut the
//! Autodiscover part away and forwarded what was left, `/<path>`, to the
//! back end of any service (`/mapi/nspi`, `/EWS`, `/PowerShell`) with its
//! own machine credentials. On PowerShell, the back end took the caller's
//! identity from an `X-Rps-CAT` query parameter (a CommonAccessToken)
//! that only the front end is meant to write.
//!
//! Legitimate Autodiscover JSON requests carry a mailbox too, Outlook
//! mobile's `autodiscover.json/v1.0/alice@lab.com?Protocol=EWS` or
//! `autodiscover.json?Email=alice@lab.com&Protocol=ActiveSync`, but never
//! a service's path after the `@`, nor an `Email` that is a path.

use memchr::memmem::Finder;

use super::{contains, Request, Rule, Word};

static AUTODISCOVER_JSON: Word = Word::new(|| Finder::new("autodiscover.json"));
static X_RPS_CAT: Word = Word::new(|| Finder::new("x-rps-cat"));

/// Autodiscover JSON requests whose target carries an `@` followed by
/// another service's path, and `Email=` parameters that point back at
/// Autodiscover.
pub struct ExplicitLogon;

/// Exchange's virtual directories, as path segments (lower case).
const SERVICES: &[&[u8]] = &[
    b"owa",
    b"ecp",
    b"ews",
    b"mapi",
    b"rpc",
    b"oab",
    b"powershell",
    b"microsoft-server-activesync",
    b"autodiscover",
    b"api",
];

impl Rule for ExplicitLogon {
    fn id(&self) -> &'static str {
        "proxyshell-explicit-logon"
    }

    fn stops(&self) -> &'static str {
        "Autodiscover explicit-logon URLs (autodiscover.json with an @ followed by another service's path, or an Email= that points back at Autodiscover) that reach any back-end path as the server itself"
    }

    fn cve(&self) -> &'static str {
        "CVE-2021-34473"
    }

    fn check(&self, req: &Request<'_>) -> bool {
        let t = req.target.as_bytes();
        let confused = AUTODISCOVER_JSON.is_in(t)
            && memchr::memchr(b'@', t).is_some_and(|at| names_a_service(&t[at..]));
        confused || req.target.query().is_some_and(email_points_at_autodiscover)
    }
}

/// Whether `s` holds `/<service>` ending at a non-alphanumeric byte.
fn names_a_service(s: &[u8]) -> bool {
    memchr::memchr_iter(b'/', s).any(|i| {
        let rest = &s[i + 1..];
        SERVICES.iter().any(|name| {
            rest.starts_with(name)
                && rest
                    .get(name.len())
                    .is_none_or(|b| !b.is_ascii_alphanumeric())
        })
    })
}

/// Whether a normalized query has an `email` parameter naming an
/// Autodiscover path rather than a mailbox.
fn email_points_at_autodiscover(query: &[u8]) -> bool {
    query.split(|&b| b == b'&').any(|param| {
        param.strip_prefix(b"email=").is_some_and(|value| {
            [
                &b"autodiscover/"[..],
                b"autodiscover.json",
                b"autodiscover.xml",
                b"autodiscover.svc",
            ]
            .iter()
            .any(|needle| contains(value, needle))
        })
    })
}

/// `X-Rps-CAT` in the request target: the token by which the front end
/// tells the PowerShell back end who the caller is; a client never sends
/// it.
pub struct RpsCat;

impl Rule for RpsCat {
    fn id(&self) -> &'static str {
        "proxyshell-rps-cat"
    }

    fn stops(&self) -> &'static str {
        "an X-Rps-CAT token in the request target, by which ProxyShell made the PowerShell back end run as any user"
    }

    fn cve(&self) -> &'static str {
        "CVE-2021-34523"
    }

    fn check(&self, req: &Request<'_>) -> bool {
        X_RPS_CAT.is_in(req.target.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::rules::test_support::get;

    #[test]
    fn explicit_logon_confusion_is_refused() {
        for t in [
            "/autodiscover/autodiscover.json?@evil.com/mapi/nspi/?&Email=autodiscover/autodiscover.json%3F@evil.com",
            "/autodiscover/autodiscover.json?@evil.com/EWS/Exchange.asmx?&Email=autodiscover/autodiscover.json%3F@evil.com",
            "/autodiscover/autodiscover.json?a=x@evil.com/powershell/?&Email=autodiscover/autodiscover.json%3f@evil.com",
            "/autodiscover/autodiscover.json?@evil.com/owa/&Email=autodiscover/autodiscover.json?@evil.com&Protocol=XYZ",
            "/autodiscover/autodiscover.json/@evil.com/mapi/emsmdb",
            "/Autodiscover/Autodiscover.json?@evil.com/Microsoft-Server-ActiveSync",
            "/autodiscover/autodiscover.json?@evil.com/mapi",
            // The Email parameter alone.
            "/autodiscover/autodiscover.json?Email=autodiscover/autodiscover.json%3f@evil.com",
            "/mapi/nspi/?Email=Autodiscover/autodiscover.json",
        ] {
            assert!(get(&ExplicitLogon, t), "{t}");
        }
    }

    #[test]
    fn outlook_mobile_and_autodiscover_v2_pass() {
        for t in [
            "/autodiscover/autodiscover.json/v1.0/alice@lab.com?Protocol=EWS",
            "/autodiscover/autodiscover.json/v1.0/alice@lab.com?Protocol=ActiveSync&RedirectCount=1",
            "/autodiscover/autodiscover.json?Email=alice@lab.com&Protocol=EWS&RedirectCount=1",
            "/autodiscover/autodiscover.json/v1.0/mapi@lab.com?Protocol=Rest",
            "/autodiscover/autodiscover.json/v1.0/owa.team@lab.com?Protocol=AutodiscoverV1",
            "/Autodiscover/Autodiscover.xml",
            "/mapi/emsmdb/?MailboxId=8f0e2a1b-0000-0000-0000-000000000001@lab.com",
            "/owa/alice@lab.com/",
            "/autodiscover/autodiscover.json?Email=autodiscover@lab.com&Protocol=EWS",
        ] {
            assert!(!get(&ExplicitLogon, t), "{t}");
        }
    }

    #[test]
    fn rps_cat_in_the_target_is_refused() {
        for t in [
            "/powershell/?X-Rps-CAT=VgEAVAdXaW5kb3dz",
            "/autodiscover/autodiscover.json?@evil.com/powershell/?X-Rps-CAT=VgEA&Email=autodiscover/autodiscover.json%3F@evil.com",
            "/PowerShell?serializationLevel=Full;x-rps-cat=VgEA",
            "/powershell%3fX-Rps-CAT=VgEA",
            "/powershell?X%2DRps%2DCAT=VgEA",
        ] {
            assert!(get(&RpsCat, t), "{t}");
        }
        assert!(!get(
            &RpsCat,
            "/PowerShell?serializationLevel=Full;ExchClientVer=15.2.1118.7;clientApplication=ManagementShell;TargetServer=;PSVersion=5.1.17763.1007"
        ));
    }
}
