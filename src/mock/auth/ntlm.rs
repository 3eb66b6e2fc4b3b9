//! NTLMSSP messages as in MS-NLMP, for the mock's connection-bound login
//! and for the clients of tests.
//!
//! The framing is real: the `NTLMSSP\0` signature, the little-endian
//! message type, negotiate flags and security buffers (length, maximum
//! length, offset) of the Type 1 NEGOTIATE, Type 2 CHALLENGE (8-byte server
//! challenge at offset 24, target name and AV-pair target info) and Type 3
//! AUTHENTICATE (LM and NT responses, domain, user, workstation) messages.
//!
//! The cryptography is simplified, because aws-lc-rs offers neither MD4
//! nor MD5: the NT response is the first 16 bytes of
//! HMAC-SHA256(key = the password's UTF-8 bytes, data = server challenge ||
//! the lower-cased user name as UTF-16LE), and the LM response is 24 zero
//! bytes. A real Windows client therefore cannot log in to the mock; the
//! helpers here can. There is no session key, signing or MIC (the MIC field
//! is present and zero).

use aws_lc_rs::{constant_time, hmac};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Every NTLMSSP message starts with these 8 bytes.
pub const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";
/// Message type of NEGOTIATE (Type 1).
pub const NEGOTIATE: u32 = 1;
/// Message type of CHALLENGE (Type 2).
pub const CHALLENGE: u32 = 2;
/// Message type of AUTHENTICATE (Type 3).
pub const AUTHENTICATE: u32 = 3;
/// Length of the NT response this module computes: 16 bytes.
pub const NT_RESPONSE_LEN: usize = 16;

const NEGOTIATE_UNICODE: u32 = 0x0000_0001;
const NEGOTIATE_OEM: u32 = 0x0000_0002;
const REQUEST_TARGET: u32 = 0x0000_0004;
const NEGOTIATE_NTLM: u32 = 0x0000_0200;
const NEGOTIATE_ALWAYS_SIGN: u32 = 0x0000_8000;
const TARGET_TYPE_DOMAIN: u32 = 0x0001_0000;
const NEGOTIATE_EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
const NEGOTIATE_TARGET_INFO: u32 = 0x0080_0000;
const NEGOTIATE_VERSION: u32 = 0x0200_0000;
const NEGOTIATE_128: u32 = 0x2000_0000;
const NEGOTIATE_56: u32 = 0x8000_0000;

/// The flags a client asks for in NEGOTIATE.
const CLIENT_FLAGS: u32 = NEGOTIATE_UNICODE
    | NEGOTIATE_OEM
    | REQUEST_TARGET
    | NEGOTIATE_NTLM
    | NEGOTIATE_ALWAYS_SIGN
    | NEGOTIATE_EXTENDED_SESSIONSECURITY
    | NEGOTIATE_VERSION
    | NEGOTIATE_128
    | NEGOTIATE_56;

/// The flags the server answers in CHALLENGE.
const SERVER_FLAGS: u32 = NEGOTIATE_UNICODE
    | REQUEST_TARGET
    | NEGOTIATE_NTLM
    | NEGOTIATE_ALWAYS_SIGN
    | TARGET_TYPE_DOMAIN
    | NEGOTIATE_EXTENDED_SESSIONSECURITY
    | NEGOTIATE_TARGET_INFO
    | NEGOTIATE_VERSION
    | NEGOTIATE_128
    | NEGOTIATE_56;

/// The VERSION structure sent: Windows 6.1 build 7601 (Windows Server 2008
/// R2 SP1, Exchange 2010's home), NTLM revision 15.
const VERSION: [u8; 8] = [6, 1, 0xb1, 0x1d, 0, 0, 0, 15];

/// Fixed header sizes (with the VERSION field; AUTHENTICATE also with MIC).
const NEGOTIATE_HEADER: usize = 40;
const CHALLENGE_HEADER: usize = 56;
const AUTHENTICATE_HEADER: usize = 88;

