//! SPNEGO (RFC 4178) as `Negotiate` carries NTLM: the client's
//! `NegTokenInit` (in its GSS-API application wrapper) and the
//! `NegTokenResp` both sides send afterwards, DER-encoded.
//!
//! Only what NTLM needs is read: the offered mechanisms, the mechanism
//! token and the `mechListMIC` (accepted, not checked: the mock keeps no
//! NTLM session key). Lengths are checked against the bytes present; any
//! structure that does not fit is refused (`None`), never trusted.

/// DER of the NTLMSSP mechanism OID 1.3.6.1.4.1.311.2.2.10.
pub const NTLM_OID: &[u8] = &[
    0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a,
];
/// DER of the SPNEGO OID 1.3.6.1.5.5.2.
const SPNEGO_OID: &[u8] = &[0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];

const APPLICATION_0: u8 = 0x60;
const SEQUENCE: u8 = 0x30;
const OCTET_STRING: u8 = 0x04;
const ENUMERATED: u8 = 0x0a;
const OID: u8 = 0x06;
/// Context tags `[0]`..`[3]`, constructed.
const fn ctx(n: u8) -> u8 {
    0xa0 + n
}

/// `negState` of a `NegTokenResp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NegState {
    AcceptCompleted = 0,
    AcceptIncomplete = 1,
}

/// A parsed SPNEGO token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// The client's first token.
    Init {
        /// Whether NTLM is among the offered mechanisms.
        offers_ntlm: bool,
        /// Whether NTLM is the first (preferred) one: only then is
        /// `mech_token` an NTLM message.
        ntlm_first: bool,
        mech_token: Option<Vec<u8>>,
    },
    /// A later token of either side.
    Resp {
        state: Option<u8>,
        response_token: Option<Vec<u8>>,
        mech_list_mic: Option<Vec<u8>>,
    },
}

/// Whether `raw` looks like SPNEGO rather than a raw NTLMSSP message.
pub fn is_spnego(raw: &[u8]) -> bool {
    matches!(raw.first(), Some(&APPLICATION_0) | Some(&0xa1))
}

/// Parses a `NegTokenInit` (application-wrapped) or a `NegTokenResp`.
pub fn parse(raw: &[u8]) -> Option<Token> {
    let (tag, body, _) = tlv(raw)?;
    match tag {
        APPLICATION_0 => {
            let (oid_tag, _, rest) = tlv(body)?;
            if oid_tag != OID || !body.starts_with(SPNEGO_OID) {
                return None;
            }
            let (t, init, _) = tlv(rest)?;
            (t == ctx(0)).then_some(())?;
            parse_init(init)
        }
        t if t == ctx(1) => parse_resp(body),
        _ => None,
    }
}

fn parse_init(init: &[u8]) -> Option<Token> {
    let (t, mut fields, _) = tlv(init)?;
    (t == SEQUENCE).then_some(())?;
    let mut offers_ntlm = false;
    let mut ntlm_first = false;
    let mut mech_token = None;
    while !fields.is_empty() {
        let (tag, value, rest) = tlv(fields)?;
        fields = rest;
        if tag == ctx(0) {
            let (t, mut list, _) = tlv(value)?;
            (t == SEQUENCE).then_some(())?;
            let mut first = true;
            while !list.is_empty() {
                let (t, _, rest) = tlv(list)?;
                (t == OID).then_some(())?;
                let oid = &list[..list.len() - rest.len()];
                if oid == NTLM_OID {
                    offers_ntlm = true;
                    ntlm_first |= first;
                }
                first = false;
                list = rest;
            }
        } else if tag == ctx(2) {
            mech_token = Some(octets(value)?);
        }
    }
    Some(Token::Init {
        offers_ntlm,
        ntlm_first,
        mech_token,
    })
}

fn parse_resp(resp: &[u8]) -> Option<Token> {
    let (t, mut fields, _) = tlv(resp)?;
    (t == SEQUENCE).then_some(())?;
    let mut state = None;
    let mut response_token = None;
    let mut mech_list_mic = None;
    while !fields.is_empty() {
        let (tag, value, rest) = tlv(fields)?;
        fields = rest;
        if tag == ctx(0) {
            let (t, v, _) = tlv(value)?;
            (t == ENUMERATED && v.len() == 1).then_some(())?;
            state = Some(v[0]);
        } else if tag == ctx(2) {
            response_token = Some(octets(value)?);
        } else if tag == ctx(3) {
            mech_list_mic = Some(octets(value)?);
        }
    }
    Some(Token::Resp {
        state,
        response_token,
        mech_list_mic,
    })
}

