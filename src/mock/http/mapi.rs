//! MAPI over HTTP, minimal (MS-OXCMAPIHTTP): `POST /mapi/emsmdb/` and
//! `POST /mapi/nspi/` with HTTP Basic authentication (or a connection-bound
//! NTLM login). Every request type (`X-RequestType`) succeeds:
//! `X-ResponseCode: 0`, the type echoed, and a body of the `PROCESSING` /
//! `DONE` meta-tags, the `X-ElapsedTime` and `X-StartTime` additional
//! headers, then a small binary response body
//! (`Connect`, `Execute`, `NotificationWait`, `Bind` in their shapes; a
//! status, an error code and an empty auxiliary buffer otherwise).
//! `GET` answers a small page, as Exchange's endpoint does.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use bytes::{BufMut, BytesMut};
use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::mock::auth;
use crate::mock::format::clock;
use crate::mock::format::clock::unix_now;
use crate::mock::format::xml::escape;
use crate::mock::http::request::{read_body, MAX_BODY};
use crate::mock::http::response::{self, Body};
use crate::mock::shared::Shared;
use crate::mock::users::{self, Mailbox};

/// `application/mapi-http`.
const MAPI_CONTENT_TYPE: &str = "application/mapi-http";
/// What `X-ServerApplication` announces.
const SERVER_APPLICATION: &str = "Exchange/15.00.1497.002";
/// `X-ResponseCode` 7: Missing Header.
const MISSING_HEADER: u32 = 7;
/// Longest a client should wait between polls: 60 s, in milliseconds.
const MAX_POLLING_INTERVAL_MS: u32 = 60_000;

/// Answers `/mapi/...`; `path` is lower case.
pub async fn handle(shared: &Shared, path: &str, req: Request<Incoming>) -> Response<Body> {
    let endpoint = match path.trim_end_matches('/') {
        "/mapi/emsmdb" => "emsmdb",
        "/mapi/nspi" => "nspi",
        _ => return response::status(StatusCode::NOT_FOUND),
    };
    let Some(me) = auth::authenticate(req.headers(), req.extensions()) else {
        return auth::unauthorized(&shared.fqdn);
    };
    if req.method() == Method::GET {
        let html = format!(
            "<!DOCTYPE html>\n<html><body><h1>Exchange MAPI/HTTP Connectivity Endpoint</h1>\n\
             <p>{endpoint} on {}</p>\n</body></html>\n",
            escape(&shared.fqdn)
        );
        return response::with_body(StatusCode::OK, response::HTML, html);
    }
    if req.method() != Method::POST {
        return response::status(StatusCode::METHOD_NOT_ALLOWED);
    }
    let started = std::time::Instant::now();
    let headers = req.headers().clone();
    if let Err(resp) = read_body(req.into_body(), MAX_BODY).await {
        return resp;
    }
    let request_type = headers
        .get("x-requesttype")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    let (code, payload) = match &request_type {
        Some(t) => (0, payload(t, &me)),
        None => (MISSING_HEADER, Vec::new()),
    };
    let elapsed = started.elapsed().as_millis();
    let mut body = BytesMut::new();
    body.put_slice(b"PROCESSING\r\nDONE\r\n");
    body.put_slice(format!("X-ElapsedTime: {elapsed}\r\n").as_bytes());
    body.put_slice(format!("X-StartTime: {}\r\n\r\n", clock::http_date(unix_now())).as_bytes());
    body.put_slice(&payload);

    let mut resp = response::with_body(StatusCode::OK, MAPI_CONTENT_TYPE, body.freeze());
    let out = resp.headers_mut();
    out.insert("x-responsecode", HeaderValue::from(code));
    out.insert(
        "x-serverapplication",
        HeaderValue::from_static(SERVER_APPLICATION),
    );
    out.insert("x-pendingperiod", HeaderValue::from_static("15000"));
    out.insert("cache-control", HeaderValue::from_static("private"));
    echo(&headers, out, "x-requesttype");
    echo(&headers, out, "x-requestid");
    echo(&headers, out, "x-clientinfo");
    if matches!(request_type.as_deref(), Some("Connect" | "Bind")) {
        out.insert("x-expirationinfo", HeaderValue::from_static("900000"));
        if let Some(context) = context_cookie(endpoint) {
            out.append(SET_COOKIE, context);
        }
    }
    resp
}

fn echo(from: &HeaderMap, to: &mut HeaderMap, name: &'static str) {
    if let Some(v) = from.get(name) {
        to.insert(name, v.clone());
    }
}

/// `MapiContext=<random>; path=/mapi/<endpoint>/`.
fn context_cookie(endpoint: &str) -> Option<HeaderValue> {
    let mut raw = [0u8; 12];
    SystemRandom::new().fill(&mut raw).ok()?;
    let hex: String = raw.iter().map(|b| format!("{b:02X}")).collect();
    format!("MapiContext={hex}; path=/mapi/{endpoint}/; secure; HttpOnly")
        .parse()
        .ok()
}

/// The binary response body for a request type (little-endian fields).
fn payload(request_type: &str, me: &Mailbox) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u32_le(0); // StatusCode
    b.put_u32_le(0); // ErrorCode
    match request_type {
        "Connect" => {
            b.put_u32_le(MAX_POLLING_INTERVAL_MS);
            b.put_u32_le(6); // MaxRetryCount
            b.put_u32_le(10_000); // RetryDelay, ms
                                  // DnPrefix: null-terminated ASCII.
            b.put_slice(users::admin_group_dn().as_bytes());
            b.put_u8(0);
            // DisplayName: null-terminated UTF-16LE.
            for unit in me.display_name.encode_utf16() {
                b.put_u16_le(unit);
            }
            b.put_u16_le(0);
        }
        "Execute" => {
            b.put_u32_le(0); // Flags
            b.put_u32_le(0); // RopBufferSize
        }
        "NotificationWait" => b.put_u32_le(0), // EventPending
        "Bind" => b.put_slice(&[0u8; 16]),     // ServerGuid
        _ => {}
    }
    b.put_u32_le(0); // AuxiliaryBufferSize
    b.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_payload_shape() {
        let me = Mailbox {
            address: "alice@lab.com".into(),
            display_name: "Al".into(),
            database: "DB01".into(),
            guid: crate::mock::users::mailbox_guid("alice@lab.com"),
        };
        let p = payload("Connect", &me);
        assert_eq!(&p[..8], &[0; 8]);
        assert_eq!(u32::from_le_bytes([p[8], p[9], p[10], p[11]]), 60_000);
        let dn_end = 20 + p[20..].iter().position(|b| *b == 0).unwrap();
        assert_eq!(
            std::str::from_utf8(&p[20..dn_end]).unwrap(),
            "/o=casarray lab/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)"
        );
        assert_eq!(&p[dn_end + 1..dn_end + 7], &[b'A', 0, b'l', 0, 0, 0]);
        assert_eq!(p.len(), dn_end + 7 + 4);
        assert_eq!(payload("Disconnect", &me).len(), 12);
        assert_eq!(payload("Execute", &me).len(), 20);
    }
}
