//! NTLMv2 responses (MS-NLMP 3.3.2), computed and checked with RustCrypto's
//! MD4, MD5 and HMAC (the mock's only use of them; the array's crypto is
//! aws-lc-rs).
//!
//! - NT hash = MD4(UTF-16LE(password)).
//! - NTOWFv2 = HMAC-MD5(NT hash, UTF-16LE(UPPER(user) + domain)), with the
//!   user and domain exactly as the AUTHENTICATE message carries them.
//! - The NT response is NTProofStr || blob, where the blob is the client's
//!   `temp` (version, timestamp, client challenge, target info) and
//!   NTProofStr = HMAC-MD5(NTOWFv2, server challenge || blob).

use hmac::{Hmac, Mac};
use md4::{Digest, Md4};
use md5::Md5;

use super::message::utf16le;

type HmacMd5 = Hmac<Md5>;

/// Length of NTProofStr: 16 bytes.
const PROOF_LEN: usize = 16;
/// The smallest blob: version, reserved, timestamp, client challenge,
/// reserved (28 bytes).
const MIN_BLOB: usize = 28;

/// MD4 of the password's UTF-16LE bytes.
pub fn nt_hash(password: &str) -> [u8; 16] {
    Md4::digest(utf16le(password)).into()
}

/// NTOWFv2 of `password` for `user` in `domain`.
pub fn ntowf_v2(password: &str, user: &str, domain: &str) -> [u8; 16] {
    let mut identity = utf16le(&user.to_uppercase());
    identity.extend_from_slice(&utf16le(domain));
    hmac_md5(&nt_hash(password), &[&identity])
}

/// HMAC-MD5 of the concatenated `parts` under `key`.
fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    // HMAC takes keys of any length: the error arm is unreachable.
    let Ok(mut mac) = HmacMd5::new_from_slice(key) else {
        return [0; 16];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The blob (`temp`) a client sends: version 1.1, `timestamp` (FILETIME),
/// `client_challenge`, then `target_info` (AV pairs ending in MsvAvEOL) and
/// four zero bytes.
pub fn blob(timestamp: u64, client_challenge: [u8; 8], target_info: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MIN_BLOB + target_info.len() + 4);
    out.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&timestamp.to_le_bytes());
    out.extend_from_slice(&client_challenge);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(target_info);
    out.extend_from_slice(&[0; 4]);
    out
}

/// The NT response a client sends: NTProofStr || `blob`.
pub fn nt_response(
    password: &str,
    user: &str,
    domain: &str,
    server_challenge: [u8; 8],
    blob: &[u8],
) -> Vec<u8> {
    let key = ntowf_v2(password, user, domain);
    let mut out = hmac_md5(&key, &[&server_challenge, blob]).to_vec();
    out.extend_from_slice(blob);
    out
}

/// Whether `nt_response` (NTProofStr || blob) proves `password` for `user`
/// in `domain` against `server_challenge`. NTLMv1 responses (24 bytes) and
/// anything too short to hold a blob fail. The proof is compared in
/// constant time.
pub fn verify(
    nt_response: &[u8],
    password: &str,
    user: &str,
    domain: &str,
    server_challenge: [u8; 8],
) -> bool {
    if nt_response.len() < PROOF_LEN + MIN_BLOB {
        return false;
    }
    let (proof, blob) = nt_response.split_at(PROOF_LEN);
    if blob[..2] != [1, 1] {
        return false;
    }
    let key = ntowf_v2(password, user, domain);
    let Ok(mut mac) = HmacMd5::new_from_slice(&key) else {
        return false;
    };
    mac.update(&server_challenge);
    mac.update(blob);
    mac.verify_slice(proof).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// MS-NLMP 4.2.1 and 4.2.4.1.1: user "User", domain "Domain",
    /// password "Password".
    #[test]
    fn matches_the_ms_nlmp_test_vectors() {
        assert_eq!(
            hex(&nt_hash("Password")),
            "a4f49c406510bdcab6824ee7c30fd852"
        );
        assert_eq!(
            hex(&ntowf_v2("Password", "User", "Domain")),
            "0c868a403bfd7a93a3001ef22ef02e3f"
        );
    }

    /// MS-NLMP 4.2.4.2.2: NTProofStr for the spec's blob (time 0, client
    /// challenge aa.., the spec's AV pairs).
    #[test]
    fn proof_matches_the_ms_nlmp_example() {
        let server_challenge = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
        let mut info = Vec::new();
        for (id, text) in [(2u16, "Domain"), (1u16, "Server")] {
            let v = utf16le(text);
            info.extend_from_slice(&id.to_le_bytes());
            info.extend_from_slice(&(v.len() as u16).to_le_bytes());
            info.extend_from_slice(&v);
        }
        info.extend_from_slice(&[0; 4]);
        let b = blob(0, [0xaa; 8], &info);
        let resp = nt_response("Password", "User", "Domain", server_challenge, &b);
        assert_eq!(hex(&resp[..16]), "68cd0ab851e51c96aabc927bebef6a1c");
        assert!(verify(
            &resp,
            "Password",
            "User",
            "Domain",
            server_challenge
        ));
    }

    #[test]
    fn wrong_anything_fails() {
        let c = [7; 8];
        let b = blob(1, [2; 8], &[0; 4]);
        let resp = nt_response("Alice!lab1", "alice", "LAB", c, &b);
        assert!(verify(&resp, "Alice!lab1", "alice", "LAB", c));
        assert!(
            verify(&resp, "Alice!lab1", "ALICE", "LAB", c),
            "user case is folded"
        );
        assert!(
            !verify(&resp, "Alice!lab1", "alice", "lab", c),
            "domain case is not"
        );
        assert!(!verify(&resp, "wrong", "alice", "LAB", c));
        assert!(!verify(&resp, "Alice!lab1", "bob", "LAB", c));
        assert!(!verify(&resp, "Alice!lab1", "alice", "LAB", [8; 8]));
        let mut tampered = resp.clone();
        tampered[30] ^= 1;
        assert!(!verify(&tampered, "Alice!lab1", "alice", "LAB", c));
        assert!(
            !verify(&resp[..24], "Alice!lab1", "alice", "LAB", c),
            "v1 length"
        );
        assert!(!verify(&[], "Alice!lab1", "alice", "LAB", c));
    }
}
