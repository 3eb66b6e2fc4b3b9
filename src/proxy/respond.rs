//! Answers the array gives itself, never forwarded.

use http::{header, HeaderValue, Response, StatusCode};

use super::body::{full, ProxyBody};

/// A short plain-text answer; never cached.
pub fn plain(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut resp = Response::new(full(text));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// 503 when no member can take the service; clients are told to retry soon.
pub fn no_member() -> Response<ProxyBody> {
    let mut resp = plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "503 Service Unavailable: no healthy server for this service\n",
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    resp
}

/// `/` goes to OWA, as on an Exchange server.
pub fn to_owa() -> Response<ProxyBody> {
    let mut resp = plain(StatusCode::FOUND, "302 Found: /owa/\n");
    resp.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/owa/"));
    resp
}

/// 503 when a mailbox's database had no mounted copy within
/// `proxy.failover_wait`; clients are told to retry soon.
pub fn not_mounted() -> Response<ProxyBody> {
    let mut resp = plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "503 Service Unavailable: the mailbox's database is being activated on another server\n",
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    resp
}
