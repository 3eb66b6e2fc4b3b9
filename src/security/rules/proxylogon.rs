//! ProxyLogon (CVE-2021-26855): server-side request forgery through the
//! cookies by which Exchange's front end picks a back end.
//!
//! The front end (HttpProxy) trusted three client-sent cookies to choose
//! where a request goes: `X-AnonResource-Backend` (with `X-AnonResource`),
//! `X-BEResource` and, for most protocols, `X-BackEndCookie`. ProxyLogon set
//! them to `localhost/ecp/...` style targets so that the front end sent the
//! request, with its own machine credentials, to a path of the attacker's
//! choosing. Microsoft's emergency mitigation (BackendCookieMitigation.ps1,
//! EOMT) aborted requests whose cookies carry `X-AnonResource-Backend`
//! anywhere, or an `X-BEResource` value of the shape `name/path~n`.

use crate::security::normalize;

use super::{contains_ignore_case, Request, Rule};

/// Client-sent `X-AnonResource*` cookies or headers: the front end sets
/// these only between its own components; no client ever sends one.
pub struct AnonResource;

impl Rule for AnonResource {
    fn id(&self) -> &'static str {
        "proxylogon-anonresource"
    }

    fn stops(&self) -> &'static str {
        "X-AnonResource and X-AnonResource-Backend cookies or headers that point the front end at a back-end path of the client's choosing"
    }

    fn cve(&self) -> &'static str {
        "CVE-2021-26855"
    }

    fn check(&self, req: &Request<'_>) -> bool {
        // As Microsoft's mitigation: anywhere in any Cookie field (a name,
        // a value, or a pair hidden in another's value), in any case.
        req.headers
            .keys()
            .any(|k| k.as_str().starts_with("x-anonresource"))
            || req
                .headers
                .get_all(http::header::COOKIE)
                .iter()
                .any(|v| contains_ignore_case(v.as_bytes(), b"x-anonresource"))
    }
}

/// An `X-BEResource` (or `X-BackEndOverrideCookie`) cookie shaped like a
/// routing target. Exchange sets these to `<server fqdn>~<version>`; a value
/// holding a path, query, fragment or user-info character (`/ \ ? # @`,
/// also percent-encoded, also twice) names a path on a back end instead.
pub struct BeResource;

/// Longest routing cookie value examined: 512 bytes. Exchange's are well
/// under 100; a longer one is refused as not Exchange's.
const MAX_ROUTING_COOKIE: usize = 512;

impl Rule for BeResource {
    fn id(&self) -> &'static str {
        "proxylogon-beresource"
    }

    fn stops(&self) -> &'static str {
        "X-BEResource (and X-BackEndOverrideCookie) cookies that name a back-end path (name/path~n) instead of a server"
    }

    fn cve(&self) -> &'static str {
        "CVE-2021-26855"
    }

    fn check(&self, req: &Request<'_>) -> bool {
        // X-BEResource and X-BackEndOverrideCookie both hold `x-b`.
        req.cookies_mention(b"x-b")
            && req.cookies().any(|(name, value)| {
                (name.eq_ignore_ascii_case(b"x-beresource")
                    || name.eq_ignore_ascii_case(b"x-backendoverridecookie"))
                    && routes_to_a_path(value)
            })
    }
}

/// Whether a routing cookie's value, fully percent-decoded, holds more than
/// a server name and a version.
fn routes_to_a_path(value: &[u8]) -> bool {
    let bad = |b: &u8| {
        matches!(b, b'/' | b'\\' | b'?' | b'#' | b'@') || b.is_ascii_control() || *b == b' '
    };
    if value.len() > MAX_ROUTING_COOKIE {
        return true;
    }
    if !value.contains(&b'%') {
        return value.iter().any(bad);
    }
    let mut buf = [0u8; MAX_ROUTING_COOKIE];
    let Some(decoded) = normalize::decode_fully(value, &mut buf) else {
        return true;
    };
    decoded.iter().any(|b| {
        matches!(b, b'/' | b'\\' | b'?' | b'#' | b'@') || b.is_ascii_control() || *b == b' '
    })
}

/// An `X-BackEndCookie` whose decoded value is not what Exchange writes.
///
/// Exchange sets `X-BackEndCookie=<anchor>=<payload>`: the anchor is the
/// user's SID or address, the payload base64 of the entry with every byte
/// inverted (XOR 0xFF). The entry is `Server~<fqdn>~<version>~<expiry>` or
/// `Database~<guid>~<forest>~<expiry>[~<domain>~<flags>]`, the expiry
/// written `yyyy-MM-ddTHH:mm:ss`. Anything else (no anchor, not base64,
/// another entry type, a server that is not a host name, a path...) is a
/// forgery: only the shape is checked, not the server's name. An empty
/// value (a cleared cookie) is let through.
pub struct BackEndCookie;

/// Longest `X-BackEndCookie` payload examined: 512 base64 characters;
/// Exchange's are about 120.
const MAX_PAYLOAD: usize = 512;

/// Lenient base64: padding optional, as cookie handling sometimes loses it.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

