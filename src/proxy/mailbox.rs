//! Which mailbox a request is for, from what real clients send, cheaply:
//! no allocation, nothing buffered (the body peeks live elsewhere and are
//! bounded). The identity is lower-cased into a small stack buffer; the
//! DAG map (`crate::dag`) turns it into a database and a server.
//!
//! Order (the first form found wins; README "Mailbox-aware routing"):
//!
//! 1. `X-AnchorMailbox` (EWS clients, Outlook, Autodiscover): `alice@lab.com`,
//!    `SMTP:alice@lab.com`, `UPN:...`;
//! 2. ActiveSync: `User=` in the query string (`bob`, `LAB\bob`,
//!    `bob@lab.com`), or the User parameter (tag 8) of the base64-encoded
//!    query form (MS-ASHTTP 2.2.1.1.1.1);
//! 3. MAPI/HTTP `?MailboxId=<guid>@<domain>`, and Outlook Anywhere
//!    `/rpc/rpcproxy.dll?<guid>@<domain>:6001` (or `:6004`, or a server name
//!    instead of the GUID, which names no mailbox);
//! 4. HTTP Basic: the user name;
//! 5. OWA after logon: the array's own cookie `casarray_mailbox` (set when a
//!    forms logon succeeds, from the logon form's user name).
//!
//! Autodiscover's `EMailAddress`/`Mailbox` and EWS impersonation come from a
//! bounded peek at the body ([`from_body`]), only when nothing above named
//! a mailbox.

use std::fmt;

use base64::Engine as _;
use http::header::{self, HeaderMap};
use http::Uri;

/// The longest mailbox identity kept: 254 bytes (an SMTP address's limit).
pub const MAX_ID: usize = 254;

/// The array's cookie naming the mailbox of an OWA session.
pub const OWA_COOKIE: &str = "casarray_mailbox";

/// Where a request's mailbox was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    AnchorMailbox,
    ActiveSyncUser,
    MapiMailboxId,
    RpcEndpoint,
    Basic,
    OwaCookie,
    Body,
}

impl Source {
    /// For the access log.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::AnchorMailbox => "x-anchormailbox",
            Source::ActiveSyncUser => "eas-user",
            Source::MapiMailboxId => "mapi-mailboxid",
            Source::RpcEndpoint => "rpc-endpoint",
            Source::Basic => "basic",
            Source::OwaCookie => "owa-cookie",
            Source::Body => "body",
        }
    }
}

/// A mailbox identity as a request names it (an address, a GUID, a logon
/// name such as `bob` or `lab\bob`), lower-cased, on the stack.
#[derive(Clone, Copy)]
pub struct MailboxId {
    buf: [u8; MAX_ID],
    len: u8,
    pub source: Source,
}

