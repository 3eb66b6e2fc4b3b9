//! SOAP Autodiscover (MS-OXWSADISC): `GetUserSettings` at
//! `/autodiscover/autodiscover.svc`, as EWS libraries and Outlook send it.
//!
//! SOAP 1.1 (`text/xml`, `SOAPAction`) and SOAP 1.2
//! (`application/soap+xml`) requests are read alike (elements by local
//! name); the answer uses the request's SOAP version and content type.
//! Each requested mailbox gets a `UserResponse`: its settings, an
//! `InvalidSetting` error for each setting the mock does not know, or
//! `InvalidUser` for an unknown mailbox. `MailboxDN` names the mailbox's
//! database, which the array uses to set `InternalRpcClientServer` to the
//! database's RPC client access server.

use std::fmt::Write as _;

use http::header::CONTENT_TYPE;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::{domain_of, mailbox_server, DEPLOYMENT_ID};
use crate::mock::auth;
use crate::mock::directory;
use crate::mock::format::xml::{self, escape, Element};
use crate::mock::http::request::read_body;
use crate::mock::http::response::{self, Body};
use crate::mock::shared::Shared;
use crate::mock::users::{self, Mailbox};

const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";
const AUTODISCOVER_NS: &str = "http://schemas.microsoft.com/exchange/2010/Autodiscover";
const ADDRESSING_NS: &str = "http://www.w3.org/2005/08/addressing";
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
const ACTION: &str =
    "http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettingsResponse";
/// Largest request read: 64 KiB.
const MAX_REQUEST: usize = 64 * 1024;
/// Most mailboxes answered in one request (as Exchange: 100).
const MAX_USERS: usize = 100;

/// The SOAP version of a request, from its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Soap {
    V11,
    V12,
}

impl Soap {
    fn of(req: &Request<Incoming>) -> Soap {
        let soap12 = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/soap+xml"))
            });
        if soap12 {
            Soap::V12
        } else {
            Soap::V11
        }
    }

    fn namespace(self) -> &'static str {
        match self {
            Soap::V11 => SOAP11_NS,
            Soap::V12 => SOAP12_NS,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Soap::V11 => "text/xml; charset=utf-8",
            Soap::V12 => "application/soap+xml; charset=utf-8",
        }
    }
}

/// Answers `POST /autodiscover/autodiscover.svc`.
pub async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let soap = Soap::of(&req);
    if req.method() != Method::POST {
        return response::status(StatusCode::METHOD_NOT_ALLOWED);
    }
    let basic = auth::credentials(req.headers());
    if basic != auth::Credentials::Absent
        && auth::authenticate(req.headers(), req.extensions()).is_none()
    {
        return auth::unauthorized(&shared.fqdn);
    }
    let body = match read_body(req.into_body(), MAX_REQUEST).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let doc = std::str::from_utf8(&body)
        .ok()
        .and_then(|text| xml::parse(text).ok());
    let Some(request) = doc.as_ref().and_then(|doc| {
        doc.child("Body")?
            .child("GetUserSettingsRequestMessage")?
            .child("Request")
    }) else {
        return fault(soap, "The request is not a GetUserSettings request.");
    };
    let mailboxes: Vec<&str> = request
        .child("Users")
        .map(|users| {
            users
                .children_named("User")
                .filter_map(|u| u.child_text("Mailbox"))
                .collect()
        })
        .unwrap_or_default();
    let settings: Vec<&str> = request
        .child("RequestedSettings")
        .map(|s| {
            s.children_named("Setting")
                .map(Element::trimmed_text)
                .collect()
        })
        .unwrap_or_default();
    let body = if mailboxes.is_empty() || mailboxes.len() > MAX_USERS || settings.is_empty() {
        response_body("InvalidRequest", "The request is invalid.", "")
    } else {
        let users: String = mailboxes
            .iter()
            .map(|address| user_response(shared, address, &settings))
            .collect();
        response_body("NoError", "", &users)
    };
    response::with_body(StatusCode::OK, soap.content_type(), envelope(soap, &body))
}

