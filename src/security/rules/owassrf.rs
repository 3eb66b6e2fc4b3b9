//! OWASSRF (CVE-2022-41080): OWA's front end forwarding
//! `/owa/<mailbox>/powershell` to the PowerShell back end as the user,
//! which sidestepped the ProxyNotShell mitigations (the URL names no
//! Autodiscover). ECP's front end shared the flaw.
//!
//! OWA and ECP never serve anything under a `powershell` segment; remote
//! PowerShell lives at `/PowerShell`, which this rule leaves alone.

use super::{find, segments, Request, Rule};

/// OWA or ECP paths that lead into PowerShell.
pub struct OwaPowershell;

impl Rule for OwaPowershell {
    fn id(&self) -> &'static str {
        "owassrf-powershell"
    }

    fn stops(&self) -> &'static str {
        "OWA or ECP paths with a powershell segment (/owa/<mailbox>/powershell), which OWA's front end forwarded to remote PowerShell"
    }

    fn cve(&self) -> &'static str {
        "CVE-2022-41080"
    }

    fn check(&self, req: &Request<'_>) -> bool {
        let mut segs = segments(req.target.path());
        let under_owa_or_ecp = segs
            .next()
            .is_some_and(|first| first == b"owa" || first == b"ecp");
        under_owa_or_ecp && segs.any(is_powershell)
    }
}

/// `powershell`, `powershell-liveid` and the like, also with what IIS drops
/// from a segment's end (dots, spaces) and with an encoded `?` after it.
fn is_powershell(segment: &[u8]) -> bool {
    let segment = match find(segment, b"%3f").or_else(|| find(segment, b"%u003f")) {
        Some(i) => &segment[..i],
        None => segment,
    };
    let trimmed = segment
        .iter()
        .rposition(|&b| b != b'.' && b != b' ')
        .map_or(&b""[..], |end| &segment[..=end]);
    trimmed == b"powershell" || trimmed.starts_with(b"powershell-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::rules::test_support::get;

    #[test]
    fn owa_and_ecp_into_powershell_are_refused() {
        for t in [
            "/owa/mastermailbox%40outlook.com/powershell",
            "/owa/alice@lab.com/PowerShell?serializationLevel=Full",
            "/OWA/x/y/powershell-liveid",
            "/ecp/alice@lab.com/powershell",
            "/owa/x/powershell.",
            "/owa/x/powershell%3fx=1",
            "/owa;x/powershell",
            "/owa%2fpowershell",
            "/owa%252fpowershell",
            "\\owa\\x\\powershell",
            "https://mail.lab.com/owa/x/powershell",
        ] {
            assert!(get(&OwaPowershell, t), "{t}");
        }
    }

    #[test]
    fn ordinary_owa_and_powershell_pass() {
        for t in [
            "/owa/",
            "/owa/alice@lab.com/",
            "/owa/auth/logon.aspx?url=https%3a%2f%2fmail.lab.com%2fpowershell",
            "/owa/x/powershellscripts.txt",
            "/PowerShell/",
            "/ecp/PersonalSettings/HomePage.aspx",
            "/ews/powershell",
        ] {
            assert!(!get(&OwaPowershell, t), "{t}");
        }
    }
}