/// AV pair ids of the CHALLENGE target info.
const AV_EOL: u16 = 0;
const AV_NB_COMPUTER_NAME: u16 = 1;
const AV_NB_DOMAIN_NAME: u16 = 2;
const AV_DNS_COMPUTER_NAME: u16 = 3;
const AV_DNS_DOMAIN_NAME: u16 = 4;

/// The HTTP authentication scheme carrying NTLMSSP tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `NTLM <base64>`.
    Ntlm,
    /// `Negotiate <base64>`: raw NTLMSSP, or SPNEGO wrapping it.
    Negotiate,
}

impl Scheme {
    /// The scheme's name as written in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Ntlm => "NTLM",
            Scheme::Negotiate => "Negotiate",
        }
    }
}

/// `SCHEME <base64 msg>`: an `Authorization` or `WWW-Authenticate` value.
pub fn header_value(scheme: Scheme, msg: &[u8]) -> String {
    format!("{} {}", scheme.as_str(), STANDARD.encode(msg))
}

/// The scheme and NTLMSSP message of an `Authorization` or
/// `WWW-Authenticate` value; `None` for another scheme, a bare scheme, bad
/// base64 or a token holding no NTLMSSP message. A SPNEGO token is
/// accepted by locating the NTLMSSP message inside it.
pub fn parse_header(value: &str) -> Option<(Scheme, Vec<u8>)> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let scheme = if scheme.eq_ignore_ascii_case("ntlm") {
        Scheme::Ntlm
    } else if scheme.eq_ignore_ascii_case("negotiate") {
        Scheme::Negotiate
    } else {
        return None;
    };
    let raw = STANDARD.decode(token.trim()).ok()?;
    let start = memchr::memmem::find(&raw, SIGNATURE)?;
    Some((scheme, raw[start..].to_vec()))
}

/// The message type of an NTLMSSP message, `None` without the signature.
pub fn message_type(msg: &[u8]) -> Option<u32> {
    if !msg.starts_with(SIGNATURE) {
        return None;
    }
    read_u32(msg, 8)
}

/// A Type 1 NEGOTIATE message, as a client sends first: Unicode, NTLM,
/// extended session security, no domain or workstation supplied.
pub fn negotiate_message() -> Vec<u8> {
    let mut msg = Vec::with_capacity(NEGOTIATE_HEADER);
    msg.extend_from_slice(SIGNATURE);
    msg.extend_from_slice(&NEGOTIATE.to_le_bytes());
    msg.extend_from_slice(&CLIENT_FLAGS.to_le_bytes());
    let empty_at = NEGOTIATE_HEADER as u32;
    push_buffer(&mut msg, 0, empty_at); // domain
    push_buffer(&mut msg, 0, empty_at); // workstation
    msg.extend_from_slice(&VERSION);
    msg
}

/// Who the server says it is in a CHALLENGE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// NetBIOS domain name, e.g. `LAB`; also the target name.
    pub domain: String,
    /// NetBIOS computer name, e.g. `EX1`.
    pub computer: String,
    /// DNS domain name, e.g. `lab.local`.
    pub dns_domain: String,
    /// DNS computer name, e.g. `ex1.lab.local`.
    pub dns_computer: String,
}

