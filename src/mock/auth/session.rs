//! OWA session cookies (`cadata`): sealed with AES-256-GCM under a key
//! derived (HKDF-SHA256) from the array's shared private key, so that every
//! server holding that key opens every other server's cookies, and a
//! session survives the loss of the server that opened it.
//!
//! Cookie value: base64url (no padding) of `nonce (12 bytes) || ciphertext
//! || tag`; the plaintext is `v1\n<address>\n<expiry, Unix seconds>`.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hkdf;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The cookie's name, as Exchange's forms-based authentication names it.
pub const COOKIE_NAME: &str = "cadata";

/// How long a session lasts: 8 hours.
pub const SESSION_LIFETIME_SECS: i64 = 8 * 3600;

/// HKDF salt: fixed, public.
const KEY_SALT: &[u8] = b"casarray";

/// What a sealer's key is for: the HKDF info that derives it and the data
/// bound into every seal, so that a value sealed for one purpose under the
/// same shared key never opens for another.
#[derive(Debug, Clone, Copy)]
pub struct Purpose {
    info: &'static [u8],
    aad: &'static [u8],
}

/// OWA's `cadata` session cookies.
pub const OWA_SESSION: Purpose = Purpose {
    info: b"casarray mock owa cadata v1",
    aad: b"cadata",
};

/// The identity one server hands another with a proxied request
/// (`X-CommonAccessToken`, as Exchange 2013's front end does).
pub const SERVER_TOKEN: Purpose = Purpose {
    info: b"casarray mock common access token v1",
    aad: b"commonaccesstoken",
};

/// Why a sealer could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot derive the session key")]
    KeyDerivation,
    #[error("no randomness available")]
    Random,
}

/// Seals and opens session cookies.
pub struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
    aad: &'static [u8],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").finish_non_exhaustive()
    }
}

impl Sealer {
    /// An OWA session sealer whose key derives from `secret`: the DER
    /// bytes of the shared private key.
    pub fn from_secret(secret: &[u8]) -> Result<Sealer, SessionError> {
        Sealer::for_purpose(secret, OWA_SESSION)
    }

    /// A sealer for `purpose` whose key derives from `secret`.
    pub fn for_purpose(secret: &[u8], purpose: Purpose) -> Result<Sealer, SessionError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, KEY_SALT).extract(secret);
        let info = [purpose.info];
        let okm = prk
            .expand(&info, &AES_256_GCM)
            .map_err(|_| SessionError::KeyDerivation)?;
        let key = LessSafeKey::new(UnboundKey::from(okm));
        Ok(Sealer {
            key,
            rng: SystemRandom::new(),
            aad: purpose.aad,
        })
    }

    /// An OWA session sealer with a random key: cookies open only in this
    /// process.
    pub fn ephemeral() -> Result<Sealer, SessionError> {
        Sealer::ephemeral_for(OWA_SESSION)
    }

    /// A sealer for `purpose` with a random key.
    pub fn ephemeral_for(purpose: Purpose) -> Result<Sealer, SessionError> {
        let mut secret = [0u8; 32];
        SystemRandom::new()
            .fill(&mut secret)
            .map_err(|_| SessionError::Random)?;
        Sealer::for_purpose(&secret, purpose)
    }

    /// A cookie value naming `address`, valid until `expires` (Unix
    /// seconds).
    pub fn seal(&self, address: &str, expires: i64) -> Result<String, SessionError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| SessionError::Random)?;
        let mut data = format!("v1\n{address}\n{expires}").into_bytes();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(self.aad),
                &mut data,
            )
            .map_err(|_| SessionError::KeyDerivation)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// The address a cookie value names, if it opens under this key and has
    /// not expired at `now` (Unix seconds).
    pub fn open(&self, cookie: &str, now: i64) -> Option<String> {
        let raw = URL_SAFE_NO_PAD.decode(cookie.trim()).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(self.aad), &mut sealed)
            .ok()?;
        let text = std::str::from_utf8(plain).ok()?;
        let mut parts = text.split('\n');
        if parts.next()? != "v1" {
            return None;
        }
        let address = parts.next()?;
        let expires: i64 = parts.next()?.parse().ok()?;
        if parts.next().is_some() || now >= expires {
            return None;
        }
        Some(address.to_string())
    }
}

/// The value of cookie `name` in a `Cookie` request header value.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_secret_opens_other_servers_cookies() {
        let a = Sealer::from_secret(b"shared key der").unwrap();
        let b = Sealer::from_secret(b"shared key der").unwrap();
        let c = Sealer::from_secret(b"another key").unwrap();
        let cookie = a.seal("alice@lab.com", 1000).unwrap();
        assert_eq!(b.open(&cookie, 999).as_deref(), Some("alice@lab.com"));
        assert_eq!(c.open(&cookie, 999), None);
        assert_eq!(b.open(&cookie, 1000), None, "expired");
        assert_ne!(
            cookie,
            a.seal("alice@lab.com", 1000).unwrap(),
            "fresh nonce"
        );
    }

    #[test]
    fn purposes_do_not_mix() {
        let owa = Sealer::from_secret(b"shared").unwrap();
        let token = Sealer::for_purpose(b"shared", SERVER_TOKEN).unwrap();
        let sealed = token.seal("alice@lab.com", 1000).unwrap();
        assert_eq!(owa.open(&sealed, 0), None);
        assert_eq!(token.open(&sealed, 0).as_deref(), Some("alice@lab.com"));
    }

    #[test]
    fn tampered_or_junk_cookies_do_not_open() {
        let a = Sealer::ephemeral().unwrap();
        let cookie = a.seal("bob@lab.com", i64::MAX).unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(&cookie).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert_eq!(a.open(&URL_SAFE_NO_PAD.encode(raw), 0), None);
        for junk in ["", "x", "!!!", "AAAA"] {
            assert_eq!(a.open(junk, 0), None);
        }
    }

    #[test]
    fn finds_cookie_in_header() {
        let h = "a=1; cadata=XYZ; b=2";
        assert_eq!(cookie_value(h, "cadata"), Some("XYZ"));
        assert_eq!(cookie_value(h, "zz"), None);
    }
}