impl Rule for BackEndCookie {
    fn id(&self) -> &'static str {
        "proxylogon-backendcookie"
    }

    fn stops(&self) -> &'static str {
        "forged X-BackEndCookie values whose decoded entry is not the Server~ or Database~ entry Exchange writes"
    }

    fn cve(&self) -> &'static str {
        "CVE-2021-26855"
    }

    fn check(&self, req: &Request<'_>) -> bool {
        req.cookies_mention(b"x-backendcookie")
            && req.cookies().any(|(name, value)| {
                name.len() >= 15
                    && name[..15].eq_ignore_ascii_case(b"x-backendcookie")
                    && !value.is_empty()
                    && !is_exchange_backend_cookie(value)
            })
    }
}

/// Whether `value` has the shape of an `X-BackEndCookie` Exchange wrote.
pub(crate) fn is_exchange_backend_cookie(value: &[u8]) -> bool {
    let value = value
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(value);
    let Some(eq) = memchr::memchr(b'=', value) else {
        return false;
    };
    let (anchor, payload) = (&value[..eq], &value[eq + 1..]);
    if anchor.is_empty() || anchor.len() > 320 || !anchor.iter().all(|&b| is_anchor_byte(b)) {
        return false;
    }
    if payload.is_empty() || payload.len() > MAX_PAYLOAD {
        return false;
    }
    let mut buf = [0u8; MAX_PAYLOAD];
    let Ok(n) = base64::Engine::decode_slice(&BASE64, payload, &mut buf) else {
        return false;
    };
    let entry = &mut buf[..n];
    for b in entry.iter_mut() {
        *b ^= 0xff;
    }
    is_entry(entry)
}

/// A SID (`S-1-5-21-...`) or a mailbox address: address characters only.
fn is_anchor_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"@.-_+'!#$%&*=^`{|}~".contains(&b)
}

/// `Server~fqdn~version~expiry` or `Database~guid~forest~expiry[~domain[~flags]]`.
fn is_entry(entry: &[u8]) -> bool {
    if !entry.iter().all(|b| (0x20..0x7f).contains(b)) {
        return false;
    }
    let mut fields = [&b""[..]; 6];
    let mut count = 0;
    for f in entry.split(|&b| b == b'~') {
        if count == fields.len() {
            return false;
        }
        fields[count] = f;
        count += 1;
    }
    if !(4..=6).contains(&count) {
        return false;
    }
    let [kind, target, third, expiry, extra @ ..] = fields;
    let typed = if kind.eq_ignore_ascii_case(b"server") {
        is_host(target) && is_number(third)
    } else if kind.eq_ignore_ascii_case(b"database") {
        is_guid(target) && (third.is_empty() || is_host(third))
    } else {
        false
    };
    typed
        && is_timestamp(expiry)
        && extra[..count - 4]
            .iter()
            .all(|f| f.is_empty() || is_host(f) || is_number(f))
}

