//! Autodiscover, plain-old-XML flavour (`POST /Autodiscover/Autodiscover.xml`):
//! the Outlook request schema 2006 in, response schemas 2006 and 2006a
//! out. Every server name and URL in the answer is this server's own fqdn;
//! the array rewrites them.

use std::fmt::Write as _;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::{domain_of, DEPLOYMENT_ID};
use crate::mock::auth;
use crate::mock::directory;
use crate::mock::format::clock;
use crate::mock::format::xml::{self, escape};
use crate::mock::http::request::read_body;
use crate::mock::http::response::{self, Body};
use crate::mock::shared::Shared;
use crate::mock::users::{self, Mailbox};

const RESPONSE_NS: &str = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006";
/// The only response schema served: Outlook's.
pub const OUTLOOK_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";
/// Exchange 2010 SP3's `ServerVersion`.
const SERVER_VERSION: &str = "738180DA";
/// Largest request read: 64 KiB.
const MAX_REQUEST: usize = 64 * 1024;

/// Answers `POST /autodiscover/autodiscover.xml`.
pub async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    if req.method() != Method::POST {
        return error(shared, 600, "Invalid Request");
    }
    let basic = auth::credentials(req.headers());
    let authed = auth::authenticate(req.headers(), req.extensions());
    if basic != auth::Credentials::Absent && authed.is_none() {
        return auth::unauthorized(&shared.fqdn);
    }
    let body = match read_body(req.into_body(), MAX_REQUEST).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let Some((address, schema)) = std::str::from_utf8(&body)
        .ok()
        .and_then(|text| xml::parse(text).ok())
        .and_then(|doc| {
            let request = doc.child("Request")?;
            let address = request.child_text("EMailAddress")?.to_string();
            let schema = request
                .child_text("AcceptableResponseSchema")
                .unwrap_or_default()
                .to_string();
            Some((address, schema))
        })
    else {
        return error(shared, 600, "Invalid Request");
    };
    if schema != OUTLOOK_SCHEMA {
        return error(
            shared,
            601,
            "The requested schema version is not supported.",
        );
    }
    match directory::lab().find(&address) {
        Some(mailbox) if address.contains('@') => ok_xml(outlook_settings(shared, mailbox)),
        _ => error(shared, 500, "The e-mail address cannot be found."),
    }
}

fn ok_xml(body: String) -> Response<Body> {
    response::with_body(StatusCode::OK, response::XML, body)
}

/// A POX error answer (HTTP 200, as Exchange sends it).
fn error(shared: &Shared, code: u32, message: &str) -> Response<Body> {
    let now = clock::unix_now();
    let time = format!(
        "{:02}:{:02}:{:02}.0000000",
        now.rem_euclid(86_400) / 3600,
        now.rem_euclid(3600) / 60,
        now.rem_euclid(60)
    );
    let id = shared.name.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    });
    ok_xml(format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n\
         <Autodiscover xmlns=\"{RESPONSE_NS}\">\
         <Response>\
         <Error Time=\"{time}\" Id=\"{id}\">\
         <ErrorCode>{code}</ErrorCode>\
         <Message>{}</Message>\
         <DebugData />\
         </Error>\
         </Response>\
         </Autodiscover>",
        escape(message)
    ))
}

/// The URLs every protocol section carries.
fn service_urls(out: &mut String, fqdn: &str) {
    let ews = format!("https://{fqdn}/EWS/Exchange.asmx");
    xml::push_text_element(out, "ASUrl", &ews);
    xml::push_text_element(out, "EwsUrl", &ews);
    xml::push_text_element(out, "EcpUrl", &format!("https://{fqdn}/ecp/"));
    xml::push_text_element(out, "OOFUrl", &ews);
    xml::push_text_element(
        out,
        "UMUrl",
        &format!("https://{fqdn}/EWS/UM2007Legacy.asmx"),
    );
    xml::push_text_element(out, "OABUrl", &format!("https://{fqdn}/OAB/"));
}

