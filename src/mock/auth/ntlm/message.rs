//! The three NTLMSSP messages of MS-NLMP 2.2.1: their framing, built and
//! parsed. No cryptography here (see `v2`).
//!
//! Every message starts with `NTLMSSP\0` and a little-endian message type;
//! variable fields are security buffers (length, maximum length, offset)
//! pointing into the payload after the fixed header. Parsing never trusts
//! a length or offset: a buffer pointing outside the message makes the
//! whole message unparsable (`None`).

/// Every NTLMSSP message starts with these 8 bytes.
pub const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";
/// Message type of NEGOTIATE (Type 1).
pub const NEGOTIATE: u32 = 1;
/// Message type of CHALLENGE (Type 2).
pub const CHALLENGE: u32 = 2;
/// Message type of AUTHENTICATE (Type 3).
pub const AUTHENTICATE: u32 = 3;

/// Negotiate flags (MS-NLMP 2.2.2.5) this module reads or sets.
pub mod flags {
    pub const UNICODE: u32 = 0x0000_0001;
    pub const OEM: u32 = 0x0000_0002;
    pub const REQUEST_TARGET: u32 = 0x0000_0004;
    pub const SIGN: u32 = 0x0000_0010;
    pub const SEAL: u32 = 0x0000_0020;
    pub const NTLM: u32 = 0x0000_0200;
    pub const ALWAYS_SIGN: u32 = 0x0000_8000;
    pub const TARGET_TYPE_DOMAIN: u32 = 0x0001_0000;
    pub const EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
    pub const TARGET_INFO: u32 = 0x0080_0000;
    pub const VERSION: u32 = 0x0200_0000;
    pub const N128: u32 = 0x2000_0000;
    pub const KEY_EXCH: u32 = 0x4000_0000;
    pub const N56: u32 = 0x8000_0000;
}
use flags::*;

/// The flags this module's client asks for in NEGOTIATE.
const CLIENT_FLAGS: u32 = UNICODE
    | OEM
    | REQUEST_TARGET
    | NTLM
    | ALWAYS_SIGN
    | EXTENDED_SESSIONSECURITY
    | VERSION
    | N128
    | N56;

/// The client flags the server grants when asked (the rest it sets
/// itself). Signing, sealing and key exchange are granted because
/// GSS-API clients (gss-ntlmssp) require them; the mock signs only SPNEGO's
/// `mechListMIC` and seals nothing.
const GRANTABLE: u32 =
    SIGN | SEAL | ALWAYS_SIGN | EXTENDED_SESSIONSECURITY | VERSION | N128 | KEY_EXCH | N56;

/// The VERSION structure sent: Windows 6.1 build 7601 (Windows Server 2008
/// R2 SP1, Exchange 2010's home), NTLM revision 15.
const VERSION_FIELD: [u8; 8] = [6, 1, 0xb1, 0x1d, 0, 0, 0, 15];

/// Fixed header sizes (with the VERSION field; AUTHENTICATE also with MIC).
const NEGOTIATE_HEADER: usize = 40;
const CHALLENGE_HEADER: usize = 56;
const AUTHENTICATE_HEADER: usize = 88;

/// AV pair ids (MS-NLMP 2.2.2.1).
pub const AV_EOL: u16 = 0;
pub const AV_NB_COMPUTER_NAME: u16 = 1;
pub const AV_NB_DOMAIN_NAME: u16 = 2;
pub const AV_DNS_COMPUTER_NAME: u16 = 3;
pub const AV_DNS_DOMAIN_NAME: u16 = 4;
pub const AV_TIMESTAMP: u16 = 7;

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
    msg.extend_from_slice(&VERSION_FIELD);
    msg
}

