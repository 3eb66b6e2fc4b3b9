//! Who a logon attempt is for: the user name of HTTP Basic, of an NTLMSSP
//! AUTHENTICATE (Type 3) message (raw in `NTLM`, or inside `Negotiate`'s
//! SPNEGO token), and of OWA's logon form (`username`).
//!
//! Everything is parsed in bounded buffers on the stack: no allocation,
//! and no input can make the parser read out of bounds or panic. A name is
//! normalized for lockout the same way whichever protocol carried it (see
//! [`UserName`]), so that `LAB\alice` over NTLM, `alice@lab.com` over
//! Basic and `alice` in OWA's form count as the same user.

use base64::Engine as _;
use http::header::{HeaderMap, AUTHORIZATION};

use super::normalize;
use super::rules::contains_ignore_case;

/// Longest normalized user name kept: 256 bytes (longer ones are cut).
pub const MAX_USER: usize = 256;

/// Longest `Authorization` token decoded: 8 KiB of base64 (6 KiB of
/// NTLMSSP); larger tokens are not examined.
const MAX_TOKEN: usize = 8192;

/// Longest OWA `username` value read from the form: 1 KiB as sent.
const MAX_FORM_VALUE: usize = 1024;

/// Lenient base64: padding optional.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// How a logon attempt was made; the `kind` label of
/// `casarray_failed_logons_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `Authorization: Basic`.
    Basic,
    /// An NTLMSSP AUTHENTICATE message (`NTLM` or `Negotiate`).
    Ntlm,
    /// OWA's forms logon (`POST /owa/auth.owa`).
    OwaForm,
}

impl Kind {
    /// Every kind, in label order.
    pub const ALL: [Kind; 3] = [Kind::Basic, Kind::Ntlm, Kind::OwaForm];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Basic => "basic",
            Kind::Ntlm => "ntlm",
            Kind::OwaForm => "owa-form",
        }
    }
}

/// A user name as lockout counts it: the account part only (after a
/// `DOMAIN\`, before an `@domain`), spaces around it trimmed, ASCII letters
/// lower-cased, at most [`MAX_USER`] bytes. Names from different domains
/// with the same account part are one user here: lockout errs on the side
/// of counting more.
#[derive(Clone, Copy)]
pub struct UserName {
    buf: [u8; MAX_USER],
    len: usize,
}

impl UserName {
    /// Normalizes `raw` (UTF-8 or Latin-1 bytes); `None` when nothing is
    /// left.
    pub fn from_bytes(raw: &[u8]) -> Option<UserName> {
        let after_domain = match memchr::memrchr(b'\\', raw) {
            Some(i) => &raw[i + 1..],
            None => raw,
        };
        let account = match memchr::memchr(b'@', after_domain) {
            Some(i) => &after_domain[..i],
            None => after_domain,
        };
        let account = account.trim_ascii();
        if account.is_empty() {
            return None;
        }
        let mut name = UserName {
            buf: [0; MAX_USER],
            len: account.len().min(MAX_USER),
        };
        for (dst, src) in name.buf.iter_mut().zip(account) {
            *dst = src.to_ascii_lowercase();
        }
        Some(name)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// For logs.
    pub fn display(&self) -> String {
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }
}

impl std::fmt::Debug for UserName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "UserName({:?})",
            String::from_utf8_lossy(self.as_bytes())
        )
    }
}

/// A logon attempt a request carries.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    pub kind: Kind,
    /// `None` when the credentials name nobody readable (bad base64, an
    /// anonymous NTLM message): the attempt still counts for the address.
    pub user: Option<UserName>,
}