/// The contents of the OCTET STRING that `value` holds.
fn octets(value: &[u8]) -> Option<Vec<u8>> {
    let (t, v, _) = tlv(value)?;
    (t == OCTET_STRING).then(|| v.to_vec())
}

/// One DER TLV: (tag, value, the bytes after it). Lengths up to 4 bytes.
fn tlv(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *data.first()?;
    let first = *data.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = data.get(2..2 + n)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some((tag, data.get(header..end)?, data.get(end..)?))
}

/// Appends a DER TLV.
fn push_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value);
}

fn wrap(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 6);
    push_tlv(&mut out, tag, value);
    out
}

/// A `NegTokenResp` with `state`, naming NTLM as the chosen mechanism
/// when `name_mech` (the server's first answer), with `token` if any.
pub fn resp(state: NegState, name_mech: bool, token: Option<&[u8]>) -> Vec<u8> {
    let mut fields = wrap(ctx(0), &wrap(ENUMERATED, &[state as u8]));
    if name_mech {
        push_tlv(&mut fields, ctx(1), NTLM_OID);
    }
    if let Some(token) = token {
        push_tlv(&mut fields, ctx(2), &wrap(OCTET_STRING, token));
    }
    wrap(ctx(1), &wrap(SEQUENCE, &fields))
}

/// A client's `NegTokenInit` offering NTLM only, carrying `ntlm_token`.
pub fn init(ntlm_token: &[u8]) -> Vec<u8> {
    let mut fields = wrap(ctx(0), &wrap(SEQUENCE, NTLM_OID));
    push_tlv(&mut fields, ctx(2), &wrap(OCTET_STRING, ntlm_token));
    let mut body = SPNEGO_OID.to_vec();
    push_tlv(&mut body, ctx(0), &wrap(SEQUENCE, &fields));
    wrap(APPLICATION_0, &body)
}

/// A client's later `NegTokenResp` carrying `ntlm_token`.
pub fn client_resp(ntlm_token: &[u8]) -> Vec<u8> {
    let fields = wrap(ctx(2), &wrap(OCTET_STRING, ntlm_token));
    wrap(ctx(1), &wrap(SEQUENCE, &fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_round_trips() {
        let token = vec![7u8; 300];
        let raw = init(&token);
        assert!(is_spnego(&raw));
        assert_eq!(
            parse(&raw),
            Some(Token::Init {
                offers_ntlm: true,
                ntlm_first: true,
                mech_token: Some(token)
            })
        );
    }

    /// What Windows sends when it prefers Kerberos: the Kerberos OIDs
    /// first, NTLM after, and no NTLM token.
    #[test]
    fn init_with_ntlm_second() {
        let krb5 = [
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02,
        ];
        let mut list = krb5.to_vec();
        list.extend_from_slice(NTLM_OID);
        let fields = wrap(ctx(0), &wrap(SEQUENCE, &list));
        let mut body = SPNEGO_OID.to_vec();
        push_tlv(&mut body, ctx(0), &wrap(SEQUENCE, &fields));
        let raw = wrap(APPLICATION_0, &body);
        assert_eq!(
            parse(&raw),
            Some(Token::Init {
                offers_ntlm: true,
                ntlm_first: false,
                mech_token: None
            })
        );
    }

    #[test]
    fn resp_round_trips() {
        let raw = resp(NegState::AcceptIncomplete, true, Some(b"NTLMSSP\0\x02"));
        assert!(is_spnego(&raw));
        assert_eq!(
            parse(&raw),
            Some(Token::Resp {
                state: Some(1),
                response_token: Some(b"NTLMSSP\0\x02".to_vec()),
                mech_list_mic: None
            })
        );
        let done = resp(NegState::AcceptCompleted, false, None);
        assert_eq!(done, [0xa1, 0x07, 0x30, 0x05, 0xa0, 0x03, 0x0a, 0x01, 0x00]);
        assert_eq!(
            parse(&client_resp(b"x")),
            Some(Token::Resp {
                state: None,
                response_token: Some(b"x".to_vec()),
                mech_list_mic: None
            })
        );
    }

    #[test]
    fn hostile_tokens_are_refused_not_panicked_on() {
        let raw = init(&[1; 200]);
        for len in 0..raw.len() {
            let _ = parse(&raw[..len]);
        }
        assert_eq!(parse(&[0x60, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(parse(&[0x60, 0x85, 1, 1, 1, 1, 1]), None);
        assert_eq!(parse(&[0x60, 0x80]), None);
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(b"NTLMSSP\0"), None);
        let mut bad = init(&[1; 4]);
        bad[2] = 0x05; // not the SPNEGO OID
        assert_eq!(parse(&bad), None);
    }
}
