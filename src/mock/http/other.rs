//! The services the mock answers only minimally: ECP, ActiveSync, OAB and
//! remote PowerShell. Enough for a proxy to route, health-check and
//! rewrite: a small page naming the server's fqdn, and ActiveSync's
//! `OPTIONS` headers.

use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::mock::format::xml::escape;
use crate::mock::http::request::read_body;
use crate::mock::http::response::{self, Body};
use crate::mock::shared::Shared;

/// ActiveSync protocol versions announced: up to Exchange 2010 SP2's 14.1.
const AS_VERSIONS: &str = "2.0,2.1,2.5,12.0,12.1,14.0,14.1";
/// ActiveSync commands announced.
const AS_COMMANDS: &str = "Sync,SendMail,SmartForward,SmartReply,GetAttachment,GetHierarchy,\
CreateCollection,DeleteCollection,MoveCollection,FolderSync,FolderCreate,FolderDelete,\
FolderUpdate,MoveItems,GetItemEstimate,MeetingResponse,Search,Settings,Ping,ItemOperations,\
Provision,ResolveRecipients,ValidateCert";
/// Largest body drained: 1 MiB.
const MAX_DRAIN: usize = 1024 * 1024;

/// Answers `/ecp`, `/Microsoft-Server-ActiveSync`, `/OAB`, `/PowerShell`.
pub async fn handle(shared: &Shared, service: &str, req: Request<Incoming>) -> Response<Body> {
    if service == "eas" && req.method() == Method::OPTIONS {
        return activesync_options();
    }
    let method = req.method().clone();
    if method == Method::POST {
        if let Err(resp) = read_body(req.into_body(), MAX_DRAIN).await {
            return resp;
        }
    } else if !matches!(method, Method::GET | Method::HEAD) {
        return response::status(StatusCode::METHOD_NOT_ALLOWED);
    }
    let title = match service {
        "ecp" => "Exchange Control Panel",
        "eas" => "Exchange ActiveSync",
        "oab" => "Offline Address Book",
        _ => "Remote PowerShell",
    };
    let fqdn = escape(&shared.fqdn);
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body><h1>{title}</h1>\n<p>Served by <a href=\"https://{fqdn}/\">{fqdn}</a> ({}).</p>\n</body></html>\n",
        escape(&shared.name)
    );
    response::with_body(StatusCode::OK, response::HTML, html)
}

fn activesync_options() -> Response<Body> {
    let mut resp = response::with_body(StatusCode::OK, response::TEXT, "");
    let headers = resp.headers_mut();
    headers.insert("ms-server-activesync", HeaderValue::from_static("14.3"));
    headers.insert(
        "ms-asprotocolversions",
        HeaderValue::from_static(AS_VERSIONS),
    );
    headers.insert(
        "ms-asprotocolcommands",
        HeaderValue::from_static(AS_COMMANDS),
    );
    headers.insert("allow", HeaderValue::from_static("OPTIONS,POST"));
    headers.insert("public", HeaderValue::from_static("OPTIONS,POST"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_announce_activesync() {
        let resp = activesync_options();
        assert_eq!(resp.headers()["ms-server-activesync"], "14.3");
        assert!(resp.headers()["ms-asprotocolversions"]
            .to_str()
            .unwrap()
            .contains("14.1"));
        assert!(resp.headers()["ms-asprotocolcommands"]
            .to_str()
            .unwrap()
            .contains("FolderSync"));
    }
}