/// The envelope around a `GetUserSettingsResponseMessage` body.
fn envelope(soap: Soap, body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <s:Envelope xmlns:s=\"{ns}\" xmlns:a=\"{ADDRESSING_NS}\">\
         <s:Header>\
         <a:Action s:mustUnderstand=\"1\">{ACTION}</a:Action>\
         <h:ServerVersionInfo xmlns:h=\"{AUTODISCOVER_NS}\" xmlns:i=\"{XSI_NS}\">\
         <h:MajorVersion>14</h:MajorVersion><h:MinorVersion>3</h:MinorVersion>\
         <h:MajorBuildNumber>123</h:MajorBuildNumber><h:MinorBuildNumber>4</h:MinorBuildNumber>\
         <h:Version>Exchange2010_SP2</h:Version>\
         </h:ServerVersionInfo>\
         </s:Header>\
         <s:Body>\
         <GetUserSettingsResponseMessage xmlns=\"{AUTODISCOVER_NS}\">{body}</GetUserSettingsResponseMessage>\
         </s:Body>\
         </s:Envelope>",
        ns = soap.namespace()
    )
}

/// The `Response` element.
fn response_body(code: &str, message: &str, users: &str) -> String {
    format!(
        "<Response xmlns:i=\"{XSI_NS}\">\
         <ErrorCode>{code}</ErrorCode><ErrorMessage>{}</ErrorMessage>\
         <UserResponses>{users}</UserResponses>\
         </Response>",
        escape(message)
    )
}

/// One mailbox's `UserResponse`.
fn user_response(shared: &Shared, address: &str, requested: &[&str]) -> String {
    let Some(mailbox) = directory::lab()
        .find(address)
        .filter(|_| address.contains('@'))
    else {
        return format!(
            "<UserResponse><ErrorCode>InvalidUser</ErrorCode>\
             <ErrorMessage>Invalid user: '{}'</ErrorMessage>\
             <RedirectTarget i:nil=\"true\" /><UserSettingErrors /><UserSettings />\
             </UserResponse>",
            escape(address)
        );
    };
    let mut settings = String::new();
    let mut errors = String::new();
    for name in requested {
        if !push_setting(&mut settings, shared, mailbox, name) {
            let _ = write!(
                errors,
                "<UserSettingError><ErrorCode>InvalidSetting</ErrorCode>\
                 <ErrorMessage>The requested setting is invalid.</ErrorMessage>\
                 <SettingName>{}</SettingName></UserSettingError>",
                escape(name)
            );
        }
    }
    format!(
        "<UserResponse><ErrorCode>NoError</ErrorCode><ErrorMessage>No error.</ErrorMessage>\
         <RedirectTarget i:nil=\"true\" />\
         <UserSettingErrors>{errors}</UserSettingErrors>\
         <UserSettings>{settings}</UserSettings></UserResponse>"
    )
}

/// Appends setting `name` for `mailbox`; `false` when the mock does not
/// know the setting.
fn push_setting(out: &mut String, shared: &Shared, mailbox: &Mailbox, name: &str) -> bool {
    let fqdn = &shared.fqdn;
    let url = |path: &str| format!("https://{fqdn}{path}");
    let value = match name {
        "UserDisplayName" => mailbox.display_name.clone(),
        "UserDN" => users::mailbox_legacy_dn(&mailbox.address),
        "UserDeploymentId" => DEPLOYMENT_ID.to_string(),
        "AutoDiscoverSMTPAddress" => mailbox.address.clone(),
        "InternalMailboxServer" => mailbox_server(shared, &mailbox.database).1,
        "InternalMailboxServerDN" => users::server_dn(&mailbox_server(shared, &mailbox.database).0),
        "MailboxDN" => users::database_dn(&mailbox.database),
        "InternalRpcClientServer" | "ExternalMailboxServer" => fqdn.clone(),
        "ExternalMailboxServerRequiresSSL" | "MapiHttpEnabled" => "True".to_string(),
        "ExternalMailboxServerAuthenticationMethods" => "Ntlm".to_string(),
        "ActiveDirectoryServer" => format!("dc01.{}", domain_of(fqdn)),
        "CasVersion" => "14.03.0123.004".to_string(),
        "EwsSupportedSchemas" => {
            "Exchange2007, Exchange2007_SP1, Exchange2010, Exchange2010_SP1, Exchange2010_SP2"
                .to_string()
        }
        "InternalEwsUrl" | "ExternalEwsUrl" => url("/EWS/Exchange.asmx"),
        "InternalEcpUrl" | "ExternalEcpUrl" => url("/ecp/"),
        "InternalOABUrl" | "ExternalOABUrl" => url("/OAB/"),
        "InternalMapiHttpServerUrl" | "ExternalMapiHttpServerUrl" => {
            let domain = mailbox.address.split('@').nth(1).unwrap_or_default();
            url(&format!(
                "/mapi/emsmdb/?MailboxId={}@{domain}",
                mailbox.guid
            ))
        }
        "InternalWebClientUrls" | "ExternalWebClientUrls" => {
            let _ = write!(
                out,
                "<UserSetting i:type=\"WebClientUrlCollectionSetting\"><Name>{name}</Name>\
                 <WebClientUrls><WebClientUrl><AuthenticationMethods>Fba</AuthenticationMethods>\
                 <Url>{}</Url></WebClientUrl></WebClientUrls></UserSetting>",
                escape(&url("/owa/"))
            );
            return true;
        }
        _ => return false,
    };
    let _ = write!(
        out,
        "<UserSetting i:type=\"StringSetting\"><Name>{name}</Name><Value>{}</Value></UserSetting>",
        escape(&value)
    );
    true
}