/// A Type 2 CHALLENGE message carrying `challenge` (at offset 24), the
/// target name and the target info AV pairs.
pub fn challenge_message(challenge: [u8; 8], target: &Target) -> Vec<u8> {
    let name = utf16le(&target.domain);
    let mut info = Vec::new();
    for (id, text) in [
        (AV_NB_DOMAIN_NAME, &target.domain),
        (AV_NB_COMPUTER_NAME, &target.computer),
        (AV_DNS_DOMAIN_NAME, &target.dns_domain),
        (AV_DNS_COMPUTER_NAME, &target.dns_computer),
    ] {
        let value = utf16le(text);
        info.extend_from_slice(&id.to_le_bytes());
        info.extend_from_slice(&len16(value.len()).to_le_bytes());
        info.extend_from_slice(&value);
    }
    info.extend_from_slice(&AV_EOL.to_le_bytes());
    info.extend_from_slice(&0u16.to_le_bytes());

    let mut msg = Vec::with_capacity(CHALLENGE_HEADER + name.len() + info.len());
    msg.extend_from_slice(SIGNATURE);
    msg.extend_from_slice(&CHALLENGE.to_le_bytes());
    let name_at = CHALLENGE_HEADER;
    push_buffer(&mut msg, name.len(), offset32(name_at));
    msg.extend_from_slice(&SERVER_FLAGS.to_le_bytes());
    msg.extend_from_slice(&challenge);
    msg.extend_from_slice(&[0; 8]); // reserved
    push_buffer(&mut msg, info.len(), offset32(name_at + name.len()));
    msg.extend_from_slice(&VERSION);
    msg.extend_from_slice(&name);
    msg.extend_from_slice(&info);
    msg
}

/// The 8-byte server challenge of a Type 2 CHALLENGE message.
pub fn parse_challenge(msg: &[u8]) -> Option<[u8; 8]> {
    if message_type(msg)? != CHALLENGE {
        return None;
    }
    msg.get(24..32)?.try_into().ok()
}

/// A Type 3 AUTHENTICATE message answering `challenge` for `user` (as the
/// client types it, e.g. `alice` or `alice@lab.com`) in `domain` (e.g.
/// `LAB`; may be empty) from workstation `WS01`, with this module's
/// simplified NT response (see the module documentation).
pub fn authenticate_message(
    user: &str,
    domain: &str,
    password: &str,
    challenge: [u8; 8],
) -> Vec<u8> {
    let domain = utf16le(domain);
    let user_bytes = utf16le(user);
    let workstation = utf16le("WS01");
    let lm = [0u8; 24];
    let nt = nt_response(password, user, challenge);
    let payload: [&[u8]; 5] = [&lm, &nt, &domain, &user_bytes, &workstation];

    let mut offsets = [0usize; 5];
    let mut at = AUTHENTICATE_HEADER;
    for (slot, part) in offsets.iter_mut().zip(payload) {
        *slot = at;
        at += part.len();
    }
    let mut msg = Vec::with_capacity(at);
    msg.extend_from_slice(SIGNATURE);
    msg.extend_from_slice(&AUTHENTICATE.to_le_bytes());
    for (part, at) in payload.iter().zip(offsets) {
        push_buffer(&mut msg, part.len(), offset32(at));
    }
    push_buffer(&mut msg, 0, offset32(at)); // encrypted random session key
    msg.extend_from_slice(&(CLIENT_FLAGS & !NEGOTIATE_OEM).to_le_bytes());
    msg.extend_from_slice(&VERSION);
    msg.extend_from_slice(&[0; 16]); // MIC: not computed
    for part in payload {
        msg.extend_from_slice(part);
    }
    msg
}

/// The fields of a Type 3 AUTHENTICATE message the server checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticate {
    pub lm_response: Vec<u8>,
    pub nt_response: Vec<u8>,
    pub domain: String,
    pub user: String,
    pub workstation: String,
}

/// Parses a Type 3 AUTHENTICATE message; `None` when it is not one or a
/// security buffer points outside it. Strings are UTF-16LE when the
/// message's Unicode flag is set, else taken as Latin-1 (OEM).
pub fn parse_authenticate(msg: &[u8]) -> Option<Authenticate> {
    if message_type(msg)? != AUTHENTICATE {
        return None;
    }
    let flags = read_u32(msg, 60)?;
    let unicode = flags & NEGOTIATE_UNICODE != 0;
    let text = |at: usize| -> Option<String> {
        let raw = buffer(msg, at)?;
        if unicode {
            from_utf16le(raw)
        } else {
            Some(raw.iter().map(|&b| char::from(b)).collect())
        }
    };
    Some(Authenticate {
        lm_response: buffer(msg, 12)?.to_vec(),
        nt_response: buffer(msg, 20)?.to_vec(),
        domain: text(28)?,
        user: text(36)?,
        workstation: text(44)?,
    })
}

