//! What one client connection carries from request to request.
//!
//! NTLM and Negotiate authenticate a TCP connection, not a request: once a
//! client connection starts such a login, every later request on it must
//! reach the same member over the same backend connection, and that backend
//! connection must never serve anyone else. [`ConnCtx`] holds that
//! dedicated connection for the client connection's whole life.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use hyper::client::conn::http1::SendRequest;

use crate::upstream::replay::ReplayBody;

/// A backend connection owned by one client connection.
pub struct Pinned {
    /// The member's name (indexes change on reload, names do not).
    pub member: String,
    pub address: SocketAddr,
    pub sender: SendRequest<ReplayBody>,
}

/// Per client connection state.
pub struct ConnCtx {
    pub peer: SocketAddr,
    /// `peer`'s address as an `X-Forwarded-For` value.
    pub forwarded_for: http::HeaderValue,
    /// The array's address the client connected to.
    pub local: SocketAddr,
    /// The client speaks HTTP/2: NTLM is refused with HTTP_1_1_REQUIRED.
    pub h2: bool,
    /// Set once `pinned` holds a connection: the common path checks this
    /// flag and never touches the lock.
    is_pinned: AtomicBool,
    /// Made on the first NTLM/Negotiate exchange: most connections never
    /// have one, and every idle connection would carry its space.
    auth: OnceLock<Box<ConnAuth>>,
}

/// The login state of a connection that uses NTLM or Negotiate.
#[derive(Default)]
struct ConnAuth {
    pinned: tokio::sync::Mutex<Option<Pinned>>,
    /// A member answered 401 with an NTLM/Negotiate challenge: the login's
    /// next leg goes to it.
    ntlm_member: Mutex<Option<String>>,
}

impl ConnCtx {
    pub fn new(peer: SocketAddr, local: SocketAddr, h2: bool) -> Self {
        ConnCtx {
            peer,
            forwarded_for: super::headers::client_value(peer.ip()),
            local,
            h2,
            is_pinned: AtomicBool::new(false),
            auth: OnceLock::new(),
        }
    }

    fn auth(&self) -> &ConnAuth {
        self.auth.get_or_init(Box::default)
    }

    /// The connection's dedicated backend connection, if it has one.
    pub fn pinned(&self) -> &tokio::sync::Mutex<Option<Pinned>> {
        &self.auth().pinned
    }

    #[inline]
    pub fn is_pinned(&self) -> bool {
        self.is_pinned.load(Ordering::Relaxed)
    }

    pub fn set_pinned(&self, pinned: bool) {
        self.is_pinned.store(pinned, Ordering::Relaxed);
    }

    pub fn ntlm_member(&self) -> Option<String> {
        self.auth
            .get()?
            .ntlm_member
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_ntlm_member(&self, member: &str) {
        *self
            .auth()
            .ntlm_member
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(member.to_owned());
    }
}

/// The request starts or continues an NTLM or Negotiate login.
pub fn is_connection_auth(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .any(|v| scheme_is_connection_bound(v.as_bytes()))
}

/// The answer challenges for an NTLM or Negotiate login.
pub fn challenges_connection_auth(status: http::StatusCode, headers: &http::HeaderMap) -> bool {
    status == http::StatusCode::UNAUTHORIZED
        && headers
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .any(|v| scheme_is_connection_bound(v.as_bytes()))
}

fn scheme_is_connection_bound(value: &[u8]) -> bool {
    let scheme = value
        .split(|&b| b == b' ' || b == b',')
        .next()
        .unwrap_or(b"");
    scheme.eq_ignore_ascii_case(b"ntlm") || scheme.eq_ignore_ascii_case(b"negotiate")
}

/// Why the array ends a request without an answer.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// An NTLM or Negotiate exchange on HTTP/2: the stream is reset with
    /// HTTP_1_1_REQUIRED, as IIS does, and the client retries over HTTP/1.1
    /// (hyper finds the `h2::Error` in the source chain).
    #[error("NTLM and Negotiate need HTTP/1.1")]
    Http11Required(#[source] h2::Error),
    /// The backend connection this client connection was authenticated on
    /// is gone: the client connection is closed so the client logs in
    /// again, through another member.
    #[error("the backend connection this client connection was authenticated on is gone")]
    PinnedGone,
}

impl ConnError {
    pub fn http11_required() -> Self {
        ConnError::Http11Required(h2::Error::from(h2::Reason::HTTP_1_1_REQUIRED))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, StatusCode};

    #[test]
    fn recognises_connection_bound_schemes() {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_static("NTLM TlRMTVNTUAABAAAA"),
        );
        assert!(is_connection_auth(&h));
        h.insert("authorization", HeaderValue::from_static("negotiate YIIx"));
        assert!(is_connection_auth(&h));
        h.insert(
            "authorization",
            HeaderValue::from_static("Basic YWxpY2U6eA=="),
        );
        assert!(!is_connection_auth(&h));
        h.insert("authorization", HeaderValue::from_static("NTLMish x"));
        assert!(!is_connection_auth(&h));

        let mut r = HeaderMap::new();
        r.append(
            "www-authenticate",
            HeaderValue::from_static("Basic realm=\"x\""),
        );
        r.append("www-authenticate", HeaderValue::from_static("NTLM"));
        assert!(challenges_connection_auth(StatusCode::UNAUTHORIZED, &r));
        assert!(!challenges_connection_auth(StatusCode::OK, &r));
    }
}
