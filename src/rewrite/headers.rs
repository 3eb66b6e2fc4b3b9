//! Response and request head rules for rewritten answers.
//!
//! - Server-identity headers ([`SERVER_IDENTITY_HEADERS`]) are removed, or,
//!   when exposed for debugging, set to the member's config name.
//! - `Set-Cookie`: a `Domain` naming a member becomes the public name; a
//!   `Domain` that is a member's IP address is removed. Cookie names and
//!   values are left alone (they may be signed).
//! - `WWW-Authenticate` values of the `NTLM`, `Negotiate` and `Kerberos`
//!   schemes carry an opaque base64 token (a challenge, or SPNEGO's final
//!   token) and no host name: never touched, whatever bytes the token
//!   happens to spell.
//! - Every other header (`Location`, `Content-Location`, `Refresh`,
//!   `WWW-Authenticate` realms, ...) gets the generic rewrite, which gives
//!   member `https://` URLs the public port when it is not 443.

use bytes::BytesMut;
use http::header::{self, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, SET_COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::plan::{names_member, RewritePlan};

/// Headers by which Exchange-style servers say who answered (lowercase).
pub const SERVER_IDENTITY_HEADERS: &[&str] = &[
    "x-feserver",
    "x-beserver",
    "x-calculatedbetarget",
    "x-calculatedfetarget",
    "x-targetbeserver",
    "x-diaginfo",
    "x-feproxyinfo",
];

/// [`SERVER_IDENTITY_HEADERS`] as header names, for comparisons that hash
/// nothing.
const IDENTITY: [HeaderName; 7] = [
    HeaderName::from_static("x-feserver"),
    HeaderName::from_static("x-beserver"),
    HeaderName::from_static("x-calculatedbetarget"),
    HeaderName::from_static("x-calculatedfetarget"),
    HeaderName::from_static("x-targetbeserver"),
    HeaderName::from_static("x-diaginfo"),
    HeaderName::from_static("x-feproxyinfo"),
];

/// Headers whose values have a syntax that holds no host name (dates,
/// lengths, media types, tokens, opaque validators): not searched for member
/// names. Every other header is.
const NEVER_A_HOST: [HeaderName; 16] = [
    header::DATE,
    header::CONTENT_LENGTH,
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::TRANSFER_ENCODING,
    header::ETAG,
    header::LAST_MODIFIED,
    header::EXPIRES,
    header::CACHE_CONTROL,
    header::PRAGMA,
    header::AGE,
    header::ACCEPT_RANGES,
    header::VARY,
    header::X_CONTENT_TYPE_OPTIONS,
    header::X_FRAME_OPTIONS,
    header::STRICT_TRANSPORT_SECURITY,
];

/// Rewrites a response head from `member_name`; returns the header values
/// changed or removed. With `expose_server_headers` the identity headers
/// stay, carrying `member_name`.
pub fn rewrite_response_headers(
    headers: &mut HeaderMap,
    plan: &RewritePlan,
    expose_server_headers: bool,
    member_name: &str,
) -> usize {
    let mut changed = 0;
    // One pass over the names first: most answers carry none of these.
    if headers.keys().any(|k| IDENTITY.contains(k)) {
        for name in SERVER_IDENTITY_HEADERS {
            changed += identity_header(headers, name, expose_server_headers, member_name);
        }
    }

    let rewritable = |n: &HeaderName| {
        *n != SET_COOKIE
            && !NEVER_A_HOST.contains(n)
            && !(expose_server_headers && IDENTITY.contains(n))
    };
    // A value worth rewriting: it names a member and is not an opaque
    // authentication token.
    let names_one = |n: &HeaderName, v: &[u8]| !auth_token(n, v) && names_member(plan, v);
    // Most answers name no member in any header: one pass that allocates
    // nothing says so.
    if !headers
        .iter()
        .any(|(n, v)| rewritable(n) && names_one(n, v.as_bytes()))
    {
        return changed + rewrite_values(headers, &SET_COOKIE, |v| set_cookie(v, plan));
    }
    let names: Vec<HeaderName> = headers.keys().filter(|n| rewritable(n)).cloned().collect();
    for name in names {
        if headers
            .get_all(&name)
            .iter()
            .any(|v| names_one(&name, v.as_bytes()))
        {
            changed += rewrite_values(headers, &name, |v| {
                if !names_one(&name, v) {
                    return None;
                }
                let mut out = BytesMut::with_capacity(v.len());
                (plan.rewrite(v, &mut out) > 0).then(|| out.to_vec())
            });
        }
    }
    changed + rewrite_values(headers, &SET_COOKIE, |v| set_cookie(v, plan))
}

/// Whether `value` of header `name` is a `WWW-Authenticate` (or
/// `Proxy-Authenticate`) value of a scheme that carries only an opaque
/// token: `NTLM`, `Negotiate`, `Kerberos`.
fn auth_token(name: &HeaderName, value: &[u8]) -> bool {
    if *name != header::WWW_AUTHENTICATE && *name != header::PROXY_AUTHENTICATE {
        return false;
    }
    let value = value.trim_ascii_start();
    let scheme = &value[..memchr::memchr(b' ', value).unwrap_or(value.len())];
    [&b"ntlm"[..], b"negotiate", b"kerberos"]
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s))
}

