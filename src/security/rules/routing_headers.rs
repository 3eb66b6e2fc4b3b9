//! Headers by which Exchange's own components talk to each other, sent by
//! a client.
//!
//! Exchange's front end (HttpProxy) tells the back end who the caller is
//! and where the request came from in headers of its own, and names the
//! servers involved in its answers. A client has no reason to send any of
//! them. Two kinds, two treatments:
//!
//! - **refused** (403): headers that assert an identity or choose a back
//!   end (`X-CommonAccessToken`, `X-IsFromCafe`, `X-IsFromBackend`,
//!   `X-SourceCafeServer`, `msExchProxyUri`, `X-CalculatedBETarget`,
//!   `X-CalculatedFETarget`, `X-TargetBEServer`, `X-Rps-CAT`): a forged one
//!   is an attempt to be someone else or to go somewhere else. Exchange's
//!   front end drops the identity ones itself (its
//!   `ShouldCopyHeaderToServerRequest` list); the array refuses them, as
//!   their presence is the attack.
//! - **removed** (the request goes on without them): the servers' names
//!   and diagnostics that Exchange writes in answers (`X-FEServer`,
//!   `X-BEServer`, `X-DiagInfo`, `X-FEProxyInfo`, `X-MSExchangeActivityCtx`
//!   and every `X-Backend-Diag-*`). A client that echoes one (a debugging
//!   tool replaying a captured request) does no harm, and a member never
//!   sees a client's copy.

use http::header::HeaderMap;

use super::{Request, Rule};

/// Refused: identity and back-end choice (lower case).
pub const REFUSED: &[&str] = &[
    "x-commonaccesstoken",
    "x-isfromcafe",
    "x-isfrombackend",
    "x-sourcecafeserver",
    "msexchproxyuri",
    "x-calculatedbetarget",
    "x-calculatedfetarget",
    "x-targetbeserver",
    "x-rps-cat",
];

/// Removed: server names and diagnostics (lower case).
pub const REMOVED: &[&str] = &[
    "x-feserver",
    "x-beserver",
    "x-diaginfo",
    "x-feproxyinfo",
    "x-msexchangeactivityctx",
];

/// Removed too: every header whose name starts with this.
pub const REMOVED_PREFIX: &str = "x-backend-diag-";

/// Client-sent internal routing and identity headers.
pub struct InternalRoutingHeaders;

impl Rule for InternalRoutingHeaders {
    fn id(&self) -> &'static str {
        "internal-routing-headers"
    }

    fn stops(&self) -> &'static str {
        "client-sent headers that Exchange's front end writes for its back end (X-CommonAccessToken, X-IsFromCafe, X-CalculatedBETarget, ...), by which a request claims another identity or picks its back end"
    }

    fn cve(&self) -> &'static str {
        "none (hardening; ProxyLogon and ProxyShell abused the same trust)"
    }

    fn check(&self, req: &Request<'_>) -> bool {
        req.headers.keys().any(|k| REFUSED.contains(&k.as_str()))
    }
}

/// Whether a header of the removed kind is present.
fn is_removed(name: &str) -> bool {
    REMOVED.contains(&name) || name.starts_with(REMOVED_PREFIX)
}

/// Removes the headers of the removed kind; returns how many names went.
/// Allocates nothing when there is none (the usual case).
pub fn strip(headers: &mut HeaderMap) -> usize {
    // One pass over the names says whether there is anything to remove:
    // cheaper than a lookup per listed name, and usually nothing is.
    if !headers.keys().any(|k| is_removed(k.as_str())) {
        return 0;
    }
    let mut removed = 0;
    for name in REMOVED {
        if headers.remove(*name).is_some() {
            removed += 1;
        }
    }
    if headers
        .keys()
        .any(|k| k.as_str().starts_with(REMOVED_PREFIX))
    {
        while let Some(name) = headers
            .keys()
            .find(|k| k.as_str().starts_with(REMOVED_PREFIX))
            .cloned()
        {
            headers.remove(&name);
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::rules::test_support::hits;
    use http::HeaderValue;

    #[test]
    fn identity_and_routing_headers_are_refused() {
        for name in [
            "X-CommonAccessToken",
            "x-isfromcafe",
            "X-IsFromBackend",
            "X-SourceCafeServer",
            "msExchProxyUri",
            "X-CalculatedBETarget",
            "X-CalculatedFETarget",
            "X-TargetBEServer",
            "X-Rps-CAT",
        ] {
            assert!(
                hits(&InternalRoutingHeaders, "GET", "/owa/", &[(name, "1")]),
                "{name}"
            );
        }
        assert!(!hits(
            &InternalRoutingHeaders,
            "POST",
            "/EWS/Exchange.asmx",
            &[
                ("X-AnchorMailbox", "alice@lab.com"),
                ("X-PreferServerAffinity", "true"),
                ("X-FEServer", "EX1")
            ]
        ));
    }

    #[test]
    fn server_names_are_removed_and_the_rest_kept() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x-feserver", "EX1"),
            ("x-beserver", "EX2"),
            ("x-diaginfo", "EX1"),
            ("x-feproxyinfo", "x"),
            ("x-msexchangeactivityctx", "x"),
            ("x-backend-diag-a", "1"),
            ("x-backend-diag-b", "2"),
            ("x-anchormailbox", "alice@lab.com"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        h.append("x-feserver", HeaderValue::from_static("EX3"));
        assert_eq!(strip(&mut h), 7);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-anchormailbox"));
        assert_eq!(strip(&mut h), 0);
    }
}