/// The Outlook settings of `mailbox` as served by this server.
pub fn outlook_settings(shared: &Shared, mailbox: &Mailbox) -> String {
    let fqdn = &shared.fqdn;
    let mut out = String::with_capacity(4096);
    out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n");
    let _ = write!(
        out,
        "<Autodiscover xmlns=\"{RESPONSE_NS}\"><Response xmlns=\"{OUTLOOK_SCHEMA}\">"
    );
    out.push_str("<User>");
    xml::push_text_element(&mut out, "DisplayName", &mailbox.display_name);
    xml::push_text_element(
        &mut out,
        "LegacyDN",
        &users::mailbox_legacy_dn(&mailbox.address),
    );
    xml::push_text_element(&mut out, "AutoDiscoverSMTPAddress", &mailbox.address);
    xml::push_text_element(&mut out, "DeploymentId", DEPLOYMENT_ID);
    out.push_str("</User><Account>");
    xml::push_text_element(&mut out, "AccountType", "email");
    xml::push_text_element(&mut out, "Action", "settings");
    xml::push_text_element(&mut out, "MicrosoftOnline", "False");

    out.push_str("<Protocol>");
    xml::push_text_element(&mut out, "Type", "EXCH");
    xml::push_text_element(&mut out, "Server", fqdn);
    xml::push_text_element(&mut out, "ServerDN", &users::server_dn(&shared.name));
    xml::push_text_element(&mut out, "ServerVersion", SERVER_VERSION);
    xml::push_text_element(&mut out, "MdbDN", &users::database_dn(&mailbox.database));
    xml::push_text_element(&mut out, "PublicFolderServer", fqdn);
    xml::push_text_element(&mut out, "AD", &format!("dc01.{}", domain_of(fqdn)));
    service_urls(&mut out, fqdn);
    out.push_str("</Protocol>");

    out.push_str("<Protocol>");
    xml::push_text_element(&mut out, "Type", "EXPR");
    xml::push_text_element(&mut out, "Server", fqdn);
    xml::push_text_element(&mut out, "SSL", "On");
    xml::push_text_element(&mut out, "AuthPackage", "Ntlm");
    xml::push_text_element(&mut out, "CertPrincipalName", &format!("msstd:{fqdn}"));
    service_urls(&mut out, fqdn);
    out.push_str("</Protocol>");

    out.push_str("<Protocol>");
    xml::push_text_element(&mut out, "Type", "WEB");
    out.push_str("<Internal>");
    let _ = write!(
        out,
        "<OWAUrl AuthenticationMethod=\"Fba\">https://{}/owa/</OWAUrl>",
        escape(fqdn)
    );
    out.push_str("<Protocol>");
    xml::push_text_element(&mut out, "Type", "EXCH");
    xml::push_text_element(
        &mut out,
        "ASUrl",
        &format!("https://{fqdn}/EWS/Exchange.asmx"),
    );
    out.push_str("</Protocol></Internal></Protocol>");

    out.push_str("</Account></Response></Autodiscover>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> (tempfile::TempDir, Shared) {
        Shared::for_tests()
    }

    #[test]
    fn settings_name_the_server_and_database() {
        let (_dir, shared) = shared();
        let mailbox = Mailbox {
            address: "alice@lab.com".into(),
            display_name: "Alice".into(),
            database: "DB01".into(),
            guid: crate::mock::users::mailbox_guid("alice@lab.com"),
        };
        let text = outlook_settings(&shared, &mailbox);
        let doc = xml::parse(&text).unwrap();
        let account = doc.child("Response").unwrap().child("Account").unwrap();
        let protocols: Vec<_> = account.children_named("Protocol").collect();
        assert_eq!(protocols.len(), 3);
        let exch = protocols[0];
        assert_eq!(exch.child_text("Type"), Some("EXCH"));
        assert_eq!(exch.child_text("Server"), Some("ex1.lab.local"));
        assert_eq!(
            exch.child_text("MdbDN"),
            Some("/o=casarray lab/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Configuration/cn=Databases/cn=DB01")
        );
        assert_eq!(
            exch.child_text("EwsUrl"),
            Some("https://ex1.lab.local/EWS/Exchange.asmx")
        );
        assert_eq!(
            protocols[1].child_text("CertPrincipalName"),
            Some("msstd:ex1.lab.local")
        );
        let owa = protocols[2].find("OWAUrl").unwrap();
        assert_eq!(owa.attr("AuthenticationMethod"), Some("Fba"));
        assert_eq!(owa.trimmed_text(), "https://ex1.lab.local/owa/");
    }

    #[tokio::test]
    async fn error_has_pox_shape() {
        let (_dir, shared) = shared();
        let resp = error(&shared, 500, "The e-mail address cannot be found.");
        use http_body_util::BodyExt;
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let doc = xml::parse(std::str::from_utf8(&body).unwrap()).unwrap();
        let err = doc.find("Error").unwrap();
        assert_eq!(err.child_text("ErrorCode"), Some("500"));
        assert!(err.attr("Time").is_some() && err.attr("Id").is_some());
    }
}