/// The logon attempt in a request's `Authorization` header: Basic
/// credentials, or an NTLMSSP AUTHENTICATE message. `None` for anything
/// else: no header, Bearer, Kerberos, and the NEGOTIATE leg of NTLM (it
/// proves nothing, so its 401 is no failure).
pub fn from_authorization(headers: &HeaderMap) -> Option<Attempt> {
    let value = headers.get(AUTHORIZATION)?.as_bytes().trim_ascii();
    let (scheme, token) = match memchr::memchr(b' ', value) {
        Some(i) => (&value[..i], value[i + 1..].trim_ascii()),
        None => (value, &b""[..]),
    };
    if scheme.eq_ignore_ascii_case(b"basic") {
        return Some(Attempt {
            kind: Kind::Basic,
            user: basic_user(token),
        });
    }
    if scheme.eq_ignore_ascii_case(b"ntlm") || scheme.eq_ignore_ascii_case(b"negotiate") {
        let (user, _domain) = ntlm_authenticate(token)?;
        return Some(Attempt {
            kind: Kind::Ntlm,
            user,
        });
    }
    None
}

/// The user of Basic credentials (`base64(user:password)`).
fn basic_user(token: &[u8]) -> Option<UserName> {
    let mut buf = [0u8; MAX_TOKEN];
    if token.len() > MAX_TOKEN {
        return None;
    }
    let n = BASE64.decode_slice(token, &mut buf).ok()?;
    let decoded = &buf[..n];
    let user = &decoded[..memchr::memchr(b':', decoded)?];
    UserName::from_bytes(user)
}

/// `NTLMSSP\0`.
const NTLMSSP: &[u8] = b"NTLMSSP\0";
/// NTLMSSP_NEGOTIATE_UNICODE.
const UNICODE: u32 = 1;

/// When `token` holds an NTLMSSP AUTHENTICATE message (raw, or wrapped in
/// SPNEGO): its user (normalized) and domain fields, each `None` when
/// absent or unreadable. `None` when it is no AUTHENTICATE message.
pub fn ntlm_authenticate(token: &[u8]) -> Option<(Option<UserName>, Option<UserName>)> {
    let mut buf = [0u8; MAX_TOKEN];
    if token.len() > MAX_TOKEN {
        return None;
    }
    let n = BASE64.decode_slice(token, &mut buf).ok()?;
    let raw = &buf[..n];
    let msg = &raw[memchr::memmem::find(raw, NTLMSSP)?..];
    if read_u32(msg, 8)? != 3 {
        return None;
    }
    // Messages from before NTLMv2 may end before the flags: take Unicode.
    let unicode = read_u32(msg, 60).is_none_or(|flags| flags & UNICODE != 0);
    Some((text_field(msg, 36, unicode), text_field(msg, 28, unicode)))
}

/// A string field of an NTLMSSP message (UTF-16LE, or OEM bytes taken as
/// they are), normalized as a user name.
fn text_field(msg: &[u8], at: usize, unicode: bool) -> Option<UserName> {
    let bytes = security_buffer(msg, at)?;
    let mut text = [0u8; MAX_USER * 2];
    let text = if unicode {
        utf16le_to_utf8(bytes, &mut text)
    } else {
        let n = bytes.len().min(text.len());
        text[..n].copy_from_slice(&bytes[..n]);
        &text[..n]
    };
    UserName::from_bytes(text)
}

/// The bytes a security buffer (length, max length, offset) at `at`
/// points to; `None` when it points outside the message.
fn security_buffer(msg: &[u8], at: usize) -> Option<&[u8]> {
    let len = usize::from(u16::from_le_bytes(msg.get(at..at + 2)?.try_into().ok()?));
    let offset = usize::try_from(read_u32(msg, at + 4)?).ok()?;
    msg.get(offset..offset.checked_add(len)?)
}

fn read_u32(msg: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        msg.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// UTF-16LE to UTF-8 into `out`, as much as fits; unpaired surrogates
/// become U+FFFD.
fn utf16le_to_utf8<'o>(raw: &[u8], out: &'o mut [u8]) -> &'o [u8] {
    let units = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]));
    let mut len = 0;
    for ch in char::decode_utf16(units).map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER)) {
        let mut tmp = [0u8; 4];
        let s = ch.encode_utf8(&mut tmp).as_bytes();
        if len + s.len() > out.len() {
            break;
        }
        out[len..len + s.len()].copy_from_slice(s);
        len += s.len();
    }
    &out[..len]
}