/// Removes or exposes one identity header; returns the values changed.
fn identity_header(headers: &mut HeaderMap, name: &str, expose: bool, member_name: &str) -> usize {
    let before = headers.get_all(name).iter().count();
    if before == 0 {
        return 0;
    }
    let value = HeaderValue::from_str(member_name).ok().filter(|_| expose);
    let same = headers
        .get_all(name)
        .iter()
        .all(|v| Some(v) == value.as_ref());
    if same && before == 1 {
        return 0;
    }
    let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
        return 0;
    };
    headers.remove(&header);
    if let Some(v) = value {
        headers.insert(header, v);
    }
    before
}

/// Replaces each value of `name` for which `rewrite` gives new bytes; a
/// value that cannot be a header any more is dropped. Returns the values
/// changed.
fn rewrite_values(
    headers: &mut HeaderMap,
    name: &HeaderName,
    rewrite: impl Fn(&[u8]) -> Option<Vec<u8>>,
) -> usize {
    let mut changed = 0;
    let mut values = Vec::new();
    for v in headers.get_all(name) {
        match rewrite(v.as_bytes()) {
            Some(new) => {
                changed += 1;
                if let Ok(new) = HeaderValue::from_bytes(&new) {
                    values.push(new);
                }
            }
            None => values.push(v.clone()),
        }
    }
    if changed > 0 {
        headers.remove(name);
        for v in values {
            headers.append(name.clone(), v);
        }
    }
    changed
}

/// A `Set-Cookie` value with its `Domain` fixed, or `None` if unchanged.
fn set_cookie(value: &[u8], plan: &RewritePlan) -> Option<Vec<u8>> {
    let mut parts = value.split(|&b| b == b';');
    let mut out = parts.next()?.to_vec();
    let mut changed = false;
    for part in parts {
        let attr = part.trim_ascii();
        let domain = attr
            .split_first_eq()
            .filter(|(k, _)| k.trim_ascii().eq_ignore_ascii_case(b"domain"))
            .and_then(|(_, v)| std::str::from_utf8(v.trim_ascii()).ok());
        match domain {
            Some(d) if plan.is_member_ip(d.trim_start_matches('.')) => changed = true,
            Some(d) if plan.is_member_host(d) => {
                out.extend_from_slice(b"; Domain=");
                out.extend_from_slice(plan.public_name().as_bytes());
                changed = true;
            }
            _ => {
                out.push(b';');
                out.extend_from_slice(part);
            }
        }
    }
    changed.then_some(out)
}

trait SplitEq {
    fn split_first_eq(&self) -> Option<(&[u8], &[u8])>;
}

impl SplitEq for [u8] {
    fn split_first_eq(&self) -> Option<(&[u8], &[u8])> {
        let i = memchr::memchr(b'=', self)?;
        Some((&self[..i], &self[i + 1..]))
    }
}

/// Whether a response body should be rewritten: its media type is one of
/// `content_types` (ignoring case and parameters; `type/*` matches a whole
/// type) and it is not encoded (`Content-Encoding` absent or `identity`).
pub fn should_rewrite_body(headers: &HeaderMap, content_types: &[String]) -> bool {
    rewrite_typed(headers, content_types.iter().map(String::as_str))
}

/// The media types of the three Autodiscover flavours: POX and SOAP 1.1,
/// SOAP 1.2, JSON.
const AUTODISCOVER_TYPES: [&str; 4] = [
    "text/xml",
    "application/xml",
    "application/soap+xml",
    "application/json",
];

/// Whether an Autodiscover answer's body should be rewritten: as
/// [`should_rewrite_body`], with the Autodiscover flavours' media types
/// (`text/xml`, `application/xml`, `application/soap+xml`,
/// `application/json`) always among `content_types`. Those answers are
/// settings (server names and URLs), never users' mail, and clients that
/// read a member's name there go around the array.
pub fn should_rewrite_autodiscover_body(headers: &HeaderMap, content_types: &[String]) -> bool {
    rewrite_typed(
        headers,
        content_types
            .iter()
            .map(String::as_str)
            .chain(AUTODISCOVER_TYPES),
    )
}