impl MailboxId {
    /// `text` lower-cased; `None` when empty, too long or not printable
    /// ASCII (no lab mailbox has other characters in its name).
    pub fn new(text: &[u8], source: Source) -> Option<Self> {
        let text = text.trim_ascii();
        if text.is_empty() || text.len() > MAX_ID || !text.iter().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        let mut buf = [0u8; MAX_ID];
        for (d, s) in buf.iter_mut().zip(text) {
            *d = s.to_ascii_lowercase();
        }
        Some(MailboxId {
            buf,
            len: text.len() as u8,
            source,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII graphic bytes were copied in.
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for MailboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({:?})", self.as_str(), self.source)
    }
}

impl PartialEq for MailboxId {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str() && self.source == other.source
    }
}

impl PartialEq<&str> for MailboxId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The mailbox named by a request's head, in the documented order.
pub fn from_head(uri: &Uri, headers: &HeaderMap) -> Option<MailboxId> {
    anchor(headers)
        .or_else(|| activesync(uri))
        .or_else(|| mapi_or_rpc(uri))
        .or_else(|| basic(headers))
        .or_else(|| owa_cookie(headers))
}

fn anchor(headers: &HeaderMap) -> Option<MailboxId> {
    let v = headers.get("x-anchormailbox")?.as_bytes();
    let v = strip_prefix_ci(v, b"smtp:")
        .or_else(|| strip_prefix_ci(v, b"upn:"))
        .unwrap_or(v);
    MailboxId::new(v, Source::AnchorMailbox)
}

fn activesync(uri: &Uri) -> Option<MailboxId> {
    let path = uri.path().as_bytes();
    if !starts_with_ci(path, b"/microsoft-server-activesync") {
        return None;
    }
    let query = uri.query()?;
    if let Some(user) = query_param(query, "user") {
        return percent_decoded(user, Source::ActiveSyncUser);
    }
    if query.contains('=') {
        return None;
    }
    base64_user(query)
}

/// The User parameter of ActiveSync's base64-encoded query (MS-ASHTTP
/// 2.2.1.1.1.1): version, command, locale (2), device id (length-prefixed),
/// policy key (length-prefixed), device type (length-prefixed), then
/// parameters as tag, length, value; User is tag 8.
fn base64_user(query: &str) -> Option<MailboxId> {
    let mut text = [0u8; 1400];
    let (text, len) = percent_decode_into(query.as_bytes(), &mut text)?;
    let mut buf = [0u8; 1024];
    let n = base64::engine::general_purpose::STANDARD
        .decode_slice(&text[..len], &mut buf)
        .ok()?;
    let b = &buf[..n];
    let mut at = 4; // version, command, locale
    for _ in 0..3 {
        let len = usize::from(*b.get(at)?);
        at += 1 + len;
    }
    while at + 2 <= b.len() {
        let (tag, len) = (b[at], usize::from(b[at + 1]));
        let value = b.get(at + 2..at + 2 + len)?;
        if tag == 8 {
            return MailboxId::new(value, Source::ActiveSyncUser);
        }
        at += 2 + len;
    }
    None
}

fn mapi_or_rpc(uri: &Uri) -> Option<MailboxId> {
    let path = uri.path().as_bytes();
    let query = uri.query()?;
    if starts_with_ci(path, b"/mapi/") {
        let id = query_param(query, "mailboxid")?;
        return percent_decoded(id, Source::MapiMailboxId);
    }
    if starts_with_ci(path, b"/rpc/rpcproxy.dll") {
        // `<guid>@<domain>:6001`: the part before the port; only a GUID
        // form names a mailbox (a server name does not).
        let (endpoint, _port) = query.rsplit_once(':')?;
        let id = percent_decoded(endpoint, Source::RpcEndpoint)?;
        let local = id.as_str().split('@').next().unwrap_or("");
        return is_guid(local).then_some(id);
    }
    None
}

fn basic(headers: &HeaderMap) -> Option<MailboxId> {
    let v = headers.get(header::AUTHORIZATION)?.as_bytes();
    let b64 = strip_prefix_ci(v, b"basic ")?.trim_ascii();
    let mut buf = [0u8; 768];
    let n = base64::engine::general_purpose::STANDARD
        .decode_slice(b64, &mut buf)
        .ok()?;
    let creds = &buf[..n];
    let user = &creds[..creds.iter().position(|&b| b == b':')?];
    MailboxId::new(user, Source::Basic)
}

fn owa_cookie(headers: &HeaderMap) -> Option<MailboxId> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            let (k, v) = (&pair[..eq], &pair[eq + 1..]);
            (k == OWA_COOKIE.as_bytes()).then_some(v)
        })
        .and_then(|v| percent_decoded_bytes(v, Source::OwaCookie))
}

/// The array's OWA routing cookie for a forms logon that succeeded: the
/// member's answer to `POST /owa/auth.owa` (whose form named `user`) is a
/// redirect that is not the failed-logon one. `None` otherwise.
pub fn logon_cookie(
    user: &[u8],
    status: http::StatusCode,
    headers: &HeaderMap,
) -> Option<http::HeaderValue> {
    if !status.is_redirection() {
        return None;
    }
    let location = headers.get(header::LOCATION)?.as_bytes();
    if crate::security::credentials::is_owa_logon_failure(location) {
        return None;
    }
    let id = MailboxId::new(user, Source::OwaCookie)?;
    let mut value = String::with_capacity(OWA_COOKIE.len() + MAX_ID + 48);
    value.push_str(OWA_COOKIE);
    value.push('=');
    for b in id.as_str().bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
            value.push(char::from(b));
        } else {
            value.push_str(&format!("%{b:02X}"));
        }
    }
    value.push_str("; Path=/owa; Secure; HttpOnly; SameSite=Lax");
    http::HeaderValue::from_str(&value).ok()
}