/// The negotiate flags of a Type 1 NEGOTIATE message.
pub fn negotiate_flags(msg: &[u8]) -> Option<u32> {
    if message_type(msg)? != NEGOTIATE {
        return None;
    }
    read_u32(msg, 12)
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

/// The flags a server answers a NEGOTIATE carrying `client` with: NTLM,
/// the target name and info always; Unicode when the client can, else
/// OEM; of the rest only what the client asked and the mock can honour.
pub fn server_flags(client: u32) -> u32 {
    let charset = if client & UNICODE != 0 { UNICODE } else { OEM };
    charset | REQUEST_TARGET | NTLM | TARGET_TYPE_DOMAIN | TARGET_INFO | (client & GRANTABLE)
}

/// A Type 2 CHALLENGE message with `flags`, carrying `challenge` (at
/// offset 24), the target name and the target info AV pairs, with
/// `timestamp` (FILETIME: 100 ns units since 1601) as `MsvAvTimestamp`,
/// which tells NTLMv2 clients to send a MIC.
pub fn challenge_message(
    challenge: [u8; 8],
    target: &Target,
    flags: u32,
    timestamp: u64,
) -> Vec<u8> {
    let name = utf16le(&target.domain);
    let mut info = Vec::new();
    for (id, text) in [
        (AV_NB_DOMAIN_NAME, &target.domain),
        (AV_NB_COMPUTER_NAME, &target.computer),
        (AV_DNS_DOMAIN_NAME, &target.dns_domain),
        (AV_DNS_COMPUTER_NAME, &target.dns_computer),
    ] {
        push_av(&mut info, id, &utf16le(text));
    }
    push_av(&mut info, AV_TIMESTAMP, &timestamp.to_le_bytes());
    push_av(&mut info, AV_EOL, &[]);

    let mut msg = Vec::with_capacity(CHALLENGE_HEADER + name.len() + info.len());
    msg.extend_from_slice(SIGNATURE);
    msg.extend_from_slice(&CHALLENGE.to_le_bytes());
    let name_at = CHALLENGE_HEADER;
    push_buffer(&mut msg, name.len(), offset32(name_at));
    msg.extend_from_slice(&flags.to_le_bytes());
    msg.extend_from_slice(&challenge);
    msg.extend_from_slice(&[0; 8]); // reserved
    push_buffer(&mut msg, info.len(), offset32(name_at + name.len()));
    msg.extend_from_slice(&VERSION_FIELD);
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

/// The target info (AV pairs) of a Type 2 CHALLENGE message.
pub fn challenge_target_info(msg: &[u8]) -> Option<&[u8]> {
    if message_type(msg)? != CHALLENGE {
        return None;
    }
    buffer(msg, 40)
}

/// The fields of a Type 3 AUTHENTICATE message the server checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticate {
    pub lm_response: Vec<u8>,
    pub nt_response: Vec<u8>,
    pub domain: String,
    pub user: String,
    pub workstation: String,
    pub flags: u32,
}

/// Parses a Type 3 AUTHENTICATE message; `None` when it is not one or a
/// security buffer points outside it. Strings are UTF-16LE when the
/// message's Unicode flag is set, else taken as Latin-1 (OEM). The MIC, when
/// present, is accepted unread.
pub fn parse_authenticate(msg: &[u8]) -> Option<Authenticate> {
    if message_type(msg)? != AUTHENTICATE {
        return None;
    }
    let flags = read_u32(msg, 60)?;
    let unicode = flags & UNICODE != 0;
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
        flags,
    })
}

/// A Type 3 AUTHENTICATE message carrying `nt_response` (and a zero LMv2
/// response, as clients do when the server sent a timestamp) for `user` in
/// `domain` from workstation `WS01`. The MIC field is present and zero.
pub fn build_authenticate(user: &str, domain: &str, nt_response: &[u8]) -> Vec<u8> {
    let domain = utf16le(domain);
    let user_bytes = utf16le(user);
    let workstation = utf16le("WS01");
    let lm = [0u8; 24];
    let payload: [&[u8]; 5] = [&lm, nt_response, &domain, &user_bytes, &workstation];

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
    msg.extend_from_slice(&(CLIENT_FLAGS & !OEM).to_le_bytes());
    msg.extend_from_slice(&VERSION_FIELD);
    msg.extend_from_slice(&[0; 16]); // MIC
    for part in payload {
        msg.extend_from_slice(part);
    }
    msg
}

/// The value of AV pair `id` in a target info list, `None` when absent or
/// when the list is malformed before it.
pub fn av_pair(info: &[u8], id: u16) -> Option<&[u8]> {
    let mut at = 0;
    loop {
        let this = u16::from_le_bytes(info.get(at..at + 2)?.try_into().ok()?);
        let len = usize::from(u16::from_le_bytes(
            info.get(at + 2..at + 4)?.try_into().ok()?,
        ));
        let value = info.get(at + 4..at + 4 + len)?;
        if this == id {
            return Some(value);
        }
        if this == AV_EOL {
            return None;
        }
        at += 4 + len;
    }
}

fn push_av(info: &mut Vec<u8>, id: u16, value: &[u8]) {
    info.extend_from_slice(&id.to_le_bytes());
    info.extend_from_slice(&len16(value.len()).to_le_bytes());
    info.extend_from_slice(value);
}

/// The bytes a security buffer whose fields start at `at` points to.
pub(super) fn buffer(msg: &[u8], at: usize) -> Option<&[u8]> {
    let len = usize::from(u16::from_le_bytes(msg.get(at..at + 2)?.try_into().ok()?));
    let offset = usize::try_from(read_u32(msg, at + 4)?).ok()?;
    msg.get(offset..offset.checked_add(len)?)
}

