//! Who a request is: HTTP Basic credentials checked against the mailbox
//! store, or the identity an NTLM / Negotiate login gave the connection
//! (see `conn_login`). Used by EWS, MAPI and Autodiscover.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, Response, StatusCode};

use crate::mock::auth::conn_login::{self, ConnectionUser};
use crate::mock::http::response::{self, Body};
use crate::mock::shared::Shared;
use crate::mock::store;
use crate::mock::users::Mailbox;

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

/// The authenticated mailbox: Basic credentials when the request carries
/// them, else the connection's NTLM identity (from `extensions`);
/// `Ok(None)` when both are absent or the credentials are wrong, `Err` (a
/// 500 answer) when the store fails.
pub async fn authenticate(
    shared: &Shared,
    headers: &HeaderMap,
    extensions: &http::Extensions,
) -> Result<Option<Mailbox>, Response<Body>> {
    let Credentials::Basic(user, password) = credentials(headers) else {
        return Ok(extensions
            .get::<ConnectionUser>()
            .map(|ConnectionUser(m)| m.clone()));
    };
    shared
        .store
        .run(move |conn| store::authenticate(conn, &user, &password))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "mail store failed");
            response::status(StatusCode::INTERNAL_SERVER_ERROR)
        })
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