/// A SOAP fault (HTTP 500, as WCF answers one).
fn fault(soap: Soap, reason: &str) -> Response<Body> {
    let body = match soap {
        Soap::V11 => format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
             <s:Envelope xmlns:s=\"{SOAP11_NS}\"><s:Body><s:Fault>\
             <faultcode>s:Client</faultcode><faultstring>{}</faultstring>\
             </s:Fault></s:Body></s:Envelope>",
            escape(reason)
        ),
        Soap::V12 => format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
             <s:Envelope xmlns:s=\"{SOAP12_NS}\"><s:Body><s:Fault>\
             <s:Code><s:Value>s:Sender</s:Value></s:Code>\
             <s:Reason><s:Text xml:lang=\"en-US\">{}</s:Text></s:Reason>\
             </s:Fault></s:Body></s:Envelope>",
            escape(reason)
        ),
    };
    response::with_body(StatusCode::INTERNAL_SERVER_ERROR, soap.content_type(), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings_of(text: &str) -> Vec<(String, String)> {
        let doc = xml::parse(text).unwrap();
        let user = doc.find("UserResponse").unwrap();
        user.child("UserSettings")
            .unwrap()
            .children_named("UserSetting")
            .map(|s| {
                let value = s
                    .child_text("Value")
                    .map(str::to_string)
                    .or_else(|| s.find("Url").map(|u| u.trimmed_text().to_string()))
                    .unwrap_or_default();
                (s.child_text("Name").unwrap().to_string(), value)
            })
            .collect()
    }

    #[test]
    fn user_settings_name_the_server_and_database() {
        let (_dir, shared) = Shared::for_tests();
        let names = [
            "UserDisplayName",
            "InternalRpcClientServer",
            "MailboxDN",
            "ExternalEwsUrl",
            "ExternalWebClientUrls",
            "NoSuchSetting",
        ];
        let users = user_response(&shared, "bob@lab.com", &names);
        let text = envelope(Soap::V11, &response_body("NoError", "", &users));
        let got = settings_of(&text);
        assert_eq!(got.len(), 5);
        assert_eq!(got[0], ("UserDisplayName".into(), "Bob Brown".into()));
        assert_eq!(got[1].1, "ex1.lab.local");
        assert!(got[2].1.ends_with("/cn=Databases/cn=DB02"), "{got:?}");
        assert_eq!(got[3].1, "https://ex1.lab.local/EWS/Exchange.asmx");
        assert_eq!(got[4].1, "https://ex1.lab.local/owa/");
        let doc = xml::parse(&text).unwrap();
        let err = doc.find("UserSettingError").unwrap();
        assert_eq!(err.child_text("SettingName"), Some("NoSuchSetting"));
    }

    #[test]
    fn unknown_users_get_invalid_user() {
        let (_dir, shared) = Shared::for_tests();
        let users = user_response(&shared, "nobody@lab.com", &["UserDN"]);
        let doc = xml::parse(&format!("<r xmlns:i=\"x\">{users}</r>")).unwrap();
        assert_eq!(
            doc.find("UserResponse").unwrap().child_text("ErrorCode"),
            Some("InvalidUser")
        );
    }
}