pub(super) fn read_u32(msg: &[u8], at: usize) -> Option<u32> {
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

/// `s` as UTF-16LE bytes.
pub fn utf16le(s: &str) -> Vec<u8> {
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

    pub(crate) fn target() -> Target {
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
        let flags = negotiate_flags(&msg).unwrap();
        assert_ne!(flags & NTLM, 0);
        assert_ne!(flags & UNICODE, 0);
        assert_eq!(buffer(&msg, 16), Some(&[][..]));
        assert_eq!(buffer(&msg, 24), Some(&[][..]));
    }

    #[test]
    fn server_flags_grant_only_what_was_asked_and_can_be_honoured() {
        let asked = UNICODE | OEM | SIGN | SEAL | KEY_EXCH | N128 | EXTENDED_SESSIONSECURITY;
        let f = server_flags(asked | 0x0000_0040 /* datagram */);
        let want = UNICODE | SIGN | SEAL | KEY_EXCH | N128 | EXTENDED_SESSIONSECURITY;
        assert_eq!(f & want, want);
        assert_eq!(f & (OEM | 0x0000_0040), 0, "one charset; nothing unknown");
        assert_eq!(
            f & (TARGET_INFO | NTLM | REQUEST_TARGET),
            TARGET_INFO | NTLM | REQUEST_TARGET
        );
        let bare = server_flags(UNICODE);
        assert_eq!(
            bare & (SIGN | SEAL | KEY_EXCH | N128),
            0,
            "only what was asked"
        );
        assert_eq!(server_flags(OEM) & (UNICODE | OEM), OEM);
    }

    #[test]
    fn challenge_round_trips_and_names_the_target() {
        let challenge = [1, 2, 3, 4, 5, 6, 7, 8];
        let msg = challenge_message(challenge, &target(), server_flags(CLIENT_FLAGS), 42);
        assert_eq!(message_type(&msg), Some(CHALLENGE));
        assert_eq!(&msg[24..32], &challenge);
        assert_eq!(parse_challenge(&msg), Some(challenge));
        assert_eq!(
            from_utf16le(buffer(&msg, 12).unwrap()).as_deref(),
            Some("LAB")
        );
        let info = challenge_target_info(&msg).unwrap();
        assert!(info.ends_with(&[0, 0, 0, 0]), "AV list ends with MsvAvEOL");
        assert_eq!(
            av_pair(info, AV_DNS_COMPUTER_NAME),
            Some(&utf16le("ex1.lab.local")[..])
        );
        assert_eq!(av_pair(info, AV_TIMESTAMP), Some(&42u64.to_le_bytes()[..]));
        assert_eq!(av_pair(info, 9), None);
        assert_eq!(parse_challenge(&negotiate_message()), None);
        assert_eq!(parse_challenge(&msg[..30]), None);
    }

    #[test]
    fn authenticate_round_trips() {
        let msg = build_authenticate("Alice", "LAB", &[5; 40]);
        assert_eq!(message_type(&msg), Some(AUTHENTICATE));
        let parsed = parse_authenticate(&msg).unwrap();
        assert_eq!(parsed.user, "Alice");
        assert_eq!(parsed.domain, "LAB");
        assert_eq!(parsed.workstation, "WS01");
        assert_eq!(parsed.lm_response, vec![0; 24]);
        assert_eq!(parsed.nt_response, vec![5; 40]);
        assert_ne!(parsed.flags & UNICODE, 0);
    }

    #[test]
    fn hostile_messages_are_refused_not_panicked_on() {
        assert_eq!(parse_authenticate(b"NTLMSSP\0"), None);
        assert_eq!(parse_authenticate(b"NTLMSSP\0\x03\0\0\0"), None);
        let mut msg = build_authenticate("bob", "", &[1; 40]);
        // The user buffer's offset points past the end.
        msg[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_authenticate(&msg), None);
        let mut msg = build_authenticate("bob", "", &[1; 40]);
        // An odd UTF-16 length.
        msg[36] = 3;
        assert_eq!(parse_authenticate(&msg), None);
        assert_eq!(message_type(b"NTLMSSX\0\x01\0\0\0"), None);
        let msg = build_authenticate("bob", "LAB", &[1; 40]);
        for len in 0..msg.len() {
            let _ = parse_authenticate(&msg[..len]);
        }
        // AV lists that lie about lengths.
        assert_eq!(av_pair(&[3, 0, 200, 0, 1, 2], AV_TIMESTAMP), None);
        assert_eq!(av_pair(&[3], AV_TIMESTAMP), None);
        assert_eq!(av_pair(&[], AV_TIMESTAMP), None);
    }
}
