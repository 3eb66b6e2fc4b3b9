//! NTLM as MS-NLMP specifies it (NTLMv2), bare or wrapped in SPNEGO for
//! `Negotiate`, for the mock's connection-bound login (`conn_login`) and
//! for the clients of tests.
//!
//! - `message`: the NEGOTIATE, CHALLENGE and AUTHENTICATE messages.
//! - `v2`: the NTLMv2 response (MD4, HMAC-MD5 from RustCrypto).
//! - `spnego`: `NegTokenInit` / `NegTokenResp`.
//!
//! Real clients log on with it: curl `--ntlm`, curl `--negotiate` through
//! gss-ntlmssp, Python's pyspnego / requests-ntlm. The server sends a
//! timestamp in its target info (so clients add a MIC, which is accepted
//! unchecked), grants no signing or sealing and keeps no session key.

pub mod message;
pub mod spnego;
pub mod v2;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

pub use message::{
    challenge_message, challenge_target_info, message_type, negotiate_flags, negotiate_message,
    parse_authenticate, parse_challenge, server_flags, Authenticate, Target, AUTHENTICATE,
    CHALLENGE, NEGOTIATE, SIGNATURE,
};

/// The HTTP authentication scheme carrying NTLMSSP tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `NTLM <base64>`.
    Ntlm,
    /// `Negotiate <base64>`: SPNEGO wrapping NTLM, or raw NTLMSSP.
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

/// An `Authorization` or `WWW-Authenticate` token, unwrapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub scheme: Scheme,
    /// Whether the NTLM message came wrapped in SPNEGO (answers are then
    /// wrapped too).
    pub spnego: bool,
    /// The NTLMSSP message, if the token carried one. A SPNEGO token
    /// offering NTLM without an NTLM message (the client preferred another
    /// mechanism) has none.
    pub ntlm: Option<Vec<u8>>,
}

/// `SCHEME <base64 msg>`: an `Authorization` or `WWW-Authenticate` value.
pub fn header_value(scheme: Scheme, msg: &[u8]) -> String {
    format!("{} {}", scheme.as_str(), STANDARD.encode(msg))
}

/// The token of an `NTLM` or `Negotiate` header value; `None` for another
/// scheme, a bare scheme, bad base64, a SPNEGO token that does not parse
/// or does not offer NTLM, or bytes that are neither SPNEGO nor NTLMSSP.
pub fn parse_token(value: &str) -> Option<Token> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let scheme = if scheme.eq_ignore_ascii_case("ntlm") {
        Scheme::Ntlm
    } else if scheme.eq_ignore_ascii_case("negotiate") {
        Scheme::Negotiate
    } else {
        return None;
    };
    let raw = STANDARD.decode(token.trim()).ok()?;
    if raw.starts_with(SIGNATURE) {
        return Some(Token {
            scheme,
            spnego: false,
            ntlm: Some(raw),
        });
    }
    if scheme != Scheme::Negotiate || !spnego::is_spnego(&raw) {
        return None;
    }
    let ntlm = match spnego::parse(&raw)? {
        spnego::Token::Init {
            offers_ntlm: false, ..
        } => return None,
        spnego::Token::Init {
            ntlm_first,
            mech_token,
            ..
        } => mech_token.filter(|_| ntlm_first),
        spnego::Token::Resp { response_token, .. } => response_token,
    };
    let ntlm = ntlm.filter(|m| m.starts_with(SIGNATURE));
    Some(Token {
        scheme,
        spnego: true,
        ntlm,
    })
}

/// The scheme and NTLMSSP message of a header value (SPNEGO unwrapped);
/// `None` when [`parse_token`] finds no NTLMSSP message.
pub fn parse_header(value: &str) -> Option<(Scheme, Vec<u8>)> {
    let token = parse_token(value)?;
    Some((token.scheme, token.ntlm?))
}

/// Now as a FILETIME: 100 ns units since 1601-01-01 UTC.
pub fn filetime_now() -> u64 {
    const UNIX_EPOCH_AS_FILETIME: u64 = 116_444_736_000_000_000;
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let ticks = u64::try_from(since.as_nanos() / 100).unwrap_or(u64::MAX);
    UNIX_EPOCH_AS_FILETIME.saturating_add(ticks)
}

