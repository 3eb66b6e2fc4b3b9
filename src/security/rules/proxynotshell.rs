//! ProxyNotShell (CVE-2022-41040): the ProxyShell path confusion again,
//! this time for authenticated users, to reach PowerShell (then
//! CVE-2022-41082, remote code execution through it).
//!
//! Microsoft's mitigation (EOMTv2, the Exchange Emergency Mitigation
//! service) blocks every request whose URL-decoded target contains both
//! `autodiscover` and `powershell`, in any order and case; this rule is the
//! same test on the fully normalized target. No Autodiscover request of a
//! real client names PowerShell, and no PowerShell request names
//! Autodiscover.

use memchr::memmem::Finder;

use super::{Request, Rule, Word};

static AUTODISCOVER: Word = Word::new(|| Finder::new("autodiscover"));
static POWERSHELL: Word = Word::new(|| Finder::new("powershell"));

/// `autodiscover` and `powershell` anywhere in one request target.
pub struct AutodiscoverPowershell;

impl Rule for AutodiscoverPowershell {
    fn id(&self) -> &'static str {
        "proxynotshell-autodiscover-powershell"
    }

    fn stops(&self) -> &'static str {
        "request targets that name both Autodiscover and PowerShell, the shape of ProxyNotShell's path confusion into remote PowerShell"
    }

    fn cve(&self) -> &'static str {
        "CVE-2022-41040"
    }

    fn check(&self, req: &Request<'_>) -> bool {
        let t = req.target.as_bytes();
        AUTODISCOVER.is_in(t) && POWERSHELL.is_in(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::rules::test_support::get;

    #[test]
    fn autodiscover_with_powershell_is_refused() {
        for t in [
            "/autodiscover/autodiscover.json?@evil.com/owa/&Email=autodiscover/autodiscover.json%3f@evil.com&Protocol=XYZ&FooProtocol=Powershell",
            "/autodiscover/autodiscover.json?@evil.com/PowerShell",
            "/PowerShell/?x=/Autodiscover/",
            "/autodiscover/%70owershell",
            "/autodiscover/%2570owershell",
            "/AUTODISCOVER;x/POWERSHELL",
        ] {
            assert!(get(&AutodiscoverPowershell, t), "{t}");
        }
    }

    #[test]
    fn either_alone_passes() {
        for t in [
            "/Autodiscover/Autodiscover.xml",
            "/autodiscover/autodiscover.json/v1.0/alice@lab.com?Protocol=EWS",
            "/PowerShell/?SerializationLevel=Full;ExchClientVer=15.2.1118.7",
        ] {
            assert!(!get(&AutodiscoverPowershell, t), "{t}");
        }
    }
}