fn rewrite_typed<'a>(
    headers: &HeaderMap,
    mut content_types: impl Iterator<Item = &'a str>,
) -> bool {
    let Some(media) = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(essence)
    else {
        return false;
    };
    let typed = content_types.any(|t| {
        let t = essence(t);
        match t.strip_suffix("/*") {
            Some(major) => media
                .split_once('/')
                .is_some_and(|(m, _)| m.eq_ignore_ascii_case(major)),
            None => media.eq_ignore_ascii_case(t),
        }
    });
    let plain = headers.get_all(CONTENT_ENCODING).iter().all(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .map(str::trim)
                .all(|c| c.is_empty() || c.eq_ignore_ascii_case("identity"))
        })
    });
    typed && plain
}

/// `type/subtype` of a media type, without parameters or spaces.
fn essence(media: &str) -> &str {
    media.split(';').next().unwrap_or_default().trim()
}

/// Asks the member for an unencoded answer (`Accept-Encoding: identity`),
/// so that a rewritten route's body can be read.
pub fn request_identity_encoding(headers: &mut HeaderMap) {
    headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::plan::tests::{lab_plan, lab_plan_on};

    fn head(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn text(h: &HeaderMap, name: &str) -> Vec<String> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn locations_and_refresh_name_the_array() {
        let plan = lab_plan();
        let mut h = head(&[
            ("location", "https://ex1.lab.local/owa/"),
            ("content-location", "http://127.0.0.1:9001/x"),
            ("refresh", "0; url=https://EX1/owa"),
            ("www-authenticate", "Basic realm=\"ex1.lab.local\""),
            ("content-type", "text/html"),
        ]);
        assert_eq!(rewrite_response_headers(&mut h, &plan, false, "EX1"), 4);
        assert_eq!(text(&h, "location"), ["https://mail.lab.com/owa/"]);
        assert_eq!(text(&h, "content-location"), ["http://mail.lab.com/x"]);
        assert_eq!(text(&h, "refresh"), ["0; url=https://mail.lab.com/owa"]);
        assert_eq!(
            text(&h, "www-authenticate"),
            ["Basic realm=\"mail.lab.com\""]
        );
        assert_eq!(text(&h, "content-type"), ["text/html"]);
    }

    #[test]
    fn autodiscover_answers_are_rewritten_in_every_flavour() {
        let only_html = vec!["text/html".to_string()];
        for (media, autodiscover, any) in [
            ("text/xml; charset=utf-8", true, false),
            ("application/soap+xml; charset=utf-8", true, false),
            ("application/json; charset=utf-8", true, false),
            ("text/html", true, true),
            ("image/png", false, false),
        ] {
            let h = head(&[("content-type", media)]);
            assert_eq!(
                should_rewrite_autodiscover_body(&h, &only_html),
                autodiscover,
                "{media}"
            );
            assert_eq!(should_rewrite_body(&h, &only_html), any, "{media}");
        }
        let h = head(&[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ]);
        assert!(!should_rewrite_autodiscover_body(&h, &only_html));
    }

    #[test]
    fn ntlm_and_negotiate_tokens_are_never_touched() {
        let plan = lab_plan();
        // Base64 tokens whose bytes happen to spell a member name between
        // `+` and `/`, which are not host name characters.
        let tokens = [
            "NTLM TlRMTVNTUAACAAAA+EX1+AAAA",
            "Negotiate oQcwBaADCgEA/EX1/127.0.0.1",
            "negotiate ex1",
            "Kerberos +ex1+",
        ];
        for token in tokens {
            assert!(names_member(&plan, token.as_bytes()), "{token}");
            let mut h = HeaderMap::new();
            h.append("www-authenticate", HeaderValue::from_static(token));
            h.append(
                "www-authenticate",
                HeaderValue::from_static("Basic realm=\"ex1.lab.local\""),
            );
            assert_eq!(rewrite_response_headers(&mut h, &plan, false, "EX1"), 1);
            assert_eq!(
                text(&h, "www-authenticate"),
                [token, "Basic realm=\"mail.lab.com\""]
            );
        }
        let mut h = head(&[("www-authenticate", "NTLM +EX1+")]);
        assert_eq!(rewrite_response_headers(&mut h, &plan, false, "EX1"), 0);
        assert_eq!(text(&h, "www-authenticate"), ["NTLM +EX1+"]);
    }

    #[test]
    fn urls_in_headers_carry_the_public_port_and_names_do_not() {
        let plan = lab_plan_on(8443);
        let mut h = head(&[
            (
                "location",
                "https://EX1.lab.local/owa/auth/logon.aspx?url=https%3A%2F%2Fex1.lab.local%2Fowa%2F&reason=0",
            ),
            ("content-location", "https://127.0.0.1:9001/x"),
            ("refresh", "0; url=https://EX1:443/owa"),
            ("www-authenticate", "Basic realm=\"ex1.lab.local\""),
            ("set-cookie", "a=1; Path=/; Domain=.ex1.lab.local; Secure"),
            ("link", "<http://ex1.lab.local/x>; rel=next"),
        ]);
        assert_eq!(rewrite_response_headers(&mut h, &plan, false, "EX1"), 6);
        assert_eq!(
            text(&h, "location"),
            ["https://mail.lab.com:8443/owa/auth/logon.aspx?url=https%3A%2F%2Fmail.lab.com%3A8443%2Fowa%2F&reason=0"]
        );
        assert_eq!(
            text(&h, "content-location"),
            ["https://mail.lab.com:8443/x"]
        );
        assert_eq!(
            text(&h, "refresh"),
            ["0; url=https://mail.lab.com:8443/owa"]
        );
        assert_eq!(
            text(&h, "www-authenticate"),
            ["Basic realm=\"mail.lab.com\""]
        );
        assert_eq!(
            text(&h, "set-cookie"),
            ["a=1; Path=/; Domain=mail.lab.com; Secure"]
        );
        assert_eq!(text(&h, "link"), ["<http://mail.lab.com/x>; rel=next"]);
    }

    #[test]
    fn identity_headers_go_or_name_the_member() {
        let plan = lab_plan();
        let pairs = [
            ("x-feserver", "EX1"),
            ("x-beserver", "ex1.lab.local"),
            ("X-CalculatedBETarget", "ex1.lab.local"),
            ("x-diaginfo", "EX1"),
            ("x-powered-by", "ASP.NET"),
        ];
        let mut h = head(&pairs);
        assert_eq!(rewrite_response_headers(&mut h, &plan, false, "EX1"), 4);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-powered-by"));

        let mut h = head(&pairs);
        assert_eq!(rewrite_response_headers(&mut h, &plan, true, "EX1"), 2);
        assert_eq!(text(&h, "x-feserver"), ["EX1"]);
        assert_eq!(text(&h, "x-beserver"), ["EX1"]);
        assert_eq!(text(&h, "x-calculatedbetarget"), ["EX1"]);
    }

    #[test]
    fn cookie_domains_are_fixed_and_values_kept() {
        let plan = lab_plan();
        let mut h = head(&[
            ("set-cookie", "a=EX1; Path=/; Domain=.ex1.lab.local; Secure"),
            ("set-cookie", "b=1; domain=127.0.0.1; HttpOnly"),
            ("set-cookie", "X-BackEndCookie=S-1-5=u56Lnp2; Path=/owa"),
            ("set-cookie", "c=2; Domain=lab.local"),
        ]);
        assert_eq!(rewrite_response_headers(&mut h, &plan, false, "EX1"), 2);
        assert_eq!(
            text(&h, "set-cookie"),
            [
                "a=EX1; Path=/; Domain=mail.lab.com; Secure",
                "b=1; HttpOnly",
                "X-BackEndCookie=S-1-5=u56Lnp2; Path=/owa",
                "c=2; Domain=lab.local",
            ]
        );
    }

    #[test]
    fn untouched_heads_stay_as_they_were() {
        let plan = lab_plan();
        let mut h = head(&[
            ("location", "https://mail.lab.com/owa/"),
            ("set-cookie", "a=1"),
        ]);
        let before = h.clone();
        assert_eq!(rewrite_response_headers(&mut h, &plan, false, "EX1"), 0);
        assert_eq!(h, before);
    }

    #[test]
    fn bodies_to_rewrite_are_chosen_by_type_and_encoding() {
        let types = vec![
            "text/xml".to_string(),
            "text/html".to_string(),
            "application/*".to_string(),
        ];
        let yes = [
            head(&[("content-type", "text/html; charset=utf-8")]),
            head(&[("content-type", "Text/XML")]),
            head(&[("content-type", "application/json")]),
            head(&[
                ("content-type", "text/xml"),
                ("content-encoding", "identity"),
            ]),
        ];
        for h in &yes {
            assert!(should_rewrite_body(h, &types), "{h:?}");
        }
        let no = [
            head(&[]),
            head(&[("content-type", "text/plain")]),
            head(&[("content-type", "text/html"), ("content-encoding", "gzip")]),
            head(&[
                ("content-type", "text/html"),
                ("content-encoding", "identity, br"),
            ]),
        ];
        for h in &no {
            assert!(!should_rewrite_body(h, &types), "{h:?}");
        }
    }

    #[test]
    fn identity_encoding_is_requested() {
        let mut h = head(&[("accept-encoding", "gzip, br")]);
        request_identity_encoding(&mut h);
        assert_eq!(text(&h, "accept-encoding"), ["identity"]);
    }
}
