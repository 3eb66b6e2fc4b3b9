//! Exchange Web Services (`POST /EWS/Exchange.asmx`): SOAP 1.1 with HTTP
//! Basic authentication or a connection-bound NTLM login; an authenticated
//! `GET` shows the service page with the WSDL link. Operations: `GetFolder`, `FindItem`, `GetItem`,
//! `CreateItem` (see the `ews_*` files); any other operation is answered
//! with `ResponseClass="Error"` and `ErrorInvalidOperation`, and a request
//! that is not a SOAP envelope with a `soap:Fault` (`ErrorSchemaValidation`,
//! HTTP 500).

pub mod create;
pub mod find;
pub mod folders;
pub mod items;
pub mod soap;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::mock::auth;
use crate::mock::databases::{generation_header, store_failed};
use crate::mock::format::xml::{self, escape, Element};
use crate::mock::http::request::{read_body, MAX_BODY};
use crate::mock::http::response::{self, Body};
use crate::mock::shared::Shared;
use crate::mock::store::StoreError;
use crate::mock::users::Mailbox;
use soap::Code;

/// Answers `/ews/...`; `path` is lower case.
pub async fn handle(shared: &Shared, path: &str, req: Request<Incoming>) -> Response<Body> {
    if path != "/ews/exchange.asmx" {
        return response::status(StatusCode::NOT_FOUND);
    }
    let Some(me) = auth::authenticate(req.headers(), req.extensions()) else {
        return auth::unauthorized(&shared.fqdn);
    };
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return service_page(shared, &me);
    }
    if req.method() != Method::POST {
        return response::status(StatusCode::METHOD_NOT_ALLOWED);
    }
    let body = match read_body(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let op = match operation(&body) {
        Ok(op) => op,
        Err(detail) => {
            return response::with_body(
                StatusCode::INTERNAL_SERVER_ERROR,
                response::XML,
                soap::schema_fault(&detail),
            )
        }
    };
    let name = safe_name(&op.name).to_string();
    let db = match shared.databases.local(&me.database) {
        Ok(h) => h,
        Err(e) => return store_failed(&e),
    };
    let result = if op.name == "CreateItem" {
        create::create_item(shared, &db, &me, &op).await
    } else {
        db.read(move |conn| dispatch(conn, &me, &op))
            .await
            .map(|answer| (answer, 0))
    };
    match result {
        Ok((answer, generation)) => {
            let mut resp =
                response::with_body(StatusCode::OK, response::XML, soap::envelope(&answer));
            generation_header(&mut resp, db.database(), generation);
            resp
        }
        Err(e @ StoreError::Fenced(_)) => store_failed(&e),
        Err(e) => {
            tracing::error!(operation = %name, error = %e, "EWS operation failed");
            let message = soap::response_message(&name, Code::ErrorInternalServerError, "");
            response::with_body(
                StatusCode::OK,
                response::XML,
                soap::envelope(&soap::operation_response(&name, &[message])),
            )
        }
    }
}

/// What an authenticated `GET` shows, as Exchange does: the service page
/// with the WSDL link (naming this server's fqdn) and who is logged in.
fn service_page(shared: &Shared, me: &Mailbox) -> Response<Body> {
    let fqdn = escape(&shared.fqdn);
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Service</title></head>\n\
         <body><h1>Service</h1>\n<p>You have created a service.</p>\n\
         <p>To test this service, you will need to create a client and use it to call the service:\n\
         <a href=\"https://{fqdn}/EWS/Services.wsdl\">https://{fqdn}/EWS/Services.wsdl</a></p>\n\
         <p>Logged on as {}.</p>\n</body></html>\n",
        escape(&me.address)
    );
    response::with_body(StatusCode::OK, response::HTML, html)
}

/// The operation element: the first child of the envelope's `Body`.
fn operation(body: &[u8]) -> Result<Element, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the request is not UTF-8".to_string())?;
    let mut doc = xml::parse(text).map_err(|e| e.to_string())?;
    if doc.name != "Envelope" {
        return Err(format!("the root element is {}, not Envelope", doc.name));
    }
    let body_at = doc
        .children
        .iter()
        .position(|c| c.name == "Body")
        .ok_or("the envelope has no Body")?;
    let mut body = doc.children.swap_remove(body_at);
    if body.children.is_empty() {
        return Err("the Body holds no operation".to_string());
    }
    Ok(body.children.swap_remove(0))
}

/// An operation name fit to be written back as an element name.
fn safe_name(name: &str) -> &str {
    if !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric()) {
        name
    } else {
        "Unknown"
    }
}

/// Runs a read-only operation.
fn dispatch(conn: &rusqlite::Connection, me: &Mailbox, op: &Element) -> Result<String, StoreError> {
    match op.name.as_str() {
        "GetFolder" => folders::get_folder(conn, me, op),
        "FindItem" => find::find_item(conn, me, op),
        "GetItem" => items::get_item(conn, me, op),
        other => {
            let other = safe_name(other);
            let message = soap::response_message(other, Code::ErrorInvalidOperation, "");
            Ok(soap::operation_response(other, &[message]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_operation() {
        let doc = br#"<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header/><soap:Body><m:GetFolder/></soap:Body></soap:Envelope>"#;
        assert_eq!(operation(doc).unwrap().name, "GetFolder");
        assert!(operation(b"<a/>").is_err());
        assert!(operation(b"<Envelope><Body/></Envelope>").is_err());
        assert!(operation(b"<Envelope><Header/></Envelope>").is_err());
        assert!(operation(b"\xff").is_err());
        assert_eq!(safe_name("ResolveNames"), "ResolveNames");
        assert_eq!(safe_name("a\"b"), "Unknown");
    }
}
