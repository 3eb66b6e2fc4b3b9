//! The identity a server hands another with a request it proxies to the
//! server holding the mailbox's active copy: `X-CommonAccessToken`, the
//! mailbox address sealed (AES-256-GCM) under a key derived from the
//! array's shared key for this purpose only, valid 60 s. The receiving
//! server trusts it in place of the client's credentials, which the first
//! server checked (Basic, NTLM or the OWA cookie).

use http::{HeaderMap, HeaderValue};

use crate::mock::directory;
use crate::mock::format::clock::unix_now;
use crate::mock::shared::Shared;
use crate::mock::users::Mailbox;

/// The header.
pub const HEADER: &str = "x-commonaccesstoken";

/// How long a token is accepted: 60 s.
const LIFETIME_SECS: i64 = 60;

/// The identity of a proxied request, in its extensions.
#[derive(Debug, Clone)]
pub struct ProxiedUser(pub Mailbox);

/// A token for `address`.
pub fn issue(shared: &Shared, address: &str) -> Option<HeaderValue> {
    let sealed = shared
        .token
        .seal(address, unix_now() + LIFETIME_SECS)
        .ok()?;
    HeaderValue::from_str(&sealed).ok()
}

/// The mailbox a valid token in `headers` names.
pub fn verify(shared: &Shared, headers: &HeaderMap) -> Option<Mailbox> {
    let value = headers.get(HEADER)?.to_str().ok()?;
    let address = shared.token.open(value, unix_now())?;
    directory::lab().find(&address).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_forgeries_do_not() {
        let (_dir, shared) = Shared::for_tests();
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, issue(&shared, "bob@lab.com").unwrap());
        assert_eq!(verify(&shared, &headers).unwrap().address, "bob@lab.com");
        headers.insert(HEADER, HeaderValue::from_static("forged"));
        assert!(verify(&shared, &headers).is_none());
        assert!(verify(&shared, &HeaderMap::new()).is_none());
    }
}