/// A client's Type 3 AUTHENTICATE message answering the CHALLENGE message
/// `challenge_msg` for `user` (as typed: `alice`, `alice@lab.com`) in
/// `domain` (e.g. `LAB`; may be empty), with a real NTLMv2 response over
/// the server's target info; `None` when `challenge_msg` is no CHALLENGE.
pub fn authenticate_for(
    challenge_msg: &[u8],
    user: &str,
    domain: &str,
    password: &str,
) -> Option<Vec<u8>> {
    let challenge = parse_challenge(challenge_msg)?;
    let info = challenge_target_info(challenge_msg)?;
    Some(authenticate_with_info(
        user, domain, password, challenge, info,
    ))
}

/// As [`authenticate_for`], knowing only the server challenge: the blob
/// carries an empty target info list.
pub fn authenticate_message(
    user: &str,
    domain: &str,
    password: &str,
    challenge: [u8; 8],
) -> Vec<u8> {
    authenticate_with_info(user, domain, password, challenge, &[0, 0, 0, 0])
}

fn authenticate_with_info(
    user: &str,
    domain: &str,
    password: &str,
    challenge: [u8; 8],
    info: &[u8],
) -> Vec<u8> {
    let client_challenge = filetime_now().to_le_bytes();
    let blob = v2::blob(filetime_now(), client_challenge, info);
    let nt = v2::nt_response(password, user, domain, challenge, &blob);
    message::build_authenticate(user, domain, &nt)
}

/// Whether `msg`'s NTLMv2 response proves `password` for its user and
/// domain against `challenge`.
pub fn verify(msg: &Authenticate, password: &str, challenge: [u8; 8]) -> bool {
    v2::verify(
        &msg.nt_response,
        password,
        &msg.user,
        &msg.domain,
        challenge,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_verify() {
        let target = Target {
            domain: "LAB".into(),
            computer: "EX1".into(),
            dns_domain: "lab.local".into(),
            dns_computer: "ex1.lab.local".into(),
        };
        let challenge = [9; 8];
        let type2 = challenge_message(challenge, &target, server_flags(0x1), filetime_now());
        let type3 = authenticate_for(&type2, "Alice", "LAB", "Alice!lab1").unwrap();
        let parsed = parse_authenticate(&type3).unwrap();
        assert_eq!(parsed.user, "Alice");
        assert!(verify(&parsed, "Alice!lab1", challenge));
        assert!(!verify(&parsed, "wrong", challenge));
        assert!(!verify(&parsed, "Alice!lab1", [8; 8]));
        let bare = parse_authenticate(&authenticate_message("bob", "", "Bob!lab1", challenge));
        assert!(verify(&bare.unwrap(), "Bob!lab1", challenge));
        assert_eq!(authenticate_for(&negotiate_message(), "a", "", "p"), None);
    }

    #[test]
    fn headers_carry_tokens() {
        let msg = negotiate_message();
        let value = header_value(Scheme::Ntlm, &msg);
        assert!(value.starts_with("NTLM TlRMTVNTUAAB"));
        assert_eq!(parse_header(&value), Some((Scheme::Ntlm, msg.clone())));
        let neg = header_value(Scheme::Negotiate, &msg);
        assert_eq!(parse_header(&neg), Some((Scheme::Negotiate, msg.clone())));
        assert!(!parse_token(&neg).unwrap().spnego);
        // SPNEGO wrapping: the NTLMSSP message is unwrapped.
        let value = format!("negotiate {}", STANDARD.encode(spnego::init(&msg)));
        let token = parse_token(&value).unwrap();
        assert!(token.spnego);
        assert_eq!(token.ntlm.as_deref(), Some(&msg[..]));
        let resp = spnego::client_resp(&msg);
        let value = header_value(Scheme::Negotiate, &resp);
        assert_eq!(parse_header(&value), Some((Scheme::Negotiate, msg)));
        // SPNEGO only under Negotiate.
        assert_eq!(parse_header(&header_value(Scheme::Ntlm, &resp)), None);
        assert_eq!(parse_header("NTLM"), None);
        assert_eq!(parse_header("Basic YTpi"), None);
        assert_eq!(parse_header("NTLM !!!"), None);
        assert_eq!(parse_header("NTLM YWJj"), None);
    }
}