/// The mailbox an Autodiscover or EWS body names in its first bytes
/// (`prefix`, at most a few KiB): POX `<EMailAddress>`, SOAP `<Mailbox>`
/// (with any namespace prefix), EWS impersonation's
/// `<PrimarySmtpAddress>`/`<SmtpAddress>` under `ExchangeImpersonation`.
pub fn from_body(prefix: &[u8]) -> Option<MailboxId> {
    for tag in [
        &b"EMailAddress"[..],
        b"Mailbox",
        b"PrimarySmtpAddress",
        b"SmtpAddress",
    ] {
        if tag != b"EMailAddress"
            && tag != b"Mailbox"
            && !contains(prefix, b"ExchangeImpersonation")
        {
            continue;
        }
        if let Some(v) = element_text(prefix, tag) {
            if let Some(id) = MailboxId::new(v, Source::Body) {
                if id.as_str().contains('@') {
                    return Some(id);
                }
            }
        }
    }
    None
}

/// The text of the first element named `tag` (any namespace prefix), if it
/// holds text only.
fn element_text<'a>(xml: &'a [u8], tag: &[u8]) -> Option<&'a [u8]> {
    let mut at = 0;
    while let Some(lt) = memchr::memchr(b'<', &xml[at..]) {
        let start = at + lt + 1;
        let gt = start + memchr::memchr(b'>', &xml[start..])?;
        let name = xml[start..gt].split(|&b| b == b' ').next().unwrap_or(&[]);
        let local = name.rsplit(|&b| b == b':').next().unwrap_or(name);
        if local == tag && !name.starts_with(b"/") && !name.ends_with(b"/") {
            let end = gt + 1 + memchr::memchr(b'<', &xml[gt + 1..])?;
            return Some(&xml[gt + 1..end]);
        }
        at = gt + 1;
    }
    None
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

fn starts_with_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    starts_with_ci(s, prefix).then(|| &s[prefix.len()..])
}

/// The raw value of query parameter `name` (case-insensitive name).
fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.eq_ignore_ascii_case(name).then_some(v)
    })
}

fn percent_decoded(s: &str, source: Source) -> Option<MailboxId> {
    percent_decoded_bytes(s.as_bytes(), source)
}

fn percent_decoded_bytes(s: &[u8], source: Source) -> Option<MailboxId> {
    let mut buf = [0u8; MAX_ID];
    let (buf, len) = percent_decode_into(s, &mut buf)?;
    MailboxId::new(&buf[..len], source)
}