/// The `username` field of an OWA logon form
/// (`application/x-www-form-urlencoded`), from the start of its body.
pub fn owa_form_user(body: &[u8]) -> Option<UserName> {
    let value = body.split(|&b| b == b'&').find_map(|pair| {
        let (name, value) = match memchr::memchr(b'=', pair) {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        name.eq_ignore_ascii_case(b"username").then_some(value)
    })?;
    let value = &value[..value.len().min(MAX_FORM_VALUE)];
    let mut plus = [0u8; MAX_FORM_VALUE];
    for (dst, &src) in plus.iter_mut().zip(value) {
        *dst = if src == b'+' { b' ' } else { src };
    }
    let mut decoded = [0u8; MAX_FORM_VALUE];
    let user = normalize::decode_fully(&plus[..value.len()], &mut decoded)?;
    UserName::from_bytes(user)
}

/// Whether a `Location` is OWA's logon page telling of a wrong user name
/// or password (`/owa/auth/logon.aspx?...reason=2...`), where Exchange (and
/// the mock) send a failed forms logon.
pub fn is_owa_logon_failure(location: &[u8]) -> bool {
    if !contains_ignore_case(location, b"logon.aspx") {
        return false;
    }
    let Some(q) = memchr::memchr(b'?', location) else {
        return false;
    };
    location[q + 1..]
        .split(|&b| b == b'&')
        .any(|p| p.eq_ignore_ascii_case(b"reason=2"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::ntlm;
    use http::HeaderValue;

    fn auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    fn user(a: &Attempt) -> String {
        a.user.map(|u| u.display()).unwrap_or_default()
    }

    #[test]
    fn user_names_are_normalized_alike() {
        for raw in [
            "alice",
            "ALICE",
            "alice@lab.com",
            "LAB\\alice",
            " Alice@Other.example ",
            "a\\b\\alice",
        ] {
            assert_eq!(
                UserName::from_bytes(raw.as_bytes()).unwrap().as_bytes(),
                b"alice",
                "{raw}"
            );
        }
        for empty in ["", "  ", "@lab.com", "LAB\\"] {
            assert!(
                UserName::from_bytes(empty.as_bytes()).is_none(),
                "{empty:?}"
            );
        }
        let long = "x".repeat(1000);
        assert_eq!(
            UserName::from_bytes(long.as_bytes())
                .unwrap()
                .as_bytes()
                .len(),
            MAX_USER
        );
        assert_eq!(
            UserName::from_bytes("Ünï".as_bytes()).unwrap().display(),
            "Ünï"
        );
    }

    #[test]
    fn basic_credentials() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("LAB\\Alice:pa:ss");
        let a = from_authorization(&auth(&format!("Basic {b64}"))).unwrap();
        assert_eq!(a.kind, Kind::Basic);
        assert_eq!(user(&a), "alice");
        let a = from_authorization(&auth("basic !!!")).unwrap();
        assert!(a.user.is_none(), "still an attempt, of nobody");
        let no_colon = base64::engine::general_purpose::STANDARD.encode("alice");
        assert!(from_authorization(&auth(&format!("Basic {no_colon}")))
            .unwrap()
            .user
            .is_none());
        assert!(from_authorization(&auth("Bearer abc")).is_none());
        assert!(from_authorization(&HeaderMap::new()).is_none());
        let huge = format!("Basic {}", "A".repeat(MAX_TOKEN + 4));
        assert!(from_authorization(&auth(&huge)).unwrap().user.is_none());
    }

    #[test]
    fn ntlm_authenticate_user_and_domain() {
        let msg = ntlm::authenticate_message("Alice", "LAB", "wrong", [7; 8]);
        let value = ntlm::header_value(ntlm::Scheme::Ntlm, &msg);
        let a = from_authorization(&auth(&value)).unwrap();
        assert_eq!(a.kind, Kind::Ntlm);
        assert_eq!(user(&a), "alice");
        let token = value.split_once(' ').unwrap().1;
        let (u, d) = ntlm_authenticate(token.as_bytes()).unwrap();
        assert_eq!(u.unwrap().display(), "alice");
        assert_eq!(d.unwrap().display(), "lab");
        // A UPN with no domain, over Negotiate wrapped in SPNEGO-ish bytes.
        let msg = ntlm::authenticate_message("alice@lab.com", "", "x", [1; 8]);
        let mut wrapped = vec![0x60, 0x82, 0x01, 0x00, 0xa1, 0x03];
        wrapped.extend_from_slice(&msg);
        let value = ntlm::header_value(ntlm::Scheme::Negotiate, &wrapped);
        assert_eq!(user(&from_authorization(&auth(&value)).unwrap()), "alice");
        // NEGOTIATE (Type 1) is no attempt.
        let value = ntlm::header_value(ntlm::Scheme::Ntlm, &ntlm::negotiate_message());
        assert!(from_authorization(&auth(&value)).is_none());
        assert!(from_authorization(&auth("Negotiate YIIKerberos")).is_none());
        assert!(from_authorization(&auth("NTLM")).is_none());
    }

    #[test]
    fn hostile_ntlm_messages_are_bounded() {
        let msg = ntlm::authenticate_message("alice", "LAB", "x", [1; 8]);
        // Every truncation, and buffers pointing anywhere.
        for cut in 0..msg.len() {
            let _ = ntlm_authenticate(
                base64::engine::general_purpose::STANDARD
                    .encode(&msg[..cut])
                    .as_bytes(),
            );
        }
        let mut evil = msg.clone();
        evil[36..38].copy_from_slice(&u16::MAX.to_le_bytes());
        evil[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        let token = base64::engine::general_purpose::STANDARD.encode(&evil);
        let (u, d) = ntlm_authenticate(token.as_bytes()).unwrap();
        assert!(u.is_none());
        assert_eq!(d.unwrap().display(), "lab");
        // OEM (not Unicode) strings.
        let mut oem = msg.clone();
        let flags = u32::from_le_bytes(oem[60..64].try_into().unwrap()) & !UNICODE;
        oem[60..64].copy_from_slice(&flags.to_le_bytes());
        let token = base64::engine::general_purpose::STANDARD.encode(&oem);
        let (u, _) = ntlm_authenticate(token.as_bytes()).unwrap();
        assert!(
            u.is_some(),
            "UTF-16 bytes read as Latin-1 still name someone"
        );
    }

    #[test]
    fn owa_form_username() {
        let body = b"destination=https%3A%2F%2Fmail.lab.com%2Fowa%2F&flags=4&forcedownlevel=0&username=LAB%5Calice&password=x%26y&isUtf8=1";
        assert_eq!(owa_form_user(body).unwrap().display(), "alice");
        assert_eq!(
            owa_form_user(b"username=Alice+%40lab.com&password=x")
                .unwrap()
                .display(),
            "alice"
        );
        assert_eq!(
            owa_form_user(b"UserName=bob@lab.com").unwrap().display(),
            "bob"
        );
        assert!(owa_form_user(b"password=x").is_none());
        assert!(owa_form_user(b"username=&password=x").is_none());
        let long = format!("username={}", "a".repeat(5000));
        assert_eq!(
            owa_form_user(long.as_bytes()).unwrap().as_bytes().len(),
            MAX_USER
        );
    }

    #[test]
    fn owa_failure_redirects() {
        assert!(is_owa_logon_failure(
            b"https://ex1.lab.local/owa/auth/logon.aspx?url=https%3a%2f%2fex1.lab.local%2fowa%2f&reason=2"
        ));
        assert!(is_owa_logon_failure(
            b"/owa/auth/logon.aspx?replaceCurrent=1&reason=2&url=x"
        ));
        assert!(!is_owa_logon_failure(
            b"https://ex1.lab.local/owa/auth/logon.aspx?url=x&reason=0"
        ));
        assert!(!is_owa_logon_failure(b"https://ex1.lab.local/owa/"));
        assert!(!is_owa_logon_failure(b"/owa/auth/logon.aspx"));
        assert!(!is_owa_logon_failure(b"/owa/?x=logon.aspx&reason=22"));
    }
}