/// The simplified NT response: the first 16 bytes of HMAC-SHA256(key =
/// `password` as UTF-8, data = `challenge` || lower-cased `user` as
/// UTF-16LE).
pub fn nt_response(password: &str, user: &str, challenge: [u8; 8]) -> [u8; NT_RESPONSE_LEN] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, password.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(&challenge);
    ctx.update(&utf16le(&user.to_lowercase()));
    let tag = ctx.sign();
    let mut out = [0u8; NT_RESPONSE_LEN];
    out.copy_from_slice(&tag.as_ref()[..NT_RESPONSE_LEN]);
    out
}

/// Whether `msg`'s NT response proves `password` for its user name against
/// `challenge` (compared in constant time).
pub fn verify(msg: &Authenticate, password: &str, challenge: [u8; 8]) -> bool {
    let expected = nt_response(password, &msg.user, challenge);
    constant_time::verify_slices_are_equal(&expected, &msg.nt_response).is_ok()
}

/// The bytes a security buffer whose fields start at `at` points to.
fn buffer(msg: &[u8], at: usize) -> Option<&[u8]> {
    let len = usize::from(u16::from_le_bytes(msg.get(at..at + 2)?.try_into().ok()?));
    let offset = usize::try_from(read_u32(msg, at + 4)?).ok()?;
    msg.get(offset..offset.checked_add(len)?)
}

fn read_u32(msg: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(msg.get(at..at + 4)?.try_into().ok()?))
}

/// Appends security buffer fields: length, maximum length, offset.
fn push_buffer(msg: &mut Vec<u8>, len: usize, offset: u32) {
    let len = len16(len);
    msg.extend_from_slice(&len.to_le_bytes());
    msg.extend_from_slice(&len.to_le_bytes());
    msg.extend_from_slice(&offset.to_le_bytes());
}

/// A length as a security buffer holds it; names longer than 32 KiB
/// characters are cut to the field's range (never produced here).
fn len16(len: usize) -> u16 {
    u16::try_from(len).unwrap_or(u16::MAX)
}