/// `%XX` and `+` decoded into `out`; `None` when it does not fit or an
/// escape is broken.
fn percent_decode_into<'a>(s: &[u8], out: &'a mut [u8]) -> Option<(&'a [u8], usize)> {
    let mut n = 0;
    let mut i = 0;
    while i < s.len() {
        let b = match s[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                i += 3;
                v
            }
            b'+' => {
                i += 1;
                b' '
            }
            b => {
                i += 1;
                b
            }
        };
        *out.get_mut(n)? = b;
        n += 1;
    }
    Some((out, n))
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hex, any case).
fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn head(uri: &str, headers: &[(&str, &str)]) -> Option<MailboxId> {
        let uri: Uri = uri.parse().unwrap();
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        from_head(&uri, &h)
    }

    const GUID: &str = "5e0b6d1c-8f1a-4c5e-9b2a-3d4e5f60718a";

    #[test]
    fn each_form_real_clients_send() {
        let id = head(
            "/EWS/Exchange.asmx",
            &[("X-AnchorMailbox", "SMTP:Alice@Lab.com")],
        )
        .unwrap();
        assert_eq!(id, "alice@lab.com");
        assert_eq!(id.source, Source::AnchorMailbox);
        let id = head(
            "/Microsoft-Server-ActiveSync?User=LAB%5Cbob&DeviceId=X1&DeviceType=iPhone&Cmd=Sync",
            &[],
        )
        .unwrap();
        assert_eq!(id, "lab\\bob");
        assert_eq!(id.source, Source::ActiveSyncUser);
        let mapi = format!("/mapi/emsmdb/?MailboxId={}@lab.com", GUID.to_uppercase());
        let id = head(&mapi, &[]).unwrap();
        assert_eq!(id, format!("{GUID}@lab.com").as_str());
        let rpc = format!("/rpc/rpcproxy.dll?{GUID}@lab.com:6001");
        assert_eq!(head(&rpc, &[]).unwrap().source, Source::RpcEndpoint);
        assert_eq!(head("/rpc/rpcproxy.dll?ex1.lab.local:6004", &[]), None);
        // alice:Alice!lab1
        let id = head(
            "/EWS/Exchange.asmx",
            &[("Authorization", "Basic YWxpY2U6QWxpY2UhbGFiMQ==")],
        );
        assert_eq!(id.unwrap(), "alice");
        let id = head(
            "/owa/",
            &[("Cookie", "a=1; casarray_mailbox=bob%40lab.com; b=2")],
        );
        assert_eq!(id.unwrap(), "bob@lab.com");
        assert_eq!(head("/owa/", &[("Cookie", "x=1")]), None);
    }

    #[test]
    fn the_anchor_header_wins_over_the_rest() {
        let id = head(
            "/Microsoft-Server-ActiveSync?User=bob&Cmd=Sync",
            &[("X-AnchorMailbox", "alice@lab.com")],
        )
        .unwrap();
        assert_eq!(id, "alice@lab.com");
    }

    #[test]
    fn activesync_base64_query_user() {
        // version 141, Sync (0), locale, device id "DEV1", no policy key,
        // device type "iPhone", then User (tag 8) "bob@lab.com".
        let mut b = vec![141u8, 0, 0x09, 0x04, 4];
        b.extend_from_slice(b"DEV1");
        b.push(0);
        b.push(6);
        b.extend_from_slice(b"iPhone");
        b.push(8);
        b.push(11);
        b.extend_from_slice(b"bob@lab.com");
        let q = base64::engine::general_purpose::STANDARD.encode(&b);
        let q = q
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        let id = head(&format!("/Microsoft-Server-ActiveSync?{q}"), &[]).unwrap();
        assert_eq!(id, "bob@lab.com");
        // Truncated: nothing, no panic.
        let short = base64::engine::general_purpose::STANDARD.encode(&b[..7]);
        assert_eq!(
            head(&format!("/Microsoft-Server-ActiveSync?{short}"), &[]),
            None
        );
    }

    #[test]
    fn bodies_name_their_mailbox() {
        let pox = b"<?xml version=\"1.0\"?><Autodiscover xmlns=\"...\"><Request>\
                    <EMailAddress>Alice@lab.com</EMailAddress></Request></Autodiscover>";
        assert_eq!(from_body(pox).unwrap(), "alice@lab.com");
        let soap = b"<soap:Envelope><soap:Body><a:GetUserSettingsRequestMessage><a:Request>\
                     <a:Users><a:User><a:Mailbox>bob@lab.com</a:Mailbox></a:User></a:Users>";
        assert_eq!(from_body(soap).unwrap(), "bob@lab.com");
        let ews = b"<soap:Header><t:ExchangeImpersonation><t:ConnectingSID>\
                    <t:PrimarySmtpAddress>bob@lab.com</t:PrimarySmtpAddress>";
        assert_eq!(from_body(ews).unwrap(), "bob@lab.com");
        assert_eq!(
            from_body(b"<t:PrimarySmtpAddress>bob@lab.com</t:PrimarySmtpAddress>"),
            None
        );
        assert_eq!(from_body(b"<EMailAddress>"), None);
        assert_eq!(from_body(b"<EMailAddress>no-at</EMailAddress>"), None);
    }

    #[test]
    fn a_successful_owa_logon_gets_the_routing_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::LOCATION,
            HeaderValue::from_static("https://mail.lab.com/owa/"),
        );
        let c = logon_cookie(b"bob", http::StatusCode::FOUND, &h).unwrap();
        assert_eq!(
            c,
            "casarray_mailbox=bob; Path=/owa; Secure; HttpOnly; SameSite=Lax"
        );
        let c = logon_cookie(b"LAB\\bob", http::StatusCode::FOUND, &h).unwrap();
        assert!(c
            .to_str()
            .unwrap()
            .starts_with("casarray_mailbox=lab%5Cbob;"));
        h.insert(
            header::LOCATION,
            HeaderValue::from_static("/owa/auth/logon.aspx?url=x&reason=2"),
        );
        assert_eq!(logon_cookie(b"bob", http::StatusCode::FOUND, &h), None);
        assert_eq!(
            logon_cookie(b"bob", http::StatusCode::OK, &HeaderMap::new()),
            None
        );
    }

    #[test]
    fn hostile_values_give_nothing_and_never_panic() {
        let long = "a".repeat(400);
        assert_eq!(head("/owa/", &[("X-AnchorMailbox", &long)]), None);
        assert_eq!(head("/Microsoft-Server-ActiveSync?User=%zz", &[]), None);
        assert_eq!(head("/EWS/x", &[("Authorization", "Basic !!!!")]), None);
        assert_eq!(head("/EWS/x", &[("Authorization", "Basic YWxpY2U=")]), None);
        for q in ["", "=", "%", "////", "AAAA", "jwAJBA=="] {
            let _ = head(&format!("/Microsoft-Server-ActiveSync?{q}"), &[]);
        }
        assert!(is_guid(GUID) && !is_guid("ex1.lab.local"));
    }
}
