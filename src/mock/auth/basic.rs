//! Who a request is: HTTP Basic credentials checked against the
//! directory, or the identity an NTLM / Negotiate login gave the connection
//! (see `conn_login`). Used by EWS, MAPI and Autodiscover.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, Response, StatusCode};

use crate::mock::auth::conn_login::{self, ConnectionUser};
use crate::mock::auth::token::ProxiedUser;
use crate::mock::directory;
use crate::mock::http::response::{self, Body};
use crate::mock::users::{normalize_logon, Mailbox};

/// What the `Authorization` header says.
#[derive(Debug, PartialEq, Eq)]
pub enum Credentials {
    /// No `Authorization` header.
    Absent,
    /// A header that is not Basic or does not decode.
    Unusable,
    /// Basic user name and password.
    Basic(String, String),
}

/// Reads Basic credentials from `headers`.
pub fn credentials(headers: &HeaderMap) -> Credentials {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Credentials::Absent;
    };
    let basic = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, b64)| STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(u, p)| (u.to_string(), p.to_string()))
        });
    match basic {
        Some((user, password)) => Credentials::Basic(user, password),
        None => Credentials::Unusable,
    }
}

/// The authenticated mailbox: the identity of a proxied request (see
/// `token`), else Basic credentials when the request carries them, else
/// the connection's NTLM identity (from `extensions`); `None` when all are
/// absent or the credentials are wrong. The directory answers; no store is
/// involved.
pub fn authenticate(headers: &HeaderMap, extensions: &http::Extensions) -> Option<Mailbox> {
    if let Some(ProxiedUser(m)) = extensions.get::<ProxiedUser>() {
        return Some(m.clone());
    }
    let Credentials::Basic(user, password) = credentials(headers) else {
        return extensions
            .get::<ConnectionUser>()
            .map(|ConnectionUser(m)| m.clone());
    };
    directory::lab().authenticate(&normalize_logon(&user), &password)
}

/// `401` asking for Basic credentials for realm `fqdn` (first), then
/// offering `Negotiate` and `NTLM`.
pub fn unauthorized(fqdn: &str) -> Response<Body> {
    let mut resp = response::status(StatusCode::UNAUTHORIZED);
    if let Ok(v) = format!("Basic realm=\"{fqdn}\"").parse() {
        resp.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    conn_login::add_offers(resp.headers_mut());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn reads_basic() {
        let b64 = STANDARD.encode("alice@lab.com:Alice!lab1:x");
        assert_eq!(
            credentials(&headers(&format!("basic {b64}"))),
            Credentials::Basic("alice@lab.com".into(), "Alice!lab1:x".into())
        );
        assert_eq!(credentials(&HeaderMap::new()), Credentials::Absent);
        assert_eq!(credentials(&headers("Bearer x")), Credentials::Unusable);
        assert_eq!(credentials(&headers("Basic !!!")), Credentials::Unusable);
    }

    #[test]
    fn challenge_names_realm() {
        let resp = unauthorized("ex1.lab.local");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let offers: Vec<_> = resp.headers().get_all(WWW_AUTHENTICATE).iter().collect();
        assert_eq!(
            offers,
            ["Basic realm=\"ex1.lab.local\"", "Negotiate", "NTLM"]
        );
    }
}