fn offset32(at: usize) -> u32 {
    u32::try_from(at).unwrap_or(u32::MAX)
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn from_utf16le(raw: &[u8]) -> Option<String> {
    if raw.len() % 2 != 0 {
        return None;
    }
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            domain: "LAB".into(),
            computer: "EX1".into(),
            dns_domain: "lab.local".into(),
            dns_computer: "ex1.lab.local".into(),
        }
    }

    #[test]
    fn negotiate_has_the_ms_nlmp_shape() {
        let msg = negotiate_message();
        assert_eq!(msg.len(), 40);
        assert_eq!(&msg[..8], b"NTLMSSP\0");
        assert_eq!(message_type(&msg), Some(NEGOTIATE));
        let flags = read_u32(&msg, 12).unwrap();
        assert_ne!(flags & NEGOTIATE_NTLM, 0);
        assert_ne!(flags & NEGOTIATE_UNICODE, 0);
        assert_eq!(buffer(&msg, 16), Some(&[][..]));
        assert_eq!(buffer(&msg, 24), Some(&[][..]));
    }

    #[test]
    fn challenge_round_trips_and_names_the_target() {
        let challenge = [1, 2, 3, 4, 5, 6, 7, 8];
        let msg = challenge_message(challenge, &target());
        assert_eq!(message_type(&msg), Some(CHALLENGE));
        assert_eq!(&msg[24..32], &challenge);
        assert_eq!(parse_challenge(&msg), Some(challenge));
        assert_eq!(
            from_utf16le(buffer(&msg, 12).unwrap()).as_deref(),
            Some("LAB")
        );
        let info = buffer(&msg, 40).unwrap();
        assert!(info.ends_with(&[0, 0, 0, 0]), "AV list ends with MsvAvEOL");
        let dns = utf16le("ex1.lab.local");
        assert!(info.windows(dns.len()).any(|w| w == dns.as_slice()));
        assert_eq!(parse_challenge(&negotiate_message()), None);
        assert_eq!(parse_challenge(&msg[..30]), None);
    }

    #[test]
    fn authenticate_round_trips_and_verifies() {
        let challenge = [9; 8];
        let msg = authenticate_message("Alice", "LAB", "Alice!lab1", challenge);
        assert_eq!(message_type(&msg), Some(AUTHENTICATE));
        let parsed = parse_authenticate(&msg).unwrap();
        assert_eq!(parsed.user, "Alice");
        assert_eq!(parsed.domain, "LAB");
        assert_eq!(parsed.workstation, "WS01");
        assert_eq!(parsed.lm_response, vec![0; 24]);
        assert_eq!(parsed.nt_response.len(), NT_RESPONSE_LEN);
        assert!(verify(&parsed, "Alice!lab1", challenge));
        assert!(!verify(&parsed, "wrong", challenge));
        assert!(!verify(&parsed, "Alice!lab1", [8; 8]));
    }

    #[test]
    fn nt_response_ignores_user_case_only() {
        let c = [7; 8];
        assert_eq!(nt_response("p", "ALICE", c), nt_response("p", "alice", c));
        assert_ne!(nt_response("p", "alice", c), nt_response("p", "bob", c));
        assert_ne!(nt_response("p", "alice", c), nt_response("P", "alice", c));
    }

    #[test]
    fn hostile_messages_are_refused_not_panicked_on() {
        assert_eq!(parse_authenticate(b"NTLMSSP\0"), None);
        assert_eq!(parse_authenticate(b"NTLMSSP\0\x03\0\0\0"), None);
        let mut msg = authenticate_message("bob", "", "x", [0; 8]);
        // The user buffer's offset points past the end.
        msg[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_authenticate(&msg), None);
        let mut msg = authenticate_message("bob", "", "x", [0; 8]);
        // An odd UTF-16 length.
        msg[36] = 3;
        assert_eq!(parse_authenticate(&msg), None);
        assert_eq!(message_type(b"NTLMSSX\0\x01\0\0\0"), None);
        for len in 0..AUTHENTICATE_HEADER {
            let msg = authenticate_message("bob", "LAB", "x", [0; 8]);
            let _ = parse_authenticate(&msg[..len]);
        }
    }

    #[test]
    fn headers_carry_tokens() {
        let msg = negotiate_message();
        let value = header_value(Scheme::Ntlm, &msg);
        assert!(value.starts_with("NTLM TlRMTVNTUAAB"));
        assert_eq!(parse_header(&value), Some((Scheme::Ntlm, msg.clone())));
        let neg = header_value(Scheme::Negotiate, &msg);
        assert_eq!(parse_header(&neg), Some((Scheme::Negotiate, msg.clone())));
        // SPNEGO-style wrapping: the NTLMSSP message is found inside.
        let mut wrapped = vec![0x60, 0x28, 0x06, 0x06];
        wrapped.extend_from_slice(&msg);
        let value = format!("negotiate {}", STANDARD.encode(&wrapped));
        assert_eq!(parse_header(&value), Some((Scheme::Negotiate, msg)));
        assert_eq!(parse_header("NTLM"), None);
        assert_eq!(parse_header("Basic YTpi"), None);
        assert_eq!(parse_header("NTLM !!!"), None);
        assert_eq!(parse_header("NTLM YWJj"), None);
    }
}
