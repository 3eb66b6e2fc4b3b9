//! JSON Autodiscover v1.0, as Outlook mobile and the new Outlook ask:
//! `GET /autodiscover/autodiscover.json/v1.0/<mailbox>?Protocol=EWS` (or
//! `ActiveSync`) answers `{"Protocol":"EWS","Url":"https://<fqdn>/EWS/Exchange.asmx"}`.
//! Another protocol is a `400` with Exchange's `InvalidProtocol` error, an
//! unknown mailbox a `404`. Anonymous, as on Exchange.

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::mock::directory;
use crate::mock::http::form;
use crate::mock::http::request::query_param;
use crate::mock::http::response::{self, Body};
use crate::mock::shared::Shared;

/// Answers the JSON flavour for `mailbox` (from the lower-cased path,
/// percent-encoded).
pub fn handle(shared: &Shared, mailbox: &str, req: &Request<Incoming>) -> Response<Body> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return response::status(StatusCode::METHOD_NOT_ALLOWED);
    }
    let mailbox = form::decode(mailbox);
    let protocol = query_param(req.uri(), "protocol").unwrap_or_default();
    let (name, path) = if protocol.eq_ignore_ascii_case("ews") {
        ("EWS", "/EWS/Exchange.asmx")
    } else if protocol.eq_ignore_ascii_case("activesync") {
        ("ActiveSync", "/Microsoft-Server-ActiveSync")
    } else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidProtocol",
            &format!(
                "The given protocol value '{protocol}' is invalid. Supported values are 'ActiveSync,Ews'."
            ),
        );
    };
    if !mailbox.contains('@') || directory::lab().find(&mailbox).is_none() {
        return error(
            StatusCode::NOT_FOUND,
            "UserNotFound",
            &format!("The user '{mailbox}' was not found."),
        );
    }
    let body = serde_json::json!({
        "Protocol": name,
        "Url": format!("https://{}{path}", shared.fqdn),
    });
    json(StatusCode::OK, &body)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json(
        status,
        &serde_json::json!({ "ErrorCode": code, "ErrorMessage": message }),
    )
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    response::with_body(status, "application/json; charset=utf-8", value.to_string())
}