fn is_host(s: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

fn is_number(s: &[u8]) -> bool {
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    !digits.is_empty() && digits.len() <= 20 && digits.iter().all(u8::is_ascii_digit)
}

/// 8-4-4-4-12 hex digits.
fn is_guid(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// `yyyy-MM-ddTHH:mm:ss`.
fn is_timestamp(s: &[u8]) -> bool {
    s.len() == 19
        && s.iter().enumerate().all(|(i, &b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T' || b == b't',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::rules::test_support::{get, hits};
    use base64::Engine as _;

    /// An X-BackEndCookie as Exchange writes one.
    pub(crate) fn backend_cookie(anchor: &str, entry: &str) -> String {
        let inverted: Vec<u8> = entry.bytes().map(|b| b ^ 0xff).collect();
        format!(
            "{anchor}={}",
            base64::engine::general_purpose::STANDARD.encode(inverted)
        )
    }

    #[test]
    fn anonresource_cookies_and_headers_anywhere() {
        let r = &AnonResource;
        for cookie in [
            "X-AnonResource=true; X-AnonResource-Backend=localhost/ecp/default.flt?~3",
            "x-anonresource-backend=10.0.0.5/ecp/x.js?~3",
            "a=b; X-ANONRESOURCE-BACKEND=x",
            "a=b, X-AnonResource=true",
            "a=X-AnonResource-Backend",
        ] {
            assert!(
                hits(r, "GET", "/ecp/y.js", &[("cookie", cookie)]),
                "{cookie}"
            );
        }
        // In a second Cookie field.
        assert!(hits(
            r,
            "GET",
            "/owa/",
            &[("cookie", "a=1"), ("cookie", "X-AnonResource=true")]
        ));
        assert!(hits(
            r,
            "GET",
            "/owa/",
            &[("X-AnonResource-Backend", "localhost/ecp/x~1")]
        ));
        assert!(hits(r, "GET", "/owa/", &[("x-anonresource", "true")]));
        assert!(!hits(
            r,
            "GET",
            "/owa/",
            &[("cookie", "cadata=x; X-BEResource=ex1~1")]
        ));
        assert!(!get(r, "/owa/X-AnonResource"), "a path is no cookie");
    }

    #[test]
    fn beresource_naming_a_path_is_refused() {
        let r = &BeResource;
        for value in [
            "localhost/owa/auth/logon.aspx?~3",
            "localhost~1942062522/x",
            "EX1/ecp/proxyLogon.ecp?~1941962753",
            "localhost%2Fecp%2Fx~1",
            "localhost%252Fecp~1",
            "a@evil.com~1",
            "host\\path~1",
            "host#frag~1",
        ] {
            let cookie = format!("a=1; X-BEResource={value}");
            assert!(
                hits(r, "GET", "/ecp/x.js", &[("cookie", &cookie)]),
                "{value}"
            );
            let lower = format!("x-beresource={value}");
            assert!(
                hits(r, "GET", "/ecp/x.js", &[("cookie", &lower)]),
                "{value}"
            );
        }
        let override_cookie = "X-BackEndOverrideCookie=localhost/ews/x~1";
        assert!(hits(
            r,
            "POST",
            "/EWS/Exchange.asmx",
            &[("cookie", override_cookie)]
        ));
        assert!(hits(
            r,
            "GET",
            "/ecp/",
            &[("cookie", &format!("X-BEResource={}", "a".repeat(600)))]
        ));
        // What Exchange sets: a server name and a version.
        for ok in [
            "X-BEResource=ex1.lab.local~1942062522",
            "X-BackEndOverrideCookie=CO1PR06MB222.namprd06.prod.outlook.com~1941996295",
            "X-BEResource=",
            "X-BEResourceX=a/b~1",
        ] {
            assert!(!hits(r, "GET", "/ecp/", &[("cookie", ok)]), "{ok}");
        }
    }

    #[test]
    fn backend_cookies_of_exchange_shape_pass() {
        for (anchor, entry) in [
            (
                "S-1-5-21-46962994-2066588249-799565096-500",
                "Database~e6f4cf03-a2d3-456b-9140-3ba771f0aca8~~2023-10-08T09:14:09~exchange2016.com~0",
            ),
            (
                "S-1-5-21-1713849901-2797640346-4150151575-1009910",
                "Database~e3625537-7f71-439c-8309-06ff6a16245a~~2019-12-29T06:31:12",
            ),
            (
                "alice@lab.com",
                "Database~4a4f2434-daf6-4a0f-812a-d6bddeb20130~lab.com~2015-01-11T13:20:50",
            ),
            ("alice@lab.com", "Server~ex1.lab.local~1942062522~2026-01-01T00:00:00"),
        ] {
            let value = backend_cookie(anchor, entry);
            assert!(is_exchange_backend_cookie(value.as_bytes()), "{entry}");
            let cookie = format!("X-BackEndCookie={value}; X-BackEndCookie2={value}");
            assert!(!hits(&BackEndCookie, "POST", "/EWS/Exchange.asmx", &[("cookie", &cookie)]));
        }
        // A cleared cookie.
        assert!(!hits(
            &BackEndCookie,
            "GET",
            "/owa/",
            &[("cookie", "X-BackEndCookie=")]
        ));
    }

    #[test]
    fn forged_backend_cookies_are_refused() {
        let forged = [
            backend_cookie(
                "alice@lab.com",
                "Server~localhost/ecp/x.js?~1942062522~2026-01-01T00:00:00",
            ),
            backend_cookie("alice@lab.com", "Server~evil.com:444~1~2026-01-01T00:00:00"),
            backend_cookie("alice@lab.com", "Server~ex1~abc~2026-01-01T00:00:00"),
            backend_cookie("alice@lab.com", "Database~not-a-guid~~2026-01-01T00:00:00"),
            backend_cookie("alice@lab.com", "Forest~ex1~1~2026-01-01T00:00:00"),
            backend_cookie("alice@lab.com", "Server~ex1~1~tomorrow"),
            backend_cookie("alice@lab.com", "Server~ex1~1"),
            backend_cookie("alice@lab.com", "Server~ex1~1~2026-01-01T00:00:00~a~b~c"),
            backend_cookie("alice@lab.com", "Server~ex1\u{1}~1~2026-01-01T00:00:00"),
            backend_cookie("", "Server~ex1~1~2026-01-01T00:00:00"),
            backend_cookie("a/b", "Server~ex1~1~2026-01-01T00:00:00"),
            "alice@lab.com=!!!not-base64!!!".to_string(),
            "no-anchor".to_string(),
            format!("a={}", "A".repeat(600)),
            // Exchange's entry, not inverted.
            format!(
                "a={}",
                base64::engine::general_purpose::STANDARD
                    .encode("Server~ex1~1~2026-01-01T00:00:00")
            ),
        ];
        for value in &forged {
            assert!(!is_exchange_backend_cookie(value.as_bytes()), "{value}");
            let cookie = format!("x-backendcookie={value}");
            assert!(
                hits(&BackEndCookie, "GET", "/owa/", &[("cookie", &cookie)]),
                "{value}"
            );
        }
    }
}
